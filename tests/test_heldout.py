"""The shared held-out evaluator."""

import numpy as np
import pytest

from distlda.evaluation.heldout import heldout_per_word_bound


def test_single_topic_is_the_unigram_log_likelihood():
    beta = np.array([[0.5, 0.25, 0.25]])
    docs = [[(0, 2.0), (1, 1.0)], [(2, 3.0)]]
    expected = (2 * np.log(0.5) + np.log(0.25) + 3 * np.log(0.25)) / 6
    assert heldout_per_word_bound(beta, 0.7, docs) == pytest.approx(expected, rel=1e-9)


def test_true_topics_score_better_than_wrong_ones():
    from distlda.datasets import make_lda_corpus

    data = make_lda_corpus(600, 300, 6, doc_length=60, alpha=0.1, eta=0.05, random_state=2)
    good = heldout_per_word_bound(data.topics, 0.1, data)
    shuffled = data.topics[:, np.random.default_rng(0).permutation(300)]
    flat = np.ones_like(data.topics)
    assert good > heldout_per_word_bound(shuffled, 0.1, data)
    assert good > heldout_per_word_bound(flat, 0.1, data)
    assert heldout_per_word_bound(flat, 0.1, data) < -np.log(300)  # a bound: below the exact log-likelihood


def test_zeros_and_bad_arguments():
    beta = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert np.isfinite(heldout_per_word_bound(beta, 0.5, [[(0, 1.0), (1, 1.0)]]))
    with pytest.raises(ValueError, match="non-negative"):
        heldout_per_word_bound(-beta, 0.5, [[(0, 1.0)]])
    with pytest.raises(ValueError, match="alpha"):
        heldout_per_word_bound(beta, 0.0, [[(0, 1.0)]])
    with pytest.raises(ValueError, match="vocabulary"):
        heldout_per_word_bound(beta, 0.5, [[(5, 1.0)]])
    with pytest.raises(ValueError, match="no words"):
        heldout_per_word_bound(beta, 0.5, [[]])
