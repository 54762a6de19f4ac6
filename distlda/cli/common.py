"""What the subcommands share: the user-error exceptions, the exit codes, output to stdout, logging to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["CliError", "UsageError", "emit", "note", "load_model", "read_prepared", "batches", "PREPARED_FILE",
           "positive_int", "non_negative_int", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_CLUSTER_LOST",
           "EXIT_INTERRUPTED", "EXIT_TERMINATED"]

PREPARED_FILE = "prepare.json"

EXIT_OK = 0
EXIT_FAILURE = 1
"""Anything went wrong (bad input, a missing file, not enough memory, a cluster that cannot be reached)."""
EXIT_USAGE = 2
"""The command line itself is wrong: an unknown option, a value out of range."""
EXIT_CLUSTER_LOST = 75
"""``train``: the cluster was lost during training; the model so far and a checkpoint are saved (resumable).
75 is EX_TEMPFAIL of sysexits.h: trying again later may work."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT); ``train`` saved what was trained."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + SIGTERM); ``train`` saved what was trained."""


class CliError(Exception):
    """A problem with what the user asked for: printed as one line (no traceback), exit code 1."""


class UsageError(CliError):
    """The command line is wrong (a value out of range): one line, exit code 2, as argparse's own errors."""


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (argparse names the option in its usage error, exit code 2)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0."""
    return _int_at_least(text, 0)


def emit(text: str = "") -> None:
    """A result line, to stdout."""
    print(text, flush=True)


def note(text: str) -> None:
    """A progress or status line, to stderr (results stay alone on stdout)."""
    print(text, file=sys.stderr, flush=True)


def load_model(path: str) -> Any:
    """Load a model file, turning every way it can fail into a one-line CliError."""
    from distlda.models import LdaModel

    if not Path(path).exists():
        raise CliError(f"model file not found: {path}")
    if Path(path).is_dir():
        raise CliError(f"{path} is a folder, not a model file (did you mean the prepared corpus?)")
    try:
        return LdaModel.load(path)
    except (ValueError, OSError) as exc:
        raise CliError(f"{path} is not a distlda model: {exc}") from None


def read_prepared(folder: str) -> dict[str, Any]:
    """The settings and statistics that ``distlda prepare`` wrote into ``folder``."""
    path = Path(folder) / PREPARED_FILE
    if not Path(folder).is_dir():
        raise CliError(f"prepared corpus folder not found: {folder} (create it with `distlda prepare`)")
    if not path.exists():
        raise CliError(f"{folder} is not a prepared corpus (no {PREPARED_FILE}); create it with `distlda prepare`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is corrupt: {exc}") from None


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def add_text_input_arguments(p: argparse.ArgumentParser, encoding_help: str) -> None:
    """The options that say how text input is split into documents and decoded (prepare and infer)."""
    form = p.add_mutually_exclusive_group()
    form.add_argument("--lines", dest="lines", action="store_const", const=True, default=None,
                      help="every file holds one document per line (default for a single file)")
    form.add_argument("--one-per-file", dest="lines", action="store_const", const=False,
                      help="every file is one document (default for folders and several files)")
    p.add_argument("--encoding", default="auto", help=encoding_help)
