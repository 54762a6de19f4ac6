"""Training an LdaModel: ``update()``, ``resume()``, the E-step backend, checkpoints, and rollback on bad input.

:class:`TrainingMixin` gives :class:`~distlda.models.LdaModel` the small
interface the training loop (:class:`distlda.core.training.Trainer`) needs, and
wraps a run in what a user expects: a snapshot that bad input restores, the
cluster connection, checkpoints, and the pass-end metrics.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from distlda.core.estep import BatchStats, EStepBackend, EStepParams, LocalEStep, kernel_threads
from distlda.core.init import add_anchor_topics
from distlda.core.mstep import LazyTopics, ModelArrays, MStepPlan, apply_mstep, eta_wm, plan_mstep
from distlda.core.training import Trainer, TrainingRun
from distlda.io.spill import KeptArray
from distlda.corpora.csr import CsrChunk, validate_chunk
from distlda.kernels.mstep import topic_expectations
from distlda.models import persistence
from distlda.models.callbacks import Callback
from distlda.models.parameters import update_settings, worker_settings

logger = logging.getLogger(__name__)

__all__ = ["TrainingMixin", "corpus_length"]


@dataclass
class _Snapshot:
    """What an update() may change, kept to restore the model when the input turns out bad."""

    sstats: KeptArray  # K × V: on disk when large, so the copy adds nothing to the peak memory
    eta: KeptArray
    alpha: np.ndarray
    numdocs: float
    num_updates: float


class TrainingMixin:
    """``update``, ``resume`` and the training-loop interface of LdaModel (see :class:`Trainable`)."""

    # provided by the model
    state: Any
    alpha: np.ndarray
    dtype: np.dtype
    num_topics: int
    num_terms: int
    num_updates: float
    optimize_alpha: bool
    optimize_eta: bool
    expElogbeta_wm: np.ndarray
    _expElogbeta_wm: np.ndarray | None
    _seed: int
    mstep: str  # 'dense' or 'lazy': a parameter of the table (models saved before it load as 'dense')
    _init_pending: bool  # init='anchors' and no corpus seen yet: the first update() adds the anchor-word topics

    def update(self, corpus: Any, chunksize: int | None = None, decay: float | None = None,
               offset: float | None = None, passes: int | None = None, update_every: int | None = None,
               eval_every: int | None = None, iterations: int | None = None,
               gamma_threshold: float | None = None, chunks_as_numpy: bool = False, *,
               on_mstep: Callable[[TrainingRun], None] | None = None) -> None:
        """Train on ``corpus`` (online: the model keeps what it learned before).

        Parameters override the model's values for this call only; ``on_mstep(run)``
        is called after every M-step with the run's progress (call
        :meth:`sync_training` in it before reading the model on a cluster). On bad
        input (a term id outside the vocabulary, a negative or NaN count, a corpus
        whose length changes between passes) a ValueError/TypeError names the
        problem and the model is left exactly as it was before the call. If
        training is interrupted otherwise (Ctrl-C, a lost cluster), the model keeps
        every completed M-step; on a cluster, every one the workers or the
        dispatcher can still give (all of them unless the dispatcher and every
        worker are lost together), and the training run is rolled back to match,
        so :meth:`resume` redoes the rest.
        """
        settings = update_settings(self, {"chunksize": chunksize, "decay": decay, "offset": offset,
                                          "passes": passes, "update_every": update_every,
                                          "eval_every": eval_every, "iterations": iterations,
                                          "gamma_threshold": gamma_threshold})
        settings["eval_every"] = settings["eval_every"] or 0
        lencorpus = corpus_length(corpus)
        if chunksize is None:  # as gensim: the learning rate counts updates in chunks no longer than the corpus
            settings["chunksize"] = min(lencorpus, settings["chunksize"])
        if getattr(self, "_init_pending", False):  # init='anchors': the first corpus also gives the start
            with kernel_threads(self.threads):  # the co-occurrence kernels use the model's threads, no more
                if add_anchor_topics(self.state.sstats, corpus):
                    self.sync_state()
            self._init_pending = False
        self._run(corpus, TrainingRun(lencorpus, **settings), on_mstep)

    def resume(self, corpus: Any, *, on_mstep: Callable[[TrainingRun], None] | None = None) -> None:
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
        n = corpus_length(corpus)
        if n != run.lencorpus:
            raise ValueError(f"the corpus has {n} documents but the interrupted training had {run.lencorpus}: "
                             "resume needs the same corpus")
        self._run(corpus, run, on_mstep)

    def sync_training(self) -> None:
        """During ``update()`` on a cluster (from a callback or ``on_mstep``): bring the model's arrays up to date
        with the M-steps the workers applied. Training does this itself wherever it reads the model; elsewhere
        (or when training locally) it does nothing."""
        trainer = getattr(self, "_trainer", None)
        if trainer is not None:
            trainer.sync()

    def _run(self, corpus: Any, run: TrainingRun, on_mstep: Callable[[TrainingRun], None] | None) -> None:
        self._ensure_writable()
        snapshot = _Snapshot(KeptArray(self.state.sstats_wm), KeptArray(self.state.eta), self.alpha.copy(),
                             self.state.numdocs, self.num_updates)
        progress = TrainingRun.from_dict(run.to_dict())
        backend = self._backend(run.update_every or max(1, math.ceil(run.lencorpus / run.chunksize)))
        self._start_lazy(backend)
        self._training = run
        self._trainer = Trainer(self, run, backend, checkpoint_every=self.checkpoint_every if self.checkpoint_path
                                else None, on_mstep=on_mstep, on_pass_end=self._pass_end_metrics(),
                                progress=self.progress)
        logger.info("training LDA: %i topics, %i passes over %i documents, %s, mini-batches of %s documents, "
                    "%s E-step%s", self.num_topics, run.passes, run.lencorpus,
                    "online" if run.update_every else "batch",
                    run.update_every * run.chunksize if run.update_every else "all",
                    "distributed" if self.distributed else f"{self.threads}-thread",
                    f", resuming at pass {run.pass_ + 1} document {run.next_doc}" if run.started else "")
        answered = False  # whether the backend is known to answer at the end (then it is released at once)
        try:
            backend.use_corpus(corpus)  # inside: a cluster that fails here is still closed below
            with kernel_threads(self.threads):
                self._trainer.train(corpus)
            self._end_lazy(keep=True)
            answered = True
        except (ValueError, TypeError):
            answered = True  # bad input, or a document the workers refused: the cluster itself answered
            self._end_lazy(keep=False)
            self._restore(snapshot)
            self._training = progress if progress.started else None
            raise
        except BaseException:
            logger.warning("training stopped early, after %i M-steps of this run (pass %i, document %i): the "
                           "model keeps them", run.msteps, run.pass_ + 1, run.next_doc)
            self._end_lazy(keep=True)
            self.sync_state()
            raise
        finally:
            self._trainer = None
            self.training_stats = backend.stats.as_dict()
            snapshot.sstats.discard()
            snapshot.eta.discard()
            backend.close(answered)

    def _pass_end_metrics(self) -> Callable[[int], None] | None:
        """The callback that evaluates the model's metrics at the end of a pass, if it has any."""
        if not self.callbacks:
            return None
        callback = Callback(self.callbacks)
        callback.set_model(self)

        def evaluate(pass_: int) -> None:
            for name, value in callback.on_epoch_end(pass_).items():
                self.metrics[name].append(value)

        return evaluate

    # ------------------------------------------------- the training loop's interface (core.training.Trainable)

    def begin_training(self, run: TrainingRun) -> None:
        """A new run starts: the statistics will stand for ``run.lencorpus`` more documents."""
        self.state.numdocs += run.lencorpus

    def estep_params(self, run: TrainingRun) -> EStepParams:
        """The E-step's inputs for the next mini-batch: the current exp(E[log β]) and alpha (under the lazy M-step,
        with the rows brought up to date chunk by chunk)."""
        lazy = getattr(self, "_lazy", None)
        if lazy is not None:
            return EStepParams(lazy.arrays.exp_elogbeta, np.asarray(self.alpha, dtype=self.dtype), run.iterations,
                               run.gamma_threshold, self._seed, self.optimize_alpha, refresh=lazy.refresh)
        return EStepParams(self.expElogbeta_wm, np.asarray(self.alpha, dtype=self.dtype), run.iterations,
                           run.gamma_threshold, self._seed, self.optimize_alpha)

    def plan_mstep(self, batch_docs: int, rho: float) -> MStepPlan:
        """The scalars of the M-step for a batch of ``batch_docs`` documents (what a cluster's workers need to
        replicate it)."""
        return plan_mstep(rho, self.state.numdocs, batch_docs, self.optimize_alpha, self.optimize_eta,
                          lazy=self._lazy_wanted())

    def apply_mstep(self, batch: BatchStats, plan: MStepPlan, params: EStepParams) -> None:
        """The M-step of the training loop: learn alpha, blend, learn eta, recompute exp(E[log β])."""
        lazy = getattr(self, "_lazy", None)
        if lazy is not None:
            lazy.apply(batch, plan)
            self.alpha = lazy.arrays.alpha
            return
        self._ensure_writable()
        arrays = ModelArrays(self.state.sstats_wm, self.state.eta, self.alpha, self.expElogbeta_wm)
        apply_mstep(arrays, batch, params.exp_elogbeta, plan)
        self.alpha, self.state.eta = arrays.alpha, arrays.eta
        if logger.isEnabledFor(logging.DEBUG):
            self.print_topics(5)

    def _lazy_wanted(self) -> bool:
        """Whether this run's M-steps are lazy (:class:`~distlda.core.mstep.LazyTopics`): asked for with
        ``mstep='lazy'``, and possible (eta not learned; not on Dask, whose replicas replay the dense M-step)."""
        return self.mstep == "lazy" and not self.optimize_eta and \
            getattr(self, "dask_client", None) is None

    def _start_lazy(self, backend: EStepBackend) -> None:
        """Hand the statistics to a lazy M-step for this run, when it is wanted and the M-steps are made here."""
        self._lazy: LazyTopics | None = None
        if self._lazy_wanted() and isinstance(backend, LocalEStep):
            self.sync_state()  # canonical arrays, as a cluster's replica computes them from the statistics
            self._lazy = LazyTopics(ModelArrays(self.state.sstats_wm, self.state.eta, self.alpha, self.expElogbeta_wm))
            self.state.lazy = self._lazy  # reads of the statistics during the run see materialised copies

    def _end_lazy(self, keep: bool) -> None:
        """The run is over: with ``keep``, make the arrays canonical (the model a cluster would give); without,
        leave them for the caller to restore."""
        lazy, self._lazy = getattr(self, "_lazy", None), None
        if lazy is not None:
            self.state.lazy = None
            if keep:
                lazy.finish()
                self.alpha = lazy.arrays.alpha

    def check_chunk(self, chunk: CsrChunk) -> None:
        """Raise ValueError when a training chunk does not fit the vocabulary or the model's dtype."""
        validate_chunk(chunk, self.num_terms)
        if chunk.counts.dtype.itemsize > self.dtype.itemsize:  # finite in float64 is not finite in float32
            with np.errstate(over="ignore"):
                overflow = np.flatnonzero(~np.isfinite(chunk.counts.astype(self.dtype)))
            if overflow.size:
                entry = int(overflow[0])
                doc = chunk.start + int(np.searchsorted(chunk.indptr, entry, side="right")) - 1
                raise ValueError(f"document {doc}: the count {chunk.counts[entry]!r} of term {int(chunk.ids[entry])} "
                                 f"is too large for a {self.dtype.name} model (train with dtype=numpy.float64)")

    def save_checkpoint(self, run: TrainingRun) -> None:
        """Save the model with its training progress to ``checkpoint_path`` (atomically)."""
        self._training = run
        persistence.save_model(self, self.checkpoint_path)
        logger.info("checkpoint after %i M-steps (pass %i, document %i): %s", run.msteps, run.pass_ + 1,
                    run.next_doc, self.checkpoint_path)

    # --------------------------------------------------------------- backends

    def _backend(self, batch_chunks: int) -> EStepBackend:
        if getattr(self, "dask_client", None) is not None:
            from distlda.dask.backend import DaskEStep

            self._connect_cluster()  # checks the client still has a scheduler and workers before anything is sent
            return DaskEStep(self.dask_client, lambda: (self.state.sstats_wm, self.state.eta, self.alpha),
                             self._install, stall_timeout=float(self.ns_conf.get("timeout", 60.0)))
        if self.distributed:
            from distlda.cluster.auth import release
            from distlda.cluster.client import DistributedEStep, dispatcher_answers

            if self.dispatcher is not None and dispatcher_answers(self.dispatcher):
                release(self.dispatcher)
            # every update sets the workers up anew: another client may have used the cluster since the last one
            self._connect_cluster()
            return DistributedEStep(self.dispatcher, self.numworkers,
                                    lambda: (self.state.sstats_wm, self.state.eta, self.alpha), self._install,
                                    stall_timeout=float(self.ns_conf.get("timeout", 60.0)),
                                    batch_chunks=batch_chunks,
                                    summable=not (self.optimize_alpha or self.optimize_eta))
        return LocalEStep(self.threads)

    def _connect_cluster(self) -> None:
        if getattr(self, "dask_client", None) is not None:
            from distlda.dask.backend import check_client

            self.numworkers = len(check_client(self.dask_client))
            return
        from distlda.cluster.client import connect_dispatcher

        self.dispatcher, self.numworkers = connect_dispatcher(self.ns_conf, self._worker_params())

    def connect_cluster(self, ns_conf: dict | None = None, *, dask_client: Any = None) -> None:
        """Train on a cluster from now on (for example a model trained locally or loaded from a file).

        Parameters
        ----------
        ns_conf : dict, optional
            Where the Pyro5 cluster's name server is (default: the model's ``ns_conf``).
        dask_client : distributed.Client, optional
            Train on this Dask cluster instead.

        Raises
        ------
        NameServerNotFound, DispatcherNotFound, NoWorkersError, KeyRefusedError
            For the Pyro5 cluster.
        distlda.dask.backend.DaskClusterError
            When the Dask client is closed or its scheduler has no workers.
        """
        if ns_conf is not None:
            self.ns_conf = dict(ns_conf)
        if dask_client is not None:
            from distlda.dask import is_dask_client

            if not is_dask_client(dask_client):
                raise TypeError(f"dask_client must be a distributed.Client, got {type(dask_client).__name__}")
        self.dask_client = dask_client
        self.distributed = True
        self._connect_cluster()

    def _worker_params(self) -> dict[str, Any]:
        from distlda.core.fingerprint import numerics_description, numerics_id

        return {**worker_settings(self), "num_terms": self.num_terms, "dtype": self.dtype.name,
                "numerics": numerics_id(), "numerics_description": numerics_description()}

    def _install(self, sstats_wm: np.ndarray, eta: np.ndarray, alpha: np.ndarray) -> None:
        """Take statistics (word-major) and priors computed elsewhere (by a cluster's workers)."""
        if sstats_wm.shape != self.state.sstats_wm.shape or alpha.shape != (self.num_topics,) or \
                eta.shape != self.state.eta.shape:
            raise ValueError(f"model arrays of shapes {sstats_wm.shape}, {eta.shape}, {alpha.shape} do not fit "
                             f"this model ({self.num_topics} topics, {self.num_terms} terms)")
        # (the arrays a cluster sends are decoded into fresh arrays: taken as they are, not copied again)
        sstats_wm = np.asarray(sstats_wm, dtype=self.dtype, order="C")
        if not sstats_wm.flags.writeable:
            sstats_wm = np.array(sstats_wm)
        eta = np.array(eta, dtype=self.dtype)
        exp_elogbeta = np.empty_like(sstats_wm)
        topic_expectations(sstats_wm, eta_wm(eta, self.dtype), exp_elogbeta)
        # everything computed first, then swapped in: an interruption leaves the old model or the new one
        self.state.sstats_wm, self.state.eta, self._expElogbeta_wm = sstats_wm, eta, exp_elogbeta
        self.alpha = np.array(alpha, dtype=self.dtype)

    def _restore(self, snap: _Snapshot) -> None:
        snap.sstats.restore_into(self.state.sstats_wm)
        eta = np.empty(snap.eta.shape, snap.eta.dtype)
        snap.eta.restore_into(eta)
        self.state.eta = eta
        self.alpha = snap.alpha
        self.state.numdocs = snap.numdocs
        self.num_updates = snap.num_updates
        self.sync_state()
        logger.info("bad input: the model was restored to its state before this update")


def corpus_length(corpus: Any) -> int:
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
