"""Tiled (out-of-core) Chamfer matrix against the in-memory call, weak scaling of the local launcher, and the
memory of k-medoids on a memory-mapped matrix, in one run.

Run from the repository root:

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.bench_tiles [--n 2000] [--points 2500] [--tile 128]
        [--rss-n 20000] [--k 500]

Measured (random unit-ball clouds, compiled CPU kernel, every process on ONE thread):

1. ``chamfer_matrix(clouds)`` in this process (1 thread): pairs/s of the in-memory path.
2. ``chamfer_matrix(clouds, out=..., launch=Launch("local", workers=2, threads=1))``: pairs/s end to end
   (input file, worker start-up, tiles, assembly) and inside the tiles (from the workers' logs), per core
   used, as a ratio to (1). The matrices must be identical. Each rate is given per wall-clock second and
   per CPU second (this process and its children, from ``getrusage``): on a machine shared with other jobs
   the wall-clock rate of 2 workers depends on how many cores the others leave free, while pairs per CPU
   second measure what the tiling itself costs.
3. Weak scaling: 1 worker on round(N/√2) clouds (half the pairs) against 2 workers on N clouds.
4. Peak memory of ``dispersion_score(D, k)`` at N = ``--rss-n`` with D memory-mapped (``np.load(mmap_mode="r")``)
   against D loaded into RAM, each in a fresh process: peak RSS (VmHWM) and peak anonymous memory (RssAnon,
   sampled every 20 ms; file-backed pages of the map are page cache, not a copy).
5. The projected wall time of the ShapeNet-13 input matrix (35,021 clouds, 6.1·10⁸ pairs) on 256 CPU cores
   from the measured per-core rate; no GPU here, so the 8-GPU figure is left unmeasured.

Writes ``benchmarks/results/bench_tiles.json`` (settings, provenance, numbers, ratios).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._inputs import random_clouds
from dispersion_score import chamfer_matrix, dispersion_score, feature_matrix
from dispersion_score.io import atomic_write_text, provenance
from dispersion_score.launch import Launch
from dispersion_score.tiles import estimate_chamfer

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_tiles.json"
SHAPENET_TRAIN = 35021
_TILE_LINE = re.compile(r"tile \d+: \d+x\d+, (\d+) pairs in ([0-9.]+) s .*; ([0-9.]+) s CPU")


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tiled_run(clouds: np.ndarray, workers: int, folder: Path, tile: int) -> dict:
    """One tiled run with ``workers`` one-thread local workers; end-to-end and in-tile rates."""
    out = folder / f"D_{workers}w_{len(clouds)}.npy"
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    matrix = chamfer_matrix(clouds, out=out, tile_size=tile, launch=Launch("local", workers=workers, threads=1))
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    tile_pairs, tile_seconds, tile_cpu = 0, 0.0, 0.0
    for log in (Path(f"{out}.tiles") / "logs").glob("*.log"):
        for pairs, secs, cpu in _TILE_LINE.findall(log.read_text()):
            tile_pairs += int(pairs)
            tile_seconds += float(secs)
            tile_cpu += float(cpu)
    pairs = _pairs(len(clouds))
    return {
        "n": len(clouds),
        "workers": workers,
        "pairs": pairs,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "pairs_per_s": pairs / seconds,
        "pairs_per_s_per_core": pairs / seconds / workers,
        "pairs_per_cpu_s": pairs / cpu_seconds,
        "in_tile_pairs_per_s_per_core": tile_pairs / tile_seconds,
        "in_tile_pairs_per_cpu_s": tile_pairs / tile_cpu,
        "matrix": matrix,
    }


def rss_child(path: Path, k: int, mode: str) -> None:
    """In a fresh process: DS of the matrix at ``path`` (memory-mapped or loaded), printing peak memory."""
    peak_anon = [0]
    stop = threading.Event()

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def sample() -> None:
        while not stop.wait(0.02):
            peak_anon[0] = max(peak_anon[0], status("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    D = np.load(path, mmap_mode="r") if mode == "mmap" else np.load(path)
    result = dispersion_score(D, k, seed=0)
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    peak_anon[0] = max(peak_anon[0], status("RssAnon"))
    document = {"mode": mode, "ds": result.ds, "seconds": seconds, "vm_hwm": status("VmHWM"), "peak_anon": peak_anon[0]}
    print(json.dumps(document))


def rss_measure(n: int, k: int, folder: Path) -> dict:
    """Builds an (n, n) feature-distance matrix out of core, then measures k-medoids on it (map vs RAM)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, 5)) * 3
    points = (centres[rng.integers(50, size=n)] + rng.standard_normal((n, 5))).astype(np.float32)
    path = folder / f"D_rss_{n}.npy"
    started = time.perf_counter()
    feature_matrix(points, out=path)
    build = time.perf_counter() - started
    results = {"n": n, "k": k, "matrix_bytes": 4 * n * n, "build_seconds": build}
    for mode in ("mmap", "ram"):
        command = [sys.executable, "-m", "benchmarks.bench_tiles", "--rss-child", str(path), "--k", str(k), mode]
        line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results[mode] = json.loads(line)
    path.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="clouds (default 2000)")
    parser.add_argument("--points", type=int, default=2500, help="points per cloud (default 2500)")
    parser.add_argument("--tile", type=int, default=128, help="clouds per tile side (default 128)")
    parser.add_argument("--rss-n", type=int, default=20000, help="N of the k-medoids memory test (0: skip)")
    parser.add_argument("--k", type=int, default=500, help="k of the k-medoids memory test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rss-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("mode", nargs="?", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child, args.k, args.mode)
        return

    torch.set_num_threads(1)  # this benchmark script (not the library) pins the in-memory baseline to 1 thread
    clouds = random_clouds(args.n, args.points, seed=0)
    folder = Path(tempfile.mkdtemp(prefix="bench_tiles_"))
    try:
        estimate = estimate_chamfer(args.n, points=args.points, seconds=3.0)  # 1 thread, in this process
        started, cpu_started = time.perf_counter(), time.process_time()
        in_memory = chamfer_matrix(clouds)
        memory_seconds, memory_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        memory_rate, memory_cpu_rate = _pairs(args.n) / memory_seconds, _pairs(args.n) / memory_cpu
        two = tiled_run(clouds, 2, folder, args.tile)
        half = int(round(args.n / math.sqrt(2)))
        one = tiled_run(clouds[:half], 1, folder, args.tile)
        identical = bool(np.array_equal(two.pop("matrix"), in_memory))
        one_identical = bool(np.array_equal(one.pop("matrix"), in_memory[:half, :half]))
        rss = rss_measure(args.rss_n, args.k, folder) if args.rss_n else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    shapenet_pairs = _pairs(SHAPENET_TRAIN)
    per_core = memory_cpu_rate  # one core's rate, measured free of the other jobs' share of the machine
    results = {
        "settings": {"n": args.n, "points": args.points, "tile": args.tile, "threads_per_process": 1},
        "provenance": provenance("cpu"),
        "in_memory": {
            "pairs": _pairs(args.n),
            "seconds": memory_seconds,
            "cpu_seconds": memory_cpu,
            "pairs_per_s": memory_rate,
            "pairs_per_cpu_s": memory_cpu_rate,
        },
        "estimate_seconds_in_memory": estimate.projected_seconds,
        "tiled_2_workers": two,
        "tiled_1_worker_half_pairs": one,
        "identical_to_in_memory": identical and one_identical,
        "ratio_per_core_end_to_end": two["pairs_per_s_per_core"] / memory_rate,
        "ratio_per_core_in_tiles": two["in_tile_pairs_per_s_per_core"] / memory_rate,
        "ratio_per_cpu_second_end_to_end": two["pairs_per_cpu_s"] / memory_cpu_rate,
        "ratio_per_cpu_second_in_tiles": two["in_tile_pairs_per_cpu_s"] / memory_cpu_rate,
        "weak_scaling_efficiency": two["pairs_per_s"] / (2 * one["pairs_per_s"]),
        "weak_scaling_efficiency_cpu": two["pairs_per_cpu_s"] / one["pairs_per_cpu_s"],
        "shapenet13_input": {
            "pairs": shapenet_pairs,
            "hours_on_256_cores": shapenet_pairs / (256 * per_core) / 3600,
            "hours_on_8_gpus": None,
            "gpu_rate": "unmeasured (no GPU in this run)",
        },
        "kmedoids_memory": rss,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2))

    print(f"N = {args.n} clouds x {args.points} points, {_pairs(args.n):,} pairs; every process 1 thread")
    print(f"{'run':<34}{'wall s':>8}{'pairs/s':>10}{'per core':>10}{'in tiles':>10}{'CPU s':>8}{'pairs/CPU s':>12}")
    print(
        f"{f'in memory, 1 process, N={args.n}':<34}{memory_seconds:8.1f}{memory_rate:10,.0f}{memory_rate:10,.0f}"
        f"{'':>10}{memory_cpu:8.1f}{memory_cpu_rate:12,.0f}"
    )
    for run in (one, two):
        label = f"tiled, {run['workers']} worker(s), N={run['n']}"
        print(
            f"{label:<34}{run['seconds']:8.1f}{run['pairs_per_s']:10,.0f}{run['pairs_per_s_per_core']:10,.0f}"
            f"{run['in_tile_pairs_per_s_per_core']:10,.0f}{run['cpu_seconds']:8.1f}{run['pairs_per_cpu_s']:12,.0f}"
        )
    print(f"(3 s calibration projected the in-memory run at {estimate.projected_seconds:.1f} s)")
    print(f"identical to the in-memory matrix: {results['identical_to_in_memory']}")
    print(
        f"tiled (2 workers) / in-memory, per core: {results['ratio_per_core_end_to_end']:.3f} wall end to end, "
        f"{results['ratio_per_core_in_tiles']:.3f} wall in tiles; per CPU second: "
        f"{results['ratio_per_cpu_second_end_to_end']:.3f} end to end, "
        f"{results['ratio_per_cpu_second_in_tiles']:.3f} in tiles"
    )
    print(
        f"weak scaling 1 -> 2 workers (pairs x2): efficiency {results['weak_scaling_efficiency']:.3f} wall, "
        f"{results['weak_scaling_efficiency_cpu']:.3f} per CPU second"
    )
    print(
        f"ShapeNet-13 input matrix, {shapenet_pairs:.3g} pairs: "
        f"{results['shapenet13_input']['hours_on_256_cores']:.2f} h on 256 cores at {per_core:,.0f} pairs/s/core; "
        "8 GPUs: unmeasured (no GPU here)"
    )
    if rss:
        gb = 1e9
        for mode in ("mmap", "ram"):
            r = rss[mode]
            print(
                f"k-medoids N={rss['n']} k={rss['k']} ({rss['matrix_bytes'] / gb:.2f} GB matrix), D {mode}: "
                f"peak RSS {r['vm_hwm'] / gb:.2f} GB, peak anonymous {r['peak_anon'] / gb:.2f} GB, "
                f"{r['seconds']:.1f} s, DS {r['ds']:.6g}"
            )
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
