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

from distlda.report.axes import fit_text, nice_ticks, text_width, tick_labels

__all__ = ["column_chart", "esc", "fmt_num", "hbar_chart", "line_chart", "nice_ticks", "shorten"]

TICK_FONT = 10.0
CAPTION_FONT = 12.0

BAR_COLOR = "#4c78a8"
COHERENCE_COLOR = "#54a24b"
HIGHLIGHT_COLOR = "#e45f1a"
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


def _open(width: float, height: float, label: str) -> str:
    return (f'<svg viewBox="0 0 {_c(width)} {_c(height)}" width="100%" role="img" aria-label="{esc(label)}" '
            f'{FONT} font-size="12" preserveAspectRatio="xMinYMin meet">')


def hbar_chart(labels: Sequence[str], values: Sequence[float], *, width: float = 320, bar_height: float = 16,
               label_width: float = 128, label_chars: int = 18, value_digits: int = 2,
               aria_label: str = "bar chart") -> str:
    """Horizontal bars, one per label, scaled to the largest value; the value is written after each bar.

    Parameters
    ----------
    labels : sequence of str
        One label per bar (escaped here; long labels are shortened to fit ``label_width``, the full
        text is in a tooltip).
    values : sequence of float
        Non-negative bar lengths.
    width, bar_height, label_width : float
        Geometry in SVG units.
    label_chars : int
        Labels longer than this are shortened (and further if they would not fit).
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
    shown = [fmt_num(v, value_digits) for v in vals]
    value_width = max([text_width(t, TICK_FONT) for t in shown] + [24.0]) + 6
    span = max(width - label_width - value_width - 4, 10.0)
    height = bar_height * len(labels) + 4
    parts = [_open(width, height, aria_label)]
    for i, (label, v) in enumerate(zip(labels, vals, strict=True)):
        y = 2 + i * bar_height
        length = max(0.0, float(v)) / top * span if math.isfinite(v) else 0.0
        mid = y + bar_height / 2
        name = fit_text(shorten(label, label_chars), label_width - 8, CAPTION_FONT)
        parts.append(
            f'<g><title>{esc(label)}: {esc(fmt_num(v, 4))}</title>'
            f'<text x="{_c(label_width - 6)}" y="{_c(mid)}" text-anchor="end" dominant-baseline="central">'
            f'{esc(name)}</text>'
            f'<rect x="{_c(label_width)}" y="{_c(y + 2)}" width="{_c(max(length, 0.5))}" '
            f'height="{_c(bar_height - 4)}" fill="{BAR_COLOR}"/>'
            f'<text x="{_c(label_width + length + 4)}" y="{_c(mid)}" dominant-baseline="central" fill="#555" '
            f'font-size="{TICK_FONT:g}">{esc(shown[i])}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


class _Frame:
    """The plot area of a chart with a y axis: margins sized to the tick labels, and the value-to-y map."""

    def __init__(self, width: float, height: float, y_ticks: Sequence[float], y_texts: Sequence[str],
                 y_caption: bool, top: float, bottom: float, right: float) -> None:
        label_w = max(text_width(t, TICK_FONT) for t in y_texts)
        # room for the rotated caption (one line of CAPTION_FONT), the tick labels and a gap
        self.left = math.ceil((CAPTION_FONT * 1.6 if y_caption else 4.0) + label_w + 8)
        self.top, self.right = top, right
        self.plot_w, self.plot_h = width - self.left - right, height - top - bottom
        self.lo, self.hi = y_ticks[0], y_ticks[-1]

    def y(self, v: float) -> float:
        if self.hi <= self.lo:
            return self.top + self.plot_h / 2
        return self.top + (self.hi - v) / (self.hi - self.lo) * self.plot_h


def _y_axis(frame: _Frame, ticks: Sequence[float], texts: Sequence[str]) -> str:
    """Horizontal grid lines with tick labels left of the plot."""
    out = []
    right = frame.left + frame.plot_w
    for t, text in zip(ticks, texts, strict=True):
        y = frame.y(t)
        out.append(f'<line x1="{_c(frame.left)}" x2="{_c(right)}" y1="{_c(y)}" y2="{_c(y)}" stroke="#eee"/>'
                   f'<text x="{_c(frame.left - 6)}" y="{_c(y)}" text-anchor="end" dominant-baseline="central" '
                   f'font-size="{TICK_FONT:g}" fill="#555">{esc(text)}</text>')
    return "".join(out)


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
    texts = tick_labels(ticks, scale=100.0, suffix="%") if percent else tick_labels(ticks)
    frame = _Frame(width, height, ticks, texts, bool(y_label), top=10.0, bottom=30.0, right=8.0)
    left, top, plot_w, plot_h = frame.left, frame.top, frame.plot_w, frame.plot_h
    n = max(len(vals), 1)
    slot = plot_w / n
    parts = [_open(width, height, aria_label), _y_axis(frame, ticks, texts)]
    zero = frame.y(0.0)
    widest = max((text_width(str(lab), TICK_FONT) for lab in labels), default=0.0)
    every = max(1, math.ceil((widest + 6.0) / slot))
    for i, v in enumerate(vals):
        x = left + i * slot
        tip = titles[i] if titles is not None else f"{labels[i]}: {fmt_num(v, 4)}"
        bar = ""
        if math.isfinite(v):
            y0, y1 = sorted((zero, frame.y(float(v))))
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
                         f'font-size="{TICK_FONT:g}" fill="#555">{esc(labels[i])}</text>')
    parts.append(f'<line x1="{_c(left)}" x2="{_c(left + plot_w)}" y1="{_c(zero)}" y2="{_c(zero)}" '
                 f'stroke="{AXIS_COLOR}"/>')
    return _close(parts, y_label, top + plot_h / 2)


def _x_labels(ticks: Sequence[float], texts: Sequence[str], px: Callable[[float], float], width: float) -> list[int]:
    """Indices of the x tick labels to write: every one, or every 2nd, 3rd... when neighbours would touch.

    A label centred on its tick is kept inside ``[0, width]`` by the caller's right margin;
    this only thins crowded axes.
    """
    boxes = [(px(t) - text_width(s, TICK_FONT) / 2, px(t) + text_width(s, TICK_FONT) / 2)
             for t, s in zip(ticks, texts, strict=True)]
    for every in range(1, len(ticks) + 1):
        kept = list(range(0, len(ticks), every))
        if all(boxes[a][1] + 6 <= boxes[b][0] for a, b in zip(kept, kept[1:])):
            return kept
    return [0]


def line_chart(xs: Sequence[float], ys: Sequence[float], *, width: float = 900, height: float = 280,
               x_label: str = "", y_label: str = "", aria_label: str = "line chart",
               point_titles: Sequence[str] | None = None, highlight: Sequence[bool] | None = None,
               x_marks: Sequence[float] = ()) -> str:
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
    point_titles : sequence of str, optional
        Tooltip of each point (default: its x and y).
    highlight : sequence of bool, optional
        Points drawn as larger orange diamonds and joined by their own line, so a
        series within the series (such as the evaluations at the ends of passes) can
        be compared with itself.
    x_marks : sequence of float
        x values marked by dotted vertical lines (such as pass boundaries).

    Returns
    -------
    str
        An ``<svg>`` element (saying "no data" when no point is finite).
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    tips = [t for t, k in zip(point_titles, keep, strict=True) if k] if point_titles is not None else None
    special = np.asarray(highlight, dtype=bool)[keep] if highlight is not None else np.zeros(int(keep.sum()), bool)
    x, y = x[keep], y[keep]
    parts = [_open(width, height, aria_label)]
    if x.size == 0:
        parts.append(f'<text x="{_c(width / 2)}" y="{_c(height / 2)}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    xt, yt = nice_ticks(float(x.min()), float(x.max()), 6), nice_ticks(float(y.min()), float(y.max()), 5)
    x_texts = tick_labels(xt)
    # the last x label is centred on the right end of the plot: the right margin must hold half of it
    right = max(16.0, text_width(x_texts[-1], TICK_FONT) / 2 + 4)
    frame = _Frame(width, height, yt, tick_labels(yt), bool(y_label), top=12.0, bottom=40.0, right=right)
    left, plot_w, base = frame.left, frame.plot_w, frame.top + frame.plot_h

    def px(v: float) -> float:
        return left + (v - xt[0]) / (xt[-1] - xt[0]) * plot_w if xt[-1] > xt[0] else left + plot_w / 2

    parts.append(_y_axis(frame, yt, tick_labels(yt)))
    for m in x_marks:
        if xt[0] < m < xt[-1]:
            parts.append(f'<line x1="{_c(px(m))}" x2="{_c(px(m))}" y1="{_c(frame.top)}" y2="{_c(base)}" '
                         f'stroke="#bbb" stroke-dasharray="2 3"/>')
    parts.append(f'<line x1="{_c(left)}" x2="{_c(left + plot_w)}" y1="{_c(base)}" y2="{_c(base)}" '
                 f'stroke="{AXIS_COLOR}"/>')
    for i in _x_labels(xt, x_texts, px, width):
        parts.append(f'<line x1="{_c(px(xt[i]))}" x2="{_c(px(xt[i]))}" y1="{_c(base)}" y2="{_c(base + 4)}" '
                     f'stroke="{AXIS_COLOR}"/><text x="{_c(px(xt[i]))}" y="{_c(base + 16)}" text-anchor="middle" '
                     f'font-size="{TICK_FONT:g}" fill="#555">{esc(x_texts[i])}</text>')
    parts.append(_series(x, y, px, frame.y, special, tips))
    if x_label:
        parts.append(f'<text x="{_c(left + plot_w / 2)}" y="{_c(height - 6)}" text-anchor="middle" '
                     f'fill="#333">{esc(x_label)}</text>')
    return _close(parts, y_label, frame.top + frame.plot_h / 2)


def _series(x: np.ndarray, y: np.ndarray, px: Callable[[float], float], py: Callable[[float], float],
            special: np.ndarray, tips: Sequence[str] | None) -> str:
    """The line and its markers; highlighted points as diamonds on a line of their own."""
    out = []
    points = " ".join(f"{_c(px(a))},{_c(py(b))}" for a, b in zip(x, y, strict=True))
    out.append(f'<polyline points="{points}" fill="none" stroke="{BAR_COLOR}" stroke-width="1.5"/>')
    if special.sum() > 1:
        joined = " ".join(f"{_c(px(a))},{_c(py(b))}" for a, b in zip(x[special], y[special], strict=True))
        out.append(f'<polyline points="{joined}" fill="none" stroke="{HIGHLIGHT_COLOR}" stroke-width="2"/>')
    for i, (a, b) in enumerate(zip(x, y, strict=True)):
        tip = esc(tips[i]) if tips is not None else f"{esc(fmt_num(a))}: {esc(fmt_num(b, 5))}"
        cx, cy = px(a), py(b)
        if special[i]:
            out.append(f'<path d="M{_c(cx)} {_c(cy - 5.5)}l5.5 5.5l-5.5 5.5l-5.5 -5.5z" fill="{HIGHLIGHT_COLOR}">'
                       f'<title>{tip}</title></path>')
        else:
            out.append(f'<circle cx="{_c(cx)}" cy="{_c(cy)}" r="3" fill="{BAR_COLOR}"><title>{tip}</title></circle>')
    return "".join(out)


def _close(parts: list[str], y_label: str, middle: float) -> str:
    """The chart's markup: ``parts``, then the y axis caption centred at height ``middle`` (if any), then ``</svg>``."""
    if y_label:
        parts.append(f'<text transform="translate({_c(CAPTION_FONT)} {_c(middle)}) rotate(-90)" text-anchor="middle" '
                     f'fill="#333">{esc(y_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
