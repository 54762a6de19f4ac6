"""The ``distlda`` command line: from a folder of text to topics.

Results go to stdout, progress and logs to stderr. Exit codes: 0 success, 1 a
failure (one clear line; the traceback with ``-v``), 2 a usage error, 75 when
``train`` lost its cluster (the model so far and a checkpoint saved), 130 when
interrupted by Ctrl-C and 143 by SIGTERM (``train`` saves what was trained).

Subcommand modules import numpy, numba and the cluster code only when they run,
so ``distlda --help`` and usage errors answer at once.
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


_EXIT_CODES = ("exit codes: 0 success, 1 failure, 2 usage error, 75 the cluster was lost during training (the model "
               "so far and a checkpoint saved), 130 interrupted by Ctrl-C, 143 by SIGTERM (train saves what was "
               "trained)")


def _chosen_command(argv: Sequence[str] | None) -> str | None:
    """The subcommand word of ``argv`` (the first that is not an option: the top level's options take no value)."""
    for word in sys.argv[1:] if argv is None else argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``distlda`` command.

    ``argv`` only decides whether the ``cluster`` subcommand's options are loaded (they import the cluster
    code); without it every subcommand is complete.
    """
    from distlda.cli import convert, demo, infer, inspect, prepare, report, status, train, verify

    parser = argparse.ArgumentParser(prog="distlda", description="Fast LDA topic models, on one machine or many.",
                                     epilog=_EXIT_CODES)
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
    if argv is None or _chosen_command(argv) == "cluster":
        from distlda.cli import cluster as cluster_cli

        cluster_cli.add_arguments(cluster)
        cluster.set_defaults(func=cluster_cli.run)
    status.add_parser(sub)
    demo.add_parser(sub)
    verify.add_parser(sub)
    convert.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``distlda`` command; returns the exit code."""
    from distlda.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, CliError, UsageError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
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
    except KeyboardInterrupt as exc:  # train's Terminated (SIGTERM) says its own code
        print("distlda: interrupted", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_INTERRUPTED))
    except (CliError, OSError, ValueError, RuntimeError, MemoryError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"distlda {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else 1


def _one_line(exc: BaseException) -> str:
    """The message of an error; an OSError as 'what: file' rather than '[Errno 2] ...'."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.strerror.lower()}: {exc.filename}"
    return str(exc)
