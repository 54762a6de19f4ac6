"""Keys, hostile bytes and bad jobs against real daemons on 127.0.0.1."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time

import msgpack
import numpy as np
import pytest
from Pyro5 import protocol

from distlda.cluster.auth import KeyedProxy
from distlda.cluster.errors import JobError, KeyRefusedError
from distlda.cluster.local import LocalCluster
from distlda.cluster.naming import DISPATCHER_NAME, WORKER_PREFIX, NsConf, locate_ns
from distlda.cluster.wire import encode_array, encode_chunk
from distlda.corpora.csr import CsrChunk

pytestmark = pytest.mark.distributed

KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(workers=1, hmac_key=KEY, threads_per_worker=1) as c:
        yield c


def _endpoints(cluster) -> dict[str, str]:
    """URI of the name server, the dispatcher and the worker."""
    with locate_ns(NsConf.from_mapping(cluster.ns_conf)) as ns:
        found = {name: str(uri) for name, uri in ns.list().items()}
    worker = next(uri for name, uri in found.items() if name.startswith(WORKER_PREFIX))
    return {"nameserver": found["Pyro.NameServer"], "dispatcher": found[DISPATCHER_NAME], "worker": worker}


def _address(uri: str) -> tuple[str, int]:
    host, port = uri.rsplit("@", 1)[1].rsplit(":", 1)
    return host, int(port)


def _still_serving(uri: str) -> bool:
    with KeyedProxy(uri, KEY, timeout=5.0) as proxy:
        proxy.ping()  # raises if the daemon does not answer
        return True


class _Exploit:
    """Unpickling this would create a file: proof that nothing was unpickled if the file never appears."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pyro_message(serializer_id: int, payload: bytes, size: int | None = None) -> bytes:
    msg = protocol.SendingMessage(protocol.MSG_CONNECT, 0, 1, 4, payload).data
    header = bytearray(msg[:protocol._header_size])
    header[7] = serializer_id  # the serializer byte of the header
    if size is not None:
        header[12:16] = struct.pack("!I", size)
    return bytes(header) + msg[protocol._header_size:]


def _send(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5.0) as sock:
        sock.sendall(data)
        try:
            return sock.recv(4096)
        except (socket.timeout, ConnectionResetError):
            return b""


@pytest.mark.parametrize("role", ["nameserver", "dispatcher", "worker"])
def test_wrong_or_missing_key_is_refused_at_once(cluster, role):
    uri = _endpoints(cluster)[role]
    for key, match in (("wrong key", "refused the key"), (None, "requires a key")):
        started = time.monotonic()
        proxy = KeyedProxy(uri, key, timeout=10.0)
        with pytest.raises(KeyRefusedError, match=match):
            proxy.ping()
        assert time.monotonic() - started < 3.0
    assert _still_serving(uri)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["nameserver", "dispatcher", "worker"])
def test_hostile_bytes_are_rejected_and_the_daemon_keeps_serving(cluster, role, tmp_path):
    uri = _endpoints(cluster)[role]
    address = _address(uri)
    marker = tmp_path / f"unpickled-{role}"
    exploit = pickle.dumps(_Exploit(str(marker)))
    attempts = {
        "random bytes": os.urandom(4096),
        "a raw pickle": exploit,
        "pickle inside a msgpack handshake": _pyro_message(4, msgpack.packb({"handshake": exploit, "object": "x"})),
        "a pickle under an unknown serializer id": _pyro_message(99, exploit),
        "a marshal payload": _pyro_message(3, b"\xe3" + os.urandom(64)),
        "an oversized message": _pyro_message(4, b"x", size=2**31 - 1),
        "a truncated header": b"PYRO\x01",
    }
    for what, data in attempts.items():
        answer = _send(address, data)
        assert b"hello" not in answer, what
        assert _still_serving(uri), f"{role} stopped serving after {what}"
    assert not marker.exists(), "a pickle received from the network was unpickled"


def _raw_dispatcher(cluster) -> KeyedProxy:
    proxy = KeyedProxy(_endpoints(cluster)["dispatcher"], KEY, timeout=30.0)
    proxy.initialize(num_topics=3, num_terms=10, dtype="float32", iterations=10, gamma_threshold=1e-3)
    proxy.setbase({"lineage": "test", "version": 0, "sstats_wm": encode_array(np.full((10, 3), 2.0, np.float32)),
                   "eta": encode_array(np.full(10, 0.1, np.float32)), "alpha": encode_array(np.full(3, 0.3, np.float32))})
    _new_batch(proxy, "b1")
    return proxy


def _new_batch(proxy: KeyedProxy, batch: str) -> None:
    proxy.reset({"batch": batch, "version": 0, "ref": None, "iterations": 10, "gamma_threshold": 1e-3, "seed": 1})


def _job(number: int, indptr, ids, counts, start: int = 0) -> dict:
    chunk = {"indptr": encode_array(np.asarray(indptr, np.int64)), "ids": encode_array(np.asarray(ids, np.int32)),
             "counts": encode_array(np.asarray(counts, np.float64)), "start": start}
    return {"batch": "b1", "job": number, "pass": 0, "docs": len(indptr) - 1, "chunk": chunk}


def _collect(dispatcher: KeyedProxy):
    for _ in range(20):
        state = dispatcher.getstate(5.0)
        if state is not None:
            return state
    raise AssertionError("no answer from the dispatcher")


@pytest.mark.parametrize("bad, match", [
    (_job(0, [0, 2], [3, 42], [1.0, 1.0], start=100), r"job 0 \(documents 100-100\): document 100: term id outside"),
    (_job(0, [0, 2], [3, 4], [1.0, float("nan")]), r"job 0 .*count is NaN"),
    (_job(0, [0, 2], [3, 4], [-1.0, 1.0]), r"job 0 .*negative count"),
    (_job(0, [0, 3], [3, 4], [1.0, 1.0]), r"job 0: indptr must .*end at len\(ids\)"),
    (_job(0, [0, 2], [3, 4], [1.0]), r"job 0: ids and counts differ in length"),
])
def test_bad_jobs_are_refused_naming_the_job_and_the_worker_stays_up(cluster, bad, match):
    dispatcher = _raw_dispatcher(cluster)
    assert dispatcher.putjob(bad, 5.0)
    with pytest.raises(JobError, match=match):
        _collect(dispatcher)
    assert _still_serving(_endpoints(cluster)["worker"])
    _new_batch(dispatcher, "b2")
    good = {"batch": "b2", "job": 0, "pass": 0, "docs": 1,
            "chunk": encode_chunk(CsrChunk(np.array([0, 1]), np.array([2], np.int32), np.array([1.0]), 0))}
    assert dispatcher.putjob(good, 5.0)
    state = _collect(dispatcher)
    assert len(state["results"]) == 1 and "error" not in state["results"][0] and state["results"][0]["job"] == 0
