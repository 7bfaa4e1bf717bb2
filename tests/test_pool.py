"""Pooling independent seed sets (experiments.pool): a results table split by seed and pooled again gives the
directions of the whole table; what must be refused is refused, naming the folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.directions import direction_table
from experiments.pool import main, pool_results, write_pooled
from experiments.registry import get_experiment

SEEDS = (1, 2, 3, 4)
S_VALUES = (1, 10, 20, 35)


def _measurements(seeds: tuple[int, ...] = SEEDS, rng_seed: int = 0) -> pd.DataFrame:
    """A synthetic-experiment measurements table: seedless input DS and baselines, the networks' DS per seed."""
    rng = np.random.default_rng(rng_seed)
    common = {"experiment": "synthetic", "preset": "quick", "k": 2, "method": "pam"}
    rows = [{**common, "measure": "gt_test", "ds": 5e-3}]
    for kind in ("image_aug", "shape_aug"):
        for s in S_VALUES:
            point = {**common, "kind": kind, "s": s}
            rows.append({**point, "measure": "input_image", "ds": 1e-4 * s if kind == "image_aug" else 4e-3})
            rows.append({**point, "measure": "input_shape", "ds": 1e-4 * s if kind == "shape_aug" else 4e-3})
            rows.append({**point, "measure": "output", "predictor": "oracle", "ds": 3e-3, "chamfer": 4e-3})
            for seed in seeds:  # the networks: a trend plus seed noise, drawn in seed order
                trend = -2e-5 * s if kind == "image_aug" else 1e-5 * s
                ds = 4e-3 + trend + rng.normal(scale=2e-4)
                rows.append({**point, "seed": seed, "measure": "output", "predictor": "network", "ds": ds,
                             "chamfer": 9e-3})  # fmt: skip
    return pd.DataFrame(rows)


def _curves(table: pd.DataFrame) -> pd.DataFrame:
    out = []
    for k in (2, 3, 4):
        curve = table[["experiment", "kind", "s", "seed", "predictor", "measure"]].copy()
        curve["k"] = k
        curve["ds"] = table["ds"] * (1 + 0.1 * k)
        out.append(curve)
    return pd.concat(out, ignore_index=True)


def _folder(path: Path, table: pd.DataFrame, seeds: tuple[int, ...]) -> Path:
    path.mkdir(parents=True)
    subset = table[table["seed"].isna() | table["seed"].isin(seeds)]
    subset.to_csv(path / "measurements.csv", index=False)
    _curves(subset).to_csv(path / "ds_vs_k.csv", index=False)
    return path


def test_split_by_seed_and_pooled_gives_the_directions_of_the_whole_table(tmp_path: Path) -> None:
    whole = _measurements()
    experiment = get_experiment("synthetic")
    expected = direction_table(experiment, whole, _curves(whole))
    a = _folder(tmp_path / "a", whole, (1, 2))
    b = _folder(tmp_path / "b", whole, (3, 4))
    directions = write_pooled([b, a], tmp_path / "pooled")  # folder order does not matter either
    pd.testing.assert_frame_equal(directions, expected)
    pooled = pd.read_csv(tmp_path / "pooled" / "measurements.csv")
    assert len(pooled) == len(whole)
    assert sorted(pooled["seed"].dropna().unique()) == list(SEEDS)
    sources = json.loads((tmp_path / "pooled" / "pooled_from.json").read_text())
    assert sources["seeds"] == {str(b): [3, 4], str(a): [1, 2]}
    assert sources["seedless_max_relative_difference"] == 0.0
    # four seeds: the output directions are tested on 4 seeds x 4 levels
    output = directions[directions["measure"] == "output"]
    assert set(output["seeds"]) == {4} and set(output["runs"]) == {16}


