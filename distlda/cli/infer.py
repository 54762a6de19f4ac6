"""``distlda infer MODEL INPUT...``: the topic mixture of each new document, as JSON lines or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from distlda.cli.common import CliError, add_text_input_arguments, batches, load_model
from distlda.cli.prepare import Tokenizer, text_source

__all__ = ["add_parser", "run"]

_BATCH = 2000


def add_parser(sub: Any) -> None:
    p = sub.add_parser("infer", help="topic mixture of new documents",
                       description="Tokenise new documents as the model's corpus was, and print each one's topics.")
    p.add_argument("model", metavar="MODEL", help="model file (from `distlda train`)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text files, folders, a file with a document per line, or - for standard input (a document "
                        "per line)")
    add_text_input_arguments(p, "encoding of the text: auto (default; see `distlda prepare --help`) or a codec name")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)")
    p.add_argument("--minimum-probability", type=float, default=0.01,
                   help="leave out topics below this probability (default 0.01)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distlda.corpora.textfiles import iter_documents

    model = load_model(args.model)
    source = text_source(args.inputs, args.lines, args.encoding, allow_stdin=True)
    if not hasattr(model.id2word, "doc2bow"):
        raise CliError(f"{args.model} has no dictionary to turn text into words (was it trained by `distlda train`?)")
    tokenize = Tokenizer.from_dict(model.info.get("tokenizer")).bind()
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n") if args.format == "csv" else None
    if writer is not None:
        writer.writerow(["document", "topic", "probability"])
    for batch in batches(iter_documents(source), _BATCH):
        bows = [model.id2word.doc2bow(tokenize(text)) for _, text in batch]
        gamma, _ = model.inference(bows)
        theta = gamma / gamma.sum(axis=1, keepdims=True)
        for (name, _), row, bow in zip(batch, theta, bows):
            topics = sorted(((int(k), float(p)) for k, p in enumerate(row) if p >= args.minimum_probability),
                            key=lambda kp: -kp[1])
            if writer is not None:
                for k, p in topics:
                    writer.writerow([name, k, f"{p:.6f}"])
            else:
                out.write(json.dumps({"document": name, "words": int(sum(c for _, c in bow)),
                                      "topics": [[k, round(p, 6)] for k, p in topics]}, ensure_ascii=False) + "\n")
    out.flush()
    return 0
