"""Optional compiled CPU kernel for exact nearest-neighbour Chamfer computations.

Why a compiled kernel: a Chamfer pair of 2500-point clouds needs 6.25 M squared distances. Built from
torch operations, every distance tile is written to memory by a matmul and read back twice by the two
min-reductions. The kernel (C++ source: ``csrc/chamfer_kernel.cpp``, shipped with the package) keeps a
block of query points in registers, streams the other cloud through SIMD vectors and updates the minima
of both directions from the same distance, so nothing of size P x Q is ever stored. Distances use the
difference form fma(dz, dz, fma(dy, dy, dx*dx)), exact to float32 rounding (no cancellation, unlike
||a||² + ||b||² - 2ab).

Instruction sets: the source holds one body per instruction set, picked at compile time from the target
macros of ``-march=native``: AVX-512 (16 lanes, 16 query points per block), AVX2 + FMA (8 lanes, 8
points), AArch64 NEON (4 lanes, 8 points) or a portable one (4 lanes of plain C++; any other CPU). All
compute every distance with the same operations in the same order and sum minima in point order, so
they return bit-identical results (tested). The source is compiled once per machine with the system
compiler (``$CXX``, ``c++``, ``g++`` or ``clang++``; ``-O3 -march=native``, or the compiler's default
target if -march=native is refused) into a cache directory (``$DISPERSION_SCORE_CACHE`` or
``~/.cache/dispersion_score``), keyed by the source, the flags, the compiler and its version and the
CPU identity, and loaded with ctypes; ctypes releases the GIL during calls, so Python threads run calls
on disjoint pair ranges in parallel. Without a compiler, or with ``DISPERSION_SCORE_NO_COMPILE=1``,
:func:`load_kernel` returns None (logging one line) and callers use the torch path.

Cloud storage ("store"): one float32 buffer; cloud ``k`` starts at ``offset[k]`` and holds three rows
of ``padded[k]`` floats: x, y and z. ``padded[k]`` is a multiple of :data:`PAD` (16); positions
``size[k]..padded[k]-1`` repeat earlier points of the same cloud, which changes no minimum; they are
left out of every mean.
"""

from __future__ import annotations

import ctypes
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dispersion_score._native import (
    CSRC,
    ISA_VARIANT_CPU_FLAG,
    ISA_VARIANT_FLAGS,
    CompileError,
    LazyKernel,
    load_variant_library,
)

logger = logging.getLogger(__name__)

PAD = 16  # clouds are padded to a multiple of this: a multiple of every variant's lanes and query block
_ABI_VERSION = 2
SOURCE = CSRC / "chamfer_kernel.cpp"
# The instruction-set variants of _native, and "portable": the native target with the portable body.
VARIANT_FLAGS: dict[str, tuple[str, ...]] = {**ISA_VARIANT_FLAGS, "portable": ("-march=native", "-DDS_PORTABLE")}
VARIANT_CPU_FLAG: dict[str, str | None] = {**ISA_VARIANT_CPU_FLAG, "portable": None}


