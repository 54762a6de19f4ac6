"""Text as it comes: Latin-1, Windows-1252, UTF-16 and binary files through `distlda prepare` and `distlda infer`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from distlda.cli.main import main
from distlda.corpora import Dictionary
from distlda.corpora.textfiles import TextSource, count_documents, iter_documents, looks_binary

WORDS = ["café", "crème", "straße", "naïve", "résumé"]
LINES = [f"the {w} and the {v} of document {i}" for i, (w, v) in enumerate(zip(WORDS * 4, WORDS[1:] * 4 + WORDS))]


def write(path: Path, encoding: str, lines: list[str] = LINES) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "cp1252", "utf-16", "utf-8-sig", "utf-32"])
def test_every_letter_survives_each_encoding(tmp_path, encoding, caplog):
    source = TextSource.from_args([str(write(tmp_path / "docs.txt", encoding))])
    with caplog.at_level(logging.WARNING, logger="distlda.corpora.textfiles"):
        texts = [text for _, text in iter_documents(source)]
    assert texts == LINES and count_documents(source) == len(LINES)
    warned = [r.getMessage() for r in caplog.records]
    if encoding in ("latin-1", "cp1252"):  # no byte-order mark, not UTF-8: said once, with the file and line
        assert len(warned) == 1 and f"{tmp_path / 'docs.txt'}:1: not valid UTF-8 (byte 0xe9)" in warned[0]
    else:
        assert warned == []


def test_windows_1252_punctuation_and_line_endings(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes("“quoted” – dash € sign\r\nnext\rold mac\n".encode("cp1252"))
    texts = [t for _, t in iter_documents(TextSource.from_args([str(path)]))]
    assert texts == ["“quoted” – dash € sign", "next", "old mac"]


def test_a_strict_encoding_names_the_file_line_and_byte(tmp_path):
    path = write(tmp_path / "latin.txt", "latin-1")
    with pytest.raises(ValueError, match=r"latin\.txt:1: byte 0xe9 is not valid utf-8"):
        list(iter_documents(TextSource.from_args([str(path)], encoding="utf-8")))
    texts = [t for _, t in iter_documents(TextSource.from_args([str(path)], encoding="latin-1"))]
    assert texts == LINES


def test_prepare_keeps_the_words_of_latin1_and_utf16_files(tmp_path, caplog):
    folder = tmp_path / "texts"
    folder.mkdir()
    write(folder / "a.txt", "latin-1")
    write(folder / "b.txt", "utf-16")
    write(folder / "c.txt", "utf-8")
    assert main(["prepare", str(folder), "--out", str(tmp_path / "prep"), "--no-below", "1", "--no-above", "1"]) == 0
    words = set(Dictionary.load(tmp_path / "prep" / "dictionary.dict").token2id)
    assert set(WORDS) <= words
    assert not {"caf", "cr", "stra", "na", "sum"} & words
    assert [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()] == [
        f"{folder / 'a.txt'}:1: not valid UTF-8 (byte 0xe9); reading the lines of {folder / 'a.txt'} that are not "
        "UTF-8 as Windows-1252 (give --encoding to choose)"]


def test_binary_files_are_skipped_with_a_warning_or_refused_alone(tmp_path, capsys, caplog):
    assert looks_binary(Path("/bin/ls").read_bytes()[:8192]) and not looks_binary("café\n".encode("utf-16"))
    assert main(["prepare", "/bin/ls", "--out", str(tmp_path / "p")]) == 1
    assert "distlda prepare: error: /bin/ls is a binary file, not text" in capsys.readouterr().err
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder / "text.txt", "utf-8")
    (folder / "data.txt").write_bytes(b"\x7fELF\x02\x01\x01\0\0\0" * 50)
    assert main(["prepare", str(folder), "--out", str(tmp_path / "prep"), "--no-below", "1", "--no-above", "1"]) == 0
    assert "prepared 1 documents" in capsys.readouterr().out
    # read three times (count, words, corpus), said once
    assert [r.getMessage() for r in caplog.records] == [f"skipped {folder / 'data.txt'}: a binary file, not text"]


@pytest.mark.slow
def test_infer_reads_standard_input_and_refuses_binary(tmp_path):
    write(tmp_path / "docs.txt", "utf-8", LINES * 5)
    assert main(["prepare", str(tmp_path / "docs.txt"), "--out", str(tmp_path / "prep"), "--no-below", "1"]) == 0
    assert main(["train", str(tmp_path / "prep"), "--topics", "3", "--passes", "1", "--out",
                 str(tmp_path / "m.lda")]) == 0
    new = "\n".join(LINES[:3]).encode("latin-1") + b"\n"
    done = subprocess.run([sys.executable, "-m", "distlda", "infer", str(tmp_path / "m.lda"), "-"], input=new,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [d["document"] for d in docs] == ["stdin:1", "stdin:2", "stdin:3"]
    assert all(d["words"] >= 2 for d in docs)  # café, crème... were read as words, not dropped
    assert b"standard input, line 1: not valid UTF-8" in done.stderr
    refused = subprocess.run([sys.executable, "-m", "distlda", "infer", str(tmp_path / "m.lda"), "/bin/ls"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "/bin/ls is a binary file, not text" in refused.stderr
