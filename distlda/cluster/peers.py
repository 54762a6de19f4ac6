"""γ from the workers that fitted it: the recipes' fan-out without the dispatcher.

Every worker replays every M-step from the batch's γ. The dispatcher used to send each worker
the whole batch's γ inside the recipe, so its outgoing bytes were W times the batch's γ per
M-step — on a 1 Gbit/s network, the limit of the cluster at a few workers. Now a worker asks
the dispatcher for *light* recipes (each job names the worker that fitted it, its *holder*,
instead of carrying γ), keeps the γ of its own recent jobs (:class:`GammaStore`), and takes the
rest from their holders directly (:func:`fill_gammas`). Each worker then receives the others'
share of the batch's γ and sends its own share to each of them: the bytes are spread over every
worker's link instead of all passing through the dispatcher's.

The dispatcher still receives every job's γ and keeps the recipes with γ as before: a job whose
holder is gone, or no longer keeps it, is taken from there (the caller's fallback), so a lost
worker costs time, never the model.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from Pyro5 import errors as pyro_errors

from distlda.cluster import errors as cluster_errors
from distlda.cluster.transport import release
from distlda.cluster.wire import WireError, check_name

logger = logging.getLogger(__name__)

__all__ = ["GammaStore", "GammaUploads", "PeerLinks", "check_gamma_items", "fill_gammas", "light_recipe", "KEEP_BATCHES", "KEEP_BYTES", "PEER_TIMEOUT",
           "UNREACHABLE"]

KEEP_BATCHES = 4
"""Batches whose jobs' γ a worker keeps for its peers: the others replay a recipe right after it is recorded, so
the last few are what they ask for; a worker further behind takes older γ from the dispatcher."""

KEEP_BYTES = 256 * 1024 * 1024
"""At most this many bytes of kept γ (the oldest batches go first)."""

PEER_TIMEOUT = 10.0
"""Seconds a call to a peer may take before its γ is taken from the dispatcher instead."""

_FORGET_UNREACHABLE = 30.0
"""Seconds a peer that did not answer is not asked again (a lost host would cost a timeout per recipe)."""

_MAX_JOBS_PER_CALL = 100_000


class GammaStore:
    """The γ of this worker's recent jobs, by batch and job number, for its peers' replays (thread-safe)."""

    def __init__(self, keep_batches: int = KEEP_BATCHES, keep_bytes: int = KEEP_BYTES) -> None:
        self.keep_batches, self.keep_bytes = keep_batches, keep_bytes
        self._batches: OrderedDict[str, dict[int, dict[str, Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.served = 0  # jobs' γ given to peers (a worker reports it in getstate)

    def put(self, batch: str, job: int, gamma: dict[str, Any]) -> None:
        """Keep ``gamma`` (an encoded array) of job ``job`` of ``batch``; the oldest batches go past the bounds."""
        size = len(gamma.get("data", b""))
        with self._lock:
            jobs = self._batches.setdefault(batch, {})
            self._batches.move_to_end(batch)
            old = jobs.get(job)
            self._bytes += size - (len(old.get("data", b"")) if old else 0)
            jobs[job] = gamma
            while len(self._batches) > 1 and (len(self._batches) > self.keep_batches or self._bytes > self.keep_bytes):
                _, dropped = self._batches.popitem(last=False)
                self._bytes -= sum(len(g.get("data", b"")) for g in dropped.values())

    def get(self, batch: str, jobs: list[int], peer: bool = False) -> dict[int, dict[str, Any]]:
        """The kept γ of those ``jobs`` of ``batch`` (any not kept are missing from the answer); ``peer``: for
        another worker (counted in :attr:`served`)."""
        with self._lock:
            held = self._batches.get(batch, {})
            found = {job: held[job] for job in jobs if job in held}
            if peer:
                self.served += len(found)
            return found


def check_gamma_request(batch: Any, jobs: Any, what: str = "getgamma", items: str = "jobs") -> list[int]:
    """The job (or chunk) numbers of a peer's ``getgamma(batch, jobs)`` (or ``what``); WireError when malformed."""
    check_name(batch, what, "batch id")
    if not isinstance(jobs, (list, tuple)) or len(jobs) > _MAX_JOBS_PER_CALL or \
            not all(isinstance(j, int) and not isinstance(j, bool) and j >= 0 for j in jobs):
        raise WireError(f"{what}: {items} must be a list of {items[:-1]} numbers")
    return list(jobs)


