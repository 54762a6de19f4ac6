"""Reading speed of corpus formats: non-zero entries per second, median of R runs.

Readers, all over the training part of one prepared dataset (default ``debian``):

* distlda ``BinaryCorpus.iter_chunks(2000)`` (memory-mapped CSR shards), target >= 10M nnz/s;
* distlda ``MmCorpus.iter_chunks(2000)`` on the Matrix Market file, target >= 2x gensim;
* distlda ``MmCorpus`` iterated as bag-of-words lists (what gensim yields; for reference);
* gensim ``MmCorpus`` iterated as bag-of-words lists (gensim's way of reading it).

Each reader reads the whole corpus once untimed first (page cache, numba's cache), then
R timed times.

    python bench/read_speed.py                   # table on stdout
    python bench/read_speed.py --json            # one JSON object (used by compare.py)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from common import CHUNKSIZE, DEFAULT_DATA_DIR, DatasetFiles

logger = logging.getLogger("bench.read_speed")

BINARY_TARGET_NNZ_PER_S = 10e6
MM_TARGET_RATIO = 2.0


def _binary_chunks(files: DatasetFiles) -> int:
    from distlda.corpora import BinaryCorpus

    return sum(chunk.nnz for chunk in BinaryCorpus(files.train_bin).iter_chunks(CHUNKSIZE))


def _mm_chunks(files: DatasetFiles) -> int:
    from distlda.corpora import MmCorpus

    return sum(chunk.nnz for chunk in MmCorpus(files.train_mm).iter_chunks(CHUNKSIZE))


def _mm_bow(files: DatasetFiles) -> int:
    from distlda.corpora import MmCorpus

    return sum(len(doc) for doc in MmCorpus(files.train_mm))


def _gensim_bow(files: DatasetFiles) -> int:
    from gensim.corpora import MmCorpus

    return sum(len(doc) for doc in MmCorpus(str(files.train_mm)))


READERS: dict[str, tuple[str, Callable[[DatasetFiles], int]]] = {
    "distlda-binary-chunks": ("distlda BinaryCorpus.iter_chunks(2000)", _binary_chunks),
    "distlda-mm-chunks": ("distlda MmCorpus.iter_chunks(2000)", _mm_chunks),
    "distlda-mm-bow": ("distlda MmCorpus, bag-of-words iteration", _mm_bow),
    "gensim-mm-bow": ("gensim MmCorpus, bag-of-words iteration", _gensim_bow),
}


def measure(files: DatasetFiles, repeats: int) -> dict[str, Any]:
    """Median reading speed of every reader over ``repeats`` timed runs (after one untimed run)."""
    expected = int(files.read_info()["train_nnz"])
    results: dict[str, Any] = {"dataset": files.name, "repeats": repeats, "nnz": expected, "readers": {}}
    for key, (label, reader) in READERS.items():
        seconds = []
        for attempt in range(repeats + 1):
            started = time.perf_counter()
            nnz = reader(files)
            elapsed = time.perf_counter() - started
            if nnz != expected:
                raise RuntimeError(f"{label} read {nnz} entries, the dataset has {expected}")
            if attempt:
                seconds.append(elapsed)
        median = statistics.median(seconds)
        results["readers"][key] = {"label": label, "seconds": seconds, "median_seconds": median,
                                   "nnz_per_second": expected / median}
        logger.info("%s: %.3fs, %.2fM nnz/s", label, median, expected / median / 1e6)
    return results


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The reading-speed targets: (what, measured, met)."""
    readers = results["readers"]
    binary = readers["distlda-binary-chunks"]["nnz_per_second"]
    ratio = readers["distlda-mm-chunks"]["nnz_per_second"] / readers["gensim-mm-bow"]["nnz_per_second"]
    return [
        ("distlda BinaryCorpus.iter_chunks >= 10M nnz/s", f"{binary / 1e6:.1f}M nnz/s",
         binary >= BINARY_TARGET_NNZ_PER_S),
        ("distlda MmCorpus.iter_chunks >= 2x gensim MmCorpus", f"{ratio:.1f}x", ratio >= MM_TARGET_RATIO),
    ]


def markdown_table(results: dict[str, Any]) -> list[str]:
    """The results as Markdown lines: a table of readers, ratios to gensim."""
    readers = results["readers"]
    gensim = readers["gensim-mm-bow"]["nnz_per_second"]
    lines = [f"Training part of `{results['dataset']}`: {results['nnz']:,} non-zero entries; "
             f"median of {results['repeats']} reads after one untimed read.", "",
             "| reader | seconds | M nnz/s | vs gensim MmCorpus |", "| --- | ---: | ---: | ---: |"]
    for entry in readers.values():
        lines.append(f"| {entry['label']} | {entry['median_seconds']:.3f} | {entry['nnz_per_second'] / 1e6:.2f} "
                     f"| {entry['nnz_per_second'] / gensim:.1f}x |")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default %(default)s")
    parser.add_argument("--dataset", default="debian", help="default %(default)s")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per reader (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the reading speeds."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    results = measure(DatasetFiles.of(args.data_dir, args.dataset), args.repeats)
    if args.json:
        print(json.dumps(results), flush=True)
        return 0
    print("\n".join(markdown_table(results)))
    print()
    for what, measured, met in targets(results):
        print(f"{'PASS' if met else 'FAIL'}  {what}: {measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
