#!/usr/bin/env bash
# Sanitized (ASan + UBSan + libFuzzer-instrumented) build of ttfast in its own venv and build
# dir, then: the decoder test file on that build, and the FEED_DATA fuzz target for N seconds.
#
#   tests/fuzz/run_fuzz.sh [seconds=20] [extra libFuzzer flags...]
#
# Env: TTFAST_ASAN_VENV (default <repo>/build/venv-asan), PY (the base interpreter the venv is
# made from; default python3; only its stdlib is used).
set -euo pipefail
SECS="${1:-20}"
shift || true
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${TTFAST_ASAN_VENV:-$ROOT/build/venv-asan}"
PY="${PY:-${PYTHON:-python3}}"
cd "$ROOT"

# shellcheck source=tests/env/venv.sh
. "$ROOT/tests/env/venv.sh"
# A hermetic venv (make_venv): everything the sanitized build and the decoder tests import is
# installed here, from pyproject.toml's own lists, pinned like the main test venv.
make_venv "$VENV"
export PIP_CONSTRAINT="${PIP_CONSTRAINT:-$ROOT/tests/constraints.txt}"
mapfile -t BUILD_REQS < <("$VENV/bin/python" tests/env/reqs.py build)
mapfile -t DEPS < <("$VENV/bin/python" tests/env/reqs.py deps test fuzz)
venv_install "$VENV" "${BUILD_REQS[@]}" "${DEPS[@]}"
SITE="$("$VENV/bin/python" -c 'import atheris, os; print(os.path.dirname(os.path.dirname(atheris.__file__)))')"
ASAN_LIB="$SITE/asan_with_fuzzer.so"
[ -f "$ASAN_LIB" ] || { echo "run_fuzz.sh: $ASAN_LIB not found (pip install atheris==3.0.0)" >&2; exit 2; }

# (Re)build when a compiled source is newer than the last sanitized build.
STAMP="$ROOT/build/asan/.ttfast-asan-stamp"
if [ ! -f "$STAMP" ] || [ -n "$(find ext CMakeLists.txt pyproject.toml -newer "$STAMP" -print -quit)" ]; then
  CC=clang CFLAGS="-fsanitize=fuzzer-no-link" LDSHARED="clang -shared" \
    "$VENV/bin/pip" install -q --no-build-isolation --no-deps \
      -Cbuild-dir=build/asan \
      -Ccmake.build-type=RelWithDebInfo \
      -Ccmake.define.TTFAST_SANITIZE=ON \
      -Ccmake.define.TTFAST_FUZZ=ON \
      -e .
  mkdir -p "$(dirname "$STAMP")" && touch "$STAMP"
fi

export LD_PRELOAD="$ASAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONMALLOC=malloc

echo "== decoder tests on the ASan/UBSan build"
"$VENV/bin/python" -m pip check
check_venv "$VENV"
TTFAST_TEST_VENV="$VENV" "$VENV/bin/python" -m pytest -q -p no:cacheprovider --capture=sys -W ignore::DeprecationWarning \
  tests/unit/test_feed.py

echo "== fuzzing ttfast._core.feed for ${SECS}s"
"$VENV/bin/python" tests/fuzz/fuzz_feed.py -max_total_time="$SECS" -rss_limit_mb=4096 \
  -print_final_stats=1 "$@"
