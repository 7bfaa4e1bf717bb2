"""Write the synthetic experiment's figures as PNGs (the same ones the notebook draws).

    python plot_scripts/plot_synthetic.py results/synthetic/quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.figures import write_figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, nargs="?", default=Path("results/synthetic/quick"))
    args = parser.parse_args()
    try:
        paths = write_figures(args.results_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
