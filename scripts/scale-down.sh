#!/usr/bin/env bash
# Stop the processes scripts/scale-up.sh started (by their pid files; nothing else is signalled).
# Pass --drop-databases to also drop the topology's metadata and warehouse databases.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -m ml.orchestration.scaleout down "$@"
