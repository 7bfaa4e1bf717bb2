"""Textured, multi-material meshes for rendering: ShapeNetCore.v1 ``model.obj`` + ``model.mtl`` (docs/shapenet.md).

A :class:`Mesh` is a tuple of :class:`MeshPart` (one per material): vertices, triangles, the material's
diffuse colour (MTL ``Kd``) and, where the material has a readable ``map_Kd`` texture, per-vertex texture
coordinates and the texture image. Build one with

* :func:`load_mesh` from a ShapeNetCore.v1 model folder or its ``model.obj`` (trimesh parses the OBJ: polygons,
  negative indices, ``usemtl`` groups, texture paths relative to the OBJ);
* :func:`as_mesh` from what a generator has in memory: a ``trimesh.Trimesh``/``trimesh.Scene`` or a sequence of
  ``(vertices, faces, rgb)`` tuples.

Fallbacks (never fatal, logged on the ``dataset.shapenet.mesh`` logger naming the model and recorded in
``Mesh.warnings`` so batch runners can count them): a missing MTL file or a part without material gets the
default grey :data:`DEFAULT_COLOR` (Blender's default material); a declared texture that is missing or
unreadable falls back to the material's ``Kd``. Fatal problems raise :class:`MeshError` naming the file: an
unreadable OBJ, no triangle, non-finite vertex coordinates, face indices out of range.

Colours are linear RGB in [0, 1] as the MTL stores them (Blender reads ``Kd`` as linear scene colour);
textures stay 8-bit sRGB as stored and are decoded to linear by the renderer. A texture replaces ``Kd``
(as Blender's OBJ importer sets it up: a diffuse texture slot mixed at factor 1).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_COLOR = (0.8, 0.8, 0.8)
OBJ_NAME = "model.obj"
logger = logging.getLogger("dataset.shapenet.mesh")


class MeshError(ValueError):
    """A mesh that cannot be rendered (unreadable, no triangles, non-finite vertices); names the file."""


@dataclass(frozen=True, eq=False)
class MeshPart:
    """One material's triangles.

    Attributes:
        vertices: (V, 3) float64 positions in the object frame (ShapeNetCore.v1: Y up, front +X).
        faces: (F, 3) int64 vertex indices, F >= 1.
        color: linear RGB diffuse colour in [0, 1] (MTL ``Kd``).
        uv: (V, 2) float64 texture coordinates (OBJ convention: v = 0 is the image's bottom row) or None.
        texture: (H, W, 3) uint8 sRGB image or None; given only together with ``uv``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = DEFAULT_COLOR
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Mesh:
    """A renderable mesh: parts plus where it came from.

    Attributes:
        parts: the material parts (at least one, each with at least one triangle).
        name: the source (a file path or a caller's label), used in warnings and errors.
        warnings: fallbacks applied while loading (missing MTL, missing or unreadable texture), one line each.
    """

    parts: tuple[MeshPart, ...]
    name: str = "<mesh>"
    warnings: tuple[str, ...] = field(default=())

    @property
    def face_count(self) -> int:
        return sum(len(part.faces) for part in self.parts)

    def all_vertices(self) -> np.ndarray:
        """(ΣV, 3) float64 vertices of every part (for bounds and projection checks)."""
        return np.concatenate([part.vertices for part in self.parts], axis=0)


# --------------------------------------------------------------------------------------------- building


def make_part(
    vertices: Any,
    faces: Any,
    color: Sequence[float] = DEFAULT_COLOR,
    *,
    uv: Any = None,
    texture: Any = None,
    name: str = "<mesh>",
) -> MeshPart:
    """A validated :class:`MeshPart` (arguments as its attributes; ``texture`` may be a PIL image).

    Raises:
        MeshError: wrong shapes, no faces, non-finite vertices or uv, indices out of range, colour outside [0, 1]
            (the message starts with ``name``).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise MeshError(f"{name}: vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise MeshError(f"{name}: faces must have shape (F, 3) with F >= 1 triangles, got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise MeshError(f"{name}: faces must be integer vertex indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(f"{name}: face indices must be in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")
    if not np.isfinite(vertices[np.unique(faces)]).all():
        raise MeshError(f"{name}: non-finite (NaN or inf) vertex coordinates")
    rgb = tuple(float(c) for c in color)[:3]
    if len(rgb) != 3 or not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in rgb):
        raise MeshError(f"{name}: colour must be 3 numbers in [0, 1], got {tuple(color)!r}")
    if (uv is None) != (texture is None):
        raise MeshError(f"{name}: uv and texture must be given together")
    if uv is not None:
        uv = np.asarray(uv, dtype=np.float64)
        if uv.shape != (len(vertices), 2) or not np.isfinite(uv).all():
            raise MeshError(f"{name}: uv must be finite with shape ({len(vertices)}, 2), got {uv.shape}")
        texture = _texture_array(texture, name)
    return MeshPart(vertices, faces, rgb, uv, texture)  # type: ignore[arg-type]


def as_mesh(source: Any, name: str | None = None) -> Mesh:
    """A :class:`Mesh` from a Mesh (returned as is), a ``trimesh.Trimesh``/``trimesh.Scene``, or a sequence of
    ``(vertices, faces, rgb)`` tuples (rgb: linear colour in [0, 1], as written to an MTL's ``Kd``).

    Scenes are flattened with their transforms; a trimesh part's colour is its material's ``Kd`` (or the
    face colour of a ``ColorVisuals`` mesh), and its texture is used when it has uv and an image.

    Raises:
        MeshError: nothing renderable, or a bad part (see :func:`make_part`).
        TypeError: an unsupported type.
    """
    if isinstance(source, Mesh):
        return source
    import trimesh

    if isinstance(source, (trimesh.Trimesh, trimesh.Scene)):
        label = name or "<trimesh>"
        parts, warnings = _parts_from_trimesh(source, label, declared_maps=None)
        return _finish(parts, label, warnings)
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        label = name or "<parts>"
        parts = []
        for index, item in enumerate(source):
            if not (isinstance(item, Sequence) and len(item) == 3):
                raise MeshError(f"{label}: part {index} must be a (vertices, faces, rgb) tuple")
            vertices, faces, rgb = item
            parts.append(make_part(vertices, faces, rgb, name=f"{label} part {index}"))
        return _finish(parts, label, [])
    raise TypeError(f"cannot make a mesh from {type(source).__name__}; give a Mesh, trimesh object or part list")


def load_mesh(path: str | os.PathLike) -> Mesh:
    """Load a ShapeNetCore.v1 model (``<id>/model.obj`` + ``model.mtl`` + textures) as a :class:`Mesh`.

    Args:
        path: the model folder (holding ``model.obj``) or the OBJ file itself.

    Returns:
        One part per material group; missing MTL / textures fall back as the module docstring says (logged
        with the model path, listed in ``Mesh.warnings``).

    Raises:
        FileNotFoundError: no such OBJ.
        MeshError: the OBJ cannot be parsed, holds no triangle, or has non-finite vertices (names the file).
    """
    path = Path(path)
    obj = path / OBJ_NAME if path.is_dir() else path
    if not obj.is_file():
        raise FileNotFoundError(f"no OBJ file at {obj}")
    try:
        text = obj.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise MeshError(f"{obj}: cannot read: {error}") from None
    warnings: list[str] = []
    declared_maps = _declared_texture_maps(obj, text, warnings)
    import trimesh

    try:
        scene = trimesh.load(str(obj), file_type="obj", force="scene", process=False)
    except Exception as error:  # noqa: BLE001 - any parser failure is "unreadable", named with the file
        raise MeshError(f"{obj}: cannot parse OBJ: {type(error).__name__}: {error}") from None
    parts, part_warnings = _parts_from_trimesh(scene, str(obj), declared_maps)
    return _finish(parts, str(obj), warnings + part_warnings)


# --------------------------------------------------------------------------------------------- helpers


def _finish(parts: list[MeshPart], name: str, warnings: list[str]) -> Mesh:
    if not parts:
        raise MeshError(f"{name}: no triangles to render")
    for warning in warnings:
        logger.warning("%s", warning)
    return Mesh(tuple(parts), name, tuple(warnings))


def _texture_array(texture: Any, name: str) -> np.ndarray:
    if hasattr(texture, "convert"):  # a PIL image
        texture = np.asarray(texture.convert("RGB"))
    texture = np.asarray(texture)
    if texture.ndim == 3 and texture.shape[2] == 4:
        texture = texture[..., :3]
    if texture.ndim != 3 or texture.shape[2] != 3 or texture.dtype != np.uint8 or texture.size == 0:
        raise MeshError(f"{name}: texture must be a non-empty (H, W, 3) uint8 image, got {texture.shape}")
    return np.ascontiguousarray(texture)


def _declared_texture_maps(obj: Path, text: str, warnings: list[str]) -> dict[str, str]:
    """{material: map_Kd path} declared in the OBJ's MTL files; a missing MTL is a warning."""
    maps: dict[str, str] = {}
    for match in re.finditer(r"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", text, flags=re.MULTILINE):
        mtl = obj.parent / match.group(1)
        try:
            lines = mtl.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            warnings.append(f"{obj}: material file {match.group(1)!r} missing or unreadable; parts drawn grey")
            continue
        material = None
        for line in lines:
            tokens = line.split()
            if len(tokens) >= 2 and tokens[0] == "newmtl":
                material = " ".join(tokens[1:])
            elif len(tokens) >= 2 and tokens[0].lower() == "map_kd" and material is not None:
                maps[material] = tokens[-1]  # options such as -s u v come before the file name
    return maps


def _parts_from_trimesh(
    source: Any, name: str, declared_maps: dict[str, str] | None
) -> tuple[list[MeshPart], list[str]]:
    """Parts of a trimesh object; ``declared_maps`` is None for in-memory objects (no MTL behind them)."""
    import trimesh

    meshes: list[tuple[str, Any]] = []
    if isinstance(source, trimesh.Scene):
        for node in source.graph.nodes_geometry:
            transform, geometry_name = source.graph[node]
            geometry = source.geometry[geometry_name]
            if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
                if not np.allclose(transform, np.eye(4)):
                    geometry = geometry.copy()
                    geometry.apply_transform(transform)
                meshes.append((str(geometry_name), geometry))
    elif len(source.faces):
        meshes.append((name, source))
    parts, warnings = [], []
    for _geometry_name, geometry in meshes:
        color, uv, texture, warning = _material_of(geometry, name, declared_maps)
        if warning:
            warnings.append(warning)
        parts.append(make_part(geometry.vertices, geometry.faces, color, uv=uv, texture=texture, name=name))
    return parts, warnings


def _material_of(geometry: Any, name: str, declared_maps: dict[str, str] | None) -> tuple[Any, Any, Any, str | None]:
    """(colour, uv, texture, warning) of one trimesh geometry."""
    from_file = declared_maps is not None
    declared_maps = declared_maps or {}
    visual = geometry.visual
    material = getattr(visual, "material", None)
    if material is None:
        if getattr(visual, "kind", None) == "face" or getattr(visual, "kind", None) == "vertex":
            rgba = np.asarray(visual.face_colors, dtype=np.float64)
            if len(rgba) and (rgba == rgba[0]).all():
                return tuple(rgba[0, :3] / 255.0), None, None, None
        return DEFAULT_COLOR, None, None, None
    kd = getattr(material, "kwargs", {}).get("kd")
    if kd is not None and len(kd) >= 3:
        color = tuple(min(max(float(c), 0.0), 1.0) for c in kd[:3])
    elif from_file:  # trimesh's stand-in material for a part the MTL does not describe
        color = DEFAULT_COLOR
    else:
        diffuse = getattr(material, "diffuse", None)
        if diffuse is None:
            diffuse = getattr(material, "baseColorFactor", None)
        color = tuple(np.asarray(diffuse, dtype=np.float64)[:3] / 255.0) if diffuse is not None else DEFAULT_COLOR
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    uv = getattr(visual, "uv", None)
    material_name = getattr(material, "name", None)
    if image is not None and uv is not None and len(uv) == len(geometry.vertices):
        try:
            texture = _texture_array(image, name)
        except (MeshError, OSError) as error:
            return color, None, None, f"{name}: texture of material {material_name!r} unreadable ({error}); using Kd"
        return color, uv, texture, None
    if material_name in declared_maps:
        what = "has no texture coordinates" if image is not None else "missing or unreadable"
        return (
            color,
            None,
            None,
            (f"{name}: texture {declared_maps[material_name]!r} of material {material_name!r} {what}; using Kd"),
        )
    return color, None, None, None
