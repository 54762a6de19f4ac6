"""``python -m distlda``: the same as the ``distlda`` command."""

import sys

from distlda.cli import main

sys.exit(main())
