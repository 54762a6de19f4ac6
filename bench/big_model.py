"""A model larger than any message, trained on a real cluster: how long it takes and what each process holds.

Trains one pass over a small corpus (random documents over the whole vocabulary,
written as a binary corpus the worker reads) with a model of ``--topics`` × ``--terms``
(default 1,000 × 300,000 in float32: 1.2 GB per array, more than Pyro's 1 GiB message
limit) on a cluster of one worker started on this machine, then prints each process's
peak resident memory in GB and in arrays of the model's size. The statistics travel in
pieces (``distlda.cluster.pieces``); before, such a model failed after 25 s with a
misleading "lost the dispatcher ... message too large".

    python bench/big_model.py                          # 1.2 GB per array: about 12 GB of memory in all
    python bench/big_model.py --terms 500000           # 2 GB per array: about 20 GB
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from distlda.cluster.local import LocalCluster
from distlda.corpora.binary import BinaryCorpus
from distlda.models import LdaModel

logger = logging.getLogger("bench.big_model")


def peak_gb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a running process, in GB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        return None
    return None


def random_documents(n_docs: int, num_terms: int, length: int, seed: int) -> list[list[tuple[int, float]]]:
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        ids, counts = np.unique(rng.integers(0, num_terms, length), return_counts=True)
        docs.append([(int(i), float(c)) for i, c in zip(ids, counts)])
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--terms", type=int, default=300_000)
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    array_gb = args.topics * args.terms * np.dtype(args.dtype).itemsize / 1e9
    with tempfile.TemporaryDirectory(prefix="distlda-big-") as tmp:
        path = Path(tmp) / "corpus"
        BinaryCorpus.serialize(path, random_documents(args.docs, args.terms, 200, 0), num_terms=args.terms)
        corpus = BinaryCorpus(path)
        with LocalCluster(workers=1, threads_per_worker=args.threads, log_dir=tmp) as cluster:
            started = time.perf_counter()
            model = LdaModel(corpus, id2word={i: f"w{i}" for i in range(args.terms)}, num_topics=args.topics,
                             dtype=np.dtype(args.dtype), distributed=True, ns_conf=cluster.ns_conf,
                             chunksize=max(1, args.docs // 2), passes=1, eval_every=0, random_state=0)
            seconds = time.perf_counter() - started
            pids = cluster.pids()
            roles = {"name server": pids["nameserver"], "dispatcher": pids["dispatcher"], "worker": pids["workers"][0]}
            peaks = {role: peak_gb(pid) for role, pid in roles.items()}
        peaks["client"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    result = {"topics": args.topics, "terms": args.terms, "dtype": args.dtype, "array_gb": array_gb,
              "seconds": seconds, "msteps": model.training_stats.get("msteps"), "peak_gb": peaks,
              "bytes_sent": model.training_stats.get("bytes_sent"),
              "bytes_received": model.training_stats.get("bytes_received")}
    print(json.dumps(result, indent=1))
    print(f"\n{args.topics:,} topics x {args.terms:,} terms in {args.dtype}: {array_gb:.2f} GB per array; "
          f"trained in {seconds:.0f} s on 1 worker")
    print("| process | peak resident GB | in arrays of the model's size |\n| --- | ---: | ---: |")
    for role, gb in peaks.items():
        print(f"| {role} | {gb:.2f} | {gb / array_gb:.2f} |" if gb is not None else f"| {role} | ? | ? |")


if __name__ == "__main__":
    main()
