"""`distlda verify`, one-line errors for missing parts of a prepared corpus, and a command line that answers
`--help` and usage errors without importing numba."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distlda.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from distlda.datasets.sample import iter_sample_documents

    root = tmp_path_factory.mktemp("verify")
    (root / "docs.txt").write_text("\n".join(text for _, text in iter_sample_documents()) + "\n")
    assert main(["prepare", str(root / "docs.txt"), "--out", str(root / "prep"), "--holdout", "0.1"]) == 0
    assert main(["train", str(root / "prep"), "--topics", "4", "--passes", "1", "--out", str(root / "m.lda")]) == 0
    return root


def flip_a_byte_of(path: Path, array: str) -> None:
    """Change one byte inside ``array`` of a container (its header says where the array starts)."""
    from distlda.io.container import _read_header

    header, data_start, _ = _read_header(path)
    offset = data_start + header["arrays"][array]["offset"] + 3
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x40]))


def test_verify_checks_models_dictionaries_and_prepared_folders(trained, capsys):
    assert main(["verify", str(trained / "m.lda"), str(trained / "prep")]) == 0
    out = capsys.readouterr().out
    assert f"ok: {trained / 'm.lda'} (distlda.LdaModel)" in out
    assert f"ok: {trained / 'prep' / 'dictionary.dict'}" in out
    assert f"ok: {trained / 'prep' / 'train' / 'shard-00000.dlc'}" in out and "heldout" in out


def test_verify_names_a_damaged_file_and_the_part(trained, tmp_path, capsys):
    import shutil

    bad_model = tmp_path / "bad.lda"
    shutil.copy(trained / "m.lda", bad_model)
    flip_a_byte_of(bad_model, "sstats_wm")
    copy = tmp_path / "prep"
    shutil.copytree(trained / "prep", copy)
    flip_a_byte_of(copy / "train" / "shard-00000.dlc", "counts")
    assert main(["verify", str(trained / "m.lda"), str(bad_model), str(copy), str(tmp_path / "missing")]) == 1
    out, err = capsys.readouterr()
    assert f"ok: {trained / 'm.lda'}" in out and f"ok: {copy / 'dictionary.dict'}" in out
    assert f"{bad_model} is corrupt: the checksum of array 'sstats_wm' does not match" in err
    assert f"{copy / 'train' / 'shard-00000.dlc'} is corrupt: the checksum of array 'counts'" in err
    assert f"{tmp_path / 'missing'}: not found" in err
    assert f"3 bad: {bad_model}, {copy / 'train' / 'shard-00000.dlc'}, {tmp_path / 'missing'}" in err


def test_a_missing_dictionary_is_one_line_naming_it(trained, tmp_path, capsys):
    import shutil

    copy = tmp_path / "prep"
    shutil.copytree(trained / "prep", copy)
    (copy / "dictionary.dict").unlink()
    assert main(["train", str(copy), "--out", str(tmp_path / "m.lda")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"distlda train: error: {copy} has no dictionary ({copy / 'dictionary.dict'} is missing): "
                           "prepare it again with `distlda prepare`")
    shutil.rmtree(copy / "train")
    (copy / "dictionary.dict").write_bytes((trained / "prep" / "dictionary.dict").read_bytes())
    assert main(["train", str(copy), "--out", str(tmp_path / "m.lda")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"distlda train: error: {copy} is not a usable prepared corpus") and "Errno" not in err


def test_help_and_usage_errors_do_not_import_numba():
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from distlda.cli.main import main
        codes = []
        for argv in (["--help"], ["train", "--help"], ["train", "p", "--topics", "0", "--out", "m"], ["cluster", "-h"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    codes.append(main(argv))
                except SystemExit as exc:
                    codes.append(exc.code)
        print(json.dumps([codes, "numba" in sys.modules]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    codes, numba_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0, 0, 2, 0] and not numba_loaded


def test_help_documents_the_exit_codes():
    done = subprocess.run([sys.executable, "-m", "distlda", "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for code in ("0 trained", "1 failure", "2 usage error", "75 the cluster was lost", "130 Ctrl-C", "143 SIGTERM"):
        assert code in text
    assert "--resume CHECKPOINT" in text and "--force" in text
