"""Why a mail could not be sent: a short code, never the server's text."""

from __future__ import annotations


class SendFailed(Exception):
    """One delivery attempt failed. ``code`` is stored as ``last_error`` (``smtp_550``,
    ``timeout``, ``tls_verify_failed`` ...); ``permanent`` marks a refusal that no retry will
    change (the mail is *bounced*)."""

    def __init__(self, code: str, *, permanent: bool = False):
        super().__init__(code)
        self.code = code[:64]
        self.permanent = permanent
