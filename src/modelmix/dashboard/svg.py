"""Small server-rendered SVG charts: no JavaScript, no external assets.

Every function returns an ``<svg>`` element as text; all labels are HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["PALETTE", "column_chart", "hbar_chart", "share_bar"]

#: Colour-blind-friendly categorical colours (Okabe-Ito, reordered).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#999999",
)


def _f(x: float) -> str:
    return f"{x:.1f}"


def hbar_chart(
    items: Sequence[tuple[str, float, str]],
    *,
    color: str = PALETTE[0],
    width: int = 520,
    label_width: int = 150,
    row: int = 26,
    title: str = "",
) -> str:
    """Horizontal bars: ``(label, value, value_text)``, longest bar = largest value."""
    if not items:
        return '<p class="empty">no data in this period</p>'
    top = max(v for _, v, _ in items) or 1.0
    text_w = 110
    bar_w = width - label_width - text_w
    height = row * len(items) + 4
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">'
    ]
    for i, (label, value, text) in enumerate(items):
        y = i * row + 2
        w = max(bar_w * (value / top), 1.0 if value > 0 else 0.0)
        short = label if len(label) <= 19 else label[:18] + "…"  # fits label_width at 12 px
        parts.append(
            f'<text x="{label_width - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end" '
            f'class="lbl"><title>{escape(label)}</title>{escape(short)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{_f(w)}" height="{row - 8}" rx="3" '
            f'fill="{color}"><title>{escape(label)}: {escape(text)}</title></rect>'
            f'<text x="{label_width + w + 6:.1f}" y="{y + row / 2 + 4:.1f}" class="val">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    stacked: Sequence[float] | None = None,
    color: str = PALETTE[0],
    stacked_color: str = PALETTE[5],
    width: int = 1300,
    height: int = 200,
    y_format: str = "{:,.0f}",
    title: str = "",
    tips: Sequence[str] | None = None,
) -> str:
    """Vertical columns over time (``labels`` under a few of them). With ``stacked``, that part
    of each column (e.g. the errors among the requests) is drawn in ``stacked_color``."""
    if not values or not any(values):
        return '<p class="empty">no data in this period</p>'
    left, bottom, top_pad = 64, 26, 12
    plot_w = width - left - 8
    plot_h = height - bottom - top_pad
    top = max(values) or 1.0
    n = len(values)
    step = plot_w / n
    gap = min(step * 0.2, 4.0)
    parts = [
        f'<svg class="chart wide" role="img" aria-label="{escape(title)}" width="100%" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{_f(y)}" y2="{_f(y)}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(y_format.format(top * frac))}</text>"
        )
    for i, v in enumerate(values):
        h = plot_h * v / top
        x = left + i * step + gap / 2
        w = max(step - gap, 1.0)
        tip = escape(tips[i]) if tips else escape(f"{labels[i]}: {y_format.format(v)}")
        parts.append(
            f'<rect x="{_f(x)}" y="{_f(top_pad + plot_h - h)}" width="{_f(w)}" '
            f'height="{_f(h)}" fill="{color}"><title>{tip}</title></rect>'
        )
        if stacked is not None and stacked[i]:
            hs = plot_h * stacked[i] / top
            parts.append(
                f'<rect x="{_f(x)}" y="{_f(top_pad + plot_h - hs)}" width="{_f(w)}" '
                f'height="{_f(hs)}" fill="{stacked_color}"><title>{tip}</title></rect>'
            )
    ticks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1}) if n > 4 else range(n)
    for i in ticks:
        x = left + i * step + step / 2
        anchor = "end" if i == n - 1 and n > 1 else ("start" if i == 0 and n > 1 else "middle")
        if anchor == "end":
            x = left + plot_w
        elif anchor == "start":
            x = left
        parts.append(
            f'<text x="{_f(x)}" y="{height - 8}" text-anchor="{anchor}" class="axis">'
            f"{escape(labels[i])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def share_bar(
    parts_in: Sequence[tuple[str, float, str]], *, width: int = 560, height: int = 22
) -> str:
    """One 100% bar split into ``(label, share, colour)`` segments (shares sum to 1)."""
    parts = [
        f'<svg class="chart wide" role="img" width="100%" preserveAspectRatio="none" '
        f'viewBox="0 0 {width} {height}" style="max-height:{height}px">'
    ]
    x = 0.0
    for label, share, color in parts_in:
        w = width * share
        parts.append(
            f'<rect x="{_f(x)}" y="0" width="{_f(w)}" height="{height}" fill="{color}">'
            f"<title>{escape(label)}: {share:.0%}</title></rect>"
        )
        if w > 40:
            parts.append(
                f'<text x="{x + w / 2:.1f}" y="{height / 2 + 4:.1f}" text-anchor="middle" '
                f'class="inbar">{share:.0%}</text>'
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)
