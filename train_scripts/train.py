"""Train one network from a config file (a thin wrapper over ``models.engine.train``).

    python train_scripts/train.py --config configs/training/synthetic_quick.yaml --out log/synthetic/try1
    python train_scripts/train.py --config configs/training/synthetic_paper.yaml --set seed=2 \
        --set data.train_file=cluster_shape_aug_2by10_cltsize35.json --device cuda:0 --out log/x

Rerunning the same command resumes an interrupted run; a finished run is skipped unless --force.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.entry import use_own_checkout


def main(argv: Sequence[str] | None = None) -> int:
    use_own_checkout(__file__)
    from dispersion_score.locks import DirectoryLockedError
    from models.config import dump_config, load_config
    from models.engine import train
    from models.training import CheckpointError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="YAML config (may use inherit_from)")
    parser.add_argument(
        "--set", dest="overrides", action="append", nargs="+", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=10 seed=2 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    parser.add_argument("--out", type=Path, help="run directory (required unless --print-config)")
    parser.add_argument("--force", action="store_true", help="start over even if the run is finished")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    overrides = [item for group in args.overrides for item in group]
    if args.out is None and not args.print_config:
        parser.error("--out is required")
    try:
        config = load_config(args.config, overrides)
        if args.print_config:
            print(dump_config(config), end="")
            return 0
        train(config, args.out, device=args.device, force=args.force)
    except (ValueError, CheckpointError, DirectoryLockedError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)  # one line for logs
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
