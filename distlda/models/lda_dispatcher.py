"""``python -m distlda.models.lda_dispatcher``: start the dispatcher of distributed training.

The entry point gensim users know; the dispatcher itself is :mod:`distlda.cluster.dispatcher`.
"""

import sys

from distlda.cluster.dispatcher import Dispatcher, main

__all__ = ["Dispatcher", "main"]

if __name__ == "__main__":
    sys.exit(main())
