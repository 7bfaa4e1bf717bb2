"""Write the ShapeNet experiments' figures as PNGs (the same ones plot_scripts/shapenet_results.ipynb draws).

python plot_scripts/plot_shapenet.py                   # the quick preset's three experiments
python plot_scripts/plot_shapenet.py --preset paper
"""

import sys

from experiments.entry import run_script

if __name__ == "__main__":
    status = 0
    for experiment in ("more_imgs", "more_shapes", "nviews"):
        status = max(status, run_script(__file__, "plot", experiment, __doc__))
    sys.exit(status)
