"""The 2-D map of topics: Jensen–Shannon distances embedded by classical multidimensional scaling.

Classical (Torgerson) scaling finds points whose Euclidean distances best match
a given distance matrix: square the distances, double-centre them into a Gram
matrix ``B = -½ J D² J`` (``J`` the centring matrix) and take the two leading
eigenvectors of ``B``, each scaled by the square root of its eigenvalue. This is
what LDAvis draws; it is written here with numpy alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

# js_distances is imported from here by existing code: it stays importable
from distlda.evaluation.distances import js_distances
from distlda.report.svg import FONT, esc, fmt_num, shorten

logger = logging.getLogger(__name__)

__all__ = ["classical_mds", "js_distances", "topic_map_svg"]

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#ff9da6",
           "#79706e")


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """Points in ``dims`` dimensions whose distances approximate ``distances`` (classical scaling).

    Parameters
    ----------
    distances : numpy.ndarray, shape (n, n)
        Symmetric, finite, non-negative distances.
    dims : int
        Number of output dimensions.

    Returns
    -------
    numpy.ndarray, shape (n, dims)
        Coordinates centred on the origin. Dimensions beyond what the data
        supports (``n <= dims``, or non-positive eigenvalues) are zero. Each axis's
        sign is fixed so that its largest coordinate in absolute value is positive,
        so the layout does not flip between runs.

    Raises
    ------
    ValueError
        When ``distances`` is not a square matrix of finite non-negative numbers.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances must be a square matrix, got shape {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("distances must be finite and non-negative")
    if dims < 1:
        raise ValueError(f"dims must be at least 1, got {dims}")
    n = d.shape[0]
    out = np.zeros((n, dims))
    if n < 2:
        return out
    sq = (0.5 * (d + d.T)) ** 2
    gram = -0.5 * (sq - sq.mean(axis=0, keepdims=True) - sq.mean(axis=1, keepdims=True) + sq.mean())
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(-values, kind="stable")[:dims]
    scale = np.sqrt(np.clip(values[order], 0.0, None))
    vectors = vectors[:, order]
    for j in range(vectors.shape[1]):
        if vectors[np.argmax(np.abs(vectors[:, j])), j] < 0:
            vectors[:, j] = -vectors[:, j]
    out[:, : len(order)] = vectors * scale
    return out


Box = tuple[float, float, float, float]


def _overlaps(box: Box, boxes: list[Box], skip: int) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for j, b in enumerate(boxes) if j != skip)


def _place_label(x: float, y: float, r: float, text_w: float, text_h: float, width: float, height: float,
                 taken: list[Box], skip: int) -> tuple[float, float, str] | None:
    """A free spot for a label next to a circle (right, left, below, above), or None when all are taken.

    ``taken`` holds the boxes of circles and of labels placed so far (``taken[skip]``,
    the label's own circle, is ignored). Returns the text's anchor point and its
    ``text-anchor``, and appends the label's box to ``taken``.
    """
    candidates = (
        (x + r + 3, y, "start", (x + r + 3, y - text_h / 2, x + r + 3 + text_w, y + text_h / 2)),
        (x - r - 3, y, "end", (x - r - 3 - text_w, y - text_h / 2, x - r - 3, y + text_h / 2)),
        (x, y + r + text_h / 2 + 2, "middle", (x - text_w / 2, y + r + 2, x + text_w / 2, y + r + 2 + text_h)),
        (x, y - r - text_h / 2 - 2, "middle", (x - text_w / 2, y - r - 2 - text_h, x + text_w / 2, y - r - 2)),
    )
    for lx, ly, anchor, box in candidates:
        inside = box[0] >= 2 and box[1] >= 2 and box[2] <= width - 2 and box[3] <= height - 2
        if inside and not _overlaps(box, taken, skip):
            taken.append(box)
            return lx, ly, anchor
    return None


