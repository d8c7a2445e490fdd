"""``python -m ttfast.edge``: the same as the ``ttfast-edge`` command (argparse in cli.py)."""

import sys

from ttfast.edge.cli import main

sys.exit(main())
