"""``distlda convert-gensim MODEL OUT``: a gensim LdaModel file as a distlda model.

gensim saves models as Python pickles. Reading one runs whatever code the file
names, so distlda never reads them itself: this command asks gensim to load the
file (only here, only when gensim is installed and the user runs it), then
copies the topics, priors, settings and vocabulary into a distlda model file,
which holds numbers and JSON only. Convert only files you trust, as you would
before loading them in gensim.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from distlda.cli.common import CliError, emit, note

__all__ = ["add_parser", "run", "load_gensim_model"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("convert-gensim", help="turn a gensim LdaModel file into a distlda model",
                       description="Load a model saved by gensim's LdaModel.save (with gensim itself: the file is a "
                                   "pickle, which runs code when loaded, so convert only files you trust) and save "
                                   "it as a distlda model with the same topics, priors and vocabulary.")
    p.add_argument("model", metavar="MODEL", help="model file saved by gensim (LdaModel or LdaMulticore)")
    p.add_argument("out", metavar="OUT", help="distlda model file to write (.gz or .bz2 to compress)")
    p.set_defaults(func=run)


def load_gensim_model(path: str) -> Any:
    """Load a gensim LDA model file with gensim (this unpickles it); every failure as a one-line CliError."""
    try:
        from gensim.models.ldamodel import LdaModel as GensimLdaModel
    except ImportError:
        raise CliError("reading a gensim model file needs gensim (pip install gensim); distlda does not unpickle "
                       "files itself") from None
    if not Path(path).is_file():
        raise CliError(f"gensim model file not found: {path}")
    try:
        return GensimLdaModel.load(path)
    except Exception as exc:  # an unpickling failure can be of any type: say which file and why, in one line
        raise CliError(f"gensim could not load {path}: {type(exc).__name__}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from distlda.models import LdaModel

    note(f"loading {args.model} with gensim (a pickle: it runs code from the file, so only convert files you trust)")
    theirs = load_gensim_model(args.model)
    try:
        ours = LdaModel.from_gensim(theirs)
    except TypeError as exc:
        raise CliError(f"{args.model}: {exc}") from None
    ours.save(args.out)
    emit(f"{args.out}: {ours.num_topics} topics over {ours.num_terms} terms, converted from {args.model}")
    return 0
