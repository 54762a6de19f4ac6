"""LdaModel: online variational Bayes LDA (Hoffman, Blei & Bach 2010) with gensim 4's interface.

This module holds the model's parameters and the training schedule: mini-batches
of ``update_every × chunksize`` documents, each an E-step (local threads or a
cluster of workers, through one backend interface) followed by an M-step on the
client. Inspection lives in :mod:`distlda.models.topics` and
:mod:`distlda.models.documents`, persistence in :mod:`distlda.models.persistence`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from distlda.models import persistence
from distlda.models.callbacks import Callback, Metric
from distlda.models.documents import DocumentQueriesMixin
from distlda.core.estep import (
    BatchStats,
    EStepBackend,
    EStepParams,
    LocalEStep,
    kernel_threads,
    resolve_threads,
)
from distlda.models.ldastate import LdaState
from distlda.kernels.mstep import topic_expectations
from distlda.core.validation import check_dtype, check_float, check_int, num_terms_of
from distlda.core.priors import dirichlet_newton_step, init_alpha, init_eta
from distlda.kernels.rng import seed_from_random_state
from distlda.core.training import TrainingRun, run_training
from distlda.kernels.special import dirichlet_expectation
from distlda.models.topics import TopicQueriesMixin
from distlda.core.mstep import ModelArrays, MStepPlan, apply_mstep, eta_wm, plan_mstep

logger = logging.getLogger(__name__)

__all__ = ["LdaModel"]


@dataclass
class _Snapshot:
    """What an update() may change, kept to restore the model when the input turns out bad."""

    sstats: np.ndarray
    eta: np.ndarray
    alpha: np.ndarray
    numdocs: float
    num_updates: int


class LdaModel(TopicQueriesMixin, DocumentQueriesMixin):
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
    distributed : bool
        Run the E-step on a cluster (a name server, a dispatcher and workers).
    chunksize : int
        Documents per chunk; a mini-batch is ``update_every`` chunks.
    passes : int
        Passes over the corpus.
    update_every : int
        Chunks per M-step; 0 for batch learning (one M-step per pass).
    alpha : {'symmetric', 'asymmetric', 'auto'}, float or array of K floats
        Document-topic prior; 'auto' learns it.
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
        Seed of every random draw; the same seed gives the same model.
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
    """

    def __init__(self, corpus: Any = None, num_topics: int = 100, id2word: Any = None,
                 distributed: bool = False, chunksize: int = 2000, passes: int = 1, update_every: int = 1,
                 alpha: Any = "symmetric", eta: Any = None, decay: float = 0.5, offset: float = 1.0,
                 eval_every: int | None = 10, iterations: int = 50, gamma_threshold: float = 0.001,
                 minimum_probability: float = 0.01, random_state: Any = None, ns_conf: dict | None = None,
                 minimum_phi_value: float = 0.01, per_word_topics: bool = False,
                 callbacks: Sequence[Metric] | None = None, dtype: Any = np.float32,
                 threads: int | None = None, progress: bool | None = None,
                 checkpoint_path: str | None = None, checkpoint_every: int | None = None) -> None:
        self.dtype = check_dtype(dtype)
        self.num_topics = check_int("num_topics", num_topics, 1)
        self.chunksize = check_int("chunksize", chunksize, 1)
        self.passes = check_int("passes", passes, 1)
        self.update_every = check_int("update_every", update_every, 0)
        self.eval_every = check_int("eval_every", eval_every, 0, allow_none=True)
        self.iterations = check_int("iterations", iterations, 1)
        self.decay = check_float("decay", decay, 0.0, 1.0, low_open=True)
        self.offset = check_float("offset", offset, 0.0, low_open=True)
        self.gamma_threshold = check_float("gamma_threshold", gamma_threshold, 0.0)
        self.minimum_probability = check_float("minimum_probability", minimum_probability, 0.0, 1.0)
        self.minimum_phi_value = check_float("minimum_phi_value", minimum_phi_value, 0.0, 1.0)
        self.per_word_topics = bool(per_word_topics)
        self.threads = resolve_threads(threads)
        self.progress = progress
        self.checkpoint_path = None if checkpoint_path is None else str(checkpoint_path)
        self.checkpoint_every = check_int("checkpoint_every", 10 if checkpoint_every is None else checkpoint_every, 1)
        self._training: TrainingRun | None = None
        self.training_stats: dict[str, float] = {}
        self.info: dict[str, Any] = {}  # free-form, JSON-serialisable notes saved with the model
        self.distributed = bool(distributed)
        self.ns_conf = dict(ns_conf or {})
        if self.distributed:
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
        self.random_state = np.random.RandomState(self._seed % (2**32))
        self.alpha, self.optimize_alpha = init_alpha(alpha, self.num_topics, self.dtype)
        eta_arr, self.optimize_eta = init_eta(eta, self.num_topics, self.num_terms, self.dtype)
        self.state = LdaState(eta_arr, (self.num_topics, self.num_terms), dtype=self.dtype)
        init = np.random.Generator(np.random.PCG64(self._seed ^ 0x1A5F0C3D))
        self.state.sstats[...] = init.gamma(100.0, 1.0 / 100.0, (self.num_topics, self.num_terms))
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
    def eta(self) -> np.ndarray:
        """The topic-word prior (held by the state, so a learned eta reaches the topics)."""
        return self.state.eta

    @eta.setter
    def eta(self, value: np.ndarray) -> None:
        self.state.eta = np.asarray(value).astype(self.dtype, copy=False)

    @property
    def expElogbeta(self) -> np.ndarray:
        """exp(E[log β]) as (K, V): a view of the word-major array the kernels read."""
        return self._expElogbeta_wm.T if self._expElogbeta_wm is not None else None  # type: ignore[return-value]

    @expElogbeta.setter
    def expElogbeta(self, value: np.ndarray | None) -> None:
        self._expElogbeta_wm = None if value is None else np.ascontiguousarray(np.asarray(value).T, dtype=self.dtype)

    @property
    def expElogbeta_wm(self) -> np.ndarray:
        """exp(E[log β]) word-major (V × K), as the kernels read it: the array :attr:`expElogbeta` views."""
        if self._expElogbeta_wm is None:
            raise RuntimeError("the model has no topics (was clear() called?)")
        return self._expElogbeta_wm

    def sync_state(self, current_Elogbeta: np.ndarray | None = None) -> None:
        """Recompute exp(E[log β]) from the state (or from a given E[log β], K × V)."""
        if current_Elogbeta is not None:
            self.expElogbeta = np.exp(np.asarray(current_Elogbeta, dtype=self.dtype))
            return
        if self._expElogbeta_wm is None or not self._expElogbeta_wm.flags.writeable:
            self._expElogbeta_wm = np.empty((self.num_terms, self.num_topics), dtype=self.dtype)
        topic_expectations(self.state.sstats_wm, self.state.eta_wm(), self._expElogbeta_wm)

    def clear(self) -> None:
        """Drop the state and the topic expectations to free memory (the model can no longer be queried)."""
        self.state = None  # type: ignore[assignment]
        self._expElogbeta_wm = None

    def init_dir_prior(self, prior: Any, name: str) -> tuple[np.ndarray, bool]:
        """Initial value of the prior ``name`` ('alpha' or 'eta') and whether it is learned."""
        if name == "alpha":
            return init_alpha(prior, self.num_topics, self.dtype)
        if name == "eta":
            return init_eta(prior, self.num_topics, self.num_terms, self.dtype)
        raise ValueError(f"name must be 'alpha' or 'eta', got {name!r}")

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
        """One Newton step of alpha given the γ of a batch of documents."""
        gammat = np.asarray(gammat, dtype=np.float64)
        logphat = dirichlet_expectation(gammat).sum(axis=0)
        return self._alpha_step(gammat.shape[0], logphat, rho)

    def _alpha_step(self, n: int, elogtheta_sum: np.ndarray, rho: float) -> np.ndarray:
        if n > 0:
            self.alpha = dirichlet_newton_step(self.alpha, float(n), elogtheta_sum / n, rho)
            logger.debug("optimized alpha %s", self.alpha)
        return self.alpha

    def update_eta(self, lambdat: np.ndarray, rho: float) -> np.ndarray:
        """One Newton step of eta given λ; the new eta is the state's, so the topics use it."""
        if self.state.eta.ndim != 1:
            raise ValueError("eta can only be learned when it is one value per word (shape (V,))")
        logphat = dirichlet_expectation(np.asarray(lambdat, dtype=np.float64)).sum(axis=0) / self.num_topics
        self.eta = dirichlet_newton_step(self.state.eta, float(self.num_topics), logphat, rho)
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
        self._after_blend(rho, other.numdocs, extra_pass)

    def _after_blend(self, rho: float, numdocs: int, extra_pass: bool) -> None:
        if self.optimize_eta:
            self.update_eta(self.state.get_lambda(), rho)
        self.sync_state()
        if logger.isEnabledFor(logging.DEBUG):
            self.print_topics(5)
        if not extra_pass:
            self.num_updates += numdocs

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

    # --------------------------------------------------------------- training

    def _backend(self) -> EStepBackend:
        if self.distributed:
            from distlda.cluster.client import DistributedEStep

            if self.dispatcher is None or not _answers(self.dispatcher):
                self._connect_cluster()  # first use, or the dispatcher was restarted
            return DistributedEStep(self.dispatcher, self.numworkers,
                                    lambda: (self.state.sstats_wm, self.state.eta, self.alpha), self._install,
                                    stall_timeout=float(self.ns_conf.get("timeout", 60.0)))
        return LocalEStep(self.threads)

    def _connect_cluster(self) -> None:
        from distlda.cluster.client import connect_dispatcher

        self.dispatcher, self.numworkers = connect_dispatcher(self.ns_conf, self._worker_params())

    def connect_cluster(self, ns_conf: dict | None = None) -> None:
        """Train on a cluster from now on (for example a model trained locally or loaded from a file).

        Parameters
        ----------
        ns_conf : dict, optional
            Where the cluster's name server is (default: the model's ``ns_conf``).

        Raises
        ------
        NameServerNotFound, DispatcherNotFound, NoWorkersError, KeyRefusedError
        """
        if ns_conf is not None:
            self.ns_conf = dict(ns_conf)
        self.distributed = True
        self._connect_cluster()

    def _worker_params(self) -> dict[str, Any]:
        from distlda.core.fingerprint import numerics_description, numerics_id

        return {"num_topics": self.num_topics, "num_terms": self.num_terms, "dtype": self.dtype.name,
                "iterations": self.iterations, "gamma_threshold": self.gamma_threshold,
                "numerics": numerics_id(), "numerics_description": numerics_description()}

    def update(self, corpus: Any, chunksize: int | None = None, decay: float | None = None,
               offset: float | None = None, passes: int | None = None, update_every: int | None = None,
               eval_every: int | None = None, iterations: int | None = None,
               gamma_threshold: float | None = None, chunks_as_numpy: bool = False) -> None:
        """Train on ``corpus`` (online: the model keeps what it learned before).

        Parameters override the model's values for this call only. On bad input
        (a term id outside the vocabulary, a negative or NaN count, a corpus whose
        length changes between passes) a ValueError/TypeError names the problem
        and the model is left exactly as it was before the call. If training is
        interrupted otherwise (Ctrl-C, a lost cluster), the model keeps every
        completed M-step; on a cluster, every one the workers or the dispatcher
        can still give (all of them unless the dispatcher and every worker are
        lost together), and the training run is rolled back to match, so
        :meth:`resume` redoes the rest.
        """
        chunksize = check_int("chunksize", self.chunksize if chunksize is None else chunksize, 1)
        decay = check_float("decay", self.decay if decay is None else decay, 0.0, 1.0, low_open=True)
        offset = check_float("offset", self.offset if offset is None else offset, 0.0, low_open=True)
        passes = check_int("passes", self.passes if passes is None else passes, 1)
        update_every = check_int("update_every", self.update_every if update_every is None else update_every, 0)
        eval_every = check_int("eval_every", self.eval_every if eval_every is None else eval_every, 0,
                               allow_none=True) or 0
        iterations = check_int("iterations", self.iterations if iterations is None else iterations, 1)
        gamma_threshold = check_float("gamma_threshold",
                                      self.gamma_threshold if gamma_threshold is None else gamma_threshold, 0.0)
        run = TrainingRun(_corpus_length(corpus), chunksize, decay, offset, passes, update_every, eval_every,
                          iterations, gamma_threshold)
        self._run(corpus, run)

    def resume(self, corpus: Any) -> None:
        """Finish an ``update()`` that was interrupted, from this model's last checkpoint.

        Load the checkpoint (``LdaModel.load(checkpoint_path)``) and call this with
        the same corpus: training continues at the recorded pass and document and
        ends with the same model as a run that was never interrupted.

        Raises
        ------
        ValueError
            When the model holds no unfinished training, or the corpus has another length.
        """
        run = getattr(self, "_training", None)
        if run is None or run.finished:
            raise ValueError("this model has no interrupted training to resume (load a checkpoint written during "
                             "training, or call update())")
        n = _corpus_length(corpus)
        if n != run.lencorpus:
            raise ValueError(f"the corpus has {n} documents but the interrupted training had {run.lencorpus}: "
                             "resume needs the same corpus")
        self._run(corpus, run)

    def _run(self, corpus: Any, run: TrainingRun) -> None:
        self._ensure_writable()
        snapshot = _Snapshot(self.state.sstats_wm.copy(), self.state.eta.copy(), self.alpha.copy(),
                             self.state.numdocs, self.num_updates)
        progress = TrainingRun.from_dict(run.to_dict())
        backend = self._backend()
        backend.use_corpus(corpus)
        self._training = run
        try:
            with kernel_threads(self.threads):
                run_training(self, corpus, run, backend)
        except (ValueError, TypeError):
            self._restore(snapshot)
            self._training = progress if progress.started else None
            raise
        except BaseException:
            logger.warning("training stopped early; the model keeps its %i completed updates", self.num_updates)
            self.sync_state()
            raise
        finally:
            backend.close()

    def sync_training(self) -> None:
        """During ``update()`` on a cluster (from a callback or hook): bring the model's arrays up to date with
        the M-steps the workers applied. Training does this itself wherever it reads the model; elsewhere (or
        when training locally) it does nothing."""
        catch_up = getattr(self, "_sync_training", None)
        if catch_up is not None:
            catch_up()

    def _install(self, sstats_wm: np.ndarray, eta: np.ndarray, alpha: np.ndarray) -> None:
        """Take statistics (word-major) and priors computed elsewhere (by a cluster's workers)."""
        if sstats_wm.shape != self.state.sstats_wm.shape or alpha.shape != (self.num_topics,) or \
                eta.shape != self.state.eta.shape:
            raise ValueError(f"model arrays of shapes {sstats_wm.shape}, {eta.shape}, {alpha.shape} do not fit "
                             f"this model ({self.num_topics} topics, {self.num_terms} terms)")
        sstats_wm = np.array(sstats_wm, dtype=self.dtype, order="C")
        eta = np.array(eta, dtype=self.dtype)
        exp_elogbeta = np.empty_like(sstats_wm)
        topic_expectations(sstats_wm, eta_wm(eta, self.dtype), exp_elogbeta)
        # everything computed first, then swapped in: an interruption leaves the old model or the new one
        self.state.sstats_wm, self.state.eta, self._expElogbeta_wm = sstats_wm, eta, exp_elogbeta
        self.alpha = np.array(alpha, dtype=self.dtype)

    def _checkpoint_due(self, run: TrainingRun) -> bool:
        return bool(self.checkpoint_path) and run.msteps % self.checkpoint_every == 0

    def _maybe_checkpoint(self, run: TrainingRun, force: bool = False) -> None:
        """Save the model with its training progress, every ``checkpoint_every`` M-steps (atomically)."""
        if not self.checkpoint_path:
            return
        if force or self._checkpoint_due(run):
            self._training = run
            persistence.save_model(self, self.checkpoint_path)
            logger.info("checkpoint after %i M-steps (pass %i, document %i): %s", run.msteps, run.pass_ + 1,
                        run.next_doc, self.checkpoint_path)

    def _restore(self, snap: _Snapshot) -> None:
        self.state.sstats_wm[...] = snap.sstats
        self.state.eta = snap.eta
        self.alpha = snap.alpha
        self.state.numdocs = snap.numdocs
        self.num_updates = snap.num_updates
        self.sync_state()
        logger.info("bad input: the model was restored to its state before this update")

    def _plan_mstep(self, numdocs: int, rho: float) -> MStepPlan:
        """The scalars of the M-step for a batch of ``numdocs`` documents (what a cluster's workers need to
        replicate it)."""
        return plan_mstep(rho, self.state.numdocs, numdocs, self.optimize_alpha, self.optimize_eta)

    def _apply_mstep(self, batch: BatchStats, plan: MStepPlan, extra_pass: bool, params: EStepParams) -> None:
        """The M-step of the training loop (learn alpha, blend, learn eta, recompute exp(E[log β])); only the
        count of updates when a cluster's workers applied it (``batch.raw`` is None)."""
        if batch.raw is None:
            if not extra_pass:
                self.num_updates += batch.numdocs
            return
        self._ensure_writable()
        arrays = ModelArrays(self.state.sstats_wm, self.state.eta, self.alpha, self.expElogbeta_wm)
        apply_mstep(arrays, batch, params.exp_elogbeta, plan)
        self.alpha, self.state.eta = arrays.alpha, arrays.eta
        if logger.isEnabledFor(logging.DEBUG):
            self.print_topics(5)
        if not extra_pass:
            self.num_updates += batch.numdocs

    # ------------------------------------------------------------ persistence

    def save(self, fname: str, ignore: Sequence[str] = ("state", "dispatcher"), separately: Any = None,
             *args: Any, **kwargs: Any) -> None:
        """Save the model to one file (no pickle); its arrays can be memory-mapped on load.

        ``ignore``, ``separately`` and pickle options of gensim are accepted and
        have no effect: the whole model, state included, goes into the file.
        """
        persistence.save_model(self, fname)

    @classmethod
    def load(cls, fname: str, *args: Any, mmap: str | None = None, **kwargs: Any) -> "LdaModel":
        """Load a model saved by :meth:`save`; ``mmap='r'`` maps the large arrays read-only.

        A loaded model trains locally; set ``distributed`` and call
        ``connect_cluster`` to train it on a cluster again.
        """
        if args and mmap is None:
            mmap = args[0]
        return persistence.load_model(cls, fname, mmap=mmap)

    def __str__(self) -> str:
        return (f"{type(self).__name__}<num_terms={self.num_terms}, num_topics={self.num_topics}, "
                f"decay={self.decay}, chunksize={self.chunksize}>")


