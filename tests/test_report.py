"""The HTML report: content, escaping, self-containment, the topic map, and a real headless-browser render."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from distlda.datasets import make_lda_corpus, synthetic_id2word
from distlda.evaluation import topic_coherence
from distlda.models import LdaModel
from distlda.report import write_report
from distlda.report.layout import classical_mds, js_distances
from distlda.report.svg import BAR_COLOR, fmt_num, nice_ticks

K = 6
NASTY = '<b>&"x"'
NASTY_ESCAPED = "&lt;b&gt;&amp;&quot;x&quot;"
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def model() -> LdaModel:
    """A small trained model with full ``info``; the top word of topic 0 is an HTML-hostile string."""
    corpus = make_lda_corpus(500, 200, K, doc_length=40, random_state=3)
    id2word = synthetic_id2word(200)
    lda = LdaModel(corpus, id2word=id2word, num_topics=K, passes=2, chunksize=250, random_state=0, threads=1,
                   eval_every=0)
    lda.id2word[lda.get_topic_terms(0, 1)[0][0]] = NASTY
    lda.id2word[lda.get_topic_terms(1, 1)[0][0]] = "it's <i>"
    top_ids = [[i for i, _ in lda.get_topic_terms(t, 10)] for t in range(K)]
    history = [{"pass": 1 + i // 2, "documents": 250 * (i + 1), "heldout_per_word_bound": -6.0 + 0.1 * i,
                "perplexity": float(np.exp(6.0 - 0.1 * i))} for i in range(4)]
    lda.info = {
        "corpus": {"documents": 500, "tokens": 20_000, "prepared": "/data/<script>alert(1)</script>"},
        "training": {"passes": 2, "seconds": 1.25, "docs_per_second": 800.0},
        "history": history,
        "coherence": [float(c) for c in topic_coherence(top_ids, coherence="u_mass", corpus=corpus)],
    }
    return lda


@pytest.fixture(scope="module")
def report(model: LdaModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(model, path, title="Topics of <corpus> & co")
    return path


class _Balance(HTMLParser):
    """Checks that every non-void element is closed in order (escaping mistakes break this)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Balance:
    parser = _Balance()
    parser.feed(text)
    parser.close()
    return parser


def _topic_card(text: str, t: int) -> str:
    start = text.index(f'id="topic-{t}"')
    end = text.find('<section class="topic"', start)
    return text[start:end if end > 0 else len(text)]


