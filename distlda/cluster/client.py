"""The client side of distributed training: the distributed E-step backend of LdaModel.

At the start of an ``update()`` the client sends the dispatcher a *base*: the
full statistics and priors. Per mini-batch it starts the batch (``reset``),
queues its documents as jobs (CSR arrays, or references into a binary corpus
every worker can read), collects every job's γ (``getstate``), and announces
the M-step's scalars (``announce``). The client rebuilds the statistics from
γ with the same code as a local run, in document order; the workers replay the
same M-step on their replicas from the same γ. So the model is the same
whatever the number of workers, and only γ and documents cross the network
per M-step, never the K × V matrix (except in a base, every
``REBASE_EVERY`` mini-batches).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any, Callable

from Pyro5 import errors as pyro_errors

from distlda.cluster.auth import KeyedProxy, configure_pyro
from distlda.cluster.errors import ClusterTimeout, DispatcherNotFound, NoWorkersError
from distlda.cluster.naming import NsConf, find_dispatcher
from distlda.cluster.wire import decode_array, encode_array, encode_chunk, plain
from distlda.corpora.csr import CsrChunk
from distlda.models.estep import (
    BatchAccumulator,
    BatchStats,
    EStepParams,
    TrainingStats,
    join_gammas,
)
from distlda.models.update import MStepPlan

logger = logging.getLogger(__name__)

__all__ = ["DistributedEStep", "connect_dispatcher", "DEFAULT_STALL_TIMEOUT", "REBASE_EVERY"]

DEFAULT_STALL_TIMEOUT = 60.0
"""Seconds without progress after which training stops with ClusterTimeout."""

_POLL = 5.0

REBASE_EVERY = 20
"""Mini-batches between two bases (full statistics), which bound the dispatcher's recipe log."""


def connect_dispatcher(ns_conf: dict[str, Any] | None, model_params: dict[str, Any]) -> tuple[KeyedProxy, int]:
    """Find the dispatcher, initialise it (and through it the workers); return it and the worker count.

    Raises
    ------
    NameServerNotFound, DispatcherNotFound, NoWorkersError, KeyRefusedError
        Each names what is missing and how to start it.
    """
    configure_pyro()
    conf = NsConf.from_mapping(ns_conf)
    dispatcher = find_dispatcher(conf, timeout=_POLL + 30.0)
    try:
        numworkers = int(dispatcher.initialize(**plain(model_params)))
    except (pyro_errors.CommunicationError, OSError) as exc:
        raise DispatcherNotFound(f"the dispatcher at {dispatcher._pyroUri} stopped answering ({exc})") from None
    logger.info("using the dispatcher at %s with %d workers", dispatcher._pyroUri, numworkers)
    return dispatcher, numworkers


