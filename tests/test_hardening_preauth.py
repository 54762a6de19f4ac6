"""What a peer that has not proved the key can do to a daemon: bombs and floods on 127.0.0.1, bounded in count and
time; and the client's waits on a hung dispatcher, bounded by the stall limit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
from cluster_helpers import spawn, stop, wait_until
from conftest import random_docs
from Pyro5 import protocol

from distlda.cluster.auth import KeyedProxy
from distlda.cluster.errors import DispatcherNotFound
from distlda.cluster.local import LocalCluster, free_port
from distlda.cluster.naming import DISPATCHER_NAME, WORKER_PREFIX, NsConf, locate_ns, lookup_uri
from distlda.models import LdaModel

pytestmark = pytest.mark.distributed

KEY = "preauth hardening key"
MAX_MESSAGE_MB = 64
FLOOD = 1000
V = 300
VOCAB = {i: f"w{i}" for i in range(V)}


# ------------------------------------------------------------------ daemons started and stopped by PID


@pytest.fixture(scope="module")
def daemons(tmp_path_factory):
    """A keyed name server and a keyed worker, each allowing messages of MAX_MESSAGE_MB."""
    logs = tmp_path_factory.mktemp("preauth-logs")
    port = free_port()
    env = {"DISTLDA_HMAC": KEY}
    limit = ["--max-message-mb", str(MAX_MESSAGE_MB)]
    procs = [spawn("distlda.nameserver", "-n", "127.0.0.1", "-p", str(port), *limit, log_dir=logs,
                   name="nameserver", env=env)]
    try:
        procs.append(spawn("distlda.models.lda_worker", "--host", "127.0.0.1", "--port", str(port), "--no-broadcast",
                           "--bind", "127.0.0.1", "--threads", "1", *limit, log_dir=logs, name="worker", env=env))
        conf = NsConf("127.0.0.1", port, False, KEY)
        wait_until(lambda: _worker_uri(conf) is not None, timeout=120, what="the worker to register")
        yield {"nameserver": (procs[0], f"PYRO:Pyro.NameServer@127.0.0.1:{port}"),
               "worker": (procs[1], _worker_uri(conf))}
    finally:
        stop(*procs)


def _worker_uri(conf: NsConf) -> str | None:
    try:
        with locate_ns(conf, timeout=2.0) as ns:
            found = ns.list(prefix=WORKER_PREFIX)
    except Exception:  # noqa: BLE001 - not up yet
        return None
    return next(iter(found.values()), None)


def _address(uri: str) -> tuple[str, int]:
    host, port = str(uri).rsplit("@", 1)[1].rsplit(":", 1)
    return host, int(port)


def _memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def _ping_seconds(uri: str, timeout: float = 5.0) -> float:
    """Seconds a new keyed connection takes to answer a ping (both handshakes included)."""
    started = time.monotonic()
    with KeyedProxy(uri, KEY, timeout=timeout) as proxy:
        proxy.ping()
    return time.monotonic() - started


# ------------------------------------------------------------------ the compressed-message bomb


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 2 MiB of zlib that inflates to 2 GiB of zeros, built without holding the 2 GiB."""
    packer = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(2048)]
    parts.append(packer.flush())
    return b"".join(parts)


def _compressed_handshake(payload: bytes) -> bytes:
    """A Pyro5 connect message whose header flags ``payload`` as compressed (serializer: msgpack)."""
    msgpack_id = 4
    msg = bytearray(protocol.SendingMessage(protocol.MSG_CONNECT, 0, 1, msgpack_id, payload).data)
    msg[8:10] = struct.pack("!H", protocol.FLAGS_COMPRESSED)  # the flags field of the header
    return bytes(msg)


