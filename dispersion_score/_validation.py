"""Shared argument checks for the metric library.

Every check raises ``ValueError`` whose message names the argument, the offending item (by index) and
the expected form, so that a caller can find the bad item in a large input. The helpers also convert
NumPy arrays and sequences to tensors without copying where the input allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def as_float_tensor(value: Any, *, name: str) -> torch.Tensor:
    """A floating-point tensor view of ``value`` (tensor, NumPy array or nested sequence).

    Integer and boolean inputs are converted to float32; floating inputs keep their dtype.
    Raises ValueError for complex, object or string data.
    """
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array)) if array.ndim else torch.tensor(array.item())
    if tensor.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    return tensor


FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def first_float32_overflow(values: torch.Tensor) -> int | None:
    """Index along dim 0 of the first row holding a finite value beyond float32's range (only possible in
    float64 input), or None. The library computes in float32, where such a value would become inf."""
    if values.dtype != torch.float64 or values.numel() == 0:
        return None
    rows = values.reshape(values.shape[0], -1)
    for start in range(0, rows.shape[0], 4096):  # in blocks: no full-size boolean temporary
        block = rows[start : start + 4096]
        bad = ((block.abs() > FLOAT32_MAX) & torch.isfinite(block)).any(dim=1)
        if bool(bad.any()):
            return start + int(bad.nonzero()[0, 0])
    return None


def first_nonfinite_row(values: torch.Tensor) -> int | None:
    """Index along dim 0 of the first row holding NaN or ±inf, or None when all entries are finite."""
    if values.numel() == 0:
        return None
    bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
    if not bool(bad.any()):
        return None
    return int(bad.nonzero()[0, 0])


def validate_point_cloud(points: torch.Tensor, *, name: str, index: int | None = None) -> None:
    """Check one cloud: shape (P, 3) with P >= 1 and finite coordinates.

    ``index`` (when given) is the cloud's position in a larger set and is named in the message.
    """
    label = name if index is None else f"{name}[{index}]"
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"{label} must have shape (P, 3) with 3-D points, got {tuple(points.shape)}")
    if points.shape[0] == 0:
        raise ValueError(f"{label} is an empty cloud (P = 0); expected shape (P, 3) with P >= 1")
    bad = first_nonfinite_row(points)
    if bad is not None:
        raise ValueError(f"{label} has a NaN or infinite coordinate at point {bad}; expected finite values")


def validate_point_clouds(clouds: Any, *, name: str = "clouds") -> torch.Tensor | list[torch.Tensor]:
    """Check and convert a set of point clouds.

    Args:
        clouds: an (N, P, 3) array or tensor, or a sequence of N clouds of shape (P_i, 3) (arrays or
            tensors; the P_i may differ). N >= 1.
        name: the argument's name, used in error messages.

    Returns:
        The (N, P, 3) floating tensor for a dense input, or a list of N (P_i, 3) floating tensors.

    Raises:
        ValueError: wrong shape, an empty set or empty cloud, or a NaN/inf coordinate; the message names
            the cloud's index.
    """
    if isinstance(clouds, (torch.Tensor, np.ndarray)):
        dense = as_float_tensor(clouds, name=name)
        if dense.ndim != 3 or dense.shape[-1] != 3:
            raise ValueError(
                f"{name} must be an (N, P, 3) array of 3-D points or a list of (P_i, 3) arrays, "
                f"got an array of shape {tuple(dense.shape)}"
            )
        if dense.shape[0] == 0:
            raise ValueError(f"{name} holds no clouds; expected (N, P, 3) with N >= 1")
        if dense.shape[1] == 0:
            raise ValueError(f"{name}[0] is an empty cloud (P = 0); expected (N, P, 3) with P >= 1")
        bad = first_nonfinite_row(dense)
        if bad is not None:
            point = first_nonfinite_row(dense[bad])
            raise ValueError(f"{name}[{bad}] has a NaN or infinite coordinate at point {point}; expected finite values")
        return dense
    if not isinstance(clouds, Sequence) or isinstance(clouds, (str, bytes)):
        raise ValueError(
            f"{name} must be an (N, P, 3) array/tensor or a list of (P_i, 3) arrays, got {type(clouds).__name__}"
        )
    if len(clouds) == 0:
        raise ValueError(f"{name} holds no clouds; expected a list of N >= 1 arrays of shape (P_i, 3)")
    converted = []
    for index, cloud in enumerate(clouds):
        tensor = as_float_tensor(cloud, name=f"{name}[{index}]")
        validate_point_cloud(tensor, name=name, index=index)
        converted.append(tensor)
    return converted


def validate_batched_clouds(points: torch.Tensor, *, name: str, check_finite: bool = False) -> None:
    """Check a batch of equal-size clouds: a tensor of shape (B, P, 3) with P >= 1.

    With ``check_finite`` a NaN/inf raises ValueError naming the batch item and the point.
    """
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, P, 3), got {type(points).__name__}")
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, P, 3) with 3-D points, got {tuple(points.shape)}")
    if points.shape[1] == 0:
        raise ValueError(f"{name} holds empty clouds (P = 0); expected (B, P, 3) with P >= 1")
    if not points.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {points.dtype}")
    if check_finite:
        bad = first_nonfinite_row(points)
        if bad is not None:
            point = first_nonfinite_row(points[bad])
            raise ValueError(f"{name}[{bad}] has a NaN or infinite coordinate at point {point}; expected finite values")


def validate_features(features: Any, *, name: str = "features") -> torch.Tensor:
    """Check and convert a feature matrix: shape (N, d) with N >= 1, d >= 1, finite entries.

    Returns the floating tensor (no copy when the input is already a floating tensor or array).
    """
    tensor = as_float_tensor(features, name=name)
    if tensor.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (one row per item), got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, d) with N >= 1 and d >= 1, got {tuple(tensor.shape)}")
    bad = first_nonfinite_row(tensor)
    if bad is not None:
        column = first_nonfinite_row(tensor[bad].reshape(-1, 1))
        raise ValueError(f"{name}[{bad}] (item {bad}) has a NaN or infinite value at column {column}")
    bad = first_float32_overflow(tensor)
    if bad is not None:
        column = first_float32_overflow(tensor[bad].reshape(-1, 1))
        raise ValueError(
            f"{name}[{bad}] (item {bad}) has the value {float(tensor[bad, column]):.6g} at column {column}, beyond "
            f"float32's range ({FLOAT32_MAX:.4g}); the library computes in float32: rescale the features"
        )
    return tensor


def resolve_device(device: str | torch.device | None = None, *tensors: torch.Tensor) -> torch.device:
    """The device to compute on: the one resolver of the library, the command line and the trainer.

    Args:
        device: ``None`` (the default everywhere): the device of the first CUDA tensor among ``tensors``,
            else the CPU; or ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a ``torch.device``.
        tensors: the inputs (only consulted when ``device`` is None).

    Raises:
        ValueError: an unparsable name, a device type other than CPU or CUDA, CUDA on a machine without
            it, or a CUDA index beyond the visible devices (the message says which).
    """
    if device is None:
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor) and tensor.is_cuda:
                return tensor.device
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} was requested but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return resolved
