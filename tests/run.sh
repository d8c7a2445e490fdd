#!/usr/bin/env bash
# The whole test command (README, `.ci/run`): on a fresh machine installs what the tests need
# (apt-get: redis-server, influxdb, victoria-metrics, valgrind, clang, openssl; pip: the package
# with its test and influx extras, in hermetic venvs: none sees the base interpreter's
# site-packages, see tests/env/venv.sh),
# builds the compiled core, runs the whole suite including the benchmark regression gate, then
# the sanitizer (ASan/UBSan) build with the decoder tests and a short fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${TTFAST_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# Pinned versions: instruction-count budgets need the same Cython/numpy/library builds.
export PIP_CONSTRAINT=$ROOT/tests/constraints.txt
step() { printf '\n=== %s [%s]\n' "$*" "$(date +%T)"; }

step "system packages"
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v influxd >/dev/null || need+=(influxdb)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v chromium >/dev/null || need+=(chromium)
command -v valgrind >/dev/null || need+=(valgrind)
command -v clang >/dev/null || need+=(clang)
command -v openssl >/dev/null || need+=(openssl)
[ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a ] \
  || ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer* >/dev/null 2>&1 \
  || need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

step "python environment ($VENV)"
# shellcheck source=tests/env/venv.sh
. "$ROOT/tests/env/venv.sh"
make_venv "$VENV"
# Build requirements and the package's dependencies come from pyproject.toml (tests/env/reqs.py),
# pinned by tests/constraints.txt; the venv never sees the base interpreter's packages.
mapfile -t BUILD_REQS < <("$VENV/bin/python" tests/env/reqs.py build)
mapfile -t DEPS < <("$VENV/bin/python" tests/env/reqs.py deps test fuzz influx bench)
venv_install "$VENV" "${BUILD_REQS[@]}" "${DEPS[@]}"
step "build + install ttfast with test extras"
venv_install "$VENV" --no-build-isolation --no-deps -Cbuild-dir=build/test .
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -c "import ttfast._core as c; m = c.compiled_modules(); assert m, 'no .so'; print(m)"

step "test suite + benchmark gate"
check_venv "$VENV"
TTFAST_TEST_VENV="$VENV" "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"

if [ -x tests/fuzz/run_fuzz.sh ] || [ -f tests/fuzz/run_fuzz.sh ]; then
  step "sanitizer build: decoder tests + fuzz"
  PY="$PY" bash tests/fuzz/run_fuzz.sh 20
fi
step "all green"
