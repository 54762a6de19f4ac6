"""Timestamps of each M-step's phases in every process of a cluster, to see where an M-step's time goes.

With ``DISTLDA_TIMELINE=1`` in the environment of the client, the dispatcher and the workers, each process writes one
line to stderr per phase it passes: the role, the wall clock (``time.time()``: comparable between the processes of
one machine, or of hosts whose clocks are synchronised), the phase and the worker. Without it, :func:`mark` costs one
look at the environment. :func:`read_marks` reads such lines back from log files and :func:`per_mstep` puts every
phase's time after the dispatcher recorded each M-step side by side (``python bench/timeline.py LOGDIR``;
``python bench/scaling.py --timeline`` adds the table to each run's figures).

The phases, in the order of one M-step (each worker's, after the dispatcher records the batch's M-step):
``sync`` (the worker hears of it), ``rs-start``, ``partials-in`` (the chunks' partial rows of its range are in),
``own-sums``, ``rs-end`` (every range's sums are in), ``mstep-end``, ``job`` (its next job), ``fit-end``; the
dispatcher's ``last-jobdone`` (the batch's last job is in), then ``record``; the client's ``collected`` and
``jobs-put``.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

__all__ = ["ENV", "enabled", "mark", "read_marks", "per_mstep"]

ENV = "DISTLDA_TIMELINE"
"""The environment variable that turns the marks on (any value but empty or 0)."""

_logger = logging.getLogger("distlda.timeline")
_setup = threading.Lock()
_LINE = re.compile(r"TIMELINE (\w+) (\d+\.\d+) (\S+) (\S+)")


def enabled() -> bool:
    """Whether this process writes its marks (``DISTLDA_TIMELINE`` is set)."""
    return os.environ.get(ENV, "") not in ("", "0")


def mark(role: str, phase: str, who: str | None = None) -> None:
    """Note that ``role`` (``worker``, ``dispatcher`` or ``client``) passed ``phase`` now, for worker ``who``."""
    if not enabled():
        return
    with _setup:
        if not _logger.handlers:  # a handler of its own: the marks are written whatever the process's log level
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            _logger.addHandler(handler)
            _logger.setLevel(logging.INFO)
            _logger.propagate = False
    _logger.info("TIMELINE %s %.6f %s %s", role, time.time(), phase, who or "-")


def read_marks(paths: Iterable[Path]) -> list[tuple[float, str, str, str]]:
    """The marks in the files ``paths``, ``(time, role, phase, who)``, in time order."""
    marks = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                found = _LINE.search(line)
                if found:
                    marks.append((float(found.group(2)), found.group(1), found.group(3), found.group(4)))
    return sorted(marks)


def per_mstep(marks: list[tuple[float, str, str, str]], skip: int = 2) -> dict[str, dict[str, float]]:
    """Each phase's milliseconds after the dispatcher recorded an M-step, over the M-steps between the ``skip``-th
    record and the ``skip``-th last (the first and last are a run's start and end): ``{phase: {"median", "p10",
    "p90", "n"}}`` with the first time each worker passed the phase in each M-step (the dispatcher's
    ``last-jobdone`` and the client's phases once per M-step), and ``period``, the time from one record to the
    next. Empty when there are too few M-steps."""
    records = [t for t, role, phase, _ in marks if role == "dispatcher" and phase == "record"]
    kept = records[skip:len(records) - skip]
    spans = list(zip(kept[:-1], kept[1:]))
    times: dict[str, list[float]] = {}
    for start, stop in spans:
        seen: set[tuple[str, str]] = set()
        for t, role, phase, who in marks:
            if start <= t < stop and (phase, who) not in seen and phase != "record":
                seen.add((phase, who))
                times.setdefault(phase, []).append(1000.0 * (t - start))
        times.setdefault("period", []).append(1000.0 * (stop - start))
    return {phase: _summary(values) for phase, values in sorted(times.items(), key=lambda kv: statistics.median(kv[1]))}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p10": ordered[len(ordered) // 10],
            "p90": ordered[(9 * len(ordered)) // 10], "n": len(ordered)}
