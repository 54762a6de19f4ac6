"""``distlda report MODEL --out report.html``: one self-contained HTML page about a model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from distlda.cli.common import CliError, emit, load_model

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write an HTML report of a model",
                       description="Write one self-contained HTML page: every topic's top words, topic sizes, the "
                                   "held-out bound across training, coherence per topic, a map of topic distances.")
    p.add_argument("model", metavar="MODEL", help="model file (from `distlda train`)")
    p.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--title", default=None, help="title of the page")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distlda.report import write_report

    model = load_model(args.model)
    out = Path(args.out)
    if out.is_dir():
        raise CliError(f"--out {out} is a folder; give a file name")
    if not out.parent.exists():
        raise CliError(f"the folder of --out does not exist: {out.parent}")
    write_report(model, out, title=args.title)
    emit(f"wrote {out}")
    return 0
