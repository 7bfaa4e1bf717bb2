"""CubeSphereDataset on small fixture directories written by the tests (our format and the original one)."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.synthetic.dataset import CubeSphereDataset

H, W = 6, 8


def _write_png(path, rgb, *, alpha=False):
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:] = (200, 210, 220)
    image[1, 2] = rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    if alpha:
        rgba = np.concatenate([image, np.full((H, W, 1), 128, dtype=np.uint8)], axis=2)
        Image.fromarray(rgba, mode="RGBA").save(path)
    else:
        Image.fromarray(image, mode="RGB").save(path)


def _cloud(seed, n=400, scale=3.0, shift=(5.0, -2.0, 1.0)):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * scale + np.asarray(shift)).astype(np.float32)


@pytest.fixture()
def ours(tmp_path):
    """Three instances and a training-set-like index (image of one instance, shape of another)."""
    clouds = {}
    for i, name in enumerate(["a", "b", "c"]):
        _write_png(tmp_path / "instances" / name / "Isometric.png", (255, 0, 0) if name == "a" else (0, 0, 255))
        clouds[name] = _cloud(i)
        np.save(tmp_path / "instances" / name / "points.npy", clouds[name])
    entries = [
        {
            "id": f"{image}->{shape}",
            "image": f"instances/{image}/Isometric.png",
            "points": f"instances/{shape}/points.npy",
            "mesh": f"instances/{shape}/model.obj",
            "t_image": ti,
            "t_shape": ts,
        }
        for image, shape, ti, ts in [("a", "b", 0.1, 0.2), ("b", "b", 0.2, 0.2), ("c", "a", 0.3, 0.1)]
    ]
    (tmp_path / "train.json").write_text(json.dumps(entries))
    return tmp_path, clouds


def test_item_fields_shapes_and_ranges(ours):
    root, _ = ours
    dataset = CubeSphereDataset(root, "train.json", num_points=100)
    assert len(dataset) == 3
    item = dataset[0]
    assert set(item) == {"image", "points", "t", "t_image", "id", "index"}
    assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["points"].shape == (100, 3) and item["points"].dtype == torch.float32
    assert item["t"] == 0.2 and item["t_image"] == 0.1 and item["id"] == "a->b" and item["index"] == 0
    assert dataset[-1]["index"] == 2
    with pytest.raises(IndexError):
        dataset[3]


def test_image_is_rgb_in_channel_order(ours):
    root, _ = ours
    dataset = CubeSphereDataset(root, "train.json", num_points=100)
    red = dataset[0]["image"][:, 1, 2]
    blue = dataset[1]["image"][:, 1, 2]
    torch.testing.assert_close(red, torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(blue, torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(dataset[0]["image"][:, 0, 0], torch.tensor([200, 210, 220]) / 255.0)


def test_alpha_channel_is_dropped_and_image_resized(ours):
    root, _ = ours
    _write_png(root / "instances" / "a" / "Isometric.png", (255, 0, 0), alpha=True)
    dataset = CubeSphereDataset(root, "train.json", num_points=100, image_size=16)
    image = dataset[0]["image"]
    assert image.shape == (3, 16, 16)
    torch.testing.assert_close(image[:, -1, -1], torch.tensor([200, 210, 220]) / 255.0, atol=1e-6, rtol=0)


def test_points_are_a_normalised_subset_of_the_dense_cloud(ours):
    root, clouds = ours
    dataset = CubeSphereDataset(root, "train.json", num_points=150)
    points = dataset[0]["points"].double().numpy()
    dense = clouds["b"].astype(np.float64)
    centred = dense - dense.mean(axis=0)
    normalised = centred / np.linalg.norm(centred, axis=1).max()
    # every returned point is one of the dense cloud's points, normalised, and no point is drawn twice
    distances = np.linalg.norm(points[:, None] - normalised[None], axis=2)
    assert np.all(distances.min(axis=1) < 1e-6)
    assert len(set(distances.argmin(axis=1))) == 150
    assert np.linalg.norm(points, axis=1).max() <= 1.0 + 1e-6

    raw = CubeSphereDataset(root, "train.json", num_points=150, normalization="none")[0]["points"].double().numpy()
    assert np.all(np.linalg.norm(raw[:, None] - dense[None], axis=2).min(axis=1) < 1e-5)
    # same draw under both normalisations: normalising the raw subset with the dense transform gives `points`
    np.testing.assert_allclose((raw - dense.mean(axis=0)) / np.linalg.norm(centred, axis=1).max(), points, atol=1e-6)


def test_points_fixed_per_item_and_seed(ours):
    root, _ = ours
    first = CubeSphereDataset(root, "train.json", num_points=50, seed=3)
    second = CubeSphereDataset(root, "train.json", num_points=50, seed=3)
    other_seed = CubeSphereDataset(root, "train.json", num_points=50, seed=4)
    torch.testing.assert_close(first[0]["points"], first[0]["points"])
    torch.testing.assert_close(first[0]["points"], second[0]["points"])
    assert not torch.equal(first[0]["points"], other_seed[0]["points"])
    # items 0 and 1 share a shape but draw different points
    assert not torch.equal(first[0]["points"], first[1]["points"])


def test_works_with_a_dataloader(ours):
    root, _ = ours
    loader = torch.utils.data.DataLoader(CubeSphereDataset(root, "train.json", num_points=20), batch_size=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, H, W) and batch["points"].shape == (2, 20, 3)
    assert batch["id"] == ["a->b", "b->b"]


def test_missing_files_name_the_item_and_path(ours):
    root, _ = ours
    (root / "instances" / "c" / "Isometric.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"item 2 \(id 'c->a'\) image .*instances/c/Isometric.png"):
        CubeSphereDataset(root, "train.json")
    with pytest.raises(FileNotFoundError, match="index file .*nope.json"):
        CubeSphereDataset(root, "nope.json")


def test_unreadable_files_name_the_item_and_path(ours):
    root, _ = ours
    dataset = CubeSphereDataset(root, "train.json", num_points=100)
    (root / "instances" / "c" / "Isometric.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"item 2 \(id 'c->a'\).*instances/c/Isometric.png"):
        dataset[2]
    np.save(root / "instances" / "a" / "points.npy", np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"item 2 .*instances/a/points.npy.*\(P, 3\)"):
        dataset.points(2)
    with pytest.raises(ValueError, match="fewer than num_points"):
        CubeSphereDataset(root, "train.json", num_points=10_000)[0]


def test_bad_arguments_and_entries(ours):
    root, _ = ours
    for kwargs, message in [
        ({"num_points": 0}, "num_points"),
        ({"image_size": 0}, "image_size"),
        ({"normalization": "bbox"}, "normalization"),
    ]:
        with pytest.raises(ValueError, match=message):
            CubeSphereDataset(root, "train.json", **kwargs)
    (root / "bad.json").write_text(json.dumps([{"image": "x.png", "points": "y.npy"}]))
    with pytest.raises(ValueError, match=r"entry 0 .*lacks field\(s\) \['id', 't_image', 't_shape'\]"):
        CubeSphereDataset(root, "bad.json")


def test_original_release_format(tmp_path):
    """The original release: `shapekey_value`, `isometric_path`, `ptcloud_path` (pt_1024.npy named, the
    dense pt_30000.npy beside it read), entries where the point cloud belongs to another instance."""
    base = "CubeSphere_interp_1000"
    clouds = {}
    for k, name in enumerate(["instance_000", "instance_005", "instance_996"]):
        folder = tmp_path / base / name
        _write_png(folder / "Isometric.png", (0, 255, 0))
        clouds[name] = _cloud(10 + k, n=300)
        np.save(folder / "pt_30000.npy", clouds[name])
        np.save(folder / "pt_1024.npy", clouds[name][:5])  # must not be used

    def entry(image, cloud, key):
        return {
            "dir_path": f"{base}/{image}",
            "model_path": f"{base}/{cloud}/model.obj",
            "isometric_path": f"{base}/{image}/Isometric.png",
            "ptcloud_path": f"{base}/{cloud}/pt_1024.npy",
            "cube_scale": 0.5,
            "sphere_scale": 0.86,
            "shapekey_value": key,
            "rot_val": 0,
            "rot_axis": [0, 0, 0],
        }

    (tmp_path / "cluster.json").write_text(
        json.dumps([entry("instance_005", "instance_000", 0.005), entry("instance_000", "instance_000", 0.0)])
    )
    dataset = CubeSphereDataset(tmp_path, "cluster.json", num_points=200, normalization="none")
    first = dataset[0]
    assert first["id"] == "instance_005" and first["t_image"] == 0.005 and first["t"] == 0.0
    assert first["image"].shape == (3, H, W)
    torch.testing.assert_close(first["image"][:, 1, 2], torch.tensor([0.0, 1.0, 0.0]))
    dense = clouds["instance_000"]
    assert np.all(np.linalg.norm(first["points"].numpy()[:, None] - dense[None], axis=2).min(axis=1) < 1e-6)

    # a shape not listed as an image in the file: t from the release's catalogue file if present, else NaN
    (tmp_path / "other.json").write_text(json.dumps([entry("instance_005", "instance_996", 0.005)]))
    assert math.isnan(CubeSphereDataset(tmp_path, "other.json", num_points=10)[0]["t"])
    (tmp_path / f"{base}.json").write_text(json.dumps([entry("instance_996", "instance_996", 0.997)]))
    assert CubeSphereDataset(tmp_path, "other.json", num_points=10)[0]["t"] == 0.997


def test_original_shape_aug_entries(tmp_path):
    """In the original's shape_aug files (s >= 5) dir_path/shapekey_value describe the *shape's* instance while
    the image is another one (dataset_overview.py's generate_shape_aug): t_image must be the image's t."""
    base = "CubeSphere_interp_1000"
    for name in ("instance_000", "instance_005"):
        _write_png(tmp_path / base / name / "Isometric.png", (0, 255, 0))
        np.save(tmp_path / base / name / "pt_30000.npy", _cloud(1, n=50))

    def entry(image, cloud, described, key):
        return {
            "dir_path": f"{base}/{described}",
            "isometric_path": f"{base}/{image}/Isometric.png",
            "ptcloud_path": f"{base}/{cloud}/pt_1024.npy",
            "shapekey_value": key,
        }

    entries = [entry("instance_000", "instance_005", "instance_005", 0.005),  # shape_aug: shape's dir and t
               entry("instance_000", "instance_000", "instance_000", 0.0)]  # fmt: skip
    (tmp_path / "shape_aug.json").write_text(json.dumps(entries))
    dataset = CubeSphereDataset(tmp_path, "shape_aug.json", num_points=10)
    assert (dataset[0]["t_image"], dataset[0]["t"]) == (0.0, 0.005)
    assert (dataset[1]["t_image"], dataset[1]["t"]) == (0.0, 0.0)
    # without the second entry nothing says the image's t: NaN, not the shape's t
    (tmp_path / "alone.json").write_text(json.dumps(entries[:1]))
    alone = CubeSphereDataset(tmp_path, "alone.json", num_points=10)[0]
    assert math.isnan(alone["t_image"]) and alone["t"] == 0.005


def test_dataset_pickles_for_worker_processes(ours):
    import pickle

    root, _ = ours
    dataset = CubeSphereDataset(root, "train.json", num_points=30)
    before = dataset[1]["points"]
    copy = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(copy[1]["points"], before)


def test_empty_point_file_is_a_one_line_error_naming_the_item(ours):
    # A 0-byte .npy (a copy cut short) raised numpy's EOFError from deep inside np.load (issue 9, item 11).
    root, _ = ours
    (root / "instances" / "a" / "points.npy").write_bytes(b"")
    dataset = CubeSphereDataset(root, "train.json", num_points=5)
    with pytest.raises(ValueError, match=r"item 2 .*instances/a/points\.npy is empty \(0 bytes\)"):
        dataset[2]


def test_a_nan_in_the_dense_cloud_is_found_whatever_points_are_drawn(ours):
    # Before: the sample usually missed it, or the unit-ball transform silently turned every point into NaN.
    root, clouds = ours
    dense = clouds["a"].copy()
    dense[len(dense) // 2, 0] = np.nan
    np.save(root / "instances" / "a" / "points.npy", dense)
    message = rf"item 2 .*instances/a/points\.npy has a NaN .*first at {len(dense) // 2}"
    for normalization in ("unit_ball", "none"):
        dataset = CubeSphereDataset(root, "train.json", num_points=3, normalization=normalization)
        with pytest.raises(ValueError, match=message):
            dataset.points(2)
