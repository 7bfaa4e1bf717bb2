"""Optional compiled CPU kernel for exact nearest-neighbour Chamfer computations.

Why a compiled kernel: a Chamfer pair of 2500-point clouds needs 6.25 M squared distances. Built from
torch operations, every distance tile is written to memory by a matmul and read back twice by the two
min-reductions; on a CPU that costs about 2 ms per pair, three times slower than faiss's fused search.
This kernel keeps a block of 8 query points in registers, streams the other cloud through 16-wide
vectors and updates the minima of both directions from the same distances, so nothing of size P x Q is
ever stored; it runs at about 0.25 ms per pair on one core. Distances use the difference form
(dx² + dy² + dz²), which is exact to float32 rounding (no cancellation, unlike ||a||² + ||b||² - 2ab).

The C++ source below is compiled once per machine with the system compiler (``$CXX``, ``c++``, ``g++``
or ``clang++``; ``-O3 -march=native``) into a cache directory (``$DISPERSION_SCORE_CACHE`` or
``~/.cache/dispersion_score``) and loaded with ctypes; ctypes releases the GIL during calls, so Python
threads run calls on disjoint pair ranges in parallel. Without a compiler, or with
``DISPERSION_SCORE_NO_COMPILE=1``, :func:`load_kernel` returns None and callers use the torch path.

Cloud storage ("store"): one float32 buffer; cloud ``k`` starts at ``offset[k]`` and holds three rows
of ``padded[k]`` floats: x, y and z. ``padded[k]`` is a multiple of 16; positions
``size[k]..padded[k]-1`` repeat earlier points of the same cloud, which changes no minimum; they are
left out of every mean.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

LANES = 16  # floats per vector in the kernel; every cloud is padded to a multiple of this
_ABI_VERSION = 1

_SOURCE = r"""
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cmath>

namespace {

constexpr int VL = 16;  // lanes; the compiler splits the vectors on ISAs narrower than AVX-512
constexpr int QB = 8;   // query points per register block (divides VL, so padded sizes fit)
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));

