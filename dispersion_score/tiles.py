"""Out-of-core distance matrices: independent, resumable tiles assembled into one memory-mapped .npy.

This is the path :func:`~dispersion_score.chamfer_matrix`, :func:`~dispersion_score.chamfer_cross` and
:func:`~dispersion_score.feature_matrix` take when given ``out=`` (docs/library.md): for ShapeNet-13 the input
matrix is 35,021² float32 (4.9 GB) and 6.1·10⁸ Chamfer pairs, more than one process should hold or
compute in one go.

How it works:

1. The caller's process validates and normalises the input exactly as the in-memory function does and
   writes it to ONE shared file in the work directory (``<out>.tiles/input.npy``: the concatenated
   float32 points of all clouds, sizes in the manifest; or the centred (N, d) features). Workers
   memory-map it; nothing is pickled per job.
2. The matrix is split into tiles (:mod:`dispersion_score._tile_plan`; the upper triangle only for a
   square matrix), aligned to the blocks of the in-memory function, so every value is computed by the
   same kernel from the same inputs with the same arithmetic: the result equals the in-memory matrix
   bit for bit on the same device type (:mod:`dispersion_score._tile_compute`).
3. Tiles missing from the work directory are grouped into jobs and run by a
   :class:`~dispersion_score.launch.Launch` (local processes with capped threads, one job per GPU, or a
   SLURM array through submitit), or in this process when ``launch`` is None. A job runs
   ``python -m dispersion_score.tiles WORKDIR --tiles i,j,... --device DEV``; each tile is written
   atomically, then its completion marker. A killed job loses at most the tile it was computing; the
   next call computes only the missing tiles. Progress (tiles, pairs/s, ETA) goes to the terminal and
   to ``<out>.tiles/progress.log``.
4. The tiles are checked (shape, CRC-32 against the marker; a bad tile is recomputed) and written into
   ``<out>`` (a memory-mapped .npy created with the final shape, float32), mirrored, with a zero
   diagonal; the file appears under its name only when complete. The tiles and the input file are
   then deleted (``keep_tiles=True`` keeps them); the manifest stays, so that a later call with the
   same input returns the existing matrix at once.

The result is returned as a read-only ``np.memmap``: k-medoids and :func:`~dispersion_score.dispersion_score`
use it without a second N×N copy in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dispersion_score._chamfer_blocks import torch_plan
from dispersion_score._feature_blocks import default_block_size
from dispersion_score._tile_compute import make_computer, torch_groups
from dispersion_score._tile_estimate import TileEstimate, estimate_chamfer
from dispersion_score._tile_options import (
    DEFAULT_CHAMFER_TILE,
    chamfer_backend,
    compute_device_type,
    resolve_tile_size,
)
from dispersion_score._tile_plan import (
    Manifest,
    Tile,
    assemble,
    load_tile,
    missing_tiles,
    plan_tiles,
    publish,
    read_manifest,
    save_tile,
    settings_difference,
    write_manifest,
)
from dispersion_score._tile_progress import TileProgress, format_duration
from dispersion_score.artefact import FileRecord, mismatch, record_file
from dispersion_score.atomic import atomic_write_stream, atomic_write_text
from dispersion_score.launch import Job, Launch
from dispersion_score.locks import directory_lock

__all__ = ["TileEstimate", "estimate_chamfer", "run_tiles", "tiled_chamfer", "tiled_feature_matrix"]

DEFAULT_FEATURE_TILE = 8192  # items per tile side (a multiple of the CPU and CUDA feature blocks)
MAX_TILES = 1_000_000  # tiles of one matrix: each is two files in the work directory
JOBS_PER_SLOT = 2  # jobs per worker/GPU/array slot: a slow job does not leave the other slots idle
_ASSEMBLY_ROUNDS = 3
logger = logging.getLogger(__name__)


# --- public entry points (called by chamfer_matrix, chamfer_cross and feature_matrix) ---------------


def tiled_chamfer(
    prepared: list[list[torch.Tensor]],
    *,
    out: str | os.PathLike,
    launch: Launch | None = None,
    tile_size: int | None = None,
    backend: str = "auto",
    block_size: int | None = None,
    normalize: bool = True,
    progress: bool = False,
    workdir: str | os.PathLike | None = None,
    jobs: int | None = None,
    keep_tiles: bool = False,
) -> np.memmap:
    """Chamfer matrix of clouds prepared by ``chamfer._prepare_sets``, computed in tiles into ``out``.

    Args:
        prepared: one list of float32 (P_i, 3) clouds (square matrix) or two (cross matrix A x B),
            normalised (or commonly centred) exactly as the in-memory functions prepare them.
        out: the .npy file of the matrix.
        launch: where the tile jobs run; None computes them in this process, on the clouds' device.
        tile_size: clouds per tile side (default 1024), rounded up to the in-memory block side.
        backend: "auto", "compiled" (CPU workers only) or "torch", as in ``chamfer_matrix``.
        block_size: the in-memory ``block_size`` (None: chosen from the memory budget, as there).
        normalize: recorded in the manifest (the clouds are already prepared).
        progress: show a progress bar over pairs (the log file is always written).
        workdir: work directory (default ``<out>.tiles``), on a file system every worker sees.
        jobs: number of jobs the missing tiles are split into (default: 4 per worker, GPU or array slot).
        keep_tiles: keep the tiles and the input file after assembly.

    Returns:
        (N_a, N_b) read-only float32 ``np.memmap`` of ``out``.
    """
    out_path, work = _paths(out, workdir)
    tile_size = resolve_tile_size(tile_size, DEFAULT_CHAMFER_TILE)
    device_type = compute_device_type(launch, prepared[0][0].device)
    backend = chamfer_backend(backend, device_type)
    symmetric = len(prepared) == 1
    clouds = [cloud for part in prepared for cloud in part]
    sizes = np.array([cloud.shape[0] for cloud in clouds], dtype=np.int64)
    n_a = len(prepared[0])
    n_b = n_a if symmetric else len(prepared[1])
    settings = {
        "kind": "chamfer",
        "symmetric": symmetric,
        "shape": [n_a, n_b],
        "backend": backend,
        "device_type": device_type,
        "normalize": bool(normalize),
        "block_size": block_size,
        "tile_size": tile_size,
        "sizes": sizes.tolist(),
        "fingerprint": _fingerprint(_cloud_chunks(clouds), sizes),
    }
    if backend == "compiled":
        groups_a, groups_b = [np.arange(n_a)], [np.arange(n_b)]

        def side(u: int, v: int) -> int:
            return 1  # every pair is computed on its own: any tile gives the same values
    else:
        groups_a, padded_a = torch_groups(sizes[:n_a])
        groups_b, padded_b = (groups_a, padded_a) if symmetric else torch_groups(sizes[n_a:])
        device = torch.device(device_type)

        def side(u: int, v: int) -> int:
            return torch_plan(padded_a[u], padded_b[v], device, block_size)[0]

    _check_tile_count(n_a, n_b, len(groups_a), len(groups_b), tile_size)
    tiles = plan_tiles(
        [len(g) for g in groups_a],
        [len(g) for g in groups_b],
        symmetric=symmetric,
        tile_size=tile_size,
        block_side=side,
    )
    manifest = Manifest(settings, groups_a, groups_b, tiles)

    def write_input(handle: Any) -> None:
        _write_npy_chunks(handle, (int(sizes.sum()), 3), _cloud_chunks(clouds))

    return _compute(
        manifest,
        write_input,
        (int(sizes.sum()), 3),
        out_path,
        work,
        launch,
        progress,
        jobs,
        keep_tiles,
        in_process_device=prepared[0][0].device,
    )


def tiled_feature_matrix(
    source: torch.Tensor,
    mean: torch.Tensor,
    *,
    out: str | os.PathLike,
    launch: Launch | None = None,
    tile_size: int | None = None,
    block_size: int | None = None,
    progress: bool = False,
    workdir: str | os.PathLike | None = None,
    jobs: int | None = None,
    keep_tiles: bool = False,
) -> np.memmap:
    """Feature matrix of (N, d) ``source`` features with column means ``mean`` (float64, as
    ``features.feature_matrix`` computes them), computed in tiles into ``out``.

    The shared input holds the features as float64 (exact for float32 input) and, as its last row, the mean:
    workers run ``centred_rows``, ``squared_norms`` and ``distance_block``
    (:mod:`dispersion_score._feature_blocks`) on the same values as the in-memory path. Other arguments as in
    :func:`tiled_chamfer`; ``tile_size`` defaults to 8192 rows and is
    rounded up to a multiple of ``block_size`` (default: the in-memory block of the workers' device type).
    """
    out_path, work = _paths(out, workdir)
    device_type = compute_device_type(launch, source.device)
    n, dim = source.shape
    block = default_block_size(torch.device(device_type), dim) if block_size is None else int(block_size)
    tile_size = resolve_tile_size(tile_size, DEFAULT_FEATURE_TILE)
    rows_and_mean = torch.cat([source.to(torch.float64), mean[None, :]])
    settings = {
        "kind": "features",
        "symmetric": True,
        "shape": [n, n],
        "device_type": device_type,
        "dim": dim,
        "block_size": block,
        "tile_size": tile_size,
        "fingerprint": _fingerprint(_row_chunks(rows_and_mean, torch.float64), np.array([n, dim])),
    }
    _check_tile_count(n, n, 1, 1, tile_size)
    tiles = plan_tiles([n], [n], symmetric=True, tile_size=tile_size, block_side=lambda u, v: block)
    manifest = Manifest(settings, [np.arange(n)], [np.arange(n)], tiles)

    def write_input(handle: Any) -> None:
        _write_npy_chunks(handle, (n + 1, dim), _row_chunks(rows_and_mean, torch.float64), dtype=np.float64)

    return _compute(
        manifest,
        write_input,
        (n + 1, dim),
        out_path,
        work,
        launch,
        progress,
        jobs,
        keep_tiles,
        in_process_device=source.device,
    )


def check_tile_options(out: object, launch: object, tile_size: object) -> bool:
    """True when the caller asked for the tiled path; ``launch``/``tile_size`` without ``out`` is an error."""
    if out is None and (launch is not None or tile_size is not None):
        raise ValueError("launch= and tile_size= need out= (the .npy file the tiled matrix is written to)")
    return out is not None


# --- the driver -------------------------------------------------------------------------------------


def _compute(
    manifest: Manifest,
    write_input: Callable[[Any], None],
    input_shape: tuple[int, int],
    out: Path,
    work: Path,
    launch: Launch | None,
    progress: bool,
    jobs: int | None,
    keep_tiles: bool,
    *,
    in_process_device: torch.device,
) -> np.memmap:
    with directory_lock(work, what="tile work directory"):
        existing = read_manifest(work)
        if existing is not None:
            differences = settings_difference(existing.settings, manifest.settings)
            if differences:
                shown = ", ".join(_describe(key, existing.settings, manifest.settings) for key in differences)
                raise ValueError(
                    f"{work} holds tiles of another matrix (settings differ: {shown}); finish it with the same "
                    f"input and settings, or delete {work}"
                )
        if out.exists():
            if existing is None or not existing.assembled:
                raise ValueError(
                    f"{out} exists but {work} does not record it as this matrix; delete it or choose another out"
                )
            reason = mismatch(out, FileRecord.from_json(existing.matrix))
            if reason is None:
                return np.load(out, mmap_mode="r")
            # Recorded as assembled but not the file that was written: compute it again rather than trust it.
            logger.warning("%s is not the matrix that was assembled (%s): computing it again", out, reason)
            out.unlink()
        manifest.assembled = False
        input_path = work / "input.npy"
        if existing is None or not _input_is_sound(input_path, input_shape):
            atomic_write_stream(input_path, write_input)
        write_manifest(work, manifest)  # after the input: a manifest means a complete input file

        pending = missing_tiles(work, manifest.tiles)
        monitor = TileProgress(
            work, manifest.tiles, pending, work / "progress.log", show=progress, position=0 if launch is None else 1
        )
        partial = out.with_name(f".{out.name}.partial")
        to_write = list(manifest.tiles)
        try:
            for _ in range(_ASSEMBLY_ROUNDS):
                if pending:
                    _run_pending(work, manifest, pending, launch, jobs, monitor, in_process_device)
                bad = assemble(work, manifest, partial, to_write)
                if not bad:
                    break
                pending = to_write = bad
                monitor.requeue(bad)
            else:
                raise RuntimeError(
                    f"{len(bad)} tiles of {out} failed their checks {_ASSEMBLY_ROUNDS} times; see {work}/logs"
                )
        finally:
            monitor.stop()
        # Recorded before the rename: a crash in between leaves a record without a matrix, which the next call
        # assembles again, never a matrix without a record (which it would refuse).
        manifest.assembled = True
        manifest.matrix = record_file(partial).to_json()  # the same bytes as ``out`` after the rename
        write_manifest(work, manifest)
        publish(partial, out)
        if not keep_tiles:
            shutil.rmtree(work / "tiles", ignore_errors=True)
            input_path.unlink(missing_ok=True)
        return np.load(out, mmap_mode="r")


def _run_pending(
    work: Path,
    manifest: Manifest,
    pending: list[Tile],
    launch: Launch | None,
    jobs: int | None,
    monitor: TileProgress,
    in_process_device: torch.device,
) -> None:
    if launch is None:
        run_tiles(
            work, [t.index for t in pending], in_process_device, on_tile=lambda _: monitor.poll(), echo=lambda _: None
        )
        return
    launch.check_available()
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    slots = _slots(launch)
    count = max(1, min(len(pending), jobs or JOBS_PER_SLOT * slots))
    # Largest tiles first, dealt round-robin: every job gets a similar number of pairs.
    ordered = sorted(pending, key=lambda t: (-t.pairs, t.index))
    job_list = []
    for k in range(count):
        name = f"tiles-{run_id}-{k:04d}"
        done = work / "jobs" / f"{name}.done"
        indices = ",".join(str(t.index) for t in ordered[k::count])
        command = (sys.executable, "-m", "dispersion_score.tiles", str(work), "--tiles", indices, "--done", str(done))
        job_list.append(Job(name, command, done, work / "logs" / f"{name}.log"))
    monitor.start()
    report = launch.run(
        job_list,
        default_workers=os.cpu_count() or 1,
        cwd=_package_root(),
        folder=work / "submitit",
        description="tile jobs",
    )
    if not report.ok:
        left = len(missing_tiles(work, manifest.tiles))
        logs = ", ".join(str(path) for path in list(report.failed.values())[:3])
        raise RuntimeError(
            f"{len(report.failed)} of {len(job_list)} tile jobs failed ({left} tiles still missing); logs: {logs}"
            f"{' ...' if len(report.failed) > 3 else ''}. Run the same call again to compute the missing tiles."
        )


# --- the worker -------------------------------------------------------------------------------------


def run_tiles(
    workdir: str | os.PathLike,
    indices: Sequence[int],
    device: str | torch.device,
    *,
    on_tile: Callable[[Tile], None] | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Compute the given tiles of a work directory that are not done yet (the worker of a tile job).

    Args:
        workdir: a work directory with its manifest and input file.
        indices: tile indices; tiles with a sound file and marker are skipped.
        device: where to compute; its type must be the one the tiles were planned for.
        on_tile: called after each tile is saved.
        echo: receives one line per tile (stdout in a job: its log file).

    Raises:
        ValueError: no manifest, an unknown tile index, or the wrong device type.
    """
    work = Path(workdir)
    manifest = read_manifest(work)
    if manifest is None:
        raise ValueError(f"{work} has no manifest.json: not a tile work directory")
    device = torch.device(device)
    planned = manifest.settings["device_type"]
    if device.type != planned:
        raise ValueError(f"the tiles of {work} are planned for {planned} (values depend on it); got --device {device}")
    unknown = [i for i in indices if not 0 <= i < len(manifest.tiles)]
    if unknown:
        raise ValueError(f"{work} has {len(manifest.tiles)} tiles; unknown tile indices {unknown[:5]}")
    computer = None
    for index in indices:
        tile = manifest.tiles[index]
        if load_tile(work, tile, check_crc=False) is not None:
            continue
        if computer is None:  # built once, and only when something is left to compute
            data = np.load(work / "input.npy", mmap_mode="r")
            computer = make_computer(manifest, data, device)
        started, cpu_started = time.perf_counter(), time.process_time()
        values = computer(tile)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        save_tile(work, tile, values, seconds=seconds, cpu_seconds=cpu_seconds, device=str(device))
        echo(
            f"tile {index}: {tile.shape[0]}x{tile.shape[1]}, {tile.pairs} pairs in {seconds:.2f} s "
            f"({tile.pairs / max(seconds, 1e-9):,.0f} pairs/s; {cpu_seconds:.2f} s CPU)"
        )
        if on_tile is not None:
            on_tile(tile)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dispersion_score.tiles WORKDIR --tiles 0,5,9 [--done FILE] --device DEV``."""
    parser = argparse.ArgumentParser(prog="python -m dispersion_score.tiles", description=main.__doc__)
    parser.add_argument("workdir", type=Path, help="work directory of the matrix (<out>.tiles)")
    parser.add_argument("--tiles", required=True, help="comma-separated tile indices")
    parser.add_argument("--done", type=Path, default=None, help="file written when all the tiles are done")
    parser.add_argument("--device", default="cpu", help="cpu, cuda:0, ...")
    args = parser.parse_args(argv)
    indices = [int(part) for part in args.tiles.split(",") if part]
    started = time.perf_counter()
    print(f"{len(indices)} tiles on {args.device} with {torch.get_num_threads()} threads", flush=True)
    run_tiles(args.workdir, indices, args.device, echo=lambda line: print(line, flush=True))
    if args.done is not None:
        atomic_write_text(args.done, f"{len(indices)} tiles in {format_duration(time.perf_counter() - started)}\n")
    return 0


# --- helpers ----------------------------------------------------------------------------------------


def _paths(out: str | os.PathLike, workdir: str | os.PathLike | None) -> tuple[Path, Path]:
    out_path = Path(out).resolve()
    if out_path.suffix.lower() != ".npy":
        raise ValueError(f"out must be a .npy file path, got {os.fspath(out)!r}")
    work = Path(workdir).resolve() if workdir is not None else out_path.with_name(out_path.name + ".tiles")
    return out_path, work


def _check_tile_count(n_a: int, n_b: int, groups_a: int, groups_b: int, tile_size: int) -> None:
    """Refuses, before the tiles are listed, a plan of more than :data:`MAX_TILES` tiles (each a file and a
    marker; listing 6·10⁸ tiles of N = 35,021 at ``tile_size=1`` would fill the memory), bounded in closed form."""
    bound = (-(-n_a // tile_size) + groups_a) * (-(-n_b // tile_size) + groups_b)
    if bound > MAX_TILES:
        raise ValueError(
            f"tile_size {tile_size} (--tiles) splits this {n_a} x {n_b} matrix into up to {bound:,} tiles, more than "
            f"{MAX_TILES:,}; use a larger tile size (default {DEFAULT_CHAMFER_TILE})"
        )


def _slots(launch: Launch) -> int:
    """Jobs that run at once under ``launch`` (for the default number of jobs)."""
    if launch.gpus and launch.launcher != "slurm":
        return len(launch.gpus)
    if launch.launcher == "slurm":
        return int(launch.slurm_parameters.get("slurm_array_parallelism", 32))
    return launch.workers or os.cpu_count() or 1


def _package_root() -> Path:
    """The folder that holds this ``dispersion_score`` package: the jobs' working directory, so that
    ``python -m dispersion_score.tiles`` runs this very code (not another installed copy)."""
    return Path(__file__).resolve().parents[1]


def _cloud_chunks(clouds: list[torch.Tensor], per_chunk: int = 1024) -> Iterator[np.ndarray]:
    for start in range(0, len(clouds), per_chunk):
        yield torch.cat(clouds[start : start + per_chunk]).to("cpu", torch.float32).numpy()


def _row_chunks(rows: torch.Tensor, dtype: torch.dtype = torch.float32, per_chunk: int = 4096) -> Iterator[np.ndarray]:
    for start in range(0, rows.shape[0], per_chunk):
        yield rows[start : start + per_chunk].to("cpu", dtype).numpy()


def _fingerprint(chunks: Iterator[np.ndarray], shape_info: np.ndarray) -> str:
    """BLAKE2b of the prepared input's bytes and sizes: a work directory resumes only for the same input."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(shape_info, dtype=np.int64).tobytes())
    for chunk in chunks:
        digest.update(np.ascontiguousarray(chunk).data)
    return digest.hexdigest()


def _write_npy_chunks(
    handle: Any, shape: tuple[int, int], chunks: Iterator[np.ndarray], *, dtype: type = np.float32
) -> None:
    np.lib.format.write_array_header_2_0(
        handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )
    for chunk in chunks:
        handle.write(np.ascontiguousarray(chunk, dtype=dtype).data)


def _input_is_sound(path: Path, shape: tuple[int, int]) -> bool:
    try:
        data = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return data.shape == shape and data.dtype in (np.float32, np.float64)


def _describe(key: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    before, after = old.get(key), new.get(key)
    if len(repr(before)) + len(repr(after)) > 80:
        return key
    return f"{key} ({before!r} there, {after!r} now)"


if __name__ == "__main__":
    sys.exit(main())
