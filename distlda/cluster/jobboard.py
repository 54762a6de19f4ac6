"""The jobs of one mini-batch at the dispatcher: queued, taken by a worker, done; and who did how much.

:class:`JobBoard` is the dispatcher's bookkeeping without the waiting: it does
no locking (the dispatcher calls it holding its condition variable), no
networking and no LDA math, so every rule about jobs — a job is taken by one
worker, done once, given back to the queue when its worker is lost — lives in
one small object.

:class:`ClientLease` says which client is training: one at a time, so a second
client is refused (``ClusterBusy``) instead of silently dropping the first
one's mini-batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from Pyro5.callcontext import current_context

from distlda.cluster.errors import ClusterBusy

logger = logging.getLogger("distlda.lda_dispatcher")

__all__ = ["JobBoard", "WorkerInfo", "ClientLease", "TURN_GAP", "INITIALIZE_WAIT", "caller"]

TURN_GAP = 600.0
"""Seconds a training client that neither released the cluster nor closed its connection may stay silent between
two mini-batches and keep it (evaluations and checkpoints between batches take seconds to minutes); longer, and it
is presumed gone (a network partition keeps its connection open) and another client may take the cluster."""

INITIALIZE_WAIT = 4.0
"""Seconds a new client's ``initialize`` waits for the cluster held by another between mini-batches (one that is
finishing its update releases it at once) before it is refused with ClusterBusy."""


@dataclass
class WorkerInfo:
    """A member worker's counters, as ``status()`` reports them."""

    name: str
    uri: str
    last_seen: float = field(default_factory=time.monotonic)
    jobs_done: int = 0
    docs_done: int = 0
    taken: set = field(default_factory=set)


@dataclass
class _Job:
    number: int
    payload: dict
    docs: int
    worker: str | None = None
    done: bool = False
    holder: list | None = None  # [name, uri] of the worker that did it, which keeps its γ for the others


