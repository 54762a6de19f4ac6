"""Every bad input gets a clear error naming it, and leaves a trained model unchanged."""

import numpy as np
import pytest
from conftest import random_docs

from distlda.models import LdaModel

V = 30
VOCAB = {i: f"w{i}" for i in range(V)}


@pytest.fixture
def trained(rng):
    docs = random_docs(rng, 120, V)
    model = LdaModel(docs, num_topics=3, id2word=VOCAB, chunksize=20, random_state=0)
    return model, docs


def _fingerprint(model):
    return (model.state.sstats.copy(), model.expElogbeta.copy(), model.alpha.copy(), model.eta.copy(),
            model.state.numdocs, model.num_updates)


def _assert_unchanged(model, fp):
    now = _fingerprint(model)
    for a, b in zip(fp[:4], now[:4]):
        np.testing.assert_array_equal(a, b)
    assert fp[4:] == now[4:]


@pytest.mark.parametrize("bad_doc, error, match", [
    ([(-1, 1.0)], ValueError, "document 90: negative term id"),
    ([(V, 1.0)], ValueError, f"document 90: term id outside the vocabulary of {V}"),
    ([(2.5, 1.0)], ValueError, "document 90: term id 2.5 is not an integer"),
    ([(1, -2.0)], ValueError, "document 90: negative count"),
    ([(1, float("nan"))], ValueError, "document 90: count is NaN"),
    ([(1, float("inf"))], ValueError, "document 90: count is NaN or infinite"),
    ([("a", 1.0)], TypeError, "document 90: entry"),
    ([(1, 2, 3)], TypeError, "document 90: entry"),
    ("not a document", TypeError, "document 90"),
    (5, TypeError, "document 90"),
])
def test_bad_documents_leave_the_model_unchanged(trained, bad_doc, error, match):
    model, docs = trained
    fp = _fingerprint(model)
    corpus = docs[:90] + [bad_doc] + docs[91:]  # the bad document comes after several M-steps
    with pytest.raises(error, match=match):
        model.update(corpus)
    _assert_unchanged(model, fp)
    model.update(docs[:20])  # and it still trains
    assert model.num_updates == fp[5] + 20


def test_empty_documents_are_allowed(trained):
    model, docs = trained
    model.update(docs[:10] + [[], []] + docs[10:20])
    assert np.all(np.isfinite(model.get_topics()))


def test_empty_corpus_and_generators(trained):
    model, docs = trained
    fp = _fingerprint(model)
    with pytest.raises(ValueError, match="corpus is empty"):
        model.update([])
    with pytest.raises(TypeError, match="one-shot iterator"):
        model.update(d for d in docs)
    with pytest.raises(TypeError, match="corpus must be"):
        model.update(42)
    with pytest.raises(TypeError, match="not a string"):
        model.update("some text")
    _assert_unchanged(model, fp)


class _Shrinking:
    """A corpus that reports 40 documents but yields fewer on its second pass."""

    def __init__(self, docs):
        self.docs = docs
        self.passes = 0

    def __len__(self):
        return len(self.docs)

    def __iter__(self):
        self.passes += 1
        return iter(self.docs if self.passes == 1 else self.docs[:-5])


def test_corpus_whose_length_changes_between_passes(trained):
    model, docs = trained
    fp = _fingerprint(model)
    with pytest.raises(ValueError, match="must not change between passes"):
        model.update(_Shrinking(docs[:40]), passes=2)
    _assert_unchanged(model, fp)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_topics=0), ValueError, "num_topics must be at least 1"),
    (dict(num_topics=2.5), TypeError, "num_topics must be an integer"),
    (dict(num_topics="3"), TypeError, "num_topics"),
    (dict(chunksize=0), ValueError, "chunksize"),
    (dict(passes=0), ValueError, "passes"),
    (dict(iterations=0), ValueError, "iterations"),
    (dict(decay=0.0), ValueError, "decay"),
    (dict(decay=1.5), ValueError, "decay"),
    (dict(offset=0.0), ValueError, "offset"),
    (dict(gamma_threshold=-1.0), ValueError, "gamma_threshold"),
    (dict(minimum_probability=2.0), ValueError, "minimum_probability"),
    (dict(alpha="uniform"), ValueError, "alpha must be one of"),
    (dict(alpha=[0.1, 0.2]), ValueError, r"alpha has shape \(2,\)"),
    (dict(alpha=-0.1), ValueError, "alpha must be positive"),
    (dict(alpha=1e39), ValueError, r"alpha must lie between .* in the model's dtype \(float32\), got 1e\+39"),
    (dict(alpha=1e-39), ValueError, r"alpha must lie between 1.175e-38 and"),
    (dict(eta=[1e-300] * V, dtype=np.float32), ValueError, r"eta must lie between .* \(float32\)"),
    (dict(eta=np.ones(V + 1)), ValueError, "eta has shape"),
    (dict(eta=-1.0), ValueError, "eta must be positive"),
    (dict(eta="asymmetric"), ValueError, "eta='asymmetric'"),
    (dict(dtype=np.float16), ValueError, "dtype must be"),
    (dict(dtype="int32"), ValueError, "dtype must be"),
    (dict(random_state=-3), ValueError, "random_state"),
    (dict(random_state="seed"), TypeError, "random_state"),
    (dict(threads=0), ValueError, "threads must be at least 1"),
])
def test_bad_parameters_are_named(kwargs, error, match):
    params = dict(num_topics=3, id2word=VOCAB)
    params.update(kwargs)
    with pytest.raises(error, match=match):
        LdaModel(**params)


