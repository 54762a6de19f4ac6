"""Training metrics: each value checked against a direct computation on a small fake model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distlda.evaluation.coherence import c_npmi, u_mass
from distlda.models.callbacks import (
    Callback, CoherenceMetric, ConvergenceMetric, DiffMetric, Metric, PerplexityMetric,
)
from distlda.models.topics import TopicQueriesMixin


class FakeModel(TopicQueriesMixin):
    """Just enough of an LdaModel for the metrics: topics, alpha, id2word and a bound."""

    def __init__(self, topics: np.ndarray, bound: float = -5.0) -> None:
        self.topics = topics
        self.num_topics, self.num_terms = topics.shape
        self.id2word = {i: f"w{i}" for i in range(self.num_terms)}
        self.alpha = np.full(self.num_topics, 0.1)
        self.bound = bound
        self.bound_corpus = None

    def get_topics(self) -> np.ndarray:
        return self.topics

    def per_word_bound(self, corpus) -> float:
        self.bound_corpus = corpus
        return self.bound


@pytest.fixture
def model() -> FakeModel:
    return FakeModel(np.random.default_rng(4).dirichlet(np.full(12, 0.5), size=3))


@pytest.fixture
def corpus() -> list[list[tuple[int, float]]]:
    rng = np.random.default_rng(6)
    return [[(int(i), 1.0) for i in np.sort(rng.choice(12, size=5, replace=False))] for _ in range(40)]


def _top(topics: np.ndarray, n: int) -> list[list[int]]:
    return [sorted(range(topics.shape[1]), key=lambda i: (-row[i], i))[:n] for row in topics]


def test_perplexity_is_exp_of_minus_the_bound(model, corpus) -> None:
    metric = PerplexityMetric(corpus=corpus)
    assert metric.get_value(model=model) == pytest.approx(math.exp(5.0), rel=1e-15)
    assert model.bound_corpus is corpus
    with pytest.raises(ValueError, match="corpus"):
        PerplexityMetric()


def test_u_mass_coherence_is_the_mean_over_topics(model, corpus) -> None:
    metric = CoherenceMetric(corpus=corpus, topn=4)
    expected = u_mass(_top(model.topics, 4), corpus).mean()
    assert metric.coherence == "u_mass"
    assert metric.get_value(model=model) == pytest.approx(expected, rel=1e-12)


def test_c_npmi_coherence_over_texts(model) -> None:
    rng = np.random.default_rng(2)
    texts = [[f"w{i}" for i in rng.integers(0, 12, size=15)] for _ in range(30)]
    dictionary = {f"w{i}": i for i in range(12)}
    metric = CoherenceMetric(texts=texts, dictionary=dictionary, window_size=5, topn=5)
    expected = c_npmi(_top(model.topics, 5), texts, dictionary, window_size=5).mean()
    assert metric.coherence == "c_npmi"
    assert metric.get_value(model=model) == pytest.approx(expected, rel=1e-12)


def test_diff_metric_jaccard_of_top_words(model) -> None:
    other = FakeModel(np.random.default_rng(9).dirichlet(np.full(12, 0.5), size=3))
    raw = DiffMetric(distance="jaccard", num_words=4, normed=False).get_value(model=model, other_model=other)
    mine, theirs = _top(model.topics, 4), _top(other.topics, 4)
    expected = [1 - len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(mine, theirs)]
    np.testing.assert_allclose(raw, expected, rtol=1e-15)
    normed = DiffMetric(distance="jaccard", num_words=4).get_value(model=model, other_model=other)
    np.testing.assert_allclose(normed, np.array(expected) / max(expected), rtol=1e-15)


def test_diff_and_convergence_with_hellinger(model) -> None:
    other = FakeModel(np.random.default_rng(10).dirichlet(np.full(12, 0.5), size=3))
    expected = np.sqrt(0.5 * ((np.sqrt(model.topics) - np.sqrt(other.topics)) ** 2).sum(axis=1))
    diff = DiffMetric(distance="hellinger", normed=False).get_value(model=model, other_model=other)
    np.testing.assert_allclose(diff, expected, rtol=1e-10)
    total = ConvergenceMetric(distance="hellinger", normed=False).get_value(model=model, other_model=other)
    assert total == pytest.approx(expected.sum(), rel=1e-10)
    # a model against itself has converged: nothing left to normalise
    assert ConvergenceMetric(distance="jaccard").get_value(model=model, other_model=model) == 0.0
    with pytest.raises(ValueError, match="diagonal"):
        DiffMetric(diagonal=False)


def test_callback_compares_with_the_previous_pass(model) -> None:
    callback = Callback([DiffMetric(distance="hellinger", normed=False, title="drift"), ConvergenceMetric()])
    callback.set_model(model)
    before = model.topics.copy()
    model.topics = np.random.default_rng(11).dirichlet(np.full(12, 0.5), size=3)
    values = callback.on_epoch_end(0)
    assert set(values) == {"drift", "Convergence"}
    expected = np.sqrt(0.5 * ((np.sqrt(model.topics) - np.sqrt(before)) ** 2).sum(axis=1))
    np.testing.assert_allclose(values["drift"], expected, rtol=1e-10)
    # the next pass compares with the topics seen at this pass
    assert np.all(callback.on_epoch_end(1)["drift"] < 1e-7)


def test_metrics_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="visdom"):
        Metric(logger="visdom")
    with pytest.raises(TypeError, match="Metric"):
        Callback([object()])
