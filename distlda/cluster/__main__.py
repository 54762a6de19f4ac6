"""``python -m distlda.cluster --workers N``: a local cluster until Ctrl-C."""

import sys

from distlda.cli.cluster import main

sys.exit(main())
