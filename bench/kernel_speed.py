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
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from common import BLAS_ENV_VARS, DEFAULT_DATA_DIR, REPO_DIR, RESULTS_DIR, DatasetFiles

for _name in BLAS_ENV_VARS:  # before numpy loads its BLAS: gensim's E-step is timed as the CPU time of this thread
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
from compare import machine  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from distlda.core.estep import fit_gamma  # noqa: E402
from distlda.corpora import BinaryCorpus  # noqa: E402
from distlda.corpora.csr import CsrChunk  # noqa: E402
from distlda.datasets import make_lda_corpus  # noqa: E402
from distlda.kernels import estep as estep_kernels  # noqa: E402
from distlda.kernels.parallel import kernel_threads  # noqa: E402
from distlda.kernels.rng import training_keys  # noqa: E402
from distlda.kernels.vectorir import vector_lanes  # noqa: E402
from distlda.models import LdaModel  # noqa: E402

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


def time_estep(chunk: CsrChunk, model: tuple[np.ndarray, np.ndarray], threads: int = 1, wall: bool = False) -> float:
    """Seconds of one E-step (phase 1) over ``chunk`` on ``threads`` threads, 20 iterations for every document: the
    CPU time of this thread (on one thread the kernel runs on it), or with ``wall`` the wall time."""
    exp_elogbeta, alpha = model
    keys = training_keys(0, 0, 0, chunk.n_docs)
    clock = time.perf_counter if wall else time.thread_time
    with kernel_threads(threads):
        started = clock()
        _, iters = fit_gamma(chunk, exp_elogbeta, alpha, keys, ITERATIONS, 0.0)
        seconds = clock() - started
    nonempty = np.diff(chunk.indptr) > 0
    if not np.all(iters[nonempty] == ITERATIONS):
        raise RuntimeError("a document stopped early: the measurement needs a fixed number of iterations")
    return seconds


