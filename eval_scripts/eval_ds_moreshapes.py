"""Measure DS for "more dispersed shapes": input image DS, input shape DS per frame, output DS (object
frame) of every run; writes results/shapenet/<preset>/more_shapes/ds_table.csv.

    python eval_scripts/eval_ds_moreshapes.py --preset paper --gpus 0
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "evaluate", "more_shapes", __doc__))
