"""The Dask backend on a real LocalCluster of worker processes (and a scheduler in its own process)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from conftest import random_docs

from distlda.dask.connect import dask_missing, parse_spec

MISSING = dask_missing()
pytestmark = [pytest.mark.distributed,
              pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]

V = 60
DOCS = random_docs(np.random.default_rng(7), 400, V, max_len=20)
"""Eight mini-batches of 50 documents per pass."""
VOCAB = {i: f"w{i}" for i in range(V)}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def local():
    return _train(DOCS)


def _train(corpus, **kwargs):
    from distlda.models import LdaModel

    params = dict(id2word=VOCAB, num_topics=4, chunksize=50, passes=2, random_state=11, eval_every=0,
                  alpha="auto")
    params.update(kwargs)
    model = LdaModel(None, **params)  # built without the corpus, as the tests below that train with update()
    model.update(corpus)
    return model


def _assert_same(remote, local):
    """Bitwise the same model: statistics, exp(E[log β]), both priors, and the learning-rate counter."""
    for read in (lambda m: m.state.sstats, lambda m: m.expElogbeta, lambda m: m.alpha, lambda m: m.eta):
        np.testing.assert_array_equal(read(remote), read(local))
    assert remote.num_updates == local.num_updates


def _scale(client, n):
    client.cluster.scale(n)
    client.wait_for_workers(n, timeout=60)


@pytest.mark.slow
def test_same_model_as_local_with_1_2_3_workers(client, local, monkeypatch):
    from distlda.dask import backend

    monkeypatch.setattr(backend, "REBASE_EVERY", 5)  # with groups of 2, the 16 M-steps cross new bases
    monkeypatch.setattr(backend, "BATCHES_PER_TASK", 2)
    for n in (1, 2, 3):
        _scale(client, n)
        remote = _train(DOCS, distributed=client)
        assert remote.numworkers == n
        _assert_same(remote, local)
        assert remote.training_stats["msteps"] == 16


def test_gamma_is_pushed_to_the_next_batch_not_scheduled(client, local, monkeypatch):
    """A batch's tasks take the previous batch's γ from their worker's inbox (pushed there by its tasks), so in
    Dask's graph they depend on no other E-step task: each reaches its worker, queued, before the previous batch
    ends, and the scheduler is off the path from one batch to the next."""
    from distlda.dask import backend
    from distlda.models import LdaModel

    monkeypatch.setattr(backend, "BATCHES_PER_TASK", 2)  # four groups in a pass: each one's tasks are looked at
    _scale(client, 2)
    graphs = []

    def estep_inputs(dask_scheduler):
        return {str(key): [str(d.key) for d in task.dependencies] for key, task in dask_scheduler.tasks.items()
                if "distlda-estep" in str(key)}

    def look(run):
        if run.pass_ == 0:  # the first pass has no sync (after one, a task carries the recipes since the base)
            graphs.append(client.run_on_scheduler(estep_inputs))

    model = LdaModel(None, id2word=VOCAB, num_topics=4, chunksize=50, passes=2, random_state=11, eval_every=0,
                     alpha="auto", distributed=client)
    model.update(DOCS, on_mstep=look)
    _assert_same(model, local)
    inputs = {key: deps for graph in graphs for key, deps in graph.items()}
    # every group of the pass seen (8 batches, 4 groups), with both workers' tasks
    assert len(inputs) >= 2 * 4
    assert not [key for key, deps in inputs.items() if any("distlda-estep" in d for d in deps)]


def _in_thread(call, timeout: float = 120.0):
    """``call()``'s result, or its exception, from a thread given ``timeout`` seconds (a hang fails the test)."""
    import threading

    done: list = []

    def run() -> None:
        try:
            done.append(call())
        except BaseException as exc:  # noqa: BLE001 - reported below
            done.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=timeout)
    assert done, f"did not end in {timeout:.0f} s"
    assert not isinstance(done[0], BaseException), repr(done[0])
    return done[0]


