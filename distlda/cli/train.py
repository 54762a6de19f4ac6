"""``distlda train DIR --topics K --out MODEL``: train on a prepared corpus, locally or on a cluster.

Shows a progress bar (documents/s, ETA) on a terminal and prints the held-out
per-word bound and perplexity a few times as training goes, when the corpus has
a held-out part. Before allocating anything it estimates the memory the model
needs and refuses what would not fit (``--force`` tries anyway).

Nothing trained is lost: a checkpoint goes to MODEL.ckpt during training (by
default about once a minute; ``--checkpoint-every N``: every N M-steps; removed
when training ends well), and when training stops early — Ctrl-C (exit code 130), SIGTERM (143),
or a lost cluster (75) — the model so far is saved to MODEL and to MODEL.ckpt,
and the command that finishes the run is printed:
``distlda train DIR --resume MODEL.ckpt --out MODEL``. A resumed run ends with
the same model as one that was never interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from distlda.cli.common import (
    EXIT_CLUSTER_LOST,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    CliError,
    UsageError,
    emit,
    load_model,
    non_negative_int,
    note,
    positive_int,
    read_prepared,
)
from distlda.cli import human
from distlda.cli.clusterstate import local_address
from distlda.cli.signals import Terminated, interrupt_within, signals_held, sigterm_as_interrupt

logger = logging.getLogger(__name__)

__all__ = ["add_parser", "run", "train_prepared", "Terminated", "sigterm_as_interrupt", "check_memory"]

STOP_CODES = {"interrupted": EXIT_INTERRUPTED, "terminated": EXIT_TERMINATED, "cluster": EXIT_CLUSTER_LOST}
"""The exit code of each way training can stop early (the model so far saved)."""

_CHECKPOINT_SECONDS = 60.0
"""Default checkpoints: the first M-step a minute after the last checkpoint (or the start) saves one."""
_NEVER = 1 << 30
"""M-steps between the training loop's own checkpoints when they are timed here instead."""

_EVALUATIONS = 8
"""Held-out evaluations of a run by default (and one at its end): each costs an E-step over the held-out part."""


