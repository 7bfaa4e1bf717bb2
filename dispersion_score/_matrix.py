"""Validation and conversion of distance matrices for k-medoids and the dispersion score.

A distance matrix here is a square (N, N) array or tensor: finite, non-negative, symmetric within a
relative tolerance and with a zero diagonal (within a tolerance relative to the largest entry). The
library works on one float32 copy of it; every check below streams over square tiles (on the CPU in one
compiled pass) so that no second N×N array is ever allocated.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

from dispersion_score._device_memory import check_fits_on_device
from dispersion_score._threads import cpu_threads, resolve_threads
from dispersion_score._validation import FLOAT32_MAX, resolve_device

# Elements per temporary block (64 MiB of float32): bounds every O(N²) pass to O(block) extra memory.
BLOCK_ELEMS = 1 << 24

# Symmetry tolerance |a - b| <= ATOL + RTOL * max(|a|, |b|); the diagonal may be up to ATOL + RTOL * max(D).
RTOL = 1e-5
ATOL = 1e-8


def as_distance_tensor(
    D: np.ndarray | torch.Tensor,
    *,
    device: str | torch.device | None = None,
    name: str = "D",
    threads: int | None = None,
) -> torch.Tensor:
    """Validate a distance matrix and return it as a contiguous float32 tensor on `device`.

    Args:
        D: (N, N) distances, numpy array or tensor of any real dtype. A contiguous float32 input on the
            target device is used as is (no copy); anything else is converted once.
        device: where to compute; None keeps a tensor's device and puts numpy input on the CPU.
        name: the argument's name, used in error messages.
        threads: CPU threads for the checks (None: torch's current count; this call only). The checks
            are memory-bound: one thread is as fast as two on a busy machine.

    Returns:
        (N, N) float32 tensor on `device`, sharing memory with `D` when possible.

    Raises:
        ValueError: naming the first offending entry (i, j) when D is not a valid distance matrix.
    """
    target = resolve_device(device, D)
    if isinstance(D, np.ndarray):
        if D.dtype == object or not (np.issubdtype(D.dtype, np.number) or D.dtype == np.bool_):
            raise ValueError(f"{name} must be a real-valued (N, N) distance matrix, got dtype {D.dtype}")
        if np.iscomplexobj(D):
            raise ValueError(f"{name} must be real-valued, got complex dtype {D.dtype}")
        _check_shape(tuple(D.shape), name)
        _check_float32_range(D, name)
        # One conversion step: a float64 input becomes one float32 matrix, never a second float64 one.
        array = np.ascontiguousarray(D, dtype=np.float32)
        with warnings.catch_warnings():
            # Read-only inputs (np.load(mmap_mode="r")) are fine: nothing here writes to D.
            warnings.filterwarnings("ignore", message=".*not writable.*")
            tensor = torch.from_numpy(array)
    elif isinstance(D, torch.Tensor):
        if D.is_complex():
            raise ValueError(f"{name} must be real-valued, got complex dtype {D.dtype}")
        _check_shape(tuple(D.shape), name)
        tensor = D.detach()
        _check_float32_range(tensor, name)
    else:
        raise ValueError(f"{name} must be an (N, N) numpy array or torch tensor, got {type(D).__name__}")
    if tensor.device.type != target.type or target.index not in (None, tensor.device.index):
        # Before copying to a GPU: a matrix too large for it gets a clear error, not an out-of-memory crash.
        check_fits_on_device(4 * tensor.numel(), target, what=f"{name} ({tensor.shape[0]} x {tensor.shape[1]} float32)")
    tensor = tensor.to(device=target, dtype=torch.float32).contiguous()
    with cpu_threads(resolve_threads(threads), tensor.device):
        validate_distance_tensor(tensor, name=name)
    return tensor


def _check_float32_range(D: np.ndarray | torch.Tensor, name: str) -> None:
    """A float64 (or wider) D with finite entries beyond float32's range would turn into inf when converted:
    say so, naming the first such entry, rather than reporting an inf the caller never had."""
    wide = D.dtype == torch.float64 if isinstance(D, torch.Tensor) else D.dtype in (np.float64, np.longdouble)
    if not wide:
        return
    n = D.shape[0]
    side = max(1, BLOCK_ELEMS // max(n, 1))
    for i0 in range(0, n, side):
        block = D[i0 : i0 + side]
        if isinstance(block, torch.Tensor):
            over = (block.abs() > FLOAT32_MAX) & torch.isfinite(block)  # inf and NaN are reported later
        else:
            over = (np.abs(block) > FLOAT32_MAX) & np.isfinite(block)
        hits = np.argwhere(over.cpu().numpy() if isinstance(over, torch.Tensor) else over)
        if len(hits):
            i, j = int(hits[0][0]) + i0, int(hits[0][1])
            raise ValueError(
                f"{name}[{i}, {j}] = {float(D[i, j]):.6g} overflows float32 (largest {FLOAT32_MAX:.4g}); the "
                f"library computes in float32: rescale {name} (e.g. divide it by its largest entry)"
            )


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square (N, N) distance matrix, got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {shape}); expected (N, N) with N >= 1")


def _tiles(n: int, side: int = 512) -> list[tuple[int, int, int, int]]:
    """Upper-triangular square tiles (i0, i1, j0, j1) of an n×n matrix; 512² floats fit in L2 cache,
    which keeps reading the mirrored (transposed) tile cheap."""
    starts = range(0, n, side)
    return [(i, min(i + side, n), j, min(j + side, n)) for i in starts for j in starts if j >= i]


def validate_distance_tensor(D: torch.Tensor, *, name: str = "D") -> None:
    """Check that a float (N, N) tensor is finite, non-negative, symmetric and has a zero diagonal.

    One pass over square blocks of the upper triangle, each compared with its mirror, so the extra memory
    is at most one tile: compiled on the CPU, torch tiles elsewhere (or without a C++ compiler); both
    accept exactly the same matrices. Only a matrix that fails is scanned again, to name its first defect.
    Symmetry tolerance: |D[i, j] - D[j, i]| <= ATOL + RTOL * max(D[i, j], D[j, i]); diagonal tolerance:
    |D[i, i]| <= ATOL + RTOL * max(D).

    Raises:
        ValueError: naming the kind of defect and the first offending (i, j) in row-major order.
    """
    _check_shape(tuple(D.shape), name)
    largest = _largest_if_valid(D)
    if largest is None:
        _raise_first_defect(D, name)
    diag = torch.diagonal(D)
    if bool((diag.abs() > ATOL + RTOL * largest).any()):
        _raise_first_defect(D, name)


def _largest_if_valid(D: torch.Tensor) -> float | None:
    """max(D) when every entry is finite and >= 0 and every pair is within the symmetry tolerance, else
    None. On the CPU, one compiled pass (dispersion_score._kmedoids_kernel; the torch tiles cost more than
    the k-medoids itself at small N); elsewhere, or without a compiler, torch over tiles."""
    if D.device.type == "cpu" and D.dtype == torch.float32 and D.is_contiguous():
        # Imported here: the kernel module is only needed (and built) when a CPU matrix is checked.
        from dispersion_score._kmedoids_kernel import load_kmedoids_kernel

        kernel = load_kmedoids_kernel()
        if kernel is not None:
            return kernel.check_distances(D.numpy(), rtol=RTOL, atol=ATOL)
    return _largest_if_valid_torch(D)


def _largest_if_valid_torch(D: torch.Tensor) -> float | None:
    """:func:`_largest_if_valid` in torch operations over square tiles (at most one tile of extra memory);
    exactly symmetric tiles take the fast path (one min/max and one equality per tile)."""
    n = D.shape[0]
    largest = 0.0
    for i0, i1, j0, j1 in _tiles(n):
        tile = D[i0:i1, j0:j1]
        mirror = D[j0:j1, i0:i1].t()
        low, high = (float(v) for v in torch.aminmax(tile))
        if not (low >= 0.0 and math.isfinite(high)):  # also catches NaN, which fails every comparison
            return None
        largest = max(largest, high)
        if i0 != j0 and not torch.equal(tile, mirror):
            low, high = (float(v) for v in torch.aminmax(mirror))
            if not (low >= 0.0 and math.isfinite(high)) or not bool(_close(tile, mirror).all()):
                return None
            largest = max(largest, high)  # so that `largest` is max(D), as in _raise_first_defect
        elif i0 == j0 and not torch.equal(tile, mirror) and not bool(_close(tile, mirror).all()):
            return None
    return largest


def _close(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() <= ATOL + RTOL * torch.maximum(a.abs(), b.abs())


def _first(mask: torch.Tensor, i0: int, j0: int) -> tuple[int, int] | None:
    hits = mask.nonzero()
    if hits.shape[0] == 0:
        return None
    i, j = (int(v) for v in hits[0])
    return i + i0, j + j0


def _raise_first_defect(D: torch.Tensor, name: str) -> None:
    """Find and report the first defect, checking one kind at a time over the whole matrix."""
    n = D.shape[0]
    side = max(1, BLOCK_ELEMS // max(n, 1))
    checks = (
        ("contains a non-finite value (NaN or inf)", lambda r, i0: ~torch.isfinite(r)),
        ("contains a negative distance", lambda r, i0: r < 0),
        (
            "is not symmetric (|D[i, j] - D[j, i]| exceeds the tolerance)",
            lambda r, i0: ~_close(r, D[:, i0 : i0 + r.shape[0]].t()),
        ),
    )
    for what, test in checks:
        for i0 in range(0, n, side):
            rows = D[i0 : i0 + side]
            hit = _first(test(rows, i0), i0, 0)
            if hit is not None:
                i, j = hit
                detail = f"D[{i}, {j}] = {float(D[i, j]):.6g}"
                if "symmetric" in what:
                    detail += f", D[{j}, {i}] = {float(D[j, i]):.6g}"
                raise ValueError(
                    f"{name} {what}: first at (i, j) = ({i}, {j}), {detail}; expected a finite, "
                    "non-negative, symmetric distance matrix with a zero diagonal"
                )
    diag = torch.diagonal(D)
    limit = ATOL + RTOL * float(D.max())
    hit = _first((diag.abs() > limit)[:, None], 0, 0)
    if hit is not None:
        i = hit[0]
        raise ValueError(
            f"{name} has a non-zero diagonal: first at (i, j) = ({i}, {i}), D[{i}, {i}] = "
            f"{float(D[i, i]):.6g}; expected D[i, i] = 0 (within {limit:.3g})"
        )
    raise AssertionError("validate_distance_tensor found a defect that _raise_first_defect did not")


def validate_k(k: object, n: int, *, name: str = "k") -> int:
    """Check that k is an integer with 1 <= k <= n and return it as an int."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"{name} must be an integer with 1 <= {name} <= N = {n}, got {k!r}")
    k = int(k)
    if not 1 <= k <= n:
        raise ValueError(f"{name} must satisfy 1 <= {name} <= N = {n} (the number of items), got {k}")
    return k


def validate_seed(seed: object) -> int:
    """Seeds are non-negative integers (numpy's SeedSequence rejects negative ones)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
