"""The reduce-scatter's model: bytes per M-step of each host role and the speed-up over one local thread, fitted to a
``bench/scaling.py`` results file and predicted for 1–64 hosts on links of 1 and 10 Gbit/s × c.

    python bench/scaling_model.py --results bench/results/scaling-....json [--sample-docs 64000] [--markdown F]

What it takes from this machine (docs/scaling.md, "The model of the reduce-scatter", gives the figures):

- the words a chunk of n documents touches, and a mini-batch of 16,000: counted on documents drawn with
  ``bench/scaling.py``'s generator (``--sample-docs`` of them);
- the local engine's CPU split — E-step and reduce per document, M-step per mini-batch — from one local thread on
  those documents, scaled so that their sum is the results file's baseline (its CPU seconds: the same machine speed
  as the runs it is compared with);
- κ, a worker's CPU per byte it sends or receives, from ``bench/bulk_speed.py`` (half of both ends' CPU per MB);
- two constants fitted (least squares) to the results file's cluster runs: o, the wall time of one call between two
  hosts, and φ, how much longer than the link's rate the two transfers on the critical path take (TCP's windows
  and the shaper's bursts).

Per M-step of a mini-batch of n_b documents in C chunks, with t_c and t_b the touched words of a chunk and of the
batch and a row of K float32 values and its word id (R = 4K + 4 bytes), each worker

- sends its chunks' partial rows of the other ranges, (C / W) · t_c · (W − 1) / W · R, and receives as much
  (the other chunks' rows of its range);
- sends its range's sums to the W − 1 others, t_b / W · (W − 1) · R, and receives the other ranges',
  t_b · (W − 1) / W · R;
- one worker in turn, every 20 M-steps, sends the model to the client: V · K · 4 / 20 / W on average (whole-chunk
  jobs keep their γ on the worker since 25713a0);

the server (dispatcher) receives a base every 20 M-steps (V · K · 4 / 20), and the client receives the model and
sends it on as the base (2 · V · K · 4 / 20); the calls themselves (jobs, results, recipes) are left out. The time of
an M-step on hosts of c cores with links of B bytes/s is the worker's CPU over c — its share of the E-step and reduce,
the M-step, κ × its bytes — plus φ × the two transfers on the critical path (its range's partial rows in, then the
other ranges' sums in) over B, plus o for each of its 2 (W − 1) calls; one local thread takes the whole E-step, reduce and
M-step over c. The model ignores the waits for the slowest chunk.

Whole-chunk jobs need C divisible by W: the measured runs have C = 8 (``chunksize=2000, update_every=8``), so for more
than 8 hosts the predictions are for ``chunksize = 16,000 / W, update_every = W`` (the same mini-batch, smaller
chunks: C = W) — a configuration the results file does not measure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaling import CHUNKSIZE, TERMS, TOPICS, UPDATE_EVERY, draw_corpus  # noqa: E402

logger = logging.getLogger("scaling_model")

BATCH = CHUNKSIZE * UPDATE_EVERY
SYNC_EVERY = 20
HOSTS = (1, 2, 4, 8, 16, 32, 64)
LINKS = (10e9, 1e9)


def touched_words(corpus: Any) -> dict[int, float]:
    """Mean words touched by a chunk of n documents, for the chunk sizes of 1–64 hosts and for a whole batch."""
    sample_docs = len(corpus)
    ids = [np.array([w for w, _ in doc], dtype=np.int64) for doc in corpus]
    sizes = sorted({BATCH // max(UPDATE_EVERY, w) for w in HOSTS} | {BATCH})
    out = {}
    for n in sizes:
        counts = [np.unique(np.concatenate(ids[s:s + n])).size for s in range(0, sample_docs - n + 1, n)]
        out[n] = float(np.mean(counts))
    return out


def engine_split(corpus: Any) -> dict[str, float]:
    """One local thread on the sample: CPU seconds per document (E-step, reduce) and per M-step."""
    from distlda.datasets.synthetic import synthetic_id2word
    from distlda.models import LdaModel

    params = dict(id2word=synthetic_id2word(TERMS), num_topics=TOPICS, chunksize=CHUNKSIZE, update_every=UPDATE_EVERY,
                  passes=1, random_state=0, eval_every=0, alpha=1.0 / TOPICS, eta=0.01, init="gensim", threads=1)
    LdaModel(list(corpus)[:CHUNKSIZE], **params)  # kernels loaded
    model = LdaModel(corpus, **params)
    stats = model.training_stats
    return {"estep_per_doc": stats["gamma_seconds"] / stats["documents"],
            "reduce_per_doc": stats["reduce_seconds"] / stats["documents"],
            "mstep": stats["mstep_seconds"] / stats["msteps"]}


def worker_bytes(W: int, t: dict[int, float]) -> dict[str, float]:
    """Bytes per M-step through one worker's link, by kind (see the module's text)."""
    C = max(UPDATE_EVERY, W)
    n_c = BATCH // C
    R = 4 * TOPICS + 4
    share = (W - 1) / W
    partial = C / W * t[n_c] * share * R
    return {"partials_out": partial, "partials_in": partial, "sums_out": t[BATCH] / W * (W - 1) * R,
            "sums_in": t[BATCH] * share * R, "model_out": TERMS * TOPICS * 4 / SYNC_EVERY / W}


def role_bytes(W: int, t: dict[int, float]) -> dict[str, float]:
    """Bytes per M-step through each role's link."""
    model = TERMS * TOPICS * 4 / SYNC_EVERY
    return {"worker": sum(worker_bytes(W, t).values()), "server": model, "client": 2 * model}


