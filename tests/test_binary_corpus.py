"""Binary corpus: sharded round trips, ranges across shards, memory mapping, streaming writes, errors."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np
import pytest
from conftest import flip_array_byte

from distlda.corpora import BinaryCorpus, BinaryCorpusWriter, Dictionary, MmCorpus, bow_to_chunk
from distlda.corpora.binary import ShardInfo
from distlda.corpora.csr import CsrChunk, concat_chunks
from distlda.test.utils import common_corpus
from distlda.io.container import write_container


def make_docs(n_docs: int = 23, seed: int = 0) -> list[list[tuple[int, float]]]:
    """Documents with empty ones at the start, the end and inside, and float counts."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        n = 0 if i in (0, 5, 6, n_docs - 1) else int(rng.integers(1, 6))
        ids = sorted(rng.choice(40, size=n, replace=False).tolist())
        docs.append([(t, float(rng.integers(1, 9)) / 4) for t in ids])  # exact in float32
    return docs


def base_of(array: np.ndarray) -> object:
    while isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base
    return array.base


@pytest.fixture
def corpus(tmp_path):
    docs = make_docs()
    BinaryCorpus.serialize(tmp_path / "bin", docs, num_terms=50, shard_docs=4)
    return BinaryCorpus(tmp_path / "bin"), docs


def test_round_trip_and_metadata(corpus, tmp_path):
    reader, docs = corpus
    assert list(reader) == docs
    assert (len(reader), reader.num_docs, reader.num_terms) == (23, 23, 50)
    assert reader.num_nnz == sum(map(len, docs))
    assert reader.num_words == sum(c for d in docs for _, c in d)
    assert [s.num_docs for s in reader.shards] == [4, 4, 4, 4, 4, 3]
    assert reader.shards[1] == ShardInfo("shard-00001.dlc", 4, 4, sum(map(len, docs[4:8])))
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == \
        ["corpus.json"] + [f"shard-0000{k}.dlc" for k in range(6)]
    assert [reader[i] for i in range(23)] == docs
    assert reader[-1] == docs[-1] == []
    assert "23 documents" in str(reader)


@pytest.mark.parametrize("chunksize", [1, 3, 4, 5, 9, 23, 100])
def test_iter_chunks_across_shards(corpus, chunksize):
    reader, docs = corpus
    expected = bow_to_chunk(docs)
    chunks = list(reader.iter_chunks(chunksize, start=1000))
    assert [c.start for c in chunks] == list(range(1000, 1023, chunksize))
    assert [c.n_docs for c in chunks] == [min(chunksize, 23 - lo) for lo in range(0, 23, chunksize)]
    for c in chunks:
        assert c.indptr.dtype == np.int64 and c.ids.dtype == np.int32 and c.counts.dtype == np.float32
    whole = concat_chunks(chunks)
    assert np.array_equal(whole.indptr, expected.indptr) and np.array_equal(whole.ids, expected.ids)
    assert np.array_equal(whole.counts, expected.counts)


def test_read_range(corpus):
    reader, docs = corpus
    expected = bow_to_chunk(docs)
    for first, last in [(0, 23), (3, 9), (4, 8), (7, 8), (5, 5), (23, 23), (0, 1), (22, 23), (1, 21)]:
        chunk = reader.read_range(first, last)
        part = expected.slice(first, last)
        assert chunk.start == first and chunk.n_docs == last - first
        assert np.array_equal(chunk.indptr, part.indptr) and np.array_equal(chunk.ids, part.ids)
        assert np.array_equal(chunk.counts, part.counts)
    for first, last in [(-1, 3), (3, 2), (0, 24), (1.5, 3)]:
        with pytest.raises(ValueError, match=r"document range .* is not within \[0, 23\]"):
            reader.read_range(first, last)
    with pytest.raises(IndexError, match="document 23 is out of range"):
        reader[23]
    with pytest.raises(TypeError, match="integers"):
        reader[1.0]


def test_memory_mapped(corpus, tmp_path):
    reader, docs = corpus
    chunk = reader.read_range(8, 12)  # inside one shard: views of the memory map
    assert isinstance(base_of(chunk.ids), mmap.mmap) and isinstance(base_of(chunk.counts), mmap.mmap)
    assert not chunk.ids.flags.writeable
    in_memory = BinaryCorpus(tmp_path / "bin", mmap=False)
    assert not isinstance(base_of(in_memory.read_range(8, 12).ids), mmap.mmap)
    assert list(in_memory) == docs


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * mmap.PAGESIZE / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from /proc (Linux)")
def test_a_pass_does_not_keep_the_corpus_resident_and_released_pages_read_the_same(tmp_path):
    rng = np.random.default_rng(3)
    n_docs, per_doc = 4000, 500  # 2,000,000 entries: 16 MB of ids and counts
    indptr = np.arange(0, (n_docs + 1) * per_doc, per_doc, dtype=np.int64)
    chunk = CsrChunk(indptr, rng.integers(0, 5000, n_docs * per_doc).astype(np.int32),
                     rng.integers(1, 5, n_docs * per_doc).astype(np.float32), 0)
    with BinaryCorpusWriter(tmp_path / "big", num_terms=5000) as writer:
        writer.add_chunk(chunk)
    reader = BinaryCorpus(tmp_path / "big")
    before = _resident_mb()
    total = sum(float(c.counts.sum()) for c in reader.iter_chunks(500))
    assert total == float(chunk.counts.sum())
    assert _resident_mb() - before < 8, "a pass kept the corpus resident"
    held = reader.read_range(100, 3000)
    reader.release(100, 3000)  # the chunk still reads the same data (the pages come back from the file)
    np.testing.assert_array_equal(held.ids, chunk.ids[100 * per_doc:3000 * per_doc])
    in_memory = BinaryCorpus(tmp_path / "big", mmap=False)
    in_memory.release(0, n_docs)  # nothing to release: the arrays are the data
    np.testing.assert_array_equal(in_memory.read_range(0, n_docs).counts, chunk.counts)


