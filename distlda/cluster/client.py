"""The client side of distributed training: the distributed E-step backend of LdaModel.

Per mini-batch: ``reset`` sends the dispatcher the E-step parameters (exp(E[log β])
word-major, alpha, iterations...), ``putjob`` queues the batch's documents as
CSR jobs, and ``getstate`` returns every job's γ; the client then rebuilds the
statistics with the same code as a local run, in document order, so the model
is the same whatever the number of workers and whichever worker did a job.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Any

from Pyro5 import errors as pyro_errors

from distlda.cluster.auth import KeyedProxy, configure_pyro
from distlda.cluster.errors import ClusterTimeout, DispatcherNotFound, NoWorkersError
from distlda.cluster.naming import NsConf, find_dispatcher
from distlda.cluster.wire import decode_array, encode_array, encode_chunk, plain
from distlda.corpora.csr import CsrChunk
from distlda.models.estep import BatchAccumulator, BatchStats, EStepParams, TrainingStats

logger = logging.getLogger(__name__)

__all__ = ["DistributedEStep", "connect_dispatcher", "DEFAULT_STALL_TIMEOUT"]

DEFAULT_STALL_TIMEOUT = 60.0
"""Seconds without progress after which training stops with ClusterTimeout."""

_POLL = 5.0


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
    stall_timeout : float
        Seconds without any progress before :class:`ClusterTimeout`.
    """

    def __init__(self, dispatcher: KeyedProxy, numworkers: int, stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> None:
        self.dispatcher = dispatcher
        self.numworkers = max(1, int(numworkers))
        self.stall_timeout = stall_timeout
        self._prefix = secrets.token_hex(4)
        self._count = 0
        self._batch: str | None = None
        self._acc: BatchAccumulator | None = None
        self._pieces: list[CsrChunk] = []
        self.stats = TrainingStats()

    def _call(self, method: str, *args: Any) -> Any:
        self.dispatcher._pyroClaimOwnership()
        try:
            return getattr(self.dispatcher, method)(*args)
        except (pyro_errors.CommunicationError, OSError) as exc:
            raise DispatcherNotFound(f"lost the dispatcher at {self.dispatcher._pyroUri} ({exc}); the model keeps "
                                     "every completed update: restart the dispatcher and call update() again") \
                from None

    def start_batch(self, params: EStepParams) -> None:
        self._count += 1
        self._batch = f"{self._prefix}-{self._count}"
        state = {"batch": self._batch, "ebt": encode_array(params.ebt), "alpha": encode_array(params.alpha),
                 "iterations": int(params.iterations), "gamma_threshold": float(params.gamma_threshold),
                 "seed": int(params.seed)}
        self.stats.bytes_sent += len(state["ebt"]["data"]) + len(state["alpha"]["data"])
        self._call("reset", state)
        self._acc = BatchAccumulator(params)
        self._pieces = []

    def submit(self, chunk: CsrChunk, pass_: int) -> None:
        if self._acc is None:
            raise RuntimeError("start_batch() must be called before submit()")
        size = max(1, math.ceil(chunk.n_docs / (2 * self.numworkers)))
        for lo in range(0, chunk.n_docs, size):
            piece = chunk.slice(lo, lo + size)
            number = len(self._pieces)
            self._pieces.append(piece)
            job = {"batch": self._batch, "job": number, "pass": int(pass_), "docs": piece.n_docs,
                   "chunk": encode_chunk(piece)}
            chunk_data = job["chunk"]
            self.stats.bytes_sent += sum(len(chunk_data[k]["data"]) for k in ("indptr", "ids", "counts"))
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

    def collect(self) -> BatchStats:
        if self._acc is None:
            raise RuntimeError("start_batch() must be called before collect()")
        state = self._wait_for("getstate")
        results = {int(r["job"]): r for r in state["results"]}
        missing = [n for n in range(len(self._pieces)) if n not in results]
        if missing:
            raise ClusterTimeout(f"the dispatcher returned no result for jobs {missing}")
        started = time.perf_counter()
        for number, piece in enumerate(self._pieces):
            result = results[number]
            self.stats.bytes_received += len(result["gamma"]["data"])
            self.stats.gamma_seconds += float(result.get("seconds", 0.0))
            self._acc.add(piece, decode_array(result["gamma"], f"gamma of job {number}"))
        self.stats.reduce_seconds += time.perf_counter() - started
        stats = self._acc.stats
        self._acc = None
        self._pieces = []
        return stats

    def close(self) -> None:
        self._acc = None
        self._pieces = []
