"""The wire format of the cluster and the shape of every message, checked in one place.

Values: an array travels as ``{"dtype": "<f4", "shape": [V, K], "data": b"..."}``:
its raw bytes (msgpack's bin type, no base64, no per-element encoding). Only
numeric dtypes are accepted on decoding, and the byte count must match the
shape, so nothing received can become an object array or run code. A CSR chunk
travels as its three arrays and its first document number.

Messages (dicts, as Pyro5's msgpack serializer carries them), each with its check:

========================  ==========================================  =========================
message                   keys                                        check
========================  ==========================================  =========================
model parameters          num_topics, num_terms, dtype, iterations,   :func:`check_model_params`
                          gamma_threshold (numerics, ... optional)
base                      lineage, version, sstats_wm, eta, alpha     :func:`check_base`
batch state               batch, version (lineage, ref, iterations,   :func:`check_batch`
                          gamma_threshold, seed)
job                       batch, job, pass, and chunk or ref          :func:`check_job`
                          (docs, part, settings)
recipe                    version, plan, jobs (ref_path)              :func:`check_recipe`
replica position          [lineage, version]                          :func:`position_of`
========================  ==========================================  =========================

Remote arguments that are not messages (a ``wait``, a worker's name) have their checks too
(:func:`check_wait`, :func:`check_name`), and model parameters are held to :data:`LIMITS`.

Each check raises :class:`WireError` (a ``ValueError``, registered with Pyro5 so
it reaches a remote caller as itself) naming the message and what is wrong; the
values inside (term ids, counts) are judged where they are used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from distlda.cluster.errors import WireError
from distlda.corpora.csr import CsrChunk

__all__ = ["WireError", "encode_array", "decode_array", "encode_chunk", "decode_chunk", "plain",
           "check_model_params", "check_base", "check_batch", "check_job", "check_recipe", "position_of",
           "check_wait", "check_name", "LIMITS", "model_bytes"]

_ALLOWED_KINDS = set("biuf")


def encode_array(arr: np.ndarray) -> dict[str, Any]:
    """A numeric array as ``{dtype, shape, data}`` (C order bytes)."""
    a = np.ascontiguousarray(arr)
    if a.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"only numeric arrays can be sent, not {a.dtype}")
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(value: Any, name: str = "array") -> np.ndarray:
    """Inverse of :func:`encode_array`; a writable array. WireError when malformed."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data"}:
        raise WireError(f"{name}: expected an encoded array (dtype, shape, data)")
    try:
        dtype = np.dtype(value["dtype"])
    except TypeError:
        raise WireError(f"{name}: unknown dtype {value['dtype']!r}") from None
    if dtype.kind not in _ALLOWED_KINDS:
        raise WireError(f"{name}: dtype {dtype} is not numeric")
    shape = value["shape"]
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"{name}: bad shape {shape!r}")
    data = value["data"]
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"{name}: data must be bytes")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"{name}: {len(data)} bytes for shape {list(shape)} of {dtype} (expected {expected})")
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape)


def encode_chunk(chunk: CsrChunk) -> dict[str, Any]:
    """A CSR chunk as a msgpack-safe dict."""
    return {"indptr": encode_array(chunk.indptr), "ids": encode_array(chunk.ids),
            "counts": encode_array(chunk.counts), "start": int(chunk.start)}


def decode_chunk(value: Any, name: str = "chunk") -> CsrChunk:
    """Inverse of :func:`encode_chunk`. Checks the structure (types, lengths, ``indptr``) with errors naming
    ``name``; the values of ids and counts are for :func:`distlda.corpora.csr.validate_chunk` to judge."""
    if not isinstance(value, dict) or not {"indptr", "ids", "counts", "start"} <= set(value):
        raise WireError(f"{name}: expected an encoded chunk (indptr, ids, counts, start)")
    start = value["start"]
    if not isinstance(start, int) or start < 0:
        raise WireError(f"{name}: bad start {start!r}")
    indptr = decode_array(value["indptr"], f"{name}.indptr")
    ids = decode_array(value["ids"], f"{name}.ids")
    counts = decode_array(value["counts"], f"{name}.counts")
    if indptr.ndim != 1 or ids.ndim != 1 or counts.ndim != 1 or len(indptr) < 1:
        raise WireError(f"{name}: indptr, ids and counts must be 1-D (indptr at least of length 1)")
    if indptr.dtype.kind not in "iu" or ids.dtype.kind not in "iu" or counts.dtype.kind != "f":
        raise WireError(f"{name}: indptr and ids must hold integers and counts floats")
    if len(ids) != len(counts):
        raise WireError(f"{name}: ids and counts differ in length ({len(ids)} != {len(counts)})")
    if indptr[0] != 0 or indptr[-1] != len(ids) or np.any(np.diff(indptr) < 0):
        raise WireError(f"{name}: indptr must start at 0, never decrease and end at len(ids) ({len(ids)})")
    if len(ids) and (ids.min() < np.iinfo(np.int32).min or ids.max() > np.iinfo(np.int32).max):
        raise WireError(f"{name}: term ids out of the int32 range")
    return CsrChunk(indptr.astype(np.int64, copy=False), ids.astype(np.int32, copy=False), counts, start)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python numbers, recursively (msgpack would mangle them)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------------------------ messages

MODEL_PARAM_KEYS = ("num_topics", "num_terms", "dtype", "iterations", "gamma_threshold")
"""What a worker must be told of the model to run its E-step and keep its replica."""

