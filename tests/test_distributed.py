"""Distributed training with real name server, worker and dispatcher processes on 127.0.0.1."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
from cluster_helpers import alive, spawn, stop, thread_count, wait_until
from conftest import random_docs

from distlda.cluster.errors import (
    DispatcherNotFound,
    JobError,
    KeyRefusedError,
    NameServerNotFound,
    NoWorkersError,
    NumericsMismatch,
)
from distlda.cluster.auth import KeyedProxy
from distlda.cluster.local import LocalCluster, free_port
from distlda.models import LdaModel
from distlda.models.callbacks import PerplexityMetric
from distlda.test.utils import common_corpus, common_dictionary

pytestmark = pytest.mark.distributed

V = 60
VOCAB = {i: f"w{i}" for i in range(V)}


@pytest.fixture(scope="module")
def docs():
    return random_docs(np.random.default_rng(7), 500, V, max_len=20)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(workers=1, threads_per_worker=1) as c:
        yield c


def _train(docs, **kwargs):
    params = dict(id2word=VOCAB, num_topics=5, chunksize=80, passes=2, random_state=11, eval_every=0)
    params.update(kwargs)
    return LdaModel(docs, **params)


def _assert_same(remote, local):
    np.testing.assert_array_equal(remote.state.sstats, local.state.sstats)
    np.testing.assert_array_equal(remote.expElogbeta, local.expElogbeta)
    np.testing.assert_array_equal(remote.alpha, local.alpha)
    np.testing.assert_array_equal(remote.eta, local.eta)
    assert remote.num_updates == local.num_updates


@pytest.mark.slow
def test_same_model_as_local_with_1_2_3_workers(cluster, docs):
    local = _train(docs)
    for n in (1, 2, 3):
        while len(cluster.workers) < n:
            cluster.add_worker()
        remote = _train(docs, distributed=True, ns_conf=cluster.ns_conf)
        assert remote.numworkers == n
        _assert_same(remote, local)
        # the workers applied the M-steps: the client rebuilt nothing and took the model from a worker
        stats = remote.training_stats
        assert stats["reduce_seconds"] == 0 and stats["syncs"] >= 1, stats
        assert stats["bytes_received"] < (stats["syncs"] + 1) * remote.state.sstats.nbytes, stats
    status = remote.dispatcher.status()
    assert len(status["workers"]) == 3
    # which workers take jobs is a matter of timing (a worker replaying M-steps takes none meanwhile)
    assert sum(w["jobs_done"] for w in status["workers"]) > 0, status
    # the workers replayed from each other's γ, not only from the dispatcher's recipes
    served = []
    for row in status["workers"]:
        with KeyedProxy(row["uri"], cluster.ns_conf.get("hmac_key")) as worker:
            served.append(worker.getstate()["gamma_served"])
    assert sum(served) > 0, served


def _worker_states(cluster, status):
    states = []
    for row in status["workers"]:
        with KeyedProxy(row["uri"], cluster.ns_conf.get("hmac_key")) as worker:
            states.append(worker.getstate())
    return states


def _short_run_states(cluster, docs, mstep):
    """The workers' states after one short run of 6 jobs on the cluster."""
    remote = _train(docs[:240], distributed=True, ns_conf=cluster.ns_conf, passes=1, chunksize=40, mstep=mstep)
    return _worker_states(cluster, remote.dispatcher.status())


