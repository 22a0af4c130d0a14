"""Charts drawn on the server as SVG strings: stacked bars and lines over a few categories.

No plotting library on purpose: the box is an old PC that installs offline from a USB stick, and
a few dozen lines of SVG beat a 30 MB dependency (matplotlib and numpy) that would also need a
font cache and a headless backend. The output is plain SVG 1.1 that any browser of the last
decade draws and prints, with no script and no ``style`` attribute (the page's CSP forbids
inline styles; presentation attributes such as ``fill`` are allowed).

Every function is pure and deterministic: the same data gives byte-for-byte the same SVG (numbers
are rounded to one decimal), so tests compare output and pages cache well. Every piece of text
is escaped. Callers pass translated labels; this module knows no language.

Accessibility: the ``<svg>`` is an image (``role="img"``) named by its ``<title>`` and
described by its ``<desc>`` (``aria-labelledby``); each bar and point carries a ``<title>`` with
its numbers. Pages put the same figures in a table next to the chart, which is what a screen
reader should read; the description says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import escape

from edge.i18n import format_number

WIDTH, HEIGHT = 720, 300
# Plot area inside the canvas: room on the left for the y ticks and label, below for the
# category labels and the x label, above for the title and the legend.
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 58, 48
FONT = "system-ui, Segoe UI, Arial, sans-serif"
INK, MUTED, GRID = "#1b1f23", "#5b6470", "#d0d5db"


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]
    """One value per category; None means "nothing to show" (a gap in a line, no bar part)."""
    colour: str
    """A fill or stroke colour, e.g. ``#1f7a33``: a presentation attribute, never CSS."""


def _n(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing ``.0``: stable, short output."""
    text = f"{value:.1f}"
    text = text[:-2] if text.endswith(".0") else text
    return "0" if text == "-0" else text


def _t(text: str) -> str:
    return str(escape(text))


def nice_scale(highest: float, ticks: int = 4, whole: bool = False) -> tuple[float, float]:
    """(top, step) of an axis from 0 showing ``highest``: the step is 1, 2, 2.5 or 5 × 10^k (at
    least 1 for ``whole`` numbers such as counts), the top a multiple of it, at most ``ticks``
    steps. Nothing to show gives a scale of one step."""
    if highest <= 0:
        return 1.0, 1.0 / ticks if not whole else 1.0
    raw = highest / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    steps = [m * power for m in (1, 2, 2.5, 5, 10)]
    if whole:  # counts step by whole numbers: 1, 2, 5, 10, 20, 25, 50 …
        steps = [max(1.0, s) for s in steps if max(1.0, s).is_integer()]
    step = next(s for s in steps if raw <= s * (1 + 1e-9))
    return step * math.ceil(highest / step - 1e-9), float(step)


def _ticks(top: float, step: float) -> list[float]:
    return [step * i for i in range(round(top / step) + 1)]


def _label(value: float, suffix: str) -> str:
    # The page's language decides the decimal mark: Vietnamese writes 2,5 (a point there is a
    # thousands separator, so "2.5" would read as twenty-five).
    return f"{format_number(value, 2 if 0 < abs(value) < 1 else 1)}{suffix}"


def _open(ident: str, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{_t(ident)}-title {_t(ident)}-desc" '
        f'font-family="{FONT}" font-size="12" fill="{INK}">',
        f'<title id="{_t(ident)}-title">{_t(title)}</title>',
        f'<desc id="{_t(ident)}-desc">{_t(description)}</desc>',
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{_t(title)}</text>',
    ]


def _legend(items: Sequence[tuple[str, str, str]]) -> list[str]:
    """Legend entries (label, colour, shape) in one row under the title; shape: box or line."""
    out = ['<g class="legend">']
    x = LEFT
    for label, colour, shape in items:
        if shape == "line":
            out.append(f'<line x1="{x}" y1="36" x2="{x + 14}" y2="36" stroke="{colour}" stroke-width="3"/>')
        else:
            out.append(f'<rect x="{x}" y="30" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 18}" y="40">{_t(label)}</text>')
        # Rough text width: old browsers cannot measure for us, and ~7 px a glyph at 12 px fits.
        x += 18 + 7 * len(label) + 18
    out.append("</g>")
    return out


def _axes(
    categories: Sequence[str], scale: tuple[float, float], suffix: str, x_label: str, y_label: str
) -> tuple[list[str], float]:
    """Grid, y ticks, category labels and axis titles; returns them and the slot width."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(categories))
    top, step = scale
    out = ['<g class="axes" font-size="11" fill="' + MUTED + '">']
    for tick in _ticks(top, step):
        y = TOP + plot_h - plot_h * tick / top
        out.append(f'<line x1="{LEFT}" y1="{_n(y)}" x2="{WIDTH - RIGHT}" y2="{_n(y)}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end">{_t(_label(tick, suffix))}</text>'
        )
    for i, name in enumerate(categories):
        x = LEFT + slot * i + slot / 2
        out.append(f'<text x="{_n(x)}" y="{TOP + plot_h + 16}" text-anchor="middle">{_t(name)}</text>')
    out.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">{_t(x_label)}</text>'
    )
    middle = TOP + plot_h / 2
    out.append(
        f'<text x="14" y="{_n(middle)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_n(middle)})">{_t(y_label)}</text>'
    )
    out.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="{MUTED}"/>'
    )
    out.append("</g>")
    return out, slot


