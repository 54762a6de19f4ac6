"""``distlda demo``: the whole path on the sample corpus bundled with distlda.

Prepare (tokenise, build the dictionary, hold out 10%), train with a progress
bar and held-out evaluation, print the topics, and write the HTML report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from distlda.cli.common import CliError, emit, note, positive_int
from distlda.cli import human

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="prepare, train, show topics and write a report, on a bundled sample corpus",
                       description="Run the whole path on 2,971 docstrings of Python's standard library, bundled "
                                   "with distlda: prepare, train, print the topics, write an HTML report.")
    p.add_argument("--out", default="distlda-demo", metavar="DIR",
                   help="folder for the prepared corpus, the model and the report (default ./distlda-demo)")
    p.add_argument("--topics", type=positive_int, default=16, help="number of topics (default 16)")
    p.add_argument("--passes", type=positive_int, default=20, help="passes over the corpus (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=positive_int, default=None, help="E-step threads (default: every core)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distlda.cli.prepare import Tokenizer, prepare_corpus
    from distlda.cli.train import STOP_CODES, sigterm_as_interrupt, train_prepared, training_summary
    from distlda.datasets.sample import iter_sample_documents
    from distlda.report import write_report

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a folder")
    total = sum(1 for _ in iter_sample_documents())
    note(f"1/4 preparing the sample corpus: {total} docstrings of Python's standard library")
    info = prepare_corpus(iter_sample_documents, total, out / "corpus", Tokenizer(min_len=3), no_below=5,
                          no_above=0.08, holdout=0.1, seed=args.seed)
    note(f"    {human.count(info['vocabulary'])} words kept, {info['parts']['heldout']['documents']} documents "
         "held out for evaluation")
    note("2/4 training (the first run also compiles distlda's kernels, about a minute)")
    with sigterm_as_interrupt():
        model, stopped = train_prepared(out / "corpus", out / "model.lda", args.topics, passes=args.passes,
                                        chunksize=500, alpha="auto", seed=args.seed, threads=args.threads)
    for line in training_summary(model):
        emit(line)
    note("3/4 topics")
    for topic_id, words in model.show_topics(num_topics=-1, num_words=8, formatted=False):
        emit(f"topic {topic_id:2d}: " + " ".join(w for w, _ in words))
    note("4/4 report")
    write_report(model, out / "report.html", title="distlda demo: Python standard library docstrings")
    emit(f"report: {(out / 'report.html').resolve()}")
    emit(f"model: {out / 'model.lda'} (try `distlda topics {out / 'model.lda'}`)")
    return STOP_CODES[stopped] if stopped is not None else 0
