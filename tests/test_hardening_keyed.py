"""Inside the trust boundary, one mistake must not sink a cluster (issue 14, "With the key"), and a local
cluster's processes die with the process that started them.

The in-process tests run a dispatcher and workers over the fake transport of test_cluster_inprocess.py; the
others start real processes on 127.0.0.1 and stop every one of them by PID.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from cluster_helpers import alive, stop, wait_until
from conftest import random_docs
import distlda.cluster.limits as limits_module
from Pyro5 import config as pyro_config
from test_cluster_inprocess import DISPATCHER, PARAMS, _add_worker, _base, _batch, _collect, _job, _Vanishing
from test_cluster_inprocess import dispatcher, net  # noqa: F401 - fixtures

from distlda.cluster.errors import ClusterBusy, JobError, ModelTooLarge, SessionRefused, WireError
from distlda.cluster.local import LocalCluster
from distlda.cluster.wire import encode_array
from distlda.models import LdaModel


def test_a_worker_obeys_only_the_dispatcher_that_enlisted_it(net, dispatcher):  # noqa: F811
    worker = _add_worker(net, "w0")
    assert dispatcher.initialize(**PARAMS) == 1
    for call in (lambda: worker.initialize("w0", "inproc:other", **PARAMS),
                 lambda: worker.initialize("w0", "inproc:other", session="f" * 32, **PARAMS)):
        with pytest.raises(SessionRefused, match=f"worker w0 serves the dispatcher at {DISPATCHER}, which still"):
            call()
    with pytest.raises(SessionRefused, match=f"reset: worker w0 serves the dispatcher at {DISPATCHER}"):
        worker.reset({"batch": "b1", "version": 0})
    with pytest.raises(SessionRefused, match=f"processjob: worker w0 serves the dispatcher at {DISPATCHER}"):
        worker.processjob(_job("b1", 0, [[(1, 1.0)]]), session="wrong")
    worker.exit()  # refused (a oneway call: logged)
    assert worker.dispatcher_uri == DISPATCHER and not worker._stop.is_set()
    # it still serves its dispatcher
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    assert dispatcher.putjob(_job("b1", 0, [[(1, 2.0)]]), 1.0)
    assert _collect(dispatcher)["results"][0]["job"] == 0 and worker.getgamma("b1", [0])[0][0] == 0
    # once its dispatcher stops answering, another may enlist it
    net.down.add(DISPATCHER)
    assert worker.initialize("w0", "inproc:other", session="e" * 32, **PARAMS)
    assert worker.dispatcher_uri == "inproc:other"


@pytest.mark.slow  # its dispatcher waits out a worker's 5 s job at teardown
def test_model_and_job_sizes_are_checked_before_allocating(net, dispatcher, monkeypatch):  # noqa: F811
    _add_worker(net, "w0")
    with pytest.raises(WireError, match="num_topics must be a whole number from 1 to 100,000, got 1000000"):
        dispatcher.initialize(**{**PARAMS, "num_topics": 10**6})
    with pytest.raises(WireError, match="gamma_threshold must be a finite number >= 0, got nan"):
        dispatcher.initialize(**{**PARAMS, "gamma_threshold": math.nan})
    # 50,000 topics × 2**31-1 terms: 400 TB of statistics, refused by the dispatcher (which would hold the base)
    # with both sizes, before any worker is asked (any size travels, in pieces: memory is the limit)
    with pytest.raises(ModelTooLarge, match=r"the dispatcher would hold a base of 819,200,000 MiB .* and can use "):
        dispatcher.initialize(**{**PARAMS, "num_topics": 50_000, "num_terms": 2**31 - 1})
    # 50,000 topics × 100 terms fit the dispatcher, but five such arrays do not fit the worker's 64 MiB
    monkeypatch.setattr(limits_module, "available_memory", lambda: 64 * 1024 * 1024)
    with pytest.raises(ModelTooLarge, match=r"a model of 50,000 topics × 100 terms in float32 needs 5 arrays of 19 "
                                            r"MiB, 95 MiB in all, and this worker can use 64 MiB"):
        dispatcher.initialize(**{**PARAMS, "num_topics": 50_000, "num_terms": 100})
    monkeypatch.undo()
    # a model that fits, and a 5 KB job whose γ (640 documents × 50,000 topics, 122 MiB) cannot be an answer
    monkeypatch.setattr(pyro_config, "MAX_MESSAGE_SIZE", 16 * 1024 * 1024)
    k, v = 50_000, 10
    assert dispatcher.initialize(**{**PARAMS, "num_topics": k}) == 1
    dispatcher.setbase({"lineage": "inproc", "version": 0,
                        "sstats_wm": encode_array(np.ones((v, k), np.float32)),
                        "eta": encode_array(np.full(v, 0.1, np.float32)),
                        "alpha": encode_array(np.full(k, 0.3, np.float32))})
    _batch(dispatcher, "b1")
    job = _job("b1", 0, [[]] * 640)
    assert len(job["chunk"]["indptr"]["data"]) < 6000
    tracemalloc.start()
    try:
        assert dispatcher.putjob(job, 1.0)
        with pytest.raises(JobError, match=r"job 0 \(documents 0-639\): γ of 640 documents × 50,000 topics takes "
                                           r"122 MiB, more than this worker's memory or the largest message"):
            _collect(dispatcher)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024, f"the refused job made the worker allocate {peak / 2**20:.0f} MiB"


def _returns_within(seconds: float, call) -> Exception | None:
    """Run ``call`` on a thread; the exception it raised, or AssertionError if it did not return in time."""
    outcome: list = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"the call did not return within {seconds}s")
    return outcome[0]


def test_remote_arguments_are_checked_and_jobs_go_only_to_their_worker(net, dispatcher):  # noqa: F811
    a, b = _Vanishing(), _Vanishing()
    net.serve("inproc:a", a, worker="a")
    net.serve("inproc:b", b, worker="b")
    assert dispatcher.initialize(**PARAMS) == 2
    dispatcher.setbase(_base())
    _batch(dispatcher, "b1")
    for bad in (math.nan, math.inf, -1.0, 11.0, "5", True, None):
        for call in (lambda: dispatcher.getjob("a", bad, session=a.session),
                     lambda: dispatcher.putjob(_job("b1", 0, [[(1, 1.0)]]), bad),
                     lambda: dispatcher.getstate(bad)):
            error = _returns_within(5.0, call)
            assert isinstance(error, WireError) and "wait must be a number of seconds from 0 to 10" in str(error), \
                (bad, error)
    with pytest.raises(WireError, match="getjob: the worker id must be a string"):
        dispatcher.getjob(["a"], 0.1, session=a.session)
    assert dispatcher.putjob(_job("b1", 0, [[(1, 1.0)]]), 1.0)
    # worker b (or anyone) cannot take a's jobs, nor report jobs under a name that is not a member
    for session in (None, b.session):
        with pytest.raises(SessionRefused, match="getjob: the call for worker a did not carry its session token"):
            dispatcher.getjob("a", 0.1, session=session)
    assert not dispatcher.jobdone("stranger", {"job": 0, "batch": "b1", "gamma": encode_array(np.ones((1, 3)))})
    assert dispatcher.status()["jobs_queued"] == 1
    assert dispatcher.getjob("a", 1.0, session=a.session)["job"] == 0


# ------------------------------------------------------------------------------------------- real processes

V = 60
VOCAB = {i: f"w{i}" for i in range(V)}
TRAIN = dict(num_topics=5, chunksize=40, passes=12, random_state=11, eval_every=0)

_CLIENT_A = """
import json, sys
from distlda.models import LdaModel
docs = [[tuple(p) for p in d] for d in json.load(open(sys.argv[1]))]
model = LdaModel(docs, id2word={i: f"w{i}" for i in range(%d)}, distributed=True, ns_conf=json.loads(sys.argv[2]),
                 **json.loads(sys.argv[3]))
