"""The experiment registry: the built-in experiments are listed once (experiments.builtin), found by name from any
process, and their declarations carry no entry code (importing one does not import the command line)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dataset.locations import REPO_ROOT
from experiments.builtin import BUILTIN
from experiments.cli import EXIT_BAD_INPUT, main_all
from experiments.config import PRESETS_DIR as PRESETS
from experiments.registry import EXPERIMENTS, get_experiment
from experiments.shapenet.declaration import EXPERIMENT_NAMES

BUILTIN_NAMES = {"synthetic", "more_imgs", "more_shapes", "nviews"}
DECLARATIONS = ("experiments.synthetic.declaration", "experiments.shapenet.declaration")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)


def test_the_builtin_registry_holds_the_four_experiments_under_their_own_names() -> None:
    assert {factory().name for factory in BUILTIN} == BUILTIN_NAMES
    assert BUILTIN_NAMES <= set(EXPERIMENTS)
    for name in BUILTIN_NAMES:
        assert get_experiment(name).name == name
    with pytest.raises(ValueError, match="unknown experiment 'nope'; registered: .*synthetic"):
        get_experiment("nope")


def test_a_lookup_in_a_fresh_process_loads_the_builtin_experiments() -> None:
    result = _python("from experiments.registry import get_experiment; print(get_experiment('nviews').name)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nviews"]


@pytest.mark.parametrize("module", DECLARATIONS)
def test_importing_a_declaration_imports_neither_the_command_line_nor_the_builtin_list(module: str) -> None:
    result = _python(f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))")
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert module in loaded
    assert "experiments.cli" not in loaded
    assert "experiments.builtin" not in loaded


@pytest.mark.parametrize("command", ["experiments.synthetic", "experiments.shapenet"])
def test_the_experiment_commands_are_the_packages_mains(command: str) -> None:
    result = subprocess.run([sys.executable, "-m", command, "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {command} ")
    assert ("--experiments" in result.stdout) == (command == "experiments.shapenet")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", str(PRESETS / "more_imgs" / "quick.yaml")], "is the preset of one experiment"),
        (["--seeds", "1", "1"], "--seeds 1 1: a seed is repeated"),
        (["--experiments", "more_imgs", "--config", str(PRESETS / "nviews" / "quick.yaml")], "not 'more_imgs'"),
    ],
)
def test_the_shapenet_suite_refuses_what_a_single_experiment_refuses(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main_all(EXPERIMENT_NAMES, argv, suite="ShapeNet")
    assert stopped.value.code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