inline vf loadf(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void storef(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vi loadi(const int32_t* p) { vi v; std::memcpy(&v, p, sizeof v); return v; }
inline void storei(int32_t* p, vi v) { std::memcpy(p, &v, sizeof v); }
inline float clamp0(float v) { return v > 0.0f ? v : 0.0f; }

struct Cloud {
    const float* x; const float* y; const float* z;
    int64_t padded;  // multiple of VL
    int64_t size;    // real points; the rest repeat earlier ones
};

inline Cloud cloud_at(const float* store, int64_t offset, int64_t padded, int64_t size) {
    const float* base = store + offset;
    return Cloud{base, base + padded, base + 2 * padded, padded, size};
}

inline vf sqdist(const vf& x, const vf& y, const vf& z, float qx, float qy, float qz) {
    const vf dx = x - qx, dy = y - qy, dz = z - qz;
    vf d = dx * dx;
    d += dy * dy;
    d += dz * dz;
    return d;
}

// mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2 for one pair. colmin: scratch of b.padded floats.
double chamfer_pair(const Cloud& a, const Cloud& b, float* colmin) {
    const float inf = INFINITY;
    for (int64_t j = 0; j < b.padded; ++j) colmin[j] = inf;
    double row_sum = 0.0;
    for (int64_t i0 = 0; i0 < a.padded; i0 += QB) {
        vf best[QB];
        for (int k = 0; k < QB; ++k) best[k] = vf{} + inf;
        for (int64_t j0 = 0; j0 < b.padded; j0 += VL) {
            const vf x = loadf(b.x + j0), y = loadf(b.y + j0), z = loadf(b.z + j0);
            vf cm = loadf(colmin + j0);
#pragma GCC unroll 8
            for (int k = 0; k < QB; ++k) {
                const vf d = sqdist(x, y, z, a.x[i0 + k], a.y[i0 + k], a.z[i0 + k]);
                best[k] = d < best[k] ? d : best[k];
                cm = d < cm ? d : cm;
            }
            storef(colmin + j0, cm);
        }
        for (int k = 0; k < QB && i0 + k < a.size; ++k) {
            float m = best[k][0];
            for (int l = 1; l < VL; ++l) m = best[k][l] < m ? best[k][l] : m;
            row_sum += clamp0(m);
        }
    }
    double col_sum = 0.0;
    for (int64_t j = 0; j < b.size; ++j) col_sum += clamp0(colmin[j]);
    return row_sum / (double)a.size + col_sum / (double)b.size;
}

// Index of the nearest point of b for every point of a (ties: smallest index), and the reverse.
void nearest_pair(const Cloud& a, const Cloud& b, float* colmin, int32_t* colarg,
                  int64_t* idx_ab, int64_t* idx_ba) {
    const float inf = INFINITY;
    for (int64_t j = 0; j < b.padded; ++j) { colmin[j] = inf; colarg[j] = 0; }
    vi lane;
    for (int l = 0; l < VL; ++l) lane[l] = l;
    for (int64_t i0 = 0; i0 < a.padded; i0 += QB) {
        vf best[QB];
        vi arg[QB];
        for (int k = 0; k < QB; ++k) { best[k] = vf{} + inf; arg[k] = vi{}; }
        for (int64_t j0 = 0; j0 < b.padded; j0 += VL) {
            const vf x = loadf(b.x + j0), y = loadf(b.y + j0), z = loadf(b.z + j0);
            const vi jv = lane + (int32_t)j0;
            vf cm = loadf(colmin + j0);
            vi ca = loadi(colarg + j0);
#pragma GCC unroll 8
            for (int k = 0; k < QB; ++k) {
                const vf d = sqdist(x, y, z, a.x[i0 + k], a.y[i0 + k], a.z[i0 + k]);
                const vi row_better = d < best[k];
                best[k] = row_better ? d : best[k];
                arg[k] = row_better ? jv : arg[k];
                const vi col_better = d < cm;
                cm = col_better ? d : cm;
                ca = col_better ? (vi{} + (int32_t)(i0 + k)) : ca;
            }
            storef(colmin + j0, cm);
            storei(colarg + j0, ca);
        }
        for (int k = 0; k < QB && i0 + k < a.size; ++k) {
            float m = best[k][0];
            int32_t at = arg[k][0];
            for (int l = 1; l < VL; ++l) {
                if (best[k][l] < m || (best[k][l] == m && arg[k][l] < at)) { m = best[k][l]; at = arg[k][l]; }
            }
            idx_ab[i0 + k] = at % b.size;
        }
    }
    for (int64_t j = 0; j < b.size; ++j) idx_ba[j] = colarg[j] % a.size;
}

int64_t max_padded(const int64_t* padded, const int64_t* idx, int64_t count) {
    int64_t m = 0;
    for (int64_t p = 0; p < count; ++p) m = padded[idx[p]] > m ? padded[idx[p]] : m;
    return m;
}

}  // namespace

extern "C" {

int ds_abi_version() { return 1; }

// out[p] = Chamfer(cloud ia[p], cloud ib[p]) for p < npairs. Returns 0, or 1 if scratch allocation fails.
int ds_chamfer_pairs(const float* store, const int64_t* offset, const int64_t* padded, const int64_t* size,
                     const int64_t* ia, const int64_t* ib, int64_t npairs, float* out) {
    const int64_t scratch = max_padded(padded, ib, npairs);
    float* colmin = static_cast<float*>(std::malloc(sizeof(float) * (size_t)(scratch > 0 ? scratch : 1)));
    if (!colmin) return 1;
    for (int64_t p = 0; p < npairs; ++p) {
        const Cloud a = cloud_at(store, offset[ia[p]], padded[ia[p]], size[ia[p]]);
        const Cloud b = cloud_at(store, offset[ib[p]], padded[ib[p]], size[ib[p]]);
        out[p] = (float)chamfer_pair(a, b, colmin);
    }
    std::free(colmin);
    return 0;
}

// For pairs (ia[p], ib[p]): idx_ab[p*stride_ab + i] = nearest point of b to point i of a, and the reverse.
int ds_nearest_pairs(const float* store, const int64_t* offset, const int64_t* padded, const int64_t* size,
                     const int64_t* ia, const int64_t* ib, int64_t npairs,
                     int64_t* idx_ab, int64_t stride_ab, int64_t* idx_ba, int64_t stride_ba) {
    const int64_t scratch = max_padded(padded, ib, npairs);
    float* colmin = static_cast<float*>(std::malloc(sizeof(float) * (size_t)(scratch > 0 ? scratch : 1)));
    int32_t* colarg =
        static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (size_t)(scratch > 0 ? scratch : 1)));
    if (!colmin || !colarg) { std::free(colmin); std::free(colarg); return 1; }
    for (int64_t p = 0; p < npairs; ++p) {
        const Cloud a = cloud_at(store, offset[ia[p]], padded[ia[p]], size[ia[p]]);
        const Cloud b = cloud_at(store, offset[ib[p]], padded[ib[p]], size[ib[p]]);
        nearest_pair(a, b, colmin, colarg, idx_ab + p * stride_ab, idx_ba + p * stride_ba);
    }
    std::free(colmin);
    std::free(colarg);
    return 0;
}

}  // extern "C"
"""

_FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-std=c++17", "-shared", "-fPIC"]
_FALLBACK_FLAGS = ["-O3", "-ffp-contract=fast", "-std=c++17", "-shared", "-fPIC"]

_lock = threading.Lock()
_state: dict[str, object] = {}


class ChamferKernel:
    """ctypes wrapper of the compiled functions; every method splits its pairs over ``threads``."""

    def __init__(self, library: ctypes.CDLL, path: Path) -> None:
        self.path = path
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


def _cache_dir() -> Path:
    root = os.environ.get("DISPERSION_SCORE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dispersion_score"


def _find_compiler() -> str | None:
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _machine_tag() -> str:
    """CPU identity for the cache key: -march=native code must not run on a different CPU type."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features", "model name")):
                    flags += line
    except OSError:
        flags = platform.processor()
    return platform.machine() + flags


