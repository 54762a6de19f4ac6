"""The dispatcher's log of M-steps: what it answers a replica, by lineage and version (no processes needed)."""

from __future__ import annotations

import pytest

from distlda.cluster.recipes import RecipeLog, position_of


def _log(lineage: str, version: int, recipes: int) -> RecipeLog:
    log = RecipeLog()
    log.set_base({"lineage": lineage, "version": version, "sstats_wm": b"", "eta": b"", "alpha": b""})
    for v in range(version + 1, version + 1 + recipes):
        log.add(v, {"rho": 1.0}, [{"gamma": f"g{v}"}])
    return log


def _versions(answer: dict) -> list[int]:
    return [r["version"] for r in answer["recipes"]]


def test_a_replica_of_this_lineage_gets_only_the_recipes_it_lacks():
    log = _log("new", 0, 5)
    answer = log.answer(["new", 2], 5)
    assert answer["base"] is None and _versions(answer) == [3, 4, 5]
    assert log.answer(["new", 5], 5) == {"base": None, "recipes": [], "more": False, "want": 5}
    assert not log.behind(["new", 5]) and log.behind(["new", 4])


def test_a_replica_of_an_earlier_run_with_the_same_version_number_starts_from_the_base():
    # an earlier update() left this replica at version 3 of another lineage: version 3 of this one is another model
    log = _log("new", 0, 3)
    answer = log.answer(["old", 3], 3)
    assert answer["base"]["lineage"] == "new" and _versions(answer) == [1, 2, 3]
    assert log.behind(["old", 3])


@pytest.mark.parametrize("have", [None, ["new", 1], "garbage", ["new"], [7, 3]])
def test_no_replica_one_before_the_base_or_a_malformed_position_gets_the_base(have):
    log = _log("new", 2, 2)
    answer = log.answer(have, 4)
    assert answer["base"] is not None and _versions(answer) == [3, 4]
    assert log.behind(have)


def test_a_replica_ahead_of_what_is_asked_starts_again_from_the_base():
    log = _log("new", 0, 4)
    answer = log.answer(["new", 4], 2)
    assert answer["base"] is not None and _versions(answer) == [1, 2]


def test_bad_bases_and_out_of_order_recipes_are_refused():
    log = RecipeLog()
    with pytest.raises(ValueError, match="before any base"):
        log.add(1, {}, [])
    with pytest.raises(ValueError, match="lineage"):
        log.set_base({"version": 0, "sstats_wm": b"", "eta": b"", "alpha": b""})
    log = _log("new", 0, 1)
    with pytest.raises(ValueError, match="the log is at version 1"):
        log.add(3, {}, [])
    with pytest.raises(ValueError, match="not known"):
        log.answer(["new", 0], 2)


def test_positions_from_the_wire():
    assert position_of(["a", 3]) == ("a", 3) and position_of(("a", 3)) == ("a", 3)
    assert position_of(None) is None and position_of(["a", "3"]) is None and position_of(["a", 3, 4]) is None
