"""Measure DS for the synthetic experiment: input image/shape DS per training set, ground-truth test DS,
and output DS, test Chamfer and F-score of every finished run; writes results/synthetic/<preset>/ds_table.csv.

    python eval_scripts/eval_ds_synthetic.py --preset quick
    python eval_scripts/eval_ds_synthetic.py --preset paper --gpus 0 1
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "evaluate", "synthetic", __doc__))
