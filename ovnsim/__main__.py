"""``python -m ovnsim``: the same command line as the ``ovnsim`` script."""

import sys

from ovnsim.cli import main

sys.exit(main())
