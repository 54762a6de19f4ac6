"""Build the demo corpus bundled with distlda: docstrings of Python's standard library.

Each document is the docstring of one public module, class, function or method
of the standard library of the Python that runs this script, prefixed with its
dotted name. Docstrings are part of CPython, distributed under the Python
Software Foundation License, which permits redistribution with its notice (see
distlda/data/DATA-LICENSE.md).

Usage: python tools/make_demo_corpus.py distlda/data/python-docstrings.txt.gz
"""

from __future__ import annotations

import gzip
import importlib
import inspect
import logging
import os
import pkgutil
import re
import sys
import sysconfig
import warnings

logger = logging.getLogger("make_demo_corpus")

SKIP_PREFIXES = ("test", "idlelib", "lib2to3", "turtle", "ensurepip", "venv", "tkinter", "distutils",
                 "__", "_", "antigravity", "this", "pydoc_data", "unittest.test", "ctypes.test", "sqlite3.test")
MIN_WORDS = 12


def iter_modules():
    stdlib = sysconfig.get_paths()["stdlib"]
    names = sorted({m.name for m in pkgutil.iter_modules([stdlib, os.path.join(stdlib, "lib-dynload")])}
                   | set(sys.builtin_module_names))
    for name in names:
        if name.startswith(SKIP_PREFIXES) or "site-packages" in name:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - optional modules may be missing
                continue
        yield name, module
        path = getattr(module, "__path__", None)
        if path:
            for sub in pkgutil.walk_packages(path, prefix=name + "."):
                if any(part.startswith("_") or part in ("test", "tests") for part in sub.name.split(".")):
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        yield sub.name, importlib.import_module(sub.name)
                    except Exception:  # noqa: BLE001
                        continue


def documents():
    seen_text = set()
    for modname, module in iter_modules():
        items = [(modname, module)]
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", modname) != modname:
                continue
            if inspect.isclass(obj) or inspect.isroutine(obj):
                items.append((f"{modname}.{attr}", obj))
                if inspect.isclass(obj):
                    for mname, meth in vars(obj).items():
                        if not mname.startswith("_") and inspect.isroutine(meth):
                            items.append((f"{modname}.{attr}.{mname}", meth))
        for name, obj in items:
            doc = inspect.getdoc(obj) or ""
            text = re.sub(r"\s+", " ", doc).strip()
            if len(text.split()) < MIN_WORDS or text in seen_text:
                continue
            seen_text.add(text)
            yield name, text


def main(out_path: str) -> None:
    logging.basicConfig(level=logging.INFO)
    docs = sorted(documents())
    with gzip.open(out_path, "wt", encoding="utf-8", compresslevel=9) as fh:
        for name, text in docs:
            fh.write(f"{name}\t{text}\n")
    logger.info("wrote %d documents to %s", len(docs), out_path)


if __name__ == "__main__":
    target = sys.argv[1]
    sys.argv = sys.argv[:1]  # some modules read the command line when imported
    main(target)
