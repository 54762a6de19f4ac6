"""Scaled-down hosts (``distlda.test.hosts``): the CPU quota and the link rate are real, a Pyro5 cluster and a
Dask cluster train on them to the local model, and nothing is left behind, also when the process that made
them is killed.

The bounds are wide on purpose: the machine is shared, so the tests check that the limits hold (a host
never gets much more than its quota or its rate) and are not absurdly low, not how fast anything runs.
Needs root, iproute2 and a cgroup hierarchy with the cpu controller; elsewhere it is skipped, saying why.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from distlda.test.daskhosts import DaskHostCluster
from distlda.test.hostcluster import HostCluster, HostDaemons, run_client
from distlda.test.hosts import PREFIX, HostNetwork, remove_stale, unavailable

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

CORES = 0.25
RATE = 1e9 * CORES  # a 1 Gbit/s host scaled down like its CPU
SUBNET = 215


@pytest.fixture(scope="module", autouse=True)
def hosts_possible() -> None:
    """Skip, saying why, where hosts cannot be made. (A fixture, not an import-time check: the cluster test
    loads this module again inside a host, where /sys is the namespace's own and has no cgroups.)"""
    reason = unavailable()
    if reason:
        pytest.skip(f"no scaled-down hosts here: {reason}")


@pytest.fixture(scope="module")
def network(hosts_possible):
    with HostNetwork(["client", "server", "worker"], cores=CORES, rate=RATE, subnet=SUBNET) as hosts:
        yield hosts
    assert hosts.leftovers() == []


def _python(network: HostNetwork, host: str, code: str, **kwargs: Any) -> subprocess.Popen:
    return network[host].popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_busy_host_gets_its_quota_of_a_core(network):
    host = network["worker"]
    # spins until it has used 0.4 CPU seconds: what is measured is the CPU share, whatever the wall time
    spin = _python(network, "worker", """
        import time
        while time.process_time() < 0.4:
            pass
    """)
    cpu, started = host.cpu_seconds(), time.perf_counter()
    out, err = spin.communicate(timeout=120)
    cpu, wall = host.cpu_seconds() - cpu, time.perf_counter() - started
    assert spin.returncode == 0, err
    assert cpu >= 0.35, f"the host's cgroup counted {cpu:.2f} CPU seconds of a 0.4 s spin"
    share = cpu / wall
    assert 0.5 * CORES <= share <= 1.5 * CORES, f"{share:.3f} of a core, quota {CORES}"


def test_a_transfer_between_hosts_is_held_to_the_link_rate(network):
    size = 4_000_000  # 0.13 s at the rate: long against the bucket of 64 KiB
    receiver = _python(network, "server", f"""
        import socket
        server = socket.create_server(("{network['server'].address}", 7001))
        print("listening", flush=True)
        conn, _ = server.accept()
        got = 0
        while chunk := conn.recv(1 << 20):
            got += len(chunk)
        print(got, flush=True)
    """)
    assert receiver.stdout.readline().strip() == "listening"
    before = network["client"].link_bytes()
    sender = _python(network, "client", f"""
        import socket, time
        conn = socket.create_connection(("{network['server'].address}", 7001))
        started = time.perf_counter()
        conn.sendall(b"x" * {size})
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the receiver closes once it has every byte
        print(time.perf_counter() - started)
    """)
    received, _ = receiver.communicate(timeout=120)
    out, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert int(received.strip()) == size
    rate = size * 8 / float(out.strip())
    assert rate <= 1.5 * RATE, f"{rate / 1e6:.0f} Mbit/s through a link of {RATE / 1e6:.0f} Mbit/s"
    sent = network["client"].link_bytes()["sent"] - before["sent"]
    assert size <= sent <= 1.2 * size, f"the client's link counted {sent} bytes for {size}"


TINY = dict(num_topics=3, chunksize=3, passes=2, random_state=5, eval_every=0)


def tiny_training(config: dict[str, Any], ns_conf: dict[str, Any] | None, ready: Callable[[], None]) -> dict:
    """Runs in the client's host: trains on gensim's small test corpus (with ``ns_conf``: on the Pyro5 cluster, or
    on the Dask cluster of ``{"scheduler": address}``)."""
    from distlda.models import LdaModel
    from distlda.test.daskhosts import cluster_kwargs
    from distlda.test.utils import common_corpus, common_dictionary

    ready()
    with cluster_kwargs(ns_conf) as where:
        model = LdaModel(common_corpus, id2word=common_dictionary, **TINY, **where)
    np.save(config["save"], model.state.sstats)
    return {"workers": model.numworkers if ns_conf else 0}


def _train_on(network: HostNetwork, cluster: HostDaemons, tmp_path: Path) -> dict[str, Any]:
    """Train :func:`tiny_training` on ``cluster`` from the client's host; check that the model is the local one
    and that no daemon outlived the cluster; return the run."""
    from distlda.models import LdaModel
    from distlda.test.utils import common_corpus, common_dictionary

    with cluster:
        pids = [p.pid for p in cluster.procs.values()]
        # a client that hangs fails the test (with its log) instead of holding the suite for run_client's 2 hours
        run = run_client(network, "client", f"{Path(__file__).resolve()}:tiny_training",
                         {"save": str(tmp_path / "model.npy")}, cluster.ns_conf, tmp_path / "client.log", timeout=600)
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids), "a daemon outlived its cluster"
    local = LdaModel(common_corpus, id2word=common_dictionary, **TINY)
    assert np.array_equal(np.load(tmp_path / "model.npy"), local.state.sstats)
    return run


