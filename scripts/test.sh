#!/usr/bin/env bash
# Run the test suite. Uses the Redis and PostgreSQL that answer at
# VV_TEST_REDIS_URL / VV_TEST_DATABASE_URL (default 127.0.0.1:6379 and
# 127.0.0.1:5432) and starts private ones on free loopback ports where none
# answers. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/python -m pytest "$@"
