"""Coming from gensim: ``LdaModel.from_gensim`` and ``distlda convert-gensim MODEL OUT``."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from distlda.cli.main import main
from distlda.corpora import Dictionary
from distlda.models import LdaModel

gensim_models = pytest.importorskip("gensim.models")
gensim_corpora = pytest.importorskip("gensim.corpora")

from gensim.test.utils import common_texts  # noqa: E402  (after the skip: gensim may be absent)

_DICTIONARY = gensim_corpora.Dictionary(common_texts)
_CORPUS = [_DICTIONARY.doc2bow(text) for text in common_texts]


def _gensim_model(**kwargs):
    settings = dict(id2word=_DICTIONARY, num_topics=3, passes=30, alpha="asymmetric", eta=0.2, iterations=500,
                    gamma_threshold=1e-7, chunksize=4, decay=0.7, random_state=1)
    settings.update(kwargs)
    return gensim_models.LdaModel(_CORPUS, **settings)


def _assert_same_model(ours, theirs):
    np.testing.assert_allclose(ours.get_topics(), theirs.get_topics(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.alpha, theirs.alpha, rtol=1e-7)
    for bow in _CORPUS:
        mine = dict(ours.get_document_topics(bow, minimum_probability=0.0))
        gensim_topics = dict(theirs.get_document_topics(bow, minimum_probability=0.0))
        assert mine.keys() == gensim_topics.keys()
        np.testing.assert_allclose([mine[k] for k in mine], [gensim_topics[k] for k in mine], atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_gensim_keeps_topics_document_topics_settings_and_vocabulary(dtype):
    theirs = _gensim_model(dtype=dtype)
    before = theirs.random_state.get_state()[1].copy()
    ours = LdaModel.from_gensim(theirs)
    np.testing.assert_array_equal(theirs.random_state.get_state()[1], before)  # gensim's model is not changed
    _assert_same_model(ours, theirs)
    assert ours.dtype == np.dtype(dtype) and ours.num_topics == 3
    assert (ours.chunksize, ours.decay, ours.iterations, ours.passes) == (4, 0.7, 500, 30)
    assert ours.state.numdocs == theirs.state.numdocs and ours.num_updates == theirs.num_updates
    assert isinstance(ours.id2word, Dictionary) and ours.id2word.token2id == _DICTIONARY.token2id
    ours.update([_DICTIONARY.doc2bow(["graph", "trees", "survey"])])  # it trains on


def test_from_gensim_takes_the_eta_gensims_topics_use():
    theirs = _gensim_model(eta="auto")
    assert not np.allclose(theirs.eta, theirs.state.eta)  # gensim learned an eta its topics do not use
    ours = LdaModel.from_gensim(theirs)
    assert ours.optimize_eta
    _assert_same_model(ours, theirs)


def test_from_gensim_refuses_what_is_not_an_lda_model():
    with pytest.raises(TypeError, match="gensim LdaModel"):
        LdaModel.from_gensim(gensim_models.TfidfModel(_CORPUS))


def test_convert_gensim_command(tmp_path, capsys):
    theirs = _gensim_model(num_topics=4)
    theirs.save(str(tmp_path / "gensim.lda"))
    assert main(["convert-gensim", str(tmp_path / "gensim.lda"), str(tmp_path / "ours.lda.gz")]) == 0
    assert "4 topics" in capsys.readouterr().out
    _assert_same_model(LdaModel.load(tmp_path / "ours.lda.gz"), theirs)


def test_convert_gensim_command_failures(tmp_path, capsys, monkeypatch):
    assert main(["convert-gensim", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert "not found" in capsys.readouterr().err
    LdaModel(id2word={0: "a", 1: "b"}, num_topics=2).save(tmp_path / "distlda.lda")
    assert main(["convert-gensim", str(tmp_path / "distlda.lda"), str(tmp_path / "out")]) == 1
    assert "gensim could not load" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "gensim.models.ldamodel", None)  # as if gensim were not installed
    assert main(["convert-gensim", str(tmp_path / "distlda.lda"), str(tmp_path / "out")]) == 1
    assert "needs gensim" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
