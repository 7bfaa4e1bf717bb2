"""Steps 2, 3, 4 and 6 of the GPU run: Chamfer matrix, VGG16 features, k-medoids, tiles with one job per GPU.

Each function takes the mode's sizes, a recorder and a scratch folder, records its figures as it goes, and
raises :class:`CheckFailed` when GPU and CPU results disagree beyond the stated tolerance.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._inputs import clustered_distance_matrix, surface_clouds
from benchmarks.gpu._step import CheckFailed, Recorder, Sizes, cpu_count
from dispersion_score import chamfer_matrix, kmedoids, normalize_unit_ball, perceptual_features
from dispersion_score.launch import Launch

# GPU against CPU Chamfer: the tolerance of tests/test_chamfer.py's CUDA test (float32, other summation order).
CHAMFER_RTOL, CHAMFER_ATOL = 1e-4, 1e-7
# The cdist baseline expands |a|^2 + |b|^2 - 2ab (cancellation): compared, reported, not a pass condition.
BASELINE_RTOL = 1e-3


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(function, device: str):  # noqa: ANN001, ANN202 - a thin timer over any call
    _synchronize(device)
    started = time.perf_counter()
    value = function()
    _synchronize(device)
    return value, time.perf_counter() - started


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def cdist_min_matrix(clouds: torch.Tensor, *, batch: int = 64) -> np.ndarray:
    """The plain brute-force baseline: ``torch.cdist`` of one cloud against a batch of others, min, mean.

    Args:
        clouds: (N, P, 3) float32 clouds, already normalised, on the device to compute on.
        batch: clouds per cdist call.

    Returns:
        (N, N) float32 symmetric Chamfer matrix (squared distances, both directions, no 1/2).
    """
    n = clouds.shape[0]
    out = torch.zeros((n, n), dtype=torch.float32, device=clouds.device)
    for i in range(n - 1):
        for start in range(i + 1, n, batch):
            others = clouds[start : start + batch]
            squared = torch.cdist(clouds[i].expand(len(others), -1, -1), others).square()
            values = squared.min(dim=2).values.mean(dim=1) + squared.min(dim=1).values.mean(dim=1)
            out[i, start : start + len(others)] = values
    return (out + out.t()).cpu().numpy()


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |b| off the diagonal (both diagonals are exactly zero)."""
    off = ~np.eye(a.shape[0], dtype=bool)
    return float((np.abs(a - b)[off] / np.maximum(np.abs(b[off]), 1e-12)).max(initial=0.0))


def chamfer_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 2: Chamfer matrix pairs/s on the device vs plain torch cdist/min and vs the CPU kernel.

    The comparisons run first, on the first clouds (the baseline at equal N on the same device, the CPU
    kernel with every core), so that they are recorded even if the full-size matrix outlasts the budget.
    """
    from dispersion_score import _chamfer_kernel

    device, nb, nc = sizes.device, sizes.chamfer_baseline_n, sizes.chamfer_cpu_n
    clouds = surface_clouds(sizes.chamfer_n, sizes.chamfer_points, seed=0)
    record.put("points", sizes.chamfer_points)
    chamfer_matrix(clouds[:8], device=device)  # warm-up: CUDA context, kernels, compiled kernel build
    ours, seconds = _timed(lambda: chamfer_matrix(clouds[:nb], device=device), device)
    record.put("baseline_n", nb)
    record.put("library_device_pairs_per_s_at_baseline_n", _pairs(nb) / seconds)
    normalised = torch.from_numpy(np.stack([normalize_unit_ball(c) for c in clouds[:nb]])).to(device)
    cdist_min_matrix(normalised[:4])
    baseline, seconds = _timed(lambda: cdist_min_matrix(normalised), device)
    record.put("baseline_cdist_min_pairs_per_s", _pairs(nb) / seconds)
    record.put(
        "library_vs_cdist_min", record.figures["library_device_pairs_per_s_at_baseline_n"] / (_pairs(nb) / seconds)
    )
    record.put("baseline_max_relative_difference", _relative_difference(baseline, ours))

    threads = cpu_count()
    record.put("cpu_backend", "compiled" if _chamfer_kernel.load_kernel() is not None else "torch")
    record.put("cpu_backend_note", _chamfer_kernel.unavailable_reason())
    cpu, seconds = _timed(lambda: chamfer_matrix(clouds[:nc], device="cpu", threads=threads), "cpu")
    record.put("cpu_n", nc)
    record.put("cpu_threads", threads)
    record.put("cpu_pairs_per_s", _pairs(nc) / seconds)
    corner = ours[:nc, :nc]
    record.put("max_abs_difference_vs_cpu", float(np.abs(corner - cpu).max()))
    record.put("tolerance", {"rtol": CHAMFER_RTOL, "atol": CHAMFER_ATOL})

    _, seconds = _timed(lambda: chamfer_matrix(clouds, device=device), device)
    record.put("n", sizes.chamfer_n)
    record.put("library_device_seconds", seconds)
    record.put("library_device_pairs_per_s", _pairs(sizes.chamfer_n) / seconds)
    record.put(
        "library_device_vs_cpu", record.figures["library_device_pairs_per_s"] / record.figures["cpu_pairs_per_s"]
    )
    if not np.allclose(corner, cpu, rtol=CHAMFER_RTOL, atol=CHAMFER_ATOL):
        raise CheckFailed(
            f"{device} and CPU Chamfer matrices differ beyond rtol={CHAMFER_RTOL}, atol={CHAMFER_ATOL}: "
            f"max |difference| {np.abs(corner - cpu).max():.3g}"
        )
    baseline_difference = record.figures["baseline_max_relative_difference"]
    if baseline_difference > BASELINE_RTOL:
        raise CheckFailed(
            f"the cdist/min baseline differs from the library by {baseline_difference:.3g} (relative), "
            f"more than {BASELINE_RTOL}"
        )


def vgg_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 3: VGG16 relu3_3 features, images/s at 224² (random weights: the speed does not depend on them)."""
    device = sizes.device
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((sizes.vgg_images, 3, 224, 224), generator=generator)
    record.put("weights", "random (torchvision's VGG initialisation; same arithmetic as ImageNet weights)")
    record.put("images", sizes.vgg_images)
    perceptual_features(images[:2], weights="random", device=device)  # warm-up
    for batch in sizes.vgg_batches:
        features, seconds = _timed(
            lambda batch=batch: perceptual_features(images, weights="random", device=device, batch_size=batch),
            device,
        )
        record.put(f"images_per_s_batch_{batch}", sizes.vgg_images / seconds)
    record.put("feature_shape", list(features.shape))
    if not np.isfinite(features).all():
        raise CheckFailed("VGG16 features have NaN or inf entries")