@pytest.mark.parametrize("role", ["nameserver", "worker"])
def test_a_compressed_message_bomb_is_refused_before_it_is_inflated(daemons, bomb, role):
    proc, uri = daemons[role]
    assert len(bomb) < 3 << 20
    before = _memory_kb(proc.pid)
    with socket.create_connection(_address(uri), timeout=60.0) as sock:
        with contextlib.suppress(OSError):  # the daemon may close before it has read everything
            sock.sendall(_compressed_handshake(bomb))
        with contextlib.suppress(OSError):
            while sock.recv(65536):  # until the daemon has answered and closed: the bomb was dealt with
                pass
    after = _memory_kb(proc.pid)
    grown_mb = (after["VmHWM"] - max(before["VmHWM"], before["VmRSS"])) / 1024
    assert grown_mb <= MAX_MESSAGE_MB + 50, f"{role} grew by {grown_mb:.0f} MB under a {len(bomb)} byte bomb"
    assert _ping_seconds(uri) < 5.0  # and it keeps serving


def test_a_compressed_message_is_refused_with_a_reason(daemons):
    _, uri = daemons["nameserver"]
    handshake = msgpack.packb({"handshake": {"distlda": 1, "keyed": True}, "object": "Pyro.NameServer"})
    with socket.create_connection(_address(uri), timeout=10.0) as sock:
        sock.sendall(_compressed_handshake(zlib.compress(handshake)))
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer[6] == protocol.MSG_CONNECTFAIL and b"compressed" in answer


# ------------------------------------------------------------------ idle connections


@contextlib.contextmanager
def _idle_flood(address: tuple[str, int], count: int = FLOOD):
    """``count`` TCP connections to ``address`` that never send a byte; all closed at the end.

    Connections are opened without waiting (a daemon that stopped accepting must not stall the test).
    """
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(address)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _established(socks) -> int:
    """How many of ``socks`` got connected (the daemon accepted them or they wait in its backlog)."""
    count = 0
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.getpeername()
            count += 1
    return count


@pytest.mark.parametrize("role", ["nameserver", "worker"])
def test_a_flood_of_idle_connections_leaves_a_keyed_ping_answered_within_1s(daemons, role):
    _, uri = daemons[role]
    with _idle_flood(_address(uri)) as socks:
        wait_until(lambda: _established(socks) >= 300, timeout=10, what="the flood to connect")
        seconds = [_ping_seconds(uri) for _ in range(3)]
        assert max(seconds) < 1.0, seconds


def test_a_daemon_under_a_flood_exits_on_sigterm_within_seconds(tmp_path):
    port = free_port()
    proc = spawn("distlda.nameserver", "-n", "127.0.0.1", "-p", str(port), log_dir=tmp_path, name="nameserver",
                 env={"DISTLDA_HMAC": KEY})
    try:
        uri = f"PYRO:Pyro.NameServer@127.0.0.1:{port}"
        wait_until(lambda: _answers(uri), timeout=60, what="the name server")
        with _idle_flood(("127.0.0.1", port)) as socks:
            wait_until(lambda: _established(socks) >= 300, timeout=10, what="the flood to connect")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5.0)
            exited_after = time.monotonic() - started
            assert proc.poll() is not None, "the name server ignored SIGTERM under the flood"
            assert exited_after < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _answers(uri: str) -> bool:
    try:
        return _ping_seconds(uri, timeout=2.0) >= 0
    except Exception:  # noqa: BLE001 - not up yet
        return False


# ------------------------------------------------------------------ training while a worker is flooded


def _params(**extra):
    params = dict(id2word=VOCAB, num_topics=10, chunksize=200, passes=2, random_state=3, eval_every=0)
    params.update(extra)
    return params


class _Trainer(threading.Thread):
    """Runs ``model.update(docs)`` in the background and keeps the error it stopped on, if any."""

    def __init__(self, model, docs):
        super().__init__(daemon=True)
        self.model, self.docs, self.error = model, docs, None

    def run(self):
        try:
            self.model.update(self.docs)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc


