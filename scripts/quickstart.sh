#!/usr/bin/env bash
# The main job: install dependencies (Debian 12), build, and run the quickstart
# experiment on the embedded synthetic data. Extra arguments go to `gyrus run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec build/bin/gyrus run examples/quickstart.gy "$@"
