"""The synthetic cube↔sphere experiment, end to end: data, training, evaluation, figures.

python -m experiments.synthetic --preset quick
"""

import sys

from experiments.cli import main_all

if __name__ == "__main__":
    sys.exit(main_all("synthetic", description=__doc__.splitlines()[0], prog="python -m experiments.synthetic"))
