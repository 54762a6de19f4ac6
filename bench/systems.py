"""The systems the benchmark compares, each as three steps: load, train, extract.

Only ``train`` is timed. ``load`` builds whatever the system needs before training
(a corpus reader, an in-memory matrix, a Gibbs sampler filled with documents), and
``extract`` turns the trained model into what every system is scored on: topic-word
weights (K x V, over the dataset's own vocabulary) and the document-topic prior alpha.
Each library is imported by ``load``, so its import time is not counted as training.

All systems use the settings of ``bench/common.py``: K = 100 topics, mini-batches of
2000 documents, decay (kappa) 0.5, offset (tau0) 1, at most 50 E-step iterations per
document, convergence threshold 0.001, alpha = eta = 1/K, priors kept fixed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import numpy as np
from common import CHUNKSIZE, DECAY, GAMMA_THRESHOLD, ITERATIONS, NUM_TOPICS, OFFSET, PRIOR, DatasetFiles

logger = logging.getLogger("bench.systems")

WARM_UP_DOCS = 200


@dataclass(frozen=True)
class RunSettings:
    """What varies between runs of one system.

    Parameters
    ----------
    passes : int
        Passes over the training documents (tomotopy: ``passes * gibbs_per_pass`` Gibbs sweeps).
    threads : int
        Threads (distlda, tomotopy) or worker processes (gensim LdaMulticore).
    seed : int
        Random seed of the model.
    gibbs_per_pass : int
        Gibbs sweeps that stand for one pass (tomotopy only).
    """

    passes: int
    threads: int
    seed: int
    gibbs_per_pass: int


@dataclass
class Learned:
    """What a trained model is scored on.

    Parameters
    ----------
    topics : numpy.ndarray, shape (K, V)
        Non-negative topic-word weights over the dataset's vocabulary (rows need not sum to 1).
    alpha : numpy.ndarray, shape (K,)
        Document-topic Dirichlet prior at the end of training.
    details : dict
        Facts about the run worth reporting (JSON-serialisable).
    """

    topics: np.ndarray
    alpha: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class System:
    """One competitor.

    Parameters
    ----------
    package : str
        Distribution whose version is reported.
    load : callable (DatasetFiles, RunSettings) -> data
        Untimed preparation of the input.
    train : callable (data, RunSettings) -> model
        Training; the only timed step.
    extract : callable (model, data, DatasetFiles) -> Learned
        Untimed extraction of topics and alpha.
    warm_up : callable (data, RunSettings) -> None, optional
        Untimed work before training (distlda: load or compile its kernels).
    """

    package: str
    load: Callable[[DatasetFiles, RunSettings], Any]
    train: Callable[[Any, RunSettings], Any]
    extract: Callable[[Any, Any, DatasetFiles], Learned]
    warm_up: Callable[[Any, RunSettings], None] | None = None


def _id2word(files: DatasetFiles) -> dict[int, str]:
    """A plain id-to-token mapping of the right size (tokens are not needed to train).

    The real Dictionary is not loaded here because importing distlda would load numba
    into the process of a competitor and inflate its measured memory.
    """
    return {i: str(i) for i in range(int(files.read_info()["num_terms"]))}


# ----------------------------------------------------------------------------- distlda


def _distlda_load(files: DatasetFiles, settings: RunSettings) -> tuple[Any, dict[int, str]]:
    from distlda.corpora import BinaryCorpus
    from distlda.models import LdaModel  # noqa: F401  (imported before the clock starts)

    return BinaryCorpus(files.train_bin), _id2word(files)


def distlda_model(corpus: Any, id2word: dict[int, str], settings: RunSettings, passes: int, **options: Any) -> Any:
    """A distlda LdaModel trained on ``corpus`` with the shared settings (``options``: more LdaModel arguments)."""
    from distlda.models import LdaModel

    return LdaModel(corpus, num_topics=NUM_TOPICS, id2word=id2word, chunksize=CHUNKSIZE, passes=passes,
                    alpha=PRIOR, eta=PRIOR, decay=DECAY, offset=OFFSET, eval_every=0, iterations=ITERATIONS,
                    gamma_threshold=GAMMA_THRESHOLD, random_state=settings.seed, threads=settings.threads,
                    progress=False, **options)


def distlda_warm_up(data: tuple[Any, dict[int, str]], settings: RunSettings, **options: Any) -> None:
    """Train a tiny model on the first documents, so that loading distlda's kernels is not timed."""
    corpus, id2word = data
    sample = corpus.read_range(0, min(WARM_UP_DOCS, len(corpus)))
    distlda_model(sample, id2word, settings, passes=1, **options)


def _distlda_train(data: tuple[Any, dict[int, str]], settings: RunSettings) -> Any:
    corpus, id2word = data
    return distlda_model(corpus, id2word, settings, settings.passes)


def _distlda_extract(model: Any, data: Any, files: DatasetFiles) -> Learned:
    return Learned(model.get_topics(), np.asarray(model.alpha, dtype=np.float64),
                   {"dtype": np.dtype(model.dtype).name, "threads": model.threads})


# ----------------------------------------------------------------------------- gensim


def _gensim_load(files: DatasetFiles, settings: RunSettings) -> tuple[Any, dict[int, str]]:
    from gensim.corpora import MmCorpus
    from gensim.models import LdaModel, LdaMulticore  # noqa: F401  (imported before the clock starts)

    return MmCorpus(str(files.train_mm)), _id2word(files)


