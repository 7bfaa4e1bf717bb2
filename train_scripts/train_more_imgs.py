"""Train the "more dispersed images" sweep: AtlasNet per yaw range r = 0, 15, ..., 90 and seed (docs/experiments.md).

python train_scripts/train_more_imgs.py --preset quick
python train_scripts/train_more_imgs.py --preset paper --gpus 0 1 2 3
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "train", "more_imgs", __doc__))
