"""distlda.test.utils offers gensim's toy corpus under the same names."""

from __future__ import annotations

import os

import gensim.test.utils as gensim_utils

from distlda.corpora import Dictionary
from distlda.test.utils import common_corpus, common_dictionary, common_texts, get_tmpfile


def test_same_as_gensim():
    assert common_texts == gensim_utils.common_texts
    assert common_corpus == gensim_utils.common_corpus
    assert isinstance(common_dictionary, Dictionary)
    assert common_dictionary.token2id == gensim_utils.common_dictionary.token2id
    assert common_dictionary.dfs == gensim_utils.common_dictionary.dfs
    assert common_dictionary.cfs == gensim_utils.common_dictionary.cfs
    assert common_dictionary.num_docs == 9 and len(common_dictionary) == 12


def test_corpus_is_bag_of_words_of_texts():
    assert len(common_corpus) == len(common_texts) == 9
    for text, bow in zip(common_texts, common_corpus):
        assert sum(n for _, n in bow) == len(text)
        assert [i for i, _ in bow] == sorted(i for i, _ in bow)
        assert {common_dictionary[i] for i, _ in bow} == set(text)


def test_get_tmpfile():
    first, second = get_tmpfile("x.mm"), get_tmpfile("x.mm")
    assert first.endswith("/x.mm") and first != second
    assert os.path.isdir(os.path.dirname(first)) and not os.path.exists(first)
