"""Builds the ShapeNet-13 stand-in (docs/shapenet.md): ``python -m dataset.shapenet.standin --root DIR``.

A small dataset in exactly the real formats of docs/shapenet.md, so every ShapeNet reader, renderer, experiment
and baseline runs on it unchanged::

    DIR/taxonomy.json                                      official form: [{"synsetId", "name", "children",
    DIR/ShapeNetCore.v1/taxonomy.json                        "numInstances"}], official lemma strings
    DIR/ShapeNetCore.v1/<synset>/<id>/model.obj, model.mtl  parts as OBJ groups, colours as MTL Kd
    DIR/ShapeNetV1PointCloud/<synset>/<id>.points.ply.npy   (30000, 3) float32 on the outer surface
    DIR/ShapeNetV1Renderings/<synset>/<id>/rendering/       00.png … 23.png (137×137 RGBA),
                                                            renderings.txt, rendering_metadata.txt
    DIR/manifest.json, DIR/build.log                        ours (readers ignore them)

Shapes: the 13 part-based families of :mod:`dataset.shapenet.standin.families`, in ShapeNetCore.v1's conventions
(Y up, front +X, bounding box centred at the origin with diagonal 1). Shape ``index`` of a category has id
``sha256("shapenet-standin/<seed>/<synset>/<index>")[:32]`` (32 hex digits, so sorted order, which decides
the split, does not follow the parameters) and draws its geometry, points and cameras from generators seeded
by (seed, synset, index, stream). Points: 30,000 area-uniform samples of the outer surface
(:func:`dataset.shapenet.standin.parts.sample_outer_surface`). R2N2 views: 3D-R2N2's sampling (azimuth U[0, 360),
elevation U[25, 30), distance ratio U[0.65, 0.95)) and metadata lines, rendered by
:class:`dataset.shapenet.render.renderer.MeshRenderer` (the renderer of the yaw sets) from the mesh as written.

Deterministic (same seed and settings → byte-identical files, whatever ``--workers``), atomic per shape
(mesh and render folders are written under temporary names and renamed; the point cloud, which makes a
shape visible to readers, is written last), resumable (a rerun re-hashes what earlier runs recorded and
rebuilds only what is missing, corrupt or made with other settings), with a manifest (SHA-256 of every
file) and ``--verify``. Changing ``--per-category`` keeps the shapes both sizes share; shapes of an earlier
build that the new one does not plan are removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dataset.build.command_line import BUILD_ERRORS, add_run_options, print_error, print_verify
from dataset.build.manifest import canonical_json, files_intact, read_manifest, settings_fingerprint, sha256_bytes
from dataset.build.runner import LOG_NAME, Builder, BuildSummary, Files, run_build
from dataset.build.temporaries import replace_folder
from dataset.locations import DATASET_DIR
from dataset.shapenet.camera import format_r2n2_line, sample_r2n2_views
from dataset.shapenet.categories import SHAPENET13, resolve_categories, split_ids
from dataset.shapenet.layout import (
    MESH_DIR,
    METADATA_NAME,
    POINT_CLOUD_DIR,
    POINT_CLOUD_SUFFIX,
    R2N2_DIR,
    R2N2_IMAGE_SIZE,
    R2N2_LIST_NAME,
    R2N2_VIEWS,
    TAXONOMY_NAME,
    YAW_ROOT_DIR,
    taxonomy_document,
)
from dataset.shapenet.standin.families import FAMILIES
from dataset.shapenet.standin.parts import mtl_text, normalize_parts, obj_text, render_parts, sample_outer_surface
from dispersion_score.atomic import atomic_write_bytes, atomic_write_text
from dispersion_score.launch import OneLineParser, non_negative_int, positive_int, square_int

# Bump when a change to the generator changes the files it writes (families, sampling, file formats).
GENERATOR_VERSION = "2"
MANIFEST_FORMAT = "shapenet-standin-manifest/1"
DEFAULT_ROOT = DATASET_DIR / "shapenet_data" / "standin"
QUICK_PER_CATEGORY = 20  # 16 train / 4 test shapes per category
NUM_POINTS = 30000
_STREAMS = {"geometry": 0, "points": 1, "views": 2}
logger = logging.getLogger("dataset.shapenet.standin")


@dataclasses.dataclass(frozen=True)
class ShapeSettings:
    """What determines one shape's files (and nothing else)."""

    seed: int = 0
    num_points: int = NUM_POINTS
    image_size: int = R2N2_IMAGE_SIZE
    samples_per_pixel: int = 16

    def to_dict(self) -> dict[str, Any]:
        from dataset.shapenet.render.renderer import RENDERER_VERSION

        return {**dataclasses.asdict(self), "generator_version": GENERATOR_VERSION, "renderer": RENDERER_VERSION}


