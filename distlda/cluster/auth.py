"""Shared-key authentication (``--hmac KEY``) for every daemon and proxy, and the wire's safety rules.

Pyro5 has no key check of its own, so distlda adds a challenge/response to the
Pyro connection handshake:

1. The proxy connects with ``{"distlda": 1}``. A daemon that has a key refuses
   this first handshake with a fresh random challenge (valid once, for 30 s).
2. The proxy connects again with ``HMAC-SHA256(key, "client|challenge|cnonce")``
   and its own random ``cnonce``. The daemon checks the MAC (in constant time)
   and answers with ``HMAC-SHA256(key, "server|cnonce|challenge")``, which the
   proxy checks in turn: both sides prove the key, the key never travels, and a
   recorded handshake cannot be replayed (the challenge is used up).

Every mismatch is refused at once with a message that says which side lacks the
key or has another one. The handshake authenticates connections; it does not
encrypt them — use Pyro5's TLS for that (see ``docs/security.md``).

Daemons also accept only the msgpack serializer: a payload in any other
serializer (Pyro5 has no pickle at all, but marshal is unsafe on untrusted
input) is refused, and the daemon keeps serving. They read every message through
:class:`CheckedConnection`, which refuses a message flagged compressed before a
byte of it is inflated: Pyro5 inflates without a limit, after its size check, so
1 MiB of zlib would cost a daemon a GiB. distlda never compresses.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import struct
import threading
import time
from typing import Any, Callable

from Pyro5 import config as pyro_config
from Pyro5 import errors as pyro_errors
from Pyro5 import protocol as pyro_protocol
from Pyro5 import serializers as pyro_serializers
from Pyro5.client import Proxy
from Pyro5.socketutil import SocketConnection

from distlda.cluster.errors import KeyRefusedError

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOL", "KeyedDaemonMixin", "KeyedProxy", "normalize_key", "configure_pyro",
           "accept_only_msgpack", "checked_proxy", "release", "key_of", "home_of",
           "CheckedConnection"]

PROTOCOL = 1
_CHALLENGE = "distlda-challenge:"
_REFUSED = "distlda-refused:"
_CHALLENGE_TTL = 30.0
_MAX_CHALLENGES = 4096
_PYRO_START = b"PYRO" + pyro_protocol.PROTOCOL_VERSION.to_bytes(2, "big")
_HEADER = struct.Struct("!4sHBBHHII16sHH")
"""Pyro5's message header: tag, version, type, serializer, flags, sequence, data size, annotations size,
correlation id, reserved, magic."""


def normalize_key(key: str | bytes | None) -> bytes | None:
    """The key as bytes; ``None`` or an empty key means no authentication."""
    if key is None or key == "" or key == b"":
        return None
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    raise TypeError(f"the key (--hmac / hmac_key) must be a string, got {type(key).__name__}")


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "|".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def configure_pyro(max_message_mb: int = 1024, threadpool: int = 200) -> None:
    """Pyro5 settings shared by every distlda process: msgpack, threaded server, bounded messages."""
    pyro_config.SERIALIZER = "msgpack"
    pyro_config.SERVERTYPE = "thread"
    pyro_config.THREADPOOL_SIZE = threadpool
    pyro_config.MAX_MESSAGE_SIZE = max_message_mb * 1024 * 1024
    pyro_config.DETAILED_TRACEBACK = False
    pyro_config.COMPRESSION = False  # daemons refuse compressed messages (see CheckedConnection)
    pyro_config.POLLTIMEOUT = 0.5  # how often a request loop notices it should stop


class CheckedConnection(SocketConnection):
    """A daemon's side of one connection: reads each Pyro5 message header first, and refuses a message flagged
    compressed before any of it is read or inflated.

    Pyro5 reads a message in pieces of its choosing (the first 6 bytes, the rest of the header, the body); this
    class follows the message boundaries itself, so that it sees every header whatever the pieces. Bytes that are
    not a Pyro5 header are passed on untouched, for Pyro5 to refuse.
    """

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._ahead = b""  # a header read and checked, not yet handed to Pyro5
        self._body = 0  # bytes of the current message's body still to come

    def recv(self, size: int) -> bytes:
        """``size`` bytes of the connection, every message header checked first."""
        if not self._ahead and self._body == 0:
            self._ahead = self._next_header()
        head, self._ahead = self._ahead[:size], self._ahead[size:]
        if len(head) == size:
            return head
        tail = super().recv(size - len(head))
        self._body = max(0, self._body - len(tail))
        return head + tail if head else tail

    def _next_header(self) -> bytes:
        start = super().recv(len(_PYRO_START))
        if start != _PYRO_START:
            return start  # not a message of this Pyro5 protocol: Pyro5 refuses it from these bytes
        header = start + super().recv(_HEADER.size - len(start))
        flags, data_size, annotations_size = (_HEADER.unpack(header)[i] for i in (4, 6, 7))
        if flags & pyro_protocol.FLAGS_COMPRESSED:
            logger.warning("refused a compressed message from %s", _peer(self))
            raise pyro_errors.ProtocolError("distlda daemons refuse compressed messages (leave Pyro5's "
                                            "COMPRESSION setting off)")
        self._body = data_size + annotations_size
        return header


class _RefusingSerializer:
    """Wraps a Pyro5 serializer: it may still write (error replies) but never reads."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.serializer_id = inner.serializer_id

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise pyro_errors.SerializeError("distlda daemons accept only the msgpack serializer")

    loads = _refuse
    loadsCall = _refuse

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def accept_only_msgpack() -> None:
    """Make every serializer but msgpack refuse to deserialize, in this process."""
    for name, ser in list(pyro_serializers.serializers.items()):
        if name != "msgpack" and not isinstance(ser, _RefusingSerializer):
            wrapped = _RefusingSerializer(ser)
            pyro_serializers.serializers[name] = wrapped
            pyro_serializers.serializers_by_id[ser.serializer_id] = wrapped


