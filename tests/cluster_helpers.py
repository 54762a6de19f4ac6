"""Helpers for tests that start real cluster processes on 127.0.0.1 and always stop them by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def spawn(module: str, *args: str, log_dir: Path, name: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m module args`` with its output in ``log_dir/name.log``."""
    log = open(log_dir / f"{name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    log.close()
    return proc


def stop(*procs: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop each process by PID: SIGTERM, then SIGKILL if it lingers; always reap."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def thread_count(pid: int) -> int:
    """Threads of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for pid {pid}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
