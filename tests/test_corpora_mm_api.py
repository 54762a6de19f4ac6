"""MmCorpus as gensim's drop-in: file objects, empty files, index/docbyoffset, views, serialize's index file."""

from __future__ import annotations

import io
import pickle
import pickletools

import gensim.corpora
import numpy as np
import pytest

import distlda.corpora.mmcorpus as mm
from distlda.corpora import MmCorpus
from distlda.corpora.mmwrite import write_corpus, write_gensim_index
from distlda.corpora.view import CorpusIndexError, CorpusView

# empty documents first, inside, in long runs and last; non-integral values so that
# distlda's and gensim's files are the same bytes
DOCS = ([[], [(1, 0.5)], [], [], [(0, 1.5), (4, 2.25)]] + [[]] * 40 + [[(2, 0.125)], [(3, 0.75), (4, 0.5)]]
        + [[(i % 5, i + 0.5)] if i % 3 else [] for i in range(60)] + [[]])


@pytest.fixture
def small_blocks(monkeypatch):
    """Tiny blocks and bag-of-words chunks, so documents and runs of empty ones straddle their ends."""
    monkeypatch.setattr(mm, "_BLOCK_BYTES", 64)
    monkeypatch.setattr(mm, "_INDEX_BLOCK_BYTES", 48)
    monkeypatch.setattr(mm, "_BOW_CHUNK_DOCS", 7)
    monkeypatch.setattr(mm, "_BOW_PIECE_ENTRIES", 3)


@pytest.fixture
def files(tmp_path):
    """The same corpus serialized by distlda and by gensim."""
    ours, theirs = tmp_path / "ours.mm", tmp_path / "theirs.mm"
    MmCorpus.serialize(ours, DOCS)
    gensim.corpora.MmCorpus.serialize(str(theirs), DOCS)
    return ours, theirs


def test_serialize_writes_gensims_file_and_index(files):
    ours, theirs = files
    assert ours.read_bytes() == theirs.read_bytes()
    # reading our own index file back here is a test of its bytes, not something distlda does
    assert pickle.loads(ours.with_suffix(".mm.index").read_bytes()) == pickle.loads(
        theirs.with_suffix(".mm.index").read_bytes())
    reader = gensim.corpora.MmCorpus(str(ours))
    assert reader.index is not None and [reader[i] for i in range(len(DOCS))] == DOCS


@pytest.mark.parametrize("which", [0, 1], ids=["distlda-file", "gensim-file"])
def test_index_and_docbyoffset_as_gensim(files, which, small_blocks):
    path = files[which]
    expected = pickle.loads(path.with_suffix(".mm.index").read_bytes())
    corpus = MmCorpus(path)
    assert corpus.index.tolist() == expected
    assert [corpus.docbyoffset(offset) for offset in corpus.index] == DOCS
    assert corpus.docbyoffset(-1) == []
    with pytest.raises(ValueError, match=f"{path}: byte offset 3 is not in the body"):
        corpus.docbyoffset(3)


def test_bow_iteration_gives_new_lists(files, small_blocks):
    corpus = MmCorpus(files[0])
    docs = list(corpus)
    assert docs == DOCS
    docs[2].append((9, 9.0))  # one empty document changed: no other one
    assert docs[3] == [] and list(corpus)[2] == []


@pytest.mark.parametrize("selection", [slice(None), slice(2, 50), slice(None, None, 3), slice(-5, None),
                                       slice(None, None, -1), slice(40, 2, -7), slice(7, 7), [3, 1, 4, 1, -1],
                                       [0, 0, 2], [], np.array([5, 6, -2]), np.array([], dtype=np.int64)])
def test_views_select_like_lists(files, selection, small_blocks):
    corpus = MmCorpus(files[0])
    view = corpus[selection]
    rows = range(len(DOCS))[selection] if isinstance(selection, slice) else list(selection)
    expected = [DOCS[i] for i in rows]
    assert isinstance(view, CorpusView) and len(view) == len(expected)
    assert list(view) == expected and list(view) == expected  # iterable again
    if len(expected) > 1:
        assert list(view[1:]) == expected[1:] and view[-1] == expected[-1] and list(view[[1, 0]]) == expected[1::-1]


