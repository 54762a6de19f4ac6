"""Coherence: agreement with gensim 4.4's CoherenceModel, and argument checking."""

from __future__ import annotations

import gzip
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

gensim = pytest.importorskip("gensim")
from gensim.corpora import Dictionary  # noqa: E402
from gensim.models import CoherenceModel  # noqa: E402
from gensim.test.utils import common_corpus, common_dictionary, common_texts  # noqa: E402

from distlda.corpora.csr import bow_to_chunk  # noqa: E402
from distlda.evaluation import EPSILON, c_npmi, topic_coherence, u_mass  # noqa: E402

# the shared data folder sits next to the repository (../shared/data); DISTLDA_DATA points elsewhere
DATA = Path(os.environ.get("DISTLDA_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
DEBIAN = DATA / "debian-descriptions.txt.gz"
RTOL = 1e-9


def gensim_scores(topics, coherence, *, texts=None, corpus=None, dictionary, window_size=None):
    """Per-topic coherence by gensim; one process so that its window counting is the sequential one."""
    cm = CoherenceModel(
        topics=[list(t) for t in topics], texts=texts, corpus=corpus, dictionary=dictionary,
        coherence=coherence, window_size=window_size, topn=max(len(t) for t in topics), processes=1,
    )
    return np.array(cm.get_coherence_per_topic(), dtype=np.float64)


def ids(dictionary, words):
    return [dictionary.token2id[w] for w in words.split()]


COMMON_TOPICS_WORDS = [
    "human computer interface system",
    "graph trees minors",
    "user response time survey eps",
    "system user system graph",  # a repeated word
    "trees computer",
]


@pytest.fixture(scope="module")
def common_topics():
    return [ids(common_dictionary, t) for t in COMMON_TOPICS_WORDS]


@pytest.fixture(scope="module")
def debian():
    """The first 1,500 Debian descriptions, lower-cased words of two or more letters."""
    if not DEBIAN.is_file():
        pytest.skip(f"{DEBIAN} is absent: set DISTLDA_DATA to the folder holding debian-descriptions.txt.gz")
    token = re.compile(r"[a-z]{2,}")
    with gzip.open(DEBIAN, "rt", encoding="utf-8") as f:
        texts = [token.findall(line.lower()) for _, line in zip(range(1500), f)]
    dictionary = Dictionary(texts)
    dictionary.filter_extremes(no_below=3, no_above=0.5)
    corpus = [dictionary.doc2bow(t) for t in texts]
    rng = np.random.default_rng(7)
    by_df = sorted(dictionary.dfs, key=lambda i: -dictionary.dfs[i])
    topics = [rng.choice(by_df[:250], size=10, replace=False).tolist() for _ in range(8)]
    topics.append(by_df[:12])  # the most frequent words: many repeats inside windows
    return texts, dictionary, corpus, topics


# --------------------------------------------------------------------------- u_mass


def test_u_mass_matches_gensim_on_common_corpus(common_topics):
    expected = gensim_scores(common_topics, "u_mass", corpus=common_corpus, dictionary=common_dictionary)
    got = u_mass(common_topics, common_corpus)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_u_mass_closed_form():
    corpus = [[(0, 1), (1, 1)], [(0, 2)], [(1, 1), (2, 1)], [(2, 3)]]
    # pairs (1 | 0): D(1, 0) = 1, D(0) = 2 ; (2 | 0): 0 ; (2 | 1): D(2, 1) = 1, D(1) = 2
    n = 4.0
    expected = np.mean([
        np.log((1 / n + EPSILON) / (2 / n)),
        np.log((0 / n + EPSILON) / (2 / n)),
        np.log((1 / n + EPSILON) / (2 / n)),
    ])
    np.testing.assert_allclose(u_mass([[0, 1, 2]], corpus), [expected], rtol=1e-12)


def test_u_mass_matches_gensim_on_debian(debian):
    texts, dictionary, corpus, topics = debian
    expected = gensim_scores(topics, "u_mass", corpus=corpus, dictionary=dictionary)
    np.testing.assert_allclose(u_mass(topics, corpus), expected, rtol=RTOL)
    # every corpus form iter_chunks accepts gives the same numbers
    chunk = bow_to_chunk(corpus)
    np.testing.assert_allclose(u_mass(topics, chunk, chunksize=97), expected, rtol=RTOL)
    matrix = sp.csr_matrix((chunk.counts, chunk.ids, chunk.indptr), shape=(len(corpus), len(dictionary)))
    np.testing.assert_allclose(u_mass(topics, matrix), expected, rtol=RTOL)


def test_u_mass_from_texts_like_gensim(debian):
    texts, dictionary, _, topics = debian
    expected = gensim_scores(topics, "u_mass", texts=texts, dictionary=dictionary)
    got = topic_coherence(topics, "u_mass", texts=texts, dictionary=dictionary)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_u_mass_word_missing_from_corpus_like_gensim():
    dictionary = Dictionary(common_texts)
    dictionary.add_documents([["neverseen"]])  # in the dictionary, in no document of common_corpus
    absent = dictionary.token2id["neverseen"]
    topics = [
        [absent] + ids(dictionary, "human computer"),  # absent word conditions: pairs worth 0
        ids(dictionary, "human computer") + [absent],  # absent word conditioned: log(eps / P)
    ]
    expected = gensim_scores(topics, "u_mass", corpus=common_corpus, dictionary=dictionary)
    got = u_mass(topics, common_corpus)
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    assert np.all(np.isfinite(got))


def test_u_mass_zero_counts_are_absent():
    with_zero = [[(0, 1), (1, 0)], [(1, 1)]]
    without = [[(0, 1)], [(1, 1)]]
    np.testing.assert_array_equal(u_mass([[0, 1]], with_zero), u_mass([[0, 1]], without))


# --------------------------------------------------------------------------- c_npmi


@pytest.mark.parametrize("window_size", [None, 2, 3, 5])
def test_c_npmi_matches_gensim_on_common_texts(common_topics, window_size):
    expected = gensim_scores(
        common_topics, "c_npmi", texts=common_texts, dictionary=common_dictionary, window_size=window_size
    )
    got = c_npmi(common_topics, common_texts, common_dictionary, window_size or 10)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_c_npmi_matches_gensim_on_debian(debian):
    texts, dictionary, _, topics = debian
    expected = gensim_scores(topics, "c_npmi", texts=texts, dictionary=dictionary)
    got = c_npmi(topics, texts, dictionary)
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    np.testing.assert_allclose(
        topic_coherence(topics, "c_npmi", texts=texts, dictionary=dictionary), expected, rtol=RTOL
    )
    # a {token: id} dict and an {id: token} dict work as well as the Dictionary
    np.testing.assert_allclose(c_npmi(topics, texts, dict(dictionary.token2id)), expected, rtol=RTOL)
    np.testing.assert_allclose(c_npmi(topics, texts, dict(dictionary.items())), expected, rtol=RTOL)


def test_c_npmi_matches_gensim_on_random_repetitive_texts():
    """Tiny vocabulary, many repeats, empty and short texts: gensim's window quirk in every form."""
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(7)]
    texts = [list(rng.choice(vocab, size=rng.integers(0, 30))) for _ in range(40)]
    texts.append(["w0"])
    dictionary = Dictionary([vocab])
    topics = [ids(dictionary, "w0 w1 w2 w3"), ids(dictionary, "w4 w5 w6"), ids(dictionary, "w2 w4 w2")]
    for window_size in (1, 2, 4, 9, 40):
        expected = gensim_scores(topics, "c_npmi", texts=texts, dictionary=dictionary, window_size=window_size)
        got = c_npmi(topics, texts, dictionary, window_size)
        np.testing.assert_allclose(got, expected, rtol=RTOL, err_msg=f"window_size={window_size}")


def _npmi_reference(topics, texts, token2id, window_size):
    """Textbook boolean sliding windows, written as plainly as possible."""
    windows = []
    for text in texts:
        ids_ = [token2id.get(t, -1) for t in text]
        if len(ids_) <= window_size:
            windows.append(set(ids_))
        else:
            windows.extend(set(ids_[j:j + window_size]) for j in range(len(ids_) - window_size + 1))
    n = len(windows)
    scores = []
    for topic in topics:
        values = []
        for a in topic:
            for b in topic:
                if a is b:
                    continue
                pa = sum(a in w for w in windows) / n
                pb = sum(b in w for w in windows) / n
                pab = sum(a in w and b in w for w in windows) / n
                values.append(np.log((pab + EPSILON) / (pa * pb)) / -np.log(pab + EPSILON))
        scores.append(np.mean(values))
    return np.array(scores)


def test_c_npmi_exact_windows_match_reference():
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(6)]
    texts = [list(rng.choice(vocab, size=rng.integers(0, 25))) for _ in range(30)]
    token2id = {w: i for i, w in enumerate(vocab)}
    topics = [[0, 1, 2], [3, 4, 5, 0]]
    for window_size in (1, 3, 6):
        expected = _npmi_reference(topics, texts, token2id, window_size)
        got = c_npmi(topics, texts, token2id, window_size, gensim_windows=False)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_c_npmi_word_missing_from_texts_counts_zero(caplog):
    dictionary = Dictionary(common_texts)
    dictionary.add_documents([["neverseen"]])
    absent = dictionary.token2id["neverseen"]
    human, computer, interface = ids(dictionary, "human computer interface")
    with caplog.at_level(logging.WARNING, logger="distlda.evaluation.coherence"):
        got = c_npmi([[human, computer, absent], [human, computer, interface]], common_texts, dictionary)
    assert "occur in no window" in caplog.text
    assert np.all(np.isfinite(got))
    # the pairs with the absent word are 0, the pair (human, computer) keeps its value
    pair = c_npmi([[human, computer]], common_texts, dictionary)[0]
    np.testing.assert_allclose(got[0], pair * 2 / 6, rtol=1e-12)


