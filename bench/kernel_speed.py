"""How fast the E-step kernel runs against K, and against this core's FP32 peak.

Two measurements, interleaved and repeated (medians are reported):

* **Peak**: a small numba kernel of 16 independent chains of 16-lane float32
  multiply-adds (explicit LLVM vectors, so the width is the one the core has, not
  the one LLVM's vectoriser prefers), throughput-bound: GFLOP/s counting a
  multiply-add as 2 flops.
* **E-step at fixed iterations**: phase 1 of the E-step (:func:`fit_gamma`), one
  thread, ``iterations=20`` and ``gamma_threshold=0`` (the convergence test is
  ``mean |Δγ| < threshold``, never true for 0, so every non-empty document does
  exactly 20 iterations), for K = 10 … 1000 on one corpus. The model at each K is
  the one distlda trains in one pass over that corpus (float32, default priors), so
  that exp(E[log β]) and α hold the small values a real model has.

Per non-zero entry, per topic and per iteration the kernel does two multiply-adds:
one in the entry's normaliser (the dot product exp(E[log θ_d]) · exp(E[log β_v]))
and one in the accumulation of its contribution to γ. So

    ns/(nnz·K·it) = seconds / (nnz × K × 20) × 1e9
    GFLOP/s      = 4 × nnz × K × 20 / seconds / 1e9

(the per-document, per-iteration update of γ and its K exp(ψ(γ)) evaluations are
not counted as flops, but their time is in the figures). Times are the CPU time of
the thread that runs the kernel (``time.thread_time``), for the peak as for the
E-step, so that time the machine gives to other processes is not counted; on an
idle machine it equals the wall time. Hyper-threads busy with other work still slow
both down, which is why the two are interleaved.

The corpus is the first ``--docs`` training documents of ``bench/prepare.py``'s
debian dataset when ``<data dir>/debian`` exists, otherwise a synthetic corpus with
debian-like lengths (:func:`distlda.datasets.make_lda_corpus`, 37 words a document).

    python bench/kernel_speed.py                            # full sweep, 5 repetitions
    python bench/kernel_speed.py --data-dir /path/to/data --repeats 7 --write-docs
    python bench/kernel_speed.py --topics 50,64,100 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from common import DEFAULT_DATA_DIR, REPO_DIR, RESULTS_DIR, DatasetFiles
from compare import machine
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from distlda.core.estep import fit_gamma
from distlda.corpora import BinaryCorpus
from distlda.corpora.csr import CsrChunk
from distlda.datasets import make_lda_corpus
from distlda.kernels.parallel import kernel_threads
from distlda.kernels.rng import training_keys
from distlda.models import LdaModel

logger = logging.getLogger("bench.kernel_speed")

TOPICS = (10, 32, 50, 64, 100, 128, 200, 500, 1000)
ITERATIONS = 20
PEAK_LANES = 16
PEAK_CHAINS = 16
PEAK_STEPS = 2_000_000
DOCS_MARK = "kernel-speed"


@intrinsic
def _fma_chains(typingctx, steps, mul, add):  # type: ignore[no-untyped-def]
    """``steps`` rounds of x ← x·mul + add on PEAK_CHAINS independent vectors of PEAK_LANES float32; returns a lane
    of their sum (so that nothing is optimised away)."""
    sig = types.float32(types.int64, types.float32, types.float32)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        n, m, c = args
        vt = ir.VectorType(ir.FloatType(), PEAK_LANES)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        name = f"llvm.fmuladd.v{PEAK_LANES}f32"
        fma = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(vt, [vt] * 3), name)
        mv, cv = ir.Constant(vt, ir.Undefined), ir.Constant(vt, ir.Undefined)
        for lane in range(PEAK_LANES):
            mv = builder.insert_element(mv, m, ir.Constant(i32, lane))
            cv = builder.insert_element(cv, c, ir.Constant(i32, lane))
        entry = builder.block
        loop, done = builder.append_basic_block("peak.loop"), builder.append_basic_block("peak.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        i = builder.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        chains = []
        for k in range(PEAK_CHAINS):
            x = builder.phi(vt)
            x.add_incoming(ir.Constant(vt, [1.0 + k / 1024.0] * PEAK_LANES), entry)
            chains.append(x)
        nxt = [builder.call(fma, [x, mv, cv]) for x in chains]
        i_next = builder.add(i, ir.Constant(i64, 1))
        i.add_incoming(i_next, loop)
        for x, y in zip(chains, nxt):
            x.add_incoming(y, loop)
        builder.cbranch(builder.icmp_signed("<", i_next, n), loop, done)
        builder.position_at_end(done)
        total = nxt[0]
        for y in nxt[1:]:
            total = builder.fadd(total, y)
        return builder.extract_element(total, ir.Constant(i32, 0))

    return sig, codegen


@njit(nogil=True)
def _peak_kernel(steps: int, mul: float, add: float) -> float:
    return _fma_chains(steps, mul, add)


def measure_peak() -> float:
    """GFLOP/s of one run of the FMA kernel (2 flops per multiply-add)."""
    mul, add = np.float32(0.999), np.float32(1e-3)
    started = time.thread_time()
    _peak_kernel(PEAK_STEPS, mul, add)
    seconds = time.thread_time() - started
    return 2.0 * PEAK_LANES * PEAK_CHAINS * PEAK_STEPS / seconds / 1e9


def load_corpus(data_dir: Path, docs: int) -> tuple[CsrChunk, str]:
    """The first ``docs`` debian training documents, or a synthetic corpus of debian-like lengths."""
    files = DatasetFiles.of(data_dir, "debian")
    if files.train_bin.exists():
        corpus = BinaryCorpus(files.train_bin)
        docs = min(docs, len(corpus))
        return corpus.read_range(0, docs), f"debian ({files.train_bin}), first {docs:,} training documents"
    synthetic = make_lda_corpus(docs, 8000, 50, doc_length=37, alpha=0.1, eta=0.01, random_state=13)
    return synthetic.chunk, f"synthetic: {docs:,} documents, V = 8,000, 50 true topics, 37 words a document"


def trained_model(chunk: CsrChunk, num_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """exp(E[log β]) (V × K) and α of the float32 model distlda trains in one pass over ``chunk``."""
    num_terms = int(chunk.ids.max()) + 1
    model = LdaModel(num_topics=num_topics, id2word={v: str(v) for v in range(num_terms)}, random_state=0,
                     dtype=np.float32, eval_every=None, progress=False)
    model.update(list(chunk))
    return np.array(model.expElogbeta_wm), np.array(model.alpha, dtype=np.float32)


def time_estep(chunk: CsrChunk, model: tuple[np.ndarray, np.ndarray]) -> float:
    """CPU seconds of one E-step (phase 1) over ``chunk`` on this thread, 20 iterations for every document."""
    exp_elogbeta, alpha = model
    keys = training_keys(0, 0, 0, chunk.n_docs)
    with kernel_threads(1):  # the kernel runs on the calling thread
        started = time.thread_time()
        _, iters = fit_gamma(chunk, exp_elogbeta, alpha, keys, ITERATIONS, 0.0)
        seconds = time.thread_time() - started
    nonempty = np.diff(chunk.indptr) > 0
    if not np.all(iters[nonempty] == ITERATIONS):
        raise RuntimeError("a document stopped early: the measurement needs a fixed number of iterations")
    return seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the models, then time the peak and every K, interleaved, ``args.repeats`` times."""
    info = machine()
    chunk, corpus_text = load_corpus(args.data_dir, args.docs)
    logger.info("corpus: %s (%d non-zeros)", corpus_text, chunk.nnz)
    models = {}
    for k in args.topics:
        models[k] = trained_model(chunk, k)
        time_estep(chunk.slice(0, 50), models[k])  # compile / load the kernel before timing
        logger.info("K = %d: model ready", k)
    measure_peak()
    peaks: list[float] = []
    seconds: dict[int, list[float]] = {k: [] for k in args.topics}
    for repeat in range(args.repeats):
        peaks.append(measure_peak())
        for k in args.topics:
            seconds[k].append(time_estep(chunk, models[k]))
        logger.info("repetition %d/%d: peak %.1f GFLOP/s", repeat + 1, args.repeats, peaks[-1])
    peak = statistics.median(peaks)
    rows = []
    for k in args.topics:
        s = statistics.median(seconds[k])
        work = chunk.nnz * k * ITERATIONS
        gflops = 4.0 * work / s / 1e9
        rows.append({"K": k, "seconds": s, "ns_per_nnz_topic_iter": s / work * 1e9, "gflops": gflops,
                     "share_of_peak": gflops / peak, "all_seconds": seconds[k]})
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "corpus": corpus_text, "nnz": chunk.nnz,
            "docs": chunk.n_docs, "iterations": ITERATIONS, "peak_gflops": peak, "all_peaks": peaks,
            "repeats": args.repeats, "rows": rows, "cpu": info["cpu"], "git": info["git"],
            "command": " ".join(["python", "bench/kernel_speed.py", *args.argv])}


