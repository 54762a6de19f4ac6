"""A worker's replica of the model, kept in step with the client by replaying its M-steps.

Per mini-batch the dispatcher sends each worker a *recipe* for the previous
M-step: that batch's documents (CSR arrays, or references into a corpus the
worker can read) with their γ, and the M-step's scalars. The worker rebuilds
the statistics from them exactly as the client did and applies the same
:func:`distlda.core.mstep.apply_mstep`, so its exp(E[log β]) equals the
client's without the K × V matrix ever crossing the network. A worker that is
new, or too far behind, starts from a *base* (the full statistics) and replays
the recipes after it.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from distlda.cluster.pieces import decode_large
from distlda.cluster.wire import WireError, check_base, check_recipe, decode_array, decode_chunk
from distlda.corpora.binary import BinaryCorpus
from distlda.core.estep import BatchStats, fit_documents
from distlda.core.mstep import (LazyTopics, ModelArrays, MStepPlan, apply_mstep, eta_wm, replay_lazy_mstep,
                                replay_mstep)
from distlda.corpora.csr import CsrChunk

logger = logging.getLogger(__name__)

__all__ = ["Replica", "CorpusReader"]


class CorpusReader:
    """Opens binary corpora by path (once each) and reads document ranges from them."""

    def __init__(self) -> None:
        self._open: dict[str, BinaryCorpus] = {}

    def corpus(self, path: str) -> BinaryCorpus:
        corpus = self._open.get(path)
        if corpus is None:
            corpus = self._open[path] = BinaryCorpus(Path(path), verify="on first use")  # answer can_read at once
        return corpus

    def can_read(self, path: str, fingerprint: dict[str, Any]) -> bool:
        """Whether ``path`` is a readable binary corpus with this fingerprint."""
        try:
            return self.corpus(path).fingerprint() == fingerprint
        except (OSError, ValueError) as exc:
            logger.info("cannot read the corpus %s: %s", path, exc)
            self._open.pop(path, None)
            return False

    def chunk(self, payload: dict[str, Any], ref_path: str | None, name: str) -> CsrChunk:
        """The documents of a job: decoded CSR arrays, or a document range read from the shared corpus."""
        if "chunk" in payload:
            return decode_chunk(payload["chunk"], name=name)
        ref = payload.get("ref")
        if not isinstance(ref, dict) or ref_path is None:
            raise WireError(f"{name}: neither documents nor a corpus reference")
        first, last = ref.get("first"), ref.get("last")
        if not isinstance(first, int) or not isinstance(last, int) or not 0 <= first < last:
            raise WireError(f"{name}: bad document range {first!r}..{last!r}")
        corpus = self.corpus(ref_path)
        if last > corpus.num_docs:
            raise WireError(f"{name}: documents {first}..{last} beyond the {corpus.num_docs} of {ref_path}")
        return corpus.read_range(first, last)

    def release(self, payload: dict[str, Any], ref_path: str | None) -> None:
        """Done with the documents of a job for now: let their pages leave this process's resident memory
        (a worker would otherwise come to hold the whole shared corpus; see :meth:`BinaryCorpus.release`)."""
        ref = payload.get("ref")
        if ref_path is not None and isinstance(ref, dict) and ref_path in self._open:
            self._open[ref_path].release(ref.get("first"), ref.get("last"))


class Replica:
    """The model arrays of one worker, at a position: the lineage of its base and a version (M-steps).

    Parameters
    ----------
    num_topics, num_terms : int
    dtype : str
        'float32' or 'float64'.
    """

    def __init__(self, num_topics: int, num_terms: int, dtype: str) -> None:
        self.num_topics, self.num_terms, self.dtype = num_topics, num_terms, np.dtype(dtype)
        self._arrays: ModelArrays | None = None
        self._lazy: LazyTopics | None = None  # while the run's plans ask for the lazy M-step
        self.lineage: str | None = None
        self.version: int | None = None

    @property
    def arrays(self) -> ModelArrays | None:
        """The model's arrays as a reader takes them (for ``getmodel``, a base, the client's model): under the lazy
        M-step, materialised copies (computed once per version), so reading never changes the replica."""
        if self._lazy is None or self._arrays is None:
            return self._arrays
        sstats, exp_elogbeta = self._lazy.materialised()
        return ModelArrays(sstats, self._arrays.eta, self._arrays.alpha, exp_elogbeta)

    def canonical_arrays(self) -> ModelArrays | None:
        """The arrays as a base holds them (statistics unscaled), or None while a lazy M-step keeps them scaled."""
        return self._arrays if self._lazy is None else None

    def estep_arrays(self, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """exp(E[log β]) and alpha to fit documents with the words ``ids``, whose rows are brought up to date
        first (under the lazy M-step only those rows are; None: no rows)."""
        if self._arrays is None:
            raise WireError("no model yet: the base has not arrived")
        if self._lazy is not None and ids is not None:
            self._lazy.refresh(ids)
        return self._arrays.exp_elogbeta, self._arrays.alpha

    @property
    def position(self) -> list | None:
        """``[lineage, version]`` as the dispatcher takes it, or None before the first base."""
        return None if self.version is None else [self.lineage, self.version]

    def load_base(self, base: dict[str, Any], fetch: Callable[[str, int], Any] | None = None,
                  progress: Callable[[str, np.ndarray, int], None] | None = None) -> None:
        """Take the full statistics, priors and position from a base; ``fetch(name, i)`` gives piece ``i`` of an
        array the base holds in pieces (:mod:`distlda.cluster.pieces`), and ``progress(name, array, i)`` is told
        as each is in place."""
        check_base(base, "base")
        arrays = [decode_large(base[name], None if fetch is None else functools.partial(fetch, name), f"base.{name}",
                               None if progress is None else functools.partial(progress, name))
                  for name in ("sstats_wm", "eta", "alpha")]
        self.start_from(*arrays, str(base["lineage"]), int(base["version"]), copy=False)

    def start_from(self, sstats_wm: np.ndarray, eta: np.ndarray, alpha: np.ndarray, lineage: str,
                   version: int, copy: bool = True) -> None:
        """Take these statistics (word-major) and priors as the model at ``[lineage, version]``: copies, or with
        ``copy=False`` the arrays themselves where their dtype and layout fit (a base just decoded)."""
        V, K = self.num_terms, self.num_topics
        take = np.array if copy else np.asarray
        sstats = take(sstats_wm, dtype=self.dtype, order="C")
        eta = take(eta, dtype=self.dtype, order="C")
        alpha = take(alpha, dtype=self.dtype, order="C")
        if sstats.shape != (V, K) or alpha.shape != (K,) or eta.shape not in ((V,), (K, V)):
            raise WireError(f"statistics and priors of shapes {sstats.shape}, {eta.shape}, {alpha.shape} for a "
                            f"model of {K} topics and {V} terms")
        from distlda.kernels.mstep import topic_expectations

        exp_elogbeta = np.empty((V, K), dtype=self.dtype)
        topic_expectations(sstats, eta_wm(eta, self.dtype), exp_elogbeta)
        self._arrays = ModelArrays(sstats, eta, alpha, exp_elogbeta)
        self._lazy = None  # canonical arrays: a lazy M-step that follows starts from them
        self.lineage, self.version = lineage, int(version)

    def apply_recipe(self, recipe: dict[str, Any], reader: CorpusReader) -> None:
        """Replay one M-step: rebuild the batch's statistics from its documents and γ, then apply the plan."""
        check_recipe(recipe)
        if self._arrays is None or self.version is None:
            raise WireError("a recipe arrived before the base")
        if int(recipe["version"]) != self.version + 1:
            raise WireError(f"recipe for version {recipe['version']} on a replica at version {self.version}")
        plan = MStepPlan.from_dict(recipe["plan"])
        parts: list[list[tuple[CsrChunk, np.ndarray]]] = []
        jobs = recipe["jobs"]
        for number, job in enumerate(jobs):
            if number == 0 or jobs[number - 1].get("part") != job.get("part"):
                parts.append([])  # the jobs of one chunk the client submitted ("part") are reduced together
            name = f"recipe {recipe['version']} job {number}"
            chunk = reader.chunk(job, recipe.get("ref_path"), name=name)
            gamma = job.get("gamma")
            parts[-1].append((chunk, self._refit(chunk, job, recipe, name) if gamma is None else
                              decode_array(gamma, f"{name} gamma")))
        if plan.lazy:
            if self._lazy is None:
                self._lazy = LazyTopics(self._arrays, self.version)
            replay_lazy_mstep(self._lazy, parts, plan)
        else:
            if self._lazy is not None:
                self._arrays, self._lazy = self._lazy.finish(), None
            replay_mstep(self._arrays, parts, plan)
        for job in jobs:
            reader.release(job, recipe.get("ref_path"))
        self.version += 1

    def apply_stats(self, version: int, plan: MStepPlan, stats: BatchStats) -> None:
        """Apply the M-step that makes ``version`` from the batch's statistics summed elsewhere (the reduce-scatter
        of :mod:`distlda.cluster.scatter`): the touched words ``stats.rows`` and their rows ``stats.raw``, added
        up in the order a replay adds them, so the same bits."""
        if self._arrays is None or self.version is None or version != self.version + 1:
            raise WireError(f"statistics for version {version} on a replica at version {self.version}")
        if stats.rows is None or stats.raw is None:
            raise ValueError("apply_stats needs the touched words' rows (BatchStats.rows)")
        if plan.lazy:
            if self._lazy is None:
                self._lazy = LazyTopics(self._arrays, self.version)
            self._lazy.refresh(stats.rows)  # the rows the chunks were fitted and reduced with
            self._lazy.apply(stats, plan)
        else:
            if self._lazy is not None:
                self._arrays, self._lazy = self._lazy.finish(), None
            raw = np.zeros_like(self._arrays.sstats_wm)
            raw[stats.rows] = stats.raw
            apply_mstep(self._arrays, BatchStats(raw=raw), self._arrays.exp_elogbeta, plan)
        self.version += 1

    def _refit(self, chunk: CsrChunk, job: dict[str, Any], recipe: dict[str, Any], name: str) -> np.ndarray:
        """γ of a job nobody can give any more (its worker was lost before it sent it on): fitted again here, from
        the same documents, keys and model version, so the same bits as the lost worker's."""
        settings = recipe.get("settings")
        if not isinstance(settings, dict) or not isinstance(job.get("pass"), int):
            raise WireError(f"{name}: no γ, and no settings to fit it again")
        logger.info("%s: fitting the γ of %d documents again (their worker is gone)", name, chunk.n_docs)
        exp_elogbeta, alpha = self.estep_arrays(chunk.ids)
        return fit_documents(chunk, exp_elogbeta, alpha, settings["seed"], job["pass"], settings["iterations"],
                             settings["gamma_threshold"])[0]
