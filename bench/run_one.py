"""Train ONE system on ONE prepared dataset in this process and print one JSON line.

Running each system in its own process makes the peak memory its own. Steps:

1. load the system's input (untimed; for distlda also a short warm-up training on 200
   documents, so that loading its compiled kernels is not timed);
2. train (timed: ``train_seconds``; streamed systems read their input file while training,
   as they would in use);
3. record peak memory (``peak_rss_train_mb``: resource.getrusage ru_maxrss right after
   training; ``peak_rss_children_mb``: the largest child process, for gensim LdaMulticore);
4. score with distlda's evaluators, the same code for every system: the held-out per-word
   bound from the topics and alpha, and for synthetic data the topic recovery (mean
   Hellinger distance to the true topics after an optimal matching);
5. print the JSON line (``peak_rss_mb`` is ru_maxrss at the very end, evaluation included).

BLAS threads are pinned (OMP/OPENBLAS/MKL_NUM_THREADS, unless already set) to the cores
the configuration is meant to use, before numpy is imported.

    python bench/run_one.py --system gensim --dataset debian --passes 1
    python bench/run_one.py --system distlda --threads 2 --dataset synthetic --data-dir bench/data/quick
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from common import (
    BLAS_ENV_VARS,
    DATASETS,
    DEFAULT_DATA_DIR,
    DEFAULT_GIBBS_PER_PASS,
    SYSTEM_NAMES,
    DatasetFiles,
    blas_threads_for,
)

logger = logging.getLogger("bench.run_one")


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", required=True, choices=SYSTEM_NAMES)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default %(default)s")
    parser.add_argument("--passes", type=int, default=1, help="passes over the data (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads (distlda, tomotopy) or worker processes (gensim-multicore); default %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="model seed (default %(default)s)")
    parser.add_argument("--gibbs-per-pass", type=int, default=DEFAULT_GIBBS_PER_PASS,
                        help="tomotopy: Gibbs sweeps per pass (default %(default)s)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="only train and score a tiny model (fills numba's on-disk cache), print nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages of every library")
    args = parser.parse_args(argv)
    if args.passes < 1 or args.threads < 1 or args.gibbs_per_pass < 1:
        parser.error("--passes, --threads and --gibbs-per-pass must be at least 1")
    return args


def _score(learned: Any, files: DatasetFiles) -> tuple[float, float | None]:
    """Held-out per-word bound and, when the true topics are known, topic recovery."""
    import numpy as np

    from distlda.corpora import BinaryCorpus
    from distlda.evaluation import heldout_per_word_bound, topic_recovery

    bound = heldout_per_word_bound(learned.topics, learned.alpha, BinaryCorpus(files.heldout_bin))
    recovery = None
    if files.true_topics.is_file():
        recovery = topic_recovery(np.load(files.true_topics), learned.topics).mean_hellinger
    return float(bound), recovery


def _warm_cache(files: DatasetFiles) -> None:
    """Compile (or load) distlda's training and evaluation kernels once, so timed runs find them cached."""
    import numpy as np

    from distlda.corpora import BinaryCorpus
    from distlda.evaluation import heldout_per_word_bound
    from distlda.models import LdaModel

    sample = BinaryCorpus(files.train_bin).read_range(0, 200)
    model = LdaModel(sample, num_topics=10, id2word={i: str(i) for i in range(sample.max_id() + 1)},
                     chunksize=50, eval_every=0, progress=False)
    held = BinaryCorpus(files.heldout_bin).read_range(0, 50)
    topics = np.ones((10, max(held.max_id() + 1, model.num_terms)))
    heldout_per_word_bound(topics, 0.1, held)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, train, measure and score one configuration; the result as a JSON-ready dict."""
    from systems import SYSTEMS, RunSettings, package_version  # imports numpy: after the BLAS settings

    files = DatasetFiles.of(args.data_dir, args.dataset)
    info = files.read_info()
    system = SYSTEMS[args.system]
    settings = RunSettings(args.passes, args.threads, args.seed, args.gibbs_per_pass)

    started = time.perf_counter()
    data = system.load(files, settings)
    if system.warm_up is not None:
        system.warm_up(data, settings)
    load_seconds = time.perf_counter() - started
    gc.collect()
    logger.info("%s: loaded %s in %.1fs, training", args.system, files.root, load_seconds)

    started = time.perf_counter()
    model = system.train(data, settings)
    train_seconds = time.perf_counter() - started
    rss_train = peak_rss_mb()
    rss_children = peak_rss_mb(resource.RUSAGE_CHILDREN)
    logger.info("%s: trained in %.1fs, peak RSS %.0f MB", args.system, train_seconds, rss_train)

    started = time.perf_counter()
    learned = system.extract(model, data, files)
    bound, recovery = _score(learned, files)
    eval_seconds = time.perf_counter() - started

    num_docs = int(info["num_train_docs"])
    return {
        "system": args.system,
        "dataset": args.dataset,
        "passes": args.passes,
        "threads": args.threads,
        "blas_threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
        "seed": args.seed,
        "num_train_docs": num_docs,
        "num_heldout_docs": int(info["num_heldout_docs"]),
        "num_terms": int(info["num_terms"]),
        "train_seconds": train_seconds,
        "docs_per_second": args.passes * num_docs / train_seconds,
        "load_seconds": load_seconds,
        "eval_seconds": eval_seconds,
        "peak_rss_train_mb": rss_train,
        "peak_rss_children_mb": rss_children,
        "peak_rss_mb": peak_rss_mb(),
        "heldout_per_word_bound": bound,
        "topic_recovery": recovery,
        "gibbs_sweeps": args.passes * args.gibbs_per_pass if args.system == "tomotopy" else None,
        "version": package_version(system.package),
        "python": platform.python_version(),
        "details": learned.details,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the configuration given on the command line and print its JSON line."""
    args = parse_args(argv)
    blas = blas_threads_for(args.system, args.threads)
    for name in BLAS_ENV_VARS:
        os.environ.setdefault(name, str(blas))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logger.setLevel(logging.INFO)
    if args.warm_cache:
        _warm_cache(DatasetFiles.of(args.data_dir, args.dataset))
        return 0
    result = run(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
