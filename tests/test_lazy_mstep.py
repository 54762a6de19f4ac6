"""The lazy, sparse M-step (core.mstep.LazyTopics) against the dense one, and its determinism."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_docs

from distlda.core.estep import BatchAccumulator, EStepParams, fit_gamma
from distlda.core.mstep import CANONICAL_EVERY, LazyTopics, ModelArrays, apply_mstep, plan_mstep
from distlda.corpora.csr import bow_to_chunk
from distlda.kernels.mstep import topic_expectations
from distlda.kernels.parallel import kernel_threads
from distlda.kernels.rng import training_keys
from distlda.models import LdaModel

V, K = 400, 6


def _zipf_docs(rng: np.random.Generator, n: int, vmax: int) -> list[list[tuple[int, float]]]:
    docs = []
    for _ in range(n):
        words = np.unique(np.minimum(rng.zipf(1.3, 25) - 1, vmax - 1))
        docs.append([(int(w), float(rng.integers(1, 4))) for w in words])
    return docs


def _arrays(rng: np.random.Generator, dtype=np.float64) -> ModelArrays:
    sstats = rng.gamma(100.0, 0.01, (V, K)).astype(dtype)
    eta = np.full(V, 0.05, dtype)
    exp_elogbeta = np.empty_like(sstats)
    topic_expectations(sstats, eta.reshape(-1, 1), exp_elogbeta)
    return ModelArrays(sstats, eta, np.full(K, 0.3, dtype), exp_elogbeta)


def _copy(arrays: ModelArrays) -> ModelArrays:
    return ModelArrays(arrays.sstats_wm.copy(), arrays.eta.copy(), arrays.alpha.copy(), arrays.exp_elogbeta.copy())


def _rho(step: int) -> float:
    """1 first (every row forgotten), a run of large rates that drives the scale under its limit, then decay."""
    return 1.0 if step == 0 else 0.93 if 25 <= step < 38 else (step + 1) ** -0.5


def _batches(seed: int, steps: int):
    """Mini-batches of 2 chunks; words 300.. appear only in steps 0 and 50 (unseen for 49 M-steps)."""
    rng = np.random.default_rng(seed)
    start = 0
    for step in range(steps):
        vmax = V if step in (0, 50) else 300
        chunks = []
        for _ in range(2):
            chunk = bow_to_chunk(_zipf_docs(rng, 30, vmax), start)
            start += chunk.n_docs
            chunks.append(chunk)
        yield step, chunks


def _gammas(chunks, exp_elogbeta, alpha):
    return [fit_gamma(c, exp_elogbeta, alpha, training_keys(5, 0, c.start, c.n_docs), 50, 1e-3)[0] for c in chunks]


def _lazy_step(lazy: LazyTopics, chunks, plan, gammas=None):
    arrays = lazy.arrays
    acc = BatchAccumulator(EStepParams(arrays.exp_elogbeta, arrays.alpha, 50, 1e-3, 5, True), sparse=True)
    fitted = []
    for i, chunk in enumerate(chunks):
        lazy.refresh(chunk.ids)
        gamma = gammas[i] if gammas is not None else _gammas([chunk], arrays.exp_elogbeta, arrays.alpha)[0]
        fitted.append(gamma)
        acc.add(chunk, gamma)
    lazy.apply(acc.finish(), plan)
    return fitted


def _dense_step(arrays: ModelArrays, chunks, plan, gammas):
    acc = BatchAccumulator(EStepParams(arrays.exp_elogbeta, arrays.alpha, 50, 1e-3, 5, True))
    for chunk, gamma in zip(chunks, gammas):
        acc.add(chunk, gamma)
    apply_mstep(arrays, acc.stats, arrays.exp_elogbeta, plan)


def test_sparse_statistics_are_the_dense_rows_bitwise_for_any_threads():
    """Sparse and dense accumulators give the same rows for the same chunks, whatever the threads."""
    rng = np.random.default_rng(1)
    arrays = _arrays(rng, np.float32)
    docs = _zipf_docs(rng, 300, V)
    whole = bow_to_chunk(docs, 0)
    gamma = _gammas([whole], arrays.exp_elogbeta, arrays.alpha)[0]
    params = EStepParams(arrays.exp_elogbeta, arrays.alpha, 50, 1e-3, 5, True)
    for threads, cuts in ((1, [0, 300]), (2, [0, 7, 150, 151, 300]), (2, [0, 100, 200, 300])):
        dense = BatchAccumulator(params)
        acc = BatchAccumulator(params, sparse=True)
        with kernel_threads(threads):
            for lo, hi in zip(cuts, cuts[1:]):
                acc.add(bow_to_chunk(docs[lo:hi], lo), gamma[lo:hi])
        for lo, hi in zip(cuts, cuts[1:]):
            dense.add(bow_to_chunk(docs[lo:hi], lo), gamma[lo:hi])
        stats = acc.finish()
        touched = np.flatnonzero(dense.stats.raw.any(axis=1))
        np.testing.assert_array_equal(stats.rows, touched)
        np.testing.assert_array_equal(stats.raw, dense.stats.raw[touched])
        np.testing.assert_array_equal(stats.elogtheta_sum, dense.stats.elogtheta_sum)


def test_lazy_mstep_equals_the_dense_one_after_many_batches():
    """The same γ into both: the lazy statistics, priors and exp(E[log β]) stay equal to float64 tolerance, through
    a step that forgets everything (rho = 1), a renormalisation of the scale, canonical points and words unseen for
    49 M-steps."""
    arrays = _arrays(np.random.default_rng(2))
    dense, lazy = _copy(arrays), LazyTopics(_copy(arrays))
    renormalised = False
    rare: dict[int, set] = {}
    for step, chunks in _batches(3, 60):
        plan = plan_mstep(_rho(step), 5000.0, 60, True, False, lazy=True)
        rare[step] = {int(v) for chunk in chunks for v in chunk.ids if v >= 300}
        for chunk in chunks:
            lazy.refresh(chunk.ids)
        gammas = _gammas(chunks, dense.exp_elogbeta, dense.alpha)
        before = lazy.scale
        _lazy_step(lazy, chunks, plan, gammas)
        _dense_step(dense, chunks, plan, gammas)
        # a scale back at 1 off a canonical point, after a nonzero a: the scale was folded to stay representable
        renormalised |= step > 0 and lazy.scale == plan.a and lazy.version % CANONICAL_EVERY != 0 and before < 1
        sstats, exp_elogbeta = lazy.materialised()
        np.testing.assert_allclose(sstats, dense.sstats_wm, rtol=1e-11, atol=1e-300)
        np.testing.assert_allclose(exp_elogbeta, dense.exp_elogbeta, rtol=1e-11)
        np.testing.assert_allclose(lazy.arrays.alpha, dense.alpha, rtol=1e-12)
    assert renormalised
    assert rare[0] & rare[50] and not any(rare[s] for s in range(1, 50))  # rows untouched for 49 M-steps


def test_lazy_run_follows_the_dense_run_when_each_fits_its_own_gamma():
    arrays = _arrays(np.random.default_rng(4))
    dense, lazy = _copy(arrays), LazyTopics(_copy(arrays))
    for step, chunks in _batches(5, 45):
        plan = plan_mstep(_rho(step), 5000.0, 60, False, False, lazy=True)
        _lazy_step(lazy, chunks, plan)
        _dense_step(dense, chunks, plan, _gammas(chunks, dense.exp_elogbeta, dense.alpha))
    lazy.finish()
    np.testing.assert_allclose(lazy.arrays.sstats_wm, dense.sstats_wm, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(lazy.arrays.exp_elogbeta, dense.exp_elogbeta, rtol=1e-7)


def test_a_replica_started_from_a_canonical_base_continues_bitwise():
    """What a cluster worker that joins mid-run does: materialised arrays at a canonical version, then the same
    M-steps; and reading the model (materialised copies) in between changes nothing."""
    arrays = _arrays(np.random.default_rng(6), np.float32)
    follower = LazyTopics(_copy(arrays))
    joined = None
    for step, chunks in _batches(7, CANONICAL_EVERY + 12):
        plan = plan_mstep(_rho(step), 5000.0, 60, True, False, lazy=True)
        gammas = _lazy_step(follower, chunks, plan)
        follower.materialised()
        if joined is not None:
            assert all(np.array_equal(a, b) for a, b in zip(gammas, _lazy_step(joined, chunks, plan)))
        if follower.version == CANONICAL_EVERY:
            sstats, exp_elogbeta = follower.materialised()
            joined = LazyTopics(ModelArrays(sstats.copy(), arrays.eta.copy(), follower.arrays.alpha.copy(),
                                            exp_elogbeta.copy()), follower.version)
    assert joined is not None
    for ours, theirs in zip(follower.materialised(), joined.materialised()):
        np.testing.assert_array_equal(ours, theirs)


def _model(docs, **kwargs):
    params = dict(id2word={i: f"w{i}" for i in range(80)}, num_topics=5, chunksize=40, update_every=2, passes=3,
                  random_state=11, eval_every=0, dtype=np.float64, init="gensim")
    params.update(kwargs)
    model = LdaModel(**params)
    model.update(docs)
    return model


def test_mstep_is_a_checked_and_saved_parameter(tmp_path):
    with pytest.raises(ValueError, match="mstep must be one of 'dense', 'lazy', got 'sparse'"):
        LdaModel(id2word={0: "a", 1: "b"}, num_topics=2, mstep="sparse")
    model = LdaModel(id2word={0: "a", 1: "b"}, num_topics=2, mstep="lazy")
    model.save(str(tmp_path / "m"))
    assert LdaModel.load(str(tmp_path / "m")).mstep == "lazy"


@pytest.fixture(scope="module")
def docs():
    return random_docs(np.random.default_rng(9), 600, 80, max_len=25)


def test_a_lazy_model_is_the_dense_one_to_float_tolerance_and_the_same_for_any_threads(docs):
    dense = _model(docs, mstep="dense")
    lazy = _model(docs, mstep="lazy")
    np.testing.assert_allclose(lazy.state.sstats, dense.state.sstats, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(lazy.expElogbeta, dense.expElogbeta, rtol=1e-7)
    one = _model(docs, mstep="lazy", threads=1)
    np.testing.assert_array_equal(one.state.sstats, lazy.state.sstats)
    np.testing.assert_array_equal(one.expElogbeta, lazy.expElogbeta)
    assert lazy.state.lazy is None  # nothing of the run is left behind


def test_reading_the_model_during_a_lazy_run_changes_nothing(docs):
    quiet = _model(docs, mstep="lazy")
    seen = []

    def read(run):
        seen.append((quiet.state.sstats.shape, float(run_model.get_topics().sum()), run_model.expElogbeta.copy()))

    run_model = LdaModel(id2word={i: f"w{i}" for i in range(80)}, num_topics=5, chunksize=40, update_every=2,
                         passes=3, random_state=11, eval_every=1, dtype=np.float64, init="gensim")
    run_model.mstep = "lazy"
    run_model.update(docs, on_mstep=read)
    assert len(seen) > CANONICAL_EVERY
    np.testing.assert_array_equal(run_model.state.sstats, quiet.state.sstats)
    np.testing.assert_array_equal(run_model.expElogbeta, quiet.expElogbeta)
    # what a reader saw mid-run is exact: the topics of the final model are what the last read gave
    np.testing.assert_array_equal(seen[-1][2], quiet.expElogbeta)


def test_bad_input_in_a_lazy_run_restores_the_model(docs):
    model = _model(docs, mstep="lazy", passes=1)
    before = (model.state.sstats.copy(), model.expElogbeta.copy())
    with pytest.raises(ValueError):
        model.update(docs[:100] + [[(999, 1.0)]])
    np.testing.assert_array_equal(model.state.sstats, before[0])
    np.testing.assert_array_equal(model.expElogbeta, before[1])


@pytest.mark.distributed
@pytest.mark.slow
def test_a_lazy_cluster_gives_the_local_lazy_model(docs):
    from distlda.cluster.local import LocalCluster

    local = _model(docs, mstep="lazy", passes=4)  # 32 M-steps: a canonical point and a base at version 20
    with LocalCluster(workers=2, threads_per_worker=1) as cluster:
        remote = _model(docs, mstep="lazy", passes=4, distributed=True, ns_conf=cluster.ns_conf)
    np.testing.assert_array_equal(remote.state.sstats, local.state.sstats)
    np.testing.assert_array_equal(remote.expElogbeta, local.expElogbeta)
    np.testing.assert_array_equal(remote.alpha, local.alpha)
