"""The ShapeNet reader on fixtures written here in the real formats (docs/shapenet.md), not by the stand-in:
taxonomy lemmas, the sorted 80/20 split, normalisation, crop/resize, views, frames, the cache, the summary
command and bad input."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from dataset.shapenet import dataset as shapenet
from dataset.shapenet.cache import CACHE_ENV
from dataset.shapenet.camera import camera_rotation
from dataset.shapenet.dataset import ShapeNet, split_clouds, split_image_paths

CHAIR, SPEAKER, TABLE = "03001627", "03691459", "04379243"
# ShapeNet's taxonomy.json: lemma strings as ShapeNet writes them, sub-categories as their own entries.
TAXONOMY = [
    {"synsetId": "02691156", "name": "airplane,aeroplane,plane", "children": ["02690373"], "numInstances": 4045},
    {"synsetId": "02690373", "name": "airliner", "children": [], "numInstances": 1490},
    {"synsetId": CHAIR, "name": "chair", "children": ["02738535"], "numInstances": 6778},
    {"synsetId": "02738535", "name": "armchair", "children": [], "numInstances": 1974},
    {
        "synsetId": SPEAKER,
        "name": "loudspeaker,speaker,speaker unit,loudspeaker system,speaker system",
        "children": [],
        "numInstances": 1618,
    },
    {"synsetId": TABLE, "name": "table", "children": [], "numInstances": 8436},
]
SHAPES = {CHAIR: 6, SPEAKER: 5}  # splits: int(4.8) = 4 / 2 and int(4.0) = 4 / 1
P = 300


def _model_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), size=32))


def _r2n2_line(rng: np.random.Generator) -> str:
    # as R2N2 writes them: Python floats at full precision, in-plane 0, the literal 25
    return f"{rng.uniform(0, 360)!r} {rng.uniform(25, 30)!r} 0 {rng.uniform(0.65, 0.95)!r} 25"


def _rgba(size: int, rng: np.random.Generator) -> np.ndarray:
    """An object in the middle (random colours, alpha 255) on a transparent background with RGB 0."""
    image = np.zeros((size, size, 4), dtype=np.uint8)
    lo, hi = size // 4, 3 * size // 4
    image[lo:hi, lo:hi, :3] = rng.integers(0, 256, size=(hi - lo, hi - lo, 3))
    image[lo:hi, lo:hi, 3] = 255
    return image


def write_root(root: Path, *, seed: int = 0, yaw: int | None = 30) -> dict[str, list[str]]:
    """A data root in the real formats; returns synset → sorted ids."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "taxonomy.json").write_text(json.dumps(TAXONOMY))
    ids: dict[str, list[str]] = {}
    for synset, count in SHAPES.items():
        ids[synset] = sorted(_model_id(rng) for _ in range(count))
        for k, model_id in enumerate(ids[synset]):
            cloud = rng.normal(size=(P, 3)) * [0.3, 0.2, 0.1] + rng.normal(size=3)  # raw frame: not centred
            if k % 2:  # AtlasNet's files may carry normals (6 columns) and be float64
                stored = np.concatenate([cloud, rng.normal(size=(P, 3))], axis=1)
            else:
                stored = cloud.astype(np.float32)
            folder = root / "ShapeNetV1PointCloud" / synset
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{model_id}.points.ply.npy", stored)
            rendering = root / "ShapeNetV1Renderings" / synset / model_id / "rendering"
            rendering.mkdir(parents=True, exist_ok=True)
            for view in range(24):
                Image.fromarray(_rgba(137, rng)).save(rendering / f"{view:02d}.png")
            (rendering / "renderings.txt").write_text("".join(f"{v:02d}.png\n" for v in range(24)))
            (rendering / "rendering_metadata.txt").write_text("".join(_r2n2_line(rng) + "\n" for _ in range(24)))
            if yaw is not None:
                easy = (
                    root / "ShapeNetV1RenderingAnglelimit" / f"ShapeNetV1RenderingSampleYaw{yaw:03d}" / "image"
                    / synset / model_id / "easy"
                )  # fmt: skip
                easy.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_rgba(224, rng)).save(easy / "00.png")
                values = [360 + rng.uniform(-yaw, yaw), 20 + rng.uniform(0, 10), 0, 0.65 + rng.uniform(0, 0.35)]
                line = f"{values[0]!r} {values[1]!r} 0 {values[3]!r} 35 32 1.75 0.0 0.0 0.0"
                (easy / "rendering_metadata.txt").write_text(line + "\n")
                disn = "[" + ",".join(repr(float(v)) for v in [*values, 35, 32, 1.75, 0, 0, 0]) + "], "
                (easy / "rendering_metadata_disn.txt").write_text(disn)
    return ids


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("shapenet") / "data"
    return root, write_root(root)


