"""γ moved between the Dask workers of a mini-batch without the scheduler: each task *pushes* a batch's γ to
the other workers of the batch the moment it has fitted it, and the task that fits the next batch on a worker
(the same task, within a group of batches, or the next group's) takes them from its *inbox*.

Through the scheduler, the γ of a batch reached the next batch's tasks after four messages in a row (the last
task's end to the scheduler, the next tasks to their workers, each worker's request to its peer, the peer's
answer): about 15-20 ms per mini-batch on a busy two-core machine, with each message waiting for its process to
be scheduled. Pushed, it takes one: the next batch's tasks are submitted without a dependency on the previous
batch's (so each is on its worker, queued behind the previous one, before that one ends), and wait for the
pieces of their peers in the inbox.

A push is acknowledged by the receiving worker, and the task goes on meanwhile (the answers are looked at while
it waits for the peers' γ, once they have come, and at the task's end): a task whose push failed (a peer gone,
or replaced by a process that has not got the inbox's handler) raises
:class:`~distlda.dask.replicas.ReplicaBehind`, and the client starts every replica again from a new base, as for
a lost worker. A task waiting in its inbox gives up when Dask no longer wants its result (the client cancelled it,
or went away): a waiting task never holds its worker's thread for good.

The inbox is keyed by (worker address, run token, attempt): an attempt is one submission of a batch's tasks, so
pieces of a batch run again after a lost worker never mix with those of the first try.

**Shares.** A batch's documents are cut into more pieces (*shares*) than it has workers, each worker owning a run
of them; a task *claims* each of its own shares before fitting it, and, once it has no more, asks the peers whose
γ it has not received for one of theirs (:func:`take_share`): the peer's event loop claims its last unclaimed
share for the asker and answers with its number. So a worker slowed down by something else on its host hands
part of its work to one that is waiting, as the Pyro5 workers balance themselves by pulling jobs, and every
share is fitted exactly once (a claim is made under one lock at the share's owner). γ does not depend on who
fits a share: the model does not either.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Pushed", "PushInFlight", "install_inbox", "deposit", "push", "check_wanted", "await_pieces", "forget_inbox",
           "claim", "take_share", "started", "ShareLost", "HANDLER", "CLAIM_HANDLER"]

HANDLER = "distlda_gamma"
"""The name of the workers' handler that takes pushed shares of γ."""
CLAIM_HANDLER = "distlda_claim"
"""The name of the workers' handler that gives a peer one of this worker's shares not started yet."""

_CHECK = 0.5
"""Seconds between two looks, while a task waits in its inbox, at whether Dask still wants its result."""


@dataclass(frozen=True)
class Pushed:
    """In a recipe, in place of its γ futures: the batch's γ was pushed to this worker's inbox by ``attempt``'s
    tasks, in ``pieces`` shares (numbered from 0)."""

    attempt: int
    pieces: int

    @classmethod
    def of(cls, batch: dict[str, Any]) -> "Pushed":
        """What a batch submitted as ``batch`` (with its ``attempt`` and ``pieces``) pushed."""
        return cls(int(batch["attempt"]), int(batch["pieces"]))


Shares = dict
"""``{share number: {chunk index: γ of the share's documents in that chunk}}``: what a task fitted of one batch."""

_INBOX: dict[tuple[str, str, int], dict[int, list[np.ndarray]]] = {}
"""Shares of γ by (worker address, run token, attempt), then by share number."""
_INBOX_COND = threading.Condition()
_CLAIMED: dict[tuple[str, str, int], set[int]] = {}
"""The shares of this process's workers that were claimed, by (worker address, run token, attempt)."""
_FORGOTTEN: dict[tuple[str, str], int] = {}
"""Per (worker address, run token), the newest attempt whose inbox and claims were dropped: its shares are no
longer given away (a late request would have a share fitted twice)."""
_STARTED: dict[tuple[str, str], int] = {}
"""Per (worker address, run token), the newest attempt this worker's own task has started to fit."""


def deposit(address: str, token: str, attempt: int, shares: Shares) -> None:
    """Put shares of an attempt's γ in the inbox of the worker at ``address``."""
    with _INBOX_COND:
        got = _INBOX.setdefault((address, token, int(attempt)), {})
        for number, gammas in shares.items():
            got[int(number)] = dict(gammas)
        _INBOX_COND.notify_all()


def delivered(address: str, token: str, attempt: int, shares: range) -> bool:
    """Whether every share in ``shares`` of an attempt is in the inbox of the worker at ``address``."""
    with _INBOX_COND:
        got = _INBOX.get((address, token, int(attempt)), {})
        return all(number in got for number in shares)


