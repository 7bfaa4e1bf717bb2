"""CPU thread counts for one call, without touching torch's process-wide setting.

Functions that take ``threads=`` resolve it here: ``None`` means what the caller has now
(``torch.get_num_threads()``); an explicit count is applied to the calling thread only, for the duration of
the call, through the OpenMP runtime that torch's CPU operators use (``omp_set_num_threads`` acts on the
calling thread's OpenMP settings; threadpoolctl finds the runtime and restores the old value afterwards).
Other threads of the process, and torch's setting after the call, are unchanged. The C++ Chamfer kernel
does not use OpenMP: it is handed the count explicitly.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
from collections.abc import Iterator

import torch


def resolve_threads(threads: object) -> int:
    """``threads`` as a positive int; None → ``torch.get_num_threads()`` (the caller's current count).

    Raises:
        ValueError: not None and not a positive integer.
    """
    if threads is None:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or int(threads) < 1:
        raise ValueError(f"threads must be a positive integer or None (the current torch count), got {threads!r}")
    return int(threads)


@functools.cache
def _openmp_controller():  # noqa: ANN202 - threadpoolctl's type, imported late
    from threadpoolctl import ThreadpoolController  # late: it scans the loaded libraries once

    return ThreadpoolController().select(user_api="openmp")


@contextlib.contextmanager
def cpu_threads(threads: int, device: torch.device) -> Iterator[None]:
    """Run torch's CPU operators of the calling thread with ``threads`` threads for the duration.

    A no-op on other devices and when the count is already ``threads``.
    """
    if device.type != "cpu" or threads == torch.get_num_threads():
        yield
        return
    with _openmp_controller().limit(limits=threads):
        yield
