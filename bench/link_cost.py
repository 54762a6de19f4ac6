"""CPU per MB that a scaled-down link costs its two hosts: one host sends, the other receives, each under its quota.

A simulated host pays for its link in CPU (its veth, the bridge, the ``tc`` shaping, the socket calls) out of its
quota of c cores. This measures how much, per MB, at each link rate and for each way of reading: ``plain``
(``recv_into`` as bytes come, so a slow link wakes the reader per packet), ``lowat`` (``SO_RCVLOWAT`` of 256 KB,
as the cluster's bulk channel reads) and ``waitall`` (``MSG_WAITALL``).

    sudo python bench/link_cost.py                          # 10 and 1 Gbit/s × 0.2, every way of reading, twice
    sudo python bench/link_cost.py --bandwidths 1 --modes plain,lowat --mb 100

Needs root (see ``bench/scaling.py``). Prints one line per measurement; the figures go to
``bench/results/link-cost-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from distlda.test.hosts import HostNetwork, HostsUnavailable, unavailable

logger = logging.getLogger("bench.link_cost")

ROOT = Path(__file__).resolve().parent.parent

PORT = 7901
PIECE = 3_500_000
_RECEIVER = """
import socket, sys
mode, total = sys.argv[1], int(sys.argv[2])
server = socket.create_server(("0.0.0.0", {port}))
conn, _ = server.accept()
print("accepted", flush=True)
if mode == "lowat":
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 256 * 1024)
flags = socket.MSG_WAITALL if mode == "waitall" else 0
view, got = memoryview(bytearray(1 << 20)), 0
while got < total:
    n = conn.recv_into(view, min(len(view), total - got), flags)
    if not n:
        sys.exit("the sender closed early")
    got += n
"""
_SENDER = """
import socket, sys, time
address, pieces = sys.argv[1], int(sys.argv[2])
for _ in range(400):
    try:
        sock = socket.create_connection((address, {port}))
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit(f"could not connect to {{address}}")
piece = bytes({piece})
sys.stdin.readline()  # the clock and the CPU meters start once both ends are up
for _ in range(pieces):
    sock.sendall(piece)
sock.close()
"""


def measure(bandwidth: float, cores: float, mode: str, megabytes: float) -> dict[str, float]:
    """Send ``megabytes`` from one host to another over links of ``bandwidth × cores``; MB/s and CPU ms per MB."""
    pieces = max(1, round(megabytes * 1e6 / PIECE))
    total = pieces * PIECE
    with HostNetwork(["sender", "receiver"], cores=cores, rate=bandwidth * cores) as network:
        sender, receiver = network["sender"], network["receiver"]
        rx = receiver.popen([sys.executable, "-c", _RECEIVER.format(port=PORT), mode, str(total)],
                            stdout=subprocess.PIPE, text=True)
        tx = sender.popen([sys.executable, "-c", _SENDER.format(port=PORT, piece=PIECE), receiver.address,
                           str(pieces)], stdin=subprocess.PIPE, text=True)
        assert rx.stdout is not None and tx.stdin is not None
        if rx.stdout.readline().strip() != "accepted":
            raise RuntimeError(f"the receiver did not accept a connection (exit code {rx.wait()})")
        time.sleep(0.5)  # the sender's connect returns before the receiver's accept: let it reach its readline
        before = sender.cpu_seconds(), receiver.cpu_seconds()
        started = time.perf_counter()
        tx.stdin.write("go\n")
        tx.stdin.close()
        if tx.wait(timeout=3600) or rx.wait(timeout=3600):
            raise RuntimeError(f"the transfer failed (exit codes {tx.returncode}, {rx.returncode})")
        seconds = time.perf_counter() - started
        spent = sender.cpu_seconds() - before[0], receiver.cpu_seconds() - before[1]
    mb = total / 1e6
    return {"mb_per_s": mb / seconds, "sender_ms_per_mb": 1e3 * spent[0] / mb,
            "receiver_ms_per_mb": 1e3 * spent[1] / mb}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bandwidths", default="10,1",
                        help="link rates of a real host in Gbit/s (default %(default)s)")
    parser.add_argument("--cores", type=float, default=0.2, help="CPU quota of both hosts (default %(default)s)")
    parser.add_argument("--modes", default="plain,lowat,waitall", help="ways of reading (default %(default)s)")
    parser.add_argument("--mb", type=float, default=100.0, help="megabytes per measurement (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="measurements of each (default %(default)s)")
    parser.add_argument("--json-out", type=Path,
                        help="where the results go (default bench/results/link-cost-<time>.json)")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - {"plain", "lowat", "waitall"}:
        parser.error(f"--modes takes plain, lowat and waitall, got {args.modes}")
    reason = unavailable()
    if reason:
        logger.error("cannot build scaled-down hosts here: %s", reason)
        return 2
    rows = []
    try:
        for _ in range(args.repeats):
            for gbit in (float(b) for b in args.bandwidths.split(",") if b):
                for mode in modes:
                    got = measure(gbit * 1e9, args.cores, mode, args.mb)
                    rows.append({"gbit": gbit, "cores": args.cores, "mode": mode, "mb": args.mb, **got})
                    print(f"{gbit:g} Gbit/s x {args.cores:g}, {mode}: {got['mb_per_s']:.1f} MB/s, sender "
                          f"{got['sender_ms_per_mb']:.2f} ms CPU per MB, receiver {got['receiver_ms_per_mb']:.2f}",
                          flush=True)
    except HostsUnavailable as exc:
        logger.error("cannot build scaled-down hosts here: %s", exc)
        return 2
    out = args.json_out or ROOT / "bench" / "results" / f"link-cost-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": dt.datetime.now().isoformat(timespec="seconds"), "runs": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
