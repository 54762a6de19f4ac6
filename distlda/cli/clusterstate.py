"""Where a running `distlda cluster` says it is, so that `distlda status` and `distlda train --cluster local`
find it without being told its port.

The state file holds the name server's address, the processes' PIDs and the log folder, never the key. It is
``$DISTLDA_STATE_DIR/cluster.json`` (default ``~/.cache/distlda``), written when the cluster is up and removed
when it stops; a file whose name server process is gone is stale and ignored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from distlda.cli.common import UsageError
from distlda.io.container import atomic_write_bytes, process_alive

__all__ = ["state_path", "write_state", "read_state", "remove_state", "local_address"]


def state_path() -> Path:
    """The state file of this user's local cluster."""
    folder = os.environ.get("DISTLDA_STATE_DIR") or Path.home() / ".cache" / "distlda"
    return Path(folder) / "cluster.json"


def write_state(port: int, pids: dict[str, Any], log_dir: str, keyed: bool) -> Path:
    """Record a started cluster (name server on 127.0.0.1:``port``)."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"host": "127.0.0.1", "port": int(port), "pids": pids, "log_dir": str(log_dir), "keyed": bool(keyed),
             "owner": os.getpid(), "started": time.time()}
    atomic_write_bytes(path, json.dumps(state, indent=1).encode("utf-8"))
    return path


def read_state() -> dict[str, Any] | None:
    """The running local cluster's state, or None when there is none (no file, or its processes are gone)."""
    try:
        state = json.loads(state_path().read_text())
        alive = process_alive(int(state["owner"])) and process_alive(int(state["pids"]["nameserver"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if alive else None


def remove_state() -> None:
    """Forget the cluster this process started (another process's file is left alone)."""
    path = state_path()
    try:
        if int(json.loads(path.read_text())["owner"]) == os.getpid():
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def local_address() -> tuple[str, int]:
    """``(host, port)`` of the running local cluster; UsageError saying how to start one when there is none."""
    state = read_state()
    if state is None:
        raise UsageError(f"no local cluster is running (no live {state_path()}): start one with "
                         "`distlda cluster --workers N`, or give --cluster HOST:PORT")
    return str(state["host"]), int(state["port"])

