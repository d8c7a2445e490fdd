"""Print requirement lines taken from pyproject.toml, one per line (the only list of them).

    python tests/env/reqs.py build            # [build-system].requires (+ ninja)
    python tests/env/reqs.py deps test fuzz   # [project].dependencies + the named extras

The test command's venvs install from this output, so no second hand-kept list can drift from
pyproject.toml.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    out: list[str] = []
    what, extras = argv[0], argv[1:]
    if what == "build":
        out += data["build-system"]["requires"]
        out.append("ninja")
    elif what == "deps":
        project = data["project"]
        out += project["dependencies"]
        optional = project.get("optional-dependencies", {})
        for extra in extras:
            if extra not in optional:
                print(f"reqs.py: no extra {extra!r} in pyproject.toml", file=sys.stderr)
                return 2
            out += optional[extra]
    else:
        print(f"reqs.py: unknown kind {what!r} (build | deps)", file=sys.stderr)
        return 2
    seen: set[str] = set()
    for req in out:
        if req not in seen:
            seen.add(req)
            print(req)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
