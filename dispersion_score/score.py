"""The dispersion score (docs/library.md): DS_k = (1/N) * sum_i min_{m in M} D[i, m], M the k medoids of D.

Functions:
    dispersion_score: DS for one k and one seed (optionally on a seeded random subsample).
    dispersion_scores: the same for several seeds, with mean and standard deviation.
    elbow: DS for several k (the DS-vs-k curve); validates D once and reuses the k-medoids++ seeding.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dispersion_score._matrix import BLOCK_ELEMS, as_distance_tensor, validate_k, validate_seed
from dispersion_score._threads import resolve_threads
from dispersion_score.clustering import (
    kpp_seed,
    pam_starts,
    run_kmedoids,
    seeding_trials,
    validate_method,
    validate_n_init,
)

# The subsample is drawn from default_rng([seed, _SUBSAMPLE_STREAM]), a stream apart from the seeding's.
_SUBSAMPLE_STREAM = 1


@dataclass(frozen=True)
class DispersionResult:
    """Dispersion score of one set of items.

    Attributes:
        ds: inertia / n, the mean distance of an item to its nearest medoid (the paper's DS).
        inertia: sum over the n scored items of the distance to their nearest medoid.
        k: number of medoids.
        n: number of scored items (the subsample size when subsampling, else N).
        medoids: (k,) int64 indices of the medoids in the full matrix D.
        labels: (n,) int64 cluster of each scored item, in [0, k); item i is ``indices[i]`` when
            subsampling, else i.
        method: k-medoids method, ``"pam"`` or ``"alternate"``.
        seed: seed of the k-medoids++ seeding and of the subsample.
        n_iter: k-medoids iterations (see :class:`~dispersion_score.clustering.KMedoidsResult`).
        n_total: N, the number of items in D.
        subsample: the requested subsample (fraction or count), None for all items.
        indices: (n,) int64 sorted indices of the scored items in D, None when all items are scored.
        n_init: k-medoids starts that ran (the best one is kept; 1 for ``"alternate"``).
    """

    ds: float
    inertia: float
    k: int
    n: int
    medoids: np.ndarray
    labels: np.ndarray
    method: str
    seed: int
    n_iter: int
    n_total: int
    subsample: float | int | None = None
    indices: np.ndarray | None = None
    n_init: int = 1


@dataclass(frozen=True)
class DispersionScores:
    """Dispersion score over several seeds.

    Attributes:
        results: one :class:`DispersionResult` per seed, in the order of ``seeds``.
        seeds: the seeds.
        mean, std: mean and sample standard deviation (ddof = 1; 0 for a single seed) of DS.
        inertia_mean, inertia_std: the same for the inertia.
        k, method: as in every result.
    """

    results: tuple[DispersionResult, ...]
    seeds: tuple[int, ...]
    mean: float
    std: float
    inertia_mean: float
    inertia_std: float
    k: int
    method: str


@dataclass(frozen=True)
class ElbowResult:
    """DS as a function of k (iterating yields the per-k :class:`DispersionResult`).

    Attributes:
        ks: (K,) int64 the k values, in the order asked for.
        ds: (K,) float64 DS for each k.
        inertia: (K,) float64 inertia for each k.
        method, seed: k-medoids method and seed (the same for every k).
        n: number of scored items.
        results: the per-k results; ``results[i]`` equals ``dispersion_score(D, ks[i], ...)``.
    """

    ks: np.ndarray
    ds: np.ndarray
    inertia: np.ndarray
    method: str
    seed: int
    n: int
    results: tuple[DispersionResult, ...]

    def __iter__(self) -> Iterator[DispersionResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


def dispersion_score(
    D: np.ndarray | torch.Tensor,
    k: int,
    *,
    method: str = "pam",
    seed: int = 0,
    device: str | torch.device | None = None,
    subsample: float | int | None = None,
    n_init: int | None = None,
    threads: int | None = None,
) -> DispersionResult:
    """Dispersion score DS_k of N items given their (N, N) distance matrix.

    Args:
        D: (N, N) distances (finite, non-negative, symmetric, zero diagonal; checked), array or tensor.
        k: number of medoids, 1 <= k <= n (n = N, or the subsample size).
        method: k-medoids method, ``"pam"`` (default, swap-refined) or ``"alternate"`` (the paper's).
        seed: seed of the k-medoids++ seeding and of the subsample.
        device: where to compute; None keeps a tensor's device, numpy input → CPU.
        subsample: None (all items); a Python/numpy **float** is a fraction in (0, 1]
            (n = max(1, round(fraction · N)); 1.0 = all items); an **int** is a count 1 <= n <= N of items
            drawn at random without replacement (so ``1`` is one item and ``1.0`` all of them).
        n_init, threads: as in :func:`~dispersion_score.clustering.kmedoids`.

    Returns:
        DispersionResult with ds = inertia / n.
    """
    method, seed = validate_method(method), validate_seed(seed)
    n_init, threads = validate_n_init(n_init, method), resolve_threads(threads)
    D = as_distance_tensor(D, device=device, threads=threads)
    return _score_seed(D, k, seed, method=method, subsample=subsample, n_init=n_init, threads=threads)


def _score_seed(
    D: torch.Tensor,
    k: int,
    seed: int,
    *,
    method: str,
    subsample: float | int | None,
    n_init: int | None,
    threads: int,
) -> DispersionResult:
    """DS of one seed on a validated matrix: the seed's subsample (if any), k checked against it, then k-medoids."""
    indices = _subsample_indices(D.shape[0], subsample, seed)
    scored = D if indices is None else _submatrix(D, indices)
    k = _validate_k(k, scored.shape[0], D.shape[0])
    return _score(
        scored,
        k,
        method=method,
        seed=seed,
        n_total=D.shape[0],
        subsample=subsample,
        indices=indices,
        n_init=n_init,
        threads=threads,
    )


def dispersion_scores(
    D: np.ndarray | torch.Tensor,
    k: int,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    method: str = "pam",
    device: str | torch.device | None = None,
    subsample: float | int | None = None,
    n_init: int | None = None,
    threads: int | None = None,
) -> DispersionScores:
    """:func:`dispersion_score` for each seed (D is validated once), with mean and std over the seeds.

    Each seed draws its own subsample when ``subsample`` is given.
    """
    method = validate_method(method)
    n_init, threads = validate_n_init(n_init, method), resolve_threads(threads)
    if isinstance(seeds, numbers.Integral) or len(seeds) == 0:
        raise ValueError(f"seeds must be a non-empty sequence of non-negative integers, got {seeds!r}")
    seeds = tuple(validate_seed(s) for s in seeds)
    D = as_distance_tensor(D, device=device, threads=threads)
    results = [
        _score_seed(D, k, seed, method=method, subsample=subsample, n_init=n_init, threads=threads) for seed in seeds
    ]
    ds = np.array([r.ds for r in results])
    inertia = np.array([r.inertia for r in results])
    ddof = 1 if len(results) > 1 else 0
    return DispersionScores(
        results=tuple(results),
        seeds=seeds,
        mean=float(ds.mean()),
        std=float(ds.std(ddof=ddof)),
        inertia_mean=float(inertia.mean()),
        inertia_std=float(inertia.std(ddof=ddof)),
        k=results[0].k,
        method=method,
    )


def elbow(
    D: np.ndarray | torch.Tensor,
    ks: Iterable[int],
    *,
    method: str = "pam",
    seed: int = 0,
    device: str | torch.device | None = None,
    subsample: float | int | None = None,
    n_init: int | None = None,
    threads: int | None = None,
) -> ElbowResult:
    """DS for each k in ``ks`` (the DS-vs-k "elbow" curve), one seed.

    Every point equals ``dispersion_score(D, k, method=method, seed=seed, subsample=subsample)``; the
    work they share is done once: checking and converting D, drawing the subsample (the same items for
    every k), and the k-medoids++ seeding (its first j medoids are the same for all k with the same
    number of candidates per step, 2 + int(ln k), so one seeding per such group serves them all).

    Args:
        ks: the k values (each 1 <= k <= n), in the order wanted: any iterable of integers (a ``range`` is
            checked against n from its bounds, other iterables item by item before any work is done).
        Others as in :func:`dispersion_score`.
    """
    method, seed = validate_method(method), validate_seed(seed)
    n_init, threads = validate_n_init(n_init, method), resolve_threads(threads)
    D = as_distance_tensor(D, device=device, threads=threads)
    indices = _subsample_indices(D.shape[0], subsample, seed)
    scored = D if indices is None else _submatrix(D, indices)
    ks = _checked_ks(ks, scored.shape[0], D.shape[0])
    largest_per_trials: dict[int, int] = {}
    starts_per_trials: dict[int, int] = {}
    for k in ks:
        if k == scored.shape[0]:
            continue  # k = n needs no seeding (every item is a medoid)
        trials = seeding_trials(k)
        largest_per_trials[trials] = max(largest_per_trials.get(trials, 0), k)
        starts = pam_starts(n_init, k) if method == "pam" else 1
        starts_per_trials[trials] = max(starts_per_trials.get(trials, 0), starts)
    seedings = {
        trials: [
            kpp_seed(scored, k_max, seed, n_trials=trials, start=r, threads=threads)
            for r in range(starts_per_trials[trials])
        ]
        for trials, k_max in largest_per_trials.items()
    }
    results = tuple(
        _score(
            scored,
            k,
            method=method,
            seed=seed,
            n_total=D.shape[0],
            subsample=subsample,
            indices=indices,
            n_init=n_init,
            threads=threads,
            seedings=seedings.get(seeding_trials(k)),
        )
        for k in ks
    )
    return ElbowResult(
        ks=np.array(ks, dtype=np.int64),
        ds=np.array([r.ds for r in results], dtype=np.float64),
        inertia=np.array([r.inertia for r in results], dtype=np.float64),
        method=method,
        seed=seed,
        n=scored.shape[0],
        results=results,
    )


def _validate_k(k: object, n: int, n_total: int, *, name: str = "k") -> int:
    """validate_k against the n scored items; the message names the subsample when n < N."""
    if n == n_total:
        return validate_k(k, n, name=name)
    try:
        return validate_k(k, n, name=name)
    except ValueError:
        raise ValueError(
            f"{name} must satisfy 1 <= {name} <= n = {n}, the subsample size (of N = {n_total} items in D), got {k!r}"
        ) from None


def _checked_ks(ks: Iterable[int], n: int, n_total: int) -> list[int]:
    """The k values as a list, each checked against n; a range is checked from its bounds before it is
    listed, and any other iterable item by item, so an absurd request fails before it fills memory."""
    if isinstance(ks, numbers.Integral) or isinstance(ks, str | bytes):
        raise ValueError(f"ks must be a non-empty sequence of integers, got {ks!r}")
    if isinstance(ks, np.ndarray | torch.Tensor):
        ks = np.asarray(ks.cpu() if isinstance(ks, torch.Tensor) else ks).reshape(-1).tolist()
    if isinstance(ks, range) and len(ks):
        for bound in (ks[0], ks[-1]):  # its extremes, read without iterating it
            _validate_k(bound, n, n_total, name="each k in ks")
    values = [_validate_k(k, n, n_total, name="each k in ks") for k in ks]
    if not values:
        raise ValueError("ks must be a non-empty sequence of integers, got an empty one")
    return values


def _score(
    D: torch.Tensor,
    k: int,
    *,
    method: str,
    seed: int,
    n_total: int,
    subsample: float | int | None,
    indices: np.ndarray | None,
    n_init: int | None,
    threads: int,
    seedings: list[torch.Tensor] | None = None,
) -> DispersionResult:
    result = run_kmedoids(D, k, method=method, seed=seed, n_init=n_init, threads=threads, seedings=seedings)
    n = D.shape[0]
    medoids = result.medoids if indices is None else indices[result.medoids]
    return DispersionResult(
        ds=result.inertia / n,
        inertia=result.inertia,
        k=k,
        n=n,
        medoids=medoids,
        labels=result.labels,
        method=method,
        seed=seed,
        n_iter=result.n_iter,
        n_total=n_total,
        subsample=subsample,
        indices=indices,
        n_init=result.n_init,
    )


def _subsample_indices(n: int, subsample: object, seed: int) -> np.ndarray | None:
    """Sorted (m,) int64 indices of a seeded random subsample, or None for all items."""
    if subsample is None:
        return None
    expected = "None, a fraction in (0, 1] or an integer count in [1, N]"
    if isinstance(subsample, bool):
        raise ValueError(f"subsample must be {expected}, got {subsample!r}")
    if isinstance(subsample, numbers.Integral):
        m = int(subsample)
        if not 1 <= m <= n:
            raise ValueError(f"subsample count must be in [1, N = {n}], got {m}")
    elif isinstance(subsample, numbers.Real):
        fraction = float(subsample)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"subsample fraction must be in (0, 1], got {fraction!r}")
        m = max(1, round(fraction * n))
    else:
        raise ValueError(f"subsample must be {expected}, got {subsample!r}")
    if m == n:
        return None
    rng = np.random.default_rng([seed, _SUBSAMPLE_STREAM])
    return np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)


def _submatrix(D: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
    """D[indices][:, indices] as a new (m, m) tensor, gathered in row blocks (no (m, N) temporary)."""
    idx = torch.as_tensor(indices, device=D.device)
    m = idx.numel()
    out = torch.empty((m, m), dtype=D.dtype, device=D.device)
    chunk = max(1, BLOCK_ELEMS // max(m, 1))
    for r0 in range(0, m, chunk):
        flat = idx[r0 : r0 + chunk, None] * D.shape[0] + idx[None, :]
        out[r0 : r0 + chunk] = torch.take(D, flat)
    return out
