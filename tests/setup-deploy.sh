#!/usr/bin/env bash
# Installs the pinned linters of deploy/ (cfn-lint, checkov, hadolint) into ./.venv-deploy, a
# virtualenv of its own: their dependency pins differ from the stand-ins' in ./.venv.
# Idempotent: reinstalls only when tests/deploy/requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
req=tests/deploy/requirements.txt
stamp=.venv-deploy/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x .venv-deploy/bin/python ]; then
    "$python" -m venv .venv-deploy
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv-deploy/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi
