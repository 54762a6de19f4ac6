"""Reading speed of corpus formats, distlda against gensim on the same files, interleaved.

Files (``--files``, default all):

* ``dataset``: the training part of one prepared dataset (default ``debian``), integer counts;
* ``floats``: the same entries with non-integral values (what a tf-idf corpus looks like),
  written once beside the dataset;
* ``empty-docs``: 44,270,060 documents of which four hold entries (a dozen in all), the
  shape of gensim's ``test_mmcorpus_overflow.mm`` with a header that matches its entries.

Readers: distlda ``MmCorpus`` iterated as bag-of-words lists (what gensim yields) and
``MmCorpus.iter_chunks(2000)``, gensim ``MmCorpus`` iterated as bag-of-words lists, and on
the dataset distlda ``BinaryCorpus.iter_chunks(2000)``. For each file every reader reads
once untimed (page cache, numba's cache), then R times, the readers' order turning at each
repetition so that none always runs first. The speed-up of a distlda reader is the median
over repetitions of gensim's seconds divided by distlda's seconds in the same repetition
(a paired ratio: a machine slowed down for a while slows both sides of a pair).

    python bench/read_speed.py                   # tables on stdout
    python bench/read_speed.py --json            # one JSON object (used by compare.py)
    python bench/read_speed.py --files empty-docs --repeats 5
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
MM_TARGET_RATIO = 2.0  # distlda MmCorpus.iter_chunks against gensim on the dataset
BOW_TARGET_RATIO = 1.0  # distlda bag-of-words iteration against gensim's, on every file
EMPTY_DOCS = 44_270_060
FILES = ("dataset", "floats", "empty-docs")


def _binary_chunks(path: Path) -> int:
    from distlda.corpora import BinaryCorpus

    return sum(chunk.nnz for chunk in BinaryCorpus(path).iter_chunks(CHUNKSIZE))


def _mm_chunks(path: Path) -> int:
    from distlda.corpora import MmCorpus

    return sum(chunk.nnz for chunk in MmCorpus(path).iter_chunks(CHUNKSIZE))


def _mm_bow(path: Path) -> int:
    from distlda.corpora import MmCorpus

    return sum(len(doc) for doc in MmCorpus(path))


def _gensim_bow(path: Path) -> int:
    from gensim.corpora import MmCorpus

    return sum(len(doc) for doc in MmCorpus(str(path)))


READERS: dict[str, tuple[str, Callable[[Path], int]]] = {
    "distlda-binary-chunks": ("distlda BinaryCorpus.iter_chunks(2000)", _binary_chunks),
    "distlda-mm-chunks": ("distlda MmCorpus.iter_chunks(2000)", _mm_chunks),
    "distlda-mm-bow": ("distlda MmCorpus, bag-of-words iteration", _mm_bow),
    "gensim-mm-bow": ("gensim MmCorpus, bag-of-words iteration", _gensim_bow),
}
GENSIM = "gensim-mm-bow"


def _floats_file(files: DatasetFiles) -> Path:
    """The dataset's entries with non-integral values (each count times 0.37), written once."""
    path = files.root / "read_speed_floats.mm"
    if not path.exists():
        from distlda.corpora import MmCorpus
        from distlda.corpora.csr import CsrChunk, concat_chunks
        from distlda.corpora.mmwrite import write_corpus

        source = MmCorpus(files.train_mm)
        whole = concat_chunks(list(source.iter_chunks(CHUNKSIZE)))
        write_corpus(path, CsrChunk(whole.indptr, whole.ids, whole.counts * 0.37), num_terms=source.num_terms)
    return path


def _empty_docs_file(files: DatasetFiles) -> Path:
    """A corpus of EMPTY_DOCS documents, nearly all empty, written once."""
    path = files.root / "read_speed_empty_docs.mm"
    if not path.exists():
        entries = [(1, t, 0.125 * t) for t in range(1, 9)] + [(10, 500, 1e-6), (4_427_006, 1, 3.5),
                                                              (4_427_006, 500, 10.25), (EMPTY_DOCS, 2, 1.75)]
        lines = [f"{d} {t} {v!r}\n" for d, t, v in entries]
        path.write_text(f"%%MatrixMarket matrix coordinate real general\n{EMPTY_DOCS} 500 {len(lines)}\n"
                        + "".join(lines))
    return path


def _file_plan(files: DatasetFiles, which: str) -> tuple[Path, list[str], dict[str, Path]]:
    """The Matrix Market file of workload ``which``, its readers, and the file each reader reads."""
    if which == "dataset":
        paths = {key: files.train_mm for key in READERS}
        paths["distlda-binary-chunks"] = files.train_bin
        return files.train_mm, list(READERS), paths
    path = _floats_file(files) if which == "floats" else _empty_docs_file(files)
    keys = [key for key in READERS if key != "distlda-binary-chunks"]
    return path, keys, {key: path for key in keys}


