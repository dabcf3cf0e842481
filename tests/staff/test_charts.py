"""The privacy office's SVG charts: accessible, self-contained, and drawn from the ledger."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from sqlalchemy import select

from vault import demo
from vault.consent.models import ConsentEvent
from vault.db import utcnow
from vault.staff import charts, office

SVG = "{http://www.w3.org/2000/svg}"
SERIES = [charts.Series("granted", "granted"), charts.Series("refused", "refused")]


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(str(svg))


def _bars(root: ElementTree.Element) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "bar":
            continue
        out[g.get("data-label")] = {
            r.get("data-series"): int(r.get("data-count")) for r in g.iter(f"{SVG}rect")
        }
    return out


def test_a_chart_is_accessible_and_self_contained():
    svg = charts.stacked_bars(
        chart_id="c1",
        title="Consent by purpose",
        desc="Statements per purpose",
        series=SERIES,
        bars=[charts.Bar("newsletter", {"granted": 3, "refused": 1}, "75 %")],
        empty="none",
    )
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "Consent by purpose"
    assert root.find(f"{SVG}desc").text == "Statements per purpose"
    # no script, no link to anything outside the document, no style attribute (CSP)
    text = str(svg)
    assert "<script" not in text and "href" not in text and "style=" not in text
    assert re.findall(r"url\(#([^)]+)\)", text) and all(
        ref.startswith("c1-") for ref in re.findall(r"url\(#([^)]+)\)", text)
    )
    # every series has its own pattern (not colour alone) and its name in the legend
    patterns = root.findall(f"{SVG}defs/{SVG}pattern")
    assert len(patterns) == 2
    assert len({ElementTree.tostring(p).replace(p.get("id").encode(), b"") for p in patterns}) == 2
    legend = [t.text for t in root.find(f"{SVG}g[@class='legend']").iter(f"{SVG}text")]
    assert legend == ["granted", "refused"]
    # the bar's segments are titled and the bar ends in its text label
    bar = root.find(f"{SVG}g[@class='bar']")
    assert [t.text for t in bar.iter(f"{SVG}title")] == ["granted: 3", "refused: 1"]
    assert bar.find(f"{SVG}text[@class='note']").text == "75 %"


def test_segment_widths_are_proportional_to_the_counts():
    svg = charts.stacked_bars(
        chart_id="c2",
        title="t",
        desc="d",
        series=SERIES,
        bars=[
            charts.Bar("a", {"granted": 10, "refused": 10}),
            charts.Bar("b", {"granted": 5}),
        ],
        empty="none",
    )
    rects = [r for r in _parse(svg).iter(f"{SVG}rect") if r.get("data-series")]
    widths = [
        (r.get("data-series"), int(r.get("data-count")), float(r.get("width"))) for r in rects
    ]
    assert widths[0][2] == widths[1][2] == charts.BAR_AREA / 2  # the longest bar fills the area
    assert widths[2] == ("granted", 5, charts.BAR_AREA / 4)


def test_an_empty_chart_says_so_in_text_and_escapes_labels():
    svg = charts.stacked_bars(
        chart_id="c3", title="<b>t</b>", desc="d & e", series=SERIES, bars=[], empty="No data"
    )
    root = _parse(svg)
    assert root.find(f"{SVG}title").text == "<b>t</b>"  # escaped in the markup, text again
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "empty"] == ["No data"]
    assert not _bars(root)


def test_charts_of_the_demo_ledger_match_the_counted_events(runtime, session):
    demo.run(runtime, customers=60, seed=3)
    now = utcnow()
    rates = office.consent_rates(session=session, policy=runtime.policy, now=now, weeks=52)
    since = datetime.combine(rates.since, datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(rates.until, datetime.min.time(), tzinfo=UTC)
    events = session.execute(
        select(
            ConsentEvent.purpose,
            ConsentEvent.channel,
            ConsentEvent.status,
            ConsentEvent.occurred_at,
        ).where(ConsentEvent.occurred_at >= since, ConsentEvent.occurred_at < until)
    ).all()
    assert len(events) > 50  # the demo wrote a real ledger into the window
    series = [charts.Series(s, s) for s in office.SERIES]

    def drawn(chart_id, rows, label=str):
        svg = charts.stacked_bars(
            chart_id=chart_id,
            title="t",
            desc="d",
            series=series,
            bars=[charts.Bar(label(k), v) for k, v in rows],
            empty="none",
        )
        return _bars(_parse(svg))

    by_purpose = Counter((e.purpose, e.status) for e in events)
    bars = drawn("p", rates.by_purpose)
    assert {(p, s): n for p, segs in bars.items() for s, n in segs.items()} == dict(by_purpose)
    by_channel = Counter((e.channel, e.status) for e in events)
    bars = drawn("c", rates.by_channel)
    assert {(c, s): n for c, segs in bars.items() for s, n in segs.items()} == dict(by_channel)
    by_week = Counter(
        ((e.occurred_at.date() - timedelta(days=e.occurred_at.weekday())).isoformat(), e.status)
        for e in events
    )
    bars = drawn("w", rates.by_week, label=lambda d: d.isoformat())
    assert {(w, s): n for w, segs in bars.items() for s, n in segs.items()} == dict(by_week)
    assert len(rates.by_week) == 52 and rates.by_week[-1][0] == office.consent_stats.week_start(now)


def test_the_rate_is_yes_over_yes_and_no():
    assert (
        office.rate({"granted": 3, "pending_confirmation": 1, "refused": 4, "withdrawn": 9}) == 0.5
    )
    assert office.rate({"withdrawn": 2}) is None


def test_long_legend_names_take_a_column_of_their_own():
    """A German name such as "erteilt, Bestätigung ausstehend" does not fit half the chart: the
    legend then stacks, so no name runs into its neighbour or off the edge (seen in Chromium)."""

    def legend_xs(series):
        svg = charts.stacked_bars(
            chart_id="c", title="t", desc="d", series=series, bars=[], empty="nothing"
        )
        legend = re.search(r'<g class="legend">(.*?)</g>', str(svg)).group(1)
        return {float(x) for x in re.findall(r'<text x="([\d.]+)"', legend)}

    assert len(legend_xs(SERIES)) == 2
    long = [*SERIES, charts.Series("pending", "erteilt, Bestätigung ausstehend")]
    assert legend_xs(long) == {19.0}