def test_seedless_rows_may_differ_by_floating_point_only(tmp_path: Path) -> None:
    whole = _measurements()
    a = _folder(tmp_path / "a", whole, (1, 2))
    shifted = whole.copy()
    seedless = shifted["seed"].isna()
    shifted.loc[seedless, "ds"] *= 1 + 1e-6
    b = _folder(tmp_path / "b", shifted, (3, 4))
    pooled = pool_results([a, b])
    assert 0 < pooled.seedless_max_rtol < 1e-5
    shifted.loc[seedless, "ds"] *= 1.1  # a different measurement, not float noise
    c = _folder(tmp_path / "c", shifted, (3, 4))
    with pytest.raises(ValueError, match=r"disagree on the seedless row.*different data"):
        pool_results([a, c])
    missing = whole.copy()
    missing.loc[missing["measure"] == "gt_test", "ds"] = np.nan  # measured in one folder, missing in the other
    d = _folder(tmp_path / "d", missing, (3, 4))
    with pytest.raises(ValueError, match=r"disagree on the seedless row"):
        pool_results([a, d])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t, r"seed 3 is in both"),
        (lambda t: t.assign(k=5), r"differ in k"),
        (lambda t: t.assign(preset="paper"), r"differ in preset"),
        (lambda t: t[~((t["s"] == 35) & t["seed"].isna() & (t["measure"] == "input_image"))], r"different seedless"),
    ],
    ids=["overlapping seeds", "other k", "other preset", "other grid"],
)
def test_what_cannot_be_pooled_is_refused(tmp_path: Path, change, message: str) -> None:
    whole = _measurements()
    a = _folder(tmp_path / "a", whole, (1, 2, 3))
    b = _folder(tmp_path / "b", change(whole), (3, 4) if "both" in message else (4,))
    with pytest.raises(ValueError, match=message):
        pool_results([a, b])


def test_the_command_answers_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = _measurements()
    a = _folder(tmp_path / "a", whole, (1, 2))
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out"), str(a), str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "no measurements.csv in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "out"), str(a)])
    assert "two or more" in capsys.readouterr().err
    b = _folder(tmp_path / "b", whole, (3, 4))
    assert main([str(tmp_path / "out"), str(a), str(b)]) == 0
    assert "pooled 2 seed sets" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(a), str(a), str(b)])
    assert "one of the folders it pools" in capsys.readouterr().err


def test_stability_table_shows_each_folders_verdicts_from_its_files(tmp_path: Path) -> None:
    from experiments.directions import write_directions
    from experiments.results_tables import main as tables_main
    from experiments.results_tables import stability_markdown
    from tests.results_tables_check import markdown_tables

    whole = _measurements()
    folders = [_folder(tmp_path / name, whole, seeds) for name, seeds in (("a", (1, 2)), ("b", (3, 4)))]
    experiment = get_experiment("synthetic")
    for folder in folders:
        write_directions(experiment, folder)
    write_pooled(folders, tmp_path / "pooled")
    folders.append(tmp_path / "pooled")
    (table,) = markdown_tables(stability_markdown(folders))
    assert list(table.columns) == ["direction", "seeds 1–2", "seeds 3–4", "seeds 1–4"]
    for column, folder in zip(table.columns[1:], folders, strict=True):
        directions = pd.read_csv(folder / "directions.csv")
        assert list(table["direction"]) == list(directions["direction"])
        for cell, row in zip(table[column], directions.itertuples(), strict=True):
            verdict, rest = cell.split(" (", 1)
            assert verdict == f"**{row.verdict}**"
            rho = float(rest.split("ρ = ")[1].split(",")[0])
            p = float(rest.split("p = ")[1].rstrip(")"))
            assert rho == pytest.approx(row.statistic, rel=5e-3, abs=1e-12)
            assert p == pytest.approx(row.p, rel=5e-2)
    with pytest.raises(SystemExit) as exit_info:
        tables_main(["--stability", str(folders[0]), str(tmp_path / "missing")])
    assert exit_info.value.code == 2


def test_per_seed_columns_equal_one_folder_per_seed(tmp_path: Path) -> None:
    """``--stability --per-seed`` on one folder of four seeds gives the table of four one-seed folders (each
    evaluated from its files) followed by the folder's own column."""
    from experiments.directions import write_directions
    from experiments.results_tables import main as tables_main
    from experiments.results_tables import stability_markdown

    whole = _measurements()
    experiment = get_experiment("synthetic")
    folder = _folder(tmp_path / "all", whole, SEEDS)
    write_directions(experiment, folder)
    singles = [_folder(tmp_path / f"seed{seed}", whole, (seed,)) for seed in SEEDS]
    for single in singles:
        write_directions(experiment, single)
    expected = stability_markdown([*singles, folder])
    assert stability_markdown([folder], per_seed=True) == expected
    assert "| seed 1 | seed 2 | seed 3 | seed 4 | seeds 1–4 |" in expected
    assert stability_markdown([folder]) != expected  # without the option: the folder's column only
    with pytest.raises(SystemExit) as exit_info:
        tables_main(["--per-seed", str(folder)])
    assert exit_info.value.code == 2
