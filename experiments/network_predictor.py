"""The trained network of each run as a predictor (recognition baselines live in their own modules).

The network predicts the test split built from the run's own stored config (``config.yaml``) through the
dataset registry (:func:`dataset.registry.build_dataset`, with the evaluation's point count and seed), with the
regular template (``model.predict``); viewer-centred predictions are rotated back to the object frame with each
test item's camera rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataset.registry import build_dataset
from dataset.splits import item_ids, item_rotations
from experiments.config import Preset
from experiments.declaration import PredictedClouds, Target
from models.engine import load_trained, predict_points
from models.training import FINAL_FILE


@dataclass(frozen=True)
class NetworkPredictor:
    """Each finished training run of the grid predicts the test split of its own config."""

    name: str = "network"
    trains: bool = True

    def targets(self, preset: Preset) -> list[Target]:
        return [Target(self.name, run.name, run.point, run.name) for run in preset.runs if run.finished]

    def predict(self, preset: Preset, target: Target, *, device: str) -> PredictedClouds:
        run = preset.run(target.run)
        model, config = load_trained(run.directory, device=device)
        test_set = build_dataset(config, "test", num_points=preset.ds["shape_points"], point_seed=preset.ds["ds_seed"])
        points = predict_points(model, test_set, device=device, batch_size=preset.ds["batch_size"])
        frame = test_set.frame
        rotations = item_rotations(test_set) if frame == "viewer" else None
        weights = run.directory / FINAL_FILE
        info = {"predicted_frame": frame, "weights": str(weights)}
        return PredictedClouds(
            points, item_ids(test_set), info, {"run_config": config}, sources=(weights,), rotations=rotations
        )


def network_predictor(preset: Preset) -> NetworkPredictor:
    return NetworkPredictor()
