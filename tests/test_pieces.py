"""Arrays larger than one message travel in pieces: the encoding, the dispatcher's log, and a real cluster."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_docs

from distlda.cluster.errors import WireError
from distlda.cluster.pieces import decode_large, encode_large, encode_piece, is_pieced, large_bytes
from distlda.cluster.recipes import RecipeLog
from distlda.cluster.wire import encode_array


def _pieces_of(arr, header):
    return [encode_piece(arr, i, header["rows"]) for i in range(header["pieces"])]


@pytest.mark.parametrize("shape", [(10, 3), (11, 3), (17,), (1, 50)])
def test_large_arrays_round_trip_in_pieces(shape):
    arr = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    header = encode_large(arr, limit=40)
    if shape[0] > 1:
        assert is_pieced(header) and header["pieces"] > 1 and "data" not in header
    pieces = _pieces_of(arr, header) if is_pieced(header) else []
    assert all(len(p["data"]) <= max(40, arr[:1].nbytes) for p in pieces)
    out = decode_large(header, pieces.__getitem__, "x")
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == arr.dtype and large_bytes(header) == arr.nbytes


def test_small_arrays_stay_inline():
    arr = np.ones((4, 2))
    value = encode_large(arr, limit=arr.nbytes)
    assert not is_pieced(value) and value == encode_array(arr)
    np.testing.assert_array_equal(decode_large(value, None, "x"), arr)


def test_malformed_headers_and_pieces_are_refused():
    arr = np.arange(30, dtype=np.float64).reshape(10, 3)
    header = encode_large(arr, limit=48)  # 2 rows per piece
    pieces = _pieces_of(arr, header)
    with pytest.raises(WireError, match="no one to fetch"):
        decode_large(header, None, "model.sstats_wm")
    with pytest.raises(WireError, match="malformed piece header"):
        decode_large({**header, "pieces": header["pieces"] + 1}, pieces.__getitem__, "m")
    with pytest.raises(WireError, match="not numeric|unknown dtype"):
        decode_large({**header, "dtype": "|O"}, pieces.__getitem__, "m")
    wrong = list(pieces)
    wrong[1] = encode_array(arr[:3])  # three rows where two belong
    with pytest.raises(WireError, match=r"m piece 1: float64 \[3, 3\], expected float64 \[2, 3\]"):
        decode_large(header, wrong.__getitem__, "m")
    with pytest.raises(WireError, match="no piece 5 of 2 rows"):
        encode_piece(arr, 5, 2)
    with pytest.raises(WireError, match="no piece"):
        encode_piece(arr, -1, 2)


def test_a_request_cannot_make_a_huge_piece(monkeypatch):
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "48")
    arr = np.zeros((100, 3))
    encode_piece(arr, 0, 4)
    with pytest.raises(WireError, match="larger than this process sends"):
        encode_piece(arr, 0, 100)
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "lots")
    with pytest.raises(ValueError, match="DISTLDA_PIECE_BYTES must be a number of bytes"):
        encode_large(arr)


def test_the_log_hands_out_a_base_only_when_every_piece_is_in():
    sstats = np.arange(40, dtype=np.float32).reshape(20, 2)
    header = encode_large(sstats, limit=32)
    base = {"lineage": "run1", "version": 0, "sstats_wm": header, "eta": encode_array(np.ones(20, np.float32)),
            "alpha": encode_array(np.ones(2, np.float32))}
    log = RecipeLog()
    log.set_base(base)
    with pytest.raises(ValueError, match="still arriving"):
        log.answer(None, 0)
    # an idle worker is not told to sync to it yet (it could not have it, and would ask again at once)
    assert not log.behind(None) and log.sync_answer(None, None) == {"sync": 0}
    pieces = _pieces_of(sstats, header)
    with pytest.raises(ValueError, match="no base of lineage 'run0'"):
        log.add_piece("run0", "sstats_wm", 0, pieces[0])
    with pytest.raises(WireError, match="not sent in pieces"):
        log.add_piece("run1", "eta", 0, pieces[0])
    with pytest.raises(WireError, match="does not fit the header"):
        log.add_piece("run1", "sstats_wm", 0, encode_array(sstats[:1]))
    for index, piece in enumerate(pieces):
        log.add_piece("run1", "sstats_wm", index, piece)
    answer = log.answer(None, 0)
    assert answer["base"] is base
    assert log.behind(None) and log.sync_answer(None, None) == {**answer, "sync": 0}
    np.testing.assert_array_equal(decode_large(header, lambda i: log.piece("run1", "sstats_wm", i), "b"), sstats)


@pytest.mark.distributed
@pytest.mark.slow
def test_a_model_in_many_pieces_trains_as_a_local_run(monkeypatch, caplog):
    # every process of this cluster sends arrays of more than 128 bytes in pieces: bases, the model the client
    # takes from the workers, and a learned topics × terms eta all travel in several pieces
    from distlda.cluster.local import LocalCluster
    from distlda.models import LdaModel

    V = 60
    docs = random_docs(np.random.default_rng(3), 300, V, max_len=20)
    params = dict(id2word={i: f"w{i}" for i in range(V)}, num_topics=5, chunksize=60, passes=2, random_state=5,
                  eval_every=0, eta="auto")
    local = LdaModel(docs, **params)
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "128")
    with LocalCluster(workers=2, threads_per_worker=1) as cluster, \
            caplog.at_level("INFO", logger="distlda.cluster.client"):
        remote = LdaModel(docs, distributed=True, ns_conf=cluster.ns_conf, **params)
    assert "base.sstats_wm (0.0 MB) goes in 10 pieces" in caplog.text  # 60 terms × 5 topics × 4 bytes, 6 rows each
    assert "base.eta (0.0 MB) goes in 2 pieces" in caplog.text
    np.testing.assert_array_equal(remote.state.sstats, local.state.sstats)
    np.testing.assert_array_equal(remote.eta, local.eta)
    np.testing.assert_array_equal(remote.alpha, local.alpha)
    assert remote.training_stats["syncs"] >= 1


def test_recipes_come_a_piece_at_a_time(monkeypatch):
    # a replica far behind gets the recipes in answers of about one piece each, told there is more
    log = RecipeLog()
    log.set_base({"lineage": "run1", "version": 0, "sstats_wm": encode_array(np.ones((4, 2), np.float32)),
                  "eta": encode_array(np.ones(4, np.float32)), "alpha": encode_array(np.ones(2, np.float32))})
    gamma = encode_array(np.ones((10, 2), np.float32))  # 80 bytes per recipe
    for version in range(1, 6):
        log.add(version, {}, [{"gamma": gamma, "job": 0}])
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "200")
    first = log.answer(None, 4)
    assert first["base"] is not None and [r["version"] for r in first["recipes"]] == [1, 2]
    assert first["more"] and first["want"] == 4
    rest = log.answer(["run1", 2], 4)
    assert rest["base"] is None and [r["version"] for r in rest["recipes"]] == [3, 4] and not rest["more"]
    monkeypatch.setenv("DISTLDA_PIECE_BYTES", "10")  # a recipe larger than a piece still goes, alone
    assert [r["version"] for r in log.answer(["run1", 4], 5)["recipes"]] == [5]


def test_a_dispatcher_without_room_for_the_base_refuses_the_model(monkeypatch):
    import distlda.cluster.recipes as recipes
    from distlda.cluster.errors import ModelTooLarge

    params = {"num_topics": 1000, "num_terms": 500_000, "dtype": "float32"}
    monkeypatch.setattr(recipes, "available_memory", lambda: 3 * 10**9)
    with pytest.raises(ModelTooLarge, match=r"base of 3,815 MiB .* can use 2,861 MiB: use fewer topics"):
        recipes.check_base_fits(params)
    monkeypatch.setattr(recipes, "available_memory", lambda: 5 * 10**9)
    recipes.check_base_fits(params)
