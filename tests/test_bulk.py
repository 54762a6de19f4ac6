"""The bulk channel of the reduce-scatter (distlda.cluster.bulk): real sockets on 127.0.0.1, no cluster."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from Pyro5 import config as pyro_config

from cluster_helpers import wait_until

from distlda.cluster.bulk import MAGIC, MAX_REQUEST, BulkClient, BulkError, BulkLinks, BulkLost, BulkServer
from distlda.cluster.daemon import PreauthLimits
from distlda.cluster.errors import WireError
from distlda.cluster.scatter import (BulkPeer, PartialStore, RowsService, bulk_handler, decode_rows, serve_partials,
                                     serve_sums)
from distlda.core.estep import ChunkPartial

K = 4


def _store() -> PartialStore:
    store = PartialStore()
    rng = np.random.default_rng(0)
    for part, words in ((0, [1, 5, 9, 12]), (1, [2, 5, 11])):
        store.put_partial("b", part, ChunkPartial(np.array(words, np.int64), rng.random((len(words), K), np.float32)))
    store.put_sums("b", 0, 8, ChunkPartial(np.array([1, 2, 5], np.int64), rng.random((3, K), np.float32)))
    return store


@pytest.fixture
def served():
    servers = []

    def start(key="k", store=None, limits=None):
        server = BulkServer("127.0.0.1", key, bulk_handler(store or _store()), limits)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_rows_arrive_as_the_store_keeps_them(served):
    store = _store()
    server = served(store=store)
    client = BulkClient(server.address, "k", 5.0)
    kept, arrays = client.call("partials", ["b", [0, 1, 7], 4, 12], 10**6)
    assert kept == [0, 1]  # chunk 7 is not kept
    want = store.partials("b", [0, 1], 4, 12)
    for i, part in enumerate(kept):
        rows = decode_rows((arrays[2 * i], arrays[2 * i + 1]), 4, 12, K, np.dtype(np.float32), "rows")
        assert np.array_equal(rows.words, want[part].words) and np.array_equal(rows.raw, want[part].raw)
        assert rows.raw.dtype == np.float32
    made, arrays = client.call("sums", ["b", 0, 8, 0.0], 10**6)
    assert made and np.array_equal(arrays[1], store.sums("b", 0, 8, 0.0).raw)
    made, arrays = client.call("sums", ["other", 0, 8, 0.0], 10**6)
    assert not made and arrays == []
    wait_until(lambda: server.served == 3)  # counted once the answer is sent
    client.close()


@pytest.mark.parametrize("server_key, client_key", [("k", "other"), ("k", None), (None, "k")])
def test_a_peer_without_the_key_is_refused(served, server_key, client_key):
    server = served(key=server_key)
    with pytest.raises(BulkError, match="cluster key"):
        BulkClient(server.address, client_key, 5.0)
    wait_until(lambda: server.refused == 1)
    BulkClient(server.address, server_key, 5.0).close()  # the right key still gets in


def test_a_cluster_without_a_key_speaks_the_protocol(served):
    server = served(key=None)
    client = BulkClient(server.address, None, 5.0)
    assert client.call("sums", ["b", 0, 8, 0.0], 10**6)[0]
    client.close()


def test_a_refused_call_says_why_and_the_connection_stays(served):
    client = BulkClient(served().address, "k", 5.0)
    with pytest.raises(WireError, match="lo and hi"):
        client.call("partials", ["b", [0], 9, 2], 10**6)
    with pytest.raises(WireError, match="no call 'drop'"):
        client.call("drop", [], 10**6)
    with pytest.raises(WireError, match="parts"):
        client.call("partials", ["b", "all", 0, 9], 10**6)
    assert client.call("partials", ["b", [0], 0, 20], 10**6)[0] == [0]
    client.close()


def test_an_answer_larger_than_allowed_is_not_read(served):
    client = BulkClient(served().address, "k", 5.0)
    with pytest.raises(BulkError, match="more than 16 bytes"):
        client.call("partials", ["b", [0, 1], 0, 20], 16)
    with pytest.raises(OSError):  # closed after the bad answer: the caller asks over Pyro5
        client.call("sums", ["b", 0, 8, 0.0], 10**6)


def _handshake(sock: socket.socket, key: bytes) -> None:
    from distlda.cluster.bulk import _mac
    hello = b""
    while len(hello) < len(MAGIC) + 16:
        hello += sock.recv(64)
    challenge = hello[len(MAGIC):]
    sock.sendall(b"n" * 16 + _mac(key, b"bulk-client", challenge, b"n" * 16))
    proof = b""
    while len(proof) < 32:
        got = sock.recv(32 - len(proof))
        assert got, "the server closed the connection during the handshake"
        proof += got


def test_an_oversized_request_closes_the_connection(served):
    server = served()
    with socket.create_connection(server.address, timeout=5.0) as sock:
        _handshake(sock, b"k")
        sock.sendall(struct.pack("<I", MAX_REQUEST + 1) + b"x" * 16)
        _assert_closed_by_peer(sock)  # without reading or allocating the rest


@pytest.mark.parametrize("per_address, total", [(3, 8), (100, 4)])
def test_a_flood_of_silent_connections_is_bounded_and_a_key_holder_gets_in(served, per_address, total):
    server = served(limits=PreauthLimits(handshake_seconds=30.0, per_address=per_address, total=total))
    flood = [socket.create_connection(server.address, timeout=5.0) for _ in range(12)]
    try:  # beyond either bound each new one pushes out the oldest
        wait_until(lambda: server.refused >= 12 - min(per_address, total))
        assert len(server._unproved) <= min(per_address, total)
        client = BulkClient(server.address, "k", 5.0)
        assert client.call("sums", ["b", 0, 8, 0.0], 10**6)[0]
        client.close()
    finally:
        for sock in flood:
            sock.close()


def test_a_connection_that_does_not_prove_the_key_in_time_is_closed(served):
    server = served(limits=PreauthLimits(handshake_seconds=0.3))
    with socket.create_connection(server.address, timeout=5.0) as sock:
        sock.sendall(b"slow")  # a few bytes, never the whole answer
        wait_until(lambda: server.refused == 1)
        _assert_closed_by_peer(sock)


def _assert_closed_by_peer(sock: socket.socket) -> None:
    """The server closed ``sock``: reading ends (at the end of what it sent, or at once on a reset)."""
    try:
        while sock.recv(64):
            pass
    except ConnectionResetError:
        pass  # closed with bytes of ours unread


class _Clock:
    """The monotonic clock of distlda.cluster.bulk, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_links_ask_a_peer_again_later_and_later(served, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("distlda.cluster.bulk.time", clock)
    links = BulkLinks("k", 5.0, retry_after=10.0)
    asked = []
    for wait in (10.0, 20.0, 40.0):
        assert links.client("PYRO:a@h:1", lambda: asked.append(1)) is None
        clock.now += wait - 1
        assert links.client("PYRO:a@h:1", lambda: asked.append(1)) is None
        clock.now += 1
    assert len(asked) == 3  # asked once per wait, each wait twice the last
    server = served()
    assert links.client("PYRO:a@h:1", lambda: server.address) is not None  # back: the waits start over
    links.failed("PYRO:a@h:1")
    clock.now += 10
    assert links.client("PYRO:a@h:1", lambda: server.address) is not None
    links.close()


def test_links_let_a_peer_that_does_not_answer_be_the_callers_concern():
    links = BulkLinks("k", 5.0)

    def times_out():
        raise TimeoutError("no answer")

    with pytest.raises(TimeoutError):
        links.client("PYRO:a@h:1", times_out)

    def older_worker():
        raise AttributeError("no bulkaddress")

    assert links.client("PYRO:b@h:1", older_worker) is None


def test_a_peer_that_stops_answering_is_lost_not_asked_twice(served):
    store = PartialStore()
    store.put_partial("b", 0, ChunkPartial(np.array([1], np.int64), np.ones((1, K), np.float32)))
    server = served(store=store)  # holds the batch's partials but never makes its sums: getsums waits
    failures = []
    peer = BulkPeer(BulkClient(server.address, "k", 0.3), _PyroSide(store), lambda: failures.append(1))
    with pytest.raises(BulkLost):
        peer.getsums("b", 0, 8, 3.0)
    assert failures == [1]


def test_links_remember_peers_without_a_channel(served):
    links = BulkLinks("k", 5.0, retry_after=60.0)
    asked = []
    assert links.client("PYRO:a@h:1", lambda: asked.append(1)) is None  # None: an older worker, or TLS
    assert links.client("PYRO:a@h:1", lambda: asked.append(1)) is None
    assert asked == [1]  # not asked again for a while
    server = served()
    client = links.client("PYRO:b@h:1", lambda: server.address)
    assert client is not None and links.client("PYRO:b@h:1", lambda: None) is client
    links.failed("PYRO:b@h:1")
    assert links.client("PYRO:b@h:1", lambda: server.address) is None
    links.close()


class _PyroSide:
    """What a worker answers over Pyro5 (the same serving functions), in this process."""

    def __init__(self, store: PartialStore) -> None:
        self.store = store

    def getpartials(self, batch, parts, lo, hi):
        return serve_partials(self.store, batch, parts, lo, hi)

    def getsums(self, batch, lo, hi, wait):
        return serve_sums(self.store, batch, lo, hi, wait)


def test_a_malformed_answer_falls_back_to_pyro_with_the_same_rows(served):
    store = _store()
    good = BulkClient(served(store=store).address, "k", 5.0)
    fast = BulkPeer(good, _PyroSide(store), lambda: None).getpartials("b", [0, 1], 0, 20)

    def complex_rows(call, args):  # a peer answering arrays of a kind no row has
        return [0], [np.zeros(2, np.int32), np.zeros((2, K), np.complex64)]

    bad = BulkServer("127.0.0.1", "k", complex_rows)
    try:
        failures = []
        peer = BulkPeer(BulkClient(bad.address, "k", 5.0), _PyroSide(store), lambda: failures.append(1))
        slow = peer.getpartials("b", [0, 1], 0, 20)
    finally:
        bad.close()
    assert failures == [1]  # the channel is dropped for this peer, the rows come over "Pyro5"
    for (p, a), (q, b) in zip(fast, slow):
        ra = decode_rows(a, 0, 20, K, np.dtype(np.float32), "bulk")
        rb = decode_rows(b, 0, 20, K, np.dtype(np.float32), "pyro")
        assert p == q and np.array_equal(ra.words, rb.words) and np.array_equal(ra.raw, rb.raw)
    good.close()


def test_a_closed_channel_is_a_lost_peer(served):
    store = _store()
    server = served(store=store)
    failures = []
    peer = BulkPeer(BulkClient(server.address, "k", 5.0), _PyroSide(store), lambda: failures.append(1))
    server.close()
    wait_until(lambda: not server._proved)
    with pytest.raises(BulkLost):  # the scatter marks it unreachable and replays from γ: no second wait
        peer.getpartials("b", [0, 1], 0, 20)
    assert failures == [1]


def test_rows_from_the_channel_are_checked_like_pyros():
    words, raw = np.array([3, 2], np.int32), np.zeros((2, K), np.float32)
    with pytest.raises(WireError, match="ascending"):
        decode_rows((words, raw), 0, 9, K, np.dtype(np.float32), "rows")
    with pytest.raises(WireError, match="shape"):
        decode_rows((np.array([1, 2], np.int32), np.zeros((2, K + 1), np.float32)), 0, 9, K,
                    np.dtype(np.float32), "rows")


class _Daemon:
    """The one attribute of a Pyro5 daemon a worker's bulkaddress() reads: its listening socket."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))


def test_a_worker_opens_its_channel_on_its_daemons_address_and_not_under_tls(monkeypatch):
    from distlda.cluster.naming import NsConf
    from distlda.cluster.transport import Transport

    service = RowsService()
    service._partials, service.transport = _store(), Transport(NsConf(hmac_key="k"))
    assert service.bulkaddress() is None  # not in a daemon
    service._pyroDaemon = _Daemon()
    try:
        monkeypatch.setattr(pyro_config, "SSL", True)
        assert service.bulkaddress() is None  # the channel is not encrypted
        monkeypatch.setattr(pyro_config, "SSL", False)
        host, port = service.bulkaddress()
        assert host == "127.0.0.1" and service.bulkaddress() == [host, port]  # one server
        client = BulkClient((host, port), "k", 5.0)
        assert client.call("sums", ["b", 0, 8, 0.0], 10**6)[0]
        wait_until(lambda: service._bulk_served() == 1)
        client.close()
    finally:
        service._close_bulk()
        service._pyroDaemon.sock.close()


def test_requests_sent_ahead_are_answered_in_order(served):
    store = _store()
    client = BulkClient(served(store=store).address, "k", 5.0)
    client.send("partials", ["b", [0], 0, 20])
    client.send("sums", ["b", 0, 8, 0.0])
    kept, arrays = client.call("partials", ["b", [0], 0, 20], 10**6)  # the answers, not new requests
    assert kept == [0] and np.array_equal(arrays[1], store.partials("b", [0], 0, 20)[0].raw)
    made, arrays = client.call("sums", ["b", 0, 8, 0.0], 10**6)
    assert made and np.array_equal(arrays[1], store.sums("b", 0, 8, 0.0).raw)
    assert client.call("sums", ["b", 0, 8, 0.0], 10**6)[0]  # and a plain call again
    client.send("partials", ["b", [0], 0, 20])
    with pytest.raises(BulkError, match="not taken"):  # another call first: the answer ahead is nobody's
        client.call("sums", ["b", 0, 8, 0.0], 10**6)
    with pytest.raises(OSError):
        client.call("sums", ["b", 0, 8, 0.0], 10**6)  # closed