def measure_file(files: DatasetFiles, which: str, repeats: int) -> dict[str, Any]:
    """Every reader of workload ``which``, interleaved: seconds per repetition and paired ratios to gensim."""
    path, keys, paths = _file_plan(files, which)
    seconds: dict[str, list[float]] = {key: [] for key in keys}
    counts: dict[str, int] = {}
    for attempt in range(repeats + 1):
        order = keys[attempt % len(keys):] + keys[:attempt % len(keys)]
        for key in order:
            started = time.perf_counter()
            counts[key] = READERS[key][1](paths[key])
            elapsed = time.perf_counter() - started
            if attempt:  # the first round only warms caches
                seconds[key].append(elapsed)
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"{which}: the readers disagree on the number of entries: {counts}")
    nnz = counts[GENSIM]
    readers = {}
    for key in keys:
        median = statistics.median(seconds[key])
        ratios = [g / s for g, s in zip(seconds[GENSIM], seconds[key])]
        readers[key] = {"label": READERS[key][0], "seconds": seconds[key], "median_seconds": median,
                        "nnz_per_second": nnz / median, "paired_ratios": ratios,
                        "median_paired_ratio": statistics.median(ratios)}
        logger.info("%s, %s: %.3fs, %.2fx gensim", which, READERS[key][0], median, statistics.median(ratios))
    return {"file": str(path), "nnz": nnz, "readers": readers}


def measure(files: DatasetFiles, repeats: int, which: Sequence[str] = FILES) -> dict[str, Any]:
    """All workloads; the dataset's readers also at the top level (the shape compare.py and report.py read)."""
    results: dict[str, Any] = {"dataset": files.name, "repeats": repeats, "files": {}}
    for name in which:
        results["files"][name] = measure_file(files, name, repeats)
    if "dataset" in results["files"]:
        results["nnz"] = results["files"]["dataset"]["nnz"]
        results["readers"] = results["files"]["dataset"]["readers"]
    return results


def _speedup(readers: dict[str, Any], name: str) -> float:
    """A reader's speed-up over gensim: the median of paired ratios, or, in results written before those were
    recorded (2026-11-27), the ratio of the medians."""
    reader = readers[name]
    if "median_paired_ratio" in reader:
        return float(reader["median_paired_ratio"])
    return float(readers[GENSIM]["median_seconds"]) / float(reader["median_seconds"])


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The reading-speed targets: (what, measured, met)."""
    out = []
    readers = results.get("readers")
    if readers:
        binary = readers["distlda-binary-chunks"]["nnz_per_second"]
        ratio = _speedup(readers, "distlda-mm-chunks")
        out += [("distlda BinaryCorpus.iter_chunks >= 10M nnz/s", f"{binary / 1e6:.1f}M nnz/s",
                 binary >= BINARY_TARGET_NNZ_PER_S),
                ("distlda MmCorpus.iter_chunks >= 2x gensim MmCorpus", f"{ratio:.1f}x", ratio >= MM_TARGET_RATIO)]
    for name, entry in results.get("files", {}).items():
        ratio = _speedup(entry["readers"], "distlda-mm-bow")
        out.append((f"distlda MmCorpus bag-of-words >= gensim's ({name})", f"{ratio:.2f}x", ratio >= BOW_TARGET_RATIO))
    return out


def markdown_table(results: dict[str, Any]) -> list[str]:
    """The results as Markdown lines: one table per file, readers side by side with gensim."""
    lines = [f"Median of {results['repeats']} interleaved reads after one untimed read; speed-up is the median "
             f"of gensim's seconds / the reader's seconds in the same repetition (in results from before "
             f"2026-11-28, which did not record it, the ratio of the medians)."]
    files = results.get("files") or ({results.get("dataset", "dataset"): {"nnz": results["nnz"],
                                                                        "readers": results["readers"]}}
                                     if results.get("readers") else {})
    for name, entry in files.items():
        where = f"`{Path(entry['file']).name}`, " if entry.get("file") else ""
        lines += ["", f"**{name}** ({where}{entry['nnz']:,} non-zero entries)", "",
                  "| reader | seconds | M nnz/s | speed-up vs gensim |", "| --- | ---: | ---: | ---: |"]
        for key, reader in entry["readers"].items():
            lines.append(f"| {reader['label']} | {reader['median_seconds']:.3f} | "
                         f"{reader['nnz_per_second'] / 1e6:.2f} | {_speedup(entry['readers'], key):.2f}x |")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default %(default)s")
    parser.add_argument("--dataset", default="debian", help="default %(default)s")
    parser.add_argument("--files", nargs="+", choices=FILES, default=list(FILES), help="default: all")
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
    results = measure(DatasetFiles.of(args.data_dir, args.dataset), args.repeats, args.files)
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
