"""Time to quality on a synthetic corpus: topic recovery against training seconds, distlda beside tomotopy.

A corpus is drawn from K known topics (:func:`distlda.datasets.make_lda_corpus`: α = 0.1, η = 0.01, documents
of 50 words on average); every system trains on the same documents with α = η = 1/K (tomotopy: fixed, its
hyper-parameter optimisation off) and the learned topics are scored by the mean Hellinger distance to the true
ones after optimal matching (:func:`distlda.evaluation.topic_recovery`; lower is better). The clock counts
training only: the score is computed at the end of every pass (distlda) or every ``--gibbs-step`` sweeps
(tomotopy), outside the timed part.

Examples
--------
Both systems, K = 50 and 100, three seeds, 2 threads (about 15 minutes on 2 cores)::

    python bench/quality.py --topics 50 100 --seeds 0 1 2 --systems distlda gensim-init tomotopy

One variant, quickly::

    python bench/quality.py --topics 50 --seeds 0 --systems distlda --passes 10

Needs ``pip install tomotopy`` for the tomotopy rows. ``--json`` writes every curve; ``--svg`` draws the
curves (recovery against seconds, one line per system, K and seed).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

from distlda.core import init as anchors_init
from distlda.datasets import make_lda_corpus
from distlda.evaluation import topic_recovery
from distlda.models import LdaModel
from distlda.models.callbacks import Metric

logger = logging.getLogger("bench.quality")

Curve = list[tuple[float, float]]  # (training seconds, mean Hellinger distance)


class _RecoveryClock(Metric):
    """Scores the model at every pass end and keeps the training seconds so far (scoring excluded)."""

    def __init__(self, true_topics: np.ndarray, started: Callable[[], float]) -> None:
        super().__init__(title="recovery")
        self.true_topics, self.started = true_topics, started
        self.excluded = 0.0
        self.curve: Curve = []

    def get_value(self, **kwargs: Any) -> float:
        stop = time.perf_counter()
        score = topic_recovery(self.true_topics, kwargs["model"].get_topics()).mean_hellinger
        self.curve.append((stop - self.started() - self.excluded, score))
        self.excluded += time.perf_counter() - stop
        return score


def run_distlda(corpus: Any, k: int, seed: int, passes: int, threads: int, **options: Any) -> Curve:
    """Train distlda (2 threads by default) and return its recovery after every pass."""
    t0 = [0.0]
    clock = _RecoveryClock(corpus.topics, lambda: t0[0])
    t0[0] = time.perf_counter()
    LdaModel(corpus, num_topics=k, id2word=corpus.id2word, passes=passes, random_state=seed, eval_every=0,
             threads=threads, callbacks=[clock], alpha=options.pop("alpha", 1.0 / k),
             eta=options.pop("eta", 1.0 / k), **options)
    return clock.curve


def run_tomotopy(corpus: Any, k: int, seed: int, sweeps: int, step: int, threads: int) -> Curve:
    """Train tomotopy's collapsed Gibbs sampler and return its recovery every ``step`` sweeps."""
    import tomotopy as tp

    model = tp.LDAModel(k=k, alpha=1.0 / k, eta=1.0 / k, seed=seed)
    model.optim_interval = 0  # fixed priors, as every system here
    chunk = corpus.chunk
    for d in range(chunk.n_docs):
        lo, hi = chunk.indptr[d], chunk.indptr[d + 1]
        words = [str(int(t)) for t, c in zip(chunk.ids[lo:hi], chunk.counts[lo:hi]) for _ in range(int(c))]
        model.add_doc(words)
    columns = None
    elapsed, curve = 0.0, []
    for _ in range(0, sweeps, step):
        started = time.perf_counter()
        model.train(step, workers=threads)
        elapsed += time.perf_counter() - started
        if columns is None:
            columns = np.array([int(w) for w in model.used_vocabs], dtype=np.int64)
        dists = np.array([model.get_topic_word_dist(j) for j in range(k)], dtype=np.float64)
        topics = np.repeat(dists.min(axis=1, keepdims=True), corpus.num_terms, axis=1)
        topics[:, columns] = dists
        curve.append((elapsed, topic_recovery(corpus.topics, topics).mean_hellinger))
    return curve


VARIANTS: dict[str, dict[str, Any]] = {
    "distlda": {},
    "gensim-init": {"init": "gensim"},
    "auto": {"alpha": "auto", "eta": "auto"},
    "gensim-init-auto": {"init": "gensim", "alpha": "auto", "eta": "auto"},
}
"""distlda configurations by name: keyword arguments of LdaModel on top of the shared settings."""


def time_to(curve: Curve, target: float) -> float | None:
    """Seconds at which a curve first reaches ``target`` (None if never)."""
    return next((t for t, score in curve if score <= target), None)


_COLORS = {"distlda": "#e45f1a", "tomotopy": "#4c78a8", "gensim-init": "#888888"}