def _kernel_thread_cpu() -> dict[int, float]:
    """CPU seconds so far of each thread that runs kernels: this one and the kernels' pool."""
    seconds = {}
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.name.startswith("distlda-kernel"):
            try:
                seconds[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (AttributeError, OSError, TypeError):  # (no per-thread CPU clocks on this platform)
                pass
    return seconds


def time_estep_busiest(chunk: CsrChunk, model: tuple[np.ndarray, np.ndarray], threads: int) -> tuple[float, float]:
    """The wall time of one E-step (phase 1) on ``threads`` threads, and the CPU seconds of its busiest kernel thread:
    its time on ``threads`` idle cores, with what other processes take from them left out (the wall time counts
    that)."""
    before = _kernel_thread_cpu()
    wall = time_estep(chunk, model, threads=threads, wall=True)
    after = _kernel_thread_cpu()
    return wall, max(after[t] - before.get(t, 0.0) for t in after)


def gensim_model(model: tuple[np.ndarray, np.ndarray]):  # type: ignore[no-untyped-def]
    """gensim's LdaModel holding the same exp(E[log β]) and α, set to run exactly ``ITERATIONS`` E-step iterations
    per document: it stops a document when the mean |Δγ| < gamma_threshold, never true for 0."""
    from gensim.models import LdaModel as GensimLda

    exp_elogbeta, alpha = model
    V, K = exp_elogbeta.shape[0], alpha.shape[0]
    lda = GensimLda(num_topics=K, id2word={v: str(v) for v in range(V)}, alpha=alpha.astype(np.float32),
                    iterations=ITERATIONS, gamma_threshold=0.0, random_state=0, dtype=np.float32)
    lda.expElogbeta = np.ascontiguousarray(exp_elogbeta[:, :K].T)
    return lda


def time_gensim(lda, docs: list) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds of this thread for gensim's E-step (``LdaModel.inference``) over ``docs`` (BLAS on this thread
    only: see the top of the script)."""
    started = time.thread_time()
    lda.inference(docs)
    return time.thread_time() - started


def time_serial(chunk: CsrChunk, model: tuple[np.ndarray, np.ndarray]) -> float:
    """CPU seconds of the serial part of phase 1 on this thread: listing the words the chunk uses, before their rows
    are copied and the kernel runs (both split between the threads)."""
    exp_elogbeta = np.require(model[0], requirements="CAW")
    started = time.thread_time()
    estep_kernels._chunk_words(chunk.for_kernels(exp_elogbeta.dtype).ids, exp_elogbeta.shape[0])
    return time.thread_time() - started


def computed_share(chunk: CsrChunk, model: tuple[np.ndarray, np.ndarray]) -> float:
    """The share of the dense work that phase 1 does on ``chunk`` at fixed iterations: each entry's dot product and
    accumulation run over the vectors of its document's exp(E[log θ]) that are not all zero (the kernel skips the
    others, with the same bits), as the kernel counts them (``vectors_used``), over entries × every vector × the
    iterations."""
    exp_elogbeta, alpha = (np.require(a, np.float32, "CAW") for a in model)
    chunk = chunk.for_kernels(exp_elogbeta.dtype)
    n = chunk.n_docs
    gamma, iters = np.empty((n, exp_elogbeta.shape[1]), exp_elogbeta.dtype), np.empty(n, np.int32)
    used = np.empty(n, np.int64)
    estep_kernels.estep_gamma(chunk.indptr, chunk.ids, chunk.counts, exp_elogbeta, alpha,
                              np.require(training_keys(0, 0, 0, n), np.uint64, "CAW"), ITERATIONS, 0.0, gamma, iters,
                              used)
    lanes = vector_lanes(exp_elogbeta.itemsize)
    entries = np.diff(chunk.indptr).astype(np.float64)
    return float(entries @ used) / float(entries @ iters * -(-exp_elogbeta.shape[1] // lanes))


def paired(a: list[float], b: list[float]) -> float:
    """Median of the ratios a[i] / b[i] of measurements taken side by side."""
    return statistics.median(x / y for x, y in zip(a, b))


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def measure(args: argparse.Namespace, chunk: CsrChunk, models: dict) -> dict[str, Any]:
    """Every timing, ``args.repeats`` times, interleaved: the peak, then for each K one thread, with ``--threads``
    one and two threads in wall time, and with ``--gensim-docs`` distlda and gensim on the first documents."""
    small = chunk.slice(0, min(args.gensim_docs, chunk.n_docs))
    small_docs = list(small)
    lda = {k: gensim_model(models[k]) for k in args.topics} if args.gensim_docs else {}
    names = ("one", "serial", "wall1", "wall2", "busiest2", "small", "gensim")
    times: dict[str, Any] = {"peak": [], **{name: {k: [] for k in args.topics} for name in names}}
    measure_peak()
    for repeat in range(args.repeats):
        times["peak"].append(measure_peak())
        for k in args.topics:
            times["one"][k].append(time_estep(chunk, models[k]))
            if args.threads:
                times["serial"][k].append(time_serial(chunk, models[k]))
                times["wall1"][k].append(time_estep(chunk, models[k], threads=1, wall=True))
                wall, busiest = time_estep_busiest(chunk, models[k], threads=2)
                times["wall2"][k].append(wall)
                times["busiest2"][k].append(busiest)
            if args.gensim_docs:
                times["small"][k].append(time_estep(small, models[k]))
                times["gensim"][k].append(time_gensim(lda[k], small_docs))
        logger.info("repetition %d/%d: peak %.1f GFLOP/s", repeat + 1, args.repeats, times["peak"][-1])
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the models, then time the peak and every K, interleaved, ``args.repeats`` times."""
    info = machine()
    load_before = load_average()
    chunk, corpus_text = load_corpus(args.data_dir, args.docs)
    logger.info("corpus: %s (%d non-zeros)", corpus_text, chunk.nnz)
    models = {}
    for k in args.topics:
        models[k] = trained_model(chunk, k)
        time_estep(chunk.slice(0, 50), models[k])  # compile / load the kernel before timing
        logger.info("K = %d: model ready", k)
    times = measure(args, chunk, models)
    peak = statistics.median(times["peak"])
    rows = []
    for k in args.topics:
        s = statistics.median(times["one"][k])
        work = chunk.nnz * k * ITERATIONS
        gflops = 4.0 * work / s / 1e9
        computed = computed_share(chunk, models[k])
        row = {"K": k, "seconds": s, "ns_per_nnz_topic_iter": s / work * 1e9, "gflops": gflops,
               "share_of_peak": gflops / peak, "computed_share": computed, "computed_share_of_peak":
               gflops * computed / peak, "all_seconds": times["one"][k]}
        if args.threads:
            serial = statistics.median(times["serial"][k]) / s
            row.update(two_thread_speedup=paired(times["wall1"][k], times["wall2"][k]), serial_share=serial,
                       two_thread_busiest=paired(times["one"][k], times["busiest2"][k]),
                       all_busiest_2_threads=times["busiest2"][k],
                       two_thread_bound=1.0 / (serial + (1.0 - serial) / 2.0),
                       all_wall_1_thread=times["wall1"][k], all_wall_2_threads=times["wall2"][k])
        if args.gensim_docs:
            row.update(vs_gensim=paired(times["gensim"][k], times["small"][k]),
                       all_distlda_small=times["small"][k], all_gensim_small=times["gensim"][k])
        rows.append(row)
    return {"date": dt.datetime.now().isoformat(timespec="seconds"), "corpus": corpus_text, "nnz": chunk.nnz,
            "docs": chunk.n_docs, "iterations": ITERATIONS, "peak_gflops": peak, "all_peaks": times["peak"],
            "repeats": args.repeats, "rows": rows, "cpu": info["cpu"], "git": info["git"],
            "load_average": {"start": load_before, "end": load_average()}, "cores": os.cpu_count(),
            "gensim_docs": min(args.gensim_docs, chunk.n_docs), "threads_measured": bool(args.threads),
            "command": " ".join(["python", "bench/kernel_speed.py", *args.argv])}


