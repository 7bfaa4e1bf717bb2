"""Measure DS for the synthetic experiment: input image/shape DS per training set, ground-truth test DS,
and output DS, test Chamfer and F-score of every finished run; writes results/synthetic/<preset>/ds_table.csv.

    python eval_scripts/eval_ds_synthetic.py --preset quick
    python eval_scripts/eval_ds_synthetic.py --preset paper --gpus 0 1
"""

import sys

from experiments.checkout import use_own_checkout


def main() -> int:
    use_own_checkout(__file__)
    from experiments.cli import main_evaluate

    return main_evaluate("synthetic", description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
