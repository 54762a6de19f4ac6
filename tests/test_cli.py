"""The ``distlda`` command end to end, through its real entry point (a subprocess; error messages in-process)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distlda.models import LdaModel


def distlda(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distlda", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def _sample_lines(n: int) -> list[str]:
    """Real text: the bundled sample corpus (always there), or the Debian descriptions when present."""
    from distlda.datasets.sample import iter_sample_documents

    texts = [text for _, text in iter_sample_documents()]
    return (texts * (n // len(texts) + 1))[:n]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    lines = _sample_lines(1500)
    (root / "docs.txt").write_text("\n".join(lines) + "\n")
    with gzip.open(root / "docs.txt.gz", "wt") as fh:
        fh.write("\n".join(lines[:300]) + "\n")
    folder = root / "folder" / "sub"
    folder.mkdir(parents=True)
    for i, text in enumerate(lines[:40]):
        (folder / f"doc{i:02d}.txt").write_text(text)
    (root / "folder" / "image.png").write_bytes(b"\x89PNG not text")
    return root


@pytest.fixture(scope="module")
def prepared(workdir) -> Path:
    done = distlda("prepare", "docs.txt", "--out", "prep", "--holdout", "0.1", "--no-below", "3", cwd=workdir)
    assert done.returncode == 0, done.stderr
    return workdir / "prep"


@pytest.fixture(scope="module")
def model(workdir, prepared) -> Path:
    done = distlda("train", "prep", "--topics", "8", "--passes", "3", "--chunksize", "300", "--out", "m.lda",
                   cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert re.search(r"trained 8 topics on 1\.4k documents in .* docs/s", done.stdout), done.stdout
    assert "held-out bound" in done.stdout and "saved the model to m.lda" in done.stdout
    assert re.search(r"pass 3, .* documents: held-out bound -\d+\.\d+ per word, perplexity", done.stderr)
    return workdir / "m.lda"


def test_prepare_writes_dictionary_corpus_and_holdout(workdir, prepared):
    info = json.loads((prepared / "prepare.json").read_text())
    assert info["documents"] == 1500
    assert info["parts"]["train"]["documents"] == 1350 and info["parts"]["heldout"]["documents"] == 150
    from distlda.corpora import BinaryCorpus, Dictionary

    assert len(BinaryCorpus(prepared / "train")) == 1350 and len(BinaryCorpus(prepared / "heldout")) == 150
    assert len(Dictionary.load(prepared / "dictionary.dict")) == info["vocabulary"]
    names = gzip.open(prepared / "train-names.txt.gz", "rt").read().split("\n")
    assert names[0].startswith("docs.txt:")


@pytest.mark.slow
def test_prepare_folder_and_gz_and_options(workdir):
    done = distlda("prepare", "folder", "--out", "prep_folder", "--no-below", "1", "--min-len", "4",
                   "--stopwords", "none", cwd=workdir)
    assert done.returncode == 0, done.stderr
    info = json.loads((workdir / "prep_folder" / "prepare.json").read_text())
    assert info["documents"] == 40 and info["tokenizer"] == {"lowercase": True, "min_len": 4, "max_len": 15,
                                                             "stopwords": "none"}
    names = gzip.open(workdir / "prep_folder" / "train-names.txt.gz", "rt").read().split()
    assert names[0] == "sub/doc00.txt" and len(names) == 40
    done = distlda("prepare", "docs.txt.gz", "--out", "prep_gz", "--no-below", "2", cwd=workdir)
    assert done.returncode == 0 and json.loads((workdir / "prep_gz" / "prepare.json").read_text())["documents"] == 300


@pytest.mark.slow
def test_topics_in_three_formats(model, workdir):
    text = distlda("topics", str(model), "--words", "5", cwd=workdir)
    assert text.returncode == 0
    lines = text.stdout.strip().split("\n")
    assert len(lines) == 8 and all(re.match(r"topic +\d+ \( *\d+\.\d%\): (\S+ ){4}\S+$", line) for line in lines)
    data = json.loads(distlda("topics", str(model), "--format", "json").stdout)
    assert len(data) == 8 and len(data[0]["words"]) == 10
    assert abs(sum(t["size"] for t in data) - 1.0) < 1e-6
    rows = list(csv.DictReader(io.StringIO(distlda("topics", str(model), "--format", "csv").stdout)))
    assert len(rows) == 80 and rows[0]["rank"] == "1"


@pytest.mark.slow
def test_infer_jsonl_and_csv(model, workdir):
    (workdir / "new.txt").write_text("\n".join(_sample_lines(5)) + "\n")
    done = distlda("infer", str(model), "new.txt", cwd=workdir)
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.strip().split("\n")]
    assert [d["document"] for d in docs] == [f"new.txt:{i}" for i in range(1, 6)]
    # 8 probabilities of float32 topics, each rounded to 6 decimals: the sum is within 8 × 5e-7 of the exact one
    assert all(0.9 < sum(p for _, p in d["topics"]) <= 1.0 + 8 * 5e-7 + 1e-6 for d in docs), [d["topics"] for d in docs]
    again = distlda("infer", str(model), "new.txt", cwd=workdir)
    assert again.stdout == done.stdout  # deterministic
    rows = list(csv.DictReader(io.StringIO(distlda("infer", str(model), "new.txt", "--format", "csv",
                                                   cwd=workdir).stdout)))
    assert {r["document"] for r in rows} == {d["document"] for d in docs}
    model_obj = LdaModel.load(str(model))
    assert model_obj.info["tokenizer"]["stopwords"] == "english"


@pytest.mark.parametrize("args, code, message", [
    (["prepare", "missing.txt", "--out", "p"], 1, "input not found: missing.txt"),
    (["prepare", "docs.txt", "--out", "p", "--holdout", "1.5"], 1, "--holdout must be in [0, 1)"),
    (["train", "missing_dir", "--out", "m.lda"], 1, "prepared corpus folder not found"),
    (["train", "folder", "--out", "m.lda"], 1, "is not a prepared corpus"),
    (["topics", "docs.txt"], 1, "is not a distlda model"),
    (["topics", "missing.lda"], 1, "model file not found"),
    (["infer", "docs.txt", "docs.txt"], 1, "is not a distlda model"),
    (["train", "prep", "--topics", "0", "--out", "x.lda"], 2, "argument --topics/-k: must be at least 1, got 0"),
    (["train", "prep", "--topics", "-3", "--out", "x.lda"], 2, "argument --topics/-k: must be at least 1, got -3"),
    (["train", "prep", "--passes", "0", "--out", "x.lda"], 2, "argument --passes: must be at least 1, got 0"),
    (["train", "prep", "--threads", "0", "--out", "x.lda"], 2, "argument --threads: must be at least 1, got 0"),
    (["train", "prep", "--alpha", "lots", "--out", "x.lda"], 2, "--alpha must be a positive number or one of"),
    (["demo", "--topics", "0"], 2, "argument --topics: must be at least 1"),
    (["prepare", "docs.txt", "--out", "p", "--encoding", "klingon"], 2, "--encoding: unknown encoding 'klingon'"),
    (["prepare", "-", "--out", "p"], 1, "cannot read standard input ('-')"),
    (["train", "prep", "--topics", "three", "--out", "x.lda"], 2, "invalid int value"),
    (["topics"], 2, "the following arguments are required"),
    (["frobnicate"], 2, "invalid choice"),
    (["train", "prep", "--cluster", "nonsense", "--out", "x.lda"], 2, "--cluster must be HOST:PORT"),
    (["status", "--port", "1"], 1, "no name server at 127.0.0.1:1"),
])
def test_errors_are_one_clear_line(workdir, prepared, monkeypatch, capsys, args, code, message):
    # In this process, through main(), which `python -m distlda` and the `distlda` script call: a subprocess
    # per case costs a second of imports (test_verbose_shows_the_traceback runs an error through the real one).
    from distlda.cli.main import main

    monkeypatch.chdir(workdir)
    try:
        returned = main(args)
    except SystemExit as exc:  # argparse's usage errors exit from inside parse_args
        returned = exc.code
    out, err = capsys.readouterr()
    assert returned == code, (out, err)
    assert message in err
    assert "Traceback" not in err and out == ""


def test_verbose_shows_the_traceback(workdir):
    done = distlda("-v", "topics", "docs.txt", cwd=workdir)
    assert done.returncode == 1 and "Traceback" in done.stderr


@pytest.mark.slow
def test_ctrl_c_saves_what_was_trained(workdir, prepared):
    proc = subprocess.Popen([sys.executable, "-m", "distlda", "train", "prep", "--topics", "30", "--passes", "500",
                             "--chunksize", "50", "--eval-every", "1", "--out", "interrupted.lda"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        progress = ""
        while "held-out bound" not in progress:  # interrupt once an M-step is done (and reported), not before
            line = proc.stderr.readline()
            assert line, f"training ended before its first report: {progress}"
            progress += line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        err = progress + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "saved the model to interrupted.lda" in out
    assert "distlda train prep --resume interrupted.lda.ckpt --out interrupted.lda" in err
    assert (workdir / "interrupted.lda.ckpt").exists()
    saved = LdaModel.load(str(workdir / "interrupted.lda"))
    assert saved.info["training"]["interrupted"] and saved.num_updates > 0


@pytest.mark.parametrize("signal_error, stopped", [(KeyboardInterrupt, "interrupted"), (None, "terminated")])
def test_a_signal_wrapped_by_compiled_code_still_stops_and_keeps(signal_error, stopped):
    """Ctrl-C landing while numba loads a cached kernel surfaces as a SystemError caused by the KeyboardInterrupt
    (seen in CI): training must stop as if interrupted, keeping its M-steps, not fail with the SystemError."""
    from distlda.cli.train import Terminated, _fit
    from distlda.corpora.dictionary import Dictionary

    texts = [text.split() for text in _sample_lines(300)]
    dictionary = Dictionary(texts)
    corpus = [dictionary.doc2bow(text) for text in texts]
    model = LdaModel(id2word=dictionary, num_topics=5, chunksize=50, random_state=0)
    signal_error = signal_error or Terminated

    def on_mstep(run) -> None:
        if run.msteps == 2:
            try:
                raise signal_error()
            except KeyboardInterrupt as exc:
                raise SystemError("CPUDispatcher returned a result with an exception set") from exc

    assert _fit(model, corpus, on_mstep, resuming=False) == stopped
    assert model.num_updates == 100

    def plain_failure(run) -> None:
        raise SystemError("not a signal")

    with pytest.raises(SystemError, match="not a signal"):
        _fit(model, corpus, plain_failure, resuming=False)


@pytest.mark.slow
@pytest.mark.distributed
def test_cluster_status_and_training_on_it(workdir, prepared):
    proc = subprocess.Popen([sys.executable, "-m", "distlda", "cluster", "--workers", "2", "--threads", "1"],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "ns_conf=" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        port = re.search(r"'port': (\d+)", line).group(1)
        status = distlda("status", "--port", port, cwd=workdir)
        assert status.returncode == 0, status.stderr
        assert re.search(r"dispatcher at 127\.0\.0\.1:\d+: 2 workers registered, 0 in use", status.stdout)
        trained = distlda("train", "prep", "--topics", "5", "--passes", "1", "--cluster", f"127.0.0.1:{port}",
                          "--out", "clustered.lda", cwd=workdir)
        assert trained.returncode == 0, trained.stderr
        assert f"cluster 127.0.0.1:{port}" in trained.stdout
        status = distlda("status", "--port", port, cwd=workdir)
        assert re.search(r"2 workers registered, 2 in use; 0 jobs queued, \d+ jobs and 1\.4k documents done",
                         status.stdout), status.stdout
        assert len(re.findall(r"distlda\.lda_worker\.\w+ +\d+ +[\d.]+[kM]? +0 +[\d.]+s ago", status.stdout)) == 2, status.stdout
        local = distlda("train", "prep", "--topics", "5", "--passes", "1", "--out", "local.lda", cwd=workdir)
        assert local.returncode == 0
        a, b = LdaModel.load(str(workdir / "clustered.lda")), LdaModel.load(str(workdir / "local.lda"))
        assert (a.state.sstats == b.state.sstats).all()  # same model on a cluster as locally
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


@pytest.mark.parametrize("num_docs, chunksize, update_every", [(55_596, 2000, 1), (2_674, 500, 1), (10_103, 1000, 2),
                                                               (999, 2000, 1), (4_000, 2000, 0), (1, 1, 1),
                                                               (12_345, 7, 3)])
def test_even_chunksize_leaves_no_short_last_minibatch(num_docs, chunksize, update_every):
    from distlda.cli.train import even_chunksize

    size = even_chunksize(num_docs, chunksize, update_every)
    if update_every == 0 or num_docs <= chunksize * update_every:
        assert size == chunksize
        return
    batch = size * update_every
    batches = -(-num_docs // batch)
    tail = num_docs - (batches - 1) * batch
    assert batch - tail < batches * update_every  # the last mini-batch is as full as the others, within rounding
    assert abs(size - chunksize) <= chunksize / 2  # near what was asked for