def test_report_shows_every_topic_with_words_size_and_coherence(model: LdaModel, report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    sizes = np.asarray(model.state.sstats, dtype=np.float64).sum(axis=1)
    sizes /= sizes.sum()
    coherence = model.info["coherence"]
    for t in range(K):
        card = _topic_card(text, t)
        words = [w for w, _ in model.show_topic(t, 12)]
        assert len(words) == 12
        for w in words:
            assert f">{_esc(w)}</text>" in card or _esc(w) in card, (t, w)
        assert f"{fmt_num(sizes[t] * 100)}% of tokens" in card
        assert f"coherence {fmt_num(coherence[t], 4)}" in card
        assert card.count("<rect") == 12  # one bar per word
    for anchor in ("sizes", "heldout", "coherence", "map", "topics"):
        assert f'id="{anchor}"' in text
    assert "Held-out bound during training" in text and "<polyline" in text
    # map circles and line-chart markers: a circle per evaluation, a diamond per pass end (500 and 1,000 documents)
    assert text.count("<circle") == K + len(model.info["history"]) - 2 and text.count("<path d=") == 2


def _esc(word: str) -> str:
    import html

    return html.escape(word, quote=True)


def test_report_escapes_everything(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert NASTY_ESCAPED in text and NASTY not in text
    assert "it&#x27;s &lt;i&gt;" in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script" not in text
    assert "<title>Topics of &lt;corpus&gt; &amp; co</title>" in text
    parsed = _parse(text)
    assert not parsed.errors, parsed.errors[:5]
    assert parsed.stack == [], parsed.stack
    assert NASTY in "".join(parsed.text)  # the browser shows the word as it is


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"https?:", text, re.IGNORECASE)
    assert not re.search(r"""\b(src|srcset|action|xlink:href)\s*=""", text, re.IGNORECASE)
    assert "@import" not in text and "url(" not in text and "@font-face" not in text
    hrefs = re.findall(r'href="([^"]*)"', text)
    assert hrefs and all(h.startswith("#") for h in hrefs)  # links only within the page
    assert text.count("<svg") >= K + 4  # every topic, sizes, history, coherence, map
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text


def test_report_with_one_topic_and_no_info(tmp_path: Path) -> None:
    from distlda.test.utils import common_corpus, common_dictionary

    lda = LdaModel(common_corpus, id2word=common_dictionary, num_topics=1, passes=2, random_state=0, threads=1)
    del lda.info
    path = tmp_path / "one.html"
    write_report(lda, path)
    text = path.read_text(encoding="utf-8")
    assert 'id="topic-0"' in text and 'id="topic-1"' not in text
    assert "No training history" in text and "No coherence" in text
    assert "<title>Topic model report</title>" in text
    assert 'aria-label="map of topic distances"' in text
    assert "100% of tokens" in text
    assert not _parse(text).errors


def test_report_with_empty_info_and_two_topics(tmp_path: Path) -> None:
    from distlda.test.utils import common_corpus, common_dictionary

    lda = LdaModel(common_corpus, id2word=common_dictionary, num_topics=2, passes=2, random_state=0, threads=1)
    lda.info = {}
    path = tmp_path / "two.html"
    write_report(lda, path, title="two")
    text = path.read_text(encoding="utf-8")
    assert 'id="topic-0"' in text and 'id="topic-1"' in text
    assert "No training history" in text and "No coherence" in text
    assert "<h2>Corpus</h2>" not in text and "<h2>Training</h2>" not in text


def test_malformed_info_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from distlda.test.utils import common_corpus, common_dictionary

    lda = LdaModel(common_corpus, id2word=common_dictionary, num_topics=3, passes=1, random_state=0, threads=1)
    lda.info = {"corpus": "not a dict", "training": {"nested": {"a": 1}, "items": list(range(30))},
                "history": [{"documents": "x"}, 5, {"documents": 9, "heldout_per_word_bound": -7.0}],
                "coherence": [1.0, 2.0]}
    path = tmp_path / "bad.html"
    write_report(lda, path)
    text = path.read_text(encoding="utf-8")
    assert "No coherence" in text and "<polyline" in text  # the one valid history point is drawn
    assert "a: 1" in text and "(30 items)" in text
    assert "left out" in caplog.text


def test_report_of_100_topics_is_small(tmp_path: Path) -> None:
    id2word = {i: f"word{i}" for i in range(2000)}
    lda = LdaModel(None, id2word=id2word, num_topics=100, random_state=0)  # untrained: random topics
    lda.info = {"coherence": list(np.linspace(-3.0, -0.5, 100)),
                "history": [{"documents": d, "heldout_per_word_bound": -8 + d / 1e4, "perplexity": 1.0}
                            for d in range(1000, 11000, 1000)]}
    path = tmp_path / "k100.html"
    write_report(lda, path)
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 1_000_000
    assert all(f'id="topic-{t}"' in text for t in range(100))
    assert not _parse(text).errors


def test_write_report_errors(model: LdaModel, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="trained LdaModel"):
        write_report(object(), tmp_path / "x.html")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(model, tmp_path / "missing" / "x.html")
    with pytest.raises(IsADirectoryError):
        write_report(model, tmp_path)
    with pytest.raises(ValueError, match="top_words"):
        write_report(model, tmp_path / "x.html", top_words=0)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_classical_mds_recovers_planar_points() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(7, 2))
    dist = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    coords = classical_mds(dist)
    got = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    np.testing.assert_allclose(got, dist, atol=1e-9)
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_array_equal(classical_mds(np.zeros((1, 1))), np.zeros((1, 2)))
    two = classical_mds(np.array([[0.0, 3.0], [3.0, 0.0]]))
    assert np.linalg.norm(two[0] - two[1]) == pytest.approx(3.0) and np.allclose(two[:, 1], 0.0)
    np.testing.assert_array_equal(classical_mds(np.zeros((4, 4))), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="square"):
        classical_mds(np.zeros((2, 3)))


