"""Labels and chart assembly of the privacy office pages (no HTTP here).

Codes (request kinds, reasons, ledger statuses, touchpoints, delivery states) get their label
from the tables below, marked for the staff catalogue with ``N_`` and translated when shown;
an unknown code is shown as stored. :func:`rate_charts` turns :class:`vault.staff.office.Rates`
into the three SVG charts of the rates page and their text tables, :func:`preference_charts`
turns :class:`vault.staff.office.PreferenceRates` into one chart per purpose with topics
(topics on and off) and the charts of preference changes per touchpoint and per week.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from babel.dates import format_date
from markupsafe import Markup

from vault.policy import Policy
from vault.staff import charts, office


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated when shown."""
    return message


KIND = {
    "access": N_("access (Art. 15)"),
    "rectification": N_("rectification (Art. 16)"),
    "erasure": N_("erasure (Art. 17)"),
    "restriction": N_("restriction (Art. 18)"),
    "portability": N_("portability (Art. 20)"),
    "objection": N_("objection (Art. 21)"),
}
REQUEST_STATUS = {
    "open": N_("open"),
    "completed": N_("completed"),
    "rejected": N_("rejected"),
}
EXTENSION_REASON = {
    "complexity": N_("complexity of the request"),
    "number_of_requests": N_("number of requests"),
}
REJECTION_REASON = {
    "manifestly_unfounded": N_("manifestly unfounded"),
    "excessive": N_("excessive"),
    "identity_not_verified": N_("identity not verified"),
    "legal_exemption": N_("legal exemption"),
    "other": N_("other (see note)"),
}
COMPLETION_REASON = {
    "fulfilled": N_("fulfilled"),
    "no_data_held": N_("no data held"),
    "withdrawn": N_("withdrawn by the data subject"),
    "other": N_("other (see note)"),
}
RESTRICTION_REASON = {
    "accuracy_contested": N_("accuracy contested (Art. 18(1)(a))"),
    "unlawful_processing": N_("unlawful processing, restricted instead of erased (Art. 18(1)(b))"),
    "legal_claims": N_("needed for legal claims (Art. 18(1)(c))"),
    "objection_pending": N_("objection being weighed (Art. 18(1)(d))"),
}
LEGAL_HOLD_REASON = {
    "tax_retention": N_("tax records (§ 147 AO)"),
    "commercial_retention": N_("commercial records (§ 257 HGB)"),
    "litigation": N_("legal claims (Art. 17(3)(e))"),
    "authority_request": N_("request of an authority"),
    "other": N_("other (see note)"),
}
LEGAL_HOLD_RELEASE = {
    "retention_period_ended": N_("retention period ended"),
    "litigation_concluded": N_("litigation concluded"),
    "authority_request_closed": N_("authority request closed"),
    "set_in_error": N_("set in error"),
    "other": N_("other"),
}
CUSTOMER_STATUS = {
    "active": N_("active"),
    "restricted": N_("processing restricted (Art. 18)"),
    "erased": N_("erased"),
}
OBJECTION_SCOPE = {"direct_marketing": N_("direct marketing (Art. 21(2))")}
SERIES = {
    "granted": N_("granted"),
    "pending_confirmation": N_("granted, awaiting confirmation"),
    "confirmed": N_("confirmed (double opt-in)"),
    "refused": N_("refused"),
    "withdrawn": N_("withdrawn"),
    "expired": N_("expired"),
}
CHANNEL = {
    "web": N_("web shop"),
    "app": N_("app"),
    "store": N_("store"),
    "call_center": N_("call centre"),
    "email": N_("e-mail"),
    "api": N_("API"),
    "selfservice": N_("self-service page"),
}
TOPIC_SERIES = {"on": N_("on"), "off": N_("switched off")}
PART = {
    "contact_channels": N_("contact channels"),
    "topics": N_("topics"),
    "frequency": N_("frequency"),
    "paused_until": N_("pause"),
}
WEBHOOK_STATE = {
    "pending": N_("waiting"),
    "failed": N_("failed, retry scheduled"),
    "delivered": N_("delivered"),
    "dead": N_("given up (dead letter)"),
    "undispatched": N_("events not yet fanned out"),
}
MAIL_STATE = {
    "pending": N_("waiting"),
    "retrying": N_("failed, retry scheduled"),
    "sent": N_("sent"),
    "bounced": N_("bounced"),
    "failed": N_("given up"),
}


def labeller(gettext: Callable[[str], str]) -> Callable[[dict[str, str], Any], str]:
    def label(table: dict[str, str], code: Any) -> str:
        if code is None:
            return ""
        code = str(code)
        return gettext(table[code]) if code in table else code

    return label


@dataclass(frozen=True)
class Chart:
    id: str
    heading: str
    svg: Markup
    head: list[str]  # the text table's column heads
    rows: list[list[str]]


def _percent(counts: dict[str, int], gettext: Callable[[str], str]) -> str:
    r = office.rate(counts)
    total = sum(counts.values())
    if total == 0:
        return "0"
    share = gettext("no one asked") if r is None else f"{round(100 * r)} %"
    return f"{share} · {total}"


def week_label(monday: date, lang: str, gettext: Callable[[str], str]) -> str:
    week = monday.isocalendar()[1]
    return gettext("Week %(week)s, from %(day)s") % {
        "week": week,
        "day": format_date(monday, format="short", locale=lang),
    }


