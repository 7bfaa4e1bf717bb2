"""Train the "more dispersed shapes" sweep: object- vs viewer-centred targets × four decoders × seeds.

python train_scripts/train_more_shapes.py --preset quick
python train_scripts/train_more_shapes.py --preset paper --gpus 0 1 2 3
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "train", "more_shapes", __doc__))
