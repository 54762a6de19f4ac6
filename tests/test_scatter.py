"""The reduce-scatter's parts on their own: its plan, the store of partials and sums, the rows on the wire."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from distlda.cluster.peers import UNREACHABLE
from distlda.cluster.scatter import PartialStore, ScatterPlan, decode_rows, encode_rows, reduce_scatter
from distlda.cluster.wire import WireError
from distlda.core.estep import BatchAccumulator, ChunkPartial, EStepParams, chunk_partial
from distlda.corpora.csr import bow_to_chunk

V, K = 50, 4


def _recipe(holders, **plan):
    jobs = [{"job": n, "part": n, "whole": True, "holder": [name, f"uri-{name}"], "pass": 0}
            for n, name in enumerate(holders)]
    return {"version": 1, "batch": "b", "plan": {"rho": 1.0, "a": 0.0, "b": 1.0, "optimize_alpha": False,
                                                 "optimize_eta": False, **plan}, "jobs": jobs}


def test_plan_gives_each_holder_a_range_of_words_in_name_order():
    plan = ScatterPlan.of(_recipe(["w2", "w1", "w2", "w3"]), V)
    assert plan.owners == [("w1", "uri-w1"), ("w2", "uri-w2"), ("w3", "uri-w3")]
    assert plan.bounds == [0, 16, 33, 50] and plan.parts_of("w2") == [0, 2]
    # every worker calls the owners from the one after itself: no owner is everyone's first call
    assert plan.rotated("w1") == [1, 2, 0] and plan.rotated("w3") == [0, 1, 2] and plan.rotated("other") == [0, 1, 2]


@pytest.mark.parametrize("spoil", ["split", "no-holder", "alpha", "eta"])
def test_no_plan_when_the_statistics_cannot_be_summed_by_rows(spoil):
    recipe = _recipe(["w1", "w2"])
    if spoil == "split":  # a chunk cut into two jobs
        recipe["jobs"][1].update(part=0, whole=False)
    elif spoil == "no-holder":
        del recipe["jobs"][0]["holder"]
    else:  # a prior learned from every document
        recipe["plan"][f"optimize_{spoil}"] = True
    assert ScatterPlan.of(recipe, V) is None


def test_sums_wait_only_for_a_batch_whose_partials_are_kept():
    store = PartialStore()
    started = time.monotonic()
    assert store.sums("gone", 0, V, wait=5.0) is None  # never fitted here: no wait
    assert time.monotonic() - started < 2.0
    rows = ChunkPartial(np.array([1, 3]), np.ones((2, K), np.float32))
    store.put_partial("b", 0, rows)
    later = threading.Timer(0.05, store.put_sums, ("b", 0, V, rows))
    later.start()
    got = store.sums("b", 0, V, wait=30.0)  # kept: waits for the sums, which come
    later.join()
    assert got is rows
    store.clear()
    assert store.sums("b", 0, V, wait=5.0) is None


def test_rows_from_a_peer_are_checked():
    rows = ChunkPartial(np.array([2, 7]), np.ones((2, K), np.float32))
    again = decode_rows(encode_rows(rows), 0, 10, K, np.dtype(np.float32), "x")
    np.testing.assert_array_equal(again.words, rows.words)
    np.testing.assert_array_equal(again.raw, rows.raw)
    for lo, hi, k, dtype in [(3, 10, K, np.float32), (0, 7, K, np.float32), (0, 10, K + 1, np.float32),
                             (0, 10, K, np.float64)]:
        with pytest.raises(WireError):
            decode_rows(encode_rows(rows), lo, hi, k, np.dtype(dtype), "x")
    with pytest.raises(WireError, match="ascending"):
        decode_rows(encode_rows(ChunkPartial(np.array([7, 2]), rows.raw)), 0, 10, K, np.dtype(np.float32), "x")


class _Peers:
    """Workers in one process: each name's store, reached through ``proxy(uri)`` like a Pyro proxy."""

    def __init__(self, names, dead=()):
        self.stores = {name: PartialStore() for name in names}
        self.dead = set(dead)

    @contextmanager
    def proxy(self, uri):
        name = uri.removeprefix("uri-")
        if name in self.dead:
            raise OSError(f"{name} is gone")
        store = self.stores[name]

        class Peer:
            def getpartials(self, batch, parts, lo, hi):
                return encode_rows(store.partials(batch, parts, lo, hi))

            def getsums(self, batch, lo, hi, wait):
                sums = store.sums(batch, lo, hi, wait)
                return None if sums is None else encode_rows(sums)

        yield Peer()


