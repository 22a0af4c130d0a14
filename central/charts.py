"""A chart the city needs and a commune does not: one horizontal bar of shares per unit.

:mod:`edge.charts` draws months along the x axis; a province has a hundred units, whose names
only fit written along the y axis, one row each. Each row is a bar split into the shares of a
whole (on time, overdue, the rest), so units of very different sizes compare at a glance.

Same rules as :mod:`edge.charts`: pure and deterministic, plain SVG 1.1, presentation attributes
only (the page's CSP forbids inline styles), every text escaped, a ``<title>`` on each bar with
its numbers, and the figures repeated in a table on the page for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import escape

WIDTH = 720
LABEL_W = 210
"""Room for the unit names on the left (longer names are cut with an ellipsis)."""
ROW_H = 16
TOP, BOTTOM = 52, 24
FONT = "system-ui, Segoe UI, Arial, sans-serif"
INK, MUTED, GRID = "#1b1f23", "#5b6470", "#d0d5db"
NAME_CHARS = 30


@dataclass(frozen=True)
class Part:
    label: str
    colour: str


@dataclass(frozen=True)
class Row:
    label: str
    values: Sequence[int]
    """One count per part; the bar shows each as a share of their sum."""


def _t(text: str) -> str:
    return str(escape(text))


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def share_bars(
    ident: str,
    title: str,
    parts: Sequence[Part],
    rows: Sequence[Row],
    *,
    description: str,
    empty: str = "No data",
) -> str:
    """One 100 % bar per row, split into ``parts`` in order; rows whose sum is zero get their
    label and no bar. The SVG grows with the rows (``ROW_H`` each)."""
    plot_w = WIDTH - LABEL_W - 16
    height = TOP + ROW_H * max(1, len(rows)) + BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{_t(ident)}-title {_t(ident)}-desc" '
        f'font-family="{FONT}" font-size="11" fill="{INK}">',
        f'<title id="{_t(ident)}-title">{_t(title)}</title>',
        f'<desc id="{_t(ident)}-desc">{_t(description)}</desc>',
        f'<text x="8" y="18" font-size="14" font-weight="bold">{_t(title)}</text>',
    ]
    x = LABEL_W
    for part in parts:
        out.append(f'<rect x="{x}" y="28" width="11" height="11" fill="{part.colour}"/>')
        out.append(f'<text x="{x + 15}" y="38">{_t(part.label)}</text>')
        x += 15 + 7 * len(part.label) + 16
    bottom = TOP + ROW_H * len(rows)
    for tick in (0, 25, 50, 75, 100):
        gx = LABEL_W + plot_w * tick / 100
        out.append(f'<line x1="{_n(gx)}" y1="{TOP - 4}" x2="{_n(gx)}" y2="{bottom}" stroke="{GRID}"/>')
        out.append(f'<text x="{_n(gx)}" y="{bottom + 14}" text-anchor="middle" fill="{MUTED}">{tick}%</text>')
    for i, row in enumerate(rows):
        y = TOP + ROW_H * i
        out.append(f'<text x="{LABEL_W - 6}" y="{y + 11}" text-anchor="end">{_t(_short(row.label))}</text>')
        whole = sum(max(0, v) for v in row.values)
        if whole <= 0:
            continue
        shares = ", ".join(
            f"{part.label}: {value} ({100 * max(0, value) / whole:.0f}%)"
            for part, value in zip(parts, row.values, strict=False)
        )
        out.append(f"<g><title>{_t(f'{row.label}: {shares}')}</title>")
        left = 0.0
        for part, value in zip(parts, row.values, strict=False):
            if value <= 0:
                continue
            right = left + value / whole
            x0, x1 = round(LABEL_W + plot_w * left, 1), round(LABEL_W + plot_w * right, 1)
            out.append(
                f'<rect x="{_n(x0)}" y="{y + 2}" width="{_n(x1 - x0)}" height="{ROW_H - 4}" '
                f'fill="{part.colour}"/>'
            )
            left = right
        out.append("</g>")
    if not rows:
        out.append(
            f'<text x="{WIDTH // 2}" y="{TOP + 12}" text-anchor="middle" fill="{MUTED}">{_t(empty)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
