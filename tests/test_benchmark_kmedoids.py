"""Helpers of the k-medoids benchmarks (benchmarks/bench_kmedoids.py), checked against naive references. Kept
apart from tests/test_kmedoids.py: the benchmarks live in the checkout only, not in the installed library."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.bench_kmedoids import paired_comparison


def _signed_rank_p_by_enumeration(diff: np.ndarray) -> float:
    """P(W+ >= observed W+) over all 2^n sign patterns of the nonzero |diff| (distinct magnitudes)."""
    nonzero = diff[diff != 0]
    ranks = np.argsort(np.argsort(np.abs(nonzero))) + 1
    observed = ranks[nonzero > 0].sum()
    sums = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product((0, 1), repeat=nonzero.size)
    ]
    return float(np.mean(np.array(sums) >= observed))


def test_paired_comparison_of_the_quality_suite_counts_ties_and_tests_by_enumeration():
    rng = np.random.default_rng(3)
    reference = rng.uniform(100.0, 200.0, size=12)
    # Four seeds tie up to summation order, eight differ by distinct amounts, mostly upwards.
    shifts = np.array([0, 0, 0, 0, 0.7, 1.3, -0.2, 2.9, 0.05, -1.1, 3.7, 0.4])
    ours = reference * (1.0 + 1e-3 * shifts)
    ours[:4] = reference[:4] * (1.0 + 1e-13)
    result = paired_comparison(ours, reference)
    assert (result["lower"], result["equal"], result["higher"]) == (2, 4, 6)
    differences = np.where(shifts == 0, 0.0, ours - reference)
    assert result["p_higher"] == pytest.approx(_signed_rank_p_by_enumeration(differences))
    # Every seed equal: nothing to test against, p = 1, not a division by zero or a scipy warning.
    assert paired_comparison(reference * (1 + 1e-12), reference)["p_higher"] == 1.0
    # One seed higher and the rest equal is no evidence of a higher cost (p = 1/2).
    assert paired_comparison(np.r_[reference[:1] * 1.002, reference[1:]], reference)["p_higher"] == 0.5
