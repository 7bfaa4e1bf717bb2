"""Seeded ShapeNetCore.v1-layout mesh folders for the renderer's tests, benchmark and contact sheet.

Writes ``<root>/<synset>/<id>/model.obj`` + ``model.mtl`` (+ a texture image) in the real formats:
multi-material OBJs (``usemtl`` groups, ``vt`` coordinates for textured parts, quads as well as
triangles), Y up, front +X, bounding-box diagonal about 1 — like ShapeNetCore.v1 and the stand-in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ObjPart:
    """One material group: vertices (V, 3), polygon faces (lists of 0-based indices), Kd, optional uv/texture."""

    vertices: np.ndarray
    faces: list[list[int]]
    material: str
    kd: tuple[float, float, float]
    uv: np.ndarray | None = None  # (V, 2), written as vt and referenced per corner
    texture: str | None = None  # map_Kd file name (need not exist)


def box(centre: Sequence[float], size: Sequence[float]) -> tuple[np.ndarray, list[list[int]]]:
    """Axis-aligned box: 8 vertices and 6 outward quads (counter-clockwise seen from outside)."""
    c, h = np.asarray(centre, float), np.asarray(size, float) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * h + c
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    return corners, quads


def cylinder(
    centre: Sequence[float], radius: float, height: float, sections: int = 24
) -> tuple[np.ndarray, list[list[int]]]:
    """Closed Y-axis cylinder: side quads and two polygon caps."""
    angles = 2 * np.pi * np.arange(sections) / sections
    ring = np.stack([radius * np.cos(angles), np.zeros(sections), radius * np.sin(angles)], axis=1)
    bottom = ring + np.asarray(centre, float) - [0, height / 2, 0]
    top = ring + np.asarray(centre, float) + [0, height / 2, 0]
    vertices = np.concatenate([bottom, top])
    faces = [[i, (i + 1) % sections, sections + (i + 1) % sections, sections + i] for i in range(sections)]
    faces.append(list(range(sections)))
    faces.append([sections + i for i in range(sections)][::-1])
    return vertices, faces


def write_obj(folder: Path, parts: Sequence[ObjPart], *, write_mtl: bool = True) -> Path:
    """Writes ``folder/model.obj`` (and ``model.mtl``); returns the OBJ path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# test mesh", "mtllib model.mtl"]
    offset = uv_offset = 0
    for part in parts:
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in part.vertices]
        if part.uv is not None:
            lines += [f"vt {u:.6f} {v:.6f}" for u, v in part.uv]
        lines.append(f"usemtl {part.material}")
        for face in part.faces:
            if part.uv is not None:
                lines.append("f " + " ".join(f"{offset + i + 1}/{uv_offset + i + 1}" for i in face))
            else:
                lines.append("f " + " ".join(str(offset + i + 1) for i in face))
        offset += len(part.vertices)
        uv_offset += 0 if part.uv is None else len(part.uv)
    (folder / "model.obj").write_text("\n".join(lines) + "\n")
    if write_mtl:
        mtl = []
        for part in parts:
            mtl += [f"newmtl {part.material}", "Ka 0 0 0", "Kd {:.6f} {:.6f} {:.6f}".format(*part.kd), "Ks 0 0 0"]
            if part.texture:
                mtl.append(f"map_Kd {part.texture}")
        (folder / "model.mtl").write_text("\n".join(mtl) + "\n")
    return folder / "model.obj"


