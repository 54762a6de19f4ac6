"""Matrix Market corpora: agreement with gensim both ways, chunking, round trips and errors."""

from __future__ import annotations

import bz2
import gzip
import tempfile
from pathlib import Path

import gensim.corpora
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import distlda.corpora.mmcorpus as mm
from distlda.corpora import BinaryCorpus, MmCorpus, bow_to_chunk
from distlda.corpora.csr import CsrChunk, concat_chunks
from distlda.corpora.mmcorpus import write_corpus
from distlda.test.utils import common_corpus

FLOAT_CORPUS = [[], [(0, 0.1), (3, 2.5)], [], [], [(1, 1e-05), (2, 1.0), (7, 123456789.125)], [(5, 1 / 3)], []]


def gensim_docs(path) -> list:
    return list(gensim.corpora.MmCorpus(str(path)))


def as_float(corpus) -> list:
    return [[(i, float(c)) for i, c in doc] for doc in corpus]


@pytest.fixture
def small_blocks(monkeypatch):
    """Parse in tiny blocks so that documents, errors and the index straddle block ends."""
    monkeypatch.setattr(mm, "_BLOCK_BYTES", 64)
    monkeypatch.setattr(mm, "_INDEX_BLOCK_BYTES", 48)


@pytest.mark.parametrize("corpus", [common_corpus, FLOAT_CORPUS], ids=["common", "floats"])
def test_reads_gensim_files_like_gensim(tmp_path, corpus, small_blocks):
    path = tmp_path / "g.mm"
    gensim.corpora.MmCorpus.serialize(str(path), corpus)
    ours = MmCorpus(path)
    theirs = gensim.corpora.MmCorpus(str(path))
    assert (len(ours), ours.num_terms, ours.num_nnz) == (len(theirs), theirs.num_terms, theirs.num_nnz)
    assert list(ours) == list(theirs) == as_float(corpus)
    assert [ours[i] for i in range(len(ours))] == [theirs[i] for i in range(len(theirs))]
    assert ours[-1] == theirs[len(theirs) - 1]


@pytest.mark.parametrize("corpus", [common_corpus, FLOAT_CORPUS], ids=["common", "floats"])
def test_gensim_reads_our_files(tmp_path, corpus):
    ours, theirs = tmp_path / "ours.mm", tmp_path / "theirs.mm"
    MmCorpus.serialize(ours, corpus)
    gensim.corpora.MmCorpus.serialize(str(theirs), corpus)
    assert gensim_docs(ours) == as_float(corpus)
    if corpus is common_corpus:  # integer counts: byte for byte what gensim writes
        assert ours.read_bytes() == theirs.read_bytes()


def test_writer_normalises_like_gensim(tmp_path):
    corpus = [[(3, 1), (1, 2.0), (2, 0.0), (0, 1e-13)], [(4, 0.1), (4, 0.5), (2, 0.25)]]
    MmCorpus.serialize(tmp_path / "ours.mm", corpus, id2word={i: str(i) for i in range(9)})
    gensim.corpora.MmCorpus.serialize(str(tmp_path / "theirs.mm"), corpus, id2word={i: str(i) for i in range(9)})
    assert list(MmCorpus(tmp_path / "ours.mm")) == gensim_docs(tmp_path / "theirs.mm")
    assert list(MmCorpus(tmp_path / "ours.mm")) == [[(1, 2.0), (3, 1.0)], [(2, 0.25), (4, 0.1), (4, 0.5)]]
    assert MmCorpus(tmp_path / "ours.mm").num_terms == 9


def test_float32_counts_written_short(tmp_path):
    chunk = CsrChunk(np.array([0, 2]), np.array([0, 1], np.int32), np.array([0.1, 3], np.float32))
    write_corpus(tmp_path / "f.mm", chunk)
    assert (tmp_path / "f.mm").read_bytes().endswith(b"1 1 0.1\n1 2 3\n")
    assert list(MmCorpus(tmp_path / "f.mm")) == [[(0, 0.1), (1, 3.0)]]


def test_iter_chunks(tmp_path, small_blocks):
    corpus = [[]] * 3 + [[(i % 7, float(i + 1))] * (i % 3) for i in range(40)] + [[]] * 5
    corpus = [sorted(doc) for doc in corpus]
    path = tmp_path / "c.mm"
    write_corpus(path, corpus, num_terms=10)
    reader = MmCorpus(path)
    assert len(reader) == 48 and reader.num_terms == 10
    expected = bow_to_chunk(corpus)
    for chunksize in (1, 2, 5, 7, 48, 1000):
        chunks = list(reader.iter_chunks(chunksize, start=100))
        assert [c.n_docs for c in chunks] == [min(chunksize, 48 - lo) for lo in range(0, 48, chunksize)]
        assert [c.start for c in chunks] == [100 + lo for lo in range(0, 48, chunksize)]
        for c in chunks:
            assert c.ids.dtype == np.int32 and c.counts.dtype == np.float64 and c.indptr.dtype == np.int64
            part = expected.slice(c.start - 100, c.start - 100 + c.n_docs)
            assert np.array_equal(c.indptr, part.indptr) and np.array_equal(c.ids, part.ids)
            assert np.array_equal(c.counts, part.counts)
    with pytest.raises(ValueError, match="chunksize"):
        next(reader.iter_chunks(0))


