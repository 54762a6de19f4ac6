"""The dispatcher and workers in one process, over a fake transport: objects called directly, no sockets.

Every argument and answer still goes through Pyro5's msgpack serializer, as on the wire, so a message that
could not travel fails here too. The same roles with real processes are in test_distributed.py.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from cluster_helpers import wait_until
from hypothesis import given
from hypothesis import strategies as st
from Pyro5 import errors as pyro_errors
from Pyro5 import serializers

import distlda.cluster.worker as worker_module
from distlda.cluster.client import jobs_per_chunk
from distlda.cluster.dispatcher import Dispatcher
from distlda.cluster.errors import JobError, WireError
from distlda.cluster.replica import Replica
from distlda.cluster.wire import decode_array, encode_array, encode_chunk
from distlda.cluster.worker import Worker
from distlda.core.estep import fit_gamma
from distlda.corpora.csr import bow_to_chunk
from distlda.kernels.rng import training_keys

V, K = 10, 3
PARAMS = {"num_topics": K, "num_terms": V, "dtype": "float32", "iterations": 30, "gamma_threshold": 1e-4}
DISPATCHER = "inproc:dispatcher"
_MSGPACK = serializers.serializers["msgpack"]


def _wire(value: Any) -> Any:
    """``value`` as the other side of a Pyro5 connection would see it."""
    return _MSGPACK.loads(_MSGPACK.dumps(value))


class InProcess:
    """The fake transport: "proxies" call the objects served here; a URI marked down raises as a dead peer."""

    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}
        self.workers: dict[str, str] = {}
        self.down: set[str] = set()
        self.opened: list[_Proxy] = []

    def serve(self, uri: str, obj: Any, worker: str | None = None) -> None:
        self.objects[uri] = obj
        if worker is not None:
            self.workers[worker] = uri

    def proxy(self, uri: str, timeout: float | None = None) -> "_Proxy":
        proxy = _Proxy(self, uri)
        self.opened.append(proxy)
        return proxy

    def registered_workers(self) -> dict[str, str]:
        return dict(self.workers)

    def forget(self, name: str, uri: str) -> None:
        if self.workers.get(name) == uri:
            del self.workers[name]

    def still_open(self) -> list[str]:
        return [p.uri for p in self.opened if not p.closed]


class _Proxy:
    def __init__(self, net: InProcess, uri: str) -> None:
        self.net, self.uri, self.closed = net, uri, False

    def __enter__(self) -> "_Proxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pyroRelease()

    def _pyroRelease(self) -> None:  # noqa: N802 - Pyro5's name, which the roles call to close a proxy
        self.closed = True

    def _pyroClaimOwnership(self) -> None:  # noqa: N802
        pass

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.uri in self.net.down or self.uri not in self.net.objects:
                raise pyro_errors.CommunicationError(f"{self.uri} does not answer")
            args, kwargs = _wire([list(args), kwargs])
            return _wire(getattr(self.net.objects[self.uri], method)(*args, **kwargs))
        return call


class _Vanishing:
    """A worker that joins and answers pings until it is marked down; its jobs are taken by hand."""

    session: str | None = None

    def initialize(self, myid: str, dispatcher: str, session: str | None = None, **params: Any) -> bool:
        self.session = session
        return True

    def ping(self) -> bool:
        return True

    def exit(self, session: str | None = None) -> None:
        pass


def _base() -> dict[str, Any]:
    return {"lineage": "inproc", "version": 0, "sstats_wm": encode_array(np.linspace(0.5, 3, V * K, dtype=np.float32)
                                                                       .reshape(V, K)),
            "eta": encode_array(np.full(V, 0.1, np.float32)), "alpha": encode_array(np.full(K, 0.3, np.float32))}


def _batch(dispatcher: Dispatcher, batch: str) -> None:
    dispatcher.reset({"batch": batch, "lineage": "inproc", "version": 0, "ref": None, "iterations": 30,
                      "gamma_threshold": 1e-4, "seed": 5})


def _job(batch: str, number: int, docs: list, start: int = 0) -> dict[str, Any]:
    return {"batch": batch, "job": number, "pass": 0, "docs": len(docs), "part": 0,
            "chunk": encode_chunk(bow_to_chunk(docs, start=start))}


def _collect(dispatcher: Dispatcher) -> dict[str, Any]:
    for _ in range(40):
        state = dispatcher.getstate(0.5)
        if state is not None:
            return state
    raise AssertionError("the batch was not done")


@pytest.fixture
def net(monkeypatch):
    monkeypatch.setattr(worker_module, "GETJOB_WAIT", 0.2)  # an idle job loop notices exit() soon
    return InProcess()


@pytest.fixture
def dispatcher(net):
    d = Dispatcher(maxsize=4, ns_conf={"host": "127.0.0.1", "port": 9, "broadcast": False}, heartbeat=0.05,
                   ping_timeout=0.5, transport=net)
    d.uri = DISPATCHER
    net.serve(DISPATCHER, d)
    yield d
    d.exit()
    try:
        wait_until(lambda: not net.still_open(), timeout=10.0, what="every proxy closed after exit()")
    except AssertionError:  # say which, so that a failure on a loaded machine can be traced
        raise AssertionError(f"proxies still open 10 s after the dispatcher's exit(): {net.still_open()}") from None


def _add_worker(net: InProcess, name: str) -> Worker:
    worker = Worker(threads=1, transport=net)
    net.serve(f"inproc:{name}", worker, worker=name)
    return worker


def test_a_job_flows_dispatcher_worker_dispatcher(net, dispatcher):
    worker = _add_worker(net, "w0")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    docs = [[(1, 2.0), (4, 1.0)], [(0, 1.0), (9, 3.0)], []]
    assert dispatcher.putjob(_job("b1", 0, docs, start=7), 1.0)
    state = _collect(dispatcher)
    assert state["batch"] == "b1" and [r["job"] for r in state["results"]] == [0]
    # the worker's γ is the E-step of these documents at the base's model, as a local run computes it
    replica = Replica(K, V, "float32")
    replica.load_base(_base())
    expected, _ = fit_gamma(bow_to_chunk(docs, start=7), replica.arrays.exp_elogbeta, replica.arrays.alpha,
                            training_keys(5, 0, 7, 3), 30, 1e-4)
    # the result comes without γ (the batch ends sooner); the worker keeps γ for its peers and sends it on to the
    # dispatcher for the recipes' log
    assert "gamma" not in state["results"][0]
    (job, gamma), = worker.getgamma("b1", [0])
    np.testing.assert_array_equal(decode_array(gamma), expected)
    wait_until(lambda: dispatcher._done[0]["gamma"] is not None, timeout=10.0, what="γ sent on to the dispatcher")
    np.testing.assert_array_equal(decode_array(dispatcher._done[0]["gamma"]), expected)
    status = dispatcher.status()
    assert status["jobs_done"] == 1 and status["docs_done"] == 3
    assert worker.getstate()["jobs_done"] == 1


def test_a_workers_kernels_run_on_its_threads_also_when_it_brings_a_jobs_rows_up_to_date(net, dispatcher,
                                                                                          monkeypatch):
    """A worker of one thread on a host of many cores runs every kernel on one thread: a lazy replica's refresh of a
    job's rows ran on every core the process may use (on a host with a CPU quota, threads that only contend)."""
    from distlda.kernels.parallel import current_threads

    seen: list[int] = []
    refresh = Replica.estep_arrays

    def recording(self: Replica, ids: Any) -> Any:
        if ids is not None:  # (None: no rows to refresh, no kernel)
            seen.append(current_threads())
        return refresh(self, ids)

    monkeypatch.setattr(Replica, "estep_arrays", recording)
    monkeypatch.setattr("distlda.kernels.parallel.max_threads", lambda: 4)  # as on a host of 4 cores
    _add_worker(net, "w0")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    assert dispatcher.putjob(_job("b1", 0, [[(1, 2.0), (4, 1.0)], [(0, 1.0)]]), 1.0)
    _collect(dispatcher)
    assert seen and set(seen) == {1}


