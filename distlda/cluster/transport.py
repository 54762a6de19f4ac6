"""How one cluster process reaches the others: proxies by address, and the workers registered at the name server.

The dispatcher and the workers never build a proxy themselves: they ask their
:class:`Transport`. The default one speaks Pyro5 with the cluster key; tests
hand the same roles a transport whose "proxies" call objects of the same
process, so a job can flow dispatcher → worker → dispatcher without a socket.

Proxies come in two lifetimes. A short-lived one serves one step and is used as
a ``with`` block, so its connection is closed on every path, errors included.
A long-lived one is held by an object across calls (the job loop's proxy of the
dispatcher, the liveness checker's proxy of each worker) and is closed by
:func:`release` (re-exported here), its owner's single close path.
"""

from __future__ import annotations

from distlda.cluster.auth import KeyedProxy, release
from distlda.cluster.naming import WORKER_PREFIX, NsConf, locate_ns

__all__ = ["Transport", "release"]


class Transport:
    """Keyed Pyro5 proxies and name-server look-ups for one cluster process.

    Parameters
    ----------
    conf : NsConf
        Where the name server is, and the cluster key every proxy proves.
    """

    def __init__(self, conf: NsConf) -> None:
        self.conf = conf

    def proxy(self, uri: str, timeout: float | None = None) -> KeyedProxy:
        """A proxy of the object at ``uri`` (it connects on its first call); a context manager."""
        return KeyedProxy(uri, self.conf.hmac_key, timeout=timeout)

    def registered_workers(self) -> dict[str, str]:
        """``{name: uri}`` of every worker registered at the name server."""
        with locate_ns(self.conf, timeout=5.0) as ns:
            return {name: str(uri) for name, uri in ns.list(prefix=WORKER_PREFIX).items()}

    def forget(self, name: str, uri: str) -> None:
        """Remove ``name`` from the name server if it is still registered at ``uri`` (a live worker that was
        wrongly forgotten registers itself again within seconds)."""
        with locate_ns(self.conf, timeout=5.0) as ns:
            if str(ns.lookup(name)) == uri:
                ns.remove(name)

