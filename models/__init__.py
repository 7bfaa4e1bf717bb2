"""Image → point-cloud networks (docs/models.md) and their trainer.

``build_model(config)`` maps a config's ``model.name`` to a network class (``MODELS``); every network maps
(B, 3, H, W) images in [0, 1] to (B, M, 3) points and has ``predict`` (eval mode, regular template).
The training protocol lives in ``models.training``, the reconstruction trainer (a task of it) in
``models.engine``, configs in ``models.config``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from models.atlasnet import AtlasNet
from models.base import PointCloudNet
from models.config import resolve_config
from models.foldnet import FoldNet
from models.psgn import PSGN
from models.templates import SquareTemplate


def _atlasnet(model: Mapping[str, Any], num_points: int) -> AtlasNet:
    settings = model["atlasnet"]
    return AtlasNet(
        template=settings["template"],
        primitives=settings["primitives"],
        num_points=num_points,
        bottleneck=model["bottleneck"],
        hidden=settings["hidden"],
        hidden_layers=settings["hidden_layers"],
        sphere_level=settings["sphere_level"],
        grid_size=settings["grid_size"],
    )


def _psgn(model: Mapping[str, Any], num_points: int) -> PSGN:
    return PSGN(num_points=num_points, bottleneck=model["bottleneck"], hidden=model["psgn"]["hidden"])


def _foldnet(model: Mapping[str, Any], num_points: int) -> FoldNet:
    grid_size = model["foldnet"]["grid_size"] or SquareTemplate.grid_size_for(num_points)
    return FoldNet(grid_size=grid_size, bottleneck=model["bottleneck"], hidden=model["foldnet"]["hidden"])


MODELS: dict[str, Callable[[Mapping[str, Any], int], PointCloudNet]] = {
    "atlasnet": _atlasnet,
    "psgn": _psgn,
    "foldnet": _foldnet,
}


def build_model(config: Mapping[str, Any]) -> PointCloudNet:
    """The network a config describes.

    Args:
        config: a training config (see ``models.config``); only ``model`` and ``data.num_points`` are read,
            and missing keys take their defaults, so ``{"model": {"name": "psgn"}}`` is enough.

    Returns:
        A freshly initialised PointCloudNet (initialisation uses torch's global RNG: seed it first).
    """
    partial = {"model": dict(config.get("model", {})), "data": dict(config.get("data", {}))}
    partial["data"].setdefault("root", ".")  # the dataset is irrelevant to the network
    resolved = resolve_config(partial)
    model = resolved["model"]
    num_points = model["num_points"] or resolved["data"]["num_points"]
    return MODELS[model["name"]](model, num_points)


__all__ = ["MODELS", "AtlasNet", "FoldNet", "PSGN", "PointCloudNet", "build_model"]