class ChamferKernel:
    """ctypes wrapper of the compiled functions; every method splits its pairs over ``threads``."""

    def __init__(self, library: ctypes.CDLL, path: Path) -> None:
        self.path = path
        library.ds_isa.restype = ctypes.c_char_p
        self.isa: str = library.ds_isa().decode()  # "avx512", "avx2", "neon" or "portable"
        self.lanes: int = library.ds_lanes()  # floats per SIMD vector
        self.query_block: int = library.ds_query_block()  # points of one cloud held in registers
        self._chamfer = library.ds_chamfer_pairs
        self._chamfer.restype = ctypes.c_int
        self._nearest = library.ds_nearest_pairs
        self._nearest.restype = ctypes.c_int

    def chamfer_pairs(self, store: CloudStore, ia: np.ndarray, ib: np.ndarray, *, threads: int) -> np.ndarray:
        """Chamfer distance (float32, (npairs,)) of the store's clouds ``ia[p]`` and ``ib[p]``."""
        ia = np.ascontiguousarray(ia, dtype=np.int64)
        ib = np.ascontiguousarray(ib, dtype=np.int64)
        out = np.empty(len(ia), dtype=np.float32)

        def run(lo: int, hi: int) -> int:
            return self._chamfer(*_pair_arguments(store, ia, ib, lo, hi), _ptr(out[lo:]))

        _run_split(run, len(ia), threads)
        return out

    def nearest_pairs(
        self, store: CloudStore, ia: np.ndarray, ib: np.ndarray, *, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest-neighbour indices for pairs of equal-size clouds.

        Returns (idx_ab (npairs, P_a), idx_ba (npairs, P_b)) int64: for each point of cloud ``ia[p]`` the
        index of its nearest point in cloud ``ib[p]`` (smallest index on ties), and the reverse.
        """
        ia = np.ascontiguousarray(ia, dtype=np.int64)
        ib = np.ascontiguousarray(ib, dtype=np.int64)
        pa, pb = int(store.size[ia[0]]), int(store.size[ib[0]])
        idx_ab = np.empty((len(ia), pa), dtype=np.int64)
        idx_ba = np.empty((len(ia), pb), dtype=np.int64)

        def run(lo: int, hi: int) -> int:
            return self._nearest(
                *_pair_arguments(store, ia, ib, lo, hi),
                _ptr(idx_ab[lo:]),
                ctypes.c_int64(pa),
                _ptr(idx_ba[lo:]),
                ctypes.c_int64(pb),
            )

        _run_split(run, len(ia), threads)
        return idx_ab, idx_ba


def _pair_arguments(store: CloudStore, ia: np.ndarray, ib: np.ndarray, lo: int, hi: int) -> tuple:
    """The leading C arguments shared by the kernel's entry points: the store, then pairs lo..hi-1."""
    return (
        _ptr(store.data),
        _ptr(store.offset),
        _ptr(store.padded),
        _ptr(store.size),
        _ptr(ia[lo:]),
        _ptr(ib[lo:]),
        ctypes.c_int64(hi - lo),
    )


class CloudStore:
    """Point clouds packed for the kernel (see the module docstring): float32 ``data`` and int64
    per-cloud ``offset``, ``padded`` and ``size`` arrays (NumPy, C-contiguous)."""

    def __init__(self, data: np.ndarray, offset: np.ndarray, padded: np.ndarray, size: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.offset = np.ascontiguousarray(offset, dtype=np.int64)
        self.padded = np.ascontiguousarray(padded, dtype=np.int64)
        self.size = np.ascontiguousarray(size, dtype=np.int64)


def _ptr(array: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)


def _run_split(run, count: int, threads: int) -> None:
    """Run ``run(lo, hi)`` over ``threads`` contiguous slices of range(count); raise if any fails."""
    threads = max(1, min(threads, count))
    bounds = np.linspace(0, count, threads + 1).astype(int)
    if threads == 1:
        codes = [run(0, count)] if count else []
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            codes = list(pool.map(run, bounds[:-1], bounds[1:]))
    if any(codes):
        raise MemoryError("the Chamfer kernel could not allocate its scratch buffer")


def load_variant(variant: str) -> ChamferKernel:
    """Build (or take from the cache) and load one variant of :data:`VARIANT_FLAGS`, self-tested.

    Raises:
        ValueError: unknown variant. CompileError: the compiler rejected it. RuntimeError: the CPU lacks
        the variant's instructions (running them would kill the process), disabled by
        ``DISPERSION_SCORE_NO_COMPILE``, no compiler, or the self-test failed.
    """
    library, target = load_variant_library(
        SOURCE, variant, VARIANT_FLAGS, VARIANT_CPU_FLAG, stem="chamfer_kernel", abi_version=_ABI_VERSION,
        abi_symbol="ds_abi_version",
    )  # fmt: skip
    kernel = ChamferKernel(library, target)
    _self_test(kernel)
    return kernel


def _self_test(kernel: ChamferKernel) -> None:
    """Compare the kernel with NumPy on a tiny ragged input; a miscompiled kernel must not be used."""
    rng = np.random.default_rng(0)
    clouds = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 17, 33)]
    store = pack_store(clouds)
    got = kernel.chamfer_pairs(store, np.array([0, 1, 2, 0]), np.array([1, 2, 0, 0]), threads=2)
    idx_ab, idx_ba = kernel.nearest_pairs(store, np.array([1]), np.array([1]), threads=1)
    expected = []
    for i, j in ((0, 1), (1, 2), (2, 0), (0, 0)):
        d = ((clouds[i][:, None, :].astype(np.float64) - clouds[j][None, :, :]) ** 2).sum(-1)
        expected.append(d.min(1).mean() + d.min(0).mean())
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
        raise RuntimeError(f"kernel self-test failed: {got} != {expected}")
    if not (np.array_equal(idx_ab[0], np.arange(17)) and np.array_equal(idx_ba[0], np.arange(17))):
        raise RuntimeError("kernel self-test failed: nearest neighbours of a cloud in itself")


def pack_store(clouds: list[np.ndarray]) -> CloudStore:
    """Pack float32 (P_i, 3) NumPy clouds into a :class:`CloudStore` (padded to multiples of PAD)."""
    sizes = np.array([len(c) for c in clouds], dtype=np.int64)
    padded = -(-sizes // PAD) * PAD
    offset = np.concatenate([[0], np.cumsum(3 * padded)[:-1]]).astype(np.int64)
    data = np.empty(int(3 * padded.sum()), dtype=np.float32)
    for k, cloud in enumerate(clouds):
        fill_store_entry(data, int(offset[k]), int(padded[k]), cloud)
    return CloudStore(data, offset, padded, sizes)


def fill_store_entry(data: np.ndarray, offset: int, padded: int, cloud: np.ndarray) -> None:
    """Write one (P, 3) cloud into its slot: rows x, y, z, padded by repeating the cloud's points."""
    block = data[offset : offset + 3 * padded].reshape(3, padded)
    block[:] = cloud[np.arange(padded) % len(cloud)].T


def load_kernel() -> ChamferKernel | None:
    """The compiled kernel, building it on first use; None (with the reason logged once) if unavailable."""
    return KERNEL.get()


def unavailable_reason() -> str | None:
    """Why :func:`load_kernel` returned None (None when the kernel loaded or was not tried yet)."""
    return KERNEL.reason


def _build_and_load() -> ChamferKernel:
    try:
        return load_variant("native")
    except CompileError:
        logger.info("dispersion_score: -march=native build failed, using the compiler's default target")
        return load_variant("baseline")


KERNEL: LazyKernel[ChamferKernel] = LazyKernel(_build_and_load, "Chamfer kernel")
