"""The dashboard's charts, drawn on the server as SVG: no script, nothing fetched, and no
inline style (the console's Content-Security-Policy forbids it; SVG presentation attributes
are not styles).

Each chart is an `<svg role="img">` with a `<title>` and a `<desc>` that say in words what it
shows (screen readers read them; a chart is never the only place a figure is written), a
`viewBox` and no fixed width, so that it shrinks to a phone's width. Texts come in already
translated; every value is escaped here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from itertools import count

from markupsafe import Markup

SPLIT = {"agree": "#2e7d32", "neutral": "#9e9e9e", "disagree": "#c62828"}
SERIES = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#558b2f")
WHISKER = "#111"
_ids = count(1)  # unique ids for aria-labelledby within a page


@dataclass(frozen=True)
class Interval:
    """A rate and its 95% interval, all shares of 1."""

    value: float
    low: float
    high: float


def _clip(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


def _open(title: str, desc: str, width: int, height: int, css: str) -> str:
    n = next(_ids)
    return (
        f'<svg class="chart {css}" role="img" viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMinYMin meet" aria-labelledby="chart{n}t" '
        f'aria-describedby="chart{n}d" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="chart{n}t">{escape(title)}</title>'
        f'<desc id="chart{n}d">{escape(desc)}</desc>'
    )


def split_bar(
    shares: Mapping[str, float], interval: Interval | None, title: str, desc: str
) -> Markup:
    """One proposal's agree / neutral / disagree split as a stacked bar (shares of 1), with the
    interval of the rate that placed it in its list drawn as a whisker over it."""
    width, height, top, bar = 400, 22, 4, 14
    parts = [_open(title, desc, width, height, "split")]
    x = 0.0
    for key in ("agree", "neutral", "disagree"):
        w = _clip(shares.get(key, 0.0)) * width
        if w > 0:
            parts.append(
                f'<rect x="{x:.1f}" y="{top}" width="{w:.1f}" height="{bar}" fill="{SPLIT[key]}"/>'
            )
        x += w
    if interval is not None:
        low, high, mid = (_clip(v) * width for v in (interval.low, interval.high, interval.value))
        y = top + bar / 2
        parts.append(
            f'<g stroke="{WHISKER}" stroke-width="2" fill="#fff">'
            f'<line x1="{low:.1f}" y1="{y}" x2="{high:.1f}" y2="{y}"/>'
            f'<line x1="{low:.1f}" y1="{top - 2}" x2="{low:.1f}" y2="{top + bar + 2}"/>'
            f'<line x1="{high:.1f}" y1="{top - 2}" x2="{high:.1f}" y2="{top + bar + 2}"/>'
            f'<circle cx="{mid:.1f}" cy="{y}" r="3.5"/></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(
    series: Mapping[str, Mapping[str, int]],
    days: Sequence[str],
    title: str,
    desc: str,
    number: Callable[[int], str] = str,
) -> Markup:
    """Counts per day (`days`, ISO dates in order) of each named series, as lines with dots
    (as bars side by side for a single day), the busiest day's count (written by `number`, in
    the reader's language) on the axis and the first and last days under it."""
    width, height, left, bottom, top = 600, 220, 44, 28, 12
    parts = [_open(title, desc, width, height, "timeline")]
    peak = max((n for values in series.values() for n in values.values()), default=0) or 1
    plot_w, plot_h = width - left - 10, height - bottom - top
    parts.append(
        f'<g stroke="#999" stroke-width="1"><line x1="{left}" y1="{top}" x2="{left}" '
        f'y2="{top + plot_h}"/><line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" '
        f'y2="{top + plot_h}"/></g>'
    )
    parts.append(
        f'<g font-size="12" fill="#444"><text x="{left - 6}" y="{top + 10}" '
        f'text-anchor="end">{escape(number(peak))}</text><text x="{left - 6}" y="{top + plot_h}" '
        f'text-anchor="end">0</text>'
    )
    if days:
        parts.append(f'<text x="{left}" y="{height - 8}">{escape(days[0])}</text>')
        if len(days) > 1:
            parts.append(
                f'<text x="{width - 10}" y="{height - 8}" text-anchor="end">'
                f"{escape(days[-1])}</text>"
            )
    parts.append("</g>")
    if len(days) == 1:  # one day: a bar per series, side by side (a line needs two days)
        width_each = plot_w / (2 * len(series) + 1)
        for index, (name, values) in enumerate(series.items()):
            colour = SERIES[index % len(SERIES)]
            h = values.get(days[0], 0) / peak * plot_h
            x = left + width_each * (2 * index + 1)
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{width_each:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(name)}</title></rect>'
            )
        parts.append("</svg>")
        return Markup("".join(parts))
    step = plot_w / (len(days) - 1)
    for index, (name, values) in enumerate(series.items()):
        colour = SERIES[index % len(SERIES)]
        points = [
            (left + i * step, top + plot_h - values.get(day, 0) / peak * plot_h)
            for i, day in enumerate(days)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<g stroke="{colour}" fill="{colour}"><title>{escape(name)}</title>'
            f'<polyline points="{path}" fill="none" stroke-width="2.5"/>'
            + "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in points)
            + "</g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def series_colours(names: Sequence[str]) -> list[tuple[str, str]]:
    """(name, colour) in the order `timeline` draws them, for a legend in the page."""
    return [(name, SERIES[i % len(SERIES)]) for i, name in enumerate(names)]


@dataclass(frozen=True)
class Point:
    """A base cluster of the opinion map: its position, how many people, which group."""

    x: float
    y: float
    size: int
    group: int


def group_map(points: Sequence[Point], names: Sequence[str], title: str, desc: str) -> Markup:
    """The opinion map: each base cluster a disc at its position, its area its number of
    people, its colour its group (each group's name written at its centre)."""
    width = height = 360
    pad = 24
    parts = [_open(title, desc, width, height, "map")]
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa"/>')
    if points:
        xs, ys = [p.x for p in points], [p.y for p in points]
        span = max(max(xs) - min(xs), max(ys) - min(ys)) or 1.0
        biggest = max(p.size for p in points) or 1

        def at(x: float, y: float) -> tuple[float, float]:
            cx = pad + (x - min(xs)) / span * (width - 2 * pad)
            cy = height - pad - (y - min(ys)) / span * (height - 2 * pad)
            return cx, cy

        for p in sorted(points, key=lambda p: -p.size):
            cx, cy = at(p.x, p.y)
            r = 3 + 12 * (p.size / biggest) ** 0.5
            colour = SERIES[p.group % len(SERIES)]
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{colour}" '
                f'fill-opacity="0.6" stroke="{colour}"/>'
            )
        for g, name in enumerate(names):
            mine = [p for p in points if p.group == g]
            total = sum(p.size for p in mine)
            if not total:
                continue
            cx, cy = at(
                sum(p.x * p.size for p in mine) / total, sum(p.y * p.size for p in mine) / total
            )
            parts.append(
                f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="20" font-weight="bold" '
                f'text-anchor="middle" dominant-baseline="middle" fill="#000" stroke="#fff" '
                f'stroke-width="4" paint-order="stroke">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
