"""Workers take a batch's γ from the workers that fitted it (distlda.cluster.peers), and fall back to the
dispatcher's recipe whenever a holder cannot give it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from cluster_helpers import wait_until
from Pyro5 import errors as pyro_errors

from distlda.cluster.peers import GammaStore, GammaUploads, PeerLinks, check_gamma_request, fill_gammas, light_recipe
from distlda.cluster.wire import WireError, decode_array, encode_array


def _gamma(value: float, docs: int = 3) -> dict[str, Any]:
    return encode_array(np.full((docs, 2), value, dtype=np.float32))


def _recipe(holders: list[list[str] | None]) -> dict[str, Any]:
    return {"version": 7, "plan": {}, "batch": "b-7", "ref_path": None,
            "jobs": [{"job": n, "part": 0, "ref": {"first": 3 * n, "last": 3 * n + 3}, "holder": holder,
                      "gamma": _gamma(n)} for n, holder in enumerate(holders)]}


class _Peers:
    """Stores of other workers behind fake proxies; a URI in ``down`` fails as a lost host does."""

    def __init__(self, stores: dict[str, GammaStore]) -> None:
        self.stores, self.down, self.calls = stores, set(), []

    def proxy(self, uri: str) -> Any:
        peers = self

        class _Proxy:
            def __enter__(self) -> "_Proxy":
                return self

            def __exit__(self, *exc: Any) -> None:
                pass

            def getgamma(self, batch: str, jobs: list[int]) -> list:
                peers.calls.append((uri, batch, list(jobs)))
                if uri in peers.down:
                    raise pyro_errors.CommunicationError(f"{uri} does not answer")
                return [[j, g] for j, g in peers.stores[uri].get(batch, check_gamma_request(batch, jobs),
                                                                 peer=True).items()]
        return _Proxy()


def _no_fallback(version: int) -> dict[str, Any]:
    raise AssertionError(f"the dispatcher was asked for recipe {version}")


def test_a_light_recipe_carries_no_gamma_where_a_holder_keeps_it():
    full = _recipe([["w0", "u0"], None, ["w1", "u1"]])
    light = light_recipe(full)
    assert ["gamma" in job for job in light["jobs"]] == [False, True, False]  # no holder: γ stays in the recipe
    assert all("gamma" in job for job in full["jobs"])  # the dispatcher's own recipe is left whole
    assert light["batch"] == "b-7" and light["jobs"][2]["holder"] == ["w1", "u1"]


def test_gamma_comes_from_this_worker_and_its_peers_in_job_order():
    mine, theirs = GammaStore(), GammaStore()
    mine.put("b-7", 0, _gamma(0))
    theirs.put("b-7", 1, _gamma(1))
    theirs.put("b-7", 2, _gamma(2))
    peers = _Peers({"u1": theirs})
    light = light_recipe(_recipe([["w0", "u0"], ["w1", "u1"], ["w1", "u1"]]))
    full = fill_gammas(light, "w0", mine, peers.proxy, _no_fallback)
    assert [decode_array(job["gamma"])[0, 0] for job in full["jobs"]] == [0, 1, 2]
    assert peers.calls == [("u1", "b-7", [1, 2])]  # one call per holder, never to itself
    assert theirs.served == 2 and mine.served == 0
    assert all("gamma" not in job for job in light["jobs"])  # the light recipe is left as it was


@pytest.mark.parametrize("case", ["holder down", "holder forgot the batch", "no batch id"])
def test_any_gamma_a_holder_cannot_give_comes_with_the_dispatchers_recipe(case):
    mine, theirs = GammaStore(), GammaStore()
    mine.put("b-7", 0, _gamma(0))
    if case != "holder forgot the batch":
        theirs.put("b-7", 1, _gamma(1))
    peers = _Peers({f"u-{case}": theirs})
    if case == "holder down":
        peers.down.add(f"u-{case}")
    full = _recipe([["w0", "u0"], ["w1", f"u-{case}"]])
    light = light_recipe(full)
    if case == "no batch id":
        light.pop("batch")
    asked = []
    got = fill_gammas(light, "w0", mine, peers.proxy, lambda version: asked.append(version) or full)
    assert asked == [7] and got is full


def test_the_store_keeps_the_newest_batches_within_its_bounds():
    store = GammaStore(keep_batches=2, keep_bytes=10_000)
    for batch in ("a", "b", "c"):
        store.put(batch, 0, _gamma(1.0))
    assert store.get("a", [0]) == {} and set(store.get("c", [0, 1])) == {0}
    big = encode_array(np.zeros((2_000, 2), np.float32))  # 16 kB, above the bound alone: kept, the others go
    store.put("d", 0, big)
    assert store.get("b", [0]) == {} and store.get("c", [0]) == {} and store.get("d", [0]) == {0: big}


@pytest.mark.parametrize("batch, jobs", [(5, [0]), ("b", "0"), ("b", [-1]), ("b", [True]), ("b", [0.5])])
def test_a_malformed_request_for_gamma_is_refused(batch, jobs):
    with pytest.raises(WireError, match="getgamma"):
        check_gamma_request(batch, jobs)


def test_a_link_to_a_peer_is_kept_open_and_opened_again_after_a_failure():
    opened = []

    class _Link:
        def __init__(self, uri: str) -> None:
            self.uri, self.released = uri, False
            opened.append(self)

        def _pyroClaimOwnership(self) -> None:  # noqa: N802 - Pyro5's names, which release() calls
            pass

        def _pyroRelease(self) -> None:  # noqa: N802
            self.released = True

    links = PeerLinks(_Link)
    for _ in range(3):
        with links.link("u1") as peer:
            assert peer is opened[0]
    with pytest.raises(pyro_errors.CommunicationError):
        with links.link("u1"):
            raise pyro_errors.CommunicationError("gone")
    assert opened[0].released  # a failed link is closed ...
    with links.link("u1") as peer:
        assert peer is opened[1] and not peer.released  # ... and opened again when next used
    links.close()
    assert all(link.released for link in opened)


class _Link:
    """A proxy that records whether it was closed (release() calls Pyro5's two methods)."""

    def __init__(self, uri: str) -> None:
        self.uri, self.released = uri, False

    def _pyroClaimOwnership(self) -> None:  # noqa: N802 - Pyro5's names
        pass

    def _pyroRelease(self) -> None:  # noqa: N802
        self.released = True


def test_gamma_uploads_close_the_old_dispatchers_link_once_another_enlists_the_worker():
    # A worker enlisted again by another dispatcher keeps sending γ from its upload thread: the link to the old
    # dispatcher must close even when nothing more is sent (the old one's exit() is refused, so close() may never
    # come), as the in-process cluster tests' teardown checks.
    opened, sent = [], threading.Event()
    target = ["inproc:first"]

    def open_proxy(uri: str) -> _Link:
        opened.append(_Link(uri))
        return opened[-1]

    uploads = GammaUploads(lambda: target[0], open_proxy, lambda proxy, items: sent.set())
    try:
        uploads.put("b", 0, {})
        assert sent.wait(30.0)
        assert [(link.uri, link.released) for link in opened] == [("inproc:first", False)]  # kept open for the next
        target[0] = "inproc:second"
        wait_until(lambda: opened[0].released, timeout=30.0, what="the old dispatcher's link closed")
    finally:
        uploads.close()


@pytest.mark.parametrize("lazy", [False, True], ids=["dense", "lazy"])
def test_a_replica_fits_a_lost_jobs_gamma_again_and_ends_bitwise_the_same(lazy):
    from distlda.cluster.replica import CorpusReader, Replica
    from distlda.core.estep import fit_gamma
    from distlda.core.mstep import plan_mstep
    from distlda.corpora.csr import bow_to_chunk
    from distlda.cluster.wire import encode_chunk
    from distlda.kernels.rng import training_keys

    V, K, seed = 40, 4, 9
    rng = np.random.default_rng(5)
    docs = [[(int(w), float(rng.integers(1, 4))) for w in sorted(rng.choice(V, 6, replace=False))] for _ in range(30)]
    base = {"lineage": "L", "version": 0, "sstats_wm": encode_array(rng.random((V, K)).astype(np.float32) + 0.5),
            "eta": encode_array(np.full(V, 0.1, np.float32)), "alpha": encode_array(np.full(K, 0.25, np.float32))}
    settings = {"seed": seed, "iterations": 30, "gamma_threshold": 1e-4}
    plan = plan_mstep(0.7, 100.0, len(docs), False, False, lazy=lazy).to_dict()

    def recipe(with_gamma: list[bool]) -> dict[str, Any]:
        fitter = Replica(K, V, "float32")
        fitter.load_base(base)
        jobs = []
        for n, (lo, hi) in enumerate([(0, 10), (10, 20), (20, 30)]):
            chunk = bow_to_chunk(docs[lo:hi], start=lo)
            exp_elogbeta, alpha = fitter.estep_arrays(chunk.ids)
            gamma = fit_gamma(chunk, exp_elogbeta, alpha, training_keys(seed, 0, lo, hi - lo), 30, 1e-4)[0]
            jobs.append({"job": n, "part": n // 2, "pass": 0, "chunk": encode_chunk(chunk),
                         "gamma": encode_array(gamma) if with_gamma[n] else None})
        return {"version": 1, "plan": plan, "jobs": jobs, "batch": "b", "settings": settings}

    replicas = []
    for with_gamma in ([True, True, True], [True, False, False]):
        replica = Replica(K, V, "float32")
        replica.load_base(base)
        replica.apply_recipe(recipe(with_gamma), CorpusReader())
        replicas.append(replica.arrays)
    np.testing.assert_array_equal(replicas[0].sstats_wm, replicas[1].sstats_wm)
    np.testing.assert_array_equal(replicas[0].exp_elogbeta, replicas[1].exp_elogbeta)
    no_settings = recipe([True, False, True])
    no_settings.pop("settings")
    replica = Replica(K, V, "float32")
    replica.load_base(base)
    with pytest.raises(WireError, match="recipe 1 job 1: no γ, and no settings to fit it again"):
        replica.apply_recipe(no_settings, CorpusReader())


def test_workers_ask_the_holders_in_rotated_orders_so_no_link_serves_them_all_at_once():
    from distlda.cluster.peers import _rotated

    holders = [((f"w{i}", f"u{i}"), [i]) for i in range(4)]
    orders = [[name for (name, _), _ in _rotated(holders, f"w{i}")] for i in range(4)]
    assert orders[0] == ["w1", "w2", "w3", "w0"] and orders[2] == ["w3", "w0", "w1", "w2"]
    # at every step of the replays, each holder is asked by one worker
    assert all(sorted(order[step] for order in orders) == ["w0", "w1", "w2", "w3"] for step in range(4))
    assert sorted(name for (name, _), _ in _rotated(holders, "stranger")) == ["w0", "w1", "w2", "w3"]
