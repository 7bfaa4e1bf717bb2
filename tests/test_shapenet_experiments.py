"""The three ShapeNet experiments in miniature, end to end on a tiny stand-in (two categories, ten shapes each):
data → training → predictions → DS → tables → figures → notebook, with the checks that hold by construction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dataset.locations import REPO_ROOT
from dataset.splits import item_rotations
from dispersion_score.frames import to_object_frame
from experiments import runner
from experiments.cli import main_all
from experiments.config import load_preset
from tests.results_tables_check import check_directions, check_results_tables

CATEGORIES = ["chair", "airplane"]
PER_CATEGORY = 10  # 8 training and 2 test shapes per category (sorted 80/20 split)
TEST_ITEMS = 2 * len(CATEGORIES)
GRIDS = {
    "more_imgs": {"yaw": [0, 90], "seed": [1]},
    "more_shapes": {"frame": ["object", "viewer"], "decoder": ["atlasnet_sphere1"], "seed": [1]},
    "nviews": {"views": [1, 3], "seed": [1]},
}


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("shapenet_mini")
    training = tmp / "train.yaml"
    training.write_text(yaml.safe_dump({
        "inherit_from": str(REPO_ROOT / "configs" / "training" / "shapenet_quick.yaml"),
        "data": {"root": str(tmp / "standin"), "image_size": 32, "num_points": 128,
                 "shapenet": {"categories": CATEGORIES}},
        "model": {"bottleneck": 32, "atlasnet": {"hidden": 32, "sphere_level": 2}},
        "train": {"epochs": 2, "milestones": [1], "batch_size": 8},
        "run": {"checkpoint_every": 1},
    }))  # fmt: skip
    results = {}
    for name, grid in GRIDS.items():
        preset = tmp / f"{name}.yaml"
        preset.write_text(yaml.safe_dump({
            "inherit_from": str(REPO_ROOT / "configs" / "presets" / name / "quick.yaml"),
            "preset": "mini", "train_config": str(training),
            "data": {"per_category": PER_CATEGORY, "categories": CATEGORIES, "yaw_image_size": 64},
            "grid": grid, "ds": {"k": 2, "shape_points": 256, "k_curve": [1, 2, 3], "input_subsample": None},
            "runs_dir": str(tmp / "runs" / name), "results_dir": str(tmp / "results" / name),
        }))  # fmt: skip
        assert main_all(name, ["--config", str(preset)]) == 0
        results[name] = tmp / "results" / name
    results["presets"] = tmp
    return results


def _table(results: Path) -> pd.DataFrame:
    return pd.read_csv(results / "ds_table.csv")


def _networks_and_references(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["predictor"].isna() | (table["predictor"] == "network")]


def test_every_measurement_of_every_experiment(mini: dict[str, Path]) -> None:
    counts = {name: _networks_and_references(_table(mini[name])).groupby("measure").size().to_dict() for name in GRIDS}
    assert counts["more_imgs"] == {"input_image": 2, "input_shape": 1, "output": 2, "gt_test": 1}
    assert counts["more_shapes"] == {"input_image": 1, "input_shape": 2, "output": 2, "gt_test": 1}
    assert counts["nviews"] == {"input_image": 2, "input_shape": 2, "output": 2, "gt_test": 1}
    for name in GRIDS:
        table = _table(mini[name])
        assert list(table.columns[:8]) == [
            "experiment",
            "yaw",
            "frame",
            "decoder",
            "views",
            "seed",
            "predictor",
            "measure",
        ]
        outputs = table[table["measure"] == "output"]
        assert (outputs["n"] == TEST_ITEMS).all() and outputs["chamfer"].gt(0).all()
        assert (table.loc[table["measure"] == "gt_test", "n"] == TEST_ITEMS).all()
        np.testing.assert_allclose(table["ds"], table["inertia"] / table["n"], rtol=1e-6)
    # The recognition baselines: one prediction per training set (yaw range; frame), none for nviews.
    for name, per in (("more_imgs", 2), ("more_shapes", 2), ("nviews", 0)):
        outputs = _table(mini[name]).query("measure == 'output' and predictor != 'network'")
        expected = {"clustering": per, "retrieval": per, "oracle": per} if per else {}
        assert outputs.groupby("predictor").size().to_dict() == expected
    nviews = _table(mini["nviews"]).set_index(["measure", "views"])["n"]
    assert nviews[("input_shape", 1)] == 16 and nviews[("input_shape", 3)] == 48  # one item per (shape, view)


def test_relations_that_hold_by_construction(mini: dict[str, Path]) -> None:
    more_imgs = _table(mini["more_imgs"])
    outputs = _networks_and_references(more_imgs)
    outputs = outputs[outputs["measure"] == "output"]
    # Every run is tested on the r = 90 test renders: the same ground truth for both yaw ranges.
    gt = more_imgs.loc[more_imgs["measure"] == "gt_test", "ds"].iloc[0]
    assert len(outputs) == 2 and np.isfinite(gt)
    shapes = _networks_and_references(_table(mini["more_shapes"])).set_index(["measure", "frame"])["ds"]
    # The oracle picks the training shape nearest to each test shape: no prediction is further from the truth.
    baselines = _table(mini["more_shapes"]).query("measure == 'output'").set_index(["frame", "predictor"])["chamfer"]
    for frame in ("object", "viewer"):
        assert baselines[(frame, "oracle")] <= min(baselines[(frame, "clustering")], baselines[(frame, "retrieval")])
    # Viewer-centred targets rotate each shape by its own random view: more dispersed than canonical ones.
    assert shapes[("input_shape", "viewer")] > shapes[("input_shape", "object")]
    curves = pd.read_csv(mini["more_imgs"] / "ds_vs_k.csv")
    for _, group in curves.groupby("matrix"):  # DS never increases with k
        assert (np.diff(group.sort_values("k")["ds"].to_numpy()) <= 1e-9).all()


def test_viewer_predictions_and_ground_truth_are_rotated_back_to_the_object_frame(mini: dict[str, Path]) -> None:
    preset = load_preset(mini["presets"] / "more_shapes.yaml")
    object_run, viewer_run = preset.runs  # object / viewer, same decoder and seed
    object_test = runner.evaluation_split(preset, runner.run_config(preset, object_run), "test")
    viewer_test = runner.evaluation_split(preset, runner.run_config(preset, viewer_run), "test")
    viewer_points = runner.stacked_points(viewer_test)
    assert not np.allclose(viewer_points, runner.stacked_points(object_test), atol=1e-3)
    back = to_object_frame(viewer_points, item_rotations(viewer_test))
    np.testing.assert_allclose(back, runner.stacked_points(object_test), atol=1e-5)
    np.testing.assert_allclose(runner.stacked_points(viewer_test, object_frame=True), back, atol=1e-6)


def test_rerun_is_resumed_and_a_lost_measurement_is_redone(mini: dict[str, Path]) -> None:
    results = mini["more_shapes"]
    records = sorted((results / "records").glob("*.json"))
    before = {path: path.stat().st_mtime_ns for path in records}
    table_before = _table(results)
    lost = results / "records" / "viewer_atlasnet_sphere1_seed1_output.json"
    lost.unlink()
    (results / "predictions" / "viewer_atlasnet_sphere1_seed1.json").unlink()  # as if killed mid-write
    assert main_all("more_shapes", ["--config", str(mini["presets"] / "more_shapes.yaml"), "--skip-figures"]) == 0
    changed = [path.name for path in records if path.stat().st_mtime_ns != before[path]]
    assert changed == [lost.name]
    pd.testing.assert_frame_equal(_table(results).drop(columns=["device"]), table_before.drop(columns=["device"]))


def test_figures_and_notebook(mini: dict[str, Path]) -> None:
    import nbclient
    import nbformat

    for name in GRIDS:
        assert (mini[name] / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (mini[name] / "figures" / "ds_vs_k.png").stat().st_size > 10_000
    assert (mini["more_shapes"] / "output_ds_by_decoder.csv").is_file()
    notebook = nbformat.read(REPO_ROOT / "plot_scripts" / "shapenet_results.ipynb", as_version=4)
    os.environ["DS_RESULTS_DIR"] = str(mini["more_imgs"].parent)
    try:
        nbclient.NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    finally:
        del os.environ["DS_RESULTS_DIR"]
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert len([output for output in outputs if "image/png" in output.get("data", {})]) >= 6


@pytest.mark.parametrize("name", list(GRIDS))
def test_directions_and_results_tables_match_the_files(mini: dict[str, Path], name: str) -> None:
    check_directions(mini[name])
    check_results_tables(mini[name], [axis for axis in GRIDS[name] if axis != "seed"])