def test_gamma_sent_after_the_result_reaches_the_recipe_recorded_meanwhile(net, dispatcher):
    from distlda.core.mstep import plan_mstep

    worker = _add_worker(net, "w0")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    assert dispatcher.putjob(_job("b1", 0, [[(1, 2.0), (4, 1.0)]]), 1.0)
    # the M-step is recorded the moment the result is in: the batch's γ is not there yet, and arrives while the
    # batch is still the current one (until the next reset)
    plan = plan_mstep(1.0, 10.0, 1, False, False).to_dict()
    for _ in range(40):
        state = dispatcher.getstate(0.5, gammas=False, announce={"version": 1, "plan": plan, "jobs": 1})
        if state is not None:
            break
    assert state["recorded"]

    def logged():
        return dispatcher.getrecipes(["inproc", 0], 1)["recipes"][0]["jobs"][0].get("gamma")

    wait_until(lambda: logged() is not None, timeout=10.0, what="γ in the recorded recipe")
    np.testing.assert_array_equal(decode_array(logged()), decode_array(worker.getgamma("b1", [0])[0][1]))


def test_a_new_run_does_not_have_idle_workers_load_the_last_runs_base(net, dispatcher):
    # a model connects twice per training run (at creation and at update()); each initialize clears the workers'
    # replicas, and an idle worker with no replica used to load the previous run's base again (8 workers: 8 copies
    # of a 120 MB model through the dispatcher's link, for nothing)
    worker = _add_worker(net, "w0")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    wait_until(lambda: worker._position() == ["inproc", 0], timeout=10.0, what="the idle worker on the base")
    assert dispatcher.initialize(**PARAMS) == 1
    assert worker._position() is None
    with pytest.raises(ValueError, match="no base yet"):
        dispatcher.getrecipes(None)
    assert dispatcher.getjob("w0", 0.05, None, session=worker._session) is None  # nothing to sync to
    assert worker._position() is None