def _answers(proxy: Any) -> bool:
    """Whether a cluster proxy still answers (a restarted dispatcher has a new address)."""
    from Pyro5 import errors as pyro_errors

    try:
        proxy._pyroClaimOwnership()
        return bool(proxy.ping())
    except (pyro_errors.CommunicationError, OSError):
        proxy._pyroRelease()
        return False


def _corpus_length(corpus: Any) -> int:
    """Number of documents of a training corpus, which must be re-iterable."""
    if corpus is None:
        raise ValueError("corpus must not be None")
    if isinstance(corpus, (str, bytes)):
        raise TypeError("corpus must be an iterable of bag-of-words documents, not a string")
    if hasattr(corpus, "tocsr") and hasattr(corpus, "shape"):  # scipy sparse: one row per document
        n = int(corpus.shape[0])
    elif hasattr(corpus, "__len__"):
        n = len(corpus)
    else:
        try:
            iterator = iter(corpus)
        except TypeError:
            raise TypeError(f"corpus must be an iterable of bag-of-words documents, got "
                            f"{type(corpus).__name__}") from None
        if iterator is corpus:
            raise TypeError("corpus is a one-shot iterator (such as a generator), but training reads it "
                            "more than once: pass a list or a re-iterable corpus object")
        logger.warning("the corpus has no len(): counting its documents with one extra pass")
        n = sum(1 for _ in corpus)
    if n == 0:
        raise ValueError("the corpus is empty: there is nothing to train on")
    return n
