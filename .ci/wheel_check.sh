#!/usr/bin/env bash
# The library as a user installs it: builds the wheel from this checkout's tracked files, installs it into a
# clean venv outside the checkout next to another torch (default 2.13.0, the oldest release pyproject.toml
# allows; `pip install torch==2.13.0` takes the CPU build from the local wheel cache), then runs the library's
# own tests against the installed package and the command line on a small folder of shapes.
#   .ci/wheel_check.sh                # torch 2.13.0
#   TORCH=2.14.1 TORCHVISION=0.29.1 .ci/wheel_check.sh   # the other end, with the optional torchvision
# Needs .venv (./setup.sh) for building. Leaves nothing behind (the work folder is removed on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOUT=$PWD
TORCH=${TORCH:-2.13.0}
TORCHVISION=${TORCHVISION:-}  # optional (extra "imagenet"); none by default, see below
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dispersion-score-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
started=$SECONDS
step() { echo "wheel_check [$((SECONDS - started)) s]: $*"; }

step "building the wheel from the tracked files"
mkdir "$WORK/src"
git ls-files -z | xargs -0 cp --parents -t "$WORK/src"
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src"
wheel=$(ls "$WORK"/dist/dispersion_score-*.whl)
echo "  $(basename "$wheel"): $(.venv/bin/python -m zipfile -l "$wheel" | tail -n +2 | wc -l) files"

step "clean venv with torch==$TORCH"
"$PYTHON" -m venv "$WORK/venv"
pip=("$WORK/venv/bin/python" -m pip install --quiet)
echo "torch==$TORCH" > "$WORK/constraints.txt"  # the user's torch stays: nothing may upgrade it
# torchvision is optional (extra "imagenet"): PyPI's torchvision 0.28.0, the one for torch 2.13.0, is built
# against the CUDA torch and does not load next to 2.13.0+cpu; the library runs without it.
"${pip[@]}" -c "$WORK/constraints.txt" "torch==$TORCH" ${TORCHVISION:+"torchvision==$TORCHVISION"}
step "installing the wheel (its dependencies from pyproject.toml's ranges) and pytest"
"${pip[@]}" -c "$WORK/constraints.txt" "$wheel" pytest
cd "$WORK"  # from here on nothing of the checkout is importable
venv/bin/python - <<'EOF'
import dispersion_score, torch
print(f"  dispersion_score {dispersion_score.__version__} from {dispersion_score.__file__}, torch {torch.__version__}")
assert "site-packages" in dispersion_score.__file__, "not the installed wheel"
for name in ("dataset", "models", "experiments", "train_scripts", "eval_scripts"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"the wheel installed a top-level {name!r} package")
EOF

step "the library's tests against the installed package (kernel compiled from the wheel's source)"
mkdir tests benchmarks
for name in conftest.py test_io.py test_formats.py test_chamfer.py test_kmedoids.py test_kmedoids_kernel_variants.py \
  test_score.py test_features.py test_packaging.py test_tutorial.py; do
  cp "$CHECKOUT/tests/$name" tests/
done
cp -r "$CHECKOUT/tests/csrc" tests/  # the drivers that run a kernel under an emulator
if venv/bin/python -c "import torchvision" 2>/dev/null; then cp "$CHECKOUT/tests/test_perceptual.py" tests/; fi
cp "$CHECKOUT/benchmarks/__init__.py" "$CHECKOUT/benchmarks/_inputs.py" benchmarks/  # the tests' input builders
mkdir docs && cp "$CHECKOUT/docs/tutorial.md" docs/  # test_tutorial runs it
printf '[pytest]\nmarkers =\n    cuda: needs a CUDA device\n    slow: takes more than a few seconds\n' > pytest.ini
export DISPERSION_SCORE_CACHE=$WORK/cache  # a fresh kernel build, from the installed package's source
PYTHONPATH=$WORK venv/bin/python -m pytest -q -p no:cacheprovider tests
venv/bin/python -c "from dispersion_score import _chamfer_kernel as k; assert k.load_kernel(), k.unavailable_reason()"

step "the command line on a small folder"
venv/bin/python - <<'EOF'
import numpy as np, trimesh
from pathlib import Path
from PIL import Image
folder, images = Path("shapes"), Path("images")
folder.mkdir(), images.mkdir()
rng = np.random.default_rng(0)
for i in range(4):
    np.save(folder / f"cloud{i}.npy", rng.normal(size=(300, 3)))
    trimesh.creation.icosphere(subdivisions=2, radius=1 + 0.1 * i).export(folder / f"sphere{i}.stl")
    Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
EOF
venv/bin/dispersion-score shapes shapes --k 2 --points 500 --no-progress --out result.json
venv/bin/python -c "import json; d = json.load(open('result.json')); assert d['settings']['n_items'] == 8, d; \
print('  DS', d['result']['ds'], 'torch', d['provenance']['torch'])"
venv/bin/dispersion-score images images --k 2 --weights random --no-progress  # VGG16 path without torchvision
step "done"
