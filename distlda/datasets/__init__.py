"""Synthetic corpora drawn from a known LDA model."""

from distlda.datasets.synthetic import (
    SyntheticCorpus,
    make_lda_corpus,
    synthetic_id2word,
)

__all__ = ["SyntheticCorpus", "make_lda_corpus", "synthetic_id2word"]
