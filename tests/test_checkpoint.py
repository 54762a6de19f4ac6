"""Checkpoints: atomic, resumable, and resuming gives the uninterrupted model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import random_docs

from distlda.models import LdaModel

V = 40
VOCAB = {i: f"w{i}" for i in range(V)}


class _Crashing:
    """A corpus that interrupts training (like Ctrl-C) after ``limit`` documents have been read in total."""

    def __init__(self, docs, limit):
        self.docs, self.limit, self.read = docs, limit, 0

    def __len__(self):
        return len(self.docs)

    def __iter__(self):
        for doc in self.docs:
            self.read += 1
            if self.read > self.limit:
                raise KeyboardInterrupt("simulated crash")
            yield doc


@pytest.mark.parametrize("config", [dict(), dict(update_every=2, alpha="auto", eta="auto"),
                                    dict(update_every=0)])
def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path, rng, config):
    docs = random_docs(rng, 300, V)
    # init='gensim': _Crashing counts every document read, and the anchor-word start reads the corpus twice
    params = dict(id2word=VOCAB, num_topics=4, chunksize=25, passes=3, random_state=5, init="gensim", **config)
    reference = LdaModel(docs, **params)
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        every = 1 if config.get("update_every") == 0 else 2  # batch mode has one M-step per pass
        LdaModel(_Crashing(docs, 480), checkpoint_path=str(path), checkpoint_every=every, **params)
    resumed = LdaModel.load(str(path))
    assert resumed._training is not None and not resumed._training.finished
    assert resumed.num_updates < reference.num_updates or resumed._training.pass_ < 3
    resumed.resume(docs)
    np.testing.assert_array_equal(resumed.state.sstats, reference.state.sstats)
    np.testing.assert_array_equal(resumed.alpha, reference.alpha)
    np.testing.assert_array_equal(resumed.eta, reference.eta)
    assert resumed.num_updates == reference.num_updates
    assert resumed.state.numdocs == reference.state.numdocs
    final = LdaModel.load(str(path))  # the last checkpoint is the finished model
    assert final._training.finished
    np.testing.assert_array_equal(final.state.sstats, reference.state.sstats)
    with pytest.raises(ValueError, match="no interrupted training"):
        final.resume(docs)


def _crashed_run(tmp_path, docs, limit) -> str:
    """Train with a checkpoint after every M-step until a simulated crash; return the checkpoint path."""
    path = str(tmp_path / "c.ckpt")
    with pytest.raises(KeyboardInterrupt):
        LdaModel(_Crashing(docs, limit), id2word=VOCAB, num_topics=3, chunksize=10, passes=2,
                 checkpoint_path=path, checkpoint_every=1, init="gensim")  # the crash counts training reads only
    return path


def test_resume_needs_the_same_corpus(tmp_path, rng):
    docs = random_docs(rng, 100, V)
    path = _crashed_run(tmp_path, docs, 150)
    with pytest.raises(ValueError, match="same corpus"):
        LdaModel.load(path).resume(docs[:50])


def test_bad_input_during_resume_keeps_the_checkpointed_state(tmp_path, rng):
    docs = random_docs(rng, 100, V)
    model = LdaModel.load(_crashed_run(tmp_path, docs, 130))
    before = model.state.sstats.copy()
    bad = docs[:95] + [[(V + 1, 1.0)]] + docs[96:]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.resume(bad)
    np.testing.assert_array_equal(model.state.sstats, before)
    model.resume(docs)  # and the good corpus still resumes
    assert model._training.finished


_WRITER = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from conftest import random_docs
from distlda.models import LdaModel
docs = random_docs(np.random.default_rng(3), 4000, 3000, max_len=30)
LdaModel(docs, id2word={{i: str(i) for i in range(3000)}}, num_topics=60, chunksize=40, passes=1,
         random_state=2, checkpoint_path={path!r}, checkpoint_every=1, threads=1)
"""


@pytest.mark.slow
def test_killed_while_checkpointing_never_leaves_a_corrupt_file(tmp_path):
    """SIGKILL a real training process at several moments; the checkpoint always loads and resumes."""
    path = tmp_path / "killed.ckpt"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=str(Path(__file__).parent), path=str(path)))
    for delay in (0.05, 0.3, 0.7):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(delay)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        model = LdaModel.load(str(path))
        assert np.all(np.isfinite(model.state.sstats))
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        for name in leftovers:  # a temporary file may remain after SIGKILL, but never replaces the checkpoint
            (tmp_path / name).unlink()
    docs = random_docs(np.random.default_rng(3), 4000, 3000, max_len=30)
    model = LdaModel.load(str(path))
    if not model._training.finished:
        model.resume(docs)
    reference = LdaModel(docs, id2word={i: str(i) for i in range(3000)}, num_topics=60, chunksize=40, passes=1,
                         random_state=2)
    np.testing.assert_array_equal(model.state.sstats, reference.state.sstats)
