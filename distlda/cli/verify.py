"""``distlda verify FILE...``: check every checksum of models, checkpoints, dictionaries and prepared corpora.

A file is a distlda container (a model, a checkpoint, a dictionary, a corpus
shard): every array's CRC-32 and the header's are recomputed. A folder is a
prepared corpus (its dictionary and the shards of its training and held-out
parts) or a binary corpus (its shards). One line per file on stdout; a bad file
is named on stderr, and the exit code is 1 when any file is bad.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterator

from distlda.cli.common import PREPARED_FILE, emit, note

__all__ = ["add_parser", "run", "files_to_verify"]

_CORPUS_FILE = "corpus.json"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="check the checksums of models, checkpoints, dictionaries and corpora",
                       description="Read every part of each FILE and check it against its checksum: models, "
                                   "checkpoints and dictionaries (files), prepared and binary corpora (folders). "
                                   "Exit code 1 when any is damaged.")
    p.add_argument("paths", nargs="+", metavar="FILE", help="a model, checkpoint, dictionary, or corpus folder")
    p.set_defaults(func=run)


def files_to_verify(path: Path) -> Iterator[Path]:
    """The container files behind ``path``: itself, or those of a prepared or binary corpus folder.

    Raises
    ------
    ValueError
        When ``path`` is missing, or a folder that is neither kind of corpus (or lists a shard that is missing).
    """
    if not path.exists():
        raise ValueError(f"{path}: not found")
    if path.is_file():
        yield path
        return
    if (path / PREPARED_FILE).exists():
        yield path / "dictionary.dict"
        for part in ("train", "heldout"):
            if (path / part).exists():
                yield from files_to_verify(path / part)
        return
    if (path / _CORPUS_FILE).exists():
        from distlda.corpora import BinaryCorpus

        for shard in BinaryCorpus(path, verify=False).shards:  # reads corpus.json, which names the shards
            yield path / shard.file
        return
    raise ValueError(f"{path}: a folder that is neither a prepared corpus ({PREPARED_FILE}) nor a binary corpus "
                     f"({_CORPUS_FILE})")


def run(args: argparse.Namespace) -> int:
    from distlda.io.container import verify_container

    bad = []
    for given in args.paths:
        try:
            files = list(files_to_verify(Path(given)))
        except (ValueError, OSError) as exc:
            files = []
            bad.append(given)
            note(f"distlda verify: {exc}")
        for file in files:
            try:
                header = verify_container(file)
            except OSError as exc:
                bad.append(str(file))
                note(f"distlda verify: {file}: {exc.strerror or exc}")
            except ValueError as exc:  # ContainerError names the file and the part
                bad.append(str(file))
                note(f"distlda verify: damaged: {exc}")
            else:
                emit(f"ok: {file} ({header.get('kind', 'distlda file')})")
    if bad:
        note(f"distlda verify: {len(bad)} bad: {', '.join(bad)}")
        return 1
    return 0
