"""The auditors' pages (role ``auditor``): the audit log with the API's filters, verification
and exports. Filled in below the foundation."""

from __future__ import annotations

from fastapi import APIRouter

from vault.staff.pages import StaffPageRoute

router = APIRouter(route_class=StaffPageRoute, include_in_schema=False)
