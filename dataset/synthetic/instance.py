"""Generating one instance directory (``model.obj``, ``points.npy``, ``Isometric.png``) atomically.

The three files are written into a temporary sibling directory ``instances/.tmp-<id>-<pid>`` that is
renamed to ``instances/<id>`` only when all three are complete (:func:`dataset.build.temporaries.replace_folder`),
so an instance directory either is complete or does not exist (a killed build leaves at most a ``.tmp-*``
directory, which the next build removes). :func:`instance_maker` runs in worker processes; each keeps one renderer.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from dataset.build.manifest import sha256_bytes
from dataset.build.temporaries import replace_folder
from dataset.image_encoding import encode_png
from dataset.synthetic.geometry import cubesphere_mesh, sample_surface_points, uv_sphere
from dataset.synthetic.render import CubeSphereRenderer, RenderSettings
from dataset.synthetic.training_sets import SPLIT_CODES, Instance

# Bump when a change to the generator changes the files it writes (geometry, sampling, rendering).
GENERATOR_VERSION = "1"


@dataclasses.dataclass(frozen=True)
class InstanceSettings:
    """Settings that determine an instance's files (and nothing else)."""

    num_points: int = 30000
    seed: int = 0
    render: RenderSettings = dataclasses.field(default_factory=RenderSettings)

    def __post_init__(self) -> None:
        if self.num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {self.num_points!r}")

    def to_dict(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["generator_version"] = GENERATOR_VERSION
        return document


def points_seed(seed: int, instance: Instance) -> list[int]:
    """Seed of an instance's point sampling: (base seed, split code, index) — independent of build order."""
    return [int(seed), SPLIT_CODES[instance.split], int(instance.index)]


def instance_payload(instance: Instance, settings: InstanceSettings, renderer: CubeSphereRenderer) -> dict[str, bytes]:
    """The three files of an instance, as bytes keyed by file name."""
    mesh = cubesphere_mesh(instance.t)
    points = sample_surface_points(mesh, settings.num_points, points_seed(settings.seed, instance))
    npy = io.BytesIO()
    np.save(npy, points, allow_pickle=False)
    obj = trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_color=False, include_texture=False)
    png = encode_png(renderer.render(mesh.vertices))
    return {"model.obj": obj.encode(), "points.npy": npy.getvalue(), "Isometric.png": png}


def write_instance(root: Path, instance: Instance, payload: dict[str, bytes]) -> dict[str, str]:
    """Writes the files atomically (temp directory + rename); returns {relative path: sha256}."""
    replace_folder(root / "instances" / instance.id, payload)
    return {instance.path(name): sha256_bytes(data) for name, data in payload.items()}


def instance_maker(root: Path, settings: InstanceSettings) -> Callable[[Instance], dict[str, str]]:
    """Sets up one process (its renderer) and returns ``make(instance)``, which writes the instance's files
    under ``root`` and returns {relative path: sha256}."""
    renderer = CubeSphereRenderer(uv_sphere()[1], settings.render)

    def make(instance: Instance) -> dict[str, str]:
        return write_instance(root, instance, instance_payload(instance, settings, renderer))

    return make