@pytest.mark.parametrize("selection, exc, match", [
    (1.0, CorpusIndexError, "not float"), ({1}, CorpusIndexError, "not set"), ("1", CorpusIndexError, "not str"),
    (np.array([1.0]), CorpusIndexError, "one-dimensional integers"),
    (np.array([[1]]), CorpusIndexError, "one-dimensional integers"),
    ([0, 200], IndexError, "document 200 is out of range"), (-200, IndexError, "document -200 is out of range"),
])
def test_bad_selections(files, selection, exc, match):
    corpus = MmCorpus(files[0])
    with pytest.raises(exc, match=match):
        corpus[selection]
    assert issubclass(CorpusIndexError, TypeError) and issubclass(CorpusIndexError, ValueError)


def test_index_can_be_replaced_or_removed(files):
    corpus = MmCorpus(files[0])
    corpus.index = [corpus.index[4]] * len(DOCS)  # gensim reads documents through its index
    assert corpus[0] == DOCS[4]
    corpus.index = None
    assert len(corpus) == len(DOCS)
    for selection in (3, slice(1, 2), [1]):
        with pytest.raises(RuntimeError, match="without an index"):
            corpus[selection]


@pytest.mark.parametrize("mode", ["rb", "r"])
def test_file_objects(files, mode, small_blocks):
    with open(files[1], mode) as fh:
        corpus = MmCorpus(fh)
        assert list(corpus) == DOCS and list(corpus) == DOCS and corpus[4] == DOCS[4]
        assert corpus.fname == str(files[1]) and not fh.closed
    with pytest.raises(TypeError, match="text stream without a binary buffer"):
        MmCorpus(io.StringIO(files[1].read_text()))
    stream = io.BytesIO(files[1].read_bytes())
    assert list(MmCorpus(stream)) == DOCS and not stream.closed


def test_empty_file_is_an_empty_corpus(tmp_path):
    (tmp_path / "e.mm").write_bytes(b"")
    corpus = MmCorpus(tmp_path / "e.mm")
    assert (len(corpus), corpus.num_terms, corpus.num_nnz) == (0, 0, 0)
    assert list(corpus) == [] and list(corpus.iter_chunks(3)) == [] and len(corpus.index) == 0
    with pytest.raises(IndexError):
        corpus[0]


def test_serialize_options(tmp_path):
    index = tmp_path / "elsewhere.idx"
    MmCorpus.serialize(tmp_path / "c.mm.gz", DOCS, index_fname=index, progress_cnt=10)
    assert not (tmp_path / "c.mm.gz.index").exists()
    corpus = MmCorpus(tmp_path / "c.mm.gz")
    assert pickle.loads(index.read_bytes()) == corpus.index.tolist()
    assert [corpus.docbyoffset(o) for o in corpus.index] == DOCS  # offsets in the uncompressed text
    assert MmCorpus.save_corpus(tmp_path / "s.mm", DOCS) == corpus.index.tolist()
    with pytest.raises(TypeError, match="no class labels"):
        MmCorpus.serialize(tmp_path / "x.mm", DOCS, labels=[1] * len(DOCS))
    MmCorpus.serialize(tmp_path / "m.mm", DOCS, metadata=True)  # a corpus without metadata: ignored, as gensim
    assert list(MmCorpus(tmp_path / "m.mm")) == DOCS

    class WithMetadata(list):
        metadata = False

    with pytest.raises(NotImplementedError, match="pickle"):
        MmCorpus.serialize(tmp_path / "x.mm", WithMetadata(DOCS), metadata=True)
    assert not (tmp_path / "x.mm").exists()


