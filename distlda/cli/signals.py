"""How the CLI turns signals into a stop that keeps what was trained: SIGTERM raised as :class:`Terminated` where
Ctrl-C raises KeyboardInterrupt, both held off while a save runs, and found again when compiled code wrapped them."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from distlda.cli.common import EXIT_TERMINATED

__all__ = ["Terminated", "sigterm_as_interrupt", "signals_held", "interrupt_within"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so training stops the same way and saves what it has."""

    exit_code = EXIT_TERMINATED


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGTERM raises :class:`Terminated`; later ones are ignored (the save that
    follows must finish). Only in the main thread, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (a save that must not be cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupt_within(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that ``exc`` is or was raised from, if any: a signal that lands inside compiled code
    (numba loading a cached kernel) comes back wrapped, e.g. as a SystemError caused by the KeyboardInterrupt."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