@dataclasses.dataclass(frozen=True)
class PlannedShape:
    """One planned shape: category, index within it, and its id."""

    synset: str
    index: int
    model_id: str


def derive_model_id(seed: int, synset: str, index: int) -> str:
    """The shape's 32-hex-digit id, derived from (seed, synset, index)."""
    return hashlib.sha256(f"shapenet-standin/{seed}/{synset}/{index}".encode()).hexdigest()[:32]


def generator(seed: int, shape: PlannedShape, stream: str) -> np.random.Generator:
    """The generator of one random stream ("geometry", "points", "views") of a shape."""
    return np.random.default_rng([int(seed), int(shape.synset), int(shape.index), _STREAMS[stream]])


def plan(seed: int, per_category: int, categories: Sequence[str]) -> list[PlannedShape]:
    """Every shape of a build, category by category, index order."""
    return [
        PlannedShape(synset, index, derive_model_id(seed, synset, index))
        for synset in categories
        for index in range(per_category)
    ]


# --------------------------------------------------------------------------------------------- one shape


def shape_geometry(seed: int, shape: PlannedShape) -> tuple[list, dict[str, tuple[float, float, float]]]:
    """(normalised parts, colours rounded to the MTL's 4 decimals) of a shape."""
    parts, colors = FAMILIES[shape.synset](generator(seed, shape, "geometry"))
    return normalize_parts(parts), {name: tuple(round(float(c), 4) for c in rgb) for name, rgb in colors.items()}


def relative_paths(shape: PlannedShape) -> dict[str, str]:
    """Where a shape's files go, relative to the root (keys: "mesh", "renders", "points")."""
    return {
        "mesh": f"{MESH_DIR}/{shape.synset}/{shape.model_id}",
        "renders": f"{R2N2_DIR}/{shape.synset}/{shape.model_id}",
        "points": f"{POINT_CLOUD_DIR}/{shape.synset}/{shape.model_id}{POINT_CLOUD_SUFFIX}",
    }


def shape_payload(shape: PlannedShape, settings: ShapeSettings, renderer: Any) -> dict[str, bytes]:
    """Every file of a shape, as bytes keyed by its path relative to the root."""
    from dataset.image_encoding import encode_png
    from dataset.shapenet.mesh import as_mesh
    from dataset.shapenet.render.renderer import check_not_blank, render_views

    parts, colors = shape_geometry(settings.seed, shape)
    where = relative_paths(shape)
    header = f"ShapeNet-13 stand-in {SHAPENET13[shape.synset]} {shape.model_id} (dispersion-score)"
    files = {
        f"{where['mesh']}/model.obj": obj_text(parts, header).encode(),
        f"{where['mesh']}/model.mtl": mtl_text(colors).encode(),
    }
    mesh = as_mesh(render_parts(parts, colors), name=f"{shape.synset}/{shape.model_id}")
    views = sample_r2n2_views(generator(settings.seed, shape, "views"), R2N2_VIEWS)
    rendering = f"{where['renders']}/rendering"
    for number, image in enumerate(render_views(renderer, mesh, views)):
        check_not_blank(image, f"{shape.synset}/{shape.model_id} view {number:02d}")
        files[f"{rendering}/{number:02d}.png"] = encode_png(image)
    files[f"{rendering}/{R2N2_LIST_NAME}"] = "".join(f"{v:02d}.png\n" for v in range(R2N2_VIEWS)).encode()
    files[f"{rendering}/{METADATA_NAME}"] = "".join(format_r2n2_line(v) + "\n" for v in views).encode()
    points = sample_outer_surface(parts, settings.num_points, generator(settings.seed, shape, "points"))
    buffer = io.BytesIO()
    np.save(buffer, points.astype(np.float32), allow_pickle=False)
    files[where["points"]] = buffer.getvalue()
    return files


