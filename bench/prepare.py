"""Build the benchmark datasets: the same documents in the input format of every system.

Datasets (each in ``<data dir>/<name>/``, see ``bench/common.py`` for the files):

* ``debian``: one document per line of ``debian-descriptions.txt.gz``, tokenised with
  :func:`distlda.corpora.text.tokenize`; the last 10% of lines are held out. The
  vocabulary is built from the training lines only (no held-out words leak into it)
  and filtered with ``filter_extremes(no_below=5, no_above=0.5, keep_n=None)``.
  Documents left without a word of the vocabulary are dropped from both parts.
* ``synthetic``: drawn by :func:`distlda.datasets.make_lda_corpus` from 100 known
  topics; the last 10% are held out and the true topics are kept.

The script is idempotent: files that exist are kept, and a dataset whose ``info.json``
exists is skipped. Building with other sizes than a folder was started with is refused
(use another ``--data-dir`` or ``--force``).

    python bench/prepare.py                      # full data in bench/data/
    python bench/prepare.py --data-dir bench/data/quick --debian-limit 4000 --synthetic-docs 4000
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from common import DATASETS, DEFAULT_DATA_DIR, HOLDOUT_FRACTION, NUM_TOPICS, DatasetFiles, publish, temporary_sibling

from distlda.corpora import BinaryCorpus, Dictionary, MmCorpus, bow_to_chunk, tokenize
from distlda.corpora.csr import CsrChunk
from distlda.corpora.text import iter_lines
from distlda.datasets import make_lda_corpus

logger = logging.getLogger("bench.prepare")

DEBIAN_SOURCE = Path("/work/shared/data/debian-descriptions.txt.gz")
PARAMS_NAME = "params.json"


def _keep_nonempty(chunk: CsrChunk) -> tuple[CsrChunk, np.ndarray]:
    """The documents of ``chunk`` that have at least one entry, and their positions in it."""
    lengths = np.diff(chunk.indptr)
    keep = np.flatnonzero(lengths > 0)
    if len(keep) == chunk.n_docs:
        return chunk, keep
    indptr = np.zeros(len(keep) + 1, dtype=chunk.indptr.dtype)
    np.cumsum(lengths[keep], out=indptr[1:])
    mask = np.repeat(lengths > 0, lengths)
    return CsrChunk(indptr, chunk.ids[mask], chunk.counts[mask], 0), keep


def _claim_folder(files: DatasetFiles, params: dict[str, Any], force: bool) -> bool:
    """Make the dataset folder ready for ``params``; False when it is already complete."""
    params_file = files.root / PARAMS_NAME
    if force and files.root.exists():
        shutil.rmtree(files.root)
    if files.root.exists() and params_file.is_file():
        previous = json.loads(params_file.read_text(encoding="utf-8"))
        if previous != params:
            raise SystemExit(f"{files.root} was built with {previous}, not {params}; "
                             "use another --data-dir or --force to rebuild it")
        if files.info.is_file():
            logger.info("%s is ready, skipping", files.root)
            return False
    files.root.mkdir(parents=True, exist_ok=True)
    params_file.write_text(json.dumps(params, indent=1), encoding="utf-8")
    return True


def _write_if_missing(path: Path, writer: Callable[[Path], None]) -> None:
    """Run ``writer`` on a temporary path next to ``path`` and publish it, unless ``path`` exists."""
    if path.exists():
        logger.info("%s exists, kept", path)
        return
    started = time.perf_counter()
    tmp = temporary_sibling(path)
    writer(tmp)
    publish(tmp, path)
    logger.info("wrote %s in %.1fs", path, time.perf_counter() - started)


def _write_npz(chunk: CsrChunk, num_terms: int, path: Path) -> None:
    matrix = sp.csr_matrix((chunk.counts.astype(np.float32), chunk.ids, chunk.indptr),
                           shape=(chunk.n_docs, num_terms))
    with open(path, "wb") as fh:  # a file object: save_npz would add '.npz' to a name
        sp.save_npz(fh, matrix, compressed=False)


def _write_lines(lines: Iterable[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)
            fh.write("\n")


def _write_all(files: DatasetFiles, train: CsrChunk, heldout: CsrChunk, dictionary: Dictionary,
               token_lines: Callable[[], Iterable[str]], info: dict[str, Any]) -> None:
    """Write every input format of a dataset, then ``info.json``."""
    num_terms = len(dictionary)
    _write_if_missing(files.dictionary, lambda p: dictionary.save(p))
    _write_if_missing(files.train_bin, lambda p: BinaryCorpus.serialize(p, train, num_terms=num_terms))
    _write_if_missing(files.heldout_bin, lambda p: BinaryCorpus.serialize(p, heldout, num_terms=num_terms))
    _write_if_missing(files.train_mm, lambda p: MmCorpus.serialize(p, train, id2word=dictionary))
    _write_if_missing(files.train_npz, lambda p: _write_npz(train, num_terms, p))
    _write_if_missing(files.train_txt, lambda p: _write_lines(token_lines(), p))
    info.update({
        "num_train_docs": train.n_docs, "num_heldout_docs": heldout.n_docs, "num_terms": num_terms,
        "train_nnz": train.nnz, "train_words": train.num_words(), "heldout_words": heldout.num_words(),
    })
    files.info.write_text(json.dumps(info, indent=1), encoding="utf-8")
    logger.info("%s ready: %i training and %i held-out documents, %i terms, %i training non-zeros",
                files.root, train.n_docs, heldout.n_docs, num_terms, train.nnz)


def prepare_debian(files: DatasetFiles, source: Path, limit: int | None, force: bool) -> None:
    """Build the ``debian`` dataset from ``source`` (the first ``limit`` lines when given)."""
    params = {"dataset": "debian", "source": str(source), "limit": limit, "holdout_fraction": HOLDOUT_FRACTION,
              "filter_extremes": {"no_below": 5, "no_above": 0.5, "keep_n": None}}
    if not _claim_folder(files, params, force):
        return
    started = time.perf_counter()
    docs = [tokenize(line) for line in itertools.islice(iter_lines(source), limit)]
    n_train = len(docs) - int(round(HOLDOUT_FRACTION * len(docs)))
    logger.info("tokenised %i lines (%i for training)", len(docs), n_train)
    if files.dictionary.exists():
        dictionary = Dictionary.load(files.dictionary)
    else:
        dictionary = Dictionary(docs[:n_train], prune_at=None)
        dictionary.filter_extremes(no_below=5, no_above=0.5, keep_n=None)
    train_all = bow_to_chunk([dictionary.doc2bow(d) for d in docs[:n_train]])
    held_all = bow_to_chunk([dictionary.doc2bow(d) for d in docs[n_train:]])
    train, kept = _keep_nonempty(train_all)
    heldout, _ = _keep_nonempty(held_all)
    vocab = dictionary.token2id

    def token_lines() -> Iterable[str]:
        for i in kept:
            yield " ".join(t for t in docs[i] if t in vocab)

    info = {**params, "lines": len(docs), "dropped_empty_train": train_all.n_docs - train.n_docs,
            "dropped_empty_heldout": held_all.n_docs - heldout.n_docs}
    _write_all(files, train, heldout, dictionary, token_lines, info)
    logger.info("debian prepared in %.1fs", time.perf_counter() - started)


def prepare_synthetic(files: DatasetFiles, num_docs: int, num_terms: int, seed: int, force: bool) -> None:
    """Build the ``synthetic`` dataset: ``num_docs`` documents from 100 known topics."""
    params = {"dataset": "synthetic", "num_docs": num_docs, "num_terms": num_terms, "num_topics": NUM_TOPICS,
              "doc_length": 50, "alpha": 0.1, "eta": 0.01, "seed": seed, "holdout_fraction": HOLDOUT_FRACTION}
    if not _claim_folder(files, params, force):
        return
    started = time.perf_counter()
    corpus = make_lda_corpus(num_docs, num_terms, NUM_TOPICS, doc_length=50, alpha=0.1, eta=0.01,
                             random_state=seed)
    train, heldout = corpus.split(HOLDOUT_FRACTION)
    dictionary = Dictionary.from_corpus(train.chunk, id2word=corpus.id2word)
    names = np.array([corpus.id2word[i] for i in range(num_terms)], dtype=object)
    chunk = train.chunk

    def token_lines() -> Iterable[str]:
        counts = chunk.counts.astype(np.int64)
        for lo, hi in zip(chunk.indptr[:-1].tolist(), chunk.indptr[1:].tolist(), strict=True):
            yield " ".join(np.repeat(names[chunk.ids[lo:hi]], counts[lo:hi]).tolist())

    _write_if_missing(files.true_topics, lambda p: _save_npy(p, corpus.topics))
    _write_all(files, train.chunk, heldout.chunk, dictionary, token_lines, dict(params))
    logger.info("synthetic prepared in %.1fs", time.perf_counter() - started)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would add '.npy' to a name
        np.save(fh, array)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cache folder (default %(default)s)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated (default %(default)s)")
    parser.add_argument("--debian-source", type=Path, default=DEBIAN_SOURCE, help="default %(default)s")
    parser.add_argument("--debian-limit", type=int, default=None, help="use only the first N lines")
    parser.add_argument("--synthetic-docs", type=int, default=100_000, help="default %(default)s")
    parser.add_argument("--synthetic-terms", type=int, default=10_000, help="default %(default)s")
    parser.add_argument("--seed", type=int, default=20240611, help="synthetic corpus seed (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild datasets from scratch")
    parser.add_argument("-v", "--verbose", action="store_true", help="log distlda's own messages too")
    args = parser.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = set(args.datasets) - set(DATASETS)
    if unknown:
        parser.error(f"unknown dataset(s) {sorted(unknown)}; choose from {DATASETS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the datasets named on the command line."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logger.setLevel(logging.INFO)
    for name in args.datasets:
        files = DatasetFiles.of(args.data_dir, name)
        if name == "debian":
            prepare_debian(files, args.debian_source, args.debian_limit, args.force)
        else:
            prepare_synthetic(files, args.synthetic_docs, args.synthetic_terms, args.seed, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
