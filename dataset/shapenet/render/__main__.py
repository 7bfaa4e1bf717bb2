"""``python -m dataset.shapenet.render --meshes DIR --out DIR``: yaw-limited render sets
(:mod:`dataset.shapenet.render.yaw_sets`)."""

import sys

from dataset.shapenet.render.yaw_sets import main

sys.exit(main())
