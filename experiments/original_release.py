"""The original release's trained networks as a predictor: ``eval_scripts/eval_ds_<experiment>.py --runs DIR``.

``DIR`` is a folder of the original's run folders (``log/train_synthetic``, ``log/more_imgs``,
``log/more_shapes`` as ``download/download_checkpts.sh`` places them) or the ``log`` folder holding them. Each
run is converted into this project's model (:mod:`models.original`), predicts the test split the original
evaluated it on (the synthetic ``test_interp_1000.json``; the r = 90 yaw renders; R2N2 view 00), and goes
through the same output DS, Chamfer and F-score as our own runs. Records say the weights came from the
original release, and carry ``ds_original_protocol``: output DS measured as the original did (raw,
unnormalised predictions, ``alternate`` k-medoids, seed 1), to compare with its stored numbers.
Results go to ``<results_dir>/original_release``; input DS is not measured (it is a property of the data, not
of the networks: the preset's own evaluation gives it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.config import Preset
from experiments.declaration import PredictedClouds, Target
from experiments.prediction_files import rotate_to_object_frame
from experiments.runner import dataset_frame, item_ids, item_rotations
from models.config import DECODERS, resolve_config
from models.data import build_dataset
from models.engine import predict_points
from models.original import EXPERIMENTS, OriginalRun, list_original_runs, load_original_run

# Our experiment → the original's run folder name.
ORIGINAL_EXPERIMENT = {"synthetic": "train_synthetic", "more_imgs": "more_imgs", "more_shapes": "more_shapes"}
RESULTS_SUBDIR = "original_release"


def _log_root(runs: Path, experiment: str) -> Path:
    return runs.parent if runs.name in EXPERIMENTS else runs


def _point(run: OriginalRun, experiment: str) -> dict[str, Any]:
    if experiment == "synthetic":
        return {"kind": run.kind, "s": run.cluster_size, "seed": run.seed}
    if experiment == "more_imgs":
        return {"yaw": run.yaw, "seed": run.seed}
    name = run.network if run.network != "atlasnet" else f"atlasnet_{run.template}{run.primitives}"
    if name not in DECODERS:
        raise ValueError(f"{run.run_dir}: decoder {name} is not one of {sorted(DECODERS)}")
    return {"frame": run.mode, "decoder": name, "seed": run.seed}


def _split_config(run: OriginalRun, preset: Preset) -> dict[str, Any]:
    """A training config (for the registry) whose test split is the one the original evaluated ``run`` on."""
    test = run.test_data
    data: dict[str, Any] = {
        "dataset": test["dataset"],
        "root": str(run.data_root()),
        "image_size": 224,
        "num_points": preset.ds["shape_points"],
        "point_seed": preset.ds["ds_seed"],
    }
    if test["dataset"] == "cubesphere":
        data["test_file"] = test["index_file"]
    else:
        data["shapenet"] = {"images": test["images"], "yaw": test.get("yaw"), "frame": test["frame"]}
    return resolve_config({"data": data})


@dataclass(frozen=True)
class OriginalReleasePredictor:
    """Every run folder of the original release under ``runs`` for this experiment."""

    runs: Path
    name: str = "original_release"
    trains: bool = False

    def _original_runs(self, preset: Preset) -> list[OriginalRun]:
        experiment = ORIGINAL_EXPERIMENT.get(preset.experiment.name)
        if experiment is None:
            raise ValueError(f"the original release has no runs of experiment {preset.experiment.name}")
        runs = list_original_runs(_log_root(self.runs, experiment), experiments=[experiment])
        if not runs:
            raise ValueError(f"no run folder of the original's {experiment} under {self.runs}")
        return runs

    def targets(self, preset: Preset) -> list[Target]:
        return [
            Target(
                self.name,
                f"original_{run.name}",
                _point(run, preset.experiment.name),
                run.name,
                split=_split_config(run, preset),
            )
            for run in self._original_runs(preset)
        ]

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        run_dir = next(run.run_dir for run in self._original_runs(preset) if run.name == target.run)
        model, run = load_original_run(run_dir, device=device)
        test_set = build_dataset(target.split, "test")
        points = predict_points(model, test_set, device=device, batch_size=preset.ds["batch_size"])
        if dataset_frame(test_set) == "viewer":
            points = rotate_to_object_frame(points, item_rotations(test_set))
        protocol = run.output_ds_protocol
        info = {"weights": "original release", "run_dir": str(run.run_dir), "output_protocol": protocol}
        return PredictedClouds(points, item_ids(test_set), info, {"original_run": run.record()})


def with_original_runs(preset: Preset, runs: Path) -> Preset:
    """The preset evaluating the original release's runs under ``runs`` instead of its own networks."""
    predictor = OriginalReleasePredictor(Path(runs).resolve())
    experiment = dataclasses.replace(preset.experiment, inputs=(), predictors=(lambda _: predictor,))
    config = {**preset.config, "results_dir": str(preset.results_dir / RESULTS_SUBDIR)}
    arguments = (*preset.job_arguments, "--runs", str(predictor.runs))
    return dataclasses.replace(preset, experiment=experiment, config=config, job_arguments=arguments)