def claim(address: str, token: str, attempt: int, shares: range, last: bool = False) -> int | None:
    """Claim, for whoever asks, a share in ``shares`` of an attempt that nobody has claimed at the worker at
    ``address`` (its owner): the first, or the ``last`` one (what a peer is given). None when there is none."""
    with _INBOX_COND:
        if int(attempt) <= _FORGOTTEN.get((address, token), -1):
            return None
        taken = _CLAIMED.setdefault((address, token, int(attempt)), set())
        for number in (reversed(shares) if last else shares):
            if number not in taken:
                taken.add(number)
                _INBOX_COND.notify_all()
                return number
        return None


def _receiver(address: str) -> Callable[..., str]:
    def take(token: str, attempt: int, shares: Any) -> str:
        deposit(address, token, attempt, shares)
        return "ok"  # the pusher checks it: a worker without this handler answers None
    return take


def _giver(address: str) -> Callable[..., int]:
    def give(token: str, attempt: int, first: int, stop: int) -> int:
        number = claim(address, token, attempt, range(int(first), int(stop)), last=True)
        return -1 if number is None else number
    return give


def install_inbox(dask_worker: Any = None) -> bool:
    """Give this worker the handlers that take pushed γ and give away shares (``client.run`` passes
    ``dask_worker``; inside a task the current worker is used). Idempotent."""
    if dask_worker is None:
        from distributed import get_worker

        dask_worker = get_worker()
    if HANDLER not in dask_worker.handlers:
        dask_worker.handlers[HANDLER] = _receiver(dask_worker.address)
    if CLAIM_HANDLER not in dask_worker.handlers:
        dask_worker.handlers[CLAIM_HANDLER] = _giver(dask_worker.address)
    return True


def take_share(worker: Any, peer: str, token: str, attempt: int, shares: range, timeout: float = 60.0) -> int | None:
    """Ask the worker at ``peer`` for one of its ``shares`` of an attempt that it has not started (from the end);
    its number, claimed for this task, or None when it has none left. :class:`ShareLost` when the answer did not
    come: the peer may have claimed a share for this task that nobody will fit."""
    call = worker.rpc(peer).distlda_claim(token=token, attempt=int(attempt), first=shares.start, stop=shares.stop)
    answer = asyncio.run_coroutine_threadsafe(call, worker.loop.asyncio_loop)
    deadline = time.monotonic() + timeout
    try:
        while True:  # in slices: a peer that died leaves the call to Dask's connect timeout, and the task must
            try:  # give its thread back as soon as Dask no longer wants it (the client runs the batch again)
                number = answer.result(timeout=_CHECK)
                break
            except (TimeoutError, concurrent.futures.TimeoutError):
                check_wanted()
                if time.monotonic() > deadline:
                    raise
    except (OSError, TimeoutError, concurrent.futures.TimeoutError) as exc:
        raise ShareLost(f"no answer from the Dask worker {peer} to a request for a share of attempt {attempt}: "
                        f"{type(exc).__name__}: {exc}") from None
    finally:
        answer.cancel()
    return int(number) if isinstance(number, int) and number in shares else None


async def _push_all(worker: Any, peers: Sequence[str], message: dict[str, Any]) -> list[Any]:
    from distributed.protocol import to_serialize

    message = dict(message, shares=to_serialize(message["shares"]))
    return list(await asyncio.gather(*(worker.rpc(peer).distlda_gamma(**message) for peer in peers),
                                     return_exceptions=True))


class PushInFlight:
    """A push on its way from a task's thread: the task goes on (to its next mini-batch) while its peers take the
    γ; :meth:`failed` waits for their answers."""

    def __init__(self, peers: Sequence[str], answers: "concurrent.futures.Future[list[Any]] | None",
                 timeout: float, attempt: int | None = None) -> None:
        self.peers, self._answers, self.timeout, self.attempt = list(peers), answers, timeout, attempt

    def failed(self) -> list[str]:
        """The peers that did not take the γ (with the reason logged), once every one has answered."""
        if self._answers is None:
            return []
        try:
            answers = self._answers.result(timeout=self.timeout)
        except (OSError, TimeoutError, concurrent.futures.TimeoutError) as exc:  # the worker's own loop did not
            logger.warning("could not push γ to %s: %s", self.peers, exc)  # get the push done
            return self.peers
        failed = []
        for peer, answer in zip(self.peers, answers):
            if answer != "ok":
                logger.warning("could not push γ to the Dask worker %s: %r", peer, answer)
                failed.append(peer)
        return failed


    def answered(self) -> bool:
        """Whether every peer has answered (then :meth:`failed` does not wait)."""
        return self._answers is None or self._answers.done()