@pytest.mark.slow
@pytest.mark.parametrize("mstep", ["dense", "lazy"])
def test_same_model_when_the_workers_sum_the_statistics_by_rows(docs, mstep):
    """With whole-chunk jobs (the batch's 6 chunks divide among 1, 2 and 3 workers) the workers sum each batch's
    statistics by rows between them (a reduce-scatter) instead of replaying it: still the local model, bitwise."""
    local = _train(docs, update_every=6, chunksize=40, mstep=mstep)
    with LocalCluster(workers=1, threads_per_worker=1) as cluster:
        for n in (1, 2, 3):
            while len(cluster.workers) < n:
                cluster.add_worker()
            # a worker that just started loads its kernels on its first job: short runs first, until every worker
            # has done one, so that none is still loading while the others take every job of the measured run
            # (one run of one job was not enough beside a busy core: the new worker then never got a job)
            warm: list = []

            def every_worker_took_a_job(n=n, warm=warm):  # type: ignore[no-untyped-def]
                warm[:] = _short_run_states(cluster, docs, mstep)
                return len(warm) == n and all(s["jobs_done"] > 0 for s in warm)

            wait_until(every_worker_took_a_job, timeout=180, what=f"each of {n} workers to take a job")
            # the warm-up runs scattered and served rows too: count only what the measured run adds
            before, bulk_before = (sum(s[key] for s in warm) for key in ("scattered", "bulk_served"))
            remote = _train(docs, distributed=True, ns_conf=cluster.ns_conf, update_every=6, chunksize=40,
                            mstep=mstep)
            assert remote.numworkers == n
            _assert_same(remote, local)
            states = _worker_states(cluster, remote.dispatcher.status())
            assert sum(s["scattered"] for s in states) > before, states  # not replayed from γ
            if n > 1:  # the rows moved over the workers' bulk channels (a worker that held no chunk serves none)
                assert sum(s["bulk_served"] for s in states) > bulk_before, states


def test_jobs_are_document_ranges_when_the_workers_read_the_corpus(cluster, docs, tmp_path, caplog):
    from distlda.corpora import BinaryCorpus

    BinaryCorpus.serialize(tmp_path / "corpus", docs, num_terms=V, shard_docs=170)  # ranges cross shards
    corpus = BinaryCorpus(tmp_path / "corpus")
    local = _train(corpus)
    with caplog.at_level("INFO", logger="distlda.cluster.client"):
        remote = _train(corpus, distributed=True, ns_conf=cluster.ns_conf)
    _assert_same(remote, local)
    assert "jobs are document ranges" in caplog.text
    # the client sent one base and no document (with documents shipped it would be several times more)
    state = remote.state
    assert remote.training_stats["bytes_sent"] == state.sstats.nbytes + state.eta.nbytes + remote.alpha.nbytes


@pytest.mark.parametrize("config", [
    dict(dtype=np.float64, alpha="auto", eta="auto"),
    dict(update_every=2, iterations=20, gamma_threshold=1e-4, alpha="asymmetric"),
    dict(update_every=0, passes=3),
])
def test_every_parameter_reaches_the_workers(cluster, docs, config):
    local = _train(docs, **config)
    remote = _train(docs, distributed=True, ns_conf=cluster.ns_conf, **config)
    _assert_same(remote, local)
    if config.get("dtype") == np.float64:
        assert remote.state.sstats.dtype == np.float64
        assert not np.allclose(remote.alpha, 1 / 5) and not np.allclose(remote.eta, 1 / 5)


def test_callbacks_eval_update_and_save_load(cluster, docs, tmp_path):
    metric = PerplexityMetric(corpus=docs[:30])
    remote = _train(docs[:300], distributed=True, ns_conf=cluster.ns_conf, eval_every=1, callbacks=[metric])
    local = _train(docs[:300], eval_every=1, callbacks=[PerplexityMetric(corpus=docs[:30])])
    assert remote.metrics["Perplexity"] == pytest.approx(local.metrics["Perplexity"], rel=1e-12)
    remote.update(docs[300:])
    local.update(docs[300:])
    np.testing.assert_array_equal(remote.state.sstats, local.state.sstats)
    remote.save(tmp_path / "remote.lda")
    loaded = LdaModel.load(tmp_path / "remote.lda")
    assert loaded.distributed is False and loaded.dispatcher is None
    loaded.update(docs[:100])  # trains locally
    local.update(docs[:100])
    np.testing.assert_array_equal(loaded.state.sstats, local.state.sstats)
    loaded.connect_cluster(cluster.ns_conf)  # and on the cluster again when asked
    loaded.update(docs[100:200])
    local.update(docs[100:200])
    np.testing.assert_array_equal(loaded.state.sstats, local.state.sstats)


