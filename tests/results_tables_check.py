"""Checks shared by the miniature-run tests: ``plot_scripts/results_tables.py``'s markdown against the results
files, and ``directions.csv`` against statistics recomputed here from ``measurements.csv``.

Use: ``from tests.results_tables_check import check_results_tables, check_directions``.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from experiments.directions import is_two_sided
from experiments.registry import get_experiment
from experiments.results_tables import main as results_tables


def markdown_tables(text: str) -> list[pd.DataFrame]:
    """Every markdown table in ``text`` as a DataFrame of strings (naive parser: header, rule, rows)."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            tables.append(pd.DataFrame(block[2:], columns=block[0]))
            block = []
    return tables


def _close(cell: str, value: float, digits: int) -> bool:
    if cell == "—":
        return not np.isfinite(value)
    return math.isclose(float(cell), value, rel_tol=0.51 * 10 ** (1 - digits), abs_tol=1e-12)


def _text(column: pd.Series) -> pd.Series:
    # Axis values as the markdown writes them: integers read back as floats lose their ".0".
    return column.astype(str).str.replace(r"\.0$", "", regex=True)


def check_results_tables(results: Path, axes: list[str]) -> None:
    """The script's DS table (network output DS mean, input DS, test Chamfer; ×10⁻³) and directions table match
    the files, recomputed here with pandas."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert results_tables([str(results)]) == 0
    ds, directions = markdown_tables(out.getvalue())
    table = pd.read_csv(results / "measurements.csv")
    assert list(ds.columns[: len(axes)]) == axes
    networks = table[(table["measure"] == "output") & (table["predictor"] == "network")]
    assert len(ds) == len(networks.drop_duplicates(axes))
    for _, row in ds.iterrows():
        runs = networks
        for axis in axes:
            runs = runs[_text(runs[axis]) == row[axis]]
        assert len(runs) >= 1
        mean = runs["ds"].mean() * 1e3
        assert _close(row["output DS"].split(" ")[0], mean, 4), (row["output DS"], mean)
        assert row["output DS"].endswith(f"(n = {len(runs)})")
        assert _close(row["test Chamfer"], runs["chamfer"].mean() * 1e3, 4)
        for measure, column in (("input_image", "input image DS"), ("input_shape", "input shape DS")):
            inputs = table[table["measure"] == measure]
            for axis in axes:
                inputs = inputs[inputs[axis].isna() | (_text(inputs[axis]) == row[axis])]
            assert len(inputs) == 1, (measure, row.to_dict())
            assert _close(row[column], inputs["ds"].iloc[0] * 1e3, 4)
    written = pd.read_csv(results / "directions.csv")
    assert len(directions) == len(written)
    for (_, cell), (_, expected) in zip(directions.iterrows(), written.iterrows(), strict=True):
        assert cell["verdict"] == f"**{expected['verdict']}**"
        assert int(cell["runs"]) == expected["runs"] and int(cell["seeds"]) == expected["seeds"]
        assert _close(cell["effect ×10⁻³ [95 % CI]"].split(" ")[0], expected["effect"] * 1e3, 3)
        assert _close(cell["statistic"], expected["statistic"], 3)
        p, *sided = str(cell["p"]).split(" ", 1)
        assert sided == (["(two-sided)"] if is_two_sided(str(expected["expected"])) else []), cell["p"]
        assert _close(p, expected["p"], 2), (cell["p"], expected["p"])


def check_directions(results: Path) -> None:
    """directions.csv against its declaration, recomputed from measurements.csv: runs, seeds, end-to-end effect,
    Spearman rho where defined, and the verdict rule."""
    table = pd.read_csv(results / "measurements.csv")
    experiment = get_experiment(str(table["experiment"].iloc[0]))
    written = pd.read_csv(results / "directions.csv", keep_default_na=False, na_values=["", "nan"])
    assert len(written) >= len(experiment.directions)
    for direction in experiment.directions:
        mine = written[written["direction"] == direction.label]
        assert len(mine) >= 1, direction.label
        for _, row in mine.iterrows():
            rows = table[table["measure"] == direction.measure]
            if direction.measure == "output":
                rows = rows[rows["predictor"] == direction.predictor]
            for axis, value in direction.where.items():
                rows = rows[rows[axis].astype(str) == str(value)]
            group = row["group"] if isinstance(row["group"], str) else ""
            for part in filter(None, group.split(", ")):
                axis, value = part.split("=")
                rows = rows[rows[axis].astype(str) == value]
            if direction.test == "paired":
                low_level, high_level = direction.levels
                rows = rows[rows[direction.axis].isin(direction.levels)]
            else:
                low_level, high_level = rows[direction.axis].min(), rows[direction.axis].max()
            assert row["runs"] == len(rows)
            seeds = rows["seed"].fillna(-1)
            low = rows[rows[direction.axis] == low_level].set_index(seeds[rows[direction.axis] == low_level])["ds"]
            high = rows[rows[direction.axis] == high_level].set_index(seeds[rows[direction.axis] == high_level])["ds"]
            both = low.index.intersection(high.index)
            assert row["seeds"] == len(both)
            assert math.isclose(row["effect"], float((high[both] - low[both]).mean()), rel_tol=1e-9, abs_tol=1e-15)
            if direction.test == "spearman" and len(rows) >= 3 and rows["ds"].nunique() > 1:
                rho = stats.spearmanr(rows[direction.axis], rows["ds"]).statistic
                assert math.isclose(row["statistic"], rho, rel_tol=1e-9)
            if not np.isfinite(row["p"]):
                assert row["verdict"] == "not established"
            elif direction.sign != 0 and row["p"] < row["alpha"]:
                assert row["verdict"] == "holds"
