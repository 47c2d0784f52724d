#!/usr/bin/env bash
# run.sh - the whole test suite: install what is missing, then build and run every test
# twice, once in a normal build and once with AddressSanitizer + UndefinedBehaviorSanitizer.
# Warnings are errors in both builds.
set -euo pipefail
cd "$(dirname "$0")/.."

bash docker/install-deps.sh --test

jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (release with debug info)"
cmake -S . -B build -DSMTPHOOK_WERROR=ON -DSMTPHOOK_TESTS=ON >/dev/null
cmake --build build -j"$jobs"

echo "== build (ASan + UBSan)"
cmake -S . -B build-sanitize -DSMTPHOOK_WERROR=ON -DSMTPHOOK_TESTS=ON -DSMTPHOOK_SANITIZE=ON \
      -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-sanitize -j"$jobs"

# ctest_run DIR [ctest args] - run one build's tests, then list what they skipped and why
# (a skip passes in ctest, and a passing test's output is not shown).
ctest_run() {
    local dir=$1 rc=0
    shift
    ctest --test-dir "$dir" --output-on-failure --no-tests=error "$@" || rc=$?
    python3 tests/report_skips.py "$dir" || true
    return "$rc"
}

echo "== tests (normal build)"
ctest_run build

echo "== tests (ASan + UBSan build)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest_run build-sanitize
