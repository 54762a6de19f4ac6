"""Turn the results of bench/compare.py into docs/benchmarks.md (Markdown)."""

from __future__ import annotations

from typing import Any

from common import BASELINE, CHUNKSIZE, CONFIGS, DECAY, GAMMA_THRESHOLD, ITERATIONS, NUM_TOPICS, OFFSET
from read_speed import markdown_table as read_speed_table
from read_speed import targets as read_speed_targets

LABELS = {c.key: c.label for c in CONFIGS}
SYSTEM_OF = {c.key: c.system for c in CONFIGS}
SPEED_TARGET = 5.0
SCALING_TARGET = 1.7
BOUND_TOLERANCE = 0.01


def peak_mb(row: dict[str, Any]) -> float | None:
    """Peak memory of a configuration while training: its process, plus its largest worker for LdaMulticore."""
    own = row.get("peak_rss_train_mb")
    if own is None:
        return None
    if SYSTEM_OF.get(row["config"]) == "gensim-multicore":
        return own + (row.get("peak_rss_children_mb") or 0.0)
    return own


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _results_table(rows: list[dict[str, Any]]) -> list[str]:
    base = next((r for r in rows if r["config"] == BASELINE and r.get("docs_per_second")), None)
    lines = ["| system | docs/s | vs gensim LdaModel | train s | held-out bound (nats/word) | recovery (Hellinger) "
             "| peak MB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        label = LABELS.get(row["config"], row["config"])
        if row.get("failed"):
            label += f" ({row['failed']} of {row['failed'] + row['runs']} runs failed)"
        if row.get("docs_per_second") is None:
            lines.append(f"| {label} | failed | | | | | |")
            continue
        ratio = f"{row['docs_per_second'] / base['docs_per_second']:.2f}x" if base else "–"
        lines.append(f"| {label} | {row['docs_per_second']:,.0f} | {ratio} | {row['train_seconds']:.1f} "
                     f"| {_fmt(row['heldout_per_word_bound'], '.4f')} | {_fmt(row['topic_recovery'], '.4f')} "
                     f"| {_fmt(peak_mb(row), '.0f')} |")
    return lines


def _passes_text(passes: int) -> str:
    return f"{passes} pass{'es' if passes > 1 else ''}"


def _targets(summary: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(target, where, measured, verdict) for every dataset and passes value; 'n/a' when a run is missing."""
    found: list[tuple[str, str, str, str]] = []
    for dataset, passes in sorted({(r["dataset"], r["passes"]) for r in summary}):
        rows = {r["config"]: r for r in summary
                if r["dataset"] == dataset and r["passes"] == passes and r.get("docs_per_second") is not None}
        where = f"{dataset}, {_passes_text(passes)}"
        found += [(target, where, measured, verdict) for target, measured, verdict in _cell_targets(rows)]
    return found


def _cell_targets(rows: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the median results of one dataset and passes value."""
    g, d1, d2 = rows.get(BASELINE), rows.get("distlda-1t"), rows.get("distlda-2t")
    distlda = [r for r in (d1, d2) if r]
    out = []

    target = f"distlda 1 thread >= {SPEED_TARGET:g}x gensim LdaModel docs/s"
    if d1 and g:
        ratio = d1["docs_per_second"] / g["docs_per_second"]
        out.append((target, f"{ratio:.2f}x", _verdict(ratio >= SPEED_TARGET)))
    else:
        out.append((target, _missing(("distlda-1t", d1), (BASELINE, g)), "n/a"))

    target = f"distlda 2 threads >= {SCALING_TARGET:g}x distlda 1 thread"
    if d1 and d2:
        of_medians = d2["docs_per_second"] / d1["docs_per_second"]
        ratio = d2.get("paired_vs_1t") or of_medians
        out.append((target, f"{ratio:.2f}x (median of paired runs; of the medians {of_medians:.2f}x)",
                    _verdict(ratio >= SCALING_TARGET)))
    else:
        out.append((target, _missing(("distlda-1t", d1), ("distlda-2t", d2)), "n/a"))

    target = "distlda held-out bound within 1% of gensim LdaModel, or better"
    if distlda and g:
        gb = g["heldout_per_word_bound"]
        worst = min(r["heldout_per_word_bound"] for r in distlda)
        rel = (worst - gb) / abs(gb)
        out.append((target, f"{worst:.4f} vs {gb:.4f} ({rel:+.2%})", _verdict(rel >= -BOUND_TOLERANCE)))
    else:
        out.append((target, _missing(("distlda", distlda), (BASELINE, g)), "n/a"))

    if any(r.get("topic_recovery") is not None for r in rows.values()):
        target = "distlda 1 thread recovers topics at least as well as gensim LdaModel, in less time"
        if d1 and g:
            met = d1["topic_recovery"] <= g["topic_recovery"] and d1["train_seconds"] < g["train_seconds"]
            out.append((target, f"{d1['topic_recovery']:.4f} in {d1['train_seconds']:.1f}s vs "
                                f"{g['topic_recovery']:.4f} in {g['train_seconds']:.1f}s", _verdict(met)))
        else:
            out.append((target, _missing(("distlda-1t", d1), (BASELINE, g)), "n/a"))

    # retired by the engine issue (numba's fixed ~113 MB is not worth another compiler): the memory target is now a
    # peak independent of the corpus length from a binary corpus, which bench/peak_memory.py measures
    target = "distlda peak memory <= gensim LdaModel's (retired: see bench/peak_memory.py)"
    if distlda and g:
        worst_mb, base_mb = max(peak_mb(r) for r in distlda), peak_mb(g)
        out.append((target, f"{worst_mb:.0f} MB vs {base_mb:.0f} MB", "retired"))
    else:
        out.append((target, _missing(("distlda", distlda), (BASELINE, g)), "n/a"))
    return out


def _missing(*needed: tuple[str, Any]) -> str:
    return "no result of " + ", ".join(name for name, row in needed if not row)


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _machine(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    v = m["versions"]
    mem = f", {m['memory_gb']:.0f} GB memory" if m.get("memory_gb") else ""
    load = ", ".join(f"{x:.2f}" for x in m["load_average"])
    return [
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable){mem}; "
        f"load average when the run started: {load}",
        f"- OS: {m['os']}; Python {m['python']}",
        f"- distlda {v['distlda']} (git {m['git']}), gensim {v['gensim']}, scikit-learn {v['scikit-learn']}, "
        f"tomotopy {v['tomotopy']}, numpy {v['numpy']}, scipy {v['scipy']}, numba {v['numba']}",
        f"- Date: {report['date']}; the whole run took {report['wall_seconds'] / 60:.0f} minutes",
    ] + _earlier(report)


def _earlier(report: dict[str, Any]) -> list[str]:
    e = report.get("earlier")
    if not e:
        return []
    return [f"- Rows not run again come from an earlier run, `{e['file']}` ({e['date']}, git {e['git']}, "
            f"{e['repeats']} run(s) per configuration): {e['runs']} runs. The commands of both are below."]


def _datasets(report: dict[str, Any]) -> list[str]:
    lines = ["| dataset | training docs | held-out docs | terms | training non-zeros | training words |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, info in report["datasets"].items():
        lines.append(f"| {name} | {info['num_train_docs']:,} | {info['num_heldout_docs']:,} | {info['num_terms']:,} "
                     f"| {info['train_nnz']:,} | {info['train_words']:,.0f} |")
    return lines


def _notes(report: dict[str, Any]) -> list[str]:
    gibbs = report["gibbs_per_pass"]
    return [
        "- **Same settings everywhere**: K = %d topics, mini-batches of %d documents, decay (κ) %g, offset (τ₀) %g, "
        "at most %d E-step iterations per document, convergence threshold %g, α = η = 1/K, priors fixed "
        "(tomotopy's hyper-parameter optimisation is switched off). Every variational system runs in float32."
        % (NUM_TOPICS, CHUNKSIZE, DECAY, OFFSET, ITERATIONS, GAMMA_THRESHOLD),
        "- **One evaluator**: every model is scored by `distlda.evaluation.heldout_per_word_bound` on the same "
        "held-out documents, from its topic-word matrix and its α (higher is better; exp(−bound) is a "
        "perplexity), and on synthetic data by `distlda.evaluation.topic_recovery` (mean Hellinger distance "
        "between true and learned topics after an optimal one-to-one matching; 0 is perfect, lower is better).",
        "- **docs/s** = passes × training documents / training seconds. Training time excludes loading and "
        "evaluation; gensim and distlda stream their input files while they train, as they do in use; "
        "scikit-learn gets its matrix, and tomotopy its documents, in memory before the clock starts.",
        f"- **tomotopy is collapsed Gibbs sampling**, not variational Bayes: one \"pass\" here is {gibbs} Gibbs "
        "sweeps over the corpus, an arbitrary equivalent. Its speed is not comparable one to one with the "
        "online variational systems; compare its quality against its time instead.",
        "- **gensim LdaMulticore** makes an M-step every `workers × chunksize` documents (4,000 with 2 workers), "
        "so it trains a different model than the others (which make one M-step per 2,000 documents), and "
        "it runs a main process plus 2 worker processes.",
        "- **Threads**: BLAS threads are pinned to the cores a configuration is meant to use: 1 for gensim "
        "LdaModel and scikit-learn (`n_jobs=1`), the baselines on one core; 1 per worker for LdaMulticore; "
        "the thread count for distlda and tomotopy.",
        "- **peak MB** is `resource.getrusage(RUSAGE_SELF).ru_maxrss` right after training, in the run's own "
        "process (the imports of the library included; for distlda also the pages of the memory-mapped "
        "training corpus it has read, which the kernel can drop at any time). For LdaMulticore, the peak of "
        "its largest worker is added (an upper bound: pages the fork shares are counted twice). The raw "
        "results also hold `peak_rss_mb`, the peak at the end of the run with the evaluation, which adds "
        "the same evaluator (and distlda's compiled kernels) to every system.",
        "- Each configuration ran %d time(s)%s, each in a fresh process, one at a time; figures are medians. "
        "Seeds are the repetition number, so repetitions also differ in their random initialisation."
        % (report["repeats"], f" ({report['earlier']['repeats']} in the earlier run)" if report.get("earlier")
           else ""),
    ]


def render(report: dict[str, Any], json_path: str) -> str:
    """The Markdown report of a comparison (``report`` as compare.py builds it)."""
    out = ["# Benchmarks", ""]
    if report["quick"]:
        out += ["> **QUICK RUN: these figures are not results.** `bench/compare.py --quick` runs on a few "
                "thousand documents, once each, only to check that the harness works. Run "
                "`python bench/compare.py` for the real benchmark.", ""]
    out += ["distlda against gensim, scikit-learn and tomotopy: the same documents, the same parameters, "
            "the same evaluator. Written by `bench/compare.py` (see `bench/README.md`); raw results in "
            f"`{json_path}`.", "", "## Machine", "", *_machine(report), "", "## Command", "", "```",
            report["command"], "```", "", "## Datasets", "", *_datasets(report), ""]
    summary = report["summary"]
    order = {key: i for i, key in enumerate(report["configs"])}
    for dataset in report["datasets"]:
        for passes in report["passes"]:
            rows = sorted((r for r in summary if r["dataset"] == dataset and r["passes"] == passes),
                          key=lambda r: order.get(r["config"], len(order)))
            if not rows:
                continue
            out += [f"## {dataset}, {_passes_text(passes)}", "", *_results_table(rows), ""]
    out += ["## Targets", "", "| target | data | measured | verdict |", "| --- | --- | --- | --- |"]
    out += [f"| {t} | {w} | {m} | {v} |" for t, w, m, v in _targets(summary)]
    speeds = report.get("read_speed")
    if speeds is None and report.get("read_speed_failed"):
        out += ["", "The reading-speed benchmark failed; see the messages of bench/compare.py."]
    if speeds:
        out += [f"| {t} | {speeds['dataset']} | {m} | {_verdict(ok)} |" for t, m, ok in read_speed_targets(speeds)]
        out += ["", "## Reading speed", "", *read_speed_table(speeds)]
    failures = [r for r in report["runs"] if "error" in r]
    if failures:
        out += ["", "## Failed runs", ""]
        out += [f"- {r['config']}, {r['dataset']}, {_passes_text(r['passes'])}, run {r['repeat'] + 1}: {r['error']}"
                for r in failures]
    out += ["", "## How to read these numbers", "", *_notes(report), ""]
    return "\n".join(out)
