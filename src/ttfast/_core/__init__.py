"""The only door to ttfast's compiled modules.

Public modules import compiled code from here, never from ``ttfast._core.<module>`` .so files
directly. Input validation that must happen before a C loop lives in the compiled modules
themselves (they raise clear Python exceptions); this package only re-exports.
"""

from ttfast._core import lineproto, numparse
from ttfast._core.lineproto import LineEncoder
from ttfast._core.numparse import to_double, to_int64

__all__ = ["LineEncoder", "compiled_modules", "lineproto", "numparse", "to_double", "to_int64"]


def compiled_modules() -> dict[str, str]:
    """Map each compiled module name to the path of its shared object (for `ttfast doctor`)."""
    import sys

    out: dict[str, str] = {}
    for name, mod in sorted(sys.modules.items()):
        if name.startswith("ttfast._core.") and mod is not None:
            path = getattr(mod, "__file__", None) or ""
            if path.endswith(".so") or path.endswith(".pyd"):
                out[name] = path
    return out
