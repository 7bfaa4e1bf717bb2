"""``python -m dataset.shapenet.standin --root DIR``: build the stand-in (:mod:`dataset.shapenet.standin.build`)."""

import sys

from dataset.shapenet.standin.build import main

sys.exit(main())
