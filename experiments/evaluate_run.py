"""One evaluation job of a sweep: output DS, test Chamfer and F-score of one finished training run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.sweep_config import load_sweep_config
from experiments.synthetic import evaluate_run, setup_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sweep-config", type=Path, required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--s", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    cfg = load_sweep_config(args.sweep_config, seeds=tuple(args.seeds) if args.seeds else None)
    setup_logging(cfg.results_dir / "logs" / "evaluate_run.log")
    record = evaluate_run(cfg, args.kind, args.s, args.seed, device=args.device)
    print(f"{args.kind} s={args.s} seed={args.seed}: output DS {record['ds']:.5g}, chamfer {record['chamfer']:.5g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