@pytest.mark.parametrize("offsets", [[], [97, -1, 300, 2 ** 31 - 1], [5, -1, 2 ** 40, -(2 ** 33)]])
def test_index_file_is_a_plain_list_pickle(tmp_path, offsets):
    write_gensim_index(tmp_path / "i", np.array(offsets, dtype=np.int64))
    data = (tmp_path / "i").read_bytes()
    opcodes = {op.name for op, _, _ in pickletools.genops(data)}
    assert opcodes <= {"PROTO", "EMPTY_LIST", "MARK", "BININT", "LONG1", "APPENDS", "STOP"}
    assert pickle.loads(data) == offsets


@pytest.mark.parametrize("body, match", [
    (b"1 1 1\n3 2 1\n", r"truncated or corrupt, the header declares 3 entries but the file holds 2"),
    (b"1 1 1\n2 1 1\n3 1 1\n3 2 1\n", "more entries than the 3 declared"),
])
def test_entry_count_errors_name_the_file(tmp_path, body, match):
    path = tmp_path / "bad.mm"
    path.write_bytes(mm.HEADER_LINE + b"3 4 3\n" + body)
    for read in (list, lambda c: c.index, lambda c: c[2]):
        with pytest.raises(ValueError, match=match) as info:
            read(MmCorpus(path))
        assert str(path) in str(info.value)


def test_truncated_file_yields_what_it_holds_before_failing(tmp_path):
    path = tmp_path / "t.mm"
    path.write_bytes(mm.HEADER_LINE + b"3 4 5\n1 1 1\n3 2 1\n")
    docs = iter(MmCorpus(path))
    assert [next(docs), next(docs), next(docs)] == [[(0, 1.0)], [], [(1, 1.0)]]
    with pytest.raises(ValueError, match="header declares 5 entries but the file holds 2"):
        next(docs)


def test_docbyoffset_errors_name_the_offset(tmp_path):
    path = tmp_path / "b.mm"
    path.write_bytes(mm.HEADER_LINE + b"2 4 2\n1 1 1\n2 x 1\n")
    corpus = MmCorpus(path)
    offset = len(mm.HEADER_LINE) + 6 + 6
    with pytest.raises(ValueError, match=rf"{path} \(from byte offset {offset}\), line 1: not numeric"):
        corpus.docbyoffset(offset)


def test_write_corpus_offsets_match_the_file(tmp_path):
    offsets = write_corpus(tmp_path / "w.mm", DOCS)
    assert offsets.dtype == np.int64 and offsets.tolist() == MmCorpus(tmp_path / "w.mm").index.tolist()


@pytest.mark.parametrize("chunk_docs, piece_entries", [(1, 1), (3, 2), (64, 5), (64, 1000), (1 << 16, 1 << 14)])
def test_bow_pieces_and_empty_runs(tmp_path, monkeypatch, chunk_docs, piece_entries):
    rng = np.random.default_rng(chunk_docs * 7 + piece_entries)
    lengths = np.where(rng.random(400) < 0.6, 0, rng.integers(1, 6, 400))
    lengths[100:180] = 0  # one run far longer than _MIN_EMPTY_RUN
    docs = [[(int(t), float(t) + 0.5) for t in sorted(rng.choice(9, size=k, replace=False))] for k in lengths]
    write_corpus(tmp_path / "r.mm", docs)
    monkeypatch.setattr(mm, "_BOW_CHUNK_DOCS", chunk_docs)
    monkeypatch.setattr(mm, "_BOW_PIECE_ENTRIES", piece_entries)
    assert list(MmCorpus(tmp_path / "r.mm")) == docs


def test_truncated_file_fails_before_the_last_chunk(tmp_path):
    path = tmp_path / "t.mm"
    path.write_bytes(mm.HEADER_LINE + b"4 4 5\n1 1 1\n3 2 1\n")
    chunks = MmCorpus(path).iter_chunks(2)
    assert next(chunks).n_docs == 2  # complete before the end of the entries
    with pytest.raises(ValueError, match="header declares 5 entries but the file holds 2"):
        next(chunks)  # documents 2 and 3 are not handed to a model
