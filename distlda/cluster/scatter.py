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
the same bits, more work (the holders keep their chunks' γ but do not send it to the dispatcher; a γ no holder can
give is fitted again). Per M-step each worker moves its chunks' partial rows out to the owners, its range's partial
rows in, and the sums of its range out and of the other ranges in: more bytes than the γ a replay takes when chunks
touch most of the vocabulary (docs/scaling.md), without the reduce of the whole batch. The rows travel over the
workers' bulk channels (:mod:`distlda.cluster.bulk`), over Pyro5 where a peer has none. A peer that did not answer
is not asked again for a while (as for γ: ``peers.UNREACHABLE``), so a lost host costs one timeout.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
from Pyro5 import config as pyro_config
from Pyro5 import errors as pyro_errors
from Pyro5.core import URI
from Pyro5.server import expose

from distlda.cluster import errors as cluster_errors
from distlda.cluster.bulk import BulkClient, BulkError, BulkLinks, BulkLost, BulkServer, Handler
from distlda.cluster.replica import Replica
from distlda.cluster.peers import KEEP_BYTES, UNREACHABLE, check_gamma_request
from distlda.cluster.timeline import mark
from distlda.cluster.wire import WireError, check_name, check_wait, decode_array, encode_array
from distlda.core.estep import BatchStats, ChunkPartial, sum_partials
from distlda.core.mstep import MStepPlan
from distlda.validation import is_integer

logger = logging.getLogger(__name__)

__all__ = ["PartialStore", "ScatterPlan", "apply_by_rows", "reduce_scatter", "encode_rows", "decode_rows",
           "check_word_range",
           "serve_partials", "serve_sums", "bulk_handler", "BulkPeer", "bulk_peer", "RowsService", "SUMS_WAIT",
           "KEEP_SUMMED_BATCHES"]

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


def _asked_partials(store: PartialStore, batch: Any, parts: Any, lo: Any, hi: Any) -> dict[int, ChunkPartial]:
    parts = check_gamma_request(batch, parts, "getpartials", "parts")
    return store.partials(batch, parts, *check_word_range(lo, hi, "getpartials"))


def _asked_sums(store: PartialStore, batch: Any, lo: Any, hi: Any, wait: Any) -> ChunkPartial | None:
    return store.sums(check_name(batch, "getsums", "batch id"), *check_word_range(lo, hi, "getsums"),
                      check_wait(wait, "getsums", SUMS_WAIT))


def serve_partials(store: PartialStore, batch: Any, parts: Any, lo: Any, hi: Any) -> list[list[Any]]:
    """A peer's ``getpartials(batch, parts, lo, hi)``, its arguments checked (WireError naming the bad one)."""
    return encode_rows(_asked_partials(store, batch, parts, lo, hi))


def serve_sums(store: PartialStore, batch: Any, lo: Any, hi: Any, wait: Any) -> dict[str, Any] | None:
    """A peer's ``getsums(batch, lo, hi, wait)``, its arguments checked (WireError naming the bad one)."""
    sums = _asked_sums(store, batch, lo, hi, wait)
    return None if sums is None else encode_rows(sums)


def bulk_handler(store: PartialStore, more: dict[str, Handler] | None = None) -> Handler:
    """The same two calls on the bulk channel (:mod:`distlda.cluster.bulk`): ``partials`` answers the chunk numbers
    kept and each one's words and rows as arrays, ``sums`` whether the sums are made and their words and rows;
    ``more`` handles other calls by name (``basepiece``: :mod:`distlda.cluster.basecast`)."""
    def handle(call: str, args: list) -> tuple[Any, list[np.ndarray]]:
        if more and call in more:
            return more[call](call, args)
        if call == "partials" and len(args) == 4:
            got = _asked_partials(store, *args)
            return list(got), [a for rows in got.values() for a in (rows.words.astype(np.int32), rows.raw)]
        if call == "sums" and len(args) == 4:
            sums = _asked_sums(store, *args)
            return sums is not None, [] if sums is None else [sums.words.astype(np.int32), sums.raw]
        raise WireError(f"no call {call!r} of {len(args)} arguments")
    return handle