def test_js_distances_are_a_symmetric_metric() -> None:
    topics = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    d = js_distances(topics)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_allclose(np.diag(d), 0.0)
    assert d[0, 2] == pytest.approx(0.0, abs=1e-12) and 0 < d[0, 1] <= np.sqrt(np.log(2)) + 1e-12


def test_nice_ticks_cover_the_range() -> None:
    for lo, hi in ((0.0, 0.23), (-7.61, -6.8), (250.0, 2000.0), (5.0, 5.0), (-3.0, 0.0)):
        ticks = nice_ticks(lo, hi)
        assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi) and 2 <= len(ticks) <= 12


# ---------------------------------------------------------------------------------------- browser


def _find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _unfilter(kind: int, line: bytearray, prior: bytes, bpp: int) -> bytearray:
    """Undo one PNG row filter (RFC 2083, section 6); None, Sub and Up with numpy, Average and Paeth in Python."""
    if kind == 0:
        return line
    if kind == 1:
        cells = np.frombuffer(bytes(line), np.uint8).reshape(-1, bpp).astype(np.uint64)
        return bytearray((np.cumsum(cells, axis=0) % 256).astype(np.uint8).tobytes())
    if kind == 2:
        total = np.frombuffer(bytes(line), np.uint8).astype(np.uint16) + np.frombuffer(prior, np.uint8)
        return bytearray((total % 256).astype(np.uint8).tobytes())
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prior[i]
        if kind == 3:
            line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = prior[i - bpp] if i >= bpp else 0
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return line


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit, non-interlaced PNG into an (height, width, channels) uint8 array (zlib + struct only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "PNG without IHDR"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (0, 2, 4, 6), f"unsupported PNG {header}"
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1), "truncated PNG data"
    rows, prior = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), prior, bpp)
        prior = bytes(line)
        rows.append(prior)
    return np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, bpp)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = _find_chromium()
    if chromium is None:
        pytest.skip("no chromium binary found (install Debian's chromium, or set CHROMIUM=/path/to/chromium)")
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000",
           report.resolve().as_uri()]
    env = dict(os.environ, HOME=str(tmp_path))
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish the screenshot within 120 s")
    assert done.returncode == 0 and shot.is_file(), f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    img = read_png(shot)[:, :, :3]
    assert img.shape[:2] == (2000, 1280)
    packed = (img[:, :, 0].astype(np.uint32) << 16) | (img[:, :, 1].astype(np.uint32) << 8) | img[:, :, 2]
    colours, counts = np.unique(packed, return_counts=True)
    non_white = float(np.mean(img.min(axis=2) < 245))
    off_background = 1.0 - counts.max() / packed.size
    bar = int(BAR_COLOR[1:], 16)
    bar_pixels = int(np.count_nonzero(packed == bar))
    assert len(colours) >= 100, f"only {len(colours)} distinct colours: the page looks blank"
    assert non_white >= 0.15, f"only {non_white:.1%} of the pixels are not white"
    assert off_background >= 0.25, f"{1 - off_background:.1%} of the pixels have one colour"
    assert bar_pixels >= 5000, f"only {bar_pixels} pixels of the bar colour: the SVG charts did not render"


MEASURE = """<script>
(() => {
  // every SVG's box and the boxes of the text in it, in page pixels, written into the page for --dump-dom
  const charts = [...document.querySelectorAll("svg")].map(svg => {
    const box = r => [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY];
    const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim())
      .map(t => ({text: t.textContent, box: box(t.getBoundingClientRect())}));
    return {name: svg.getAttribute("aria-label"), box: box(svg.getBoundingClientRect()), texts};
  });
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, charts});
  document.body.appendChild(out);
})();
</script>"""


def _chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, HOME=str(tmp_path)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 120 s: {args[:-1]}")
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done