model.save(sys.argv[4])
""" % V


@pytest.mark.slow
@pytest.mark.distributed
def test_a_second_client_is_refused_and_the_first_trains_as_locally(tmp_path):
    docs = random_docs(np.random.default_rng(3), 1200, V, max_len=20)
    (tmp_path / "docs.json").write_text(json.dumps([[list(p) for p in d] for d in docs]))
    with LocalCluster(workers=1, threads_per_worker=1, log_dir=str(tmp_path)) as cluster:
        log = open(tmp_path / "client_a.log", "wb")
        first = subprocess.Popen([sys.executable, "-c", _CLIENT_A, str(tmp_path / "docs.json"),
                                  json.dumps(cluster.ns_conf), json.dumps(TRAIN), str(tmp_path / "a.model")],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _jobs_done(cluster) > 0 or first.poll() is not None, timeout=120.0,
                       what="the first client training")
            assert first.poll() is None, (tmp_path / "client_a.log").read_text()
            with pytest.raises(ClusterBusy, match=r"cluster busy: training for client 127\.0\.0\.1:\d+ since "):
                LdaModel(docs, id2word=VOCAB, distributed=True, ns_conf=cluster.ns_conf, **TRAIN)
            assert first.poll() is None, "the first client finished before the second was refused: train longer"
            assert first.wait(timeout=300) == 0, (tmp_path / "client_a.log").read_text()
        finally:
            stop(first)
            log.close()
    remote = LdaModel.load(str(tmp_path / "a.model"))
    local = LdaModel(docs, id2word=VOCAB, **TRAIN)
    np.testing.assert_array_equal(remote.state.sstats, local.state.sstats)
    np.testing.assert_array_equal(remote.expElogbeta, local.expElogbeta)
    assert remote.num_updates == local.num_updates


def _jobs_done(cluster: LocalCluster) -> int:
    proxy = cluster._dispatcher(2.0)
    if proxy is None:
        return 0
    with proxy:
        return int(proxy.status()["jobs_done"])


def _children(pid: int) -> list[int]:
    """PIDs of the children of ``pid``, from /proc."""
    found: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(word) for word in path.read_text().split()]
    return sorted(found)


def _start_local_cluster(tmp_path) -> tuple[subprocess.Popen, list[int]]:
    """``python -m distlda.cluster --workers 2``, and the PIDs of its four processes, as /proc lists them and as
    it prints them."""
    parent = subprocess.Popen([sys.executable, "-m", "distlda.cluster", "--workers", "2", "--threads", "1"],
                              stdout=subprocess.PIPE, stderr=open(tmp_path / "cluster.err", "wb"), text=True,
                              start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(parent.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(line.startswith("press Ctrl-C") for line in lines) or parent.poll() is not None,
                   timeout=120.0, what="the cluster up")
        assert parent.poll() is None
    except AssertionError:
        stop(parent)
        raise AssertionError((tmp_path / "cluster.err").read_text())
    pids = _children(parent.pid)
    assert len(pids) == 4, pids
    printed = [line for line in lines if line.startswith("pids:")]
    assert not printed or sorted(int(w.strip(",")) for w in printed[0].split() if w.strip(",").isdigit()) == pids
    return parent, pids


def _kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP])
def test_the_clusters_processes_die_with_the_command(tmp_path, signum):
    parent, children = _start_local_cluster(tmp_path)
    try:
        assert all(alive(pid) for pid in children)
        started = time.monotonic()
        parent.send_signal(signum)
        parent.wait(timeout=60)
        wait_until(lambda: not any(alive(pid) for pid in children), timeout=30.0,
                   what=f"every process of the cluster gone after {signal.Signals(signum).name}")
        assert time.monotonic() - started < 30.0
    finally:
        stop(parent)
        _kill_leftovers(children)
