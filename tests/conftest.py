"""Shared fixtures: small random corpora and models."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a shell without job control inherits SIGINT ignored, and so would every
    process the tests start, which the Ctrl-C tests then could not interrupt (they failed so once, the CLI training
    all its passes): take the ordinary disposition back for the session and its children."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def random_docs(rng: np.random.Generator, n_docs: int, num_terms: int, max_len: int = 12,
                empty_every: int = 0) -> list[list[tuple[int, float]]]:
    """Bag-of-words documents with random ids and integer counts (some empty if asked)."""
    docs = []
    for d in range(n_docs):
        if empty_every and d % empty_every == 0:
            docs.append([])
            continue
        length = int(rng.integers(1, max_len + 1))
        ids = np.sort(rng.choice(num_terms, size=min(length, num_terms), replace=False))
        docs.append([(int(i), float(rng.integers(1, 5))) for i in ids])
    return docs


@pytest.fixture(autouse=True, scope="session")
def _private_cluster_state(tmp_path_factory):
    """`distlda cluster` started by a test records itself here, never in the user's ~/.cache/distlda."""
    os.environ["DISTLDA_STATE_DIR"] = str(tmp_path_factory.mktemp("distlda-state"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def toy_corpus():
    from distlda.test.utils import common_corpus, common_dictionary

    return common_corpus, common_dictionary


class KernelCalls:
    """What the library's ``parallel_for`` calls did: per call, the thread count and the threads that ran pieces.

    Installed by the ``kernel_calls`` fixture. In every call with two or more threads and items, the calling
    thread's first piece waits until a helper thread has started a piece, so a test asking for several threads
    really gets work done on several, however the threads happen to be scheduled.
    """

    WAIT = 30.0  # seconds; only reached if the helper threads never run

    def __init__(self) -> None:
        self.calls: list[tuple[int, set[int]]] = []

    def parallel_for(self, real, kernel, n, *args, **kwargs) -> None:
        import threading

        from distlda.kernels.parallel import current_threads

        caller, threads, ran = threading.get_ident(), current_threads(), set()
        helper_started = threading.Event()
        hold = [threads > 1 and n > 1]

        def piece(*piece_args):
            me = threading.get_ident()
            ran.add(me)  # set.add is atomic under the GIL
            if me != caller:
                helper_started.set()
            elif hold[0]:
                hold[0] = False
                assert helper_started.wait(self.WAIT), "no helper thread took a piece"
            kernel(*piece_args)

        real(piece, n, *args, **kwargs)
        self.calls.append((threads, ran))

    def thread_counts(self) -> set[int]:
        return {threads for threads, _ in self.calls}

    def threads_that_ran(self) -> set[int]:
        return set().union(*(ran for _, ran in self.calls))


@pytest.fixture
def kernel_calls(monkeypatch) -> KernelCalls:
    """Record (and spread over threads, see :class:`KernelCalls`) the parallel kernel calls of the library."""
    import functools

    from distlda.kernels import bound, estep, mstep, parallel

    log = KernelCalls()
    for module in (estep, mstep, bound):
        monkeypatch.setattr(module, "parallel_for", functools.partial(log.parallel_for, parallel.parallel_for))
    return log


def flip_array_byte(path: Path, array: str, byte: int = 0, mask: int = 0x01) -> None:
    """Damage one byte of a named array of a distlda container file in place (format 2: magic, header length,
    header CRC, JSON header, padding to 64, arrays), as a disk or a copy might."""
    import json

    raw = bytearray(path.read_bytes())
    hlen = int.from_bytes(raw[8:16], "little")
    header = json.loads(bytes(raw[20:20 + hlen]))
    start = 20 + hlen + (-(20 + hlen)) % 64
    raw[start + header["arrays"][array]["offset"] + byte] ^= mask
    path.write_bytes(bytes(raw))