def flatness(rows: list[dict[str, Any]], low: int = 32, high: int = 1000) -> float:
    """Slowest over fastest time per non-zero per topic per iteration for low <= K <= high."""
    times = [r["ns_per_nnz_topic_iter"] for r in rows if low <= r["K"] <= high]
    return max(times) / min(times) if times else float("nan")


def render(result: dict[str, Any], json_path: str, before: dict[str, Any] | None = None) -> str:
    """The Markdown section for docs/benchmarks.md; with ``before`` (an earlier results file), its times too."""
    lines = [f"<!-- {DOCS_MARK}:begin -->", "## E-step kernel speed against K", "",
             f"Written by `bench/kernel_speed.py`; raw results in `{json_path}`. {result['date']}, {result['cpu']}.",
             "", "```", result["command"], "```", "",
             f"Corpus: {result['corpus']}: {result['docs']:,} documents, {result['nnz']:,} non-zeros. Phase 1 of the "
             f"E-step on one thread, {result['iterations']} iterations for every document (`gamma_threshold=0`), "
             "the model distlda trains in one pass at each K (float32). Peak: this core's FP32 multiply-add "
             f"throughput, measured by the script's FMA kernel: **{result['peak_gflops']:.0f} GFLOP/s** (median of "
             f"{result['repeats']}). Per non-zero, topic and iteration the kernel does 2 multiply-adds (the "
             "normaliser's dot product and the accumulation), counted as 4 flops. Medians of "
             f"{result['repeats']} interleaved repetitions; CPU time of the kernel's thread.", "",
             "| K | seconds | ns / (nnz · K · iteration) | GFLOP/s | share of peak |"
             + (" ns before | speed-up |" if before else ""),
             "| ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if before else "")]
    earlier = {r["K"]: r["ns_per_nnz_topic_iter"] for r in before["rows"]} if before else {}
    for r in result["rows"]:
        line = (f"| {r['K']} | {r['seconds']:.3f} | {r['ns_per_nnz_topic_iter']:.3f} | {r['gflops']:.1f} | "
                f"{100 * r['share_of_peak']:.0f}% |")
        if before:
            old = earlier.get(r["K"])
            line += f" {old:.3f} | {old / r['ns_per_nnz_topic_iter']:.2f}x |" if old else " – | – |"
        lines.append(line)
    big = [r["share_of_peak"] for r in result["rows"] if r["K"] >= 100]
    lines += ["", f"- Slowest over fastest time per non-zero per topic per iteration, K = 32 … 1000: "
                  f"**{flatness(result['rows']):.2f}x** (target: at most 1.3x).",
              f"- Lowest share of the peak at K ≥ 100: **{100 * min(big):.0f}%** (target: at least 30%)."
              if big else "- No K ≥ 100 was measured."]
    if before:
        lines.append(f"- *ns before*: the same measurement of the kernel of git {before.get('git', '?')} "
                     f"({before['date']}; peak then {before['peak_gflops']:.0f} GFLOP/s), slowest over fastest "
                     f"{flatness(before['rows']):.2f}x.")
    lines.append(f"<!-- {DOCS_MARK}:end -->")
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Put ``section`` into ``path``, replacing an earlier one (bench/compare.py keeps it when it rewrites)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    begin, end = f"<!-- {DOCS_MARK}:begin -->", f"<!-- {DOCS_MARK}:end -->"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="prepared datasets; its debian/ is used when present (default %(default)s)")
    parser.add_argument("--docs", type=int, default=12_000, help="documents of the corpus (default %(default)s)")
    parser.add_argument("--topics", default=",".join(map(str, TOPICS)), help="K values (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (default %(default)s)")
    parser.add_argument("--json-out", type=Path, default=None,
                        help=f"raw results (default {RESULTS_DIR}/kernel-speed-<time>.json)")
    parser.add_argument("--write-docs", action="store_true", help="put the table into docs/benchmarks.md")
    parser.add_argument("--before", type=Path, default=None,
                        help="an earlier results file (an older kernel): its times are shown next to this run's")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args.topics = [int(k) for k in args.topics.split(",") if k.strip()]
    except ValueError:
        parser.error("--topics must be comma-separated integers")
    if not args.topics or min(args.topics) < 1 or args.repeats < 1 or args.docs < 1:
        parser.error("--topics, --repeats and --docs must be positive")
    if args.json_out is None:
        args.json_out = RESULTS_DIR / f"kernel-speed-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    result = run(args)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    try:
        shown = str(args.json_out.resolve().relative_to(REPO_DIR))
    except ValueError:
        shown = str(args.json_out)
    before = json.loads(args.before.read_text(encoding="utf-8")) if args.before else None
    section = render(result, shown, before)
    sys.stdout.write(section + "\n")
    if args.write_docs:
        write_docs(REPO_DIR / "docs" / "benchmarks.md", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
