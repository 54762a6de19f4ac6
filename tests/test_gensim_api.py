"""gensim's interface details that a drop-in needs: LdaMulticore, return types, random_state, priors, save options."""

from __future__ import annotations

import bz2
import gzip
import inspect
import numbers

import numpy as np
import pytest

from distlda.corpora import Dictionary
from distlda.models import LdaModel, LdaMulticore
from distlda.models.parameters import PriorShapeError
from distlda.test.utils import common_corpus, common_dictionary, common_texts


def _model(cls=LdaModel, **kwargs):
    settings = dict(id2word=common_dictionary, num_topics=3, passes=5, random_state=7)
    settings.update(kwargs)
    return cls(common_corpus, **settings)


# ---------------------------------------------------------------- LdaMulticore


def test_multicore_gives_the_same_model_for_any_workers_and_as_ldamodel():
    one, two = _model(LdaMulticore, workers=1), _model(LdaMulticore, workers=2)
    reference = _model(LdaModel, threads=1)
    assert one.workers == 1 and two.workers == 2
    np.testing.assert_array_equal(one.get_topics(), two.get_topics())
    np.testing.assert_array_equal(one.get_topics(), reference.get_topics())


def test_multicore_batch_is_ldamodel_batch_learning():
    batch = _model(LdaMulticore, batch=True, chunksize=4)
    assert batch.batch and batch.update_every == 0
    np.testing.assert_array_equal(batch.get_topics(), _model(update_every=0, chunksize=4).get_topics())


def test_multicore_refuses_auto_alpha_as_gensim():
    with pytest.raises(NotImplementedError, match="LdaModel") as caught:
        LdaMulticore(id2word=common_dictionary, alpha="auto")
    assert isinstance(caught.value, RuntimeError)


def test_multicore_signature_is_gensims():
    gensim_models = pytest.importorskip("gensim.models")
    theirs = list(inspect.signature(gensim_models.LdaMulticore.__init__).parameters.items())
    ours = inspect.signature(LdaMulticore.__init__).parameters
    for name, parameter in theirs:
        assert name in ours, name
        assert ours[name].kind == parameter.kind, name
    assert [n for n, _ in theirs] == list(ours)[:len(theirs)]


def test_multicore_loads_as_multicore(tmp_path):
    model = _model(LdaMulticore, workers=1)
    model.save(tmp_path / "m")
    loaded = LdaMulticore.load(tmp_path / "m")
    assert isinstance(loaded, LdaMulticore) and not loaded.batch
    np.testing.assert_array_equal(loaded.get_topics(), model.get_topics())


# ---------------------------------------------------------------- return types


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_return_types_are_gensims(dtype):
    model = _model(dtype=dtype)
    for word_id, p in model.get_topic_terms(0, 4):
        assert isinstance(word_id, np.integer) and type(p) is dtype
    for topic, p in model.get_document_topics(common_corpus[1], minimum_probability=0.0):
        assert type(topic) is int and type(p) is dtype
    topics, word_topics, word_phis = model.get_document_topics(common_corpus[1], per_word_topics=True,
                                                               minimum_probability=0.0, minimum_phi_value=0.0)
    assert all(isinstance(w, numbers.Integral) and all(type(k) is int for k in ks) for w, ks in word_topics)
    assert all(type(p) is dtype for _, phis in word_phis for _, p in phis)
    assert all(type(p) is dtype for doc in model[common_corpus] for _, p in doc)
    for topic, p in model.get_term_topics(2, minimum_probability=0.0):
        assert type(topic) is int and type(p) is dtype
    for pairs, score in model.top_topics(common_corpus, topn=3):
        assert isinstance(score, float) and all(type(p) is dtype and isinstance(w, str) for p, w in pairs)
    assert all(type(p) is float for _, p in model.show_topic(0))  # as before: plain floats (JSON-ready)


# ---------------------------------------------------------------- random_state and priors


