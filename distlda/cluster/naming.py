"""Finding things in the cluster: ``ns_conf``, the name server, registration names and addresses.

``ns_conf`` is the dictionary gensim users pass to ``LdaModel(..., ns_conf=...)``
and that the daemons build from ``--host/--port/--no-broadcast/--hmac``:
``{"host": ..., "port": ..., "broadcast": ..., "hmac_key": ...}``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from Pyro5 import config as pyro_config
from Pyro5 import core as pyro_core
from Pyro5 import errors as pyro_errors

from distlda.cluster.auth import KeyedProxy, checked_proxy
from distlda.cluster.errors import (
    ClusterError,
    DispatcherNotFound,
    KeyRefusedError,
    NameServerNotFound,
)

logger = logging.getLogger(__name__)

__all__ = ["DISPATCHER_NAME", "WORKER_PREFIX", "NsConf", "locate_ns", "lookup_uri", "answering_proxy",
           "wait_for_ns", "find_dispatcher", "advertised_host", "Registrar", "DEFAULT_NS_PORT"]

DISPATCHER_NAME = "distlda.lda_dispatcher"
WORKER_PREFIX = "distlda.lda_worker."
DEFAULT_NS_PORT = 9090
NS_CALL_TIMEOUT = 10.0


@dataclass(frozen=True)
class NsConf:
    """Where the name server is and how to talk to it.

    Attributes
    ----------
    host : str or None
        Name server address; None: look on this machine, then by broadcast.
    port : int or None
        Name server port (default 9090).
    broadcast : bool
        Look for the name server by UDP broadcast when ``host`` is not given.
    hmac_key : str or None
        The cluster's shared key.
    timeout : float
        Seconds without progress (no job finished, no dispatcher) before training
        stops with an error; default 60. distlda's addition to gensim's keys.
    """

    host: str | None = None
    port: int | None = None
    broadcast: bool = True
    hmac_key: str | None = None
    timeout: float = 60.0

    @classmethod
    def from_mapping(cls, ns_conf: Mapping[str, Any] | None) -> "NsConf":
        """Read gensim-style ``ns_conf``; unknown keys are an error naming them."""
        conf = dict(ns_conf or {})
        unknown = set(conf) - {"host", "port", "broadcast", "hmac_key", "timeout"}
        if unknown:
            raise ValueError(f"ns_conf has unknown keys {sorted(unknown)}; known: host, port, broadcast, hmac_key, "
                             "timeout")
        timeout = conf.get("timeout", 60.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"ns_conf['timeout'] must be a positive number of seconds, got {timeout!r}")
        port = conf.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ValueError(f"ns_conf['port'] must be a port number, got {port!r}")
        host = conf.get("host")
        if host is not None and not isinstance(host, str):
            raise ValueError(f"ns_conf['host'] must be a string, got {host!r}")
        return cls(host or None, port, bool(conf.get("broadcast", True)), conf.get("hmac_key") or None,
                   float(timeout))

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "broadcast": self.broadcast, "hmac_key": self.hmac_key,
                "timeout": self.timeout}

    def where(self) -> str:
        return f"{self.host or 'localhost'}:{self.port or DEFAULT_NS_PORT}"


def _ns_uri(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"PYRO:{pyro_core.NAMESERVER_NAME}@{host}:{port}"


def _broadcast_find(port: int) -> str | None:
    """The name server's URI by UDP broadcast, or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.settimeout(0.7)
    try:
        for _ in range(2):
            for address in pyro_config.BROADCAST_ADDRS:
                try:
                    sock.sendto(b"GET_NSURI", (address, port))
                except OSError:
                    continue
            try:
                data, _ = sock.recvfrom(200)
                return data.decode("iso-8859-1")
            except OSError:
                continue
    finally:
        sock.close()
    return None


def locate_ns(conf: NsConf, timeout: float = NS_CALL_TIMEOUT) -> KeyedProxy:
    """A connected proxy of the name server; NameServerNotFound or KeyRefusedError with the reason.

    Each call waits at most ``timeout`` seconds, and never longer than ``conf.timeout`` (the stall limit).
    """
    timeout = min(timeout, conf.timeout)
    port = conf.port or DEFAULT_NS_PORT
    candidates = [_ns_uri(conf.host, port)] if conf.host else [_ns_uri("127.0.0.1", port)]
    if not conf.host and conf.broadcast:
        found = _broadcast_find(pyro_config.NS_BCPORT)
        if found:
            candidates.append(found)
    last: Exception | None = None
    for uri in candidates:
        try:
            return checked_proxy(KeyedProxy(uri, conf.hmac_key, timeout=timeout), _bind_and_ping)
        except KeyRefusedError:
            raise
        except (pyro_errors.CommunicationError, OSError) as exc:
            last = exc
    how = "" if conf.host else (" or by broadcast" if conf.broadcast else "")
    raise NameServerNotFound(f"no name server at {conf.where()}{how} ({last}); start one with "
                             "`python -m distlda.nameserver`, or pass ns_conf={'host': ..., 'port': ...}")


