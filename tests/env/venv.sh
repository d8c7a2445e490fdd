# Sourced by tests/run.sh and tests/fuzz/run_fuzz.sh: hermetic venvs and the checks on them.
#
#   make_venv DIR        create DIR as a venv of $PY unless a hermetic one exists (one that
#                        sees the base interpreter's packages is made anew), then check_venv DIR
#   check_venv DIR       fail unless DIR is a venv that cannot see the base interpreter's
#                        site-packages (include-system-site-packages = false) and whose python
#                        reports DIR as its prefix
#   venv_install DIR ... pip install into DIR (pinned by $PIP_CONSTRAINT)

check_venv() {
  local dir="$1" cfg="$1/pyvenv.cfg"
  if [ ! -f "$cfg" ] || [ ! -x "$dir/bin/python" ]; then
    echo "hermetic check: $dir is not a virtual environment (no pyvenv.cfg / bin/python)" >&2
    return 1
  fi
  if _venv_leaks "$dir"; then
    echo "hermetic check: $dir has include-system-site-packages = true; the test command's" \
      "venvs must not see the base interpreter's packages. Delete $dir and run again." >&2
    return 1
  fi
  "$dir/bin/python" - "$dir" <<'PY' || return 1
import os, site, sys
want = os.path.realpath(sys.argv[1])
if os.path.realpath(sys.prefix) != want or sys.prefix == sys.base_prefix:
    sys.exit(f"hermetic check: {sys.executable} is not the venv {want} (prefix {sys.prefix})")
base = {os.path.realpath(p) for p in site.getsitepackages([sys.base_prefix])}
leaked = [p for p in sys.path if os.path.realpath(p) in base]
if leaked:
    sys.exit(f"hermetic check: {want} sees the base interpreter's site-packages: {leaked}")
PY
}

_venv_leaks() {
  grep -Eiq '^[[:space:]]*include-system-site-packages[[:space:]]*=[[:space:]]*true' "$1/pyvenv.cfg"
}

make_venv() {
  local dir="$1"
  if [ -f "$dir/pyvenv.cfg" ] && _venv_leaks "$dir"; then
    echo "make_venv: $dir sees the base interpreter's packages; making it anew" >&2
    rm -rf "$dir"
  fi
  if [ ! -x "$dir/bin/python" ]; then
    "${PY:-python3}" -m venv "$dir"
  fi
  check_venv "$dir"
}

venv_install() {
  local dir="$1"
  shift
  "$dir/bin/python" -m pip install -q "$@"
}
