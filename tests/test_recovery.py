"""Topic recovery: Hellinger distances and the optimal matching of learned to true topics."""

from __future__ import annotations

import numpy as np
import pytest

from distlda.evaluation import RecoveryResult, hellinger_matrix, topic_recovery


def random_topics(k, v, seed=0, eta=0.1):
    return np.random.default_rng(seed).dirichlet(np.full(v, eta), size=k)


def test_identical_topics_score_zero():
    topics = random_topics(6, 300)
    result = topic_recovery(topics, topics)
    assert isinstance(result, RecoveryResult)
    assert result.mean_hellinger == 0.0
    np.testing.assert_array_equal(result.distances, np.zeros(6))
    np.testing.assert_array_equal(result.matching, np.stack([np.arange(6), np.arange(6)], axis=1))


def test_permuted_topics_score_zero_with_right_matching():
    topics = random_topics(8, 200, seed=1)
    perm = np.random.default_rng(2).permutation(8)
    learned = topics[perm] * np.arange(1, 9)[:, None]  # unnormalised rows (e.g. lambda) are fine
    result = topic_recovery(topics, learned)
    assert result.mean_hellinger == pytest.approx(0.0, abs=1e-12)
    # learned row j is true topic perm[j], so true topic i is learned row argsort(perm)[i]
    np.testing.assert_array_equal(result.matching[:, 0], np.arange(8))
    np.testing.assert_array_equal(result.matching[:, 1], np.argsort(perm))
    assert result.distance_matrix.shape == (8, 8)


@pytest.mark.parametrize(
    "p, q, expected",
    [
        ([1.0, 0.0], [0.5, 0.5], np.sqrt(1 - np.sqrt(0.5))),
        ([0.25, 0.75], [0.75, 0.25], np.sqrt(1 - np.sqrt(3) / 2)),
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5], 0.0),
        ([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5], 1.0),
    ],
)
def test_hellinger_closed_form(p, q, expected):
    np.testing.assert_allclose(hellinger_matrix(p, q), [[expected]], rtol=1e-12, atol=1e-15)


def test_hellinger_matrix_matches_direct_formula():
    p, q = random_topics(5, 50, seed=3, eta=1.0), random_topics(7, 50, seed=4, eta=1.0)
    direct = np.array([[np.linalg.norm(np.sqrt(a) - np.sqrt(b)) / np.sqrt(2) for b in q] for a in p])
    np.testing.assert_allclose(hellinger_matrix(p, q), direct, rtol=1e-10)


def test_hellinger_keeps_precision_for_near_identical_rows():
    p = random_topics(1, 1000, seed=5, eta=1.0)[0]
    q = p * (1 + 1e-9 * np.cos(np.arange(1000)))
    q /= q.sum()
    direct = np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / np.sqrt(2)
    assert 0 < direct < 1e-8
    np.testing.assert_allclose(hellinger_matrix(p, q)[0, 0], direct, rtol=1e-6)


def test_disjoint_supports_score_one():
    true = np.zeros((3, 9))
    learned = np.zeros((3, 9))
    for k in range(3):
        true[k, 3 * k:3 * k + 2] = [0.5, 0.5]
        learned[k, 3 * k + 2] = 1.0  # next to, never on, the true words
    result = topic_recovery(true, learned)
    assert result.mean_hellinger == pytest.approx(1.0)
    np.testing.assert_allclose(result.distance_matrix, np.ones((3, 3)))


def test_different_numbers_of_topics_match_the_smaller():
    true = random_topics(5, 100, seed=6)
    learned = np.vstack([true[[3, 0, 4]], random_topics(4, 100, seed=7)])  # 3 recovered + 4 others
    result = topic_recovery(true, learned)
    assert result.matching.shape == (5, 2)
    assert sorted(map(tuple, result.matching[result.distances < 1e-12])) == [(0, 1), (3, 0), (4, 2)]
    fewer = topic_recovery(true, true[[2, 1]])
    assert fewer.matching.tolist() == [[1, 1], [2, 0]]
    assert fewer.mean_hellinger == 0.0


def test_recovery_score_orders_noise_levels():
    true = random_topics(10, 500, seed=8)
    rng = np.random.default_rng(9)
    scores = [
        topic_recovery(true, true + noise * rng.random(true.shape) / 500).mean_hellinger
        for noise in (0.01, 0.1, 1.0)
    ]
    assert 0 < scores[0] < scores[1] < scores[2] < 1


def test_shape_and_value_errors():
    with pytest.raises(ValueError, match="true_topics.*learned_topics"):
        topic_recovery(np.ones((3, 10)), np.ones((3, 11)))
    with pytest.raises(ValueError, match="learned_topics"):
        topic_recovery(np.ones((3, 10)), np.ones(10))
    with pytest.raises(ValueError, match="true_topics"):
        topic_recovery(-np.ones((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="true_topics row 1"):
        topic_recovery(np.array([[1.0, 0.0], [0.0, 0.0]]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="learned_topics"):
        topic_recovery(np.ones((2, 4)), np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="same number of outcomes"):
        hellinger_matrix(np.ones((2, 3)) / 3, np.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match="q must be"):
        hellinger_matrix(np.ones(3) / 3, np.ones((1, 1, 3)) / 3)
