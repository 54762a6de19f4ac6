"""``distlda prepare INPUT... --out DIR``: text to a dictionary and a binary corpus, streaming.

Two passes over the input, one document in memory at a time: the first counts
words into the dictionary (training documents only, so held-out words do not
leak into the vocabulary), the second writes each document's bag of words to
the binary corpus (training or held-out part). A corpus larger than memory
works; only the dictionary is held.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from distlda.cli.common import (PREPARED_FILE, CliError, UsageError, add_text_input_arguments, batches, emit,
                                note)
from distlda.cli import human

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Tokenizer", "prepare_corpus", "add_parser", "run", "heldout_mask", "text_source"]

_BATCH = 2000


@dataclass(frozen=True)
class Tokenizer:
    """How text becomes tokens; saved with the corpus and the model so ``infer`` does the same."""

    lowercase: bool = True
    min_len: int = 2
    max_len: int = 15
    stopwords: str = "english"

    def stopword_set(self) -> frozenset[str] | None:
        from distlda.corpora.text import ENGLISH_STOP_WORDS

        if self.stopwords == "english":
            return ENGLISH_STOP_WORDS
        if self.stopwords == "none":
            return None
        path = Path(self.stopwords)
        if not path.exists():
            raise CliError(f"stop-word file not found: {self.stopwords} (use 'english', 'none' or a file)")
        return frozenset(w.strip().lower() for w in path.read_text(encoding="utf-8").split() if w.strip())

    def bind(self) -> Callable[[str], list[str]]:
        """A function text → tokens with these settings."""
        from distlda.corpora.text import tokenize

        stop = self.stopword_set()
        return lambda text: tokenize(text, lowercase=self.lowercase, min_len=self.min_len, max_len=self.max_len,
                                     stopwords=stop)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Tokenizer":
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


def heldout_mask(n: int, fraction: float, seed: int) -> "np.ndarray":
    """Which of ``n`` documents are held out: a seeded random subset of ``round(fraction · n)``."""
    import numpy as np

    mask = np.zeros(n, dtype=bool)
    k = int(round(fraction * n))
    if k:
        mask[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return mask


def prepare_corpus(documents: Callable[[], Iterator[tuple[str, str]]], total: int, out: Path, tokenizer: Tokenizer,
                   no_below: int = 5, no_above: float = 0.5, keep_n: int | None = 100_000, holdout: float = 0.0,
                   seed: int = 0, progress: bool | None = None) -> dict[str, Any]:
    """Build ``out``: dictionary, binary corpus (and held-out part), names, and ``prepare.json``.

    Parameters
    ----------
    documents : callable
        Returns a fresh iterator of ``(name, text)`` each time (it is read twice).
    total : int
        Number of documents it yields.
    """
    from tqdm.auto import tqdm

    from distlda.corpora import BinaryCorpusWriter, Dictionary

    if total == 0:
        raise CliError("the input holds no documents")
    hide = not sys.stderr.isatty() if progress is None else not progress
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer.bind()
    held = heldout_mask(total, holdout, seed)
    dictionary = Dictionary()
    bar = tqdm(total=total, unit="doc", unit_scale=True, desc="counting words", disable=hide)
    position = 0
    for batch in batches(documents(), _BATCH):
        texts = [tok(text) for _, text in batch]
        keep = [t for i, t in enumerate(texts) if not held[position + i]]
        dictionary.add_documents(keep, prune_at=None)
        position += len(batch)
        bar.update(len(batch))
    bar.close()
    if position != total:
        raise CliError(f"the input changed while being read ({position} documents, then {total})")
    vocabulary_before = len(dictionary)
    dictionary.filter_extremes(no_below=no_below, no_above=no_above, keep_n=keep_n)
    if len(dictionary) == 0:
        raise CliError(f"no word is left after filtering ({vocabulary_before} distinct words, --no-below {no_below}, "
                       f"--no-above {no_above}): lower --no-below or raise --no-above")
    dictionary.save(out / "dictionary.dict")
    parts = {"train": ~held, "heldout": held} if held.any() else {"train": ~held}
    stats = {name: {"documents": int(mask.sum()), "tokens": 0, "empty": 0} for name, mask in parts.items()}
    for name in ("train", "heldout"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    writers = {name: BinaryCorpusWriter(out / name, num_terms=len(dictionary)) for name in parts}
    names = {name: gzip.open(out / f"{name}-names.txt.gz", "wt", encoding="utf-8") for name in parts}
    bar = tqdm(total=total, unit="doc", unit_scale=True, desc="writing corpus", disable=hide)
    try:
        position = 0
        for batch in batches(documents(), _BATCH):
            groups: dict[str, list[Any]] = {name: [] for name in parts}
            for i, (doc_name, text) in enumerate(batch):
                part = "heldout" if held[position + i] else "train"
                bow = dictionary.doc2bow(tok(text))
                groups[part].append(bow)
                names[part].write(doc_name.replace("\n", " ") + "\n")
                stats[part]["tokens"] += int(sum(c for _, c in bow))
                stats[part]["empty"] += not bow
            for part, bows in groups.items():
                if bows:
                    writers[part].add_documents(bows)
            position += len(batch)
            bar.update(len(batch))
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        bar.close()
        for fh in names.values():
            fh.close()
    info = {"tokenizer": asdict(tokenizer), "filter": {"no_below": no_below, "no_above": no_above, "keep_n": keep_n},
            "holdout": holdout, "seed": seed, "vocabulary": len(dictionary), "vocabulary_before_filter":
            vocabulary_before, "documents": total, "parts": stats}
    (out / PREPARED_FILE).write_text(json.dumps(info, indent=2))
    return info


def add_parser(sub: Any) -> None:
    p = sub.add_parser("prepare", help="turn text into a dictionary and a binary corpus",
                       description="Tokenise text, build the dictionary, drop rare and common words, and write a "
                                   "binary corpus (and a held-out part) to DIR. Streams: the corpus may be larger "
                                   "than memory.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text files, folders of them, or one file with a document per line (.gz too)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the prepared corpus to")
    add_text_input_arguments(p, "encoding of the text: 'auto' (default: UTF-8, or a UTF-16/32 byte-order mark; "
                                "lines that are not UTF-8 are read as Windows-1252, with a warning naming the file and "
                                "line), or a codec name such as utf-8, latin-1, cp1252, read strictly (an error names "
                                "the file and line)")
    p.add_argument("--no-lowercase", dest="lowercase", action="store_false", help="keep the case of words")
    p.add_argument("--min-len", type=int, default=2, help="shortest token kept (default 2)")
    p.add_argument("--max-len", type=int, default=15, help="longest token kept (default 15)")
    p.add_argument("--stopwords", default="english",
                   help="'english' (default), 'none', or a file of stop words separated by white space")
    p.add_argument("--no-below", type=int, default=5, help="drop words in fewer documents than this (default 5)")
    p.add_argument("--no-above", type=float, default=0.5,
                   help="drop words in more than this share of documents (default 0.5)")
    p.add_argument("--keep-n", type=int, default=100_000, help="keep at most this many words (default 100000)")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="share of documents held out for evaluation, e.g. 0.1 (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out selection (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.holdout < 1.0:
        raise CliError(f"--holdout must be in [0, 1), got {args.holdout}")
    if not 0.0 < args.no_above <= 1.0:
        raise CliError(f"--no-above must be in (0, 1], got {args.no_above}")
    if args.min_len < 1 or args.max_len < args.min_len:
        raise CliError(f"need 1 <= --min-len <= --max-len, got {args.min_len} and {args.max_len}")
    if args.no_below < 0 or args.keep_n < 1:
        raise CliError("--no-below must be >= 0 and --keep-n >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / PREPARED_FILE).exists():
        raise CliError(f"--out {out} is a folder that is not empty and not a prepared corpus; choose another")
    from distlda.corpora.textfiles import count_documents, iter_documents

    source = text_source(args.inputs, args.lines, args.encoding, allow_stdin=False)
    tokenizer = Tokenizer(args.lowercase, args.min_len, args.max_len, args.stopwords)
    tokenizer.stopword_set()  # fail early on a missing stop-word file
    note("counting documents...")
    total = count_documents(source)
    info = prepare_corpus(lambda: iter_documents(source), total, out, tokenizer, args.no_below, args.no_above,
                          args.keep_n, args.holdout, args.seed)
    _summary(out, info)
    return 0


def text_source(inputs: list[str], lines: bool | None, encoding: str, allow_stdin: bool) -> Any:
    """The TextSource of the INPUT arguments: CliError for a missing or binary input, UsageError for an unknown
    encoding."""
    from distlda.corpora.textfiles import TextSource, check_encoding

    try:
        check_encoding(encoding)
    except ValueError as exc:
        raise UsageError(f"--encoding: {exc}") from None
    try:
        return TextSource.from_args(inputs, lines, encoding, allow_stdin=allow_stdin)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _summary(out: Path, info: dict[str, Any]) -> None:
    train = info["parts"]["train"]
    line = (f"prepared {human.count(info['documents'])} documents into {out}: {human.count(info['vocabulary'])} "
            f"words (of {human.count(info['vocabulary_before_filter'])}), {human.count(train['tokens'])} tokens "
            f"for training")
    if "heldout" in info["parts"]:
        held = info["parts"]["heldout"]
        line += f", {human.count(held['documents'])} documents held out"
    emit(line)
    if train["empty"]:
        note(f"note: {train['empty']} training documents have no word left after filtering (they are kept, "
             "and count as documents)")
