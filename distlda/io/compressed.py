"""Files whose name says they are compressed: ``.gz`` and ``.bz2`` are read and written through gzip and bz2, as
gensim's ``utils.open`` does, so a file one wrote opens in the other. Models, dictionaries and corpora share it.
"""

from __future__ import annotations

import bz2
import gzip
import os
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["COMPRESSORS", "compressor_of", "open_compressed"]

COMPRESSORS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open}
"""File name endings that mean compressed, and the opener of each (it takes a name or a binary file object)."""


def compressor_of(name: str | os.PathLike) -> Callable[..., Any] | None:
    """The opener for the compression ``name``'s ending says (None for a plain file)."""
    return COMPRESSORS.get(Path(name).suffix)


def open_compressed(path: str | os.PathLike, mode: str = "rb", encoding: str = "utf-8") -> IO[Any]:
    """Open ``path`` in ``mode`` (``"rb"``, ``"wb"``, ``"rt"``, ``"wt"``), compressed when its name says so."""
    kwargs: dict[str, Any] = {"encoding": encoding} if "t" in mode else {}
    opener = compressor_of(path)
    if opener is not None:
        return opener(os.fspath(path), mode, **kwargs)  # type: ignore[no-any-return]
    return open(path, mode.replace("t", ""), **kwargs)
