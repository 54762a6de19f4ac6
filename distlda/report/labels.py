"""Placing text labels beside circles so that no two labels overlap and no label covers a circle.

:func:`place_labels` is a greedy, deterministic placement. Circles are labelled
in the order given (the map passes largest first, so the biggest topics get the
best spots). For each circle it tries, in order:

1. eight spots touching the circle (right, left, below, above, then the four
   diagonals), with each of the label's texts from longest to shortest and at
   the normal then a smaller font size, keeping the first spot that collides
   with no label, circle or fixed obstacle and lies inside the drawing;
2. spots further away on rings around the circle, joined to it by a leader line;
3. the same rings ignoring other circles (a label may then lie over a circle,
   never over another label).

Widths come from :func:`distlda.report.axes.text_width`, which errs wide, so
labels placed apart here are apart in the browser too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distlda.report.axes import text_width

logger = logging.getLogger(__name__)

__all__ = ["Placement", "label_height", "place_labels"]

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)``: left, top, right, bottom."""

GAP = 3.0
"""Space between a circle's rim and its label."""

SMALLER = 0.82
"""Font size factor of the second try at each spot."""

RING_STEP, RINGS, ANGLES = 14.0, 24, 24
"""Far spots: ``RINGS`` rings ``RING_STEP`` apart beyond the rim, ``ANGLES`` spots on each."""

EDGE = 2.0
"""Labels keep this far from the edges of the drawing."""


@dataclass(frozen=True)
class Placement:
    """Where one label goes: its text starts at ``x`` and is centred vertically on ``y``.

    Attributes
    ----------
    x, y : float
        Left end and vertical centre of the text (``text-anchor="start"``, ``dominant-baseline="central"``).
    text : str
        Which of the label's texts was placed.
    font_size : float
    box : tuple of 4 floats
        The space reserved for the text: left, top, right, bottom.
    leader : tuple of 4 floats or None
        A line from the circle's rim to the label (``x1, y1, x2, y2``) when the label is not beside its circle.
    """

    x: float
    y: float
    text: str
    font_size: float
    box: Box
    leader: Box | None = None


def label_height(font_size: float) -> float:
    """Height reserved for one line of text: the font's ascent and descent with some room."""
    return 1.3 * font_size


def _beside(cx: float, cy: float, r: float, w: float, h: float) -> np.ndarray:
    """The eight boxes touching the circle, in order of preference, as an (8, 4) array."""
    d = (r + GAP) * math.sqrt(0.5)
    lefts = (cx + r + GAP, cx - r - GAP - w, cx - w / 2, cx - w / 2, cx + d, cx + d, cx - d - w, cx - d - w)
    tops = (cy - h / 2, cy - h / 2, cy + r + GAP, cy - r - GAP - h, cy - d - h, cy + d, cy - d - h, cy + d)
    x0, y0 = np.array(lefts), np.array(tops)
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def _ring(cx: float, cy: float, r: float, w: float, h: float, distance: float) -> np.ndarray:
    """Boxes at ``distance`` beyond the rim, all round the circle, the side facing the circle nearest it."""
    angles = np.arange(ANGLES) * (2 * math.pi / ANGLES)
    ux, uy = np.cos(angles), np.sin(angles)
    # the box centre moves out by half its extent along the direction, so its near edge is at the ring
    reach = r + GAP + distance
    mx = cx + ux * (reach + w / 2 * np.abs(ux))
    my = cy + uy * (reach + h / 2 * np.abs(uy))
    return np.stack([mx - w / 2, my - h / 2, mx + w / 2, my + h / 2], axis=1)