LIMITS = {"num_topics": 100_000, "num_terms": 2**31 - 1, "iterations": 1_000_000}
"""Largest values of the model parameters a daemon accepts (each at least 1). Term ids travel as int32, hence
``num_terms``; beyond these, a worker also checks that the model's arrays fit its memory and a message."""

_NAME_CHARS = 200


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_model_params(params: Any, where: str = "initialize") -> dict[str, Any]:
    """The model parameters a worker is initialised with, held to :data:`LIMITS`; returns them."""
    if not isinstance(params, dict):
        raise WireError(f"{where}: model parameters must be a dict")
    missing = set(MODEL_PARAM_KEYS) - set(params)
    if missing:
        raise WireError(f"{where}: missing model parameters {sorted(missing)}")
    if params["dtype"] not in ("float32", "float64"):
        raise WireError(f"{where}: dtype must be float32 or float64, got {params['dtype']!r}")
    for key, most in LIMITS.items():
        value = params[key]
        if not _is_int(value) or not 1 <= value <= most:
            raise WireError(f"{where}: {key} must be a whole number from 1 to {most:,}, got {value!r}")
    threshold = params["gamma_threshold"]
    if not _is_number(threshold) or not math.isfinite(threshold) or threshold < 0:
        raise WireError(f"{where}: gamma_threshold must be a finite number >= 0, got {threshold!r}")
    return params


def model_bytes(params: dict[str, Any]) -> int:
    """Bytes of one topics × terms array of the model ``params`` describe (checked by :func:`check_model_params`)."""
    return int(params["num_topics"]) * int(params["num_terms"]) * np.dtype(params["dtype"]).itemsize


MAX_JOBS_PER_CALL = 4096
"""Most jobs one ``putjobs`` call may carry (a client puts a larger batch's jobs in several calls)."""


def check_wait(wait: Any, where: str, most: float) -> float:
    """A ``wait`` argument in seconds: a finite number from 0 to ``most`` (NaN would make a wait that never
    ends); returns it as a float."""
    if not _is_number(wait) or not math.isfinite(wait) or not 0 <= wait <= most:
        raise WireError(f"{where}: wait must be a number of seconds from 0 to {most:g}, got {wait!r}")
    return float(wait)


def check_name(name: Any, where: str, what: str = "worker id") -> str:
    """A name sent as an argument (a worker's id, a batch id): a non-empty string of at most 200 characters."""
    if not isinstance(name, str) or not 0 < len(name) <= _NAME_CHARS:
        raise WireError(f"{where}: the {what} must be a string of 1 to {_NAME_CHARS} characters, got {name!r:.60}")
    return name


def check_base(base: Any, where: str = "setbase") -> dict[str, Any]:
    """A base: the full statistics and priors (encoded arrays) at ``[lineage, version]``; returns it."""
    if not isinstance(base, dict) or not {"lineage", "version", "sstats_wm", "eta", "alpha"} <= set(base):
        raise WireError(f"{where}: a base is a dict with lineage, version, sstats_wm, eta and alpha")
    if not _is_int(base["version"]):
        raise WireError(f"{where}: the base's version must be an integer, got {base['version']!r}")
    return base


def check_batch(state: Any, where: str = "reset") -> dict[str, Any]:
    """The state of a mini-batch (``reset``, ``getparams``' answer, a job's ``settings``); returns it."""
    if not isinstance(state, dict) or not {"batch", "version"} <= set(state):
        raise WireError(f"{where}: state must be a dict with a 'batch' id and a 'version'")
    check_name(state["batch"], where, "batch id")
    if not _is_int(state["version"]):
        raise WireError(f"{where}: the version must be an integer, got {state['version']!r}")
    return state


def check_job(job: Any, where: str = "job") -> dict[str, Any]:
    """The one check of a job's shape, made by the dispatcher when a job is put and by the worker when it runs
    one; returns the job. Its documents (``chunk``) or range (``ref``) are checked when they are read."""
    if not isinstance(job, dict) or not {"batch", "job", "pass"} <= set(job) or not {"chunk", "ref"} & set(job):
        raise WireError(f"{where}: malformed job (a job is a dict with batch, job, pass, and chunk or ref)")
    for key in ("job", "pass"):
        if not _is_int(job[key]) or job[key] < 0:
            raise WireError(f"{where}: malformed job (its {key!r} must be a whole number, got {job[key]!r})")
    check_name(job["batch"], where, "batch id")
    return job


def check_recipe(recipe: Any, where: str = "recipe") -> dict[str, Any]:
    """The recipe of one M-step: its version, the M-step's plan and the batch's jobs with their γ."""
    if not isinstance(recipe, dict) or not {"version", "plan", "jobs"} <= set(recipe):
        raise WireError(f"{where}: a recipe is a dict with version, plan and jobs")
    if not _is_int(recipe["version"]) or not isinstance(recipe["plan"], dict) or \
            not isinstance(recipe["jobs"], list):
        raise WireError(f"{where}: a recipe's version must be an integer, its plan a dict and its jobs a list")
    return recipe


def position_of(have: Any) -> tuple[str, int] | None:
    """A replica's position ``[lineage, version]`` as sent over the wire, or None (no replica / malformed)."""
    if isinstance(have, (list, tuple)) and len(have) == 2 and isinstance(have[0], str) and _is_int(have[1]):
        return have[0], have[1]
    return None
