"""Where a cluster's M-steps spend their time, from the logs of a run whose processes had ``DISTLDA_TIMELINE=1``.

    python bench/timeline.py LOGDIR [--skip 2] [--json]

Reads every ``*.log`` of LOGDIR (the client's, the dispatcher's and the workers' stderr; ``bench/hosts.py`` writes
one per host) and prints, for each phase (see :mod:`distlda.cluster.timeline`), the median, 10th and 90th percentile
of its milliseconds after the dispatcher recorded each M-step, in the order the phases come. ``python
bench/scaling.py --timeline`` does this for each of its runs and keeps the tables with its figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from distlda.cluster.timeline import per_mstep, read_marks

logger = logging.getLogger("timeline")


def timeline_table(phases: dict[str, dict[str, float]]) -> str:
    """A plain-text table of :func:`distlda.cluster.timeline.per_mstep`'s figures."""
    lines = [f"{'phase':14s} {'median ms':>10s} {'p10':>8s} {'p90':>8s} {'n':>6s}"]
    lines += [f"{phase:14s} {row['median']:10.1f} {row['p10']:8.1f} {row['p90']:8.1f} {int(row['n']):6d}"
              for phase, row in phases.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", type=Path, help="the directory of the run's log files")
    parser.add_argument("--skip", type=int, default=2, help="M-steps left out at each end (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logs = sorted(args.logdir.glob("*.log"))
    phases = per_mstep(read_marks(logs), args.skip)
    if not phases:
        logger.error("%s: no M-steps marked in %d log files (was DISTLDA_TIMELINE=1 set for every process, and "
                     "did the run make more than %d M-steps?)", args.logdir, len(logs), 2 * args.skip + 1)
        return 1
    print(json.dumps(phases, indent=1) if args.json else timeline_table(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