def write_checker(path: Path, size: int = 16, cells: int = 4) -> None:
    """A two-colour checkerboard PNG (orange and blue)."""
    from PIL import Image

    index = (np.arange(size)[:, None] * cells // size + np.arange(size)[None, :] * cells // size) % 2
    colours = np.array([[230, 120, 30], [40, 80, 200]], np.uint8)
    Image.fromarray(colours[index]).save(path)


def model_id(seed: int, index: int) -> str:
    """A 32-hex-digit id like ShapeNet's, derived from (seed, index)."""
    return hashlib.md5(f"{seed}/{index}".encode()).hexdigest()


def chair_parts(rng: np.random.Generator, *, textured: bool, texture: str = "checker.png") -> list[ObjPart]:
    """Seat + back (+ textured cushion) + 4 legs, proportions drawn from ``rng``; diagonal about 1."""
    w, d = rng.uniform(0.35, 0.5), rng.uniform(0.35, 0.5)
    seat_y, leg = rng.uniform(-0.05, 0.05), rng.uniform(0.02, 0.04)
    seat_v, seat_f = box([0, seat_y, 0], [d, 0.05, w])
    back_v, back_f = box([-d / 2 + 0.025, seat_y + 0.25, 0], [0.05, 0.45, w])
    legs_v, legs_f = [], []
    for sx in (-1, 1):
        for sz in (-1, 1):
            v, f = box([sx * (d / 2 - leg), seat_y - 0.2, sz * (w / 2 - leg)], [leg, 0.35, leg])
            legs_f += [[i + 8 * len(legs_v) for i in q] for q in f]
            legs_v.append(v)
    parts = [
        ObjPart(seat_v, seat_f, "seat", tuple(rng.uniform(0.2, 0.9, 3))),
        ObjPart(back_v, back_f, "back", tuple(rng.uniform(0.2, 0.9, 3))),
        ObjPart(np.concatenate(legs_v), legs_f, "legs", (0.15, 0.12, 0.1)),
    ]
    if textured:
        cushion_v = np.array([[-d / 2, seat_y + 0.026, -w / 2], [d / 2, seat_y + 0.026, -w / 2],
                              [d / 2, seat_y + 0.026, w / 2], [-d / 2, seat_y + 0.026, w / 2]])  # fmt: skip
        uv = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
        parts.append(ObjPart(cushion_v, [[0, 3, 2, 1]], "cushion", (0.5, 0.5, 0.5), uv, texture))
    return parts


def lamp_parts(rng: np.random.Generator, *, texture: str | None = None) -> list[ObjPart]:
    """Base + pole + shade (the shade's texture, if named, need not exist: a missing-texture fixture)."""
    base_v, base_f = cylinder([0, -0.4, 0], rng.uniform(0.12, 0.2), 0.05)
    pole_v, pole_f = cylinder([0, -0.1, 0], 0.02, 0.55, sections=12)
    shade_v, shade_f = cylinder([0, 0.25, 0], rng.uniform(0.15, 0.25), 0.2)
    uv = np.tile([[0.5, 0.5]], (len(shade_v), 1)) if texture else None
    return [
        ObjPart(base_v, base_f, "base", (0.2, 0.2, 0.25)),
        ObjPart(pole_v, pole_f, "pole", (0.7, 0.7, 0.7)),
        ObjPart(shade_v, shade_f, "shade", tuple(rng.uniform(0.4, 0.95, 3)), uv, texture),
    ]


def write_mesh_tree(
    root: Path, count: int, *, seed: int = 0, synsets: Sequence[str] = ("03001627", "03636649")
) -> list[tuple[str, str]]:
    """``count`` shapes per synset (chairs for 03001627, lamps otherwise) under ``root``; every second chair
    has a textured cushion (texture written), every lamp's shade names a texture that does not exist.
    Returns [(synset, id)]."""
    written = []
    for s_index, synset in enumerate(synsets):
        for index in range(count):
            rng = np.random.default_rng([seed, s_index, index])
            identifier = model_id(seed, s_index * 100000 + index)
            folder = root / synset / identifier
            if synset == "03001627":
                parts = chair_parts(rng, textured=index % 2 == 0)
                if index % 2 == 0:
                    folder.mkdir(parents=True, exist_ok=True)
                    write_checker(folder / "checker.png")
            else:
                parts = lamp_parts(rng, texture="missing_shade.jpg")
            write_obj(folder, parts)
            written.append((synset, identifier))
    return written
