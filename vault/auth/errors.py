"""Errors of the client registry."""

from __future__ import annotations

from vault.errors import Conflict, NotFound, VaultError


class ClientNotFound(NotFound):
    code = "client_not_found"
    default_detail = "No client with this id."


class ClientDeleted(Conflict):
    code = "client_deleted"
    default_detail = "This client has been deleted; a deleted client cannot be changed."


class OperatorRequired(VaultError):
    """Separation of duties: over HTTP an ``admin`` may not hand out ``admin`` or a scope that
    reaches customer data, nor obtain such a client's secret (rotation); the operator does,
    with ``vault clients``."""

    code = "operator_required"
    status = 403
    default_detail = "Only an operator (the 'vault clients' command) may do this."