def gensim_model(corpus: Any, id2word: dict[int, str], settings: RunSettings, **options: Any) -> Any:
    """A gensim LdaModel trained on ``corpus`` with the shared settings (``options``: more LdaModel arguments)."""
    from gensim.models import LdaModel

    return LdaModel(corpus, num_topics=NUM_TOPICS, id2word=id2word, chunksize=CHUNKSIZE, passes=settings.passes,
                    update_every=1, alpha=PRIOR, eta=PRIOR, decay=DECAY, offset=OFFSET, eval_every=None,
                    iterations=ITERATIONS, gamma_threshold=GAMMA_THRESHOLD, random_state=settings.seed, **options)


def _gensim_train(data: tuple[Any, dict[int, str]], settings: RunSettings) -> Any:
    corpus, id2word = data
    return gensim_model(corpus, id2word, settings)


def _gensim_multicore_train(data: tuple[Any, dict[int, str]], settings: RunSettings) -> Any:
    from gensim.models import LdaMulticore

    corpus, id2word = data
    return LdaMulticore(corpus, num_topics=NUM_TOPICS, id2word=id2word, workers=settings.threads,
                        chunksize=CHUNKSIZE, passes=settings.passes, alpha=PRIOR, eta=PRIOR, decay=DECAY,
                        offset=OFFSET, eval_every=None, iterations=ITERATIONS, gamma_threshold=GAMMA_THRESHOLD,
                        random_state=settings.seed)


def _gensim_extract(model: Any, data: Any, files: DatasetFiles) -> Learned:
    details = {"dtype": np.dtype(model.dtype).name}
    if hasattr(model, "workers"):
        details["workers"] = model.workers
        details["docs_per_mstep"] = CHUNKSIZE * model.workers
    return Learned(model.get_topics(), np.asarray(model.alpha, dtype=np.float64), details)


# ----------------------------------------------------------------------------- scikit-learn


def _sklearn_load(files: DatasetFiles, settings: RunSettings) -> Any:
    import scipy.sparse as sp
    from sklearn.decomposition import LatentDirichletAllocation  # noqa: F401  (imported before the clock starts)

    return sp.load_npz(files.train_npz).tocsr()


def _sklearn_train(matrix: Any, settings: RunSettings) -> Any:
    from sklearn.decomposition import LatentDirichletAllocation

    lda = LatentDirichletAllocation(
        n_components=NUM_TOPICS, doc_topic_prior=PRIOR, topic_word_prior=PRIOR, learning_method="online",
        learning_decay=DECAY, learning_offset=OFFSET, max_iter=settings.passes, batch_size=CHUNKSIZE,
        evaluate_every=-1, total_samples=matrix.shape[0], max_doc_update_iter=ITERATIONS,
        mean_change_tol=GAMMA_THRESHOLD, n_jobs=1, random_state=settings.seed)
    return lda.fit(matrix)


def _sklearn_extract(model: Any, matrix: Any, files: DatasetFiles) -> Learned:
    alpha = np.full(model.n_components, float(model.doc_topic_prior_))
    return Learned(np.asarray(model.components_, dtype=np.float64), alpha,
                   {"dtype": model.components_.dtype.name, "n_iter": int(model.n_iter_),
                    "n_batch_iter": int(model.n_batch_iter_)})


# ----------------------------------------------------------------------------- tomotopy


def _tomotopy_load(files: DatasetFiles, settings: RunSettings) -> Any:
    import tomotopy as tp

    model = tp.LDAModel(k=NUM_TOPICS, alpha=PRIOR, eta=PRIOR, seed=settings.seed)
    model.optim_interval = 0  # keep alpha fixed, as every other system here does
    with open(files.train_txt, encoding="utf-8") as fh:
        for line in fh:
            model.add_doc(line.split())
    return model


def _tomotopy_train(model: Any, settings: RunSettings) -> Any:
    model.train(settings.passes * settings.gibbs_per_pass, workers=settings.threads)
    return model


def _tomotopy_extract(model: Any, data: Any, files: DatasetFiles) -> Learned:
    """Topic-word distributions over the dataset's vocabulary.

    tomotopy numbers the words it saw itself. A word of the vocabulary that no training
    document contains gets what tomotopy gives a word with no count in a topic (the
    smallest value of the row: eta / (n_k + V * eta)).
    """
    import tomotopy as tp

    from distlda.corpora import Dictionary

    token2id = Dictionary.load(files.dictionary).token2id
    vocab = list(model.used_vocabs)
    dists = np.array([model.get_topic_word_dist(k) for k in range(model.k)], dtype=np.float64)
    if dists.shape[1] != len(vocab):
        raise RuntimeError(f"tomotopy gave {dists.shape[1]} word weights for {len(vocab)} used words")
    columns = np.array([token2id[w] for w in vocab], dtype=np.int64)
    topics = np.repeat(dists.min(axis=1, keepdims=True), len(token2id), axis=1)
    topics[:, columns] = dists
    alpha = np.broadcast_to(np.asarray(model.alpha, dtype=np.float64), (model.k,)).copy()
    return Learned(topics, alpha, {"gibbs_sweeps": int(model.global_step), "ll_per_word": float(model.ll_per_word),
                                   "words_unseen_in_training": len(token2id) - len(vocab), "isa": tp.isa})


SYSTEMS: dict[str, System] = {
    "distlda": System("distlda", _distlda_load, _distlda_train, _distlda_extract, distlda_warm_up),
    "gensim": System("gensim", _gensim_load, _gensim_train, _gensim_extract),
    "gensim-multicore": System("gensim", _gensim_load, _gensim_multicore_train, _gensim_extract),
    "sklearn": System("scikit-learn", _sklearn_load, _sklearn_train, _sklearn_extract),
    "tomotopy": System("tomotopy", _tomotopy_load, _tomotopy_train, _tomotopy_extract),
}
"""Systems by name (the same names as ``common.SYSTEM_NAMES``)."""


def package_version(package: str) -> str:
    """Installed version of ``package``, or ``'not installed'``."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
