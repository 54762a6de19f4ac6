"""A mapping between tokens and integer ids, with document statistics, compatible with gensim 4.

:class:`Dictionary` has the public surface of ``gensim.corpora.Dictionary``: the same
constructor, methods and attributes, and it gives the same token ids, document
frequencies and filtering results on the same input, so a gensim user only changes
the import. It saves to a distlda container (no pickle) and reads and writes
gensim's plain-text dictionary format.

The class is built from three modules: this one (the mapping, building it from
documents, conversion of documents), :mod:`~distlda.corpora.dictionary_edit`
(filtering, renumbering, merging) and :mod:`~distlda.corpora.dictionary_io`
(storage formats).
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
from distlda.corpora.dictionary_edit import VocabTransform, VocabularyEditsMixin, is_int
from distlda.corpora.text import iter_batches
from distlda.io.container import ContainerError, read_container, write_container

__all__ = ["Dictionary", "VocabTransform"]

logger = logging.getLogger(__name__)

_KIND = "distlda.Dictionary"
_BATCH_DOCS = 10000  # add_documents counts this many documents at once (and checks pruning between)


class Dictionary(VocabularyEditsMixin, Mapping):
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

    def iteritems(self) -> Iterator[tuple[int, str]]:
        """``(id, token)`` pairs, as an iterator (gensim keeps Python 2's name)."""
        return iter(self.items())

    def iterkeys(self) -> Iterator[int]:
        """The token ids, as an iterator (gensim keeps Python 2's name)."""
        return iter(self.keys())

    def itervalues(self) -> Iterator[str]:
        """The tokens in id order of :meth:`keys`, as an iterator (gensim keeps Python 2's name)."""
        return iter(self.values())

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
        if prune_at is not None and (not is_int(prune_at) or prune_at < 0):
            raise ValueError(f"prune_at must be a non-negative integer or None, got {prune_at!r}")
        self._sync_id2token()
        docno = 0
        for batch in iter_batches(documents, _BATCH_DOCS):
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

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        """The ``n`` tokens of highest collection frequency (all when ``None``), ties by id."""
        ranked = sorted(self.cfs.items(), key=lambda item: (-item[1], item[0]))[:n]
        return [(self[i], c) for i, c in ranked]

    # ------------------------------------------------------------------ persistence

    def save(self, fname: str | os.PathLike, separately: Any = None, sep_limit: int = 10 * 1024 ** 2,
             ignore: Any = frozenset(), pickle_protocol: int = 4) -> None:
        """Save to ``fname`` as a distlda container (no pickle); read back with :meth:`load`.

        Parameters
        ----------
        fname : str or path-like
        separately, sep_limit, ignore, pickle_protocol : optional
            gensim's ``SaveLoad.save`` arguments, accepted so that gensim code runs
            unchanged. They have no meaning here: the container is one file of
            arrays and JSON, and no attribute is pickled.
        """
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