def test_a_cluster_on_the_hosts_trains_the_local_model(network, tmp_path):
    run = _train_on(network, HostCluster(network, "server", ["worker"], "hosts-test-key", tmp_path / "logs"),
                    tmp_path)
    assert run["result"]["workers"] == 1
    meters = run["hosts"]
    assert meters["worker"]["sent"] > 0 and meters["client"]["sent"] > 0
    assert meters["worker"]["cpu"] > 0


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="the Dask backend needs dask and distributed: pip install 'distlda[dask]'")
def test_a_dask_cluster_on_the_hosts_trains_the_local_model(network, tmp_path):
    # two workers: one in a host of its own, one beside the scheduler, so γ crosses the bridge between them
    cluster = DaskHostCluster(network, "server", ["worker", "server"], tmp_path / "logs")
    run = _train_on(network, cluster, tmp_path)
    assert run["result"]["workers"] == 2
    meters = run["hosts"]
    assert meters["worker"]["sent"] > 0 and meters["worker"]["cpu"] > 0
    assert meters["client"]["sent"] > 0


_MAKER = """
import sys, time
from distlda.test.hosts import HostNetwork
net = HostNetwork(["only"], cores=0.5, rate=1e8, subnet=216).build()
net["only"].popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(net.tag, flush=True)
time.sleep(600)
"""


def _ours(tag: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    cgroups = [p.name for root in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup")
               if Path(root).is_dir() for p in Path(root).iterdir() if p.name.startswith(tag)]
    return sorted({line.split()[0] for line in names.splitlines() if line.startswith(tag)} | set(cgroups))


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_hosts_are_removed_when_their_maker_is_stopped_or_killed(how):
    maker = subprocess.Popen([sys.executable, "-c", _MAKER], stdout=subprocess.PIPE, text=True)
    try:
        tag = maker.stdout.readline().strip()
        assert tag.startswith(PREFIX), tag
        assert _ours(tag), "the hosts were not made"
        maker.send_signal(getattr(signal, how))
        maker.wait(timeout=60)
        if how == "SIGKILL":  # no chance to clean up: the next network removes what a dead process left
            assert _ours(tag), "a SIGKILLed process cleaned up after all?"
            assert set(remove_stale()) >= set(_ours(tag)) or not _ours(tag)
        assert _ours(tag) == [], f"left behind after {how}"
    finally:
        if maker.poll() is None:
            maker.kill()
            maker.wait()
