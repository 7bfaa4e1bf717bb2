#!/usr/bin/env bash
# Downloads what the original release's README points to, unpacked where this project reads it:
#   dataset/data/ShapeNetV1PointCloud            AtlasNet's ShapeNet point clouds
#   dataset/data/ShapeNetV1Renderings            3D-R2N2 renders (AtlasNet's copy)
#   dataset/data/ShapeNetV1RenderingAnglelimit   the original's yaw-limited renders
#   dataset/synthetic_data/original_cubesphere_1000   the original's synthetic data (NOT our builder's
#                                                     dataset/synthetic_data/cubesphere_1000, never touched)
# Resumable; refuses to overwrite existing folders; fails at once, with what to do, when offline.
# Options (see `python download/download.py --help`): --only NAME..., --from-dir DIR, --keep-archives,
# --cache-dir DIR, --dry-run. Needs gdown (pip install gdown) unless --from-dir is given.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$here/../.venv/bin/python" ]]; then python="$here/../.venv/bin/python"; else python="$(command -v python3 || command -v python)"; fi
fi
exec "$python" "$here/download.py" data "$@"