@pytest.mark.parametrize("dead", [(), ("w2",)])
def test_rows_summed_between_holders_are_the_local_sums_bitwise(rng, dead):
    for name in ("w1", "w2", "w3"):
        UNREACHABLE.forget(f"uri-{name}")
    """Three holders sum a six-chunk batch by rows (each its range, then every range from its owner) into the
    local accumulator's rows; with a holder gone the statistics cannot be had this way (the worker replays)."""
    from conftest import random_docs

    exp_elogbeta = rng.gamma(1.0, 1.0, (V, K)).astype(np.float32)
    alpha = np.full(K, 0.2, np.float32)
    chunks = [bow_to_chunk(random_docs(rng, 20, V, max_len=15), 20 * c) for c in range(6)]
    gammas = [rng.gamma(2.0, 1.0, (20, K)).astype(np.float32) for _ in chunks]
    local = BatchAccumulator(EStepParams(exp_elogbeta, alpha, 1, 0.0, 0), sparse=True)
    for chunk, gamma in zip(chunks, gammas):
        local.add(chunk, gamma)
    expected = local.finish()
    holders = ["w1", "w2", "w3", "w1", "w3", "w2"]
    peers = _Peers(["w1", "w2", "w3"], dead)
    for part, (chunk, gamma, name) in enumerate(zip(chunks, gammas, holders)):
        peers.stores[name].put_partial("b", part, chunk_partial(chunk, gamma, exp_elogbeta))
    plan = ScatterPlan.of(_recipe(holders), V)
    results = {}

    def run(name):
        results[name] = reduce_scatter(plan, name, peers.stores[name], peers.proxy, K, np.dtype(np.float32))

    threads = [threading.Thread(target=run, args=(name,)) for name in ("w1", "w2", "w3") if name not in dead]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if dead:  # not asked again for a while: a lost host costs one timeout
        assert UNREACHABLE.skip("uri-w2")
        UNREACHABLE.forget("uri-w2")
    for stats in results.values():
        if dead:
            assert stats is None
        else:
            np.testing.assert_array_equal(stats.rows, expected.rows)
            np.testing.assert_array_equal(stats.raw, expected.raw)


def test_a_peers_bad_arguments_are_refused_by_name():
    from distlda.cluster.scatter import check_word_range

    assert check_word_range(0, 10, "getsums") == (0, 10)
    for lo, hi in [(-1, 3), (5, 2), (0.5, 3), ("0", 3), (True, 3)]:
        with pytest.raises(WireError, match="getsums: lo and hi"):
            check_word_range(lo, hi, "getsums")


def test_a_peers_bad_requests_are_refused_by_name():
    from distlda.cluster.scatter import serve_partials, serve_sums

    store = PartialStore()
    with pytest.raises(WireError, match="getpartials: parts must be a list of part numbers"):
        serve_partials(store, "b", "all", 0, 10)
    with pytest.raises(WireError, match="getpartials: the batch id"):
        serve_partials(store, None, [0], 0, 10)
    with pytest.raises(WireError, match="getsums: wait must be"):
        serve_sums(store, "b", 0, 10, float("nan"))
    with pytest.raises(WireError, match="getsums: wait must be"):
        serve_sums(store, "b", 0, 10, 3600)
    assert serve_partials(store, "b", [0], 0, 10) == [] and serve_sums(store, "b", 0, 10, 1.0) is None


def test_old_batches_go_past_the_bytes_bound_and_their_waiters_stop_waiting():
    rows = ChunkPartial(np.arange(10), np.ones((10, K), np.float32))  # 160 bytes of rows
    store = PartialStore(keep_batches=5, keep_bytes=300)
    store.put_partial("b1", 0, rows)
    waiter = threading.Thread(target=lambda: got.append(store.sums("b1", 0, V, wait=30.0)))
    got = []
    started = time.monotonic()
    waiter.start()
    store.put_partial("b2", 0, rows)  # 320 bytes: b1 goes, the newest batch always stays
    waiter.join(30)
    assert got == [None] and time.monotonic() - started < 10
    assert store.partials("b1", [0], 0, V) == {} and 0 in store.partials("b2", [0], 0, V)


def test_word_ids_from_a_peer_must_be_integers():
    rows = {"words": encode_rows(ChunkPartial(np.arange(2), np.ones((2, K), np.float32)))["words"],
            "raw": encode_rows(ChunkPartial(np.arange(2), np.ones((2, K), np.float32)))["raw"]}
    rows["words"] = {"dtype": "<f8", "shape": [2], "data": np.array([0.5, 1.5]).tobytes()}
    with pytest.raises(WireError, match="not integers"):
        decode_rows(rows, 0, 10, K, np.dtype(np.float32), "x")


def test_a_learned_prior_keeps_two_jobs_per_worker():
    from distlda.cluster.client import jobs_per_chunk

    assert jobs_per_chunk(8, 8) == 1
    assert jobs_per_chunk(8, 8, summable=False) == 2  # at least two jobs per worker, as before