def _prior(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        allowed = ("symmetric", "asymmetric", "auto") if name == "alpha" else ("symmetric", "auto")
        if value not in allowed:
            raise UsageError(f"--{name} must be a positive number or one of {', '.join(allowed)}; got {value!r}")
        return value


def _cluster_conf(address: str | None, key: str | None, timeout: float | None = None) -> dict[str, Any] | None:
    if address is None:
        return None
    if address == "local":  # the `distlda cluster` running here
        host, port_number = local_address()
        address = f"{host}:{port_number}"
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--cluster must be HOST:PORT of the name server, got {address!r}")
    conf = {"host": host, "port": int(port), "broadcast": False, "hmac_key": key}
    if timeout is not None:
        conf["timeout"] = timeout
    return conf


class _HeldoutTracker:
    """Evaluates the held-out per-word bound every ``every`` M-steps and at the end of the run; keeps the history
    and the time spent, so that the speed of training can be told apart from it."""

    def __init__(self, model: Any, heldout: Any, every: int, started: float, history: list[dict[str, Any]]) -> None:
        self.model, self.heldout, self.every, self.started = model, heldout, every, started
        self.history = history
        self.seconds = 0.0
        self._last_docs = -1

    def __call__(self, run: Any) -> None:
        last = run.pass_ == run.passes - 1 and run.next_doc == run.lencorpus
        if run.msteps % self.every == 0 or last:
            self.evaluate(run.pass_ * run.lencorpus + run.next_doc, run.pass_ + 1)

    def evaluate(self, documents: int, pass_number: int) -> None:
        if self.heldout is None or documents == self._last_docs:
            return
        from tqdm.auto import tqdm

        from distlda.evaluation import heldout_per_word_bound

        began = time.perf_counter()
        self._last_docs = documents
        self.model.sync_training()  # on a cluster the workers hold the newest model
        bound = heldout_per_word_bound(self.model.get_topics(), self.model.alpha, self.heldout)
        perplexity = math.exp(-bound) if bound > -700 else math.inf
        spent = time.perf_counter() - began
        self.seconds += spent
        self.history.append({"pass": pass_number, "documents": documents, "heldout_per_word_bound": bound,
                             "perplexity": perplexity, "seconds": time.perf_counter() - self.started,
                             "evaluation_seconds": spent})
        # through the bar's own write: it clears the bar, prints the line and draws the bar again below it
        tqdm.write(f"pass {pass_number}, {human.count(documents)} documents: held-out bound {bound:.4f} per word, "
                   f"perplexity {human.count(perplexity)} ({human.duration(spent)} to evaluate)", file=sys.stderr)
        sys.stderr.flush()


class _TimedCheckpoints:
    """The default checkpoints: after the first M-step at least a minute after the last checkpoint, and less often
    when saving takes longer (at most 5% of the time goes to checkpoints). A short run writes none."""

    def __init__(self, model: Any) -> None:
        self.model, self.interval = model, _CHECKPOINT_SECONDS
        self.last = time.perf_counter()

    def __call__(self, run: Any) -> None:
        if time.perf_counter() - self.last < self.interval or run.finished:
            return
        began = time.perf_counter()
        self.model.sync_training()
        self.model.save_checkpoint(run)
        self.last = time.perf_counter()
        self.interval = max(_CHECKPOINT_SECONDS, 20 * (self.last - began))


def even_chunksize(num_docs: int, chunksize: int, update_every: int) -> int:
    """The chunk size nearest ``chunksize`` whose mini-batches of ``update_every`` chunks split ``num_docs``
    documents evenly (to within ``update_every`` documents a batch).

    A pass's last mini-batch moves the topics as far as a full one, so a short one (103 documents after
    batches of 2,000) moves them far on little evidence and the held-out bound dips at every pass end.
    Batch training (``update_every=0``) has one M-step per pass and keeps ``chunksize``.
    """
    if update_every == 0 or num_docs <= chunksize * update_every:
        return chunksize
    batches = max(1, round(num_docs / (chunksize * update_every)))
    return math.ceil(math.ceil(num_docs / batches) / update_every)


def _open_prepared(folder: Path) -> tuple[dict[str, Any], Any, Any, Any]:
    """The settings, dictionary, training and held-out corpora of a prepared folder; one-line errors."""
    from distlda.corpora import BinaryCorpus, Dictionary

    prepared = read_prepared(str(folder))
    dictionary_file = folder / "dictionary.dict"
    if not dictionary_file.exists():
        raise CliError(f"{folder} has no dictionary ({dictionary_file} is missing): prepare it again with "
                       "`distlda prepare`")
    try:
        dictionary = Dictionary.load(dictionary_file)
        train = BinaryCorpus(folder / "train")
        heldout = BinaryCorpus(folder / "heldout") if (folder / "heldout").exists() else None
    except (ValueError, OSError) as exc:
        detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"{folder} is not a usable prepared corpus: {detail}") from None
    if len(train) == 0:
        raise CliError(f"{folder} has no training documents")
    return prepared, dictionary, train, heldout


def check_memory(topics: int, num_terms: int, *, threads: int, chunksize: int, heldout: bool,
                 eta_per_term: bool, force: bool) -> None:
    """Refuse (CliError) a model whose estimated peak memory exceeds what this process can allocate."""
    from distlda.core.memory import available_memory, describe, estimate_training_memory

    estimate = estimate_training_memory(topics, num_terms, threads=threads, chunksize=chunksize, heldout=heldout,
                                        eta_per_term=eta_per_term)
    available = available_memory()
    if available is None or estimate.total <= available:
        return
    message = (f"{topics} topics over {human.count(num_terms)} words need about {describe(estimate)}, but "
               f"{available / 1e9:.1f} GB is available")
    if force:
        logger.warning("%s: training anyway (--force)", message)
        return
    raise CliError(f"{message}: use fewer --topics or a smaller vocabulary (`distlda prepare --keep-n`), or add "
                   "--force to try anyway")


@contextlib.contextmanager
def _reaching_cluster(ns_conf: dict[str, Any] | None) -> Iterator[None]:
    """Turn a cluster that cannot be reached before training into one line for the command line (exit code 1:
    nothing was trained)."""
    from distlda.cluster.errors import ClusterError

    try:
        yield
    except ClusterError as exc:
        if ns_conf is None:
            raise
        reason = str(exc).split("; ")[0]  # the rest is advice for Python callers
        raise CliError(f"cannot train on the cluster at {ns_conf['host']}:{ns_conf['port']}: {reason} (start one "
                       "with `distlda cluster`, or check --cluster and --hmac)") from None


