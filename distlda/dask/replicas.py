"""The worker side of the Dask backend: one model replica per Dask worker, and the tasks that use it.

A replica starts from a :class:`Base` (the full statistics and priors at a version, fetched by each worker
once) and follows the run by replaying *recipes*: for each M-step, the batch's documents (a document range of a
binary corpus every worker reads, or the chunks themselves) with the γ every task fitted, and the M-step's plan.
The replay is :func:`distlda.core.mstep.replay_mstep` over the batch's chunks, each reduced whole, in document
order, as a local run reduces them, so every replica stays bitwise equal to the model a local run makes.

An E-step task carries the base and the recipes its worker's replica lacks (usually just the previous M-step's,
whose γ the previous batch's tasks pushed to this worker's inbox, :mod:`distlda.dask.exchange`; older ones as
Dask futures); a replica that
lacks more than that (its worker was replaced under the same address) raises :class:`ReplicaBehind`, and the
client starts every replica again from a new base. The model task of a sync, which runs on any worker, carries
every recipe since the base: a replica that is behind replays what it lacks, one of another run or ahead of the
task is rebuilt from the base.

The replicas live in the worker process (:data:`_HOLDERS`, keyed by the training run's token), not in a Dask
actor: an actor is lost with its worker and Dask does not recreate it, while worker-local state is rebuilt from
a base.

The client uses the same :class:`DaskReplica` to replay, on its own arrays, the M-steps it has the γ of, when
the scheduler is gone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from distlda.core.estep import fit_documents, kernel_threads, resolve_threads
from distlda.core.mstep import ModelArrays, MStepPlan, eta_wm, replay_mstep
from distlda.corpora.binary import BinaryCorpus
from distlda.corpora.csr import CsrChunk
from distlda.dask.exchange import (Pushed, PushInFlight, Shares, await_pieces, check_wanted, claim, delivered,
                                   deposit, forget_inbox, install_inbox, push, ShareLost, started, take_share)
from distlda.kernels.mstep import topic_expectations

logger = logging.getLogger(__name__)

__all__ = ["Base", "BatchDocs", "DaskReplica", "GroupResult", "estep_task", "model_task", "take_snapshot", "forget_run", "can_read",
           "share_pieces", "own_shares", "in_share_order", "Recipe", "ReplicaBehind", "held"]

Recipe = tuple
"""``(version, batch, docs, gammas, plan)``: the M-step that makes ``version``; ``batch`` the mini-batch's
description (see :meth:`DaskReplica.chunks`), ``docs`` its :class:`BatchDocs` or None when ``batch["ref"]`` names
a binary corpus, ``gammas[s][c]`` the γ of share ``s``'s documents in chunk ``c`` (a share touches one chunk or
two), or, when ``batch["slot"]`` is set, the results of the batch's tasks: ``gammas[t].shares[slot]`` the
:data:`~distlda.dask.exchange.Shares` task ``t`` fitted of batch number ``slot`` of its group; ``plan`` the
:class:`MStepPlan` as a dict. A plain tuple, so that Dask finds the futures inside it."""


@dataclass(frozen=True)
class GroupResult:
    """What a worker's task returns for a group of mini-batches: the :data:`~distlda.dask.exchange.Shares` it
    fitted of each batch, and, when the client asked for it, ``snapshot``: the version of the copy of the model
    the task kept, as it was before the group's first batch (the client's next base, taken with
    :func:`take_snapshot`: in the result itself it would travel with every later fetch of the result)."""

    shares: list[Shares]
    snapshot: int | None = None


class ReplicaBehind(RuntimeError):
    """A task carried only the recipes its worker's replica was known to lack, and the replica lacks more (its
    worker was replaced under the same address): the client starts every replica again from a new base."""


@dataclass(frozen=True)
class Base:
    """The full model at a version of a run (lineage): what a replica starts from."""

    lineage: str
    version: int
    sstats_wm: np.ndarray
    eta: np.ndarray
    alpha: np.ndarray


@dataclass(frozen=True)
class BatchDocs:
    """The chunks of one mini-batch, when the workers cannot read them from a binary corpus (one object, so that
    Dask moves it as one)."""

    chunks: tuple[CsrChunk, ...]


def share_pieces(sizes: Sequence[int], shares: int, number: int) -> list[tuple[int, int, int]]:
    """The pieces of share ``number`` of a batch whose chunks hold ``sizes`` documents, cut into ``shares`` runs of
    consecutive documents (across chunks): ``(chunk, lo, hi)``, documents ``lo..hi`` relative to the chunk. A share
    touches one or two chunks, so that a worker fits few, long pieces."""
    total = sum(sizes)
    lo, hi = number * total // shares, (number + 1) * total // shares
    pieces, offset = [], 0
    for chunk, size in enumerate(sizes):
        first, last = max(lo, offset), min(hi, offset + size)
        if first < last:
            pieces.append((chunk, first - offset, last - offset))
        offset += size
    return pieces


def own_shares(batch: dict[str, Any], number: int) -> range:
    """The shares task ``number`` of a batch owns: its run of ``batch["pieces"]`` shares, cut evenly among the
    batch's workers."""
    per_worker = max(1, int(batch["pieces"]) // max(1, len(batch.get("workers") or [None])))
    return range(number * per_worker, (number + 1) * per_worker)


def in_share_order(fitted: Sequence[Shares], pieces: int) -> list[dict[int, np.ndarray]]:
    """The γ of each of the ``pieces`` shares of a batch, in share order, from what each task fitted."""
    shares: Shares = {}
    for part in fitted:
        shares.update(part)
    if sorted(shares) != list(range(pieces)):
        raise RuntimeError(f"the tasks of a mini-batch fitted shares {sorted(shares)}, not each of 0..{pieces - 1}")
    return [shares[number] for number in range(pieces)]


class DaskReplica:
    """The model arrays at a position (lineage, version), and the binary corpora it reads documents from."""

    def __init__(self) -> None:
        self.arrays: ModelArrays | None = None
        self.lineage: str | None = None
        self.version: int | None = None
        self._corpora: dict[str, BinaryCorpus] = {}

    def start_from(self, base: Base) -> None:
        """Take copies of the base's statistics and priors (the base itself stays as Dask holds it)."""
        sstats = np.array(base.sstats_wm, order="C")
        eta, alpha = np.array(base.eta, dtype=sstats.dtype), np.array(base.alpha, dtype=sstats.dtype)
        exp_elogbeta = np.empty_like(sstats)
        topic_expectations(sstats, eta_wm(eta, sstats.dtype), exp_elogbeta)
        self.arrays = ModelArrays(sstats, eta, alpha, exp_elogbeta)
        self.lineage, self.version = base.lineage, int(base.version)

    def bring_to(self, base: Base, recipes: Sequence[Recipe], first: int | None = None) -> None:
        """Bring the replica to the version after ``recipes``, the recipes after version ``first`` (default: the
        base's). A replica of another run, or past that version, is rebuilt from the base when the recipes start
        there; otherwise :class:`ReplicaBehind`."""
        first = base.version if first is None else int(first)
        target = first + len(recipes)
        if self.lineage != base.lineage or self.version is None or not first <= self.version <= target:
            if first != base.version:
                raise ReplicaBehind(f"the replica is at {self.lineage}/{self.version}; the task carries the "
                                    f"recipes of {base.lineage} from version {first} to {target}")
            if self.version is not None:
                logger.info("replica at %s/%s rebuilt from the base at version %d", self.lineage, self.version,
                            base.version)
            self.start_from(base)
        assert self.version is not None
        for recipe in recipes[self.version - first:]:
            self.apply(recipe)

    def apply(self, recipe: Recipe) -> None:
        """Replay one M-step: the batch's statistics rebuilt chunk by chunk from the γ of every task."""
        version, batch, docs, gammas, plan = recipe
        if self.arrays is None or self.version is None or version != self.version + 1:
            raise RuntimeError(f"recipe for version {version} on a replica at version {self.version}")
        chunks = self.chunks(batch, docs)
        if batch.get("slot") is not None:  # each task's result holds its group's batches: this batch's shares
            gammas = in_share_order([task.shares[batch["slot"]] for task in gammas], batch["pieces"])
        parts = [[(chunk, np.concatenate([share[c] for share in gammas if c in share]))] for c, chunk in enumerate(chunks)]
        replay_mstep(self.arrays, parts, MStepPlan.from_dict(plan))
        self.version = version
        self._release(batch)

    def chunks(self, batch: dict[str, Any], docs: BatchDocs | None) -> list[CsrChunk]:
        """The chunks of a batch: ``docs``, or ``batch["ranges"]`` (``[first, stop)`` per chunk) read from the
        binary corpus ``batch["ref"]``."""
        if docs is not None:
            return list(docs.chunks)
        corpus = self.corpus(batch["ref"])
        return [corpus.read_range(first, stop) for first, stop in batch["ranges"]]

    def corpus(self, path: str) -> BinaryCorpus:
        """The binary corpus at ``path``, opened once (its shards are checked when first read)."""
        if path not in self._corpora:
            self._corpora[path] = BinaryCorpus(Path(path), verify="on first use")
        return self._corpora[path]

    def _release(self, batch: dict[str, Any]) -> None:
        """Let the pages of a batch's documents go: a worker would otherwise come to hold the whole corpus."""
        if batch.get("ref") is not None:
            corpus = self.corpus(batch["ref"])
            for first, stop in batch["ranges"]:
                corpus.release(first, stop)


class _Holder:
    """A worker's replica for one training run, the lock that keeps two tasks from using it at once, and the copy
    of the model a task kept for the client's next base."""

    def __init__(self) -> None:
        self.replica = DaskReplica()
        self.lock = threading.Lock()
        self.snapshot: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None


_HOLDERS: dict[tuple[str, str], _Holder] = {}
"""The replicas of this process, by (worker address, run token): a process may host several workers."""
_HOLDERS_LOCK = threading.Lock()


def _holder(token: str) -> _Holder:
    from distributed import get_worker

    key = (get_worker().address, token)
    with _HOLDERS_LOCK:
        if key not in _HOLDERS:
            _HOLDERS[key] = _Holder()
        return _HOLDERS[key]


def _worker_threads() -> int | None:
    """The threads this Dask worker was given (``--nthreads``): the cores the E-step may use here. Recent
    versions of distributed keep them in the worker's state only; without them every worker of a host would run
    its kernels on every core."""
    from distributed import get_worker

    worker = get_worker()
    for threads in (getattr(getattr(worker, "state", None), "nthreads", None), getattr(worker, "nthreads", None)):
        if isinstance(threads, int) and threads > 0:
            return threads
    return None


def estep_task(token: str, base: Base, first: int, recipes: list[Recipe], number: int,
               batches: list[tuple[int, dict[str, Any], BatchDocs | None, dict[str, Any]]],
               snapshot: bool = False) -> GroupResult:
    """One worker's part of a group of mini-batches: the shares task ``number`` owns of each batch in ``batches``
    (``(version, batch, docs, plan)`` in order) that no peer took, and those it takes from its peers. Brings this
    worker's replica to the first batch's version with ``recipes`` (those after version ``first``; the last one's
    γ may be :class:`~distlda.dask.exchange.Pushed` to this worker's inbox); after fitting a batch, pushes its γ to
    the batch's other workers (``batch["workers"]``) and, before the next batch, replays its M-step with their γ.
    Returns, per batch, the :data:`~distlda.dask.exchange.Shares` it fitted, and with ``snapshot`` keeps a copy of
    the model before the first batch for :func:`take_snapshot`."""
    from distributed import get_worker

    worker = get_worker()
    install_inbox(worker)
    holder = _holder(token)
    carried = recipes
    recipes = _unpack_pushed(worker.address, token, holder, carried)
    fitted: list[Shares] = []
    # the replay too runs on the worker's share of the cores: on all of them, the workers of one host would each
    # start a thread per core for every M-step they replay at the same moment
    with holder.lock, kernel_threads(resolve_threads(batches[0][1]["threads"] or _worker_threads())):
        replica = holder.replica
        replica.bring_to(base, recipes, first)
        _forget_pushed(worker.address, token, carried)
        snapshot_version = None
        if snapshot:  # a copy for the client's next base, taken by take_snapshot
            holder.snapshot = _model_of(replica)
            snapshot_version = holder.snapshot[0]
        # this task's pushes whose answers have not come: looked at whenever the task waits for its peers' γ,
        # waited for at its end (not after each batch: an answer takes a message back, a millisecond or two)
        pushes: list[PushInFlight] = []
        for version, batch, docs, plan in batches:
            if fitted:  # the previous batch of the group: its M-step, with the γ its tasks pushed here
                check_wanted()  # (a cancelled task whose peers' γ is in would go on for nothing)
                before, before_batch, before_docs, before_plan = batches[len(fitted) - 1]
                previous = (before, before_batch, before_docs, Pushed.of(before_batch), before_plan)
                recipes = _unpack_pushed(worker.address, token, holder, [previous], _refused(pushes))
                pushes = _unanswered(pushes)
                for recipe in recipes:
                    replica.apply(recipe)
                _forget_pushed(worker.address, token, [previous])
            assert replica.arrays is not None and replica.version == version - 1
            own = _fit_own(worker, token, replica, number, batch, docs)
            pushes.extend(_hand_on(worker, token, batch, own))  # at once: on a slow link it moves while this
            taken = _fit_theirs(worker, token, replica, number, batch, docs)  # task fits its peers' leftovers
            pushes.extend(_hand_on(worker, token, batch, taken))
            fitted.append({**own, **taken})
    for pushing in pushes:
        _pushed_or_behind(pushing)
    return GroupResult(fitted, snapshot_version)


def _model_of(replica: DaskReplica) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(version, sstats_wm, eta, alpha)`` of the replica, copied (the replica goes on)."""
    arrays = replica.arrays
    assert arrays is not None and replica.version is not None
    return replica.version, arrays.sstats_wm.copy(), np.array(arrays.eta), np.array(arrays.alpha)


def _unpack_pushed(address: str, token: str, holder: _Holder, recipes: list[Recipe],
                   check: Callable[[], None] | None = None) -> list[Recipe]:
    """``recipes`` with a last recipe whose γ was pushed given its γ from the inbox, once every share is in (not
    waited for when the replica is already past it; ``check`` as for
    :func:`~distlda.dask.exchange.await_pieces`). The inbox is emptied by :func:`_forget_pushed` once the recipe
    has been applied."""
    if not recipes or not isinstance(recipes[-1][3], Pushed):
        return recipes
    version, batch, docs, pushed, plan = recipes[-1]

    def needless() -> bool:
        replica = holder.replica
        return replica.lineage == token and replica.version is not None and replica.version >= version

    gammas = await_pieces(address, token, pushed, needless, check)
    if gammas is None:
        return recipes[:-1]
    return recipes[:-1] + [(version, dict(batch, slot=None), docs, gammas, plan)]


def _forget_pushed(address: str, token: str, recipes: list[Recipe]) -> None:
    """Drop from the inbox the γ of the recipes' pushed batch (and anything older) once it has been applied."""
    if recipes and isinstance(recipes[-1][3], Pushed):
        forget_inbox(address, token, up_to=recipes[-1][3].attempt)


def _fit_own(worker: Any, token: str, replica: DaskReplica, number: int, batch: dict[str, Any],
             docs: BatchDocs | None) -> Shares:
    """γ of the shares task ``number`` owns of a batch, each claimed first (a peer may have taken it)."""
    attempt = batch.get("attempt")
    fitted: Shares = {}
    if attempt is not None:
        started(worker.address, token, attempt)
    for share in own_shares(batch, number):
        if attempt is None or claim(worker.address, token, attempt, range(share, share + 1)) is not None:
            fitted[share] = _fit_share(replica, share, batch, docs)
    return fitted


def _fit_theirs(worker: Any, token: str, replica: DaskReplica, number: int, batch: dict[str, Any],
                docs: BatchDocs | None) -> Shares:
    """γ of shares task ``number``'s peers have not started, taken from them while they have some (see
    :mod:`distlda.dask.exchange`)."""
    attempt = batch.get("attempt")
    fitted: Shares = {}
    if attempt is None:
        return fitted
    workers = batch["workers"]
    # the peers after this one first (two idle workers ask different peers); a peer with none left ends the search:
    # the others are most likely as far, and each request costs both event loops a message
    for step in range(1, len(workers)):
        peer = (number + step) % len(workers)
        theirs = own_shares(batch, peer)
        while not delivered(worker.address, token, attempt, theirs):
            try:
                share = take_share(worker, workers[peer], token, attempt, theirs)
            except ShareLost as exc:  # (a share may be claimed for nobody: the batch runs again)
                raise ReplicaBehind(str(exc)) from None
            if share is None:
                return fitted
            fitted[share] = _fit_share(replica, share, batch, docs)
    return fitted


def _fit_share(replica: DaskReplica, share: int, batch: dict[str, Any], docs: BatchDocs | None) -> dict[int, np.ndarray]:
    """γ of share ``share`` of the batch, by chunk (the chunks it touches), on the replica as it is."""
    arrays = replica.arrays
    assert arrays is not None
    gammas = {}
    for chunk, lo, hi in share_pieces([stop - start for start, stop in batch["ranges"]], batch["pieces"], share):
        if docs is None:
            start = batch["ranges"][chunk][0]
            piece = replica.corpus(batch["ref"]).read_range(start + lo, start + hi)
        else:
            piece = docs.chunks[chunk].slice(lo, hi)
        gammas[chunk], _ = fit_documents(piece, arrays.exp_elogbeta, arrays.alpha, batch["seed"], batch["pass"],
                                         batch["iterations"], batch["gamma_threshold"])
    return gammas


def _hand_on(worker: Any, token: str, batch: dict[str, Any], shares: Shares) -> list[PushInFlight]:
    """Keep the shares this task fitted of a batch in this worker's inbox and start pushing them to the batch's
    other workers (their next task takes them there); see :func:`_pushed_or_behind` for the answers."""
    peers = [address for address in batch.get("workers", ()) if address != worker.address]
    attempt = batch.get("attempt")
    if attempt is None or not shares:
        return []
    deposit(worker.address, token, attempt, shares)
    return [push(worker, peers, token, attempt, shares)]


def _refused(pushes: list[PushInFlight]) -> Callable[[], None]:
    """A check for :func:`~distlda.dask.exchange.await_pieces`: once the peers have answered a push, a refusal
    raises :class:`ReplicaBehind` (a peer that did not take this worker's γ will not send its own either)."""
    def check() -> None:
        _unanswered(pushes)
    return check


def _unanswered(pushes: list[PushInFlight]) -> list[PushInFlight]:
    """The pushes whose answers have not all come; :class:`ReplicaBehind` when one that has was refused."""
    for pushing in pushes:
        if pushing.answered():
            _pushed_or_behind(pushing)
    return [pushing for pushing in pushes if not pushing.answered()]


def _pushed_or_behind(pushing: PushInFlight) -> None:
    """Wait for the answers to a push: :class:`ReplicaBehind` when a peer did not take it, so that the client
    starts again from a base."""
    failed = pushing.failed()
    if failed:
        raise ReplicaBehind(f"the Dask workers {failed} did not take the γ of mini-batch attempt {pushing.attempt}")


def model_task(token: str, base: Base, recipes: list[Recipe],
               threads: int | None = None) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The model after ``recipes``, from this worker's replica (replayed on ``threads`` threads, default the
    worker's own): ``(version, sstats_wm, eta, alpha)``."""
    holder = _holder(token)
    with holder.lock, kernel_threads(resolve_threads(threads or _worker_threads())):
        replica = holder.replica
        replica.bring_to(base, recipes)
        return _model_of(replica)


def take_snapshot(token: str, version: int, dask_worker: Any = None) -> tuple | None:
    """The copy of the model at ``version`` a task of run ``token`` kept on this worker (``client.run`` passes
    ``dask_worker``), handed over once; None when there is none."""
    with _HOLDERS_LOCK:
        holder = _HOLDERS.get((dask_worker.address, token))
    if holder is None or holder.snapshot is None or holder.snapshot[0] != int(version):
        return None
    snapshot, holder.snapshot = holder.snapshot, None
    return snapshot


def held(value: Any) -> Any:
    """The task that holds a base or a batch's documents: the value travels in the task itself, so the scheduler
    can compute it again on another worker when the worker that held it is lost (data scattered to a worker is
    lost with it)."""
    return value


def forget_run(token: str, dask_worker: Any = None) -> int:
    """Drop this worker's replica of a finished run (``client.run`` passes ``dask_worker``); returns how many."""
    with _HOLDERS_LOCK:
        keys = [key for key in _HOLDERS if key[1] == token]
        for key in keys:
            del _HOLDERS[key]
    forget_inbox(None, token)
    return len(keys)


def can_read(path: str, fingerprint: dict[str, Any]) -> bool:
    """Whether this process reads the binary corpus at ``path`` with this fingerprint."""
    try:
        return BinaryCorpus(Path(path), verify="on first use").fingerprint() == fingerprint
    except (OSError, ValueError) as exc:
        logger.info("cannot read the corpus %s: %s", path, exc)
        return False