def check_gamma_items(items: Any) -> list[tuple[str, int, dict[str, Any]]]:
    """The ``[[batch, job, γ], ...]`` of a worker's ``putgammas``; WireError when malformed."""
    if not isinstance(items, list) or len(items) > _MAX_JOBS_PER_CALL or not all(
            isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[1], int)
            and not isinstance(item[1], bool) and isinstance(item[2], dict) for item in items):
        raise WireError("putgammas: a list of [batch, job, gamma]")
    return [(str(b), int(j), g) for b, j, g in items]


def light_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` without its jobs' γ where a holder can give it (jobs without a holder keep theirs)."""
    jobs = [{k: v for k, v in job.items() if k != "gamma"} if job.get("holder") else job for job in recipe["jobs"]]
    return {**recipe, "jobs": jobs}


class _Unreachable:
    """Peers that did not answer lately, so a lost host costs one timeout, not one per recipe."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def skip(self, uri: str) -> bool:
        with self._lock:
            since = self._since.get(uri)
            if since is not None and time.monotonic() - since > _FORGET_UNREACHABLE:
                del self._since[uri]
                return False
            return since is not None

    def mark(self, uri: str) -> None:
        with self._lock:
            self._since[uri] = time.monotonic()

    def forget(self, uri: str) -> None:
        """Ask ``uri`` again from now on."""
        with self._lock:
            self._since.pop(uri, None)


UNREACHABLE = _Unreachable()
"""Peers that did not answer lately, which the replays and the reduce-scatter skip for a while."""

_MAX_LINKS = 64


class PeerLinks:
    """Proxies of peers that one thread (a worker's job loop) keeps open from one recipe to the next: a replay asks
    every holder each M-step, and a new connection each time costs a handshake, a server thread and TCP's slow
    start. A link that fails is closed and opened again on its next use.

    Parameters
    ----------
    open_proxy : callable
        ``open_proxy(uri)``: a new proxy of the peer at ``uri``.
    """

    def __init__(self, open_proxy: Callable[[str], Any]) -> None:
        self._open = open_proxy
        self._links: dict[str, Any] = {}

    @contextmanager
    def link(self, uri: str) -> Iterator[Any]:
        """The open proxy of ``uri`` (opened now if need be), for the calls of one step."""
        proxy = self._links.get(uri)
        if proxy is None:
            if len(self._links) >= _MAX_LINKS:  # peers come and go over a long life: no socket kept forever
                self.close()
            proxy = self._links[uri] = self._open(uri)
        try:
            yield proxy
        except BaseException:
            self._links.pop(uri, None)
            release(proxy)
            raise

    def close(self) -> None:
        """Close every link (the job loop's end, or its dispatcher lost)."""
        links, self._links = self._links, {}
        for proxy in links.values():
            release(proxy)

    def keep_only(self, uri: str | None) -> None:
        """Close every link but the one of ``uri`` (None: close them all)."""
        for other in [u for u in self._links if u != uri]:
            release(self._links.pop(other))


def fill_gammas(recipe: dict[str, Any], myid: str | None, store: GammaStore, proxy: Callable[[str], Any],
                fallback: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """``recipe`` with every job's γ: from ``store`` for this worker's own jobs, from the holders for the others',
    and from ``fallback(version)`` (the dispatcher's full recipe) for any no holder could give.

    ``proxy(uri)`` opens a peer's proxy (a context manager). Returns a new recipe; ``recipe`` is left as it is.
    """
    jobs = [dict(job) for job in recipe["jobs"]]
    batch = recipe.get("batch")
    wanted: dict[tuple[str, str], list[int]] = {}
    for number, job in enumerate(jobs):
        if "gamma" not in job:
            holder = job.get("holder")
            if not (isinstance(holder, list) and len(holder) == 2 and isinstance(batch, str)):
                return fallback(int(recipe["version"]))
            wanted.setdefault((str(holder[0]), str(holder[1])), []).append(number)
    for (name, uri), numbers in _rotated(list(wanted.items()), myid):
        got = _from_holder(name, uri, batch, [int(jobs[n]["job"]) for n in numbers], myid, store, proxy)
        for number in numbers:
            gamma = got.get(int(jobs[number]["job"]))
            if gamma is None:
                logger.info("recipe %s: γ of job %s not at %s; taking the recipe from the dispatcher",
                            recipe["version"], jobs[number]["job"], name)
                return fallback(int(recipe["version"]))
            jobs[number]["gamma"] = gamma
    return {**recipe, "jobs": jobs}


def _rotated(holders: list, myid: str | None) -> list:
    """The holders in the order this worker asks them: starting with the one after itself. Every worker replays
    at the same moment; asked in one order by all, the holders would serve them one holder at a time (a convoy:
    W − 1 transfers in a row through each link), where rotated orders keep every link busy at once."""
    names = [name for (name, _), _ in holders]
    start = names.index(myid) + 1 if myid in names else zlib.crc32(str(myid).encode()) % max(1, len(holders))
    return holders[start:] + holders[:start]


def _from_holder(name: str, uri: str, batch: str, numbers: list[int], myid: str | None, store: GammaStore,
                 proxy: Callable[[str], Any]) -> dict[int, dict[str, Any]]:
    """What ``name`` (this worker itself, or a peer at ``uri``) keeps of the jobs ``numbers`` of ``batch``."""
    if name == myid:
        return store.get(batch, numbers)
    if UNREACHABLE.skip(uri):
        return {}
    try:
        with proxy(uri) as peer:
            answer = peer.getgamma(batch, numbers)
    except (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError, WireError, ValueError) as exc:
        logger.warning("peer %s did not give γ of batch %s (%s): taking it from the dispatcher", name, batch, exc)
        UNREACHABLE.mark(uri)
        return {}
    if not isinstance(answer, list):
        return {}
    return {int(pair[0]): pair[1] for pair in answer
            if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], int)
            and isinstance(pair[1], dict)}


class GammaUploads:
    """Sends the γ of this worker's jobs on to the dispatcher after their results, from a thread of its own.

    A job's result reaches the dispatcher without its γ, so the batch ends as soon as its last job is fitted and
    the dispatcher's link does not take every worker's γ at once at the end of each batch (on a slow network that
    burst was a large part of an M-step); the γ follow while the next batch is fitted, for the recipes' log (a
    replica that lags, or the γ of a lost holder). A γ that never arrives (its worker died first) is fitted again
    by whoever needs it (:meth:`distlda.cluster.replica.Replica.apply_recipe`).

    Parameters
    ----------
    target : callable
        The dispatcher's URI now (None: no dispatcher yet).
    open_proxy : callable
        ``open_proxy(uri)``: a new proxy (the uploading thread keeps its link open, :class:`PeerLinks`).
    send : callable
        ``send(proxy, items)`` with ``items`` a list of ``[batch, job, γ]``: one call to the dispatcher.
    """

    def __init__(self, target: Callable[[], str | None], open_proxy: Callable[[str], Any],
                 send: Callable[[Any, list], Any]) -> None:
        self._target, self._send = target, send
        self._links = PeerLinks(open_proxy)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, batch: str, job: int, gamma: dict[str, Any]) -> None:
        """Queue the γ of ``job`` of ``batch`` (the thread starts with the first)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="gamma-uploads", daemon=True)
                self._thread.start()
        self._queue.put([batch, job, gamma])

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    items = [self._queue.get(timeout=0.5)]
                except queue.Empty:
                    # a worker enlisted by another dispatcher, with nothing more to send, must not keep the old
                    # one's connection open (its exit() was refused, so close() may never come)
                    self._links.keep_only(self._target())
                    continue
                while not self._queue.empty() and len(items) < 64:
                    items.append(self._queue.get_nowait())
                uri = self._target()
                self._links.keep_only(uri)
                try:
                    if uri is not None:
                        with self._links.link(uri) as proxy:
                            self._send(proxy, items)
                except (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError, WireError, ValueError,
                        RuntimeError) as exc:  # the holder keeps them, and a lost γ is fitted again
                    logger.info("could not send the γ of %d jobs to the dispatcher: %s", len(items), exc)
        finally:
            self._links.close()

    def close(self) -> None:
        """Stop the thread (what is still queued is dropped)."""
        self._stop.set()
