"""Chart primitives as inline SVG strings: horizontal bars, columns, a line chart.

Every function returns a complete ``<svg>`` element meant to be placed inside an
HTML page (no XML namespace is needed there, so the page refers to no URL).
All text that reaches the markup goes through :func:`esc`; numbers are written
with few digits to keep the page small. Charts use a ``viewBox`` so they scale
with the width of their container.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["column_chart", "esc", "fmt_num", "hbar_chart", "line_chart", "nice_ticks", "shorten"]

BAR_COLOR = "#4c78a8"
COHERENCE_COLOR = "#54a24b"
AXIS_COLOR = "#888"
FONT = "font-family=\"system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif\""


def esc(value: object) -> str:
    """``value`` as text safe inside HTML or SVG content and quoted attributes."""
    return html.escape(str(value), quote=True)


def fmt_num(x: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, without exponent for common magnitudes."""
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    if 1e-4 <= abs(x) < 1e15:
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
        text = f"{x:,.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{x:.{digits - 1}e}"


def _c(x: float) -> str:
    """A coordinate with at most one decimal (keeps the SVG compact)."""
    text = f"{x:.1f}"
    return text.removesuffix(".0")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "\u2026"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]`` (steps of 1, 2 or 5 × 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def _open(width: float, height: float, label: str) -> str:
    return (f'<svg viewBox="0 0 {_c(width)} {_c(height)}" width="100%" role="img" aria-label="{esc(label)}" '
            f'{FONT} font-size="12" preserveAspectRatio="xMinYMin meet">')


def hbar_chart(labels: Sequence[str], values: Sequence[float], *, width: float = 320, bar_height: float = 16,
               label_width: float = 110, label_chars: int = 18, value_digits: int = 2,
               aria_label: str = "bar chart") -> str:
    """Horizontal bars, one per label, scaled to the largest value; the value is written after each bar.

    Parameters
    ----------
    labels : sequence of str
        One label per bar (escaped here; long labels are shortened, the full text is in a tooltip).
    values : sequence of float
        Non-negative bar lengths.
    width, bar_height, label_width : float
        Geometry in SVG units.
    label_chars : int
        Labels longer than this are shortened.
    value_digits : int
        Significant digits of the written values.
    aria_label : str
        Accessible name of the chart.

    Returns
    -------
    str
        An ``<svg>`` element, one bar per label, each with a tooltip of its full label and value.
    """
    vals = np.asarray(values, dtype=np.float64)
    top = float(vals.max()) if vals.size and np.isfinite(vals).all() and vals.max() > 0 else 1.0
    value_width = 44.0
    span = max(width - label_width - value_width - 8, 10.0)
    height = bar_height * len(labels) + 4
    parts = [_open(width, height, aria_label)]
    for i, (label, v) in enumerate(zip(labels, vals, strict=True)):
        y = 2 + i * bar_height
        length = max(0.0, float(v)) / top * span if math.isfinite(v) else 0.0
        mid = y + bar_height / 2
        parts.append(
            f'<g><title>{esc(label)}: {esc(fmt_num(v, 4))}</title>'
            f'<text x="{_c(label_width - 6)}" y="{_c(mid)}" text-anchor="end" dominant-baseline="central">'
            f'{esc(shorten(label, label_chars))}</text>'
            f'<rect x="{_c(label_width)}" y="{_c(y + 2)}" width="{_c(max(length, 0.5))}" '
            f'height="{_c(bar_height - 4)}" fill="{BAR_COLOR}"/>'
            f'<text x="{_c(label_width + length + 4)}" y="{_c(mid)}" dominant-baseline="central" fill="#555" '
            f'font-size="10">{esc(fmt_num(v, value_digits))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(labels: Sequence[str], values: Sequence[float], *, titles: Sequence[str] | None = None,
                 hrefs: Sequence[str] | None = None, width: float = 900, height: float = 260,
                 y_label: str = "", percent: bool = False, color: str = BAR_COLOR,
                 aria_label: str = "column chart") -> str:
    """Vertical bars from a zero line (downwards for negative values), with a y axis.

    Parameters
    ----------
    labels : sequence of str
        Short label under each bar (thinned out automatically when bars are narrow).
    values : sequence of float
        Bar heights; non-finite values get no bar.
    titles : sequence of str, optional
        Tooltip of each bar.
    hrefs : sequence of str, optional
        Link of each bar (for example ``#topic-3``).
    width, height : float
        Size in SVG units.
    y_label : str
        Caption of the y axis.
    percent : bool
        Write tick values as percentages of 1.
    color : str
        Fill of the bars (a CSS colour).
    aria_label : str
        Accessible name of the chart.

    Returns
    -------
    str
        An ``<svg>`` element: the bars, the zero line and the y axis with its grid.
    """
    vals = np.asarray(values, dtype=np.float64)
    finite = vals[np.isfinite(vals)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 1.0
    ticks = nice_ticks(lo, hi, 5)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    left, right, top, bottom = 56.0, 8.0, 10.0, 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(vals), 1)
    slot = plot_w / n

    def y_of(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h if hi > lo else top + plot_h

    parts = [_open(width, height, aria_label)]
    parts.append(_y_axis(ticks, y_of, left, plot_w, percent))
    zero = y_of(0.0)
    every = max(1, math.ceil(22.0 / slot))
    for i, v in enumerate(vals):
        x = left + i * slot
        tip = titles[i] if titles is not None else f"{labels[i]}: {fmt_num(v, 4)}"
        bar = ""
        if math.isfinite(v):
            y0, y1 = sorted((zero, y_of(float(v))))
            bar = (f'<rect x="{_c(x + slot * 0.1)}" y="{_c(y0)}" width="{_c(max(slot * 0.8, 0.6))}" '
                   f'height="{_c(max(y1 - y0, 0.5))}" fill="{esc(color)}"/>')
        # an invisible full-height rect makes thin bars easy to hover and click
        hit = f'<rect x="{_c(x)}" y="{_c(top)}" width="{_c(slot)}" height="{_c(plot_h)}" fill="transparent"/>'
        cell = f"<g><title>{esc(tip)}</title>{hit}{bar}</g>"
        if hrefs is not None:
            cell = f'<a href="{esc(hrefs[i])}">{cell}</a>'
        parts.append(cell)
        if i % every == 0:
            parts.append(f'<text x="{_c(x + slot / 2)}" y="{_c(top + plot_h + 14)}" text-anchor="middle" '
                         f'font-size="10" fill="#555">{esc(labels[i])}</text>')
    parts.append(f'<line x1="{_c(left)}" x2="{_c(left + plot_w)}" y1="{_c(zero)}" y2="{_c(zero)}" '
                 f'stroke="{AXIS_COLOR}"/>')
    return _close(parts, y_label, top + plot_h / 2)


def line_chart(xs: Sequence[float], ys: Sequence[float], *, width: float = 900, height: float = 280,
               x_label: str = "", y_label: str = "", aria_label: str = "line chart") -> str:
    """A line with a marker at each point, and both axes with round ticks.

    Parameters
    ----------
    xs, ys : sequence of float
        Points, in the order they are joined (non-finite points are skipped).
    width, height : float
        Size in SVG units.
    x_label, y_label : str
        Axis captions.
    aria_label : str
        Accessible name of the chart.

    Returns
    -------
    str
        An ``<svg>`` element (saying "no data" when no point is finite).
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    left, right, top, bottom = 64.0, 16.0, 12.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [_open(width, height, aria_label)]
    if x.size == 0:
        parts.append(f'<text x="{_c(width / 2)}" y="{_c(height / 2)}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    xt = nice_ticks(float(x.min()), float(x.max()), 6)
    yt = nice_ticks(float(y.min()), float(y.max()), 5)
    x_lo, x_hi, y_lo, y_hi = xt[0], xt[-1], yt[0], yt[-1]

    def px(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * plot_w if x_hi > x_lo else left + plot_w / 2

    def py(v: float) -> float:
        return top + (y_hi - v) / (y_hi - y_lo) * plot_h if y_hi > y_lo else top + plot_h / 2

    parts.append(_y_axis(yt, py, left, plot_w, False))
    base = top + plot_h
    parts.append(f'<line x1="{_c(left)}" x2="{_c(left + plot_w)}" y1="{_c(base)}" y2="{_c(base)}" '
                 f'stroke="{AXIS_COLOR}"/>')
    for t in xt:
        parts.append(f'<line x1="{_c(px(t))}" x2="{_c(px(t))}" y1="{_c(base)}" y2="{_c(base + 4)}" '
                     f'stroke="{AXIS_COLOR}"/><text x="{_c(px(t))}" y="{_c(base + 16)}" text-anchor="middle" '
                     f'font-size="10" fill="#555">{esc(fmt_num(t))}</text>')
    points = " ".join(f"{_c(px(a))},{_c(py(b))}" for a, b in zip(x, y, strict=True))
    parts.append(f'<polyline points="{points}" fill="none" stroke="{BAR_COLOR}" stroke-width="2"/>')
    for a, b in zip(x, y, strict=True):
        parts.append(f'<circle cx="{_c(px(a))}" cy="{_c(py(b))}" r="3.5" fill="{BAR_COLOR}">'
                     f'<title>{esc(fmt_num(a))}: {esc(fmt_num(b, 5))}</title></circle>')
    if x_label:
        parts.append(f'<text x="{_c(left + plot_w / 2)}" y="{_c(height - 4)}" text-anchor="middle" '
                     f'fill="#333">{esc(x_label)}</text>')
    return _close(parts, y_label, top + plot_h / 2)


def _y_axis(ticks: Sequence[float], y_of: Callable[[float], float], left: float, plot_w: float,
            percent: bool) -> str:
    """Horizontal grid lines with tick labels left of the plot."""
    out = []
    for t in ticks:
        y = y_of(t)
        text = f"{fmt_num(t * 100)}%" if percent else fmt_num(t)
        out.append(f'<line x1="{_c(left)}" x2="{_c(left + plot_w)}" y1="{_c(y)}" y2="{_c(y)}" stroke="#eee"/>'
                   f'<text x="{_c(left - 6)}" y="{_c(y)}" text-anchor="end" dominant-baseline="central" '
                   f'font-size="10" fill="#555">{esc(text)}</text>')
    return "".join(out)


def _close(parts: list[str], y_label: str, middle: float) -> str:
    """The chart's markup: ``parts``, then the y axis caption centred at height ``middle`` (if any), then ``</svg>``."""
    if y_label:
        parts.append(f'<text transform="translate(12 {_c(middle)}) rotate(-90)" text-anchor="middle" fill="#333">'
                     f"{esc(y_label)}</text>")
    parts.append("</svg>")
    return "".join(parts)
