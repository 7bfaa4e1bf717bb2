"""The paper's three ShapeNet experiments, end to end.

python -m experiments.shapenet --preset quick [--experiments more_imgs more_shapes nviews]
"""

import sys

from experiments.cli import main_all
from experiments.shapenet.declaration import EXPERIMENT_NAMES

if __name__ == "__main__":
    sys.exit(
        main_all(
            EXPERIMENT_NAMES,
            description=__doc__.splitlines()[0],
            prog="python -m experiments.shapenet",
            suite="ShapeNet",
        )
    )
