"""Measure DS for the synthetic experiment: input image/shape DS per training set, ground-truth test DS,
and output DS, test Chamfer and F-score of every finished run; writes results/synthetic/<preset>/ds_table.csv.

    python eval_scripts/eval_ds_synthetic.py --preset quick
    python eval_scripts/eval_ds_synthetic.py --preset paper --gpus 0 1
"""

from __future__ import annotations

import argparse
import sys

from experiments.sweep import fail_on
from experiments.synthetic import evaluate, main_device, parse_sweep_command_line, setup_logging


def main() -> int:
    args, cfg = parse_sweep_command_line(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    setup_logging(cfg.results_dir / "evaluate.log")
    report, table = evaluate(
        cfg, device=main_device(args.gpus), launcher=args.launcher, gpus=args.gpus, workers=args.workers
    )
    print(f"wrote {cfg.results_dir / 'ds_table.csv'} ({len(table)} rows)")
    return fail_on(report, "evaluation")


if __name__ == "__main__":
    sys.exit(main())
