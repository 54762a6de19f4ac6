"""Counter-based random numbers for the E-step: every draw is a pure function of its key.

The variational parameter γ of a document is initialised at random, as in
Hoffman et al. (2010) and gensim. distlda derives that draw from
``(seed, pass, document number)`` alone — never from a stream shared between
documents — so the result of training does not depend on the number of
threads or workers, nor on which of them took which document, and a document
queried twice gets the same topics.

Keys are mixed with the SplitMix64 finaliser; the γ entries are approximately
Gamma(100, 1/100) distributed (mean 1, standard deviation 0.1), obtained by the
Wilson–Hilferty cube transform of an approximately normal variate built from
four 16-bit uniforms (Irwin–Hall), all in integer and float arithmetic that
vectorises.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["mix64", "training_keys", "content_keys", "fill_gamma_init", "seed_from_random_state"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_QUERY_SALT = np.uint64(0x5155455259000001)  # keys of documents queried, not trained on
_MASK16 = np.uint64(0xFFFF)


@njit(inline="always", cache=True)
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser: a bijective avalanche mix of 64 bits."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _training_keys(seed: np.uint64, pass_: np.uint64, start: np.uint64, n: int) -> np.ndarray:
    base = mix64(mix64(seed + _GOLDEN) ^ (pass_ * _GOLDEN + np.uint64(1)))
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = mix64(base ^ mix64((start + np.uint64(i)) * _GOLDEN + np.uint64(2)))
    return out


def training_keys(seed: int, pass_: int, start: int, n: int) -> np.ndarray:
    """Keys of documents ``start .. start+n-1`` of the corpus in training pass ``pass_``."""
    return _training_keys(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.uint64(pass_), np.uint64(start), n)


@njit(cache=True)
def _content_keys(seed: np.uint64, indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n = len(indptr) - 1
    base = mix64(mix64(seed + _GOLDEN) ^ _QUERY_SALT)
    out = np.empty(n, dtype=np.uint64)
    for d in range(n):
        h = base
        for j in range(indptr[d], indptr[d + 1]):
            h = mix64(h ^ np.uint64(ids[j]))
            h = mix64(h ^ np.uint64(np.int64(counts[j] * 4096.0)))
        out[d] = h
    return out


def content_keys(seed: int, indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Keys of queried documents, from their content: the same document always gets the same key."""
    return _content_keys(np.uint64(seed & 0xFFFFFFFFFFFFFFFF), indptr, ids, counts)


@njit(inline="always", cache=True, error_model="numpy")
def gamma_init_value(key: np.uint64, k: int) -> float:
    """The k-th initial γ entry of the document with ``key`` (≈ Gamma(100, 1/100))."""
    h = mix64(key + np.uint64(k + 1) * _GOLDEN)
    u = (float(h & _MASK16) + float((h >> np.uint64(16)) & _MASK16)
         + float((h >> np.uint64(32)) & _MASK16) + float(h >> np.uint64(48)))
    # Irwin–Hall: the sum of four U(0,1) has mean 2 and variance 1/3.
    z = (u * (1.0 / 65536.0) + 2.0 / 65536.0 - 2.0) * 1.7320508075688772
    # Wilson–Hilferty for shape a = 100: X/a ≈ (1 - 1/(9a) + z/sqrt(9a))^3.
    c = 1.0 - 1.0 / 900.0 + z * (1.0 / 30.0)
    return c * c * c


@njit(cache=True, error_model="numpy")
def fill_gamma_init(keys: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out[d, :]`` with the initial γ of the document with ``keys[d]``."""
    for d in range(out.shape[0]):
        for k in range(out.shape[1]):
            out[d, k] = gamma_init_value(keys[d], k)


def seed_from_random_state(random_state: object) -> int:
    """A 64-bit seed from ``None`` (fresh entropy), an int, or a numpy RandomState/Generator.

    Raises
    ------
    TypeError
        For anything else.
    ValueError
        For a negative integer.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError("random_state must be None, an int, or a numpy RandomState/Generator, not a bool")
    if isinstance(random_state, (int, np.integer)):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}")
        return int(random_state) & 0xFFFFFFFFFFFFFFFF
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**63 - 1, dtype=np.int64))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1, dtype=np.int64))
    raise TypeError(
        f"random_state must be None, an int, or a numpy RandomState/Generator, got {type(random_state).__name__}"
    )