class KeyedDaemonMixin:
    """Mix into a Pyro5 ``Daemon`` subclass (before it) to require the shared key on every connection."""

    _auth_key: bytes | None = None

    def set_key(self, key: str | bytes | None) -> None:
        """Require ``key`` from every new connection (``None``: accept distlda clients without a key)."""
        self._auth_key = normalize_key(key)
        self._challenges: dict[str, float] = {}
        self._challenge_lock = threading.Lock()

    def _issue_challenge(self) -> str:
        now = time.monotonic()
        nonce = secrets.token_hex(16)
        with self._challenge_lock:
            if len(self._challenges) >= _MAX_CHALLENGES:
                for old in [n for n, t in self._challenges.items() if t < now] or list(self._challenges)[:1]:
                    del self._challenges[old]
            self._challenges[nonce] = now + _CHALLENGE_TTL
        return nonce

    def _use_challenge(self, nonce: Any) -> bool:
        if not isinstance(nonce, str):
            return False
        with self._challenge_lock:
            expiry = self._challenges.pop(nonce, None)
        return expiry is not None and expiry >= time.monotonic()

    def validateHandshake(self, conn: Any, data: Any) -> Any:  # noqa: N802 - Pyro5's name
        """Pyro5 hook: accept, challenge, or refuse a new connection."""
        if not isinstance(data, dict) or data.get("distlda") != PROTOCOL:
            raise pyro_errors.SecurityError(_REFUSED + "not a distlda client (protocol mismatch)")
        key = getattr(self, "_auth_key", None)
        if key is None:
            return {"keyed": False}
        response = data.get("response")
        if response is None:
            if not data.get("keyed"):
                raise pyro_errors.SecurityError(_REFUSED + "this daemon requires a key and the client has none")
            raise pyro_errors.SecurityError(_CHALLENGE + self._issue_challenge())
        if not isinstance(response, dict):
            raise pyro_errors.SecurityError(_REFUSED + "malformed key proof")
        nonce, cnonce, mac = response.get("challenge"), response.get("cnonce"), response.get("mac")
        if not self._use_challenge(nonce) or not isinstance(cnonce, str) or not isinstance(mac, str):
            raise pyro_errors.SecurityError(_REFUSED + "the challenge is unknown, used or expired")
        if not hmac.compare_digest(mac, _mac(key, "client", nonce, cnonce)):
            logger.warning("refused a connection from %s: wrong key", getattr(conn, "sock", None) and
                           _peer(conn))
            raise pyro_errors.SecurityError(_REFUSED + "the client's key is not this daemon's key")
        return {"keyed": True, "proof": _mac(key, "server", cnonce, nonce)}


def _peer(conn: Any) -> str:
    try:
        host, port = conn.sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


