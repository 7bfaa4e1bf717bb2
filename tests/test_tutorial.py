"""docs/tutorial.md runs as written: its `python` blocks in one namespace and its `console` lines as commands
(the `dispersion-score` of this interpreter's environment), in an empty folder; then its claims are checked."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dispersion_score import load_result

# The library's own test: it also runs against the installed wheel, where the checkout's packages are absent.
TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def tutorial_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return [(match.group(1), match.group(2)) for match in _BLOCK.finditer(text)]


@pytest.mark.slow
def test_the_tutorial_runs_and_the_network_it_builds_recognises(tmp_path, monkeypatch, capsys):
    blocks = tutorial_blocks(TUTORIAL.read_text(encoding="utf-8"))
    kinds = [kind for kind, _ in blocks]
    assert kinds.count("python") >= 3 and "console" in kinds, kinds
    command = Path(sys.executable).parent / "dispersion-score"  # the environment's entry point
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "tutorial"}
    for index, (kind, code) in enumerate(blocks):
        if kind == "python":
            exec(compile(code, f"{TUTORIAL.name} block {index}", "exec"), namespace)
        elif kind == "console":
            for line in filter(None, code.splitlines()):
                argv = shlex.split(line)
                assert argv[0] == "dispersion-score", line
                done = subprocess.run([str(command), *argv[1:]], capture_output=True, text=True, env=os.environ)
                assert done.returncode == 0, f"{line}\n{done.stderr}"
    assert (tmp_path / "scale.png").stat().st_size > 0
    diagnosis = load_result(tmp_path / "diagnosis.json")["result"]
    assert diagnosis["position"] < 0.25 and diagnosis["ds_predictions"] < diagnosis["ds_ground_truth"]
    assert "this network recognises" in capsys.readouterr().out
