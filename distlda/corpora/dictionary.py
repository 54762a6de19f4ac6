"""A mapping between tokens and integer ids, with document statistics, compatible with gensim 4.

:class:`Dictionary` has the public surface of ``gensim.corpora.Dictionary``: the same
constructor, methods and attributes, and it gives the same token ids, document
frequencies and filtering results on the same input, so a gensim user only changes
the import. It saves to a distlda container (no pickle) and reads and writes
gensim's plain-text dictionary format.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

import numpy as np

from distlda.corpora import dictionary_io
from distlda.corpora.csr import iter_chunks
from distlda.io.container import ContainerError, read_container, write_container

__all__ = ["Dictionary", "VocabTransform"]

logger = logging.getLogger(__name__)

_KIND = "distlda.Dictionary"
_BATCH_DOCS = 10000  # add_documents counts this many documents at once (and checks pruning between)


class Dictionary(Mapping):
    """Map tokens to integer ids and keep document statistics about them.

    Parameters
    ----------
    documents : iterable of list of str, optional
        Documents to add straight away (see :meth:`add_documents`).
    prune_at : int or None, optional
        Keep at most about this many tokens while adding ``documents``.

    Attributes
    ----------
    token2id : dict of (str, int)
        Token to id.
    id2token : dict of (int, str)
        Id to token; kept in step with ``token2id``.
    dfs : dict of (int, int)
        Document frequency: in how many documents each id appears.
    cfs : dict of (int, int)
        Collection frequency: how many times each id appears in all documents.
    num_docs : int
        Number of documents processed.
    num_pos : int
        Number of tokens processed (corpus positions).
    num_nnz : int
        Sum over documents of the number of distinct tokens in each.

    Notes
    -----
    Like gensim's, the class is a read-only :class:`~collections.abc.Mapping` from
    id to token: ``len(d)``, ``d[id]``, ``id in d``, ``d.items()`` all speak about ids.
    """

    def __init__(self, documents: Iterable[Iterable[str]] | None = None, prune_at: int | None = 2000000):
        self.token2id: dict[str, int] = {}
        self.id2token: dict[int, str] = {}
        self.cfs: dict[int, int] = {}
        self.dfs: dict[int, int] = {}
        self.num_docs = 0
        self.num_pos = 0
        self.num_nnz = 0
        if documents is not None:
            self.add_documents(documents, prune_at=prune_at)

    # ------------------------------------------------------------------ Mapping API

    def _sync_id2token(self) -> dict[int, str]:
        """Rebuild ``id2token`` when ``token2id`` was changed behind our back."""
        if len(self.id2token) != len(self.token2id):
            self.id2token = {i: t for t, i in self.token2id.items()}
        return self.id2token

    def __getitem__(self, tokenid: int) -> str:
        """The token of id ``tokenid``; :class:`KeyError` when there is none."""
        return self._sync_id2token()[tokenid]

    def __iter__(self) -> Iterator[int]:
        """Iterate over the token ids."""
        return iter(self.keys())

    def __len__(self) -> int:
        """Number of tokens."""
        return len(self.token2id)

    def __contains__(self, tokenid: object) -> bool:
        """Whether ``tokenid`` is a known id (test tokens with ``token in d.token2id``)."""
        return tokenid in self._sync_id2token()

    def keys(self) -> list[int]:  # type: ignore[override]
        """All token ids, in insertion order of ``token2id``."""
        return list(self.token2id.values())

    def __str__(self) -> str:
        sample = list(itertools.islice(self.token2id.keys(), 5))
        more = "..." if len(self) > 5 else ""
        return f"{type(self).__name__}<{len(self)} unique tokens: {sample}{more}>"

    __repr__ = __str__

    # ------------------------------------------------------------------ building

    @staticmethod
    def from_documents(documents: Iterable[Iterable[str]]) -> "Dictionary":
        """Build a dictionary from tokenised documents (same as ``Dictionary(documents)``)."""
        return Dictionary(documents=documents)

    def add_documents(self, documents: Iterable[Iterable[str]], prune_at: int | None = 2000000) -> None:
        """Add tokenised documents: new tokens get new ids, statistics are updated.

        Ids are given in the same order as gensim gives them (within a document, new
        tokens in sorted order), so both libraries agree on the ids of a corpus.

        Parameters
        ----------
        documents : iterable of list of str
            Each document is a list (or any iterable) of tokens; ``bytes`` tokens
            are decoded as UTF-8.
        prune_at : int or None, optional
            Every 10,000 documents, if the dictionary has grown past this many
            tokens, keep only the ``prune_at`` tokens of highest document frequency
            (the statistics of the tokens removed are lost). ``None`` never prunes.

        Raises
        ------
        TypeError
            When a document is a string or not an iterable, or a token is neither
            ``str`` nor ``bytes``; the message gives the document number.
        """
        if prune_at is not None and (not _is_int(prune_at) or prune_at < 0):
            raise ValueError(f"prune_at must be a non-negative integer or None, got {prune_at!r}")
        self._sync_id2token()
        iterator = iter(documents)
        docno = 0
        while True:
            batch = list(itertools.islice(iterator, _BATCH_DOCS))
            if not batch:
                break
            # gensim checks for pruning before documents 0, 10000, 20000, ... of each call
            if prune_at is not None and len(self.token2id) > prune_at:
                self.filter_extremes(no_below=0, no_above=1.0, keep_n=prune_at)
            logger.debug("adding document #%i to %s", docno, self)
            self._add_batch(batch, docno)
            docno += len(batch)
        logger.info("built %s from %i documents (total %i corpus positions)", self, self.num_docs, self.num_pos)

    def _add_batch(self, documents: list[Any], docno: int) -> None:
        """Add a batch of documents with one dictionary look-up per token and numpy counting.

        The result is what adding the documents one by one gives: new tokens get ids
        document by document (sorted within a document), and new keys enter ``dfs``
        and ``cfs`` in order of first occurrence, as in gensim.
        """
        docs = [d if type(d) is list else _token_list(d, docno + i) for i, d in enumerate(documents)]
        flat = list(itertools.chain.from_iterable(docs))
        if not flat:
            self.num_docs += len(docs)
            return
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        token2id = self.token2id
        try:
            ids = np.fromiter(map(token2id.get, flat, itertools.repeat(-1)), dtype=np.int64, count=len(flat))
        except TypeError:
            _raise_bad_token(docs, docno)
        missing_pos = np.flatnonzero(ids < 0)
        if len(missing_pos):
            missing = [flat[p] for p in missing_pos.tolist()]
            # first position of each new token: later duplicates are overwritten going backwards
            first_pos = dict(zip(reversed(missing), reversed(missing_pos.tolist())))
            if not all(isinstance(t, str) for t in first_pos):
                decoded = [[_as_str(t, docno + i) for t in d] for i, d in enumerate(docs)]
                return self._add_batch(decoded, docno)
            ends = np.cumsum(lengths)
            first_doc = np.searchsorted(ends, np.fromiter(first_pos.values(), dtype=np.int64), side="right")
            ordered = [t for _, t in sorted(zip(first_doc.tolist(), first_pos))]
            self._add_tokens(ordered)
            ids[missing_pos] = np.fromiter(map(token2id.__getitem__, missing), dtype=np.int64, count=len(missing))
            new_ids = [token2id[t] for t in sorted(first_pos, key=first_pos.__getitem__)]  # first-seen order
        else:
            new_ids = []
        vocab = len(token2id)
        doc_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        pairs, pair_counts = np.unique(doc_of * vocab + ids, return_counts=True)
        pair_ids = pairs % vocab
        df = np.bincount(pair_ids, minlength=vocab)
        cf = np.bincount(pair_ids, weights=pair_counts, minlength=vocab).astype(np.int64)
        self.num_docs += len(docs)
        self.num_pos += len(flat)
        self.num_nnz += len(pairs)
        dfs, cfs = self.dfs, self.cfs
        for i in new_ids:
            dfs.setdefault(i, 0)
            cfs.setdefault(i, 0)
        touched = np.flatnonzero(df)
        for i, d, c in zip(touched.tolist(), df[touched].tolist(), cf[touched].tolist()):
            dfs[i] = dfs.get(i, 0) + d
            cfs[i] = cfs.get(i, 0) + c

    def _add_tokens(self, ordered: list[str]) -> None:
        """Give the next free ids to the tokens of ``ordered``, in that order."""
        token2id, id2token = self.token2id, self.id2token
        first = len(token2id)
        token2id.update(zip(ordered, range(first, first + len(ordered))))
        id2token.update(zip(range(first, first + len(ordered)), ordered))

    def doc2bow(self, document: Iterable[str], allow_update: bool = False,
                return_missing: bool = False) -> list[tuple[int, int]] | tuple[list[tuple[int, int]], dict[str, int]]:
        """Convert a tokenised document into bag-of-words ``[(token_id, count), ...]`` sorted by id.

        Parameters
        ----------
        document : list of str
            The tokens of one document.
        allow_update : bool, optional
            Add unknown tokens and update the statistics (as :meth:`add_documents`).
        return_missing : bool, optional
            Also return the tokens that were unknown, with their counts.

        Returns
        -------
        list of (int, int)
            Bag of words; unknown tokens are left out unless ``allow_update``.
        (list of (int, int), dict of (str, int))
            With ``return_missing``: the bag of words and the unknown tokens.

        Raises
        ------
        TypeError
            When ``document`` is a single string instead of a list of tokens.
        """
        tokens = _token_list(document, None)
        try:
            counter = Counter(tokens)
        except TypeError:
            _raise_bad_token([tokens], 0)
        token2id = self.token2id
        missing_tokens = set(counter).difference(token2id)
        if missing_tokens and not all(isinstance(t, str) for t in missing_tokens):
            tokens = [_as_str(t, None) for t in tokens]
            counter = Counter(tokens)
            missing_tokens = set(counter).difference(token2id)
        missing = {t: counter[t] for t in sorted(missing_tokens)} if return_missing else None
        if allow_update:
            self._sync_id2token()
            self._add_tokens(sorted(missing_tokens))
            dfs, cfs = self.dfs, self.cfs
            for t, n in counter.items():
                i = token2id[t]
                dfs[i] = dfs.get(i, 0) + 1
                cfs[i] = cfs.get(i, 0) + n
            self.num_docs += 1
            self.num_pos += len(tokens)
            self.num_nnz += len(counter)
        bow = sorted((token2id[t], n) for t, n in counter.items() if t in token2id)
        if return_missing:
            return bow, missing  # type: ignore[return-value]
        return bow

    def doc2idx(self, document: Iterable[str], unknown_word_index: int = -1) -> list[int]:
        """Convert a tokenised document into the list of its token ids, in order.

        Parameters
        ----------
        document : list of str
        unknown_word_index : int, optional
            Id used for tokens not in the dictionary.

        Raises
        ------
        TypeError
            When ``document`` is a single string instead of a list of tokens.
        """
        get = self.token2id.get
        return [get(t if isinstance(t, str) else _as_str(t, None), unknown_word_index)
                for t in _token_list(document, None)]

    @staticmethod
    def from_corpus(corpus: Iterable[Any], id2word: Mapping[int, str] | None = None) -> "Dictionary":
        """Build a dictionary from a bag-of-words corpus.

        Parameters
        ----------
        corpus : iterable of list of (int, number)
            Any corpus :func:`distlda.corpora.csr.iter_chunks` accepts (lists of
            ``(id, count)``, a Matrix Market or binary corpus, a CSR chunk ...).
        id2word : mapping of (int, str), optional
            Tokens of the ids; without it, the token of id ``i`` is ``str(i)`` for
            every id up to the largest one in the corpus.

        Returns
        -------
        Dictionary
            With ``dfs``, ``cfs``, ``num_docs``, ``num_pos`` and ``num_nnz`` from the corpus.
        """
        result = Dictionary()
        max_id = -1
        num_pos = 0.0
        df = np.zeros(0, dtype=np.int64)
        cf = np.zeros(0, dtype=np.float64)
        for chunk in iter_chunks(corpus, 8192):
            result.num_docs += chunk.n_docs
            result.num_nnz += chunk.nnz
            if chunk.nnz == 0:
                continue
            max_id = max(max_id, chunk.max_id())
            num_pos += float(chunk.counts.sum(dtype=np.float64))
            if max_id >= len(df):
                df = np.concatenate([df, np.zeros(max_id + 1 - len(df), dtype=df.dtype)])
                cf = np.concatenate([cf, np.zeros(max_id + 1 - len(cf), dtype=cf.dtype)])
            df += np.bincount(chunk.ids, minlength=len(df))
            cf += np.bincount(chunk.ids, weights=chunk.counts, minlength=len(cf))
        result.num_pos = _as_number(num_pos)
        if id2word is None:
            result.token2id = {str(i): i for i in range(max_id + 1)}
        else:
            result.token2id = {_as_str(token, None): int(idx) for idx, token in id2word.items()}
        used = np.flatnonzero(df)
        result.dfs = dict(zip(used.tolist(), df[used].tolist()))
        result.cfs = {i: _as_number(c) for i, c in zip(used.tolist(), cf[used].tolist())}
        for idx in result.token2id.values():
            result.dfs.setdefault(idx, 0)
        result._sync_id2token()
        logger.info("built %s from %i documents (total %s corpus positions)", result, result.num_docs, result.num_pos)
        return result

    def merge_with(self, other: Mapping[int, str]) -> "VocabTransform":
        """Add the tokens of ``other`` (a Dictionary or an id-to-token mapping) to this one.

        Known tokens keep their ids, new tokens get new ids; document statistics of
        ``other`` are added when it has them.

        Returns
        -------
        VocabTransform
            Converts documents written with ``other``'s ids to this dictionary's ids:
            ``transform[bow]`` or ``transform[corpus]``.
        """
        self._sync_id2token()
        old2new: dict[int, int] = {}
        other_dfs = getattr(other, "dfs", {})
        other_cfs = getattr(other, "cfs", {})
        for other_id, other_token in other.items():
            new_id = self.token2id.get(other_token)
            if new_id is None:
                new_id = len(self.token2id)
                self.token2id[other_token] = new_id
                self.id2token[new_id] = other_token
                self.dfs[new_id] = 0
            old2new[other_id] = new_id
            if other_id in other_dfs:
                self.dfs[new_id] = self.dfs.get(new_id, 0) + other_dfs[other_id]
            if other_id in other_cfs:
                self.cfs[new_id] = self.cfs.get(new_id, 0) + other_cfs[other_id]
        for attr in ("num_docs", "num_nnz", "num_pos"):
            setattr(self, attr, getattr(self, attr) + getattr(other, attr, 0))
        return VocabTransform(old2new)

    # ------------------------------------------------------------------ filtering

    def filter_extremes(self, no_below: int = 5, no_above: float = 0.5, keep_n: int | None = 100000,
                        keep_tokens: Iterable[str] | None = None) -> None:
        """Keep tokens in at least ``no_below`` documents and at most ``no_above`` of them.

        Parameters
        ----------
        no_below : int, optional
            Minimum document frequency (absolute number of documents).
        no_above : float, optional
            Maximum document frequency, as a fraction of ``num_docs``.
        keep_n : int or None, optional
            Then keep only the ``keep_n`` tokens of highest document frequency
            (``None``: all of them).
        keep_tokens : iterable of str, optional
            Tokens kept whatever their frequency.

        Notes
        -----
        Ids are renumbered afterwards (:meth:`compactify`), so corpora built with
        the old ids must be rebuilt.
        """
        if not isinstance(no_below, (int, float, np.number)) or isinstance(no_below, bool) or no_below < 0:
            raise ValueError(f"no_below must be a non-negative number of documents, got {no_below!r}")
        if not isinstance(no_above, (int, float, np.number)) or not 0 <= no_above <= 1:
            raise ValueError(f"no_above must be a fraction between 0 and 1, got {no_above!r}")
        if keep_n is not None and (not _is_int(keep_n) or keep_n < 0):
            raise ValueError(f"keep_n must be a non-negative integer or None, got {keep_n!r}")
        if isinstance(keep_tokens, str):
            raise TypeError("keep_tokens must be a collection of tokens, not a single string")
        no_above_abs = int(no_above * self.num_docs)
        dfs = self.dfs
        keep_ids = {self.token2id[t] for t in keep_tokens or () if t in self.token2id}
        good = [i for i in self.token2id.values()
                if no_below <= dfs.get(i, 0) <= no_above_abs or i in keep_ids]
        if keep_ids:
            good.sort(key=lambda i: self.num_docs if i in keep_ids else dfs.get(i, 0), reverse=True)
        else:
            good.sort(key=lambda i: dfs.get(i, 0), reverse=True)
        if keep_n is not None:
            good = good[:keep_n]
        logger.info("keeping %i tokens in at least %s documents and at most %i (%s of %i), keep_n=%s",
                    len(good), no_below, no_above_abs, no_above, self.num_docs, keep_n)
        self.filter_tokens(good_ids=good)
        logger.info("resulting dictionary: %s", self)

    def filter_n_most_frequent(self, remove_n: int) -> None:
        """Remove the ``remove_n`` tokens of highest document frequency (ids are renumbered)."""
        if not _is_int(remove_n) or remove_n < 0:
            raise ValueError(f"remove_n must be a non-negative integer, got {remove_n!r}")
        dfs = self.dfs
        by_df = sorted(self.token2id.values(), key=lambda i: dfs.get(i, 0), reverse=True)
        removed = by_df[:remove_n]
        logger.info("removing the %i most frequent tokens", len(removed))
        self.filter_tokens(bad_ids=removed)

    def filter_tokens(self, bad_ids: Iterable[int] | None = None, good_ids: Iterable[int] | None = None) -> None:
        """Remove the ids in ``bad_ids`` and/or keep only those in ``good_ids``, then :meth:`compactify`."""
        if bad_ids is not None:
            bad = set(bad_ids)
            self.token2id = {t: i for t, i in self.token2id.items() if i not in bad}
            self.dfs = {i: n for i, n in self.dfs.items() if i not in bad}
            self.cfs = {i: n for i, n in self.cfs.items() if i not in bad}
        if good_ids is not None:
            good = set(good_ids)
            self.token2id = {t: i for t, i in self.token2id.items() if i in good}
            self.dfs = {i: n for i, n in self.dfs.items() if i in good}
            self.cfs = {i: n for i, n in self.cfs.items() if i in good}
        self.compactify()

    def compactify(self) -> None:
        """Renumber ids to ``0 .. len(self) - 1``, keeping their relative order."""
        idmap = {old: new for new, old in enumerate(sorted(self.token2id.values()))}
        self.token2id = {t: idmap[i] for t, i in self.token2id.items()}
        self.id2token = {i: t for t, i in self.token2id.items()}
        self.dfs = {idmap[i]: n for i, n in self.dfs.items() if i in idmap}
        self.cfs = {idmap[i]: n for i, n in self.cfs.items() if i in idmap}

    def patch_with_special_tokens(self, special_token_dict: Mapping[str, int]) -> None:
        """Give the tokens of ``special_token_dict`` the ids it names; displaced tokens get other ids."""
        self._sync_id2token()
        spare: list[int] = []
        for token, idx in special_token_dict.items():
            if self.token2id.get(token) == idx:
                continue
            if token in self.token2id:
                spare.append(self.token2id.pop(token))
            old_token = self.id2token[idx]
            self.token2id[token] = idx
            self.token2id[old_token] = spare.pop() if spare else len(self.token2id) - 1
            self.id2token = {i: t for t, i in self.token2id.items()}
        self.id2token = {i: t for t, i in self.token2id.items()}

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        """The ``n`` tokens of highest collection frequency (all when ``None``), ties by id."""
        ranked = sorted(self.cfs.items(), key=lambda item: (-item[1], item[0]))[:n]
        return [(self[i], c) for i, c in ranked]

    # ------------------------------------------------------------------ persistence

    def save(self, fname: str | os.PathLike) -> None:
        """Save to ``fname`` as a distlda container (no pickle); read back with :meth:`load`."""
        meta, arrays = self._to_arrays()
        write_container(fname, _KIND, meta, arrays)
        logger.info("saved %s to %s", self, fname)

    @classmethod
    def load(cls, fname: str | os.PathLike, mmap: str | None = None) -> "Dictionary":
        """Load a dictionary written by :meth:`save`.

        Parameters
        ----------
        fname : str or path-like
        mmap : None
            Accepted for compatibility with gensim's signature; ignored.

        Raises
        ------
        ValueError
            When the file is not a saved distlda Dictionary (gensim's pickled
            dictionaries are not read, for safety: convert them with
            :meth:`save_as_text` in gensim and :meth:`load_from_text` here).
        """
        try:
            meta, arrays = read_container(fname, kind=_KIND)
        except ContainerError as exc:
            raise ValueError(f"cannot load a Dictionary: {exc}. Pickled gensim dictionaries are not "
                             "read; save them with save_as_text and use Dictionary.load_from_text") from None
        try:
            return cls._from_arrays(meta, arrays)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{fname}: not a valid saved Dictionary ({exc})") from None

    def _to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON metadata and numeric arrays holding the whole dictionary (also used inside model files)."""
        return dictionary_io.to_arrays(self)

    @classmethod
    def _from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "Dictionary":
        """Inverse of :meth:`_to_arrays`."""
        return dictionary_io.from_arrays(cls(), meta, arrays)

    def save_as_text(self, fname: str | os.PathLike, sort_by_word: bool = True) -> None:
        """Write gensim's text format: ``num_docs``, then ``id<TAB>token<TAB>docfreq`` lines.

        Parameters
        ----------
        fname : str or path-like
        sort_by_word : bool, optional
            Lines sorted by token (gensim's default); otherwise by decreasing
            document frequency. The file is byte-for-byte what gensim writes.
        """
        dictionary_io.write_text(self, fname, sort_by_word)

    @staticmethod
    def load_from_text(fname: str | os.PathLike) -> "Dictionary":
        """Read a dictionary written by :meth:`save_as_text` (or by gensim's).

        Raises
        ------
        ValueError
            On a line that is not ``id<TAB>token<TAB>docfreq`` with integer id and
            frequency, or on a token defined twice; the message names file and line.
        """
        return dictionary_io.read_text(Dictionary(), fname)


