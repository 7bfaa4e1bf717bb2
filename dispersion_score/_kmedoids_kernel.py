"""Optional compiled CPU kernel of k-medoids: k-medoids++ seeding, the alternate step and FasterPAM's
eager swaps (docs/library.md).

Why compiled: FasterPAM (Schubert & Rousseeuw, "Fast and eager k-medoids clustering: O(k) runtime
improvement of the PAM, CLARA, and CLARANS algorithms", Information Systems 101, 2021) evaluates one
candidate at a time and applies the first improving swap at once, so every decision depends on the
previous one: a chain of N·passes small steps that torch operations can only batch speculatively (each
applied swap invalidates the rest of the batch). Seeding (k steps) and the alternate step (a few
iterations of per-cluster work) are likewise chains of small operations whose per-call overhead in torch
exceeds their arithmetic for small N. In C++ one swap candidate is one pass over its row of D.

Every function computes what its torch counterpart in :mod:`dispersion_score.clustering` computes
(``_kpp_seed_torch``, ``_alternate_torch``, ``_swap_torch``), with the same tie rules and float64 sums
accumulated in item order, so both give the same medoids (tests/test_kmedoids.py checks it).

Swap step: caches of every item's nearest and second-nearest medoid (position and distance; ties go to the
lower position) and the removal loss of every medoid position (sum of d_sec - d_near over the items it
is nearest to). For candidate x, in the given processing order and cyclically, the cost change of swapping x in for
position j is removal[j] plus, over the items o with D[x, o] < d_sec(o), the correction
max(D[x, o], d_near(o)) - d_sec(o) at position near(o), plus the shared gain sum_o min(D[x, o] -
d_near(o), 0); the best position is taken if it lowers the cost by more than ``rtol`` times the starting
cost, the caches are refreshed at the items it can change, and the removal loss is recomputed. The search
stops after N consecutive candidates without a swap (a local optimum of the swap neighbourhood) or after
``max_examined`` candidates. The one-candidate loop compares a register of entries of the candidate's
row (16 with AVX-512, 8 with AVX, 4 otherwise: chosen at compile time) with as many second-nearest distances
and visits only the few entries below them, so a pass streams D once; the 16-candidate loop adds in vectors
of 8 doubles with AVX-512, 4 otherwise. Every width adds the same terms in the same order: the same swaps on
any instruction set (tests/test_kmedoids_kernel_variants.py builds each variant this CPU can run).
Memory: O(N) per step, plus the (N, k) float32 distances to the medoids while swapping when N·k <= 2^26
(contiguous cache refreshes; above that they read D's rows).

The same library holds the CPU check of distance matrices (``ds_check_distances``, used by
:mod:`dispersion_score._matrix`): one pass over 32×32 blocks of the upper triangle and their mirrors.

The C++ source is ``csrc/kmedoids_kernel.cpp`` (shipped with the package). It is built and cached by
:mod:`dispersion_score._native`, as the Chamfer kernel is (same compiler search, cache directory,
``DISPERSION_SCORE_NO_COMPILE``), and self-tested before first use: without a compiler
:func:`load_kmedoids_kernel` returns None and k-medoids runs the torch path, with the same result. The
kernel runs on the calling thread only (``threads=`` applies to the torch operations around it).
"""

from __future__ import annotations

import ctypes
import logging
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

_ABI_VERSION = 2

SOURCE = CSRC / "kmedoids_kernel.cpp"

# The kernel is built for -march=native, or the compiler's default target where that is refused
# (_native.ISA_VARIANT_FLAGS); the source picks its vector widths from the target. The common flags hold
# -ffp-contract=off, which the distance check needs to round as torch does (no fused multiply-add).
VARIANT_FLAGS = ISA_VARIANT_FLAGS
VARIANT_CPU_FLAG = ISA_VARIANT_CPU_FLAG

# The (N, k) copy of the distances to the medoids makes cache refreshes contiguous reads; above this many
# elements (256 MiB) they read D's rows instead.
_T_LIMIT_ELEMS = 1 << 26

