"""LdaState: the sufficient statistics of a model, its topic-word prior, and how they combine."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from distlda.kernels.special import dirichlet_expectation
from distlda.core.mstep import blend_coefficients
from distlda.io.container import read_container, write_container

logger = logging.getLogger(__name__)

__all__ = ["LdaState", "blend_coefficients"]

_KIND = "distlda.LdaState"


class LdaState:
    """Sufficient statistics and topic-word prior of an LDA model (gensim-compatible).

    Parameters
    ----------
    eta : numpy.ndarray, shape (V,) or (K, V)
        Topic-word Dirichlet prior. This object owns it: a learned ('auto') eta
        is updated here, so the topics always use the current value.
    shape : tuple of int
        ``(num_topics, num_terms)``.
    dtype : numpy dtype, optional
        float32 or float64.

    Attributes
    ----------
    sstats : numpy.ndarray, shape (K, V)
        Expected topic-word counts; λ = η + sstats. Stored word-major (V × K,
        ``sstats_wm``), which is what the kernels read; ``sstats`` is its
        transposed view, so in-place changes through either are shared.
    numdocs : int
        Number of documents the statistics stand for.
    lazy : LazyTopics or None
        Set while a training run's lazy M-step (:class:`distlda.core.mstep.LazyTopics`) holds the statistics
        scaled in ``sstats_wm``'s array: reads then return materialised copies, and leave the run untouched.
    """

    lazy: Any = None

    def __init__(self, eta: np.ndarray, shape: tuple[int, int], dtype: Any = np.float32) -> None:
        self.dtype = np.dtype(dtype)
        self.eta = np.asarray(eta).astype(dtype, copy=False)
        self.sstats_wm = np.zeros((shape[1], shape[0]), dtype=dtype)
        self.numdocs = 0

    @property
    def sstats_wm(self) -> np.ndarray:
        """Statistics word-major (V × K), the array the kernels read (a materialised copy during a lazy run)."""
        if self.lazy is not None:
            return self.lazy.materialised()[0]
        return self._sstats_wm

    @sstats_wm.setter
    def sstats_wm(self, value: np.ndarray) -> None:
        self._sstats_wm = value

    @property
    def sstats(self) -> np.ndarray:
        """Statistics as (K, V), a view of the word-major ``sstats_wm``."""
        return self.sstats_wm.T

    @sstats.setter
    def sstats(self, value: np.ndarray) -> None:
        value = np.asarray(value)
        if value.ndim != 2:
            raise ValueError(f"sstats must be a (num_topics, num_terms) array, got shape {value.shape}")
        self.sstats_wm = np.ascontiguousarray(value.T, dtype=self.dtype)

    def reset(self) -> None:
        """Zero the statistics and the document count (keeps eta)."""
        self.sstats[...] = 0.0
        self.numdocs = 0

    def merge(self, other: "LdaState") -> None:
        """Add another state's statistics and documents to this one (same shape)."""
        if other.sstats_wm.shape != self.sstats_wm.shape:
            raise ValueError(f"cannot merge a state of shape {other.sstats.shape} into one of {self.sstats.shape}")
        self.sstats_wm += other.sstats_wm
        self.numdocs += other.numdocs

    def blend(self, rhot: float, other: "LdaState", targetsize: float | None = None) -> None:
        """Online M-step: ``sstats ← (1 − rhot)·sstats + rhot·other.sstats``, both stretched to ``targetsize``.

        Parameters
        ----------
        rhot : float
            Weight of ``other`` in (0, 1].
        other : LdaState
            Statistics of the latest mini-batch.
        targetsize : float, optional
            Number of documents the result stands for (default: this state's ``numdocs``).
        """
        if targetsize is None:
            targetsize = self.numdocs
        a, b = blend_coefficients(rhot, self.numdocs, other.numdocs, targetsize)
        self.sstats_wm *= a
        self.sstats_wm += b * other.sstats_wm
        self.numdocs = targetsize

    def blend2(self, rhot: float, other: "LdaState", targetsize: float | None = None) -> None:
        """Unweighted merge: ``sstats ← sstats + other.sstats`` (gensim's blend2; ``rhot`` is ignored)."""
        if targetsize is None:
            targetsize = self.numdocs
        self.sstats_wm += other.sstats_wm
        self.numdocs = targetsize

    def get_lambda(self) -> np.ndarray:
        """λ = η + sstats, the variational topic-word parameters (K × V)."""
        return self.eta + self.sstats

    def get_Elogbeta(self) -> np.ndarray:
        """E[log β] under q(β | λ), row by row (K × V)."""
        return dirichlet_expectation(self.get_lambda())

    def eta_wm(self) -> np.ndarray:
        """η word-major, as the kernels take it: (V, 1) when shared by all topics, else (V, K)."""
        eta = self.eta.reshape(-1, 1) if self.eta.ndim == 1 else self.eta.T
        return np.ascontiguousarray(eta, dtype=self.dtype)

    def save(self, fname: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save to one file (no pickle); the arrays can be memory-mapped by :meth:`load`."""
        write_container(fname, _KIND, {"numdocs": float(self.numdocs), "dtype": self.dtype.name},
                        {"sstats_wm": self.sstats_wm, "eta": self.eta})

    @classmethod
    def load(cls, fname: str | os.PathLike, mmap: str | None = None, *args: Any, **kwargs: Any) -> "LdaState":
        """Load a state saved by :meth:`save`; ``mmap='r'`` maps the arrays read-only."""
        meta, arrays = read_container(fname, kind=_KIND, mmap=mmap)
        return cls.from_arrays(arrays["sstats_wm"], arrays["eta"], meta["numdocs"])

    @classmethod
    def from_arrays(cls, sstats_wm: np.ndarray, eta: np.ndarray, numdocs: float) -> "LdaState":
        """A state wrapping existing arrays (no copy); ``sstats_wm`` is word-major (V × K)."""
        state = cls.__new__(cls)
        state.sstats_wm = sstats_wm
        state.eta = eta
        state.dtype = np.dtype(sstats_wm.dtype)
        state.numdocs = int(numdocs) if float(numdocs).is_integer() else float(numdocs)
        return state

    def __repr__(self) -> str:
        V, K = self.sstats_wm.shape
        return f"LdaState(num_topics={K}, num_terms={V}, numdocs={self.numdocs}, dtype={self.dtype.name})"
