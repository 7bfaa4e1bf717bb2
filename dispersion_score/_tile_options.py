"""Options of the out-of-core Chamfer matrix that the tile driver (:mod:`dispersion_score.tiles`) and its cost
estimate (:mod:`dispersion_score._tile_estimate`) both resolve: the default tile size, where the tiles run and
which backend computes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from dispersion_score import _chamfer_kernel

if TYPE_CHECKING:
    from dispersion_score.launch import Launch

DEFAULT_CHAMFER_TILE = 1024  # clouds per tile side: ~1M pairs, ~4 min on one CPU core


def resolve_tile_size(tile_size: object, default: int) -> int:
    """Items per tile side: ``tile_size``, or ``default`` when it is None.

    Raises:
        ValueError: ``tile_size`` is not a positive integer.
    """
    if tile_size is None:
        return default
    if isinstance(tile_size, bool) or not isinstance(tile_size, int | np.integer) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive integer (items per tile side) or None, got {tile_size!r}")
    return int(tile_size)


def compute_device_type(launch: Launch | None, here: torch.device) -> str:
    """Where the tiles run: this process's device, the launch's GPUs, or CPU workers."""
    if launch is None:
        return here.type
    return "cuda" if launch.gpus else "cpu"


def chamfer_backend(backend: str, device_type: str) -> str:
    """The backend the tiles run: "compiled" or "torch", from the requested one ("auto", "compiled", "torch")
    and the workers' device type ("cpu" or "cuda").

    Raises:
        ValueError: an unknown backend, or "compiled" on CUDA.
        RuntimeError: "compiled" asked for on the CPU where the kernel does not build.
    """
    if backend not in ("auto", "compiled", "torch"):
        raise ValueError(f"backend must be one of ['auto', 'compiled', 'torch'], got {backend!r}")
    if device_type == "cuda":
        if backend == "compiled":
            raise ValueError("backend='compiled' runs on the CPU only; these tiles run on CUDA")
        return "torch"
    if backend == "torch":
        return "torch"
    if _chamfer_kernel.load_kernel() is not None:
        return "compiled"
    if backend == "compiled":
        raise RuntimeError(f"the compiled Chamfer kernel is unavailable: {_chamfer_kernel.unavailable_reason()}")
    return "torch"
