"""Yaw-limited render sets of ShapeNetCore.v1-layout meshes (docs/rendering.md): ``python -m dataset.shapenet.render``.

For every yaw range r (degrees) and shape, one 224×224 RGBA view with azimuth 360 + U[−r, r), elevation
20 + U[0, 10), distance ratio 0.65 + U[0, 0.35) (:func:`dataset.shapenet.camera.sample_yaw_view`), written as::

    OUT/ShapeNetV1RenderingSampleYaw{RRR}/image/<synset>/<id>/easy/00.png
                                                             /rendering_metadata.txt       (one line, 10 numbers)
                                                             /rendering_metadata_disn.txt  ("[a,...,j], ")
    OUT/ShapeNetV1RenderingSampleYaw{RRR}/render_settings.json, manifest.json   (ours; readers ignore them)
    OUT/render_yaw.log

Decisions (docs/rendering.md): the draw comes from a generator seeded by (seed, r, synset, id), so any shape's
render can be remade alone. The object is kept inside the frame: draws whose projected mesh leaves the
image are drawn again from the same generator (at most ``max_draws`` draws; the original's border check
was commented out); a render whose alpha still touches the border is counted and listed as clipped.

Ids and split: the ids of a category are those of the AtlasNet point clouds beside the meshes
(``<meshes>/../ShapeNetV1PointCloud/<synset>/<id>.points.ply.npy``, the set the readers split) when that
folder exists, else the mesh folders (the log says which); ``split_ids`` picks train/test.

Resumable per shape: every file is written atomically, ``rendering_metadata.txt`` last; a rerun removes the
temporary files a killed write left (:func:`dataset.build.temporaries.remove_temporaries`), checks a
finished render (files present, PNG decodes at the right size, metadata well-formed and one of this shape's
seeded draws) and skips it. ``render_settings.json`` records what determines the pixels: a rerun with
other settings into the same folder is refused unless ``--overwrite``. ``manifest.json`` (SHA-256 of every
file) is written when a set is complete; ``--verify`` re-hashes.

Parallel over processes (``--workers``), or spread over SLURM jobs (``--launcher slurm``; ``submitit-local``
runs the same code path locally) through :func:`dispersion_score.launch.run_jobs`: each job renders one shard of
the shapes, then this process collects the shards' results and writes the manifests and the summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import logging
import multiprocessing
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset.build.command_line import BUILD_ERRORS, add_run_options, print_error, print_verify
from dataset.build.log_file import log_to_file
from dataset.build.manifest import (
    canonical_json,
    package_versions,
    read_manifest,
    refuse_other_settings,
    settings_fingerprint,
    sha256_bytes,
    write_manifest,
)
from dataset.build.temporaries import remove_temporaries
from dataset.build.worker_pool import Progress, make_items
from dataset.image_encoding import encode_png
from dataset.locations import REPO_ROOT
from dataset.shapenet.camera import View, format_disn_line, format_yaw_line, read_yaw_metadata, sample_yaw_view
from dataset.shapenet.categories import SPLITS, resolve_categories, split_ids
from dataset.shapenet.layout import YAW_RANGES
from dataset.shapenet.mesh import load_mesh
from dataset.shapenet.render.renderer import RENDERER_VERSION, MeshRenderer, check_not_blank, touches_border
from dispersion_score.atomic import atomic_write_bytes, atomic_write_text
from dispersion_score.launch import LAUNCHERS, Job, OneLineParser, non_negative_int, positive_int, run_jobs, square_int
from dispersion_score.locks import directory_lock

SET_PREFIX = "ShapeNetV1RenderingSampleYaw"
IMAGE_NAME = "00.png"
METADATA_NAME = "rendering_metadata.txt"
DISN_NAME = "rendering_metadata_disn.txt"
SETTINGS_NAME = "render_settings.json"
MANIFEST_FORMAT = "shapenet-yaw-manifest/1"
LOG_NAME = "render_yaw.log"
WORK_DIR = ".render_yaw"
POINT_CLOUD_DIR = "ShapeNetV1PointCloud"
POINT_CLOUD_SUFFIX = ".points.ply.npy"
logger = logging.getLogger("dataset.shapenet.render")


@dataclasses.dataclass(frozen=True)
class YawSettings:
    """What determines a set's files besides the mesh: recorded in ``render_settings.json``."""

    image_size: int = 224
    samples_per_pixel: int = 9
    seed: int = 0
    max_draws: int = 20

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.max_draws < 1:
            raise ValueError(f"max_draws must be >= 1, got {self.max_draws}")
        MeshRenderer(1, samples_per_pixel=self.samples_per_pixel)  # validates the sample count

    def for_set(self, yaw: int) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "yaw_range": yaw, "renderer": RENDERER_VERSION}


