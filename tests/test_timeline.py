"""The per-M-step timeline: marks written only when asked for, read back, and put side by side per M-step."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import random_docs

from distlda.cluster import timeline
from distlda.cluster.local import LocalCluster
from distlda.models import LdaModel

V = 60


@pytest.fixture
def own_handler():
    """Leave the timeline logger as it was (mark() gives it a handler of its own when the marks are on)."""
    logger = logging.getLogger("distlda.timeline")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def test_marks_are_written_only_when_the_environment_asks_and_read_back(monkeypatch, tmp_path, own_handler, capfd):
    monkeypatch.delenv(timeline.ENV, raising=False)
    timeline.mark("worker", "sync", "w0")
    monkeypatch.setenv(timeline.ENV, "0")
    timeline.mark("worker", "sync", "w0")
    assert capfd.readouterr().err == "" and not own_handler.handlers
    monkeypatch.setenv(timeline.ENV, "1")
    timeline.mark("worker", "sync", "w0")
    timeline.mark("dispatcher", "record")
    err = capfd.readouterr().err
    (tmp_path / "a.log").write_text("2026-01-01 some other line\n" + err, encoding="utf-8")
    marks = timeline.read_marks([tmp_path / "a.log"])
    assert [(role, phase, who) for _, role, phase, who in marks] == [("worker", "sync", "w0"),
                                                                      ("dispatcher", "record", "-")]
    assert marks[0][0] <= marks[1][0]


def test_each_phase_is_timed_from_the_record_of_its_m_step(tmp_path):
    lines = []
    for step in range(8):  # an M-step recorded every 100 ms; w0 hears of it after 5 ms, w1 after 15 (twice: the
        start = 1000.0 + 0.1 * step  # first counts)
        lines += [f"TIMELINE dispatcher {start:.6f} record -",
                  f"TIMELINE worker {start + 0.005:.6f} sync w0",
                  f"TIMELINE worker {start + 0.015:.6f} sync w1",
                  f"TIMELINE worker {start + 0.030:.6f} sync w1",
                  f"TIMELINE worker {start + 0.050:.6f} fit-end w0"]
    (tmp_path / "w.log").write_text("\n".join(lines[::-1]) + "\n", encoding="utf-8")  # any order in the files
    phases = timeline.per_mstep(timeline.read_marks([tmp_path / "w.log"]), skip=2)
    assert list(phases) == ["sync", "fit-end", "period"]
    assert phases["sync"]["n"] == 2 * 3 and phases["fit-end"]["n"] == 3  # M-steps 2, 3, 4 of 0..7
    assert phases["sync"]["p10"] == pytest.approx(5.0, abs=1e-3)
    assert phases["sync"]["p90"] == pytest.approx(15.0, abs=1e-3)
    assert phases["period"]["median"] == pytest.approx(100.0, abs=1e-3)
    assert timeline.per_mstep(timeline.read_marks([tmp_path / "w.log"]), skip=4) == {}  # too few M-steps
    assert timeline.per_mstep(timeline.read_marks([tmp_path / "w.log"]), skip=0)["period"]["n"] == 7  # every one


@pytest.mark.distributed
def test_a_cluster_run_marks_every_phase_of_its_m_steps(monkeypatch, tmp_path, own_handler):
    from distlda.corpora import BinaryCorpus

    monkeypatch.setenv(timeline.ENV, "1")  # the cluster's processes inherit it
    BinaryCorpus.serialize(tmp_path / "corpus", random_docs(np.random.default_rng(3), 480, V), num_terms=V)
    with LocalCluster(workers=2, threads_per_worker=1, log_dir=str(tmp_path / "logs")) as cluster:  # made for it
        # two whole chunks per mini-batch for the two workers: the statistics are summed by rows
        LdaModel(BinaryCorpus(tmp_path / "corpus"), num_topics=4, chunksize=30, update_every=2, passes=1,
                 distributed=True, ns_conf=cluster.ns_conf, random_state=0)
    marks = timeline.read_marks((tmp_path / "logs").glob("*.log"))
    phases = timeline.per_mstep(marks)
    assert {"sync", "rs-start", "partials-in", "own-sums", "rs-end", "mstep-end", "job", "fit-end",
            "last-jobdone", "period"} <= set(phases), phases
    for worker in {who for _, role, _, who in marks if role == "worker"}:  # each worker's marks come in order
        steps = [phase for _, _, phase, who in marks
                 if who == worker and phase in ("rs-start", "rs-end", "mstep-end")]
        follows = {"rs-end": "rs-start", "mstep-end": "rs-end"}  # (a reduce-scatter that fell back to a replay ends
        assert all(steps[i - 1] == follows[p] for i, p in enumerate(steps) if p in follows and i), steps  # unapplied)
