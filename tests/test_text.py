"""Tokeniser, stop words and the line reader."""

from __future__ import annotations

import bz2
import gzip
import re
import types

import pytest

from distlda.corpora import tokenize
from distlda.corpora.text import ENGLISH_STOP_WORDS, iter_lines


def test_tokenize_defaults():
    text = "The QUICK brown fox -- jumps over the lazy dog, 3 times! x2y e-mail naïve Straße"
    assert tokenize(text) == ["quick", "brown", "fox", "jumps", "lazy", "dog", "times", "mail", "naïve", "straße"]


def test_tokenize_options():
    text = "The cat sat on a supercalifragilistic mat"
    assert tokenize(text, stopwords=None) == ["the", "cat", "sat", "on", "mat"]
    assert tokenize(text, max_len=40) == ["cat", "sat", "supercalifragilistic", "mat"]
    assert tokenize(text, min_len=1, stopwords=None)[:5] == ["the", "cat", "sat", "on", "a"]
    assert tokenize(text, lowercase=False, stopwords={"cat"}) == ["The", "sat", "on", "mat"]
    assert tokenize("route 66 and i-95", pattern=r"\w+", stopwords=None) == ["route", "66", "and", "95"]
    assert tokenize("a1 b22", pattern=re.compile(r"[a-z]\d+"), min_len=3, stopwords=None) == ["b22"]
    assert tokenize("") == []


def test_tokenize_bad_input():
    with pytest.raises(TypeError, match="expects a str, got bytes"):
        tokenize(b"bytes text")
    with pytest.raises(ValueError, match="min_len <= max_len"):
        tokenize("text", min_len=5, max_len=2)


def test_stop_words():
    assert isinstance(ENGLISH_STOP_WORDS, frozenset)
    assert 150 <= len(ENGLISH_STOP_WORDS) <= 300
    assert all(w.isalpha() and w == w.lower() for w in ENGLISH_STOP_WORDS)
    assert {"the", "and", "of", "which", "would"} <= ENGLISH_STOP_WORDS
    assert not {"computer", "package", "library"} & ENGLISH_STOP_WORDS


@pytest.mark.parametrize("suffix, opener", [(".txt", open), (".txt.gz", gzip.open), (".txt.bz2", bz2.open)])
def test_iter_lines(tmp_path, suffix, opener):
    path = tmp_path / f"docs{suffix}"
    with opener(path, "wb") as fh:
        fh.write("first line\r\nsecond – ünïcode\n\nlast without newline".encode("utf-8"))
    lines = iter_lines(path)
    assert isinstance(lines, types.GeneratorType)
    assert list(lines) == ["first line", "second – ünïcode", "", "last without newline"]


def test_iter_lines_decoding_errors(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(UnicodeDecodeError):
        list(iter_lines(path))
    assert list(iter_lines(path, errors="replace")) == ["caf\ufffd"]
    assert list(iter_lines(path, encoding="latin-1")) == ["café"]