def write_shape(root: Path, shape: PlannedShape, payload: dict[str, bytes]) -> dict[str, str]:
    """Writes a shape atomically (mesh and render folders swapped in whole, the point cloud last);
    returns {relative path: sha256}."""
    where = relative_paths(shape)
    for key in ("mesh", "renders"):
        prefix = where[key] + "/"
        inside = {p[len(prefix) :]: d for p, d in payload.items() if p.startswith(prefix)}
        replace_folder(root / where[key], inside)
    atomic_write_bytes(root / where["points"], payload[where["points"]], durable=False)
    return {path: sha256_bytes(data) for path, data in payload.items()}


def shape_maker(root: Path, settings: ShapeSettings) -> Callable[[PlannedShape], dict[str, str]]:
    """Sets up one process (its renderer) and returns ``make(shape)``, which writes the shape's files under
    ``root`` and returns {relative path: sha256}."""
    from dataset.shapenet.render.renderer import MeshRenderer

    renderer = MeshRenderer(settings.image_size, samples_per_pixel=settings.samples_per_pixel)

    def make(shape: PlannedShape) -> dict[str, str]:
        return write_shape(root, shape, shape_payload(shape, settings, renderer))

    return make


# --------------------------------------------------------------------------------------------- build


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What to build and where."""

    root: Path = DEFAULT_ROOT
    per_category: int = QUICK_PER_CATEGORY
    seed: int = 0
    workers: int = 2
    categories: tuple[str, ...] | None = None
    samples_per_pixel: int = 16
    num_points: int = NUM_POINTS
    progress: bool = True
    force: bool = False  # rebuild a root that holds a stand-in made with other settings

    def __post_init__(self) -> None:
        if self.per_category < 1:
            raise ValueError(f"per_category must be >= 1, got {self.per_category}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {self.num_points}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        from dataset.shapenet.render.renderer import MeshRenderer

        MeshRenderer(1, samples_per_pixel=self.samples_per_pixel)  # validates the rays per pixel before any work

    @property
    def synsets(self) -> list[str]:
        return resolve_categories(self.categories)

    @property
    def shape_settings(self) -> ShapeSettings:
        return ShapeSettings(seed=self.seed, num_points=self.num_points, samples_per_pixel=self.samples_per_pixel)


def _present_shapes(root: Path) -> set[tuple[str, str]]:
    """(synset, id) of every shape with any file under the root's three data folders (13 categories)."""
    present = set()
    for folder in (MESH_DIR, R2N2_DIR, POINT_CLOUD_DIR):
        for synset in SHAPENET13:
            directory = root / folder / synset
            if directory.is_dir():
                present |= {(synset, p.name.split(".")[0]) for p in directory.iterdir() if not p.name.startswith(".")}
    return present


def _remove_shape(root: Path, synset: str, shape_id: str) -> None:
    (root / POINT_CLOUD_DIR / synset / f"{shape_id}{POINT_CLOUD_SUFFIX}").unlink(missing_ok=True)
    for folder in (MESH_DIR, R2N2_DIR):
        shutil.rmtree(root / folder / synset / shape_id, ignore_errors=True)


def _remove_yaw_renders(root: Path, shapes: Sequence[tuple[str, str]]) -> int:
    """Deletes the yaw-limited renders (``ShapeNetV1RenderingAnglelimit/*/image/<synset>/<id>``) of shapes
    that are being rebuilt or removed: they show the old mesh, and the yaw renderer's resume check (files
    present, metadata one of the shape's seeded draws) cannot tell. Returns how many folders went."""
    base = root / YAW_ROOT_DIR
    if not base.is_dir():
        return 0
    removed = 0
    sets = [path for path in base.iterdir() if path.is_dir()]
    for synset, shape_id in shapes:
        for render_set in sets:
            folder = render_set / "image" / synset / shape_id
            if folder.is_dir():
                shutil.rmtree(folder)
                removed += 1
    return removed


def _key(synset: str, shape_id: str) -> str:
    return f"{synset}/{shape_id}"


