"""Three hosts on this machine: Linux network namespaces joined by veth pairs to a bridge.

Host A runs the name server, the dispatcher and the training client; hosts B and C
run one worker each. Each host has only its own address on a private subnet that
exists inside these namespaces alone, so a daemon that advertised 127.0.0.1 (or
any address but its own) could not be reached and training would fail. The test
needs root and iproute2; elsewhere it is skipped, saying why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import stop, wait_until

from distlda.test.hosts import HostNetwork, HostsUnavailable, unavailable

pytestmark = pytest.mark.distributed

PORT = 9090
KEY = "multihost-test-key"


@pytest.fixture
def network():
    """Hosts a, b and c (no CPU quota, links not shaped) on a private bridge, removed afterwards."""
    reason = unavailable()
    if reason:
        pytest.skip(f"no multi-host network: {reason}")
    try:
        with HostNetwork(["a", "b", "c"], subnet=214) as hosts:
            yield hosts
    except HostsUnavailable as exc:
        pytest.skip(f"no multi-host network: {exc}")


def _in_host(network: HostNetwork, host: str, args: list[str], log: Path) -> subprocess.Popen:
    """Start ``python args`` inside host's namespace (the PID is Python's)."""
    return network[host].popen([sys.executable, *args], log=log)


_CLIENT = r"""
import json, sys, time
import numpy as np
from distlda.cluster.naming import NsConf, locate_ns
from distlda.models import LdaModel
from distlda.test.utils import common_corpus, common_dictionary

ns_conf = {"host": sys.argv[1], "port": int(sys.argv[2]), "broadcast": False, "hmac_key": sys.argv[3]}


def registered():
    try:
        with locate_ns(NsConf.from_mapping(ns_conf)) as ns:
            return {name: str(uri) for name, uri in ns.list().items()}
    except Exception:
        return {}


deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    names = registered()
    if "distlda.lda_dispatcher" in names and sum(n.startswith("distlda.lda_worker.") for n in names) == 2:
        break
    time.sleep(0.2)
params = dict(id2word=common_dictionary, num_topics=3, chunksize=3, passes=4, random_state=5, eval_every=0)
remote = LdaModel(common_corpus, distributed=True, ns_conf=ns_conf, **params)
local = LdaModel(common_corpus, **params)
print(json.dumps({"numworkers": remote.numworkers, "same": bool(np.array_equal(remote.state.sstats,
                  local.state.sstats)), "registered": registered()}))
"""


def test_three_hosts_train_and_every_daemon_advertises_its_own_address(network, tmp_path):
    hosts = {name: network[name].address for name in ("a", "b", "c")}
    ns_host = hosts["a"]
    common = ["--host", ns_host, "--port", str(PORT), "--no-broadcast", "--hmac", KEY]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_in_host(network, "a", ["-m", "distlda.nameserver", "-n", ns_host, "-p", str(PORT), "--no-broadcast",
                                    "--hmac", KEY], tmp_path / "nameserver.log"))
        for host in ("b", "c"):
            procs.append(_in_host(network, host, ["-m", "distlda.models.lda_worker", *common, "--threads", "1"],
                                  tmp_path / f"worker-{host}.log"))
        procs.append(_in_host(network, "a", ["-m", "distlda.models.lda_dispatcher", *common], tmp_path / "dispatcher.log"))
        client = network["a"].popen([sys.executable, "-c", _CLIENT, ns_host, str(PORT), KEY], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        out, err = client.communicate(timeout=300)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))
        assert client.returncode == 0, err + logs
        answer = json.loads(out.strip().splitlines()[-1])
        assert answer["numworkers"] == 2
        assert answer["same"], "the model trained across hosts differs from the local one"
        advertised = {name: uri.rsplit("@", 1)[1].rsplit(":", 1)[0] for name, uri in answer["registered"].items()}
        workers = sorted(a for name, a in advertised.items() if name.startswith("distlda.lda_worker."))
        assert workers == [hosts["b"], hosts["c"]], advertised
        assert advertised["distlda.lda_dispatcher"] == ns_host, advertised
        assert advertised["Pyro.NameServer"] == ns_host, advertised
    finally:
        stop(*procs)
        wait_until(lambda: all(p.poll() is not None for p in procs), timeout=30, what="the daemons to stop")
