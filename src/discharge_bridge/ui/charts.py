"""Small server-rendered SVG charts: stacked bars on the left axis, lines on the right one.

No JavaScript. Each chart is an ``<svg role="img">`` with a ``<title>`` and ``aria-label``; the
page puts the same numbers in a table beside it, for screen readers and for anyone who wants them.
Colours come from classes (``s0`` ... ``s5``, ``l0`` ... ``l2``) styled in style.css.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import count

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 40, 40, 26, 30
_ids = count(1)


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float | None]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (an axis that ends on a round number)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def chart(
    *,
    title: str,
    summary: str,
    labels: list[str],
    bars: list[Series],
    lines: list[Series] | None = None,
    bar_unit: str = "",
    line_unit: str = "",
) -> Markup:
    """One SVG: ``bars`` stacked per label against the left axis, ``lines`` against the right one.

    With no bars, lines use the left axis. ``summary`` becomes the ``<desc>``; all text is escaped.
    """
    lines = lines or []
    n = max(len(labels), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    stacks = [sum(s.values[i] or 0 for s in bars) for i in range(len(labels))]
    bar_max = nice_ceiling(max(stacks, default=0))
    line_values = [v for s in lines for v in s.values if v is not None]
    line_max = nice_ceiling(max(line_values, default=0))

    def y(value: float, top: float) -> float:
        return TOP + plot_h - (value / top) * plot_h

    uid = next(_ids)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'aria-describedby="chart-desc-{uid}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
        f'<desc id="chart-desc-{uid}">{escape(summary)}</desc>',
    ]
    # (top of scale, tick x, tick anchor, unit, unit x, unit anchor): units sit above the axes, inside the box.
    left_axis = (LEFT - 6, "end", 0, "start")
    axes = [(bar_max, *left_axis[:2], bar_unit, *left_axis[2:])] if bars else []
    if lines:
        right_axis = (WIDTH - RIGHT + 6, "start", WIDTH, "end")
        place = right_axis if bars else left_axis
        axes.append((line_max, *place[:2], line_unit, *place[2:]))
    for index, (top, axis_x, anchor, unit, unit_x, unit_anchor) in enumerate(axes):
        for fraction in (0, 0.5, 1):
            value = top * fraction
            if fraction == 0.5 and index == 0 and bars and value != int(value):
                continue  # bars count people or handoffs: no half ticks
            ty = y(value, top)
            if index == 0:
                parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
            parts.append(
                f'<text class="tick" x="{axis_x}" y="{ty + 4:.1f}" text-anchor="{anchor}">{_number(value)}</text>'
            )
        if unit:
            parts.append(
                f'<text class="unit" x="{unit_x}" y="{TOP - 12}" text-anchor="{unit_anchor}">{escape(unit)}</text>'
            )
    bar_w = slot * 0.6
    for i in range(len(labels)):
        base = 0.0
        x = LEFT + i * slot + (slot - bar_w) / 2
        for k, s in enumerate(bars):
            value = s.values[i] or 0
            if value <= 0:
                continue
            top_y, bottom_y = y(base + value, bar_max), y(base, bar_max)
            parts.append(
                f'<rect class="s{k % 6}" x="{x:.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" '
                f'height="{bottom_y - top_y:.1f}"><title>{escape(labels[i])}: {escape(s.label)} '
                f"{_number(value)}</title></rect>"
            )
            base += value
    line_top = line_max
    for k, s in enumerate(lines):
        points = [(LEFT + i * slot + slot / 2, y(v, line_top)) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline class="l{k % 3}" points="{path}"/>')
        for (px, py), v in zip(points, [v for v in s.values if v is not None], strict=True):
            parts.append(
                f'<circle class="l{k % 3}" cx="{px:.1f}" cy="{py:.1f}" r="3.5"><title>{escape(s.label)} '
                f"{_number(v)}</title></circle>"
            )
    step = max(1, math.ceil(len(labels) / 6))  # at most six date labels fit under the axis
    for i, label in enumerate(labels):
        if i % step == 0:
            cx = LEFT + i * slot + slot / 2
            parts.append(
                f'<text class="tick" x="{cx:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every interpolated text above is escaped)