def test_vocabulary_problems():
    with pytest.raises(ValueError, match="corpus or id2word"):
        LdaModel()
    with pytest.raises(ValueError, match="empty vocabulary"):
        LdaModel(id2word={})
    for keys in ({"a": "b"}, {0: "a", -1: "b"}, {True: "a"}, {1.0: "a"}, {np.int32(-2): "a"}):
        with pytest.raises(ValueError, match=r"id2word keys must be non-negative integer ids, found"):
            LdaModel(id2word=keys)


def test_vocabulary_size_from_integer_ids_of_any_integer_type():
    from distlda.validation import num_terms_of

    assert num_terms_of({np.int64(3): "a", 1: "b"}) == 4
    assert num_terms_of({i: str(i) for i in range(50_000)}) == 50_000


def test_bad_update_overrides_leave_model_unchanged(trained):
    model, docs = trained
    fp = _fingerprint(model)
    with pytest.raises(ValueError, match="chunksize"):
        model.update(docs, chunksize=-1)
    with pytest.raises(ValueError, match="decay"):
        model.update(docs, decay=2.0)
    _assert_unchanged(model, fp)


def test_bad_queries(trained):
    model, docs = trained
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.get_document_topics([(V + 5, 1.0)])
    with pytest.raises(ValueError, match="negative count"):
        model[[(1, -1.0)]]
    with pytest.raises(TypeError, match="string"):
        model["hello world"]
    with pytest.raises(ValueError, match="word_id"):
        model.get_term_topics(V)
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        model.get_term_topics("nonexistent")



@pytest.mark.parametrize("kept", ["in memory", "on disk"])
@pytest.mark.parametrize("count", [1e38, 1e39])
def test_counts_too_large_for_float32_are_refused_and_the_model_restored(count, kept, monkeypatch):
    """1e39 does not fit float32 at all; 1e38 does, but the statistics it makes overflow: both are bad input.
    The statistics before the update come back from memory, or from the file a large model keeps them in."""
    from distlda.core.mstep import NonFiniteStatistics

    if kept == "on disk":
        monkeypatch.setattr("distlda.io.spill.SPILL_BYTES", 0)

    docs = [[(0, 1.0), (1, 2.0)], [(1, 1.0), (2, 3.0)]] * 5
    model = LdaModel(docs, id2word={0: "a", 1: "b", 2: "c"}, num_topics=2, random_state=1, passes=1)
    before = (model.state.sstats.copy(), model.alpha.copy(), model.num_updates, model.expElogbeta.copy())
    bad = docs + [[(0, 1.0), (2, count)]] + docs
    with pytest.raises(ValueError, match="too large for float32|too large for a float32") as info:
        model.update(bad)
    if count == 1e39:
        assert "document 10" in str(info.value) and "term 2" in str(info.value)
    else:
        assert isinstance(info.value, NonFiniteStatistics)
    np.testing.assert_array_equal(model.state.sstats, before[0])
    np.testing.assert_array_equal(model.alpha, before[1])
    assert model.num_updates == before[2]
    np.testing.assert_array_equal(model.expElogbeta, before[3])
    assert np.isfinite(model.get_topics()).all()


def test_a_model_too_big_for_this_machine_is_refused_before_allocating():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MemoryError, match=r"LdaModel: 1000000 topics over 1000000 terms need about .* GB is available"):
        LdaModel(None, id2word={i: str(i) for i in range(1_000_000)}, num_topics=1_000_000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB: nothing K x V was made


def test_memory_check_false_insists(monkeypatch):
    monkeypatch.setattr("distlda.models.ldamodel.available_memory", lambda: 1000)  # a machine with 1 kB free
    with pytest.raises(MemoryError, match="0.0 GB is available"):
        LdaModel(None, id2word={0: "a", 1: "b"}, num_topics=2)
    model = LdaModel(None, id2word={0: "a", 1: "b"}, num_topics=2, memory_check=False)
    assert model.state.sstats.shape == (2, 2)