class VocabTransform:
    """Re-number the ids of bag-of-words documents (returned by :meth:`Dictionary.merge_with`).

    Parameters
    ----------
    old2new : dict of (int, int)
        Old id to new id; entries whose id is not in it are dropped.
    """

    def __init__(self, old2new: Mapping[int, int]):
        self.old2new = dict(old2new)

    def __getitem__(self, bow: Any) -> Any:
        """Transform one document (result sorted by id), or lazily a whole corpus."""
        if isinstance(bow, (list, tuple)) and (not bow or _is_entry(bow[0])):
            old2new = self.old2new
            return sorted((old2new[i], w) for i, w in bow if i in old2new)
        return _TransformedCorpus(self, bow)


class _TransformedCorpus:
    """A corpus seen through a :class:`VocabTransform`, re-iterable like the corpus itself."""

    def __init__(self, transform: VocabTransform, corpus: Iterable[Any]):
        self.transform, self.corpus = transform, corpus

    def __iter__(self) -> Iterator[list[tuple[int, Any]]]:
        for doc in self.corpus:
            yield self.transform[list(doc)]

    def __len__(self) -> int:
        return len(self.corpus)  # type: ignore[arg-type]


def _is_entry(obj: Any) -> bool:
    """Whether ``obj`` looks like one ``(id, weight)`` entry rather than a document."""
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], (int, np.integer))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _as_number(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def _token_list(document: Any, docno: int | None) -> list[Any]:
    """The tokens of one document as a list, with a clear error for what is not a document."""
    where = "" if docno is None else f"document {docno}: "
    if isinstance(document, str):
        raise TypeError(f"{where}expected a list of tokens, not a single string (split or tokenize it first)")
    if isinstance(document, (bytes, bytearray)) or document is None or not isinstance(document, Iterable):
        raise TypeError(f"{where}expected a list of str tokens, got {type(document).__name__}")
    return list(document)


def _raise_bad_token(docs: list[list[Any]], docno: int) -> None:
    """Find the first token that cannot be a dictionary key and raise a TypeError naming it."""
    for i, doc in enumerate(docs):
        for token in doc:
            try:
                hash(token)
            except TypeError:
                raise TypeError(f"document {docno + i}: token {token!r} is a {type(token).__name__}, "
                                "expected str") from None
    raise TypeError("tokens must be str")


def _as_str(token: Any, docno: int | None) -> str:
    if isinstance(token, str):
        return token
    if isinstance(token, (bytes, bytearray)):
        return bytes(token).decode("utf-8")
    where = "" if docno is None else f"document {docno}: "
    raise TypeError(f"{where}token {token!r} is a {type(token).__name__}, expected str")
