"""Tests of an experiment's expected directions (:class:`experiments.declaration.Direction`) on its result tables.

For every declared direction (and every value of its ``per`` axes) one row of ``directions.csv``:

* **statistic** and one-sided **p** in the declared direction: Spearman's rho of DS against the axis over every
  run with its permutation p (``scipy.stats.permutation_test``: exact up to 8 runs, else 50,000 seeded
  permutations), or for a two-level comparison the paired t statistic over the runs that share every other axis,
  i.e. the seeds (``scipy.stats.ttest_rel``). A direction declared without a sign gets the two-sided p.
* **effect**: the end-to-end difference, mean DS at the last level minus mean DS at the first (``levels[1]`` minus
  ``levels[0]`` for a paired test), with a percentile bootstrap 95 % CI over seeds (seeds drawn with replacement,
  ``directions.bootstrap_resamples`` draws from ``numpy.random.default_rng(directions.bootstrap_seed)``); no CI
  with fewer than two seeds.
* **verdict**: ``holds`` (p < alpha in the declared direction), ``reversed`` (p < alpha in the other direction),
  ``not established`` otherwise (also when the test is undefined: fewer than 3 runs for rho, fewer than 2 pairs
  for the t-test, or constant values). Without a declared sign: ``rises`` / ``falls`` / ``not established``.
* **secondary** statistic over the DS-vs-k curve (``ds_vs_k.csv``): the share of k in ``directions.k_range``
  where the statistic (rho or mean paired difference) has the declared sign (without a sign: the sign it has at
  the preset's k), so a verdict that depends on k shows.

Works on any results folder (old ones too): ``python -m experiments.directions results/synthetic/quick``.
``--converged-only log/shapenet/cpu/nviews`` tests the same directions on the runs of that runs folder that meet
the convergence criterion only (a sensitivity analysis, written to ``directions_converged.csv``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from experiments.declaration import Direction, Experiment
from experiments.registry import get_experiment
from models.config import Key

DIRECTIONS_TABLE = "directions.csv"
CONVERGED_TABLE = "directions_converged.csv"
"""Directions of the runs meeting the convergence criterion only (``--converged-only``): a sensitivity analysis."""
HOLDS, REVERSED, NOT_ESTABLISHED, RISES, FALLS = "holds", "reversed", "not established", "rises", "falls"

SETTINGS = {
    "alpha": Key(float, 0.05, "significance level of the verdicts (one-sided p)", minimum=1e-6, maximum=0.5),
    "k_range": Key(
        list,
        None,
        "[k_min, k_max] of the secondary statistic over ds_vs_k.csv; null = every k of ds.k_curve",
        nullable=True,
        item_type=int,
        minimum=1,
    ),
    "bootstrap_resamples": Key(int, 10000, "bootstrap draws of the effect's CI over seeds", minimum=100),
    "bootstrap_seed": Key(int, 0, "seed of the bootstrap draws", minimum=0),
}
PERMUTATIONS = 50000  # 8! = 40320: exact Spearman tests up to 8 runs
DEFAULTS = {name: key.default for name, key in SETTINGS.items()}

COLUMNS = (
    "experiment", "direction", "group", "measure", "predictor", "axis", "expected", "test", "statistic", "p",
    "effect", "ci_low", "ci_high", "runs", "seeds", "verdict", "k", "k_range", "k_count", "k_share",
    "alpha", "bootstrap_resamples", "bootstrap_seed",
)  # fmt: skip


# ------------------------------------------------------------------------------------------ statistics


def spearman(x: Sequence[float], y: Sequence[float], *, alternative: str, seed: int = 0) -> tuple[float, float]:
    """Spearman's rho of y against x (ties: average ranks) and its permutation p-value.

    Args:
        x, y: (N,) values, N >= 3.
        alternative: "greater" (y rises with x), "less" or "two-sided".
        seed: seed of the random permutations when N! exceeds :data:`PERMUTATIONS` (exact test otherwise:
            N <= 8). A permutation test, not the t approximation, because N is small (4 to 24 runs): at N = 4 a
            perfect rank order has the exact one-sided p = 1/24, which the approximation puts at 0.

    Returns:
        (rho, p); (nan, nan) with fewer than 3 points or a constant x or y.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    # The sampled permutations act on positions: in a canonical order the p of the same (x, y) pairs does not
    # depend on the order of the table's rows (pooled folders list their runs in another order).
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    rx = stats.rankdata(x)

    def rho(ry: np.ndarray, axis: int = -1) -> np.ndarray:
        centred_x = rx - rx.mean()
        centred_y = ry - ry.mean(axis=axis, keepdims=True)
        return (centred_y * centred_x).sum(axis=axis) / np.sqrt((centred_x**2).sum() * (centred_y**2).sum(axis=axis))

    result = stats.permutation_test(
        (stats.rankdata(y),),
        rho,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=PERMUTATIONS,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return float(result.statistic), float(result.pvalue)


def paired_t(low: Sequence[float], high: Sequence[float], *, alternative: str) -> tuple[float, float]:
    """Paired t statistic of high - low (``scipy.stats.ttest_rel``) and its p-value for ``alternative``
    ("greater": high > low, "less", "two-sided"). (nan, nan) with fewer than 2 pairs or identical differences
    (no variance to test against)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    differences = high - low
    if len(differences) < 2 or np.ptp(differences) == 0:
        return float("nan"), float("nan")
    result = stats.ttest_rel(high, low, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


def bootstrap_mean_ci(
    values: Sequence[float], *, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (one per seed): draws with replacement from
    ``numpy.random.default_rng(seed)``. (nan, nan) with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def verdict(p_expected: float, p_reversed: float, *, alpha: float) -> str:
    """holds (p in the declared direction < alpha), reversed (p in the other direction < alpha), else not
    established (also when a p is undefined)."""
    if np.isfinite(p_expected) and p_expected < alpha:
        return HOLDS
    if np.isfinite(p_reversed) and p_reversed < alpha:
        return REVERSED
    return NOT_ESTABLISHED


def two_sided_verdict(statistic: float, p: float, *, alpha: float) -> str:
    """rises / falls (two-sided p < alpha, by the statistic's sign), else not established."""
    if np.isfinite(p) and p < alpha:
        return RISES if statistic > 0 else FALLS
    return NOT_ESTABLISHED


# ---------------------------------------------------------------------------------------- the table


def direction_table(
    experiment: Experiment,
    table: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The ``directions.csv`` rows of an experiment (see the module docstring).

    Args:
        experiment: the declaration whose ``directions`` are tested.
        table: ``measurements.csv`` (or a ``ds_table.csv`` with the axis columns): columns ``measure``,
            ``predictor``, ``ds``, ``k`` and the axes.
        curves: ``ds_vs_k.csv`` (columns ``measure``, ``predictor``, the axes, ``k``, ``ds``), or None.
        settings: the preset's ``directions`` section (alpha, k_range, bootstrap_resamples, bootstrap_seed);
            None: the defaults.

    Returns:
        One row per direction and value of its ``per`` axes, columns :data:`COLUMNS`.
    """
    settings = {**DEFAULTS, **(settings or {})}
    rows = []
    for direction in experiment.directions:
        selected = direction_rows(table, direction)
        selected_curves = direction_rows(curves, direction) if curves is not None and len(curves) else None
        for group, rows_of_group in direction_groups(selected, direction):
            curve = None if selected_curves is None else _in_group(selected_curves, direction, group)
            rows.append(_row(experiment, direction, group, rows_of_group, curve, settings))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def direction_rows(table: pd.DataFrame, direction: Direction) -> pd.DataFrame:
    """The rows of ``table`` a direction is tested on: its measure (and predictor), its ``where`` values, the two
    levels of a paired test; rows without a DS left out."""
    rows = table[table["measure"] == direction.measure]
    if direction.measure == "output":
        rows = rows[rows["predictor"] == direction.predictor]
    for axis, value in direction.where.items():
        rows = rows[rows[axis].map(_text) == str(value)]
    if direction.test == "paired":
        rows = rows[rows[direction.axis].map(_text).isin([str(level) for level in direction.levels])]
    return rows[rows["ds"].notna()]


def _text(value: Any) -> str:
    # Axis values compared as text; a missing one (an input measure has no seed) is "-", so it still matches.
    return "-" if pd.isna(value) else str(value)


def direction_groups(rows: pd.DataFrame, direction: Direction) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """``rows`` split by the direction's ``per`` axes: (the group's axis values, its rows); one group without."""
    if not direction.per:
        return [({}, rows)]
    return [
        (dict(zip(direction.per, key if isinstance(key, tuple) else (key,), strict=True)), part)
        for key, part in rows.groupby(list(direction.per), sort=True)
    ]


def _in_group(rows: pd.DataFrame, direction: Direction, group: Mapping[str, Any]) -> pd.DataFrame:
    for axis, value in group.items():
        rows = rows[rows[axis].map(_text) == str(value)]
    return rows


def _ends(rows: pd.DataFrame, direction: Direction, axes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """DS at the first and the last level, one pair per combination of the other axes (the seeds) present at both.

    Runs are matched on every other axis of the experiment; input measures (no seed) give one pair.
    """
    if direction.test == "paired":
        level = rows[direction.axis].map(_text)
        first, last = (str(value) for value in direction.levels)
    else:
        level = rows[direction.axis].astype(float)
        first, last = level.min(), level.max()
    keys = rows[[axis for axis in axes if axis != direction.axis and axis in rows]].map(_text)
    frame = keys.assign(_pair="", _level=level.to_numpy(), _ds=rows["ds"].astype(float).to_numpy())
    pivot = frame.pivot_table(index=["_pair", *keys.columns], columns="_level", values="_ds", aggfunc="mean")
    if first not in pivot.columns or last not in pivot.columns or first == last:
        return np.array([]), np.array([])
    both = pivot[[first, last]].dropna()
    return both[first].to_numpy(), both[last].to_numpy()


def _test(rows: pd.DataFrame, direction: Direction, axes: Sequence[str], alternative: str) -> tuple[float, float]:
    if direction.test == "paired":
        low, high = _ends(rows, direction, axes)
        return paired_t(low, high, alternative=alternative)
    return spearman(rows[direction.axis].astype(float), rows["ds"].astype(float), alternative=alternative)


def _row(
    experiment: Experiment,
    direction: Direction,
    group: Mapping[str, Any],
    rows: pd.DataFrame,
    curve: pd.DataFrame | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    axes = experiment.axis_names
    if direction.sign == 0:
        statistic, p = _test(rows, direction, axes, "two-sided")
        outcome = two_sided_verdict(statistic, p, alpha=settings["alpha"])
    else:
        expected, other = ("greater", "less") if direction.sign > 0 else ("less", "greater")
        statistic, p = _test(rows, direction, axes, expected)
        outcome = verdict(p, _test(rows, direction, axes, other)[1], alpha=settings["alpha"])
    low, high = _ends(rows, direction, experiment.axis_names)
    differences = high - low
    ci = bootstrap_mean_ci(differences, resamples=settings["bootstrap_resamples"], seed=settings["bootstrap_seed"])
    k_values = sorted({int(k) for k in rows["k"].dropna()}) if "k" in rows else []
    k_range, k_count, k_share = _secondary(direction, curve, experiment.axis_names, settings["k_range"], statistic)
    return {
        "experiment": experiment.name,
        "direction": direction.label,
        "group": ", ".join(f"{axis}={value}" for axis, value in group.items()),
        "measure": direction.measure,
        "predictor": direction.predictor if direction.measure == "output" else "",
        "axis": direction.axis,
        "expected": _expected(direction),
        "test": "Spearman rho over runs" if direction.test == "spearman" else "paired t over seeds",
        "statistic": statistic,
        "p": p,
        "effect": float(differences.mean()) if len(differences) else float("nan"),
        "ci_low": ci[0],
        "ci_high": ci[1],
        "runs": len(rows),
        "seeds": len(differences),
        "verdict": outcome,
        "k": "/".join(map(str, k_values)),
        "k_range": k_range,
        "k_count": k_count,
        "k_share": k_share,
        "alpha": settings["alpha"],
        "bootstrap_resamples": settings["bootstrap_resamples"],
        "bootstrap_seed": settings["bootstrap_seed"],
    }


def _expected(direction: Direction) -> str:
    if direction.test == "paired":
        low, high = direction.levels
        return {1: f"{high} > {low}", -1: f"{high} < {low}", 0: f"{high} vs {low}"}[direction.sign]
    return {1: "rises", -1: "falls", 0: "either way"}[direction.sign]


def is_two_sided(expected: str) -> bool:
    """Whether a ``directions.csv`` row's ``p`` is two-sided: its ``expected`` cell is that of a direction declared
    without a sign ("either way", "viewer vs object"); every other row's p is one-sided."""
    return expected == "either way" or " vs " in expected


def _secondary(
    direction: Direction,
    curve: pd.DataFrame | None,
    axes: Sequence[str],
    k_range: Sequence[int] | None,
    statistic: float,
) -> tuple[str, int, float]:
    """(k range, number of k with a defined statistic, share of them where it has the expected sign)."""
    if curve is None or curve.empty:
        return "", 0, float("nan")
    ks = sorted({int(k) for k in curve["k"]})
    if k_range is not None:
        ks = [k for k in ks if k_range[0] <= k <= k_range[-1]]
    sign = direction.sign if direction.sign != 0 else int(np.sign(statistic)) if np.isfinite(statistic) else 0
    signs = []
    for k in ks:
        rows = curve[curve["k"] == k]
        if direction.test == "paired":
            low, high = _ends(rows, direction, axes)
            value = float((high - low).mean()) if len(low) else float("nan")
        else:
            x, y = rows[direction.axis].astype(float), rows["ds"].astype(float)
            value = stats.spearmanr(x, y).statistic if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan
        if np.isfinite(value):
            signs.append(np.sign(value) == sign and sign != 0)
    described = f"{ks[0]}-{ks[-1]}" if ks else ""
    return described, len(signs), float(np.mean(signs)) if signs else float("nan")


# ----------------------------------------------------------------------------------------- the files


def write_directions(
    experiment: Experiment,
    results_dir: Path,
    table: pd.DataFrame | None = None,
    curves: pd.DataFrame | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Writes ``<results_dir>/directions.csv`` from the tables (read from ``measurements.csv`` and, if present,
    ``ds_vs_k.csv`` when not given) and returns it."""
    from experiments.records import write_table

    results_dir = Path(results_dir)
    if table is None:
        table = read_table(results_dir / "measurements.csv", required=True)
    if curves is None:
        curves = read_table(results_dir / "ds_vs_k.csv", required=False)
    directions = direction_table(experiment, table, curves, settings=settings)
    write_table(directions, results_dir / DIRECTIONS_TABLE)
    return directions


def format_directions(directions: pd.DataFrame) -> str:
    """The directions table as the job's summary prints it (one line per direction)."""
    lines = []
    for row in directions.itertuples(index=False):
        group = f" [{row.group}]" if isinstance(row.group, str) and row.group else ""
        ci = f" [{row.ci_low:+.3g}, {row.ci_high:+.3g}]" if np.isfinite(row.ci_low) else ""
        secondary = f"; k {row.k_range}: {row.k_share:.0%} of {row.k_count} k" if row.k_count else ""
        lines.append(
            f"{row.verdict:>15}  {row.direction}{group}: {statistic_name(row.test)} = {row.statistic:+.3g}, "
            f"p = {row.p:.3g}, effect {row.effect:+.3g}{ci}, {row.runs} runs, {row.seeds} seeds{secondary}"
        )
    return "\n".join(lines)


def statistic_name(test: str) -> str:
    """The symbol of a ``directions.csv`` test's statistic: ``rho`` (Spearman) or ``t`` (paired t)."""
    return "rho" if test.startswith("Spearman") else "t"


def read_table(path: Path, *, required: bool) -> pd.DataFrame | None:
    """A results folder's CSV table; None when it is missing and not ``required``.

    Raises:
        ValueError: a required table is missing.
    """
    if not path.is_file():
        if required:
            raise ValueError(f"no {path.name} in {path.parent}: evaluate the experiment first")
        return None
    return pd.read_csv(path)


def read_results(results_dir: Path) -> tuple[Experiment, pd.DataFrame]:
    """A results folder's experiment declaration and its ``measurements.csv``.

    Raises:
        ValueError: no ``measurements.csv``, or one without rows or without the ``experiment`` column.
    """
    path = Path(results_dir) / "measurements.csv"
    table = read_table(path, required=True)
    if table.empty or "experiment" not in table:
        raise ValueError(f"{path} has no experiment column or no rows")
    return get_experiment(str(table["experiment"].iloc[0])), table


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.directions RESULTS_DIR...``: (re)writes each folder's directions.csv and prints it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results folders (with measurements.csv)")
    parser.add_argument(
        "--converged-only",
        type=Path,
        default=None,
        metavar="RUNS_DIR",
        help="sensitivity analysis of one results folder: the directions of the runs of RUNS_DIR (its sweep's "
        "runs folder) that meet the convergence criterion, written to " + CONVERGED_TABLE + " (directions.csv "
        "stays the declared analysis of every run)",
    )
    args = parser.parse_args(argv)
    if args.converged_only is not None and len(args.results) != 1:
        parser.error("--converged-only takes one results folder")
    for folder in args.results:
        try:
            if args.converged_only is None:
                experiment, table = read_results(folder)
                directions = write_directions(experiment, folder, table, settings=recorded_settings(folder))
                path = DIRECTIONS_TABLE
            else:
                experiment, directions, dropped = converged_directions(folder, args.converged_only)
                path = CONVERGED_TABLE
                print(f"left out {len(dropped)} runs that do not meet the criterion: {', '.join(dropped) or 'none'}")
        except ValueError as error:
            parser.exit(2, f"error: {' '.join(str(error).split())}\n")
        print(f"== {experiment.name}: {folder / path}")
        print(format_directions(directions))
    return 0


def converged_directions(results_dir: Path, runs_dir: Path) -> tuple[Experiment, pd.DataFrame, list[str]]:
    """The directions of a results folder's runs that meet the convergence criterion (by the medians,
    :func:`experiments.convergence.sweep_convergence` on ``runs_dir``), tested with the folder's recorded settings
    and written to ``<results_dir>/`` :data:`CONVERGED_TABLE`; returns the experiment, the directions and the runs
    left out. A sensitivity analysis, not the declared one.

    Raises:
        ValueError: a missing table or runs folder, or a network run of the results that ``runs_dir`` lacks.
    """
    from experiments.convergence import sweep_convergence, without_unconverged
    from experiments.records import write_table

    results_dir = Path(results_dir)
    experiment, table = read_results(results_dir)
    curves = read_table(results_dir / "ds_vs_k.csv", required=False)
    table, curves, dropped = without_unconverged(table, curves, sweep_convergence(runs_dir), experiment.axis_names)
    directions = direction_table(experiment, table, curves, settings=recorded_settings(results_dir))
    write_table(directions, results_dir / CONVERGED_TABLE)
    return experiment, directions, dropped


def recorded_settings(folder: Path) -> dict[str, Any] | None:
    """The ``directions`` section of the preset recorded with the folder's records, if any."""
    import json

    for record in sorted((folder / "records").glob("*.json")):
        preset = json.loads(record.read_text()).get("settings", {}).get("preset", {})
        return preset.get("directions")
    return None


if __name__ == "__main__":
    sys.exit(main())
