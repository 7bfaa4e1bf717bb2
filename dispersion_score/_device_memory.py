"""Whether an N×N distance matrix fits in a GPU's free memory, decided before it is copied there.

k-medoids keeps the whole float32 matrix on its device (4·N² bytes: 4.9 GB for the 35,021 ShapeNet-13
training shapes). Copying a matrix that does not fit would end in a CUDA out-of-memory error deep in the
copy; this check gives the reason and the way out instead: on the CPU, k-medoids reads a memory-mapped
``.npy`` in place (no second copy), and ``subsample=`` shrinks the matrix.
"""

from __future__ import annotations

import torch

# What k-medoids allocates besides D on its device: blocks of at most 2^24 elements (64 MiB float32,
# 128 MiB float64) a few at a time, O(N·k) caches, and CUDA's own workspace. 1 GiB covers them with room.
HEADROOM_BYTES = 1 << 30


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_fits_on_device(nbytes: int, device: torch.device, *, what: str, headroom: int = HEADROOM_BYTES) -> None:
    """Raise a clear error when ``nbytes`` (plus ``headroom``) exceed the free memory of a CUDA device.

    Args:
        nbytes: size of the array to be copied to ``device``, in bytes.
        device: the target; only CUDA devices are checked (CPU memory is the operating system's concern).
        what: the array, as the message should name it (e.g. "D (35021 x 35021 float32)").
        headroom: bytes to keep free for the computation's temporaries.

    Raises:
        ValueError: the array does not fit, naming its size, the free and total memory and the way out.
    """
    if device.type != "cuda":
        return
    free, total = torch.cuda.mem_get_info(device)
    if nbytes + headroom <= free:
        return
    raise ValueError(
        f"{what} needs {_gib(nbytes)} on {device} (plus {_gib(headroom)} of working memory), but only "
        f"{_gib(free)} of its {_gib(total)} are free; compute on the CPU (device='cpu': a memory-mapped .npy "
        "is read in place, without a second copy) or on a subsample (subsample=...)"
    )
