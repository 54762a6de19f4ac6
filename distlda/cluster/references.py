"""Which workers can read the binary corpus a mini-batch's jobs refer to (jobs as document ranges).

Workers are asked in parallel, each within a bound, so a cluster of many workers answers the client well inside
its call timeout; an answer is remembered per (corpus, worker), but a worker that did not answer is asked again
next time rather than being taken for one that cannot read the corpus.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from Pyro5 import errors as pyro_errors

from distlda.cluster import errors as cluster_errors
from distlda.cluster.transport import Transport

logger = logging.getLogger(__name__)

__all__ = ["ReferenceChecks", "ASK_TIMEOUT"]

ASK_TIMEOUT = 20.0
"""Seconds a worker has to say whether it can read a corpus (well under the client's 35 s call timeout)."""

_UNREACHABLE = (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError)


class ReferenceChecks:
    """Asks workers (by name, through ``uri_of``) whether they can read a corpus reference, and remembers it."""

    def __init__(self, transport: Transport, uri_of: Callable[[str], str | None]) -> None:
        self.transport, self.uri_of = transport, uri_of
        self._known: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()

    def ask(self, uri: str | None, ref: dict[str, Any]) -> bool | None:
        """Whether the worker at ``uri`` can read ``ref``; None when it does not answer in time."""
        if uri is None:
            return None
        try:
            with self.transport.proxy(uri, timeout=ASK_TIMEOUT) as proxy:
                return bool(proxy.can_read(ref["path"], ref["fingerprint"]))
        except _UNREACHABLE:
            return None

    def ask_all(self, names: list[str], ref: dict[str, Any]) -> dict[str, bool]:
        """Every named worker's answer, asked at once (a worker that does not answer counts as False)."""
        if not names:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(names)), thread_name_prefix="distlda-ref") as pool:
            answers = list(pool.map(lambda name: self.ask(self.uri_of(name), ref), names))
        return {name: bool(answer) for name, answer in zip(names, answers)}

    def reads(self, worker_id: str, ref: dict[str, Any] | None) -> bool:
        """Whether the worker can take jobs that are references into ``ref`` (always when there is none)."""
        if not ref:
            return True
        key = (ref["path"], worker_id)
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        answer = self.ask(self.uri_of(worker_id), ref)
        if answer is None:
            return False  # no answer now: asked again at its next getjob
        if not answer:
            logger.warning("worker %s cannot read the corpus %s: it gets no jobs while jobs are references",
                           worker_id, ref["path"])
        with self._lock:
            self._known[key] = answer
        return answer
