"""Axis arithmetic for the report's charts: round tick values, their labels, and how wide a label is.

The page has no scripts, so text cannot be measured when it is drawn: its width
is estimated here from its characters, on the generous side, so that a label
laid out with the estimate fits the browser's rendering of it (the browser test
in ``tests/test_report.py`` checks this against real boxes).

>>> nice_ticks(-10.41, -10.19)
[-10.45, -10.4, -10.35, -10.3, -10.25, -10.2, -10.15]
>>> tick_labels([-10.45, -10.4, -10.35])
['-10.45', '-10.40', '-10.35']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fit_text", "nice_step", "nice_ticks", "text_width", "tick_labels"]

MANTISSAS = (1.0, 2.0, 2.5, 5.0, 10.0)
"""Tick steps are one of these times a power of ten."""

# em widths of common sans-serif faces (Helvetica, Arial, DejaVu Sans, Roboto), each rounded up
# to the widest of them, so that an estimate is never short of the rendered text
_NARROW = frozenset("ijlI.,:;'|!`()[]{}/\\ ")
_MEDIUM = frozenset("frt-\"*")
_WIDE = frozenset("mwMW@%")
_DIGITS_AND_LOWER = 0.64
_UPPER = 0.76


def _char_width(ch: str) -> float:
    """Width of one character in em (a conservative guess for proportional sans-serif fonts)."""
    if ch in _NARROW:
        return 0.36
    if ch in _MEDIUM:
        return 0.48
    if ch in _WIDE:
        return 0.98
    if ord(ch) >= 0x2E80:  # CJK, Hangul, kana and full-width forms take a full em
        return 1.05
    if ch.isupper():
        return _UPPER
    return _DIGITS_AND_LOWER


def text_width(text: str, font_size: float, *, bold: bool = False) -> float:
    """Estimated width of ``text`` set at ``font_size`` (same units), erring wide.

    Parameters
    ----------
    text : str
        The text as shown (not HTML-escaped).
    font_size : float
        Font size in the units of the drawing.
    bold : bool
        Bold text is about a tenth wider.

    Returns
    -------
    float
    """
    width = sum(_char_width(ch) for ch in text) * font_size
    return width * 1.1 if bold else width


def fit_text(text: str, max_width: float, font_size: float) -> str:
    """``text``, cut and ended with an ellipsis where needed so that its estimated width is at most ``max_width``."""
    if text_width(text, font_size) <= max_width:
        return text
    budget = max_width - text_width("\u2026", font_size)
    kept = ""
    for ch in text:
        if text_width(kept + ch, font_size) > budget:
            break
        kept += ch
    return (kept or text[:1]) + "\u2026"


def nice_step(lo: float, hi: float, count: int = 5) -> float:
    """The smallest step of 1, 2, 2.5 or 5 × 10^k that covers ``[lo, hi]`` in at most about ``count`` intervals."""
    raw = (hi - lo) / max(count, 1)
    if not math.isfinite(raw) or raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in MANTISSAS if m * power >= raw * (1 - 1e-9))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]`` (steps of 1, 2, 2.5 or 5 × 10^k).

    Parameters
    ----------
    lo, hi : float
        The data range (in either order; an empty range is widened by 10%, or by 1 around 0).
    count : int
        Wanted number of intervals; the result has between 2 and about ``2 * count + 1`` ticks.

    Returns
    -------
    list of float
        Ascending, evenly spaced multiples of the step, the first at or below the range and the last
        at or above it. Each is the nearest float to its decimal value, so labels format exactly.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(lo, hi, count)
    digits = _decimals_of(step)
    # integer multiples of the step, rounded to the step's own decimals: no drift from repeated addition
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    ticks = [round(i * step, digits + 1) + 0.0 for i in range(first, last + 1)]
    if len(ticks) < 2:
        ticks.append(round((last + 1) * step, digits + 1) + 0.0)
    return ticks


def _decimals_of(step: float) -> int:
    """Decimals needed to write multiples of ``step`` exactly (0 for steps of 1 or more)."""
    for decimals in range(0, 17):
        if abs(round(step, decimals) - step) <= abs(step) * 1e-9:
            return decimals
    return 17


def tick_labels(ticks: Sequence[float], *, scale: float = 1.0, suffix: str = "") -> list[str]:
    """Labels of evenly spaced ``ticks`` with as many decimals as their step needs, so no two are alike.

    Parameters
    ----------
    ticks : sequence of float
        Tick values (from :func:`nice_ticks`).
    scale : float
        Factor applied before formatting (100 for percentages).
    suffix : str
        Appended to every label (for example ``"%"``).

    Returns
    -------
    list of str
        Thousands grouped with commas; a value that rounds to zero is written ``0``, never ``-0``.
        Beyond 10^15 the labels use exponent notation with enough digits to differ.
    """
    values = [float(t) * scale for t in ticks]
    if not values:
        return []
    step = min((abs(b - a) for a, b in zip(values, values[1:]) if b != a), default=abs(values[0]) or 1.0)
    if max(abs(v) for v in values) >= 1e15 or step < 1e-12:
        for digits in range(0, 17):
            labels = [f"{v:.{digits}e}" for v in values]
            if len(set(labels)) == len(set(values)):
                break
    else:
        decimals = _decimals_of(step)
        labels = [f"{v + 0.0:,.{decimals}f}" for v in values]
        zero = f"{0.0:,.{decimals}f}"
        labels = ["0" if text.lstrip("-") == zero else text for text in labels]
    return [text + suffix for text in labels]
