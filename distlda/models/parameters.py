"""The table of LdaModel's training parameters: one place that drives the constructor, ``update()``,
persistence and what a cluster's workers are told.

A parameter added here is validated by the constructor, saved with the model,
overridable per ``update()`` call when ``per_update`` is set, and sent to the
workers when ``for_workers`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from distlda.core.init import check_init
from distlda.core.mstep import check_mstep
from distlda.core.priors import init_alpha, init_eta
from distlda.validation import check_float, check_int

__all__ = ["Parameter", "PARAMETERS", "checked_parameters", "update_settings", "worker_settings", "PriorShapeError",
           "checked_prior"]


@dataclass(frozen=True)
class Parameter:
    """One training parameter of LdaModel.

    Attributes
    ----------
    name : str
        The keyword (gensim's name).
    check : callable
        ``check(name, value)`` returns the validated value or raises TypeError/ValueError naming ``name``.
    per_update : bool
        ``update()`` takes it too, overriding the model's value for that call.
    for_workers : bool
        A cluster's workers need it to run the E-step.
    """

    name: str
    check: Callable[[str, Any], Any]
    per_update: bool = False
    for_workers: bool = False


def _integer(minimum: int, allow_none: bool = False) -> Callable[[str, Any], Any]:
    return lambda name, value: check_int(name, value, minimum, allow_none=allow_none)


def _real(low: float, high: float | None = None, low_open: bool = False) -> Callable[[str, Any], float]:
    return lambda name, value: check_float(name, value, low, high, low_open=low_open)


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("num_topics", _integer(1), for_workers=True),
    Parameter("chunksize", _integer(1), per_update=True),
    Parameter("passes", _integer(1), per_update=True),
    Parameter("update_every", _integer(0), per_update=True),
    Parameter("eval_every", _integer(0, allow_none=True), per_update=True),
    Parameter("iterations", _integer(1), per_update=True, for_workers=True),
    Parameter("decay", _real(0.0, 1.0, low_open=True), per_update=True),
    Parameter("offset", _real(0.0, low_open=True), per_update=True),
    Parameter("gamma_threshold", _real(0.0), per_update=True, for_workers=True),
    Parameter("minimum_probability", _real(0.0, 1.0)),
    Parameter("minimum_phi_value", _real(0.0, 1.0)),
    Parameter("per_word_topics", lambda name, value: bool(value)),
    Parameter("init", check_init),  # used once, by the constructor; saved to say how the model began
    Parameter("mstep", check_mstep),
)
"""Every parameter, in the order the constructor validates them."""


def checked_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of :data:`PARAMETERS` from ``values``, validated (errors name the parameter)."""
    return {p.name: p.check(p.name, values[p.name]) for p in PARAMETERS}


def update_settings(model: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The per-update parameters of one ``update()`` call: an override where it is not None, else the model's."""
    settings = {}
    for p in PARAMETERS:
        if p.per_update:
            value = overrides.get(p.name)
            settings[p.name] = p.check(p.name, getattr(model, p.name) if value is None else value)
    return settings


def worker_settings(model: Any) -> dict[str, Any]:
    """The parameters a cluster's workers run the E-step with."""
    return {p.name: getattr(model, p.name) for p in PARAMETERS if p.for_workers}


class PriorShapeError(ValueError, AssertionError):
    """A prior (alpha or eta) of the wrong shape.

    A ValueError, as for any other bad input; also an AssertionError, which is
    what gensim raises for it, so code written against gensim catches it too.
    """


def _shape_of(value: Any) -> tuple[int, ...] | None:
    """The array shape of a prior given as numbers, or None for a string, a scalar or a ragged list."""
    if isinstance(value, str) or value is None:
        return None
    try:
        shape = np.shape(value)
    except ValueError:  # a ragged nested list: init_* names the problem
        return None
    return shape or None


def checked_prior(name: str, value: Any, num_topics: int, num_terms: int, dtype: Any) -> tuple[np.ndarray, bool]:
    """The initial value of the prior ``name`` ('alpha' or 'eta') and whether it is learned.

    ``alpha=None`` is symmetric, as in gensim. A wrong shape raises :class:`PriorShapeError`
    (ValueError and AssertionError); other bad values the ValueError/TypeError of :mod:`distlda.core.priors`.
    """
    if name not in ("alpha", "eta"):
        raise ValueError(f"name must be 'alpha' or 'eta', got {name!r}")
    try:
        if name == "alpha":
            return init_alpha("symmetric" if value is None else value, num_topics, dtype)
        return init_eta(value, num_topics, num_terms, dtype)
    except ValueError as exc:
        allowed = [(num_topics,)] if name == "alpha" else [(num_terms,), (num_topics, num_terms)]
        shape = _shape_of(value)
        if shape is not None and shape not in allowed:
            raise PriorShapeError(str(exc)) from None
        raise
