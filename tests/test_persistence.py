"""Saving and loading models: round trips, memory mapping, refusal of foreign files."""

import pickle

import numpy as np
import pytest
from conftest import flip_array_byte, random_docs

from distlda.models import LdaModel


def test_roundtrip_with_dictionary_and_mmap(tmp_path, toy_corpus):
    corpus, dictionary = toy_corpus
    model = LdaModel(corpus, id2word=dictionary, num_topics=3, passes=2, random_state=0, alpha="auto")
    path = tmp_path / "model.lda"
    model.save(str(path))
    for mmap in (None, "r", "c"):
        loaded = LdaModel.load(str(path), mmap=mmap)
        np.testing.assert_array_equal(loaded.state.sstats, model.state.sstats)
        np.testing.assert_array_equal(loaded.expElogbeta, model.expElogbeta)
        np.testing.assert_array_equal(loaded.alpha, model.alpha)
        assert loaded.num_updates == model.num_updates and loaded.optimize_alpha
        assert loaded.id2word.token2id == dictionary.token2id
        assert loaded.id2word.dfs == dictionary.dfs
        assert loaded.print_topics() == model.print_topics()
        assert loaded[corpus[0]] == model[corpus[0]]
        assert loaded.distributed is False
    mapped = LdaModel.load(str(path), mmap="r")
    assert isinstance(mapped.state.sstats_wm, np.memmap)
    mapped.update(corpus)  # a read-only mapped model can still be trained (it copies first)
    assert mapped.num_updates == model.num_updates + len(corpus)
    np.testing.assert_array_equal(LdaModel.load(str(path)).state.sstats, model.state.sstats)


def test_loaded_model_continues_training_like_the_original(tmp_path, rng):
    docs = random_docs(rng, 200, 30)
    vocab = {i: f"w{i}" for i in range(30)}
    model = LdaModel(docs[:100], num_topics=3, id2word=vocab, chunksize=25, random_state=9)
    model.save(tmp_path / "m")
    loaded = LdaModel.load(tmp_path / "m")
    model.update(docs[100:])
    loaded.update(docs[100:])
    np.testing.assert_array_equal(model.state.sstats, loaded.state.sstats)
    assert isinstance(loaded.id2word, dict) and loaded.id2word[4] == "w4"


def test_refuses_pickles_and_other_files(tmp_path):
    bad = tmp_path / "gensim.model"
    bad.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ValueError, match="not a distlda file"):
        LdaModel.load(str(bad))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="cannot load an LdaModel"):
        LdaModel.load(str(text))
    truncated = tmp_path / "trunc.lda"
    model = LdaModel(id2word={0: "a", 1: "b"}, num_topics=2, random_state=0)
    model.save(truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        LdaModel.load(str(truncated))


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous file intact."""
    model = LdaModel(id2word={0: "a", 1: "b"}, num_topics=2, random_state=0)
    path = tmp_path / "m.lda"
    model.save(path)
    good = path.read_bytes()
    import distlda.io.container as container

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(container.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        LdaModel(id2word={0: "x", 1: "y"}, num_topics=2, random_state=1).save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.lda"]


@pytest.mark.parametrize("mmap", [None, "r"])
def test_a_flipped_bit_in_a_saved_model_is_found_and_named(tmp_path, mmap):
    from distlda.models import LdaModel
    from distlda.test.utils import common_corpus, common_dictionary

    path = tmp_path / "model.lda"
    LdaModel(common_corpus, id2word=common_dictionary, num_topics=2, random_state=0).save(str(path))
    flip_array_byte(path, "sstats_wm", byte=3, mask=0x40)
    with pytest.raises(ValueError, match=f"{path}.*'sstats_wm'"):
        LdaModel.load(str(path), mmap=mmap, verify=True)
