"""A kernel gives the same bits whether this process compiled it or loaded it from numba's cache.

A cluster relies on it: the client compiles a kernel and caches it, and its
workers load that cache; were the two versions to round differently, the
distributed model would drift from the local one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

_SCRIPT = r"""
import sys
import numpy as np
import pytest
from distlda.corpora.csr import bow_to_chunk
from distlda.core.estep import BatchAccumulator, EStepParams, fit_gamma
from distlda.kernels.mstep import blend_and_expectations, blend_word_stats, topic_expectations
from distlda.kernels.parallel import kernel_threads
from distlda.kernels.rng import training_keys

rng = np.random.default_rng(3)
V, K = 80, 7
docs = [[(int(t), float(rng.integers(1, 5))) for t in sorted(rng.choice(V, rng.integers(1, 30), replace=False))]
        for _ in range(150)]
chunk = bow_to_chunk(docs)
exp_elogbeta = rng.random((V, K)) / V
alpha = np.full(K, 0.3)
with kernel_threads(2):
    gamma, _ = fit_gamma(chunk, exp_elogbeta, alpha, training_keys(5, 0, 0, len(docs)), 50, 1e-4)
    acc = BatchAccumulator(EStepParams(exp_elogbeta, alpha, 50, 1e-4, 5, True))
    acc.add(chunk, gamma)
    sstats = rng.random((V, K))
    fused, fused_exp_elogbeta = sstats.copy(), exp_elogbeta.copy()
    blend_and_expectations(fused, acc.stats.raw, fused_exp_elogbeta, 0.6, 1.7, np.full((V, 1), 0.1), fused_exp_elogbeta)
    blend_word_stats(sstats, acc.stats.raw, exp_elogbeta, 0.6, 1.7)
    topic_expectations(sstats, np.full((V, 1), 0.1), exp_elogbeta)
np.savez(sys.argv[1], gamma=gamma, raw=acc.stats.raw, elog=acc.stats.elogtheta_sum, sstats=sstats, exp_elogbeta=exp_elogbeta,
         fused=fused, fused_exp_elogbeta=fused_exp_elogbeta)
"""


def _run(tmp_path, name, cache_dir):
    out = tmp_path / f"{name}.npz"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return np.load(out)


@pytest.mark.slow
def test_compiled_and_cached_kernels_agree_bit_for_bit(tmp_path):
    cache = tmp_path / "numba-cache"
    compiled = _run(tmp_path, "compiled", cache)  # empty cache: this process compiles and writes it
    assert any(cache.rglob("*.nbc")), "numba wrote no cache"
    cached = _run(tmp_path, "cached", cache)  # loads what the first wrote
    for name in compiled.files:
        np.testing.assert_array_equal(cached[name], compiled[name], err_msg=name)
