"""Saving and loading LdaModel: one container file, no pickle, large arrays memory-mappable.

The file holds the model's parameters as JSON, its arrays (state statistics,
eta, alpha, exp(E[log β])) and its vocabulary. Loading a file that is not a
distlda model (a gensim pickle, say) fails with a clear error rather than
executing anything.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

import numpy as np

from distlda.corpora.csr import iter_chunks
from distlda.core.estep import resolve_threads
from distlda.models.ldastate import LdaState
from distlda.models.parameters import PARAMETERS
from distlda.core.training import TrainingRun
from distlda.io.container import (
    ContainerError,
    decode_strings,
    encode_strings,
    read_container,
    write_container,
)

logger = logging.getLogger(__name__)

__all__ = ["save_model", "load_model", "id2word_from_corpus"]

_KIND = "distlda.LdaModel"
_FORMAT_VERSION = 1
_PARAMS = tuple(p.name for p in PARAMETERS) + ("num_terms", "optimize_alpha", "optimize_eta", "num_updates", "ns_conf")
"""What the file's JSON holds of the model: every training parameter of the table, and its learned state's
scalars."""
_ID2WORD_PREFIX = "id2word."


def id2word_from_corpus(corpus: Any) -> dict[int, str]:
    """A vocabulary ``{id: str(id)}`` covering every id in ``corpus`` (one pass over it)."""
    max_id = -1
    for chunk in iter_chunks(corpus, 10_000):
        max_id = max(max_id, chunk.max_id())
    logger.info("no id2word given: the vocabulary is the %i ids of the corpus", max_id + 1)
    return {i: str(i) for i in range(max_id + 1)}


def _encode_id2word(id2word: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    export = getattr(id2word, "_to_arrays", None)
    if callable(export):
        meta, arrays = export()
        return {"type": "Dictionary", **meta}, {_ID2WORD_PREFIX + k: v for k, v in arrays.items()}
    ids = sorted(int(i) for i in id2word.keys())
    data, offsets = encode_strings([str(id2word[i]) for i in ids])
    return {"type": "mapping"}, {_ID2WORD_PREFIX + "ids": np.asarray(ids, dtype=np.int64),
                                 _ID2WORD_PREFIX + "data": data, _ID2WORD_PREFIX + "offsets": offsets}


def _decode_id2word(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    own = {k[len(_ID2WORD_PREFIX):]: v for k, v in arrays.items() if k.startswith(_ID2WORD_PREFIX)}
    if meta.get("type") == "Dictionary":
        from distlda.corpora.dictionary import Dictionary

        fields = {k: v for k, v in meta.items() if k != "type"}
        return Dictionary._from_arrays(fields, own)
    tokens = decode_strings(own["data"], own["offsets"])
    return dict(zip(own["ids"].tolist(), tokens))


def save_model(model: Any, fname: str | os.PathLike) -> None:
    """Write ``model`` to ``fname`` atomically."""
    meta: dict[str, Any] = {name: getattr(model, name) for name in _PARAMS}
    training = getattr(model, "_training", None)
    meta.update(format_version=_FORMAT_VERSION, dtype=model.dtype.name, seed=str(model._seed),
                numdocs=float(model.state.numdocs), metrics={k: _jsonable(v) for k, v in model.metrics.items()},
                training=training.to_dict() if training is not None else None,
                checkpoint_path=getattr(model, "checkpoint_path", None),
                checkpoint_every=getattr(model, "checkpoint_every", 10),
                info=getattr(model, "info", {}) or {})
    id2word_meta, id2word_arrays = _encode_id2word(model.id2word)
    meta["id2word"] = id2word_meta
    arrays = {"alpha": model.alpha, "eta": model.state.eta, "sstats_wm": model.state.sstats_wm,
              "expElogbeta_wm": model.expElogbeta_wm, **id2word_arrays}
    write_container(fname, _KIND, meta, arrays)
    logger.info("saved %s to %s", model, fname)


def _jsonable(values: list[Any]) -> list[Any]:
    return [v.tolist() if isinstance(v, np.ndarray) else float(v) if isinstance(v, np.floating) else v
            for v in values]


def load_model(cls: type, fname: str | os.PathLike, mmap: str | None = None, verify: bool | None = None) -> Any:
    """Read a model written by :func:`save_model`.

    Raises
    ------
    ValueError
        When ``fname`` is not a distlda model file (for example a gensim pickle).
    """
    try:
        meta, arrays = read_container(fname, kind=_KIND, mmap=mmap, verify=verify)
    except ContainerError as exc:
        raise ValueError(f"cannot load an LdaModel from {fname}: {exc}. (Models pickled by gensim are "
                         "not read, for safety.)") from None
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{fname}: unsupported model format version {meta.get('format_version')!r}")
    model = cls.__new__(cls)
    for name in _PARAMS:
        setattr(model, name, meta[name])
    model.dtype = np.dtype(meta["dtype"])
    model._seed = int(meta["seed"])
    model.random_state = np.random.RandomState(model._seed % (2**32))
    model.id2word = _decode_id2word(meta["id2word"], arrays)
    model.alpha = arrays["alpha"]
    model.state = LdaState.from_arrays(arrays["sstats_wm"], arrays["eta"], meta["numdocs"])
    model._expElogbeta_wm = arrays["expElogbeta_wm"]
    model.distributed = False
    model.dispatcher = None
    model.numworkers = 1
    model.callbacks = None
    model.progress = None
    model.threads = resolve_threads(None)
    model.training_stats = {}
    model.info = dict(meta.get("info") or {})
    model.checkpoint_path = meta.get("checkpoint_path")
    model.checkpoint_every = int(meta.get("checkpoint_every", 10))
    model._trainer = None
    model._training = TrainingRun.from_dict(meta["training"]) if meta.get("training") else None
    model.metrics = defaultdict(list, {k: list(v) for k, v in meta.get("metrics", {}).items()})
    logger.info("loaded %s from %s", model, fname)
    return model
