"""Shared fixtures: small random corpora and models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


def random_docs(rng: np.random.Generator, n_docs: int, num_terms: int, max_len: int = 12,
                empty_every: int = 0) -> list[list[tuple[int, float]]]:
    """Bag-of-words documents with random ids and integer counts (some empty if asked)."""
    docs = []
    for d in range(n_docs):
        if empty_every and d % empty_every == 0:
            docs.append([])
            continue
        length = int(rng.integers(1, max_len + 1))
        ids = np.sort(rng.choice(num_terms, size=min(length, num_terms), replace=False))
        docs.append([(int(i), float(rng.integers(1, 5))) for i in ids])
    return docs


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def toy_corpus():
    from distlda.test.utils import common_corpus, common_dictionary

    return common_corpus, common_dictionary
