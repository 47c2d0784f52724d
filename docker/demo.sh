#!/usr/bin/env bash
# demo.sh - build smtphook and run it on 127.0.0.1:2525 in front of a demo receiver on
# 127.0.0.1:8080 that prints every POST. Send a mail (see README) and watch it arrive.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

bash docker/install-deps.sh
cmake -S . -B build -DSMTPHOOK_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

python3 docker/demo-receiver.py --host 127.0.0.1 --port 8080 &
receiver=$!
trap 'kill "$receiver" 2>/dev/null || true' EXIT

echo "smtphook: SMTP on 127.0.0.1:2525 -> POST http://127.0.0.1:8080/inbound (Ctrl-C to stop)"
./build/smtphook --listen 127.0.0.1:2525 --webhook http://127.0.0.1:8080/inbound --hostname localhost
