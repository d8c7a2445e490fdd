"""``python -m ttfast.worker``: the same as the ``ttfast-worker`` command."""

import sys

from ttfast.worker import main

sys.exit(main())
