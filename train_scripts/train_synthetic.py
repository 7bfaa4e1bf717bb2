"""Train the synthetic experiment's sweep: image_aug_s and shape_aug_s for every s and seed (SPEC §3).

    python train_scripts/train_synthetic.py --preset quick --workers 2
    python train_scripts/train_synthetic.py --preset paper --gpus 0 1 2 3
    python train_scripts/train_synthetic.py --preset paper --gpus 0 --launcher slurm

Finished runs are skipped; a failed run is logged and the sweep goes on, then exits 1 listing it.
"""

from __future__ import annotations

import argparse
import sys

from experiments.sweep import fail_on
from experiments.synthetic import launch_from_arguments, parse_sweep_command_line, setup_logging, train


def main() -> int:
    args, cfg = parse_sweep_command_line(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    setup_logging(cfg.runs_dir / "sweep.log")
    report = train(cfg, launch_from_arguments(args))
    return fail_on(report, "training")


if __name__ == "__main__":
    sys.exit(main())