@contextlib.contextmanager
def _dask_client(spec: str | None) -> Iterator[Any]:
    """The Dask client of ``--dask`` (None without it); one-line errors when it cannot be had."""
    if spec is None:
        yield None
        return
    from distlda.dask.connect import dask_missing, open_client, parse_spec

    try:
        parse_spec(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if dask_missing():
        raise CliError(str(dask_missing()))
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(open_client(spec))
        except (OSError, TimeoutError) as exc:  # only the connection: errors of the training pass through
            raise CliError(f"cannot reach the Dask scheduler at {spec}: {exc}") from None
        yield client


def _resumed_model(checkpoint: str, dictionary: Any, threads: int | None, ns_conf: dict[str, Any] | None,
                   dask_client: Any = None) -> Any:
    from distlda.core.estep import resolve_threads

    model = load_model(checkpoint)
    if model.num_terms != len(dictionary):
        raise CliError(f"{checkpoint} was trained on {model.num_terms} words, but this corpus has "
                       f"{len(dictionary)}: resume with the prepared corpus it was trained on")
    model.threads = resolve_threads(threads)
    if ns_conf is not None:
        with _reaching_cluster(ns_conf):
            model.connect_cluster(ns_conf)
    elif dask_client is not None:
        model.connect_cluster(dask_client=dask_client)
    return model


def _fit(model: Any, train: Any, on_mstep: Callable[[Any], None], resuming: bool) -> str | None:
    """Train; returns None when done, or how training stopped early (``interrupted``, ``terminated``,
    ``cluster``) with every completed M-step kept."""
    from Pyro5.errors import PyroError

    from distlda.cluster.errors import ClusterError
    from distlda.dask.backend import DaskClusterError

    try:
        if resuming:
            model.resume(train, on_mstep=on_mstep)
        else:
            model.update(train, on_mstep=on_mstep)
    except BaseException as exc:
        interrupt = interrupt_within(exc)
        if interrupt is not None:
            return _stopped_by(interrupt)
        if isinstance(exc, (ClusterError, PyroError, DaskClusterError)):
            note(f"the cluster was lost: {exc}")
            note("saving what was trained...")
            return "cluster"
        raise
    return None


def _stopped_by(interrupt: KeyboardInterrupt) -> str:
    if isinstance(interrupt, Terminated):
        note("terminated (SIGTERM): saving what was trained...")
        return "terminated"
    note("interrupted: saving what was trained...")
    return "interrupted"


def train_prepared(folder: Path, out: Path, topics: int, passes: int = 5, chunksize: int = 2000,
                   update_every: int = 1, alpha: Any = "symmetric", eta: Any = None, iterations: int = 50,
                   seed: int = 0, threads: int | None = None, ns_conf: dict[str, Any] | None = None,
                   eval_every: int | None = None, checkpoint_every: int | None = None, progress: bool | None = None, *,
                   resume: str | None = None, force: bool = False, dask_client: Any = None) -> tuple[Any, str | None]:
    """Train on the prepared corpus in ``folder`` and save the model to ``out``.

    A checkpoint goes to ``out`` + ``.ckpt`` every ``checkpoint_every`` M-steps, or about once a minute when it is
    None, or never when it is 0 (removed when training ends well); ``resume`` names a checkpoint (or a model saved by an interrupted run) to finish instead
    of starting anew (the run's settings are the checkpoint's). Returns ``(model, stopped)``: ``stopped`` is None,
    or ``'interrupted'``, ``'terminated'`` or ``'cluster'`` when training stopped early (the model holds every
    completed M-step and is saved, with a checkpoint to resume from).
    """
    from distlda.evaluation import topic_coherence
    from distlda.models import LdaModel

    prepared, dictionary, train, heldout = _open_prepared(folder)
    checkpoint = str(out) + ".ckpt" if checkpoint_every != 0 else None
    every = checkpoint_every or _NEVER
    if resume is not None:
        model = _resumed_model(resume, dictionary, threads, ns_conf, dask_client)
        model.checkpoint_path, model.checkpoint_every = checkpoint, every
    else:
        chunksize = even_chunksize(len(train), chunksize, update_every)
        check_memory(topics, len(dictionary), threads=threads or 1, chunksize=min(chunksize, len(train)),
                     heldout=heldout is not None, eta_per_term=eta == "auto", force=force)
        with _reaching_cluster(ns_conf):
            model = LdaModel(None, id2word=dictionary, num_topics=topics, chunksize=chunksize, passes=passes,
                             update_every=update_every, alpha=alpha if alpha is not None else "symmetric", eta=eta,
                             iterations=iterations, random_state=seed, eval_every=0, threads=threads,
                             distributed=dask_client if dask_client is not None else ns_conf is not None,
                             ns_conf=ns_conf, progress=progress,
                             checkpoint_path=checkpoint, checkpoint_every=every, memory_check=False)  # checked above
    per_pass = math.ceil(len(train) / (model.chunksize * model.update_every)) if model.update_every else 1
    history = model.info.setdefault("history", [])  # in the checkpoints too, so a resumed run keeps it
    started = time.perf_counter()
    tracker = _HeldoutTracker(model, heldout, eval_every or max(1, math.ceil(per_pass * model.passes / _EVALUATIONS)),
                              started, history)
    timed = _TimedCheckpoints(model) if checkpoint_every is None else None

    def on_mstep(run: Any) -> None:
        tracker(run)
        if timed is not None:
            timed(run)

    stopped = _fit(model, train, on_mstep, resume is not None)
    seconds = time.perf_counter() - started
    if stopped is not None and checkpoint is not None:
        with signals_held():
            model.save(checkpoint)  # first, before anything slow: what --resume continues from
    done_docs = model.training_stats.get("documents", 0) if model.training_stats else 0
    training_seconds = max(seconds - tracker.seconds, 1e-9)
    top_ids = [[i for i, _ in model.get_topic_terms(t, 10)] for t in range(model.num_topics)]
    model.info = {
        "corpus": {"prepared": str(folder.resolve()), "documents": len(train),
                   "heldout_documents": len(heldout) if heldout is not None else 0,
                   "tokens": prepared["parts"]["train"]["tokens"], "vocabulary": len(dictionary)},
        "tokenizer": prepared.get("tokenizer", {}),
        "training": {"passes": model.passes, "chunksize": model.chunksize, "seconds": seconds,
                     "evaluation_seconds": tracker.seconds, "docs_per_second": done_docs / training_seconds,
                     "where": f"cluster {ns_conf['host']}:{ns_conf['port']}" if ns_conf else
                     f"dask {dask_client.scheduler.address}" if dask_client is not None else f"{model.threads} threads", "interrupted": stopped is not None, "stopped": stopped,
                     "msteps": model.training_stats.get("msteps", 0) if model.training_stats else 0},
        "history": history,
        "coherence": [float(c) for c in topic_coherence(top_ids, coherence="u_mass", corpus=train)],
    }
    with signals_held():
        model.save(str(out))
        if stopped is not None and checkpoint is not None:
            model.save(checkpoint)  # again, with the run's summary
    if stopped is None and checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)  # the run is complete: nothing to resume
    return model, stopped


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a topic model on a prepared corpus",
                       description="Train LDA on a corpus written by `distlda prepare`; save the model to MODEL. "
                                   "A checkpoint goes to MODEL.ckpt during training; when training stops early "
                                   "(Ctrl-C, SIGTERM, a lost cluster) the model so far is saved and the command "
                                   "that resumes it is printed.",
                       epilog="exit codes: 0 trained, 1 failure (nothing saved), 2 usage error, 75 the cluster was "
                              "lost (model so far and checkpoint saved; resume with --resume), 130 Ctrl-C and 143 "
                              "SIGTERM (model so far and checkpoint saved)")
    p.add_argument("dir", metavar="DIR", help="prepared corpus folder")
    p.add_argument("--topics", "-k", type=positive_int, default=20, help="number of topics (default 20)")
    p.add_argument("--passes", type=positive_int, default=5, help="passes over the corpus (default 5)")
    p.add_argument("--chunksize", type=positive_int, default=2000,
                   help="documents per chunk (default 2000), adjusted a little so a pass splits into mini-batches "
                        "of even size (no short last mini-batch)")
    p.add_argument("--update-every", type=non_negative_int, default=1,
                   help="chunks per M-step; 0 for batch (default 1)")
    p.add_argument("--alpha", default=None, help="symmetric (default), asymmetric, auto, or a number")
    p.add_argument("--eta", default=None, help="symmetric (default), auto, or a number")
    p.add_argument("--iterations", type=positive_int, default=50,
                   help="E-step iterations per document (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--threads", type=positive_int, default=None, help="E-step threads (default: every core)")
    where.add_argument("--cluster", metavar="HOST:PORT", default=None,
                       help="train on a cluster: address of its name server, or 'local' for the `distlda cluster` "
                            "running on this machine")
    where.add_argument("--dask", metavar="tcp://HOST:8786|local:N", default=None,
                       help="train on a Dask cluster: its scheduler's address, or local:N for N worker processes on "
                            "this machine (needs pip install 'distlda[dask]')")
    p.add_argument("--hmac", default=None, help="the cluster's key")
    p.add_argument("--cluster-timeout", type=float, default=None, metavar="SECONDS",
                   help="seconds without progress before the cluster counts as lost (default 60)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help=f"M-steps between held-out evaluations (default: about {_EVALUATIONS} in the run)")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=None, metavar="N",
                   help="save a checkpoint to MODEL.ckpt every N M-steps; 0: never (default: about once a minute)")
    p.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="finish the run saved in CHECKPOINT (MODEL.ckpt, or MODEL of a stopped run) on the same "
                        "prepared corpus; the run's settings are the checkpoint's")
    p.add_argument("--force", action="store_true",
                   help="train even when the model looks too large for the memory available")
    p.add_argument("--out", required=True, metavar="MODEL", help="file to save the model to")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.cluster_timeout is not None and not args.cluster_timeout > 0:
        raise UsageError(f"--cluster-timeout must be a positive number of seconds, got {args.cluster_timeout}")
    out = Path(args.out)
    if out.is_dir():
        raise CliError(f"--out {out} is a folder; give a file name for the model")
    if not out.parent.exists():
        raise CliError(f"the folder of --out does not exist: {out.parent}")
    ns_conf = _cluster_conf(args.cluster, args.hmac, args.cluster_timeout)
    with sigterm_as_interrupt(), _dask_client(args.dask) as dask_client:
        model, stopped = train_prepared(
            Path(args.dir), out, args.topics, args.passes, args.chunksize, args.update_every,
            _prior(args.alpha, "alpha"), _prior(args.eta, "eta"), args.iterations, args.seed, args.threads,
            ns_conf, args.eval_every, args.checkpoint_every, resume=args.resume, force=args.force,
            dask_client=dask_client)
    _summary(model, out)
    if stopped is None:
        return 0
    resume_from = f"{out}.ckpt" if args.checkpoint_every != 0 else str(out)
    where = f" --cluster {args.cluster}" if args.cluster else f" --dask {args.dask}" if args.dask else ""
    note(f"training stopped early; the saved model holds every update it had completed (on a cluster, the ones the "
         f"cluster could still give). Resume with:\n    distlda train {args.dir} --resume {resume_from} --out {out}"
         f"{where}" + ("\n(leave out --cluster to finish on this machine)" if where else ""))
    return STOP_CODES[stopped]


def _summary(model: Any, out: Path) -> None:
    for line in training_summary(model):
        emit(line)
    emit(f"saved the model to {out}")


def training_summary(model: Any) -> list[str]:
    """What a run did, from the model's ``info``: its speed apart from evaluation, where, and the last bound."""
    training = model.info["training"]
    evaluation = f", {human.duration(training['evaluation_seconds'])} evaluating" \
        if training["evaluation_seconds"] else ""
    lines = [f"trained {model.num_topics} topics on {human.count(model.info['corpus']['documents'])} documents in "
             f"{human.duration(training['seconds'])} ({human.count(training['docs_per_second'])} docs/s of training"
             f"{evaluation}, {training['where']})"]
    if model.info["history"]:
        last = model.info["history"][-1]
        lines.append(f"held-out bound {last['heldout_per_word_bound']:.4f} per word, perplexity "
                     f"{human.count(last['perplexity'])}")
    return lines
