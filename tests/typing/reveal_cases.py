# Checked by tests/typing/test_reveal.py with mypy --strict: each trailing "R:" comment is
# the type mypy must reveal for the expression on that line. Not imported at run time.
from typing import reveal_type

import ttfast
from ttfast._core import to_double, to_int64

reveal_type(ttfast.__version__)  # R: str
reveal_type(to_double("1.5"))  # R: float
reveal_type(to_int64(b"7"))  # R: int
