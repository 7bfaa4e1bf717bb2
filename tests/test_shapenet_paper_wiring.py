"""The ShapeNet `paper` presets, run with the README's commands on a tiny stand-in: only sizes are overridden
(data root, image/point counts, network widths, one epoch, k, random VGG16 weights), never the experiment's own
keys, so every path the paper preset takes on GPUs is wired here: the scripts, the SLURM path (through
submitit's local executor), the GPU slot refusal without CUDA, and the tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dataset.locations import REPO_ROOT
from experiments.config import load_preset, preset_path
from experiments.registry import get_experiment

SCRIPTS = {  # experiment: (training script, evaluation script)
    "more_imgs": ("train_more_imgs.py", "eval_ds_moreimgs.py"),
    "more_shapes": ("train_more_shapes.py", "eval_ds_moreshapes.py"),
    "nviews": ("train_nviews.py", "eval_ds_nviews.py"),
}
# Grid sizes of the paper: 7 yaw ranges, 2 frames × 4 decoders, 7 view counts; 3 seeds each.
PAPER_RUNS = {"more_imgs": 7 * 3, "more_shapes": 2 * 4 * 3, "nviews": 7 * 3}
WITH_BASELINES = ("more_imgs", "more_shapes")  # nviews compares networks only
TINY_GRIDS = {
    "more_imgs": ["grid.yaw=[0, 90]", "grid.seed=[1]"],
    "more_shapes": ["grid.decoder=[psgn]", "grid.seed=[1]"],
    "nviews": ["grid.views=[1, 3]", "grid.seed=[1]"],
}


def _run(script: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *arguments], capture_output=True, text=True, cwd=REPO_ROOT)


@pytest.mark.parametrize("experiment", sorted(SCRIPTS))
def test_paper_preset_names_every_run_of_the_paper(experiment: str) -> None:
    preset = load_preset(preset_path(get_experiment(experiment), "paper"))
    assert len(preset.runs) == PAPER_RUNS[experiment]
    assert preset.config["ds"]["k"] == 500 and preset.config["ds"]["image_weights"] == "imagenet"
    training = preset.config["train_config"]
    assert Path(training).name == "shapenet_paper.yaml"


@pytest.mark.parametrize("experiment", sorted(SCRIPTS))
def test_paper_scripts_refuse_gpus_without_cuda(experiment: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for script in SCRIPTS[experiment]:
        result = _run(REPO_ROOT / ("train_scripts" if script.startswith("train") else "eval_scripts") / script,
                      "--preset", "paper", "--gpus", "0")  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == ["error: --gpus 0: CUDA is not available on this machine"]


@pytest.mark.parametrize("experiment", sorted(SCRIPTS))
def test_paper_commands_on_a_tiny_standin_through_submitit(experiment: str, tmp_path: Path) -> None:
    train_overrides = [
        f"data.root={tmp_path / 'standin'}",
        "data.image_size=32",
        "data.num_points=128",
        "data.shapenet.categories=[chair, airplane]",
        "model.bottleneck=32",
        "model.atlasnet.hidden=32",
        "model.atlasnet.sphere_level=2",
        "model.psgn.hidden=[32]",
        "train.epochs=1",
        "train.batch_size=8",
        "eval.every=0",
        "eval.items=null",
        "run.num_workers=0",
    ]
    overrides = [
        "--set",
        *TINY_GRIDS[experiment],
        f"train_overrides={json.dumps(train_overrides)}",
        f"runs_dir={tmp_path / 'runs'}",
        f"results_dir={tmp_path / 'results'}",
        "data.standin=true",
        "data.per_category=10",
        "data.categories=[chair, airplane]",
        "data.yaw_renders=true",
        "data.yaw_image_size=32",
        "ds.k=2",
        "ds.shape_points=256",
        "ds.image_weights=random",
        "ds.input_subsample=null",
        "baselines.classifier.arch=resnet18",
        "baselines.classifier.weights=none",
        "baselines.classifier.epochs=1",
        "baselines.classifier.batch_size=8",
    ]
    launch = ["--launcher", "submitit-local"]
    train, evaluate = SCRIPTS[experiment]
    trained = _run(REPO_ROOT / "train_scripts" / train, "--preset", "paper", *overrides, *launch)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert len(list((tmp_path / "runs").glob("*/done"))) == 2
    evaluated = _run(REPO_ROOT / "eval_scripts" / evaluate, "--preset", "paper", *overrides, *launch)
    assert evaluated.returncode == 0, evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "ds_table.csv")
    assert set(table["preset"]) == {"paper"}
    networks = table[(table["measure"] == "output") & (table["predictor"] == "network")]
    assert len(networks) == 2 and networks["ds"].notna().all() and networks["chamfer"].notna().all()
    assert set(table["measure"]) >= {"input_image", "input_shape", "output", "gt_test"}
    baselines = {"clustering", "retrieval", "oracle"} if experiment in WITH_BASELINES else set()
    assert set(table["predictor"].dropna()) == {"network", *baselines}
    assert table.loc[table["measure"] == "input_image", "features"].str.contains("random").all()
