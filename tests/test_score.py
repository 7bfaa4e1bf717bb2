"""Tests of dispersion_score.score: DS = inertia / n, subsampling, several seeds, the elbow curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_kmedoids import naive_cost  # tests/ is on sys.path under pytest

from benchmarks._inputs import clustered_distance_matrix
from dispersion_score import (
    DispersionResult,
    DispersionScores,
    ElbowResult,
    dispersion_score,
    dispersion_scores,
    elbow,
    kmedoids,
)

# k-medoids is a chain of small operations: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def D() -> np.ndarray:
    return clustered_distance_matrix(240, clusters=8, seed=1)


def two_clusters(n_each: int, gap: float) -> tuple[np.ndarray, float]:
    """Two tight clusters far apart on a line and their analytic DS for k = 2.

    Points 0, 1, ..., n_each - 1 and gap + (0, ..., n_each - 1) (odd n_each), squared distances: each
    cluster's medoid is its middle point; the inertia is 2 * sum_i (i - mid)².
    """
    base = np.arange(n_each, dtype=np.float64)
    x = np.concatenate([base, gap + base])
    D = ((x[:, None] - x[None, :]) ** 2).astype(np.float32)
    mid = (n_each - 1) / 2
    inertia = 2 * ((base - mid) ** 2).sum()
    return D, inertia / (2 * n_each)


@pytest.mark.parametrize("method", ["pam", "alternate"])
def test_two_tight_far_apart_clusters_analytic_ds(method):
    D, expected = two_clusters(7, 1e3)
    for seed in range(4):
        result = dispersion_score(D, 2, method=method, seed=seed)
        assert result.ds == pytest.approx(expected, rel=1e-9)
        assert sorted(result.medoids.tolist()) == [3, 10]


def test_ds_is_inertia_over_n_and_matches_kmedoids(D):
    result = dispersion_score(D, 10, seed=3)
    reference = kmedoids(D, 10, seed=3)
    assert isinstance(result, DispersionResult)
    assert result.inertia == reference.inertia
    assert result.ds == pytest.approx(result.inertia / 240, rel=1e-15)
    assert result.ds == pytest.approx(naive_cost(D, result.medoids) / 240, rel=1e-9)
    assert (result.k, result.n, result.n_total, result.method, result.seed) == (10, 240, 240, "pam", 3)
    assert result.indices is None and result.subsample is None
    assert np.array_equal(result.labels, reference.labels)


def test_alternate_is_never_better_than_pam(D):
    for seed in range(3):
        pam = dispersion_score(D, 12, seed=seed)
        alt = dispersion_score(D, 12, method="alternate", seed=seed)
        assert pam.ds <= alt.ds * (1 + 1e-12)


@pytest.mark.parametrize("subsample, size", [(0.5, 120), (0.25, 60), (100, 100), (1, 1)])
def test_subsample_is_seeded_and_scores_the_submatrix(D, subsample, size):
    k = 1 if size == 1 else 5
    result = dispersion_score(D, k, seed=4, subsample=subsample)
    again = dispersion_score(D, k, seed=4, subsample=subsample)
    assert result.n == size and result.n_total == 240 and result.subsample == subsample
    idx = result.indices
    assert idx.shape == (size,) and np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 240
    assert np.array_equal(idx, again.indices) and result.inertia == again.inertia
    # The same as scoring the explicitly extracted submatrix; medoids are reported as indices of D.
    direct = dispersion_score(np.ascontiguousarray(D[np.ix_(idx, idx)]), k, seed=4)
    assert result.inertia == direct.inertia
    assert np.array_equal(result.medoids, idx[direct.medoids])
    assert np.array_equal(result.labels, direct.labels)
    if size > 1:
        other = dispersion_score(D, k, seed=5, subsample=subsample)
        assert not np.array_equal(other.indices, idx)


def test_full_subsample_is_the_plain_score(D):
    plain = dispersion_score(D, 6, seed=2)
    for subsample in (1.0, 240):
        result = dispersion_score(D, 6, seed=2, subsample=subsample)
        assert result.indices is None and result.inertia == plain.inertia


@pytest.mark.parametrize(
    "subsample, pattern",
    [
        (0.0, r"fraction must be in \(0, 1\]"),
        (1.5, r"fraction must be in \(0, 1\]"),
        (-3, r"count must be in \[1, N = 240\]"),
        (241, r"count must be in \[1, N = 240\]"),
        (True, r"subsample must be None, a fraction"),
        ("half", r"subsample must be None, a fraction"),
        (3, r"1 <= k <= n = 3, the subsample size \(of N = 240 items"),
    ],
)
def test_bad_subsample(D, subsample, pattern):
    with pytest.raises(ValueError, match=pattern):
        dispersion_score(D, 5, subsample=subsample)


def test_dispersion_scores_mean_and_std_over_seeds(D):
    seeds = (0, 1, 2, 3)
    scores = dispersion_scores(D, 7, seeds=seeds, method="alternate")
    assert isinstance(scores, DispersionScores)
    singles = [dispersion_score(D, 7, seed=s, method="alternate") for s in seeds]
    assert [r.inertia for r in scores.results] == [r.inertia for r in singles]
    assert scores.seeds == seeds and [r.seed for r in scores.results] == list(seeds)
    ds = np.array([r.ds for r in singles])
    assert scores.mean == pytest.approx(ds.mean()) and scores.std == pytest.approx(ds.std(ddof=1))
    assert scores.inertia_mean == pytest.approx(ds.mean() * 240)
    assert scores.k == 7 and scores.method == "alternate"
    assert dispersion_scores(D, 7, seeds=[5]).std == 0.0


def test_dispersion_scores_subsample_draws_per_seed(D):
    scores = dispersion_scores(D, 4, seeds=(0, 1), subsample=0.5)
    assert not np.array_equal(scores.results[0].indices, scores.results[1].indices)
    with pytest.raises(ValueError, match="non-empty sequence"):
        dispersion_scores(D, 4, seeds=())
    with pytest.raises(ValueError, match="non-negative integer"):
        dispersion_scores(D, 4, seeds=(0, -2))


@pytest.mark.parametrize("method", ["pam", "alternate"])
def test_elbow_points_equal_single_scores(D, method):
    ks = [1, 2, 3, 5, 8, 13, 21, 60, 240]
    curve = elbow(D, ks, method=method, seed=6)
    assert isinstance(curve, ElbowResult)
    assert curve.ks.tolist() == ks and len(curve) == len(ks) and curve.n == 240
    for k, ds, point in zip(ks, curve.ds, curve, strict=True):
        single = dispersion_score(D, k, method=method, seed=6)
        assert point.k == k and point.ds == ds == single.ds
        assert np.array_equal(point.medoids, single.medoids)
    assert curve.ds[-1] == 0.0


def test_elbow_is_decreasing_on_clustered_data(D):
    ks = list(range(1, 31))
    ds = elbow(D, ks, seed=0).ds
    # PAM is a local search, so DS(k) need not fall at every step; it must fall overall and never
    # rise by more than a little.
    assert np.all(ds[1:] <= ds[:-1] * 1.02)
    assert ds[-1] < 0.5 * ds[0]
    assert elbow(D, [240], seed=0).ds[0] == 0.0


def test_elbow_with_subsample_uses_one_subsample_for_every_k(D):
    curve = elbow(D, [2, 4, 9], seed=3, subsample=80)
    first = curve.results[0].indices
    assert all(np.array_equal(r.indices, first) for r in curve) and curve.n == 80


@pytest.mark.parametrize(
    "ks, pattern", [([], r"non-empty"), (5, r"sequence of integers"), ([2, 241], r"1 <= each k in ks <= N = 240")]
)
def test_elbow_bad_ks(D, ks, pattern):
    with pytest.raises(ValueError, match=pattern):
        elbow(D, ks)


def test_bad_method_is_reported(D):
    for call in (dispersion_score, dispersion_scores, lambda D, k, method: elbow(D, [k], method=method)):
        with pytest.raises(ValueError, match=r"one of 'pam', 'alternate'"):
            call(D, 3, method="kmeans")


@pytest.mark.cuda
def test_cuda_score_matches_cpu(D):
    cpu = dispersion_score(D, 9, seed=1, subsample=0.5)
    gpu = dispersion_score(torch.from_numpy(D).cuda(), 9, seed=1, subsample=0.5)
    assert gpu.ds == pytest.approx(cpu.ds, rel=1e-6)
    assert np.array_equal(gpu.indices, cpu.indices)
    assert np.array_equal(elbow(D, [2, 5], device="cuda").ks, [2, 5])


# --- issue 9: subsample sizes, huge k ranges, values beyond float32 -----------------------------------------


def test_k_above_the_subsample_names_the_subsample_and_the_real_n(D):
    # 8 items, a subsample of 1 (an int is a count; 1.0 would be all of them): the message says both sizes.
    small = np.ascontiguousarray(D[:8, :8])
    with pytest.raises(ValueError, match=r"n = 1, the subsample size \(of N = 8 items in D\)"):
        dispersion_score(small, 2, subsample=1)
    assert dispersion_score(small, 2, subsample=1.0).n == 8


def test_an_absurd_k_range_fails_before_it_is_listed(D):
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"each k in ks <= N = 240"):
        elbow(D, range(1, 10**12))  # listing it first: a MemoryError after minutes
    with pytest.raises(ValueError, match=r"each k in ks <= N = 240"):
        elbow(D, (k for k in range(1, 10**12)))  # any iterable: checked item by item
    assert time.perf_counter() - started < 30
    assert elbow(D, range(2, 7, 2)).ks.tolist() == [2, 4, 6]


def test_values_beyond_float32_are_called_an_overflow_not_inf():
    big = np.array([[0.0, 1e39, 1.0], [1e39, 0.0, 1.0], [1.0, 1.0, 0.0]])  # float64, finite
    for matrix in (big, torch.from_numpy(big)):
        with pytest.raises(ValueError, match=r"D\[0, 1\] = 1e\+39 overflows float32"):
            dispersion_score(matrix, 1)
    inf = big.copy()
    inf[0, 1] = inf[1, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        dispersion_score(inf, 1)
