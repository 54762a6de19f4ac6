"""A side channel for large arrays between workers: rows sent from and received into numpy buffers.

Pyro5 moves an array as bytes inside a msgpack message: encoded, packed, framed, sent, received in pieces,
joined, unpacked and decoded, each a copy. Between two processes on one machine that costs about 3.4 ms of CPU
per MB; sending the array's own memory and receiving straight into a new array costs about 0.5 ms
(``bench/bulk_speed.py``). In the reduce-scatter (:mod:`distlda.cluster.scatter`) each worker sends and receives
its chunks' partial rows and the sums of the batch's rows, about 14 MB per M-step at K = 100 and V = 10,000 on 8
workers, so on hosts of a fraction of a core the copies were a large share of a worker's CPU. Each worker therefore serves its partials and sums here
too, on a plain TCP socket next to its Pyro5 daemon (same address, a port of its own, given by the worker's
``bulkaddress()``); Pyro5 stays the channel of every other call, and of these ones whenever this one cannot be
used.

The protocol, on one connection kept open by the asking worker (integers little-endian):

1. Handshake: the server sends ``MAGIC`` and a 16-byte challenge; the client answers a 16-byte nonce and
   ``HMAC-SHA256(key, "bulk-client" + challenge + nonce)``; the server checks it (in constant time) and answers
   ``HMAC-SHA256(key, "bulk-server" + nonce + challenge)``, which the client checks. Both prove the cluster key
   without sending it; a cluster without a key uses the empty key (a check of the protocol, as Pyro5 without a
   key checks nothing). The channel is not encrypted: a cluster on Pyro5's TLS does not open it.
2. Requests: a 4-byte length and a msgpack list ``[call, args]`` (at most ``MAX_REQUEST`` bytes).
3. Answers: a 4-byte length and a msgpack map — ``{"error": text}``, or ``{"meta": value, "arrays":
   [[dtype, shape], ...]}`` — then each array's bytes in C order.

Every size is checked before anything is allocated: an answer's arrays must be of the numeric dtypes and at most
the bytes the caller allows.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import socket
import struct
import threading
import time
from typing import Any, Callable

import msgpack
import numpy as np

from distlda.cluster.auth import normalize_key
from distlda.cluster.daemon import PreauthLimits, shut_socket
from distlda.cluster.errors import WireError

logger = logging.getLogger(__name__)

__all__ = ["BulkServer", "BulkClient", "BulkError", "BulkLost", "BulkLinks", "Handler", "MAGIC", "MAX_REQUEST",
           "MAX_CONNECTIONS"]

MAGIC = b"DLBULK1\n"
MAX_REQUEST = 64 * 1024
"""Bytes of one request (a call and its few arguments)."""
MAX_HEADER = 1024 * 1024
"""Bytes of an answer's header (the shapes of its arrays and a small value)."""
MAX_CONNECTIONS = 256
"""Connections that proved the key a server keeps at once (a worker has one per peer); more are closed."""
IDLE_TIMEOUT = 3600.0
"""Seconds a server keeps a connection that sends no request (a client reconnects after half of it)."""
CONNECT_TIMEOUT = 3.0
"""Seconds a client waits for a TCP connection to a bulk port."""
LOW_WATER = 256 * 1024
"""Bytes a large read waits for before the kernel wakes the reading thread (see :func:`_recv_into`)."""
_LENGTH = struct.Struct("<I")
_NUMERIC = set("iuf")

Handler = Callable[[str, list], tuple[Any, list[np.ndarray]]]
"""``handler(call, args) -> (meta, arrays)``; raises WireError (or ValueError) to refuse the call."""


class BulkError(OSError):
    """The side channel failed (a refused handshake, a malformed answer): the caller asks over Pyro5 instead."""


class BulkLost(BulkError):
    """The peer did not answer in time or the connection broke: the peer itself may be gone, so the caller treats
    it as unreachable rather than asking it again over Pyro5 (which would cost a second timeout)."""


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def _recv_into(sock: socket.socket, view: memoryview, deadline: float | None = None) -> None:
    """Fill ``view`` from ``sock``; by ``deadline`` (a monotonic time) when given, however slowly bytes come.

    A large read asks the kernel (``SO_RCVLOWAT``) to wake this thread only once up to ``LOW_WATER`` bytes wait: on
    a slow link each packet would otherwise wake it, and those wake-ups cost a host more CPU than the copies."""
    got, low = 0, 1
    try:
        while got < len(view):
            want = min(len(view) - got, LOW_WATER)
            if want != low and (want > 1 or low > 1):
                low = want if _low_water(sock, want) else low
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BulkError("too slow: the deadline passed")
                sock.settimeout(left)
            n = sock.recv_into(view[got:])
            if n == 0:
                raise BulkLost("the peer closed the connection")
            got += n
    finally:
        if low != 1:
            _low_water(sock, 1)


