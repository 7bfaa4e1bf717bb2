"""``python -m dataset.shapenet --root DIR --summary``: check a ShapeNet data root (:mod:`dataset.shapenet.dataset`)."""

import sys

from dataset.shapenet.dataset import main

sys.exit(main())
