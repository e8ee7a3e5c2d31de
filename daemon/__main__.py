"""``python -m overstory.daemon``: the daemon's commands."""

import sys

from overstory.daemon._cli import main

sys.exit(main())
