#!/usr/bin/env bash
# Installs what the product needs (first run only) and starts the advstudio desktop application.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" ""
exec advstudio "$@"
