"""The report's chart geometry without a browser: tick values and labels, label placement on the topic map,
pass ends in the training history, and the perplexity explanation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from distlda.report.axes import fit_text, nice_ticks, text_width, tick_labels
from distlda.report.data import ReportData, _history
from distlda.report.labels import place_labels
from distlda.report.layout import _axis_captions, label_texts, map_geometry, topic_map_svg
from distlda.report.page import render_page
from distlda.report.svg import line_chart

STEP_MANTISSAS = (1.0, 2.0, 2.5, 5.0)


def _ranges() -> list[tuple[float, float]]:
    """Data ranges of every magnitude and offset, with the report's known troublemakers first."""
    rng = np.random.default_rng(7)
    fixed = [(-10.41, -10.19), (-10.2, -10.4), (0.0, 100_000.0), (250.0, 53_480.0), (0.0, 0.23), (-7.61, -6.8),
             (5.0, 5.0), (-3.0, 0.0), (0.0, 0.0), (1e-7, 3e-7), (999_999.0, 1_000_001.0), (-0.051, 0.049),
             (0.19, 20.0), (1e14, 3e14)]
    random = []
    for _ in range(600):
        centre = float(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-6, 9))
        span = abs(centre) * 10.0 ** rng.uniform(-5, 1) if centre else 1.0
        random.append((centre - span * rng.uniform(0, 1), centre + span * rng.uniform(0, 1)))
    return fixed + random


@pytest.mark.parametrize("count", [5, 6])
def test_tick_labels_are_distinct_round_and_exact(count: int) -> None:
    for lo, hi in _ranges():
        ticks = nice_ticks(lo, hi, count)
        labels = tick_labels(ticks)
        assert 2 <= len(ticks) <= 2 * count + 2, (lo, hi, ticks)
        assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi), (lo, hi, ticks)
        assert len(set(labels)) == len(labels), (lo, hi, labels)
        steps = np.diff(ticks)
        step = float(steps[0])
        np.testing.assert_allclose(steps, step, rtol=1e-6)
        mantissa = step / 10.0 ** math.floor(math.log10(step) + 1e-6)
        assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in STEP_MANTISSAS), (lo, hi, step)
        if "e" in labels[0]:
            continue
        # each label reads back as its tick, and no label carries a decimal more than the step needs
        for tick, label in zip(ticks, labels, strict=True):
            assert float(label.replace(",", "")) == pytest.approx(tick, abs=step * 1e-6), (tick, label)
        decimals = len(labels[-1].partition(".")[2])
        if decimals:
            assert any(not lab.endswith("0") for lab in labels if "." in lab), labels


def test_tick_labels_of_the_issue() -> None:
    labels = tick_labels(nice_ticks(-10.41, -10.19))
    assert labels == ["-10.45", "-10.40", "-10.35", "-10.30", "-10.25", "-10.20", "-10.15"]
    assert tick_labels(nice_ticks(0, 100_000, 6))[-1] == "100,000"
    assert tick_labels([-0.25, 0.0, 0.25]) == ["-0.25", "0", "0.25"]
    assert tick_labels([0.0, 0.025, 0.05], scale=100.0, suffix="%") == ["0%", "2.5%", "5.0%"]
    assert nice_ticks(float("nan"), 1.0) == [0.0]


def test_text_fitting() -> None:
    assert text_width("mmm", 10) > text_width("iii", 10) > 0
    assert text_width("\u6f22\u5b57", 10) >= 20  # CJK characters take a full em
    word = "internationalisation_of_everything"
    cut = fit_text(word, 100, 12)
    assert cut.endswith("\u2026") and text_width(cut, 12) <= 100 and word.startswith(cut[:-1])
    assert fit_text("short", 100, 12) == "short"


def _texts(svg: str) -> list[tuple[float, float, str, str]]:
    """(x, y, text-anchor, text) of each plain ``<text>`` of a chart."""
    found = []
    for attrs, body in re.findall(r"<text([^>]*)>(.*?)</text>", svg):
        x, y = re.search(r'\bx="([-\d.]+)"', attrs), re.search(r'\by="([-\d.]+)"', attrs)
        if x and y:
            anchor = re.search(r'text-anchor="(\w+)"', attrs)
            found.append((float(x.group(1)), float(y.group(1)), anchor.group(1) if anchor else "start", body))
    return found


def test_line_chart_labels_fit_and_differ() -> None:
    xs = np.linspace(4_500, 100_000, 25)
    ys = -10.4 + 0.2 * np.sin(np.arange(25) / 3)
    width = 900.0
    svg = line_chart(xs, ys, width=width, x_label="documents seen", y_label="per-word bound (nats)")
    texts = [t for t in _texts(svg) if t[3] not in ("documents seen",)]
    for x, _, anchor, body in texts:
        w = text_width(body, 10)
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        assert 0 <= x0 and x0 + w <= width, (body, x0, x0 + w)
    assert "100,000" in [t[3] for t in texts]
    y_labels = [t[3] for t in texts if t[2] == "end"]
    assert len(y_labels) >= 3 and len(set(y_labels)) == len(y_labels), y_labels


