"""``python -m distlda.nameserver``: start the cluster's name server (see :mod:`distlda.cluster.nameserver`)."""

import sys

from distlda.cluster.nameserver import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
