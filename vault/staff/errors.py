"""Errors of the staff console (each page turns them into a friendly HTML page)."""

from __future__ import annotations

from vault.errors import Conflict, InvalidRequest, NotFound, VaultError


class StaffSessionRequired(VaultError):
    """No live staff session (none, ended, idle or past its end, account disabled). A GET is
    sent to the sign-in form instead (303); anything else gets this 403 page."""

    code = "staff_session_required"
    status = 403
    default_detail = "Please sign in to the staff console."


class StaffRoleRefused(VaultError):
    code = "staff_role_refused"
    status = 403
    default_detail = "Your role may not use this page."


class StaffCsrfRefused(VaultError):
    code = "csrf_refused"
    status = 403
    default_detail = "The form could not be verified; reload the page and try again."


class StaffNotFound(NotFound):
    code = "staff_not_found"
    default_detail = "No staff account with this name."


class StaffNameTaken(Conflict):
    code = "staff_name_taken"
    default_detail = "A staff account with this name exists already."


class InvalidStaffAccount(InvalidRequest):
    code = "invalid_staff_account"
    default_detail = "The staff account is not valid."
