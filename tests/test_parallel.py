"""parallel_for and the thread settings: errors, edge ranges, and results that do not depend on threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import random_docs

from distlda.kernels import parallel
from distlda.kernels.parallel import current_threads, kernel_threads, max_threads, parallel_for

WAIT = 30.0  # seconds a piece waits for another thread before the test gives up (never reached when all is well)


class Boom(Exception):
    """Raised by a test kernel: a type no library code raises, so propagation is unambiguous."""


class Pieces:
    """A kernel recording the pieces it is given and the threads that run them.

    ``hold_caller``: the calling thread's first piece waits until another thread has started a piece, so a
    helper thread is sure to take part however the threads are scheduled.
    """

    def __init__(self, hold_caller: bool = False) -> None:
        self.caller = threading.get_ident()
        self.hold_caller = hold_caller
        self.helper_started = threading.Event()
        self.lock = threading.Lock()
        self.pieces: list[tuple[int, int]] = []
        self.threads: set[int] = set()

    def __call__(self, out: np.ndarray, lo: int, hi: int) -> None:
        me = threading.get_ident()
        if me != self.caller:
            self.helper_started.set()
        elif self.hold_caller:
            self.hold_caller = False
            assert self.helper_started.wait(WAIT), "no helper thread took a piece"
        with self.lock:
            self.pieces.append((lo, hi))
            self.threads.add(me)
        out[lo:hi] += np.arange(lo, hi)


def _tiles(pieces: list[tuple[int, int]], n: int) -> bool:
    """The pieces cover [0, n) exactly once, each non-empty."""
    ordered = sorted(pieces)
    return all(lo < hi for lo, hi in ordered) and [lo for lo, _ in ordered] == [0] + [hi for _, hi in ordered[:-1]] \
        and ordered[-1][1] == n


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 31, 1000])
def test_pieces_cover_the_range_once_whatever_the_threads(threads, n):
    kernel = Pieces()
    out = np.zeros(n)
    with kernel_threads(threads):
        parallel_for(kernel, n, out)
    assert _tiles(kernel.pieces, n)
    np.testing.assert_array_equal(out, np.arange(n))
    assert len(kernel.threads) <= min(threads, n)  # a range smaller than the thread count uses fewer threads


@pytest.mark.parametrize("n", [0, -1, -100])
def test_empty_range_calls_nothing(n):
    kernel = Pieces()
    with kernel_threads(3):
        parallel_for(kernel, n, np.zeros(1))
    assert kernel.pieces == []


def test_a_range_of_one_item_runs_on_the_calling_thread():
    kernel = Pieces()
    with kernel_threads(4):
        parallel_for(kernel, 1, np.zeros(1))
    assert kernel.pieces == [(0, 1)] and kernel.threads == {threading.get_ident()}


def test_two_threads_run_pieces_at_the_same_time():
    # Each piece waits at a barrier for a piece on another thread: this only passes if two threads really run
    # pieces concurrently (the kernels release the GIL; here Barrier.wait does).
    barrier = threading.Barrier(2, timeout=WAIT)
    seen = set()

    def meet(lo: int, hi: int) -> None:
        seen.add(threading.get_ident())
        barrier.wait()

    with kernel_threads(2):
        parallel_for(meet, 2, pieces_per_thread=1)
    assert len(seen) == 2


def test_an_exception_in_a_helper_thread_propagates_with_its_type():
    kernel = Pieces(hold_caller=True)
    out = np.zeros(64)

    def failing(out: np.ndarray, lo: int, hi: int) -> None:
        kernel(out, lo, hi)
        if threading.get_ident() != kernel.caller:
            raise Boom(f"piece {lo}-{hi}")

    with kernel_threads(2), pytest.raises(Boom, match="piece"):
        parallel_for(failing, 64, out)
    assert kernel.helper_started.is_set()


def test_an_exception_waits_for_the_other_threads_before_it_is_raised():
    # The caller fails while a helper is still inside a piece; parallel_for must let that piece finish before it
    # raises, since the pieces write into the caller's arrays. Checked at the moment the error arrives.
    helper_in_piece, caller_failed, helper_done = threading.Event(), threading.Event(), threading.Event()
    caller = threading.get_ident()

    def kernel(lo: int, hi: int) -> None:
        if threading.get_ident() == caller:
            assert helper_in_piece.wait(WAIT), "no helper thread took a piece"
            caller_failed.set()
            raise Boom("caller")
        if not helper_in_piece.is_set():
            helper_in_piece.set()
            assert caller_failed.wait(WAIT)
            sum(range(20000))  # still busy after the caller raised
            helper_done.set()

    with kernel_threads(2):
        with pytest.raises(Boom, match="caller"):
            parallel_for(kernel, 2, pieces_per_thread=1)
        assert helper_done.is_set()
        follow_up = Pieces(hold_caller=True)  # the helper thread is free again for the next call
        parallel_for(follow_up, 100, np.zeros(100))
    assert _tiles(follow_up.pieces, 100) and len(follow_up.threads) == 2


def test_kernel_threads_sets_and_restores_the_count_of_this_thread_only():
    outer = current_threads()
    seen_elsewhere = []
    with kernel_threads(3):
        assert current_threads() == 3
        with kernel_threads(1):
            assert current_threads() == 1
        assert current_threads() == 3
        other = threading.Thread(target=lambda: seen_elsewhere.append(current_threads()))
        other.start()
        other.join(WAIT)
    assert seen_elsewhere == [max_threads()] and current_threads() == outer
    with pytest.raises(Boom), kernel_threads(2):
        raise Boom("inside")
    assert current_threads() == outer  # restored on an exception too


@pytest.mark.parametrize("threads", [0, -1])
def test_kernel_threads_refuses_a_count_below_one(threads):
    with pytest.raises(ValueError, match="threads"):
        with kernel_threads(threads):
            pass


@pytest.mark.parametrize("threads, error, message", [(0, ValueError, "threads must be at least 1"),
                                                      (-3, ValueError, "threads must be at least 1"),
                                                      (1.5, TypeError, "threads must be a positive integer"),
                                                      (True, TypeError, "threads must be a positive integer"),
                                                      ("2", TypeError, "threads must be a positive integer")])
def test_model_refuses_bad_thread_counts(threads, error, message):
    from distlda.models import LdaModel

    with pytest.raises(error, match=message):
        LdaModel(num_topics=2, id2word={0: "a", 1: "b"}, threads=threads)


def test_model_takes_at_most_the_available_threads():
    from distlda.models import LdaModel

    vocab = {0: "a", 1: "b"}
    assert LdaModel(num_topics=2, id2word=vocab).threads == max_threads()
    assert LdaModel(num_topics=2, id2word=vocab, threads=1).threads == 1
    assert LdaModel(num_topics=2, id2word=vocab, threads=max_threads() + 5).threads == max_threads()


@pytest.mark.parametrize("setting, expected", [("1", 1), ("0", None), ("-2", None), ("many", None), ("", None),
                                               ("100000", None)])
def test_max_threads_is_capped_by_numba_num_threads(monkeypatch, setting, expected):
    # a positive NUMBA_NUM_THREADS caps the cores; anything else is ignored (None: all the cores)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setenv("NUMBA_NUM_THREADS", setting)
    assert max_threads() == (6 if expected is None else expected)


def test_max_threads_without_affinity_counts_the_cpus(monkeypatch):
    def unsupported(pid):
        raise OSError("not on this platform")

    monkeypatch.setattr(parallel.os, "sched_getaffinity", unsupported, raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: None)
    assert max_threads() == 1
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 3)
    assert max_threads() == 3


def test_model_results_are_the_same_on_1_to_4_threads(kernel_calls):
    # The library's kernels (E-step, bound, topic expectations) on more work items than threads, bit for bit.
    from distlda.models import LdaModel

    docs = random_docs(np.random.default_rng(8), 300, 700, max_len=30)
    model = LdaModel(num_topics=6, id2word={i: str(i) for i in range(700)}, random_state=3, dtype=np.float64)
    model.state.sstats = np.random.default_rng(9).gamma(1.0, 1.0, (6, 700))
    results = []
    for threads in (1, 2, 3, 4):
        kernel_calls.calls.clear()
        with kernel_threads(threads):
            model.sync_state()
            gamma, sstats = model.inference(docs, collect_sstats=True)
            results.append((model.expElogbeta.copy(), gamma, sstats, model.bound(docs, gamma=gamma)))
        assert kernel_calls.thread_counts() == {threads}
        assert (len(kernel_calls.threads_that_ran()) > 1) == (threads > 1)
    for other in results[1:]:
        for mine, first in zip(other, results[0]):
            np.testing.assert_array_equal(mine, first)
