"""Pool independent seed sets of one experiment into one results folder and test the directions on all seeds.

Issue 19's proof runs a preset several times with disjoint seeds (``--seeds 1 2``, ``--seeds 3 4``, ...), each
in its own results folder, to show whether each verdict is stable. Pooled, the seed sets are one larger
experiment; ``python -m experiments.pool OUT FOLDER FOLDER...`` writes into ``OUT``:

* ``measurements.csv``: every seeded row (the networks' output DS) of every folder, and the seedless rows
  (input DS, ground-truth test DS, recognition baselines) once, from the first folder;
* ``ds_vs_k.csv`` the same way, when every folder has one;
* ``directions.csv`` (:mod:`experiments.directions`, with the first folder's ``directions`` settings);
* ``pooled_from.json``: the folders, their seeds, and the largest relative difference found between the folders'
  seedless measurements.

What is refused (``ValueError`` naming the folders and the value): folders of different experiments or of
different settings (preset, k, method, features, subsample, prediction points); a seed present in two folders
(the sets must be independent); seedless rows that differ between folders in which rows exist or, beyond
``rtol``, in DS (they measure the same data with the same code, so they agree up to floating point across CPUs; a
larger difference means the folders measured different data). The pooled folder is then an ordinary results
folder: ``experiments.power`` and ``plot_scripts/results_tables.py`` read it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dispersion_score.io import atomic_write_text
from experiments.directions import format_directions, recorded_settings, write_directions
from experiments.records import write_table
from experiments.registry import get_experiment

MEASUREMENTS, CURVES, SOURCES = "measurements.csv", "ds_vs_k.csv", "pooled_from.json"
SETTING_COLUMNS = ("preset", "k", "method", "features", "subsample", "prediction_points")
DEFAULT_RTOL = 0.01


@dataclass(frozen=True)
class Pooled:
    """The pooled tables of :func:`pool_results`.

    Attributes:
        measurements: the pooled ``measurements.csv``.
        curves: the pooled ``ds_vs_k.csv``, or None when a folder has none.
        seeds: folder → its sorted seeds.
        seedless_max_rtol: the largest relative DS difference between the folders' seedless rows (0 when equal).
    """

    measurements: pd.DataFrame
    curves: pd.DataFrame | None
    seeds: dict[str, list[int]]
    seedless_max_rtol: float


def pool_results(folders: Sequence[Path], *, rtol: float = DEFAULT_RTOL) -> Pooled:
    """Pool the result tables of independent seed sets (see the module docstring for the rules).

    Args:
        folders: two or more results folders of one experiment, each with ``measurements.csv``.
        rtol: tolerance of the seedless rows' DS between folders (relative to the larger absolute value).

    Raises:
        ValueError: fewer than two folders, a missing or empty table, different experiments or settings,
            overlapping seeds, or seedless rows that disagree.
    """
    folders = [Path(folder) for folder in folders]
    if len(folders) < 2:
        raise ValueError(f"pooling needs two or more results folders, got {len(folders)}")
    tables = [_read_measurements(folder) for folder in folders]
    _check_same_settings(folders, tables)
    seeds = _check_disjoint_seeds(folders, tables)
    measurements, difference = _pool(folders, tables, "ds", rtol)
    curves = None
    if all((folder / CURVES).is_file() for folder in folders):
        curves, curve_difference = _pool(folders, [pd.read_csv(folder / CURVES) for folder in folders], "ds", rtol)
        difference = max(difference, curve_difference)
    return Pooled(measurements, curves, seeds, difference)


def write_pooled(folders: Sequence[Path], out: Path, *, rtol: float = DEFAULT_RTOL) -> pd.DataFrame:
    """Pool ``folders`` into ``out`` (the files of the module docstring) and return the directions table."""
    out = Path(out)
    if out.resolve() in {Path(folder).resolve() for folder in folders}:
        raise ValueError(f"the pooled folder {out} is one of the folders it pools; choose a new one")
    pooled = pool_results(folders, rtol=rtol)
    out.mkdir(parents=True, exist_ok=True)
    write_table(pooled.measurements, out / MEASUREMENTS)
    if pooled.curves is not None:
        write_table(pooled.curves, out / CURVES)
    experiment = get_experiment(str(pooled.measurements["experiment"].iloc[0]))
    settings = recorded_settings(Path(folders[0]))
    directions = write_directions(experiment, out, pooled.measurements, pooled.curves, settings=settings)
    sources = {
        "folders": [str(Path(folder).resolve()) for folder in folders],
        "seeds": pooled.seeds,
        "seedless_max_relative_difference": pooled.seedless_max_rtol,
        "rtol": rtol,
        "directions_settings": settings,
    }
    atomic_write_text(out / SOURCES, json.dumps(sources, indent=2) + "\n")
    return directions


# ------------------------------------------------------------------------------------------------ rules


def _read_measurements(folder: Path) -> pd.DataFrame:
    path = folder / MEASUREMENTS
    if not path.is_file():
        raise ValueError(f"no {MEASUREMENTS} in {folder}: evaluate the experiment first")
    table = pd.read_csv(path)
    if table.empty or "experiment" not in table or "seed" not in table:
        raise ValueError(f"{path} has no rows or lacks the experiment/seed columns")
    return table


def _check_same_settings(folders: Sequence[Path], tables: Sequence[pd.DataFrame]) -> None:
    reference = _settings(tables[0])
    for folder, table in zip(folders[1:], tables[1:], strict=True):
        settings = _settings(table)
        for column in sorted(set(reference) | set(settings)):
            if reference.get(column) != settings.get(column):
                raise ValueError(
                    f"{folder} and {folders[0]} differ in {column}: {settings.get(column)} vs "
                    f"{reference.get(column)}; pool only seed sets of one experiment and preset"
                )


def _settings(table: pd.DataFrame) -> dict[str, list[str]]:
    columns = ["experiment", *(column for column in SETTING_COLUMNS if column in table)]
    return {column: sorted({str(value) for value in table[column].dropna()}) for column in columns}


def _check_disjoint_seeds(folders: Sequence[Path], tables: Sequence[pd.DataFrame]) -> dict[str, list[int]]:
    seeds: dict[str, list[int]] = {}
    owner: dict[int, Path] = {}
    for folder, table in zip(folders, tables, strict=True):
        found = sorted({int(seed) for seed in table["seed"].dropna()})
        for seed in found:
            if seed in owner:
                raise ValueError(
                    f"seed {seed} is in both {owner[seed]} and {folder}: pooled seed sets must be independent"
                )
            owner[seed] = folder
        seeds[str(folder)] = found
    return seeds


def _pool(
    folders: Sequence[Path], tables: Sequence[pd.DataFrame], value: str, rtol: float
) -> tuple[pd.DataFrame, float]:
    """The first table's seedless rows plus every table's seeded rows; the seedless rows checked alike."""
    seedless = [table[table["seed"].isna()] for table in tables]
    keys = [column for column in seedless[0].columns if column not in _MEASURED]
    reference = _keyed(seedless[0], keys, folders[0])
    largest = 0.0
    for folder, rows in zip(folders[1:], seedless[1:], strict=True):
        other = _keyed(rows, keys, folder)
        if set(other.index) != set(reference.index):
            missing = sorted(set(reference.index) ^ set(other.index), key=str)[:3]
            raise ValueError(
                f"{folder} and {folders[0]} measured different seedless rows (e.g. {missing}); "
                "pool only seed sets of one grid"
            )
        a = reference[value].astype(float).to_numpy()
        b = other.loc[reference.index, value].astype(float).to_numpy()
        scale = np.maximum(np.abs(a), np.abs(b))
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.abs(a - b) / scale
        # equal values (both 0 or both missing) agree; one missing value never does
        relative[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
        relative[np.isnan(relative)] = np.inf
        if (relative > rtol).any():
            worst = int(np.argmax(relative))
            raise ValueError(
                f"{folder} and {folders[0]} disagree on the seedless row {reference.index[worst]}: "
                f"{value} {b[worst]!r} vs {a[worst]!r} (relative tolerance {rtol}); they measured different data"
            )
        largest = max(largest, float(relative.max(initial=0.0)))
    seeded = [table[table["seed"].notna()] for table in tables]
    return pd.concat([seedless[0], *seeded], ignore_index=True), largest


# Columns that hold what was measured (or where it was written), not which measurement a row is.
_MEASURED = frozenset({"ds", "inertia", "chamfer", "fscore", "fscore_atlasnet", "ds_seed", "device", "matrix",
                       "predictions", "n"})  # fmt: skip


def _keyed(rows: pd.DataFrame, keys: Sequence[str], folder: Path) -> pd.DataFrame:
    index = pd.MultiIndex.from_frame(rows[list(keys)].astype(str))
    keyed = rows.set_axis(index)
    if keyed.index.has_duplicates:
        raise ValueError(f"{folder}: two seedless rows share {list(keys)}; the table is not one experiment's")
    return keyed


# ---------------------------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m experiments.pool OUT FOLDER FOLDER...``: writes the pooled folder and prints its directions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the pooled results folder to write")
    parser.add_argument("folders", nargs="+", type=Path, help="results folders of disjoint seed sets")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help="tolerance of seedless rows (default 1 %%)")
    args = parser.parse_args(argv)
    try:
        directions = write_pooled(args.folders, args.out, rtol=args.rtol)
    except ValueError as error:
        parser.exit(2, f"error: {' '.join(str(error).split())}\n")
    print(f"== pooled {len(args.folders)} seed sets: {args.out}")
    print(format_directions(directions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
