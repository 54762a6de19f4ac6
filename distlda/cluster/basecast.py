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
while that still holds the base; the asker waits for a piece a few seconds at a time. Whatever goes wrong — no source, no bulk channel, a source that moved on to a later
version, lost or slow — the remaining pieces come from the dispatcher as before. The base a worker loads is the
same bits either way: a replica at ``[lineage, version]`` holds exactly the base of that position.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from distlda.cluster.errors import WireError
from distlda.cluster.replica import Replica
from distlda.cluster.wire import check_name, check_wait
from distlda.validation import is_integer

logger = logging.getLogger(__name__)

__all__ = ["BaseTakers", "BaseService", "BASE_WAIT", "BASE_PATIENCE", "base_piece_call"]

BASE_WAIT = 5.0
"""Seconds a source holds one ``basepiece`` request while its own replica is still loading the base (below the
bulk channel's call timeout, ``peers.PEER_TIMEOUT``)."""

BASE_PATIENCE = 20.0
"""Seconds in all a worker waits for its source to hold the base before it takes the pieces from the dispatcher."""

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
    """The worker's side: :meth:`_base_rows` answers ``basepiece`` from its replica, :meth:`_base_fetch` gives
    :meth:`Replica.load_base` its pieces from a source, else from the dispatcher. Mixed into the worker, which
    holds ``_replica`` under ``_lock``, its job loop (``_loop``) and
    ``_peer(uri)`` (a peer for one step: over the bulk channel, on the job loop), and which loads each base with
    :meth:`_load_base` (after :meth:`_init_base`)."""

    _replica: Replica | None
    _lock: threading.Lock
    _loop: threading.Thread | None
    _peer: Callable[[str], Any]
    from_source = 0  # pieces of bases this worker took from another worker

    def _bulk_calls(self) -> dict[str, Any]:
        """The calls this service adds to the worker's bulk channel."""
        return {"basepiece": lambda call, args: base_piece_call(self._base_rows, args)}

    def _init_base(self) -> None:
        """Set up the service's state (after ``_lock``)."""
        self._base_cond = threading.Condition(self._lock)  # the replica moved
        self._loading: dict[str, Any] | None = None  # the base being loaded: the pieces already in place
        self._loading_cond = threading.Condition()

    def _load_base(self, answer: dict[str, Any], from_dispatcher: Callable[[str, int], Any]) -> None:
        """Load ``answer``'s base into the replica (call with ``_lock`` held), its pieces from the source the
        dispatcher named or else from the dispatcher (``from_dispatcher(name, index)``); each piece can be passed on
        as soon as it is in place, so the tree's levels overlap."""
        assert self._replica is not None
        base = answer["base"]
        with self._loading_cond:
            self._loading = {"position": [base["lineage"], base["version"]], "arrays": {}, "done": set(),
                             "rows": {n: base[n]["rows"] for n in _ARRAYS if isinstance(base.get(n), dict)
                                      and "rows" in base[n]}}
        try:
            self._replica.load_base(base, self._base_fetch(answer, from_dispatcher), self._piece_in)
        finally:
            with self._loading_cond:
                self._loading = None
                self._loading_cond.notify_all()
            self._base_cond.notify_all()

    def _piece_in(self, name: str, array: np.ndarray, index: int) -> None:
        with self._loading_cond:
            if self._loading is not None:
                self._loading["arrays"][name] = array
                self._loading["done"].add((name, index))
                self._loading_cond.notify_all()

    def _loading_rows(self, lineage: str, version: int, name: str, lo: int, hi: int,
                      deadline: float) -> np.ndarray | bool | None:
        """Rows of the base being loaded, as for :meth:`_base_rows`, when they are one of its pieces already in
        place (waiting for it until ``deadline``); None when no base of that position is being loaded."""
        with self._loading_cond:
            while self._loading is not None and self._loading["position"] == [lineage, version]:
                rows = self._loading["rows"].get(name)
                if rows is None or lo % rows or hi > lo + rows:
                    return False  # not one of its pieces
                if (name, lo // rows) in self._loading["done"]:
                    return np.array(self._loading["arrays"][name][lo:hi])
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._loading_cond.wait(left)
        return None

    def _base_rows(self, lineage: str, version: int, name: str, lo: int, hi: int,
                   wait: float) -> np.ndarray | bool | None:
        """A copy of rows ``lo:hi`` of the array ``name`` of this worker's replica once it holds the base of
        ``[lineage, version]``; None when it does not within ``wait`` s (it may still be loading it), False when
        it will not: it moved on to a later version, or keeps its arrays scaled (a lazy M-step's), or has no such
        rows."""
        deadline = time.monotonic() + wait
        loading = self._loading_rows(lineage, version, name, lo, hi, deadline)
        if loading is not None:
            return loading
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):  # (held while it loads a base)
            return None
        try:
            while True:
                replica = self._replica
                if replica is not None and replica.position == [lineage, version]:
                    arrays = replica.canonical_arrays()
                    arr = None if arrays is None else getattr(arrays, name)
                    return False if arr is None or arr.ndim < 1 or hi > arr.shape[0] else np.array(arr[lo:hi])
                if replica is not None and replica.lineage == lineage and (replica.version or 0) > version:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._base_cond.wait(left)
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
            rows = base[name]["rows"]
            args = [base["lineage"], base["version"], name, index * rows,
                    min(base[name]["shape"][0], (index + 1) * rows), BASE_WAIT]
            while asking["source"] is not None:
                try:
                    with self._peer(source) as peer:
                        piece = peer.basepiece(args)
                except Exception as exc:  # noqa: BLE001 - a source that fails only sends the asker to the dispatcher
                    logger.info("base from %s failed (%s): the rest from the dispatcher", source, exc)
                    asking["source"] = None
                    break
                if piece is not None:
                    self.from_source += 1
                    return piece
                if time.monotonic() > asking["until"]:
                    logger.info("base from %s: not there after %.0f s; the rest from the dispatcher", source,
                                BASE_PATIENCE)
                    asking["source"] = None
            return from_dispatcher(name, index)

        return fetch