class DistributedEStep:
    """E-step backend that runs phase 1 on the cluster's workers (see :mod:`distlda.models.estep`).

    Parameters
    ----------
    dispatcher : KeyedProxy
        Proxy of an initialised dispatcher.
    numworkers : int
        Workers behind it (jobs are cut so that each gets about two per chunk).
    model_arrays : callable
        Returns the model's (sstats_wm, eta, alpha) as they are now; sent as a base.
    stall_timeout : float
        Seconds without any progress before :class:`ClusterTimeout` / :class:`NoWorkersError`.
    """

    def __init__(self, dispatcher: KeyedProxy, numworkers: int, model_arrays: Callable[[], tuple],
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> None:
        self.dispatcher = dispatcher
        self.numworkers = max(1, int(numworkers))
        self.model_arrays = model_arrays
        self.stall_timeout = stall_timeout
        self._prefix = secrets.token_hex(4)
        self._count = 0
        self._batch: str | None = None
        self._acc: BatchAccumulator | None = None
        self._chunks: list[CsrChunk] = []
        self._parts: list[int] = []  # jobs per chunk
        self._version: int | None = None
        self._since_base = 0
        self._ref: dict[str, Any] | None = None
        self.stats = TrainingStats()

    def _call(self, method: str, *args: Any) -> Any:
        self.dispatcher._pyroClaimOwnership()
        try:
            return getattr(self.dispatcher, method)(*args)
        except (pyro_errors.CommunicationError, OSError) as exc:
            raise DispatcherNotFound(f"lost the dispatcher at {self.dispatcher._pyroUri} ({exc}); the model keeps "
                                     "every completed update: restart the dispatcher and call update() again") \
                from None

    def use_corpus(self, corpus: Any) -> None:
        """Send jobs as references when ``corpus`` is a binary corpus every worker can read."""
        from distlda.cluster.replica import corpus_fingerprint
        from distlda.corpora.binary import BinaryCorpus

        self._ref = None
        if not isinstance(corpus, BinaryCorpus):
            return
        ref = {"path": str(Path(corpus.path).resolve()), "fingerprint": corpus_fingerprint(corpus)}
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
        sstats_wm, eta, alpha = self.model_arrays()
        base = {"version": self._version, "sstats_wm": encode_array(sstats_wm), "eta": encode_array(eta),
                "alpha": encode_array(alpha)}
        self.stats.bytes_sent += sum(len(base[k]["data"]) for k in ("sstats_wm", "eta", "alpha"))
        self._call("setbase", base)
        self._since_base = 0

    def start_batch(self, params: EStepParams) -> None:
        self._count += 1
        self._batch = f"{self._prefix}-{self._count}"
        if self._version is None:
            self._version = 0
            self._send_base()
        elif self._since_base >= REBASE_EVERY:
            self._send_base()  # the model includes every M-step so far: the base replaces their recipes
        self._since_base += 1
        state = {"batch": self._batch, "version": self._version, "ref": self._ref,
                 "iterations": int(params.iterations), "gamma_threshold": float(params.gamma_threshold),
                 "seed": int(params.seed)}
        self._call("reset", state)
        self._acc = BatchAccumulator(params)
        self._chunks, self._parts = [], []

    def submit(self, chunk: CsrChunk, pass_: int) -> None:
        if self._acc is None:
            raise RuntimeError("start_batch() must be called before submit()")
        size = max(1, math.ceil(chunk.n_docs / (2 * self.numworkers)))
        part = len(self._chunks)
        self._chunks.append(chunk)
        self._parts.append(0)
        for lo in range(0, chunk.n_docs, size):
            piece = chunk.slice(lo, lo + size)
            number = sum(self._parts)
            self._parts[part] += 1
            job: dict[str, Any] = {"batch": self._batch, "job": number, "pass": int(pass_), "docs": piece.n_docs,
                                   "part": part}
            if self._ref is not None:
                job["ref"] = {"first": int(piece.start), "last": int(piece.start + piece.n_docs)}
            else:
                job["chunk"] = encode_chunk(piece)
                self.stats.bytes_sent += sum(len(job["chunk"][k]["data"]) for k in ("indptr", "ids", "counts"))
            self.stats.documents += piece.n_docs
            self._wait_for("putjob", job)

    def _wait_for(self, method: str, *args: Any) -> Any:
        """Call a long-polling method until it has an answer; give up after ``stall_timeout`` s without progress.

        Progress is any job finished anywhere in the cluster, so a slow but working cluster never times out.
        """
        started = time.monotonic()
        last_progress = started
        done = None
        while True:
            answer = self._call(method, *args, _POLL)
            if answer not in (None, False):
                self.stats.wait_seconds += time.monotonic() - started
                return answer
            status = self._call("status")
            if status["jobs_done"] != done:
                done, last_progress = status["jobs_done"], time.monotonic()
            if time.monotonic() - last_progress > self.stall_timeout:
                if status.get("workers_alive", 1) == 0:
                    raise NoWorkersError(f"every worker is gone: no job finished for {self.stall_timeout:.0f}s "
                                         "and the dispatcher has no worker left. The model keeps every completed "
                                         "update; start workers and call update() again")
                raise ClusterTimeout(f"the cluster made no progress for {self.stall_timeout:.0f}s ({method}); the "
                                     "model keeps every completed update")

    def collect(self, plan_for: Callable[[int], MStepPlan]) -> tuple[BatchStats, MStepPlan]:
        """Every job's γ; the plan of the batch's M-step is announced first, so the workers replay the M-step
        while the client rebuilds the batch's statistics and applies it, and the next batch finds them ready."""
        if self._acc is None or self._version is None:
            raise RuntimeError("start_batch() must be called before collect()")
        state = self._wait_for("getstate")
        results = {int(r["job"]): r for r in state["results"]}
        missing = [n for n in range(sum(self._parts)) if n not in results]
        if missing:
            raise ClusterTimeout(f"the dispatcher returned no result for jobs {missing}")
        plan = plan_for(sum(chunk.n_docs for chunk in self._chunks))
        self._version += 1
        self._call("announce", self._version, plan.to_dict())
        started = time.perf_counter()
        first = 0
        for chunk, parts in zip(self._chunks, self._parts):
            gammas = []
            for number in range(first, first + parts):
                result = results[number]
                self.stats.bytes_received += len(result["gamma"]["data"])
                self.stats.gamma_seconds += float(result.get("seconds", 0.0))
                gammas.append(decode_array(result["gamma"], f"gamma of job {number}"))
            first += parts
            # reduced per submitted chunk, as the local E-step does, so the sums round the same way
            self._acc.add(chunk, join_gammas(gammas, chunk.n_docs, self._acc.params.num_topics))
        self.stats.reduce_seconds += time.perf_counter() - started
        stats = self._acc.stats
        self._acc = None
        self._chunks, self._parts = [], []
        return stats, plan

    def close(self) -> None:
        self._acc = None
        self._chunks, self._parts = [], []
