"""Topic distances and top-word ranking against plain numpy and scipy references, edge cases included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import distance as scipy_distance
from scipy.stats import entropy

from distlda.evaluation.distances import (
    DISTANCES, hellinger, hellinger_matrix, jaccard, jensen_shannon, js_distances, kullback_leibler,
    topic_distance_matrix,
)
from distlda.evaluation.topwords import top_ids, top_mask


@pytest.fixture
def topics() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.dirichlet(np.full(40, 0.3), size=5), rng.dirichlet(np.full(40, 0.3), size=4)


def _pairwise(p: np.ndarray, q: np.ndarray, fn) -> np.ndarray:
    return np.array([[fn(a, b) for b in q] for a in p])


def test_hellinger_matches_the_definition(topics) -> None:
    p, q = topics
    direct = _pairwise(p, q, lambda a, b: math.sqrt(0.5 * np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)))
    np.testing.assert_allclose(hellinger(p, q), direct, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hellinger_matrix(p, q), direct, rtol=1e-12, atol=1e-12)


def test_kullback_leibler_matches_scipy_entropy(topics) -> None:
    p, q = topics
    unnormalised = 3.0 * p  # rows are normalised, as scipy's entropy does
    np.testing.assert_allclose(kullback_leibler(unnormalised, q), _pairwise(p, q, entropy), rtol=1e-10)


def test_jensen_shannon_matches_scipy(topics) -> None:
    p, q = topics
    # scipy returns the distance (square root of the divergence), natural logarithm by default
    reference = _pairwise(p, q, scipy_distance.jensenshannon) ** 2
    np.testing.assert_allclose(jensen_shannon(p, q), reference, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(js_distances(p), _pairwise(p, p, scipy_distance.jensenshannon), atol=1e-7)


def test_jaccard_matches_scipy_on_supports() -> None:
    rng = np.random.default_rng(5)
    p = (rng.random((6, 30)) < 0.3) * rng.random((6, 30))
    q = (rng.random((3, 30)) < 0.5) * 1.0
    reference = _pairwise(p > 0, q > 0, scipy_distance.jaccard)
    np.testing.assert_allclose(jaccard(p, q), reference, rtol=1e-12)


def test_identical_rows_are_at_distance_zero(topics) -> None:
    p, _ = topics
    assert np.all(np.diag(hellinger_matrix(p, p)) == 0.0)  # refined: exactly 0
    np.testing.assert_allclose(np.diag(hellinger(p, p)), 0.0, atol=1e-7)
    np.testing.assert_allclose(np.diag(kullback_leibler(p, p)), 0.0, atol=1e-12)
    assert np.all(np.diag(jensen_shannon(p, p)) == 0.0)
    assert np.all(np.diag(jaccard(p, p)) == 0.0)
    assert np.all(np.diag(js_distances(p)) == 0.0)


def test_disjoint_rows_are_at_the_maximum() -> None:
    p = np.array([[0.5, 0.5, 0.0, 0.0]])
    q = np.array([[0.0, 0.0, 0.25, 0.75]])
    assert hellinger(p, q)[0, 0] == pytest.approx(1.0, abs=1e-15)
    assert hellinger_matrix(p, q)[0, 0] == 1.0
    assert kullback_leibler(p, q)[0, 0] == np.inf
    assert jensen_shannon(p, q)[0, 0] == pytest.approx(math.log(2.0), rel=1e-14)
    assert jaccard(p, q)[0, 0] == 1.0
    assert js_distances(np.vstack([p, q]))[0, 1] == pytest.approx(math.sqrt(math.log(2.0)), rel=1e-14)


def test_kullback_leibler_is_finite_when_only_q_has_extra_support() -> None:
    p = np.array([[1.0, 0.0]])
    q = np.array([[0.5, 0.5]])
    assert kullback_leibler(p, q)[0, 0] == pytest.approx(math.log(2.0), rel=1e-14)
    assert kullback_leibler(q, p)[0, 0] == np.inf


def test_empty_supports_have_jaccard_zero() -> None:
    assert jaccard(np.zeros((1, 3)), np.zeros((1, 3)))[0, 0] == 0.0


def test_dispatch_by_name(topics) -> None:
    p, q = topics
    for name, fn in zip(DISTANCES, (kullback_leibler, hellinger, jaccard, jensen_shannon)):
        assert np.array_equal(topic_distance_matrix(p, q, name), fn(p, q))
    with pytest.raises(ValueError, match="distance must be one of"):
        topic_distance_matrix(p, q, "euclidean")


def test_names_stay_importable_from_their_old_homes() -> None:
    from distlda.evaluation.recovery import hellinger_matrix as from_recovery
    from distlda.models.topics import DISTANCES as from_topics, topic_distance_matrix as tdm
    from distlda.report.layout import js_distances as from_layout

    assert from_recovery is hellinger_matrix and tdm is topic_distance_matrix
    assert from_layout is js_distances and from_topics == DISTANCES


def test_hellinger_matrix_checks_its_input() -> None:
    with pytest.raises(ValueError, match="same number of outcomes"):
        hellinger_matrix(np.ones((1, 3)) / 3, np.ones((1, 4)) / 4)
    with pytest.raises(ValueError, match="p must be finite"):
        hellinger_matrix(-np.ones(3), np.ones(3))


def test_top_ids_orders_by_weight_then_index() -> None:
    row = np.array([0.1, 0.4, 0.1, 0.4, 0.0])
    assert top_ids(row, None).tolist() == [1, 3, 0, 2, 4]
    assert top_ids(row, 2).tolist() == [1, 3]
    assert top_ids(row, 99).tolist() == [1, 3, 0, 2, 4]
    assert top_ids(row, 0).tolist() == [] and top_ids(row, -1).tolist() == []


def test_top_ids_of_a_matrix_are_those_of_each_row() -> None:
    rng = np.random.default_rng(8)
    m = np.round(rng.random((7, 50)) * 6) / 6  # many ties
    for n in (None, 1, 5, 49, 50, 80):
        rows = top_ids(m, n)
        for t in range(m.shape[0]):
            assert rows[t].tolist() == top_ids(m[t], n).tolist()
    for t in range(m.shape[0]):  # against a plain sort by (weight desc, index asc)
        assert top_ids(m[t], None).tolist() == sorted(range(50), key=lambda i: (-m[t, i], i))
    mask = top_mask(m, 5)
    assert mask.sum(axis=1).tolist() == [5.0] * 7
    assert all(set(np.flatnonzero(mask[t])) == set(top_ids(m[t], 5)) for t in range(7))
