#!/usr/bin/env bash
# Create .venv in the repository and install vvkit, its runtime and the test
# tools into it. Safe to run again: it reinstalls only when a pyproject.toml
# changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: vvkit needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv .venv
fi

stamp=.venv/.vvkit-installed
wanted="$(cat pyproject.toml runtime/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "installing vvkit, vvkit-runtime and test tools into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ./runtime -e '.[test]'
    echo "$wanted" > "$stamp"
fi
