"""The power calculation (experiments.power) against hand computations and brute-force simulations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.declaration import Direction
from experiments.power import paired_power, pilot_estimate, power_table, spearman_power
from experiments.registry import get_experiment

RISES = Direction("output DS rises along s", "output", "s", +1)


def test_pilot_estimate_pools_the_within_level_variance() -> None:
    rows = pd.DataFrame({"s": [1, 1, 2, 2, 3, 3], "seed": [1, 2] * 3, "ds": [1.0, 3.0, 2.0, 2.0, 4.0, 8.0]})
    estimate = pilot_estimate(rows, RISES, ("s", "seed"))
    # squared deviations 2 + 0 + 8 over 3 degrees of freedom
    assert estimate.sigma == pytest.approx(np.sqrt(10 / 3)) and estimate.dof == 3 and estimate.seeds == 2
    np.testing.assert_allclose(estimate.means, [2.0, 2.0, 6.0])
    with pytest.raises(ValueError, match="one seed"):
        pilot_estimate(rows.iloc[:5], RISES, ("s", "seed"))


def test_paired_estimate_and_power_match_a_brute_force_simulation() -> None:
    paired = Direction("viewer > object", "output", "frame", +1, test="paired", levels=("object", "viewer"))
    rows = pd.DataFrame({"frame": ["object", "viewer"] * 3, "seed": [1, 1, 2, 2, 3, 3],
                         "ds": [1.0, 2.0, 1.0, 3.0, 2.0, 3.0]})  # fmt: skip
    estimate = pilot_estimate(rows, paired, ("frame", "seed"))
    assert estimate.sigma == pytest.approx(np.std([1.0, 2.0, 1.0], ddof=1)) and estimate.seeds == 3
    rng = np.random.default_rng(3)
    effect, sigma, seeds = 0.5, 1.0, 8
    differences = effect + sigma * rng.standard_normal((20000, seeds))
    simulated = (stats.ttest_1samp(differences, 0.0, axis=1, alternative="greater").pvalue < 0.05).mean()
    assert paired_power(effect, sigma, seeds, sign=+1, alpha=0.05) == pytest.approx(simulated, abs=0.015)
    assert paired_power(effect, sigma, seeds, sign=-1, alpha=0.05) < 0.01  # the effect goes the other way
    both = (stats.ttest_1samp(differences, 0.0, axis=1).pvalue < 0.05).mean()  # a direction without a sign
    assert paired_power(effect, sigma, seeds, sign=0, alpha=0.05) == pytest.approx(both, abs=0.015)
    assert paired_power(-effect, sigma, seeds, sign=0, alpha=0.05) == pytest.approx(both, abs=0.015)


def test_spearman_power_equals_a_loop_over_scipy_and_is_alpha_without_an_effect() -> None:
    levels, means, sigma = [1, 5, 10, 15], np.array([0.0, 0.1, 0.2, 0.3]), 0.2
    power = spearman_power(levels, means, sigma, 3, sign=+1, alpha=0.05, simulations=300, seed=7)
    rng = np.random.default_rng(7)
    x = np.repeat(np.asarray(levels, dtype=float), 3)
    draws = np.repeat(means, 3) + sigma * rng.standard_normal((300, len(x)))
    naive = np.mean([stats.spearmanr(x, draw, alternative="greater").pvalue < 0.05 for draw in draws])
    assert power == pytest.approx(naive, abs=1e-12)
    null = spearman_power(levels, np.zeros(4), 1.0, 4, sign=+1, alpha=0.05, simulations=8000, seed=0)
    assert 0.035 < null < 0.065
    assert spearman_power(levels, means, 1e-6, 2, sign=+1, alpha=0.05, simulations=200, seed=0) == 1.0
    assert spearman_power(levels, means, 1e-6, 2, sign=-1, alpha=0.05, simulations=200, seed=0) == 0.0
    two_sided = spearman_power(levels, means, sigma, 3, sign=0, alpha=0.05, simulations=300, seed=7)
    naive_two = np.mean([stats.spearmanr(x, draw).pvalue < 0.05 for draw in draws])
    assert two_sided == pytest.approx(naive_two, abs=1e-12)
    null_two = spearman_power(levels, np.zeros(4), 1.0, 4, sign=0, alpha=0.05, simulations=8000, seed=0)
    assert 0.035 < null_two < 0.065


def test_power_table_on_a_synthetic_pilot() -> None:
    experiment = get_experiment("synthetic")
    rng = np.random.default_rng(0)
    rows = []
    for kind, slope in (("image_aug", -0.2), ("shape_aug", 0.0)):
        for rank, s in enumerate((1, 5, 10, 15, 20, 25, 30, 35)):
            for seed in (1, 2, 3):
                ds = 5.0 + slope * rank + 0.3 * rng.standard_normal()
                rows.append({"experiment": "synthetic", "kind": kind, "s": s, "seed": seed, "measure": "output",
                             "predictor": "network", "k": 2, "ds": ds})  # fmt: skip
    power = power_table(experiment, pd.DataFrame(rows), simulations=1000).set_index("direction")
    falls, rises = power.loc["output DS falls along image_aug"], power.loc["output DS rises along shape_aug"]
    assert falls["pilot_seeds"] == 3 and 2 <= falls["seeds_needed"] <= 3 and falls["power_at_pilot_seeds"] > 0.8
    assert rises["effect"] == pytest.approx(
        np.mean([r["ds"] for r in rows if r["kind"] == "shape_aug" and r["s"] == 35])
        - np.mean([r["ds"] for r in rows if r["kind"] == "shape_aug" and r["s"] == 1])
    )
    assert pd.isna(rises["seeds_needed"]) or rises["seeds_needed"] > 3  # no effect: not established cheaply


def test_a_direction_without_a_sign_gets_its_two_sided_power(tmp_path) -> None:  # noqa: ANN001
    """nviews declares "output DS against the views" without a sign; the table had no row for it and the command
    ended in a KeyError traceback."""
    from experiments.power import main

    experiment = get_experiment("nviews")
    rng = np.random.default_rng(1)
    rows = [{"experiment": "nviews", "views": views, "seed": seed, "measure": "output", "predictor": "network",
             "k": 10, "ds": 15.0 - 0.2 * rank + 0.3 * rng.standard_normal()}
            for rank, views in enumerate((1, 3, 6, 12)) for seed in (1, 2, 3)]  # fmt: skip
    table = pd.DataFrame(rows)
    power = power_table(experiment, table, simulations=500)
    against = power[power["direction"] == "output DS against the views"]
    assert len(against) == 1 and against["pilot_seeds"].iloc[0] == 3
    means = [np.mean([r["ds"] for r in rows if r["views"] == v]) for v in (1, 3, 6, 12)]
    assert against["effect"].iloc[0] == pytest.approx(means[-1] - means[0])
    table.to_csv(tmp_path / "measurements.csv", index=False)
    assert main([str(tmp_path), "--simulations", "200"]) == 0
    assert (tmp_path / "power.csv").is_file()
