"""Where the ShapeNet files live (docs/shapenet.md) and how to tell whether one shape's files are there and readable.

Layout under a data root (default ``dataset/data/``)::

    taxonomy.json                                              ShapeNet's official taxonomy (JSON list)
    ShapeNetV1PointCloud/<synset>/<id>.points.ply.npy          dense clouds, raw ShapeNetCore.v1 frame
    ShapeNetV1Renderings/<synset>/<id>/rendering/00.png … 23.png, renderings.txt, rendering_metadata.txt
    ShapeNetV1RenderingAnglelimit/ShapeNetV1RenderingSampleYaw{RRR}/image/<synset>/<id>/easy/
                                                   00.png, rendering_metadata.txt, rendering_metadata_disn.txt
    ShapeNetCore.v1/<synset>/<id>/model.obj, model.mtl         meshes (only the renderers need them)

A model id is the point-cloud file name up to its first dot. The checks here only look at names, sizes and
the (small) metadata files; decoding every PNG is left to :func:`check_png` for callers that ask for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.shapenet.camera import MetadataError, View, read_r2n2_metadata, read_yaw_metadata
from dataset.shapenet.categories import SHAPENET13

TAXONOMY_NAME = "taxonomy.json"
POINT_CLOUD_DIR = "ShapeNetV1PointCloud"
POINT_CLOUD_SUFFIX = ".points.ply.npy"
R2N2_DIR = "ShapeNetV1Renderings"
R2N2_VIEWS = 24
R2N2_IMAGE_SIZE = 137
R2N2_LIST_NAME = "renderings.txt"
METADATA_NAME = "rendering_metadata.txt"
DISN_METADATA_NAME = "rendering_metadata_disn.txt"
YAW_ROOT_DIR = "ShapeNetV1RenderingAnglelimit"
YAW_RANGES = (0, 15, 30, 45, 60, 75, 90)
TEST_YAW = 90  # the yaw range of the test renders every more-images run is evaluated on (the paper's)
YAW_IMAGE_SIZE = 224
MESH_DIR = "ShapeNetCore.v1"

# The official lemma strings of ShapeNetCore's taxonomy.json for the 13 categories (first lemma = name).
OFFICIAL_LEMMAS: dict[str, str] = {
    "02691156": "airplane,aeroplane,plane",
    "02828884": "bench",
    "02933112": "cabinet",
    "02958343": "car,auto,automobile,machine,motorcar",
    "03001627": "chair",
    "03211117": "display,video display",
    "03636649": "lamp",
    "03691459": "loudspeaker,speaker,speaker unit,loudspeaker system,speaker system",
    "04090263": "rifle",
    "04256520": "sofa,couch,lounge",
    "04379243": "table",
    "04401088": "telephone,phone,telephone set",
    "04530566": "vessel,watercraft",
}


# --------------------------------------------------------------------------------------------- paths


def yaw_set_name(yaw: int) -> str:
    """``ShapeNetV1RenderingSampleYaw{RRR}`` for a yaw range r in whole degrees (0 → ``...Yaw000``)."""
    if isinstance(yaw, bool) or not isinstance(yaw, int | np.integer) or not 0 <= yaw <= 180:
        raise ValueError(f"yaw must be an int number of degrees in [0, 180], got {yaw!r}")
    return f"ShapeNetV1RenderingSampleYaw{int(yaw):03d}"


def point_cloud_path(root: str | os.PathLike, synset: str, model_id: str) -> Path:
    return Path(root) / POINT_CLOUD_DIR / synset / f"{model_id}{POINT_CLOUD_SUFFIX}"


def r2n2_dir(root: str | os.PathLike, synset: str, model_id: str) -> Path:
    """``<root>/ShapeNetV1Renderings/<synset>/<id>/rendering``."""
    return Path(root) / R2N2_DIR / synset / model_id / "rendering"


def r2n2_image_name(view: int) -> str:
    return f"{view:02d}.png"


def yaw_dir(root: str | os.PathLike, yaw: int, synset: str, model_id: str) -> Path:
    """``<root>/ShapeNetV1RenderingAnglelimit/ShapeNetV1RenderingSampleYaw{RRR}/image/<synset>/<id>/easy``."""
    return Path(root) / YAW_ROOT_DIR / yaw_set_name(yaw) / "image" / synset / model_id / "easy"


def yaw_image_path(root: str | os.PathLike, yaw: int, synset: str, model_id: str) -> Path:
    return yaw_dir(root, yaw, synset, model_id) / "00.png"


def mesh_dir(root: str | os.PathLike, synset: str, model_id: str) -> Path:
    return Path(root) / MESH_DIR / synset / model_id


def present_yaw_sets(root: str | os.PathLike) -> list[int]:
    """Yaw ranges r whose ``ShapeNetV1RenderingSampleYaw{RRR}`` folder exists under the root, ascending."""
    base = Path(root) / YAW_ROOT_DIR
    if not base.is_dir():
        return []
    found = []
    for path in base.iterdir():
        suffix = path.name.removeprefix("ShapeNetV1RenderingSampleYaw")
        if path.is_dir() and suffix != path.name and suffix.isdigit() and len(suffix) == 3:
            found.append(int(suffix))
    return sorted(found)


# --------------------------------------------------------------------------------------------- taxonomy


def read_taxonomy(root: str | os.PathLike) -> dict[str, str]:
    """Synset id → category name (the first comma-separated lemma) from ``<root>/taxonomy.json``.

    The file is ShapeNet's official taxonomy: a JSON list of objects with at least ``synsetId`` and ``name``
    (e.g. ``{"synsetId": "03691459", "name": "loudspeaker,speaker,speaker unit,...", "children": [...],
    "numInstances": 1618}``); every entry is read, sub-categories included.

    Raises:
        FileNotFoundError: no taxonomy.json in ``root`` (the message says what the file is).
        ValueError: not JSON, not a list of objects, or an entry without a string synsetId / name (names the
            file and the entry).
    """
    path = Path(root) / TAXONOMY_NAME
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: the ShapeNet data root must hold ShapeNet's taxonomy.json (a JSON list of "
            f'{{"synsetId", "name", "children", "numInstances"}} objects) next to {POINT_CLOUD_DIR}/'
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON file: {error}") from None
    if not isinstance(document, list):
        raise ValueError(f"{path} must hold a JSON list of category objects, got {type(document).__name__}")
    names: dict[str, str] = {}
    for number, entry in enumerate(document):
        if not (isinstance(entry, dict) and isinstance(entry.get("synsetId"), str)):
            raise ValueError(f"{path}, entry {number}: expected an object with a string 'synsetId', got {entry!r:.80}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.split(",")[0].strip():
            raise ValueError(f"{path}, entry {number} (synset {entry['synsetId']}): 'name' must be a lemma string")
        names[entry["synsetId"]] = name.split(",")[0].strip()
    return names


def taxonomy_document(counts: dict[str, int]) -> list[dict]:
    """ShapeNet's official taxonomy form for the 13 categories: [{"synsetId", "name", "children",
    "numInstances"}], with the official lemma strings; ``counts`` gives numInstances per synset."""
    unknown = sorted(set(counts) - set(OFFICIAL_LEMMAS))
    if unknown:
        raise ValueError(f"no official lemma string for synset(s) {unknown}")
    return [
        {"synsetId": synset, "name": OFFICIAL_LEMMAS[synset], "children": [], "numInstances": int(counts[synset])}
        for synset in sorted(counts)
    ]


# --------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CloudFile:
    """One dense point-cloud file of the data root."""

    synset: str
    id: str
    path: Path


def list_point_clouds(root: str | os.PathLike, synset: str) -> list[CloudFile]:
    """The category's point-cloud files (``*.npy`` in ``ShapeNetV1PointCloud/<synset>/``), sorted by id.

    Raises:
        FileNotFoundError: the category folder does not exist (the message names it).
        ValueError: two files give the same model id.
    """
    folder = Path(root) / POINT_CLOUD_DIR / synset
    if not folder.is_dir():
        name = SHAPENET13.get(synset, "")
        raise FileNotFoundError(f"point-cloud folder of category {synset} {name} not found: {folder}".rstrip())
    files: dict[str, CloudFile] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.endswith(".npy") or entry.name.startswith("."):
                continue
            model_id = entry.name.split(".")[0]
            if model_id in files:
                raise ValueError(f"{folder}: files {files[model_id].path.name} and {entry.name} give the same id")
            files[model_id] = CloudFile(synset, model_id, folder / entry.name)
    return [files[model_id] for model_id in sorted(files)]


# --------------------------------------------------------------------------------------------- checks


def check_point_cloud_header(path: Path) -> tuple[tuple[int, ...], str | None]:
    """(shape, problem) from the .npy header alone (memory map, nothing read): problem is None when the
    file is a 2-D float array with >= 1 row and >= 3 columns whose data is all there."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return (), f"missing file {path}"
    except (OSError, ValueError, EOFError) as error:
        return (), f"unreadable .npy {path}: {error}"
    shape = tuple(array.shape)
    if not isinstance(array, np.ndarray) or array.ndim != 2 or shape[0] < 1 or shape[1] < 3:
        return shape, f"{path}: expected an array of shape (P, >=3), got {shape}"
    if array.dtype.kind != "f":
        return shape, f"{path}: expected float32 or float64 points, got {array.dtype}"
    return shape, None


