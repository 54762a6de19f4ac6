"""Three hosts on this machine: Linux network namespaces joined by veth pairs to a bridge.

Host A runs the name server, the dispatcher and the training client; hosts B and C
run one worker each. Each host has only its own address on a private subnet that
exists inside these namespaces alone, so a daemon that advertised 127.0.0.1 (or
any address but its own) could not be reached and training would fail. The test
needs root and iproute2; elsewhere it is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import stop, wait_until

pytestmark = pytest.mark.distributed

SUBNET = "10.213.7"
PORT = 9090
KEY = "multihost-test-key"
_TAG = f"dl{os.getpid() % 100000}"
HOSTS = {"a": f"{SUBNET}.1", "b": f"{SUBNET}.2", "c": f"{SUBNET}.3"}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _ns(host: str) -> str:
    return f"{_TAG}{host}"


HUB = f"{_TAG}hub"


def _namespaces_possible() -> str | None:
    """None when network namespaces can be made here, else the reason they cannot."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"{_TAG}probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    _ip("netns", "delete", probe, check=False)
    return None


def _build_network() -> None:
    _ip("netns", "add", HUB)
    _ip("-n", HUB, "link", "add", "br0", "type", "bridge")
    _ip("-n", HUB, "link", "set", "br0", "up")
    for host, address in HOSTS.items():
        ns = _ns(host)
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        inside, outside = f"{_TAG}{host}i", f"{_TAG}{host}o"
        _ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", HUB)
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", HUB, "link", "set", outside, "master", "br0")
        _ip("-n", HUB, "link", "set", outside, "up")


def _tear_down_network() -> None:
    for ns in [_ns(h) for h in HOSTS] + [HUB]:
        _ip("netns", "delete", ns, check=False)  # deletes its veth ends too


@pytest.fixture
def network():
    reason = _namespaces_possible()
    if reason:
        pytest.skip(f"no multi-host network: {reason}")
    try:
        _build_network()
    except subprocess.CalledProcessError as exc:
        _tear_down_network()
        pytest.skip(f"no multi-host network: `{' '.join(exc.cmd)}` failed: {exc.stderr.strip()}")
    try:
        yield
    finally:
        _tear_down_network()


def _in_host(host: str, args: list[str], log: Path) -> subprocess.Popen:
    """Start ``python args`` inside host's namespace (``ip netns exec`` execs it: the PID is Python's)."""
    out = open(log, "ab")
    try:
        return subprocess.Popen(["ip", "netns", "exec", _ns(host), sys.executable, *args], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


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
    ns_host = HOSTS["a"]
    common = ["--host", ns_host, "--port", str(PORT), "--no-broadcast", "--hmac", KEY]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_in_host("a", ["-m", "distlda.nameserver", "-n", ns_host, "-p", str(PORT), "--no-broadcast",
                                    "--hmac", KEY], tmp_path / "nameserver.log"))
        for host in ("b", "c"):
            procs.append(_in_host(host, ["-m", "distlda.models.lda_worker", *common, "--threads", "1"],
                                  tmp_path / f"worker-{host}.log"))
        procs.append(_in_host("a", ["-m", "distlda.models.lda_dispatcher", *common], tmp_path / "dispatcher.log"))
        client = subprocess.run(["ip", "netns", "exec", _ns("a"), sys.executable, "-c", _CLIENT, ns_host, str(PORT),
                                 KEY], capture_output=True, text=True, timeout=300)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))
        assert client.returncode == 0, client.stderr + logs
        answer = json.loads(client.stdout.strip().splitlines()[-1])
        assert answer["numworkers"] == 2
        assert answer["same"], "the model trained across hosts differs from the local one"
        advertised = {name: uri.rsplit("@", 1)[1].rsplit(":", 1)[0] for name, uri in answer["registered"].items()}
        workers = sorted(a for name, a in advertised.items() if name.startswith("distlda.lda_worker."))
        assert workers == [HOSTS["b"], HOSTS["c"]], advertised
        assert advertised["distlda.lda_dispatcher"] == ns_host, advertised
        assert advertised["Pyro.NameServer"] == ns_host, advertised
    finally:
        stop(*procs)
        wait_until(lambda: all(p.poll() is not None for p in procs), timeout=30, what="the daemons to stop")
