"""The training schedule of online LDA: passes, chunks, mini-batches, learning rates, checkpoints.

A :class:`TrainingRun` is one ``update()`` call: its parameters and how far it
got; a :class:`Trainer` carries it out for a model that offers the small
:class:`Trainable` interface. ``on_mstep(run)`` is called after every M-step
(the command line evaluates held-out documents with it; it calls
:meth:`Trainer.sync` first). The run is saved in every checkpoint, so an
interrupted run can be resumed from the last checkpoint and end exactly where
the uninterrupted run would have: every random draw depends only on
``(seed, pass, document)``, and the run records the pass, the next document and
the learning-rate counter.

On a cluster the workers apply the M-steps and the model's own arrays lag
behind; the loop brings them up to date (``backend.sync()``) wherever the model
is read — evaluation, callbacks, checkpoints, the hook, the end — and, when
training stops on a failure, rolls the run's progress back to the M-steps the
model actually holds.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Protocol

from tqdm.auto import tqdm

from distlda.corpora.csr import iter_chunks
from distlda.core.estep import BatchStats, EStepBackend, EStepParams
from distlda.core.mstep import MStepPlan

logger = logging.getLogger(__name__)

__all__ = ["TrainingRun", "Trainable", "Trainer", "Position"]


@dataclass
class TrainingRun:
    """One ``update()`` call: its schedule and its progress (at the last completed M-step)."""

    lencorpus: int
    chunksize: int
    decay: float
    offset: float
    passes: int
    update_every: int
    eval_every: int
    iterations: int
    gamma_threshold: float
    pass_: int = 0
    next_doc: int = 0
    chunk_no: int = 0
    msteps: int = 0
    started: bool = False
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def progress(self) -> tuple[int, int, int, int]:
        """Where the run stands: pass, next document, chunk number, M-steps."""
        return self.pass_, self.next_doc, self.chunk_no, self.msteps

    def set_progress(self, progress: tuple[int, int, int, int]) -> None:
        self.pass_, self.next_doc, self.chunk_no, self.msteps = progress

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingRun":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


Progress = tuple[int, int, int, int]


class Trainable(Protocol):
    """What the training loop needs of a model, and all it touches.

    ``num_updates`` is gensim's count of documents behind the learning rate; the
    loop advances it after each M-step (not in extra passes) and sets it back
    when it rolls a run back.
    """

    num_updates: float

    def begin_training(self, run: "TrainingRun") -> None:
        """A new run starts: the model will stand for ``run.lencorpus`` more documents."""

    def estep_params(self, run: "TrainingRun") -> EStepParams:
        """The E-step's inputs for the next mini-batch (the model's current arrays)."""

    def plan_mstep(self, batch_docs: int, rho: float) -> MStepPlan:
        """The scalars of the M-step of a batch of ``batch_docs`` documents at learning rate ``rho``."""

    def apply_mstep(self, batch: BatchStats, plan: MStepPlan, params: EStepParams) -> None:
        """Apply the M-step of a batch whose statistics are here (``batch.raw`` is not None)."""

    def check_chunk(self, chunk: Any) -> None:
        """Raise ValueError when a chunk does not fit the model (an id outside its vocabulary...)."""

    def log_perplexity(self, chunk: Any, total_docs: int | None = None) -> float:
        """Estimate (and log) the perplexity of a chunk under the current model."""

    def save_checkpoint(self, run: "TrainingRun") -> None:
        """Save the model with ``run`` as its training progress."""


@dataclass(frozen=True)
class Position:
    """Where a model's arrays stand: the cluster's model version, the run's progress and ``num_updates``."""

    version: int | None
    progress: Progress
    num_updates: float


def _progress_bar(progress: bool | None, total: int, initial: int) -> Any:
    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, initial=initial, unit="doc", unit_scale=True, desc="training", dynamic_ncols=True,
                disable=not show)