def _png_ok(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def check_r2n2(
    root: str | os.PathLike, synset: str, model_id: str, views: Sequence[int]
) -> tuple[list[View], str | None]:
    """Cameras of one shape's R2N2 views and the first problem (None when every asked view is usable).

    A view is usable when its PNG exists (non-empty) and ``rendering_metadata.txt`` parses (5 numbers a
    line) with a line for it. Returns (all cameras of the file, problem); cameras are [] on a problem with
    the metadata.
    """
    folder = r2n2_dir(root, synset, model_id)
    if not folder.is_dir():
        return [], f"no R2N2 renders: {folder} missing"
    try:
        cameras = read_r2n2_metadata(folder / METADATA_NAME)
    except (FileNotFoundError, MetadataError) as error:
        return [], str(error)
    for view in views:
        if view >= len(cameras):
            return cameras, f"{folder / METADATA_NAME} has {len(cameras)} camera lines, view {view:02d} needs more"
        image = folder / r2n2_image_name(view)
        if not _png_ok(image):
            return cameras, f"missing image {image}"
    return cameras, None


def check_r2n2_complete(root: str | os.PathLike, synset: str, model_id: str) -> str | None:
    """None when the shape has the full R2N2 set (24 PNGs, renderings.txt, 24 metadata lines), else the
    first problem."""
    cameras, problem = check_r2n2(root, synset, model_id, range(R2N2_VIEWS))
    if problem is not None:
        return problem
    folder = r2n2_dir(root, synset, model_id)
    if len(cameras) != R2N2_VIEWS:
        return f"{folder / METADATA_NAME} has {len(cameras)} camera lines, expected {R2N2_VIEWS}"
    if not (folder / R2N2_LIST_NAME).is_file():
        return f"missing {folder / R2N2_LIST_NAME}"
    return None


def check_yaw(root: str | os.PathLike, yaw: int, synset: str, model_id: str) -> tuple[View | None, str | None]:
    """(camera, problem) of one shape's yaw-limited render: ``easy/00.png`` and ``rendering_metadata.txt``."""
    folder = yaw_dir(root, yaw, synset, model_id)
    if not folder.is_dir():
        return None, f"no {yaw_set_name(yaw)} render: {folder} missing"
    try:
        camera = read_yaw_metadata(folder / METADATA_NAME)
    except (FileNotFoundError, MetadataError) as error:
        return None, str(error)
    image = folder / "00.png"
    if not _png_ok(image):
        return camera, f"missing image {image}"
    return camera, None


def check_png(path: Path) -> str | None:
    """None when Pillow decodes the file fully, else the problem (slow: decodes the image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError, ValueError) as error:
        return f"unreadable image {path}: {error}"
    return None
