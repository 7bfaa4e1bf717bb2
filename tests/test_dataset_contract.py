"""The dataset contract (dataset.contract) and registry (dataset.registry): every built-in dataset meets the
contract on tiny real data, subsets keep it, a dataset registered by a test trains and is read by the runner, and
the registry refuses unknown names and bad settings naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from dataset.base import DatasetBase, SplitSubset
from dataset.checks import check_split
from dataset.contract import DatasetSplit, NotProvidedError
from dataset.registry import (
    DATA_SCHEMA,
    SplitRequest,
    build_dataset,
    register_dataset,
    registered_datasets,
    unregister_dataset,
)
from dataset.schema import Key
from dataset.splits import image_paths, item_ids
from dispersion_score.frames import FRAMES
from experiments import runner
from models.config import default_config, resolve_config
from models.engine import load_trained, predict_points, train

SIZE, POINTS = 24, 50


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic build: two instances per split, written by the build's own instance generator."""
    from dataset.synthetic.geometry import uv_sphere
    from dataset.synthetic.instance import InstanceSettings, instance_payload, write_instance
    from dataset.synthetic.render import CubeSphereRenderer, RenderSettings
    from dataset.synthetic.training_sets import INDEX_FILES, index_entry, split_instances

    root = tmp_path_factory.mktemp("cubesphere")
    settings = InstanceSettings(num_points=300, render=RenderSettings(image_size=SIZE, samples_per_pixel=4))
    renderer = CubeSphereRenderer(uv_sphere()[1], settings.render)
    for split, index_file in INDEX_FILES.items():
        instances = split_instances(split, 3)
        for instance in instances:
            write_instance(root, instance, instance_payload(instance, settings, renderer))
        (root / index_file).write_text(json.dumps([index_entry(instance) for instance in instances]))
    return root