def test_results_slower_than_a_poll_are_still_taken(client, local, monkeypatch):
    """The client takes a group's γ in one transfer, and looks at the cluster every poll while it moves: on a slow
    link (1 Gbit/s x 0.2 of the scaled-down hosts: 25 MB of γ per group, about a second) a transfer cut off at
    every poll was started again forever. Here every transfer is longer than a poll."""
    from distlda.dask import calls

    _scale(client, 2)
    monkeypatch.setattr(calls, "POLL", 0.0002)
    _assert_same(_in_thread(lambda: _train(DOCS, distributed=client)), local)


@pytest.mark.slow
def test_pushes_refused_both_ways_restart_instead_of_hanging(client, local):
    """Each worker refuses the first γ pushed to it: neither gets the other's piece, and each task must notice its
    own push was refused while it waits (not after), so that the client starts the replicas again from a base."""
    _scale(client, 2)

    def refuse_once(dask_worker):
        from distlda.dask import exchange

        exchange.install_inbox(dask_worker)
        taking = dask_worker.handlers[exchange.HANDLER]

        def refuse(**message):
            dask_worker.handlers[exchange.HANDLER] = taking
            return "refused"

        dask_worker.handlers[exchange.HANDLER] = refuse
        return True

    assert all(client.run(refuse_once).values())
    _assert_same(_in_thread(lambda: _train(DOCS, distributed=client)), local)


@pytest.mark.slow
def test_a_slower_worker_s_shares_are_fitted_by_its_peer(client, local):
    """Work sharing: the second worker fits its first two shares of each batch and, before its second, waits until
    its peer has taken the others (which the peer does once it has fitted its own); the model is the local one."""
    _scale(client, 2)

    def hold_back(dask_worker):
        from distlda.dask import exchange, replicas

        fit = replicas.__dict__.setdefault("_unheld_fit_share", replicas._fit_share)

        def held_fit(replica, share, batch, docs):
            workers = batch.get("workers") or []
            if batch.get("attempt") is not None and workers.index(dask_worker.address) == 1:
                mine = replicas.own_shares(batch, 1)

                def all_claimed():
                    return any(key[0] == dask_worker.address and key[2] == batch["attempt"] and set(mine) <= taken
                               for key, taken in exchange._CLAIMED.items())

                if share == mine.start + 1:
                    with exchange._INBOX_COND:
                        exchange._INBOX_COND.wait_for(all_claimed, timeout=30)
            return fit(replica, share, batch, docs)

        replicas._fit_share = held_fit
        return True

    def let_go(dask_worker):
        from distlda.dask import replicas

        replicas._fit_share = replicas.__dict__.pop("_unheld_fit_share", replicas._fit_share)
        return True

    assert all(client.run(hold_back).values())
    try:
        model = _in_thread(lambda: _train(DOCS, distributed=client))
    finally:
        client.run(let_go)
    _assert_same(model, local)
    assert model.training_stats["msteps"] == 16
    assert model.training_stats["shares_taken"] >= 2 * 16


def test_binary_corpus_travels_as_document_ranges(client, tmp_path):
    from distlda.corpora.binary import BinaryCorpus

    _scale(client, 2)
    BinaryCorpus.serialize(tmp_path / "corpus", DOCS, num_terms=V)
    corpus = BinaryCorpus(tmp_path / "corpus")
    remote = _train(corpus, distributed=client, passes=1)
    _assert_same(remote, _train(corpus, passes=1))
    # only the base crossed to the workers: K x V statistics, eta and alpha, no document
    assert remote.training_stats["bytes_sent"] == (4 * V + V + 4) * 4


@pytest.mark.slow
def test_killed_worker_gives_the_same_model(client, local):
    _scale(client, 2)
    killed = []

    def kill_one(run):
        if run.msteps == 3 and not killed:
            pids = client.run(os.getpid)
            address = sorted(pids)[0]
            os.kill(pids[address], signal.SIGKILL)  # the worker process itself; its nanny starts a new one
            killed.append(address)

    from distlda.models import LdaModel

    model = LdaModel(None, id2word=VOCAB, num_topics=4, chunksize=50, passes=2, random_state=11, eval_every=0,
                     alpha="auto", distributed=client)
    model.update(DOCS, on_mstep=kill_one)
    assert killed
    _assert_same(model, local)