def rate_charts(
    rates: office.Rates, policy: Policy, lang: str, gettext: Callable[[str], str]
) -> list[Chart]:
    """The charts by purpose, by touchpoint and by week, each with its text table."""
    label = labeller(gettext)
    series = [charts.Series(key, gettext(SERIES[key])) for key in office.SERIES]
    head = [gettext("Group"), *(s.label for s in series), gettext("Consent rate · statements")]
    empty = gettext("No consent statements in this period.")
    span = gettext("from %(since)s to %(until)s") % {
        "since": format_date(rates.since, format="medium", locale=lang),
        "until": format_date(rates.until, format="medium", locale=lang),
    }

    def title_of(pid: str) -> str:
        purpose = policy.purposes.get(pid)
        return getattr(purpose.title, lang) if purpose is not None else pid

    groups: list[tuple[str, str, str, list[charts.Bar]]] = [
        (
            "rates-purpose",
            gettext("Consent statements per purpose"),
            gettext("Consent statements per purpose, stacked by status, %(span)s.")
            % {"span": span},
            [charts.Bar(title_of(p), c, _percent(c, gettext)) for p, c in rates.by_purpose],
        ),
        (
            "rates-channel",
            gettext("Consent statements per touchpoint"),
            gettext("Consent statements per touchpoint (channel), stacked by status, %(span)s.")
            % {"span": span},
            [charts.Bar(label(CHANNEL, ch), c, _percent(c, gettext)) for ch, c in rates.by_channel],
        ),
        (
            "rates-week",
            gettext("Consent statements per week"),
            gettext("Consent statements per ISO week (UTC), stacked by status, %(span)s.")
            % {"span": span},
            [
                charts.Bar(week_label(w, lang, gettext), c, _percent(c, gettext))
                for w, c in rates.by_week
            ],
        ),
    ]
    out = []
    for chart_id, title, desc, bars in groups:
        if rates.purpose is not None and chart_id != "rates-purpose":
            title = f"{title}: {title_of(rates.purpose)}"
        svg = charts.stacked_bars(
            chart_id=chart_id, title=title, desc=desc, series=series, bars=bars, empty=empty
        )
        out.append(Chart(chart_id, title, svg, head, charts.table_rows(series, bars)))
    return out


def _share_on(counts: dict[str, int], gettext: Callable[[str], str]) -> str:
    total = counts.get("on", 0) + counts.get("off", 0)
    if total == 0:
        return "0"
    return gettext("%(share)s on · %(total)s") % {
        "share": f"{round(100 * counts.get('on', 0) / total)} %",
        "total": total,
    }


def preference_charts(
    prefs: office.PreferenceRates, policy: Policy, lang: str, gettext: Callable[[str], str]
) -> list[Chart]:
    """One chart per purpose with topics (a bar per topic: on, switched off), then the
    preference changes per touchpoint and per week (a segment per part that changed)."""
    label = labeller(gettext)
    span = gettext("from %(since)s to %(until)s") % {
        "since": format_date(prefs.since, format="medium", locale=lang),
        "until": format_date(prefs.until, format="medium", locale=lang),
    }

    def title_of(pid: str) -> str:
        purpose = policy.purposes.get(pid)
        return getattr(purpose.title, lang) if purpose is not None else pid

    def topic_of(pid: str, tid: str) -> str:
        purpose = policy.purposes.get(pid)
        topic = purpose.topic(tid) if purpose is not None else None
        return getattr(topic.label, lang) if topic is not None else tid

    out = []
    # on: solid green, off: red with diagonals (charts.STYLES)
    on_off = [
        charts.Series(key, gettext(TOPIC_SERIES[key]), style)
        for key, style in (("on", 0), ("off", 2))
    ]
    topic_head = [gettext("Topic"), *(s.label for s in on_off), gettext("Share on · customers")]
    for pid, topics in prefs.by_topic:
        chart_id = f"prefs-topics-{pid.replace('_', '-')}"
        title = gettext("Topics: %(purpose)s") % {"purpose": title_of(pid)}
        bars = [charts.Bar(topic_of(pid, t), c, _share_on(c, gettext)) for t, c in topics]
        svg = charts.stacked_bars(
            chart_id=chart_id,
            title=title,
            desc=gettext(
                "Customers the purpose may contact now, per topic: keep it on, or switched it off."
            ),
            series=on_off,
            bars=bars,
            empty=gettext("No customer the purpose may contact now."),
        )
        out.append(Chart(chart_id, title, svg, topic_head, charts.table_rows(on_off, bars)))
    # no part is good or bad: blue, light green, orange, grey (no red)
    parts = [
        charts.Series(key, gettext(PART[key]), style)
        for key, style in zip(PART, (5, 1, 3, 4), strict=True)
    ]
    head = [gettext("Group"), *(s.label for s in parts), gettext("Total")]
    empty = gettext("No preference changes in this period.")
    groups = [
        (
            "prefs-channel",
            gettext("Preference changes per touchpoint"),
            gettext(
                "Preference changes per touchpoint (channel), stacked by what changed, %(span)s."
            )
            % {"span": span},
            [charts.Bar(label(CHANNEL, ch), c) for ch, c in prefs.by_channel],
        ),
        (
            "prefs-week",
            gettext("Preference changes per week"),
            gettext("Preference changes per ISO week (UTC), stacked by what changed, %(span)s.")
            % {"span": span},
            [charts.Bar(week_label(w, lang, gettext), c) for w, c in prefs.by_week],
        ),
    ]
    for chart_id, title, desc, bars in groups:
        if prefs.purpose is not None:
            title = f"{title}: {title_of(prefs.purpose)}"
        svg = charts.stacked_bars(
            chart_id=chart_id, title=title, desc=desc, series=parts, bars=bars, empty=empty
        )
        out.append(Chart(chart_id, title, svg, head, charts.table_rows(parts, bars)))
    return out
