"""``distlda topics MODEL``: every topic's top words, as text, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import io
import json
from typing import Any

import numpy as np

from distlda.cli.common import CliError, emit, load_model

__all__ = ["add_parser", "run", "topic_sizes"]


def topic_sizes(model: Any) -> np.ndarray:
    """Share of the corpus's tokens assigned to each topic (from the model's statistics)."""
    totals = np.asarray(model.state.sstats, dtype=np.float64).sum(axis=1)
    return totals / totals.sum() if totals.sum() > 0 else np.full(model.num_topics, 1.0 / model.num_topics)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("topics", help="print the topics of a model", description="Print every topic's top words.")
    p.add_argument("model", metavar="MODEL", help="model file (from `distlda train`)")
    p.add_argument("--words", type=int, default=10, help="words per topic (default 10)")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text", help="output format (default text)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.words < 1:
        raise CliError(f"--words must be at least 1, got {args.words}")
    model = load_model(args.model)
    sizes = topic_sizes(model)
    topics = [(t, model.show_topic(t, args.words)) for t in range(model.num_topics)]
    if args.format == "json":
        emit(json.dumps([{"topic": t, "size": float(sizes[t]),
                          "words": [{"word": w, "probability": p} for w, p in words]} for t, words in topics],
                        indent=1, ensure_ascii=False))
    elif args.format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["topic", "size", "rank", "word", "probability"])
        for t, words in topics:
            for rank, (w, p) in enumerate(words, start=1):
                writer.writerow([t, f"{sizes[t]:.6f}", rank, w, f"{p:.6f}"])
        emit(buffer.getvalue().rstrip("\n"))
    else:
        for t, words in topics:
            emit(f"topic {t:>3} ({100 * sizes[t]:4.1f}%): " + " ".join(w for w, _ in words))
    return 0