def _low_water(sock: socket.socket, size: int) -> bool:
    """Set ``SO_RCVLOWAT``; False where the system does not let it be set (reads then wake per packet)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
        return True
    except (OSError, AttributeError):
        return False


def _recv_exact(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    buf = bytearray(size)
    _recv_into(sock, memoryview(buf), deadline)
    return bytes(buf)


def _recv_frame(sock: socket.socket, limit: int, what: str) -> Any:
    (size,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
    if size > limit:
        raise BulkError(f"{what} of {size} bytes (at most {limit})")
    try:
        return msgpack.unpackb(_recv_exact(sock, size), raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise BulkError(f"{what} is not msgpack: {exc}") from None


def _send_frame(sock: socket.socket, value: Any) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    sock.sendall(_LENGTH.pack(len(data)) + data)


class BulkServer:
    """Serves ``handler``'s arrays on a TCP port of ``host`` (see the module's text); one thread per connection.

    Connections that have not proved the key are bounded as the Pyro5 daemon bounds its own
    (:class:`~distlda.cluster.daemon.PreauthLimits`): each has ``handshake_seconds`` to prove it, at most
    ``per_address`` are kept per peer address and ``total`` in all (beyond either, a new one closes the oldest),
    so a flood delays no key holder for long. At most ``MAX_CONNECTIONS`` proved ones are kept.

    Parameters
    ----------
    host : str
        The address to listen on (the worker's Pyro5 daemon's).
    key : str or bytes, optional
        The cluster key.
    handler : Handler
    limits : PreauthLimits, optional
        The daemon's bounds (default: the daemon's defaults).
    """

    def __init__(self, host: str, key: str | bytes | None, handler: Handler,
                 limits: PreauthLimits | None = None) -> None:
        self._key = normalize_key(key) or b""
        self._handler = handler
        self.limits = limits if limits is not None else PreauthLimits()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(MAX_CONNECTIONS)
        self.address = (host, int(self._sock.getsockname()[1]))
        self._unproved: dict[socket.socket, str] = {}  # oldest first, with the peer's address
        self._proved: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.served = 0  # calls answered with arrays
        self.refused = 0  # connections closed before they proved the key (bounds, deadline, wrong key)
        threading.Thread(target=self._accept, name="bulk-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, addr = self._sock.accept()
            except OSError as exc:
                if self._closed:
                    return
                logger.warning("bulk channel: accept failed (%s); going on", exc)  # EMFILE, ECONNABORTED...
                time.sleep(0.1)
                continue
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._make_room(str(addr[0]))
                self._unproved[conn] = str(addr[0])
            try:
                threading.Thread(target=self._serve, args=(conn,), name="bulk-conn", daemon=True).start()
            except RuntimeError as exc:  # no thread to be had: this one goes
                logger.warning("bulk channel: no thread for a connection (%s)", exc)
                with self._lock:
                    self._unproved.pop(conn, None)
                conn.close()

    def _make_room(self, host: str) -> None:
        """Before a connection from ``host`` is kept: push out the oldest that has not proved the key from that
        address, then overall, while a bound is reached (with the lock held)."""
        for of_host in (True, False):
            pool = [c for c, h in self._unproved.items() if h == host or not of_host]
            if len(pool) >= (self.limits.per_address if of_host else self.limits.total):
                shut_socket(pool[0])  # its thread ends and forgets it
                self._unproved.pop(pool[0])
                self.refused += 1

    def _prove(self, conn: socket.socket) -> bool:
        """The handshake (see the module's text), within the deadline; whether the peer proved the key."""
        deadline = time.monotonic() + self.limits.handshake_seconds
        challenge = secrets.token_bytes(16)
        conn.sendall(MAGIC + challenge)
        answer = _recv_exact(conn, 48, deadline)
        nonce, mac = answer[:16], answer[16:]
        if not hmac.compare_digest(mac, _mac(self._key, b"bulk-client", challenge, nonce)):
            logger.warning("bulk channel: refused a peer without the cluster key")
            return False
        with self._lock:
            if self._unproved.pop(conn, None) is None or len(self._proved) >= MAX_CONNECTIONS:
                return False  # pushed out meanwhile, or too many open
            self._proved.add(conn)
        conn.sendall(_mac(self._key, b"bulk-server", nonce, challenge))
        return True

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self._prove(conn):
                return
            conn.settimeout(IDLE_TIMEOUT)
            while True:
                request = _recv_frame(conn, MAX_REQUEST, "a request")
                self._answer(conn, request)
        except (OSError, socket.timeout) as exc:
            logger.debug("bulk channel: connection ended (%s)", exc)
        except Exception:  # noqa: BLE001 - a bad answer ends this connection only; the peer asks over Pyro5
            logger.exception("bulk channel: a call failed")
        finally:
            with self._lock:
                if self._unproved.pop(conn, None) is not None:
                    self.refused += 1
                self._proved.discard(conn)
            conn.close()

    def _answer(self, conn: socket.socket, request: Any) -> None:
        if not (isinstance(request, list) and len(request) == 2 and isinstance(request[0], str)
                and isinstance(request[1], list)):
            _send_frame(conn, {"error": "a request is [call, args]"})
            return
        try:
            meta, arrays = self._handler(request[0], request[1])
        except (WireError, ValueError, TypeError) as exc:
            _send_frame(conn, {"error": f"{request[0]}: {exc}"})
            return
        arrays = [np.ascontiguousarray(a) for a in arrays]
        _send_frame(conn, {"meta": meta, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]})
        for a in arrays:
            if a.nbytes:
                conn.sendall(memoryview(a).cast("B"))
        with self._lock:
            self.served += 1

    def close(self) -> None:
        """Stop listening and close every connection."""
        with self._lock:
            self._closed = True
            conns = list(self._unproved) + list(self._proved)
        shut_socket(self._sock)  # wakes the thread blocked in accept() (closing alone would not, on Linux)
        self._sock.close()
        for conn in conns:
            shut_socket(conn)


