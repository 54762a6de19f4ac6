"""Where the documents of a command-line input come from: files, folders, or one document per line.

``distlda prepare`` and ``distlda infer`` take INPUT paths:

* a folder: every text file below it (``.txt``, ``.text``, ``.md``, ``.rst``, no
  extension, or any of those gzipped), one document per file, in sorted order;
* a single file: one document per line (plain or ``.gz``);
* several files: one document per file.

``--lines`` / ``--one-per-file`` override the choice. Each document gets a name:
its file's path relative to the INPUT folder, or ``file:line`` for one document
per line. Reading streams: one document is held at a time.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["TextSource", "iter_documents", "count_documents"]

_TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ""}


@dataclass(frozen=True)
class TextSource:
    """Documents to read.

    Attributes
    ----------
    paths : list of Path
        Files and folders given on the command line.
    lines : bool or None
        True: every file holds one document per line. False: one document per
        file. None: decide per file (one per line for a single file given
        directly, one per file inside folders).
    """

    paths: tuple[Path, ...]
    lines: bool | None = None

    @classmethod
    def from_args(cls, paths: Sequence[str], lines: bool | None = None) -> "TextSource":
        """Check the paths exist; FileNotFoundError naming the first that does not."""
        resolved = []
        for p in paths:
            path = Path(p)
            if not path.exists():
                raise FileNotFoundError(f"input not found: {p}")
            resolved.append(path)
        if not resolved:
            raise ValueError("no input given")
        return cls(tuple(resolved), lines)


def _is_text_file(path: Path) -> bool:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else "") in _TEXT_SUFFIXES and not path.name.startswith(".")


def _files(source: TextSource) -> Iterator[tuple[Path, str, bool]]:
    """(file, name prefix, one-per-line?) for every file of the source, in order."""
    for path in source.paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    f = Path(root) / name
                    if _is_text_file(f):
                        yield f, str(f.relative_to(path)), bool(source.lines)
        else:
            per_line = True if source.lines is None and len(source.paths) == 1 else bool(source.lines)
            yield path, path.name, per_line


def _open(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def iter_documents(source: TextSource) -> Iterator[tuple[str, str]]:
    """Yield ``(name, text)`` for every document of ``source``, streaming."""
    for path, name, per_line in _files(source):
        with _open(path) as fh:
            if per_line:
                for number, line in enumerate(fh, start=1):
                    yield f"{name}:{number}", line.rstrip("\r\n")
            else:
                yield name, fh.read()


def count_documents(source: TextSource) -> int:
    """Number of documents in ``source`` (one cheap pass: counts lines or files)."""
    total = 0
    for path, _, per_line in _files(source):
        if per_line:
            with _open(path) as fh:
                total += sum(1 for _ in fh)
        else:
            total += 1
    return total
