"""One sentence in plain words of what a customer will receive from one purpose, from their
preferences (:class:`vault.preferences.service.PreferenceView`), in German or English:
"at most once a month, by e-mail, only about wine and recipes". The texts are msgids of the
self-service catalogues, so translators see them next to the page texts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from vault.db import utcnow
from vault.policy import Purpose
from vault.policy.models import Topic
from vault.selfservice.i18n import format_day, translations

if TYPE_CHECKING:
    from vault.preferences.service import PreferenceView


def N_(message: str) -> str:
    return message


FREQUENCY = {
    "weekly": N_("at most once a week"),
    "monthly": N_("at most once a month"),
    "quarterly": N_("at most once a quarter"),
}
CHANNEL = {
    "email": N_("by e-mail"),
    "sms": N_("by text message"),
    "push": N_("by push notification"),
    "post": N_("by post"),
    "phone": N_("by phone"),
}


def _label(topic: Topic, lang: str) -> str:
    """The topic's label inside a sentence: English lower-cases its first letter ("wine"),
    German keeps it (nouns: "Wein")."""
    label = topic.label.get(lang)
    return label[:1].lower() + label[1:] if lang == "en" else label


def _join(items: list[str], lang: str) -> str:
    _ = translations(lang).gettext
    if len(items) <= 1:
        return "".join(items)
    return _("%(items)s and %(last)s") % {"items": ", ".join(items[:-1]), "last": items[-1]}


def summary(prefs: PreferenceView, purpose: Purpose, lang: str, now: datetime | None = None) -> str:
    """What ``purpose`` may send the customer, in one sentence without a final stop:
    frequency, contact channels left on, topics left on; "nothing" when every channel or
    topic is off, "nothing until <date>" during a pause."""
    _ = translations(lang).gettext
    channels = [
        c.value for c in purpose.contact_channels if prefs.contact_channels.get(c.value, True)
    ]
    topics = prefs.topics.get(purpose.id)
    on = [t for t in purpose.topics if topics is None or topics.get(t.id, False)]
    if not channels or (purpose.topics and not on):
        return _("nothing")
    parts = []
    frequency = prefs.frequency.get(purpose.id)
    if frequency in FREQUENCY:
        parts.append(_(FREQUENCY[frequency]))
    parts.append(_join([_(CHANNEL[c]) for c in channels], lang))
    if purpose.topics and len(on) < len(purpose.topics):
        parts.append(
            _("only about %(topics)s") % {"topics": _join([_label(t, lang) for t in on], lang)}
        )
    text = ", ".join(parts)
    if prefs.paused_until is not None and prefs.paused_until > (now or utcnow()):
        text = _("nothing until %(date)s, then %(rest)s") % {
            "date": format_day(prefs.paused_until, lang),
            "rest": text,
        }
    return text
