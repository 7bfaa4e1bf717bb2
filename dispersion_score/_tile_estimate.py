"""What a tiled Chamfer matrix will cost: pairs, tiles, bytes, and a time projected from a calibration.

The calibration times the tile computer the workers would use (same backend, same device type) on random
unit-ball clouds of the requested size for a few seconds, then scales the measured rate by the parallel
slots of the launch: CPU workers × their threads (the compiled kernel is timed on one thread; it splits
pairs over threads with no shared state, so its rate scales with threads), or one slot per GPU. The
projection leaves out job start-up (a few seconds per job), queueing and the assembly (one pass writing
the 4·N_a·N_b-byte matrix).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from dispersion_score._chamfer_blocks import normalize_float64, torch_plan
from dispersion_score._tile_compute import CompiledChamferTiles, TorchChamferTiles
from dispersion_score._tile_options import (
    DEFAULT_CHAMFER_TILE,
    chamfer_backend,
    compute_device_type,
    resolve_tile_size,
)
from dispersion_score._tile_plan import Manifest, Tile, count_tiles
from dispersion_score._tile_progress import format_duration
from dispersion_score._validation import resolve_device
from dispersion_score.launch import Launch


@dataclass(frozen=True)
class TileEstimate:
    """Size and projected time of a tiled Chamfer matrix.

    Attributes:
        shape: (N_a, N_b); symmetric: only the upper triangle is computed.
        pairs: Chamfer pairs to compute; tiles: number of tiles; tile_size: clouds per tile side.
        matrix_bytes: size of the float32 output.
        backend, device: what the workers run ("compiled"/"torch", "cpu"/"cuda").
        rate: measured pairs/s of one slot (None when the device is not available here).
        slots: tiles computed at once (workers, GPUs or SLURM array tasks); threads: CPU threads per slot.
        projected_seconds: pairs / (rate × slots), None when unmeasured.
        calibration: what was timed, in words.
    """

    shape: tuple[int, int]
    symmetric: bool
    pairs: int
    tiles: int
    tile_size: int
    matrix_bytes: int
    backend: str
    device: str
    rate: float | None
    slots: int
    threads: int | None
    projected_seconds: float | None
    calibration: str

    def lines(self) -> list[str]:
        n_a, n_b = self.shape
        kind = "symmetric, upper triangle" if self.symmetric else "cross"
        lines = [
            f"matrix {n_a} x {n_b} float32 ({kind}): {self.matrix_bytes / 1e9:.3g} GB",
            f"pairs {self.pairs:,} ({self.pairs:.3g}) in {self.tiles} tiles of up to {self.tile_size} x "
            f"{self.tile_size} clouds",
            f"workers: {self.backend} backend on {self.device}, {self.slots} at once"
            + (f", {self.threads} thread(s) each" if self.threads else ""),
            f"calibration: {self.calibration}",
        ]
        if self.projected_seconds is None:
            lines.append("projected time: unmeasured (the workers' device is not available here)")
        else:
            lines.append(
                f"projected time: {format_duration(self.projected_seconds)} at {self.rate * self.slots:,.0f} pairs/s "
                "(excluding job start-up, queueing and assembly)"
            )
        return lines


_MAX_SECONDS = 3600.0
_MAX_POINTS = 1_000_000


def estimate_chamfer(
    n_a: int,
    n_b: int | None = None,
    *,
    points: int = 2500,
    tile_size: int | None = None,
    launch: Launch | None = None,
    device: str | torch.device | None = None,
    backend: str = "auto",
    block_size: int | None = None,
    seconds: float = 3.0,
) -> TileEstimate:
    """Pairs, tiles, bytes and projected time of ``chamfer_matrix`` (or ``chamfer_cross`` with ``n_b``)
    computed out of core with these settings.

    Args:
        n_a: clouds (rows); n_b: clouds of the second set for a cross matrix, None for a square one.
        points: points per cloud (calibration clouds have this many).
        tile_size, launch, backend, block_size: as in ``chamfer_matrix(..., out=...)``.
        device: the in-process device when ``launch`` is None.
        seconds: calibration time (at least one tile is timed).

    Returns:
        A :class:`TileEstimate`; ``.lines()`` for printing.
    """
    for value, name in ((n_a, "n_a"), (n_b if n_b is not None else 1, "n_b"), (points, "points")):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= _MAX_SECONDS:
        raise ValueError(f"seconds (the calibration time) must lie in (0, {_MAX_SECONDS}], got {seconds!r}")
    if points > _MAX_POINTS:  # the calibration clouds are held in memory: 384 bytes per point
        raise ValueError(f"points must be at most {_MAX_POINTS:,} per cloud for the calibration, got {points:,}")
    here = resolve_device(device) if launch is None else torch.device("cpu")
    device_type = compute_device_type(launch, here)
    backend = chamfer_backend(backend, device_type)
    tile_size = resolve_tile_size(tile_size, DEFAULT_CHAMFER_TILE)
    symmetric = n_b is None
    n_b = n_a if n_b is None else int(n_b)
    side = 1 if backend == "compiled" else torch_plan(points, points, torch.device(device_type), block_size)[0]
    tile_count, pairs = count_tiles(n_a, n_b, symmetric=symmetric, tile_size=tile_size, block_side=side)
    slots, threads = _slots_and_threads(launch, device_type)
    rate, calibration = None, "not run"
    calibration_device = _calibration_device(launch, here, device_type)
    if calibration_device is not None:
        rate, calibration = _calibrate(backend, calibration_device, points, side, block_size, seconds, threads)
    return TileEstimate(
        shape=(n_a, n_b),
        symmetric=symmetric,
        pairs=pairs,
        tiles=tile_count,
        tile_size=tile_size,
        matrix_bytes=4 * n_a * n_b,
        backend=backend,
        device=device_type,
        rate=rate,
        slots=slots,
        threads=threads,
        projected_seconds=None if rate is None else pairs / (rate * slots),
        calibration=calibration,
    )


def _slots_and_threads(launch: Launch | None, device_type: str) -> tuple[int, int | None]:
    cores = os.cpu_count() or 1
    if launch is None:
        return 1, None if device_type == "cuda" else torch.get_num_threads()
    if device_type == "cuda":
        if launch.launcher == "slurm":
            return int(launch.slurm_parameters.get("slurm_array_parallelism", len(launch.gpus))), None
        return len(launch.gpus), None
    if launch.launcher == "slurm":
        slots = int(launch.slurm_parameters.get("slurm_array_parallelism", 1))
        return slots, int(launch.slurm_parameters.get("cpus_per_task", 1))
    workers = launch.workers or cores
    return workers, launch.threads or max(1, cores // workers)


def _calibration_device(launch: Launch | None, here: torch.device, device_type: str) -> torch.device | None:
    if device_type == "cuda":
        if not torch.cuda.is_available():
            return None
        return torch.device(launch.device) if launch is not None else here
    return torch.device("cpu")


def _calibrate(
    backend: str,
    device: torch.device,
    points: int,
    side: int,
    block_size: int | None,
    seconds: float,
    threads: int | None,
) -> tuple[float, str]:
    """Pairs/s of one slot, timing whole tiles of random unit-ball clouds until ``seconds`` have passed."""
    # A 16 x 16-pair tile (4 x 4 for the slow torch-on-CPU fallback), aligned to the torch block side.
    wanted = 4 if backend == "torch" and device.type == "cpu" else 16
    h = side * -(-wanted // side)
    rng = np.random.default_rng(0)
    raw = torch.from_numpy(rng.standard_normal((2 * h, points, 3)).astype(np.float32))
    clouds = normalize_float64(raw).to(torch.float32).numpy()  # as normalize_unit_ball, without its checks
    data = clouds.reshape(-1, 3)
    offsets = np.arange(2 * h + 1, dtype=np.int64) * points
    settings = {"block_size": block_size, "symmetric": False, "shape": [h, h], "normalize": True}
    manifest = Manifest(settings, [np.arange(h)], [np.arange(h)], [])
    tile = Tile(0, 0, 0, h, 0, 0, h, False)
    if backend == "compiled":
        computer = CompiledChamferTiles(data, offsets, manifest, threads=1)
        scale, timed_threads = float(threads or 1), "1 thread"
    else:
        computer = TorchChamferTiles(data, offsets, manifest, device)
        timed_threads = f"{torch.get_num_threads()} torch threads" if device.type == "cpu" else str(device)
        scale = (threads or 1) / torch.get_num_threads() if device.type == "cpu" else 1.0
    if device.type == "cuda":
        computer(tile)  # warm-up: CUDA context, kernels, allocator
    done, started = 0, time.perf_counter()
    while True:
        computer(tile)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        done += tile.pairs
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
    measured = done / elapsed
    text = (
        f"{done} pairs of {points}-point clouds in {elapsed:.1f} s on {device} ({timed_threads}): "
        f"{measured:,.0f} pairs/s"
    )
    if scale != 1.0:
        text += f", scaled x{scale:g} to the threads of one slot"
    return measured * scale, text
