"""LdaMulticore: gensim's multi-process LDA class, as LdaModel on threads.

gensim's ``LdaMulticore`` runs the E-step in ``workers`` processes and applies
an M-step every ``workers`` chunks. distlda's LdaModel already runs its E-step
on threads with results that do not depend on their number, so here
``workers`` is the number of threads and the schedule is LdaModel's: the same
corpus and seed give the same model for any ``workers``, and the same model as
``LdaModel(..., threads=workers)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from distlda.core.estep import resolve_threads
from distlda.models.callbacks import Metric
from distlda.models.ldamodel import LdaModel

__all__ = ["LdaMulticore"]


class LdaMulticore(LdaModel):
    """LDA trained by online variational Bayes on ``workers`` threads, with gensim 4's ``LdaMulticore`` signature.

    Parameters
    ----------
    corpus, num_topics, id2word, chunksize, passes, alpha, eta, decay, offset, eval_every, iterations,
    gamma_threshold, random_state, minimum_probability, minimum_phi_value, per_word_topics, dtype
        As :class:`~distlda.models.LdaModel`'s.
    workers : int, optional
        Threads of the E-step (default: all cores). The model does not depend on it.
    batch : bool
        Batch learning (one M-step per pass, LdaModel's ``update_every=0``) instead of online.
    callbacks, progress, checkpoint_path, checkpoint_every, memory_check, init, mstep
        distlda's additions, as LdaModel's (keywords only).

    Raises
    ------
    NotImplementedError
        For ``alpha='auto'``, as gensim's LdaMulticore (a RuntimeError); LdaModel learns alpha on the same
        threads.
    """

    def __init__(self, corpus: Any = None, num_topics: int = 100, id2word: Any = None, workers: int | None = None,
                 chunksize: int = 2000, passes: int = 1, batch: bool = False, alpha: Any = "symmetric",
                 eta: Any = None, decay: float = 0.5, offset: float = 1.0, eval_every: int | None = 10,
                 iterations: int = 50, gamma_threshold: float = 0.001, random_state: Any = None,
                 minimum_probability: float = 0.01, minimum_phi_value: float = 0.01, per_word_topics: bool = False,
                 dtype: Any = np.float32, *, callbacks: Sequence[Metric] | None = None, progress: bool | None = None,
                 checkpoint_path: str | None = None, checkpoint_every: int | None = None,
                 memory_check: bool = True, init: str = "anchors", mstep: str = "dense") -> None:
        if isinstance(alpha, str) and alpha == "auto":
            raise NotImplementedError("LdaMulticore does not learn alpha (as in gensim); LdaModel(alpha='auto', "
                                      "threads=N) does, with the same multi-threaded E-step")
        super().__init__(corpus=corpus, num_topics=num_topics, id2word=id2word, chunksize=chunksize,
                         passes=passes, update_every=0 if batch else 1, alpha=alpha, eta=eta, decay=decay,
                         offset=offset, eval_every=eval_every, iterations=iterations,
                         gamma_threshold=gamma_threshold, minimum_probability=minimum_probability,
                         random_state=random_state, minimum_phi_value=minimum_phi_value,
                         per_word_topics=per_word_topics, callbacks=callbacks, dtype=dtype, threads=workers,
                         progress=progress, checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every,
                         memory_check=memory_check, init=init, mstep=mstep)

    @property
    def workers(self) -> int:
        """Threads of the E-step (gensim's number of worker processes)."""
        return self.threads

    @workers.setter
    def workers(self, value: int) -> None:
        self.threads = resolve_threads(value)

    @property
    def batch(self) -> bool:
        """Batch learning: one M-step per pass (``update_every == 0``)."""
        return self.update_every == 0

    @batch.setter
    def batch(self, value: bool) -> None:
        self.update_every = 0 if value else 1
