"""The compiled k-medoids kernel: every instruction-set variant (vector widths chosen per target) makes
exactly the seeding, alternate step, swaps and assignment of the torch path (builds without warnings:
tests/test_kernel_builds.py)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks._inputs import clustered_distance_matrix
from dispersion_score import _kmedoids_kernel, _native
from dispersion_score import clustering as km

COMPILER = _native.find_compiler()
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler")

VARIANTS = [v for v, flag in _kmedoids_kernel.VARIANT_CPU_FLAG.items() if _native.cpu_has(flag)]


@pytest.fixture(scope="module")
def kernels() -> dict[str, _kmedoids_kernel.KMedoidsKernel]:
    return {variant: _kmedoids_kernel.load_variant(variant) for variant in VARIANTS}


def _ties_matrix(n: int, seed: int) -> np.ndarray:
    """Manhattan distances of points on a small integer grid: many exactly equal distances."""
    x = np.random.default_rng(seed).integers(0, 6, size=(n, 2)).astype(np.float64)
    return np.abs(x[:, None, :] - x[None, :, :]).sum(-1).astype(np.float32)


# N not a multiple of any lane count (4, 8, 16) or block; k on both sides of the loop choice.
CASES = [
    ("clustered", 37, 5),
    ("clustered", 203, 17),
    ("clustered", 517, 50),
    ("clustered", 517, 90),
    ("ties", 149, 9),
    ("ties", 150, 30),  # 36 distinct points: k-medoids++ never runs out of weight
]


@pytest.mark.parametrize("kind,n,k", CASES)
def test_every_variant_makes_the_torch_paths_steps(kernels, kind, n, k):
    D = clustered_distance_matrix(n, clusters=max(2, k // 2), seed=n) if kind == "clustered" else _ties_matrix(n, n)
    Dt = torch.from_numpy(D)
    for start in (0, 1):
        trials = km.seeding_trials(k)
        seeding = km._kpp_seed_torch(Dt, k, km.start_rng(3, start), trials)
        alternated, iters = km._alternate_torch(Dt, seeding, 300)
        order = km.swap_order(n, 3, start)
        medoids, passes, swaps = km._swap_torch(Dt, alternated, 300, order=order)
        labels, dist, _, _ = km._nearest_two(Dt, medoids, second=False)
        rng = km.start_rng(3, start)
        first = int(rng.integers(n))
        draws = rng.random((k - 1) * trials).reshape(k - 1, trials)
        for variant, kernel in kernels.items():
            assert kernel.kpp_seed(D, k, first, draws).tolist() == seeding.tolist(), variant
            assert kernel.alternate(D, seeding.numpy(), 300)[0].tolist() == alternated.tolist(), variant
            for batched in (False, True):
                got, examined, n_swaps = kernel.swap(
                    D, alternated.numpy(), max_examined=300 * n, rtol=km._SWAP_RTOL, order=order, batched=batched
                )
                assert got.tolist() == medoids.tolist(), (variant, batched)
                assert (math.ceil(examined / n), n_swaps) == (passes, swaps), (variant, batched)
            got_labels, got_dist = kernel.assign(D, medoids.numpy())
            assert np.array_equal(got_labels, labels.numpy()) and np.array_equal(got_dist, dist.numpy()), variant


def test_the_loaded_kernel_is_the_native_variant(kernels):
    assert _kmedoids_kernel.load_kmedoids_kernel().path == kernels["native"].path


CROSS = {"compiler": shutil.which("aarch64-linux-gnu-g++"), "emulator": shutil.which("qemu-aarch64-static")}


@pytest.mark.skipif(None in CROSS.values(), reason="needs aarch64-linux-gnu-g++ and qemu-aarch64-static")
def test_aarch64_build_makes_the_same_swaps(kernels, tmp_path):
    """The swap step built for AArch64 (128-bit vectors) and run under qemu-user makes, in both loops, the
    swaps of this machine's native build (an integer-grid matrix: ties everywhere)."""
    n, k = 203, 30
    D = _ties_matrix(n, 7) + clustered_distance_matrix(n, clusters=12, seed=7)
    start = km._kpp_seed_torch(torch.from_numpy(D), k, km.start_rng(7, 1), km.seeding_trials(k)).numpy()
    order = km.swap_order(n, 7, 1)
    D.tofile(tmp_path / "D.f32")
    start.astype(np.int64).tofile(tmp_path / "medoids.i64")
    order.astype(np.int64).tofile(tmp_path / "order.i64")
    program = tmp_path / "driver"
    driver = Path(__file__).resolve().parent / "csrc" / "kmedoids_driver.cpp"
    build = [CROSS["compiler"], *_native.COMMON_FLAGS[:3], "-static", "-Wall", "-Wextra"]
    build += ["-I", str(_kmedoids_kernel.SOURCE.parent), str(driver), "-o", str(program)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    run = subprocess.run([CROSS["emulator"], str(program), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.returncode, run.stderr)
    swapped = np.fromfile(tmp_path / "swapped.i64", dtype=np.int64).reshape(2, k)
    stats = np.fromfile(tmp_path / "stats.i64", dtype=np.int64).reshape(2, 2)
    for batched in (False, True):
        medoids, examined, swaps = kernels["native"].swap(
            D, start, max_examined=300 * n, rtol=1e-10, order=order, batched=batched
        )
        assert swapped[int(batched)].tolist() == medoids.tolist() and stats[int(batched)].tolist() == [examined, swaps]


def test_only_builds_with_wide_vectors_default_to_the_batched_loop(kernels):
    """The 16-candidate loop is chosen by default only where it runs in 256-bit or wider vectors: on the
    compiler's baseline target (SSE2 here) it is slower than one candidate at a time at every measured size."""
    assert kernels["native"].wide_vectors == _native.cpu_has("avx")
    if "baseline" in kernels:
        assert not kernels["baseline"].wide_vectors
    if "avx2" in kernels:
        assert kernels["avx2"].wide_vectors
