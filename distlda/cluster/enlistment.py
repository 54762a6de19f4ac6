"""Which dispatcher a worker serves: the checks of its session token.

A dispatcher enlists a worker with a random session token (``initialize``); every later call that changes the
worker must carry it, and another dispatcher may enlist the worker only once the first stops answering.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from Pyro5 import errors as pyro_errors

from distlda.cluster import errors as cluster_errors

logger = logging.getLogger("distlda.lda_worker")

__all__ = ["check_session", "check_rebinding"]


def check_session(mine: str | None, uri: str | None, name: str | None, session: Any, what: str) -> None:
    """Refuse the call ``what`` unless ``session`` is the token ``mine`` of the dispatcher at ``uri`` that enlisted
    worker ``name`` (SessionRefused)."""
    if mine is None:
        raise cluster_errors.SessionRefused(f"{what}: this worker is not enlisted by any dispatcher yet")
    if not isinstance(session, str) or not hmac.compare_digest(session.encode(), mine.encode()):
        raise cluster_errors.SessionRefused(
            f"{what}: worker {name} serves the dispatcher at {uri}, and this call did not carry that "
            "dispatcher's session token")


def check_rebinding(mine: str | None, uri: str | None, name: str | None, session: str, dispatcher: str,
                    transport: Any) -> None:
    """Let ``initialize`` rebind worker ``name`` only for the dispatcher that enlisted it (same token), or when
    that dispatcher (at ``uri``, reached through ``transport``) no longer answers."""
    if mine is None or hmac.compare_digest(session.encode(), mine.encode()) or uri is None:
        return
    try:
        with transport.proxy(uri, timeout=3.0) as proxy:
            answers = bool(proxy.ping())
    except (pyro_errors.CommunicationError, OSError, cluster_errors.ClusterError):
        answers = False
    if answers:
        raise cluster_errors.SessionRefused(
            f"initialize: worker {name} serves the dispatcher at {uri}, which still answers; stop that "
            f"dispatcher first (the call came for {dispatcher} without its session token)")
    logger.warning("the dispatcher at %s no longer answers: enlisted by %s", uri, dispatcher)
