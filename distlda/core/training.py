"""The training schedule of online LDA: passes, chunks, mini-batches, learning rates, checkpoints.

A :class:`TrainingRun` is one ``update()`` call: its parameters and how far it
got. A model may set ``on_mstep(run)``, called after every M-step (the command
line uses it to evaluate held-out documents as training goes; it calls
``model.sync_training()`` first). It is saved in every checkpoint, so an
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
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from distlda.corpora.csr import iter_chunks, validate_chunk
from distlda.models.callbacks import Callback
from distlda.core.estep import EStepBackend, EStepParams

logger = logging.getLogger(__name__)

__all__ = ["TrainingRun", "run_training"]


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


def _progress_bar(progress: bool | None, total: int, initial: int) -> Any:
    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=total, initial=initial, unit="doc", unit_scale=True, desc="training", dynamic_ncols=True,
                disable=not show)


def run_training(model: Any, corpus: Any, run: TrainingRun, backend: EStepBackend) -> None:
    """Train ``model`` on ``corpus`` following ``run``, from where ``run`` stands.

    After each M-step the run's progress is advanced and, when the model asks
    for it, a checkpoint is written. Raises ValueError when the corpus yields a
    different number of documents than ``run.lencorpus``.
    """
    batch_chunks = run.update_every if run.update_every else math.inf
    logger.info("training LDA: %i topics, %i passes over %i documents, %s, mini-batches of %s documents, "
                "%s E-step%s", model.num_topics, run.passes, run.lencorpus, "online" if run.update_every else "batch",
                run.update_every * run.chunksize if run.update_every else "all",
                "distributed" if model.distributed else f"{model.threads}-thread",
                f", resuming at pass {run.pass_ + 1} document {run.next_doc}" if run.started else "")
    if not run.started:
        model.state.numdocs += run.lencorpus
        run.started = True
    callback = None
    if model.callbacks:
        callback = Callback(model.callbacks)
        callback.set_model(model)
    bar = _progress_bar(model.progress, run.passes * run.lencorpus, run.pass_ * run.lencorpus + run.next_doc)

    def rho(pass_: int) -> float:
        return float((run.offset + pass_ + model.num_updates / run.chunksize) ** (-run.decay))

    def start() -> EStepParams:
        params = EStepParams(model.expElogbeta_wm, np.asarray(model.alpha, dtype=model.dtype), run.iterations,
                             run.gamma_threshold, model._seed, model.optimize_alpha)
        backend.start_batch(params)
        return params

    stats = backend.stats
    wall_started = time.perf_counter()
    # (model version, run progress, model.num_updates) where the model's arrays stand, and after each M-step
    # made on a cluster that they lack
    held: tuple[int | None, tuple[int, int, int, int], float] = (None, run.progress(), model.num_updates)
    lagging: list[tuple[int | None, tuple[int, int, int, int], float]] = []

    def catch_up() -> None:
        nonlocal held
        if lagging:
            backend.sync(lagging[-1][0])
            held = lagging[-1]
            lagging.clear()

    def roll_back() -> None:
        """After a failure: the run's progress and update count go back to what the model's arrays hold, then
        forward to the newest M-step the cluster can still give."""
        nonlocal held
        run.set_progress(held[1])  # first, so that a second interruption leaves run and model consistent
        model.num_updates = held[2]
        try:
            reached = backend.sync(lagging[-1][0], strict=False)
        except BaseException as exc:  # noqa: BLE001 - already failing (even a second Ctrl-C): keep what we have
            logger.warning("could not take the model from the cluster: %r", exc)
            reached = getattr(backend, "held_version", None)
        for entry in lagging:
            if entry[0] is not None and entry[0] == reached:
                held = entry
        run.set_progress(held[1])
        model.num_updates = held[2]
        lost = sum(1 for entry in lagging if entry[0] is not None and reached is not None and entry[0] > reached)
        if lost:
            logger.warning("the cluster was lost with the last %d M-steps: the model and the run go back to "
                           "M-step %d", lost, run.msteps)

    def finish(pass_: int, params: EStepParams, seen: int, chunk_no: int) -> None:
        # the plan of the M-step depends only on the batch's size: a cluster hands it to its workers with the
        # batch, and they apply the M-step
        batch, plan = backend.collect(lambda numdocs: model._plan_mstep(numdocs, rho(pass_)))
        started = time.perf_counter()
        model._apply_mstep(batch, plan, pass_ > 0, params)
        stats.mstep_seconds += time.perf_counter() - started
        stats.msteps += 1
        run.next_doc, run.chunk_no, run.msteps = seen, chunk_no, run.msteps + 1
        if batch.raw is None:
            lagging.append((batch.version, run.progress(), model.num_updates))
        if model._checkpoint_due(run):
            catch_up()
            model._maybe_checkpoint(run)
        hook = getattr(model, "on_mstep", None)
        if hook is not None:
            hook(run)

    model._sync_training = catch_up

    try:
        while run.pass_ < run.passes:
            pass_ = run.pass_
            skip = run.next_doc
            params = None  # a mini-batch starts with its first chunk, so no empty batch is ever sent
            pending = 0
            seen = 0
            for chunk_no, chunk in enumerate(iter_chunks(corpus, run.chunksize)):
                seen += chunk.n_docs
                if seen > run.lencorpus:
                    raise ValueError(f"the corpus yielded more than its {run.lencorpus} documents in pass "
                                     f"{pass_ + 1}; its length must not change between passes")
                if seen <= skip:
                    continue  # done before the checkpoint this run resumes from
                validate_chunk(chunk, model.num_terms)
                if run.eval_every and (seen == run.lencorpus or (chunk_no + 1) % run.eval_every == 0):
                    catch_up()
                    model.log_perplexity(chunk, total_docs=run.lencorpus)
                if params is None:
                    params = start()
                backend.submit(chunk, pass_)
                pending += 1
                bar.update(chunk.n_docs)
                if pending >= batch_chunks:
                    finish(pass_, params, seen, chunk_no + 1)
                    params = None
                    pending = 0
            if seen != run.lencorpus:
                raise ValueError(f"the corpus yielded {seen} documents in pass {pass_ + 1} but had "
                                 f"{run.lencorpus} before; its length must not change between passes (a generator "
                                 "cannot be read twice: pass a list or a corpus object)")
            if pending:
                assert params is not None
                finish(pass_, params, seen, run.chunk_no + pending)
            if callback is not None:
                catch_up()
                for name, value in callback.on_epoch_end(pass_).items():
                    model.metrics[name].append(value)
            run.pass_, run.next_doc, run.chunk_no = pass_ + 1, 0, 0
        catch_up()
        run.finished = True
        model._maybe_checkpoint(run, force=True)
    except (ValueError, TypeError):
        raise  # bad input: the model restores what it had before this update
    except BaseException:
        if lagging:  # keep every M-step the cluster can still give, and roll the run back to the rest
            roll_back()
        raise
    finally:
        model._sync_training = None
        stats.wall_seconds += time.perf_counter() - wall_started
        model.training_stats = stats.as_dict()
        bar.close()
