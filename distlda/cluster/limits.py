"""What a worker refuses to allocate: a model or a job's γ that would not fit its memory or a message.

Every size a message can ask a worker to allocate is checked before anything is allocated: the model
(topics × terms, held :data:`MODEL_ARRAYS` times) against the memory the process can still use, and each job's
γ against that memory and the largest message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from Pyro5 import config as pyro_config

from distlda.cluster import errors as cluster_errors
from distlda.cluster.wire import model_bytes
from distlda.core.memory import available_memory

__all__ = ["MODEL_ARRAYS", "check_model_fits", "check_job_size"]

MODEL_ARRAYS = 5
"""Topics × terms arrays a worker holds at its peak: the replica's statistics and exp(E[log β]), and either a
batch's statistics while it replays an M-step or, while a new base is loaded, the new statistics and
exp(E[log β]) beside the old ones; plus a topics × terms eta. Large arrays travel in pieces of at most
``distlda.cluster.pieces.PIECE_BYTES``, so messages add no copies of the model. A model is accepted only if this
many fit the memory the worker can still use."""

_MIB = 1024 * 1024


def check_model_fits(name: str, params: dict[str, Any], held: int) -> None:
    """Refuse (ModelTooLarge) a model whose arrays would not fit worker ``name``'s memory, counting the ``held``
    bytes of the replica it has now as free (it is dropped)."""
    one = model_bytes(params)  # (any size travels: large arrays in pieces, distlda.cluster.pieces)
    shape = f"{params['num_topics']:,} topics × {params['num_terms']:,} terms in {params['dtype']}"
    free = available_memory()
    if free is not None and MODEL_ARRAYS * one > free + held:
        raise cluster_errors.ModelTooLarge(
            f"worker {name}: a model of {shape} needs {MODEL_ARRAYS} arrays of {one / _MIB:,.0f} MiB, "
            f"{MODEL_ARRAYS * one / _MIB:,.0f} MiB in all, and this worker can use {(free + held) / _MIB:,.0f} "
            "MiB: use fewer topics or terms, or a machine with more memory")


def check_job_size(params: dict[str, Any], n_docs: int, where: str) -> None:
    """Refuse (JobError) a job whose γ (documents × topics) would not fit the answer's message or the memory."""
    need = n_docs * int(params["num_topics"]) * np.dtype(params["dtype"]).itemsize
    limit = int(pyro_config.MAX_MESSAGE_SIZE or 0)
    free = available_memory()
    if (limit and need > limit) or (free is not None and 2 * need > free):
        raise cluster_errors.JobError(
            f"{where}: γ of {n_docs:,} documents × {params['num_topics']:,} topics takes "
            f"{need / _MIB:,.0f} MiB, more than this worker's memory or the largest message allows: send "
            "smaller chunks")
