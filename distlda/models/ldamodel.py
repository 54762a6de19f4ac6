"""LdaModel: online variational Bayes LDA (Hoffman, Blei & Bach 2010) with gensim 4's interface.

This module holds the model's construction, its arrays and gensim's E- and M-step
methods. Training (``update``, ``resume``, the E-step backends) lives in
:mod:`distlda.models.training` over the loop of :mod:`distlda.core.training`; the
parameters in the table of :mod:`distlda.models.parameters`; inspection in
:mod:`distlda.models.topics` and :mod:`distlda.models.documents`; persistence in
:mod:`distlda.models.persistence`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from distlda.core.estep import resolve_threads
from distlda.core.memory import available_memory, describe, estimate_training_memory
from distlda.core.mstep import alpha_step, eta_step
from distlda.validation import check_dtype, check_int, num_terms_of
from distlda.kernels.mstep import topic_expectations
from distlda.kernels.rng import seed_from_random_state
from distlda.kernels.special import dirichlet_expectation
from distlda.models import persistence
from distlda.models.callbacks import Callback, Metric
from distlda.models.documents import DocumentQueriesMixin
from distlda.models.ldastate import LdaState
from distlda.models.parameters import checked_parameters, checked_prior
from distlda.models.topics import TopicQueriesMixin
from distlda.models.training import TrainingMixin

logger = logging.getLogger(__name__)

__all__ = ["LdaModel"]


class LdaModel(TrainingMixin, TopicQueriesMixin, DocumentQueriesMixin):
    """Latent Dirichlet Allocation trained by online variational Bayes.

    The constructor and methods are those of gensim 4's ``LdaModel``; a gensim
    user changes the import. Training runs a compiled, multi-threaded E-step; with
    ``distributed=True`` the E-step runs on a cluster of workers (see
    ``docs/distributed.md``) and gives the same model as a local run.

    Parameters
    ----------
    corpus : iterable of bag-of-words, optional
        Training documents (lists of ``(term_id, count)``, a Matrix Market or
        binary corpus, or a scipy sparse matrix with one row per document). If
        given, the model is trained on it at once. Must be re-iterable.
    num_topics : int
        Number of topics K.
    id2word : Dictionary or mapping of int to str, optional
        Vocabulary; without it the vocabulary is the set of ids in ``corpus``.
    distributed : bool or distributed.Client
        ``True``: run the E-step on distlda's Pyro5 cluster (a name server, a dispatcher and workers, found
        through ``ns_conf``). A ``distributed.Client``: run it on that Dask cluster (``pip install
        'distlda[dask]'``; ``ns_conf`` is then unused), with the same model as a local run.
    chunksize : int
        Documents per chunk; a mini-batch is ``update_every`` chunks.
    passes : int
        Passes over the corpus.
    update_every : int
        Chunks per M-step; 0 for batch learning (one M-step per pass).
    alpha : {'symmetric', 'asymmetric', 'auto'}, None, float or array of K floats
        Document-topic prior; 'auto' learns it; None is 'symmetric'. A wrong shape
        raises :class:`~distlda.models.parameters.PriorShapeError` (a ValueError and,
        as gensim's, an AssertionError); so does an ``eta`` of the wrong shape.
    eta : {None, 'symmetric', 'auto'}, float, array of V or K × V floats
        Topic-word prior; 'auto' learns it (and, unlike gensim, the topics use it).
    decay : float in (0, 1]
        κ: how fast old statistics are forgotten.
    offset : float > 0
        τ₀: slows down the first updates.
    eval_every : int or None
        Log the perplexity of every ``eval_every``-th chunk (0 or None: never; it costs time).
    iterations : int
        Maximum fixed-point iterations per document in the E-step.
    gamma_threshold : float
        E-step convergence threshold on the mean change of γ.
    minimum_probability : float
        Topics below this are left out of document results.
    random_state : None, int, numpy RandomState or Generator
        Seed of every random draw; the same seed gives the same model. Assigning
        :attr:`random_state` later re-seeds what follows (training and queries), as in gensim.
    ns_conf : dict, optional
        How to reach the cluster's name server (``host``, ``port``, ``hmac_key``...).
    minimum_phi_value : float
        With ``per_word_topics``, word-topic weights below this are left out.
    per_word_topics : bool
        ``model[bow]`` also returns per-word topics.
    callbacks : list of Metric, optional
        Evaluated after each pass; values in ``self.metrics``.
    dtype : numpy.float32 or numpy.float64
        Precision of all model arrays and of the E-step.
    threads : int, optional
        Threads for local E-steps (default: all cores).
    progress : bool, optional
        Show a progress bar while training (default: only on a terminal).
    checkpoint_path : str, optional
        Save the model, with its training progress, to this file during training
        (atomically: written aside, then renamed). Resume with
        ``LdaModel.load(checkpoint_path).resume(corpus)``.
    checkpoint_every : int, optional
        M-steps between checkpoints (default 10 when ``checkpoint_path`` is given).
    memory_check : bool
        Refuse (MemoryError), before allocating, a model whose estimated training memory exceeds what this
        machine has available (default); False to try anyway.
    init : {'anchors', 'gensim'}
        Initial topics. 'anchors' (default): from the training corpus given here, by anchor words
        (:mod:`distlda.core.init`; two extra reads of the corpus, or of a sample of 250,000 documents spread
        over a longer one), which gives topics much closer to the
        truth than random ones (see ``docs/benchmarks.md``); without a corpus here, random topics as 'gensim'.
        'gensim': random topics drawn as gensim does, for results comparable with gensim's.
    mstep : {'dense', 'lazy'}
        'dense' (default): every M-step updates every row of the statistics and of exp(E[log β]).
        'lazy': only the rows of the words a mini-batch touches, so an M-step costs O(K × touched words) instead
        of O(K × V) — for large vocabularies (see docs/architecture.md); the model equals the dense one to float
        tolerance, and a cluster's equals a local run's bitwise. Not with ``eta='auto'`` (which needs every
        row each step) nor on Dask yet: those run dense.
    """

    def __init__(self, corpus: Any = None, num_topics: int = 100, id2word: Any = None,
                 distributed: Any = False, chunksize: int = 2000, passes: int = 1, update_every: int = 1,
                 alpha: Any = "symmetric", eta: Any = None, decay: float = 0.5, offset: float = 1.0,
                 eval_every: int | None = 10, iterations: int = 50, gamma_threshold: float = 0.001,
                 minimum_probability: float = 0.01, random_state: Any = None, ns_conf: dict | None = None,
                 minimum_phi_value: float = 0.01, per_word_topics: bool = False,
                 callbacks: Sequence[Metric] | None = None, dtype: Any = np.float32,
                 threads: int | None = None, progress: bool | None = None,
                 checkpoint_path: str | None = None, checkpoint_every: int | None = None,
                 memory_check: bool = True, init: str = "anchors", mstep: str = "dense") -> None:
        self.dtype = check_dtype(dtype)
        for name, value in checked_parameters(locals()).items():
            setattr(self, name, value)
        self.threads = resolve_threads(threads)
        self.progress = progress
        self.checkpoint_path = None if checkpoint_path is None else str(checkpoint_path)
        self.checkpoint_every = check_int("checkpoint_every", 10 if checkpoint_every is None else checkpoint_every, 1)
        self._training = None  # the TrainingRun of the last update(), kept for resume()
        self._trainer = None  # the Trainer while update() runs
        self.training_stats: dict[str, float] = {}
        self.info: dict[str, Any] = {}  # free-form, JSON-serialisable notes saved with the model
        from distlda.dask import is_dask_client

        self.dask_client = distributed if is_dask_client(distributed) else None  # not saved with the model
        if self.dask_client is None and not isinstance(distributed, (bool, int, np.bool_)):
            raise TypeError(f"distributed must be True or False (distlda's Pyro5 cluster) or a dask "
                            f"distributed.Client, got {type(distributed).__name__} {distributed!r}; for Dask: "
                            "distributed=Client('tcp://HOST:8786')")
        self.distributed = self.dask_client is not None or bool(distributed)
        self.ns_conf = dict(ns_conf or {})
        if self.distributed and self.dask_client is None:
            from distlda.cluster.naming import NsConf

            NsConf.from_mapping(self.ns_conf)  # validates the keys before any training
        if callbacks is not None:
            Callback(callbacks)  # validates the list
        self.callbacks = list(callbacks) if callbacks else None
        self.metrics: dict[str, list[Any]] = defaultdict(list)

        if corpus is None and id2word is None:
            raise ValueError("at least one of corpus or id2word must be given, to know the vocabulary")
        if id2word is None:
            id2word = persistence.id2word_from_corpus(corpus)
        self.id2word = id2word
        self.num_terms = num_terms_of(id2word)
        if self.num_terms == 0:
            raise ValueError("cannot train LDA over an empty vocabulary (id2word has no terms)")

        self._seed = seed_from_random_state(random_state)
        self._random_state = np.random.RandomState(self._seed % (2**32))
        self.alpha, self.optimize_alpha = self.init_dir_prior(alpha, "alpha")
        eta_arr, self.optimize_eta = self.init_dir_prior(eta, "eta")
        if memory_check:
            _check_memory(self.num_topics, self.num_terms, self.dtype, self.threads, self.chunksize)
        self.state = LdaState(eta_arr, (self.num_topics, self.num_terms), dtype=self.dtype)
        _random_topics(self.state.sstats, self._seed)
        # the anchor-word topics join the noise (which breaks ties between topics) with the first training corpus:
        # in update(), so LdaModel(corpus) and LdaModel().update(corpus) start alike
        self._init_pending = self.init == "anchors"
        self.num_updates = 0
        self.numworkers = 1
        self.dispatcher: Any = None
        self._expElogbeta_wm: np.ndarray | None = None
        self.sync_state()

        if self.distributed:
            self._connect_cluster()
        if corpus is not None:
            started = time.perf_counter()
            self.update(corpus)
            logger.info("trained %s in %.2fs", self, time.perf_counter() - started)

    # ------------------------------------------------------------------ state

    @property
    def random_state(self) -> np.random.RandomState:
        """The model's random state, as gensim's attribute.

        Every random draw of training and of document queries comes from the model's
        seed; assigning a RandomState, a Generator or an int here sets that seed (drawn
        from the given state), so two models given equal states continue identically.
        """
        return self._random_state

    @random_state.setter
    def random_state(self, value: Any) -> None:
        self._seed = seed_from_random_state(value)
        self._random_state = value if isinstance(value, np.random.RandomState) else \
            np.random.RandomState(self._seed % (2**32))

    @property
    def eta(self) -> np.ndarray:
        """The topic-word prior (held by the state, so a learned eta reaches the topics)."""
        return self.state.eta

    @eta.setter
    def eta(self, value: np.ndarray) -> None:
        self.state.eta = np.asarray(value).astype(self.dtype, copy=False)

    @property
    def expElogbeta(self) -> np.ndarray:
        """exp(E[log β]) as (K, V): a view of the word-major array the kernels read."""
        if self._expElogbeta_wm is None:
            return None  # type: ignore[return-value]
        return self.expElogbeta_wm.T

    @expElogbeta.setter
    def expElogbeta(self, value: np.ndarray | None) -> None:
        self._expElogbeta_wm = None if value is None else np.ascontiguousarray(np.asarray(value).T, dtype=self.dtype)

    @property
    def expElogbeta_wm(self) -> np.ndarray:
        """exp(E[log β]) word-major (V × K), as the kernels read it: the array :attr:`expElogbeta` views."""
        if self._expElogbeta_wm is None:
            raise RuntimeError("the model has no topics (was clear() called?)")
        lazy = getattr(self.state, "lazy", None)
        if lazy is not None:  # during a lazy training run: exact, materialised (the run's own rows lag)
            return lazy.materialised()[1]
        return self._expElogbeta_wm

    def sync_state(self, current_Elogbeta: np.ndarray | None = None) -> None:
        """Recompute exp(E[log β]) from the state (or from a given E[log β], K × V)."""
        if current_Elogbeta is not None:
            self.expElogbeta = np.exp(np.asarray(current_Elogbeta, dtype=self.dtype))
            return
        if getattr(self.state, "lazy", None) is not None:
            return  # a lazy training run keeps them, and reads see them materialised
        if self._expElogbeta_wm is None or not self._expElogbeta_wm.flags.writeable:
            self._expElogbeta_wm = np.empty((self.num_terms, self.num_topics), dtype=self.dtype)
        topic_expectations(self.state.sstats_wm, self.state.eta_wm(), self._expElogbeta_wm)

    def clear(self) -> None:
        """Drop the state and the topic expectations to free memory (the model can no longer be queried)."""
        self.state = None  # type: ignore[assignment]
        self._expElogbeta_wm = None

    def init_dir_prior(self, prior: Any, name: str) -> tuple[np.ndarray, bool]:
        """Initial value of the prior ``name`` ('alpha' or 'eta') and whether it is learned."""
        return checked_prior(name, prior, self.num_topics, self.num_terms, self.dtype)

    def get_topics(self) -> np.ndarray:
        """Topic-word probabilities (K × V), each row λ_k / Σ λ_k."""
        lam = self.state.get_lambda()
        return lam / lam.sum(axis=1, keepdims=True)

    # ---------------------------------------------------------- E and M steps

    def do_estep(self, chunk: Any, state: LdaState | None = None) -> np.ndarray:
        """Infer γ for a chunk and add its statistics to ``state`` (default: the model's)."""
        if state is None:
            state = self.state
        gamma, sstats = self.inference(chunk, collect_sstats=True)
        state.sstats += sstats
        state.numdocs += gamma.shape[0]
        return gamma

    def update_alpha(self, gammat: np.ndarray, rho: float) -> np.ndarray:
        """One Newton step of alpha given the γ of a batch of documents (the training loop's own step)."""
        gammat = np.asarray(gammat, dtype=np.float64)
        self.alpha = alpha_step(self.alpha, gammat.shape[0], dirichlet_expectation(gammat).sum(axis=0), rho)
        logger.debug("optimized alpha %s", self.alpha)
        return self.alpha

    def update_eta(self, lambdat: np.ndarray, rho: float) -> np.ndarray:
        """One Newton step of eta given λ (K × V); the new eta is the state's, so the topics use it."""
        self.eta = eta_step(self.state.eta, lambdat, rho)
        return self.eta

    def do_mstep(self, rho: float, other: LdaState, extra_pass: bool = False) -> None:
        """Blend a batch's statistics (``other``) into the model with weight ``rho``.

        Parameters
        ----------
        rho : float
            Learning rate of this update.
        other : LdaState
            The batch's statistics and document count.
        extra_pass : bool
            True after the first pass (the update does not count towards the learning-rate schedule).
        """
        self._ensure_writable()
        self.state.blend(rho, other)
        if self.optimize_eta:
            self.update_eta(self.state.get_lambda(), rho)
        self.sync_state()
        if logger.isEnabledFor(logging.DEBUG):
            self.print_topics(5)
        if not extra_pass:
            self.num_updates += other.numdocs

    def _ensure_writable(self) -> None:
        """Copy memory-mapped read-only arrays before training changes them."""
        if not self.state.sstats_wm.flags.writeable:
            self.state.sstats_wm = np.array(self.state.sstats_wm)
        if not self.state.eta.flags.writeable:
            self.state.eta = np.array(self.state.eta)
        if not self.alpha.flags.writeable:
            self.alpha = np.array(self.alpha)
        if self._expElogbeta_wm is not None and not self._expElogbeta_wm.flags.writeable:
            self._expElogbeta_wm = np.array(self._expElogbeta_wm)

    # ------------------------------------------------------------ persistence

    def save(self, fname: str, ignore: str | Sequence[str] = ("state", "dispatcher"), separately: Any = None,
             sep_limit: int = 10 * 1024**2, pickle_protocol: int = 4) -> None:
        """Save the model to one file (no pickle); its arrays can be memory-mapped on load.

        Parameters
        ----------
        fname : str or path-like
            A name ending in ``.gz`` or ``.bz2`` compresses the file (it then cannot be memory-mapped).
        ignore : str or list of str
            Attributes left out, as in gensim: ``'id2word'`` (loaded as None),
            ``'expElogbeta'`` (recomputed on load), ``'metrics'``, ``'info'``;
            ``'state'``, ``'dispatcher'`` and ``'callbacks'`` are accepted and, as in gensim, change
            nothing (the state is always saved, the others never).
        separately, sep_limit, pickle_protocol
            gensim's options for pickled files; accepted, no effect: every array of the file is
            stored apart from the JSON header and can be memory-mapped.
        """
        persistence.save_model(self, fname, ignore=ignore)

    @classmethod
    def load(cls, fname: str, *args: Any, mmap: str | None = None, verify: bool | None = None,
             **kwargs: Any) -> "LdaModel":
        """Load a model saved by :meth:`save`; ``mmap='r'`` maps the large arrays read-only.

        A compressed file (``.gz``, ``.bz2``) is read into memory; asking to map it is an
        OSError, as in gensim. Files pickled by gensim are never read (use :meth:`from_gensim`).

        Every part of the file is checked against its checksum; memory-mapped arrays
        only with ``verify=True`` (reading them all). A loaded model trains locally;
        set ``distributed`` and call ``connect_cluster`` to train it on a cluster again.
        """
        if args and mmap is None:
            mmap = args[0]
        return persistence.load_model(cls, fname, mmap=mmap, verify=verify)

    @classmethod
    def from_gensim(cls, model: Any, random_state: Any = None, memory_check: bool = True) -> "LdaModel":
        """A distlda model with the topics, priors and settings of a gensim ``LdaModel`` object.

        See :func:`distlda.models.persistence.model_from_gensim`; files pickled by gensim can be
        converted with ``distlda convert-gensim MODEL OUT``.
        """
        return persistence.model_from_gensim(cls, model, random_state=random_state, memory_check=memory_check)

    def __str__(self) -> str:
        return (f"{type(self).__name__}<num_terms={self.num_terms}, num_topics={self.num_topics}, "
                f"decay={self.decay}, chunksize={self.chunksize}>")


def _random_topics(sstats: np.ndarray, seed: int) -> None:
    """Fill ``sstats`` (K × V) with gensim's random start, Gamma(100, 1/100) noise, a block of topics at a time:
    the same draws as one call (the generator fills arrays in order) without a K × V float64 temporary."""
    draws = np.random.Generator(np.random.PCG64(seed ^ 0x1A5F0C3D))
    rows = max(1, (1 << 24) // max(1, sstats.shape[1]))  # about 128 MB of float64 at a time
    for start in range(0, sstats.shape[0], rows):
        stop = min(sstats.shape[0], start + rows)
        sstats[start:stop] = draws.gamma(100.0, 1.0 / 100.0, (stop - start, sstats.shape[1]))


def _check_memory(num_topics: int, num_terms: int, dtype: np.dtype, threads: int, chunksize: int) -> None:
    """MemoryError, before anything K × V is allocated, for a model this machine cannot train (it would be
    killed by the out-of-memory killer without a word)."""
    estimate = estimate_training_memory(num_topics, num_terms, dtype, threads=threads, chunksize=chunksize)
    available = available_memory()
    if available is not None and estimate.total > available:
        raise MemoryError(f"LdaModel: {num_topics} topics over {num_terms} terms need about {describe(estimate)}, "
                          f"but {available / 1e9:.1f} GB is available: use fewer topics or a smaller vocabulary "
                          "(Dictionary.filter_extremes)")
