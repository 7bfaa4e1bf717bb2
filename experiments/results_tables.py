"""The README's results tables, regenerated from a results folder's files (no hand-typed numbers).

For each folder: the DS per grid point (seeds pooled; the network's output DS as mean ± sample std over seeds and
its test Chamfer, ×10⁻³ as in the README) from ``measurements.csv``, and the directions table from
``directions.csv`` (written by :mod:`experiments.directions`; recomputed when missing, e.g. for old results).

    python plot_scripts/results_tables.py results/synthetic/quick results/shapenet/quick/* > tables.md
    python plot_scripts/results_tables.py --stability seeds12 seeds34 seeds56 pooled   # verdicts side by side
    python plot_scripts/results_tables.py --stability --per-seed results/shapenet/cpu/nviews  # each seed, then all
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.declaration import Experiment
from experiments.directions import (
    DIRECTIONS_TABLE,
    direction_table,
    is_two_sided,
    read_results,
    read_table,
    recorded_settings,
    statistic_name,
    write_directions,
)

SCALE = 1e3  # DS and Chamfer are printed ×10⁻³, as in the README
MEASURE_NAMES = {"input_image": "input image DS", "input_shape": "input shape DS", "output": "output DS"}


def number(value: float, digits: int = 4) -> str:
    """A table cell: ``digits`` significant digits, "—" for a missing value."""
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame of strings as a GitHub markdown table."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def ds_table(experiment: Experiment, table: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point without its seed: each (predictor, measure)'s mean DS, the network's output DS as
    mean ± std (n seeds) and its mean test Chamfer, all ×10⁻³, as strings."""
    axes = [axis for axis in experiment.axis_names if axis != "seed" and axis in table]
    rows = table[table["measure"] != "gt_test"].copy()
    rows["column"] = [
        MEASURE_NAMES[m] if p == "network" or pd.isna(p) else f"{p} {MEASURE_NAMES.get(m, m)}"
        for p, m in zip(rows["predictor"], rows["measure"], strict=True)
    ]
    columns = [c for c in MEASURE_NAMES.values() if c in set(rows["column"])]
    columns += sorted(set(rows["column"]) - set(columns))
    # Grid points from the rows that have every axis; a row without an axis (an input DS taken once for all its
    # values, a baseline independent of the decoder) belongs to every point.
    complete = rows[rows[axes].notna().all(axis=1)] if axes else rows
    points = (complete if len(complete) else rows)[axes].drop_duplicates().sort_values(axes)
    out = []
    for point in points.itertuples(index=False):
        at = rows
        for axis, value in zip(axes, point, strict=True):
            at = at[(at[axis] == value) | at[axis].isna()]
        cells = {axis: _cell(value) for axis, value in zip(axes, point, strict=True)}
        for column in columns:
            values = at[at["column"] == column]["ds"].astype(float) * SCALE
            if column == MEASURE_NAMES["output"]:
                cells[column] = _mean_std(values)
                network = at[(at["column"] == column)]["chamfer"].astype(float) * SCALE
                cells["test Chamfer"] = number(network.mean()) if len(network) else "—"
            else:
                cells[column] = number(values.mean()) if len(values) else "—"
        out.append(cells)
    return pd.DataFrame(out)


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "—" if pd.isna(value) else str(value)


def _mean_std(values: pd.Series) -> str:
    if values.empty:
        return "—"
    if len(values) < 2:
        return f"{number(values.mean())} (n = 1)"
    return f"{number(values.mean())} ± {number(values.std(ddof=1), 2)} (n = {len(values)})"


def directions_markdown_table(directions: pd.DataFrame) -> pd.DataFrame:
    """The directions table's columns as the README shows them (strings)."""
    out = []
    for row in directions.itertuples(index=False):
        ci = f" [{number(row.ci_low * SCALE, 3)}, {number(row.ci_high * SCALE, 3)}]" if np.isfinite(row.ci_low) else ""
        secondary = f"{row.k_share:.0%} of k {row.k_range}" if row.k_count else "—"
        out.append({
            "direction": _direction_label(row),
            "test": row.test,
            "statistic": number(row.statistic, 3),
            "p": _p_cell(row),
            "effect ×10⁻³ [95 % CI]": f"{number(row.effect * SCALE, 3)}{ci}",
            "runs": int(row.runs),
            "seeds": int(row.seeds),
            "verdict": f"**{row.verdict}**",
            "holds over k": secondary,
        })  # fmt: skip
    return pd.DataFrame(out)


def _p_cell(row: Any, mark: str = " (two-sided)") -> str:
    """A directions row's p: one-sided in the declared direction; followed by ``mark`` where it is two-sided (a
    direction declared without a sign)."""
    return number(row.p, 2) + (mark if is_two_sided(row.expected) else "")


def _direction_label(row: Any) -> str:
    """A ``directions.csv`` row's direction with its group, e.g. ``output DS VC > OC (decoder=psgn)``."""
    group = f" ({row.group})" if isinstance(row.group, str) and row.group else ""
    return f"{row.direction}{group}"