def _compile(compiler: str, target: Path) -> None:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / "chamfer_kernel.cpp"
        source.write_text(_SOURCE, encoding="utf-8")
        built = Path(tmp) / target.name
        errors = ""
        for flags in (_FLAGS, _FALLBACK_FLAGS):
            result = subprocess.run(
                [compiler, *flags, str(source), "-o", str(built)], capture_output=True, text=True, timeout=300
            )
            if result.returncode == 0:
                os.replace(built, target)  # atomic: concurrent builders never load a half-written file
                return
            errors = result.stderr[-2000:]
        raise RuntimeError(
            f"compiling the Chamfer kernel with {compiler} ({version.splitlines()[:1]}) failed: {errors}"
        )


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
    """Pack float32 (P_i, 3) NumPy clouds into a :class:`CloudStore` (padded to multiples of LANES)."""
    sizes = np.array([len(c) for c in clouds], dtype=np.int64)
    padded = -(-sizes // LANES) * LANES
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
    with _lock:
        if "kernel" in _state:
            return _state["kernel"]  # type: ignore[return-value]
        kernel = None
        try:
            kernel = _build_and_load()
        except Exception as error:  # noqa: BLE001 - any build/load failure means "use the torch path"
            _state["reason"] = str(error)
            logger.warning("dispersion_score: compiled Chamfer kernel unavailable, using torch (%s)", error)
        _state["kernel"] = kernel
        return kernel


def unavailable_reason() -> str | None:
    """Why :func:`load_kernel` returned None (None when the kernel loaded or was not tried yet)."""
    return _state.get("reason")  # type: ignore[return-value]


def _build_and_load() -> ChamferKernel:
    if os.environ.get("DISPERSION_SCORE_NO_COMPILE", "") not in ("", "0"):
        raise RuntimeError("disabled by DISPERSION_SCORE_NO_COMPILE")
    compiler = _find_compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set $CXX or install g++/clang++)")
    key = hashlib.sha256(
        "\n".join([_SOURCE, " ".join(_FLAGS), compiler, _machine_tag(), str(_ABI_VERSION)]).encode()
    ).hexdigest()[:20]
    target = _cache_dir() / f"chamfer_kernel_{key}.so"
    if not target.exists():
        try:
            _compile(compiler, target)
        except OSError:  # unwritable cache directory: build in a per-user temporary one instead
            user = getattr(os, "getuid", lambda: 0)()
            target = Path(tempfile.gettempdir()) / f"dispersion_score-{user}" / target.name
            if not target.exists():
                _compile(compiler, target)
    library = ctypes.CDLL(str(target))
    if library.ds_abi_version() != _ABI_VERSION:
        raise RuntimeError(f"stale kernel at {target} (ABI mismatch)")
    kernel = ChamferKernel(library, target)
    _self_test(kernel)
    return kernel