def _svg(results: list[dict[str, Any]], path: str) -> None:
    """One chart: recovery against seconds, a colour per system, solid for the first K and dashed for others."""
    from distlda.report.axes import nice_ticks, tick_labels
    from distlda.report.svg import esc

    width, height, left, top, bottom, right = 760.0, 340.0, 56.0, 14.0, 44.0, 150.0
    ks = sorted({r["topics"] for r in results})
    xs = [t for r in results for t, _ in r["curve"]]
    ys = [s for r in results for _, s in r["curve"]]
    xt, yt = nice_ticks(0.0, max(xs), 6), nice_ticks(min(ys), max(ys), 5)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + (v - xt[0]) / (xt[-1] - xt[0]) * plot_w

    def py(v: float) -> float:
        return top + (yt[-1] - v) / (yt[-1] - yt[0]) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" font-size="11" '
           f'font-family="sans-serif" role="img" aria-label="topic recovery against training seconds">']
    for v, text in zip(xt, tick_labels(xt)):
        out.append(f'<line x1="{px(v):.1f}" x2="{px(v):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eee"/>'
                   f'<text x="{px(v):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{esc(text)}</text>')
    for v, text in zip(yt, tick_labels(yt)):
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 5}" y="{py(v) + 4:.1f}" text-anchor="end">{esc(text)}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">training seconds (2 threads)'
               f'</text><text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
               "mean Hellinger distance to the true topics</text>")
    legend_y = top + 10
    for r in results:
        dash = "" if r["topics"] == ks[0] else ' stroke-dasharray="5 3"'
        color = _COLORS.get(r["system"], "#54a24b")
        points = " ".join(f"{px(t):.1f},{py(s):.1f}" for t, s in r["curve"])
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"{dash}>'
                   f'<title>{esc(r["system"])} K={r["topics"]} seed {r["seed"]}</title></polyline>')
    for system in dict.fromkeys(r["system"] for r in results):
        for k in ks:
            dash = "" if k == ks[0] else ' stroke-dasharray="5 3"'
            x0 = left + plot_w + 12
            out.append(f'<line x1="{x0}" x2="{x0 + 22}" y1="{legend_y}" y2="{legend_y}" '
                       f'stroke="{_COLORS.get(system, "#54a24b")}" stroke-width="1.6"{dash}/>'
                       f'<text x="{x0 + 27}" y="{legend_y + 4}">{esc(system)}, K = {k}</text>')
            legend_y += 16
    out.append("</svg>\n")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("".join(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, nargs="+", default=[50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--systems", nargs="+", default=["distlda", "gensim-init", "tomotopy"],
                        help=f"tomotopy or distlda variants: {', '.join(VARIANTS)}")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--terms", type=int, default=8000)
    parser.add_argument("--passes", type=int, default=20, help="distlda passes")
    parser.add_argument("--sweeps", type=int, default=400, help="tomotopy Gibbs sweeps")
    parser.add_argument("--gibbs-step", type=int, default=50, help="sweeps between tomotopy scores")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sample-documents", type=int, metavar="N",
                        help="most documents the anchor start counts co-occurrences over "
                             f"(default {anchors_init.SAMPLE_DOCUMENTS:,}; matters for --docs above it)")
    parser.add_argument("--json", help="write every curve here")
    parser.add_argument("--svg", help="draw every curve here (SVG)")
    parser.add_argument("--replot", metavar="JSON", help="only draw --svg from the curves of an earlier --json")
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.replot, encoding="utf-8") as fh:
            _svg(json.load(fh)["results"], args.svg)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.sample_documents:
        anchors_init.SAMPLE_DOCUMENTS = args.sample_documents
    results = []
    for k in args.topics:
        for seed in args.seeds:
            corpus = make_lda_corpus(args.docs, args.terms, k, random_state=1000 + seed)
            for system in args.systems:
                if system == "tomotopy":
                    curve = run_tomotopy(corpus, k, seed, args.sweeps, args.gibbs_step, args.threads)
                else:
                    curve = run_distlda(corpus, k, seed, args.passes, args.threads, **dict(VARIANTS[system]))
                results.append({"topics": k, "seed": seed, "system": system, "curve": curve})
                points = " ".join(f"{t:.1f}s:{s:.3f}" for t, s in curve)
                sys.stdout.write(f"K={k} seed={seed} {system:18s} {points}\n")
                sys.stdout.flush()
    _summary(results, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)
    if args.svg:
        _svg(results, args.svg)
    return 0


def _summary(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Per K: tomotopy's final recovery (the target) and each system's seconds to reach it, medians over seeds."""
    for k in args.topics:
        rows = [r for r in results if r["topics"] == k]
        targets = {r["seed"]: r["curve"][-1][1] for r in rows if r["system"] == "tomotopy"}
        sys.stdout.write(f"\nK={k}: target = tomotopy after {args.sweeps} sweeps\n")
        for system in args.systems:
            mine = [r for r in rows if r["system"] == system]
            finals = [r["curve"][-1][1] for r in mine]
            reach = [time_to(r["curve"], targets[r["seed"]]) for r in mine if r["seed"] in targets]
            reached = [t for t in reach if t is not None]
            sys.stdout.write(f"  {system:18s} final {statistics.median(finals):.3f} in "
                             f"{statistics.median(r['curve'][-1][0] for r in mine):.1f}s; reaches target "
                             f"{len(reached)}/{len(reach)} seeds, median "
                             f"{statistics.median(reached) if reached else float('nan'):.1f}s\n")


if __name__ == "__main__":
    sys.exit(main())
