"""Where the documents of a command-line input come from: files, folders, standard input, one document per line.

``distlda prepare`` and ``distlda infer`` take INPUT paths:

* a folder: every text file below it (``.txt``, ``.text``, ``.md``, ``.rst``, no
  extension, or any of those gzipped), one document per file, in sorted order;
* a single file: one document per line (plain or ``.gz``);
* several files: one document per file;
* ``-`` (where the command allows it): standard input, one document per line.

``--lines`` / ``--one-per-file`` override the choice. Each document gets a name:
its file's path relative to the INPUT folder, or ``file:line`` for one document
per line. Reading streams: one document is held at a time.

Decoding (``encoding``): a byte-order mark wins (UTF-8, UTF-16 or UTF-32). Else,
with ``'auto'`` (the default), each line is UTF-8 if it is valid UTF-8, and
Windows-1252 otherwise (Latin-1 for the five bytes Windows-1252 leaves
undefined), so no letter is lost; the first such line of each file is reported
with a warning naming the file and the line. With a named encoding (``'utf-8'``,
``'latin-1'``, ...) decoding is strict: a byte that does not decode is an error
naming the file, the line and the byte. Binary files (a NUL byte, or many
control bytes, in their first 8 KiB) are skipped with a warning naming them; a
binary file given as the only input is an error.
"""

from __future__ import annotations

import codecs
import gzip
import io
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

logger = logging.getLogger(__name__)

__all__ = ["TextSource", "iter_documents", "count_documents", "looks_binary", "check_encoding", "STDIN"]

STDIN = "-"
"""The INPUT name of standard input."""

_TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst", ""}
_SNIFF_BYTES = 8192
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
"""Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one)."""
_CONTROL = frozenset(range(32)) - {8, 9, 10, 12, 13, 27}
_CP1252 = {i: bytes([i]).decode("cp1252") for i in range(0x80, 0xA0) if i not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}
"""Latin-1 text → Windows-1252 text: the 27 printable characters (€, ‘, ’, “, ”, –, —, …) that 0x80-0x9F are."""


def check_encoding(name: str) -> str:
    """``name`` if it is ``'auto'`` or a codec Python knows; ValueError otherwise."""
    if name != "auto":
        try:
            codecs.lookup(name)
        except LookupError:
            raise ValueError(f"unknown encoding {name!r} (use auto, utf-8, latin-1, cp1252, utf-16...)") from None
    return name


@dataclass(frozen=True)
class TextSource:
    """Documents to read.

    Attributes
    ----------
    paths : tuple of Path
        Files and folders given on the command line (``Path('-')``: standard input).
    lines : bool or None
        True: every file holds one document per line. False: one document per
        file. None: decide per file (one per line for a single file given
        directly, one per file inside folders).
    encoding : str
        ``'auto'`` (UTF-8, else Windows-1252 line by line, with a warning) or a codec name (strict).
    """

    paths: tuple[Path, ...]
    lines: bool | None = None
    encoding: str = "auto"
    _warned: set = field(default_factory=set, compare=False, repr=False)
    """Files already reported, so that reading a source twice does not repeat its warnings."""

    @classmethod
    def from_args(cls, paths: Sequence[str], lines: bool | None = None, encoding: str = "auto",
                  allow_stdin: bool = False) -> "TextSource":
        """Check the paths; FileNotFoundError naming the first that does not exist, ValueError for an unknown
        encoding, standard input where it is not allowed, or a binary file given as the only input."""
        check_encoding(encoding)
        resolved = []
        for p in paths:
            if p == STDIN:
                if not allow_stdin:
                    raise ValueError("this command reads its input twice, so it cannot read standard input ('-'): "
                                     "save it to a file first")
                resolved.append(Path(STDIN))
                continue
            path = Path(p)
            if not path.exists():
                raise FileNotFoundError(f"input not found: {p}")
            resolved.append(path)
        if not resolved:
            raise ValueError("no input given")
        if all(p.is_file() and looks_binary(_sample(p)) for p in resolved if str(p) != STDIN) and \
                STDIN not in map(str, resolved):
            raise ValueError(f"{resolved[0]} is a binary file, not text" if len(resolved) == 1 else
                             f"every input is a binary file, not text ({', '.join(map(str, resolved))})")
        return cls(tuple(resolved), lines, encoding)

    def warn_once(self, path: Path, message: str) -> None:
        """Log ``message`` the first time ``path`` has something to report."""
        if path not in self._warned:
            self._warned.add(path)
            logger.warning(message)


def looks_binary(sample: bytes) -> bool:
    """Whether the first bytes of a file are binary data rather than text: a NUL byte, or more than 10% control
    bytes other than white space (text with a UTF-16 or UTF-32 byte-order mark is text)."""
    if any(sample.startswith(bom) for bom, _ in _BOMS):
        return False
    if b"\0" in sample:
        return True
    controls = sum(1 for b in sample if b in _CONTROL)
    return controls > 0.1 * max(len(sample), 1)


