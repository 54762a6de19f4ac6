"""Faults with real processes on 127.0.0.1, killed with real signals: the run survives or fails clearly."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from cluster_helpers import wait_until
from conftest import random_docs

from distlda.cluster.auth import KeyedProxy
from distlda.cluster.errors import DispatcherNotFound, NoWorkersError
from distlda.cluster.local import LocalCluster
from distlda.cluster.naming import DISPATCHER_NAME, NsConf, lookup_uri
from distlda.models import LdaModel

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

V = 400
VOCAB = {i: f"w{i}" for i in range(V)}


@pytest.fixture(scope="module")
def docs():
    return random_docs(np.random.default_rng(21), 2400, V, max_len=60)


def _params(**extra):
    params = dict(id2word=VOCAB, num_topics=40, chunksize=300, passes=2, random_state=4, eval_every=0)
    params.update(extra)
    return params


def _dispatcher(cluster) -> KeyedProxy:
    uri = lookup_uri(NsConf.from_mapping(cluster.ns_conf), DISPATCHER_NAME)
    return KeyedProxy(uri, cluster.hmac_key, timeout=10.0)


class _Trainer(threading.Thread):
    """Runs model.update(docs) in the background and keeps its outcome."""

    def __init__(self, model, docs, on_mstep=None):
        super().__init__(daemon=True)
        self.model, self.docs, self.error, self.seconds = model, docs, None, None
        self.on_mstep = on_mstep

    def run(self):
        started = time.monotonic()
        try:
            self.model.update(self.docs, on_mstep=self.on_mstep)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc
        self.seconds = time.monotonic() - started


@pytest.mark.parametrize("update_every", [1, 3], ids=["replayed", "summed-by-rows"])
def test_worker_killed_mid_batch_gives_the_undisturbed_model(docs, update_every):
    reference = LdaModel(docs, **_params(update_every=update_every))
    with LocalCluster(workers=3, threads_per_worker=1) as cluster:
        model = LdaModel(None, distributed=True, ns_conf=cluster.ns_conf, **_params(update_every=update_every))
        trainer = _Trainer(model, docs)
        trainer.start()
        watcher = _dispatcher(cluster)
        victim_name = None
        deadline = time.monotonic() + 120
        while victim_name is None and time.monotonic() < deadline and trainer.is_alive():
            status = watcher.status()
            busy = [w for w in status["workers"] if w["jobs_in_hand"] > 0]
            if status["jobs_done"] >= 6 and busy:
                victim_name = busy[0]["name"]
            time.sleep(0.002)
        assert victim_name is not None, "training ended before a worker could be killed"
        victim = _pid_of(cluster, victim_name)
        os.kill(victim, signal.SIGKILL)
        trainer.join(timeout=300)
        assert not trainer.is_alive() and trainer.error is None, trainer.error
        np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)
        assert model.state.numdocs == reference.state.numdocs == len(docs)
        assert model.num_updates == reference.num_updates
        # noticed within a few seconds (two missed heartbeats), logged at WARNING with the worker's name
        wait_until(lambda: victim_name not in [w["name"] for w in watcher.status()["workers"]], timeout=10,
                   what="the dispatcher to notice the lost worker")
        log = (cluster.log_dir / "dispatcher.log").read_text()
        assert "WARNING distlda.cluster.membership" in log and f"lost worker {victim_name}" in log
        if update_every > 1:  # the survivors summed M-steps by rows (the others, around the loss, from γ)
            scattered = 0
            for row in watcher.status()["workers"]:
                with KeyedProxy(row["uri"], cluster.hmac_key, timeout=10.0) as worker:
                    scattered += worker.getstate()["scattered"]
            assert scattered > 0


def test_worker_joining_during_training_is_used(docs):
    reference = LdaModel(docs, **_params(passes=25))
    with LocalCluster(workers=1, threads_per_worker=1) as cluster:
        model = LdaModel(None, distributed=True, ns_conf=cluster.ns_conf, **_params(passes=25))
        joined = threading.Event()

        def hold(run):  # training waits after its second M-step until the new worker is enlisted: it must join
            if run.msteps == 2:  # mid-run however fast the first M-steps went
                joined.wait(timeout=120)

        trainer = _Trainer(model, docs, on_mstep=hold)
        trainer.start()
        watcher = _dispatcher(cluster)
        wait_until(lambda: watcher.status()["jobs_done"] >= 2, what="training to start")
        cluster.add_worker()
        wait_until(lambda: len(watcher.status()["workers"]) == 2, timeout=120, what="the new worker to be enlisted")
        joined.set()
        trainer.join(timeout=300)
        assert trainer.error is None, trainer.error
        np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)
        workers = watcher.status()["workers"]
        assert len(workers) == 2 and all(w["jobs_done"] > 0 for w in workers), workers


def test_every_worker_gone_then_back(docs):
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        conf = dict(cluster.ns_conf, timeout=8.0)
        model = LdaModel(docs[:600], distributed=True, ns_conf=conf, **_params(passes=1))
        done_before = model.num_updates
        kept = model.state.sstats.copy()
        for proc in cluster.workers:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        started = time.monotonic()
        with pytest.raises(NoWorkersError, match="every worker is gone|found no worker"):  # mid-run, or at the start
            model.update(docs[600:1200])
        assert time.monotonic() - started < 8.0 + 15.0  # the bound, plus one long poll and a status call
        np.testing.assert_array_equal(model.state.sstats, kept)  # nothing lost, nothing half-applied
        assert model.num_updates == done_before
        cluster.add_worker()
        model.update(docs[600:1200])  # resumes once a worker is back
        assert model.num_updates == done_before + 600


def test_dispatcher_killed_then_restarted(docs):
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        reference = LdaModel(docs[:600], **_params(passes=1))
        model = LdaModel(None, distributed=True, ns_conf=dict(cluster.ns_conf, timeout=8.0), **_params(passes=1))
        trainer = _Trainer(model, docs[600:1800])
        model.update(docs[:600])
        np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)
        trainer.start()
        watcher = _dispatcher(cluster)
        wait_until(lambda: watcher.status()["jobs_done"] >= 1, what="the second update to start")
        os.kill(cluster.dispatcher.pid, signal.SIGKILL)
        cluster.dispatcher.wait()
        killed_at = time.monotonic()
        trainer.join(timeout=60)
        assert not trainer.is_alive()
        assert isinstance(trainer.error, DispatcherNotFound), trainer.error
        assert time.monotonic() - killed_at < 8.0 + 15.0
        kept_updates = model.num_updates
        assert 600 <= kept_updates < 1800 and kept_updates % 300 == 0  # whole M-steps only
        cluster.start_dispatcher()
        model.update(docs[1800:2400])  # a restarted dispatcher lets training go on
        assert model.num_updates == kept_updates + 600


def _reference_with_snapshots(docs, **params):
    """A local model trained on ``docs``, and its statistics after every M-step, by M-step."""
    snaps = {}
    reference = LdaModel(None, **_params(**params))
    reference.update(docs, on_mstep=lambda run: snaps.__setitem__(run.msteps, reference.state.sstats.copy()))
    return reference, snaps


def _train_and_kill(cluster, docs, passes: int, jobs_done: int, victims) -> LdaModel:
    """Train on ``cluster`` in the background, SIGKILL ``victims(cluster)`` once ``jobs_done`` jobs are done, and
    return the model once training has stopped (with the error it stopped on as ``model.stopped_by``)."""
    model = LdaModel(None, distributed=True, ns_conf=dict(cluster.ns_conf, timeout=6.0), **_params(passes=passes))
    trainer = _Trainer(model, docs)
    trainer.start()
    watcher = _dispatcher(cluster)
    wait_until(lambda: watcher.status()["jobs_done"] >= jobs_done, timeout=120, what=f"{jobs_done} jobs done")
    for proc in victims(cluster):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    trainer.join(timeout=120)
    assert not trainer.is_alive()
    model.stopped_by = trainer.error
    return model


def test_every_worker_killed_mid_run_the_client_replays_the_dispatchers_log(docs):
    # the workers applied the M-steps and are gone: the client rebuilds the model from the dispatcher's recipes
    reference, snaps = _reference_with_snapshots(docs, passes=3)
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        model = _train_and_kill(cluster, docs, 3, 30, lambda c: c.workers)
        assert isinstance(model.stopped_by, NoWorkersError), model.stopped_by
        # 4 jobs per M-step: the 30 jobs done before the kill made 7 M-steps at least (how many more the workers
        # finish before the signal lands is a matter of timing), and the model holds every one the cluster made
        msteps = model._training.msteps
        assert 30 // 4 <= msteps < 24, msteps
        np.testing.assert_array_equal(model.state.sstats, snaps[msteps])
        assert model.training_stats["syncs"] >= 1
        # the run's progress matches the model: resuming on new workers ends with the reference model
        cluster.add_worker()
        model.resume(docs)
        np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)
        assert model.num_updates == reference.num_updates


def test_dispatcher_and_workers_killed_together_the_run_goes_back_to_what_the_model_holds(docs):
    reference, snaps = _reference_with_snapshots(docs, passes=4)
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        # four jobs per M-step: past the first rebase (20 M-steps); the workers first, so none can answer
        model = _train_and_kill(cluster, docs, 4, 4 * 23, lambda c: [*c.workers, c.dispatcher])
        assert isinstance(model.stopped_by, DispatcherNotFound), model.stopped_by
        # the model is the one it took at the last rebase, and the run's progress says so
        msteps = model._training.msteps
        assert msteps >= 20 and msteps % 20 == 0, msteps
        np.testing.assert_array_equal(model.state.sstats, snaps[msteps])
        assert model.num_updates == len(docs)
        cluster.start_dispatcher()
        cluster.add_worker()
        model.resume(docs)
        np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)


def test_name_server_restart_daemons_register_again(docs):
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        os.kill(cluster.nameserver.pid, signal.SIGKILL)
        cluster.nameserver.wait()
        cluster.start_nameserver()
        conf = NsConf.from_mapping(cluster.ns_conf)
        wait_until(lambda: lookup_uri(conf, DISPATCHER_NAME) is not None and len(cluster.registered_workers()) == 2,
                   timeout=30, what="the daemons to register again")
        model = LdaModel(docs[:300], distributed=True, ns_conf=cluster.ns_conf, **_params(passes=1))
        assert model.numworkers == 2


def _pid_of(cluster, worker_name: str) -> int:
    """The PID of a worker process, from the name it printed in its log."""
    for i, proc in enumerate(cluster.workers):
        if worker_name in (cluster.log_dir / f"worker{i}.log").read_text():
            return proc.pid
    raise AssertionError(f"no worker process printed {worker_name}")
