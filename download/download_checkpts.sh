#!/usr/bin/env bash
# Downloads the paper's trained networks from the original release, unpacked where models.original reads them:
#   log/train_synthetic   48 synthetic AtlasNet runs (checkpoint.pt)
#   log/more_imgs         21 more-dispersed-images runs (network.pth + opts.yaml)
#   log/more_shapes       24 more-dispersed-shapes runs (network.pth + opts.yaml)
# Resumable; refuses to overwrite existing folders; fails at once, with what to do, when offline.
# Options (see `python download/download.py --help`): --only NAME..., --from-dir DIR, --keep-archives,
# --cache-dir DIR, --dry-run. Needs gdown (pip install gdown) unless --from-dir is given.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$here/../.venv/bin/python" ]]; then python="$here/../.venv/bin/python"; else python="$(command -v python3 || command -v python)"; fi
fi
exec "$python" "$here/download.py" checkpoints "$@"