def test_c_npmi_is_symmetric_in_topic_order(common_topics):
    reversed_topics = [t[::-1] for t in common_topics]
    np.testing.assert_allclose(
        c_npmi(common_topics, common_texts, common_dictionary),
        c_npmi(reversed_topics, common_texts, common_dictionary),
        rtol=1e-12,
    )


# --------------------------------------------------------------------------- bad arguments


def test_dispatch_names_what_is_missing(common_topics):
    with pytest.raises(ValueError, match="texts"):
        topic_coherence(common_topics, "c_npmi", corpus=common_corpus, dictionary=common_dictionary)
    with pytest.raises(ValueError, match="dictionary"):
        topic_coherence(common_topics, "c_npmi", texts=common_texts)
    with pytest.raises(ValueError, match="corpus"):
        topic_coherence(common_topics, "u_mass")
    with pytest.raises(ValueError, match="coherence must be one of"):
        topic_coherence(common_topics, "c_v", texts=common_texts, dictionary=common_dictionary)
    np.testing.assert_array_equal(
        topic_coherence(common_topics, corpus=common_corpus), u_mass(common_topics, common_corpus)
    )


@pytest.mark.parametrize(
    "topics, error, match",
    [
        ([], ValueError, "empty"),
        ([[0]], ValueError, "at least 2"),
        ([[0, 1], []], ValueError, "topic 1"),
        ([[0, -1]], ValueError, "negative"),
        ([["human", "computer"]], TypeError, "integer term ids"),
        ([[0.5, 1.0]], TypeError, "integer term ids"),
        (["human computer"], TypeError, "string"),
        ([[[0, 1], [2, 3]]], ValueError, "flat"),
    ],
)
def test_bad_topics(topics, error, match):
    with pytest.raises(error, match=match):
        u_mass(topics, common_corpus)
    with pytest.raises(error, match=match):
        c_npmi(topics, common_texts, common_dictionary)


def test_bad_inputs():
    with pytest.raises(ValueError, match="not in dictionary"):
        c_npmi([[0, 999]], common_texts, common_dictionary)
    with pytest.raises(TypeError, match="tokenised"):
        c_npmi([[0, 1]], ["human interface computer"], common_dictionary)
    with pytest.raises(ValueError, match="window_size"):
        c_npmi([[0, 1]], common_texts, common_dictionary, window_size=0)
    with pytest.raises(TypeError, match="dictionary"):
        c_npmi([[0, 1]], common_texts, ["human", "computer"])
    with pytest.raises(ValueError, match="empty"):
        c_npmi([[0, 1]], [], common_dictionary)
    with pytest.raises(ValueError, match="empty"):
        u_mass([[0, 1]], [])
