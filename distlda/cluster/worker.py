"""A worker of distributed training: ``python -m distlda.models.lda_worker``.

A worker runs the heavy phase of the E-step (fitting γ for each document of a
job, with distlda's compiled kernels) and returns γ. It also keeps a replica of
the model: it rebuilds each batch's statistics from every job's γ in document
order and applies the M-step (see :mod:`distlda.cluster.replica`), so the model
does not depend on which worker did which job, and the client takes the model
from a worker when it needs it (``getmodel``). Each worker has one job loop: it pulls a job from the
dispatcher as soon as it is free (the dispatcher answers at once when a job is
queued), processes it, reports it done, and pulls the next. No polling on the
critical path, no threads that pile up between M-steps.

Only the job loop keeps a connection to the dispatcher open across calls. A
remote call served on one of Pyro's threads (``getmodel`` replaying M-steps, a
``requestjob`` from outside) opens its own and closes it when it returns: Pyro
keeps idle server threads alive, and a proxy left in one would hold a
connection, and so a thread of the dispatcher, for as long as that thread lives.

A worker serves one dispatcher at a time: the one that enlisted it. The
dispatcher gives it a random session token with ``initialize``, and every later
call that changes the worker (``initialize`` again, ``reset``, ``processjob``,
``exit``) must carry it; the worker shows the token when it asks for jobs. So
another key holder cannot repoint a worker or feed it jobs. A worker whose
dispatcher stopped answering may be enlisted anew.

Every size a message can ask the worker to allocate is checked first (:mod:`distlda.cluster.limits`).

Remote methods (gensim's names): ``initialize(myid, dispatcher, session, **model_params)``,
``requestjob()``, ``processjob(job, session)``, ``getstate()``, ``reset(state, session)``,
``ping()``, ``exit(session)``; plus ``getmodel(lineage, version)``, ``getmodelpiece(lineage, version, name, index,
rows)`` (a model too large for one message comes in pieces), ``getgamma(batch, jobs)`` (the γ of its recent jobs,
which the other workers replay from: :mod:`distlda.cluster.peers`), ``getpartials(batch, parts, lo, hi)``,
``getsums(batch, lo, hi, wait)``, ``bulkaddress()`` (the same two over a side channel; :mod:`distlda.cluster.scatter`,
:mod:`distlda.cluster.bulk`) and ``can_read(path, fingerprint)``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
from Pyro5 import errors as pyro_errors
from Pyro5.server import behavior, expose, oneway

from distlda.cluster import errors as cluster_errors
from distlda.cluster.daemon import role_parser, run_role
from distlda.cluster.enlistment import check_rebinding, check_session
from distlda.cluster.limits import MODEL_ARRAYS, check_job_size, check_model_fits
from distlda.cluster.naming import WORKER_PREFIX, NsConf
from distlda.cluster.peers import (PEER_TIMEOUT, GammaStore, GammaUploads, PeerLinks, check_gamma_request,
                                   fill_gammas)
from distlda.cluster.replica import CorpusReader, Replica
from distlda.cluster.basecast import BaseService
from distlda.cluster.modelservice import ModelService
from distlda.cluster.bulk import BulkLinks
from distlda.cluster.scatter import PartialStore, RowsService, apply_by_rows, bulk_peer
from distlda.cluster.timeline import mark
from distlda.cluster.transport import Transport, release
from distlda.cluster.wire import WireError, check_batch, check_job, check_model_params, encode_array
from distlda.corpora.csr import validate_chunk
from distlda.core.estep import chunk_partial, fit_documents, fit_gamma, kernel_threads, resolve_threads
from distlda.core.fingerprint import numerics_description, numerics_id

logger = logging.getLogger("distlda.lda_worker")

__all__ = ["Worker", "main", "MODEL_ARRAYS"]

GETJOB_WAIT = 5.0
"""Seconds a getjob call waits at the dispatcher for a job before returning empty-handed."""



@expose
@behavior(instance_mode="single")
class Worker(RowsService, BaseService, ModelService):
    """The worker object registered at the name server as ``distlda.lda_worker.<id>``.

    Parameters
    ----------
    threads : int, optional
        Threads of the E-step kernels in this process (default: every core).
    key : str, optional
        The cluster key, to call the dispatcher.
    transport : Transport, optional
        How to reach the dispatcher (default: Pyro5 with ``key``).
    """

    def __init__(self, threads: int | None = None, key: str | None = None,
                 transport: Transport | None = None) -> None:
        self.threads = resolve_threads(threads)
        self.transport = transport if transport is not None else Transport(NsConf(hmac_key=key))
        self._lock = threading.Lock()
        self._init_base()  # (basecast.BaseService)
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._link: tuple[str, Any] | None = None  # (uri, proxy) of the dispatcher, the job loop's own
        self._next: dict[str, Any] | None = None  # getjob's answer that came with finishjob's
        self.myid: str | None = None
        self.dispatcher_uri: str | None = None
        self._session: str | None = None  # the token of the dispatcher that enlisted this worker
        self.model_params: dict[str, Any] = {}
        self._batch: Any = None
        self._replica: Replica | None = None
        self._reader = CorpusReader()
        self._gammas = GammaStore()  # γ of this worker's recent jobs, which the others replay from
        self._partials = PartialStore()  # partial statistics of its whole-chunk jobs, and sums of its words' rows
        self.scattered = 0  # M-steps applied from statistics summed by rows (not replayed from γ)
        self._peer_links = PeerLinks(lambda uri: self.transport.proxy(uri, timeout=PEER_TIMEOUT))  # the loop's
        self._bulk_links = BulkLinks(key, PEER_TIMEOUT)  # ...and its bulk channels to them (scatter.RowsService)
        self._uploads = GammaUploads(lambda: self.dispatcher_uri,
                                     lambda uri: self.transport.proxy(uri, timeout=GETJOB_WAIT + 30.0),
                                     lambda proxy, items: proxy.putgammas(self.myid, items, session=self._session))
        self._params: dict[str, Any] = {}
        self.jobs_done = 0
        self.docs_done = 0
        self.busy_seconds = 0.0
        self.on_exit: Any = None

    # ----------------------------------------------------------- remote API

    def initialize(self, myid: str, dispatcher: str, session: str | None = None, **model_params: Any) -> bool:
        """Take the model's parameters, the dispatcher's address and its session token, and start pulling jobs.

        Raises
        ------
        SessionRefused
            When another dispatcher that still answers enlisted this worker, or ``session`` is missing.
        ModelTooLarge
            When the model's arrays would not fit this worker's memory, or its statistics a message.
        NumericsMismatch
            When the client computes with other kernels.
        """
        check_model_params(model_params, "initialize")
        self._check_rebinding(session if isinstance(session, str) else "", str(dispatcher))
        if not isinstance(session, str) or not session:
            raise cluster_errors.SessionRefused(f"initialize of worker {myid}: no session token (a dispatcher "
                                                "enlists a worker with one)")
        theirs = model_params.get("numerics")
        if theirs is not None and theirs != numerics_id():
            raise cluster_errors.NumericsMismatch(
                f"worker {myid} computes with distlda numerics {numerics_description()}, the client with "
                f"{model_params.get('numerics_description', theirs)}: the model would drift from a local run. "
                "Install the same distlda, numba, llvmlite and numpy on every machine of the cluster; where the "
                "CPU targets differ, set one common target in the environment of every host and the "
                "client: NUMBA_CPU_NAME=generic for any x86-64, or NUMBA_CPU_NAME and NUMBA_CPU_FEATURES of the "
                "oldest CPU (see docs/distributed.md)")
        self._check_fits(str(myid), model_params)
        with self._lock:
            self.myid = str(myid)
            self.dispatcher_uri = str(dispatcher)
            self._session = session
            self.model_params = dict(model_params)
            self._batch = None
            self._replica = None
            self._next = None
            self._partials.clear()
            if self._loop is None or not self._loop.is_alive():
                self._loop = threading.Thread(target=self._job_loop, name="job-loop", daemon=True)
                self._loop.start()
        logger.info("initialized as %s for dispatcher %s: %s", myid, dispatcher,
                    {k: v for k, v in model_params.items()})
        return True

    def requestjob(self) -> bool:
        """Pull one job from the dispatcher (waiting briefly), process it and report it; False if none came."""
        with self._dispatcher() as dispatcher:
            loop = threading.current_thread() is self._loop
            job = None
            if loop:  # what came with the report of the loop's last job, if anything
                with self._lock:
                    job, self._next = self._next, None
            if job is None:
                job = dispatcher.getjob(self.myid, GETJOB_WAIT, self._position(), session=self._session)
            if job is None:
                return False
            mark("worker", "sync" if "sync" in job else "job", self.myid)
            if "sync" in job:  # idle, and the model has moved on: apply its M-steps now (the recipes come along)
                with kernel_threads(self.threads):
                    self._sync(job if "recipes" in job else
                               dispatcher.getrecipes(self._position(), light=True, worker=self.myid))
                return False
            result = self._run_job(job)
            gamma = result.pop("gamma", None)  # sent on after the result, off the batch's critical path
            mark("worker", "fit-end", self.myid)
            if loop and (gamma is None or job.get("whole")):  # a whole chunk's batch is summed by rows: its γ stays
                # here (fitted again if lost), and the next job or M-step comes with the report: one round trip fewer
                session = self._session
                answer = dispatcher.finishjob(self.myid, result, GETJOB_WAIT, self._position(), session=session)
                with self._lock:  # (not for a worker enlisted again meanwhile)
                    self._next = answer["next"] if self._session == session else None
                return True
            dispatcher.jobdone(self.myid, result, session=self._session)
            if gamma is not None and not job.get("whole"):
                self._uploads.put(str(job["batch"]), int(job["job"]), gamma)
            return True

    def processjob(self, job: dict[str, Any], session: str | None = None) -> dict[str, Any]:
        """Fit γ for the documents of ``job``; a bad job gives an ``error`` entry naming it, not a crash.

        ``session`` is the token of the dispatcher that enlisted this worker (SessionRefused without it).
        """
        self._check_session(session, "processjob")
        return self._run_job(job)

    def _run_job(self, job: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        job_id = job.get("job") if isinstance(job, dict) else None
        try:
            check_job(job, f"job {job_id}")
            exp_elogbeta, alpha, params = self._params_for(job)
            chunk = self._reader.chunk(job, params.get("ref_path"), name=f"job {job_id}")
            where = f"job {job_id} (documents {chunk.start}-{chunk.start + chunk.n_docs - 1})"
            num_terms = int(self.model_params["num_terms"])
            try:
                validate_chunk(chunk, num_terms)
            except ValueError as exc:
                raise cluster_errors.JobError(f"{where}: {exc}") from None
            check_job_size(self.model_params, chunk.n_docs, where)
            with self._lock, kernel_threads(self.threads):  # the job's words' rows brought up to date (lazy M-step)
                assert self._replica is not None
                exp_elogbeta, alpha = self._replica.estep_arrays(chunk.ids)
            with kernel_threads(self.threads):
                gamma, iters = fit_documents(chunk, exp_elogbeta, alpha, params["seed"], job["pass"],
                                             params["iterations"], params["gamma_threshold"])
                if job.get("whole") and isinstance(job.get("part"), int):  # for the reduce-scatter of its M-step
                    self._partials.put_partial(str(job["batch"]), job["part"],
                                               chunk_partial(chunk, gamma, exp_elogbeta))
            self._reader.release(job, params.get("ref_path"))
        except (cluster_errors.JobError, WireError, ValueError, TypeError, KeyError) as exc:
            logger.warning("refused job %s: %s", job_id, exc)
            return {"job": job_id, "batch": job.get("batch") if isinstance(job, dict) else None,
                    "error": str(exc)}
        seconds = time.perf_counter() - started
        encoded = encode_array(gamma)
        self._gammas.put(str(job["batch"]), int(job["job"]), encoded)
        with self._lock:
            self.jobs_done += 1
            self.docs_done += chunk.n_docs
            self.busy_seconds += seconds
        return {"job": job_id, "batch": job["batch"], "gamma": encoded,
                "iterations": int(iters.sum()), "seconds": seconds}

    def getstate(self) -> dict[str, Any]:
        """This worker's counters (jobs and documents done, seconds busy, jobs' γ given to peers, current batch)."""
        with self._lock:
            return {"id": self.myid, "jobs_done": self.jobs_done, "docs_done": self.docs_done,
                    "busy_seconds": self.busy_seconds, "gamma_served": self._gammas.served, "batch": self._batch,
                    "scattered": self.scattered, "bulk_served": self._bulk_served(), "threads": self.threads,
                    "base_pieces_from_peers": self.from_source,
                    "pid": os.getpid(), "thread_count": threading.active_count()}

    def reset(self, state: dict[str, Any], session: str | None = None) -> bool:
        """Take the parameters of a new mini-batch (a base and/or recipes, as ``getparams`` gives them); only from
        the dispatcher that enlisted this worker (its ``session`` token)."""
        self._check_session(session, "reset")
        self._set_params(state)
        return True

    def getgamma(self, batch: str, jobs: list[int]) -> list[list[Any]]:
        """``[[job, γ], ...]`` of those ``jobs`` of ``batch`` this worker did and still keeps, for a peer's replay
        (:mod:`distlda.cluster.peers`); jobs it does not keep are left out."""
        kept = self._gammas.get(batch, check_gamma_request(batch, jobs), peer=True)
        return [[job, gamma] for job, gamma in kept.items()]

    def can_read(self, path: str, fingerprint: dict[str, Any]) -> bool:
        """Whether this worker can read the binary corpus at ``path`` (so jobs can be references into it)."""
        return self._reader.can_read(str(path), fingerprint)

    def ping(self) -> bool:
        """Liveness check."""
        return True

    @oneway
    def exit(self, session: str | None = None) -> None:
        """Stop the job loop and this process (any key holder may stop a worker no dispatcher has enlisted)."""
        if self._session is not None:
            try:
                self._check_session(session, "exit")
            except cluster_errors.SessionRefused as exc:
                logger.warning("%s", exc)  # a oneway call: its caller hears nothing, so the log says why
                return
        logger.info("exit requested")
        self._stop.set()
        self._uploads.close()
        self._close_bulk()
        if self.on_exit is not None:
            self.on_exit()

    # ------------------------------------------------------------ internals

    def _check_session(self, session: Any, what: str) -> None:
        with self._lock:
            check_session(self._session, self.dispatcher_uri, self.myid, session, what)

    def _check_rebinding(self, session: str, dispatcher: str) -> None:
        with self._lock:
            mine, uri = self._session, self.dispatcher_uri
        check_rebinding(mine, uri, self.myid, session, dispatcher, self.transport)

    def _check_fits(self, name: str, params: dict[str, Any]) -> None:
        """Refuse a model whose arrays would not fit this process's memory, before allocating."""
        with self._lock:
            arrays = None if self._replica is None else self._replica.arrays
        held = 0 if arrays is None else sum(a.nbytes for a in (arrays.sstats_wm, arrays.exp_elogbeta, arrays.eta))
        check_model_fits(name, params, held)

    @contextmanager
    def _dispatcher(self) -> Iterator[Any]:
        """A proxy of the dispatcher for the calls of one step.

        The job loop's thread gets the proxy it keeps across jobs (opened again when the dispatcher moved);
        any other thread gets a proxy of its own, closed when the step ends (see the module).
        """
        uri = self.dispatcher_uri
        if uri is None:
            raise RuntimeError("the worker is not initialized")
        if threading.current_thread() is not self._loop:
            with self.transport.proxy(uri, timeout=GETJOB_WAIT + 30.0) as proxy:
                yield proxy
            return
        if self._link is None or self._link[0] != uri:
            self._drop_link()
            self._link = (uri, self.transport.proxy(uri, timeout=GETJOB_WAIT + 30.0))
        yield self._link[1]

    def _drop_link(self) -> None:
        """Close the job loop's proxy of the dispatcher (its one close path; called by the loop's thread)."""
        link, self._link = self._link, None
        if link is not None:
            release(link[1])
        self._peer_links.close()
        self._bulk_links.close()

    def _set_params(self, state: dict[str, Any]) -> None:
        """Bring the replica to the batch's version and keep the batch's E-step settings."""
        check_batch(state, "batch settings")
        self._sync(state)
        with self._lock:
            want = [state.get("lineage", self._replica.lineage if self._replica else None), state["version"]]
            if self._replica is None or self._replica.position != want:
                have = None if self._replica is None else self._replica.position
                raise WireError(f"replica at {have}, batch needs {want}")
            self._params = {k: state[k] for k in ("iterations", "gamma_threshold", "seed")}
            self._params["ref_path"] = (state.get("ref") or {}).get("path")
            self._batch = state["batch"]

    def _sync(self, answer: dict[str, Any]) -> None:
        """Apply a base and/or recipes (from ``getparams`` or ``getrecipes``) to the replica."""
        with self._lock:
            if self._replica is None:
                self._replica = Replica(int(self.model_params["num_topics"]), int(self.model_params["num_terms"]),
                                        str(self.model_params["dtype"]))
            base = answer.get("base")
            if base is not None and not (base.get("lineage") == self._replica.lineage and
                                         self._replica.version is not None and
                                         int(base.get("version", -1)) <= self._replica.version):
                # (never back to an older base of the same run)
                self._load_base(answer, functools.partial(self._base_piece, base.get("lineage")))
            while True:
                for recipe in answer.get("recipes", []):
                    if self._replica.version is not None and int(recipe["version"]) <= self._replica.version:
                        continue  # already replayed
                    if self.myid is not None and apply_by_rows(recipe, self._replica, self.myid, self._partials,
                                                               self._peer):
                        self.scattered += 1
                        continue
                    recipe = fill_gammas(recipe, self.myid, self._gammas, self._peer, self._full_recipe)
                    self._replica.apply_recipe(recipe, self._reader)
                if not answer.get("more") or not answer.get("recipes"):
                    break
                # the dispatcher sent part of the recipes (a message of all would be too large): the rest, up to
                # the version this answer was for
                with self._dispatcher() as dispatcher:
                    answer = dispatcher.getrecipes(self._replica.position, int(answer["want"]), light=True)

    def _peer(self, uri: str) -> Any:
        """A peer's proxy for one step: the job loop keeps its links open; another thread opens its own."""
        if threading.current_thread() is self._loop:
            return bulk_peer(self._bulk_links, uri, self._peer_links.link(uri))
        return self.transport.proxy(uri, timeout=PEER_TIMEOUT)

    def _full_recipe(self, version: int) -> dict[str, Any]:
        """The dispatcher's recipe of ``version``, γ and all (for jobs whose holders cannot give theirs)."""
        assert self._replica is not None and self._replica.lineage is not None
        with self._dispatcher() as dispatcher:
            answer = dispatcher.getrecipes([self._replica.lineage, version - 1], version)
        for recipe in answer.get("recipes") or []:
            if isinstance(recipe, dict) and recipe.get("version") == version:
                return recipe
        raise WireError(f"the dispatcher no longer has the recipe of version {version} (a new base replaced it)")

    def _base_piece(self, lineage: Any, name: str, index: int) -> Any:
        """Piece ``index`` of the array ``name`` of the dispatcher's base (a base too large for one message)."""
        with self._dispatcher() as dispatcher:
            return dispatcher.getbasepiece(lineage, name, index)

    def _position(self) -> list | None:
        with self._lock:
            return None if self._replica is None else self._replica.position

    def _params_for(self, job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """exp(E[log β]), α and the E-step settings for the batch of ``job``; asks the dispatcher only when the
        job does not carry its batch's settings or the replica is not at the batch's version yet."""
        batch = job["batch"]
        if self._batch != batch:
            settings = job.get("settings")
            if isinstance(settings, dict) and settings.get("batch") == batch and \
                    self._position() == [settings.get("lineage"), settings.get("version")]:
                with kernel_threads(self.threads):  # its M-steps on the worker's threads, not on every core
                    self._set_params(settings)
            else:
                with self._dispatcher() as dispatcher, kernel_threads(self.threads):
                    self._set_params(dispatcher.getparams(batch, self._position(), light=True, worker=self.myid))
        with self._lock:
            assert self._replica is not None
            exp_elogbeta, alpha = self._replica.estep_arrays(None)
            return exp_elogbeta, alpha, self._params

    def _job_loop(self) -> None:
        backoff = 0.2
        try:
            while not self._stop.is_set():
                try:
                    self.requestjob()
                    backoff = 0.2
                except cluster_errors.SessionRefused as exc:
                    logger.warning("the dispatcher refused this worker (%s); waiting to be enlisted again", exc)
                    self._drop_link()
                    self._stop.wait(5.0)
                except (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError) as exc:
                    logger.warning("dispatcher unreachable (%s); retrying in %.1fs", exc, backoff)
                    self._drop_link()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                except Exception:  # noqa: BLE001 - the loop must survive anything a job does
                    logger.exception("job loop error")
                    self._stop.wait(1.0)
        finally:
            self._drop_link()

    def _warm_up(self) -> None:
        """Compile (or load from cache) the E-step kernels before the first job arrives."""
        from distlda.corpora.csr import bow_to_chunk

        for dtype in (np.float32, np.float64):
            chunk = bow_to_chunk([[(0, 1.0)]])
            fit_gamma(chunk, np.ones((1, 2), dtype), np.ones(2, dtype), np.zeros(1, np.uint64), 2, 0.1)


def build_parser() -> argparse.ArgumentParser:
    parser = role_parser("python -m distlda.models.lda_worker",
                         "Run a worker of a distlda cluster (one per machine, or more).")
    parser.add_argument("--threads", type=int, default=None, help="E-step threads (default: every core)")
    return parser


def _make(args: argparse.Namespace, conf: NsConf) -> tuple[Worker, str, str, None]:
    worker = Worker(threads=args.threads, key=args.hmac)
    threading.Thread(target=worker._warm_up, name="warm-up", daemon=True).start()
    return worker, WORKER_PREFIX + uuid.uuid4().hex[:12], f"worker ({worker.threads} threads)", None


def main(argv: Sequence[str] | None = None) -> int:
    """Start a worker and serve until exit() or SIGTERM."""
    return run_role(build_parser(), argv, "lda_worker", _make)


if __name__ == "__main__":
    sys.exit(main())