class Trainer:
    """Carries out a :class:`TrainingRun` on a model through an E-step backend, from where the run stands.

    Parameters
    ----------
    model : Trainable
        The model to train.
    run : TrainingRun
        Schedule and progress; advanced after every M-step.
    backend : EStepBackend
        Where the E-step runs (this process, or a cluster whose workers also apply the M-steps).
    checkpoint_every : int, optional
        Save a checkpoint every this many M-steps (and at the end); None: never.
    on_mstep : callable, optional
        Called with the run after every M-step.
    on_pass_end : callable, optional
        Called with the pass number at the end of every pass, the model up to date.
    progress : bool, optional
        Show a progress bar (default: only on a terminal).
    """

    def __init__(self, model: Trainable, run: TrainingRun, backend: EStepBackend, *,
                 checkpoint_every: int | None = None, on_mstep: Callable[[TrainingRun], None] | None = None,
                 on_pass_end: Callable[[int], None] | None = None, progress: bool | None = None) -> None:
        self.model, self.run, self.backend = model, run, backend
        self.checkpoint_every = checkpoint_every
        self.on_mstep, self.on_pass_end, self.progress = on_mstep, on_pass_end, progress
        self.held = Position(None, run.progress(), model.num_updates)
        """The position of the model's own arrays."""
        self.lagging: list[Position] = []
        """Positions after M-steps that a cluster's workers applied and the model's arrays lack, oldest first."""

    def rho(self, pass_: int) -> float:
        """The learning rate of the next M-step in pass ``pass_``."""
        run = self.run
        return float((run.offset + pass_ + self.model.num_updates / run.chunksize) ** (-run.decay))

    def sync(self) -> None:
        """Bring the model's arrays up to the newest M-step (on a cluster: take them from the workers)."""
        if self.lagging:
            self.backend.sync(self.lagging[-1].version)
            self.held = self.lagging[-1]
            self.lagging.clear()

    def train(self, corpus: Any) -> None:
        """Train on ``corpus``; ValueError when it yields another number of documents than ``run.lencorpus``.

        On bad input (ValueError, TypeError) the exception passes through untouched for the model to restore
        itself; on any other interruption the run is first rolled back to the M-steps the model holds.
        """
        run, stats = self.run, self.backend.stats
        if not run.started:
            self.model.begin_training(run)
            run.started = True
        bar = _progress_bar(self.progress, run.passes * run.lencorpus, run.pass_ * run.lencorpus + run.next_doc)
        wall_started = time.perf_counter()
        try:
            while run.pass_ < run.passes:
                self._train_pass(corpus, bar)
            self.sync()
            run.finished = True
            if self.checkpoint_every:
                self.model.save_checkpoint(run)
        except (ValueError, TypeError):
            raise  # bad input: the model restores what it had before this update
        except BaseException:
            if self.lagging:  # keep every M-step the cluster can still give, and roll the run back to the rest
                self.roll_back()
            raise
        finally:
            stats.wall_seconds += time.perf_counter() - wall_started
            bar.close()

    def _train_pass(self, corpus: Any, bar: Any) -> None:
        run = self.run
        pass_, skip = run.pass_, run.next_doc
        batch_chunks = run.update_every if run.update_every else math.inf
        params = None  # a mini-batch starts with its first chunk, so no empty batch is ever sent
        pending = seen = 0
        for chunk_no, chunk in enumerate(iter_chunks(corpus, run.chunksize)):
            seen += chunk.n_docs
            if seen > run.lencorpus:
                raise ValueError(f"the corpus yielded more than its {run.lencorpus} documents in pass "
                                 f"{pass_ + 1}; its length must not change between passes")
            if seen <= skip:
                continue  # done before the checkpoint this run resumes from
            self.model.check_chunk(chunk)
            if run.eval_every and (seen == run.lencorpus or (chunk_no + 1) % run.eval_every == 0):
                self.sync()
                self.model.log_perplexity(chunk, total_docs=run.lencorpus)
            if params is None:
                params = self.model.estep_params(run)
                self.backend.start_batch(params)
            self.backend.submit(chunk, pass_)
            pending += 1
            bar.update(chunk.n_docs)
            if pending >= batch_chunks:
                self._finish_batch(pass_, params, seen, chunk_no + 1)
                params, pending = None, 0
        if seen != run.lencorpus:
            raise ValueError(f"the corpus yielded {seen} documents in pass {pass_ + 1} but had "
                             f"{run.lencorpus} before; its length must not change between passes (a generator "
                             "cannot be read twice: pass a list or a corpus object)")
        if pending:
            assert params is not None
            self._finish_batch(pass_, params, seen, run.chunk_no + pending)
        if self.on_pass_end is not None:
            self.sync()
            self.on_pass_end(pass_)
        run.pass_, run.next_doc, run.chunk_no = pass_ + 1, 0, 0

    def _finish_batch(self, pass_: int, params: EStepParams, seen: int, chunk_no: int) -> None:
        """Collect the batch, apply its M-step (or count the one a cluster's workers applied), advance the run."""
        run, model, stats = self.run, self.model, self.backend.stats
        # the plan of the M-step depends only on the batch's size: a cluster hands it to its workers with the
        # batch, and they apply the M-step
        rho = self.rho(pass_)
        batch, plan = self.backend.collect(lambda numdocs: model.plan_mstep(numdocs, rho))
        started = time.perf_counter()
        if batch.raw is not None:
            model.apply_mstep(batch, plan, params)
        if pass_ == 0:  # later passes do not advance the learning-rate schedule (gensim's extra passes)
            model.num_updates += batch.numdocs
        stats.mstep_seconds += time.perf_counter() - started
        stats.msteps += 1
        run.next_doc, run.chunk_no, run.msteps = seen, chunk_no, run.msteps + 1
        if batch.raw is None:
            self.lagging.append(Position(batch.version, run.progress(), model.num_updates))
        if self.checkpoint_every and run.msteps % self.checkpoint_every == 0:
            self.sync()
            model.save_checkpoint(run)
        if self.on_mstep is not None:
            self.on_mstep(run)

    def roll_back(self) -> None:
        """After a failure: the run's progress and ``num_updates`` go back to what the model's arrays hold, then
        forward to the newest M-step the cluster can still give."""
        run, model = self.run, self.model
        run.set_progress(self.held.progress)  # first, so that a second interruption leaves run and model consistent
        model.num_updates = self.held.num_updates
        try:
            reached = self.backend.sync(self.lagging[-1].version, strict=False)
        except BaseException as exc:  # noqa: BLE001 - already failing (even a second Ctrl-C): keep what we have
            logger.warning("could not take the model from the cluster: %r", exc)
            reached = getattr(self.backend, "held_version", None)
        for position in self.lagging:
            if position.version is not None and position.version == reached:
                self.held = position
        run.set_progress(self.held.progress)
        model.num_updates = self.held.num_updates
        lost = sum(1 for p in self.lagging if p.version is not None and reached is not None and p.version > reached)
        self.lagging.clear()
        if lost:
            logger.warning("the cluster was lost with the last %d M-steps: the model and the run go back to "
                           "M-step %d", lost, run.msteps)