@pytest.fixture()
def data(template, tmp_path: Path) -> tuple[Path, dict[str, list[str]], Path]:
    """A fresh copy of the fixture root per test (tests damage it), and an empty cache directory."""
    root = tmp_path / "data"
    shutil.copytree(template[0], root)
    return root, template[1], tmp_path / "cache"


def _make(root: Path, cache: Path, **options) -> ShapeNet:
    return ShapeNet(root, cache_dir=cache, categories=["chair", "loudspeaker"], **{"split": "train", **options})


def _raw(root: Path, synset: str, model_id: str) -> np.ndarray:
    return np.load(root / "ShapeNetV1PointCloud" / synset / f"{model_id}.points.ply.npy")


def _naive_unit_ball(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points[:, :3], dtype=np.float64)
    centred = points - points.mean(axis=0)
    return centred / max(math.sqrt((centred**2).sum(axis=1).max()), 1e-300)


def _metadata(root: Path, synset: str, model_id: str) -> list[list[float]]:
    text = (root / "ShapeNetV1Renderings" / synset / model_id / "rendering" / "rendering_metadata.txt").read_text()
    return [[float(v) for v in line.split()] for line in text.splitlines()]


# --------------------------------------------------------------------------------------------- taxonomy, split


def test_taxonomy_names_are_first_lemmas(data) -> None:
    root, _, _ = data
    names = shapenet.read_taxonomy(root)
    assert names[SPEAKER] == "loudspeaker" and names["02691156"] == "airplane" and names["02738535"] == "armchair"
    assert shapenet.category_ids(root, ["loudspeaker", CHAIR]) == [SPEAKER, CHAIR]
    with pytest.raises(ValueError, match="unknown ShapeNet category 'speaker'"):
        shapenet.category_ids(root, ["speaker"])


@pytest.mark.parametrize(("split", "counts"), [("train", {CHAIR: 4, SPEAKER: 4}), ("test", {CHAIR: 2, SPEAKER: 1})])
def test_split_is_sorted_first_80_percent(data, split, counts) -> None:
    root, ids, cache = data
    dataset = _make(root, cache, split=split)
    got = [dataset.shape(i) for i in range(len(dataset))]
    expected = []
    for synset in (CHAIR, SPEAKER):
        cut = int(0.8 * len(ids[synset]))
        expected += [(synset, m) for m in (ids[synset][:cut] if split == "train" else ids[synset][cut:])]
    assert got == expected
    assert {s: sum(1 for g in got if g[0] == s) for s in counts} == counts


# --------------------------------------------------------------------------------------------- points


def test_cache_rows_are_the_naive_float64_normalisation(data) -> None:
    root, ids, cache = data
    clouds = split_clouds(root, "train", categories=[CHAIR, SPEAKER], cache_dir=cache)
    array = clouds.open()
    assert isinstance(array, np.memmap) and array.dtype == np.float32 and array.shape == (8, P, 3)
    for row, (synset, model_id) in enumerate(zip(clouds.synsets, clouds.ids, strict=True)):
        expected = _naive_unit_ball(_raw(root, synset, model_id))
        np.testing.assert_allclose(array[row], expected, rtol=0, atol=2e-7)
        assert np.linalg.norm(array[row].astype(np.float64), axis=1).max() == pytest.approx(1.0, abs=1e-6)


def test_item_points_are_seeded_draws_with_replacement_of_the_normalised_cloud(data) -> None:
    root, _, cache = data
    dataset = _make(root, cache, num_points=1000, seed=3)
    again = _make(root, cache, num_points=1000, seed=3)
    other_seed = _make(root, cache, num_points=1000, seed=4)
    for index in (0, 5):
        points = dataset[index]["points"]
        assert points.dtype == torch.float32 and points.shape == (1000, 3)
        synset, model_id = dataset.shape(index)
        dense = _naive_unit_ball(_raw(root, synset, model_id))
        nearest = torch.cdist(points.double(), torch.from_numpy(dense)).min(dim=1).values
        assert nearest.max() < 1e-6  # every point is a point of the normalised cloud
        assert len(np.unique(points.numpy(), axis=0)) < 1000  # P = 300 < 1000: drawn with replacement
        torch.testing.assert_close(points, again[index]["points"], rtol=0, atol=0)
        assert not torch.equal(points, other_seed[index]["points"])
    assert not torch.equal(dataset[0]["points"][:300], dataset[1]["points"][:300])


