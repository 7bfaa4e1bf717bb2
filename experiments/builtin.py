"""The built-in experiments, registered under the names their declarations give them: the one list of them.

Imported by the command-line entry points (:mod:`experiments.cli`) and, by name, by
:func:`experiments.registry.get_experiment`; nothing else imports it (the declarations are below it).
"""

from __future__ import annotations

from collections.abc import Callable

from experiments.declaration import Experiment
from experiments.registry import register_experiment
from experiments.shapenet.declaration import more_imgs, more_shapes, nviews
from experiments.synthetic.declaration import synthetic

BUILTIN: tuple[Callable[[], Experiment], ...] = (synthetic, more_imgs, more_shapes, nviews)

for _factory in BUILTIN:
    register_experiment(_factory().name, _factory)
