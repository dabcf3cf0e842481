"""Errors of the self-service page: refused links, missing sessions, failed CSRF checks and an
unconfirmed erasure (the pages turn each into a friendly HTML page with the error's status)."""

from __future__ import annotations

from vault.errors import Conflict, InvalidRequest, VaultError


class LinkInvalid(VaultError):
    code = "selfservice_link_invalid"
    status = 401
    default_detail = "This link is not valid."


class LinkUsed(VaultError):
    code = "selfservice_link_used"
    status = 410
    default_detail = "This link has already been used."


class LinkExpired(VaultError):
    code = "selfservice_link_expired"
    status = 410
    default_detail = "This link has expired."


class SessionRequired(VaultError):
    code = "selfservice_session_required"
    status = 401
    default_detail = "Open the link from your e-mail to see this page."


class CsrfRefused(VaultError):
    code = "csrf_refused"
    status = 403
    default_detail = "The form could not be verified; reload the page and try again."


class ErasureNotConfirmed(InvalidRequest):
    code = "erasure_not_confirmed"
    default_detail = "Tick the box to confirm that your data should be erased."


class UnsubscribeLinkInvalid(VaultError):
    """An unsubscribe token this vault did not make (forged, altered, cut off) or whose
    purpose the policy no longer has."""

    code = "unsubscribe_link_invalid"
    status = 404
    default_detail = "This unsubscribe link is not valid."


class OneClickRequired(InvalidRequest):
    """A POST to an unsubscribe link without ``List-Unsubscribe=One-Click`` (RFC 8058)."""

    code = "one_click_required"
    default_detail = "Send List-Unsubscribe=One-Click in the form body to unsubscribe."


class NoEmailAddress(Conflict):
    code = "customer_has_no_email"
    default_detail = "The customer has no e-mail address to send the link to."


class NotAnEmailAddress(InvalidRequest):
    code = "invalid_email_address"
    default_detail = "Please enter your e-mail address."


class PreferencesNotApplicable(Conflict):
    """A preference form posted for a purpose that may not contact the customer at all (no
    effective consent, or an objection stops it): the page offers no such form."""

    code = "preferences_not_applicable"
    default_detail = "Without your consent to this use there is nothing to choose."