def mstep_seconds(W: int, link: float, cores: float, t: dict[int, float], cpu: dict[str, float], kappa: float,
                  o: float, phi: float) -> float:
    """Predicted wall seconds of one M-step of W hosts (W = 0: one local thread)."""
    per_doc = cpu["estep_per_doc"] + cpu["reduce_per_doc"]
    if W == 0:
        return (per_doc * BATCH + cpu["mstep"]) / cores
    b = worker_bytes(W, t)
    work = per_doc * BATCH / W + cpu["mstep"] + kappa * sum(b.values())
    critical = (b["partials_in"] + b["sums_in"]) / (link * cores / 8)
    return work / cores + phi * critical + o * 2 * (W - 1)


def fit(runs: list[dict], t: dict[int, float], cpu: dict[str, float], cores: float, kappa: float
        ) -> tuple[float, float]:
    """o and φ by least squares over the runs' seconds per M-step (both enter linearly; κ is measured)."""
    rows, rhs = [], []
    for run in runs:
        W, link = run["workers"], run["bandwidth"]
        b = worker_bytes(W, t)
        rows.append([2 * (W - 1), (b["partials_in"] + b["sums_in"]) / (link * cores / 8)])
        rhs.append(run["result"]["seconds"] / run["result"]["msteps"]
                   - mstep_seconds(W, link, cores, t, cpu, kappa, 0.0, 0.0))
    (o, phi), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return float(max(o, 0.0)), float(max(phi, 0.0))


