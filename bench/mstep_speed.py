"""M-step milliseconds per mini-batch, dense against lazy, at two vocabulary sizes with the same touched words.

    python bench/mstep_speed.py [--topics 300] [--docs 2000] [--batches 12] [--vocab 10000 100000]

Each mini-batch is ``--docs`` documents of Zipf-like words drawn from the first 10,000 ids (so the touched words are
the same at every V); γ is fitted once per batch and the same γ feeds both M-steps. The figure is the median over
the batches of the M-step alone (dense: blend + expectations over V × K; lazy: the touched rows, plus its share of
the canonical point every ``CANONICAL_EVERY`` M-steps reported apart), with one thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from distlda.core.estep import BatchAccumulator, EStepParams, fit_gamma
from distlda.core.mstep import CANONICAL_EVERY, LazyTopics, ModelArrays, apply_mstep, plan_mstep
from distlda.corpora.csr import CsrChunk
from distlda.kernels.mstep import topic_expectations
from distlda.kernels.parallel import kernel_threads
from distlda.kernels.rng import training_keys

logger = logging.getLogger("mstep_speed")


def _batch(rng: np.random.Generator, n_docs: int, start: int, vocab: int = 10_000) -> CsrChunk:
    lengths = rng.poisson(60, n_docs).clip(1)
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    ids, counts = [], []
    for d, n in enumerate(lengths):
        words, freq = np.unique(np.minimum(rng.zipf(1.1, n) - 1, vocab - 1), return_counts=True)
        ids.append(words)
        counts.append(freq)
        indptr[d + 1] = indptr[d] + words.size
    return CsrChunk(indptr, np.concatenate(ids).astype(np.int32), np.concatenate(counts).astype(np.float32), start)


def measure(V: int, K: int, n_docs: int, batches: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    sstats = rng.gamma(100.0, 0.01, (V, K)).astype(np.float32)
    eta = np.full(V, 0.01, np.float32)
    exp_elogbeta = np.empty_like(sstats)
    topic_expectations(sstats, eta.reshape(-1, 1), exp_elogbeta)
    alpha = np.full(K, 1.0 / K, np.float32)
    dense = ModelArrays(sstats.copy(), eta.copy(), alpha.copy(), exp_elogbeta.copy())
    lazy = LazyTopics(ModelArrays(sstats, eta, alpha, exp_elogbeta))
    dense_ms, lazy_ms, canonical_ms, touched = [], [], [], []
    for step in range(batches):
        chunk = _batch(rng, n_docs, step * n_docs)
        plan = plan_mstep((step + 2) ** -0.5, 1e6, n_docs, False, False, lazy=True)
        lazy.refresh(chunk.ids)
        gamma, _ = fit_gamma(chunk, lazy.arrays.exp_elogbeta, lazy.arrays.alpha,
                             training_keys(1, 0, chunk.start, n_docs), 20, 1e-3)
        params = EStepParams(dense.exp_elogbeta, dense.alpha, 20, 1e-3, 1)
        acc = BatchAccumulator(params)
        acc.add(chunk, gamma)
        started = time.perf_counter()
        apply_mstep(dense, acc.stats, dense.exp_elogbeta, plan)
        dense_ms.append(1e3 * (time.perf_counter() - started))
        acc = BatchAccumulator(EStepParams(lazy.arrays.exp_elogbeta, lazy.arrays.alpha, 20, 1e-3, 1), sparse=True)
        acc.add(chunk, gamma)
        stats = acc.finish()
        touched.append(stats.rows.size)
        canonical = (lazy.version + 1) % CANONICAL_EVERY == 0
        started = time.perf_counter()
        lazy.apply(stats, plan)
        (canonical_ms if canonical else lazy_ms).append(1e3 * (time.perf_counter() - started))
    return {"V": V, "K": K, "docs": n_docs, "touched_words": float(np.median(touched)),
            "dense_ms": float(np.median(dense_ms[1:])), "lazy_ms": float(np.median(lazy_ms[1:])),
            "canonical_ms": float(np.median(canonical_ms)) if canonical_ms else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=CANONICAL_EVERY + 2)
    parser.add_argument("--vocab", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with kernel_threads(1):
        for V in args.vocab:
            result = measure(V, args.topics, args.docs, args.batches)
            logger.info("%s", json.dumps(result))


if __name__ == "__main__":
    main()