@pytest.mark.slow
def test_a_lost_workers_job_is_given_to_another(net, dispatcher, caplog):
    vanishing = _Vanishing()
    net.serve("inproc:gone", vanishing, worker="gone")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    assert dispatcher.putjob(_job("b1", 0, [[(2, 1.0)]]), 1.0)
    assert dispatcher.getjob("gone", 1.0, session=vanishing.session)["job"] == 0  # taken, and never reported
    net.down.add("inproc:gone")
    wait_until(lambda: dispatcher.status()["jobs_queued"] == 1, timeout=10.0, what="the job back in the queue")
    assert "lost worker gone: its jobs 0 wait in the queue for a worker to join (none is left)" in caplog.text
    assert "gone" not in net.workers  # its registration is removed
    worker = _add_worker(net, "w1")  # a worker that joins later is found and takes the job
    state = _collect(dispatcher)
    assert [r["job"] for r in state["results"]] == [0]
    assert worker.getstate()["jobs_done"] == 1


def test_a_malformed_job_is_refused_with_a_clear_error(net, dispatcher):
    worker = _add_worker(net, "w0")
    dispatcher.initialize(**PARAMS)
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    malformed = {"batch": "b1", "job": 0, "pass": 0}  # neither documents nor a reference
    with pytest.raises(WireError, match=r"putjob: malformed job \(a job is a dict with batch, job, pass, and chunk "
                                        r"or ref\)"):
        dispatcher.putjob(malformed, 1.0)
    with pytest.raises(WireError, match=r"putjob: malformed job \(its 'job' must be a whole number"):
        dispatcher.putjob({**_job("b1", 0, [[(1, 1.0)]]), "job": "0"}, 1.0)
    # the worker makes the same check, and answers with an error naming the job instead of failing
    answer = worker.processjob(malformed, session=worker._session)
    assert answer["job"] == 0 and answer["error"].startswith("job 0: malformed job (a job is a dict")
    # a well-formed job whose document is bad reaches the worker, which refuses it naming the job and document
    assert dispatcher.putjob(_job("b1", 0, [[(1, 1.0), (V + 2, 1.0)]], start=40), 1.0)
    with pytest.raises(JobError, match=r"job 0 \(documents 40-40\): document 40: term id outside the vocabulary"):
        _collect(dispatcher)
    # and it keeps working
    _batch(dispatcher, "b2")
    assert dispatcher.putjob(_job("b2", 0, [[(1, 1.0)]]), 1.0)
    assert "error" not in _collect(dispatcher)["results"][0] and worker.getgamma("b2", [0])[0][0] == 0


