"""`distlda train` stopped early (SIGTERM, a lost cluster) saves the model and a checkpoint, prints the command that
resumes it, exits with its documented code, and the resumed run equals the uninterrupted one bit for bit."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distlda.cli.main import main
from distlda.models import LdaModel

TRAIN = ["--topics", "6", "--passes", "3", "--chunksize", "50", "--seed", "3", "--eval-every", "1"]
"""81 M-steps, each reported by a line: more output than the 4 KiB pipe the tests give the process (below)."""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from distlda.datasets.sample import iter_sample_documents

    root = tmp_path_factory.mktemp("stops")
    texts = [text for _, text in iter_sample_documents()][:1500]
    (root / "docs.txt").write_text("\n".join(texts) + "\n")
    assert main(["prepare", str(root / "docs.txt"), "--out", str(root / "prep"), "--holdout", "0.1",
                 "--no-below", "3"]) == 0
    return root


@pytest.fixture(scope="module")
def uninterrupted(prepared) -> LdaModel:
    assert main(["train", str(prepared / "prep"), *TRAIN, "--out", str(prepared / "whole.lda")]) == 0
    assert not (prepared / "whole.lda.ckpt").exists()  # a finished run leaves no checkpoint behind
    return LdaModel.load(str(prepared / "whole.lda"))


def start_training(cwd: Path, *args: str) -> subprocess.Popen:
    """`distlda train` whose stderr pipe holds only 4 KiB: once the test stops reading, the process blocks on its
    next report, so it cannot finish before the test acts on the line it read."""
    proc = subprocess.Popen([sys.executable, "-m", "distlda", "train", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    fcntl.fcntl(proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    return proc


def read_until(proc: subprocess.Popen, pattern: str) -> str:
    """stderr of ``proc`` up to the first line matching ``pattern``."""
    seen = ""
    while not re.search(pattern, seen):
        line = proc.stderr.readline()
        assert line, f"the process ended before {pattern!r}: {seen}"
        seen += line
    return seen


def finish(proc: subprocess.Popen, before: str, timeout: float = 180) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, before + err


def check_stopped_run(root: Path, out: str, err: str, name: str, stopped: str, extra: str = "") -> None:
    """The model and the checkpoint are saved, and the printed command resumes from the checkpoint."""
    assert f"saved the model to {name}" in out
    assert f"distlda train prep --resume {name}.ckpt --out {name}{extra}" in err
    saved, checkpoint = LdaModel.load(str(root / name)), LdaModel.load(str(root / f"{name}.ckpt"))
    assert saved.info["training"]["stopped"] == stopped and saved.num_updates > 0
    assert np.array_equal(saved.state.sstats, checkpoint.state.sstats)


def resume_and_compare(root: Path, name: str, uninterrupted: LdaModel) -> None:
    assert main(["train", "prep", "--resume", f"{name}.ckpt", "--out", name]) == 0
    resumed = LdaModel.load(str(root / name))
    assert np.array_equal(resumed.state.sstats, uninterrupted.state.sstats)
    assert resumed.info["training"]["stopped"] is None and not (root / f"{name}.ckpt").exists()
    assert {h["pass"] for h in resumed.info["history"]} == {1, 2, 3}  # the reports before the stop are kept


@pytest.mark.slow
def test_sigterm_saves_exits_143_and_the_resumed_run_is_the_uninterrupted_one(prepared, uninterrupted,
                                                                              monkeypatch):
    proc = start_training(prepared, "prep", *TRAIN, "--checkpoint-every", "4", "--out", "termed.lda")
    before = read_until(proc, r"pass 1, .* held-out bound")
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc, before)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM): saving what was trained" in err and "Traceback" not in err
    check_stopped_run(prepared, out, err, "termed.lda", "terminated")
    monkeypatch.chdir(prepared)
    resume_and_compare(prepared, "termed.lda", uninterrupted)


def test_resume_refuses_a_finished_model_and_another_corpus(prepared, uninterrupted, monkeypatch, capsys):
    monkeypatch.chdir(prepared)
    assert main(["train", "prep", "--resume", "whole.lda", "--out", "again.lda"]) == 1
    assert "no interrupted training to resume" in capsys.readouterr().err
    assert main(["train", "prep", "--resume", "missing.ckpt", "--out", "again.lda"]) == 1
    assert "model file not found: missing.ckpt" in capsys.readouterr().err


def test_a_cluster_that_cannot_be_reached_is_one_line_and_exit_1(prepared, monkeypatch, capsys):
    from distlda.cluster.local import free_port

    monkeypatch.chdir(prepared)
    port = free_port()
    assert main(["train", "prep", "--cluster", f"127.0.0.1:{port}", "--out", "none.lda"]) == 1
    err = capsys.readouterr().err
    assert f"cannot train on the cluster at 127.0.0.1:{port}: no name server" in err
    assert len(err.strip().splitlines()) == 1 and not (prepared / "none.lda").exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_workers_killed_mid_run_save_the_model_exit_75_and_resume_locally_to_the_same_model(
        prepared, uninterrupted, monkeypatch):
    from distlda.cluster.local import LocalCluster

    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        address = f"127.0.0.1:{cluster.port}"
        proc = start_training(prepared, "prep", *TRAIN, "--checkpoint-every", "4", "--cluster", address,
                              "--cluster-timeout", "5", "--out", "lost.lda")
        before = read_until(proc, r"pass 1, .* held-out bound")
        for worker in cluster.workers:
            os.kill(worker.pid, signal.SIGKILL)
        out, err = finish(proc, before)
    assert proc.returncode == 75, err
    assert "the cluster was lost" in err and "Traceback" not in err
    check_stopped_run(prepared, out, err, "lost.lda", "cluster", extra=f" --cluster {address}")
    monkeypatch.chdir(prepared)
    resume_and_compare(prepared, "lost.lda", uninterrupted)


@pytest.mark.parametrize("seconds, first", [(0.0, 1), (1e9, None)])
def test_default_checkpoints_are_timed(prepared, monkeypatch, seconds, first):
    from distlda.cli import train as train_cli

    monkeypatch.setattr(train_cli, "_CHECKPOINT_SECONDS", seconds)
    saved: list[int] = []
    original = LdaModel.save_checkpoint
    monkeypatch.setattr(LdaModel, "save_checkpoint", lambda self, run: (saved.append(run.msteps), original(self, run)))
    monkeypatch.chdir(prepared)
    assert main(["train", "prep", "--topics", "3", "--passes", "1", "--chunksize", "300", "--out", "timed.lda"]) == 0
    # 1350 documents in 4 even mini-batches of 338: the first M-step after the interval saves, and the loop saves
    # the finished run (the only checkpoint when the interval never passes)
    msteps = -(-1350 // train_cli.even_chunksize(1350, 300, 1))
    assert saved[0] == (msteps if first is None else first) and saved[-1] == msteps
    assert not (prepared / "timed.lda.ckpt").exists()