class JobBoard:
    """The current mini-batch's jobs and the workers' counters.

    Parameters
    ----------
    maxsize : int
        Most jobs queued and not yet taken.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.workers: dict[str, WorkerInfo] = {}
        self._queue: deque[int] = deque()
        self._jobs: dict[int, _Job] = {}
        self._results: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.jobs_done_total = 0
        self.docs_done_total = 0

    def clear(self) -> None:
        """Forget the batch's jobs (a new batch, or one abandoned)."""
        self._queue.clear()
        self._jobs = {}
        self._results = {}
        self.errors = []
        for info in self.workers.values():
            info.taken.clear()

    # ------------------------------------------------------------------ jobs

    def has(self, number: int) -> bool:
        return number in self._jobs

    def check_new(self, jobs: list[dict[str, Any]], batch: Any, where: str) -> None:
        """Refuse (ValueError) jobs of a batch other than ``batch``, or a job number already put or given twice."""
        seen: set[int] = set()
        for i, job in enumerate(jobs):
            at = "" if len(jobs) == 1 else f" (at index {i})"
            if job["batch"] != batch:
                raise ValueError(f"{where}: job of batch {job['batch']!r}{at}, but the current batch is {batch!r}")
            if self.has(job["job"]):
                raise ValueError(f"{where}: job {job['job']}{at} of this batch was already put")
            if job["job"] in seen:
                raise ValueError(f"{where}: job {job['job']}{at} is given twice in this call")
            seen.add(job["job"])

    def full(self) -> bool:
        return len(self._queue) >= self.maxsize

    def queued(self) -> int:
        return len(self._queue)

    def in_batch(self) -> int:
        return len(self._jobs)

    def add(self, job: dict[str, Any]) -> None:
        """Queue a job (its shape checked by :func:`distlda.cluster.wire.check_job`)."""
        number = job["job"]
        self._jobs[number] = _Job(number, job, max(int(job.get("docs", 0)), 0))
        self._queue.append(number)

    def take(self, info: WorkerInfo) -> dict[str, Any] | None:
        """The next queued job, now taken by worker ``info``; None when the queue is empty."""
        while self._queue:
            job = self._jobs.get(self._queue.popleft())
            if job is not None and not job.done:  # a lost worker that came back may have finished a requeued job
                break
        else:
            return None
        number = job.number
        job.worker = info.name
        info.taken.add(number)
        return job.payload

    def finish(self, info: WorkerInfo | None, result: dict[str, Any]) -> bool:
        """A job of this batch is done (``result`` holds its γ, or an error naming it); False when the result is
        for no job of the batch, or for one already done."""
        number = result.get("job")
        job = self._jobs.get(number) if isinstance(number, int) else None
        if job is None or job.done:
            return False
        job.done = True
        if job.worker is not None and job.worker in self.workers:
            self.workers[job.worker].taken.discard(number)
        if info is not None:
            job.holder = [info.name, info.uri]
            info.taken.discard(number)
            info.jobs_done += 1
            info.docs_done += job.docs
        self.jobs_done_total += 1
        self.docs_done_total += job.docs
        if "error" in result:
            self.errors.append(str(result["error"]))
        else:
            self._results[number] = result
        return True

    def add_gamma(self, number: Any, gamma: Any) -> bool:
        """The γ of a done job of this batch, sent after its result (see :meth:`Dispatcher.putgammas`)."""
        result = self._results.get(number) if isinstance(number, int) else None
        if result is None or result.get("gamma") is not None:
            return False
        result["gamma"] = gamma
        return True

    def give_back(self, name: str) -> list[int]:
        """Worker ``name`` is lost: the jobs it had taken and not done go back to the head of the queue, in
        order; returns their numbers."""
        info = self.workers.pop(name, None)
        if info is None:
            return []
        redo = sorted(n for n in info.taken if n in self._jobs and not self._jobs[n].done)
        for number in reversed(redo):
            self._jobs[number].worker = None
            self._queue.appendleft(number)
        return redo

    def all_done(self) -> bool:
        return all(job.done for job in self._jobs.values())

    def collect(self, gammas: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The batch's results in job order (without γ unless ``gammas``), and its jobs as a recipe keeps them
        (documents or references, with their γ); the batch's jobs are forgotten."""
        numbers = sorted(self._results)
        results = [self._results[n] if gammas else {k: v for k, v in self._results[n].items() if k != "gamma"}
                   for n in numbers]
        done = [{**{k: self._jobs[n].payload[k] for k in ("chunk", "ref", "part", "whole", "pass")
                    if k in self._jobs[n].payload},
                 "job": n, "holder": self._jobs[n].holder, "gamma": self._results[n].get("gamma")} for n in numbers]
        self._results = {}
        self._jobs = {}
        return results, done

    # --------------------------------------------------------------- workers

    def status_rows(self, now: float) -> list[dict[str, Any]]:
        """One row per worker for ``status()``."""
        return [{"name": w.name, "uri": w.uri, "seconds_since_seen": now - w.last_seen, "jobs_done": w.jobs_done,
                 "docs_done": w.docs_done, "jobs_in_hand": len(w.taken)} for w in self.workers.values()]


class _Holder:
    """The client training now. Pyro5 calls :meth:`close` when that client's connection closes."""

    def __init__(self, key: Any, label: str) -> None:
        self.key, self.label = key, label
        self.since = time.time()
        self.last = time.monotonic()
        self.in_batch = False  # from reset until its mini-batch is collected
        self.closed = False

    def close(self) -> None:
        self.closed = True


class ClientLease:
    """Which client trains on the cluster, so that a second one is refused while the first is at work.

    A client holds the cluster from its ``initialize`` until its connection closes, until it calls ``release``, or
    until it has been silent for ``gap`` seconds outside a mini-batch (a mini-batch runs from ``reset`` until
    ``getstate`` gives its results, and the client long-polls meanwhile). No lock of its own: the dispatcher calls it
    holding its lock (which :meth:`admit` waits on).

    Parameters
    ----------
    gap : float
        Seconds of silence between mini-batches after which the cluster is free again.
    """

    def __init__(self, gap: float = TURN_GAP) -> None:
        self.gap = gap
        self._holder: _Holder | None = None

    def other(self, key: Any, now: float) -> _Holder | None:
        """The client holding the cluster if it is not ``key`` (None: free, or held by ``key``)."""
        held = self._holder
        if held is None or held.key == key or held.closed or (not held.in_batch and now - held.last > self.gap):
            return None
        return held

    def take(self, key: Any, label: str, now: float, in_batch: bool | None = None) -> _Holder | None:
        """Record a call of client ``key`` (which :meth:`other` let through); returns its holder when it is new
        (for the caller to tie to the client's connection), else None."""
        held = self._holder
        new = held is None or held.key != key or held.closed
        if new:
            held = self._holder = _Holder(key, label)
        held.last = now
        if in_batch is not None:
            held.in_batch = in_batch
        return held if new else None

    def admit(self, cv: threading.Condition, where: str, in_batch: bool | None = None, wait: float = 0.0) -> None:
        """Let a call that drives training through only from the client training now, or when none is (the caller
        holds ``cv``, the dispatcher's lock). A new client waits up to ``wait`` seconds for one between mini-batches
        to fall silent.

        Raises
        ------
        ClusterBusy
            Naming the client that trains, since when, and whether it is mid-batch.
        """
        key, label = caller()
        deadline = time.monotonic() + wait
        while True:
            now = time.monotonic()
            held = self.other(key, now)
            if held is None:
                break
            if held.in_batch or now >= deadline:
                raise self.refusal(held, where, now)
            cv.wait(min(deadline - now, 0.2))
        new = self.take(key, label, now, in_batch)
        if new is not None:
            if current_context.client is not None:
                current_context.track_resource(new)  # Pyro5 closes it with the client's connection
            logger.info("client %s trains on this cluster", label)

    def release(self, key: Any) -> bool:
        """Client ``key`` is done: the cluster is free at once. False when ``key`` did not hold it."""
        if self._holder is None or self._holder.key != key:
            return False
        self._holder = None
        return True

    @staticmethod
    def refusal(held: _Holder, where: str, now: float) -> ClusterBusy:
        """The error a second client gets."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.since))
        doing = "mid-batch" if held.in_batch else f"between mini-batches, silent for {now - held.last:.1f}s"
        return ClusterBusy(f"{where}: cluster busy: training for client {held.label} since {since} ({doing}); "
                           "one client trains at a time: wait until it is done, or start another cluster")


def caller() -> tuple[Any, str]:
    """Who is calling: a key for the client's connection (None for a call made in this process) and its
    address."""
    conn = current_context.client
    addr = current_context.client_sock_addr
    label = f"{addr[0]}:{addr[1]}" if isinstance(addr, (tuple, list)) and len(addr) >= 2 else "in this process"
    return (None if conn is None else id(conn)), label