@pytest.mark.parametrize("suffix", [".mm.gz", ".mm.bz2"])
def test_compressed_round_trip(tmp_path, suffix, small_blocks):
    path = tmp_path / f"c{suffix}"
    MmCorpus.serialize(path, FLOAT_CORPUS)
    opener = gzip.open if suffix.endswith("gz") else bz2.open
    with opener(path, "rb") as fh:
        assert fh.readline() == mm.HEADER_LINE
    reader = MmCorpus(path)
    assert list(reader) == as_float(FLOAT_CORPUS)
    assert reader[4] == FLOAT_CORPUS[4] and reader[6] == []
    assert gensim_docs(path) == as_float(FLOAT_CORPUS)


def test_other_inputs_and_comments(tmp_path):
    import scipy.sparse as sp

    matrix = sp.csr_matrix(np.array([[0, 2, 0], [0, 0, 0], [1.5, 0, 3]]))
    write_corpus(tmp_path / "s.mm", matrix)
    assert list(MmCorpus(tmp_path / "s.mm")) == [[(1, 2.0)], [], [(0, 1.5), (2, 3.0)]]
    write_corpus(tmp_path / "copy.mm", MmCorpus(tmp_path / "s.mm"))  # a reader as input: keeps num_terms
    assert (tmp_path / "copy.mm").read_bytes() == (tmp_path / "s.mm").read_bytes()
    (tmp_path / "c.mm").write_bytes(b"%%MatrixMarket matrix coordinate integer general\n% a comment\n%\n"
                                    b"3 4 2\r\n1 4 2\r\n\n3\t1   7 \r\n")
    assert list(MmCorpus(tmp_path / "c.mm")) == [[(3, 2.0)], [], [(0, 7.0)]]
    write_corpus(tmp_path / "e.mm", [])
    assert len(MmCorpus(tmp_path / "e.mm")) == 0 and list(MmCorpus(tmp_path / "e.mm")) == []


def test_getitem_errors(tmp_path):
    MmCorpus.serialize(tmp_path / "c.mm", common_corpus)
    reader = MmCorpus(tmp_path / "c.mm")
    with pytest.raises(IndexError, match="document 9 is out of range"):
        reader[9]
    with pytest.raises(TypeError, match="integers"):
        reader["1"]


def write(tmp_path: Path, text: bytes, name: str = "bad.mm") -> Path:
    path = tmp_path / name
    path.write_bytes(text)
    return path


HEADER = b"%%MatrixMarket matrix coordinate real general\n"


