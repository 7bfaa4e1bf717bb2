"""Measure DS for the number-of-views sweep; writes results/shapenet/<preset>/nviews/ds_table.csv.

python eval_scripts/eval_ds_nviews.py --preset quick
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "evaluate", "nviews", __doc__))
