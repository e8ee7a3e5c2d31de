"""``python -m benchmarks``: run the suite; see ``benchmarks/README.md``."""

from benchmarks._suite import main

main()