class KeyedProxy(Proxy):
    """A Pyro5 proxy that speaks distlda's handshake (with or without a key) and msgpack only.

    Parameters
    ----------
    uri : str or Pyro5 URI
    key : str or bytes, optional
        The cluster's shared key.
    timeout : float, optional
        Seconds each call may take before :class:`Pyro5.errors.TimeoutError`.
    home : object, optional
        Where the object was found (the name server's ``NsConf``), for a caller that must look it up again.
    """

    def __init__(self, uri: Any, key: str | bytes | None = None, timeout: float | None = None,
                 home: Any = None) -> None:
        super().__init__(uri)
        self._pyroSerializer = "msgpack"
        self._distlda_home = home
        self._distlda_key = normalize_key(key)
        self._distlda_expect: str | None = None
        self._pyroHandshake = {"distlda": PROTOCOL, "keyed": self._distlda_key is not None}
        if timeout is not None:
            self._pyroTimeout = timeout

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_distlda"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _where(self) -> str:
        uri = self._pyroUri
        return f"{uri.host}:{uri.port}" if getattr(uri, "host", None) else str(uri)

    def _distlda_connect(self, connect: Callable[[], Any]) -> Any:
        key = self._distlda_key
        self._pyroHandshake = {"distlda": PROTOCOL, "keyed": key is not None}
        self._distlda_expect = None
        try:
            return self._checked(connect)
        except pyro_errors.CommunicationError as exc:
            text = str(exc)
            if _CHALLENGE not in text:
                raise self._translate(exc) from None
            if key is None:  # pragma: no cover - the daemon refuses before challenging a keyless client
                raise KeyRefusedError(f"the daemon at {self._where()} requires a key and none was given") from None
            nonce = text.split(_CHALLENGE, 1)[1].split()[0].strip("'\"")
            cnonce = secrets.token_hex(16)
            self._pyroHandshake = {"distlda": PROTOCOL, "keyed": True,
                                   "response": {"challenge": nonce, "cnonce": cnonce,
                                                "mac": _mac(key, "client", nonce, cnonce)}}
            self._distlda_expect = _mac(key, "server", cnonce, nonce)
            try:
                return self._checked(connect)
            except pyro_errors.CommunicationError as exc2:
                raise self._translate(exc2) from None

    def _checked(self, connect: Callable[[], Any]) -> Any:
        try:
            return connect()
        except KeyRefusedError:
            self._pyroRelease()
            raise

    def _translate(self, exc: pyro_errors.CommunicationError) -> Exception:
        text = str(exc)
        if _REFUSED in text:
            reason = text.split(_REFUSED, 1)[1].strip().rstrip("'\"")
            if "has none" in reason:
                return KeyRefusedError(f"the daemon at {self._where()} requires a key (--hmac / "
                                       "ns_conf['hmac_key']) and this process was given none")
            if "not this daemon's key" in reason:
                return KeyRefusedError(f"the daemon at {self._where()} refused the key: it is not the key the "
                                       "cluster was started with")
            return KeyRefusedError(f"the daemon at {self._where()} refused the connection: {reason}")
        return exc

    def _pyroValidateHandshake(self, response: Any) -> None:  # noqa: N802 - Pyro5's name
        key = self._distlda_key
        keyed = isinstance(response, dict) and response.get("keyed")
        if key is None:
            return
        if not keyed:
            raise KeyRefusedError(f"the daemon at {self._where()} runs without a key but this process was given "
                                  "one: start the cluster with --hmac, or drop the key")
        proof = response.get("proof")
        if not isinstance(proof, str) or self._distlda_expect is None or \
                not hmac.compare_digest(proof, self._distlda_expect):
            raise KeyRefusedError(f"the daemon at {self._where()} could not prove it has the key")

    def _pyroBind(self) -> Any:  # noqa: N802 - Pyro5's name
        return self._distlda_connect(super()._pyroBind)

    def _pyroGetMetadata(self, objectId: Any = None, known_metadata: Any = None) -> Any:  # noqa: N802, N803
        if self._pyroConnection is None:
            self._distlda_connect(super()._pyroBind)  # the handshake brings the metadata
            if known_metadata is None and (self._pyroMethods or self._pyroAttrs):
                return None
        return super()._pyroGetMetadata(objectId, known_metadata)

    def _pyroInvoke(self, methodname: str, vargs: Any, kwargs: Any, flags: int = 0,  # noqa: N802
                    objectId: Any = None) -> Any:  # noqa: N803
        if self._pyroConnection is None:
            self._distlda_connect(super()._pyroBind)
        return super()._pyroInvoke(methodname, vargs, kwargs, flags, objectId)


def checked_proxy(proxy: KeyedProxy, check: Callable[[KeyedProxy], Any]) -> KeyedProxy:
    """``proxy`` once ``check(proxy)`` has passed (typically a ping); closed when the check raises, so the
    caller gets a working proxy to own, or the error, and never a connection left open."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(proxy)
        check(proxy)
        stack.pop_all()  # passed: the caller owns the connection from here
    return proxy


def release(proxy: Any) -> None:
    """Close the connection of a long-lived proxy, from whichever thread closes it; never raises.

    This is the one close path of proxies held across calls (short-lived ones are ``with`` blocks). The
    closing thread claims the proxy first, as Pyro5 lets only the thread that last used a proxy close it.
    """
    if proxy is None:
        return
    try:
        proxy._pyroClaimOwnership()
        proxy._pyroRelease()
    except (pyro_errors.PyroError, OSError) as exc:  # a dead connection: nothing left to free
        logger.debug("closing a proxy failed: %s", exc)


def key_of(proxy: KeyedProxy) -> bytes | None:
    """The cluster key a proxy proves, so that proxies of the same cluster can be made from it."""
    return proxy._distlda_key


def home_of(proxy: KeyedProxy) -> Any:
    """Where a proxy's object was found (given as ``home`` when it was made), or None."""
    return proxy._distlda_home