class BulkPeer:
    """A peer whose partials and sums come over its bulk channel (``client``), and over Pyro5 (``proxy``) when that
    fails (``failed()`` is then told); every other call goes to ``proxy``. Answers as arrays, which
    :func:`decode_rows` checks as it checks Pyro5's."""

    def __init__(self, client: BulkClient, proxy: Any, failed: Callable[[], None]) -> None:
        self._client, self._proxy, self._failed = client, proxy, failed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proxy, name)

    def _call(self, name: str, args: list) -> tuple[Any, list[np.ndarray]] | None:
        try:
            return self._client.call(name, args, int(pyro_config.MAX_MESSAGE_SIZE or 2**31))
        except BulkLost:  # the peer may be gone: no second wait over Pyro5 (the caller marks it unreachable)
            self._failed()
            raise
        except BulkError as exc:
            logger.info("bulk channel failed (%s): asking over Pyro5", exc)
            self._failed()
            return None

    def announce(self, call: str, args: list) -> None:
        """Send the request of ``getpartials`` (``call`` 'partials') or ``getsums`` ('sums') with ``args`` now; the
        method called later with the same arguments takes its answer."""
        try:
            self._client.send(call, args)
        except BulkError as exc:
            logger.info("bulk channel failed (%s)", exc)
            self._failed()

    def getpartials(self, batch: str, parts: list[int], lo: int, hi: int) -> list[list[Any]]:
        answer = self._call("partials", [batch, parts, lo, hi])
        if answer is None:
            return self._proxy.getpartials(batch, parts, lo, hi)
        kept, arrays = answer
        if not isinstance(kept, list) or len(arrays) != 2 * len(kept):
            raise WireError("getpartials: an answer whose arrays do not match its chunks")
        return [[p, (arrays[2 * i], arrays[2 * i + 1])] for i, p in enumerate(kept)]

    def basepiece(self, args: list, max_bytes: int) -> np.ndarray | bool | None:
        """A piece of a base this peer holds (:mod:`distlda.cluster.basecast`; an answer of at most ``max_bytes``),
        None while it does not hold it yet, False when it will not; BulkError or BulkLost when the channel fails
        (no Pyro5 fallback: the dispatcher has every base)."""
        try:
            held, arrays = self._client.call("basepiece", args, max_bytes)
        except BulkError:  # (BulkLost too)
            self._failed()
            raise
        if held is True and len(arrays) == 1:
            return arrays[0]
        if held in (False, "gone") and not arrays:
            return None if held is False else False
        raise WireError("basepiece: an answer that is neither a piece, 'not yet' nor 'gone'")

    def getsums(self, batch: str, lo: int, hi: int, wait: float) -> Any:
        answer = self._call("sums", [batch, lo, hi, wait])
        if answer is None:
            return self._proxy.getsums(batch, lo, hi, wait)
        made, arrays = answer
        if not made:
            return None
        if len(arrays) != 2:
            raise WireError("getsums: an answer without words and rows")
        return tuple(arrays)


@contextmanager
def bulk_peer(links: BulkLinks, uri: str, link: Any) -> Iterator[Any]:
    """The peer at ``uri`` for one step: a :class:`BulkPeer` over ``links`` when it has a bulk channel, else the
    Pyro5 proxy that ``link`` (a context manager) gives."""
    with link as proxy:
        client = links.client(uri, lambda: _bulk_address(uri, proxy.bulkaddress()))
        yield proxy if client is None else BulkPeer(client, proxy, lambda: links.failed(uri))


def _bulk_address(uri: str, answer: Any) -> tuple[str, int] | None:
    """The peer's bulk port on the host its Pyro5 address names (the one this worker reaches it on)."""
    if not (isinstance(answer, list) and len(answer) == 2 and isinstance(answer[1], int)):
        return None
    return URI(uri).host, answer[1]


