"""One evaluation job of a sweep: a target's prediction file and its output DS, test Chamfer and F-score.

python -m experiments.evaluate --config configs/presets/synthetic/quick.yaml --target image_aug_s01_seed1
"""

import sys

from experiments.cli import main_job

if __name__ == "__main__":
    sys.exit(main_job())