def push(worker: Any, peers: Sequence[str], token: str, attempt: int, shares: Shares,
         timeout: float = 60.0) -> PushInFlight:
    """Start sending shares of γ to the inbox of every worker in ``peers``, all at once, from a task's thread (the
    worker's event loop sends them); the answers are waited for by :meth:`PushInFlight.failed`."""
    if not peers:
        return PushInFlight([], None, timeout, int(attempt))
    message = {"token": token, "attempt": int(attempt), "shares": {int(n): dict(g) for n, g in shares.items()}}
    answers = asyncio.run_coroutine_threadsafe(_push_all(worker, list(peers), message), worker.loop.asyncio_loop)
    return PushInFlight(peers, answers, timeout, int(attempt))


def _still_wanted(worker: Any, key: Any) -> bool:
    """Whether Dask still wants the result of the task ``key`` this thread runs (not cancelled, worker running)."""
    if getattr(getattr(worker, "status", None), "name", "running") not in ("running", "paused"):
        return False
    task = worker.state.tasks.get(key)
    return task is not None and task.state in ("executing", "long-running")


class ShareLost(RuntimeError):
    """A request for a peer's share got no answer: the share may be claimed for nobody, so the attempt runs again
    (the client starts every replica again from a base, as for a lost worker)."""


class Abandoned(RuntimeError):
    """Dask no longer wants the result of the task that waited for pushed γ (cancelled by the client)."""


def check_wanted() -> None:
    """:class:`Abandoned` when Dask no longer wants the result of the task this thread runs."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    if not _still_wanted(worker, key):
        raise Abandoned(f"task {key} was cancelled")


def await_pieces(address: str, token: str, pushed: Pushed, needless: Callable[[], bool],
                 check: Callable[[], None] | None = None) -> list[Shares] | None:
    """The γ of every share of ``pushed``'s attempt, in share order, once all are in this worker's inbox and this
    worker's own task of that attempt has started (:func:`started`); None when ``needless()`` (the replica has gone
    past that M-step another way). :class:`Abandoned` when the task is no longer wanted; ``check()``, called between
    looks, may raise too (a push of this task that a peer refused: the peer will not send its own shares either).
    While that task has not started (Dask may start a task before the one before it, say when their inputs arrive
    in that order; its peers may even fit all its shares meanwhile), the waiting task leaves the worker's thread
    pool, so that the other can run."""
    from distributed import get_worker, rejoin, secede

    worker = get_worker()
    key = worker.get_current_task()
    slot = (address, token, pushed.attempt)
    seceded = False
    try:
        with _INBOX_COND:
            while True:
                got = _INBOX.get(slot, {})
                begun = _STARTED.get((address, token), -1) >= pushed.attempt
                if begun and len(got) >= pushed.pieces:
                    return [got[t] for t in range(pushed.pieces)]
                if needless():
                    return None
                if not begun and not seceded:
                    secede()
                    seceded = True
                _INBOX_COND.wait(timeout=_CHECK)
                if not _still_wanted(worker, key):
                    raise Abandoned(f"task {key} was cancelled while it waited for the γ of attempt {pushed.attempt}")
                if check is not None:
                    check()
    finally:
        if seceded:
            rejoin()


def forget_inbox(address: str | None, token: str, up_to: int | None = None) -> None:
    """Drop the inbox's shares and claims of a run at a worker (None: every worker of this process): of the attempts
    up to ``up_to`` (whose shares are then no longer given away), or all."""
    with _INBOX_COND:
        for kept in (_INBOX, _CLAIMED):
            for slot in [s for s in kept
                         if address in (None, s[0]) and s[1] == token and (up_to is None or s[2] <= up_to)]:
                del kept[slot]
        if address is not None and up_to is not None:
            _FORGOTTEN[(address, token)] = max(int(up_to), _FORGOTTEN.get((address, token), -1))
        elif up_to is None:
            for marks in (_FORGOTTEN, _STARTED):
                for key in [k for k in marks if address in (None, k[0]) and k[1] == token]:
                    del marks[key]


def started(address: str, token: str, attempt: int) -> None:
    """This worker's task of ``attempt`` has started fitting it: a later task may take that attempt's γ."""
    with _INBOX_COND:
        _STARTED[(address, token)] = max(int(attempt), _STARTED.get((address, token), -1))
        _INBOX_COND.notify_all()
