"""Sweep files and the experiment entry points' handling of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.sweep_config import REPO_ROOT, load_sweep_config, preset_path
from experiments.synthetic import Launch, training_jobs


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _minimal(tmp_path: Path) -> dict:
    return {
        "preset": "t",
        "train_config": "configs/synthetic_quick.yaml",
        "runs_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "results"),
    }


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_load_and_name_every_run(preset: str) -> None:
    cfg = load_sweep_config(preset_path(preset))
    jobs = training_jobs(cfg)
    assert len(jobs) == len(cfg.kinds) * len(cfg.cluster_sizes) * len(cfg.seeds)
    assert len({job.name for job in jobs}) == len(jobs)
    assert all(job.done_marker.name == "done" for job in jobs)
    # each run trains on its own training set with its own seed
    first = jobs[0].command
    assert "data.train_file=cluster_image_aug_2by10_cltsize01.json" in first and f"seed={cfg.seeds[0]}" in first


def test_overrides_replace_top_level_keys(tmp_path: Path) -> None:
    cfg = load_sweep_config(_write(tmp_path, _minimal(tmp_path)), seeds=(4, 5))
    assert cfg.seeds == (4, 5)
    assert cfg.train_config == REPO_ROOT / "configs" / "synthetic_quick.yaml"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 3}, "unknown keys \\['epochs'\\]"),
        ({"eval": {"k": "two"}}, "eval.k: expected int"),
        ({"eval": {"kk": 2}}, "eval: unknown keys \\['kk'\\]"),
        ({"kinds": ["image_aug", "views"]}, "kinds \\['views'\\]"),
        ({"data": {"build_args": "--pool"}}, "data.build_args: expected a list"),
    ],
)
def test_bad_sweep_files_name_the_key(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_sweep_config(_write(tmp_path, {**_minimal(tmp_path), **change}))


def test_missing_key_and_unknown_preset(tmp_path: Path) -> None:
    document = _minimal(tmp_path)
    del document["runs_dir"]
    with pytest.raises(ValueError, match="missing key 'runs_dir'"):
        load_sweep_config(_write(tmp_path, document))
    with pytest.raises(ValueError, match="unknown preset 'nope'; available: \\['paper', 'quick'\\]"):
        preset_path("nope")


def test_entry_point_bad_preset_exits_2_with_one_line() -> None:
    script = REPO_ROOT / "eval_scripts" / "eval_ds_synthetic.py"
    result = subprocess.run([sys.executable, str(script), "--preset", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: unknown preset 'nope'; available: ['paper', 'quick']"]


def test_launch_device_follows_the_first_gpu() -> None:
    assert Launch().device == "cpu"
    assert Launch(gpus=(3, 1)).device == "cuda:3"
