"""Plain-text helpers: a small tokeniser, an English stop-word list, a line reader and batching of texts.

These turn raw text into the lists of tokens that :class:`~distlda.corpora.Dictionary`
counts. They are deliberately simple (a regular expression, lower-casing, length and
stop-word filters); use a real NLP toolkit when you need lemmas or phrases.
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import os
import re
from typing import Iterable, Iterator, Pattern, TypeVar

__all__ = ["ENGLISH_STOP_WORDS", "LETTERS_PATTERN", "iter_batches", "iter_lines", "tokenize"]

_T = TypeVar("_T")

#: Tokens made of letters only (any script); digits, underscores and punctuation split tokens.
LETTERS_PATTERN: Pattern[str] = re.compile(r"[^\W\d_]+")

#: Common English function words (articles, pronouns, auxiliaries, prepositions,
#: conjunctions and frequent adverbs) that carry little topical meaning.
ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against ago all almost alone along already
    also although always am among amongst an and another any anybody anyhow anyone anything
    anyway anywhere are around as at be became because become becomes becoming been before
    beforehand behind being below beside besides between beyond both but by can cannot could
    did do does doing done down during each either else elsewhere enough etc even ever every
    everybody everyone everything everywhere except few for former formerly from further
    furthermore had has have having he hence her here hereafter hereby herein hers herself him
    himself his how however i ie if in indeed instead into is it its itself just last latter
    latterly least less many may me meanwhile might mine more moreover most mostly much must my
    myself namely neither never nevertheless next no nobody none nor not nothing now nowhere of
    off often on once one only onto or other others otherwise our ours ourselves out over own
    per perhaps please quite rather same several shall she should since so some somebody
    somehow someone something sometime sometimes somewhere still such than that the their
    theirs them themselves then thence there thereafter thereby therefore therein thereupon
    these they this those though through throughout thru thus to together too toward towards
    under unless until up upon us very via was we well were what whatever when whence whenever
    where whereafter whereas whereby wherein whereupon wherever whether which while whither who
    whoever whole whom whose why will with within without would yet you your yours yourself
    yourselves
    """.split()
)


def tokenize(
    text: str,
    lowercase: bool = True,
    min_len: int = 2,
    max_len: int = 15,
    stopwords: frozenset[str] | set[str] | None = ENGLISH_STOP_WORDS,
    pattern: str | Pattern[str] = LETTERS_PATTERN,
) -> list[str]:
    """Split ``text`` into a list of tokens.

    Parameters
    ----------
    text : str
        The text of one document.
    lowercase : bool, optional
        Lower-case the text before matching.
    min_len, max_len : int, optional
        Keep tokens whose length (in characters) is within ``[min_len, max_len]``.
    stopwords : set of str or None, optional
        Tokens to drop (compared after lower-casing); ``None`` keeps everything.
    pattern : str or compiled regular expression, optional
        What a token looks like; every non-overlapping match is a token. The default
        keeps runs of letters, so digits and punctuation separate tokens.

    Returns
    -------
    list of str

    Raises
    ------
    TypeError
        When ``text`` is not a string (bytes must be decoded first).
    ValueError
        When the length bounds are inconsistent.

    Examples
    --------
    >>> tokenize("The quick brown fox jumps over the lazy dog, 3 times!")
    ['quick', 'brown', 'fox', 'jumps', 'lazy', 'dog', 'times']
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__} (decode bytes first)")
    if min_len < 0 or max_len < min_len:
        raise ValueError(f"need 0 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    if lowercase:
        text = text.lower()
    tokens = regex.findall(text)
    if stopwords:
        return [t for t in tokens if min_len <= len(t) <= max_len and t not in stopwords]
    return [t for t in tokens if min_len <= len(t) <= max_len]


def iter_lines(path: str | os.PathLike, encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """Stream the lines of a text file, one document per line, without the line ends.

    Parameters
    ----------
    path : str or path-like
        A plain text file, or one compressed with gzip (``.gz``) or bzip2 (``.bz2``).
    encoding, errors : str, optional
        How to decode bytes, as for :func:`open`.

    Yields
    ------
    str
        Each line, with the trailing newline (and carriage return) removed.
    """
    name = os.fspath(path)
    if name.endswith(".gz"):
        raw: io.BufferedIOBase = gzip.open(name, "rb")  # type: ignore[assignment]
    elif name.endswith(".bz2"):
        raw = bz2.open(name, "rb")  # type: ignore[assignment]
    else:
        raw = open(name, "rb")
    with io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="\n") as fh:
        for line in fh:
            yield line.rstrip("\r\n")


def iter_batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """Read ``items`` (tokenised texts, documents, ...) in lists of ``size``; the last list may be shorter.

    The input is consumed lazily, so a one-shot stream is read once and only one
    batch is held in memory.

    Parameters
    ----------
    items : iterable
    size : int
        Items per batch, at least 1.

    Yields
    ------
    list
        The next ``size`` items (never an empty list).
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
