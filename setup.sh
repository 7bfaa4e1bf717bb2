#!/usr/bin/env bash
# Creates .venv and installs dispersion-score with everything it needs. Idempotent: a second run only
# checks that the requirements are unchanged and finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.setup-stamp
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c "import dispersion_score" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi
echo "setup: installing requirements (torch comes from the local wheel cache)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r requirements.txt
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
echo "$want" > "$STAMP"
echo "setup: done. Activate with: source $VENV/bin/activate"