@pytest.mark.slow
@pytest.mark.parametrize("kill", [False, True])
def test_rebases_while_the_workers_go_on(client, local, caplog, monkeypatch, kill):
    """A new base every three mini-batches: the first task of the group after it returns the model it starts from
    with its γ, and that model is the base of the groups after the next; the workers are never drained for it.
    The same model, also when a worker is killed between two rebases."""
    from distlda.dask import backend
    from distlda.models import LdaModel

    monkeypatch.setattr(backend, "REBASE_EVERY", 3)
    monkeypatch.setattr(backend, "BATCHES_PER_TASK", 2)
    _scale(client, 2)
    killed = []

    def kill_one(run):
        if kill and run.msteps == 9 and not killed:
            pids = client.run(os.getpid)
            address = sorted(pids)[-1]
            os.kill(pids[address], signal.SIGKILL)
            killed.append(address)

    model = LdaModel(None, id2word=VOCAB, num_topics=4, chunksize=50, passes=2, random_state=11, eval_every=0,
                     alpha="auto", distributed=client)
    with caplog.at_level("INFO", logger="distlda.dask.backend"):
        _in_thread(lambda: model.update(DOCS, on_mstep=kill_one))
    _assert_same(model, local)
    assert len(killed) == kill
    assert caplog.text.count("new base at M-step") >= 2
    if not kill:  # (a worker that rejoins is taken in by a sync and a base from the client)
        assert model.training_stats["syncs"] <= 2  # (the end of each pass) no sync for a rebase


@pytest.mark.slow
def test_replica_lost_unseen_gives_the_same_model(client, local, caplog, monkeypatch):
    """A task carries only the recipes its worker's replica lacks: a replica gone behind the client's back (a worker
    replaced under its address) refuses the next task, and the run goes on from a new base, unchanged."""
    from distlda.dask import backend
    from distlda.models import LdaModel

    monkeypatch.setattr(backend, "BATCHES_PER_TASK", 4)  # two groups in a pass: the replicas go between them
    _scale(client, 2)
    dropped = []

    def drop_replicas(run):
        if run.msteps == 4 and not dropped:  # the first group (1..4) was submitted: its tasks make the replicas
            async def drop():  # (on the worker's event loop, which must go on to start the tasks)
                import asyncio

                from distlda.dask import replicas

                deadline = time.monotonic() + 60
                while not replicas._HOLDERS and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                count = len(replicas._HOLDERS)
                replicas._HOLDERS.clear()
                return count

            dropped.append(sum(client.run(drop).values()))

    model = LdaModel(None, id2word=VOCAB, num_topics=4, chunksize=50, passes=2, random_state=11, eval_every=0,
                     alpha="auto", distributed=client)
    with caplog.at_level("WARNING", logger="distlda.dask.backend"):
        model.update(DOCS, on_mstep=drop_replicas)
    assert dropped == [2]
    assert "the replicas start again" in caplog.text
    _assert_same(model, local)


def test_bad_input_refused_before_anything_is_sent(client, local):
    from distlda.dask.backend import DaskClusterError
    from distlda.models import LdaModel

    model = LdaModel(None, id2word=VOCAB, num_topics=4, random_state=11, distributed=client)
    before = model.state.sstats.copy()
    with pytest.raises(ValueError, match="term id"):
        model.update([[(0, 1.0)], [(V + 3, 1.0)]] + DOCS[:10])
    np.testing.assert_array_equal(model.state.sstats, before)
    assert model.training_stats.get("bytes_sent", 0) == 0  # (refused before a run starts: no statistics at all)
    with pytest.raises(TypeError, match="distributed.Client"):
        model.connect_cluster(dask_client="tcp://127.0.0.1:8786")
    from distributed import Client

    closed = Client(client.scheduler.address)
    closed.close()
    with pytest.raises(DaskClusterError, match="closed"):
        LdaModel(DOCS, id2word=VOCAB, num_topics=4, distributed=closed)