def test_writer_streams_one_shard_at_a_time(tmp_path):
    docs = make_docs(200, seed=1)
    with BinaryCorpusWriter(tmp_path / "w", shard_docs=30) as writer:
        for lo in range(0, 200, 7):
            writer.add_documents(docs[lo:lo + 7])
            assert writer._pending_docs < 30  # never a full shard waiting in memory
        writer.add_chunk(bow_to_chunk([[(45, 2.0)]], start=999))  # start is ignored
        with pytest.raises(ValueError, match="document 202: negative count"):
            writer.add_chunk(CsrChunk(np.array([0, 1, 2]), np.array([1, 1], np.int32), np.array([1.0, -1.0])))
    reader = BinaryCorpus(tmp_path / "w")
    assert list(reader) == docs + [[(45, 2.0)]]
    assert reader.num_terms == 46
    assert [s.num_docs for s in reader.shards] == [30] * 6 + [21]


def test_writer_copies_its_input(tmp_path):
    ids, counts = np.array([1, 2], np.int32), np.array([1.0, 2.0])
    with BinaryCorpusWriter(tmp_path / "w") as writer:
        writer.add_chunk(CsrChunk(np.array([0, 2]), ids, counts))
        ids[:] = 0  # a caller reusing its buffers must not change what was added
        counts[:] = 5
    assert list(BinaryCorpus(tmp_path / "w")) == [[(1, 1.0), (2, 2.0)]]


@pytest.mark.parametrize("chunk, kwargs, exc, match", [
    (CsrChunk(np.array([0, 1]), np.array([-1], np.int32), np.array([1.0])), {}, ValueError,
     "document 0: negative term id"),
    (CsrChunk(np.array([0, 1]), np.array([7], np.int32), np.array([1.0])), {"num_terms": 5}, ValueError,
     "document 0: term id outside the vocabulary of 5 terms"),
    (CsrChunk(np.array([0, 1]), np.array([1], np.int32), np.array([np.nan])), {}, ValueError,
     "document 0: count is NaN"),
    (CsrChunk(np.array([0, 1]), np.array([1], np.int32), np.array([1e300])), {}, ValueError,
     "document 0: count 1e.300 is too large for float32"),
    (CsrChunk(np.array([0, 2]), np.array([1], np.int32), np.array([1.0])), {}, ValueError,
     "indptr must start at 0"),
    ([[(0, 1)]], {}, TypeError, "expects a CsrChunk"),
])
def test_writer_validates(tmp_path, chunk, kwargs, exc, match):
    writer = BinaryCorpusWriter(tmp_path / "w", **kwargs)
    with pytest.raises(exc, match=match):
        writer.add_chunk(chunk)


def test_writer_error_leaves_no_corpus(tmp_path):
    with pytest.raises(ValueError, match="document 3: negative count"):
        with BinaryCorpusWriter(tmp_path / "w", shard_docs=2) as writer:
            writer.add_documents([[(0, 1)], [(1, 1)], [(2, 1)], [(0, -1)]])
    assert list((tmp_path / "w").iterdir()) == []
    with pytest.raises(ValueError, match="not a distlda binary corpus"):
        BinaryCorpus(tmp_path / "w")


def test_overwrite(tmp_path):
    BinaryCorpus.serialize(tmp_path / "c", make_docs(20), shard_docs=3)
    BinaryCorpus.serialize(tmp_path / "c", common_corpus, shard_docs=5)
    reader = BinaryCorpus(tmp_path / "c")
    assert list(reader) == [[(i, float(c)) for i, c in d] for d in common_corpus]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["corpus.json", "shard-00000.dlc", "shard-00001.dlc"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="non-empty directory that is not a binary corpus"):
        BinaryCorpusWriter(tmp_path / "other")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        BinaryCorpusWriter(tmp_path / "other" / "notes.txt")
    with pytest.raises(ValueError, match="over the corpus being read from it"):
        BinaryCorpus.serialize(tmp_path / "c", reader)
    assert list(BinaryCorpus(tmp_path / "c")) == list(reader)


