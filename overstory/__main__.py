"""``python -m overstory``: the command line."""

from overstory._cli import main

raise SystemExit(main())
