"""Small fixtures shared by tests and examples, named as in ``gensim.test.utils``.

``common_texts`` is the classic nine-document toy corpus of titles of technical
memos (Deerwester et al., 1990, "Indexing by latent semantic analysis"), already
tokenised and with stop words and rare words removed, as gensim's tutorials use it.
"""

from __future__ import annotations

import os
import tempfile

from distlda.corpora.dictionary import Dictionary

__all__ = ["common_texts", "common_dictionary", "common_corpus", "get_tmpfile"]

common_texts: list[list[str]] = [
    ["human", "interface", "computer"],
    ["survey", "user", "computer", "system", "response", "time"],
    ["eps", "user", "interface", "system"],
    ["system", "human", "system", "eps"],
    ["user", "response", "time"],
    ["trees"],
    ["graph", "trees"],
    ["graph", "minors", "trees"],
    ["graph", "minors", "survey"],
]

common_dictionary: Dictionary = Dictionary(common_texts)

common_corpus: list[list[tuple[int, int]]] = [common_dictionary.doc2bow(text) for text in common_texts]


def get_tmpfile(suffix: str) -> str:
    """A path named ``suffix`` in a new private temporary folder (the file itself is not created)."""
    return os.path.join(tempfile.mkdtemp(), suffix)
