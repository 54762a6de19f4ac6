"""Corpora: dictionaries, chunking into CSR arrays, Matrix Market and binary formats, text."""

from distlda.corpora.binary import BinaryCorpus, BinaryCorpusWriter
from distlda.corpora.csr import CsrChunk, bow_to_chunk, chunk_from_arrays, iter_chunks
from distlda.corpora.dictionary import Dictionary
from distlda.corpora.mmcorpus import MmCorpus
from distlda.corpora.text import tokenize

__all__ = [
    "BinaryCorpus",
    "BinaryCorpusWriter",
    "CsrChunk",
    "Dictionary",
    "MmCorpus",
    "bow_to_chunk",
    "chunk_from_arrays",
    "iter_chunks",
    "tokenize",
]
