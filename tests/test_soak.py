"""A soak run: 200 M-steps of tiny chunks; threads and memory stay flat, no job is lost or done twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cluster_helpers import thread_count
from conftest import random_docs

from distlda.cluster.local import LocalCluster
from distlda.models import LdaModel

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_200_msteps_flat_threads_and_memory_no_job_lost_or_repeated():
    docs = random_docs(np.random.default_rng(2), 1000, 80, max_len=15)
    vocab = {i: str(i) for i in range(80)}
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        model = LdaModel(docs[:100], id2word=vocab, num_topics=6, chunksize=5, distributed=True,
                         ns_conf=cluster.ns_conf, random_state=0)  # 20 M-steps to warm everything up
        pids = [p.pid for p in cluster.workers] + [cluster.dispatcher.pid]
        threads_before = [thread_count(pid) for pid in pids]
        rss_before = [_rss_mb(pid) for pid in pids]
        jobs_before = model.dispatcher.jobsdone()
        model.update(docs, chunksize=5)  # 200 M-steps
        assert model.num_updates == 1100
        threads_after = [thread_count(pid) for pid in pids]
        rss_after = [_rss_mb(pid) for pid in pids]
        for before, after in zip(threads_before, threads_after):
            assert after <= before + 2, (threads_before, threads_after)
        for before, after in zip(rss_before, rss_after):
            assert after <= before * 1.10 + 15, (rss_before, rss_after)
        # each chunk of 5 documents is cut into jobs of ceil(5 / (2 × 2 workers)) = 2 documents: 3 jobs a chunk;
        # every job is done exactly once
        jobs = model.dispatcher.jobsdone() - jobs_before
        status = model.dispatcher.status()
        # the workers' own counters start at each update's initialize; the dispatcher's totals run on
        assert sum(w["jobs_done"] for w in status["workers"]) == jobs
        assert status["docs_done"] == 1100 and jobs == 200 * 3
        local = LdaModel(docs[:100], id2word=vocab, num_topics=6, chunksize=5, random_state=0)
        local.update(docs, chunksize=5)
        np.testing.assert_array_equal(model.state.sstats, local.state.sstats)