def topic_map_svg(coords: np.ndarray, sizes: Sequence[float], words: Sequence[Sequence[str]], *,
                  width: float = 900, height: float | None = None) -> str:
    """The topic map: a circle per topic at its 2-D position, area proportional to its size.

    Labels (topic number and top three words) are placed greedily, largest topics
    first, beside their circle where they overlap no other label or circle; a
    label with no free spot is left out (the circle keeps its number and a
    tooltip with its words).

    Parameters
    ----------
    coords : numpy.ndarray, shape (K, 2)
        Positions (any scale; fitted into the drawing keeping the aspect ratio).
    sizes : sequence of K floats
        Share of the corpus of each topic.
    words : sequence of K sequences of str
        Top words of each topic.
    width, height : float
        Size in SVG units (default height: 600, or 760 beyond 30 topics).

    Returns
    -------
    str
        An ``<svg>`` element; each circle links to ``#topic-<k>``.
    """
    pts = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    k = pts.shape[0]
    if height is None:
        height = 600.0 if k <= 30 else 760.0
    size = np.clip(np.nan_to_num(np.asarray(sizes, dtype=np.float64)), 0.0, None)
    biggest = float(size.max()) if k and size.max() > 0 else 1.0
    r_max = min(48.0, max(12.0, 220.0 / math.sqrt(max(k, 1))))
    radii = 3.0 + (r_max - 3.0) * np.sqrt(size / biggest)
    margin = r_max + 14.0
    low, high = (pts.min(axis=0), pts.max(axis=0)) if k else (np.zeros(2), np.zeros(2))
    span = high - low
    extent = float(max(span[0] / (width - 2 * margin), span[1] / (height - 2 * margin)))
    scale = 1.0 / extent if extent > 0 else 0.0
    centre = (high + low) / 2
    xs = width / 2 + (pts[:, 0] - centre[0]) * scale
    ys = height / 2 - (pts[:, 1] - centre[1]) * scale
    font = 11.0 if k <= 30 else 9.5
    parts = [(f'<svg viewBox="0 0 {width:g} {height:g}" width="100%" role="img" '
              f'aria-label="map of topic distances" {FONT} preserveAspectRatio="xMinYMin meet">'),
             f'<rect x="0" y="0" width="{width:g}" height="{height:g}" fill="#fbfbfb" stroke="#e3e3e3"/>',
             f'<line x1="{width / 2:g}" x2="{width / 2:g}" y1="0" y2="{height:g}" stroke="#eee"/>',
             f'<line x1="0" x2="{width:g}" y1="{height / 2:g}" y2="{height / 2:g}" stroke="#eee"/>',
             (f'<text x="{width - 6:g}" y="{height / 2 - 4:g}" text-anchor="end" font-size="10" '
              f'fill="#999">dimension 1</text>'),
             f'<text x="{width / 2 + 4:g}" y="12" font-size="10" fill="#999">dimension 2</text>']
    order = sorted(range(k), key=lambda i: (-radii[i], i))
    # circles are obstacles for labels (slightly shrunk: a label may touch a circle's rim)
    taken: list[Box] = [(xs[t] - radii[t] * 0.8, ys[t] - radii[t] * 0.8, xs[t] + radii[t] * 0.8, ys[t] + radii[t] * 0.8)
             for t in range(k)]
    circles, labels = [], []
    for t in order:
        x, y, r = float(xs[t]), float(ys[t]), float(radii[t])
        top = [str(w) for w in list(words[t])]
        tip = f"topic {t} ({fmt_num(size[t] * 100)}% of tokens): {', '.join(top[:8])}"
        color = PALETTE[t % len(PALETTE)]
        inner = r >= 8
        number = (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="central" '
                  f'font-size="{font:g}" font-weight="600" fill="#111">{t}</text>' if inner else "")
        circles.append(f'<a href="#topic-{t}"><g><title>{esc(tip)}</title>'
                       f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}" fill-opacity="0.55" '
                       f'stroke="{color}" stroke-width="1.5"/>{number}</g></a>')
        text = ", ".join(shorten(w, 14) for w in top[:3])
        if not inner:
            text = f"{t}: {text}"
        spot = _place_label(x, y, r, 0.56 * font * len(text), font + 2, width, height, taken, t)
        if spot is None:
            continue
        lx, ly, anchor = spot
        labels.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" dominant-baseline="central" '
                      f'font-size="{font:g}" fill="#222" stroke="#fbfbfb" stroke-width="3" '
                      f'paint-order="stroke">{esc(text)}</text>')
    parts.extend(circles)
    parts.extend(labels)
    parts.append("</svg>")
    return "".join(parts)