@dataclasses.dataclass(frozen=True)
class StandinBuild(Builder[PlannedShape]):
    """The stand-in as a :class:`dataset.build.runner.Builder`: the shapes of ``config``."""

    config: BuildConfig
    manifest_format: ClassVar[str] = MANIFEST_FORMAT
    generator_version: ClassVar[str] = GENERATOR_VERSION
    # Code versions are not the user's settings: a new generator or renderer rebuilds its shapes without asking.
    version_keys: ClassVar[tuple[str, ...]] = ("generator_version", "renderer")
    packages: ClassVar[tuple[str, ...]] = ("numpy", "trimesh", "pillow", "embreex")
    noun: ClassVar[str] = "shapes"
    progress_label: ClassVar[str] = "stand-in shapes"
    progress_unit: ClassVar[str] = "shape"
    logger: ClassVar[logging.Logger] = logger

    @property
    def root(self) -> Path:
        return Path(self.config.root)

    def settings(self) -> dict[str, Any]:
        return {**self.item_settings(), "per_category": self.config.per_category, "categories": self.config.synsets}

    def item_settings(self) -> dict[str, Any]:
        return self.config.shape_settings.to_dict()

    def plan(self) -> list[PlannedShape]:
        return plan(self.config.seed, self.config.per_category, self.config.synsets)

    def key(self, item: PlannedShape) -> str:
        return _key(item.synset, item.model_id)

    def recorded(self, manifest: dict[str, Any]) -> dict[str, Files]:
        return dict(manifest.get("shapes", {}))

    def start_worker(self) -> Callable[[PlannedShape], Files]:
        return shape_maker(self.root, self.config.shape_settings)

    def work_folders(self) -> list[Path]:
        return [
            path for folder in (MESH_DIR, R2N2_DIR, POINT_CLOUD_DIR) for path in sorted(self.root.glob(f"{folder}/*"))
        ]

    def check_root(self, plan: Sequence[PlannedShape], known: set[str]) -> None:
        present = {_key(synset, shape_id) for synset, shape_id in _present_shapes(self.root)}
        foreign = sorted(present - {self.key(shape) for shape in plan} - known)
        if foreign:
            raise ValueError(
                f"{self.root} holds {len(foreign)} shape(s) no stand-in build wrote (e.g. {foreign[0]}); "
                "build the stand-in into its own folder"
            )

    def prepare(self, plan: Sequence[PlannedShape], todo: Sequence[PlannedShape]) -> int:
        planned = {(shape.synset, shape.model_id) for shape in plan}
        stale = sorted(_present_shapes(self.root) - planned)
        for synset, shape_id in stale:
            _remove_shape(self.root, synset, shape_id)
        if stale:
            logger.info("removed %d shapes of an earlier build that this one does not plan", len(stale))
        outdated = _remove_yaw_renders(self.root, stale + [(s.synset, s.model_id) for s in todo])
        if outdated:
            logger.info(
                "removed %d yaw-limited renders of rebuilt or removed shapes (rerun dataset.shapenet.render.yaw_sets)",
                outdated,
            )
        return len(stale)

    def finish(self, plan: Sequence[PlannedShape], made: dict[str, Files]) -> tuple[Files, dict[str, Any]]:
        synsets = self.config.synsets
        taxonomy = canonical_json(taxonomy_document({synset: self.config.per_category for synset in synsets}))
        files = {}
        for relative in (TAXONOMY_NAME, f"{MESH_DIR}/{TAXONOMY_NAME}"):
            atomic_write_text(self.root / relative, taxonomy)
            files[relative] = sha256_bytes(taxonomy.encode())
        splits = {
            synset: {
                split: split_ids([s.model_id for s in plan if s.synset == synset], split) for split in ("train", "test")
            }
            for synset in synsets
        }
        return files, {"splits": splits, "shapes": made}


def build(config: BuildConfig) -> BuildSummary:
    """Builds (or completes) the stand-in under ``config.root``; see the module docstring.

    Raises:
        ValueError: the root holds shapes that no stand-in build wrote (e.g. real data), or a (finished or
            unfinished) stand-in made with other settings and ``config.force`` is False; nothing is changed.
        DirectoryLockedError: another process is writing the root (the message names it).
    """
    return run_build(StandinBuild(config), workers=config.workers, force=config.force, progress=config.progress)


