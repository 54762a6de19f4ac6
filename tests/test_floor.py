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
from pathlib import Path

import numpy as np
import pytest

from distlda.corpora.binary import BinaryCorpus
from distlda.core.mstep import eta_wm
from distlda.datasets.synthetic import make_lda_corpus, synthetic_id2word
from distlda.kernels.mstep import (blend_and_expectations, blend_blocks, expectations_blocks, sum_block_sums,
                                   word_blocks)
from distlda.models import LdaModel
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


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


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
    addresses = [["127.0.0.1", p] for p in _free_ports(workers)]
    procs, outs = [], []
    try:
        for i in range(workers):
            config = {"corpus": str(where / "corpus"), "index": i, "addresses": addresses, "params": PARAMS,
                      "out": str(where / f"out{workers}-{i}.json"), "save": str(where / f"model{workers}.npy")}
            (where / f"config{workers}-{i}.json").write_text(json.dumps(config))
            outs.append(Path(config["out"]))
            procs.append(subprocess.Popen([sys.executable, "-m", "distlda.test.floor",
                                           str(where / f"config{workers}-{i}.json")]))
        for proc in procs:
            assert proc.wait(timeout=300) == 0
    finally:
        stop_processes(procs)
    results = [json.loads(out.read_text()) for out in outs]
    assert all(r["batches"] == 4 for r in results)
    assert all(len(r["phases"]["fit"]) == 4 for r in results)
    assert np.array_equal(np.load(where / f"model{workers}.npy"), local)
