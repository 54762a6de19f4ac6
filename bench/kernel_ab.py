"""Paired A/B of the E-step kernels of two source trees: phase 1 and phase 2, one pinned thread, interleaved.

Two revisions' kernels differ by a few per cent, less than this machine wanders between processes (10–15% for
unpinned one-thread runs), so a table of "before" figures from another run cannot show it. Here both run in one
session, alternating process by process, on the same inputs:

* each revision's ``distlda`` package is exported with ``git archive`` (or taken from the working tree, ``.``);
* the inputs are built once, by the working tree: the first ``--docs`` Debian training documents (or a synthetic
  corpus without prepared data; see ``kernel_speed.load_corpus``) and, at each K, the float32 model distlda
  trains in one pass over them;
* each round runs one process per revision, in alternating order, with the revision first on ``PYTHONPATH``, its
  own empty numba cache, and pinned to one core (``taskset -c``), where it times, at every K, phase 1
  (``fit_gamma``, 20 iterations for every document) and phase 2 (``chunk_partial``: the chunk's statistics from
  γ) ``--repeats`` times on one thread (``time.thread_time``), after one untimed run;
* a ratio is old time over new within one round; the report gives each phase's median over the rounds, and
  whether the two revisions gave the same bits (γ; phase 2's statistics).

    python bench/kernel_ab.py --old HEAD~1 --new . --topics 32 64 100 1000 --rounds 5

Both sides are compiled for the target numba resolves from the environment: to compare them as compiled for an
AVX2-only CPU, set ``NUMBA_CPU_NAME`` *and* ``NUMBA_CPU_FEATURES`` (this CPU's features with every AVX-512 one
switched off); ``NUMBA_CPU_NAME`` alone keeps the host's features. Each child reports the target it compiled
for, its vector lanes and where its ``distlda`` came from, in the JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Sequence

from common import DEFAULT_DATA_DIR, REPO_DIR, RESULTS_DIR

logger = logging.getLogger("bench.kernel_ab")

ITERATIONS = 20


def _last_core() -> int | None:
    """The last core this process may run on (None where the platform does not say)."""
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return None


def export_tree(rev: str, into: Path) -> Path:
    """A folder whose ``distlda`` is the package at ``rev`` (``.``: the working tree's own folder).

    Raises
    ------
    SystemExit
        When git is missing or ``rev`` is not a revision of this repository with a ``distlda`` package.
    """
    if rev == ".":
        return REPO_DIR
    if shutil.which("git") is None:
        raise SystemExit(f"kernel_ab: git is needed to export revision {rev!r} (or compare the working tree, '.')")
    folder = into / rev.replace("/", "_").replace("~", "-").replace("^", "-")
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_DIR), "archive", rev, "distlda"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"kernel_ab: cannot export distlda at revision {rev!r}: "
                         f"{archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def build_inputs(args: argparse.Namespace, into: Path) -> Path:
    """The corpus's first documents and the model at each K, saved where the child processes read them."""
    import numpy as np
    from kernel_speed import load_corpus, trained_model

    chunk, text = load_corpus(args.data_dir, args.docs)
    logger.info("corpus: %s", text)
    arrays = {"indptr": chunk.indptr, "ids": chunk.ids, "counts": chunk.counts}
    for k in args.topics:
        arrays[f"eb{k}"], arrays[f"alpha{k}"] = trained_model(chunk, k)
        logger.info("K = %d: model ready", k)
    path = into / "inputs.npz"
    np.savez(path, **arrays)
    return path


def child(inputs: Path, topics: Sequence[int], repeats: int, dtype_name: str) -> dict[str, Any]:
    """Time phase 1 (``fit_gamma``) and phase 2 (``chunk_partial``) at each K with the ``distlda`` first on the path,
    on one thread; ns per nnz·K(·iteration), and hashes of γ and of the statistics."""
    import numpy as np

    import distlda
    from distlda.core.estep import chunk_partial, fit_gamma
    from distlda.kernels.compile import compile_target
    from distlda.corpora.csr import CsrChunk
    from distlda.kernels.parallel import kernel_threads
    from distlda.kernels.rng import training_keys

    data = np.load(inputs)
    dtype = np.dtype(dtype_name)
    chunk = CsrChunk(data["indptr"], data["ids"], data["counts"])
    n, nnz = chunk.n_docs, chunk.nnz
    keys = training_keys(0, 0, 0, n)
    try:
        from distlda.kernels.vectorir import vector_lanes  # (revisions before 203ba09 had 16 float32 lanes)
        lanes = vector_lanes(dtype.itemsize)
    except ImportError:
        lanes = 64 // dtype.itemsize
    name, features = compile_target()
    out: dict[str, Any] = {"package": str(Path(distlda.__file__).resolve().parent), "lanes": lanes,
                           "target": name, "features_crc": zlib.crc32(features.encode())}
    with kernel_threads(1):
        for k in topics:
            eb = np.require(data[f"eb{k}"], dtype, "CAW")
            alpha = np.require(data[f"alpha{k}"], dtype, "CAW")
            one, two = [], []
            for _ in range(repeats + 1):
                started = time.thread_time()
                gamma, _ = fit_gamma(chunk, eb, alpha, keys, ITERATIONS, 0.0)
                one.append(time.thread_time() - started)
            for _ in range(repeats + 1):
                started = time.thread_time()
                partial = chunk_partial(chunk, gamma, eb)
                two.append(time.thread_time() - started)
            out[str(k)] = {"phase1": statistics.median(one[1:]) / (nnz * k * ITERATIONS) * 1e9,
                           "phase2": statistics.median(two[1:]) / (nnz * k) * 1e9,
                           "gamma": hashlib.sha256(gamma.tobytes()).hexdigest()[:16],
                           "stats": hashlib.sha256(partial.raw.tobytes()).hexdigest()[:16]}
    return out


def run_child(tree: Path, args: argparse.Namespace, inputs: Path, cache: Path) -> dict[str, Any]:
    """One timing process for ``tree``: pinned, with its own numba cache; its JSON."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
               NUMBA_CACHE_DIR=tempfile.mkdtemp(dir=cache))
    command = [sys.executable, __file__, "--child", str(inputs), "--topics", *map(str, args.topics),
               "--repeats", str(args.repeats), "--dtype", args.dtype]
    if args.cpu is not None:
        command = ["taskset", "-c", str(args.cpu), *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the timing process of {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(rounds: list[dict[str, Any]], topics: Sequence[int]) -> list[dict[str, Any]]:
    """Per K and phase: the median over rounds of old/new, every round's ratio, and whether the bits matched."""
    rows = []
    for k in map(str, topics):
        row: dict[str, Any] = {"K": int(k)}
        for phase, bits in (("phase1", "gamma"), ("phase2", "stats")):
            ratios = [r["old"][k][phase] / r["new"][k][phase] for r in rounds]
            row[phase] = {"old_over_new": statistics.median(ratios), "ratios": ratios,
                          "old_ns": statistics.median(r["old"][k][phase] for r in rounds),
                          "new_ns": statistics.median(r["new"][k][phase] for r in rounds),
                          "same_bits": all(r["old"][k][bits] == r["new"][k][bits] for r in rounds)}
        rows.append(row)
    return rows


def render(result: dict[str, Any]) -> str:
    """The report: the command, what was compared, and a Markdown table of the medians per K."""
    lines = [f"{result['command']}", f"old = {result['old']}, new = {result['new']}, {result['rounds']} rounds, "
             f"{result['dtype']}, {result['corpus_docs']:,} documents; old time / new time, medians of paired ratios",
             "", "| K | phase 1 old/new | ns per nnz·K·it (new) | same γ | phase 2 old/new | ns per nnz·K (new) "
             "| same statistics |", "| ---: | ---: | ---: | :---: | ---: | ---: | :---: |"]
    for row in result["rows"]:
        cells = [f"{p['old_over_new']:.3f}x | {p['new_ns']:.4f} | {'yes' if p['same_bits'] else 'no'}"
                 for p in (row["phase1"], row["phase2"])]
        lines.append(f"| {row['K']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``--child`` is the timing process's own, not for people)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="HEAD", help="git revision of the old kernels (default HEAD)")
    parser.add_argument("--new", default=".", help="git revision of the new kernels ('.': the working tree)")
    parser.add_argument("--topics", type=int, nargs="+", default=[32, 64, 100, 200, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="timings per process, of which the median")
    parser.add_argument("--docs", type=int, default=12000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--cpu", type=int, default=_last_core(),
                        help="core to pin every timing process to with taskset (default: the last one allowed)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", type=Path, help="write the results here (default bench/results/kernel-ab-*.json)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Export both revisions, build the inputs, run the rounds, write the JSON and print the table."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.topics, args.repeats, args.dtype)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.rounds < 1 or args.repeats < 1:
        raise SystemExit("kernel_ab: --rounds and --repeats must be at least 1")
    if args.cpu is not None and shutil.which("taskset") is None:
        logger.warning("taskset is missing: the timing processes run unpinned, so the ratios are noisier")
        args.cpu = None
    with tempfile.TemporaryDirectory(prefix="kernel-ab-") as scratch:
        scratch_dir = Path(scratch)
        trees = {side: export_tree(getattr(args, side), scratch_dir / side) for side in ("old", "new")}
        inputs = build_inputs(args, scratch_dir)
        rounds = []
        for number in range(args.rounds):
            order = ("old", "new") if number % 2 == 0 else ("new", "old")
            rounds.append({side: run_child(trees[side], args, inputs, scratch_dir) for side in order})
            logger.info("round %d/%d done", number + 1, args.rounds)
        sides = {side: {key: rounds[0][side][key] for key in ("package", "lanes", "target", "features_crc")}
                 for side in ("old", "new")}
        for side, tree in trees.items():  # each side timed its own revision, not an installed distlda
            if Path(sides[side]["package"]) != (tree / "distlda").resolve():
                raise RuntimeError(f"the {side} side imported {sides[side]['package']}, not {tree / 'distlda'}")
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "old": args.old, "new": args.new,
              "rounds": args.rounds, "repeats": args.repeats, "dtype": args.dtype, "corpus_docs": args.docs,
              "cpu_pinned": args.cpu, "sides": sides,
              "rows": summarise(rounds, args.topics), "all_rounds": rounds,
              "command": " ".join(["python", "bench/kernel_ab.py", *(argv if argv is not None else sys.argv[1:])])}
    path = args.json or RESULTS_DIR / f"kernel-ab-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(render(result))
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
