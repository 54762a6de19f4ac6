"""`distlda cluster`, `status` and `train --cluster local` agree on where the cluster is; a daemon that dies is
reported. Real processes on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from distlda.cli.clusterstate import read_state, state_path

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _lines(stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)
    out.put(None)


def _wait_for(out: queue.Queue, pattern: str, seen: list[str], timeout: float = 120.0) -> re.Match:
    while True:
        line = out.get(timeout=timeout)
        assert line is not None, f"the process ended before printing {pattern!r}: {''.join(seen)}"
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def test_cluster_status_and_train_find_each_other(tmp_path: Path, monkeypatch) -> None:
    env = dict(os.environ, DISTLDA_STATE_DIR=str(tmp_path / "state"))
    monkeypatch.setenv("DISTLDA_STATE_DIR", str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "distlda", "cluster", "--workers", "2", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    seen: list[str] = []
    try:
        port = int(_wait_for(out, r"--cluster 127\.0\.0\.1:(\d+)", seen).group(1))
        pids = json.loads(state_path().read_text())["pids"]
        assert read_state()["port"] == port and "hmac" not in state_path().read_text()
        status = subprocess.run([sys.executable, "-m", "distlda", "status"], capture_output=True, text=True, env=env,
                                timeout=120)
        assert status.returncode == 0, status.stderr
        assert f"dispatcher at 127.0.0.1:{port}" in status.stdout
        victim = pids["workers"][0]
        os.kill(victim, signal.SIGKILL)
        _wait_for(out, rf"worker 0 \(pid {victim}\) exited with code -9; its log: ", seen)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not state_path().exists()
    for pid in [pids["nameserver"], pids["dispatcher"], *pids["workers"]]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_train_cluster_local_without_a_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    env = dict(os.environ, DISTLDA_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-m", "distlda", "train", str(tmp_path), "--topics", "2", "--cluster",
                           "local", "--out", str(tmp_path / "m.lda")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no local cluster is running" in done.stderr and "distlda cluster --workers N" in done.stderr