def test_six_column_float64_files_use_the_first_three_columns(data) -> None:
    root, ids, cache = data
    stored = _raw(root, CHAIR, ids[CHAIR][1])
    assert stored.shape == (P, 6) and stored.dtype == np.float64
    clouds = split_clouds(root, "train", categories=[CHAIR], cache_dir=cache)
    np.testing.assert_allclose(clouds.open()[clouds.row(CHAIR, ids[CHAIR][1])], _naive_unit_ball(stored), atol=2e-7)


# --------------------------------------------------------------------------------------------- images


def test_r2n2_images_are_cropped_to_127_then_resized_with_black_background(data) -> None:
    root, _, cache = data
    same_size = _make(root, cache, image_size=127)
    resized = _make(root, cache, image_size=224)
    path = same_size.image_path(0)
    rgba = np.asarray(Image.open(path))
    assert rgba.shape == (137, 137, 4)
    crop = rgba[5:132, 5:132]
    expected = torch.from_numpy(crop[..., :3].astype(np.float32) / 255).permute(2, 0, 1)
    image = same_size[0]["image"]
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-7)
    assert float(image[:, crop[..., 3] == 0].abs().max()) == 0.0  # transparent background → black
    up = resized[0]["image"]
    assert up.shape == (3, 224, 224) and up.dtype == torch.float32 and 0 <= up.min() and up.max() <= 1
    naive = F.interpolate(expected[None], size=(224, 224), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(up, naive.clamp(0, 1), rtol=0, atol=1e-5)


def test_yaw_images_are_read_as_stored(data) -> None:
    root, _, cache = data
    dataset = _make(root, cache, images="yaw", yaw=30)
    path = dataset.image_path(2)
    expected_tail = ("ShapeNetV1RenderingSampleYaw030", "image", *dataset.shape(2), "easy", "00.png")
    assert path.parts[-7:] == ("ShapeNetV1RenderingAnglelimit", *expected_tail)[-7:]
    rgba = np.asarray(Image.open(path))
    expected = torch.from_numpy(rgba[..., :3].astype(np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(dataset[2]["image"], expected, rtol=0, atol=1e-7)
    small = _make(root, cache, images="yaw", yaw=30, image_size=64)
    assert small[2]["image"].shape == (3, 64, 64)


# --------------------------------------------------------------------------------------------- views, frames


def test_training_views_and_test_view(data) -> None:
    root, ids, cache = data
    train = _make(root, cache, views=3)
    assert len(train) == 8 * 3
    assert [train[i]["view"] for i in range(6)] == [1, 2, 3, 1, 2, 3]
    assert train.image_path(1).name == "02.png"
    test = _make(root, cache, split="test", views=3)
    assert len(test) == 3 and {test[i]["view"] for i in range(3)} == {0}
    assert test.image_path(0).name == "00.png"
    synset, model_id = train.shape(4)
    line = _metadata(root, synset, model_id)[train[4]["view"]]
    assert len(line) == 5 and line[4] == 25  # the literal 25 is not a field of view
    np.testing.assert_allclose(train[4]["cam_rotmat"].numpy(), camera_rotation(line[0], line[1]), atol=1e-7)


def test_viewer_frame_is_the_object_frame_rotated_by_the_item_camera(data) -> None:
    root, _, cache = data
    object_frame = _make(root, cache, views=2)
    viewer = _make(root, cache, views=2, frame="viewer")
    for index in (0, 3, 7):
        item, vc = object_frame[index], viewer[index]
        rotation = vc["cam_rotmat"].double()
        torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
        assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-6)
        synset, model_id = viewer.shape(index)
        azimuth, elevation = _metadata(root, synset, model_id)[vc["view"]][:2]
        theta, phi = math.radians(azimuth), math.radians(elevation)
        closed_form = [
            [math.sin(theta), 0, -math.cos(theta)],
            [-math.sin(phi) * math.cos(theta), math.cos(phi), -math.sin(phi) * math.sin(theta)],
            [math.cos(phi) * math.cos(theta), math.sin(phi), math.cos(phi) * math.sin(theta)],
        ]
        torch.testing.assert_close(rotation, torch.tensor(closed_form, dtype=torch.float64), atol=1e-7, rtol=0)
        torch.testing.assert_close(vc["points"].double(), item["points"].double() @ rotation.T, atol=1e-6, rtol=0)
        torch.testing.assert_close(vc["points"].double() @ rotation, item["points"].double(), atol=1e-6, rtol=0)
        # the norm (unit ball) is kept
        assert vc["points"].norm(dim=1).max() <= 1 + 1e-6


def test_yaw_cameras_come_from_the_ten_column_file(data) -> None:
    root, _, cache = data
    dataset = _make(root, cache, images="yaw", yaw=30, frame="viewer")
    synset, model_id = dataset.shape(1)
    easy = root / "ShapeNetV1RenderingAnglelimit" / "ShapeNetV1RenderingSampleYaw030" / "image" / synset / model_id
    values = [float(v) for v in (easy / "easy" / "rendering_metadata.txt").read_text().split()]
    assert len(values) == 10
    np.testing.assert_allclose(dataset[1]["cam_rotmat"].numpy(), camera_rotation(values[0], values[1]), atol=1e-7)


# --------------------------------------------------------------------------------------------- split accessors


def test_image_paths_and_shape_rows_match_the_items(data) -> None:
    root, _, cache = data
    dataset = _make(root, cache, views=2)
    paths = split_image_paths(root, "train", categories=["chair", "loudspeaker"], views=2, cache_dir=cache)
    assert paths == [dataset.image_path(i) for i in range(len(dataset))]
    for i, path in enumerate(paths):
        synset, model_id = dataset.shape(i)
        assert path.parent.parent.name == model_id and path.parent.parent.parent.name == synset
    clouds = split_clouds(root, "train", categories=["chair", "loudspeaker"], cache_dir=cache)
    assert clouds.path == dataset.clouds.path
    assert list(dataset.shape_rows) == list(range(8))


def test_dataloader_workers_share_the_memory_map(data) -> None:
    root, _, cache = data
    dataset = _make(root, cache, views=2, image_size=32, num_points=50)
    direct = [dataset[i] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    points = torch.cat([b["points"] for b in batches])
    torch.testing.assert_close(points, torch.stack([d["points"] for d in direct]), rtol=0, atol=0)
    assert [i for b in batches for i in b["id"]] == [d["id"] for d in direct]

    assert len(pickle.dumps(dataset)) < 100_000  # the memory map is not pickled with its contents


def test_registered_factory(data) -> None:
    from dataset.registry import build_dataset
    from models.config import resolve_config

    root, _, cache = data
    settings = {"dataset": "shapenet", "root": str(root), "num_points": 10, "image_size": 32,
                "shapenet": {"categories": [CHAIR], "cache_dir": str(cache)}}  # fmt: skip
    dataset = build_dataset(resolve_config({"data": settings}), "test")
    assert isinstance(dataset, ShapeNet) and len(dataset) == 2 and dataset.split == "test"
    # The split rule: ShapeNet has no validation split, "val" reads the test split.
    validation = build_dataset(resolve_config({"data": settings}), "val")
    assert validation.split == "test" and validation.image_paths() == dataset.image_paths()
    with pytest.raises(ValueError, match="unit ball"):
        build_dataset(resolve_config({"data": {**settings, "normalization": "none"}}), "test")


# --------------------------------------------------------------------------------------------- cache


def test_cache_is_reused_rebuilt_on_change_and_left_clean(data) -> None:
    root, ids, cache = data
    first = split_clouds(root, "test", categories=[CHAIR], cache_dir=cache)
    stamp = first.path.stat().st_mtime_ns
    again = split_clouds(root, "test", categories=[CHAIR], cache_dir=cache)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    changed = root / "ShapeNetV1PointCloud" / CHAIR / f"{ids[CHAIR][-1]}.points.ply.npy"
    replacement = np.random.default_rng(9).normal(size=(P, 3)).astype(np.float32) * 5
    np.save(changed, replacement)
    rebuilt = split_clouds(root, "test", categories=[CHAIR], cache_dir=cache)
    assert rebuilt.path != first.path and not first.path.exists()
    np.testing.assert_allclose(rebuilt.open()[-1], _naive_unit_ball(replacement), atol=2e-7)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]  # no temporaries, no stale cache


def test_cache_location_from_the_environment(data, monkeypatch) -> None:
    root, _, cache = data
    monkeypatch.setenv(CACHE_ENV, str(cache / "from_env"))
    clouds = split_clouds(root, "test", categories=[SPEAKER])
    assert clouds.path.parent == cache / "from_env"


# --------------------------------------------------------------------------------------------- bad input


def test_missing_taxonomy_is_a_clear_error(data) -> None:
    root, _, cache = data
    (root / "taxonomy.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"taxonomy\.json not found"):
        _make(root, cache)


def test_truncated_npy_is_a_counted_skip_naming_the_file(data, caplog) -> None:
    root, ids, cache = data
    bad = root / "ShapeNetV1PointCloud" / CHAIR / f"{ids[CHAIR][0]}.points.ply.npy"
    bad.write_bytes(bad.read_bytes()[:500])
    with caplog.at_level(logging.WARNING, logger="dataset.shapenet"):
        dataset = _make(root, cache)
    assert len(dataset) == 7 and (CHAIR, ids[CHAIR][0]) not in [dataset.shape(i) for i in range(len(dataset))]
    assert [s.id for s in dataset.skipped] == [ids[CHAIR][0]] and str(bad) in dataset.skipped[0].reason
    assert "1 of 8 shapes skipped" in caplog.text and str(bad) in caplog.text


def test_nan_cloud_is_skipped_without_misaligning_rows(data) -> None:
    root, ids, cache = data
    bad = root / "ShapeNetV1PointCloud" / CHAIR / f"{ids[CHAIR][1]}.points.ply.npy"
    cloud = np.load(bad)
    cloud[3, 0] = np.nan
    np.save(bad, cloud)
    clouds = split_clouds(root, "train", categories=[CHAIR], cache_dir=cache)
    assert clouds.ids == (ids[CHAIR][0], *ids[CHAIR][2:4]) and "NaN" in clouds.skipped[0].reason
    for row, model_id in enumerate(clouds.ids):
        np.testing.assert_allclose(clouds.open()[row], _naive_unit_ball(_raw(root, CHAIR, model_id)), atol=2e-7)


def test_missing_renders_are_skipped_and_counted(data, caplog) -> None:
    root, ids, cache = data
    shutil.rmtree(root / "ShapeNetV1Renderings" / SPEAKER / ids[SPEAKER][2])
    (root / "ShapeNetV1Renderings" / CHAIR / ids[CHAIR][1] / "rendering" / "02.png").unlink()
    with caplog.at_level(logging.WARNING, logger="dataset.shapenet"):
        dataset = _make(root, cache, views=2)
    assert len(dataset) == 6 * 2
    assert {(s.synset, s.id) for s in dataset.skipped} == {(SPEAKER, ids[SPEAKER][2]), (CHAIR, ids[CHAIR][1])}
    assert "2 of 8 shapes skipped" in caplog.text
    for i in range(len(dataset)):  # never misaligned: every image is its own shape's
        synset, model_id = dataset.shape(i)
        assert dataset.image_path(i).parent.parent.name == model_id
    # view 01 alone exists for the chair: with views=1 it is kept
    assert len(_make(root, cache, views=1)) == 7


def test_category_without_renders(data) -> None:
    root, _, cache = data
    shutil.rmtree(root / "ShapeNetV1Renderings" / SPEAKER)
    dataset = _make(root, cache)
    assert len(dataset) == 4 and sum(s.synset == SPEAKER for s in dataset.skipped) == 4
    assert "no R2N2 renders" in dataset.skipped[0].reason
    with pytest.raises(ValueError, match="no usable item"):
        ShapeNet(root, split="train", categories=[SPEAKER], cache_dir=cache)


def test_metadata_with_wrong_column_count_names_the_file(data) -> None:
    root, ids, cache = data
    path = root / "ShapeNetV1Renderings" / CHAIR / ids[CHAIR][0] / "rendering" / "rendering_metadata.txt"
    lines = path.read_text().splitlines()
    lines[5] = " ".join(lines[5].split()[:4])
    path.write_text("\n".join(lines) + "\n")
    dataset = _make(root, cache)
    assert [s.id for s in dataset.skipped] == [ids[CHAIR][0]]
    assert str(path) in dataset.skipped[0].reason and "line 6" in dataset.skipped[0].reason
    assert "expected 5 numbers" in dataset.skipped[0].reason


def test_missing_category_folder_is_a_clear_error(data) -> None:
    root, _, cache = data
    with pytest.raises(FileNotFoundError, match=rf"point-cloud folder of category {TABLE}"):
        ShapeNet(root, split="train", categories=["table"], cache_dir=cache)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": "val"}, "split must be one of"),
        ({"images": "yaw"}, "needs yaw=r"),
        ({"yaw": 30}, "only meaningful"),
        ({"views": 24}, "views must be <= 23"),
        ({"frame": "camera"}, "frame must be one of"),
        ({"num_points": 0}, "num_points must be a positive int"),
    ],
)
def test_bad_arguments(data, options, message) -> None:
    root, _, cache = data
    with pytest.raises(ValueError, match=message):
        _make(root, cache, **options)


# --------------------------------------------------------------------------------------------- summary


def test_summary_of_a_complete_root(data, capsys) -> None:
    root, _, _ = data
    code = shapenet.main(["--root", str(root), "--summary", "--categories", "chair", "loudspeaker", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "loudspeaker" in out and "OK: nothing missing" in out
    chair_line = next(line for line in out.splitlines() if line.startswith("chair"))
    assert chair_line.split()[:5] == ["chair", CHAIR, "6", "4", "2"] and "6/6" in chair_line


def test_summary_lists_what_is_missing_or_unreadable(data, capsys) -> None:
    root, ids, _ = data
    bad = root / "ShapeNetV1PointCloud" / SPEAKER / f"{ids[SPEAKER][0]}.points.ply.npy"
    bad.write_bytes(bad.read_bytes()[:100])
    gone = root / "ShapeNetV1Renderings" / CHAIR / ids[CHAIR][3] / "rendering" / "17.png"
    gone.unlink()
    yaw_meta = (
        root / "ShapeNetV1RenderingAnglelimit" / "ShapeNetV1RenderingSampleYaw030" / "image" / CHAIR / ids[CHAIR][0]
        / "easy" / "rendering_metadata.txt"
    )  # fmt: skip
    yaw_meta.unlink()
    code = shapenet.main(["--root", str(root), "--summary", "--categories", "chair", "loudspeaker", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert str(bad) in out and str(gone) in out and str(yaw_meta) in out
    assert "5/6" in next(line for line in out.splitlines() if line.startswith("chair"))


def test_deep_summary_decodes_images(data, capsys) -> None:
    root, ids, _ = data
    broken = root / "ShapeNetV1Renderings" / SPEAKER / ids[SPEAKER][1] / "rendering" / "11.png"
    broken.write_bytes(broken.read_bytes()[:60])  # a PNG header, then nothing
    args = ["--root", str(root), "--summary", "--categories", "loudspeaker", "--no-progress"]
    assert shapenet.main(args) == 0  # names and sizes only: looks complete
    capsys.readouterr()
    assert shapenet.main([*args, "--deep"]) == 1
    assert str(broken) in capsys.readouterr().out


def test_summary_without_taxonomy_or_with_missing_categories(data, capsys) -> None:
    root, _, _ = data
    assert shapenet.main(["--root", str(root), "--summary", "--no-progress"]) == 1  # 11 of the 13 are absent
    out = capsys.readouterr().out
    assert ["airplane", "02691156", "missing"] in [line.split() for line in out.splitlines()]
    assert "airplane not found: " in out and "ShapeNetV1PointCloud/02691156" in out
    (root / "taxonomy.json").unlink()
    assert shapenet.main(["--root", str(root), "--summary", "--no-progress"]) == 1
    assert "taxonomy.json not found" in capsys.readouterr().out


def test_empty_cache_dir_argument_creates_it(data) -> None:
    root, _, cache = data
    target = cache / "nested" / "deeper"
    split_clouds(root, "test", categories=[CHAIR], cache_dir=target)
    assert any(p.suffix == ".npy" for p in target.iterdir())
    assert not [p for p in target.iterdir() if p.name.startswith(".")]
    assert os.access(target, os.W_OK)
