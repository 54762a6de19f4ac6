"""The training loop (core.training.Trainer) with a model and a backend in this process: schedule, checkpoints,
and the rollback after a cluster is lost, without starting any process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from distlda.core.estep import BatchStats, EStepParams, TrainingStats
from distlda.core.training import Trainer, TrainingRun

DOCS = [[(0, 1)] for _ in range(10)]


@dataclass
class FakeModel:
    """A Trainable that records what the loop asks of it."""

    num_updates: float = 0.0
    numdocs: int = 0
    applied: list[int] = field(default_factory=list)
    checkpoints: list[tuple[int, int, int, int]] = field(default_factory=list)
    plans: list[tuple[int, float]] = field(default_factory=list)

    def begin_training(self, run: TrainingRun) -> None:
        self.numdocs += run.lencorpus

    def estep_params(self, run: TrainingRun) -> EStepParams:
        return EStepParams(np.ones((1, 2), dtype=np.float32), np.ones(2, dtype=np.float32), run.iterations,
                           run.gamma_threshold, 0)

    def plan_mstep(self, batch_docs: int, rho: float) -> Any:
        self.plans.append((batch_docs, rho))
        return ("plan", batch_docs)

    def apply_mstep(self, batch: BatchStats, plan: Any, params: EStepParams) -> None:
        self.applied.append(batch.numdocs)

    def check_chunk(self, chunk: Any) -> None:
        pass

    def log_perplexity(self, chunk: Any, total_docs: int | None = None) -> float:
        return 1.0

    def save_checkpoint(self, run: TrainingRun) -> None:
        self.checkpoints.append(run.progress())


class FakeCluster:
    """An E-step backend that behaves as a cluster does: its workers apply the M-steps (``raw`` is None), the
    model's arrays lag until ``sync``, and it can be lost at a chosen M-step with only some M-steps recoverable."""

    def __init__(self, lost_at: int | None = None, recoverable: int = 0,
                 sync_fails: bool = False, local: bool = False) -> None:
        self.stats = TrainingStats()
        self.lost_at, self.recoverable, self.sync_fails, self.local = lost_at, recoverable, sync_fails, local
        self.version = 0
        self.held_version = 0
        self.pending = 0
        self.synced: list[int | None] = []

    def use_corpus(self, corpus: Any) -> None:
        pass

    def start_batch(self, params: EStepParams) -> None:
        self.pending = 0

    def submit(self, chunk: Any, pass_: int) -> None:
        self.pending += chunk.n_docs

    def collect(self, plan_for: Callable[[int], Any]) -> tuple[BatchStats, Any]:
        if self.lost_at is not None and self.version + 1 == self.lost_at:
            raise ConnectionError("the cluster is gone")
        self.version += 1
        raw = np.zeros((1, 2), dtype=np.float32) if self.local else None
        return BatchStats(raw=raw, numdocs=self.pending, version=None if self.local else self.version), \
            plan_for(self.pending)

    def sync(self, version: int | None = None, strict: bool = True) -> int | None:
        if self.local:
            return None
        if not strict:
            if self.sync_fails:
                raise ConnectionError("no worker answers")
            self.held_version = min(version, self.recoverable)
            return self.held_version
        self.synced.append(version)
        self.held_version = version
        return version

    def close(self, answered: bool = True) -> None:
        pass


def _run(**kwargs: Any) -> TrainingRun:
    params = dict(lencorpus=len(DOCS), chunksize=1, decay=0.5, offset=1.0, passes=2, update_every=2, eval_every=0,
                  iterations=5, gamma_threshold=0.001)
    params.update(kwargs)
    return TrainingRun(**params)


def test_local_schedule_counts_updates_in_the_first_pass_only() -> None:
    model, backend, run = FakeModel(), FakeCluster(local=True), _run()
    Trainer(model, run, backend).train(DOCS)
    assert model.applied == [2] * 10  # 5 mini-batches of 2 documents per pass, 2 passes
    assert model.num_updates == 10  # gensim's extra passes do not advance the schedule
    assert model.numdocs == 10
    assert run.finished and run.pass_ == 2 and run.msteps == 10
    # rho = (offset + pass + num_updates / chunksize) ** -decay, evaluated before each M-step
    assert model.plans[0] == (2, 1.0) and model.plans[1] == (2, pytest.approx(3.0 ** -0.5))
    assert model.plans[5] == (2, pytest.approx((1.0 + 1 + 10) ** -0.5))


def test_checkpoints_every_k_msteps_and_at_the_end() -> None:
    model, backend = FakeModel(), FakeCluster()
    run = _run(passes=1)
    Trainer(model, run, backend, checkpoint_every=2).train(DOCS)
    assert model.checkpoints == [(0, 4, 4, 2), (0, 8, 8, 4), (1, 0, 0, 5)]
    assert backend.synced[-1] == 5  # the model took the workers' arrays before each checkpoint and at the end


@pytest.mark.parametrize("cluster, progress, held", [
    # M-steps 1-4 were collected, only 2 can still be had: run and num_updates stand at M-step 2
    (dict(lost_at=5, recoverable=2), (0, 4, 4, 2), 2),
    # the cluster cannot even be asked: the model holds none of its M-steps, the run goes back to its start
    (dict(lost_at=4, sync_fails=True), (0, 0, 0, 0), None),
])
def test_a_lost_cluster_rolls_the_run_back_to_what_it_can_still_give(cluster, progress, held) -> None:
    model, backend = FakeModel(), FakeCluster(**cluster)
    run = _run(passes=1)
    trainer = Trainer(model, run, backend)
    with pytest.raises(ConnectionError):
        trainer.train(DOCS)
    assert run.progress() == progress
    assert model.num_updates == progress[1]  # one document per chunk, every M-step in the first pass
    assert trainer.held.version == held and trainer.lagging == []
    assert not run.finished


def test_on_mstep_and_on_pass_end_see_the_model_up_to_date() -> None:
    model, backend = FakeModel(), FakeCluster()
    seen: list[tuple[str, Any]] = []
    run = _run()
    trainer = Trainer(model, run, backend, on_mstep=lambda r: seen.append(("mstep", r.msteps)),
                      on_pass_end=lambda p: seen.append(("pass", p, backend.held_version)))
    trainer.train(DOCS)
    assert [s for s in seen if s[0] == "pass"] == [("pass", 0, 5), ("pass", 1, 10)]
    assert [s[1] for s in seen if s[0] == "mstep"] == list(range(1, 11))


def test_a_corpus_that_changes_length_is_bad_input_and_is_not_rolled_back() -> None:
    class Shrinking:
        def __init__(self) -> None:
            self.reads = 0

        def __len__(self) -> int:
            return len(DOCS)

        def __iter__(self):  # noqa: ANN204
            self.reads += 1
            return iter(DOCS if self.reads == 1 else DOCS[:5])

    model, backend = FakeModel(), FakeCluster()
    run = _run()
    with pytest.raises(ValueError, match="yielded 5 documents in pass 2"):
        Trainer(model, run, backend).train(Shrinking())
    assert run.progress() == (1, 4, 4, 7)  # as far as it got: the model restores its own snapshot


def test_resume_skips_the_documents_done_before_the_checkpoint() -> None:
    model, backend = FakeModel(), FakeCluster(local=True)
    run = _run(passes=1)
    run.started, run.next_doc, run.chunk_no, run.msteps = True, 6, 6, 3
    Trainer(model, run, backend).train(DOCS)
    assert model.applied == [2, 2]  # documents 6-9 only
    assert model.numdocs == 0  # a resumed run does not count its corpus twice
    assert run.msteps == 5