@dataclasses.dataclass(frozen=True)
class MeshToRender:
    """One model to render: ``<meshes>/<synset>/<model_id>/model.obj``."""

    synset: str
    model_id: str
    split: str


@dataclasses.dataclass
class YawRenderConfig:
    """A run of :func:`render_yaw_sets` (the CLI's options)."""

    meshes: Path
    out: Path
    yaws: tuple[int, ...] = YAW_RANGES
    splits: tuple[str, ...] = SPLITS
    categories: tuple[str, ...] | None = None
    settings: YawSettings = dataclasses.field(default_factory=YawSettings)
    workers: int = 1
    launcher: str = "local"
    jobs: int = 8
    slurm_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.meshes, self.out = Path(self.meshes), Path(self.out)
        for yaw in self.yaws:
            if not (isinstance(yaw, (int, np.integer)) and 0 <= yaw <= 180):
                raise ValueError(f"yaw ranges must be integers in [0, 180] degrees, got {yaw!r}")
        if len(set(self.yaws)) != len(self.yaws):
            raise ValueError(f"yaw ranges repeat: {list(self.yaws)}")
        for split in self.splits:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if self.workers < 1 or self.jobs < 1:
            raise ValueError(f"workers and jobs must be >= 1, got {self.workers}, {self.jobs}")
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}")


