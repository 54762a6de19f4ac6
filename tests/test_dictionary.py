"""Dictionary: agreement with gensim 4, persistence without pickle, and input checks."""

from __future__ import annotations

import bz2
import gzip
import itertools
import os
import pickle
from pathlib import Path

import gensim.corpora
import pytest

from distlda.corpora import Dictionary
from distlda.corpora.text import iter_lines, tokenize
from distlda.test.utils import common_corpus, common_texts

# the shared data folder sits next to the repository (../shared/data); DISTLDA_DATA points elsewhere
DATA = Path(os.environ.get("DISTLDA_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
DEBIAN = DATA / "debian-descriptions.txt.gz"


@pytest.fixture(scope="module")
def debian_texts() -> list[list[str]]:
    if not DEBIAN.is_file():
        pytest.skip(f"{DEBIAN} is absent: set DISTLDA_DATA to the folder holding debian-descriptions.txt.gz")
    return [tokenize(line) for line in itertools.islice(iter_lines(DEBIAN), 3000)]


def assert_same(ours: Dictionary, theirs: gensim.corpora.Dictionary) -> None:
    """Same ids, statistics and even the same dict orders as gensim's."""
    assert list(ours.token2id.items()) == list(theirs.token2id.items())
    assert list(ours.dfs.items()) == list(theirs.dfs.items())
    assert list(ours.cfs.items()) == list(theirs.cfs.items())
    assert (ours.num_docs, ours.num_pos, ours.num_nnz) == (theirs.num_docs, theirs.num_pos, theirs.num_nnz)
    assert_consistent(ours)


def assert_consistent(d: Dictionary) -> None:
    assert d.id2token == {i: t for t, i in d.token2id.items()}
    assert sorted(d.token2id.values()) == list(range(len(d)))


@pytest.mark.parametrize("which", ["common", "debian"])
def test_build_agrees_with_gensim(which, debian_texts):
    texts = common_texts if which == "common" else debian_texts
    ours, theirs = Dictionary(texts), gensim.corpora.Dictionary(texts)
    assert_same(ours, theirs)
    assert [ours.doc2bow(t) for t in texts] == [theirs.doc2bow(t) for t in texts]
    probe = texts[3] + ["never-seen", "unknown", "unknown"]
    assert ours.doc2bow(probe, return_missing=True) == theirs.doc2bow(probe, return_missing=True)
    assert ours.doc2idx(probe) == theirs.doc2idx(probe)
    assert ours.doc2idx(probe, unknown_word_index=99) == theirs.doc2idx(probe, unknown_word_index=99)
    assert ours.most_common(7) == theirs.most_common(7)
    assert ours.most_common() == theirs.most_common()
    assert str(ours) == str(theirs)


def test_incremental_updates_agree_with_gensim(debian_texts):
    ours, theirs = Dictionary(), gensim.corpora.Dictionary()
    for text in debian_texts[:300]:
        assert ours.doc2bow(text, allow_update=True) == theirs.doc2bow(text, allow_update=True)
    assert ours.doc2bow(["zz", "aa", "zz"], allow_update=True, return_missing=True) == \
        theirs.doc2bow(["zz", "aa", "zz"], allow_update=True, return_missing=True)
    for batch in (debian_texts[300:1000], debian_texts[1000:1001], [], [[]]):
        ours.add_documents(batch)
        theirs.add_documents(batch)
    assert_same(ours, theirs)


def test_generators_and_bytes_tokens():
    ours = Dictionary(iter([iter(["a", "b"]), ("b", b"c"), [b"\xc3\xa9t\xc3\xa9"]]))
    theirs = gensim.corpora.Dictionary([["a", "b"], ["b", "c"], ["été"]])
    assert_same(ours, theirs)
    assert ours.doc2bow([b"a", "b", b"a"]) == [(0, 2), (1, 1)]


@pytest.mark.parametrize("kwargs", [
    {},
    {"no_below": 2, "no_above": 0.3, "keep_n": 500},
    {"no_below": 1, "no_above": 1.0, "keep_n": None},
    {"no_below": 20, "no_above": 0.05, "keep_n": 50, "keep_tokens": ["the", "package", "library", "nonexistent"]},
    {"no_below": 0, "no_above": 0.0, "keep_n": 0},
])
def test_filter_extremes_agrees_with_gensim(kwargs, debian_texts):
    ours, theirs = Dictionary(debian_texts), gensim.corpora.Dictionary(debian_texts)
    ours.filter_extremes(**kwargs)
    theirs.filter_extremes(**kwargs)
    assert_same(ours, theirs)
    assert [ours.doc2bow(t) for t in debian_texts[:50]] == [theirs.doc2bow(t) for t in debian_texts[:50]]


def test_filter_extremes_on_common_texts():
    ours, theirs = Dictionary(common_texts), gensim.corpora.Dictionary(common_texts)
    ours.filter_extremes(no_below=2, no_above=0.4)
    theirs.filter_extremes(no_below=2, no_above=0.4)
    assert_same(ours, theirs)


def test_filter_n_most_frequent_filter_tokens_compactify(debian_texts):
    ours, theirs = Dictionary(debian_texts), gensim.corpora.Dictionary(debian_texts)
    ours.filter_n_most_frequent(25)
    theirs.filter_n_most_frequent(25)
    assert_same(ours, theirs)
    bad, good = [0, 5, 17, 10**6], list(range(3, 800, 3))
    ours.filter_tokens(bad_ids=bad, good_ids=good)
    theirs.filter_tokens(bad_ids=bad, good_ids=good)
    assert_same(ours, theirs)
    ours.compactify()
    assert_consistent(ours)


def test_pruning_agrees_with_gensim(debian_texts):
    ours, theirs = Dictionary(prune_at=800), gensim.corpora.Dictionary(prune_at=800)
    for lo in range(0, 3000, 400):  # the check runs at the start of every call
        ours.add_documents(debian_texts[lo:lo + 400], prune_at=800)
        theirs.add_documents(debian_texts[lo:lo + 400], prune_at=800)
    assert len(ours) < len(Dictionary(debian_texts))
    assert_same(ours, theirs)


def test_merge_with_agrees_with_gensim(debian_texts):
    ours_a, ours_b = Dictionary(debian_texts[:200]), Dictionary(debian_texts[200:400])
    theirs_a, theirs_b = (gensim.corpora.Dictionary(debian_texts[:200]),
                          gensim.corpora.Dictionary(debian_texts[200:400]))
    transform = ours_a.merge_with(ours_b)
    their_transform = theirs_a.merge_with(theirs_b)
    assert ours_a.token2id == theirs_a.token2id
    assert ours_a.dfs == theirs_a.dfs
    assert (ours_a.num_docs, ours_a.num_pos, ours_a.num_nnz) == (theirs_a.num_docs, theirs_a.num_pos, theirs_a.num_nnz)
    assert_consistent(ours_a)
    bows = [ours_b.doc2bow(t) for t in debian_texts[200:220]]
    assert [transform[b] for b in bows] == [their_transform[b] for b in bows]
    assert list(transform[bows]) == [their_transform[b] for b in bows]
    assert transform[bows[0]] == ours_a.doc2bow(debian_texts[200])
    plain = Dictionary([["x"]])
    plain.merge_with({0: "y", 1: "x"})
    assert plain.token2id == {"x": 0, "y": 1} and plain.dfs == {0: 1, 1: 0}


@pytest.mark.parametrize("use_id2word", [False, True])
def test_from_corpus_agrees_with_gensim(use_id2word):
    id2word = dict(Dictionary(common_texts).id2token) if use_id2word else None
    corpus = common_corpus + [[], [(30, 2.0)]] if not use_id2word else common_corpus
    ours = Dictionary.from_corpus(corpus, id2word=id2word)
    theirs = gensim.corpora.Dictionary.from_corpus(corpus, id2word=id2word)
    assert ours.token2id == theirs.token2id
    assert ours.dfs == theirs.dfs
    assert (ours.num_docs, ours.num_pos, ours.num_nnz) == (theirs.num_docs, theirs.num_pos, theirs.num_nnz)
    assert ours.cfs == Dictionary(common_texts).cfs | ({30: 2} if not use_id2word else {})  # gensim leaves cfs empty
    assert_consistent(ours)


def test_from_documents_and_mapping_api():
    d = Dictionary.from_documents(common_texts)
    assert len(d) == 12 and list(d) == list(range(12)) and d.keys() == list(range(12))
    assert d[0] == "computer" and 0 in d and 12 not in d and "computer" not in d
    assert list(d.items())[:2] == [(0, "computer"), (1, "human")]
    assert list(d.values()) == [d[i] for i in range(12)]
    with pytest.raises(KeyError):
        d[12]
    d.token2id["added-by-hand"] = 12  # gensim code does this; id2token follows on next use
    assert d[12] == "added-by-hand"


def test_patch_with_special_tokens_agrees_with_gensim():
    texts = [["máma", "mele", "maso"], ["ema", "má", "máma"]]
    ours, theirs = Dictionary(texts), gensim.corpora.Dictionary(texts)
    ours.patch_with_special_tokens({"pad": 0, "space": 1, "má": 3})
    theirs.patch_with_special_tokens({"pad": 0, "space": 1, "má": 3})
    assert ours.token2id == theirs.token2id
    assert ours.id2token == {i: t for t, i in ours.token2id.items()}


def test_save_load_roundtrip(tmp_path, debian_texts):
    d = Dictionary(debian_texts[:500] + [["ünïcödé", "日本語", "emoji😀"]])
    d.filter_extremes(no_below=1, no_above=0.9, keep_n=3000)
    d.merge_with({0: "extra"})
    fname = tmp_path / "dict.bin"
    d.save(fname)
    assert b"pickle" not in fname.read_bytes()[:8]
    loaded = Dictionary.load(str(fname))
    for attr in ("token2id", "id2token", "dfs", "cfs"):
        assert list(getattr(loaded, attr).items()) == list(getattr(d, attr).items()), attr
    assert (loaded.num_docs, loaded.num_pos, loaded.num_nnz) == (d.num_docs, d.num_pos, d.num_nnz)
    embedded = Dictionary._from_arrays(*d._to_arrays())  # the form model files embed
    assert list(embedded.token2id.items()) == list(d.token2id.items()) and embedded.cfs == d.cfs
    empty = Dictionary()
    empty.save(tmp_path / "empty")
    assert len(Dictionary.load(tmp_path / "empty")) == 0


def test_load_refuses_pickles_and_other_files(tmp_path):
    gensim_file = tmp_path / "gensim.dict"
    gensim.corpora.Dictionary(common_texts).save(str(gensim_file))
    with pytest.raises(ValueError, match="Pickled gensim dictionaries are not read"):
        Dictionary.load(gensim_file)
    other = tmp_path / "plain.bin"
    other.write_bytes(pickle.dumps({"not": "a dictionary"}))
    with pytest.raises(ValueError, match="not a distlda file"):
        Dictionary.load(other)


@pytest.mark.parametrize("sort_by_word", [True, False])
def test_text_format_matches_gensim(tmp_path, sort_by_word, debian_texts):
    texts = debian_texts[:200]
    ours, theirs = Dictionary(texts), gensim.corpora.Dictionary(texts)
    ours.save_as_text(tmp_path / "ours.txt", sort_by_word=sort_by_word)
    theirs.save_as_text(str(tmp_path / "theirs.txt"), sort_by_word=sort_by_word)
    assert (tmp_path / "ours.txt").read_bytes() == (tmp_path / "theirs.txt").read_bytes()
    loaded = Dictionary.load_from_text(tmp_path / "theirs.txt")
    expected = gensim.corpora.Dictionary.load_from_text(str(tmp_path / "ours.txt"))
    assert loaded.token2id == expected.token2id and loaded.dfs == expected.dfs
    assert loaded.num_docs == expected.num_docs == 200
    assert_consistent(loaded)


def test_load_from_text_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("3\n0\tfoo\t2\n1 bar 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt, line 3: expected 'id<TAB>token<TAB>docfreq'"):
        Dictionary.load_from_text(bad)
    bad.write_text("3\n0\tfoo\tmany\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        Dictionary.load_from_text(bad)
    bad.write_text("0\tfoo\t2\n1\tfoo\t1\n", encoding="utf-8")  # no num_docs line, as old gensim files
    with pytest.raises(ValueError, match="line 2: token 'foo' is defined as id 1 and as id 0"):
        Dictionary.load_from_text(bad)


@pytest.mark.parametrize("call, exc, match", [
    (lambda d: d.doc2bow("human interface"), TypeError, "not a single string"),
    (lambda d: d.doc2idx("human"), TypeError, "not a single string"),
    (lambda d: d.add_documents(["human interface"]), TypeError, "document 0: expected a list of tokens"),
    (lambda d: d.add_documents([["a"], None]), TypeError, "document 1: expected a list of str tokens, got NoneType"),
    (lambda d: d.add_documents([["a"], 5]), TypeError, "document 1: .* got int"),
    (lambda d: d.add_documents([["a"], ["b", 3]]), TypeError, "document 1: token 3 is a int"),
    (lambda d: d.add_documents([["a", ["b"]]]), TypeError, r"document 0: token \['b'\] is a list"),
    (lambda d: d.doc2bow(["a", 2.5], allow_update=True), TypeError, "token 2.5 is a float"),
    (lambda d: d.add_documents([["a"]], prune_at=-1), ValueError, "prune_at"),
    (lambda d: d.filter_extremes(no_above=1.5), ValueError, "no_above"),
    (lambda d: d.filter_extremes(no_below=-1), ValueError, "no_below"),
    (lambda d: d.filter_extremes(keep_n=-3), ValueError, "keep_n"),
    (lambda d: d.filter_extremes(keep_tokens="human"), TypeError, "keep_tokens"),
    (lambda d: d.filter_n_most_frequent(-1), ValueError, "remove_n"),
])
def test_bad_input_is_named(call, exc, match):
    d = Dictionary(common_texts)
    with pytest.raises(exc, match=match):
        call(d)


def test_python2_iteration_names():
    d = Dictionary(common_texts)
    for name, expected in (("iteritems", d.items()), ("iterkeys", d.keys()), ("itervalues", d.values())):
        it = getattr(d, name)()
        assert iter(it) is it and list(it) == list(expected)


def test_save_accepts_gensims_options(tmp_path):
    d = Dictionary(common_texts)
    d.save(tmp_path / "d", separately=["dfs"], sep_limit=0, ignore={"cfs"}, pickle_protocol=2)
    loaded = Dictionary.load(tmp_path / "d")
    assert loaded.token2id == d.token2id and loaded.cfs == d.cfs  # no attribute is pickled, none left out
    assert not (tmp_path / "d").read_bytes().startswith(b"\x80")  # not a pickle


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_text_format_compressed_both_ways(tmp_path, suffix):
    ours, theirs = Dictionary(common_texts), gensim.corpora.Dictionary(common_texts)
    ours.save_as_text(tmp_path / f"ours.txt{suffix}")
    theirs.save_as_text(str(tmp_path / f"theirs.txt{suffix}"))
    plain = tmp_path / "plain.txt"
    ours.save_as_text(plain)
    opener = gzip.open if suffix == ".gz" else bz2.open
    with opener(tmp_path / f"ours.txt{suffix}", "rb") as fh:
        assert fh.read() == plain.read_bytes()
    for path in (tmp_path / f"ours.txt{suffix}", tmp_path / f"theirs.txt{suffix}"):
        assert Dictionary.load_from_text(path).token2id == theirs.token2id
    assert gensim.corpora.Dictionary.load_from_text(str(tmp_path / f"ours.txt{suffix}")).token2id == theirs.token2id
    bad = tmp_path / f"bad.txt{suffix}"
    with opener(bad, "wb") as fh:
        fh.write(b"3\n0\tfoo\t2\n1 bar 1\n")
    with pytest.raises(ValueError, match=rf"bad.txt\{suffix}, line 3: expected"):
        Dictionary.load_from_text(bad)
