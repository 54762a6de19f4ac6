"""pyldavis_data: the arguments of pyLDAvis.prepare, computed without pyLDAvis."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

from distlda.datasets import make_lda_corpus
from distlda.models import LdaModel
from distlda.test.utils import common_corpus, common_dictionary
from distlda.report.pyldavis import pyldavis_data

KEYS = {"topic_term_dists", "doc_topic_dists", "doc_lengths", "vocab", "term_frequency"}


@pytest.fixture(scope="module")
def toy_model() -> LdaModel:
    return LdaModel(common_corpus, id2word=common_dictionary, num_topics=3, passes=5, random_state=0, threads=1)


@pytest.fixture(scope="module")
def synthetic() -> tuple[LdaModel, list]:
    corpus = make_lda_corpus(300, 120, 4, doc_length=30, random_state=1)
    docs = list(corpus)
    model = LdaModel(docs, num_topics=4, passes=1, chunksize=100, random_state=0, threads=1, eval_every=0)
    return model, docs


def test_shapes_and_normalisation(synthetic: tuple[LdaModel, list]) -> None:
    model, docs = synthetic
    data = pyldavis_data(model, docs)
    assert set(data) == KEYS
    k, v, d = model.num_topics, model.num_terms, len(docs)
    assert data["topic_term_dists"].shape == (k, v)
    assert data["doc_topic_dists"].shape == (d, k)
    assert data["doc_lengths"].shape == (d,)
    assert data["term_frequency"].shape == (v,)
    assert len(data["vocab"]) == v and all(isinstance(w, str) for w in data["vocab"])
    np.testing.assert_allclose(data["topic_term_dists"].sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(data["doc_topic_dists"].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(data["topic_term_dists"] > 0) and np.all(data["doc_topic_dists"] > 0)
    np.testing.assert_allclose(data["topic_term_dists"], model.get_topics(), rtol=1e-5)
    assert "pyLDAvis" not in sys.modules


def test_counts_match_a_direct_count(synthetic: tuple[LdaModel, list]) -> None:
    model, docs = synthetic
    docs = docs + [[]]  # an empty document has length 0
    data = pyldavis_data(model, docs)
    counts: Counter = Counter()
    for doc in docs:
        for term, n in doc:
            counts[term] += n
    expected = np.array([counts.get(i, 0) for i in range(model.num_terms)], dtype=np.float64)
    np.testing.assert_array_equal(data["term_frequency"], expected)
    np.testing.assert_array_equal(data["doc_lengths"], [sum(n for _, n in doc) for doc in docs])
    assert data["doc_lengths"][-1] == 0
    assert data["term_frequency"].sum() == data["doc_lengths"].sum()


def test_documents_are_inferred_in_chunks_as_in_one_call(synthetic: tuple[LdaModel, list]) -> None:
    model, docs = synthetic
    gamma, _ = model.inference(docs)
    expected = gamma / gamma.sum(axis=1, keepdims=True)
    old = model.chunksize
    try:
        model.chunksize = 7  # many chunks, the last one partial
        data = pyldavis_data(model, iter(docs))  # a one-shot stream is read once
    finally:
        model.chunksize = old
    np.testing.assert_allclose(data["doc_topic_dists"], expected, rtol=1e-6)


def test_vocab_from_dictionary_or_id2word(toy_model: LdaModel) -> None:
    words = [common_dictionary[i] for i in range(len(common_dictionary))]
    assert pyldavis_data(toy_model, common_corpus)["vocab"] == words
    assert pyldavis_data(toy_model, common_corpus, common_dictionary)["vocab"] == words
    renamed = {i: w.upper() for i, w in enumerate(words)}
    assert pyldavis_data(toy_model, common_corpus, renamed)["vocab"] == [w.upper() for w in words]
    assert pyldavis_data(toy_model, common_corpus, [w + "!" for w in words])["vocab"][0] == words[0] + "!"


def test_bad_inputs(toy_model: LdaModel) -> None:
    with pytest.raises(TypeError, match="trained distlda LdaModel"):
        pyldavis_data(object(), common_corpus)
    with pytest.raises(TypeError, match="None"):
        pyldavis_data(toy_model, None)
    with pytest.raises(TypeError, match="string"):
        pyldavis_data(toy_model, "some text")
    with pytest.raises(ValueError, match="empty"):
        pyldavis_data(toy_model, [])
    with pytest.raises(ValueError, match="no words"):
        pyldavis_data(toy_model, [[], []])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        pyldavis_data(toy_model, [[(0, 1)], [(99, 1)]])
    with pytest.raises(ValueError, match="negative count"):
        pyldavis_data(toy_model, [[(0, -1)]])
    with pytest.raises(ValueError, match="covers 3 term ids but the model has 12"):
        pyldavis_data(toy_model, common_corpus, {0: "a", 1: "b", 2: "c"})
    with pytest.raises(TypeError, match="Dictionary or a mapping"):
        pyldavis_data(toy_model, common_corpus, "vocabulary")
