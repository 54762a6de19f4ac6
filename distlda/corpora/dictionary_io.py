"""Storage formats of :class:`~distlda.corpora.dictionary.Dictionary`: numeric arrays and gensim's text.

The arrays form (UTF-8 token bytes with offsets, ids, and the ``dfs``/``cfs``
key/value pairs in their dict order) goes into a distlda container, alone or
inside a model file; no pickle is involved. The text form is the one gensim's
``save_as_text`` writes, byte for byte.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from distlda.io.compressed import open_compressed

if TYPE_CHECKING:  # pragma: no cover
    from distlda.corpora.dictionary import Dictionary

__all__ = ["FORMAT_VERSION", "from_arrays", "read_text", "to_arrays", "write_text"]

FORMAT_VERSION = 1


def to_arrays(d: "Dictionary") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """JSON-serialisable metadata and numeric arrays holding all of ``d``."""
    tokens = list(d.token2id.keys())
    encoded = [t.encode("utf-8", "surrogatepass") for t in tokens]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    arrays = {
        "token_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "token_offsets": offsets,
        "token_ids": np.fromiter(d.token2id.values(), dtype=np.int64, count=len(tokens)),
        "dfs_ids": np.fromiter(d.dfs.keys(), dtype=np.int64, count=len(d.dfs)),
        "dfs_values": _number_array(d.dfs.values()),
        "cfs_ids": np.fromiter(d.cfs.keys(), dtype=np.int64, count=len(d.cfs)),
        "cfs_values": _number_array(d.cfs.values()),
    }
    num_pos = float(d.num_pos)
    meta = {"format_version": FORMAT_VERSION, "num_docs": int(d.num_docs),
            "num_pos": int(num_pos) if num_pos.is_integer() else num_pos, "num_nnz": int(d.num_nnz)}
    return meta, arrays


def from_arrays(d: "Dictionary", meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "Dictionary":
    """Fill the empty dictionary ``d`` from the output of :func:`to_arrays` and return it.

    Raises
    ------
    ValueError
        On an unknown format version; KeyError when an array is missing.
    """
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported Dictionary format version {meta.get('format_version')!r}")
    blob = np.asarray(arrays["token_bytes"]).tobytes()
    offsets = np.asarray(arrays["token_offsets"]).tolist()
    tokens = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(offsets[:-1], offsets[1:])]
    d.token2id = dict(zip(tokens, np.asarray(arrays["token_ids"]).tolist()))
    d.id2token = {i: t for t, i in d.token2id.items()}
    d.dfs = dict(zip(np.asarray(arrays["dfs_ids"]).tolist(), np.asarray(arrays["dfs_values"]).tolist()))
    d.cfs = dict(zip(np.asarray(arrays["cfs_ids"]).tolist(), np.asarray(arrays["cfs_values"]).tolist()))
    d.num_docs = int(meta["num_docs"])
    d.num_pos = meta["num_pos"]
    d.num_nnz = int(meta["num_nnz"])
    return d


def write_text(d: "Dictionary", fname: str | os.PathLike, sort_by_word: bool = True) -> None:
    """Write gensim's text format: ``num_docs``, then ``id<TAB>token<TAB>docfreq`` lines."""
    lines = [f"{d.num_docs}\n"]
    if sort_by_word:
        lines.extend(f"{i}\t{t}\t{d.dfs.get(i, 0)}\n" for t, i in sorted(d.token2id.items()))
    else:
        ranked = sorted(d.dfs.items(), key=lambda item: -item[1])
        lines.extend(f"{i}\t{d[i]}\t{n}\n" for i, n in ranked)
    with open_compressed(os.fspath(fname), "wt") as fh:  # .gz/.bz2 names compressed, as in gensim
        fh.writelines(lines)


def read_text(d: "Dictionary", fname: str | os.PathLike) -> "Dictionary":
    """Fill the empty dictionary ``d`` from a file in gensim's text format and return it.

    Raises
    ------
    ValueError
        On a line that is not ``id<TAB>token<TAB>docfreq`` with integer id and
        frequency, or on a token defined twice; the message names file and line.
    """
    with open_compressed(os.fspath(fname), "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.decode("utf-8")
            if lineno == 1 and line.strip().isdigit():  # old gensim files lack this line
                d.num_docs = int(line.strip())
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                if len(fields) != 3:
                    raise ValueError
                wordid, word, docfreq = int(fields[0]), fields[1], int(fields[2])
            except ValueError:
                raise ValueError(f"{fname}, line {lineno}: expected 'id<TAB>token<TAB>docfreq', "
                                 f"got {line.strip()!r}") from None
            if word in d.token2id:
                raise ValueError(f"{fname}, line {lineno}: token {word!r} is defined as id "
                                 f"{wordid} and as id {d.token2id[word]}")
            d.token2id[word] = wordid
            d.dfs[wordid] = docfreq
    d.id2token = {i: t for t, i in d.token2id.items()}
    return d


def _number_array(values: Iterable[Any]) -> np.ndarray:
    """Integers as int64 (exact), anything else as float64."""
    vals = list(values)
    if all(isinstance(v, (int, np.integer)) for v in vals):
        return np.array(vals, dtype=np.int64).reshape(-1)
    return np.array(vals, dtype=np.float64).reshape(-1)
