"""Saving and loading LdaModel: one container file, no pickle, large arrays memory-mappable;
and a model built from a gensim LdaModel object.

The file holds the model's parameters as JSON, its arrays (state statistics,
eta, alpha, exp(E[log β])) and its vocabulary. A name ending in ``.gz`` or
``.bz2`` holds the same container compressed. Loading a file that is not a
distlda model (a gensim pickle, say) fails with a clear error rather than
executing anything.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from distlda.corpora import dictionary_io
from distlda.corpora.csr import iter_chunks
from distlda.core.estep import resolve_threads
from distlda.models.ldastate import LdaState
from distlda.models.parameters import PARAMETERS
from distlda.core.training import TrainingRun
from distlda.io.compressed import compressor_of
from distlda.io.container import (
    ContainerError,
    atomic_write,
    decode_strings,
    encode_strings,
    read_container,
    write_container,
)

logger = logging.getLogger(__name__)

__all__ = ["save_model", "load_model", "id2word_from_corpus", "model_from_gensim", "IGNORABLE"]

_KIND = "distlda.LdaModel"
_FORMAT_VERSION = 1
_PARAMS = tuple(p.name for p in PARAMETERS) + ("num_terms", "optimize_alpha", "optimize_eta", "num_updates", "ns_conf")
"""What the file's JSON holds of the model: every training parameter of the table, and its learned state's
scalars."""
_ADDED_LATER = {"init": "gensim", "mstep": "dense"}
"""Parameters that files written before they existed lack, with what those models used."""
_ID2WORD_PREFIX = "id2word."

IGNORABLE = frozenset({"id2word", "expElogbeta", "metrics", "info", "state", "dispatcher", "callbacks"})
"""What ``save(ignore=...)`` may leave out: the model loads without it (id2word as None, expElogbeta recomputed,
metrics and info empty); 'state', 'dispatcher' and 'callbacks' change nothing, as in gensim."""


def id2word_from_corpus(corpus: Any) -> dict[int, str]:
    """A vocabulary ``{id: str(id)}`` covering every id in ``corpus`` (one pass over it)."""
    max_id = -1
    for chunk in iter_chunks(corpus, 10_000):
        max_id = max(max_id, chunk.max_id())
    logger.info("no id2word given: the vocabulary is the %i ids of the corpus", max_id + 1)
    return {i: str(i) for i in range(max_id + 1)}


def _is_gensim_dictionary(id2word: Any) -> bool:
    """Whether ``id2word`` is a Dictionary of another library with gensim's attributes (gensim's own)."""
    return not hasattr(id2word, "_to_arrays") and all(
        hasattr(id2word, name) for name in ("token2id", "dfs", "cfs", "num_docs", "num_pos", "num_nnz"))


def _encode_id2word(id2word: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if id2word is None:
        return {"type": "none"}, {}
    export = getattr(id2word, "_to_arrays", None)
    if callable(export) or _is_gensim_dictionary(id2word):
        # a gensim Dictionary is stored as distlda's, whose attributes are the same: it loads as a Dictionary
        meta, arrays = export() if callable(export) else dictionary_io.to_arrays(id2word)
        return {"type": "Dictionary", **meta}, {_ID2WORD_PREFIX + k: v for k, v in arrays.items()}
    ids = sorted(int(i) for i in id2word.keys())
    data, offsets = encode_strings([str(id2word[i]) for i in ids])
    return {"type": "mapping"}, {_ID2WORD_PREFIX + "ids": np.asarray(ids, dtype=np.int64),
                                 _ID2WORD_PREFIX + "data": data, _ID2WORD_PREFIX + "offsets": offsets}


def _decode_id2word(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    own = {k[len(_ID2WORD_PREFIX):]: v for k, v in arrays.items() if k.startswith(_ID2WORD_PREFIX)}
    if meta.get("type") == "none":
        return None
    if meta.get("type") == "Dictionary":
        from distlda.corpora.dictionary import Dictionary

        fields = {k: v for k, v in meta.items() if k != "type"}
        return Dictionary._from_arrays(fields, own)
    tokens = decode_strings(own["data"], own["offsets"])
    return dict(zip(own["ids"].tolist(), tokens))


def _ignored(ignore: str | Iterable[str] | None) -> frozenset[str]:
    names = frozenset([ignore] if isinstance(ignore, str) else ignore or ())
    unknown = sorted(names - IGNORABLE)
    if unknown:
        raise ValueError(f"cannot save a model without {unknown}: it could not be loaded without them (ignore may "
                         f"name {sorted(IGNORABLE)})")
    return names


def save_model(model: Any, fname: str | os.PathLike, ignore: str | Iterable[str] | None = None) -> None:
    """Write ``model`` to ``fname`` atomically, without the attributes named in ``ignore`` (see
    :data:`IGNORABLE`); compressed when ``fname`` ends in ``.gz`` or ``.bz2``."""
    ignored = _ignored(ignore)
    meta: dict[str, Any] = {name: getattr(model, name) for name in _PARAMS}
    training = getattr(model, "_training", None)
    meta.update(format_version=_FORMAT_VERSION, dtype=model.dtype.name, seed=str(model._seed),
                numdocs=float(model.state.numdocs), metrics={k: _jsonable(v) for k, v in model.metrics.items()},
                training=training.to_dict() if training is not None else None,
                checkpoint_path=getattr(model, "checkpoint_path", None),
                checkpoint_every=getattr(model, "checkpoint_every", 10),
                info=getattr(model, "info", {}) or {})
    if "metrics" in ignored:
        meta["metrics"] = {}
    if "info" in ignored:
        meta["info"] = {}
    id2word_meta, id2word_arrays = _encode_id2word(None if "id2word" in ignored else model.id2word)
    meta["id2word"] = id2word_meta
    arrays = {"alpha": model.alpha, "eta": model.state.eta, "sstats_wm": model.state.sstats_wm, **id2word_arrays}
    if "expElogbeta" not in ignored:
        arrays["expElogbeta_wm"] = model.expElogbeta_wm
    _write(fname, meta, arrays)
    logger.info("saved %s to %s", model, fname)


def _write(fname: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The container, compressed when the name says so (written aside first, then compressed into place)."""
    compressor = compressor_of(fname)
    if compressor is None:
        write_container(fname, _KIND, meta, arrays)
        return
    with tempfile.TemporaryDirectory(dir=Path(fname).parent) as folder:
        plain = Path(folder) / "model"
        write_container(plain, _KIND, meta, arrays)

        def compress(fh: Any) -> None:
            with open(plain, "rb") as src, compressor(fh, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)

        atomic_write(fname, compress)