# Up to this k, 16 candidates are evaluated in one branch-free pass over the items (most entries of a row
# fall below d_sec there); above it, one candidate at a time visiting only the entries below d_sec. Both
# add the same terms in the same order: the same swaps. For N up to BATCHED_SMALL_N, where D's rows stay
# in the cache that the batched pass reads across, batching still wins up to BATCHED_SMALL_N_MAX_K.
# Measured with this kernel, batched / one at a time, AVX-512 build / AVX2 build on the same Zen 4 core:
# N = 518 (a Chamfer matrix), k = 10, 50, 64, 80, 100: 0.43 / 0.46, 0.89 / 0.99, 0.95 / 1.07, 0.97 / 1.10,
# 1.05 / 1.17; clustered N = 600, k = 60: 0.76 / 0.95; N = 1000, k = 48, 80, 100: 0.64 / 0.75, 0.78 / 0.97,
# 0.85 / 1.02; N = 2000, k = 48, 60, 80: 0.74 / 0.75, 0.88 / 0.88, 1.01 / 1.12; N = 4000, k = 48, 60, 80:
# 0.87 / 0.83, 0.93 / 0.99, 1.10 / 1.27; N = 5000, k = 60: 1.27 / 1.07. The rule below picks the faster loop,
# or one within 8 %, at each of these points except N = 1000, k = 80 and 100 with AVX-512 (one at a time
# takes 1.28x and 1.17x the batched time there; with AVX2 1.03x and the faster loop).
# (python -m benchmarks.bench_kmedoids_loops measures both loops of every variant in one run; builds without
# 256-bit vectors run one candidate at a time, KMedoidsKernel.wide_vectors.)
BATCHED_MAX_K = 48
BATCHED_SMALL_N = 2000
BATCHED_SMALL_N_MAX_K = 64


def batched_swap_loop(n: int, k: int) -> bool:
    """Whether the swap step evaluates 16 candidates per pass for an (n, n) matrix and k medoids."""
    return k <= BATCHED_MAX_K or (n <= BATCHED_SMALL_N and k <= BATCHED_SMALL_N_MAX_K)


