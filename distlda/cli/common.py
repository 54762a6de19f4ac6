"""What the subcommands share: the user-error exception, output to stdout, and logging to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["CliError", "emit", "note", "load_model", "read_prepared", "batches", "PREPARED_FILE"]

PREPARED_FILE = "prepare.json"


class CliError(Exception):
    """A problem with what the user asked for: printed as one line (no traceback), exit code 1."""


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
