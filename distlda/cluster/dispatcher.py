"""The dispatcher of distributed training: ``python -m distlda.models.lda_dispatcher``.

One dispatcher per cluster, registered as ``distlda.lda_dispatcher``: a job broker and the log of a run's base and
recipes. The client puts a mini-batch's jobs (``putjob(s)``), workers pull them (``getjob``) and report them
(``jobdone``, ``finishjob``), and the client waits for the batch (``getstate``), announcing its M-step, which the
workers apply from the log (``getjob``'s sync answer, ``getrecipes``, ``getparams``). It does no LDA math.

Every wait is bounded: long polls return after a few seconds with "nothing yet", so no caller hangs on a lost peer.
Every remote argument is checked (a ``wait`` is a finite number of seconds up to ``MAX_WAIT``). A worker takes and
reports jobs only under its own name, with its session token. One client trains at a time: the calls that drive
training from a second client are refused with ``ClusterBusy`` naming the first (``ClientLease``).

Remote methods: gensim's (``initialize``, ``getworkers``, ``getjob``, ``putjob``, ``getstate``, ``reset``, ``jobdone``,
``jobsdone``, ``exit``) and ``putjobs``, ``finishjob``, ``setbase``, ``putbasepiece``, ``getbasepiece``, ``announce``,
``getparams``, ``getrecipes``, ``putgammas``, ``check_reference``, ``release``, ``status``, ``ping``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Any, Sequence

from Pyro5.server import behavior, expose, oneway

from distlda.cluster import errors as cluster_errors
from distlda.cluster.daemon import role_parser, run_role
from distlda.cluster.jobboard import INITIALIZE_WAIT, ClientLease, JobBoard, WorkerInfo, caller
from distlda.cluster.membership import Membership
from distlda.cluster.naming import DISPATCHER_NAME, NsConf, answering_proxy, lookup_uri, wait_for_ns
from distlda.cluster.peers import check_gamma_items
from distlda.cluster.recipes import RecipeLog, check_base_fits, set_job_gamma
from distlda.cluster.references import ReferenceChecks
from distlda.cluster.timeline import mark
from distlda.cluster.transport import Transport
from distlda.cluster.wire import (MAX_JOBS_PER_CALL, WireError, check_batch, check_job, check_model_params,
                                  check_name, check_wait)

logger = logging.getLogger("distlda.lda_dispatcher")

__all__ = ["Dispatcher", "main"]

MAX_WAIT = 10.0
"""Longest a single long-polling call waits before returning "nothing yet"."""


@expose
@behavior(instance_mode="single")
class Dispatcher:
    """The dispatcher object.

    Parameters
    ----------
    maxsize : int
        Most jobs queued and not yet taken; ``putjob`` waits beyond that.
    ns_conf : dict, optional
        How to reach the name server (to find the workers).
    heartbeat : float
        Seconds between liveness checks of the workers; a worker that misses two
        is lost, and the jobs it had taken go back to the queue for the others.
    ping_timeout : float
        Seconds a liveness check may take.
    transport : Transport, optional
        How to reach the workers and the name server (default: Pyro5 with the key of ``ns_conf``).
    """

    def __init__(self, maxsize: int = 10, ns_conf: dict[str, Any] | None = None, heartbeat: float = 1.0,
                 ping_timeout: float = 3.0, transport: Transport | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.conf = NsConf.from_mapping(ns_conf)
        self.transport = transport if transport is not None else Transport(self.conf)
        self.membership = Membership(self.transport, self._lost, heartbeat=heartbeat, ping_timeout=ping_timeout)
        self.uri: str | None = None
        self.on_exit: Any = None
        self._cv = threading.Condition()
        self._board = JobBoard(maxsize)
        self.model_params: dict[str, Any] | None = None
        self._batch: Any = None
        self._params: dict[str, Any] | None = None
        self._log = RecipeLog()
        self._references = ReferenceChecks(self.transport, self.membership.uri)
        self._done: list[dict[str, Any]] | None = None
        self._lease = ClientLease()
        self._started = time.monotonic()

    @property
    def workers(self) -> dict[str, WorkerInfo]:
        """The counters of the workers in use, by name."""
        return self._board.workers

    # ----------------------------------------------------------- remote API

    def initialize(self, **model_params: Any) -> int:
        """Find the workers registered at the name server and initialise them; returns how many.

        Workers that register later are initialised and used as they appear.

        Raises
        ------
        NoWorkersError
            When no worker is registered, or none answers.
        NumericsMismatch
            When every registered worker refused to join because it runs other kernels than the client (a worker
            that refuses while others join is left out, with a warning in this log).
        """
        check_model_params(model_params, "initialize")
        check_base_fits(model_params)
        with self._cv:
            self._client("initialize", wait=INITIALIZE_WAIT)
            # the last run's base and recipes go: its client has its model, and a new run starts from a base of its
            # own; kept, they had every idle worker (whose replica initialize clears) load that old base again
            self._log = RecipeLog()
        found = self.membership.setup(str(self.uri), model_params)
        refusals = self.membership.refusals()
        if not found and refusals:
            raise type(refusals[0])("; ".join(map(str, refusals)))
        if not found:
            raise cluster_errors.NoWorkersError(
                f"the dispatcher found no worker at the name server {self.conf.where()}; start some with "
                "`python -m distlda.models.lda_worker`")
        with self._cv:
            self.model_params = dict(model_params)
            self._board.workers = {name: WorkerInfo(name, uri) for name, uri in found.items()}
            self._board.clear()
        logger.info("initialized %d workers: %s", len(found), ", ".join(found))
        return len(found)

    def release(self) -> bool:
        """The training client is done: another may train at once. False when the caller was not training."""
        with self._cv:
            return self._lease.release(caller()[0])

    def getworkers(self) -> list[str]:
        """URIs of the workers in use."""
        return [uri for uri in (self.membership.uri(n) for n in self.membership.names()) if uri]

    def setbase(self, base: dict[str, Any]) -> bool:
        """The client's full statistics at a version; workers that are new or behind start from it."""
        with self._cv:
            self._client("setbase")
            self._log.set_base(base)
            self._cv.notify_all()  # idle workers waiting for a job sync to it at once
        return True

    def putbasepiece(self, lineage: str, name: str, index: int, piece: dict[str, Any]) -> bool:
        """Piece ``index`` of the base's array ``name``, when the base is too large for one message."""
        with self._cv:
            self._client("putbasepiece")
            self._log.add_piece(lineage, name, index, piece)
            self._cv.notify_all()  # (after the last piece, idle workers sync to the base)
        return True

    def getbasepiece(self, lineage: str, name: str, index: int) -> dict[str, Any]:
        """Piece ``index`` of the base's array ``name``, for a worker loading the base."""
        with self._cv:
            return self._log.piece(lineage, name, index)

    def reset(self, state: dict[str, Any]) -> bool:
        """Start a new mini-batch.

        ``state`` holds the batch id, the model version its E-step uses, the
        E-step settings (iterations, gamma_threshold, seed) and an optional corpus
        reference (``ref``: path and fingerprint) when jobs are document ranges.
        """
        check_batch(state, "reset")
        with self._cv:
            self._client("reset", in_batch=True)
            if self._log.version is None or state["version"] > self._log.version:
                raise ValueError(f"reset: version {state['version']} is unknown (send a base first)")
            self._board.clear()
            self._done = None
            self._batch = state["batch"]
            self._params = dict(state)
            self._cv.notify_all()
        return True

    def announce(self, version: int, plan: dict[str, Any]) -> bool:
        """The client applies the completed batch's M-step with ``plan``, making ``version``: record its recipe
        (the batch's documents with their γ) and wake idle workers so they replay it at once."""
        if isinstance(version, bool) or not isinstance(version, int) or not isinstance(plan, dict):
            raise WireError(f"announce: the version must be an integer and the plan a dict, got {version!r}")
        with self._cv:
            self._client("announce")
            self._record(version, plan)
        return True

    def getrecipes(self, have: Any, want: int | None = None, light: bool = False,
                   worker: str | None = None) -> dict[str, Any]:
        """The base and/or recipes that bring a replica at position ``have`` (``[lineage, version]``, or None)
        to version ``want`` (default: the newest); ``"more": True`` when the answer stops short, to keep it small.
        ``light``: recipes name the worker holding each job's γ instead of carrying it (a worker takes it there).
        ``worker``: the asker's name, for a base in pieces (``base_from``: :mod:`distlda.cluster.basecast`)."""
        with self._cv:
            if self._log.version is None:
                raise ValueError("no base yet")
            if want is not None and (not isinstance(want, int) or isinstance(want, bool)):
                raise WireError(f"getrecipes: want must be a version number, got {want!r}")
            taker = self.membership.uri(worker) if isinstance(worker, str) else None
            return self._log.answer(have, self._log.version if want is None else min(want, self._log.version),
                                    light is True, taker)

    def getparams(self, batch: Any, have: Any = None, light: bool = False,
                  worker: str | None = None) -> dict[str, Any]:
        """What a worker needs for mini-batch ``batch``: its settings, and the base and/or recipes that bring
        a replica at position ``have`` (None: no replica yet) to the batch's version (``light``, ``worker``: as for
        :meth:`getrecipes`)."""
        with self._cv:
            if self._params is None or batch != self._batch:
                raise ValueError(f"batch {batch!r} is not the current mini-batch")
            answer = dict(self._params)
            taker = self.membership.uri(worker) if isinstance(worker, str) else None
            answer.update(self._log.answer(have, int(self._params["version"]), light is True, taker))
            return answer

    def check_reference(self, ref: dict[str, Any]) -> dict[str, bool]:
        """Ask every worker whether it can read the binary corpus ``ref`` (path and fingerprint)."""
        if not isinstance(ref, dict) or not isinstance(ref.get("path"), str) or \
                not isinstance(ref.get("fingerprint"), dict):
            raise WireError("check_reference: a corpus reference is a dict with a path and a fingerprint")
        return self._references.ask_all(self.membership.names(), ref)

    def putjob(self, job: dict[str, Any], wait: float = MAX_WAIT) -> bool:
        """Queue a job of the current mini-batch; False if the queue stayed full for ``wait`` seconds."""
        return self._put([job], wait, "putjob") == 1

    def putjobs(self, jobs: list[dict[str, Any]], wait: float = MAX_WAIT) -> int:
        """Queue several jobs of the current mini-batch, in order, with one call; returns how many of them were
        queued (the first ones) before the queue stayed full for ``wait`` seconds. Every job is checked first: a
        bad one refuses the call and none is queued."""
        if not isinstance(jobs, list) or not 0 < len(jobs) <= MAX_JOBS_PER_CALL:
            raise WireError(f"putjobs: jobs must be a list of 1 to {MAX_JOBS_PER_CALL} jobs")
        return self._put(jobs, wait, "putjobs")

    def getjob(self, worker_id: str, wait: float = MAX_WAIT, have: Any = False,
               session: str | None = None) -> dict[str, Any] | None:
        """The next queued job for worker ``worker_id``, waiting up to ``wait`` seconds; None if none came.
        ``session``: the token the worker was enlisted with (SessionRefused otherwise). A worker that reports its
        replica's position ``have`` (``[lineage, version]``, or None) gets ``{"sync": version}`` with the recipes
        instead when it is idle and the model has moved on, so it applies them before the next batch's jobs arrive."""
        check_name(worker_id, "getjob")
        deadline = time.monotonic() + check_wait(wait, "getjob", MAX_WAIT)
        self.membership.check_session(worker_id, session, "getjob")
        with self._cv:
            known = self._info(worker_id) is not None
        ref = (self._params or {}).get("ref")
        if not known or not self._references.reads(worker_id, ref):  # a stranger, or a corpus it cannot read
            return None
        with self._cv:
            info = self._info(worker_id)
            if info is None:
                return None  # no longer a member: it gets no job until it is initialised again
            while True:
                info.last_seen = time.monotonic()
                if worker_id not in self.workers:
                    return None  # lost while waiting
                if not self._board.queued() and have is not False and self._log.behind(have):
                    return self._log.sync_answer(have, self.membership.uri(worker_id))
                payload = self._board.take(info)
                if payload is not None:
                    self._cv.notify_all()
                    # the batch's settings ride along, so a worker whose replica is current needs no getparams
                    return {**payload, "settings": self._job_settings()}
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def jobdone(self, workerid: str, result: dict[str, Any] | None = None, session: str | None = None) -> bool:
        """Worker ``workerid`` finished a job; ``result`` holds its γ (or an error naming the job). ``session``:
        as for :meth:`getjob`."""
        check_name(workerid, "jobdone")
        self.membership.check_session(workerid, session, "jobdone")
        with self._cv:
            info = self._info(workerid)
            if info is None:
                return False  # not a member (a lost worker's jobs went to the others): no stranger reports a job
            info.last_seen = time.monotonic()
            if not isinstance(result, dict) or result.get("batch") != self._batch:
                return False  # a late answer for an abandoned batch
            if not self._board.finish(info, result):
                return False
            if self._board.all_done():
                mark("dispatcher", "last-jobdone")
            self._cv.notify_all()
        return True

    def finishjob(self, workerid: str, result: dict[str, Any] | None = None, wait: float = MAX_WAIT,
                  have: Any = False, session: str | None = None) -> dict[str, Any]:
        """:meth:`jobdone`, then :meth:`getjob` in the same call: ``{"taken": jobdone's answer, "next": getjob's}``
        (the worker whose job completes a batch hears of its M-step without another round trip)."""
        check_wait(wait, "finishjob", MAX_WAIT)  # a bad wait is refused before the report is taken
        taken = self.jobdone(workerid, result, session=session)
        return {"taken": taken, "next": self.getjob(workerid, wait, have, session=session)}

    def putgammas(self, workerid: str, gammas: list, session: str | None = None) -> int:
        """``[[batch, job, γ], ...]``: the γ of jobs worker ``workerid`` reported done without it (it sends them
        on after the batch, off the critical path, for the recipes' log); returns how many were taken."""
        check_name(workerid, "putgammas")
        self.membership.check_session(workerid, session, "putgammas")
        with self._cv:
            # the current batch's results or done jobs, else a recipe (the current batch's too, until the next reset)
            return sum((batch == self._batch and (self._board.add_gamma(job, gamma) or
                                                  set_job_gamma(self._done or [], job, gamma)))
                       or self._log.add_gamma(batch, job, gamma) for batch, job, gamma in check_gamma_items(gammas))

    def getstate(self, wait: float = MAX_WAIT, gammas: bool = True,
                 announce: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Every job's result once the whole mini-batch is done; None if it is not done within ``wait`` s.

        Parameters
        ----------
        wait : float
            Longest wait, in seconds (at most ``MAX_WAIT``).
        gammas : bool
            Whether the results carry each job's γ (a client whose workers apply the M-step needs none).
        announce : dict, optional
            ``{"version": v, "plan": {...}, "jobs": n}``: the M-step that the completed batch makes, as
            :meth:`announce` takes it, recorded the moment the last job is in, so the workers start replaying it
            at once; not recorded (``"recorded": False`` in the answer) when the batch does not have the ``n``
            jobs the client put.

        Raises
        ------
        JobError
            When a worker refused a job of this batch (bad input); the message names the job.
        """
        deadline = time.monotonic() + check_wait(wait, "getstate", MAX_WAIT)
        if not isinstance(gammas, bool) or not (announce is None or isinstance(announce, dict)):
            raise WireError("getstate: gammas must be True or False, and announce a dict or None")
        with self._cv:
            self._client("getstate")
            while True:
                if self._board.errors:
                    message = "; ".join(self._board.errors)
                    self._board.clear()
                    self._client("getstate", in_batch=False)
                    raise cluster_errors.JobError(message)
                if self._board.all_done():
                    self._client("getstate", in_batch=False)
                    results, self._done = self._board.collect(gammas)
                    out = {"batch": self._batch, "results": results}
                    if announce is not None:
                        out["recorded"] = self._record_announced(announce)
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def jobsdone(self) -> int:
        """Jobs done since the dispatcher started."""
        with self._cv:
            return self._board.jobs_done_total

    def status(self) -> dict[str, Any]:
        """Workers, their last contact, jobs queued and done, documents per second."""
        now = time.monotonic()
        with self._cv:
            elapsed = max(now - self._started, 1e-9)
            board = self._board
            return {
                "workers": board.status_rows(now), "workers_alive": len(self.membership.names()),
                "jobs_queued": board.queued(), "jobs_in_batch": board.in_batch(),
                "jobs_done": board.jobs_done_total, "docs_done": board.docs_done_total,
                "docs_per_second": board.docs_done_total / elapsed, "uptime_seconds": elapsed,
                "batch": self._batch,
            }

    def ping(self) -> bool:
        """Liveness check."""
        return True

    @oneway
    def exit(self) -> None:
        """Stop every worker, then this dispatcher."""
        self.membership.stop_workers()
        self.membership.close()
        if self.on_exit is not None:
            self.on_exit()

    # ------------------------------------------------------------ internals

    def _client(self, where: str, in_batch: bool | None = None, wait: float = 0.0) -> None:
        """Refuse a call that drives training from any client but the one training (holding the lock; see
        :meth:`ClientLease.admit <distlda.cluster.jobboard.ClientLease.admit>`)."""
        self._lease.admit(self._cv, where, in_batch, wait)

    def _put(self, jobs: list[Any], wait: float, where: str) -> int:
        """Queue ``jobs`` (all checked first), waiting for room up to ``wait`` seconds; how many were queued."""
        deadline = time.monotonic() + check_wait(wait, where, MAX_WAIT)
        for i, job in enumerate(jobs):
            check_job(job, where if len(jobs) == 1 else f"{where}: job at index {i}")
        with self._cv:
            self._client(where)
            self._board.check_new(jobs, self._batch, where)
            for queued, job in enumerate(jobs):
                while self._board.full():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return queued
                    self._cv.wait(left)
                self._board.add(job)
                self._cv.notify_all()
        return len(jobs)

    def _info(self, name: str) -> WorkerInfo | None:
        """The counters of a member worker (created when a joining worker first calls); None for strangers."""
        info = self.workers.get(name)
        if info is None:
            uri = self.membership.uri(name)
            if uri is not None:
                info = self.workers[name] = WorkerInfo(name, uri)
        return info

    def _job_settings(self) -> dict[str, Any]:
        """What a worker needs of the batch's settings with each job (the corpus path, not its fingerprint)."""
        params = self._params or {}
        settings = {k: params[k] for k in ("batch", "lineage", "version", "iterations", "gamma_threshold", "seed")
                    if k in params}
        ref = params.get("ref")
        settings["ref"] = {"path": ref["path"]} if ref else None
        return settings

    def _record_announced(self, announce: dict[str, Any]) -> bool:
        """Record the M-step announced with ``getstate`` if the batch has the jobs the client put (holding the
        lock); whether it was recorded."""
        expected = announce.get("jobs")
        done = len(self._done or ())
        if expected is not None and int(expected) != done:
            logger.warning("batch %s has %d jobs, the client put %s: its M-step is not recorded", self._batch, done,
                           expected)
            self._done = None
            return False
        self._record(int(announce["version"]), announce["plan"])
        return True

    def _record(self, version: int, plan: dict[str, Any]) -> None:
        """Log the recipe of the completed batch's M-step and wake idle workers (holding the lock)."""
        if self._done is None:
            raise ValueError("announce: no completed batch to make a recipe from")
        ref = (self._params or {}).get("ref") or {}
        settings = {k: (self._params or {})[k] for k in ("seed", "iterations", "gamma_threshold")
                    if k in (self._params or {})}
        self._log.add(version, plan, self._done, ref.get("path"), self._batch, settings)
        mark("dispatcher", "record")
        self._done = None
        self._cv.notify_all()

    def _lost(self, name: str) -> None:
        """A worker stopped answering: put the jobs it had taken back at the head of the queue."""
        with self._cv:
            redo = self._board.give_back(name)
            self._cv.notify_all()
        if redo:
            others = len([n for n in self.membership.names() if n != name])
            logger.warning("lost worker %s: its jobs %s wait in the queue for %s", name, ", ".join(map(str, redo)),
                           f"the {others} other worker(s)" if others else "a worker to join (none is left)")


def build_parser() -> argparse.ArgumentParser:
    parser = role_parser("python -m distlda.models.lda_dispatcher",
                         "Run the dispatcher of a distlda cluster (one per cluster).")
    parser.add_argument("--maxsize", type=int, default=10, help="most jobs queued at once (default 10)")
    parser.add_argument("--heartbeat", type=float, default=1.0,
                        help="seconds between liveness checks of the workers (default 1); a worker that misses "
                             "two is declared lost and its jobs go to the others")
    return parser


def _check_alone(args: argparse.Namespace, conf: NsConf) -> None:
    """Refuse to start with a bad --maxsize, or while another dispatcher of this cluster answers."""
    if args.maxsize < 1:
        raise ValueError(f"--maxsize must be at least 1, got {args.maxsize}")
    wait_for_ns(conf, args.wait)
    uri = lookup_uri(conf, DISPATCHER_NAME)
    proxy = answering_proxy(uri, conf.hmac_key, 3.0) if uri else None
    if proxy is not None:
        with proxy:
            raise cluster_errors.ClusterError(f"another dispatcher is running at {uri}; stop it first (one "
                                              "dispatcher per cluster)")


def _make(args: argparse.Namespace, conf: NsConf) -> tuple[Dispatcher, str, str, str]:
    dispatcher = Dispatcher(maxsize=args.maxsize, ns_conf=conf.as_dict(), heartbeat=args.heartbeat)
    return dispatcher, DISPATCHER_NAME, "dispatcher", DISPATCHER_NAME


def main(argv: Sequence[str] | None = None) -> int:
    """Start the dispatcher and serve until exit() or SIGTERM."""
    return run_role(build_parser(), argv, "lda_dispatcher", _make, check=_check_alone)


if __name__ == "__main__":
    sys.exit(main())
