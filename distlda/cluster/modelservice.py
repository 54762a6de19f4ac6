"""A worker's replica given to the client: the model whenever the client needs it (the workers apply the M-steps).

:class:`ModelService` is a mixin of :class:`distlda.cluster.worker.Worker`: it uses the worker's lock, replica, link
to the dispatcher and ``_sync`` (which brings the replica up to date from the dispatcher's recipes).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, ContextManager

from Pyro5 import errors as pyro_errors
from Pyro5.server import expose

from distlda.cluster import errors as cluster_errors
from distlda.cluster.pieces import encode_large, encode_piece
from distlda.cluster.replica import Replica
from distlda.cluster.wire import WireError, encode_array
from distlda.core.estep import kernel_threads

logger = logging.getLogger("distlda.lda_worker")

__all__ = ["ModelService"]


class ModelService:
    """The remote calls that give the replica's model: :meth:`getmodel`, and :meth:`getmodelpiece` for the rest of a
    model too large for one message (exposed one by one: the worker's class-wide ``expose`` covers only its own)."""

    _replica: Replica | None
    _lock: threading.Lock
    threads: int
    myid: str | None
    _dispatcher: Callable[[], ContextManager[Any]]
    _sync: Callable[[dict[str, Any]], None]
    _position: Callable[[], list | None]

    @expose
    def getmodel(self, lineage: str, version: int) -> dict[str, Any]:
        """The replica's statistics and priors at ``version`` of ``lineage``, for a client that lets the
        workers apply the M-steps and takes the model from them when it needs it.

        A replica that is behind first replays the M-steps it lacks (from the dispatcher). Returns
        ``{"version": v, "sstats_wm", "eta", "alpha"}`` at the newest version ``v <= version`` this replica
        could reach (the dispatcher may be gone), or ``{"version": None}`` when it has nothing of
        ``lineage`` up to ``version``.
        """
        with self._lock:
            replica = self._replica
            behind = replica is None or replica.lineage != lineage or (replica.version or 0) < version
        if behind:
            try:
                with self._dispatcher() as dispatcher, kernel_threads(self.threads):
                    self._sync(dispatcher.getrecipes(self._position(), light=True, worker=self.myid))
            except (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError, WireError, ValueError,
                    RuntimeError, KeyError) as exc:
                logger.warning("could not bring the replica to version %s: %s", version, exc)
        with self._lock:
            replica = self._replica
            if replica is None or replica.arrays is None or replica.lineage != lineage or \
                    replica.version is None or replica.version > version:
                return {"version": None}
            arrays = replica.arrays
            return {"version": replica.version, "sstats_wm": encode_large(arrays.sstats_wm),
                    "eta": encode_large(arrays.eta), "alpha": encode_array(arrays.alpha)}

    @expose
    def getmodelpiece(self, lineage: str, version: int, name: str, index: int, rows: int) -> dict[str, Any]:
        """Piece ``index`` (of ``rows`` rows) of the replica's array ``name`` ('sstats_wm' or 'eta') at
        ``version`` of ``lineage``: the rest of a :meth:`getmodel` answer too large for one message."""
        with self._lock:
            replica = self._replica
            if replica is None or replica.arrays is None or replica.position != [lineage, version]:
                raise WireError(f"getmodelpiece: the replica is at {None if replica is None else replica.position}, "
                                f"not at {[lineage, version]} (it moved on: ask getmodel again)")
            if name not in ("sstats_wm", "eta"):
                raise WireError(f"getmodelpiece: no array {name!r} is sent in pieces")
            return encode_piece(getattr(replica.arrays, name), index, rows)
