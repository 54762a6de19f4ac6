"""The anchor start's exponentiated-gradient kernels (distlda.kernels.simplex) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from distlda.kernels.parallel import kernel_threads
from distlda.kernels.simplex import eg_accept, eg_trial, half_errors


def _problem(rng: np.random.Generator, m: int, k: int) -> tuple[np.ndarray, ...]:
    basis = rng.dirichlet(np.full(40, 0.3), k)
    gram = (basis @ basis.T).astype(np.float32)
    target = (rng.dirichlet(np.full(40, 0.3), m) @ basis.T).astype(np.float32)
    weights = rng.dirichlet(np.ones(k), m).astype(np.float32)
    return gram, target, weights, weights @ gram


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("m,k", [(5, 3), (7, 5), (300, 64)])
def test_a_step_matches_numpy(rng: np.random.Generator, threads: int, m: int, k: int) -> None:
    gram, target, weights, product = _problem(rng, m, k)
    steps = rng.uniform(1.0, 400.0, m).astype(np.float32)  # large ones clip the exponent at ±50
    with kernel_threads(threads):
        error = half_errors(weights, product, target)
        np.testing.assert_allclose(error, 0.5 * np.einsum("ij,ij->i", weights, product)
                                   - np.einsum("ij,ij->i", weights, target), rtol=1e-5, atol=1e-7)
        trial = np.empty_like(weights)
        eg_trial(weights, product, target, steps, trial)
        expected = weights * np.exp(np.clip(-steps[:, None] * (product - target), -50.0, 50.0))
        expected /= expected.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(trial, expected, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(trial.sum(axis=1), 1.0, rtol=1e-5)

        trial_product = trial @ gram
        trial_error = 0.5 * np.einsum("ij,ij->i", trial, trial_product) - np.einsum("ij,ij->i", trial, target)
        before = (weights.copy(), product.copy(), error.copy(), steps.copy())
        eg_accept(weights, product, error, steps, trial, trial_product, target)
    better = trial_error <= before[2]
    decided = np.abs(trial_error - before[2]) > 1e-5 * np.abs(before[2]) + 1e-9  # not a tie within rounding
    take, keep = decided & better, decided & ~better
    if m == 300:
        assert take.any() and keep.any()  # both kinds of word, so that both branches are checked
    np.testing.assert_array_equal(weights[take], trial[take])
    np.testing.assert_array_equal(product[take], trial_product[take])
    np.testing.assert_array_equal(steps[take], before[3][take])
    assert np.all(error[take] <= before[2][take])
    np.testing.assert_array_equal(weights[keep], before[0][keep])
    np.testing.assert_array_equal(product[keep], before[1][keep])
    np.testing.assert_array_equal(steps[keep], before[3][keep] * 0.5)
    np.testing.assert_array_equal(error[keep], before[2][keep])


def test_a_trial_gone_nan_is_refused_like_a_worse_one(rng: np.random.Generator) -> None:
    gram, target, weights, product = _problem(rng, 6, 4)
    error = half_errors(weights, product, target)
    steps = np.full(6, 10.0, np.float32)
    trial = np.empty_like(weights)
    eg_trial(weights, product, target, steps, trial)
    trial[2, 1] = np.nan
    trial_product = trial @ gram
    kept_weights, kept_error = weights[2].copy(), error[2]
    eg_accept(weights, product, error, steps, trial, trial_product, target)
    np.testing.assert_array_equal(weights[2], kept_weights)
    assert error[2] == kept_error and steps[2] == 5.0 and np.all(np.isfinite(weights))


def test_bad_arrays_are_refused_by_what_is_wrong(rng: np.random.Generator) -> None:
    gram, target, weights, product = _problem(rng, 6, 4)
    trial = np.empty_like(weights)
    with pytest.raises(ValueError, match="float32"):
        eg_trial(weights, product, target, np.ones(6), trial)  # float64 steps
    with pytest.raises(ValueError, match=r"\(6, 4\)"):
        eg_trial(weights, product, target[:5], np.ones(6, np.float32), trial)  # a target row short
    with pytest.raises(ValueError, match="C-contiguous"):
        half_errors(np.asfortranarray(weights), product, target)

def test_the_steps_lower_every_error_and_keep_the_simplex(rng: np.random.Generator) -> None:
    gram, target, weights, product = _problem(rng, 200, 20)
    steps = np.full(200, 50.0 / np.linalg.eigvalsh(gram.astype(np.float64))[-1], np.float32)
    error = half_errors(weights, product, target)
    start = error.copy()
    trial, trial_product = np.empty_like(weights), np.empty_like(weights)
    for _ in range(60):
        eg_trial(weights, product, target, steps, trial)
        np.matmul(trial, gram, out=trial_product)
        eg_accept(weights, product, error, steps, trial, trial_product, target)
    assert np.all(error <= start) and np.mean(error < start - 1e-6) > 0.9
    assert np.all(weights >= 0) and np.allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(product, weights @ gram, rtol=1e-4, atol=1e-7)


def test_the_next_trial_in_the_same_pass_is_eg_trials(rng: np.random.Generator) -> None:
    gram, target, weights, product = _problem(rng, 50, 9)
    steps = rng.uniform(1.0, 100.0, 50).astype(np.float32)
    error = half_errors(weights, product, target)
    trial = np.empty_like(weights)
    eg_trial(weights, product, target, steps, trial)
    trial_product = trial @ gram
    state = [a.copy() for a in (weights, product, error, steps, trial)]
    eg_accept(*state, trial_product, target, then_trial=True)
    eg_accept(weights, product, error, steps, trial, trial_product, target)
    eg_trial(weights, product, target, steps, trial)
    for fused, separate in zip(state, (weights, product, error, steps, trial)):
        np.testing.assert_array_equal(fused, separate)
