"""A base in pieces passed between the workers in a tree (distlda.cluster.basecast)."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import pytest
from cluster_helpers import wait_until
from conftest import random_docs

from distlda.cluster.basecast import BaseService, BaseTakers, base_piece_call
from distlda.cluster.errors import WireError
from distlda.cluster.pieces import encode_large, encode_piece
from distlda.cluster.recipes import RecipeLog
from distlda.cluster.replica import Replica
from distlda.cluster.wire import encode_array

K, V = 3, 10


def test_the_takers_of_a_base_form_a_binary_tree():
    takers = BaseTakers()
    uris = [f"w{i}" for i in range(8)]
    assert [takers.source_for(u) for u in uris] == [None, "w0", "w0", "w1", "w1", "w2", "w2", "w3"]
    assert takers.source_for("w5") == "w2"  # asking again: the same place
    takers.reset()
    assert takers.source_for("w5") is None  # a new base: the first to ask takes it from the dispatcher


def _pieced_base(lineage: str = "run") -> tuple[dict, np.ndarray]:
    sstats = np.arange(V * K, dtype=np.float32).reshape(V, K)
    return {"lineage": lineage, "version": 0, "sstats_wm": encode_large(sstats),
            "eta": encode_array(np.ones(V, np.float32)), "alpha": encode_array(np.ones(K, np.float32))}, sstats


def test_the_log_names_a_source_only_for_a_base_in_pieces(monkeypatch):
    log = RecipeLog()
    log.set_base(_pieced_base()[0])  # 120 bytes: inline
    assert "base_from" not in log.answer(None, 0, taker="w0") and "base_from" not in log.answer(None, 0, taker="w1")
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "48")  # 4 rows a piece
    base, sstats = _pieced_base()
    log.set_base(base)
    for index in range(base["sstats_wm"]["pieces"]):
        log.add_piece("run", "sstats_wm", index, encode_piece(sstats, index, base["sstats_wm"]["rows"]))
    assert "base_from" not in log.answer(None, 0, taker="w0")
    assert log.answer(None, 0, taker="w1")["base_from"] == "w0"
    assert "base_from" not in log.answer(None, 0)  # an asker that does not say who it is
    assert log.answer(["run", 0], 0, taker="w2")["base"] is None  # nothing to take


@pytest.mark.parametrize("args, match", [
    ([None, 0, "sstats_wm", 0, 4, 1.0], "lineage"),
    (["run", 0, "alpha", 0, 4, 1.0], "no array 'alpha'"),
    (["run", -1, "sstats_wm", 0, 4, 1.0], "whole numbers"),
    (["run", 0, "sstats_wm", 4, 4, 1.0], "lo < hi"),
    (["run", 0, "sstats_wm", 0, 4, 1e9], "wait"),
    (["run", 0, "sstats_wm", 0, 4], "6 arguments"),
])
def test_a_malformed_basepiece_request_is_refused_naming_the_argument(args, match):
    with pytest.raises(WireError, match=match):
        base_piece_call(lambda *a: None, args)


class _Holder(BaseService):
    """The parts of a worker that BaseService uses, around a real replica."""

    def __init__(self, peer=None) -> None:
        self._lock = threading.Lock()
        self._replica = None
        self._loop = threading.current_thread()
        self.peer = peer
        self._init_base()

    @contextmanager
    def _peer(self, uri):
        if self.peer is None:
            raise ConnectionRefusedError(f"{uri} is gone")
        yield self.peer

    def load(self, base: dict, from_dispatcher=None, source=None) -> None:
        with self._lock:
            self._replica = Replica(K, V, "float32")
            self._load_base({"base": base, "base_from": source}, from_dispatcher)


def test_a_source_gives_rows_once_it_holds_the_base_and_not_after_it_moved_on():
    base, sstats = _pieced_base()
    source = _Holder()
    assert source._base_rows("run", 0, "sstats_wm", 2, 5, 0.01) is None  # no base yet
    got = []
    asking = threading.Thread(target=lambda: got.append(source._base_rows("run", 0, "sstats_wm", 2, 5, 30.0)))
    asking.start()
    wait_until(lambda: source._loading_cond._waiters, timeout=10.0, what="the request waiting for the base")
    source.load(base)
    asking.join(timeout=30.0)
    np.testing.assert_array_equal(got[0], sstats[2:5])
    assert base_piece_call(source._base_rows, ["run", 0, "sstats_wm", 2, 5, 0.0])[0] is True
    assert source._base_rows("other", 0, "sstats_wm", 2, 5, 0.0) is None  # another run's base: not yet
    assert source._base_rows("run", 0, "sstats_wm", 8, 12, 0.0) is False  # rows it does not have
    source._replica._lazy = object()  # (as under a lazy M-step: the arrays are kept scaled)
    assert source._base_rows("run", 0, "sstats_wm", 2, 5, 5.0) is False
    source._replica._lazy = None
    source._replica.version = 1  # (as after an M-step)
    assert source._base_rows("run", 0, "sstats_wm", 2, 5, 30.0) is False  # at once: it will not hold it again
    assert base_piece_call(source._base_rows, ["run", 0, "sstats_wm", 2, 5, 5.0]) == ("gone", [])


def test_pieces_come_from_the_source_and_the_rest_from_the_dispatcher_when_it_fails(monkeypatch):
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "48")
    base, sstats = _pieced_base()
    rows = base["sstats_wm"]["rows"]
    asked = []

    class Source:  # gives the first piece, then breaks
        def basepiece(self, args, max_bytes):
            asked.append(args)
            if len(asked) > 1:
                raise ConnectionResetError("the source went away")
            return np.array(sstats[args[3]:args[4]])

    def from_dispatcher(name, index):
        return encode_piece(sstats, index, rows)

    child = _Holder(Source())
    child.load(base, from_dispatcher, source="w0")
    np.testing.assert_array_equal(child._replica.arrays.sstats_wm, sstats)
    assert asked[0][:5] == ["run", 0, "sstats_wm", 0, rows] and child.from_source == 1
    # a worker with no source, or off its job loop, takes every piece from the dispatcher
    assert child._base_fetch({"base": base}, from_dispatcher) is from_dispatcher
    child._loop = None
    assert child._base_fetch({"base": base, "base_from": "w0"}, from_dispatcher) is from_dispatcher


def test_a_source_passes_on_each_piece_as_soon_as_it_has_it(monkeypatch):
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "48")
    base, sstats = _pieced_base()
    rows = base["sstats_wm"]["rows"]
    second = threading.Event()

    def from_dispatcher(name, index):
        if index == 1:
            second.wait(30.0)
        return encode_piece(sstats, index, rows)

    source = _Holder()
    early = []  # a request that waits before the load starts: it must see the pieces as they come, not wait for
    asking = threading.Thread(target=lambda: early.append(source._base_rows("run", 0, "sstats_wm", 0, rows, 5.0)))
    asking.start()  # the whole load (which holds the worker's lock throughout)
    wait_until(lambda: source._loading_cond._waiters, timeout=10.0, what="the request waiting for the base")
    loading = threading.Thread(target=source.load, args=(base, from_dispatcher))
    loading.start()
    try:
        asking.join(timeout=30.0)
        assert not asking.is_alive()  # answered while the load still waits for its second piece
        np.testing.assert_array_equal(early[0], sstats[:rows])
        np.testing.assert_array_equal(source._base_rows("run", 0, "sstats_wm", 0, rows, 5.0), sstats[:rows])
        assert source._base_rows("run", 0, "sstats_wm", rows, 2 * rows, 0.05) is None  # not in place yet
        assert source._base_rows("run", 0, "sstats_wm", 1, rows, 0.05) is False  # not one of its pieces
    finally:
        second.set()
        loading.join(timeout=30.0)
    np.testing.assert_array_equal(source._base_rows("run", 0, "sstats_wm", rows, 2 * rows, 5.0),
                                  sstats[rows:2 * rows])


@pytest.mark.slow
def test_a_cluster_passes_a_base_in_pieces_between_its_workers_and_trains_the_local_model(monkeypatch):
    from distlda.cluster.auth import KeyedProxy
    from distlda.cluster.local import LocalCluster
    from distlda.models import LdaModel

    V = 60
    docs = random_docs(np.random.default_rng(3), 300, V, max_len=20)
    params = dict(id2word={i: f"w{i}" for i in range(V)}, num_topics=5, chunksize=50, update_every=3, passes=2,
                  random_state=5, eval_every=0)
    local = LdaModel(docs, **params)
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "128")  # every process: the base goes in 10 pieces
    with LocalCluster(workers=3, threads_per_worker=1) as cluster:
        remote = LdaModel(docs, distributed=True, ns_conf=cluster.ns_conf, **params)
        states = []
        for row in remote.dispatcher.status()["workers"]:
            with KeyedProxy(row["uri"], cluster.ns_conf.get("hmac_key")) as worker:
                states.append(worker.getstate())
    np.testing.assert_array_equal(remote.state.sstats, local.state.sstats)
    # the base went out in 10 pieces: the first worker to ask took them from the dispatcher, the two others from a
    # worker (a source given up on sends the rest to the dispatcher: at least one whole base came from a peer)
    assert sum(s["base_pieces_from_peers"] for s in states) >= 10, states


def test_the_bulk_channel_carries_pieces_not_yet_and_gone(monkeypatch):
    from distlda.cluster.bulk import BulkClient, BulkError, BulkServer
    from distlda.cluster.scatter import BulkPeer, PartialStore, bulk_handler

    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "48")
    base, sstats = _pieced_base()
    rows = base["sstats_wm"]["rows"]
    source = _Holder()
    server = BulkServer("127.0.0.1", "k", bulk_handler(PartialStore(), source._bulk_calls()))
    failures = []
    try:
        peer = BulkPeer(BulkClient(server.address, "k", 10.0), None, lambda: failures.append(1))
        assert peer.basepiece(["run", 0, "sstats_wm", 0, rows, 0.0], 1 << 20) is None  # not yet
        source.load(base, lambda name, index: encode_piece(sstats, index, rows))
        np.testing.assert_array_equal(peer.basepiece(["run", 0, "sstats_wm", rows, 2 * rows, 0.0], 1 << 20),
                                      sstats[rows:2 * rows])
        with pytest.raises(BulkError, match="an answer of more than 8 bytes"):  # more than the asker expects
            peer.basepiece(["run", 0, "sstats_wm", 0, rows, 0.0], 8)
        assert failures  # ...and the channel marked as failed
        peer = BulkPeer(BulkClient(server.address, "k", 10.0), None, lambda: failures.append(1))
        with pytest.raises(WireError, match="a whole number|no array"):  # refused by the source, naming it
            peer.basepiece(["run", 0, "alpha", 0, rows, 0.0], 1 << 20)
        source._replica.version = 1  # (as after an M-step)
        assert peer.basepiece(["run", 0, "sstats_wm", 0, rows, 0.0], 1 << 20) is False  # gone
    finally:
        server.close()
