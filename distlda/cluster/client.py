"""The client side of distributed training: the distributed E-step backend of LdaModel.

At the start of an ``update()`` the client sends the dispatcher a *base*: the
full statistics and priors, under a new lineage id. Per mini-batch it starts
the batch (``reset``), queues its documents as jobs (CSR arrays, or references
into a binary corpus every worker can read), and waits for the batch to be done
(``getstate``), announcing in the same call the scalars of the batch's M-step.
The workers apply the M-step: each keeps a replica of the model, rebuilds the
batch's statistics from every job's γ in document order and applies the same
:func:`distlda.core.mstep.apply_mstep` as a local run. So the model is the
same whatever the number of workers; only γ and documents cross the network
per M-step, never the K × V matrix; and the client does no per-batch work
beyond sending jobs.

The client's own arrays lag behind while training runs. It takes the model from
a worker (``getmodel``) when it needs it — the end of the update, a checkpoint,
an evaluation, a callback, and every ``REBASE_EVERY`` mini-batches, when the
model it took becomes the dispatcher's new base. If no worker can give the
newest version, it replays the dispatcher's recipes itself; only when the
dispatcher and every worker are gone together are the M-steps since the last
such point lost, and the training run is rolled back to match.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from Pyro5 import errors as pyro_errors

from distlda.cluster.auth import KeyedProxy, configure_pyro, home_of, key_of, release
from distlda.cluster.errors import ClusterError, ClusterTimeout, DispatcherNotFound, JobError, NoWorkersError
from distlda.cluster.naming import DISPATCHER_NAME, NsConf, find_dispatcher, lookup_uri
from distlda.cluster.pieces import decode_large, encode_large, encode_piece, is_pieced, large_bytes
from distlda.cluster.replica import CorpusReader, Replica
from distlda.cluster.timeline import mark
from distlda.cluster.wire import MAX_JOBS_PER_CALL, WireError, encode_chunk, plain
from distlda.corpora.csr import CsrChunk
from distlda.core.estep import BatchStats, EStepParams, TrainingStats
from distlda.core.mstep import CANONICAL_EVERY, MStepPlan

logger = logging.getLogger(__name__)

__all__ = ["DistributedEStep", "jobs_per_chunk", "connect_dispatcher", "dispatcher_answers", "call_timeout", "DEFAULT_STALL_TIMEOUT",
           "CALL_TIMEOUT", "REBASE_EVERY"]

DEFAULT_STALL_TIMEOUT = 60.0
"""Seconds without progress after which training stops with ClusterTimeout."""

_POLL = 5.0
"""Seconds a long poll (``putjob(s)``, ``getstate``) waits at the dispatcher before it answers "nothing yet"."""

CALL_TIMEOUT = _POLL + 30.0
"""Seconds one call to the dispatcher may take (a long poll's wait, plus time for large messages); a dispatcher
that does not answer within it (stopped, hung, its host gone) is reported as DispatcherNotFound, at once."""

REBASE_EVERY = CANONICAL_EVERY
"""Mini-batches between two bases (the model taken from a worker and sent as the dispatcher's new base),
which bound the dispatcher's recipe log and what a lost cluster can cost. The lazy M-step's canonical versions
(:data:`distlda.core.mstep.CANONICAL_EVERY`), so a worker that starts from a base continues bitwise."""



def call_timeout(stall_timeout: float) -> float:
    """Seconds one call of the client may wait: :data:`CALL_TIMEOUT`, never more than the stall limit."""
    return min(CALL_TIMEOUT, float(stall_timeout))


def jobs_per_chunk(workers: int, batch_chunks: int | None, summable: bool = True) -> int:
    """Jobs to cut each chunk into: 1 when a mini-batch's ``batch_chunks`` chunks divide evenly among the workers
    and its statistics are ``summable`` by rows, else about two jobs per worker per mini-batch.

    Whole-chunk jobs let the workers sum the batch's statistics by rows between them (the reduce-scatter of
    :mod:`distlda.cluster.scatter`) instead of each replaying the whole batch, which saves more than a second job
    per worker would balance. Otherwise every job costs calls (a share of the client's ``putjobs``, a worker's
    ``getjob`` and ``jobdone``) and a share of the dispatcher's time, so jobs are as few as keep the workers evenly
    busy: at least two per worker per mini-batch (one would leave a worker idle behind a slow one), and a batch's
    jobs a multiple of the workers where that costs at most ``2 × workers`` jobs per chunk (the most there ever
    were). The γ and the model do not depend on it: a replica joins a chunk's jobs before it reduces the chunk.
    """
    workers = max(1, int(workers))
    if not batch_chunks:
        return 2 * workers  # unknown: two jobs per worker from every chunk
    chunks = int(batch_chunks)
    if summable and chunks % workers == 0:
        return 1
    for parts in range(max(1, math.ceil(2 * workers / chunks)), 2 * workers):
        if parts * chunks % workers == 0:
            return parts
    return 2 * workers


def connect_dispatcher(ns_conf: dict[str, Any] | None, model_params: dict[str, Any]) -> tuple[KeyedProxy, int]:
    """Find the dispatcher, initialise it (and through it the workers); return it and the worker count.

    Raises
    ------
    NameServerNotFound, DispatcherNotFound, NoWorkersError, KeyRefusedError
        Each names what is missing and how to start it.
    """
    configure_pyro()
    conf = NsConf.from_mapping(ns_conf)
    dispatcher = find_dispatcher(conf, timeout=call_timeout(conf.timeout))
    with contextlib.ExitStack() as stack:
        stack.enter_context(dispatcher)  # closed unless it is handed to the caller
        try:
            numworkers = int(dispatcher.initialize(**plain(model_params)))
        except (pyro_errors.CommunicationError, OSError) as exc:
            raise DispatcherNotFound(f"the dispatcher at {dispatcher._pyroUri} stopped answering ({exc})") from None
        stack.pop_all()
    logger.info("using the dispatcher at %s with %d workers", dispatcher._pyroUri, numworkers)
    return dispatcher, numworkers


def dispatcher_answers(proxy: KeyedProxy) -> bool:
    """Whether a dispatcher's proxy, kept from an earlier call, still answers (a restarted dispatcher has a new
    address). A proxy that does not answer is closed: the caller connects anew.

    Parameters
    ----------
    proxy : KeyedProxy
        The proxy :func:`connect_dispatcher` returned, possibly used from another thread since.

    Raises
    ------
    DispatcherNotFound
        When the dispatcher did not answer within the call timeout and is still the one registered: connecting
        anew would only wait for it again.
    """
    try:
        proxy._pyroClaimOwnership()  # the model may call from another thread than the one that connected
        return bool(proxy.ping())
    except pyro_errors.TimeoutError:
        release(proxy)
        conf = home_of(proxy)
        if conf is not None and lookup_uri(conf, DISPATCHER_NAME) == str(proxy._pyroUri):
            raise DispatcherNotFound(f"the dispatcher at {proxy._pyroUri} did not answer within "
                                     f"{proxy._pyroTimeout:.0f}s: it is stopped or hung, or its host is unreachable; "
                                     "restart it with `python -m distlda.models.lda_dispatcher`") from None
        return False
    except (pyro_errors.CommunicationError, OSError):
        release(proxy)
        return False


class DistributedEStep:
    """E-step backend that runs on the cluster's workers, which also apply the M-steps (see the module).

    Parameters
    ----------
    dispatcher : KeyedProxy
        Proxy of an initialised dispatcher.
    numworkers : int
        Workers behind it (jobs are cut so that each gets about two per mini-batch, see :func:`jobs_per_chunk`).
    model_arrays : callable
        Returns the model's (sstats_wm, eta, alpha) as they are now; sent as the first base.
    install : callable
        ``install(sstats_wm, eta, alpha)`` replaces the model's arrays with newer ones (and recomputes
        exp(E[log β])).
    stall_timeout : float
        Seconds without any progress before :class:`ClusterTimeout` / :class:`NoWorkersError`.
    batch_chunks : int or None
        Chunks per mini-batch (None: unknown, then every chunk is cut into two jobs per worker).
    summable : bool
        Whether the workers may sum a batch's statistics by rows (:mod:`distlda.cluster.scatter`); not when a prior
        is learned from every document's γ (alpha or eta 'auto'): then jobs stay about two per worker.
    """

    def __init__(self, dispatcher: KeyedProxy, numworkers: int, model_arrays: Callable[[], tuple],
                 install: Callable[[np.ndarray, np.ndarray, np.ndarray], None],
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT, batch_chunks: int | None = None,
                 summable: bool = True) -> None:
        self.dispatcher = dispatcher
        self.numworkers = max(1, int(numworkers))
        self._jobs_per_chunk = jobs_per_chunk(self.numworkers, batch_chunks, summable)
        self._summable = bool(summable)
        self.model_arrays = model_arrays
        self.install = install
        self.stall_timeout = stall_timeout
        self._timeout = call_timeout(stall_timeout)
        self._poll = min(_POLL, self._timeout / 2)  # a long poll's answer comes well within the call timeout
        dispatcher._pyroTimeout = self._timeout
        self._lost: str | None = None  # why the dispatcher is taken as gone: no call waits for it again
        self._lineage = secrets.token_hex(8)
        self._count = 0
        self._batch: str | None = None
        self._chunks: list[CsrChunk] = []
        self._parts: list[int] = []  # jobs per chunk
        self._unsent: list[dict[str, Any]] = []  # document-range jobs not yet put (they go in one call)
        self._version: int | None = None  # M-steps announced (the newest version)
        self._held = 0  # the version the model's own arrays hold
        self._since_base = 0
        self._ref: dict[str, Any] | None = None
        self._worker_uris: list[str] = []
        self._reader = CorpusReader()
        self.stats = TrainingStats()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._lost is None:
            self.dispatcher._pyroClaimOwnership()
            try:
                return getattr(self.dispatcher, method)(*args, **kwargs)
            except (pyro_errors.CommunicationError, OSError) as exc:
                # once lost, lost: the calls that follow (taking the model, replaying) must not wait for it again
                self._lost = f"lost the dispatcher at {self.dispatcher._pyroUri} ({exc})"
            except JobError:
                raise  # a document the workers refused: bad input, which restores the model as it was
            except ValueError as exc:  # the dispatcher refused a call: the cluster's state, not the input
                raise ClusterError(f"the dispatcher refused {method}: {exc}") from None
        raise DispatcherNotFound(f"{self._lost}; the model keeps the M-steps the cluster could still give (the training "
                                 "run is rolled back to match): restart the dispatcher and call resume() or update() "
                                 "again")

    def use_corpus(self, corpus: Any) -> None:
        """Send jobs as references when ``corpus`` is a binary corpus every worker can read."""
        from distlda.corpora.binary import BinaryCorpus

        self._ref = None
        if not isinstance(corpus, BinaryCorpus):
            return
        ref = {"path": str(Path(corpus.path).resolve()), "fingerprint": corpus.fingerprint()}
        answers = self._call("check_reference", ref)
        blind = sorted(name for name, ok in answers.items() if not ok)
        if answers and not blind:
            self._ref = ref
            logger.info("all %d workers read %s: jobs are document ranges, no documents are sent", len(answers),
                        ref["path"])
        else:
            logger.warning("workers %s cannot read %s: sending the documents with the jobs instead",
                           ", ".join(blind) or "(none)", ref["path"])

    def _send_base(self) -> None:
        """The model's arrays as the base the workers start from; arrays larger than one message follow in
        pieces, one call each (:mod:`distlda.cluster.pieces`)."""
        arrays = dict(zip(("sstats_wm", "eta", "alpha"), self.model_arrays()))
        base = {"lineage": self._lineage, "version": self._version,
                **{name: encode_large(arr) for name, arr in arrays.items()}}
        self._call("setbase", base)
        for name, value in base.items():
            if is_pieced(value):
                logger.info("base.%s (%.1f MB) goes in %d pieces", name, large_bytes(value) / 1e6, value["pieces"])
                for index in range(value["pieces"]):
                    self._call("putbasepiece", self._lineage, name, index,
                               encode_piece(arrays[name], index, value["rows"]))
        self.stats.bytes_sent += sum(large_bytes(base[name]) for name in arrays)

    def start_batch(self, params: EStepParams) -> None:
        self._count += 1
        self._batch = f"{self._lineage}-{self._count}"
        if self._version is None:
            self._version = self._held = 0
            self._send_base()
            self._worker_uris = list(self._call("getworkers"))
        self._since_base += 1
        state = {"batch": self._batch, "lineage": self._lineage, "version": self._version, "ref": self._ref,
                 "iterations": int(params.iterations), "gamma_threshold": float(params.gamma_threshold),
                 "seed": int(params.seed)}
        self._call("reset", state)
        self._chunks, self._parts, self._unsent = [], [], []

    def submit(self, chunk: CsrChunk, pass_: int) -> None:
        if self._batch is None:
            raise RuntimeError("start_batch() must be called before submit()")
        size = max(1, math.ceil(chunk.n_docs / self._jobs_per_chunk))
        part = len(self._chunks)
        self._chunks.append(chunk)
        self._parts.append(0)
        for lo in range(0, chunk.n_docs, size):
            piece = chunk.slice(lo, lo + size)
            number = sum(self._parts)
            self._parts[part] += 1
            job: dict[str, Any] = {"batch": self._batch, "job": number, "pass": int(pass_), "docs": piece.n_docs,
                                   "part": part,
                                   "whole": self._summable and piece.n_docs == chunk.n_docs}
            self.stats.documents += piece.n_docs
            if self._ref is not None:  # a few bytes: the jobs go together, once there is one for each worker (and the
                job["ref"] = {"first": int(piece.start), "last": int(piece.start + piece.n_docs)}  # rest at collect)
                self._unsent.append(job)
                continue
            job["chunk"] = encode_chunk(piece)
            self.stats.bytes_sent += sum(len(job["chunk"][k]["data"]) for k in ("indptr", "ids", "counts"))
            self._wait_for("putjob", job)
        if len(self._unsent) >= self.numworkers:
            self._put_unsent()

    def _put_unsent(self) -> None:
        """Put the jobs held back by :meth:`submit` with ``putjobs`` calls (one, unless the queue is full or they are
        more than one call carries). A call that queued none (0) counts as no answer: it is made again, under
        :meth:`_wait_for`'s stall timeout, so no job is put twice or skipped."""
        while self._unsent:
            queued = self._wait_for("putjobs", self._unsent[:MAX_JOBS_PER_CALL])
            self._unsent = self._unsent[int(queued):]
        mark("client", "jobs-put")

    def _wait_for(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a long-polling method until it has an answer; give up after ``stall_timeout`` s without progress.

        Progress is any job finished anywhere in the cluster, so a slow but working cluster never times out.
        """
        started = time.monotonic()
        last_progress = started
        done = None
        while True:
            answer = self._call(method, *args, wait=self._poll, **kwargs)
            if answer not in (None, False):
                self.stats.wait_seconds += time.monotonic() - started
                return answer
            status = self._call("status")
            if status["jobs_done"] != done:
                done, last_progress = status["jobs_done"], time.monotonic()
            if time.monotonic() - last_progress > self.stall_timeout:
                if status.get("workers_alive", 1) == 0:
                    raise NoWorkersError(f"every worker is gone: no job finished for {self.stall_timeout:.0f}s "
                                         "and the dispatcher has no worker left. The model keeps the M-steps the "
                                         "cluster could still give; start workers and call resume() or update() "
                                         "again")
                raise ClusterTimeout(f"the cluster made no progress for {self.stall_timeout:.0f}s ({method}); the "
                                     "model keeps the M-steps the cluster could still give")

    def collect(self, plan_for: Callable[[int], MStepPlan]) -> tuple[BatchStats, MStepPlan]:
        """Wait for the batch; its M-step's plan goes with the wait, so the dispatcher hands it to the workers
        the moment the last job is in. Returns statistics without ``raw`` (the workers applied the M-step) and
        with the ``version`` it made."""
        if self._batch is None or self._version is None:
            raise RuntimeError("start_batch() must be called before collect()")
        self._put_unsent()
        numdocs = sum(chunk.n_docs for chunk in self._chunks)
        plan = plan_for(numdocs)
        if self._since_base > REBASE_EVERY:
            # while the workers fit this batch: take the model this batch starts from (every worker has it already)
            # and make it the new base, which replaces the recipes before it
            self.sync(strict=True)
            self._send_base()
            self._since_base = 1
        jobs = sum(self._parts)
        state = self._wait_for("getstate", gammas=False,
                               announce={"version": self._version + 1, "plan": plan.to_dict(), "jobs": jobs})
        mark("client", "collected")
        numbers = {int(r["job"]) for r in state["results"]}
        missing = [n for n in range(jobs) if n not in numbers]
        if missing or not state.get("recorded", True):
            raise ClusterTimeout(f"the dispatcher returned no result for jobs {missing} of {jobs}; the batch's "
                                 "M-step was not made")
        self._version += 1
        self.stats.gamma_seconds += sum(float(r.get("seconds", 0.0)) for r in state["results"])
        self._batch = None
        self._chunks, self._parts = [], []
        return BatchStats(raw=None, numdocs=numdocs, version=self._version), plan

    # ------------------------------------------------------------------ the model from the cluster

    @property
    def held_version(self) -> int | None:
        """The version the model's own arrays hold (None before the first base)."""
        return None if self._version is None else self._held

    def sync(self, version: int | None = None, strict: bool = True) -> int | None:
        """Bring the model's arrays to ``version`` (default: the newest M-step made): from a worker's replica,
        else by replaying the dispatcher's recipes here. Returns the version the arrays hold afterwards.

        Raises
        ------
        ClusterTimeout
            With ``strict``, when neither a worker nor the dispatcher could provide ``version``.
        """
        if self._version is None:
            return None
        want = self._version if version is None else min(int(version), self._version)
        if self._held >= want:
            return self._held
        started = time.perf_counter()
        taken = self._from_workers(want)
        if taken is not None:
            self._install(taken)
        if self._held < want:
            self._replay(want)
        self.stats.sync_seconds += time.perf_counter() - started
        self.stats.syncs += 1
        if self._held < want and strict:
            raise ClusterTimeout(f"no worker and no dispatcher could give the model at M-step {want} of this "
                                 f"run; the model holds M-step {self._held}")
        return self._held

    def _install(self, answer: dict[str, Any]) -> None:
        """Install a worker's model, decoded once by :meth:`_from_workers` (``answer["arrays"]``)."""
        self.stats.bytes_received += sum(large_bytes(answer[k]) for k in ("sstats_wm", "eta", "alpha"))
        self.install(*answer["arrays"])
        self._held = int(answer["version"])

    def _from_workers(self, want: int) -> dict[str, Any] | None:
        """The model at the newest version up to ``want`` that a worker has (None if none has a newer one).

        Asking every worker takes at most the stall limit in all (a worker may first replay the M-steps it lacks).
        """
        try:
            self._worker_uris = list(self._call("getworkers"))
        except ClusterError:
            pass  # no dispatcher: ask the workers it had
        deadline = time.monotonic() + self.stall_timeout
        best: dict[str, Any] | None = None
        for uri in self._worker_uris:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning("no worker gave the model within %.0fs", self.stall_timeout)
                break
            try:
                with KeyedProxy(uri, key_of(self.dispatcher), timeout=left) as proxy:
                    answer = proxy.getmodel(self._lineage, want)
                    version = answer.get("version") if isinstance(answer, dict) else None
                    if isinstance(version, int) and version > self._held:
                        # decoded here: a malformed answer is that worker's fault, and the next one is asked
                        answer["arrays"] = [self._model_array(proxy, answer, version, name)
                                            for name in ("sstats_wm", "eta", "alpha")]
            except Exception as exc:  # noqa: BLE001 - any worker may fail to answer; ask the next one
                logger.info("worker %s cannot give the model: %s", uri, exc)
                continue
            if isinstance(version, int) and version > self._held and (best is None or version > best["version"]):
                best = answer
                if version == want:
                    break
        return best

    def _model_array(self, proxy: KeyedProxy, answer: dict[str, Any], version: int, name: str) -> np.ndarray:
        """The array ``name`` of a worker's ``getmodel`` answer, its pieces fetched from that worker if it came
        in pieces."""
        value = answer[name]
        return decode_large(value, lambda index: proxy.getmodelpiece(self._lineage, version, name, index,
                                                                     value["rows"]), f"model.{name}")

    def _replay(self, want: int) -> None:
        """Replay the dispatcher's recipes after the held version, up to ``want``, on the model's own arrays."""
        replica: Replica | None = None
        try:
            while replica is None or replica.version < want:
                answer = self._call("getrecipes", [self._lineage, self._held if replica is None else replica.version],
                                    want)
                if answer.get("base") is not None:
                    logger.warning("the dispatcher no longer holds the M-steps after version %d", self._held)
                    return
                if replica is None:
                    sstats_wm, eta, alpha = self.model_arrays()
                    V, K = sstats_wm.shape
                    replica = Replica(K, V, str(sstats_wm.dtype))
                    replica.start_from(sstats_wm, eta, alpha, self._lineage, self._held)
                for recipe in answer.get("recipes", []):
                    replica.apply_recipe(recipe, self._reader)
                if not answer.get("more") or not answer.get("recipes"):
                    break
        except ClusterError as exc:
            logger.warning("cannot replay the M-steps after version %d from the dispatcher: %s", self._held, exc)
        except (WireError, ValueError, OSError) as exc:
            logger.warning("replaying the M-steps stopped at version %s: %s", getattr(replica, "version", None), exc)
        if replica is None:
            return
        if replica.version is not None and replica.version > self._held and replica.arrays is not None:
            self.install(replica.arrays.sstats_wm, replica.arrays.eta, replica.arrays.alpha)
            logger.info("replayed M-steps %d..%d from the dispatcher's log", self._held + 1, replica.version)
            self._held = replica.version

    def close(self, answered: bool = True) -> None:
        """The update is over: free the cluster for another client at once (it would otherwise wait for the
        dispatcher to notice this client's silence) — unless it stopped on a failure, when the dispatcher may be
        the one that hangs."""
        self._batch = None
        self._chunks, self._parts, self._unsent = [], [], []
        if answered and self._lost is None:
            with contextlib.suppress(ClusterError):
                self._call("release")
