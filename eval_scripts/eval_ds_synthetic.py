"""Measure DS for the synthetic experiment: input image/shape DS per training set, ground-truth test DS,
and output DS, test Chamfer and F-score of every finished run; writes results/synthetic/<preset>/ds_table.csv.

    python eval_scripts/eval_ds_synthetic.py --preset quick
    python eval_scripts/eval_ds_synthetic.py --preset paper --gpus 0 1
"""

from __future__ import annotations

import argparse
import sys

from experiments.sweep import fail_on
from experiments.synthetic import evaluate, launch_from_arguments, parse_sweep_command_line, setup_logging


def main() -> int:
    args, cfg = parse_sweep_command_line(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    setup_logging(cfg.results_dir / "evaluate.log")
    report, table = evaluate(cfg, launch_from_arguments(args))
    print(f"wrote {cfg.results_dir / 'ds_table.csv'} ({len(table)} rows)")
    return fail_on(report, "evaluation")


if __name__ == "__main__":
    sys.exit(main())