def report(results: dict, sample_docs: int, kappa: float) -> tuple[str, dict]:
    if (results.get("terms", TERMS), results.get("topics", TOPICS)) != (TERMS, TOPICS):
        raise SystemExit(f"the model is of bench/scaling.py's default corpus (V = {TERMS:,}, K = {TOPICS}); this "
                         f"results file is of V = {results['terms']:,}, K = {results['topics']}")
    cores = results["cores"]
    sample = draw_corpus(sample_docs)
    t = touched_words(sample)
    split = engine_split(sample)
    base = results["baseline"]
    base_cpu = base["roles"]["client"]["cpu"] / base["result"]["msteps"]  # CPU seconds per M-step, this machine then
    scale = base_cpu / (split["estep_per_doc"] * BATCH + split["reduce_per_doc"] * BATCH + split["mstep"])
    cpu = {k: v * scale for k, v in split.items()}
    runs = [r for r in results["runs"] if r.get("backend", "pyro") == "pyro" and r["workers"] >= 2]
    o, phi = fit(runs, t, cpu, cores, kappa)
    base_t = base["result"]["seconds"] / base["result"]["msteps"]
    lines = [f"Touched words (mean over the sample of {sample_docs:,} documents): "
             + ", ".join(f"{n:,} documents {w:,.0f}" for n, w in sorted(t.items())) + ".",
             f"Local engine, CPU per M-step of {BATCH:,} documents (scaled to the baseline's {base_cpu * 1e3:.0f} ms): "
             f"E-step {cpu['estep_per_doc'] * BATCH * 1e3:.0f} ms, reduce {cpu['reduce_per_doc'] * BATCH * 1e3:.0f} ms, "
             f"M-step {cpu['mstep'] * 1e3:.1f} ms. Measured: κ = {kappa * 1e9:.2f} ms of CPU per MB a worker sends or "
             f"receives (bench/bulk_speed.py); fitted: o = {o * 1e3:.1f} ms per call, φ = {phi:.2f} (the critical "
             "transfers' time over the link's).", "",
             "| link (real host) | hosts | seconds per M-step, measured | predicted | MB per M-step, worker: "
             "measured | predicted | server: measured | predicted | client: measured | predicted |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in sorted(results["runs"], key=lambda r: (-r["bandwidth"], r["workers"])):
        if run.get("backend", "pyro") != "pyro":
            continue
        W, link = run["workers"], run["bandwidth"]
        measured = run["result"]["seconds"] / run["result"]["msteps"]
        rb, roles = role_bytes(W, t), run["roles"]
        lines.append(f"| {link / 1e9:g} Gbit/s | {W} | {measured:.3f} | "
                     f"{mstep_seconds(W, link, cores, t, cpu, kappa, o, phi):.3f} | "
                     + " | ".join(f"{roles[r]['bytes_per_mstep'] / 1e6:.2f} | {rb[r] / 1e6:.2f}"
                                  for r in ("worker", "server", "client")) + " |")
    lines += ["", "| link (real host) | " + " | ".join(f"{w} hosts" for w in HOSTS) + " |",
              "| --- | " + " | ".join("---:" for _ in HOSTS) + " |"]
    predictions: dict[str, dict[int, float]] = {}
    for link in LINKS:
        speed = {w: mstep_seconds(0, link, cores, t, cpu, kappa, o, phi) / mstep_seconds(w, link, cores, t, cpu, kappa, o, phi)
                 for w in HOSTS}
        predictions[f"{link / 1e9:g}"] = speed
        lines.append(f"| {link / 1e9:g} Gbit/s | " + " | ".join(f"{s:.2f}x" for s in speed.values()) + " |")
    lines += ["", "| hosts | MB per M-step through a worker's link | of which on the critical path |",
              "| ---: | ---: | ---: |"]
    for w in HOSTS:
        b = worker_bytes(w, t)
        lines.append(f"| {w} | {sum(b.values()) / 1e6:.2f} | {(b['partials_in'] + b['sums_in']) / 1e6:.2f} |")
    measured_base = base_t / mstep_seconds(0, LINKS[0], cores, t, cpu, kappa, o, phi)
    lines.append("")
    lines.append(f"(The baseline's measured seconds per M-step over its predicted: {measured_base:.2f}.)")
    return "\n".join(lines), {"touched": t, "cpu": cpu, "kappa": kappa, "o": o, "phi": phi, "predictions": predictions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="a bench/scaling.py results file (Pyro5 runs)")
    parser.add_argument("--sample-docs", type=int, default=64_000)
    parser.add_argument("--kappa-ms-per-mb", type=float, default=None,
                        help="a worker's CPU per MB it sends or receives (default: half of both ends' figure of "
                             "--bulk-speed, or 0.37)")
    parser.add_argument("--bulk-speed", default=None, help="a bench/bulk_speed.py --json-out file")
    parser.add_argument("--markdown", default=None, help="write the tables to this file too")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.perf_counter()
    kappa = args.kappa_ms_per_mb
    if kappa is None and args.bulk_speed:
        rounds = json.loads(Path(args.bulk_speed).read_text())["rounds"]["bulk"]
        kappa = float(np.median([r["client_ms_per_mb"] + r["server_ms_per_mb"] for r in rounds])) / 2
    text, figures = report(json.loads(Path(args.results).read_text()), args.sample_docs,
                           (0.37 if kappa is None else kappa) * 1e-9)
    print(text)
    logger.info("done in %.0f s", time.perf_counter() - started)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"results": args.results, **figures}, indent=1,
                                                  default=lambda v: {str(k): x for k, x in v.items()}))


if __name__ == "__main__":
    main()