def test_shares_cover_a_batch_once_in_order_and_touch_at_most_two_chunks():
    from distlda.dask.replicas import share_pieces

    for sizes in ([2000], [2000] * 8, [5, 1, 7], [1] * 9, [3, 0, 4]):
        for shares in (1, 2, 4, 8, 12, 32):
            seen = []
            for number in range(shares):
                pieces = share_pieces(sizes, shares, number)
                if all(size >= -(-sum(sizes) // shares) for size in sizes):  # chunks no shorter than a share
                    assert len(pieces) <= 2
                seen += [(chunk, doc) for chunk, lo, hi in pieces for doc in range(lo, hi)]
            assert seen == [(chunk, doc) for chunk, size in enumerate(sizes) for doc in range(size)]


def test_a_forgotten_attempt_gives_no_share_away():
    from distlda.dask import exchange

    address, token = "tcp://test:1", "forget-test"
    assert exchange.claim(address, token, 3, range(0, 4), last=True) == 3
    assert exchange.claim(address, token, 3, range(0, 4)) == 0
    exchange.forget_inbox(address, token, up_to=3)
    assert exchange.claim(address, token, 3, range(0, 4), last=True) is None  # a late request for a replayed batch
    assert exchange.claim(address, token, 4, range(0, 4), last=True) == 3
    exchange.forget_inbox(None, token)
    assert exchange.claim(address, token, 3, range(0, 4)) == 0  # (a run's marks go with it)
    exchange.forget_inbox(None, token)


def test_spec_parsing():
    assert parse_spec("local:3") == ("local", 3)
    assert parse_spec("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "10.0.0.1:8786", "local:x"):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.fixture
def own_scheduler(tmp_path):
    """A scheduler and one worker, each in its own process started here (so the scheduler can be killed)."""
    import subprocess
    import sys

    from distributed import Client

    file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline and scheduler.poll() is None:
            time.sleep(0.05)  # waits for the scheduler's file
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
                                   "--nthreads", "1", "--no-nanny", "--death-timeout", "5", "--no-dashboard"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with Client(scheduler_file=str(file), timeout=30) as c:
            c.wait_for_workers(1, timeout=60)
            yield c, scheduler
    finally:
        for process in (worker, scheduler):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("group, kept", [(1, 5), (4, 4)])
def test_lost_scheduler_named_and_completed_msteps_kept(own_scheduler, local, tmp_path, monkeypatch, group, kept):
    from distlda.dask import backend
    from distlda.dask.backend import SchedulerLost
    from distlda.models import LdaModel

    monkeypatch.setattr(backend, "BATCHES_PER_TASK", group)
    c, scheduler = own_scheduler
    address = c.scheduler.address
    ckpt = tmp_path / "run.ckpt"
    model = LdaModel(None, id2word=VOCAB, num_topics=4, chunksize=50, passes=2, random_state=11, eval_every=0,
                     alpha="auto", distributed=c, checkpoint_path=str(ckpt), checkpoint_every=4)

    def kill_scheduler(run):
        if run.msteps == 6:
            os.kill(scheduler.pid, signal.SIGKILL)

    started = time.monotonic()
    with pytest.raises(SchedulerLost, match=address):
        model.update(DOCS, on_mstep=kill_scheduler)
    # (a gather tried again after the scheduler died retried its connection for Dask's connect timeout, 30 s)
    assert time.monotonic() - started < 20
    # every M-step whose γ had reached the client, replayed there; the group in flight (its γ is taken while the
    # next group runs) is redone by resume(): one batch per task, M-step 6 is lost; four, the group of 5..8 (the
    # checkpoint's sync at M-step 4 took the γ of the group before)
    assert model._training.msteps == kept
    resumed = LdaModel.load(str(ckpt))  # the checkpoint of M-step 4
    assert resumed._training.msteps == 4
    resumed.checkpoint_path = None
    resumed.resume(DOCS)
    _assert_same(resumed, local)
    model.dask_client, model.distributed = None, False  # finish on this machine
    model.resume(DOCS)
    _assert_same(model, local)



def test_a_scheduler_port_that_refuses_connections_is_taken_for_lost():
    # a ping that times out says "busy" unless the port refuses a plain connection: a client whose event loop has not
    # yet seen the scheduler's connection drop (a loaded machine) would otherwise retry its gather for Dask's 30 s
    import socket

    from distlda.dask.calls import SchedulerCalls

    calls = SchedulerCalls()
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        calls.address = f"tcp://127.0.0.1:{port}"
        assert calls._port_open()
    assert not calls._port_open()  # closed now: refused
    calls.address = "inproc://10.0.0.1/123/1"
    assert calls._port_open()  # cannot be told: taken as there
