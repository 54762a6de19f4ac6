"""A large base passed on between the workers, in a tree, instead of once per worker from the dispatcher.

At the start of every ``update()`` the client sends the dispatcher a base (the model's full statistics), and
every worker loads it. A base larger than one message goes in pieces (:mod:`distlda.cluster.pieces`), and the
dispatcher used to send every worker every piece: W copies of a K × V array through one process and one link,
encoded by Pyro5 each time. With 8 workers and a 120 MB model that was a GB through the dispatcher before the
first M-step, most of the time of a short run.

Now the dispatcher answers the first worker that asks for a base with the base alone, and each later one also
with a *source*: a worker that asked before it, the parent of a binary tree in the order they asked
(:class:`BaseTakers`), so no worker passes it on to more than two others and the last one has it after about
log2(W) hand-overs. A worker loads the pieces from its source over the source's bulk channel
(:mod:`distlda.cluster.bulk`, call ``basepiece``): the source answers each piece as soon as it has it in place
itself, so the levels of the tree overlap (a piece, not the whole base, per level), and later from its replica
while that still holds the base; the asker waits for a piece a few seconds at a time. Whatever goes wrong — no
source, no bulk channel, a source that moved on to a later version, was lost, sent a piece that does not fit, or
gave no piece for ``BASE_PATIENCE`` s — the remaining pieces come from the dispatcher as before. The base a worker
loads is the same bits either way: a replica at ``[lineage, version]`` holds exactly the base of that position.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from distlda.cluster.errors import WireError
from distlda.cluster.pieces import is_piece, is_pieced
from distlda.cluster.wire import check_name, check_wait
from distlda.validation import is_integer

if TYPE_CHECKING:
    from distlda.cluster.replica import Replica

logger = logging.getLogger(__name__)

__all__ = ["BaseTakers", "BaseService", "BASE_WAIT", "BASE_PATIENCE", "base_piece_call"]

BASE_WAIT = 5.0
"""Seconds a source holds one ``basepiece`` request while its own replica is still loading the base (below the
bulk channel's call timeout, ``peers.PEER_TIMEOUT``)."""

BASE_PATIENCE = 20.0
"""Seconds a worker waits for the next piece from its source before it takes the rest from the dispatcher."""

_ARRAYS = ("sstats_wm", "eta")
"""The base's arrays that can be large enough to go in pieces (alpha has K values)."""


class BaseTakers:
    """The dispatcher's record of the workers it gave the current base, in the order they asked: the source of
    each is its parent in a binary tree (the first has none: it takes the base from the dispatcher)."""

    def __init__(self) -> None:
        self._order: list[str] = []

    def reset(self) -> None:
        """A new base: nobody holds it yet."""
        self._order = []

    def source_for(self, uri: str) -> str | None:
        """The worker ``uri`` takes the base now: the URI of the worker it should take it from, or None."""
        if uri not in self._order:
            self._order.append(uri)
        place = self._order.index(uri)
        return None if place == 0 else self._order[(place - 1) // 2]


def base_piece_call(rows_of: Callable[..., np.ndarray | bool | None], args: list) -> tuple[Any, list[np.ndarray]]:
    """The bulk channel's ``basepiece`` call: ``[lineage, version, name, lo, hi, wait]`` answered with True and the
    rows ``lo:hi`` of ``name`` when this worker's replica held the base of ``[lineage, version]`` within ``wait`` s,
    False when not yet, ``"gone"`` when it will not (:meth:`BaseService._base_rows`); WireError naming the argument
    that is malformed."""
    if len(args) != 6:
        raise WireError(f"basepiece: 6 arguments, got {len(args)}")
    lineage, version, name, lo, hi, wait = args
    check_name(lineage, "basepiece", "lineage")
    if name not in _ARRAYS:
        raise WireError(f"basepiece: no array {name!r} (one of {', '.join(_ARRAYS)})")
    if not all(is_integer(v) and v >= 0 for v in (version, lo, hi)) or lo >= hi:
        raise WireError(f"basepiece: version {version!r} and rows {lo!r}:{hi!r} must be whole numbers, lo < hi")
    rows = rows_of(lineage, int(version), name, int(lo), int(hi), check_wait(wait, "basepiece", BASE_WAIT))
    if isinstance(rows, np.ndarray):
        return True, [rows]
    return ("gone" if rows is False else False), []


class BaseService:
    """The worker's side: :meth:`_base_rows` answers ``basepiece``, :meth:`_load_base` loads a base from its source,
    else from the dispatcher. Mixed into the worker, which holds ``_replica`` under ``_lock``, its job loop
    (``_loop``) and ``_peer(uri)`` (a peer for one step: over the bulk channel, on the job loop), and calls
    :meth:`_init_base` after making ``_lock``.

    Waits never hold ``_lock`` (a worker loading a base holds it throughout): they wait on ``_loading_cond``, told
    when a load starts, when each piece is in place and when it ends, and take ``_lock`` only with a deadline."""

    _replica: Replica | None
    _lock: threading.Lock
    _loop: threading.Thread | None
    _peer: Callable[[str], Any]

    def _bulk_calls(self) -> dict[str, Any]:
        """The calls this service adds to the worker's bulk channel."""
        return {"basepiece": lambda call, args: base_piece_call(self._base_rows, args)}

    def _init_base(self) -> None:
        """Set up the service's state (after ``_lock``)."""
        self._loading: dict[str, Any] | None = None  # the base being loaded: the pieces already in place
        self._loads = 0  # loads started and ended (a wait that saw no change sleeps until the next)
        self._loading_cond = threading.Condition()
        self.from_source = 0  # pieces of bases this worker took from another worker

    def _load_base(self, answer: dict[str, Any], from_dispatcher: Callable[[str, int], Any]) -> None:
        """Load ``answer``'s base into the replica (call with ``_lock`` held), its pieces from the source the
        dispatcher named or else from the dispatcher (``from_dispatcher(name, index)``); each piece can be passed on
        as soon as it is in place, so the tree's levels overlap."""
        assert self._replica is not None
        base = answer["base"]
        rows = {n: base[n]["rows"] for n in _ARRAYS if is_pieced(base.get(n))}
        self._set_loading({"position": [base["lineage"], base["version"]], "arrays": {}, "done": set(), "rows": rows})
        try:
            self._replica.load_base(base, self._base_fetch(answer, from_dispatcher), self._piece_in)
        finally:
            self._set_loading(None)

    def _set_loading(self, loading: dict[str, Any] | None) -> None:
        with self._loading_cond:
            self._loading = loading
            self._loads += 1
            self._loading_cond.notify_all()

    def _piece_in(self, name: str, array: np.ndarray, index: int) -> None:
        with self._loading_cond:
            if self._loading is not None:
                self._loading["arrays"][name] = array
                self._loading["done"].add((name, index))
                self._loading_cond.notify_all()

    def _base_rows(self, lineage: str, version: int, name: str, lo: int, hi: int,
                   wait: float) -> np.ndarray | bool | None:
        """A copy of the piece ``lo:hi`` of the array ``name`` of the base of ``[lineage, version]``, once this
        worker has it in place (loading it, or in its replica); None when it does not within ``wait`` s (it may
        still get it), False when it will not: it moved on to a later version, keeps its arrays scaled (a lazy
        M-step's), or ``lo:hi`` is not a piece of it."""
        deadline = time.monotonic() + wait
        while True:
            with self._loading_cond:
                loads = self._loads
            rows = self._loading_rows(lineage, version, name, lo, hi, deadline)
            if rows is None:
                rows = self._replica_rows(lineage, version, name, lo, hi, deadline)
            if rows is not None:
                return rows
            with self._loading_cond:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self._loads == loads:
                    self._loading_cond.wait(left)

    def _loading_rows(self, lineage: str, version: int, name: str, lo: int, hi: int,
                      deadline: float) -> np.ndarray | bool | None:
        """:meth:`_base_rows` from the base being loaded, waiting for the piece until ``deadline``; None when no
        base of that position is being loaded, or the piece is not in place by then."""
        with self._loading_cond:
            while self._loading is not None and self._loading["position"] == [lineage, version]:
                rows = self._loading["rows"].get(name)  # (None: not in pieces; in the replica when loaded)
                if rows is not None and (lo % rows or hi > lo + rows):
                    return False  # not one of its pieces
                if rows is not None and (name, lo // rows) in self._loading["done"]:
                    return np.array(self._loading["arrays"][name][lo:hi])
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._loading_cond.wait(left)
        return None

    def _replica_rows(self, lineage: str, version: int, name: str, lo: int, hi: int,
                      deadline: float) -> np.ndarray | bool | None:
        """:meth:`_base_rows` from the replica, taking ``_lock`` by ``deadline``; None when it does not hold the
        base (yet) or the lock could not be had."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None
        try:
            replica = self._replica
            if replica is not None and replica.lineage == lineage and (replica.version or 0) > version:
                return False
            if replica is None or replica.position != [lineage, version]:
                return None
            arrays = replica.canonical_arrays()
            arr = None if arrays is None else getattr(arrays, name)
            if arr is None or arr.ndim < 1 or not is_piece(arr, lo, hi):
                return False
            return np.array(arr[lo:hi])
        finally:
            self._lock.release()

    def _base_fetch(self, answer: dict[str, Any],
                    from_dispatcher: Callable[[str, int], Any]) -> Callable[[str, int], Any]:
        """The ``fetch(name, index)`` of the pieces of ``answer``'s base: from its ``base_from`` worker over the bulk
        channel while that works (only on the job loop's thread, which owns the links), else ``from_dispatcher``."""
        source, base = answer.get("base_from"), answer["base"]
        if not isinstance(source, str) or threading.current_thread() is not self._loop:
            return from_dispatcher
        asking = {"source": source, "until": time.monotonic() + BASE_PATIENCE}

        def fetch(name: str, index: int) -> Any:
            header = base[name]
            lo = index * header["rows"]
            hi = min(header["shape"][0], lo + header["rows"])
            while asking["source"] is not None:
                piece = self._piece_from(source, [base["lineage"], base["version"], name, lo, hi, BASE_WAIT],
                                         (np.dtype(header["dtype"]), (hi - lo, *header["shape"][1:])))
                if isinstance(piece, np.ndarray):
                    self.from_source += 1
                    asking["until"] = time.monotonic() + BASE_PATIENCE  # (the patience is per piece)
                    return piece
                if piece is False or time.monotonic() > asking["until"]:
                    logger.info("base from %s: %s; the rest from the dispatcher", source,
                                "no piece for %.0f s" % BASE_PATIENCE if piece is None else "it cannot give it")
                    asking["source"] = None
            return from_dispatcher(name, index)

        return fetch

    def _piece_from(self, source: str, args: list, expected: tuple[np.dtype, tuple]) -> np.ndarray | bool | None:
        """One ``basepiece`` request to ``source``: the piece, None for "not yet" (after at least half a second),
        False when the source cannot give it (it said so, failed, or sent a piece of another dtype or shape)."""
        started = time.monotonic()
        dtype, shape = expected
        try:
            with self._peer(source) as peer:
                piece = peer.basepiece(args, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        except Exception as exc:  # noqa: BLE001 - a source that fails only sends the asker to the dispatcher
            logger.info("base from %s failed: %s", source, exc)
            return False
        if isinstance(piece, np.ndarray) and (piece.dtype != dtype or piece.shape != shape):
            logger.info("base from %s: a piece of %s %s, expected %s %s", source, piece.dtype, piece.shape, dtype,
                        shape)
            return False
        if piece is None:
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))  # (a source answers "not yet" after a wait)
        return piece
