"""The reduce-scatter of an M-step: the workers sum a batch's statistics between them instead of each replaying it all.

A replay (:mod:`distlda.cluster.replica`) rebuilds the statistics of every document of the batch on every worker,
so its cost does not shrink as workers are added. When every chunk of a batch was fitted whole by one worker (the
client cuts a batch into whole-chunk jobs when its chunks divide evenly among the workers), the batch is summed
instead by rows:

1. The worker that fits a chunk reduces it at once into its *partial* statistics
   (:func:`~distlda.core.estep.chunk_partial`) and keeps them (:class:`PartialStore`).
2. When the recipe comes, the vocabulary is cut into one range of words per holder of the batch (the workers that
   fitted its chunks, in name order). Each holder adds up, for its range, every chunk's partial rows in chunk
   order — its own from its store, the others' from their holders (``getpartials``) — and keeps the sums.
3. Every worker takes each range's sums from its owner (``getsums``), so it holds the whole batch's statistics and
   applies the M-step to its replica as a replay would.

A local run adds the same partials in the same order (:class:`~distlda.core.estep.BatchAccumulator`), so the model
stays bitwise the local one. Whatever fails — a holder that does not keep a partial or does not answer, an owner
that does not give its sums in time — the worker replays the recipe from γ instead (:mod:`distlda.cluster.peers`):
the same bits, more work. Per M-step each worker moves its chunks' partial rows out to the owners, its range's
partial rows in, and the sums of its range out and of the other ranges in: more bytes than the γ a replay takes
when chunks touch most of the vocabulary (docs/scaling.md), without the reduce of the whole batch. A peer that did
not answer is not asked again for a while (as for γ: ``peers.UNREACHABLE``), so a lost host costs one timeout.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from Pyro5 import errors as pyro_errors

from distlda.cluster import errors as cluster_errors
from distlda.cluster.replica import Replica
from distlda.cluster.peers import KEEP_BYTES, UNREACHABLE, check_gamma_request
from distlda.cluster.wire import WireError, check_name, check_wait, decode_array, encode_array
from distlda.core.estep import BatchStats, ChunkPartial, sum_partials
from distlda.core.mstep import MStepPlan
from distlda.validation import is_integer

logger = logging.getLogger(__name__)

__all__ = ["PartialStore", "ScatterPlan", "apply_by_rows", "reduce_scatter", "encode_rows", "decode_rows",
           "check_word_range",
           "serve_partials", "serve_sums", "SUMS_WAIT", "KEEP_SUMMED_BATCHES"]

SUMS_WAIT = 5.0
"""Seconds an owner holds a ``getsums`` call for sums it has not finished yet (the caller then replays)."""

KEEP_SUMMED_BATCHES = 2
"""Batches whose partials and sums a worker keeps: the others sum a batch right after its recipe is recorded, and one
that lags further replays from γ (a chunk's partial can be larger than its γ, so fewer are kept)."""

_FAILED = object()  # an owner could not make its sums: callers stop waiting for them


@dataclass(frozen=True)
class ScatterPlan:
    """Who fitted which chunk of a recipe, and which range of words each holder sums.

    ``parts[p]`` is the holder ``(name, uri)`` of chunk ``p``; ``owners`` the holders in name order, and the words
    ``bounds[i] <= v < bounds[i + 1]`` are summed by ``owners[i]``.
    """

    batch: str
    parts: list[tuple[str, str]]
    owners: list[tuple[str, str]]
    bounds: list[int]

    @classmethod
    def of(cls, recipe: dict[str, Any], num_terms: int) -> "ScatterPlan | None":
        """The plan of a light recipe, or None when it cannot be summed by rows (a chunk cut into several jobs, a
        job without holder, or a prior learned from the documents: alpha needs every document's E[log θ])."""
        batch, jobs = recipe.get("batch"), recipe.get("jobs")
        plan = recipe.get("plan")
        if not isinstance(batch, str) or not isinstance(jobs, list) or not jobs or not isinstance(plan, dict) \
                or plan.get("optimize_alpha") or plan.get("optimize_eta"):
            return None
        parts: list[tuple[str, str]] = []
        for number, job in enumerate(jobs):
            if not isinstance(job, dict):
                return None
            holder = job.get("holder")
            if job.get("part") != number or not job.get("whole") or not (
                    isinstance(holder, list) and len(holder) == 2 and all(isinstance(h, str) for h in holder)):
                return None
            parts.append((holder[0], holder[1]))
        owners = sorted(set(parts))
        n = len(owners)
        return cls(batch, parts, owners, [num_terms * i // n for i in range(n + 1)])

    def range_of(self, owner: int) -> tuple[int, int]:
        return self.bounds[owner], self.bounds[owner + 1]

    def parts_of(self, name: str) -> list[int]:
        return [p for p, (holder, _) in enumerate(self.parts) if holder == name]

    def rotated(self, myid: str) -> list[int]:
        """The owners' indices in the order ``myid`` calls them: from the one after itself, so that the workers,
        which all sum at the same moment, do not all call the same owner first (a convoy)."""
        names = [name for name, _ in self.owners]
        start = names.index(myid) + 1 if myid in names else 0
        n = len(names)
        return [(start + i) % n for i in range(n)]


class PartialStore:
    """This worker's chunks' partial statistics, and the sums of the ranges it owns, for its last batches (at most
    ``keep_batches``, and older batches go while they hold more than ``keep_bytes``: a batch that is gone is
    replayed from γ).

    Thread-safe: the job loop puts partials and sums; Pyro's threads serve them to the peers.
    """

    def __init__(self, keep_batches: int = KEEP_SUMMED_BATCHES, keep_bytes: int = KEEP_BYTES) -> None:
        self.keep_batches, self.keep_bytes = keep_batches, keep_bytes
        self._partials: OrderedDict[str, dict[int, ChunkPartial]] = OrderedDict()
        self._sums: OrderedDict[str, dict[tuple[int, int], Any]] = OrderedDict()
        self._changed = threading.Condition()

    def _put(self, table: OrderedDict, batch: str, key: Any, value: Any) -> None:
        """``table[batch][key] = value``, then the oldest batches go past the bounds (never the newest)."""
        table.setdefault(batch, {})[key] = value
        table.move_to_end(batch)
        while len(table) > self.keep_batches or (len(table) > 1 and self._bytes() > self.keep_bytes):
            table.popitem(last=False)
        self._changed.notify_all()  # a caller waiting for the sums of a batch no longer kept stops waiting

    def _bytes(self) -> int:
        return sum(rows.raw.nbytes for table in (self._partials, self._sums) for entry in table.values()
                   for rows in entry.values() if isinstance(rows, ChunkPartial))

    def put_partial(self, batch: str, part: int, partial: ChunkPartial) -> None:
        """Keep the partial of chunk ``part`` of ``batch``."""
        with self._changed:
            self._put(self._partials, batch, part, partial)

    def partials(self, batch: str, parts: list[int], lo: int, hi: int) -> dict[int, ChunkPartial]:
        """The rows ``lo <= v < hi`` of the kept partials of ``parts`` (those not kept are left out)."""
        with self._changed:
            kept = dict(self._partials.get(batch, {}))
        return {p: kept[p].rows_between(lo, hi) for p in parts if p in kept}

    def put_sums(self, batch: str, lo: int, hi: int, sums: ChunkPartial | None) -> None:
        """Keep this worker's sums of the words ``lo <= v < hi`` of ``batch`` (None: it could not make them)."""
        with self._changed:
            self._put(self._sums, batch, (lo, hi), _FAILED if sums is None else sums)

    def sums(self, batch: str, lo: int, hi: int, wait: float) -> ChunkPartial | None:
        """The sums of a range of ``batch``, waiting up to ``wait`` seconds for them while this worker still keeps
        partials of the batch (it will sum its range when it replays the batch); None when they are not made."""
        with self._changed:
            self._changed.wait_for(lambda: (lo, hi) in self._sums.get(batch, {}) or batch not in self._partials,
                                   timeout=wait)
            got = self._sums.get(batch, {}).get((lo, hi))
        return None if got is None or got is _FAILED else got

    def clear(self) -> None:
        """Forget everything (a new run: the old batches will not be summed here)."""
        with self._changed:
            self._partials.clear()
            self._sums.clear()
            self._changed.notify_all()


def serve_partials(store: PartialStore, batch: Any, parts: Any, lo: Any, hi: Any) -> list[list[Any]]:
    """A peer's ``getpartials(batch, parts, lo, hi)``, its arguments checked (WireError naming the bad one)."""
    parts = check_gamma_request(batch, parts, "getpartials", "parts")
    return encode_rows(store.partials(batch, parts, *check_word_range(lo, hi, "getpartials")))


def serve_sums(store: PartialStore, batch: Any, lo: Any, hi: Any, wait: Any) -> dict[str, Any] | None:
    """A peer's ``getsums(batch, lo, hi, wait)``, its arguments checked (WireError naming the bad one)."""
    sums = store.sums(check_name(batch, "getsums", "batch id"), *check_word_range(lo, hi, "getsums"),
                      check_wait(wait, "getsums", SUMS_WAIT))
    return None if sums is None else encode_rows(sums)


def check_word_range(lo: Any, hi: Any, where: str) -> tuple[int, int]:
    """A range of word ids ``lo <= v < hi`` sent as arguments; WireError unless two whole numbers with
    ``0 <= lo <= hi``."""
    if not (is_integer(lo) and is_integer(hi) and 0 <= lo <= hi):
        raise WireError(f"{where}: lo and hi must be word ids with 0 <= lo <= hi, got {lo!r} and {hi!r}")
    return int(lo), int(hi)


def encode_rows(rows: dict[int, ChunkPartial] | ChunkPartial) -> Any:
    """Partials by chunk, or one range's sums, as a message."""
    if isinstance(rows, ChunkPartial):
        return {"words": encode_array(rows.words.astype(np.int32)), "raw": encode_array(rows.raw)}
    return [[p, encode_rows(partial)] for p, partial in rows.items()]


def decode_rows(value: Any, lo: int, hi: int, num_topics: int, dtype: np.dtype, name: str) -> ChunkPartial:
    """Inverse of :func:`encode_rows` for one set of rows, checked: ascending words in ``[lo, hi)``, one row of
    ``num_topics`` values of ``dtype`` each. WireError otherwise."""
    if not isinstance(value, dict) or set(value) != {"words", "raw"}:
        raise WireError(f"{name}: expected words and rows")
    words = decode_array(value["words"], f"{name} words")
    raw = decode_array(value["raw"], f"{name} rows")
    if words.dtype.kind not in "iu":
        raise WireError(f"{name}: word ids of dtype {words.dtype}, not integers")
    words = words.astype(np.int64)
    if words.ndim != 1 or raw.shape != (words.shape[0], num_topics) or raw.dtype != dtype:
        raise WireError(f"{name}: rows of shape {raw.shape} ({raw.dtype}) for {words.shape} words")
    if words.size and (words[0] < lo or words[-1] >= hi or np.any(np.diff(words) <= 0)):
        raise WireError(f"{name}: words not ascending within {lo}..{hi}")
    return ChunkPartial(words, raw)


_PEER_ERRORS = (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError, WireError, ValueError,
                TypeError, KeyError, AttributeError)  # AttributeError: a peer of a version without these calls


def _sum_range(plan: ScatterPlan, lo: int, hi: int, myid: str, store: PartialStore, proxy: Callable[[str], Any],
               num_topics: int, dtype: np.dtype) -> ChunkPartial | None:
    """The sums of the words ``lo <= v < hi``: every chunk's partial rows added in chunk order. None when a partial
    cannot be had."""
    got: dict[int, ChunkPartial] = {}
    for i in plan.rotated(myid):
        name, uri = plan.owners[i]
        parts = plan.parts_of(name)
        if name == myid:
            got.update(store.partials(plan.batch, parts, lo, hi))
            continue
        def call(peer: Any, parts: list[int] = parts) -> dict[int, ChunkPartial]:
            return {p: decode_rows(value, lo, hi, num_topics, dtype, f"partial {p} of batch {plan.batch}")
                    for p, value in peer.getpartials(plan.batch, parts, lo, hi) if p in parts}

        answer = _ask(proxy, name, uri, f"the partials of batch {plan.batch}", call)
        if answer is None:
            return None
        got.update(answer)
    if len(got) != len(plan.parts):
        missing = sorted(set(range(len(plan.parts))) - set(got))
        logger.info("batch %s: partials of chunks %s not kept", plan.batch, missing)
        return None
    return sum_partials([got[p] for p in range(len(plan.parts))], lo, hi, num_topics, dtype)


def reduce_scatter(plan: ScatterPlan, myid: str, store: PartialStore, proxy: Callable[[str], Any],
                   num_topics: int, dtype: np.dtype) -> BatchStats | None:
    """The batch's statistics, summed by rows between its holders (see the module's text): sparse, the touched words
    in ``rows``. None when they cannot be had this way (the caller replays from γ)."""
    me = next((i for i, (name, _) in enumerate(plan.owners) if name == myid), None)
    if me is not None:  # a holder sums its range first, for the others
        lo, hi = plan.range_of(me)
        store.put_sums(plan.batch, lo, hi, _sum_range(plan, lo, hi, myid, store, proxy, num_topics, dtype))
    ranges: dict[int, ChunkPartial] = {}
    for i in plan.rotated(myid):
        name, uri = plan.owners[i]
        lo, hi = plan.range_of(i)
        sums = store.sums(plan.batch, lo, hi, 0.0) if name == myid else _sums_from(plan, name, uri, lo, hi, proxy,
                                                                                    num_topics, dtype)
        if sums is None:  # the owner is gone or slow: sum its range here, from the partials
            sums = _sum_range(plan, lo, hi, myid, store, proxy, num_topics, dtype)
            if sums is None:
                return None
        ranges[i] = sums
    order = range(len(plan.owners))
    return BatchStats(raw=np.concatenate([ranges[i].raw for i in order]),
                      rows=np.concatenate([ranges[i].words for i in order]))


def _sums_from(plan: ScatterPlan, name: str, uri: str, lo: int, hi: int, proxy: Callable[[str], Any],
               num_topics: int, dtype: np.dtype) -> ChunkPartial | None:
    what = f"the sums of words {lo}..{hi} of batch {plan.batch}"

    def call(peer: Any) -> ChunkPartial | None:
        answer = peer.getsums(plan.batch, lo, hi, SUMS_WAIT)
        return None if answer is None else decode_rows(answer, lo, hi, num_topics, dtype, what)

    return _ask(proxy, name, uri, what, call)


def _ask(proxy: Callable[[str], Any], name: str, uri: str, what: str, call: Callable[[Any], Any]) -> Any:
    """``call(peer)`` on the peer ``name`` at ``uri``; None when it fails (logged). A peer that could not be reached
    (not one that answered badly) is skipped for a while."""
    if UNREACHABLE.skip(uri):
        return None
    try:
        with proxy(uri) as peer:
            return call(peer)
    except _PEER_ERRORS as exc:
        logger.info("%s did not give %s (%s)", name, what, exc)
        if isinstance(exc, (pyro_errors.CommunicationError, OSError)):
            UNREACHABLE.mark(uri)
        return None


def apply_by_rows(recipe: dict[str, Any], replica: Replica, myid: str, store: PartialStore,
                  proxy: Callable[[str], Any]) -> bool:
    """Apply the M-step of ``recipe`` to ``replica`` from statistics summed by rows; False when that cannot be done
    (the caller replays the recipe from γ, which gives the same bits)."""
    plan = ScatterPlan.of(recipe, replica.num_terms)
    if plan is None or replica.version is None or int(recipe["version"]) != replica.version + 1:
        return False
    stats = reduce_scatter(plan, myid, store, proxy, replica.num_topics, replica.dtype)
    if stats is None:
        logger.info("batch %s: replaying its M-step from γ (its statistics could not be summed by rows)", plan.batch)
        return False
    replica.apply_stats(int(recipe["version"]), MStepPlan.from_dict(recipe["plan"]), stats)
    return True
