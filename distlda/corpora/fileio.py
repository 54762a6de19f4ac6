"""Opening corpus files: compression chosen by the name (:mod:`distlda.io.compressed`), file objects borrowed.

``.gz`` and ``.bz2`` names are read and written compressed, as gensim's ``utils.open``
does, so a file gensim wrote opens here and the other way round. A file object given
instead of a name is the caller's: it is read from the start, never closed.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from typing import IO, Any, Iterator

from distlda.io.compressed import open_compressed

__all__ = ["BinarySource"]


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
