"""Measure DS for "more dispersed images": input image DS per r, input shape DS, output DS, Chamfer and
F-score of every run on the r = 90 test renders; writes results/shapenet/<preset>/more_imgs/ds_table.csv.

    python eval_scripts/eval_ds_moreimgs.py --preset paper --gpus 0
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "evaluate", "more_imgs", __doc__))