def _measure(chromium: str, page: Path, tmp_path: Path, width: int) -> dict:
    """Boxes of every chart and of its text labels as the browser lays the page out ``width`` pixels wide."""
    import html
    import json

    probe = tmp_path / f"probe-{page.stem}.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(chromium, tmp_path, "--dump-dom", f"--window-size={width},1000", probe.resolve().as_uri()).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, f"the measuring script did not run: {dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def _label_problems(chart: dict, slack: float = 0.5) -> list[str]:
    """Labels outside their SVG, and pairs of labels whose boxes overlap by more than ``slack`` pixels."""
    problems = []
    x0, y0, x1, y1 = chart["box"]
    texts = chart["texts"]
    for t in texts:
        a = t["box"]
        if a[0] < x0 - slack or a[1] < y0 - slack or a[2] > x1 + slack or a[3] > y1 + slack:
            problems.append(f"{chart['name']}: {t['text']!r} at {a} is outside the chart {chart['box']}")
    for i, t in enumerate(texts):
        a = t["box"]
        for u in texts[i + 1:]:
            b = u["box"]
            if min(a[2], b[2]) - max(a[0], b[0]) > slack and min(a[3], b[3]) - max(a[1], b[1]) > slack:
                problems.append(f"{chart['name']}: {t['text']!r} {a} overlaps {u['text']!r} {b}")
    return problems


@pytest.fixture(scope="module")
def crowded_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 topics with the issue's numbers: bounds between -10.4 and -10.2 up to 100,000 documents."""
    id2word = {i: f"word{i}" for i in range(3000)}
    lda = LdaModel(None, id2word=id2word, num_topics=100, random_state=0)  # untrained: random topics
    history = [{"pass": 1 + p, "documents": p * 20_000 + min(j * 4_500, 20_000),
                "heldout_per_word_bound": -10.4 + 0.04 * p + 0.01 * j} for p in range(5) for j in range(1, 6)]
    lda.info = {"corpus": {"documents": 20_000}, "training": {"chunksize": 4_500}, "history": history,
                "coherence": list(np.linspace(-13.0, -0.5, 100))}
    path = tmp_path_factory.mktemp("crowded") / "crowded.html"
    write_report(lda, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("which", ["report", "crowded_report"])
def test_labels_do_not_overlap_in_headless_chromium(which: str, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    chromium = _find_chromium()
    if chromium is None:
        pytest.skip("no chromium binary found (install Debian's chromium, or set CHROMIUM=/path/to/chromium)")
    page: Path = request.getfixturevalue(which)
    width = 1280
    measured = _measure(chromium, page, tmp_path, width)
    charts = {c["name"]: c for c in measured["charts"]}
    for name in ("topic sizes", "held-out per-word bound across training", "coherence per topic",
                 "map of topic distances", "top words of topic 0"):
        assert charts.get(name, {}).get("texts"), f"no labels measured in the chart {name!r}"
    problems = [p for chart in measured["charts"] for p in _label_problems(chart)]
    assert not problems, "\n".join(problems[:20])
    topics = 100 if which == "crowded_report" else K
    shown = {t["text"].split()[0] for t in charts["map of topic distances"]["texts"]}
    assert {str(t) for t in range(topics)} <= shown, "topics without a label on the map"
    bound = charts["held-out per-word bound across training"]["texts"]
    numbers = [t["text"] for t in bound if re.fullmatch(r"-?[\d,.]+", t["text"])]
    assert len(numbers) == len(set(numbers)) >= 6, numbers
    # a screenshot of the whole page, to look at (kept under DISTLDA_SCREENSHOTS when it is set)
    shot = tmp_path / f"{which}.png"
    _chromium(chromium, tmp_path, f"--screenshot={shot}", f"--window-size={width},{measured['height']}",
              page.resolve().as_uri())
    img = read_png(shot)[:, :, :3]
    assert img.shape[:2] == (measured["height"], width)
    assert float(np.mean(img.min(axis=2) < 245)) >= 0.15, "the screenshot is mostly blank"
    keep = os.environ.get("DISTLDA_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
