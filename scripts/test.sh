#!/usr/bin/env bash
# Installs what the tests need (first run only) and runs ruff and the test suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" "test"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export QT_QPA_PLATFORM=offscreen
ruff check advstudio tests benchmarks
python -m pytest "$@"
