"""Print the README's results tables (markdown) from results folders' files: DS per grid point and directions.

python plot_scripts/results_tables.py results/synthetic/quick results/shapenet/quick/* > tables.md
"""

import sys

from experiments.entry import use_own_checkout

if __name__ == "__main__":
    use_own_checkout(__file__)
    from experiments.results_tables import main

    sys.exit(main())