def test_a_batchs_jobs_go_in_one_call_checked_whole_and_queued_while_there_is_room(net, dispatcher):
    idle = _Vanishing()  # enlisted, and takes no job unless asked here
    net.serve("inproc:idle", idle, worker="idle")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    jobs = [_job("b1", n, [[(1, 1.0)]]) for n in range(6)]
    with pytest.raises(WireError, match=r"putjobs: job at index 2: malformed job \(a job is a dict"):
        dispatcher.putjobs(jobs[:2] + [{"batch": "b1", "job": 2, "pass": 0}], 1.0)
    with pytest.raises(ValueError, match=r"putjobs: job 1 \(at index 2\) is given twice in this call"):
        dispatcher.putjobs([jobs[0], jobs[1], jobs[1]], 1.0)
    with pytest.raises(ValueError, match="putjobs: job of batch 'b0', but the current batch is 'b1'"):
        dispatcher.putjobs([_job("b0", 0, [[(1, 1.0)]])], 1.0)
    for bad in ([], jobs[0], [jobs[0]] * 5000):
        with pytest.raises(WireError, match="putjobs: jobs must be a list of 1 to 4096 jobs"):
            dispatcher.putjobs(bad, 1.0)
    assert dispatcher.status()["jobs_queued"] == 0  # nothing of a refused call was queued
    assert dispatcher.putjobs(jobs, 0.05) == 4  # maxsize 4: the first four, then the queue stayed full
    with pytest.raises(ValueError, match=r"putjobs: job 3 \(at index 0\) of this batch was already put"):
        dispatcher.putjobs(jobs[3:], 0.05)
    assert dispatcher.getjob("idle", 0.05, session=idle.session)["job"] == 0
    assert dispatcher.putjobs(jobs[4:], 0.05) == 1
    assert [dispatcher.getjob("idle", 0.05, session=idle.session)["job"] for _ in range(4)] == [1, 2, 3, 4]
    assert dispatcher.putjobs(jobs[5:], 0.05) == 1


def test_an_idle_worker_behind_the_log_gets_the_recipes_with_its_sync(net, dispatcher):
    idle = _Vanishing()
    net.serve("inproc:idle", idle, worker="idle")
    assert dispatcher.initialize(**PARAMS) == 1
    with pytest.raises(ValueError, match="no base yet"):
        dispatcher.getrecipes(None)
    assert dispatcher.getjob("idle", 0.05, None, session=idle.session) is None  # nothing to sync to
    dispatcher.setbase(_base())
    answer = dispatcher.getjob("idle", 0.05, None, session=idle.session)  # no replica: it needs the base
    assert answer["sync"] == 0 and answer["recipes"] == [] and answer["base"]["lineage"] == "inproc"
    # what getrecipes gives, without the call (one call fewer per worker per M-step, at the barrier)
    assert answer == {**dispatcher.getrecipes(None, light=True, worker="idle"), "sync": 0}
    assert dispatcher.getjob("idle", 0.05, ["inproc", 0], session=idle.session) is None  # current: no sync


def test_a_workers_report_brings_its_next_job_or_the_m_step_to_apply(net, dispatcher):
    import threading

    from distlda.core.mstep import plan_mstep

    idle = _Vanishing()
    net.serve("inproc:idle", idle, worker="idle")
    assert dispatcher.initialize(**PARAMS) == 1
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    assert dispatcher.putjobs([_job("b1", n, [[(1, 1.0)]]) for n in range(2)], 1.0) == 2
    here = ["inproc", 0]
    assert dispatcher.getjob("idle", 0.05, here, session=idle.session)["job"] == 0
    answer = dispatcher.finishjob("idle", {"batch": "b1", "job": 0}, 0.05, here, session=idle.session)
    assert answer["taken"] and answer["next"]["job"] == 1 and answer["next"]["settings"]["version"] == 0
    # the report of the batch's last job waits for the M-step the client records, and brings its recipe
    reports: list = []
    last = threading.Thread(target=lambda: reports.append(
        dispatcher.finishjob("idle", {"batch": "b1", "job": 1}, 5.0, here, session=idle.session)))
    last.start()
    plan = plan_mstep(1.0, 10.0, 2, False, False).to_dict()
    for _ in range(40):
        state = dispatcher.getstate(0.5, gammas=False, announce={"version": 1, "plan": plan, "jobs": 2})
        if state is not None:
            break
    last.join(10.0)
    assert state["recorded"] and reports[0]["taken"]
    sync = reports[0]["next"]
    assert sync["sync"] == 1 and [recipe["version"] for recipe in sync["recipes"]] == [1]
    assert dispatcher.finishjob("idle", {"batch": "b0", "job": 0}, 0.05, here, session=idle.session)["taken"] is False
    with pytest.raises(WireError, match="finishjob: wait"):  # refused before the report is taken
        dispatcher.finishjob("idle", {"batch": "b1", "job": 1}, -1.0, here, session=idle.session)