@pytest.mark.parametrize("content, match", [
    (b"hello world\n1 2 3\n", r"line 1: not a Matrix Market"),
    (b"%%MatrixMarket matrix array real general\n2 2\n", "line 1: not a Matrix Market"),
    (HEADER, "no 'num_docs num_terms num_nnz' line"),
    (HEADER + b"% comment\n3 4\n", r"line 3: expected 'num_docs num_terms num_nnz'"),
    (HEADER + b"3 4 x\n", "three non-negative integers"),
])
def test_bad_headers(tmp_path, content, match):
    path = write(tmp_path, content)
    with pytest.raises(ValueError, match=match) as info:
        MmCorpus(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("body, match", [
    (b"1 1 1\n1 2\n", r"line 4: expected 3 fields 'doc term value', found 2"),
    (b"1 1 1\n2 2 1 9\n", "line 4: expected 3 fields"),
    (b"1 one 1\n", r"line 3: not numeric"),
    (b"1 1 lots\n", r"line 3: value b'lots' is not a number"),
    (b"1 1 1.5.2\n", "line 3: not numeric"),
    (b"-1 1 1\n", "line 3: not numeric"),
    (b"1 1 1\n4 1 1\n", r"line 4: document index 4 is outside the declared range 1..3"),
    (b"0 1 1\n", "line 3: document index 0 is outside"),
    (b"1 5 1\n", r"line 3: term index 5 is outside the declared range 1..4"),
    (b"1 1 1\n1 99999999999999999999999 1\n", "line 4: term index"),
    (b"2 1 1\n1 1 1\n", "line 4: document 1 comes after a later document"),
    (b"1 1 1\n", "truncated or corrupt, the header declares 3 entries but the file holds 1"),
    (b"1 1 1\n2 1 1\n3 1 1\n3 2 1\n", "more entries than the 3 declared"),
    (b"1 1 1\n2 1 nan\n3 2 1\n", "document 1: count is NaN"),
    (b"1 1 1\n2 1 -2\n3 2 1\n", "document 1: negative count"),
])
@pytest.mark.parametrize("tiny", [False, True], ids=["big-blocks", "small-blocks"])
def test_bad_entries(tmp_path, monkeypatch, body, match, tiny):
    if tiny:
        monkeypatch.setattr(mm, "_BLOCK_BYTES", 30)
    path = write(tmp_path, HEADER + b"3 4 3\n" + body)
    reader = MmCorpus(path)
    with pytest.raises(ValueError, match=match) as info:
        list(reader.iter_chunks(2))
    assert str(path) in str(info.value)


def test_overlong_line(tmp_path, monkeypatch):
    monkeypatch.setattr(mm, "_BLOCK_BYTES", 30)
    reader = MmCorpus(write(tmp_path, HEADER + b"3 4 3\n1 1 1\n" + b"1" * 40 + b" 1 1\n"))
    with pytest.raises(ValueError, match="line 4: line longer than 30 bytes"):
        list(reader)


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="document 1: term id outside the vocabulary of 3 terms"):
        write_corpus(tmp_path / "x.mm", [[(0, 1)], [(5, 1)]], num_terms=3)
    with pytest.raises(ValueError, match="document 0: negative count"):
        MmCorpus.serialize(tmp_path / "x.mm", [[(0, -1.0)]])
    with pytest.raises(TypeError, match="not a string"):
        write_corpus(tmp_path / "x.mm", "0 1\n")
    assert not (tmp_path / "x.mm").exists()  # nothing half-written is left behind
    with open(__file__, "rb") as fh, pytest.raises(ValueError, match=f"{__file__}, line 1: not a Matrix Market"):
        MmCorpus(fh)
    with pytest.raises(TypeError, match="file name or a file object"):
        MmCorpus(42)


def test_float_values_read_back_exactly(tmp_path):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.random(300), rng.uniform(1e-11, 1e-9, 100), rng.random(100) * 1e30,
                             np.round(rng.random(100) * 1000, 3), [1.7976931348623157e308, 2.0 ** 60, 1e22, 1e23]])
    corpus = [[(i % 50, float(v))] for i, v in enumerate(values)] + [[(0, 5e-324), (1, 1e-12)]]
    write_corpus(tmp_path / "f.mm", corpus)
    reader = MmCorpus(tmp_path / "f.mm")
    back = np.concatenate([c.counts for c in reader.iter_chunks(64)])
    assert np.array_equal(back, values)
    assert reader[-1] == []  # like gensim, |value| <= 1e-12 is not written


bow_docs = st.lists(
    st.dictionaries(
        st.integers(0, 60),
        st.one_of(st.integers(1, 10**6), st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False)),
        max_size=12,
    ).map(lambda d: sorted(d.items())),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(docs=bow_docs, chunksize=st.integers(1, 8))
def test_property_bow_csr_file_round_trip(docs, chunksize):
    chunk = bow_to_chunk(docs)
    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(Path(tmp, "p.mm"), chunk)
        reader = MmCorpus(Path(tmp, "p.mm"))
        assert list(reader) == as_float(docs)
        chunks = list(reader.iter_chunks(chunksize))
        assert sum(c.n_docs for c in chunks) == len(docs)
        if docs:
            back = concat_chunks(chunks)
            assert back.start == 0
            assert np.array_equal(back.indptr, chunk.indptr) and np.array_equal(back.ids, chunk.ids)
            assert np.array_equal(back.counts, chunk.counts)
        BinaryCorpus.serialize(Path(tmp, "bin"), reader, shard_docs=max(1, chunksize - 1))
        single = [[(i, float(np.float32(c))) for i, c in doc] for doc in docs]
        assert list(BinaryCorpus(Path(tmp, "bin"))) == single


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=20),
       style=st.sampled_from(["{!r}", "{:.17e}", "{:.12g}", "{:.20E}", "{:.3f}", "{:+.16e}"]))
def test_property_values_parse_like_python(values, style):
    texts = [style.format(v) for v in values]
    lines = "".join(f"1 {k + 1} {t}\n" for k, t in enumerate(texts))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "v.mm")
        path.write_text(f"%%MatrixMarket matrix coordinate real general\n1 {len(texts)} {len(texts)}\n{lines}")
        (doc,) = list(MmCorpus(path))
    got = np.array([v for _, v in doc])
    assert np.array_equal(got.view(np.int64), np.array([float(t) for t in texts]).view(np.int64)), texts
