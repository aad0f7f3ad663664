"""Charts as SVG images rendered on the server with pygal.

Why server-side SVG: the charts then need no JavaScript at all (the pages carry none, so the
Content-Security-Policy forbids every script), nothing is fetched from a CDN (installs may be
offline), and a chart is an ordinary image that prints, screenshots and caches. pygal is a
maintained, pure-Python SVG charting library; its interactive script is switched off, and a
chart is shown through <img>, where a browser never runs scripts anyway. Each chart's figures
are also a table on the page (and its CSV).
"""

from __future__ import annotations

from collections.abc import Sequence

import pygal
from pygal.style import Style

_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_COLOURS = (
    "#2563eb",
    "#f97316",
    "#16a34a",
    "#dc2626",
    "#9333ea",
    "#0891b2",
    "#ca8a04",
    "#db2777",
    "#4b5563",
    "#65a30d",
    "#7c3aed",
    "#0d9488",
)
STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1f2937",
    foreground_strong="#111827",
    foreground_subtle="#9ca3af",
    font_family=_FONT,
    label_font_family=_FONT,
    major_label_font_family=_FONT,
    value_font_family=_FONT,
    title_font_family=_FONT,
    legend_font_family=_FONT,
    tooltip_font_family=_FONT,
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
    colors=_COLOURS,
)


def _config(title: str, labels: Sequence[str], height: int) -> dict[str, object]:
    return {
        "title": title,
        "style": STYLE,
        "width": 960,
        "height": height,
        "js": [],  # no script reference: nothing leaves the page for a CDN
        "x_labels": list(labels),
        "x_labels_major_every": max(1, len(labels) // 13),
        "show_minor_x_labels": len(labels) <= 13,
        "x_label_rotation": 0,
        "truncate_legend": 24,
        "truncate_label": -1,
        "print_values": False,
        "margin": 12,
        "show_y_guides": True,
        "min_scale": 3,
        "max_scale": 6,
    }


def bar_chart(title: str, labels: Sequence[str], values: Sequence[int], series: str) -> bytes:
    chart = pygal.Bar(**_config(title, labels, 300), show_legend=False)
    chart.add(series, list(values))
    return _render(chart)


def stacked_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]
) -> bytes:
    chart = pygal.StackedBar(**_config(title, labels, 380), legend_box_size=10)
    for name, values in series:
        chart.add(name, list(values))
    if not series:
        chart.add("no requests", [0] * len(labels))
    return _render(chart)


def line_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> bytes:
    chart = pygal.Line(**_config(title, labels, 300), show_dots=len(labels) <= 40, fill=False)
    for name, values in series:
        chart.add(name, list(values))
    return _render(chart)


def _render(chart: pygal.graph.graph.Graph) -> bytes:
    svg = chart.render()
    return svg if isinstance(svg, bytes) else str(svg).encode()
