"""k-medoids clustering on a precomputed distance matrix, in PyTorch (CPU and CUDA), docs/library.md.

Two methods share one seeding:

* ``"alternate"`` — the paper's procedure (scikit-learn-extra ``KMedoids(init="k-medoids++",
  method="alternate")``): k-medoids++ seeding, then Voronoi iteration (assign every item to its nearest
  medoid; move each medoid to the member with the smallest sum of distances to its cluster; repeat until
  no medoid moves, at most ``max_iter`` times).
* ``"pam"`` (default) — the same, then FasterPAM's eager swaps (Schubert & Rousseeuw, 2021): candidates
  are taken in a seeded random processing order (blocks of 16 consecutive items, shuffled: see
  :func:`swap_order`), cyclically, and the best swap of each (the medoid whose replacement by it
  lowers the total cost most, found in O(N) from the nearest / second-nearest caches and the removal
  loss) is applied at once, until N consecutive candidates give no improving swap. This runs from
  ``n_init`` starts (see :func:`pam_starts`) and keeps the lowest cost: start 0 swaps from the alternate
  result of the seed's k-medoids++ seeding (so "pam" never ends above "alternate" with the same seed),
  starts 1, 2, ... swap straight from independent k-medoids++ seedings (no alternate step: the swaps
  do its work, and the starts end in more varied optima, whose best is lower). Swap search stops in a
  local optimum of the swap neighbourhood, and on clustered data these differ by a few percent from start
  to start; the best of a few starts is what makes the inertia match or beat FasterPAM's
  (``benchmarks/bench_kmedoids.py --suite quality``).

On the CPU, seeding, the alternate step and the swaps run in a compiled kernel
(:mod:`dispersion_score._kmedoids_kernel`, built on first use); elsewhere, or without a C++ compiler, the
torch functions here do the same arithmetic in the same order, with the same result.

Memory: the (N, N) float32 matrix is the only O(N²) allocation; every other temporary is O(N·k) or a
block of at most ``BLOCK_ELEMS`` elements. Sums that decide or report costs are accumulated in float64.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dispersion_score._kmedoids_kernel import KMedoidsKernel, load_kmedoids_kernel
from dispersion_score._matrix import BLOCK_ELEMS, as_distance_tensor, validate_k, validate_seed
from dispersion_score._threads import cpu_threads, resolve_threads

METHODS = ("pam", "alternate")

# Raised whenever kmedoids can return other medoids for the same arguments, so that a DS stored by an earlier
# revision is recognised (the experiments measure it again): 1 = "pam" swapped in index order (until
# 2026-12-07); 2 = in the seeded block-shuffled order of swap_order.
KMEDOIDS_REVISION = 2

# Starts of "pam" unless n_init says otherwise (see pam_starts): one start is FasterPAM from a k-medoids++
# start and lands on FasterPAM's mean inertia (within +-0.7 % per family); the best of two is at or below it
# on every matrix family of benchmarks/bench_kmedoids.py --suite quality (docs/library.md, Quality).
PAM_STARTS = 2

# Start r >= 1 draws its seeding from default_rng([seed, _RESTART_STREAM, r]); start 0 from default_rng(seed)
# (the alternate method's seeding), and subsamples use stream 1 (dispersion_score.score).
_RESTART_STREAM = 2

# The swaps of a start take the candidates in blocks of SWAP_ORDER_BLOCK consecutive items, the blocks in
# a random order drawn from default_rng([seed, _ORDER_STREAM, start]) (see swap_order). FasterPAM's
# authors randomise the processing order (their kmedoids package shuffles it whenever a random_state is
# given); in index order every start meets the items in the same sequence, and on some matrices all of
# them end in the same local optimum (docs/library.md, Quality). Blocks of 16 keep the compiled kernel's
# 16-candidate passes.
SWAP_ORDER_BLOCK = 16
_ORDER_STREAM = 3

# Swap candidates per batch: a batch reads batch×N entries of D; about 2^19 keeps the per-batch Python
# and dispatch overhead small next to the arithmetic while swaps stay frequent (measured at N = 5000).
_SWAP_BATCH_ELEMS = 1 << 19

# A swap is applied only when it lowers the cost by more than this fraction of the starting cost, so that
# float64 rounding in the loss changes can never make two swaps undo each other forever.
_SWAP_RTOL = 1e-10


@dataclass(frozen=True)
class KMedoidsResult:
    """Result of :func:`kmedoids`.

    Attributes:
        medoids: (k,) int64 indices of the medoids in D, in the order of the cluster labels.
        labels: (N,) int64 cluster of each item, in [0, k); ``labels[medoids[j]] == j``.
        inertia: sum over items of the distance to their nearest medoid (accumulated in float64).
        n_iter: Voronoi iterations of the alternate step, plus (for ``"pam"``) passes of the swap step
            over all candidates (0 when k == N: every item is a medoid); of the start that was kept.
        method: ``"pam"`` or ``"alternate"``.
        seed: the seed of the k-medoids++ seeding.
        n_swaps: swaps applied by the swap step of the kept start (0 for ``"alternate"``).
        start: which of the starts was kept (0 for ``"alternate"``).
        n_init: how many starts ran (1 for ``"alternate"``).
    """

    medoids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    method: str
    seed: int
    n_swaps: int = 0
    start: int = 0
    n_init: int = 1


def kmedoids(
    D: np.ndarray | torch.Tensor,
    k: int,
    *,
    method: str = "pam",
    seed: int = 0,
    max_iter: int = 300,
    n_init: int | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> KMedoidsResult:
    """k-medoids clustering of N items given their distance matrix.

    Args:
        D: (N, N) distances: finite, non-negative, symmetric, zero diagonal (checked). Numpy array or
            tensor; a contiguous float32 input on the compute device is used without a copy.
        k: number of medoids, 1 <= k <= N.
        method: ``"pam"`` (k-medoids++ seeding, alternate, then FasterPAM's eager swaps, Schubert &
            Rousseeuw 2021, taking the candidates in a seeded random order of 16-item blocks, until none
            improves; the best of ``n_init`` starts) or ``"alternate"`` (k-medoids++ seeding and Voronoi
            iteration: the paper's procedure, one start).
        seed: seed of every random draw (numpy ``default_rng``; start 0 seeds from ``default_rng(seed)``,
            as ``"alternate"`` does; start r's swap order is :func:`swap_order`); same seed, same result,
            on any device.
        max_iter: at most this many Voronoi iterations, and at most this many swap passes, per start.
        n_init: starts of ``"pam"`` (None: 2, see :func:`pam_starts`; 1 is
            the fastest, a single start); must be None or 1 for ``"alternate"``.
        device: where to compute (``"cpu"``, ``"cuda"``, ...); None keeps a tensor's device, numpy → CPU.
        threads: CPU threads of this call (None: torch's current count, ``torch.get_num_threads()``);
            applied to this call only, torch's setting is left as it is. On the CPU the compiled kernel
            runs on the calling thread; threads serve the checks of D (and the torch path without a
            compiler, a long chain of small operations for which ``threads=1`` is usually fastest).

    Returns:
        KMedoidsResult with medoids (k,), labels (N,), inertia = sum_i min_j D[i, medoids[j]].

    Raises:
        ValueError: unknown method, bad k / seed / max_iter / n_init / threads, or an invalid distance
            matrix.
    """
    method = validate_method(method)
    seed = validate_seed(seed)
    max_iter = _validate_max_iter(max_iter)
    n_init = validate_n_init(n_init, method)
    threads = resolve_threads(threads)
    D = as_distance_tensor(D, device=device, threads=threads)
    k = validate_k(k, D.shape[0])
    return run_kmedoids(D, k, method=method, seed=seed, max_iter=max_iter, n_init=n_init, threads=threads)


def validate_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    return str(method)


def pam_starts(n_init: int | None, k: int) -> int:
    """Starts "pam" runs for k medoids: ``n_init``, or by default ``PAM_STARTS`` (2) for any k."""
    if n_init is not None:
        return n_init
    return PAM_STARTS


def validate_n_init(n_init: object, method: str) -> int | None:
    """``n_init`` checked: None (the default of :func:`pam_starts`) or a positive int for "pam"; 1 for
    "alternate" (which allows only None or 1)."""
    if n_init is None:
        return None if method == "pam" else 1
    if isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or int(n_init) < 1:
        raise ValueError(f"n_init must be a positive integer or None, got {n_init!r}")
    if method == "alternate" and int(n_init) != 1:
        raise ValueError(f"n_init must be 1 (or None) for method 'alternate' (the paper's single start), got {n_init}")
    return int(n_init)


def _validate_max_iter(max_iter: object) -> int:
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or int(max_iter) < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    return int(max_iter)


def run_kmedoids(
    D: torch.Tensor,
    k: int,
    *,
    method: str,
    seed: int,
    max_iter: int = 300,
    n_init: int | None = 1,
    threads: int | None = None,
    seedings: Sequence[torch.Tensor] | None = None,
) -> KMedoidsResult:
    """:func:`kmedoids` on an already validated (N, N) float32 tensor (no checks, no copy of D).

    ``n_init`` None: the default number of starts (:func:`pam_starts`; 1 for "alternate").
    ``seedings`` may pass, for each start r, the first k medoids of
    ``kpp_seed(D, k_big, seed, start=r)`` for a k_big with n_trials(k_big) == n_trials(k): the
    k-medoids++ draws are then the same, so the result is too.
    """
    starts = pam_starts(n_init, k) if method == "pam" else 1
    with cpu_threads(resolve_threads(threads), D.device):
        return _run(D, k, method=method, seed=seed, max_iter=max_iter, n_init=starts, seedings=seedings)


def _run(
    D: torch.Tensor,
    k: int,
    *,
    method: str,
    seed: int,
    max_iter: int,
    n_init: int,
    seedings: Sequence[torch.Tensor] | None,
) -> KMedoidsResult:
    if k == D.shape[0]:
        # Every item is a medoid; seeding N medoids one by one would cost O(N²·ln N) for nothing.
        medoids = torch.arange(k, device=D.device)
        return _result(D, medoids, method=method, seed=seed, n_iter=0, n_swaps=0, start=0, n_init=1)
    best = None
    # k == 1: the alternate step finds the global 1-medoid from any start.
    n_init = n_init if k > 1 else 1
    for start in range(n_init):
        if seedings is not None:
            medoids = seedings[start][:k].clone()
        else:
            medoids = _kpp_seed(D, k, start_rng(seed, start), seeding_trials(k))
        n_iter = 0
        if start == 0:
            # Start 0 is the alternate result refined (so "pam" never ends above "alternate"); the other
            # starts swap from their seeding directly: the swaps do what the alternate step would, and
            # the starts end in more varied optima, so their best is lower (measured: docs/library.md).
            medoids, n_iter = _alternate(D, medoids, max_iter)
        n_swaps = 0
        if method == "pam":
            medoids, n_pass, n_swaps = _swap(D, medoids, max_iter, order=swap_order(D.shape[0], seed, start))
            n_iter += n_pass
        labels, inertia = _assignment(D, medoids)
        if best is None or inertia < best[0]:
            best = (inertia, labels, medoids, n_iter, n_swaps, start)
    assert best is not None
    inertia, labels, medoids, n_iter, n_swaps, start = best
    return _packed(medoids, labels, inertia, method=method, seed=seed, n_iter=n_iter, n_swaps=n_swaps,
                   start=start, n_init=n_init)  # fmt: skip


def _result(
    D: torch.Tensor,
    medoids: torch.Tensor,
    *,
    method: str,
    seed: int,
    n_iter: int,
    n_swaps: int,
    start: int,
    n_init: int,
) -> KMedoidsResult:
    labels, inertia = _assignment(D, medoids)
    return _packed(medoids, labels, inertia, method=method, seed=seed, n_iter=n_iter, n_swaps=n_swaps,
                   start=start, n_init=n_init)  # fmt: skip


def _packed(medoids: torch.Tensor, labels: np.ndarray, inertia: float, *, method: str, seed: int, n_iter: int,
            n_swaps: int, start: int, n_init: int) -> KMedoidsResult:  # fmt: skip
    return KMedoidsResult(
        medoids=medoids.cpu().numpy().astype(np.int64),
        labels=labels,
        inertia=inertia,
        n_iter=int(n_iter),
        method=method,
        seed=seed,
        n_swaps=int(n_swaps),
        start=start,
        n_init=n_init,
    )


def _assignment(D: torch.Tensor, medoids: torch.Tensor) -> tuple[np.ndarray, float]:
    """Labels (N,) int64 (each medoid labelled as itself) and the inertia, summed exactly (math.fsum) so
    that every path reports the same number."""
    kernel = _cpu_kernel(D)
    if kernel is None:
        labels, dist = _final_assignment(D, medoids)
        labels, dist = labels.cpu().numpy().astype(np.int64), dist.cpu().numpy()
    else:
        array, med = D.numpy(), medoids.numpy()
        labels, dist = kernel.assign(array, med)
        # A medoid that duplicates another (distance 0 both ways) would otherwise join the lower position.
        labels[med] = np.arange(med.size)
        dist[med] = array[med, med]
    return labels, math.fsum(dist.astype(np.float64).tolist())


# --- seeding -------------------------------------------------------------------------------------------


def seeding_trials(k: int) -> int:
    """Candidates drawn per k-medoids++ step for k medoids: 2 + int(ln k), as scikit-learn-extra."""
    return 2 + int(math.log(k))


def start_rng(seed: int, start: int) -> np.random.Generator:
    """The generator of start ``start``'s seeding: ``default_rng(seed)`` for start 0, else an
    independent stream ``default_rng([seed, 2, start])``."""
    return np.random.default_rng(seed if start == 0 else [seed, _RESTART_STREAM, start])


def kpp_seed(
    D: torch.Tensor,
    k: int,
    seed: int,
    *,
    n_trials: int | None = None,
    start: int = 0,
    threads: int | None = None,
) -> torch.Tensor:
    """k-medoids++ seeding as in scikit-learn-extra: (k,) int64 distinct medoid indices on D's device.

    The first medoid is uniform; each next one is the best of ``n_trials`` (default 2 + int(ln k))
    candidates drawn with probability proportional to the squared distance to the nearest medoid so far,
    "best" meaning the lowest resulting sum of squared distances (the potential). Random draws come from
    ``numpy.random.default_rng(seed)`` (``start`` > 0: the stream of that start of "pam", see
    :func:`start_rng`), so they do not depend on the device. With a fixed ``n_trials`` the first j
    medoids do not depend on k (what :func:`dispersion_score.elbow` reuses). ``threads`` as in
    :func:`kmedoids`.
    """
    trials = seeding_trials(k) if n_trials is None else n_trials
    with cpu_threads(resolve_threads(threads), D.device):
        return _kpp_seed(D, k, start_rng(seed, start), trials)


def _kpp_seed(D: torch.Tensor, k: int, rng: np.random.Generator, n_trials: int) -> torch.Tensor:
    kernel = _cpu_kernel(D)
    if kernel is not None:
        state = rng.bit_generator.state
        # The same draws in the same order as the loop below (one integer, then n_trials uniforms a step).
        first = int(rng.integers(D.shape[0]))
        draws = rng.random((k - 1) * n_trials).reshape(k - 1, n_trials)
        medoids = kernel.kpp_seed(D.numpy(), k, first, draws)
        if medoids is not None:
            return torch.from_numpy(medoids)
        rng.bit_generator.state = state  # a step with all weight zero draws differently: redo it below
    return _kpp_seed_torch(D, k, rng, n_trials)


def _kpp_seed_torch(D: torch.Tensor, k: int, rng: np.random.Generator, n_trials: int) -> torch.Tensor:
    n = D.shape[0]
    dev = D.device
    medoids = torch.empty(k, dtype=torch.long, device=dev)
    is_medoid = torch.zeros(n, dtype=torch.bool, device=dev)
    first = int(rng.integers(n))
    medoids[0] = first
    is_medoid[first] = True
    closest = D[first].double().square()
    closest[first] = 0.0
    for j in range(1, k):
        cumulative = torch.cumsum(closest, 0)
        draws = torch.from_numpy(rng.random(n_trials)).to(dev) * cumulative[-1]
        # side="right" lands on an item of positive weight, so never on a chosen medoid (weight 0).
        candidates = torch.searchsorted(cumulative, draws, right=True).clamp_(max=n - 1)
        potentials = torch.minimum(closest[None, :], D.index_select(0, candidates).double().square())
        totals = potentials.sum(dim=1).masked_fill_(is_medoid[candidates], math.inf)
        best = int(torch.argmin(totals))
        if math.isinf(float(totals[best])):
            # All weight is zero (every item coincides with a medoid): any non-medoid is as good.
            free = torch.nonzero(~is_medoid).squeeze(1)
            chosen = int(free[int(rng.integers(free.numel()))])
            closest = torch.minimum(closest, D[chosen].double().square())
        else:
            chosen = int(candidates[best])
            closest = potentials[best]
        closest[chosen] = 0.0
        medoids[j] = chosen
        is_medoid[chosen] = True
    return medoids


# --- nearest medoids -----------------------------------------------------------------------------------


def _nearest_two(
    D: torch.Tensor, medoids: torch.Tensor, *, second: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest and second-nearest medoid of every item.

    Args:
        D: (N, N) float32 distances.
        medoids: (k,) int64 medoid indices.
        second: also compute the second nearest (else those outputs are +inf / 0).

    Returns:
        near (N,) int64 position in ``medoids`` of the nearest medoid (ties: the lower position),
        d_near (N,) float32, sec (N,) int64 position of the second nearest, d_sec (N,) float32
        (+inf when k == 1).
    """
    n = D.shape[0]
    k = medoids.numel()
    chunk = max(1, BLOCK_ELEMS // n)
    near = d_near = sec = d_sec = None
    for c0 in range(0, k, chunk):
        rows = D.index_select(0, medoids[c0 : c0 + chunk])  # (c, N): rows of D = columns, D symmetric
        d1, p1 = rows.min(dim=0)
        p1 += c0
        if second and rows.shape[0] > 1:
            rows.scatter_(0, (p1 - c0)[None, :], math.inf)
            d2, p2 = rows.min(dim=0)
            p2 += c0
        else:
            d2 = torch.full_like(d1, math.inf)
            p2 = torch.zeros_like(p1)
        if near is None:
            near, d_near, sec, d_sec = p1, d1, p2, d2
            continue
        # Merge with the earlier chunks; on ties the earlier (lower position) medoid wins.
        better = d1 < d_near
        sec_if_better_d = torch.where(d_near <= d2, d_near, d2)
        sec_if_better_p = torch.where(d_near <= d2, near, p2)
        sec_else_d = torch.where(d_sec <= d1, d_sec, d1)
        sec_else_p = torch.where(d_sec <= d1, sec, p1)
        d_sec = torch.where(better, sec_if_better_d, sec_else_d)
        sec = torch.where(better, sec_if_better_p, sec_else_p)
        d_near = torch.where(better, d1, d_near)
        near = torch.where(better, p1, near)
    return near, d_near, sec, d_sec


def _row_min(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest entry of each row of a (B, k) tensor and its position (ties: the lowest position)."""
    if x.device.type == "cpu" and x.is_contiguous():
        # numpy's argmin is 5-20x faster than torch's min(dim) on these (100, 500) CPU blocks.
        array = x.numpy()
        positions = array.argmin(axis=1)
        return torch.from_numpy(array[np.arange(array.shape[0]), positions]), torch.from_numpy(positions)
    values, positions = x.min(dim=1)
    return values, positions


def _top_two(sub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positions and values of the smallest and second-smallest entry of each row of (a, k) `sub`
    (ties: the lower position first); `sub` is overwritten."""
    d1, p1 = _row_min(sub)
    if sub.shape[1] == 1:
        return p1, d1, torch.zeros_like(p1), torch.full_like(d1, math.inf)
    sub.scatter_(1, p1[:, None], math.inf)
    d2, p2 = _row_min(sub)
    return p1, d1, p2, d2


def _top_two_of_rows(
    D: torch.Tensor, items: torch.Tensor, medoids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest and second-nearest medoid (positions, distances) for a few items: (a,) each."""
    n = D.shape[0]
    k = medoids.numel()
    chunk = max(1, BLOCK_ELEMS // (2 * k))
    out: list[tuple[torch.Tensor, ...]] = []
    for a0 in range(0, items.numel(), chunk):
        # A flat gather reads only the a·k entries needed (index_select would copy a full rows).
        out.append(_top_two(torch.take(D, items[a0 : a0 + chunk, None] * n + medoids[None, :])))
    if len(out) == 1:
        return out[0]  # type: ignore[return-value]
    return tuple(torch.cat(parts) for parts in zip(*out, strict=True))  # type: ignore[return-value]


def _final_assignment(D: torch.Tensor, medoids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels (N,) int64 and distance to the own medoid (N,) float32, each medoid labelled as itself."""
    labels, dist, _, _ = _nearest_two(D, medoids, second=False)
    positions = torch.arange(medoids.numel(), device=D.device)
    # A medoid that duplicates another (distance 0 both ways) would otherwise join the lower position.
    labels[medoids] = positions
    dist[medoids] = D[medoids, medoids]
    return labels, dist


# --- alternate (Voronoi iteration) ---------------------------------------------------------------------


def _alternate(D: torch.Tensor, medoids: torch.Tensor, max_iter: int) -> tuple[torch.Tensor, int]:
    """Voronoi iteration from the given medoids; returns the medoids and the iterations run."""
    kernel = _cpu_kernel(D)
    if kernel is not None:
        moved, iters = kernel.alternate(D.numpy(), medoids.numpy(), max_iter)
        return torch.from_numpy(moved), iters
    return _alternate_torch(D, medoids, max_iter)


def _alternate_torch(D: torch.Tensor, medoids: torch.Tensor, max_iter: int) -> tuple[torch.Tensor, int]:
    k = medoids.numel()
    labels = _nearest_two(D, medoids, second=False)[0]
    changed = torch.ones(k, dtype=torch.bool, device=D.device)
    for it in range(1, max_iter + 1):
        new_medoids = _update_medoids(D, medoids, labels, changed)
        moved = new_medoids != medoids
        if not bool(moved.any()):
            return medoids, it
        medoids = new_medoids
        new_labels = _nearest_two(D, medoids, second=False)[0]
        # Only clusters that gained or lost members can have a new medoid next time.
        diff = new_labels != labels
        changed = torch.zeros(k, dtype=torch.bool, device=D.device)
        changed[new_labels[diff]] = True
        changed[labels[diff]] = True
        labels = new_labels
    return medoids, max_iter


def _update_medoids(
    D: torch.Tensor, medoids: torch.Tensor, labels: torch.Tensor, clusters: torch.Tensor
) -> torch.Tensor:
    """Move each selected medoid to its cluster's member with the smallest sum of distances.

    Args:
        D: (N, N) distances; medoids: (k,) indices; labels: (N,) positions in [0, k);
        clusters: (k,) bool, which clusters to update (others keep their medoid).

    Returns:
        (k,) new medoid indices. The current medoid is kept unless a member is strictly better (as in
        scikit-learn-extra); among equally good members the lowest index wins. Empty clusters keep theirs.
    """
    n = D.shape[0]
    k = medoids.numel()
    members = torch.nonzero(clusters[labels]).squeeze(1)
    if members.numel() == 0:
        return medoids
    member_labels = labels[members]
    counts = torch.bincount(member_labels, minlength=k)
    pairs = int((counts.double().square()).sum())
    if n * n * k < 200 * pairs:
        cost = _member_costs_matmul(D, members, member_labels, k)
    else:
        cost = _member_costs_pairs(D, members, member_labels, counts)
    # Per cluster: the lowest cost, then the lowest index among members reaching it.
    best_cost = torch.full((k,), math.inf, dtype=torch.float64, device=D.device)
    best_cost.scatter_reduce_(0, member_labels, cost, reduce="amin")
    at_best = cost == best_cost[member_labels]
    best_item = torch.full((k,), n, dtype=torch.long, device=D.device)
    best_item.scatter_reduce_(0, member_labels[at_best], members[at_best], reduce="amin")
    # The current medoid's own cost, when it is a member of its cluster (a duplicate may sit elsewhere).
    slot = torch.full((n,), -1, dtype=torch.long, device=D.device)
    slot[members] = torch.arange(members.numel(), device=D.device)
    medoid_slot = slot[medoids]
    current_cost = torch.full((k,), math.inf, dtype=torch.float64, device=D.device)
    own = (medoid_slot >= 0) & (labels[medoids] == torch.arange(k, device=D.device))
    current_cost[own] = cost[medoid_slot[own]]
    keep = ~clusters | (counts == 0) | (current_cost <= best_cost)
    return torch.where(keep, medoids, best_item)


def _member_costs_matmul(D: torch.Tensor, members: torch.Tensor, member_labels: torch.Tensor, k: int):
    """Within-cluster cost sums through D[rows] @ one_hot(labels): cheap when k is small."""
    n = D.shape[0]
    one_hot = torch.zeros(n, k, dtype=torch.float64, device=D.device)
    one_hot[members, member_labels] = 1.0
    chunk = max(1, BLOCK_ELEMS // (2 * n))
    out = []
    for a0 in range(0, members.numel(), chunk):
        idx = members[a0 : a0 + chunk]
        sums = D.index_select(0, idx).double() @ one_hot  # (a, k)
        out.append(sums.gather(1, member_labels[a0 : a0 + chunk, None]).squeeze(1))
    return torch.cat(out)


def _member_costs_pairs(
    D: torch.Tensor, members: torch.Tensor, member_labels: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """Within-cluster cost sums by gathering the sum_c |c|² within-cluster pairs, in blocks: cheap for large k."""
    n = D.shape[0]
    dev = D.device
    order = torch.argsort(member_labels, stable=True)
    sorted_items = members[order]
    sorted_labels = member_labels[order]
    cluster_start = torch.cumsum(counts, 0) - counts  # into sorted_items
    sizes = counts[sorted_labels]  # row length of every sorted item
    row_end = torch.cumsum(sizes, 0)
    row_begin = row_end - sizes
    flat = D.view(-1)
    cost_sorted = torch.empty(members.numel(), dtype=torch.float64, device=dev)
    ends = row_end.cpu().numpy()
    a0 = 0
    while a0 < members.numel():
        # Largest a1 with pairs(a0:a1) <= BLOCK_ELEMS // 4 (at least one row).
        limit = (int(ends[a0 - 1]) if a0 else 0) + BLOCK_ELEMS // 4
        a1 = max(a0 + 1, int(np.searchsorted(ends, limit, side="right")))
        seg_sizes = sizes[a0:a1]
        total = int(ends[a1 - 1]) - (int(ends[a0 - 1]) if a0 else 0)
        row = torch.repeat_interleave(torch.arange(a0, a1, device=dev), seg_sizes)
        local = torch.arange(total, device=dev) + (row_begin[a0] - row_begin[row])
        cols = sorted_items[cluster_start[sorted_labels[row]] + local]
        vals = flat[sorted_items[row] * n + cols].double()
        cost_sorted[a0:a1] = torch.zeros(a1 - a0, dtype=torch.float64, device=dev).index_add_(0, row - a0, vals)
        a0 = a1
    cost = torch.empty_like(cost_sorted)
    cost[order] = cost_sorted
    return cost


# --- swap refinement (FasterPAM) ----------------------------------------------------------------------


def _cpu_kernel(D: torch.Tensor) -> KMedoidsKernel | None:
    """The compiled steps for a CPU matrix (None on other devices or without a compiler)."""
    return load_kmedoids_kernel() if D.device.type == "cpu" else None


@dataclass
class _Caches:
    """Nearest and second-nearest medoid of every item: what every swap evaluation reads."""

    near: torch.Tensor  # (N,) int64 position in medoids
    d_near: torch.Tensor  # (N,) float32
    sec: torch.Tensor  # (N,) int64
    d_sec: torch.Tensor  # (N,) float32

    def removal_loss(self, k: int) -> torch.Tensor:
        """(k,) float64: the cost added by removing each medoid position alone, sum of d_sec - d_near
        over the items it is nearest to (accumulated in item order)."""
        removal = torch.zeros(k, dtype=torch.float64, device=self.near.device)
        return removal.index_add_(0, self.near, self.d_sec.double() - self.d_near.double())


def _swap_deltas(rows: torch.Tensor, caches: _Caches, removal: torch.Tensor) -> torch.Tensor:
    """Change of the total cost for swapping each candidate in for each medoid.

    Args:
        rows: (B, N) float32, rows of D of the B candidates x (D[x, o] for every item o).
        caches: the current nearest / second-nearest caches.
        removal: (k,) float64 :meth:`_Caches.removal_loss`.

    Returns:
        (B, k) float64: cost after the swap (x in, medoid at position j out) minus cost now. Rows of
        candidates that are medoids hold meaningless values.

    Item o (nearest medoid at position n(o), distances d_near(o) <= d_sec(o)) contributes, for
    candidate x with d = D[x, o]: g = min(d - d_near, 0) to every position, and in addition
    f = min(d, d_sec) - min(d, d_near) to position n(o) (it loses its nearest medoid there). When
    d >= d_sec, f = d_sec - d_near does not depend on x: these terms are the removal loss, and only the
    few entries with d < d_sec are gathered for the correction max(d, d_near) - d_sec. The compiled
    kernel sums the same terms in the same order.
    """
    b_count, k = rows.shape[0], removal.numel()
    d_near = caches.d_near.double()
    b, o, dx = _entries_below(rows, caches.d_sec)
    dx = dx.double()
    dn = d_near[o]
    shared = torch.zeros(b_count, dtype=torch.float64, device=rows.device)
    shared.index_add_(0, b, (dx - dn).clamp_(max=0.0))
    delta = removal.repeat(b_count)
    delta.index_add_(0, b * k + caches.near[o], torch.maximum(dx, dn) - caches.d_sec[o].double())
    return delta.view(b_count, k).add_(shared[:, None])


def _entries_below(rows: torch.Tensor, limit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sparse entries rows[b, o] < limit[o] of a (B, N) block, in row-major order: b, o, values (nnz,)."""
    b, o = (rows < limit).nonzero(as_tuple=True)
    return b, o, rows[b, o]


@dataclass
class _SwapState:
    """The medoids during the swap step, with what each swap updates."""

    medoids: torch.Tensor  # (k,) int64 item of each position
    is_medoid: torch.Tensor  # (N,) bool
    caches: _Caches
    to_medoids: torch.Tensor | None  # (N, k) D[:, medoids] when N·k <= BLOCK_ELEMS, else None

    @classmethod
    def start(cls, D: torch.Tensor, medoids: torch.Tensor) -> _SwapState:
        n, k = D.shape[0], medoids.numel()
        medoids = medoids.clone()
        is_medoid = torch.zeros(n, dtype=torch.bool, device=D.device)
        is_medoid[medoids] = True
        # With the (N, k) distances to the medoids at hand the touched items' rows are contiguous reads.
        to_medoids = D.index_select(0, medoids).t().contiguous() if n * k <= BLOCK_ELEMS else None
        return cls(medoids, is_medoid, _Caches(*_nearest_two(D, medoids)), to_medoids)

    def apply(self, D: torch.Tensor, x: int, position: int) -> None:
        """Swap item x in at ``position``; refresh the caches where they can change: items whose nearest or
        second-nearest medoid was at ``position``, and items at most their second distance from x."""
        caches = self.caches
        self.is_medoid[self.medoids[position]] = False
        self.medoids[position] = x
        self.is_medoid[x] = True
        row = D[x]
        touched = torch.nonzero((caches.near == position) | (caches.sec == position) | (row <= caches.d_sec)).squeeze(1)
        if self.to_medoids is None:
            new = _top_two_of_rows(D, touched, self.medoids)
        else:
            self.to_medoids[:, position] = row
            new = _top_two(self.to_medoids.index_select(0, touched))
        caches.near[touched], caches.d_near[touched], caches.sec[touched], caches.d_sec[touched] = new


def swap_order(n: int, seed: int, start: int = 0) -> np.ndarray:
    """The processing order of the swap candidates of start ``start``: (n,) int64, a permutation of 0..n-1
    made of blocks of ``SWAP_ORDER_BLOCK`` consecutive items (the last one shorter when n is not a
    multiple), the blocks shuffled by ``numpy.random.default_rng([seed, 3, start])``."""
    blocks = np.arange(0, n, SWAP_ORDER_BLOCK, dtype=np.int64)
    np.random.default_rng([seed, _ORDER_STREAM, start]).shuffle(blocks)
    offsets = np.arange(SWAP_ORDER_BLOCK, dtype=np.int64)
    order = (blocks[:, None] + offsets[None, :]).ravel()
    return order[order < n]


def _swap(
    D: torch.Tensor, medoids: torch.Tensor, max_iter: int, *, order: np.ndarray | None = None
) -> tuple[torch.Tensor, int, int]:
    """FasterPAM's eager swap search (Schubert & Rousseeuw 2021) until no single swap improves (or
    max_iter passes over the candidates); returns medoids, passes, swaps.

    Candidates x are taken in the processing order ``order`` ((N,) int64 permutation; None: index order),
    cyclically from its first entry; the best swap of x (the medoid position whose
    replacement by x lowers the cost most) is applied at once if it lowers the cost by more than
    ``_SWAP_RTOL`` times the starting cost. The search stops after N consecutive candidates without a swap:
    a local optimum of PAM's swap neighbourhood. On the CPU the compiled kernel runs it
    (:mod:`dispersion_score._kmedoids_kernel`); elsewhere :func:`_swap_torch`, the same arithmetic.
    """
    n = D.shape[0]
    k = medoids.numel()
    if k == 1 or k == n:
        # k == 1: the alternate step already put the medoid at the global 1-medoid; k == N: cost is 0.
        return medoids, 0, 0
    kernel = _cpu_kernel(D)
    if kernel is not None:
        swapped, examined, n_swaps = kernel.swap(
            D.numpy(), medoids.numpy(), max_examined=max_iter * n, rtol=_SWAP_RTOL, order=order
        )
        return torch.from_numpy(swapped), math.ceil(examined / n), n_swaps
    return _swap_torch(D, medoids, max_iter, order=order)


def _swap_torch(
    D: torch.Tensor, medoids: torch.Tensor, max_iter: int, *, order: np.ndarray | None = None
) -> tuple[torch.Tensor, int, int]:
    """:func:`_swap` in torch operations: candidates are evaluated in batches (their rows of D) against
    the current caches; the first improving one of a batch is applied and evaluation resumes after it, so
    the swaps are exactly the one-candidate-at-a-time ones."""
    n, k = D.shape[0], medoids.numel()
    positions = torch.arange(n, device=D.device) if order is None else torch.as_tensor(order, device=D.device)
    state = _SwapState.start(D, medoids)
    caches = state.caches
    removal = caches.removal_loss(k)
    cost = float(caches.d_near.double().sum())
    tol = _SWAP_RTOL * cost
    batch = int(min(n, max(8, _SWAP_BATCH_ELEMS // n)))
    examined = since = n_swaps = p = 0
    max_examined = max_iter * n
    while since < n and examined < max_examined:
        count = min(batch, n - p, n - since, max_examined - examined)
        candidates = positions[p : p + count]
        delta = _swap_deltas(D.index_select(0, candidates), caches, removal)
        delta.masked_fill_(state.is_medoid[candidates][:, None], math.inf)
        best, targets = _row_min(delta)
        improving = torch.nonzero(best < -tol)
        if improving.numel() == 0:
            examined, since, p = examined + count, since + count, (p + count) % n
            continue
        r = int(improving[0, 0])
        state.apply(D, int(candidates[r]), int(targets[r]))
        removal = caches.removal_loss(k)
        new_cost = float(caches.d_near.double().sum())
        if not new_cost < cost:
            raise RuntimeError(
                f"k-medoids swap step: a swap predicted to improve changed the cost by {new_cost - cost:g}"
            )
        cost = new_cost
        n_swaps += 1
        examined, since, p = examined + r + 1, 0, (p + r + 1) % n
    return state.medoids, math.ceil(examined / n), n_swaps
