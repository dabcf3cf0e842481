"""Server-rendered SVG charts for the staff console: no script, no external asset, readable
without colour.

One chart kind serves every figure of the privacy office: **stacked horizontal bars**, one bar
per row (a purpose, a touchpoint, a week), one segment per series (granted, refused ...). Each
row's label stands on its own line above its bar, so the chart reads on a 390 px phone as well
as on a desktop (the SVG scales with its ``viewBox``; presentation attributes only, no
``style``, so the console's CSP needs no ``unsafe-inline``).

Accessible by construction:

- ``role="img"`` with ``<title>`` and ``<desc>`` (``aria-labelledby``), and a ``<title>`` on
  every segment ("granted: 12");
- every series has a colour *and* a pattern (solid, diagonal, dots, cross-hatch, lines), shown
  in the legend with its name in text;
- each bar ends in a text label with its numbers (the caller's ``note``, e.g. "80 % · 25");
- the page shows the same numbers in a table beside the chart (:func:`table_rows`).

Segments carry ``data-series`` and ``data-count``, bars ``data-label`` and ``data-total``: the
tests check the drawing against the counted ledger events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

WIDTH = 420
NOTE_WIDTH = 110  # room right of the longest bar for its text label
BAR_AREA = WIDTH - NOTE_WIDTH
LEGEND_ROW = 22
LEGEND_COLUMNS = 2
LABEL_HEIGHT = 17
BAR_HEIGHT = 16
ROW_GAP = 9
FONT = 13

# (fill colour, pattern) per series position: the pattern tells series apart without colour
STYLES: tuple[tuple[str, str], ...] = (
    ("#1b7837", "solid"),
    ("#5aae61", "cross"),
    ("#b2182b", "diagonal"),
    ("#e08214", "dots"),
    ("#6b6b6b", "lines"),
    ("#2166ac", "grid"),
)


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # machine name (data-series), e.g. "granted"
    label: str  # shown in the legend and segment titles, already translated
    style: int | None = None  # index into STYLES; None: the series' position


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # the row's name, already translated
    values: dict[str, int] = field(default_factory=dict)  # series key -> count
    note: str = ""  # the text label after the bar

    @property
    def total(self) -> int:
        return sum(self.values.values())


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _pattern(pid: str, colour: str, kind: str) -> str:
    bg = f'<rect width="8" height="8" fill="{colour}"/>'
    ink = 'stroke="#ffffff" stroke-width="1.6"'
    marks = {
        "solid": "",
        "diagonal": f'<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" {ink}/>',
        "cross": f'<path d="M0,0 l8,8 M8,0 l-8,8" {ink}/>',
        "dots": '<circle cx="4" cy="4" r="1.8" fill="#ffffff"/>',
        "lines": f'<path d="M0,4 h8" {ink}/>',
        "grid": f'<path d="M4,0 v8 M0,4 h8" {ink}/>',
    }[kind]
    return (
        f'<pattern id="{pid}" patternUnits="userSpaceOnUse" width="8" height="8">'
        f"{bg}{marks}</pattern>"
    )


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    desc: str,
    series: Sequence[Series],
    bars: Sequence[Bar],
    empty: str,
) -> Markup:
    """The SVG of one chart (``chart_id``: unique on the page, [a-z0-9-]). A chart without a
    single count says ``empty`` in text instead of drawing zero-length bars."""
    styles = {
        s.key: STYLES[(i if s.style is None else s.style) % len(STYLES)]
        for i, s in enumerate(series)
    }
    pid = {s.key: f"{chart_id}-p{i}" for i, s in enumerate(series)}
    # two legend columns when every name fits half the width (about 0.6 em per letter), else one
    longest = max((len(s.label) for s in series), default=0)
    columns = LEGEND_COLUMNS if 19 + longest * FONT * 0.6 <= WIDTH // LEGEND_COLUMNS else 1
    top = LEGEND_ROW * -(-len(series) // columns) + 6
    row = LABEL_HEIGHT + BAR_HEIGHT + ROW_GAP
    height = top + max(1, len(bars)) * row + 4
    biggest = max((b.total for b in bars), default=0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_attr(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="system-ui, sans-serif" font-size="{FONT}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
        "<defs>",
        *(_pattern(pid[s.key], *styles[s.key]) for s in series),
        "</defs>",
    ]
    # legend: swatch (colour and pattern) and name
    out.append('<g class="legend">')
    for i, s in enumerate(series):
        x = (i % columns) * (WIDTH // columns)
        y = (i // columns) * LEGEND_ROW
        out.append(
            f'<rect x="{x}" y="{y + 3}" width="14" height="14" fill="url(#{pid[s.key]})" '
            f'stroke="#222222" stroke-width="0.6"/>'
            f'<text x="{x + 19}" y="{y + 15}" fill="#1a1a1a">{escape(s.label)}</text>'
        )
    out.append("</g>")
    if biggest == 0:
        out.append(
            f'<text x="0" y="{top + LABEL_HEIGHT}" fill="#1a1a1a" class="empty">'
            f"{escape(empty)}</text></svg>"
        )
        return Markup("".join(out))  # noqa: S704 every text above went through escape()
    for n, bar in enumerate(bars):
        y = top + n * row
        out.append(
            f'<g class="bar" data-label="{_attr(bar.label)}" data-total="{bar.total}">'
            f'<text x="0" y="{y + LABEL_HEIGHT - 4}" fill="#1a1a1a">{escape(bar.label)}</text>'
        )
        x = 0.0
        by = y + LABEL_HEIGHT
        for s in series:
            count = bar.values.get(s.key, 0)
            if count <= 0:
                continue
            w = BAR_AREA * count / biggest
            out.append(
                f'<rect x="{x:.2f}" y="{by}" width="{w:.2f}" height="{BAR_HEIGHT}" '
                f'fill="url(#{pid[s.key]})" stroke="#222222" stroke-width="0.6" '
                f'data-series="{_attr(s.key)}" data-count="{count}">'
                f"<title>{escape(s.label)}: {count}</title></rect>"
            )
            x += w
        out.append(
            f'<text x="{x + 6:.2f}" y="{by + BAR_HEIGHT - 3}" fill="#1a1a1a" class="note">'
            f"{escape(bar.note or str(bar.total))}</text></g>"
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 every text above went through escape()


def table_rows(series: Sequence[Series], bars: Sequence[Bar]) -> list[list[str]]:
    """The chart's numbers as table rows (label, one count per series, note): the text
    equivalent shown beside the chart."""
    return [
        [b.label, *(str(b.values.get(s.key, 0)) for s in series), b.note or str(b.total)]
        for b in bars
    ]
