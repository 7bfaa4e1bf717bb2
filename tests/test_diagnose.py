"""``dispersion-score diagnose`` and :mod:`dispersion_score.diagnose` on inputs whose answer is known by
construction: predictions equal to the ground truth (position 1), predictions that are the two cluster
prototypes of the synthetic data (pure recognition, position 0), the ground truth plus noise (more dispersed
than the ground truth: position above 1, growing with the noise), and the viewer-frame counterparts.

Shapes are synthetic cube↔sphere clouds (dataset.synthetic.geometry) written as .npy files in the real
formats. Every file holds exactly ``POINTS`` points and the command samples ``POINTS`` of them without
replacement, so a file and its copy give the same point set (no sampling noise floor).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dataset.shapenet.camera import camera_rotation
from dataset.synthetic.geometry import cubesphere_mesh, sample_surface_points
from dispersion_score import chamfer_matrix, dispersion_score, normalize_unit_ball
from dispersion_score.cli import main
from dispersion_score.diagnose import (
    diagnose,
    item_key,
    match_shape_files,
    plot_diagnosis,
    position,
)
from dispersion_score.frames import to_object_frame

POINTS = 400
TEST_T = [(j + 0.5) / 12 for j in range(12)]  # the test split's parameters, as docs/dataset.md (12 instead of 200)
CENTRES = (0.25, 0.75)  # the two cluster prototypes of the synthetic training sets


def _cloud(t: float, seed: int) -> np.ndarray:
    return sample_surface_points(cubesphere_mesh(t), POINTS, seed=[seed, int(t * 1e6)])


@pytest.fixture(scope="module")
def shapes() -> dict[str, object]:
    gt = np.stack([_cloud(t, 1) for t in TEST_T])
    prototypes = {c: _cloud(c, 2) for c in CENTRES}
    # Training shapes of two clusters around the prototypes (the prototypes themselves included).
    train_t = [c + d for c in CENTRES for d in (-0.04, -0.02, 0.0, 0.02, 0.04)]
    train = np.stack([prototypes[t] if t in prototypes else _cloud(t, 3) for t in train_t])
    snapped = np.stack([prototypes[CENTRES[0] if t < 0.5 else CENTRES[1]] for t in TEST_T])
    return {"gt": gt, "train": train, "snapped": snapped}


def _write(folder: Path, clouds: np.ndarray, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, cloud in enumerate(clouds):
        np.save(folder / f"{names[i] if names else f'item{i:02d}'}.npy", cloud)
    return folder


def _cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _diagnose_cli(capsys: pytest.CaptureFixture[str], *args: object) -> dict[str, object]:
    status, out, err = _cli(capsys, "diagnose", "--points", POINTS, "--k", 2, "--json", *args)
    assert status == 0, err
    return json.loads(out)["result"]


def test_predictions_equal_to_the_ground_truth_sit_at_position_one(tmp_path, capsys, shapes) -> None:
    gt = _write(tmp_path / "gt", shapes["gt"])
    pred = _write(tmp_path / "pred", shapes["gt"])
    train = _write(tmp_path / "train", shapes["train"])
    plot = tmp_path / "scale.png"
    result = _diagnose_cli(capsys, "--predictions", pred, "--ground-truth", gt, "--train", train, "--plot", plot)
    assert result["position"] == 1.0 and result["ds_predictions"] == result["ds_ground_truth"] > 0
    assert result["chamfer"] == 0.0 and result["fscore"] == 1.0 and result["fscore_atlasnet"] == 1.0
    assert result["ds_recognition"] == 0.0 and result["recognition_source"] == "training medoids"
    # the ground-truth DS is the DS of the unit-ball Chamfer matrix, recomputed here
    expected = dispersion_score(chamfer_matrix(shapes["gt"]), 2).ds
    assert result["ds_ground_truth"] == pytest.approx(expected, rel=1e-5)
    assert result["n_train"] == 10 and result["distinct_nearest_predictions"] == result["distinct_nearest_oracle"]
    assert result["chamfer_oracle"] > 0 and 0 < result["fscore_oracle"] < 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_two_cluster_prototypes_are_pure_recognition(tmp_path, capsys, shapes) -> None:
    gt = _write(tmp_path / "gt", shapes["gt"])
    pred = _write(tmp_path / "pred", shapes["snapped"])
    train = _write(tmp_path / "train", shapes["train"])
    result = _diagnose_cli(capsys, "--predictions", pred, "--ground-truth", gt, "--train", train)
    # Two distinct clouds and k = 2: a medoid on each, every prediction at distance 0 (up to the float rounding
    # of normalising a permuted copy of the same point set).
    assert result["ds_predictions"] == pytest.approx(0.0, abs=1e-9)
    assert result["position"] == pytest.approx(0.0, abs=1e-6)
    assert result["distinct_nearest_predictions"] == 2  # the prototypes are training shapes
    assert result["chamfer"] > result["chamfer_oracle"]  # recognition is less accurate than the oracle
    without_train = _diagnose_cli(capsys, "--predictions", pred, "--ground-truth", gt)
    assert without_train["recognition_source"] == "ground-truth medoids" and without_train["n_train"] is None
    assert without_train["position"] == pytest.approx(0.0, abs=1e-6)


def test_a_saved_training_matrix_is_reused(tmp_path, capsys, shapes) -> None:
    gt = _write(tmp_path / "gt", shapes["gt"])
    pred = _write(tmp_path / "pred", shapes["snapped"])
    train = _write(tmp_path / "train", shapes["train"])
    status, _, err = _cli(capsys, "shapes", train, "--k", 2, "--points", POINTS, "--save-matrix", tmp_path / "D.npy")
    assert status == 0, err
    computed = _diagnose_cli(capsys, "--predictions", pred, "--ground-truth", gt, "--train", train)
    reused = _diagnose_cli(
        capsys, "--predictions", pred, "--ground-truth", gt, "--train", train, "--train-matrix", tmp_path / "D.npy"
    )
    assert reused == computed
    np.save(tmp_path / "wrong.npy", np.zeros((3, 3), dtype=np.float32))
    status, _, err = _cli(capsys, "diagnose", "--predictions", pred, "--ground-truth", gt, "--k", 2,
                          "--train", train, "--train-matrix", tmp_path / "wrong.npy")  # fmt: skip
    assert status == 2 and "train_matrix (--train-matrix) has shape (3, 3), expected (10, 10)" in err


def test_noise_on_the_ground_truth_moves_position_away_from_one_with_the_noise(tmp_path, capsys, shapes) -> None:
    # Known by construction: the predictions tend to the ground truth as the noise vanishes, so position tends
    # to 1 and the test metrics to perfect. (Its side of 1 is not fixed: noise adds dispersion, but normalising
    # a noisy cloud to the unit ball also shrinks it.)
    gt = _write(tmp_path / "gt", shapes["gt"])
    rng = np.random.default_rng(0)
    results = []
    for sigma in (0.005, 0.02):
        noisy = shapes["gt"] + sigma * rng.standard_normal(shapes["gt"].shape).astype(np.float32)
        pred = _write(tmp_path / f"noisy{sigma}", noisy)
        results.append(_diagnose_cli(capsys, "--predictions", pred, "--ground-truth", gt))
    small, large = results
    assert 0 < abs(small["position"] - 1) < abs(large["position"] - 1) < 0.1
    assert 0 < small["chamfer"] < large["chamfer"] and 1.0 > small["fscore"] > large["fscore"]


def test_viewer_frame_position_is_measured_in_the_viewer_frame(tmp_path, shapes) -> None:
    gt_object = normalize_unit_ball(shapes["gt"])
    rotations = np.stack([camera_rotation(30.0 * i, 20.0 + i) for i in range(len(gt_object))])
    gt_viewer = np.einsum("npk,nlk->npl", gt_object, rotations)  # P Rᵀ
    prototypes = normalize_unit_ball(np.stack([_cloud(c, 2) for c in CENTRES]))
    same = diagnose(gt_viewer, gt_viewer, k=2, train=prototypes, frame="viewer", rotations=rotations)
    assert same.position == 1.0
    # reported DS values are object-frame ones (the ground truth rotated back is the canonical set)
    assert same.ds_ground_truth == pytest.approx(dispersion_score(chamfer_matrix(gt_object), 2).ds, rel=1e-4)
    assert same.ds_ground_truth_viewer == pytest.approx(dispersion_score(chamfer_matrix(gt_viewer), 2).ds, rel=1e-4)
    # A viewer-centred recognizer: the nearest prototype in the viewer frame (naive Chamfer here). It has DS 0
    # in the viewer frame (position 0), but rotated back with each test view its copies differ: the object-frame
    # DS of recognition is positive, here even above the ground truth's.
    naive = [[_naive_chamfer(g, p) for p in prototypes] for g in gt_viewer]
    snapped = prototypes[np.argmin(naive, axis=1)]
    recognizer = diagnose(snapped, gt_viewer, k=2, train=prototypes, frame="viewer", rotations=rotations)
    assert recognizer.position == 0.0 and recognizer.ds_predictions_viewer == 0.0
    assert recognizer.ds_recognition == pytest.approx(recognizer.ds_predictions, rel=1e-6)
    assert recognizer.ds_recognition > recognizer.ds_ground_truth > 0
    np.testing.assert_allclose(to_object_frame(gt_viewer, rotations), gt_object, atol=1e-5)
    assert len(plot_diagnosis(recognizer).axes[0].texts) == 3


def _naive_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    return float(d.min(axis=1).mean() + d.min(axis=0).mean())


def test_viewer_frame_command_reads_rotations_by_name(tmp_path, capsys, shapes) -> None:
    names = [f"view{i:02d}" for i in range(len(TEST_T))]
    rotations = np.stack([camera_rotation(25.0 * i, 25.0) for i in range(len(names))])
    gt_viewer = np.einsum("npk,nlk->npl", shapes["gt"], rotations)
    gt = _write(tmp_path / "gt", gt_viewer, names)
    pred = _write(tmp_path / "pred", gt_viewer, names)
    rot_dir = tmp_path / "rot"
    _write(rot_dir, rotations, names)
    result = _diagnose_cli(
        capsys, "--predictions", pred, "--ground-truth", gt, "--frame", "viewer", "--rotations", rot_dir
    )
    assert result["frame"] == "viewer" and result["position"] == 1.0
    (rot_dir / "view03.npy").unlink()
    status, _, err = _cli(capsys, "diagnose", "--predictions", pred, "--ground-truth", gt, "--k", 2,
                          "--frame", "viewer", "--rotations", rot_dir)  # fmt: skip
    assert status == 2 and "view03.npy" in err and err.count("\n") == 1
    status, _, err = _cli(
        capsys, "diagnose", "--predictions", pred, "--ground-truth", gt, "--k", 2, "--frame", "viewer"
    )
    assert status == 2 and "rotations" in err


def test_unmatched_names_are_listed(tmp_path, capsys, shapes) -> None:
    gt = _write(tmp_path / "gt", shapes["gt"][:3], ["a", "b", "c"])
    pred = _write(tmp_path / "pred", shapes["gt"][:3], ["a", "b", "d"])
    status, _, err = _cli(capsys, "diagnose", "--predictions", pred, "--ground-truth", gt, "--k", 2)
    assert status == 2 and "1 only in" in err and ": d" in err and ": c" in err


def test_files_match_by_name_up_to_the_first_dot(tmp_path) -> None:
    cloud = np.zeros((5, 3), dtype=np.float32)
    (tmp_path / "gt" / "02691156").mkdir(parents=True)
    (tmp_path / "pred" / "02691156").mkdir(parents=True)
    np.save(tmp_path / "gt" / "02691156" / "1a04.points.ply.npy", cloud)
    np.save(tmp_path / "pred" / "02691156" / "1a04.npy", cloud)
    names, pred, gt = match_shape_files(tmp_path / "pred", tmp_path / "gt", recursive=True)
    assert names == ["02691156/1a04"] and pred[0].name == "1a04.npy" and gt[0].name == "1a04.points.ply.npy"
    assert item_key(gt[0], tmp_path / "gt") == "02691156/1a04"
    np.save(tmp_path / "pred" / "02691156" / "1a04.points.npy", cloud)
    with pytest.raises(ValueError, match="same name '02691156/1a04'"):
        match_shape_files(tmp_path / "pred", tmp_path / "gt", recursive=True)


def test_position_definition_and_bad_input(shapes) -> None:
    assert position(0.5, 2.0) == 0.25 and position(3.0, 2.0, 1.0) == 2.0 and position(0.0, 2.0, 1.0) == -1.0
    assert math.isnan(position(1.0, 0.0)) and math.isnan(position(1.0, 2.0, 3.0))
    gt = shapes["gt"]
    with pytest.raises(ValueError, match="11 predictions for 12"):
        diagnose(gt[:11], gt, k=2)
    with pytest.raises(ValueError, match=r"k must satisfy 1 <= k <= N = 12"):
        diagnose(gt, gt, k=13)
    with pytest.raises(ValueError, match="not orthonormal"):
        diagnose(gt, gt, k=2, frame="viewer", rotations=np.ones((12, 3, 3)))
    bad = gt.copy()
    bad[4, 7, 1] = np.nan
    with pytest.raises(ValueError, match=r"predictions\[4\] has NaN"):
        diagnose(bad, gt, k=2)


def test_plot_shows_every_value(shapes) -> None:
    result = diagnose(shapes["snapped"], shapes["gt"], k=2, train=shapes["train"])
    figure = plot_diagnosis(result)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert len(texts) == 4 and any(f"{result.ds_ground_truth:.4g}" in text for text in texts)
    assert any(f"{result.ds_oracle:.4g}" in text for text in texts)


@pytest.mark.cuda
def test_diagnose_on_cuda_matches_the_cpu(shapes) -> None:
    cpu = diagnose(shapes["snapped"], shapes["gt"], k=2, train=shapes["train"])
    gpu = diagnose(shapes["snapped"], shapes["gt"], k=2, train=shapes["train"], device="cuda")
    for name, value in cpu.as_dict().items():
        if isinstance(value, float):
            assert getattr(gpu, name) == pytest.approx(value, rel=1e-3, abs=1e-7), name
        else:
            assert getattr(gpu, name) == value, name
