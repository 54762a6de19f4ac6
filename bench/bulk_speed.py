"""CPU per MB of the reduce-scatter's rows: over Pyro5 (``getpartials``) against the bulk channel, two processes.

    python bench/bulk_speed.py [--rows 1250] [--topics 100] [--calls 200] [--rounds 7]

A server process keeps one chunk's partial statistics (``--rows`` words × ``--topics`` float32 values, 0.5 MB by
default: one range of a 10,000-word, K = 100 partial at 8 workers) in a worker's store and serves it the two ways a
worker does (:class:`distlda.cluster.scatter.RowsService` in a keyed Pyro5 daemon, with its bulk channel); this
process asks for it ``--calls`` times per round, checking every answer as the reduce-scatter does
(:func:`~distlda.cluster.scatter.decode_rows`). Rounds alternate the two ways; each reports the CPU seconds of both
processes per MB of rows, and the figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np

logger = logging.getLogger("bulk_speed")

KEY = "bulk-speed"


def serve(rows: int, topics: int) -> None:
    """The server process: a store with one partial, in a keyed daemon; prints its URI, serves until stdin closes."""
    import threading

    from distlda.cluster.auth import configure_pyro
    from distlda.cluster.daemon import KeyedDaemon
    from distlda.cluster.naming import NsConf
    from distlda.cluster.scatter import PartialStore, RowsService
    from distlda.cluster.transport import Transport
    from distlda.core.estep import ChunkPartial

    configure_pyro()
    service = RowsService()
    service._partials, service.transport = PartialStore(), Transport(NsConf(hmac_key=KEY))
    raw = np.random.default_rng(0).random((rows, topics), dtype=np.float32)
    service._partials.put_partial("batch", 0, ChunkPartial(np.arange(rows, dtype=np.int64), raw))
    daemon = KeyedDaemon(key=KEY, host="127.0.0.1", port=0)
    print(daemon.register(service), flush=True)
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    sys.stdin.read()
    service._close_bulk()
    daemon.shutdown()


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace) -> dict[str, object]:
    from distlda.cluster.auth import KeyedProxy, configure_pyro
    from distlda.cluster.bulk import BulkLinks
    from distlda.cluster.scatter import bulk_peer, decode_rows

    configure_pyro()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.rows), str(args.topics)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        uri = server.stdout.readline().strip()
        links = BulkLinks(KEY, 10.0)
        mb = args.calls * args.rows * (args.topics * 4 + 4) / 1e6
        dtype = np.dtype(np.float32)
        results: dict[str, list[dict[str, float]]] = {"pyro": [], "bulk": []}
        with KeyedProxy(uri, KEY) as proxy:
            for way in ("pyro", "bulk"):  # warm both (connections, handshakes, the bulk server)
                with bulk_peer(links, uri, _Held(proxy)) as peer:
                    (peer if way == "bulk" else proxy).getpartials("batch", [0], 0, args.rows)
            for rnd in range(args.rounds):
                for way in (("pyro", "bulk") if rnd % 2 == 0 else ("bulk", "pyro")):
                    own, theirs, wall = time.process_time(), _cpu_of(server.pid), time.perf_counter()
                    with bulk_peer(links, uri, _Held(proxy)) as peer:
                        asked = peer if way == "bulk" else proxy
                        for _ in range(args.calls):
                            for _, value in asked.getpartials("batch", [0], 0, args.rows):
                                decode_rows(value, 0, args.rows, args.topics, dtype, "rows")
                    results[way].append({"client_ms_per_mb": (time.process_time() - own) * 1e3 / mb,
                                         "server_ms_per_mb": (_cpu_of(server.pid) - theirs) * 1e3 / mb,
                                         "wall_s": time.perf_counter() - wall})
                    logger.info("round %d %s: %s", rnd + 1, way, results[way][-1])
        links.close()
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return {"rows": args.rows, "topics": args.topics, "calls": args.calls, "mb_per_round": mb, "rounds": results}


class _Held:
    """An open proxy as the context manager :func:`bulk_peer` takes (the proxy stays open for every round)."""

    def __init__(self, proxy: object) -> None:
        self.proxy = proxy

    def __enter__(self) -> object:
        return self.proxy

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1250)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = measure(args)
    total = {way: [r["client_ms_per_mb"] + r["server_ms_per_mb"] for r in rounds]
             for way, rounds in report["rounds"].items()}
    ratios = [p / b for p, b in zip(total["pyro"], total["bulk"])]
    for way, rounds in report["rounds"].items():
        print(f"{way}: CPU ms per MB, client {np.median([r['client_ms_per_mb'] for r in rounds]):.2f}, "
              f"server {np.median([r['server_ms_per_mb'] for r in rounds]):.2f}, both {np.median(total[way]):.2f}")
    print(f"Pyro5 / bulk channel, CPU per MB (median of {len(ratios)} paired rounds): {np.median(ratios):.1f}x")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