def _empty(message: str) -> str:
    return (
        f'<text class="empty" x="{WIDTH / 2:.0f}" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2:.0f}" '
        f'text-anchor="middle" fill="{MUTED}">{_t(message)}</text>'
    )


def _value_at(series: Series, index: int) -> float:
    value = series.values[index] if index < len(series.values) else None
    return 0.0 if value is None else max(0.0, float(value))


def stacked_bars(
    ident: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    description: str,
    empty: str = "No data",
) -> str:
    """One stacked bar per category with data (the sum of the series there), bottom-up in the
    order of ``series``. Categories whose total is zero get a label and no bar. ``ident`` makes
    the element ids unique on a page. Negative values count as zero."""
    totals = [sum(_value_at(s, i) for s in series) for i in range(len(categories))]
    scale = nice_scale(max(totals, default=0.0), whole=True)
    top = scale[0]
    out = _open(ident, title, description)
    out += _legend([(s.label, s.colour, "box") for s in series])
    axes, slot = _axes(categories, scale, "", x_label, y_label)
    out += axes
    plot_h = HEIGHT - TOP - BOTTOM
    base_y = TOP + plot_h
    bar_w = min(36.0, slot * 0.6)
    for i, name in enumerate(categories):
        if totals[i] <= 0:
            continue
        x = LEFT + slot * i + (slot - bar_w) / 2
        parts = ", ".join(f"{s.label}: {_label(_value_at(s, i), '')}" for s in series)
        out.append(f'<g class="bar"><title>{_t(f"{name}: {parts}")}</title>')
        bottom, stacked = float(base_y), 0.0
        for s in series:
            value = _value_at(s, i)
            if value <= 0:
                continue
            stacked += value
            # Rounded edges first, then the height between them: the parts touch exactly.
            y = round(base_y - plot_h * stacked / top, 1)
            out.append(
                f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(bar_w)}" height="{_n(bottom - y)}" '
                f'fill="{s.colour}"/>'
            )
            bottom = y
        out.append("</g>")
    if not any(totals):
        out.append(_empty(empty))
    out.append("</svg>")
    return "\n".join(out)


def lines(
    ident: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    description: str,
    maximum: float | None = None,
    suffix: str = "",
    empty: str = "No data",
) -> str:
    """One polyline per series over the categories; ``None`` values are gaps (a month with no
    dossiers has no share, which is not a share of zero). Points carry their value in a
    ``<title>``. ``maximum`` fixes the y scale (100 for percentages)."""
    present = [float(v) for s in series for v in s.values if v is not None]
    scale = (maximum, maximum / 4) if maximum else nice_scale(max(present, default=0.0))
    top = scale[0]
    out = _open(ident, title, description)
    out += _legend([(s.label, s.colour, "line") for s in series])
    axes, slot = _axes(categories, scale, suffix, x_label, y_label)
    out += axes
    plot_h = HEIGHT - TOP - BOTTOM
    for number, s in enumerate(series):
        points: list[tuple[float, float, str, float]] = []
        for i, name in enumerate(categories):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            clamped = min(max(float(value), 0.0), top)
            x = LEFT + slot * i + slot / 2
            y = TOP + plot_h - plot_h * clamped / top
            points.append((x, y, name, float(value)))
        if not points:
            continue
        out.append(f'<g class="series" stroke="{s.colour}" fill="{s.colour}">')
        if len(points) > 1:
            coords = " ".join(f"{_n(x)},{_n(y)}" for x, y, _, _ in points)
            out.append(f'<polyline points="{coords}" fill="none" stroke-width="2"/>')
        for x, y, name, value in points:
            label = _t(f"{s.label}, {name}: {_label(value, suffix)}")
            # Squares for the second series: the lines stay apart without colour vision.
            if number % 2:
                out.append(
                    f'<rect x="{_n(x - 4)}" y="{_n(y - 4)}" width="8" height="8">'
                    f"<title>{label}</title></rect>"
                )
            else:
                out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4"><title>{label}</title></circle>')
        out.append("</g>")
    if not present:
        out.append(_empty(empty))
    out.append("</svg>")
    return "\n".join(out)
