#!/usr/bin/env bash
# Creates .venv with the exact environment of requirements.txt, installs the dispersion_score library into it
# (editable), and puts this checkout on the venv's path so its experiment code (dataset, models, experiments,
# train_scripts, eval_scripts) is importable from scripts and notebooks without being installed anywhere.
# Idempotent: a second run only checks that nothing changed and finishes in seconds.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.setup-stamp
want=$(cat requirements.txt pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# The checkout's experiment packages have generic names (models, dataset): a .pth file in this venv only
# (not an installed distribution) makes them importable here and nowhere else.
PTH="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/dispersion_score_checkout.pth"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ "$(cat "$PTH" 2>/dev/null)" = "$PWD" ] \
  && "$VENV/bin/python" -c "import dispersion_score, experiments" 2>/dev/null; then
  echo "setup: $VENV is up to date"
  exit 0
fi
echo "setup: installing requirements (torch comes from the local wheel cache)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r requirements.txt
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
echo "$PWD" > "$PTH"
echo "$want" > "$STAMP"
echo "setup: done. Activate with: source $VENV/bin/activate"
