"""Held-out bound on the Debian corpus at the defaults: distlda (init='anchors'), distlda with init='gensim', and
gensim 4.4, each with K = 100 and nothing else set, side by side for each seed.

    python bench/prepare.py --data-dir DATA                    # once: the Debian corpus
    python bench/heldout_defaults.py --data-dir DATA --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import DEFAULT_DATA_DIR

from distlda.corpora import BinaryCorpus
from distlda.models import LdaModel

SYSTEMS = ("distlda", "distlda-init-gensim", "gensim")


def train(system: str, corpus: BinaryCorpus, seed: int, passes: int) -> tuple[object, float]:
    """The model of ``system`` at its defaults (K = 100) and its training seconds."""
    id2word = {i: str(i) for i in range(corpus.num_terms)}
    started = time.perf_counter()
    if system == "gensim":
        from gensim.models import LdaModel as GensimLda

        model = GensimLda(list(corpus), id2word=id2word, num_topics=100, passes=passes, random_state=seed,
                          eval_every=None)
    else:
        model = LdaModel(corpus, id2word=id2word, num_topics=100, passes=passes, random_state=seed, eval_every=0,
                         init="anchors" if system == "distlda" else "gensim")
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--passes", type=int, default=1)
    args = parser.parse_args()
    folder = args.data_dir / "debian"
    corpus = BinaryCorpus(folder / "train.bin")
    heldout = list(BinaryCorpus(folder / "heldout.bin"))
    bounds: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    for seed in args.seeds:
        for system in SYSTEMS:  # interleaved: every system once per seed
            model, seconds = train(system, corpus, seed, args.passes)
            bound = float(model.log_perplexity(heldout))
            bounds[system].append(bound)
            print(f"{system:20s} seed {seed}: held-out per-word bound {bound:.4f}, trained in {seconds:.1f} s",
                  flush=True)
    print(json.dumps({s: {"bounds": b, "median": statistics.median(b)} for s, b in bounds.items()}, indent=1))


if __name__ == "__main__":
    main()
