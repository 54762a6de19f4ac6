"""``python -m distlda.models.lda_worker``: start a worker of distributed training.

The entry point gensim users know; the worker itself is :mod:`distlda.cluster.worker`.
"""

import sys

from distlda.cluster.worker import Worker, main

__all__ = ["Worker", "main"]

if __name__ == "__main__":
    sys.exit(main())
