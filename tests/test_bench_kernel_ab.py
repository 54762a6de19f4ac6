"""bench/kernel_ab.py, the paired A/B of two revisions' E-step kernels: its summary, and a real run on a tiny corpus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _import_kernel_ab() -> ModuleType:
    """bench/kernel_ab.py as a module, with bench/ on the path only while it loads: left there, bench/distributed.py
    would hide Dask's ``distributed`` from every later test."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import kernel_ab
    finally:
        sys.path.remove(str(REPO / "bench"))
    return kernel_ab


kernel_ab = _import_kernel_ab()


def _side(phase1: float, phase2: float, gamma: str, stats: str) -> dict:
    return {"10": {"phase1": phase1, "phase2": phase2, "gamma": gamma, "stats": stats}}


def test_the_summary_is_old_time_over_new_with_medians_over_rounds() -> None:
    rounds = [{"old": _side(2.0, 1.0, "a", "s"), "new": _side(1.0, 2.0, "a", "t")},
              {"old": _side(3.0, 1.0, "a", "s"), "new": _side(1.0, 1.0, "a", "s")},
              {"old": _side(1.0, 1.0, "a", "s"), "new": _side(1.0, 4.0, "a", "s")}]
    (row,) = kernel_ab.summarise(rounds, [10])
    assert row["phase1"]["ratios"] == [2.0, 3.0, 1.0] and row["phase1"]["old_over_new"] == 2.0
    assert row["phase2"]["ratios"] == [0.5, 1.0, 0.25] and row["phase2"]["old_over_new"] == 0.5
    assert row["phase1"]["same_bits"] and not row["phase2"]["same_bits"]  # one round's statistics differed
    assert row["phase1"]["old_ns"] == 2.0 and row["phase2"]["new_ns"] == 2.0


def test_bad_settings_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--rounds"):
        kernel_ab.main(["--rounds", "0", "--json", str(tmp_path / "x.json")])
    if shutil.which("git") and (REPO / ".git").exists():
        with pytest.raises(SystemExit, match="no-such-revision"):
            kernel_ab.export_tree("no-such-revision", tmp_path / "old")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a clone")
def test_each_side_times_its_own_revision_and_the_same_kernels_give_the_same_bits(tmp_path: Path) -> None:
    # HEAD's package against the working tree's: in a clean clone the same code, so the same bits; the data folder
    # does not exist, so the tool draws its synthetic corpus
    out = tmp_path / "ab.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "kernel_ab.py"), "--old", "HEAD", "--new", ".",
                    "--topics", "10", "--rounds", "1", "--repeats", "1", "--docs", "150",
                    "--data-dir", str(tmp_path / "none"), "--json", str(out)], check=True, cwd=REPO, timeout=600)
    result = json.loads(out.read_text())
    assert Path(result["sides"]["new"]["package"]) == REPO / "distlda"
    assert "kernel-ab-" in result["sides"]["old"]["package"]  # the exported HEAD, not the working tree
    (row,) = result["rows"]
    assert row["K"] == 10
    clean = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "distlda"]).returncode == 0
    for phase in ("phase1", "phase2"):
        assert row[phase]["old_over_new"] > 0 and row[phase]["new_ns"] > 0
        if clean:
            assert row[phase]["same_bits"]