def _read(fname: str | os.PathLike, mmap: str | None, verify: bool | None) -> tuple[dict, dict[str, np.ndarray]]:
    """The container of ``fname``, decompressed into memory when the name ends in ``.gz`` or ``.bz2``."""
    compressor = compressor_of(fname)
    if compressor is None:
        return read_container(fname, kind=_KIND, mmap=mmap, verify=verify)
    if mmap is not None:
        raise OSError(f"cannot memory-map {fname}: it is compressed (load it with mmap=None, or save the model "
                      "under a name without .gz/.bz2 to map it)")
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "model"
        try:
            with compressor(fname, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ContainerError(f"it is not a {Path(fname).suffix} file of a distlda model ({exc})") from None
        try:
            return read_container(plain, kind=_KIND, verify=verify)
        except ContainerError as exc:
            raise ContainerError(str(exc).replace(str(plain), "the decompressed file")) from None


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
        meta, arrays = _read(fname, mmap, verify)
    except ContainerError as exc:
        raise ValueError(f"cannot load an LdaModel from {fname}: {exc}. (Models pickled by gensim are "
                         "not read, for safety.)") from None
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{fname}: unsupported model format version {meta.get('format_version')!r}")
    model = cls.__new__(cls)
    for name in _PARAMS:
        setattr(model, name, meta[name] if name in meta else _ADDED_LATER[name])
    model.dtype = np.dtype(meta["dtype"])
    model._seed = int(meta["seed"])
    model._random_state = np.random.RandomState(model._seed % (2**32))
    model.id2word = _decode_id2word(meta["id2word"], arrays)
    model.alpha = arrays["alpha"]
    model.state = LdaState.from_arrays(arrays["sstats_wm"], arrays["eta"], meta["numdocs"])
    model._expElogbeta_wm = arrays.get("expElogbeta_wm")
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
    if model._expElogbeta_wm is None:  # saved with ignore='expElogbeta'
        model.sync_state()
    logger.info("loaded %s from %s", model, fname)
    return model


_GENSIM_SETTINGS = ("chunksize", "passes", "update_every", "eval_every", "iterations", "decay", "offset",
                    "gamma_threshold", "minimum_probability", "minimum_phi_value", "per_word_topics")
"""Training settings a converted model takes over from the gensim model (each where it has one)."""


def _vocabulary_of(id2word: Any, num_terms: int) -> Any:
    """A gensim model's vocabulary as distlda's (a Dictionary for a Dictionary, else ``{id: word}``): the
    vocabulary a saved and loaded model would have."""
    if id2word is None:
        return {i: str(i) for i in range(num_terms)}
    return _decode_id2word(*_encode_id2word(id2word))


def model_from_gensim(cls: type, gensim_model: Any, random_state: Any = None, memory_check: bool = True) -> Any:
    """A ``cls`` model (an LdaModel) with the topics, priors, settings and vocabulary of a gensim LdaModel.

    The statistics are copied, so ``get_topics()`` is gensim's to rounding. The topic-word prior is the one
    gensim's topics use, ``gensim_model.state.eta`` (gensim's ``model.eta`` may have been learned with
    ``eta='auto'`` without reaching its topics). Document topics are inferred by distlda from the same topics
    and alpha, so they agree with gensim's to its convergence threshold.

    Parameters
    ----------
    cls : type
        LdaModel or a subclass.
    gensim_model : gensim.models.LdaModel
        Read through its public attributes only (``state.sstats``, ``state.eta``, ``alpha``, ``id2word``...);
        it is not changed.
    random_state : None, int, RandomState or Generator, optional
        Seed of the new model; by default drawn from a copy of the gensim model's random state.
    memory_check : bool
        As LdaModel's.

    Raises
    ------
    TypeError
        When ``gensim_model`` is not an LDA model (no ``state.sstats``, ``alpha`` or ``num_topics``).
    """
    state = getattr(gensim_model, "state", None)
    if state is None or not hasattr(state, "sstats") or not hasattr(gensim_model, "alpha") \
            or not hasattr(gensim_model, "num_topics"):
        raise TypeError(f"expected a gensim LdaModel, got {type(gensim_model).__name__} (it has no state.sstats, "
                        "alpha or num_topics)")
    sstats = np.asarray(state.sstats)
    num_topics, num_terms = sstats.shape
    eta = np.asarray(getattr(state, "eta", None) if getattr(state, "eta", None) is not None else gensim_model.eta)
    if random_state is None:
        theirs = getattr(gensim_model, "random_state", None)
        random_state = copy.deepcopy(theirs) if isinstance(theirs, (np.random.RandomState, np.random.Generator)) \
            else None
    settings = {name: getattr(gensim_model, name) for name in _GENSIM_SETTINGS if hasattr(gensim_model, name)}
    model = cls(id2word=_vocabulary_of(getattr(gensim_model, "id2word", None), num_terms), num_topics=num_topics,
                alpha=np.asarray(gensim_model.alpha), eta=eta, random_state=random_state,
                dtype=getattr(gensim_model, "dtype", sstats.dtype), memory_check=memory_check,
                init="gensim", **settings)  # (its topics are gensim's, whatever started them)
    if model.num_terms != num_terms:
        raise ValueError(f"the gensim model has {num_terms} terms but its id2word {model.num_terms}")
    model.optimize_alpha = bool(getattr(gensim_model, "optimize_alpha", False))
    model.optimize_eta = bool(getattr(gensim_model, "optimize_eta", False))
    model.state.sstats = sstats
    model.state.numdocs = state.numdocs
    model.num_updates = getattr(gensim_model, "num_updates", 0)
    model.sync_state()
    logger.info("converted gensim's %s into %s", type(gensim_model).__name__, model)
    return model
