"""Experiment presets (one config system with the training configs) and the entry points' bad-input handling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dataset.locations import REPO_ROOT
from dispersion_score.launch import Launch
from experiments.cli import main_evaluate
from experiments.config import load_preset, preset_path
from experiments.registry import get_experiment
from experiments.runner import training_jobs

SYNTHETIC = get_experiment("synthetic")


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _minimal(tmp_path: Path) -> dict:
    return {
        "experiment": "synthetic",
        "preset": "t",
        "train_config": "configs/training/synthetic_quick.yaml",
        "runs_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "results"),
        "grid": {"kind": ["image_aug"], "s": [1, 5], "seed": [1]},
    }


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_load_and_name_every_run(preset: str) -> None:
    loaded = load_preset(preset_path(SYNTHETIC, preset))
    grid = loaded.config["grid"]
    jobs = training_jobs(loaded)
    assert len(jobs) == len(grid["kind"]) * len(grid["s"]) * len(grid["seed"])
    assert len({job.name for job in jobs}) == len(jobs)
    assert all(job.done_marker.name == "done" for job in jobs)
    # each run trains on its own training set with its own seed
    first = jobs[0].command
    assert "data.train_file=cluster_image_aug_2by10_cltsize01.json" in first and f"seed={grid['seed'][0]}" in first


def test_quick_inherits_from_paper_and_lists_only_differences() -> None:
    quick_file = yaml.safe_load(preset_path(SYNTHETIC, "quick").read_text())
    assert quick_file["inherit_from"] == "paper.yaml"
    assert "kind" not in quick_file["grid"] and "k" not in quick_file["ds"]
    quick, paper = load_preset(preset_path(SYNTHETIC, "quick")), load_preset(preset_path(SYNTHETIC, "paper"))
    assert quick.config["grid"]["s"] == paper.config["grid"]["s"] and quick.config["ds"]["k"] == 2


def test_overrides_replace_keys(tmp_path: Path) -> None:
    loaded = load_preset(_write(tmp_path, _minimal(tmp_path)), ["grid.seed=[4, 5]", "ds.k=3"])
    assert loaded.config["grid"]["seed"] == [4, 5] and loaded.config["ds"]["k"] == 3
    assert loaded.train_config_path == REPO_ROOT / "configs" / "training" / "synthetic_quick.yaml"
    assert [run.name for run in loaded.runs] == [
        "image_aug_s01_seed4",
        "image_aug_s01_seed5",
        "image_aug_s05_seed4",
        "image_aug_s05_seed5",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 3}, "unknown config key\\(s\\): epochs"),
        ({"ds": {"k": "two"}}, "ds.k: expected int"),
        ({"ds": {"kk": 2}}, "unknown config key\\(s\\): ds.kk"),
        ({"eval": {"k": 2}}, "rename 'eval:' to 'ds:'"),
        ({"grid": {"kind": ["image_aug", "views"], "s": [1], "seed": [1]}}, "grid.kind\\[1\\]: must be one of"),
        ({"grid": {"kind": ["image_aug"], "s": [3], "seed": [1]}}, "grid.s\\[0\\]: must be one of"),
        ({"data": {"build_args": "--pool"}}, "data.build_args: expected list"),
        ({"workers": 0}, "workers: must be >= 1"),
        ({"experiment": "nope"}, "unknown experiment 'nope'"),
    ],
)
def test_bad_preset_files_name_the_key(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_preset(_write(tmp_path, {**_minimal(tmp_path), **change}))


def test_missing_key_and_unknown_preset(tmp_path: Path) -> None:
    document = _minimal(tmp_path)
    del document["runs_dir"]
    with pytest.raises(ValueError, match="runs_dir: must be set"):
        load_preset(_write(tmp_path, document))
    with pytest.raises(ValueError, match="unknown preset 'nope'; available: \\['cpu', 'paper', 'quick'\\]"):
        preset_path(SYNTHETIC, "nope")


def _entry_point(*args: str) -> subprocess.CompletedProcess:
    script = REPO_ROOT / "eval_scripts" / "eval_ds_synthetic.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)


def test_entry_point_bad_preset_exits_2_with_one_line() -> None:
    result = _entry_point("--preset", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: unknown preset 'nope'; available: ['cpu', 'paper', 'quick']"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers: expected a positive integer, got '0'"),
        (["--workers", "-1"], "--workers: expected a positive integer, got '-1'"),
        (["--seeds", "1", "1"], "--seeds 1 1: a seed is repeated"),
        (["--seeds", "-1"], "--seeds: expected a non-negative integer"),
        (["--set", "ds.k=0"], "ds.k: must be >= 1"),
    ],
)
def test_entry_point_bad_options_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main_evaluate("synthetic", ["--preset", "quick", *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the machine without CUDA")
def test_gpus_without_cuda_are_refused_up_front(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main_evaluate("synthetic", ["--preset", "quick", "--gpus", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --gpus 0: CUDA is not available on this machine"


@pytest.mark.skipif(__import__("shutil").which("sbatch") is not None, reason="checks a machine without SLURM")
def test_slurm_without_slurm_is_refused_up_front(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main_evaluate("synthetic", ["--preset", "quick", "--launcher", "slurm"])
    assert exit_info.value.code == 2
    assert "no SLURM here (sbatch is not on the PATH)" in capsys.readouterr().err


def test_launch_device_follows_the_first_gpu() -> None:
    assert Launch().device == "cpu"
    assert Launch(gpus=(3, 1)).device == "cuda:3"
    with pytest.raises(ValueError, match="workers must be a positive number"):
        Launch(workers=0)
    with pytest.raises(ValueError, match="distinct non-negative"):
        Launch(gpus=(1, 1))


def test_scripts_of_another_checkout_run_that_checkout(tmp_path: Path) -> None:
    """Two clones sharing one virtualenv: a script of the second runs the second's code (issue 9, item 15)."""
    import shutil

    clone = tmp_path / "clone"
    for folder in ("dispersion_score", "dataset", "models", "experiments", "eval_scripts", "configs"):
        shutil.copytree(REPO_ROOT / folder, clone / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (clone / "configs" / "presets" / "synthetic" / "onlyhere.yaml").write_text("inherit_from: quick.yaml\n")
    with open(clone / "experiments" / "__init__.py", "a") as handle:
        handle.write("import sys\nprint('imported from the clone', file=sys.stderr)\n")
    environment = {key: value for key, value in __import__("os").environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(clone / "eval_scripts" / "eval_ds_synthetic.py"), "--preset", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
    )
    assert result.returncode == 2
    assert "imported from the clone" in result.stderr
    assert "available: ['cpu', 'onlyhere', 'paper', 'quick']" in result.stderr


def test_a_sweep_folder_is_owned_by_one_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dispersion_score.locks import directory_lock

    results = tmp_path / "results"
    with directory_lock(results, what="sweep (results)"):  # another evaluation of the same sweep is running
        with pytest.raises(SystemExit) as exit_info:
            main_evaluate("synthetic", ["--preset", "quick", "--set", f"results_dir={results}"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and str(results) in message and f"pid {__import__('os').getpid()}" in message


def test_cpu_preset_is_quick_on_the_papers_schedule(tmp_path: Path) -> None:
    """The cpu preset changes only the training schedule (docs/convergence.md): the paper's epochs and milestones,
    everything else the quick preset's."""
    experiment = get_experiment("synthetic")
    cpu, quick, paper = (load_preset(preset_path(experiment, name)) for name in ("cpu", "quick", "paper"))
    run_cpu, run_quick, run_paper = (preset.runs[0] for preset in (cpu, quick, paper))
    train_cpu, train_quick = cpu.training_config(run_cpu), quick.training_config(run_quick)
    train_paper = paper.training_config(run_paper)
    for key in ("epochs", "milestones", "gamma", "lr", "batch_size"):
        assert train_cpu["train"][key] == train_paper["train"][key], key
    assert train_cpu["data"] == train_quick["data"] and train_cpu["model"] == train_quick["model"]
    assert {k: v for k, v in cpu.config.items() if k not in ("preset", "train_config", "runs_dir", "results_dir")} == {
        k: v for k, v in quick.config.items() if k not in ("preset", "train_config", "runs_dir", "results_dir")
    }


@pytest.mark.parametrize("name", ["more_imgs", "more_shapes", "nviews"])
def test_shapenet_cpu_presets_are_quick_on_the_papers_schedule(name: str) -> None:
    """The ShapeNet cpu presets: the paper's epochs, milestones and seeds; data, model, batch and DS settings the
    quick preset's (nviews: the paper's 120 epochs of one view, spread over the view counts)."""
    experiment = get_experiment(name)
    cpu, quick, paper = (load_preset(preset_path(experiment, preset)) for preset in ("cpu", "quick", "paper"))
    assert cpu.config["grid"]["seed"] == paper.config["grid"]["seed"]
    ignored = ("preset", "train_config", "runs_dir", "results_dir", "grid", "steps")
    assert {k: v for k, v in cpu.config.items() if k not in ignored} == {
        k: v for k, v in quick.config.items() if k not in ignored
    }
    assert {k: v for k, v in cpu.config["grid"].items() if k != "seed"} == {
        k: v for k, v in quick.config["grid"].items() if k != "seed"
    }
    assert len(cpu.runs) == len(quick.runs) * len(paper.config["grid"]["seed"])
    for run_cpu, run_quick in zip(cpu.runs[:: len(cpu.config["grid"]["seed"])], quick.runs, strict=True):
        train_cpu, train_quick = cpu.training_config(run_cpu), quick.training_config(run_quick)
        assert train_cpu["data"] == train_quick["data"] and train_cpu["model"] == train_quick["model"]
        assert train_cpu["train"]["batch_size"] == train_quick["train"]["batch_size"]
        views = run_cpu.point.get("views", 1)
        paper_train = paper.training_config(paper.runs[0])["train"]
        # one view: the paper's schedule; v views: its steps (epochs / v, milestones scaled, at least one epoch)
        assert train_cpu["train"]["epochs"] == max(1, round(paper_train["epochs"] / views))
        if views == 1:
            assert train_cpu["train"]["milestones"] == paper_train["milestones"]