def flatness(rows: list[dict[str, Any]], low: int = 32, high: int = 1000) -> float:
    """Slowest over fastest time per non-zero per topic per iteration for low <= K <= high."""
    times = [r["ns_per_nnz_topic_iter"] for r in rows if low <= r["K"] <= high]
    return max(times) / min(times) if times else float("nan")


def _columns(result: dict[str, Any], before: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(header, cell of a row) of the table's columns."""
    earlier = {r["K"]: r["ns_per_nnz_topic_iter"] for r in before["rows"]} if before else {}
    columns = [("K", lambda r: f"{r['K']}"), ("seconds", lambda r: f"{r['seconds']:.3f}"),
               ("ns / (nnz · K · iteration)", lambda r: f"{r['ns_per_nnz_topic_iter']:.3f}"),
               ("GFLOP/s", lambda r: f"{r['gflops']:.1f}"),
               ("share of peak", lambda r: f"{100 * r['share_of_peak']:.0f}%")]
    if all("computed_share" in r for r in result["rows"]):
        columns += [("vectors computed", lambda r: f"{100 * r['computed_share']:.0f}%"),
                    ("share of peak, computed", lambda r: f"{100 * r['computed_share_of_peak']:.0f}%")]
    if result.get("threads_measured"):
        columns += [("2 threads / 1 thread", lambda r: f"{r['two_thread_speedup']:.2f}x")]
        if all("two_thread_busiest" in r for r in result["rows"]):
            columns.append(("2 threads / 1, busiest thread's CPU", lambda r: f"{r['two_thread_busiest']:.2f}x"))
        columns.append(("serial share (2-thread bound)",
                        lambda r: f"{100 * r['serial_share']:.1f}% ({r['two_thread_bound']:.2f}x)"))
    if result.get("gensim_docs"):
        columns.append(("× gensim per iteration", lambda r: f"{r['vs_gensim']:.1f}x"))
    if before:
        columns += [("ns before", lambda r: f"{earlier[r['K']]:.3f}" if r["K"] in earlier else "–"),
                    ("speed-up", lambda r: f"{earlier[r['K']] / r['ns_per_nnz_topic_iter']:.2f}x"
                     if r["K"] in earlier else "–")]
    return columns


def _summary(result: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    """The lines under the table: each target of the issue against the figures."""
    rows = result["rows"]
    big = [r["share_of_peak"] for r in rows if r["K"] >= 100]
    lines = [f"- Slowest over fastest time per non-zero per topic per iteration, K = 32 … 1000: "
             f"**{flatness(rows):.2f}x** (target: at most 1.3x).",
             f"- Lowest share of the peak at K ≥ 100: **{100 * min(big):.0f}%** (target: at least 30%)."
             if big else "- No K ≥ 100 was measured."]
    if big and all("computed_share" in r for r in rows):
        lines.append(f"- *Vectors computed*: the share of the dense work phase 1 does (as the kernel counts "
                     "it), since it skips the vectors of a document's exp(E[log θ]) that are exactly zero, "
                     "with the same bits. *Share of peak, computed* counts only that work: lowest at K ≥ 100 "
                     f"**{100 * min(r['computed_share_of_peak'] for r in rows if r['K'] >= 100):.0f}%**. The "
                     "flops and shares before it count the dense work, as the target does.")
    if result.get("threads_measured"):
        worst = min(rows, key=lambda r: r["two_thread_speedup"])
        lines.append(f"- Two threads over one (wall time of phase 1, medians of paired ratios), lowest at K = "
                     f"{worst['K']}: **{worst['two_thread_speedup']:.2f}x** (target: at least 1.8x). *Serial share*: "
                     "the CPU time of phase 1's serial part (listing the chunk's words) over the one-thread time, "
                     "and the speed-up it leaves two threads on two idle cores (Amdahl).")
        if all("two_thread_busiest" in r for r in rows):
            worst = min(rows, key=lambda r: r["two_thread_busiest"])
            lines.append(f"- *2 threads / 1, busiest thread's CPU*: the one-thread CPU time over the CPU time of the "
                         "busiest of the two threads in the same repetition (medians of paired ratios). It is the "
                         "2-thread time on two idle cores, imbalance and serial part included, without the time other "
                         "processes take from the cores (short runs have shown more than 2x: the CPU time per work is "
                         f"not quite the same on one thread and two): lowest at K = {worst['K']}, "
                         f"**{worst['two_thread_busiest']:.2f}x**.")
        load = result.get("load_average", {})
        busiest = max([*load.get("start", [])[:1], *load.get("end", [])[:1]], default=0.0)
        if result.get("cores") and busiest > result["cores"] - 1:
            lines.append(f"- The 1-minute load average reached {busiest:.2f} on {result['cores']} cores: other "
                         "processes left the second thread less than a core, so the measured 2-thread figure is the "
                         "machine's more than the kernel's.")
    if result.get("gensim_docs"):
        worst = min(rows, key=lambda r: r["vs_gensim"])
        lines.append(f"- gensim's `LdaModel.inference` over distlda's phase 1 on the first {result['gensim_docs']:,} "
                     f"documents, one thread each, {result['iterations']} iterations for every document (gensim "
                     f"with `gamma_threshold=0`, the same exp(E[log β]) and α), lowest at K = {worst['K']}: "
                     f"**{worst['vs_gensim']:.1f}x** (target: at least 5x).")
    if before:
        lines.append(f"- *ns before*: the same measurement of the kernel of git {before.get('git', '?')} "
                     f"({before['date']}; peak then {before['peak_gflops']:.0f} GFLOP/s), slowest over fastest "
                     f"{flatness(before['rows']):.2f}x.")
    return lines


def render(result: dict[str, Any], json_path: str, before: dict[str, Any] | None = None) -> str:
    """The Markdown section for docs/benchmarks.md; with ``before`` (an earlier results file), its times too."""
    load = result.get("load_average", {})
    load_text = (f" Load average (1, 5, 15 min) at the start {', '.join(f'{x:.2f}' for x in load['start'])}, at the "
                 f"end {', '.join(f'{x:.2f}' for x in load['end'])}, on this machine's cores."
                 if load.get("start") and load.get("end") else "")
    columns = _columns(result, before)
    lines = [f"<!-- {DOCS_MARK}:begin -->", "## E-step kernel speed against K", "",
             f"Written by `bench/kernel_speed.py`; raw results in `{json_path}`. {result['date']}, {result['cpu']}."
             + load_text, "", "```", result["command"], "```", "",
             f"Corpus: {result['corpus']}: {result['docs']:,} documents, {result['nnz']:,} non-zeros. Phase 1 of the "
             f"E-step on one thread, {result['iterations']} iterations for every document (`gamma_threshold=0`), "
             "the model distlda trains in one pass at each K (float32). Peak: this core's FP32 multiply-add "
             f"throughput, measured by the script's FMA kernel: **{result['peak_gflops']:.0f} GFLOP/s** (median of "
             f"{result['repeats']}). Per non-zero, topic and iteration the kernel does 2 multiply-adds (the "
             "normaliser's dot product and the accumulation), counted as 4 flops. Medians of "
             f"{result['repeats']} interleaved repetitions; CPU time of the kernel's thread.", "",
             "| " + " | ".join(name for name, _ in columns) + " |",
             "| " + " | ".join("---:" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in result["rows"]]
    lines += ["", *_summary(result, before), f"<!-- {DOCS_MARK}:end -->"]
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
    parser.add_argument("--threads", action="store_true",
                        help="also time the E-step on 1 and 2 threads (wall time) for the 2-thread speed-up")
    parser.add_argument("--gensim-docs", type=int, default=1000,
                        help="time gensim's E-step against distlda's on this many first documents, 0 for none "
                             "(default %(default)s)")
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
    if args.gensim_docs < 0:
        parser.error("--gensim-docs must be 0 or more")
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
