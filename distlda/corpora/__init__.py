"""Corpora: dictionaries, chunking into CSR arrays, Matrix Market and binary formats, text."""

from distlda.corpora.csr import CsrChunk, bow_to_chunk, chunk_from_arrays, iter_chunks

__all__ = ["CsrChunk", "bow_to_chunk", "chunk_from_arrays", "iter_chunks"]