def _is_text_file(path: Path) -> bool:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else "") in _TEXT_SUFFIXES and not path.name.startswith(".")


def _open_binary(path: Path) -> BinaryIO:
    if str(path) == STDIN:
        return sys.stdin.buffer
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _sample(path: Path) -> bytes:
    try:
        with _open_binary(path) as fh:
            return fh.read(_SNIFF_BYTES)
    except (OSError, EOFError):  # an unreadable file or a broken .gz: reading it reports the error properly
        return b""


def _files(source: TextSource) -> Iterator[tuple[Path, str, bool]]:
    """(file, name prefix, one-per-line?) for every text file of the source, in order; binary files are skipped
    with a warning."""
    for path in source.paths:
        if str(path) == STDIN:
            yield path, "stdin", source.lines is not False
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    f = Path(root) / name
                    if _is_text_file(f) and _text_or_warn(source, f):
                        yield f, str(f.relative_to(path)), bool(source.lines)
        elif _text_or_warn(source, path):
            per_line = True if source.lines is None and len(source.paths) == 1 else bool(source.lines)
            yield path, path.name, per_line


def _text_or_warn(source: TextSource, path: Path) -> bool:
    if looks_binary(_sample(path)):
        source.warn_once(path, f"skipped {path}: a binary file, not text")
        return False
    return True


def _bom_encoding(fh: BinaryIO, path: Path) -> str | None:
    head = fh.peek(4)[:4] if hasattr(fh, "peek") else _sample(path)[:4]
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    return None


def _decode(source: TextSource, path: Path, raw: bytes, first_line: int) -> str:
    """``raw`` (starting at line ``first_line`` of ``path``) as text, by the source's encoding policy."""
    strict = "utf-8" if source.encoding == "auto" else source.encoding
    try:
        return raw.decode(strict)
    except UnicodeDecodeError as exc:
        line = first_line + raw.count(b"\n", 0, exc.start)
        where = f"{path}:{line}" if str(path) != STDIN else f"standard input, line {line}"
        if source.encoding != "auto":
            raise ValueError(f"{where}: byte 0x{raw[exc.start]:02x} is not valid {source.encoding} (use --encoding "
                             "auto to read such lines as Windows-1252, or name the file's encoding)") from None
        source.warn_once(path, f"{where}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); reading the lines of "
                               f"{'standard input' if str(path) == STDIN else path} that are not UTF-8 as "
                               "Windows-1252 (give --encoding to choose)")
        return raw.decode("latin-1").translate(_CP1252)


def _split_lines(text: str) -> list[str]:
    """The lines of ``text`` as Python's universal newlines make them (\\n, \\r\\n, \\r)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parts = text.split("\n")
    return parts[:-1] if text.endswith("\n") else parts


def _iter_lines(source: TextSource, path: Path, fh: BinaryIO) -> Iterator[str]:
    encoding = _bom_encoding(fh, path)
    if encoding is not None:  # a byte-order mark decides, and the lines are those of that encoding
        text = io.TextIOWrapper(fh, encoding=encoding, errors="strict")
        number = 0
        try:
            for number, line in enumerate(text, start=1):
                yield line.rstrip("\n")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}:{number + 1}: not valid {encoding} after its byte-order mark ({exc.reason})") \
                from None
        finally:
            text.detach()
        return
    number = 1
    for raw in fh:  # binary lines end at \n only; a lone \r (old Macintosh text) splits after decoding
        text = _decode(source, path, raw, number)
        if "\r" in text:
            yield from _split_lines(text)
        else:
            yield text[:-1] if text.endswith("\n") else text
        number += 1


def _read_whole(source: TextSource, path: Path, fh: BinaryIO) -> str:
    encoding = _bom_encoding(fh, path)
    raw = fh.read()
    if encoding is None:
        return _decode(source, path, raw, 1).replace("\r\n", "\n").replace("\r", "\n")
    try:
        return raw.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        line = 1 + raw[:exc.start].decode(encoding, errors="replace").count("\n")
        raise ValueError(f"{path}:{line}: not valid {encoding} after its byte-order mark ({exc.reason})") from None


def iter_documents(source: TextSource) -> Iterator[tuple[str, str]]:
    """Yield ``(name, text)`` for every document of ``source``, streaming.

    Raises
    ------
    ValueError
        When a file does not decode under a strict ``encoding``, naming the file and line.
    """
    for path, name, per_line in _files(source):
        fh = _open_binary(path)
        try:
            if per_line:
                for number, line in enumerate(_iter_lines(source, path, fh), start=1):
                    yield f"{name}:{number}", line
            else:
                yield name, _read_whole(source, path, fh)
        finally:
            if fh is not sys.stdin.buffer:
                fh.close()


def count_documents(source: TextSource) -> int:
    """Number of documents in ``source`` (one pass: counts the lines of line files, and files)."""
    total = 0
    for path, _, per_line in _files(source):
        if per_line:
            with _open_binary(path) as fh:
                total += sum(1 for _ in _iter_lines(source, path, fh))
        else:
            total += 1
    return total
