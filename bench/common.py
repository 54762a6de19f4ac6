"""What the benchmark scripts share: the layout of a prepared dataset and the fixed training settings.

A prepared dataset is a folder ``<data dir>/<name>/`` holding the same documents in the
input format of every system (see :class:`DatasetFiles`). ``info.json`` is written
last, so a folder without it is an unfinished preparation.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_DATA_DIR = BENCH_DIR / "data"
QUICK_DATA_DIR = DEFAULT_DATA_DIR / "quick"
RESULTS_DIR = BENCH_DIR / "results"
DATASETS = ("debian", "synthetic")

# Training settings shared by every system (see bench/README.md).
NUM_TOPICS = 100
CHUNKSIZE = 2000
DECAY = 0.5
OFFSET = 1.0
ITERATIONS = 50
GAMMA_THRESHOLD = 0.001
PRIOR = 1.0 / NUM_TOPICS  # alpha and eta
DEFAULT_GIBBS_PER_PASS = 100
HOLDOUT_FRACTION = 0.1

SYSTEM_NAMES = ("distlda", "gensim", "gensim-multicore", "sklearn", "tomotopy")
BLAS_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Config:
    """One configuration of the comparison: a system with a number of threads or workers.

    Parameters
    ----------
    key : str
        Short name used on the command line (``--systems``) and in the raw results.
    system : str
        Name in ``SYSTEM_NAMES`` (what ``run_one.py --system`` takes).
    threads : int
        Threads (distlda, tomotopy) or worker processes (gensim LdaMulticore).
    label : str
        Name in the tables.
    """

    key: str
    system: str
    threads: int
    label: str


CONFIGS = (
    Config("distlda-1t", "distlda", 1, "distlda LdaModel, 1 thread"),
    Config("distlda-2t", "distlda", 2, "distlda LdaModel, 2 threads"),
    Config("gensim", "gensim", 1, "gensim LdaModel"),
    Config("gensim-multicore-2w", "gensim-multicore", 2, "gensim LdaMulticore, 2 workers"),
    Config("sklearn", "sklearn", 1, "scikit-learn, online"),
    Config("tomotopy-1w", "tomotopy", 1, "tomotopy (Gibbs), 1 worker"),
    Config("tomotopy-2w", "tomotopy", 2, "tomotopy (Gibbs), 2 workers"),
)
BASELINE = "gensim"


def blas_threads_for(system: str, threads: int) -> int:
    """BLAS threads per process that match the cores a configuration is meant to use.

    distlda and tomotopy use ``threads`` cores in one process. gensim LdaModel and
    scikit-learn (``n_jobs=1``) are the single-core baselines; gensim LdaMulticore's
    ``threads`` worker processes get one BLAS thread each.
    """
    return threads if system in ("distlda", "tomotopy") else 1


@dataclass(frozen=True)
class DatasetFiles:
    """Paths of one prepared dataset.

    Parameters
    ----------
    root : pathlib.Path
        The dataset folder, ``<data dir>/<name>``.
    """

    root: Path

    @classmethod
    def of(cls, data_dir: str | os.PathLike, name: str) -> "DatasetFiles":
        """The files of dataset ``name`` under ``data_dir``."""
        return cls(Path(data_dir) / name)

    @property
    def name(self) -> str:
        """Dataset name (the folder name)."""
        return self.root.name

    @property
    def train_bin(self) -> Path:
        """Training documents as a distlda BinaryCorpus (distlda's input)."""
        return self.root / "train.bin"

    @property
    def heldout_bin(self) -> Path:
        """Held-out documents as a distlda BinaryCorpus (every system is scored on them)."""
        return self.root / "heldout.bin"

    @property
    def train_mm(self) -> Path:
        """Training documents in Matrix Market format (gensim's input)."""
        return self.root / "train.mm"

    @property
    def train_npz(self) -> Path:
        """Training documents as a scipy CSR matrix, float32 counts (scikit-learn's input)."""
        return self.root / "train.npz"

    @property
    def train_txt(self) -> Path:
        """Training documents as space-separated tokens, one document per line (tomotopy's input)."""
        return self.root / "train.txt"

    @property
    def dictionary(self) -> Path:
        """The vocabulary (distlda Dictionary file)."""
        return self.root / "dictionary.dict"

    @property
    def true_topics(self) -> Path:
        """True topic-word distributions, K x V float64 (synthetic data only)."""
        return self.root / "true_topics.npy"

    @property
    def info(self) -> Path:
        """Sizes and the parameters the dataset was built with; written last."""
        return self.root / "info.json"

    def read_info(self) -> dict[str, Any]:
        """The content of ``info.json``.

        Raises
        ------
        FileNotFoundError
            When the dataset has not been prepared (run bench/prepare.py).
        """
        if not self.info.is_file():
            raise FileNotFoundError(f"{self.root} is not a prepared dataset (no info.json); run: python "
                                    f"bench/prepare.py --data-dir {self.root.parent} --datasets {self.name}")
        return json.loads(self.info.read_text(encoding="utf-8"))


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary path next to ``path`` (removed first if a crash left it behind)."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    elif tmp.exists():
        tmp.unlink()
    return tmp


def publish(tmp: Path, path: Path) -> None:
    """Move a finished ``tmp`` file or folder to ``path``, replacing what is there."""
    if path.is_dir():
        shutil.rmtree(path)
    os.replace(tmp, path)


def write_marked_section(path: Path, section: str, begin: str, end: str) -> None:
    """Put ``section`` between the markers ``begin`` and ``end`` in ``path``, adding them at its end when
    missing; nothing else in the file changes."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{section.rstrip()}\n{end}"
    start, stop = text.find(begin), text.find(end)
    if start < 0 and stop < 0:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n"
    elif 0 <= start < stop:
        text = text[:start] + block + text[stop + len(end):]
    else:
        raise SystemExit(f"{path}: the markers {begin} and {end} are not both there in that order; fix the file")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