@expose
class RowsService:
    """The calls a worker answers its peers in the reduce-scatter: ``getpartials``, ``getsums`` and
    ``bulkaddress``. Mixed into the worker, which holds the store (``_partials``) and its ``transport``."""

    _partials: PartialStore
    transport: Any

    def getpartials(self, batch: str, parts: list[int], lo: int, hi: int) -> list[list[Any]]:
        """``[[part, rows], ...]``: the rows of the words ``lo <= v < hi`` of the partial statistics this worker keeps
        of those chunks (``parts``) of ``batch``, for the owner of those words."""
        return serve_partials(self._partials, batch, parts, lo, hi)

    def getsums(self, batch: str, lo: int, hi: int, wait: float) -> dict[str, Any] | None:
        """This worker's sums of the words ``lo <= v < hi`` of ``batch`` (waiting ``wait`` ≤ SUMS_WAIT s), or None."""
        return serve_sums(self._partials, batch, lo, hi, wait)

    def bulkaddress(self) -> list | None:
        """``[host, port]`` of this worker's bulk channel for the same two calls (opened on the first call, on the
        address of its Pyro5 daemon), or None where there is none: a worker outside a daemon, or a cluster on TLS
        (the channel is not encrypted)."""
        daemon = getattr(self, "_pyroDaemon", None)
        if daemon is None or pyro_config.SSL:
            return None
        with _BULK_START:
            server = getattr(self, "_bulk_server", None)
            if server is None:
                host = daemon.sock.getsockname()[0]  # where the daemon listens (maybe every address)
                more = getattr(self, "_bulk_calls", lambda: {})()
                server = self._bulk_server = BulkServer(host, self.transport.conf.hmac_key,
                                                        bulk_handler(self._partials, more),
                                                        getattr(daemon, "_limits", None))
                logger.info("bulk channel on %s:%d", *server.address)
        return list(server.address)

    def _bulk_served(self) -> int:
        """Calls this worker answered over its bulk channel."""
        server = getattr(self, "_bulk_server", None)
        return 0 if server is None else server.served

    def _close_bulk(self) -> None:
        """Close the bulk channel's server, if it was opened."""
        server = getattr(self, "_bulk_server", None)
        if server is not None:
            server.close()


_BULK_START = threading.Lock()


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
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(a, np.ndarray) for a in value):
        words, raw = value  # from the bulk channel: arrays already
    elif isinstance(value, dict) and set(value) == {"words", "raw"}:
        words = decode_array(value["words"], f"{name} words")
        raw = decode_array(value["raw"], f"{name} rows")
    else:
        raise WireError(f"{name}: expected words and rows")
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
    mark("worker", "partials-in", myid)
    return sum_partials([got[p] for p in range(len(plan.parts))], lo, hi, num_topics, dtype)


def reduce_scatter(plan: ScatterPlan, myid: str, store: PartialStore, proxy: Callable[[str], Any],
                   num_topics: int, dtype: np.dtype) -> BatchStats | None:
    """The batch's statistics, summed by rows between its holders (see the module's text): sparse, the touched words
    in ``rows``. None when they cannot be had this way (the caller replays from γ)."""
    me = next((i for i, (name, _) in enumerate(plan.owners) if name == myid), None)
    requests = [] if me is None else [(uri, "partials", [plan.batch, plan.parts_of(name), *plan.range_of(me)])
                                      for name, uri in plan.owners if name != myid]
    requests += [(uri, "sums", [plan.batch, *plan.range_of(i), SUMS_WAIT])
                 for i, (name, uri) in enumerate(plan.owners) if name != myid]
    _announce(proxy, requests)  # every peer works on its answers at once; they are read below, in the same order
    if me is not None:  # a holder sums its range first, for the others
        lo, hi = plan.range_of(me)
        store.put_sums(plan.batch, lo, hi, _sum_range(plan, lo, hi, myid, store, proxy, num_topics, dtype))
        mark("worker", "own-sums", myid)
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


def _announce(proxy: Callable[[str], Any], requests: list[tuple[str, str, list]]) -> None:
    """Send each ``(uri, call, args)`` to its peer ahead of time where the peer has a bulk channel (the calls that
    take the answers follow); failures are left to those calls."""
    for uri, call, args in requests:
        if UNREACHABLE.skip(uri):
            continue
        try:
            with proxy(uri) as peer:
                if isinstance(peer, BulkPeer):
                    peer.announce(call, args)
        except _PEER_ERRORS as exc:
            logger.debug("could not ask %s ahead (%s)", uri, exc)


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
    mark("worker", "rs-start", myid)
    stats = reduce_scatter(plan, myid, store, proxy, replica.num_topics, replica.dtype)
    mark("worker", "rs-end", myid)
    if stats is None:
        logger.info("batch %s: replaying its M-step from γ (its statistics could not be summed by rows)", plan.batch)
        return False
    replica.apply_stats(int(recipe["version"]), MStepPlan.from_dict(recipe["plan"]), stats)
    mark("worker", "mstep-end", myid)
    return True
