"""The scripts users run (``train_scripts/``, ``eval_scripts/``, ``plot_scripts/``): one dispatcher, and the
guarantee that a script runs the code and writes into the folders of the checkout it belongs to.

Two clones sharing one virtualenv: the editable install maps ``import experiments`` (and ``models``, ...) to the
clone that ran ``./setup.sh``, so a script of the other clone would run the first clone's code and write into
its folders. :func:`use_own_checkout`, called first by every script, detects this and restarts the script with
its own checkout first on ``PYTHONPATH`` (jobs it starts inherit that), or refuses if that did not help.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

_RESTARTED = "DISPERSION_SCORE_CHECKOUT_RESTARTED"


def imported_root() -> Path:
    """The checkout the project's packages are imported from."""
    return Path(__file__).resolve().parents[1]


def use_own_checkout(script: str) -> None:
    """Makes sure the running script imports the project from its own checkout (``script``'s ``../``).

    Restarts the process (``os.execv``) with that checkout prepended to ``PYTHONPATH`` when another checkout's
    code was imported; exits with status 2 and a one-line message if even that does not help.
    """
    own = Path(script).resolve().parents[1]
    if own == imported_root():
        return
    if os.environ.get(_RESTARTED) == str(own):
        sys.exit(
            f"error: {script} belongs to {own}, but Python imports this project from {imported_root()} "
            f"(the virtualenv's editable install); run it with {own}'s own environment (cd {own} && ./setup.sh)"
        )
    path = os.pathsep.join(p for p in (str(own), os.environ.get("PYTHONPATH", "")) if p)
    os.environ.update({"PYTHONPATH": path, _RESTARTED: str(own)})
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def run_script(script: str, step: str, experiment: str, doc: str | None = None) -> int:
    """What a thin entry-point script does: :func:`use_own_checkout`, then one step of one experiment.

    Args:
        script: the script's ``__file__``.
        step: "train" (the training sweep), "evaluate" (DS tables) or "plot" (figures of a results folder).
        experiment: the experiment's registry name ("synthetic", "more_imgs", ...).
        doc: the script's docstring; its first line is the ``--help`` description.

    Returns:
        The exit status.
    """
    use_own_checkout(script)
    from experiments import cli

    steps: dict[str, Callable[..., int]] = {"train": cli.main_train, "evaluate": cli.main_evaluate,
                                            "plot": cli.main_plot}  # fmt: skip
    if step not in steps:
        raise ValueError(f"step must be one of {sorted(steps)}, got {step!r}")
    return steps[step](experiment, description=(doc or "").strip().splitlines()[0] if doc else "")
