"""Train the synthetic experiment's sweep: image_aug_s and shape_aug_s for every s and seed (docs/dataset.md).

    python train_scripts/train_synthetic.py --preset quick --workers 2
    python train_scripts/train_synthetic.py --preset paper --gpus 0 1 2 3
    python train_scripts/train_synthetic.py --preset paper --gpus 0 --launcher slurm --slurm-partition gpu

Finished runs are skipped; a failed run is logged and the sweep goes on, then exits 1 listing it.
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "train", "synthetic", __doc__))
