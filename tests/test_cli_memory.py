"""The memory estimate of a training run against a measured peak, the memory available, and the refusal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from distlda.cli.main import main
from distlda.core import memory
from distlda.core.memory import available_memory, estimate_training_memory


def _word(i: int) -> str:
    return "".join(chr(97 + (i // 26 ** k) % 26) for k in range(4))  # letters only: the tokenizer drops digits


def _write_corpus(path: Path, vocabulary: int, documents: int, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.write_text("\n".join(" ".join(_word(int(i)) for i in rng.integers(0, vocabulary, length))
                              for _ in range(documents)) + "\n")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("memory")
    _write_corpus(root / "tiny.txt", 50, 60, 30, 1)
    _write_corpus(root / "big.txt", 40_000, 500, 200, 2)
    for name in ("tiny", "big"):
        assert main(["prepare", str(root / f"{name}.txt"), "--out", str(root / name), "--no-below", "1",
                     "--no-above", "1", "--holdout", "0.1", "--stopwords", "none", "--keep-n", "100000"]) == 0
    return root


def test_the_estimate_counts_each_phase():
    e = estimate_training_memory(100, 1000, np.float32, heldout=True, base=0)
    kv = 100 * 1000
    assert e.array_bytes == 4 * kv
    assert e.phases["build"] == 4 * kv + 8 * kv + 4 * 1000
    assert e.phases["evaluate"] == 5 * 4 * kv + 16 * kv + 4 * 1000 == e.total and e.peak_phase == "evaluate"
    plain = estimate_training_memory(100, 1000, np.float64, heldout=False, base=0)
    assert plain.peak_phase == "train" and plain.phases["evaluate"] == 0
    assert plain.phases["train"] >= 4 * 8 * kv


@pytest.mark.slow
def test_the_estimate_is_within_a_quarter_of_the_measured_peak(corpora):
    # one process: a small run first (kernels compiled or loaded, the baseline), then the peak resident memory
    # is reset to the current one (Linux: 5 > /proc/self/clear_refs), so that neither imports nor LLVM's
    # compile-time peak hide it, and 250 topics over ~36k words train
    script = textwrap.dedent("""
        import json, sys
        from distlda.cli.main import main

        def status(field):
            for line in open("/proc/self/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

        assert main(["train", "tiny", "--topics", "3", "--passes", "1", "--out", "t.lda"]) == 0
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = status("VmRSS")
        assert main(["train", "big", "--topics", "250", "--passes", "1", "--threads", "1", "--out", "b.lda"]) == 0
        print(json.dumps([before, status("VmHWM")]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=corpora, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    before, peak = json.loads(done.stdout.strip().splitlines()[-1])
    vocabulary = json.loads((corpora / "big" / "prepare.json").read_text())["vocabulary"]
    estimate = estimate_training_memory(250, vocabulary, threads=1, heldout=True)
    measured = peak - before
    assert 0.8 <= measured / (estimate.total - estimate.base) <= 1.25, (measured, estimate)
    assert before <= estimate.base  # the allowance for the process itself covers it


def test_an_impossible_model_is_refused_with_both_numbers(corpora, capsys, monkeypatch):
    monkeypatch.chdir(corpora)
    assert main(["train", "tiny", "--topics", "100000000", "--out", "huge.lda"]) == 1
    err = capsys.readouterr().err
    assert available_memory() is not None
    assert re.search(r"100000000 topics over 50 words need about 18\d\.\d GB \(20,000 MB per topics × words "
                     r"array, peak while evaluating held-out documents\), but \d+\.\d GB is available", err), err
    assert "--force" in err and not (corpora / "huge.lda").exists()


def test_force_trains_anyway_with_a_warning(corpora, capsys, monkeypatch, caplog):
    monkeypatch.chdir(corpora)
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    monkeypatch.setattr("distlda.models.ldamodel.available_memory", lambda: 1000)  # the model's own check too
    assert main(["train", "tiny", "--topics", "4", "--passes", "1", "--out", "small.lda"]) == 1
    assert "but 0.0 GB is available" in capsys.readouterr().err
    assert main(["train", "tiny", "--topics", "4", "--passes", "1", "--out", "small.lda", "--force"]) == 0
    assert "training anyway (--force)" in caplog.text and (corpora / "small.lda").exists()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_cgroup_limit_lowers_the_memory_available(tmp_path, version):
    proc = tmp_path / "cgroup"
    if version == "v2":
        proc.write_text("0::/job/42\n")
        folder = tmp_path / "fs" / "job" / "42"
        folder.mkdir(parents=True)
        (folder / "memory.max").write_text("1000000000\n")
        (folder / "memory.current").write_text("300000000\n")
    else:
        proc.write_text("5:cpu,cpuacct:/\n4:memory:/job/42\n0::/\n")
        folder = tmp_path / "fs" / "memory"
        folder.mkdir(parents=True)  # the process's own cgroup mounted as the root, as in a container
        (folder / "memory.limit_in_bytes").write_text("1000000000\n")
        (folder / "memory.usage_in_bytes").write_text("300000000\n")
    assert memory._cgroup_room(tmp_path / "fs", proc) == 700_000_000
    (folder / ("memory.max" if version == "v2" else "memory.limit_in_bytes")).write_text(
        "max\n" if version == "v2" else "9223372036854771712\n")
    assert memory._cgroup_room(tmp_path / "fs", proc) is None
