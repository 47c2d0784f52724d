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

echo "== tests (normal build)"
ctest --test-dir build --output-on-failure --no-tests=error

echo "== tests (ASan + UBSan build)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-sanitize --output-on-failure --no-tests=error
