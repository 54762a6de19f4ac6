"""The sample corpus bundled with distlda: docstrings of Python's standard library.

2,971 short real documents (see ``distlda/data/DATA-LICENSE.md``), small enough
to train on in seconds and varied enough to show real topics (files and paths,
sockets and servers, XML, time, exceptions...).
"""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path
from typing import Iterator

__all__ = ["sample_corpus_path", "iter_sample_documents"]

_NAME = "python-docstrings.txt.gz"


def sample_corpus_path() -> Path:
    """Path of the bundled sample corpus (a gzip file: one ``name<TAB>text`` document per line)."""
    return Path(str(resources.files("distlda") / "data" / _NAME))


def iter_sample_documents() -> Iterator[tuple[str, str]]:
    """Yield ``(name, text)`` for every document of the sample corpus."""
    with gzip.open(sample_corpus_path(), "rt", encoding="utf-8") as fh:
        for line in fh:
            name, _, text = line.rstrip("\n").partition("\t")
            yield name, text
