"""bench/kernel_ab.py, the paired A/B of two revisions' E-step kernels, run for real on a tiny corpus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a clone")
def test_the_same_kernels_give_the_same_bits_and_a_ratio_per_phase(tmp_path: Path) -> None:
    # HEAD's package against the working tree's: in a clean clone the same code, so the same bits; the data folder
    # does not exist, so the tool draws its synthetic corpus
    out = tmp_path / "ab.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "kernel_ab.py"), "--old", "HEAD", "--new", ".",
                    "--topics", "10", "--rounds", "1", "--repeats", "1", "--docs", "150",
                    "--data-dir", str(tmp_path / "none"), "--json", str(out)], check=True, cwd=REPO, timeout=600)
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["K"] == 10
    for phase in ("phase1", "phase2"):
        assert row[phase]["old_over_new"] > 0 and row[phase]["new_ns"] > 0
        if not subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "distlda"]).returncode:
            assert row[phase]["same_bits"]
