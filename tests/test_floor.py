"""The barrier's floor (distlda.test.floor): W real processes on 127.0.0.1 train a local run's model, bitwise.

The floor is the lower bound that bench/floor.py measures for any cluster design; these tests make sure it does the
whole work of a training (every chunk fitted, every row's statistics, the M-step of every block), so its times
bound a real design's from below, and that the M-step applied by ranges of word blocks is the local one.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from distlda.corpora.binary import BinaryCorpus
from distlda.core.mstep import eta_wm
from distlda.datasets.synthetic import make_lda_corpus, synthetic_id2word
from distlda.kernels.mstep import (blend_and_expectations, blend_blocks, expectations_blocks, sum_block_sums,
                                   word_blocks)
from distlda.models import LdaModel
from distlda.test import floor
from distlda.test.floor import block_ranges
from distlda.test.hosts import stop_processes

PARAMS = dict(num_topics=8, chunksize=100, update_every=3, random_state=3, eval_every=0, alpha=0.125, eta=0.125,
              init="gensim")


def test_block_ranges_cover_the_blocks_in_order() -> None:
    for terms, workers in [(10, 1), (1000, 3), (10_000, 8), (300, 5)]:
        ranges = block_ranges(terms, workers)
        assert ranges[0][0] == 0 and ranges[-1][1] == word_blocks(terms)
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_mstep_applied_by_ranges_of_blocks_is_the_whole_one(workers: int) -> None:
    rng = np.random.default_rng(workers)
    V, K = 1500, 7
    sstats = rng.gamma(1.0, 1.0, (V, K)).astype(np.float32)
    raw = np.where(rng.random((V, K)) < 0.3, rng.gamma(1.0, 1.0, (V, K)), 0).astype(np.float32)
    used = rng.random((V, K)).astype(np.float32)
    eta = eta_wm(np.full(V, 0.1), np.float32)
    whole_s, whole_e = sstats.copy(), used.copy()
    blend_and_expectations(whole_s, raw, used.copy(), 0.7, 3.0, eta, whole_e)
    parts_s, parts_e = sstats.copy(), used.copy()
    sums = np.zeros((word_blocks(V), K))
    for lo, hi in block_ranges(V, workers):  # every range blended before any expectation is rewritten
        blend_blocks(parts_s, raw, parts_e, 0.7, 3.0, eta, sums, lo, hi)
    for lo, hi in block_ranges(V, workers):
        expectations_blocks(parts_s, eta, sum_block_sums(sums), parts_e, lo, hi)
    assert np.array_equal(parts_s, whole_s) and np.array_equal(parts_e, whole_e)


def _listeners(n: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 (their ports held from the start: no worker can race another to one)."""
    return [socket.create_server(("127.0.0.1", 0), backlog=n) for _ in range(n)]


@pytest.mark.parametrize("select, lowat", [(True, 1000), (True, 0), (False, 0)])
def test_meshes_exchange_large_messages_whole(monkeypatch: pytest.MonkeyPatch, select: bool, lowat: int) -> None:
    """Three meshes in this process swap multi-MB messages both ways at once (partial sends, low-water reads)."""
    monkeypatch.setattr(floor, "SELECT", select)
    monkeypatch.setattr(floor, "LOWAT", lowat)
    listeners = _listeners(3)
    addresses = [s.getsockname() for s in listeners]
    with ThreadPoolExecutor(3) as pool:
        meshes = list(pool.map(lambda i: floor.Mesh(i, addresses, listeners[i], timeout=60), range(3)))
        try:
            rng = np.random.default_rng(0)
            sent = {(i, j): [rng.random((700_000 + 1000 * i + j,)), np.arange(3 * i + j, dtype=np.int32),
                             np.empty((0, 5), dtype=np.float32)] for i in range(3) for j in range(3) if i != j}
            got = list(pool.map(lambda i: meshes[i].exchange({j: sent[i, j] for j in meshes[i].peers}), range(3)))
        finally:
            for mesh in meshes:
                mesh.close()
    for i in range(3):
        for j, arrays in got[i].items():
            assert len(arrays) == 3 and all(a.dtype == b.dtype and np.array_equal(a, b)
                                            for a, b in zip(arrays, sent[j, i]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A small binary corpus (1,050 documents: 11 chunks, the last mini-batch short) and its local model."""
    where = tmp_path_factory.mktemp("floor")
    docs = make_lda_corpus(1050, 600, 8, doc_length=30, alpha=0.125, eta=0.05, random_state=1)
    BinaryCorpus.serialize(where / "corpus", docs, num_terms=600)
    local = LdaModel(BinaryCorpus(where / "corpus"), id2word=synthetic_id2word(600), passes=1, threads=1, **PARAMS)
    return where, np.asarray(local.state.sstats)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_floor_trains_the_local_model_bitwise(corpus: tuple[Path, np.ndarray], workers: int) -> None:
    where, local = corpus
    listeners = _listeners(workers)
    addresses = [list(s.getsockname()) for s in listeners]
    procs, outs = [], []
    try:
        for i in range(workers):
            config = {"corpus": str(where / "corpus"), "index": i, "addresses": addresses, "params": PARAMS,
                      "listen_fd": listeners[i].fileno(), "out": str(where / f"out{workers}-{i}.json"),
                      "save": str(where / f"model{workers}.npy")}
            (where / f"config{workers}-{i}.json").write_text(json.dumps(config))
            outs.append(Path(config["out"]))
            procs.append(subprocess.Popen([sys.executable, "-m", "distlda.test.floor",
                                           str(where / f"config{workers}-{i}.json")], pass_fds=[config["listen_fd"]]))
        for s in listeners:
            s.close()  # the workers hold them now
        deadline = time.monotonic() + 300
        while any(proc.poll() is None for proc in procs):  # a worker that fails ends the test at once
            assert not any(proc.poll() for proc in procs), [proc.poll() for proc in procs]
            assert time.monotonic() < deadline, "the floor's workers did not finish in 300 s"
            time.sleep(0.1)
        assert [proc.returncode for proc in procs] == [0] * workers
    finally:
        stop_processes(procs)
        for s in listeners:
            s.close()
    results = [json.loads(out.read_text()) for out in outs]
    assert all(r["batches"] == 4 for r in results)
    assert all(len(r["phases"]["fit"]) == 4 for r in results)
    assert np.array_equal(np.load(where / f"model{workers}.npy"), local)
