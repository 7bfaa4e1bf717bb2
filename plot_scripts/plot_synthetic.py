"""Write the synthetic experiment's figures as PNGs (the same ones the notebook draws).

python plot_scripts/plot_synthetic.py results/synthetic/quick
"""

import argparse
import sys
from pathlib import Path

from experiments.checkout import use_own_checkout


def main() -> int:
    use_own_checkout(__file__)
    from experiments.synthetic_figures import write_figures

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
