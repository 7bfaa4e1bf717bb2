"""Train the number-of-views sweep: viewer-centred AtlasNet with 1, 3, 6, ... training views per shape.

python train_scripts/train_nviews.py --preset quick
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "train", "nviews", __doc__))
