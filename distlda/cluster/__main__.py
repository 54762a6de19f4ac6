"""``python -m distlda.cluster --workers N``: a local cluster until Ctrl-C."""

import sys

from distlda.cluster.cli import main

sys.exit(main())