@dataclasses.dataclass
class SetReport:
    """One yaw set's outcome."""

    yaw: int
    rendered: int = 0
    skipped: int = 0
    redrawn: int = 0
    clipped: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Summary:
    """What a run did. ``failed`` maps "synset/id" → reason for shapes skipped as unrenderable (bad mesh);
    ``lost`` lists shapes without any result (their job died): the sets are then incomplete."""

    sets: dict[int, SetReport]
    failed: dict[str, str]
    lost: list[str]
    warnings: int
    shapes: int
    seconds: float
    cores: int

    @property
    def rendered(self) -> int:
        return sum(report.rendered for report in self.sets.values())

    @property
    def skipped(self) -> int:
        return sum(report.skipped for report in self.sets.values())

    @property
    def renders_per_second_per_core(self) -> float:
        return self.rendered / max(self.seconds * self.cores, 1e-9)

    def text(self) -> str:
        lines = [
            f"{self.shapes} shapes, {len(self.sets)} sets: {self.rendered} renders, {self.skipped} skipped "
            f"(already done), {len(self.failed)} shapes failed, {self.warnings} texture/material fallbacks; "
            f"{self.seconds:.1f} s, {self.renders_per_second_per_core:.2f} renders/s/core ({self.cores} cores)"
        ]
        for yaw, report in sorted(self.sets.items()):
            clipped = f": {', '.join(report.clipped[:10])}{' ...' if len(report.clipped) > 10 else ''}"
            lines.append(
                f"  {set_name(yaw)}: {report.rendered} rendered, {report.skipped} skipped, {report.redrawn} "
                f"redrawn to fit, {len(report.clipped)} clipped{clipped if report.clipped else ''}"
            )
        lines += [f"  FAILED {key}: {reason}" for key, reason in sorted(self.failed.items())]
        if self.lost:
            lines.append(f"  {len(self.lost)} shapes have no result (a job died; rerun to finish): {self.lost[:10]}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- layout


def set_name(yaw: int) -> str:
    """``ShapeNetV1RenderingSampleYaw{RRR}``, e.g. 15 → ``...Yaw015``."""
    return f"{SET_PREFIX}{yaw:03d}"


def render_folder(out: Path, yaw: int, synset: str, model_id: str) -> Path:
    """``OUT/ShapeNetV1RenderingSampleYaw{RRR}/image/<synset>/<id>/easy``."""
    return Path(out) / set_name(yaw) / "image" / synset / model_id / "easy"


def _relative(yaw: int, synset: str, model_id: str, name: str) -> str:
    return f"image/{synset}/{model_id}/easy/{name}"


# --------------------------------------------------------------------------------------------- sampling


def view_generator(seed: int, yaw: int, synset: str, model_id: str) -> np.random.Generator:
    """The generator of one shape's draws in one set, seeded by (seed, r, synset, id)."""
    digest = hashlib.sha256(f"{synset}/{model_id}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed, yaw, *words]))


def candidate_views(seed: int, yaw: int, synset: str, model_id: str, max_draws: int) -> list[View]:
    """The first ``max_draws`` draws of :func:`sample_yaw_view` for this shape and set, rounded to the digits
    the metadata file holds (so the file describes the rendered camera exactly)."""
    rng = view_generator(seed, yaw, synset, model_id)
    views = []
    for _ in range(max_draws):
        values = format_yaw_line(sample_yaw_view(rng, yaw)).split()
        views.append(View(float(values[0]), float(values[1]), float(values[3])))
    return views


def choose_view(renderer: MeshRenderer, mesh: Any, views: Sequence[View]) -> tuple[View, int]:
    """The first view in which the whole mesh projects inside the frame, and how many draws that took (the
    last view, with ``len(views)`` draws, when none fits)."""
    for index, view in enumerate(views):
        if renderer.frame_fits(mesh, view):
            return view, index + 1
    return views[-1], len(views)


# --------------------------------------------------------------------------------------------- planning


def list_shapes(
    meshes: Path, categories: Sequence[str] | None, splits: Sequence[str]
) -> tuple[list[MeshToRender], list[str]]:
    """Shapes to render and log lines saying where each category's ids came from.

    Raises:
        FileNotFoundError: ``meshes`` is not a folder.
        ValueError: an unknown category, or no shape at all.
    """
    meshes = Path(meshes)
    if not meshes.is_dir():
        raise FileNotFoundError(f"mesh folder not found: {meshes}")
    notes, shapes = [], []
    for synset in resolve_categories(categories):
        cloud_dir = meshes.parent / POINT_CLOUD_DIR / synset
        mesh_dir = meshes / synset
        if cloud_dir.is_dir():
            ids = sorted({p.name.split(".")[0] for p in cloud_dir.iterdir() if p.name.endswith(POINT_CLOUD_SUFFIX)})
            notes.append(f"{synset}: {len(ids)} ids from the point clouds in {cloud_dir}")
        elif mesh_dir.is_dir():
            ids = sorted(p.name for p in mesh_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
            notes.append(f"{synset}: {len(ids)} ids from the mesh folders in {mesh_dir} (no point-cloud folder)")
        else:
            notes.append(f"{synset}: no mesh or point-cloud folder; category skipped")
            continue
        for split in splits:
            shapes += [MeshToRender(synset, model_id, split) for model_id in split_ids(ids, split)]
    if not shapes:
        raise ValueError(f"no shapes to render under {meshes} (categories {categories or 'all 13'})")
    return shapes, notes


# --------------------------------------------------------------------------------------------- one shape


class _Worker:
    """Renders all requested sets of one shape at a time (the mesh is loaded once)."""

    def __init__(self, meshes: Path, out: Path, yaws: Sequence[int], settings: YawSettings) -> None:
        self.meshes, self.out, self.yaws, self.settings = Path(meshes), Path(out), tuple(yaws), settings
        self.renderer = MeshRenderer(settings.image_size, samples_per_pixel=settings.samples_per_pixel)

    def __call__(self, shape: MeshToRender) -> dict[str, Any]:
        start = time.perf_counter()
        key = f"{shape.synset}/{shape.model_id}"
        result: dict[str, Any] = {"shape": dataclasses.asdict(shape), "sets": {}, "error": None, "warnings": []}
        s = self.settings
        mesh = None
        try:
            for yaw in self.yaws:
                views = candidate_views(s.seed, yaw, shape.synset, shape.model_id, s.max_draws)
                # A render killed between its atomic writes leaves a temporary file beside the finished ones.
                remove_temporaries([render_folder(self.out, yaw, shape.synset, shape.model_id)], logger)
                done = _finished(self.out, yaw, shape, views, s.image_size)
                if done is not None:
                    files, clipped = done
                    result["sets"][str(yaw)] = {"status": "skipped", "files": files, "clipped": clipped, "draws": None}
                    continue
                if mesh is None:
                    mesh = load_mesh(self.meshes / shape.synset / shape.model_id)
                    result["warnings"] = list(mesh.warnings)
                view, draws = choose_view(self.renderer, mesh, views)
                image = self.renderer.render(mesh, view)
                check_not_blank(image, f"{key} (yaw {yaw})")
                files = _write_render(self.out, yaw, shape, image, view)
                result["sets"][str(yaw)] = {
                    "status": "rendered",
                    "files": files,
                    "clipped": touches_border(image),
                    "draws": draws,
                }
        except Exception as error:  # noqa: BLE001 - a bad mesh is counted and skipped, never stops the batch
            result["error"] = f"{type(error).__name__}: {error}"
            logger.debug("shape %s failed: %s", key, error)
        result["seconds"] = time.perf_counter() - start
        return result


def _write_render(out: Path, yaw: int, shape: MeshToRender, image: np.ndarray, view: View) -> dict[str, str]:
    """Writes the three files (metadata last: its presence marks a finished render); returns {path: sha256}."""
    folder = render_folder(out, yaw, shape.synset, shape.model_id)
    contents = [
        (IMAGE_NAME, encode_png(image)),
        (DISN_NAME, (format_disn_line(view) + "\n").encode()),
        (METADATA_NAME, (format_yaw_line(view) + "\n").encode()),
    ]
    files = {}
    for name, data in contents:
        atomic_write_bytes(folder / name, data, durable=False)
        files[_relative(yaw, shape.synset, shape.model_id, name)] = sha256_bytes(data)
    return files


def _finished(
    out: Path, yaw: int, shape: MeshToRender, views: Sequence[View], size: int
) -> tuple[dict[str, str], bool] | None:
    """({path: sha256}, clipped) of a complete, well-formed render of this shape in this set, else None."""
    from PIL import Image

    folder = render_folder(out, yaw, shape.synset, shape.model_id)
    try:
        data = {name: (folder / name).read_bytes() for name in (METADATA_NAME, DISN_NAME, IMAGE_NAME)}
        view = read_yaw_metadata(folder / METADATA_NAME)
        if read_yaw_metadata(folder / DISN_NAME) != view or format_yaw_line(view) not in {
            format_yaw_line(v) for v in views
        }:
            return None
        with Image.open(io.BytesIO(data[IMAGE_NAME])) as png:
            png.load()
            if png.mode != "RGBA" or png.size != (size, size):
                return None
            pixels = np.asarray(png)
            if not pixels[..., 3].any():  # a blank image (from an older version) is not a finished render
                return None
            clipped = touches_border(pixels)
    except (OSError, ValueError, SyntaxError):  # missing, truncated or corrupt files; PIL raises SyntaxError too
        return None
    files = {_relative(yaw, shape.synset, shape.model_id, name): sha256_bytes(d) for name, d in data.items()}
    return files, clipped


# --------------------------------------------------------------------------------------------- running


def _start_worker(meshes: Path, out: Path, yaws: tuple[int, ...], settings: YawSettings) -> _Worker:
    if multiprocessing.parent_process() is not None:
        # In a pool worker: warnings travel back in the results and are logged once by the parent.
        logging.getLogger().addHandler(logging.NullHandler())
        logging.getLogger("trimesh").setLevel(logging.CRITICAL)
    return _Worker(meshes, out, yaws, settings)


def render_shapes(
    shapes: Sequence[MeshToRender],
    meshes: Path,
    out: Path,
    yaws: Sequence[int],
    settings: YawSettings,
    *,
    workers: int = 1,
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """Render (or check and skip) every shape in every set; yields one result dict per shape, in any order.

    ``workers`` > 1 uses that many spawned processes; 1 renders in this process.
    """
    start = functools.partial(_start_worker, Path(meshes), Path(out), tuple(yaws), settings)
    for _, result in make_items(start, shapes, workers=workers, progress=Progress("shapes", "shape", progress)):
        yield result


_REMEDY = "use another --out, or --overwrite to render it again with the requested settings"


def _prepare_sets(config: YawRenderConfig) -> None:
    """Check or write each set's ``render_settings.json`` (refuse other settings unless overwriting)."""
    for yaw in config.yaws:
        folder = config.out / set_name(yaw)
        wanted = config.settings.for_set(yaw)
        path = folder / SETTINGS_NAME
        if path.exists() and not config.overwrite:
            try:
                existing = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise ValueError(f"cannot read {path} ({error}); {_REMEDY}") from None
            if not isinstance(existing, dict):
                raise ValueError(f"{path} is not a settings object; {_REMEDY}")
            refuse_other_settings(folder, existing, wanted, remedy=_REMEDY)
        if config.overwrite and (folder / "image").exists():
            logger.info("--overwrite: removing %s", folder / "image")
            shutil.rmtree(folder / "image")
        (folder / "manifest.json").unlink(missing_ok=True)
        atomic_write_text(path, canonical_json(wanted))


def render_yaw_sets(config: YawRenderConfig) -> Summary:
    """Render the yaw sets of ``config`` (see the module docstring); never raises for a bad mesh.

    Returns:
        The :class:`Summary` (also logged to ``OUT/render_yaw.log``).

    Raises:
        FileNotFoundError / ValueError: no mesh folder, no shapes, or a set rendered with other settings.
        DirectoryLockedError: another process is rendering into ``config.out`` (the message names it).
    """
    meshes, out = Path(config.meshes).resolve(), Path(config.out).resolve()
    if not meshes.is_dir():
        raise FileNotFoundError(f"mesh folder not found: {config.meshes}")
    if out == meshes or meshes in out.parents:
        raise ValueError(f"--out {config.out} lies inside the mesh folder {config.meshes}; write the renders elsewhere")
    with directory_lock(config.out, what="render output root"):
        return _render_yaw_sets(config)


def _render_yaw_sets(config: YawRenderConfig) -> Summary:
    start = time.perf_counter()
    with log_to_file(logger, config.out / LOG_NAME):
        shapes, notes = list_shapes(config.meshes, config.categories, config.splits)
        logger.info(
            "render start: meshes=%s out=%s yaws=%s splits=%s settings=%s workers=%d launcher=%s",
            config.meshes,
            config.out,
            list(config.yaws),
            list(config.splits),
            json.dumps(dataclasses.asdict(config.settings)),
            config.workers,
            config.launcher,
        )
        for note in notes:
            logger.info("%s", note)
        recorded = {yaw: (read_manifest(config.out / set_name(yaw), MANIFEST_FORMAT) or {}) for yaw in config.yaws}
        _prepare_sets(config)
        results = _render(config, shapes)
        edited = _edited_since_recorded(config, results, recorded)
        if edited:  # a render changed since its set's manifest recorded it: rendered again, never re-recorded
            logger.warning("%d shapes have renders edited since they were recorded: rendering them again", len(edited))
            again = {f"{r['shape']['synset']}/{r['shape']['model_id']}": r for r in _render(config, edited)}
            results = [again.get(f"{r['shape']['synset']}/{r['shape']['model_id']}", r) for r in results]
        cores = config.workers * (1 if config.launcher == "local" else min(config.jobs, len(shapes)))
        summary = _collect(config, shapes, results, time.perf_counter() - start, cores)
        for line in summary.text().splitlines():
            logger.info("%s", line)
    return summary


def _render(config: YawRenderConfig, shapes: Sequence[MeshToRender]) -> list[dict[str, Any]]:
    if config.launcher != "local":
        return _run_sharded(config, shapes)
    return list(
        render_shapes(
            shapes,
            config.meshes,
            config.out,
            config.yaws,
            config.settings,
            workers=config.workers,
            progress=config.progress,
        )
    )


def _edited_since_recorded(
    config: YawRenderConfig, results: Sequence[dict[str, Any]], recorded: dict[int, dict[str, Any]]
) -> list[MeshToRender]:
    """Shapes whose kept (skipped) renders differ from the SHA-256 their set's last manifest recorded; their
    render folders are removed so that they are rendered again."""
    edited = []
    for result in results:
        shape = MeshToRender(**result["shape"])
        for yaw_text, entry in result["sets"].items():
            known = recorded.get(int(yaw_text), {}).get("files", {})
            if entry["status"] == "skipped" and any(known.get(k, v) != v for k, v in entry["files"].items()):
                shutil.rmtree(render_folder(config.out, int(yaw_text), shape.synset, shape.model_id))
                edited.append(shape)
    return list(dict.fromkeys(edited))


def _collect(
    config: YawRenderConfig,
    shapes: Sequence[MeshToRender],
    results: Sequence[dict[str, Any]],
    seconds: float,
    cores: int,
) -> Summary:
    by_key = {f"{r['shape']['synset']}/{r['shape']['model_id']}": r for r in results}
    reports = {yaw: SetReport(yaw) for yaw in config.yaws}
    failed: dict[str, str] = {}
    lost: list[str] = []
    warnings = 0
    manifests: dict[int, dict[str, Any]] = {yaw: {"shapes": {}, "files": {}} for yaw in config.yaws}
    for shape in shapes:
        key = f"{shape.synset}/{shape.model_id}"
        result = by_key.get(key)
        if result is None:
            lost.append(key)
            continue
        for warning in result["warnings"]:
            logger.warning("%s", warning)
        warnings += len(result["warnings"])
        if result["error"]:
            failed[key] = result["error"]
            logger.error("shape %s skipped: %s", key, result["error"])
        for yaw_text, entry in result["sets"].items():
            yaw, report = int(yaw_text), reports[int(yaw_text)]
            if entry["status"] == "rendered":
                report.rendered += 1
                report.redrawn += entry["draws"] > 1
            else:
                report.skipped += 1
            if entry["clipped"]:
                report.clipped.append(key)
            manifests[yaw]["shapes"][key] = {"split": shape.split, "clipped": entry["clipped"]}
            manifests[yaw]["files"].update(entry["files"])
    for yaw in config.yaws:
        report = reports[yaw]
        if report.clipped:
            logger.warning("%s: %d clipped renders: %s", set_name(yaw), len(report.clipped), ", ".join(report.clipped))
        if lost:
            logger.info("%s: manifest not written (%d shapes without a result)", set_name(yaw), len(lost))
            continue
        document = {
            "format": MANIFEST_FORMAT,
            "settings": config.settings.for_set(yaw),
            "fingerprint": settings_fingerprint(config.settings.for_set(yaw)),
            "provenance": {
                "versions": package_versions("numpy", "trimesh", "embreex", "pillow"),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            **manifests[yaw],
            "failed": failed,
        }
        write_manifest(config.out / set_name(yaw), document)
    return Summary(reports, failed, lost, warnings, len(shapes), seconds, cores)


# --------------------------------------------------------------------------------------------- SLURM


def _shard_command(config: YawRenderConfig, shard_file: Path, result_file: Path) -> tuple[str, ...]:
    s = config.settings
    return (
        sys.executable,
        "-m",
        "dataset.shapenet.render",
        "--meshes",
        str(config.meshes.resolve()),
        "--out",
        str(config.out.resolve()),
        "--yaw",
        *[str(y) for y in config.yaws],
        "--seed",
        str(s.seed),
        "--image-size",
        str(s.image_size),
        "--spp",
        str(s.samples_per_pixel),
        "--max-draws",
        str(s.max_draws),
        "--workers",
        str(config.workers),
        "--shard-file",
        str(shard_file.resolve()),
        "--result-file",
        str(result_file.resolve()),
        "--no-progress",
    )


def _run_sharded(config: YawRenderConfig, shapes: Sequence[MeshToRender]) -> list[dict[str, Any]]:
    """Spread the shapes over ``config.jobs`` jobs of :func:`dispersion_score.launch.run_jobs`; gather their results."""

    work = config.out / WORK_DIR
    shutil.rmtree(work / "shards", ignore_errors=True)
    count = min(config.jobs, len(shapes))
    jobs = []
    for index in range(count):
        shard = [dataclasses.asdict(shape) for shape in shapes[index::count]]
        shard_file = work / "shards" / f"{index:04d}.json"
        atomic_write_text(shard_file, json.dumps(shard))
        result_file = work / "shards" / f"{index:04d}.result.json"
        jobs.append(
            Job(
                name=f"render_yaw_{index:04d}",
                command=_shard_command(config, shard_file, result_file),
                done_marker=result_file,
                log_file=work / "logs" / f"{index:04d}.log",
            )
        )
    parameters = {"cpus_per_task": config.workers, **config.slurm_parameters}
    report = run_jobs(
        jobs,
        launcher=config.launcher,
        cwd=REPO_ROOT,
        slurm_folder=work / "submitit",
        slurm_parameters=parameters,
        description="render jobs",
    )
    for name, log in report.failed.items():
        logger.error("job %s failed; log: %s", name, log)
    results = []
    for job in jobs:
        if job.done_marker.exists():
            results += json.loads(job.done_marker.read_text())
    return results


def _render_shard(args: argparse.Namespace, settings: YawSettings) -> int:
    shapes = [MeshToRender(**item) for item in json.loads(Path(args.shard_file).read_text())]
    results = list(
        render_shapes(shapes, args.meshes, args.out, tuple(args.yaw), settings, workers=args.workers, progress=False)
    )
    atomic_write_text(args.result_file, json.dumps(results))
    return 0


# --------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m dataset.shapenet.render", description=__doc__.split("\n")[0])
    parser.add_argument("--meshes", type=Path, help="ShapeNetCore.v1 folder (<synset>/<id>/model.obj)")
    parser.add_argument("--out", type=Path, help="output root (ShapeNetV1RenderingAnglelimit)")
    parser.add_argument(
        "--yaw", type=non_negative_int, nargs="+", default=list(YAW_RANGES), help="yaw ranges r in degrees"
    )
    parser.add_argument("--split", nargs="+", default=list(SPLITS), choices=SPLITS, help="splits to render")
    parser.add_argument("--categories", nargs="+", default=None, help="names or synset ids (default: the 13)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="base seed of the camera draws")
    parser.add_argument("--image-size", type=positive_int, default=224, help="render width = height in pixels")
    parser.add_argument("--spp", type=square_int, default=9, help="rays per pixel at edges (a square: 1, 4, 9, 16)")
    parser.add_argument(
        "--max-draws", type=positive_int, default=20, help="camera draws tried to keep the object in frame"
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="processes (per job with a SLURM launcher)")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="local", help="local processes or SLURM jobs")
    parser.add_argument("--jobs", type=positive_int, default=8, help="number of SLURM jobs (shards of the shapes)")
    parser.add_argument("--partition", default=None, help="SLURM partition")
    parser.add_argument("--time-min", type=positive_int, default=240, help="SLURM time limit per job in minutes")
    parser.add_argument("--overwrite", action="store_true", help="re-render sets made with other settings")
    add_run_options(parser, force_help=None, verify_help="only re-hash every file listed in the manifests")
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)  # appended by the job runner
    parser.add_argument("--shard-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser


def _verify(out: Path, yaws: Sequence[int]) -> int:
    status = 0
    for yaw in yaws:
        status |= print_verify(out / set_name(yaw), MANIFEST_FORMAT, label=f"{set_name(yaw)}: ")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Fallback warnings go to the log file (through the results); keep them off the progress bar.
    logging.getLogger("dataset.shapenet.mesh").setLevel(logging.ERROR)
    logging.getLogger("trimesh").setLevel(logging.CRITICAL)
    if args.out is None or (args.meshes is None and not args.verify):
        print("error: --meshes and --out are required (--verify needs --out only)", file=sys.stderr)
        return 2
    if args.verify:
        return _verify(args.out, args.yaw)
    if args.device != "cpu":
        print(f"error: this renderer runs on the CPU only, got --device {args.device}", file=sys.stderr)
        return 2
    try:
        settings = YawSettings(args.image_size, args.spp, args.seed, args.max_draws)
        if args.shard_file is not None:
            return _render_shard(args, settings)
        slurm = {"timeout_min": args.time_min}
        if args.partition:
            slurm["slurm_partition"] = args.partition
        config = YawRenderConfig(
            meshes=args.meshes,
            out=args.out,
            yaws=tuple(args.yaw),
            splits=tuple(args.split),
            categories=tuple(args.categories) if args.categories else None,
            settings=settings,
            workers=args.workers,
            launcher=args.launcher,
            jobs=args.jobs,
            slurm_parameters=slurm if args.launcher == "slurm" else {},
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
        summary = render_yaw_sets(config)
    except BUILD_ERRORS as error:
        return print_error(error)
    print(summary.text())
    print(f"log: {Path(args.out) / LOG_NAME}")
    # Shapes lost, or not one shape rendered: the run failed (a few bad meshes are named and do not fail it).
    return 1 if summary.lost or (summary.failed and len(summary.failed) == summary.shapes) else 0


if __name__ == "__main__":
    sys.exit(main())
