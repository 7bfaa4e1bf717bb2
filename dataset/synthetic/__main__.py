"""``python -m dataset.synthetic --root DIR``: build the synthetic dataset (:mod:`dataset.synthetic.build`)."""

import sys

from dataset.synthetic.build import main

sys.exit(main())