@pytest.fixture(scope="module")
def standin_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ShapeNet stand-in, tiny: three chairs and three airplanes (two of each train, one test), real formats."""
    from dataset.shapenet.standin import build as standin

    root = tmp_path_factory.mktemp("standin") / "root"
    config = standin.BuildConfig(
        root=root, workers=1, per_category=3, categories=("chair", "airplane"), samples_per_pixel=4, num_points=600,
        progress=False,
    )  # fmt: skip
    assert standin.build(config).built == 6
    return root


def _split(name: str, split: str, roots: dict[str, Path], tmp_path: Path, **data: Any) -> DatasetSplit:
    settings: dict[str, Any] = {"dataset": name, "num_points": POINTS, "image_size": SIZE, **data}
    if name == "toy":
        settings |= {"root": ".", f"{split}_file": f"{split}:3"}
    elif name == "cubesphere":
        settings |= {"root": str(roots["cubesphere"])}
    else:
        settings["root"] = str(roots["shapenet"])
        own = {"categories": ["chair", "airplane"], "cache_dir": str(tmp_path / "cache")}
        settings["shapenet"] = {**own, **settings.get("shapenet", {})}
    return build_dataset(resolve_config({"data": settings}), split)


BUILTINS = [
    ("cubesphere", "train", {}),
    ("cubesphere", "test", {}),
    ("shapenet", "train", {"shapenet": {"views": 2}}),
    ("shapenet", "val", {"shapenet": {"frame": "viewer"}}),
    ("toy", "val", {}),
]


@pytest.fixture()
def roots(synthetic_root: Path, standin_root: Path) -> dict[str, Path]:
    return {"cubesphere": synthetic_root, "shapenet": standin_root}


@pytest.mark.parametrize(("name", "split", "data"), BUILTINS)
def test_builtin_datasets_meet_the_contract(name, split, data, roots, tmp_path) -> None:
    dataset = _split(name, split, roots, tmp_path, **data)
    check_split(dataset, num_points=POINTS, image_size=SIZE)  # the checker a new dataset's tests use
    assert isinstance(dataset, DatasetSplit) and dataset.frame in FRAMES and len(dataset) >= 2
    for i in range(len(dataset)):
        item = dataset[i]
        image, points = item["image"], item["points"]
        assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert points.shape == (POINTS, 3) and points.dtype == torch.float32
        assert item["index"] == i and isinstance(item["id"], str) and dataset.item_id(i) == item["id"]
        torch.testing.assert_close(dataset.points(i), points, rtol=0, atol=0)
        torch.testing.assert_close(dataset.image(i), image, rtol=0, atol=0)
        assert dataset.item_id(i - len(dataset)) == item["id"]  # negative indices count from the end
    with pytest.raises(IndexError):
        dataset.points(len(dataset))
    if name == "toy":
        with pytest.raises(NotProvidedError, match="ToyShapesDataset.*image files"):
            dataset.image_path(0)
    else:
        assert all(path.is_file() for path in image_paths(dataset))
    if name == "shapenet":
        rotation = dataset.rotation(1)
        assert rotation.shape == (3, 3) and rotation.dtype == np.float32
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
        np.testing.assert_array_equal(rotation, dataset[1]["cam_rotmat"].numpy())
    else:
        with pytest.raises(NotProvidedError, match=f"{type(dataset).__name__}.*camera"):
            dataset.rotation(0)


def test_viewer_frame_points_are_object_points_rotated(roots, tmp_path) -> None:
    viewer = _split("shapenet", "test", roots, tmp_path, shapenet={"frame": "viewer"})
    object_ = _split("shapenet", "test", roots, tmp_path)
    assert (viewer.frame, object_.frame) == ("viewer", "object")
    for i in range(len(viewer)):
        expected = object_.points(i).double() @ torch.from_numpy(viewer.rotation(i)).double().T
        torch.testing.assert_close(viewer.points(i).double(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("name", "split", "data"), BUILTINS)
def test_subset_keeps_every_method_and_maps_indices(name, split, data, roots, tmp_path) -> None:
    dataset = _split(name, split, roots, tmp_path, **data)
    chosen = [len(dataset) - 1, 0, len(dataset) - 1]  # any order, repeats allowed
    subset = dataset.subset(chosen)
    assert isinstance(subset, DatasetSplit) and len(subset) == 3 and subset.frame == dataset.frame
    for j, i in enumerate(chosen):
        assert subset[j]["index"] == i and subset[j]["id"] == dataset[i]["id"]
        torch.testing.assert_close(subset.points(j), dataset.points(i), rtol=0, atol=0)
        torch.testing.assert_close(subset.image(j), dataset.image(i), rtol=0, atol=0)
        assert subset.item_id(j) == dataset.item_id(i)
        for method in ("image_path", "rotation"):
            try:
                expected = getattr(dataset, method)(i)
            except NotProvidedError:
                with pytest.raises(NotProvidedError):
                    getattr(subset, method)(j)
            else:
                np.testing.assert_array_equal(np.asarray(getattr(subset, method)(j)), np.asarray(expected))
    nested = subset.subset([1, 0])
    assert isinstance(nested, SplitSubset) and nested.dataset is dataset and nested.indices == [0, len(dataset) - 1]
    assert item_ids(nested) == [dataset.item_id(0), dataset.item_id(len(dataset) - 1)]


# ----------------------------------------------------------------------------------- a registered dataset


class Rings(DatasetBase):
    """A dataset a test adds: flat rings of the configured radius, grey images, items ``ring_<i>``."""

    def __init__(self, request: SplitRequest) -> None:
        self.count, self.request = {"train": 6, "val": 3, "test": 4}[request.split], request

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = range(self.count)[index]  # IndexError outside, negative indices from the end
        angles = torch.linspace(0, 2 * torch.pi, self.request.num_points + 1)[:-1] + index
        radius = self.request.options["radius"] * (index + 1) / self.count
        points = torch.stack([radius * angles.cos(), radius * angles.sin(), torch.zeros_like(angles)], dim=1)
        image = torch.full((3, self.request.image_size, self.request.image_size), (index + 1) / self.count)
        return {"image": image, "points": points, "id": f"ring_{index}", "index": index}


@pytest.fixture()
def rings() -> Any:
    register_dataset("rings", Rings, schema={"radius": Key(float, 1.0, "radius of the largest ring", minimum=0.0)})
    yield
    unregister_dataset("rings")
    assert "rings" not in registered_datasets() and "rings" not in DATA_SCHEMA


def test_a_registered_dataset_trains_and_is_read_by_the_runner(rings, tmp_path: Path, one_torch_thread) -> None:
    config = {
        "data": {"dataset": "rings", "root": str(tmp_path), "num_points": 32, "image_size": 32,
                 "rings": {"radius": 0.5}},
        "model": {"bottleneck": 16, "atlasnet": {"hidden": 16, "sphere_level": 1}},
        "train": {"epochs": 1, "batch_size": 3, "milestones": []},
        "run": {"progress": False},
    }  # fmt: skip
    assert default_config()["data"]["rings"] == {"radius": 1.0}  # the registry's schema is in the training config
    run = train(config, tmp_path / "run")
    assert (run / "done").is_file()
    model, stored = load_trained(run)
    assert stored["data"]["rings"] == {"radius": 0.5}

    preset = SimpleNamespace(ds={"shape_points": 12, "ds_seed": 0})  # what evaluation_split reads of a preset
    test = runner.evaluation_split(preset, stored, "test")
    clouds = runner.stacked_points(test, object_frame=True)
    assert clouds.shape == (4, 12, 3) and clouds.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(clouds[-1], axis=1), 0.5, rtol=1e-6)  # data.rings.radius reached it
    assert item_ids(test) == [f"ring_{i}" for i in range(4)]
    assert predict_points(model, test, batch_size=2).shape == (4, 42, 3)
    with pytest.raises(NotProvidedError, match="Rings does not name its image files"):
        image_paths(test)


def test_registry_refuses_unknown_names_and_bad_settings(rings, tmp_path: Path) -> None:
    data = {"root": str(tmp_path), "dataset": "nope"}
    with pytest.raises(ValueError, match=r"data\.dataset: unknown dataset 'nope'; registered: \[.*'rings'"):
        build_dataset(resolve_config({"data": data}), "train")
    with pytest.raises(ValueError, match=r"data\.rings\.radius: must be >= 0, got -1"):
        resolve_config({"data": {**data, "dataset": "rings", "rings": {"radius": -1}}})
    # A config put together by hand, not resolved, is checked by the registry itself.
    unresolved = {**default_config()["data"], "root": str(tmp_path), "dataset": "rings", "rings": {"radius": "big"}}
    with pytest.raises(ValueError, match=r"data\.rings\.radius: expected float"):
        build_dataset({"data": unresolved}, "train")
    with pytest.raises(ValueError, match=r"data\.rings\.radious"):
        build_dataset({"data": {**unresolved, "rings": {"radious": 1.0}}}, "train")
    with pytest.raises(ValueError, match=r"data\.shapenet\.images: must be one of \['r2n2', 'yaw'\]"):
        resolve_config({"data": {**data, "dataset": "shapenet", "shapenet": {"images": "photos"}}})
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset(resolve_config({"data": {**data, "dataset": "rings"}}), "validation")
    with pytest.raises(ValueError, match="key of the data section"):
        register_dataset("root", Rings)


def test_a_factory_must_return_the_contract(tmp_path: Path) -> None:
    class ItemsOnly(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int) -> dict[str, Any]:
            return {"image": torch.zeros(3, 4, 4), "points": torch.zeros(2, 3), "id": "a", "index": 0}

    register_dataset("items_only", lambda request: ItemsOnly())
    try:
        with pytest.raises(TypeError, match=r"'items_only'.*ItemsOnly.*\['frame', 'points', 'image', 'image_path'"):
            build_dataset(resolve_config({"data": {"dataset": "items_only", "root": str(tmp_path)}}), "train")
    finally:
        unregister_dataset("items_only")


class _Broken(DatasetBase):
    """A split that breaks the contract in the way ``fault`` says."""

    def __init__(self, fault: str) -> None:
        self.fault = fault

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = range(3)[min(index, 2) if self.fault == "no IndexError" else index]
        size = 8 if self.fault == "image size" else SIZE
        item = {
            "image": torch.zeros(3, size, size),
            "points": torch.zeros(POINTS, 3),
            "id": f"i{index}",
            "index": index,
        }
        if self.fault == "no id":
            del item["id"]
        return item


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("none", None),
        ("no id", r"_Broken item 0: missing key\(s\) \['id'\]"),
        ("image size", r"_Broken item 0: image must be a float32 tensor \(3, 24, 24\)"),
        ("no IndexError", "_Broken item 3: reading one past the end must raise IndexError"),
    ],
)
def test_check_split_names_the_dataset_item_and_problem(fault: str, message: str | None) -> None:
    if message is None:
        check_split(_Broken(fault), num_points=POINTS, image_size=SIZE)
        return
    with pytest.raises(ValueError, match=message):
        check_split(_Broken(fault), num_points=POINTS, image_size=SIZE)
    if fault == "no id":
        with pytest.raises(KeyError, match="_Broken item 0 has no 'id'"):
            item_ids(_Broken(fault))