def results_markdown(results_dir: Path | str) -> str:
    """The markdown of one results folder: a heading, the DS table and the directions table."""
    results_dir = Path(results_dir)
    experiment, table = read_results(results_dir)
    directions_file = results_dir / DIRECTIONS_TABLE
    directions = (
        pd.read_csv(directions_file) if directions_file.is_file() else write_directions(experiment, results_dir)
    )
    preset = ", ".join(sorted({str(p) for p in table["preset"].dropna()}))
    gt = table[table["measure"] == "gt_test"]["ds"].astype(float) * SCALE
    parts = [f"### {experiment.name} ({preset})", "", markdown(ds_table(experiment, table)), ""]
    if len(gt):
        parts += [f"Ground-truth test shape DS: {number(gt.iloc[0])} ×10⁻³.", ""]
    parts += [markdown(directions_markdown_table(directions)), ""]
    return "\n".join(parts)


def stability_markdown(results_dirs: Sequence[Path | str], *, per_seed: bool = False) -> str:
    """One table comparing the verdicts of several results folders of one experiment (independent seed sets and
    their pool, :mod:`experiments.pool`): a row per direction, a column per folder headed by its seeds, each cell
    ``verdict (statistic, p)`` from the folder's ``directions.csv``.

    Args:
        results_dirs: evaluated results folders of one experiment.
        per_seed: also a column per seed of each folder, before the folder's own: the directions of the folder's
            rows of that seed (and its seedless rows: input DS, baselines), tested as
            :func:`experiments.directions.direction_table` with the folder's recorded settings. For a folder that
            holds several seeds, so that its seeds are compared without splitting it into folders.

    Raises:
        ValueError: a folder without ``directions.csv`` or ``measurements.csv``, or folders whose directions differ.
    """
    columns: dict[str, pd.Series] = {}
    labels: list[str] | None = None
    for folder in map(Path, results_dirs):
        directions_file, measurements_file = folder / DIRECTIONS_TABLE, folder / "measurements.csv"
        if not directions_file.is_file() or not measurements_file.is_file():
            raise ValueError(f"{folder} has no {DIRECTIONS_TABLE} or measurements.csv: evaluate or pool it first")
        experiment, measurements = read_results(folder)
        seeds = sorted({int(seed) for seed in measurements["seed"].dropna()})
        tables = directions_per_seed(experiment, folder, measurements, seeds) if per_seed and len(seeds) > 1 else []
        tables.append((_seed_label(seeds), pd.read_csv(directions_file)))
        for label, directions in tables:
            names = [_direction_label(row) for row in directions.itertuples(index=False)]
            if labels is not None and names != labels:
                raise ValueError(f"{folder} tests other directions than {results_dirs[0]}; compare one experiment only")
            labels = names
            columns[label] = pd.Series([_verdict_cell(row) for row in directions.itertuples(index=False)])
    table = pd.DataFrame({"direction": labels or [], **columns})
    return markdown(table) + "\n"


def directions_per_seed(
    experiment: Experiment, folder: Path, measurements: pd.DataFrame, seeds: Sequence[int]
) -> list[tuple[str, pd.DataFrame]]:
    """``(column label, directions)`` of each seed of a results folder: its rows of that seed and the seedless
    ones, tested with the folder's recorded ``directions`` settings."""
    curves = read_table(folder / "ds_vs_k.csv", required=False)
    settings = recorded_settings(folder)
    out = []
    for seed in seeds:
        table = _of_seed(measurements, seed)
        curve = None if curves is None else _of_seed(curves, seed)
        out.append((_seed_label([seed]), direction_table(experiment, table, curve, settings=settings)))
    return out


def _of_seed(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    if "seed" not in table:
        return table
    return table[table["seed"].isna() | (table["seed"] == seed)]


def _verdict_cell(row: Any) -> str:
    return (
        f"**{row.verdict}** ({statistic_name(row.test).replace('rho', 'ρ')} = {number(row.statistic, 3)}, "
        f"p = {_p_cell(row, ', two-sided')})"
    )


def _seed_label(seeds: Sequence[int]) -> str:
    if not seeds:
        return "seeds —"
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results folders (with measurements.csv)")
    parser.add_argument(
        "--stability",
        action="store_true",
        help="one table of the folders' verdicts side by side (seed sets of one experiment and their pool)",
    )
    parser.add_argument(
        "--per-seed",
        action="store_true",
        help="with --stability: also a column per seed of each folder (a folder that holds several seeds)",
    )
    args = parser.parse_args(argv)
    if args.per_seed and not args.stability:
        parser.error("--per-seed goes with --stability")
    try:
        if args.stability:
            text = stability_markdown(args.results, per_seed=args.per_seed)
        else:
            text = "\n".join(results_markdown(folder) for folder in args.results)
    except ValueError as error:
        parser.exit(2, f"error: {' '.join(str(error).split())}\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
