#!/usr/bin/env bash
# Start the scale-out topology on this machine's PostgreSQL and Redis (no Docker):
# Airflow 3 api-server, scheduler, dag-processor, triggerer and two Celery workers, with the
# metadata DB, the warehouse and the dbt target on PostgreSQL. Configuration: environment
# variables (see docs/scale-out.md); pid files and logs go under $INTERESTFLOW_SCALEOUT_HOME
# (default .interestflow/scaleout). `scripts/scale-down.sh` stops exactly what this started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -m ml.orchestration.scaleout up "$@"