@pytest.mark.slow
def test_training_with_a_flooded_worker_gives_the_local_model(tmp_path):
    docs = random_docs(np.random.default_rng(5), 800, V, max_len=40)
    reference = LdaModel(docs, **_params())
    with LocalCluster(workers=2, hmac_key=KEY, threads_per_worker=1, log_dir=str(tmp_path)) as cluster:
        conf = NsConf.from_mapping(cluster.ns_conf)
        with locate_ns(conf) as ns:
            victim = next(iter(ns.list(prefix=WORKER_PREFIX).values()))
        with _idle_flood(_address(victim)) as socks:
            wait_until(lambda: _established(socks) >= 300, timeout=10, what="the flood to connect")
            model = LdaModel(None, distributed=True, ns_conf=dict(cluster.ns_conf, timeout=20.0), **_params())
            trainer = _Trainer(model, docs)
            trainer.start()
            trainer.join(timeout=180)
            assert not trainer.is_alive(), "training froze under the flood"
        assert trainer.error is None, trainer.error
        np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)


# ------------------------------------------------------------------ a hung dispatcher


@pytest.mark.slow
def test_a_hung_dispatcher_is_reported_within_its_timeouts(tmp_path):
    stall = 8.0
    docs = random_docs(np.random.default_rng(9), 1200, V, max_len=40)
    with LocalCluster(workers=1, threads_per_worker=1, log_dir=str(tmp_path)) as cluster:
        model = LdaModel(None, distributed=True, ns_conf=dict(cluster.ns_conf, timeout=stall),
                         **_params(passes=4, chunksize=100))
        pid = cluster.dispatcher.pid
        uri = lookup_uri(NsConf.from_mapping(cluster.ns_conf), DISPATCHER_NAME)
        trainer = _Trainer(model, docs)
        stopped = False
        try:
            trainer.start()
            with KeyedProxy(uri, timeout=10.0) as watcher:
                wait_until(lambda: watcher.status()["jobs_done"] >= 4, timeout=120, what="training to start")
            os.kill(pid, signal.SIGSTOP)
            stopped, hung_at = True, time.monotonic()
            trainer.join(timeout=120)
            reported_after = time.monotonic() - hung_at
            assert not trainer.is_alive()
            assert isinstance(trainer.error, DispatcherNotFound), trainer.error
            # one call timeout finds the dispatcher hung; taking the model from the workers then takes at most the
            # stall limit more (a worker whose replica lags asks the hung dispatcher for recipes first: seen beside
            # a CPU burner, 16.0 s); the bound is the timeouts', not a speed
            assert reported_after < 2 * stall + 6.0, f"reported after {reported_after:.1f}s"
            # the next update() finds the same hung dispatcher: reported after one call timeout too
            started = time.monotonic()
            with pytest.raises(DispatcherNotFound):
                model.update(docs[:100])
            assert time.monotonic() - started < stall + 6.0
        finally:
            if stopped:
                os.kill(pid, signal.SIGCONT)
            trainer.join(timeout=60)


def test_idle_connections_are_closed_before_a_client_in_its_handshake():
    """The bound per address closes connections that never sent a byte first: a keyed client of the same address
    as a flood, whose handshake is slow on a busy machine, is not pushed out by flood connections accepted after
    it (seen under load before this rule)."""
    from distlda.cluster.daemon import GuardedServer, PreauthLimits, _Peer

    server = GuardedServer(PreauthLimits(handshake_seconds=5.0, per_address=2, total=10))
    pairs = [socket.socketpair() for _ in range(5)]
    try:
        peers = [_Peer(a, ("127.0.0.1", 40000 + i), time.monotonic() + 5.0) for i, (a, _) in enumerate(pairs)]
        client, *flood = peers
        server._unproved[client] = None
        client.stage = "handshake"  # sent its first bytes; a thread reads its handshake
        for peer in flood:  # idle connections from the same address, accepted after it
            server._unproved[peer] = None
            server._bound("127.0.0.1")
        assert client in server._unproved
        assert list(server._unproved) == [client, flood[-1]]  # the newest idle one and the client remain
    finally:
        for a, b in pairs:
            a.close()
            b.close()
