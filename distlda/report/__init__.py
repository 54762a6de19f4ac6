"""An HTML report of a topic model: one self-contained page to read and share.

>>> from distlda.report import write_report
>>> write_report(model, "report.html", title="My topics")  # doctest: +SKIP

The page shows the model's summary (and the corpus and training facts saved in
``model.info``), every topic's top words as a bar chart with its size and
coherence, topic sizes, the held-out bound across training, coherence per
topic and a 2-D map of topic distances. It has inline CSS and inline SVG only:
no scripts, fonts or images are fetched, so it opens offline.

Modules: :mod:`~distlda.report.data` (what to show, read from the model),
:mod:`~distlda.report.axes` (ticks and text widths), :mod:`~distlda.report.svg`
(chart primitives), :mod:`~distlda.report.labels` (label placement),
:mod:`~distlda.report.layout` (the topic map), :mod:`~distlda.report.page` (the HTML page).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from distlda.report.data import collect
from distlda.report.page import render_page
from distlda.validation import is_integer

logger = logging.getLogger(__name__)

__all__ = ["write_report"]


def write_report(model: Any, path: str | os.PathLike, title: str | None = None, *, top_words: int = 12) -> None:
    """Write a self-contained HTML report of ``model`` to ``path``.

    Parameters
    ----------
    model : LdaModel
        A trained model. If it has an ``info`` dict (as ``distlda train`` saves), its
        ``corpus`` and ``training`` facts, ``history`` (held-out evaluations:
        dicts with ``documents``, ``heldout_per_word_bound``, ``perplexity`` and ``pass``;
        with ``corpus["documents"]`` the chart counts passes and marks their ends) and
        ``coherence`` (one u_mass value per topic) are shown too.
    path : str or path-like
        HTML file to write (replaced atomically if it exists).
    title : str, optional
        Title of the page (default "Topic model report").
    top_words : int
        Words shown per topic, 10 to 15 reads best.

    Raises
    ------
    TypeError
        When ``model`` is not a trained topic model, or ``top_words`` is not an integer.
    ValueError
        When ``top_words`` is below 1 or the model's topics are invalid.
    FileNotFoundError
        When the folder of ``path`` does not exist.
    IsADirectoryError
        When ``path`` is a folder.

    Examples
    --------
    >>> from distlda.models import LdaModel
    >>> from distlda.test.utils import common_corpus, common_dictionary
    >>> lda = LdaModel(common_corpus, id2word=common_dictionary, num_topics=3, random_state=0)  # doctest: +SKIP
    >>> write_report(lda, "report.html")  # doctest: +SKIP
    """
    if not is_integer(top_words):
        raise TypeError(f"top_words must be an integer, got {top_words!r}")
    if top_words < 1:
        raise ValueError(f"top_words must be at least 1, got {top_words}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string, got {type(title).__name__}")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write the report to {target}: folder {folder} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write the report to {target}: it is a folder")
    data = collect(model, top_words=int(top_words))
    text = render_page(data, title)
    # written aside and renamed, so a reader never sees half a page; a plain open() keeps the usual permissions
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", errors="replace", newline="\n") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("wrote the report of %d topics to %s (%d bytes)", data.num_topics, target, target.stat().st_size)