class BulkClient:
    """One connection to a :class:`BulkServer`, handshake done; not thread-safe (one per asking thread).

    Raises
    ------
    BulkError
        When the server cannot be reached or does not prove the key.
    """

    def __init__(self, address: tuple[str, int], key: str | bytes | None, timeout: float) -> None:
        self._key = normalize_key(key) or b""
        self._sent: list[tuple[str, list]] = []  # requests sent whose answers are still to be read, in order
        try:  # a port a firewall drops must not cost the asker a long wait: the connect is short
            self._sock = socket.create_connection(address, timeout=min(timeout, CONNECT_TIMEOUT))
            self._sock.settimeout(timeout)
        except OSError as exc:
            raise BulkError(f"cannot reach {address[0]}:{address[1]}: {exc}") from None
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hello = _recv_exact(self._sock, len(MAGIC) + 16)
            if hello[:len(MAGIC)] != MAGIC:
                raise BulkError(f"{address[0]}:{address[1]} does not speak the bulk protocol")
            challenge, nonce = hello[len(MAGIC):], secrets.token_bytes(16)
            self._sock.sendall(nonce + _mac(self._key, b"bulk-client", challenge, nonce))
            try:
                proof = _recv_exact(self._sock, 32)
            except BulkError:
                raise BulkError(f"{address[0]}:{address[1]} refused the handshake (another cluster key?)") from None
            if not hmac.compare_digest(proof, _mac(self._key, b"bulk-server", nonce, challenge)):
                raise BulkError(f"{address[0]}:{address[1]} does not have the cluster key")
        except (OSError, socket.timeout) as exc:
            self.close()
            raise exc if isinstance(exc, BulkError) else BulkError(f"handshake failed: {exc}") from None

    def send(self, name: str, args: list) -> None:
        """Ask ``name(*args)`` now and take the answer later, with :meth:`call` of the same name and arguments: a
        caller that asks several servers sends every request first, so they all work at once.

        Raises
        ------
        BulkLost
            When the request cannot be sent (the connection is closed).
        """
        try:
            _send_frame(self._sock, [name, args])
        except OSError as exc:
            self.close()
            raise BulkLost(f"{name}: {exc}") from None
        self._sent.append((name, args))

    def call(self, name: str, args: list, max_bytes: int) -> tuple[Any, list[np.ndarray]]:
        """``name(*args)`` on the server (its answer only, when :meth:`send` asked it already): its ``(meta,
        arrays)``, the arrays at most ``max_bytes`` in all.

        Raises
        ------
        WireError
            When the server refused the call (its reason; the connection stays usable).
        BulkLost
            When the server did not answer in time or the connection broke (the connection is closed).
        BulkError
            When the answer is malformed (the connection is closed).
        """
        if self._sent and self._sent[0] != (name, args):
            self.close()  # answers to requests nobody will take are ahead of this one
            raise BulkError(f"{name}: {len(self._sent)} answers asked for and not taken")
        try:
            if self._sent:
                self._sent.pop(0)
            else:
                _send_frame(self._sock, [name, args])
            header = _recv_frame(self._sock, MAX_HEADER, "an answer's header")
            if isinstance(header, dict) and "error" in header:
                raise WireError(str(header["error"]))
            arrays = []
            for dtype, shape in _array_specs(header, max_bytes):
                a = np.empty(shape, dtype)
                if a.nbytes:
                    _recv_into(self._sock, memoryview(a).cast("B"))
                arrays.append(a)
            return header["meta"], arrays
        except WireError:
            raise
        except BulkError:
            self.close()
            raise
        except (socket.timeout, ConnectionError) as exc:
            self.close()
            raise BulkLost(f"{name}: {exc or 'timed out'}") from None
        except Exception as exc:  # noqa: BLE001 - anything else leaves unread bytes: the connection cannot go on
            self.close()
            raise BulkError(f"{name}: {exc}") from None

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def _array_specs(header: Any, max_bytes: int) -> list[tuple[np.dtype, tuple[int, ...]]]:
    """The (dtype, shape) of each array an answer announces; BulkError when malformed or over ``max_bytes``."""
    if not (isinstance(header, dict) and "meta" in header and isinstance(header.get("arrays"), list)):
        raise BulkError("an answer's header lacks meta or arrays")
    specs, total = [], 0
    for spec in header["arrays"]:
        try:
            dtype, shape = np.dtype(spec[0]), tuple(spec[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise BulkError(f"a bad array in an answer: {spec!r}") from None
        if dtype.kind not in _NUMERIC or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise BulkError(f"a bad array in an answer: {spec!r}")
        total += math.prod(shape) * dtype.itemsize  # Python integers: no overflow
        if total > max_bytes or len(shape) > 32:
            raise BulkError(f"an answer of more than {max_bytes} bytes")
        specs.append((dtype, shape))
    return specs


class BulkLinks:
    """The bulk connections one thread (a worker's job loop) keeps open, by peer.

    A peer without a bulk channel (an older worker, TLS, a port it cannot be reached on, a failure) is asked over
    Pyro5 for ``retry_after`` seconds, twice as long after each failure in a row (up to an hour), before it is
    tried again. A connection unused for half the server's ``IDLE_TIMEOUT`` is opened anew before it is used.

    Parameters
    ----------
    key : str or bytes, optional
    timeout : float
        Seconds an answer may take.
    """

    def __init__(self, key: str | bytes | None, timeout: float, retry_after: float = 30.0) -> None:
        self._key, self._timeout, self._retry_after = key, timeout, retry_after
        self._clients: dict[str, tuple[BulkClient, float]] = {}  # with the time it was last used
        self._without: dict[str, tuple[float, float]] = {}  # since when, for how long

    def client(self, uri: str, address: Callable[[], Any]) -> BulkClient | None:
        """The open connection to the peer at ``uri``; ``address()`` gives its ``(host, port)`` (or None) when a
        connection is opened. None when the peer has no bulk channel. What ``address()`` raises, other than
        ``AttributeError`` (a worker without the call), reaches the caller: a peer that does not answer is the
        caller's to handle."""
        now = time.monotonic()
        held = self._clients.pop(uri, None)
        if held is not None and now - held[1] < IDLE_TIMEOUT / 2:
            self._clients[uri] = (held[0], now)
            return held[0]
        if held is not None:
            held[0].close()
        without = self._without.get(uri)
        if without is not None and now - without[0] < without[1]:
            return None
        try:
            where = address()
        except AttributeError as exc:
            self._give_up(uri, f"no bulkaddress call ({exc})")
            return None
        if not (isinstance(where, tuple) and len(where) == 2 and isinstance(where[0], str)
                and isinstance(where[1], int)):
            self._give_up(uri, "no bulk channel")
            return None
        try:
            client = BulkClient((where[0], where[1]), self._key, self._timeout)
        except BulkError as exc:
            self._give_up(uri, str(exc))
            return None
        if len(self._clients) >= MAX_CONNECTIONS:  # peers come and go over a long life: no socket kept forever
            self.close()
        self._clients[uri] = (client, now)
        self._without.pop(uri, None)
        return client

    def _give_up(self, uri: str, why: str) -> None:
        previous = self._without.get(uri)
        wait = self._retry_after if previous is None else min(2 * previous[1], 3600.0)
        self._without[uri] = (time.monotonic(), wait)
        logger.info("no bulk channel to %s (%s): asking over Pyro5 for %.0f s", uri, why, wait)

    def failed(self, uri: str) -> None:
        """Close the connection to ``uri`` after a failure; Pyro5 is used for it for a while."""
        held = self._clients.pop(uri, None)
        if held is not None:
            held[0].close()
        self._give_up(uri, "it failed")

    def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client, _ in clients.values():
            client.close()