def test_thread_counts_stay_flat_over_50_msteps(cluster, docs):
    worker_pid = cluster.workers[0].pid
    dispatcher_pid = cluster.dispatcher.pid
    model = _train(docs[:40], distributed=True, ns_conf=cluster.ns_conf, chunksize=8, passes=1)  # warm: 5 M-steps
    before = (thread_count(worker_pid), thread_count(dispatcher_pid))
    model.update(docs[:400], chunksize=8)  # 50 more M-steps
    assert model.num_updates == 440
    after = (thread_count(worker_pid), thread_count(dispatcher_pid))
    assert after[0] <= before[0] + 1 and after[1] <= before[1] + 2, (before, after)


def test_bad_document_is_refused_and_model_unchanged(cluster, docs, tmp_path, caplog):
    """A document that passes the client's checks and that a worker refuses: jobs are ranges of a binary corpus,
    and the shard file the workers open holds a term id outside the vocabulary where the client's copy (mapped
    before the file was replaced, as a file replaced under a reader would be) is sound."""
    from distlda.corpora import BinaryCorpus

    sound = docs[:200]
    victim = next(d for d in range(150, 200) if sound[d])
    bad = [list(doc) for doc in sound]
    bad[victim][0] = (V + 3, bad[victim][0][1])
    path = tmp_path / "corpus"  # a path no worker of this cluster has opened yet
    BinaryCorpus.serialize(path, sound, num_terms=V, shard_docs=100)
    BinaryCorpus.serialize(tmp_path / "bad", bad, num_terms=V + 5, shard_docs=100)  # same sizes, one bad id
    corpus = BinaryCorpus(path)
    assert len(corpus.read_range(0, 200)) == 200  # the client maps both shards now and keeps what it mapped
    shard = corpus.shards[1].file
    os.replace(tmp_path / "bad" / shard, path / shard)
    model = _train(docs[:200], distributed=True, ns_conf=cluster.ns_conf)
    before = model.state.sstats.copy()
    with caplog.at_level("INFO", logger="distlda.cluster.client"):
        with pytest.raises(JobError, match=rf"corrupt corpus: document {victim}: term id outside the vocabulary"):
            model.update(corpus)
    assert "jobs are document ranges" in caplog.text  # the documents were read by the workers, not sent
    np.testing.assert_array_equal(model.state.sstats, before)


def test_workers_with_other_kernels_refuse_to_join(cluster, docs, monkeypatch):
    # the client pretends to run other kernels (another distlda, numba or numpy): the worker must refuse, since
    # it would compute a different model, and say what to install
    import distlda.core.fingerprint as numerics

    real = numerics.numerics_id()
    monkeypatch.setattr(numerics, "numerics_id", lambda: "0123456789abcdef")
    with pytest.raises(NumericsMismatch, match=r"computes with distlda numerics " + real +
                       r".*the client with 0123456789abcdef.*Install the same distlda"):
        _train(docs[:100], distributed=True, ns_conf=cluster.ns_conf)
    monkeypatch.undo()
    # the same cluster takes a client with the same kernels
    assert _train(docs[:100], distributed=True, ns_conf=cluster.ns_conf).numworkers == len(cluster.workers)


@pytest.mark.slow
def test_errors_name_what_is_missing(tmp_path):
    port = free_port()
    conf = {"host": "127.0.0.1", "port": port, "broadcast": False}
    with pytest.raises(NameServerNotFound, match=f"no name server at 127.0.0.1:{port}"):
        LdaModel(common_corpus, id2word=common_dictionary, distributed=True, ns_conf=conf)
    ns = spawn("distlda.nameserver", "-n", "127.0.0.1", "-p", str(port), "--no-broadcast", log_dir=tmp_path,
               name="ns")
    procs = [ns]
    try:
        wait_until(lambda: _port_open(port), what="name server")
        with pytest.raises(DispatcherNotFound, match="no dispatcher registered"):
            LdaModel(common_corpus, id2word=common_dictionary, distributed=True, ns_conf=conf)
        args = ["--host", "127.0.0.1", "--port", str(port), "--no-broadcast", "--bind", "127.0.0.1"]
        dispatcher = spawn("distlda.models.lda_dispatcher", *args, log_dir=tmp_path, name="dispatcher")
        procs.append(dispatcher)
        wait_until(lambda: _registered(conf, "distlda.lda_dispatcher"), what="dispatcher")
        with pytest.raises(NoWorkersError, match="found no worker"):
            LdaModel(common_corpus, id2word=common_dictionary, distributed=True, ns_conf=conf)
        second = spawn("distlda.models.lda_dispatcher", *args, log_dir=tmp_path, name="dispatcher2")
        procs.append(second)
        assert second.wait(timeout=60) == 1
        assert "another dispatcher is running" in (tmp_path / "dispatcher2.log").read_text()
    finally:
        stop(*procs)


