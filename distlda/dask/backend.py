"""The Dask E-step backend: :class:`DaskEStep`, an :class:`~distlda.core.estep.EStepBackend` over a
``distributed.Client``.

Per group of :data:`BATCHES_PER_TASK` mini-batches the client submits **one task per Dask worker**
(:func:`~distlda.dask.replicas.estep_task`): task ``t`` fits γ for its run of :data:`SHARES_PER_WORKER` shares
(pieces of every chunk) of each batch of the group on its worker's replica of the model, one batch after the
other, and, when it has fitted them, for shares its peers have not started. Each task's inputs are the run's base
and the recipes of the M-steps its worker's replica lacks (usually the previous group's last batch only), and the
replica replays those M-steps before fitting. No batch's γ is an input: after fitting a batch each task pushes its
γ to the batch's other workers (:mod:`distlda.dask.exchange`), and before the next batch, in the same task or the
next group's, waits on its worker for that one message from each peer, then replays the M-step; the scheduler
sees a group once, not each batch; older recipes carry their γ as futures,
which Dask moves between the workers. The client keeps the futures (the recipe log) and a copy of every γ (a few hundred kB
per batch), and does no M-step itself: its own arrays lag until :meth:`DaskEStep.sync` takes the model from a
worker (:func:`~distlda.dask.replicas.model_task`).

- **Documents.** A :class:`~distlda.corpora.binary.BinaryCorpus` that every worker reads (same path, same
  fingerprint, checked with ``client.run``) travels as document ranges: no document crosses the network. Any
  other corpus travels as chunks: each batch's chunks go to the scheduler once, inside a task that holds them
  (:func:`~distlda.dask.replicas.held`), and the workers fetch them from each other (every replica needs all of
  them to replay the M-step).
- **The K × V arrays** reach each worker once per base (:data:`REBASE_EVERY` mini-batches): held by a task the
  same way, fetched by a worker for its first task of the base and kept for the others. Data held by a task,
  unlike data scattered to a worker, is computed again elsewhere when the worker that held it is lost.
- **A lost worker.** Tasks are restricted to their worker (Dask's work stealing would otherwise move a task to the
  worker holding most of its inputs, which then runs the batch alone). When a worker leaves, the client replays
  the M-steps it holds γ for on its own arrays, sends them as a new base and runs the group in flight again: since
  γ depends only on the document, the model is unchanged.
- **A lost scheduler** cancels every future: :class:`SchedulerLost` names it, after the client replayed the M-steps
  it holds γ for on its own arrays: the model keeps all but the groups in flight and collected (at most two), whose
  γ the client takes while the next group runs.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from distlda.core.estep import BatchStats, EStepParams, TrainingStats
from distlda.dask.calls import SchedulerCalls
from distlda.core.mstep import MStepPlan
from distlda.corpora.csr import CsrChunk
from distlda.dask.errors import (DaskClusterError, DaskTimeout, SchedulerLost, WorkerLost, check_client,
                                 scheduler_address)
from distlda.dask.exchange import Pushed, install_inbox
from distlda.dask.replicas import (Base, BatchDocs, DaskReplica, Recipe, can_read, estep_task,
                                   forget_run, held, in_share_order, model_task, take_snapshot)

logger = logging.getLogger(__name__)

__all__ = ["DaskEStep", "DaskClusterError", "SchedulerLost", "DaskTimeout", "WorkerLost", "REBASE_EVERY", "scheduler_address",
           "check_client"]

REBASE_EVERY = 20
"""Mini-batches between two bases: bounds the recipes a sync's task carries, the γ the workers keep and the γ the
client keeps (up to this many plus two groups' worth). A rebase does not stop the workers: the first task of the
next group returns, with its γ, the model it starts from, and that becomes the base of the groups after it."""

BATCHES_PER_TASK = 8
"""Mini-batches a worker's task fits in a row (a group): Dask's per-task work (the client's submission, the
scheduler's bookkeeping, the worker's start and end of a task, the client's gather) is paid once per group. The
client takes the γ of a group when the next one is submitted, so a lost scheduler costs up to two groups of
M-steps (counted from the last the client holds)."""

SHARES_PER_WORKER = 4
"""Shares each worker of a mini-batch owns: a worker that has fitted its own takes those a slower peer has not
started (:mod:`distlda.dask.exchange`), so the batch ends when the slower one's current share does, not when its
whole part does."""

ASK, SEND = "ask", "send"
"""States of a rebase (see ``DaskEStep._rebase``)."""

Entry = tuple
"""``(version, batch, docs, plan)``: a mini-batch collected for a group, before its recipe has γ."""

class DaskEStep(SchedulerCalls):
    """E-step backend on a Dask cluster whose workers also apply the M-steps (see the module).

    Parameters
    ----------
    client : distributed.Client
        A connected client; its ``security`` (TLS) is Dask's own.
    model_arrays : callable
        Returns the model's ``(sstats_wm, eta, alpha)`` as they are now (the base).
    install : callable
        ``install(sstats_wm, eta, alpha)`` replaces the model's arrays with newer ones.
    threads : int, optional
        Threads of each worker's E-step (default: the worker's own ``nthreads``, its share of the cores).
    stall_timeout : float
        Seconds the scheduler may have no worker before :class:`DaskTimeout`.
    batches_per_task : int, optional
        Mini-batches each worker's task fits in a row (default :data:`BATCHES_PER_TASK`).
    shares_per_worker : int, optional
        Shares each worker owns of a mini-batch (default :data:`SHARES_PER_WORKER`; with 1, a worker takes only
        the whole part of a peer that has not started it).
    """

    def __init__(self, client: Any, model_arrays: Callable[[], tuple], install: Callable[..., None], *,
                 threads: int | None = None, stall_timeout: float = 60.0,
                 batches_per_task: int | None = None, shares_per_worker: int | None = None) -> None:
        self.client = client
        self.batches_per_task = int(BATCHES_PER_TASK if batches_per_task is None else batches_per_task)
        self.shares_per_worker = int(SHARES_PER_WORKER if shares_per_worker is None else shares_per_worker)
        for name, value in (("batches_per_task", self.batches_per_task), ("shares_per_worker", self.shares_per_worker)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        self.model_arrays, self.install = model_arrays, install
        self.threads, self.stall_timeout = threads, float(stall_timeout)
        self.address = scheduler_address(client)
        self.token = secrets.token_hex(8)  # the run's lineage: no replica of another run passes for one of this
        self.stats = TrainingStats()
        self._ref: str | None = None
        self._base: Any = None  # future of the current Base
        self._base_version = 0
        self._recipes: list[Recipe] = []  # since the base, with futures: what the tasks carry
        self._at: dict[str, int] = {}  # per worker, the version its replica holds once its last task started
        self._kept: list[Recipe] = []  # since the version the model holds, with values: what the client replays
        self._version: int | None = None
        self._held = 0
        self._since_base = 0
        self._chunks: list[CsrChunk] = []
        self._batch: dict[str, Any] | None = None
        self._lost: str | None = None
        self._workers: list[str] = []
        self._group: list[Entry] = []  # batches collected, not yet submitted
        self._pending: tuple[list[Entry], list[Any]] | None = None  # the newest group submitted, not waited for
        self._attempt = 0  # tasks submitted again get new keys
        # a rebase under way: ASK (the next group's first task returns the model it starts from), the version asked
        # for (that group runs), SEND (the model came: it is sent as the base before the next submission), or None
        self._rebase: str | int | None = None

    # ------------------------------------------------------------------ EStepBackend

    def use_corpus(self, corpus: Any) -> None:
        """Jobs become document ranges when ``corpus`` is a binary corpus every worker reads."""
        from distlda.corpora.binary import BinaryCorpus

        self._ref = None
        if not isinstance(corpus, BinaryCorpus):
            logger.info("the corpus is not a binary corpus: each mini-batch's chunks are sent to the workers")
            return
        path = str(Path(corpus.path).resolve())
        answers = self._guard(lambda: self.client.run(can_read, path, corpus.fingerprint()))
        blind = sorted(worker for worker, ok in answers.items() if not ok)
        if answers and not blind:
            self._ref = path
            logger.info("all %d Dask workers read %s: tasks carry document ranges", len(answers), path)
        else:
            logger.warning("Dask workers %s cannot read %s: sending the documents instead", ", ".join(blind), path)

    def start_batch(self, params: EStepParams) -> None:
        if self._version is None:
            self._version = self._held = 0
            self._send_base()
        self._chunks = []
        self._batch = {"ref": self._ref, "iterations": int(params.iterations),
                       "gamma_threshold": float(params.gamma_threshold), "seed": int(params.seed),
                       "threads": self.threads}

    def submit(self, chunk: CsrChunk, pass_: int) -> None:
        if self._batch is None:
            raise RuntimeError("start_batch() must be called before submit()")
        self._chunks.append(chunk)
        self._batch["pass"] = int(pass_)

    def collect(self, plan_for: Callable[[int], MStepPlan]) -> tuple[BatchStats, MStepPlan]:
        """Add the batch to the group its workers fit in a row (submitted, one task per worker, when full); the
        workers apply its M-step when they next need the model. Returns statistics without ``raw`` and with the
        ``version`` the M-step makes."""
        if self._batch is None or self._version is None:
            raise RuntimeError("start_batch() must be called before collect()")
        chunks, batch = self._chunks, self._batch
        numdocs = sum(chunk.n_docs for chunk in chunks)
        plan = plan_for(numdocs)
        if self._since_base >= REBASE_EVERY and self._rebase is None and not self._group:
            self._ask_for_base()
        batch.update(ranges=[(c.start, c.start + c.n_docs) for c in chunks])
        docs = BatchDocs(tuple(chunks)) if self._ref is None else None
        version = self._version + 1
        if docs is not None:
            self.stats.bytes_sent += sum(c.indptr.nbytes + c.ids.nbytes + c.counts.nbytes for c in chunks)
        self.stats.documents += numdocs
        self._group.append((version, batch, docs, plan.to_dict()))
        self._version, self._since_base = version, self._since_base + 1
        self._batch, self._chunks = None, []
        if len(self._group) >= self.batches_per_task:
            self._flush()
        return BatchStats(raw=None, numdocs=numdocs, version=version), plan

    def _flush(self) -> None:
        """Submit the group collected so far, then take the γ of the group before it: a worker's next task waits
        for its inputs at the worker, not for a round trip through the client."""
        group, self._group = self._group, []
        if not group:
            return
        futures = self._submit(group)
        try:
            self._settle()
        except WorkerLost as exc:
            self.client.cancel(list(futures))
            del self._recipes[-len(group):]
            self._recover(exc)
            futures = self._submit(group)
            self._since_base = len(self._recipes)  # the recovered group and this one, since the new base
        self._pending = (group, futures)

    def _submit(self, group: list[Entry]) -> list[Any]:
        """One task per worker for the group of batches, each restricted to its worker (a task that may run
        elsewhere is moved by Dask's work stealing to the worker holding most of its inputs, which runs the
        group's tasks one after the other); the batches' recipes are added to the log. Returns the futures."""
        if self._rebase == SEND:
            self._send_base(keep=True)
            self._rebase = None
            logger.info("new base at M-step %d (taken with the γ of the group after it)", self._held)
        entries = []
        for slot, (version, batch, docs, plan) in enumerate(group):
            self._attempt += 1
            # each batch's tasks push their γ to its other workers, and say which attempt it is of
            batch = dict(batch, pieces=self._pieces(), workers=list(self._workers),
                         attempt=self._attempt, slot=slot)
            sent = None if docs is None else self._hold(docs, f"distlda-docs-{self.token}-{version}-{self._attempt}")
            entries.append((version, batch, sent, plan))
        first = group[0][0]
        snapshot = self._rebase == ASK
        if snapshot:
            self._rebase = first - 1
        # priority: on each worker a group's task runs before the next group's, which waits for its γ (tasks
        # submitted within Dask's fifo_timeout would otherwise tie)
        futures = [self._guard(lambda t=t, worker=worker: self.client.submit(
            estep_task, self.token, self._base, *self._lacking(worker), t, entries, snapshot and t == 0, pure=False,
            key=f"distlda-estep-{self.token}-{first}-{self._attempt}-{t}", workers=[worker],
            allow_other_workers=False, priority=-first)) for t, worker in enumerate(self._workers)]
        self._at = dict.fromkeys(self._workers, group[-1][0] - 1)
        self._recipes.extend((version, batch, sent, futures, plan) for version, batch, sent, plan in entries)
        return futures

    def _pieces(self) -> int:
        """The shares a batch is cut into for the workers the current tasks are cut for."""
        return len(self._workers) * self.shares_per_worker

    def _lacking(self, worker: str) -> tuple[int, list[Recipe]]:
        """``(first, recipes)``: the recipes after version ``first`` that ``worker``'s replica lacks. Every input
        of a task is a dependency the scheduler tracks and a future the client pickles: all the recipes since the
        base made the scheduling of a mini-batch grow with its distance from the base. The newest recipe's γ is
        :class:`~distlda.dask.exchange.Pushed` when ``worker`` ran one of its tasks."""
        first = self._at.get(worker, self._base_version)
        recipes = self._recipes[first - self._base_version:]
        if recipes and worker in recipes[-1][1]["workers"]:
            # the newest batch's tasks push their γ to this worker: its task takes them from its inbox, so it
            # does not depend on them in Dask's graph and is on its worker, queued, before they end
            version, batch, docs, _, plan = recipes[-1]
            recipes = recipes[:-1] + [(version, batch, docs, Pushed.of(batch), plan)]
        return first, recipes

    def _settle(self) -> None:
        """Wait for the group in flight and keep its γ (what the client replays if the scheduler is lost)."""
        if self._pending is None:
            return
        group, futures = self._pending
        results = self._results(futures, f"mini-batches {group[0][0]}..{group[-1][0]}")
        self.stats.bytes_received += sum(g.nbytes for task in results for batch in task.shares
                                         for share in batch.values() for g in share.values())
        self.stats.shares_taken += sum(1 for t, task in enumerate(results) for batch in task.shares for share in batch
                                       if share // self.shares_per_worker != t)
        for slot, (version, batch, docs, plan) in enumerate(group):
            shares = in_share_order([task.shares[slot] for task in results], self._pieces())
            self._kept.append((version, batch, docs, shares, plan))
        self._pending = None
        for worker, task in zip(self._workers, results):
            if task.snapshot is not None:
                self._rebase_from(worker, task.snapshot)

    def _recover(self, why: WorkerLost) -> None:
        """A worker was lost with tasks restricted to it: bring the model's arrays to the M-step before the group
        in flight (replaying the kept γ here), make them the new base of the workers there are now, and run that
        group again, until it is done."""
        self._rebase = None  # (a new base is sent below)
        while self._pending is not None:
            group, futures = self._pending
            logger.warning("a Dask worker was lost (%s): the replicas start again from M-step %d and mini-batches "
                           "%d..%d run again", why, group[0][0] - 1, group[0][0], group[-1][0])
            self.client.cancel(list(futures))
            self._replay_here(group[0][0] - 1)
            self._send_base()
            self._pending = (group, self._submit(group))
            try:
                self._settle()
            except WorkerLost as exc:
                why = exc
                continue
        self._since_base = len(self._recipes)

    @property
    def held_version(self) -> int | None:
        """The version the model's own arrays hold (None before the first batch)."""
        return None if self._version is None else self._held

    def sync(self, version: int | None = None, strict: bool = True) -> int | None:
        """Bring the model's arrays to ``version`` (default: the newest M-step): from a worker's replica, or, when
        the scheduler is gone, by replaying here the M-steps whose γ the client kept. Returns the version held."""
        if self._version is None:
            return None
        want = min(self._version, self._version if version is None else int(version))
        if want > self._held:
            self._catch_up(want)
        if self._held < want and strict:
            if self._lost is not None:  # the scheduler went away before the M-steps' γ reached the client
                raise SchedulerLost(self._lost)
            raise DaskClusterError(f"could not bring the model to M-step {want}; it holds M-step {self._held}")
        return self._held

    def _catch_up(self, want: int) -> None:
        started = time.perf_counter()
        if self._lost is None:
            try:
                try:
                    self._flush()
                    self._settle()
                except WorkerLost as exc:
                    self._recover(exc)
                self._from_worker(want)
            except DaskClusterError as exc:
                logger.warning("cannot take the model from the Dask workers: %s", exc)
        if self._held < want:
            self._replay_here(want)
        self.stats.sync_seconds += time.perf_counter() - started
        self.stats.syncs += 1

    def close(self, answered: bool = True) -> None:
        """Forget the run's futures and, when the cluster answers, the workers' replicas of it."""
        futures = [self._base] + [f for r in self._recipes for f in [r[2]] + list(r[3]) if f is not None]
        self._recipes, self._kept, self._base, self._batch, self._pending = [], [], None, None, None
        self._group = []
        if self._lost is None and getattr(self.client, "status", None) == "running":
            with contextlib.suppress(Exception):  # let the scheduler forget the run's data at once
                self.client.cancel([f for f in futures if f is not None])
        if answered and self._lost is None and getattr(self.client, "status", None) == "running":
            try:
                self.client.run(forget_run, self.token)
            except Exception as exc:  # noqa: BLE001 - the run is over; a replica left behind only costs memory
                logger.info("could not drop the workers' replicas: %s", exc)

    # ------------------------------------------------------------------ helpers

    def _ask_for_base(self) -> None:
        """Time for a new base (between two groups): the next group's first task returns the model it starts from
        with its γ, while the workers go on. When the workers are not those the tasks are cut for (one joined),
        the old way: take the newest model (the workers wait) and send it as the base."""
        if self._guard(lambda: check_client(self.client)) == self._workers:
            self._rebase = ASK
        else:
            self.sync()
            self._send_base()
            logger.info("new base at M-step %d (taken from a worker: the workers changed)", self._held)

    def _rebase_from(self, worker: str, version: int) -> None:
        """The model a group's first task kept at ``version`` on ``worker``: taken from there (straight from the
        worker's event loop: its thread fits the next group), installed here (unless the model is newer already)
        and sent as the new base before the next group is submitted; the groups in flight are not touched. A worker
        that cannot give it (gone) leaves the rebase to the next group."""
        answers = self._guard(lambda: self.client.run(take_snapshot, self.token, version, workers=[worker],
                                                      on_error="return"))
        model = answers.get(worker)
        if not isinstance(model, tuple):
            logger.info("no copy of the model at M-step %d from %s (%s): a new base is asked for again", version,
                        worker, model)
            self._rebase = None
            return
        version, sstats_wm, eta, alpha = model
        self.stats.bytes_received += sstats_wm.nbytes + eta.nbytes + alpha.nbytes
        if int(version) > self._held:
            self.install(sstats_wm, eta, alpha)
            self._taken(int(version))
        self._rebase = SEND

    def _send_base(self, keep: bool = False) -> None:
        """Scatter the model as the new base to every worker (once per base), and drop the recipes before it.
        With ``keep``, the recipes of the groups in flight stay, and so do the workers they were cut for."""
        sstats_wm, eta, alpha = self.model_arrays()
        base = Base(self.token, self._held, np.array(sstats_wm), np.array(eta), np.array(alpha))
        self._base = self._hold(base, f"distlda-base-{self.token}-{self._held}")
        self._base_version = self._held
        if keep:
            self._recipes = [r for r in self._recipes if r[0] > self._held]
            self._at = {worker: at for worker, at in self._at.items() if at >= self._held}
            self._since_base = self._version - self._held  # (the group being submitted is counted already)
        else:
            self._recipes, self._at = [], {}
            # the workers a base's tasks are cut for: one that leaves is replaced by Dask, one that joins is used
            # from the next base on (asking the scheduler once per base, not once per batch)
            self._workers = self._guard(lambda: check_client(self.client))
            self._guard(lambda: self.client.run(install_inbox, workers=self._workers))
            self._since_base = 0
        self.stats.bytes_sent += base.sstats_wm.nbytes + base.eta.nbytes + base.alpha.nbytes

    def _hold(self, value: Any, key: str) -> Any:
        """A future of ``value``, held by a task (:func:`~distlda.dask.replicas.held`) that carries it: the workers
        fetch it from each other when a task needs it, and keep it."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Large object", UserWarning)  # the base is large by nature
            return self._guard(lambda: self.client.submit(held, value, pure=False, key=key))

    def _from_worker(self, want: int) -> None:
        recipes = self._recipes[:want - self._base_version]
        future = self._guard(lambda: self.client.submit(model_task, self.token, self._base, recipes, self.threads,
                                                        pure=False, key=f"distlda-model-{self.token}-{want}"))
        self._at = {}  # the worker that ran it (any) moved its replica: the next tasks carry all since the base
        version, sstats_wm, eta, alpha = self._results([future], f"the model at M-step {want}")[0]
        self.stats.bytes_received += sstats_wm.nbytes + eta.nbytes + alpha.nbytes
        self.install(sstats_wm, eta, alpha)
        self._taken(int(version))

    def _replay_here(self, want: int) -> None:
        """Replay the kept M-steps after the held version on a copy of the model's arrays, then install them."""
        steps = [r for r in self._kept if self._held < r[0] <= want]
        if not steps:
            return
        replica = DaskReplica()
        sstats_wm, eta, alpha = self.model_arrays()
        replica.start_from(Base(self.token, self._held, sstats_wm, eta, alpha))
        for recipe in steps:
            replica.apply(recipe)
        assert replica.arrays is not None and replica.version is not None
        self.install(replica.arrays.sstats_wm, replica.arrays.eta, replica.arrays.alpha)
        logger.info("replayed M-steps %d..%d on the client", self._held + 1, replica.version)
        self._taken(replica.version)

    def _taken(self, version: int) -> None:
        self._held = version
        self._kept = [r for r in self._kept if r[0] > version]
