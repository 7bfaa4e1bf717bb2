"""The experiment registry: the name a preset gives under ``experiment:`` → the factory of its declaration.

The built-in experiments are registered by :mod:`experiments.builtin`, the one module that lists them. No module
below it imports it: the command-line entry points (:mod:`experiments.cli`) import it, and :func:`get_experiment`
loads it by name before its first lookup, so any process (a sweep's job, a notebook, a test) finds them. Loading
it by name keeps this registry below the declarations it holds: they use the preset loader and the runner, which
look experiments up here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from experiments.declaration import Experiment

BUILTIN_MODULE = "experiments.builtin"

EXPERIMENTS: dict[str, Callable[[], Experiment]] = {}


def register_experiment(name: str, factory: Callable[[], Experiment]) -> None:
    """Makes ``experiment: <name>`` in a preset refer to the declaration ``factory()`` returns.

    Args:
        name: the registry name (the ``experiment`` column of tables); registering it again replaces it.
        factory: () → the :class:`Experiment`, called at every lookup.
    """
    EXPERIMENTS[name] = factory


def get_experiment(name: str) -> Experiment:
    """The declaration registered under ``name`` (the built-in ones are loaded first).

    Raises:
        ValueError: no experiment of that name, listing the registered ones.
    """
    load_builtin()
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; registered: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]()


def load_builtin() -> None:
    """Registers the built-in experiments (imports :mod:`experiments.builtin` once; later calls are no-ops)."""
    importlib.import_module(BUILTIN_MODULE)