def ensure_standin(root: str | os.PathLike = DEFAULT_ROOT, **options: Any) -> Path:
    """The stand-in at ``root``, built (or completed) first unless its manifest matches ``options``
    (:class:`BuildConfig` fields) and every listed file has its recorded SHA-256 (one read of the files; a
    damaged shape is rebuilt by :func:`build`)."""
    config = BuildConfig(root=Path(root), **options)
    manifest = read_manifest(config.root, MANIFEST_FORMAT)
    wanted = settings_fingerprint(config.shape_settings.to_dict())
    if (
        manifest is not None
        and manifest.get("fingerprint") == wanted
        and manifest["settings"].get("per_category") == config.per_category
        and manifest["settings"].get("categories") == config.synsets
        and files_intact(config.root, manifest["files"])  # every file re-hashed: an edited one is rebuilt
    ):
        return config.root
    build(config)
    return config.root


# --------------------------------------------------------------------------------------------- figure


def contact_sheet(
    root: str | os.PathLike, *, per_category: int = 6, cell: int = 96, azimuth: float = 35.0, elevation: float = 25.0
) -> np.ndarray:
    """(13·cell, label + per_category·cell, 3) uint8 figure of a built stand-in: the first shapes (sorted ids)
    of every category, their written meshes (``model.obj`` + ``model.mtl``, as the yaw renderer loads them)
    rendered from one front-right camera, on white, one row per category with its name."""
    from PIL import Image, ImageDraw

    from dataset.shapenet.camera import View
    from dataset.shapenet.mesh import load_mesh
    from dataset.shapenet.render.renderer import MeshRenderer

    root = Path(root)
    manifest = read_manifest(root, MANIFEST_FORMAT)
    if manifest is None:
        raise FileNotFoundError(f"no stand-in manifest in {root}; build it first")
    renderer = MeshRenderer(2 * cell, samples_per_pixel=16)
    view = View(azimuth, elevation, 0.8)
    label = 84
    rows = []
    for synset in manifest["settings"]["categories"]:
        ids = sorted(key.split("/")[1] for key in manifest["shapes"] if key.startswith(synset))[:per_category]
        row = Image.new("RGB", (label + cell * per_category, cell), "white")
        ImageDraw.Draw(row).text((4, cell // 2 - 6), SHAPENET13[synset], fill=(0, 0, 0))
        for k, shape_id in enumerate(ids):
            rgba = Image.fromarray(renderer.render(load_mesh(root / MESH_DIR / synset / shape_id), view))
            rgba = rgba.resize((cell, cell), Image.LANCZOS)
            tile = Image.new("RGB", (cell, cell), "white")
            tile.paste(rgba, mask=rgba.getchannel("A"))
            row.paste(tile, (label + k * cell, 0))
        rows.append(np.asarray(row))
    return np.concatenate(rows, axis=0)


# --------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m dataset.shapenet.standin", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"output folder (default {DEFAULT_ROOT})")
    parser.add_argument(
        "--per-category",
        type=positive_int,
        default=QUICK_PER_CATEGORY,
        help="shapes per category (default: the quick size)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of ids, shapes, points and cameras")
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel processes")
    parser.add_argument("--categories", nargs="+", default=None, help="names or synset ids (default: the 13)")
    parser.add_argument("--spp", type=square_int, default=16, help="rays per pixel at edges (a square: 1, 4, 9, 16)")
    add_run_options(
        parser,
        force_help="rebuild a root that holds a stand-in made with other settings",
        verify_help="only re-hash every file in manifest.json",
    )
    parser.add_argument("--contact-sheet", type=Path, default=None, help="after building, write a PNG of the shapes")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verify:
        return print_verify(args.root, MANIFEST_FORMAT)
    try:
        config = BuildConfig(
            root=args.root,
            per_category=args.per_category,
            seed=args.seed,
            workers=args.workers,
            categories=tuple(args.categories) if args.categories else None,
            samples_per_pixel=args.spp,
            progress=not args.no_progress,
            force=args.force,
        )
        config.synsets  # noqa: B018  (validates the categories before any work)
        summary = build(config)
    except BUILD_ERRORS as error:
        return print_error(error)
    print(
        f"built {summary.built} shapes, kept {summary.skipped} already built, removed {summary.removed}, "
        f"{summary.seconds:.1f} s; root {summary.root} (log: {summary.root / LOG_NAME})"
    )
    if args.contact_sheet is not None:
        from PIL import Image

        args.contact_sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(contact_sheet(args.root)).save(args.contact_sheet, optimize=True)
        print(f"contact sheet: {args.contact_sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
