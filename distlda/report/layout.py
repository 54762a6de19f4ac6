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
from distlda.report.axes import text_width
from distlda.report.labels import Placement, label_height, place_labels
from distlda.report.svg import FONT, esc, fmt_num, shorten

logger = logging.getLogger(__name__)

__all__ = ["classical_mds", "js_distances", "label_texts", "map_geometry", "topic_map_svg"]

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


def map_geometry(coords: np.ndarray, sizes: Sequence[float], width: float, height: float) -> np.ndarray:
    """Circles of the topic map, one ``(x, y, radius)`` row per topic, fitted into a ``width`` × ``height`` drawing.

    Area is proportional to size; positions keep the aspect ratio of ``coords`` and leave
    a margin of the largest radius, so every circle lies inside the drawing.
    """
    pts = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    k = pts.shape[0]
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
    return np.stack([xs, ys, radii], axis=1)


def label_texts(topic: int, words: Sequence[str]) -> list[str]:
    """What a topic's label may say, longest first: its number with its top three, two, one word, then alone."""
    top = [shorten(str(w), 14) for w in list(words)[:3]]
    return [f"{topic}  {', '.join(top[:n])}" for n in range(len(top), 0, -1)] + [str(topic)]


def _axis_captions(width: float, height: float) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """The two axis captions: markup and the box each occupies (labels keep clear of them)."""
    one_w, two_w = text_width("dimension 1", 10), text_width("dimension 2", 10)
    x1, y1 = width - 6, height / 2 - 8
    x2, y2 = width / 2 + 4, 10
    return [
        (f'<text x="{x1:g}" y="{y1:g}" text-anchor="end" dominant-baseline="central" font-size="10" '
         f'fill="#999">dimension 1</text>', (x1 - one_w, y1 - label_height(10) / 2, x1, y1 + label_height(10) / 2)),
        (f'<text x="{x2:g}" y="{y2:g}" dominant-baseline="central" font-size="10" fill="#999">dimension 2</text>',
         (x2, y2 - label_height(10) / 2, x2 + two_w, y2 + label_height(10) / 2)),
    ]


def _label_markup(p: Placement, topic: int) -> str:
    number, _, rest = p.text.partition("  ")
    leader = ""
    if p.leader is not None:
        x1, y1, x2, y2 = p.leader
        leader = f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#777" stroke-width="0.8"/>'
    words = f" {esc(rest)}" if rest else ""
    return (f'{leader}<text x="{p.x:.1f}" y="{p.y:.1f}" dominant-baseline="central" font-size="{p.font_size:g}" '
            f'fill="#222" data-topic="{topic}"><tspan font-weight="700">{esc(number)}</tspan>{words}</text>')


def topic_map_svg(coords: np.ndarray, sizes: Sequence[float], words: Sequence[Sequence[str]], *,
                  width: float = 900, height: float | None = None) -> str:
    """The topic map: a circle per topic at its 2-D position, area proportional to its size.

    Every topic gets a label: its number and top words, placed by
    :func:`~distlda.report.labels.place_labels` (largest topics first) where it
    overlaps no other label; crowded topics get fewer words, a smaller font, or a
    spot further away joined by a leader line. Each circle also has a tooltip with
    its words.

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
    k = np.asarray(coords).reshape(-1, 2).shape[0]
    if height is None:
        height = 600.0 if k <= 30 else 760.0
    circles = map_geometry(coords, sizes, width, height)
    size = np.clip(np.nan_to_num(np.asarray(sizes, dtype=np.float64)), 0.0, None)
    font = 11.0 if k <= 30 else 9.5
    captions = _axis_captions(width, height)
    order = sorted(range(k), key=lambda i: (-circles[i, 2], i))
    placed = place_labels(circles, [label_texts(t, words[t]) for t in range(k)], font_size=font, width=width,
                          height=height, order=order, obstacles=[box for _, box in captions])
    parts = [(f'<svg viewBox="0 0 {width:g} {height:g}" width="100%" role="img" '
              f'aria-label="map of topic distances" {FONT} preserveAspectRatio="xMinYMin meet">'),
             f'<rect x="0" y="0" width="{width:g}" height="{height:g}" fill="#fbfbfb" stroke="#e3e3e3"/>',
             f'<line x1="{width / 2:g}" x2="{width / 2:g}" y1="0" y2="{height:g}" stroke="#eee"/>',
             f'<line x1="0" x2="{width:g}" y1="{height / 2:g}" y2="{height / 2:g}" stroke="#eee"/>']
    parts.extend(markup for markup, _ in captions)
    for t in order:
        x, y, r = (float(v) for v in circles[t])
        tip = f"topic {t} ({fmt_num(size[t] * 100)}% of tokens): {', '.join(str(w) for w in list(words[t])[:8])}"
        color = PALETTE[t % len(PALETTE)]
        parts.append(f'<a href="#topic-{t}"><g><title>{esc(tip)}</title>'
                     f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}" fill-opacity="0.55" '
                     f'stroke="{color}" stroke-width="1.5"/></g></a>')
    # labels go on top of every circle, in a halo of the background colour so crossings stay legible
    parts.append('<g stroke="#fbfbfb" stroke-width="3" paint-order="stroke" stroke-linejoin="round">')
    parts.extend(_label_markup(p, t) for t, p in enumerate(placed) if p is not None)
    parts.append("</g></svg>")
    return "".join(parts)