def test_assigning_random_state_reseeds_training_as_gensim():
    a, b = _model(random_state=1), _model(random_state=2)
    b.state.sstats = a.state.sstats.copy()
    b.sync_state()
    a.random_state = np.random.RandomState(0)
    b.random_state = np.random.RandomState(0)
    a.update(common_corpus)
    b.update(common_corpus)
    np.testing.assert_array_equal(a.get_topics(), b.get_topics())
    c = _model(random_state=1)
    c.random_state = 5
    assert isinstance(c.random_state, np.random.RandomState) and c._seed == 5


def test_alpha_none_is_symmetric_and_wrong_shapes_raise_gensims_error():
    model = LdaModel(id2word=common_dictionary, num_topics=4, alpha=None)
    np.testing.assert_allclose(model.alpha, 0.25)
    for kwargs in ({"alpha": [0.3] * 3}, {"alpha": [[0.3]] * 4}, {"eta": np.ones((len(common_dictionary), 4))},
                   {"eta": [0.3] * (len(common_dictionary) + 1)}):
        with pytest.raises(PriorShapeError, match="shape") as caught:
            LdaModel(id2word=common_dictionary, num_topics=4, **kwargs)
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, AssertionError)
    with pytest.raises(ValueError) as caught:
        LdaModel(id2word=common_dictionary, num_topics=4, alpha="gensim is cool")
    assert not isinstance(caught.value, AssertionError)  # a bad word is not a shape


# ---------------------------------------------------------------- save options


@pytest.mark.parametrize("suffix, magic", [(".gz", b"\x1f\x8b"), (".bz2", b"BZh")])
def test_compressed_names_compress_and_refuse_mmap(tmp_path, suffix, magic):
    model = _model()
    path = tmp_path / f"model{suffix}"
    model.save(path, sep_limit=0, separately=["expElogbeta"])
    assert path.read_bytes()[:len(magic)] == magic
    loaded = LdaModel.load(path)
    np.testing.assert_array_equal(loaded.expElogbeta, model.expElogbeta)
    assert loaded[common_corpus[0]] == model[common_corpus[0]]
    with pytest.raises(OSError, match="compressed"):
        LdaModel.load(path, mmap="r")
    opener = gzip.open if suffix == ".gz" else bz2.open
    with opener(path, "rb") as fh:
        plain = tmp_path / "plain"
        plain.write_bytes(fh.read())
    np.testing.assert_array_equal(LdaModel.load(plain, mmap="r").get_topics(), model.get_topics())


def test_a_damaged_compressed_file_is_refused_clearly(tmp_path):
    path = tmp_path / "model.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a distlda model|not a .gz file"):
        LdaModel.load(path)


def test_ignore_leaves_out_what_gensim_leaves_out(tmp_path):
    model = _model()
    model.info["note"] = "kept unless ignored"
    model.save(tmp_path / "a", ignore="id2word")
    loaded = LdaModel.load(tmp_path / "a")
    assert loaded.id2word is None and loaded.show_topic(0, 1)[0][0].isdigit()
    model.save(tmp_path / "b", ignore=["expElogbeta", "info", "state", "dispatcher"])
    loaded = LdaModel.load(tmp_path / "b", mmap="r")
    np.testing.assert_allclose(loaded.expElogbeta, model.expElogbeta, rtol=1e-6)
    assert loaded.info == {} and loaded.id2word.token2id == common_dictionary.token2id
    with pytest.raises(ValueError, match="alpha"):
        model.save(tmp_path / "c", ignore=["alpha"])


def test_a_gensim_dictionary_survives_save_and_load_as_a_dictionary(tmp_path):
    gensim_corpora = pytest.importorskip("gensim.corpora")
    theirs = gensim_corpora.Dictionary(common_texts)
    model = LdaModel(common_corpus, id2word=theirs, num_topics=2, random_state=3)
    model.save(tmp_path / "m")
    loaded = LdaModel.load(tmp_path / "m").id2word
    assert isinstance(loaded, Dictionary)
    assert loaded.token2id == theirs.token2id and loaded.dfs == theirs.dfs and loaded.cfs == theirs.cfs
    assert (loaded.num_docs, loaded.num_pos, loaded.num_nnz) == (theirs.num_docs, theirs.num_pos, theirs.num_nnz)
