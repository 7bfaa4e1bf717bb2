"""A miniature synthetic sweep end to end: data → train → evaluate → CSV → figures → notebook.

Two cluster sizes, one seed, a few epochs of tiny networks on a reduced build. The checks are on the table's
content (what was measured, on how many items, and relations that hold by construction), not on file presence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dataset.locations import REPO_ROOT
from dispersion_score import chamfer_matrix, dispersion_score
from experiments.cli import main_all
from tests.results_tables_check import check_directions, check_results_tables

TEST_SIZE = 12


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mini_sweep")
    data_root = tmp / "data"
    train_overrides = [
        f"data.root={data_root}",
        "data.image_size=32",
        "data.num_points=128",
        "model.bottleneck=32",
        "model.atlasnet.hidden=32",
        "model.atlasnet.sphere_level=2",
        "train.epochs=2",
        "train.milestones=[1]",
        "eval.every=2",
        "eval.items=4",
        "run.checkpoint_every=1",
    ]
    sweep = {
        "experiment": "synthetic",
        "preset": "mini",
        "train_config": str(REPO_ROOT / "configs" / "training" / "synthetic_quick.yaml"),
        "data": {
            "image_size": 32,
            "points": 2000,
            "build_args": ["--pool", "clusters", "--test-size", str(TEST_SIZE), "--val-size", "4", "--spp", "4"],
        },
        "grid": {"kind": ["image_aug", "shape_aug"], "s": [1, 35], "seed": [1]},
        "train_overrides": train_overrides,
        "ds": {"k": 2, "method": "pam", "ds_seed": 0, "shape_points": 1000, "image_weights": "random"},
        "baselines": {"classifier": {"arch": "resnet18", "weights": "none", "epochs": 2, "batch_size": 8}},
        "runs_dir": str(tmp / "runs"),
        "results_dir": str(tmp / "results"),
        "workers": 2,
    }
    config = tmp / "sweep.yaml"
    config.write_text(yaml.safe_dump(sweep))
    assert main_all("synthetic", ["--config", str(config)]) == 0
    return tmp


def test_table_has_every_measurement(experiment: Path) -> None:
    table = pd.read_csv(experiment / "results" / "ds_table.csv")
    counts = table.fillna({"predictor": "-"}).groupby(["measure", "predictor"]).size().to_dict()
    baselines = {("output", name): 4 for name in ("clustering", "retrieval", "oracle")}  # one per (kind, s)
    expected = {("input_image", "-"): 4, ("input_shape", "-"): 4, ("output", "network"): 4, ("gt_test", "-"): 1}
    assert counts == {**expected, **baselines}
    assert set(table["preset"]) == {"mini"}
    assert (table["k"] == 2).all() and set(table["method"]) == {"pam"}
    inputs = table[table["measure"].isin(["input_image", "input_shape"])]
    assert (inputs["n"] == 20).all()
    assert (table.loc[table["measure"].isin(["output", "gt_test"]), "n"] == TEST_SIZE).all()
    np.testing.assert_allclose(table["ds"], table["inertia"] / table["n"], rtol=1e-6)
    outputs = table[table["measure"] == "output"]
    assert outputs["chamfer"].gt(0).all() and outputs["fscore"].between(0, 1).all()
    assert set(outputs.loc[outputs["predictor"] == "network", "seed"]) == {1}
    assert outputs.loc[outputs["predictor"] != "network", "seed"].isna().all()
    assert all("random-weights" in label for label in table.loc[table["measure"] == "input_image", "features"])


def test_table_relations_that_hold_by_construction(experiment: Path) -> None:
    table = pd.read_csv(experiment / "results" / "ds_table.csv").set_index(["kind", "s", "measure"])
    ds = table["ds"]
    # shape_aug_s uses image_aug_35's images for every s: identical image features, identical DS.
    assert ds[("shape_aug", 1, "input_image")] == pytest.approx(ds[("image_aug", 35, "input_image")], rel=1e-6)
    assert ds[("shape_aug", 35, "input_image")] == pytest.approx(ds[("image_aug", 35, "input_image")], rel=1e-6)
    # More dispersed images along image_aug.
    assert ds[("image_aug", 35, "input_image")] > ds[("image_aug", 1, "input_image")]
    # image_aug sets and shape_aug_1 have the same two target shapes: the sampling noise floor only.
    floor = ds[("image_aug", 1, "input_shape")]
    assert ds[("shape_aug", 1, "input_shape")] == pytest.approx(floor, rel=1e-6)
    assert ds[("shape_aug", 35, "input_shape")] > 1.3 * floor


def test_baseline_rows_hold_what_holds_by_construction(experiment: Path) -> None:
    table = pd.read_csv(experiment / "results" / "ds_table.csv")
    outputs = table[table["measure"] == "output"].set_index(["kind", "s", "predictor"])
    for kind in ("image_aug", "shape_aug"):
        for s in (1, 35):
            # at most k = 2 distinct predicted clouds (the medoids): output DS exactly 0
            assert outputs.loc[(kind, s, "clustering"), "ds"] == 0.0
            # the oracle takes, item by item, the training cloud of least test Chamfer; the other baselines
            # predict training clouds too, so their mean test Chamfer cannot be lower
            oracle = outputs.loc[(kind, s, "oracle"), "chamfer"]
            for other in ("clustering", "retrieval"):
                assert oracle <= outputs.loc[(kind, s, other), "chamfer"] * (1 + 1e-5)


def test_saved_matrices_reproduce_the_table(experiment: Path) -> None:
    results = experiment / "results"
    table = pd.read_csv(results / "ds_table.csv")
    for row in table.itertuples():
        matrix = np.load(results / row.matrix)
        assert matrix.shape == (row.n, row.n)
        assert dispersion_score(matrix, int(row.k), method=row.method, seed=int(row.ds_seed)).ds == pytest.approx(
            row.ds, rel=1e-5
        )
    gt = np.load(results / table.loc[table["measure"] == "gt_test", "matrix"].iloc[0])
    clouds = [np.load(path) for path in sorted((experiment / "data" / "instances").glob("test_*/points.npy"))]
    assert len(clouds) == TEST_SIZE
    # Independent recomputation from the dense clouds: same scale as the stored ground-truth matrix.
    rng = np.random.default_rng(0)
    sampled = np.stack([cloud[rng.choice(len(cloud), 1000, replace=False)] for cloud in clouds])
    recomputed = chamfer_matrix(sampled)
    assert np.median(recomputed[recomputed > 0]) == pytest.approx(np.median(gt[gt > 0]), rel=0.25)


def test_rerun_is_resumed_not_redone(experiment: Path) -> None:
    records = sorted((experiment / "results" / "records").glob("*.json"))
    before = {path: path.stat().st_mtime_ns for path in records}
    config = experiment / "sweep.yaml"
    assert main_all("synthetic", ["--config", str(config), "--skip-figures"]) == 0
    assert {path: path.stat().st_mtime_ns for path in records} == before


def test_figures_and_notebook(experiment: Path) -> None:
    import nbclient
    import nbformat

    results = experiment / "results"
    for name in ("ds_curves.png", "distance_matrices.png"):
        assert (results / "figures" / name).stat().st_size > 10_000
    notebook = nbformat.read(REPO_ROOT / "plot_scripts" / "synthetic_dataset.ipynb", as_version=4)
    os.environ["DS_RESULTS_DIR"] = str(results)
    try:
        nbclient.NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(experiment)}}).execute()
    finally:
        del os.environ["DS_RESULTS_DIR"]
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 2  # the matrix grid and the DS curves


def test_directions_and_results_tables_match_the_files(experiment: Path) -> None:
    check_directions(experiment / "results")
    check_results_tables(experiment / "results", ["kind", "s"])


def test_input_image_ds_measured_again_reads_the_cached_features(
    experiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DS measured again (a record lost, or of another k-medoids revision) reuses the VGG16 features its
    measurement cached: at paper scale they are the expensive part."""
    from experiments import runner
    from experiments.config import load_preset

    records = sorted((experiment / "results" / "records").glob("*input_image.json"))
    assert records
    before = {path.name: json.loads(path.read_text())["result"]["ds"] for path in records}
    for path in records:
        path.unlink()
    monkeypatch.setattr(runner, "perceptual_features", lambda *a, **k: pytest.fail("features computed again"))
    runner.measure_inputs(load_preset(experiment / "sweep.yaml"))
    after = {path.name: json.loads(path.read_text())["result"]["ds"] for path in records}
    assert after == before