def kmedoids_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 4: k-medoids ``pam`` on the device against the CPU (one thread, the library's advice), same seed."""
    device = sizes.device
    D = clustered_distance_matrix(sizes.kmedoids_n, clusters=max(2, sizes.kmedoids_k // 5), seed=0)
    record.put("n", sizes.kmedoids_n)
    record.put("k", sizes.kmedoids_k)
    kmedoids(D[:50, :50], 3, device=device)  # warm-up
    on_device, seconds = _timed(lambda: kmedoids(D, sizes.kmedoids_k, seed=0, device=device), device)
    record.put("device_seconds", seconds)
    record.put("device_inertia", on_device.inertia)
    on_cpu, seconds = _timed(lambda: kmedoids(D, sizes.kmedoids_k, seed=0, device="cpu", threads=1), "cpu")
    record.put("cpu_seconds_1_thread", seconds)
    record.put("cpu_inertia", on_cpu.inertia)
    record.put("device_speedup_vs_cpu", record.figures["cpu_seconds_1_thread"] / record.figures["device_seconds"])
    record.put("same_medoids", bool(np.array_equal(np.sort(on_device.medoids), np.sort(on_cpu.medoids))))
    relative = abs(on_device.inertia - on_cpu.inertia) / max(on_cpu.inertia, 1e-12)
    record.put("inertia_relative_difference", relative)
    if relative > 1e-4:
        raise CheckFailed(f"device and CPU k-medoids inertia differ by {relative:.3g} (relative), more than 1e-4")


def tiles_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 6: the tiled matrix with one job per GPU (``Launch(gpus=(0,))``) equals the in-memory result.

    Dry mode (no GPU) uses ``Launch(workers=1)`` against the in-memory CPU matrix: the same tile code path.
    """
    device = sizes.device
    clouds = surface_clouds(sizes.tiles_n, sizes.tiles_points, seed=1)
    launch = Launch(gpus=(0,)) if device.startswith("cuda") else Launch(workers=1)
    record.put("launch", repr(launch))
    record.put("n", sizes.tiles_n)
    record.put("tile_size", sizes.tile_size)
    in_memory, seconds = _timed(lambda: chamfer_matrix(clouds, device=device), device)
    record.put("in_memory_seconds", seconds)
    out = work / "tiled.npy"
    started = time.perf_counter()
    tiled = np.asarray(chamfer_matrix(clouds, out=out, launch=launch, tile_size=sizes.tile_size))
    record.put("tiled_seconds", time.perf_counter() - started)
    record.put("max_abs_difference", float(np.abs(tiled - in_memory).max()))
    record.put("bit_identical", bool(np.array_equal(tiled, in_memory)))
    if not record.figures["bit_identical"]:
        raise CheckFailed(
            f"tiled ({launch!r}) and in-memory matrices differ: max |difference| "
            f"{record.figures['max_abs_difference']:.3g}"
        )
