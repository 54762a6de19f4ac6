"""``distlda train DIR --topics K --out MODEL``: train on a prepared corpus, locally or on a cluster.

Shows a progress bar (documents/s, ETA) on a terminal, prints the held-out
per-word bound and perplexity as training goes when the corpus has a held-out
part, and on Ctrl-C saves what was trained (every completed M-step) before
exiting.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

from distlda.cli.common import CliError, emit, note, read_prepared
from distlda.cli import human

logger = logging.getLogger(__name__)

__all__ = ["add_parser", "run", "train_prepared"]


def _prior(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        allowed = ("symmetric", "asymmetric", "auto") if name == "alpha" else ("symmetric", "auto")
        if value not in allowed:
            raise CliError(f"--{name} must be a positive number or one of {', '.join(allowed)}; got {value!r}")
        return value


def _cluster_conf(address: str | None, key: str | None) -> dict[str, Any] | None:
    if address is None:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise CliError(f"--cluster must be HOST:PORT of the name server, got {address!r}")
    return {"host": host, "port": int(port), "broadcast": False, "hmac_key": key}


class _HeldoutTracker:
    """Evaluates the held-out per-word bound every few M-steps and at the end; keeps the history."""

    def __init__(self, model: Any, heldout: Any, every: int, started: float) -> None:
        self.model, self.heldout, self.every, self.started = model, heldout, every, started
        self.history: list[dict[str, Any]] = []
        self._last_docs = -1

    def __call__(self, run: Any) -> None:
        end_of_pass = run.next_doc == run.lencorpus
        if run.msteps % self.every == 0 or end_of_pass:
            self.evaluate(run.pass_ * run.lencorpus + run.next_doc, run.pass_ + 1)

    def evaluate(self, documents: int, pass_number: int) -> None:
        if self.heldout is None or documents == self._last_docs:
            return
        from distlda.evaluation import heldout_per_word_bound

        self._last_docs = documents
        self.model.sync_training()  # on a cluster the workers hold the newest model
        bound = heldout_per_word_bound(self.model.get_topics(), self.model.alpha, self.heldout)
        perplexity = math.exp(-bound) if bound > -700 else math.inf
        self.history.append({"pass": pass_number, "documents": documents, "heldout_per_word_bound": bound,
                             "perplexity": perplexity, "seconds": time.perf_counter() - self.started})
        note(f"pass {pass_number}, {human.count(documents)} documents: held-out bound {bound:.4f} per word, "
             f"perplexity {human.count(perplexity)}")


def train_prepared(folder: Path, out: Path, topics: int, passes: int = 5, chunksize: int = 2000,
                   update_every: int = 1, alpha: Any = "symmetric", eta: Any = None, iterations: int = 50,
                   seed: int = 0, threads: int | None = None, ns_conf: dict[str, Any] | None = None,
                   eval_every: int | None = None, checkpoint_every: int | None = None,
                   progress: bool | None = None) -> tuple[Any, bool]:
    """Train on the prepared corpus in ``folder`` and save the model to ``out``; returns (model, interrupted)."""
    from distlda.corpora import BinaryCorpus, Dictionary
    from distlda.evaluation import topic_coherence
    from distlda.models import LdaModel

    prepared = read_prepared(str(folder))
    dictionary = Dictionary.load(folder / "dictionary.dict")
    train = BinaryCorpus(folder / "train")
    heldout = BinaryCorpus(folder / "heldout") if (folder / "heldout").exists() else None
    if len(train) == 0:
        raise CliError(f"{folder} has no training documents")
    model = LdaModel(None, id2word=dictionary, num_topics=topics, chunksize=chunksize, passes=passes,
                     update_every=update_every, alpha=alpha if alpha is not None else "symmetric", eta=eta,
                     iterations=iterations, random_state=seed, eval_every=0, threads=threads,
                     distributed=ns_conf is not None, ns_conf=ns_conf, progress=progress,
                     checkpoint_path=str(out) + ".ckpt" if checkpoint_every else None,
                     checkpoint_every=checkpoint_every)
    per_pass = math.ceil(len(train) / (chunksize * max(update_every, 1))) if update_every else 1
    started = time.perf_counter()
    tracker = _HeldoutTracker(model, heldout, eval_every or max(1, per_pass // 4), started)
    interrupted = False
    try:
        model.update(train, on_mstep=tracker)
    except KeyboardInterrupt:
        interrupted = True
        note("interrupted: saving what was trained...")
    seconds = time.perf_counter() - started
    done_docs = model.training_stats.get("documents", 0) if model.training_stats else 0
    top_ids = [[i for i, _ in model.get_topic_terms(t, 10)] for t in range(topics)]
    coherence = topic_coherence(top_ids, coherence="u_mass", corpus=train)
    model.info = {
        "corpus": {"prepared": str(folder.resolve()), "documents": len(train),
                   "heldout_documents": len(heldout) if heldout is not None else 0,
                   "tokens": prepared["parts"]["train"]["tokens"], "vocabulary": len(dictionary)},
        "tokenizer": prepared.get("tokenizer", {}),
        "training": {"passes": passes, "chunksize": chunksize, "seconds": seconds,
                     "docs_per_second": done_docs / seconds if seconds > 0 else 0.0,
                     "where": f"cluster {ns_conf['host']}:{ns_conf['port']}" if ns_conf else
                     f"{model.threads} threads", "interrupted": interrupted, "msteps": model.training_stats.get(
                         "msteps", 0) if model.training_stats else 0},
        "history": tracker.history,
        "coherence": [float(c) for c in coherence],
    }
    model.save(str(out))
    return model, interrupted


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a topic model on a prepared corpus",
                       description="Train LDA on a corpus written by `distlda prepare`; save the model to MODEL.")
    p.add_argument("dir", metavar="DIR", help="prepared corpus folder")
    p.add_argument("--topics", "-k", type=int, default=20, help="number of topics (default 20)")
    p.add_argument("--passes", type=int, default=5, help="passes over the corpus (default 5)")
    p.add_argument("--chunksize", type=int, default=2000, help="documents per chunk (default 2000)")
    p.add_argument("--update-every", type=int, default=1, help="chunks per M-step; 0 for batch (default 1)")
    p.add_argument("--alpha", default=None, help="symmetric (default), asymmetric, auto, or a number")
    p.add_argument("--eta", default=None, help="symmetric (default), auto, or a number")
    p.add_argument("--iterations", type=int, default=50, help="E-step iterations per document (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--threads", type=int, default=None, help="E-step threads (default: every core)")
    where.add_argument("--cluster", metavar="HOST:PORT", default=None,
                       help="train on a cluster: address of its name server")
    p.add_argument("--hmac", default=None, help="the cluster's key")
    p.add_argument("--eval-every", type=int, default=None,
                   help="M-steps between held-out evaluations (default: four per pass)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="save a checkpoint to MODEL.ckpt every N M-steps")
    p.add_argument("--out", required=True, metavar="MODEL", help="file to save the model to")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in ("topics", "passes", "chunksize", "iterations"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads must be at least 1, got {args.threads}")
    out = Path(args.out)
    if out.is_dir():
        raise CliError(f"--out {out} is a folder; give a file name for the model")
    if not out.parent.exists():
        raise CliError(f"the folder of --out does not exist: {out.parent}")
    model, interrupted = train_prepared(
        Path(args.dir), out, args.topics, args.passes, args.chunksize, args.update_every,
        _prior(args.alpha, "alpha"), _prior(args.eta, "eta"), args.iterations, args.seed, args.threads,
        _cluster_conf(args.cluster, args.hmac), args.eval_every, args.checkpoint_every)
    training = model.info["training"]
    emit(f"trained {model.num_topics} topics on {human.count(model.info['corpus']['documents'])} documents in "
         f"{human.duration(training['seconds'])} ({human.count(training['docs_per_second'])} docs/s, "
         f"{training['where']})")
    if model.info["history"]:
        last = model.info["history"][-1]
        emit(f"held-out bound {last['heldout_per_word_bound']:.4f} per word, perplexity "
             f"{human.count(last['perplexity'])}")
    emit(f"saved the model to {out}")
    if interrupted:
        note("training was interrupted; the saved model holds every update it had completed (on a cluster, the "
             "ones the cluster could still give), with the run's progress to match")
        return 130
    return 0
