"""Write the synthetic experiment's figures as PNGs (the same ones the notebook draws).

python plot_scripts/plot_synthetic.py                          # the quick preset's results
python plot_scripts/plot_synthetic.py results/synthetic/paper
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__, "plot", "synthetic", __doc__))