def test_conversions(tmp_path):
    MmCorpus.serialize(tmp_path / "c.mm", common_corpus, id2word={i: str(i) for i in range(20)})
    BinaryCorpus.serialize(tmp_path / "bin", MmCorpus(tmp_path / "c.mm"), shard_docs=4)
    reader = BinaryCorpus(tmp_path / "bin")
    assert reader.num_terms == 20  # taken from the Matrix Market header
    assert list(reader) == list(MmCorpus(tmp_path / "c.mm"))
    MmCorpus.serialize(tmp_path / "back.mm", reader)
    assert (tmp_path / "back.mm").read_bytes() == (tmp_path / "c.mm").read_bytes()
    assert Dictionary.from_corpus(reader).dfs == Dictionary.from_corpus(common_corpus).dfs
    BinaryCorpus.serialize(tmp_path / "empty", [])
    assert len(BinaryCorpus(tmp_path / "empty")) == 0 and list(BinaryCorpus(tmp_path / "empty")) == []


def rewrite_meta(path, **changes) -> None:
    meta = json.loads((path / "corpus.json").read_text())
    meta.update(changes)
    (path / "corpus.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, match", [
    (lambda p: p / "nowhere", "not a distlda binary corpus"),
    (lambda p: p / "shard-00000.dlc", "not a distlda binary corpus"),
    (lambda p: ((p / "corpus.json").write_text("{oops"), p)[1], "is not valid JSON"),
    (lambda p: rewrite_meta(p, format="something.else") or p, "does not describe a distlda binary corpus"),
    (lambda p: rewrite_meta(p, version=99) or p, "unsupported binary corpus version 99"),
    (lambda p: rewrite_meta(p, num_docs=24) or p, "shard sizes do not add up"),
    (lambda p: rewrite_meta(p, num_terms="many") or p, "malformed field"),
    (lambda p: rewrite_meta(p, shards=[{"file": "../x", "first_doc": 0, "num_docs": 23, "num_nnz": 1}]) or p,
     "must be a plain file name"),
])
def test_not_a_corpus(corpus, tmp_path, damage, match):
    path = damage(tmp_path / "bin")
    with pytest.raises(ValueError, match=match):
        BinaryCorpus(path)


@pytest.mark.parametrize("damage, match", [
    (lambda p: (p / "shard-00002.dlc").unlink(), "shard file shard-00002.dlc is missing"),
    (lambda p: write_container(p / "shard-00002.dlc", "distlda.Other", {}, {}), "bad shard.*not a 'distlda.BinaryCorpusShard'"),
    (lambda p: write_container(p / "shard-00002.dlc", "distlda.BinaryCorpusShard", {},
                               {"indptr": np.zeros(5, np.int64), "ids": np.zeros(0, np.int32),
                                "counts": np.zeros(0, np.float32)}), "do not match corpus.json"),
    (lambda p: (p / "shard-00002.dlc").write_bytes(b"garbage"), "bad shard.*not a distlda file"),
])
def test_damaged_shards(corpus, tmp_path, damage, match):
    damage(tmp_path / "bin")
    with pytest.raises(ValueError, match=match):  # found when the corpus is opened
        BinaryCorpus(tmp_path / "bin")
    reader = BinaryCorpus(tmp_path / "bin", verify=False)  # unchecked: found when the shard is first read
    assert reader.read_range(0, 8).n_docs == 8  # shards 0 and 1 are fine
    with pytest.raises(ValueError, match=match):
        list(reader.iter_chunks(5))


def test_a_damaged_shard_is_reported_when_the_corpus_is_opened(tmp_path):
    """A flipped bit in the last shard is found at open, naming the file, not after most of a pass."""
    from distlda.corpora import BinaryCorpus

    docs = [[(i % 7, 1.0), ((i * 3) % 11, 2.0)] for i in range(300)]
    path = tmp_path / "corpus"
    BinaryCorpus.serialize(path, docs, shard_docs=100)
    corpus = BinaryCorpus(path)
    assert len(corpus.shards) == 3
    last = path / corpus.shards[-1].file
    flip_array_byte(last, "counts", byte=1)
    with pytest.raises(ValueError, match=f"{last.name}.*checksum of array 'counts'"):
        BinaryCorpus(path)
    BinaryCorpus(path, verify=False)  # opening without the check works; the damage is then the caller's risk


def test_verify_on_first_use_checks_a_shard_when_it_is_read(tmp_path):
    from distlda.corpora import BinaryCorpus

    path = tmp_path / "corpus"
    BinaryCorpus.serialize(path, [[(i % 5, 1.0)] for i in range(200)], shard_docs=100)
    last = path / BinaryCorpus(path).shards[-1].file
    flip_array_byte(last, "ids", mask=0x02)
    corpus = BinaryCorpus(path, verify="on first use")  # opens at once
    assert corpus.read_range(0, 100).n_docs == 100  # the first shard is sound
    with pytest.raises(ValueError, match=f"{last.name}.*checksum of array 'ids'"):
        corpus.read_range(100, 200)
    with pytest.raises(ValueError, match="verify must be"):
        BinaryCorpus(path, verify="sometimes")
