"""How many seeds establish each declared output-DS direction: a power calculation from pilot runs (issue 19 §2).

For every output-DS direction of an experiment (input measures have no seeds) and every group of it, from the
``measurements.csv`` of a pilot results folder (at least two seeds per level):

* the **pilot's measured effect**: the mean DS over seeds at each level of the axis, ``mu_l``;
* the **seed-to-seed SD** ``sigma``: the within-level sample SD pooled over the levels (``sqrt(sum of squared
  deviations from each level's mean / sum of (n_l - 1))``); for a paired test the SD of the paired differences;
* **power(n)**: the probability that the declared test, with ``n`` seeds per level, gives p < alpha in the
  declared direction when DS at level l of each run is drawn from N(``mu_l``, ``sigma``²) (a direction declared
  without a sign, e.g. output DS against the views: p < alpha two-sided). Spearman directions: the share of
  ``simulations`` seeded simulated experiments in which Spearman's rho over the runs has a one-sided p below
  alpha (scipy's t approximation, which the directions table replaces by a permutation p; with 16 or more runs
  the two agree to the second digit); paired directions: the exact power of the one-sided paired t-test
  (noncentral t, effect = mean paired difference / its SD; two-sided without a sign);
* **seeds_needed**: the smallest n in 2 … ``max_seeds`` with power ≥ ``target``; empty when even ``max_seeds``
  do not reach it (with the pilot's effect, the direction cannot be established with a reasonable number of
  runs: that is a result, not a reason to change the data or k).

The effect simulated is the pilot's, not a hoped-for one. ``python -m experiments.power RESULTS_DIR`` writes
``power.csv`` there and prints it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from experiments.declaration import Direction, Experiment
from experiments.directions import direction_groups, direction_rows, read_results

POWER_TABLE = "power.csv"


@dataclass(frozen=True)
class PilotEstimate:
    """What a pilot says about one direction: level means (in axis order), the seed SD and its degrees of freedom.

    Attributes:
        levels: the axis values, in test order (numeric order; ``(low, high)`` for a paired test).
        means: (L,) mean DS over seeds at each level.
        sigma: pooled within-level seed SD (paired test: SD of the paired differences).
        dof: degrees of freedom of ``sigma``.
        seeds: seeds per level in the pilot (the smallest count).
    """

    levels: tuple
    means: np.ndarray
    sigma: float
    dof: int
    seeds: int


def pilot_estimate(rows: pd.DataFrame, direction: Direction, axes: Sequence[str]) -> PilotEstimate:
    """Level means and the seed SD of one direction's rows (``direction_rows`` of ``measurements.csv``).

    Raises:
        ValueError: fewer than two seeds at some level (no seed-to-seed variance to measure).
    """
    if direction.test == "paired":
        low, high = (str(level) for level in direction.levels)
        keys = [axis for axis in axes if axis != direction.axis and axis in rows]
        frame = rows.assign(_level=rows[direction.axis].astype(str))
        pivot = frame.pivot_table(index=keys, columns="_level", values="ds", aggfunc="mean")[[low, high]].dropna()
        differences = (pivot[high] - pivot[low]).to_numpy(dtype=float)
        if len(differences) < 2:
            raise ValueError(f"{direction.label}: {len(differences)} paired seed(s); a pilot needs two or more")
        return PilotEstimate(
            (low, high),
            pivot[[low, high]].mean().to_numpy(dtype=float),
            float(differences.std(ddof=1)),
            len(differences) - 1,
            len(differences),
        )
    level = rows[direction.axis].astype(float)
    groups = rows.assign(_level=level).groupby("_level")["ds"]
    counts = groups.count()
    if counts.min() < 2:
        raise ValueError(f"{direction.label}: level(s) {list(counts[counts < 2].index)} have one seed; need two")
    squares = groups.apply(lambda ds: float(((ds - ds.mean()) ** 2).sum())).sum()
    dof = int((counts - 1).sum())
    return PilotEstimate(tuple(counts.index), groups.mean().to_numpy(dtype=float), float(np.sqrt(squares / dof)), dof,
                         int(counts.min()))  # fmt: skip


def spearman_power(
    levels: Sequence[float], means: np.ndarray, sigma: float, seeds: int, *, sign: int, alpha: float,
    simulations: int, seed: int,
) -> float:  # fmt: skip
    """Share of simulated experiments (``seeds`` runs per level, DS ~ N(means[l], sigma²)) where Spearman's rho of
    DS against the level is significant at ``alpha`` (one-sided in the direction ``sign``; two-sided for 0)."""
    rng = np.random.default_rng(seed)
    x = np.repeat(np.asarray(levels, dtype=float), seeds)
    centre = np.repeat(np.asarray(means, dtype=float), seeds)
    draws = centre + sigma * rng.standard_normal((simulations, len(x)))
    ranks_x = stats.rankdata(x)
    ranks_y = stats.rankdata(draws, axis=1)
    cx = ranks_x - ranks_x.mean()
    cy = ranks_y - ranks_y.mean(axis=1, keepdims=True)
    rho = (cy @ cx) / np.sqrt((cx**2).sum() * (cy**2).sum(axis=1))
    n = len(x)
    t = rho * np.sqrt((n - 2) / np.clip(1.0 - rho**2, 1e-12, None))
    if sign == 0:
        p = 2.0 * stats.t.sf(np.abs(t), n - 2)
    else:
        p = stats.t.sf(t, n - 2) if sign > 0 else stats.t.cdf(t, n - 2)
    return float((p < alpha).mean())


def paired_power(effect: float, sigma: float, seeds: int, *, sign: int, alpha: float) -> float:
    """Exact power of the one-sided paired t-test with ``seeds`` pairs when the differences are N(effect, sigma²):
    P(T > t_{1-alpha, n-1}) for T noncentral t with n - 1 degrees of freedom and noncentrality
    sign · effect / sigma · sqrt(n); for ``sign`` 0 the two-sided test, P(|T| > t_{1-alpha/2, n-1})."""
    if seeds < 2 or sigma <= 0:
        return float("nan")
    dof = seeds - 1
    if sign == 0:
        critical = stats.t.ppf(1.0 - alpha / 2, dof)
        shift = effect / sigma * np.sqrt(seeds)
        return float(stats.nct.sf(critical, dof, shift) + stats.nct.cdf(-critical, dof, shift))
    critical = stats.t.ppf(1.0 - alpha, dof)
    return float(stats.nct.sf(critical, dof, sign * effect / sigma * np.sqrt(seeds)))


def power_table(
    experiment: Experiment,
    table: pd.DataFrame,
    *,
    alpha: float = 0.05,
    target: float = 0.8,
    max_seeds: int = 12,
    simulations: int = 4000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per output-DS direction (and group): the pilot's estimate, power at the pilot's seed count, and
    ``seeds_needed`` (see the module docstring)."""
    rows = []
    for direction in experiment.directions:
        if direction.measure != "output":
            continue
        for group, part in direction_groups(direction_rows(table, direction), direction):
            estimate = pilot_estimate(part, direction, experiment.axis_names)
            powers = {}
            for n in range(2, max_seeds + 1):
                if direction.test == "paired":
                    effect = float(estimate.means[1] - estimate.means[0])
                    powers[n] = paired_power(effect, estimate.sigma, n, sign=direction.sign, alpha=alpha)
                else:
                    powers[n] = spearman_power(estimate.levels, estimate.means, estimate.sigma, n,
                                               sign=direction.sign, alpha=alpha, simulations=simulations,
                                               seed=seed)  # fmt: skip
            reached = [n for n, value in powers.items() if value >= target]
            rows.append({
                "experiment": experiment.name, "direction": direction.label,
                "group": ", ".join(f"{axis}={value}" for axis, value in group.items()),
                "test": direction.test, "pilot_seeds": estimate.seeds,
                "effect": float(estimate.means[-1] - estimate.means[0]), "seed_sd": estimate.sigma,
                "sd_dof": estimate.dof, "power_at_pilot_seeds": powers.get(estimate.seeds, float("nan")),
                "seeds_needed": reached[0] if reached else None, "target": target, "alpha": alpha,
                "max_seeds": max_seeds, "simulations": simulations, "seed": seed,
                **{f"power_{n}": value for n, value in powers.items()},
            })  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.power RESULTS_DIR``: writes RESULTS_DIR/power.csv and prints it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a pilot results folder (with measurements.csv)")
    parser.add_argument("--target", type=float, default=0.8, help="power to reach (default 0.8)")
    parser.add_argument("--max-seeds", type=int, default=12, help="largest seed count considered (default 12)")
    parser.add_argument("--simulations", type=int, default=4000, help="simulated experiments per seed count")
    args = parser.parse_args(argv)
    try:
        experiment, table = read_results(args.results)
        power = power_table(experiment, table, target=args.target, max_seeds=args.max_seeds,
                            simulations=args.simulations)  # fmt: skip
    except ValueError as error:
        parser.exit(2, f"error: {' '.join(str(error).split())}\n")
    power.to_csv(args.results / POWER_TABLE, index=False)
    if power.empty:
        print(f"{experiment.name} declares no output-DS direction: nothing to compute")
        return 0
    columns = ["direction", "group", "pilot_seeds", "effect", "seed_sd", "power_at_pilot_seeds", "seeds_needed"]
    print(power[columns].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
