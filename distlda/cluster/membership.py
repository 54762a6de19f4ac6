"""Which workers a dispatcher uses: discovery at the name server, liveness checks, and losses.

:class:`Membership` runs one monitor thread in the dispatcher. Every
``heartbeat`` seconds it pings each worker (a ping is answered by a Pyro thread
of the worker even while its kernels run, as they release the GIL); a worker
that fails ``misses`` pings in a row is declared lost and ``on_lost(name)`` is
called, so the dispatcher can give its jobs to the others. Every few
heartbeats it also looks for workers newly registered at the name server and
initialises them, so a worker that joins during training is used at once.

Each worker is enlisted with a random session token, made once per worker name
and kept for the dispatcher's lifetime, so a worker that was lost and comes
back is enlisted again with the same token. The worker requires it on every
call that changes it, and shows it when it takes jobs (:meth:`Membership.check_session`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from typing import Any, Callable

from Pyro5 import errors as pyro_errors

from distlda.cluster.errors import ClusterError, ModelTooLarge, NumericsMismatch, SessionRefused, WireError
from distlda.cluster.transport import Transport, release

logger = logging.getLogger(__name__)

__all__ = ["Membership"]

_FAILURES = (pyro_errors.CommunicationError, pyro_errors.NamingError, OSError, ClusterError)
_REFUSALS = (NumericsMismatch, ModelTooLarge, SessionRefused, WireError)
"""How a live worker says no to joining (other kernels, too small, enlisted elsewhere, parameters out of range)."""


class Membership:
    """The dispatcher's view of its workers.

    Parameters
    ----------
    transport : Transport
        How to reach the name server and the workers.
    on_lost : callable
        Called with a worker's name when it is declared lost.
    heartbeat : float
        Seconds between liveness checks.
    ping_timeout : float
        Seconds a ping may take.
    misses : int
        Failed pings in a row before a worker is declared lost.
    discover_every : float
        Seconds between looks at the name server for new workers.
    """

    def __init__(self, transport: Transport, on_lost: Callable[[str], None], heartbeat: float = 1.0,
                 ping_timeout: float = 3.0, misses: int = 2, discover_every: float = 2.0) -> None:
        self.transport = transport
        self.on_lost = on_lost
        self.heartbeat = heartbeat
        self.ping_timeout = ping_timeout
        self.misses = misses
        self.discover_every = discover_every
        self._lock = threading.Lock()
        self._uris: dict[str, str] = {}
        self._missed: dict[str, int] = {}
        self._init_args: tuple[str, dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proxies: dict[str, tuple[str, Any]] = {}  # name: (uri, proxy), the monitor thread's own
        self._refused: dict[str, tuple[str, Exception]] = {}
        self._tokens: dict[str, str] = {}  # name: session token, kept for the dispatcher's lifetime
        self._generation = 0  # one more at each setup: a discovery begun before it records nothing
        self._discovering = threading.Lock()  # one discovery at a time (setup's and the monitor's)

    def names(self) -> list[str]:
        """Workers currently in use."""
        with self._lock:
            return sorted(self._uris)

    def refusals(self) -> list[Exception]:
        """Why registered workers refused to join (their errors), since the last :meth:`setup`."""
        with self._lock:
            return [error for _, error in self._refused.values()]

    def check_session(self, name: str, session: Any, where: str) -> None:
        """Refuse a call made under worker ``name`` without the session token it was enlisted with (a worker
        takes and reports jobs only for itself). Names this dispatcher never enlisted pass: they get no jobs."""
        with self._lock:
            token = self._tokens.get(name)
        if token is not None and not (isinstance(session, str) and
                                      hmac.compare_digest(session.encode(), token.encode())):
            raise SessionRefused(f"{where}: the call for worker {name} did not carry its session token; a worker "
                                 "takes and reports jobs only for itself")

    def _token(self, name: str) -> str:
        with self._lock:
            return self._tokens.setdefault(name, secrets.token_hex(16))

    def uri(self, name: str) -> str | None:
        with self._lock:
            return self._uris.get(name)

    def setup(self, dispatcher_uri: str, model_params: dict[str, Any]) -> dict[str, str]:
        """Initialise every registered worker for these model parameters; returns ``{name: uri}`` of those that answered."""
        with self._lock:
            self._generation += 1
            self._init_args = (dispatcher_uri, dict(model_params))
            self._uris = {}
            self._missed = {}
            self._refused = {}
        self._discover()
        self._ensure_monitor()
        with self._lock:
            return dict(self._uris)

    def _discover(self) -> None:
        with self._discovering:
            self._discover_once()

    def _discover_once(self) -> None:
        with self._lock:
            if self._init_args is None:
                return
            (dispatcher_uri, params), generation = self._init_args, self._generation
        try:
            registered = self.transport.registered_workers()
        except _FAILURES as exc:
            logger.debug("name server unreachable while looking for workers: %s", exc)
            return
        with self._lock:
            # a worker that refused says why once; it is asked again only if it registers anew
            new = {n: u for n, u in registered.items()
                   if self._uris.get(n) != u and self._refused.get(n, (None,))[0] != u}
        for name, uri in sorted(new.items()):
            try:
                with self.transport.proxy(uri, timeout=5.0) as proxy:
                    proxy.initialize(name, dispatcher_uri, session=self._token(name), **params)
            except _REFUSALS as exc:
                logger.warning("worker %s refused to join: %s", name, exc)
                with self._lock:
                    self._refused[name] = (uri, exc)
                continue
            except _FAILURES as exc:
                logger.info("registered worker %s at %s does not answer (%s); removing its registration",
                            name, uri, exc)
                self._forget(name, uri)
                continue
            with self._lock:
                if generation != self._generation:
                    return  # a client set the cluster up anew meanwhile: its own discovery initialises them
                self._uris[name] = uri
                self._missed[name] = 0
            logger.info("worker %s joined (%s)", name, uri)

    def _forget(self, name: str, uri: str) -> None:
        """Remove a dead worker's registration (a live worker registers itself again within seconds)."""
        try:
            self.transport.forget(name, uri)
        except _FAILURES as exc:
            logger.debug("could not remove %s from the name server: %s", name, exc)

    def _ensure_monitor(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._monitor, name="membership", daemon=True)
            self._thread.start()

    def _ping(self, name: str, uri: str) -> bool:
        """One liveness check, over a proxy the monitor keeps per worker (one connection, not one per ping)."""
        held = self._proxies.get(name)
        if held is None or held[0] != uri:
            self._drop_proxy(name)
            held = self._proxies[name] = (uri, self.transport.proxy(uri, timeout=self.ping_timeout))
        try:
            return bool(held[1].ping())
        except _FAILURES:
            self._drop_proxy(name)  # a new connection for the next ping
            return False

    def _drop_proxy(self, name: str) -> None:
        """Close the monitor's proxy of a worker: the one close path of these long-lived proxies."""
        held = self._proxies.pop(name, None)
        if held is not None:
            release(held[1])

    def _monitor(self) -> None:
        try:
            self._watch()
        finally:
            for name in list(self._proxies):
                self._drop_proxy(name)

    def _watch(self) -> None:
        last_discovery = time.monotonic()
        while not self._stop.wait(self.heartbeat):
            for name in self.names():
                uri = self.uri(name)
                if uri is None:
                    continue
                if self._ping(name, uri):
                    with self._lock:
                        self._missed[name] = 0
                    continue
                with self._lock:
                    self._missed[name] = self._missed.get(name, 0) + 1
                    lost = self._missed[name] >= self.misses
                    if lost:
                        self._uris.pop(name, None)
                        self._missed.pop(name, None)
                if lost:
                    self._drop_proxy(name)
                    logger.warning("lost worker %s (%s): no answer to %d pings", name, uri, self.misses)
                    self.on_lost(name)
                    self._forget(name, uri)
            if time.monotonic() - last_discovery >= self.discover_every:
                last_discovery = time.monotonic()
                self._discover()

    def stop_workers(self) -> None:
        """Ask every worker in use to exit."""
        for name in self.names():
            uri = self.uri(name)
            if uri is None:
                continue
            try:
                with self.transport.proxy(uri, timeout=5.0) as proxy:
                    proxy.exit(session=self._token(name))
            except _FAILURES as exc:
                logger.warning("could not stop worker %s: %s", name, exc)

    def close(self) -> None:
        """Stop the liveness checks (the monitor closes its proxies as it ends)."""
        self._stop.set()