@pytest.mark.slow
def test_key_refused_in_each_direction(tmp_path):
    with LocalCluster(workers=1, hmac_key="s3cret", threads_per_worker=1) as keyed:
        good = LdaModel(common_corpus, id2word=common_dictionary, num_topics=2, distributed=True,
                        ns_conf=keyed.ns_conf)
        assert good.numworkers == 1
        wrong = dict(keyed.ns_conf, hmac_key="guess")
        with pytest.raises(KeyRefusedError, match="refused the key"):
            LdaModel(common_corpus, id2word=common_dictionary, distributed=True, ns_conf=wrong)
        missing = dict(keyed.ns_conf, hmac_key=None)
        with pytest.raises(KeyRefusedError, match="requires a key"):
            LdaModel(common_corpus, id2word=common_dictionary, distributed=True, ns_conf=missing)


def test_key_given_to_a_cluster_without_one(cluster):
    extra = dict(cluster.ns_conf, hmac_key="unneeded")
    with pytest.raises(KeyRefusedError, match="runs without a key"):
        LdaModel(common_corpus, id2word=common_dictionary, distributed=True, ns_conf=extra)


@pytest.mark.slow
def test_exit_leaves_no_process_behind(tmp_path):
    cluster = LocalCluster(workers=2, threads_per_worker=1)
    cluster.start()
    try:
        pids = [p.pid for p in cluster.workers] + [cluster.dispatcher.pid]
        model = LdaModel(common_corpus, id2word=common_dictionary, num_topics=2, distributed=True,
                         ns_conf=cluster.ns_conf)
        model.dispatcher.exit()
        for proc in [*cluster.workers, cluster.dispatcher]:
            assert proc.wait(timeout=30) == 0
        assert not any(alive(pid) for pid in pids)
    finally:
        cluster.stop()
    assert cluster.nameserver.poll() is not None


@pytest.mark.slow
def test_the_five_steps_with_the_gensim_snippet(tmp_path):
    """Name server on the default port, a worker, a dispatcher, then the exact snippet of the docs."""
    if _port_open(9090):
        pytest.skip("port 9090 is taken on this machine; the exact snippet needs the default name server port")
    procs = [spawn("distlda.nameserver", log_dir=tmp_path, name="ns")]
    try:
        wait_until(lambda: _port_open(9090), what="name server")
        procs.append(spawn("distlda.models.lda_worker", "--threads", "1", log_dir=tmp_path, name="worker"))
        procs.append(spawn("distlda.models.lda_worker", "--threads", "1", log_dir=tmp_path, name="worker2"))
        wait_until(lambda: _registered({}, "distlda.lda_worker.", 2), what="workers")
        procs.append(spawn("distlda.models.lda_dispatcher", log_dir=tmp_path, name="dispatcher"))
        wait_until(lambda: _registered({}, "distlda.lda_dispatcher"), what="dispatcher")
        model = LdaModel(common_corpus, id2word=common_dictionary, distributed=True)
        assert model.numworkers == 2
        assert np.all(np.isfinite(model.get_topics()))
        local = LdaModel(common_corpus, id2word=common_dictionary, random_state=model._seed)
        np.testing.assert_array_equal(model.state.sstats, local.state.sstats)
    finally:
        stop(*procs)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _registered(ns_conf: dict, name: str, count: int = 1) -> bool:
    from distlda.cluster.errors import ClusterError
    from distlda.cluster.naming import NsConf, locate_ns

    try:
        with locate_ns(NsConf.from_mapping(ns_conf), timeout=2.0) as ns:
            return len(ns.list(prefix=name)) >= count
    except ClusterError:
        return False