def test_the_client_puts_a_batch_of_more_jobs_than_one_call_carries(net):
    from distlda.cluster.client import DistributedEStep
    from distlda.cluster.wire import MAX_JOBS_PER_CALL

    big = Dispatcher(maxsize=2 * MAX_JOBS_PER_CALL, ns_conf={"host": "127.0.0.1", "port": 9, "broadcast": False},
                     heartbeat=0.05, ping_timeout=0.5, transport=net)
    big.uri = DISPATCHER
    net.serve(DISPATCHER, big)
    idle = _Vanishing()
    net.serve("inproc:idle", idle, worker="idle")
    try:
        assert big.initialize(**PARAMS) == 1
        big.setbase(_base())
        _batch(big, "b1")
        client = DistributedEStep(net.proxy(DISPATCHER), 1, lambda: None, lambda *arrays: None)
        client._unsent = [{"batch": "b1", "job": n, "pass": 0, "docs": 1, "ref": {"first": n, "last": n + 1}}
                          for n in range(MAX_JOBS_PER_CALL + 5)]  # batch mode over a long corpus
        client._put_unsent()
        assert big.status()["jobs_queued"] == MAX_JOBS_PER_CALL + 5 and client._unsent == []
    finally:
        big.exit()


def test_remote_calls_leave_no_connection_to_the_dispatcher_open(net, dispatcher):
    # Pyro serves each call on a pooled thread that outlives the call: a proxy of the dispatcher left in such a
    # thread kept a connection, and with it a thread of the dispatcher, open (the soak test's thread growth)
    worker = _add_worker(net, "w0")
    dispatcher.initialize(**PARAMS)
    dispatcher.setbase(_base())
    answered, leave = [], threading.Event()

    def pooled_thread() -> None:
        answered.append(worker.getmodel("another-run", 0))  # a replica of another run: it asks the dispatcher
        leave.wait(10.0)

    threads = [threading.Thread(target=pooled_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(answered) == 3, timeout=10.0, what="three getmodel answers")
        assert answered == [{"version": None}] * 3
        assert net.still_open().count(DISPATCHER) <= 1  # the job loop's own proxy, and no other
    finally:
        leave.set()
        for thread in threads:
            thread.join()


def test_worker_parameters_and_batch_states_are_checked(net, dispatcher):
    worker = _add_worker(net, "w0")
    with pytest.raises(WireError, match=r"initialize: missing model parameters \['num_terms'\]"):
        worker.initialize("w0", DISPATCHER, **{k: v for k, v in PARAMS.items() if k != "num_terms"})
    with pytest.raises(WireError, match="initialize: dtype must be float32 or float64"):
        worker.initialize("w0", DISPATCHER, **{**PARAMS, "dtype": "int8"})
    with pytest.raises(WireError, match="setbase: a base is a dict with lineage, version"):
        dispatcher.setbase({"lineage": "x", "version": 0})
    with pytest.raises(WireError, match="reset: state must be a dict with a 'batch' id and a 'version'"):
        dispatcher.reset({"batch": "b1"})


@given(workers=st.integers(1, 64), chunks=st.integers(1, 64))
def test_a_batch_is_cut_into_whole_chunks_or_few_jobs_that_keep_every_worker_busy(workers, chunks):
    parts = jobs_per_chunk(workers, chunks)
    if chunks % workers == 0:  # whole chunks, as many for every worker: the reduce-scatter applies
        assert parts == 1
        return
    jobs = parts * chunks
    assert jobs >= 2 * workers  # at least two per worker: no worker waits behind a slow one with nothing to do
    assert 1 <= parts <= 2 * workers  # never more than the old cut of every chunk into two jobs per worker
    # the batch's jobs share evenly among the workers, unless that would need more than the old cut
    assert jobs % workers == 0 or parts == 2 * workers
    # and it is the fewest that do both: every smaller cut with two jobs per worker leaves some worker short
    assert all(p * chunks % workers for p in range(max(1, -(-2 * workers // chunks)), parts))


def test_a_batch_of_eight_chunks_on_eight_workers_is_eight_whole_chunks_not_128_jobs():
    assert jobs_per_chunk(8, 8) == 1
    assert jobs_per_chunk(4, 8) == 1
    assert jobs_per_chunk(3, 8) * 8 == 24  # 8 each: 8 jobs (one per chunk) would leave the third worker 2 of 3
    assert jobs_per_chunk(2, None) == 4  # chunks per batch unknown: two jobs per worker from every chunk


def test_a_worker_exposes_its_remote_calls_and_nothing_else():
    # what a peer or dispatcher holding the key can call on a worker (docs/distributed.md lists these); helpers
    # such as the kernels' warm-up or the bulk channel's calls stay private
    from Pyro5.server import _get_exposed_members

    exposed = _get_exposed_members(Worker(threads=1, transport=InProcess()))
    assert set(exposed["methods"]) == {
        "initialize", "requestjob", "processjob", "getstate", "reset", "ping", "exit", "getmodel", "getmodelpiece",
        "getgamma", "getpartials", "getsums", "bulkaddress", "can_read"}, exposed["methods"]
