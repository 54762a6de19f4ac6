"""The ``distlda`` command line: from a folder of text to topics.

Results go to stdout, progress and logs to stderr. Exit codes: 0 success, 1 a
failure (one clear line; the traceback with ``-v``), 2 a usage error, 130 when
interrupted (after saving what was trained).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Sequence

from distlda import __version__

logger = logging.getLogger("distlda")

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``distlda`` command."""
    from distlda.cli import cluster as cluster_cli
    from distlda.cli import demo, infer, inspect, prepare, report, status, train

    parser = argparse.ArgumentParser(prog="distlda", description="Fast LDA topic models, on one machine or many.")
    parser.add_argument("--version", action="version", version=f"distlda {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log details to stderr, and show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    prepare.add_parser(sub)
    train.add_parser(sub)
    inspect.add_parser(sub)
    infer.add_parser(sub)
    report.add_parser(sub)
    cluster = sub.add_parser("cluster", help="run a whole cluster on this machine",
                             description="Start a name server, workers and a dispatcher on 127.0.0.1 and keep them "
                                         "running until Ctrl-C.")
    cluster_cli.add_arguments(cluster)
    cluster.set_defaults(func=cluster_cli.run)
    status.add_parser(sub)
    demo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``distlda`` command; returns the exit code."""
    from distlda.cli.common import CliError

    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("distlda: interrupted", file=sys.stderr)
        return 130
    except (CliError, OSError, ValueError, RuntimeError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"distlda {args.command}: error: {exc}", file=sys.stderr)
        return 1
