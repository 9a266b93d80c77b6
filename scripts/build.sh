#!/usr/bin/env bash
# Configures and builds gyrus into build/ (Ninja, -j2 by default; JOBS=N to change).
# Set WERROR=1 to treat warnings in gyrus's own targets as errors (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${JOBS:-2}"
werror=OFF
if [ "${WERROR:-0}" = "1" ] || [ "${CI:-}" = "true" ]; then werror=ON; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGYRUS_WERROR="$werror" >/dev/null
cmake --build build -j "$jobs"
