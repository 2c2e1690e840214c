"""``python -m lomond.load``: the same command as ``python -m lomond load``."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
