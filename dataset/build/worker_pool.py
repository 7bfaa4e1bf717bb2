"""Spawned worker pools whose set-up can fail without hanging the build.

``multiprocessing.Pool`` replaces a worker whose initializer raises, which then raises again: the pool
restarts workers forever and the build never ends (issue 22: ``--spp 3`` gave 792 tracebacks in 16 minutes).
:func:`imap_unordered` runs the initializer under a guard that keeps its error; every task of that worker then
raises it, so the first result the parent reads stops the build with the worker's own message. Workers also
end with the process that started them (:func:`dispersion_score.launch.die_with_parent`): a killed build leaves
no worker writing into its folder while a rerun holds it. :func:`make_items` is what the builders call: one
item function per process, in this process or in a pool, under a progress bar.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from tqdm import tqdm

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


# A pool worker's item function, made once per process by _start_items (the pool's initializer).
_ITEM_FUNCTION: list[Callable[[Any], Any]] = []


def _start_items(start_worker: Callable[[], Callable[[Any], Any]]) -> None:
    _ITEM_FUNCTION[:] = [start_worker()]


def _make_with(make: Callable[[Any], Any], item: Any) -> tuple[Any, Any]:
    try:
        return item, make(item)
    except Exception as error:
        # The note survives the trip to the parent (it lives in the exception's __dict__), which logs it.
        error.add_note(f"while making {item!r}")
        raise


def _make_item(item: Any) -> tuple[Any, Any]:
    return _make_with(_ITEM_FUNCTION[0], item)


@dataclasses.dataclass(frozen=True)
class Progress:
    """A progress bar (tqdm, on stderr) over the items: its ``label`` and ``unit``; ``shown`` False hides it."""

    label: str
    unit: str
    shown: bool = True


def make_items(
    start_worker: Callable[[], Callable[[Any], Any]],
    items: Sequence[Any],
    *,
    workers: int,
    progress: Progress,
    chunksize: int = 1,
) -> Iterator[tuple[Any, Any]]:
    """``(item, make(item))`` for every item, in any order, where ``make = start_worker()`` is set up once per
    process: in this process when ``min(workers, len(items))`` is 1, else in that many spawned processes
    (:func:`imap_unordered`; ``start_worker`` must then be picklable, e.g. a bound method of a frozen
    dataclass or a :func:`functools.partial` of a module-level function). ``chunksize`` items go to a worker
    at a time (speed only).

    Raises:
        WorkerStartError: ``start_worker`` raised in a spawned worker (its message).
        Exception: whatever ``start_worker`` (in this process) or ``make`` raised, with a note
            ``while making <item>`` naming the item.
    """
    count = min(workers, len(items))
    with tqdm(total=len(items), desc=progress.label, unit=progress.unit, disable=not progress.shown) as bar:
        if count <= 1:
            make = start_worker()
            results: Iterable[tuple[Any, Any]] = (_make_with(make, item) for item in items)
        else:
            results = imap_unordered(
                _make_item,
                items,
                workers=count,
                initializer=_start_items,
                initargs=(start_worker,),
                chunksize=chunksize,
            )
        for result in results:
            yield result
            bar.update()
