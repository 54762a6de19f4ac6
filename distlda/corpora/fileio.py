"""Opening corpus and dictionary files: compression chosen by the name, file objects borrowed.

``.gz`` and ``.bz2`` names are read and written compressed, as gensim's ``utils.open``
does, so a file gensim wrote opens here and the other way round. A file object given
instead of a name is the caller's: it is read from the start, never closed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
from contextlib import contextmanager
from typing import IO, Any, Iterator

__all__ = ["open_compressed", "BinarySource"]


def open_compressed(path: str, mode: str = "rb", encoding: str = "utf-8") -> IO[Any]:
    """Open ``path`` in ``mode`` (``"rb"``, ``"wb"``, ``"rt"``, ``"wt"``), compressed when its name says so."""
    text = "t" in mode
    kwargs: dict[str, Any] = {"encoding": encoding} if text else {}
    if path.endswith(".gz"):
        return gzip.open(path, mode, **kwargs)  # type: ignore[return-value]
    if path.endswith(".bz2"):
        return bz2.open(path, mode, **kwargs)  # type: ignore[return-value]
    return open(path, mode.replace("t", ""), **kwargs)


class BinarySource:
    """Where a corpus is read from: a file name, or a seekable file object the caller keeps.

    Parameters
    ----------
    source : str, path-like or file object
        A name (``.gz``/``.bz2`` read compressed), or an open file object in binary
        mode, or in text mode over a binary buffer (what ``open(name)`` returns).

    Attributes
    ----------
    name : str
        The file name, for messages (``repr`` of the object when it has none).
    """

    def __init__(self, source: Any):
        self._stream: IO[bytes] | None = None
        if isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            return
        if not all(hasattr(source, attr) for attr in ("read", "seek")):
            raise TypeError(f"need a file name or a file object, got {type(source).__name__}")
        stream = source
        if isinstance(source, io.TextIOBase):
            stream = getattr(source, "buffer", None)
            if stream is None:
                raise TypeError(f"{source!r} is a text stream without a binary buffer: "
                                "pass a file opened in binary mode or a file name")
        if hasattr(stream, "seekable") and not stream.seekable():
            raise ValueError(f"{source!r} cannot seek: a corpus is read more than once, pass a file name")
        self._stream = stream
        name = getattr(source, "name", None)
        self.name = name if isinstance(name, str) else repr(source)

    @property
    def is_file_object(self) -> bool:
        """Whether the corpus is read from a caller's file object rather than a name."""
        return self._stream is not None

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """A binary stream at the start of the data; a borrowed file object stays open afterwards."""
        if self._stream is None:
            with open_compressed(self.name, "rb") as fh:
                yield fh
            return
        self._stream.seek(0)
        yield self._stream  # not closed: the caller owns it
