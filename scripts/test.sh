#!/usr/bin/env bash
# Run the test suite. Uses the Redis and PostgreSQL that answer at
# VV_TEST_REDIS_URL / VV_TEST_DATABASE_URL (default 127.0.0.1:6379 and
# 127.0.0.1:5432) and starts private ones on free loopback ports where none
# answers.
#
# Without arguments: the whole suite on the stdlib asyncio loop, then the
# transport, storage and gateway suites once more on each other event loop
# (vvkit's epoll loop, and uvloop where installed). With arguments: one
# pytest run with those arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh

if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi

.venv/bin/python -m pytest -p no:cacheprovider
for loop in epoll uvloop; do
    if ! .venv/bin/python -c "import vv.loop, sys; sys.exit(0 if vv.loop.available('$loop') else 1)"; then
        echo "event loop $loop is not available here; its suite run is skipped" >&2
        continue
    fi
    echo "--- transport, storage and gateway suites on the $loop event loop" >&2
    .venv/bin/python -m pytest -p no:cacheprovider -p vv.loop.pytest_plugin --vv-loop "$loop" -m "not slow" \
        tests/runtime tests/storage tests/gateway tests/caffeine
done