def _random_map(k: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Topic positions in a few tight clusters (with exact duplicates), skewed sizes, words of any length."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, k // 15), 2))
    coords = centres[rng.integers(0, len(centres), k)] + rng.normal(scale=0.08, size=(k, 2))
    coords[: k // 10] = coords[0]
    sizes = rng.dirichlet(np.full(k, 0.5))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzMW"))
    words = [["".join(rng.choice(letters, rng.integers(2, 16))) for _ in range(3)] for _ in range(k)]
    return coords, sizes, words


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("k", [5, 12, 30, 60, 120, pytest.param(200, marks=pytest.mark.slow)])
def test_map_labels_never_overlap(k: int) -> None:
    width, height = 900.0, 600.0 if k <= 30 else 760.0
    for seed in range(3):
        coords, sizes, words = _random_map(k, seed)
        circles = map_geometry(coords, sizes, width, height)
        texts = [label_texts(t, words[t]) for t in range(k)]
        captions = [box for _, box in _axis_captions(width, height)]
        order = sorted(range(k), key=lambda i: (-circles[i, 2], i))
        placed = place_labels(circles, texts, font_size=11.0 if k <= 30 else 9.5, width=width, height=height,
                              order=order, obstacles=captions)
        assert all(p is not None for p in placed), f"{sum(p is None for p in placed)} labels of {k} left out"
        boxes = [p.box for p in placed]
        for i, a in enumerate(boxes):
            assert 0 <= a[0] and 0 <= a[1] and a[2] <= width and a[3] <= height, (k, seed, i, a)
            assert not any(_overlap(a, c) for c in captions), (k, seed, i)
            assert not any(_overlap(a, b) for b in boxes[i + 1:]), (k, seed, i)
            cx, cy, r = circles[i]
            nx, ny = min(max(cx, a[0]), a[2]), min(max(cy, a[1]), a[3])
            assert math.hypot(nx - cx, ny - cy) >= r - 1e-9, "a label covers its own circle"
            assert placed[i].text.split()[0] == str(i)  # every label starts with its topic number
            beside = any(np.allclose(a, b) for b in _beside_boxes(circles[i], placed[i]))
            assert (placed[i].leader is None) == beside, (k, seed, i)
        again = place_labels(circles, texts, font_size=11.0 if k <= 30 else 9.5, width=width, height=height,
                             order=order, obstacles=captions)
        assert again == placed  # deterministic
    svg = topic_map_svg(coords, sizes, words, width=width)
    assert svg.count("data-topic=") == k and svg.count("<circle") == k


def _beside_boxes(circle: np.ndarray, p) -> list[tuple]:
    """The boxes a label of ``p``'s size could have next to ``circle`` (then it needs no leader line)."""
    from distlda.report.labels import _beside

    w, h = p.box[2] - p.box[0], p.box[3] - p.box[1]
    return [tuple(float(v) for v in row) for row in _beside(*(float(v) for v in circle), w, h)]


def test_crowded_labels_get_a_leader_line_or_fewer_words() -> None:
    k = 40
    coords = np.zeros((k, 2))
    coords[:, 0] = np.arange(k) * 1e-3  # all topics on a few pixels
    coords[0] = (1.0, 1.0)
    placed = place_labels(map_geometry(coords, np.full(k, 1 / k), 900, 760),
                          [label_texts(t, ["alpha", "beta", "gamma"]) for t in range(k)], font_size=9.5,
                          width=900, height=760)
    assert all(p is not None for p in placed)
    assert any(p.leader is not None for p in placed)
    assert any(p.text == label_texts(1, ["alpha", "beta", "gamma"])[0] for p in placed)


def test_history_marks_pass_ends() -> None:
    entries = [{"pass": 1 + d // 1000, "documents": d, "heldout_per_word_bound": -7.0} for d in (400, 800, 1000)]
    entries += [{"pass": 2, "documents": d, "heldout_per_word_bound": -6.9} for d in (1400, 1800, 2000)]
    for e in entries:
        e["pass"] = 1 if e["documents"] <= 1000 else 2
    by_size = _history(entries, per_pass=1000)
    assert [p.pass_end for p in by_size] == [False, False, True, False, False, True]
    by_number = _history(entries)
    assert [p.pass_end for p in by_number] == [False, False, True, False, False, False]
    assert by_size[0].perplexity == pytest.approx(math.exp(7.0))


def _data(history: list[dict], **extra: object) -> ReportData:
    return ReportData(num_topics=2, num_terms=16_800, model_facts=[], corpus_facts=[], training_facts=[],
                      words=[["a", "b"], ["c", "d"]], probs=[[0.5, 0.5], [0.5, 0.5]], sizes=np.array([0.5, 0.5]),
                      coherence=None, history=_history(history, extra.get("train_documents")),
                      coords=np.array([[0.0, 0.0], [1.0, 0.0]]), **extra)


def test_page_explains_perplexity_and_pass_ends() -> None:
    n, size = 2_674, 500
    history = [{"pass": 1 + i // 6, "documents": min(500 * (i % 6 + 1), n) + n * (i // 6),
                "heldout_per_word_bound": -10.29 + 0.01 * i} for i in range(12)]
    page = render_page(_data(history, train_documents=n, chunksize=size))
    assert "exp(\u2212bound per word)" in page and "1/16,800" in page
    assert f"{-math.log(16_800):.4g}" in page and "a perplexity of exactly 16,800" in page
    assert "can exceed the vocabulary size" in page and "\u00d7 higher." in page
    assert "leave 174 for the last mini-batch" in page and "passes over the 2,674 training documents" in page
    assert page.count("<path d=") == 2  # the two pass ends are diamonds
    plain = render_page(_data([{"documents": 100, "heldout_per_word_bound": -5.0}]))
    assert "documents seen" in plain and "Orange diamonds" not in plain and "\u00d7 lower." in plain