class KMedoidsKernel:
    """ctypes wrapper of the compiled k-medoids steps; D is always a C-contiguous float32 (N, N) array."""

    def __init__(self, library: ctypes.CDLL, path: Path) -> None:
        self.path = path
        self._seed = library.ds_kpp_seed
        self._alternate = library.ds_alternate
        self._swap = library.ds_fasterpam_swap
        self._assign = library.ds_assign
        self._assign.restype = None
        self._check = library.ds_check_distances
        self._check.restype = ctypes.c_int
        # Whether the 16-candidate loop is worth running (see batched_swap_loop): not on 128-bit targets.
        self.wide_vectors = bool(library.ds_kmedoids_wide_vectors())
        for function in (self._seed, self._alternate, self._swap):
            function.restype = ctypes.c_int

    def check_distances(self, D: np.ndarray, *, rtol: float, atol: float) -> float | None:
        """max(D) when every entry of the (N, N) float32 ``D`` is finite and >= 0 and every pair (i, j) is
        within the symmetry tolerance (float32 ``|a - b| <= atol + rtol * max(|a|, |b|)``); None otherwise
        (the caller then locates and reports the defect). One pass, no allocation."""
        largest = np.zeros(1, dtype=np.float32)
        ok = self._check(_ptr(D), _i64(D.shape[0]), ctypes.c_float(rtol), ctypes.c_float(atol), _ptr(largest))
        return float(largest[0]) if ok else None

    def kpp_seed(self, D: np.ndarray, k: int, first: int, draws: np.ndarray) -> np.ndarray | None:
        """k-medoids++ from item ``first`` with the (k - 1, trials) float64 uniforms ``draws`` of its steps:
        (k,) int64 medoids, or None when a step finds every weight zero (the torch path handles that)."""
        n = D.shape[0]
        draws = np.ascontiguousarray(draws, dtype=np.float64)
        medoids = np.empty(k, dtype=np.int64)
        trials = draws.shape[1] if draws.ndim == 2 else 1
        code = self._seed(_ptr(D), _i64(n), _i64(k), _i64(first), _ptr(draws), _i64(trials), _ptr(medoids))
        if code == 2:
            raise MemoryError(f"k-medoids kernel: could not allocate the seeding's buffers for N = {n}")
        return medoids if code == 1 else None

    def assign(self, D: np.ndarray, medoids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest medoid of every item: positions (N,) int64 (ties: the lower one), distances (N,) float32."""
        n = D.shape[0]
        medoids = np.ascontiguousarray(medoids, dtype=np.int64)
        labels = np.empty(n, dtype=np.int32)
        dist = np.empty(n, dtype=np.float32)
        self._assign(_ptr(D), _i64(n), _i64(len(medoids)), _ptr(medoids), _ptr(labels), _ptr(dist))
        return labels.astype(np.int64), dist

    def alternate(self, D: np.ndarray, medoids: np.ndarray, max_iter: int) -> tuple[np.ndarray, int]:
        """Voronoi iteration from (k,) int64 ``medoids``: the new medoids and the iterations run."""
        med = np.array(medoids, dtype=np.int64, copy=True)
        iters = np.zeros(1, dtype=np.int64)
        if self._alternate(_ptr(D), _i64(D.shape[0]), _i64(len(med)), _ptr(med), _i64(max_iter), _ptr(iters)):
            raise MemoryError(f"k-medoids kernel: could not allocate the alternate step's buffers for N = {len(D)}")
        return med, int(iters[0])

    def swap(
        self,
        D: np.ndarray,
        medoids: np.ndarray,
        *,
        max_examined: int,
        rtol: float,
        order: np.ndarray | None = None,
        batched: bool | None = None,
    ) -> tuple[np.ndarray, int, int]:
        """Eager swaps from (k,) int64 ``medoids``: (medoids, candidates examined, swaps applied).
        ``order``: (N,) int64 permutation, the cyclic processing order of the candidates (None: index
        order). ``batched``: which evaluation loop (None: :func:`batched_swap_loop` on builds with 256-bit
        vectors or wider, else one at a time); both give the same
        swaps, and the batched one evaluates 16 candidates at once where the order takes consecutive items.

        Raises:
            MemoryError: the kernel could not allocate its O(N·k) caches.
            RuntimeError: an applied swap did not lower the cost.
        """
        n, k = D.shape[0], medoids.shape[0]
        med = np.array(medoids, dtype=np.int64, copy=True)
        order = np.arange(n, dtype=np.int64) if order is None else np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (n,) or (n and not 0 <= order.min() <= order.max() < n):
            raise ValueError(f"k-medoids swap order: expected a permutation of 0..{n - 1}, got shape {order.shape}")
        stats = np.zeros(2, dtype=np.int64)
        use_t = ctypes.c_int(int(n * k <= _T_LIMIT_ELEMS))
        default = self.wide_vectors and batched_swap_loop(n, k)
        batched_loop = ctypes.c_int(int(default if batched is None else batched))
        code = self._swap(
            _ptr(D),
            _i64(n),
            _i64(k),
            _ptr(med),
            _ptr(order),
            _i64(max_examined),
            ctypes.c_double(rtol),
            use_t,
            batched_loop,
            _ptr(stats),
        )
        if code == 1:
            raise MemoryError(f"k-medoids kernel: could not allocate the swap step's caches for N = {n}, k = {k}")
        if code == 2:
            raise RuntimeError("k-medoids swap step: a swap predicted to improve did not lower the cost")
        return med, int(stats[0]), int(stats[1])


def _ptr(array: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)


def _i64(value: int) -> ctypes.c_int64:
    return ctypes.c_int64(value)


def _self_test(kernel: KMedoidsKernel) -> None:
    """A miscompiled kernel must not be used: on three 1-D clusters the swaps must reach their centres."""
    x = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 30.0, 31.0, 32.0], dtype=np.float32)
    D = np.abs(x[:, None] - x[None, :])
    medoids, _, swaps = kernel.swap(D, np.array([0, 3, 4], dtype=np.int64), max_examined=1000, rtol=0.0)
    alternated, _ = kernel.alternate(D, np.array([0, 3, 4], dtype=np.int64), 10)
    if sorted(medoids.tolist()) != [1, 4, 7] or swaps < 1 or alternated.tolist() != [1, 4, 7]:
        raise RuntimeError(f"k-medoids kernel self-test failed: medoids {medoids.tolist()}, {alternated.tolist()}")


def load_kmedoids_kernel() -> KMedoidsKernel | None:
    """The compiled kernel, building it on first use; None (with the reason logged once) if unavailable."""
    return KERNEL.get()


def load_variant(variant: str) -> KMedoidsKernel:
    """Build (or take from the cache) and load one instruction-set variant of :data:`VARIANT_FLAGS`,
    self-tested. Every variant makes the same swaps (tests/test_kmedoids_kernel_variants.py).

    Raises:
        ValueError: unknown variant. CompileError: the compiler rejected it. RuntimeError: the CPU lacks the
        variant's instructions, no compiler or compilation disabled, a stale build, or the self-test failed.
    """
    library, target = load_variant_library(
        SOURCE, variant, VARIANT_FLAGS, VARIANT_CPU_FLAG, stem="kmedoids_kernel", abi_version=_ABI_VERSION,
        abi_symbol="ds_kmedoids_abi_version",
    )  # fmt: skip
    kernel = KMedoidsKernel(library, target)
    _self_test(kernel)
    return kernel


def _build_and_load() -> KMedoidsKernel:
    try:
        return load_variant("native")
    except CompileError:
        return load_variant("baseline")


KERNEL: LazyKernel[KMedoidsKernel] = LazyKernel(_build_and_load, "k-medoids kernel")
