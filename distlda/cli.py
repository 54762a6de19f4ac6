"""The ``distlda`` command line.

``distlda demo`` trains a model on the sample corpus bundled with the package
and prints its topics: the first thing a newcomer runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Sequence

logger = logging.getLogger("distlda")

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from distlda.corpora import Dictionary
    from distlda.corpora.text import tokenize
    from distlda.models import LdaModel
    from distlda.sample import iter_sample_documents

    texts = [tokenize(text, min_len=3) for _, text in iter_sample_documents()]
    dictionary = Dictionary(texts)
    dictionary.filter_extremes(no_below=5, no_above=0.08)
    corpus = [dictionary.doc2bow(t) for t in texts]
    print(f"sample corpus: {len(corpus)} documents (Python standard library docstrings), "
          f"{len(dictionary)} terms after filtering", flush=True)
    print("training (the first run also compiles distlda's kernels, about a minute)...", flush=True)
    started = time.perf_counter()
    model = LdaModel(corpus, id2word=dictionary, num_topics=args.topics, passes=args.passes, chunksize=500,
                     alpha="auto", random_state=args.seed, eval_every=0, progress=True)
    elapsed = time.perf_counter() - started
    bound = model.per_word_bound(corpus)
    print(f"trained {args.topics} topics in {elapsed:.1f}s; per-word bound {bound:.3f}, "
          f"perplexity {2.718281828 ** -bound:.0f}\n")
    for topic_id, words in model.show_topics(num_topics=-1, num_words=8, formatted=False):
        print(f"topic {topic_id:2d}: " + " ".join(w for w, _ in words))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``distlda`` command."""
    parser = argparse.ArgumentParser(prog="distlda", description="Fast LDA topic models, on one machine or many.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="train on the bundled sample corpus and print the topics")
    demo.add_argument("--topics", type=int, default=16, help="number of topics (default 16)")
    demo.add_argument("--passes", type=int, default=20, help="passes over the corpus (default 20)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    cluster = sub.add_parser("cluster", help="run a whole cluster (name server, workers, dispatcher) on this machine")
    from distlda.cluster.cli import add_arguments as add_cluster_arguments
    from distlda.cluster.cli import run as run_cluster

    add_cluster_arguments(cluster)
    cluster.set_defaults(func=run_cluster)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``distlda`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)
