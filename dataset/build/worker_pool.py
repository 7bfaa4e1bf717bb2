"""Spawned worker pools whose set-up can fail without hanging the build.

``multiprocessing.Pool`` replaces a worker whose initializer raises, which then raises again: the pool
restarts workers forever and the build never ends (issue 22: ``--spp 3`` gave 792 tracebacks in 16 minutes).
:func:`imap_unordered` runs the initializer under a guard that keeps its error; every task of that worker then
raises it, so the first result the parent reads stops the build with the worker's own message. Workers also
end with the process that started them (:func:`dispersion_score.launch.die_with_parent`): a killed build leaves
no worker writing into its folder while a rerun holds it.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dispersion_score.launch import die_with_parent

_START_ERROR: list[str] = []


class WorkerStartError(RuntimeError):
    """A pool worker could not be set up (its initializer raised); the message is the worker's error."""


def _guarded_init(parent: int, initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
    die_with_parent(parent)  # a killed build must not leave workers writing into its root
    try:
        initializer(*initargs)
    except Exception as error:  # noqa: BLE001 - kept and raised by the tasks, in the parent
        _START_ERROR.append(f"{type(error).__name__}: {error}")


def _guarded_call(function: Callable[[Any], Any], item: Any) -> Any:
    if _START_ERROR:
        raise WorkerStartError(f"a worker process could not start: {_START_ERROR[0]}")
    return function(item)


def imap_unordered(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    initializer: Callable[..., Any],
    initargs: tuple[Any, ...] = (),
    chunksize: int = 1,
) -> Iterator[Any]:
    """``function(item)`` for every item in ``workers`` spawned processes set up by ``initializer(*initargs)``,
    yielded as they finish. All of ``function``, ``initializer`` and the arguments must be picklable.

    Raises:
        WorkerStartError: a worker's initializer raised (its message), at the first result.
        Exception: whatever ``function`` raised in a worker.
    """
    context = multiprocessing.get_context("spawn")  # no forked renderer / torch state
    guarded = (os.getpid(), initializer, initargs)
    with context.Pool(workers, initializer=_guarded_init, initargs=guarded) as pool:
        yield from pool.imap_unordered(functools.partial(_guarded_call, function), items, chunksize=chunksize)