def _bind_and_ping(proxy: KeyedProxy) -> None:
    proxy._pyroBind()
    proxy.ping()


def lookup_uri(conf: NsConf, name: str, timeout: float = NS_CALL_TIMEOUT) -> str | None:
    """The URI registered as ``name`` at the name server, or None; NameServerNotFound if it does not answer."""
    with locate_ns(conf, timeout=timeout) as ns:
        try:
            return str(ns.lookup(name))
        except pyro_errors.NamingError:
            return None


def answering_proxy(uri: str, key: str | None, timeout: float) -> KeyedProxy | None:
    """A connected proxy of ``uri`` if it answers a ping, else None (a refused key still raises)."""
    try:
        return checked_proxy(KeyedProxy(uri, key, timeout=timeout), lambda proxy: proxy.ping())
    except KeyRefusedError:
        raise
    except (pyro_errors.CommunicationError, OSError):
        return None


def wait_for_ns(conf: NsConf, seconds: float) -> None:
    """Return once the name server answers; NameServerNotFound after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with locate_ns(conf, timeout=3.0):
                return
        except NameServerNotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def find_dispatcher(conf: NsConf, timeout: float | None = None) -> KeyedProxy:
    """The dispatcher's proxy, checked alive; NameServerNotFound / DispatcherNotFound otherwise."""
    uri = lookup_uri(conf, DISPATCHER_NAME)
    if uri is None:
        raise DispatcherNotFound(f"the name server at {conf.where()} has no dispatcher registered; start one "
                                 "with `python -m distlda.models.lda_dispatcher`")
    try:
        return checked_proxy(KeyedProxy(uri, conf.hmac_key, timeout=timeout, home=conf), _bind_and_ping)
    except KeyRefusedError:
        raise
    except (pyro_errors.CommunicationError, OSError) as exc:
        raise DispatcherNotFound(f"the dispatcher registered at the name server {conf.where()} does not answer "
                                 f"({exc}); restart it with `python -m distlda.models.lda_dispatcher`") from None


def advertised_host(conf: NsConf, bind: str | None = None) -> str:
    """The address a daemon should bind and advertise so that the others can reach it.

    An explicit ``bind`` wins. With the name server on a loopback address, the
    daemon uses 127.0.0.1; otherwise it uses this machine's address on the
    route to the name server (never 127.0.0.1, which the other hosts could not reach).
    """
    if bind:
        return bind
    host = conf.host or "127.0.0.1"
    try:
        if ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            return "127.0.0.1"
    except (OSError, ValueError):
        pass
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((host, conf.port or DEFAULT_NS_PORT))
        return probe.getsockname()[0]
    except OSError as exc:
        raise ClusterError(f"cannot find this machine's address on the route to the name server {host}: {exc}; "
                           "pass --bind ADDRESS") from None
    finally:
        probe.close()


class Registrar:
    """Keeps ``name → uri`` registered at the name server, re-registering after the name server restarts.

    Parameters
    ----------
    conf : NsConf
    name : str
    uri : str
    interval : float
        Seconds between checks.
    """

    def __init__(self, conf: NsConf, name: str, uri: str, interval: float = 2.0) -> None:
        self.conf, self.name, self.uri, self.interval = conf, name, str(uri), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"registrar-{name}", daemon=True)

    def register_now(self) -> None:
        """Register (or re-register) at once; errors propagate."""
        with locate_ns(self.conf) as ns:
            ns.register(self.name, self.uri, safe=False)

    def start(self) -> None:
        self._thread.start()

    def stop(self, unregister: bool = True) -> None:
        """Stop checking; optionally remove the registration."""
        self._stop.set()
        if unregister:
            try:
                with locate_ns(self.conf, timeout=3.0) as ns:
                    if str(ns.lookup(self.name)) == self.uri:
                        ns.remove(self.name)
            except Exception as exc:  # noqa: BLE001 - best effort at shutdown
                logger.debug("could not unregister %s: %s", self.name, exc)

    def _run(self) -> None:
        missing_logged = False
        while not self._stop.wait(self.interval):
            try:
                with locate_ns(self.conf, timeout=3.0) as ns:
                    try:
                        current = str(ns.lookup(self.name))
                    except pyro_errors.NamingError:
                        current = None
                    if current != self.uri:
                        ns.register(self.name, self.uri, safe=False)
                        logger.warning("registered %s again at the name server %s", self.name, self.conf.where())
                missing_logged = False
            except Exception as exc:  # noqa: BLE001 - keep trying while the name server is away
                if not missing_logged:
                    logger.warning("name server %s unreachable (%s); will register again when it is back",
                                   self.conf.where(), exc)
                    missing_logged = True
