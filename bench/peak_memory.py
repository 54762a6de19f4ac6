"""Peak memory of local training from a binary corpus: against the corpus's length, and in model-sized arrays.

Two measurements, each training run in a fresh process (its peak resident memory, ``ru_maxrss``):

1. the same model (K = 100, V = 10,000, one pass, 2 threads) on synthetic corpora of 10,000 and
   1,000,000 documents: the peak must not grow with the corpus (issue target: at most 50 MB more);
2. a large model (default K = 1,000, V = 50,000: 200 MB per float32 array) against a tiny one on the same
   10,000 documents: the difference in arrays of the large model's size (target: at most three).

    python bench/peak_memory.py                 # about 3 minutes (writing the million documents takes most)
    python bench/peak_memory.py --docs 100000   # a quicker look at the first measurement
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_TRAIN = r"""
import json, resource, sys
from distlda.corpora.binary import BinaryCorpus
from distlda.models import LdaModel
path, topics, terms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
LdaModel(BinaryCorpus(path), id2word={i: str(i) for i in range(terms)}, num_topics=topics, chunksize=2000,
         passes=1, eval_every=0, threads=2, random_state=0)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_corpus(path: Path, num_docs: int, num_terms: int = 10_000) -> None:
    """A synthetic corpus from 100 known topics, written as a binary corpus, 100,000 documents at a time."""
    from distlda.corpora.binary import BinaryCorpusWriter
    from distlda.datasets.synthetic import make_lda_corpus

    with BinaryCorpusWriter(path, num_terms=num_terms) as writer:
        for seed, first in enumerate(range(0, num_docs, 100_000)):
            part = make_lda_corpus(min(100_000, num_docs - first), num_terms, 100, doc_length=45, random_state=seed)
            writer.add_chunk(part.chunk)


def peak_mb(path: Path, topics: int, terms: int) -> float:
    out = subprocess.run([sys.executable, "-c", _TRAIN, str(path), str(topics), str(terms)], check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="the long corpus (default %(default)s)")
    parser.add_argument("--topics", type=int, default=1000, help="the large model's K (default %(default)s)")
    parser.add_argument("--terms", type=int, default=50_000, help="the large model's V (default %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="distlda-mem-") as tmp:
        short, long_ = Path(tmp) / "short", Path(tmp) / "long"
        write_corpus(short, 10_000)
        write_corpus(long_, args.docs)
        by_length = {10_000: peak_mb(short, 100, 10_000), args.docs: peak_mb(long_, 100, 10_000)}
        tiny, large = peak_mb(short, 10, 10_000), peak_mb(short, args.topics, args.terms)
    array_mb = args.topics * args.terms * 4 / 2**20
    growth = by_length[args.docs] - by_length[10_000]
    arrays = (large - tiny) / array_mb
    print(f"peak MB, K = 100, V = 10,000: 10,000 documents {by_length[10_000]:.0f}, {args.docs:,} documents "
          f"{by_length[args.docs]:.0f} ({growth:+.1f} MB; target at most +50)")
    print(f"K = {args.topics:,} x V = {args.terms:,} ({array_mb:.0f} MB per float32 array): peak {large:.0f} MB against "
          f"{tiny:.0f} MB for K = 10: {arrays:.2f} arrays (target at most 3)")


if __name__ == "__main__":
    main()