class _Board:
    """The drawing's occupied space: placed labels, circles and fixed obstacles, tested many boxes at a time."""

    def __init__(self, circles: np.ndarray, obstacles: Sequence[Box], width: float, height: float) -> None:
        self.circles = circles
        self.boxes = np.array(list(obstacles), dtype=np.float64).reshape(-1, 4)
        self.width, self.height = width, height

    def free(self, cand: np.ndarray, *, avoid_circles: bool) -> np.ndarray:
        """Which of the (n, 4) boxes ``cand`` lie inside the drawing and touch no label (nor circle)."""
        ok = ((cand[:, 0] >= EDGE) & (cand[:, 1] >= EDGE) & (cand[:, 2] <= self.width - EDGE)
              & (cand[:, 3] <= self.height - EDGE))
        if self.boxes.size:
            b = self.boxes
            hit = ((cand[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < cand[:, None, 2])
                   & (cand[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < cand[:, None, 3]))
            ok &= ~hit.any(axis=1)
        if avoid_circles and self.circles.size:
            c = self.circles
            # distance from each circle's centre to the nearest point of each box
            dx = np.maximum(np.maximum(cand[:, None, 0] - c[None, :, 0], c[None, :, 0] - cand[:, None, 2]), 0.0)
            dy = np.maximum(np.maximum(cand[:, None, 1] - c[None, :, 1], c[None, :, 1] - cand[:, None, 3]), 0.0)
            ok &= ~(dx * dx + dy * dy < c[None, :, 2] ** 2).any(axis=1)
        return ok

    def take(self, box: np.ndarray) -> Box:
        self.boxes = np.vstack([self.boxes, box[None, :]])
        return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _sizes(texts: Sequence[str], font_size: float) -> list[tuple[str, float, float, float]]:
    """(text, font size, width, height) of each try, in order of preference."""
    return [(text, size, text_width(text, size, bold=True), label_height(size))
            for text in texts for size in (font_size, round(font_size * SMALLER, 2))]


def _leader(cx: float, cy: float, r: float, box: Box) -> Box:
    """A line from the circle's rim towards the nearest point of ``box``."""
    nx, ny = min(max(cx, box[0]), box[2]), min(max(cy, box[1]), box[3])
    dist = math.hypot(nx - cx, ny - cy) or 1.0
    return (cx + (nx - cx) * r / dist, cy + (ny - cy) * r / dist, nx, ny)


def _place_one(board: _Board, circle: np.ndarray, texts: Sequence[str], font_size: float) -> Placement | None:
    cx, cy, r = (float(v) for v in circle)
    tries = _sizes(texts, font_size)
    for text, size, w, h in tries:
        cand = _beside(cx, cy, r, w, h)
        free = np.flatnonzero(board.free(cand, avoid_circles=True))
        if free.size:
            box = board.take(cand[free[0]])
            return Placement(box[0], (box[1] + box[3]) / 2, text, size, box)
    # far tries use the shortest text only: a leader line is a detour the eye should not make for long
    text, size, w, h = tries[-1]
    for avoid_circles in (True, False):
        for ring in range(1, RINGS + 1):
            cand = _ring(cx, cy, r, w, h, ring * RING_STEP)
            free = np.flatnonzero(board.free(cand, avoid_circles=avoid_circles))
            if free.size:
                box = board.take(cand[free[0]])
                return Placement(box[0], (box[1] + box[3]) / 2, text, size, box, _leader(cx, cy, r, box))
    return None


def place_labels(circles: np.ndarray, texts: Sequence[Sequence[str]], *, font_size: float, width: float,
                 height: float, order: Sequence[int] | None = None,
                 obstacles: Sequence[Box] = ()) -> list[Placement | None]:
    """A spot for one label per circle where it overlaps no other label, preferably no circle either.

    Parameters
    ----------
    circles : numpy.ndarray, shape (n, 3)
        Centre x, centre y and radius of each circle.
    texts : sequence of n sequences of str
        The texts each label may show, in order of preference (for example the topic number with
        three words, with two, with one, alone); the last is used for far spots.
    font_size : float
        Normal font size (each text is also tried at a smaller size).
    width, height : float
        Size of the drawing: labels stay inside it.
    order : sequence of int, optional
        Order in which circles are labelled (default: as given).
    obstacles : sequence of boxes
        Space already taken, such as axis captions.

    Returns
    -------
    list of Placement or None
        One per circle, in the input order; None only when no spot is left anywhere
        (a warning is logged).
    """
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    if len(texts) != circles.shape[0]:
        raise ValueError(f"{circles.shape[0]} circles but {len(texts)} label texts")
    board = _Board(circles, obstacles, width, height)
    placed: list[Placement | None] = [None] * circles.shape[0]
    for i in (range(circles.shape[0]) if order is None else order):
        if not texts[i]:
            continue
        placed[i] = _place_one(board, circles[i], texts[i], font_size)
        if placed[i] is None:
            logger.warning("no free spot for the label %r: left out", texts[i][-1])
    return placed
