"""The direction statistics (experiments.directions) on cases computable by hand, and the directions table on a
hand-made results table whose verdicts are known by construction."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from experiments.declaration import Axis, Direction, Experiment
from experiments.directions import (
    bootstrap_mean_ci,
    direction_table,
    paired_t,
    spearman,
    two_sided_verdict,
    verdict,
    write_directions,
)


def _exact_spearman_p(x: list[float], y: list[float], greater: bool) -> float:
    """Naive reference: rho of every permutation of y (average ranks), share at least as extreme as observed."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()

    def rho(r: np.ndarray) -> float:
        return float(np.corrcoef(rx, r)[0, 1])

    observed = rho(ry)
    values = [rho(np.array(p)) for p in itertools.permutations(ry)]
    eps = 1e-12
    hits = [v >= observed - eps if greater else v <= observed + eps for v in values]
    return sum(hits) / len(values)


def test_perfect_monotone_rise_has_rho_one_and_exact_p() -> None:
    rho, p = spearman([1, 2, 3, 4, 5], [0.1, 0.5, 0.7, 2.0, 9.0], alternative="greater")
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(1 / math.factorial(5))  # only the identity permutation is as extreme
    _, p_less = spearman([1, 2, 3, 4, 5], [0.1, 0.5, 0.7, 2.0, 9.0], alternative="less")
    assert p_less == pytest.approx(1.0)


def test_reversed_order_has_rho_minus_one() -> None:
    rho, p = spearman([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0], alternative="less")
    assert rho == pytest.approx(-1.0)
    assert p == pytest.approx(1 / 24)
    x, y = [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]
    expected_p, reversed_p = (spearman(x, y, alternative=a)[1] for a in ("greater", "less"))
    assert verdict(expected_p, reversed_p, alpha=0.05) == "reversed"


def test_ties_use_average_ranks_and_match_the_exhaustive_reference() -> None:
    # Runs at the same axis value (seeds) tie in x; two tied DS values tie in y.
    x = [1, 1, 2, 2, 3, 3]
    y = [0.2, 0.4, 0.4, 0.3, 0.9, 0.8]
    rho, p = spearman(x, y, alternative="greater")
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    assert rho == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert p == pytest.approx(_exact_spearman_p(x, y, greater=True))
    _, p_less = spearman(x, y, alternative="less")
    assert p_less == pytest.approx(_exact_spearman_p(x, y, greater=False))


def test_large_samples_use_seeded_permutations_close_to_the_t_approximation() -> None:
    rng = np.random.default_rng(3)
    x = np.repeat(np.arange(8), 2).astype(float)
    y = 0.2 * x + rng.normal(size=16)
    rho, p = spearman(x, y, alternative="greater", seed=1)
    assert (rho, p) == spearman(x, y, alternative="greater", seed=1)  # seeded
    t = rho * np.sqrt((16 - 2) / (1 - rho**2))
    from scipy import stats

    assert p == pytest.approx(stats.t.sf(t, 14), abs=0.02)


def test_sampled_p_does_not_depend_on_the_order_of_the_runs() -> None:
    # 16 runs: sampled permutations. A pooled table lists the same runs in another order; its p must not move.
    rng = np.random.default_rng(5)
    x = np.repeat(np.arange(8), 2).astype(float)
    y = 0.1 * x + rng.normal(size=16)
    order = rng.permutation(16)
    assert spearman(x, y, alternative="greater") == spearman(x[order], y[order], alternative="greater")


def test_undefined_cases_are_nan_and_not_established() -> None:
    assert all(math.isnan(v) for v in spearman([1, 2], [1, 2], alternative="greater"))
    assert all(math.isnan(v) for v in spearman([1, 1, 1], [1, 2, 3], alternative="greater"))
    assert all(math.isnan(v) for v in paired_t([1.0], [2.0], alternative="greater"))
    assert verdict(float("nan"), float("nan"), alpha=0.05) == "not established"


def test_paired_t_on_a_known_case() -> None:
    # differences 1, 2, 3: mean 2, sample sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3, one-sided p from t with 2 df.
    t, p = paired_t([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], alternative="greater")
    assert t == pytest.approx(2 * math.sqrt(3))
    # Student t, 2 degrees of freedom: P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2.
    assert p == pytest.approx(0.5 * (1 - t / math.sqrt(t * t + 2)))
    _, p_less = paired_t([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], alternative="less")
    assert p_less == pytest.approx(1 - p)


def test_bootstrap_ci_contains_the_effect_is_seeded_and_matches_exhaustive_resampling() -> None:
    values = [1.0, 2.0, 4.0]
    low, high = bootstrap_mean_ci(values, resamples=20000, seed=5)
    assert low <= np.mean(values) <= high
    spread = list(np.random.default_rng(0).normal(size=10))
    assert bootstrap_mean_ci(spread, resamples=500, seed=5) == bootstrap_mean_ci(spread, resamples=500, seed=5)
    assert bootstrap_mean_ci(spread, resamples=500, seed=5) != bootstrap_mean_ci(spread, resamples=500, seed=6)
    # Exhaustive reference: the 27 equally likely resamples of 3 values, the 2.5 % and 97.5 % quantiles of their
    # mean's (discrete) distribution: 1.0 and 4.0 each have probability 1/27 = 3.7 % > 2.5 %.
    means = np.sort([np.mean(c) for c in itertools.product(values, repeat=3)])
    assert low == pytest.approx(np.quantile(means, 0.025, method="inverted_cdf"), abs=0.05)
    assert high == pytest.approx(np.quantile(means, 0.975, method="inverted_cdf"), abs=0.05)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([1.0], resamples=100, seed=0))


def test_two_sided_verdict_names_the_direction() -> None:
    assert two_sided_verdict(-0.9, 0.01, alpha=0.05) == "falls"
    assert two_sided_verdict(0.9, 0.01, alpha=0.05) == "rises"
    assert two_sided_verdict(0.9, 0.2, alpha=0.05) == "not established"


# ------------------------------------------------------------------------------- the directions table


def _experiment() -> Experiment:
    return Experiment(
        name="toy",
        axes=(Axis("level", int, "ordered"), Axis("frame", str, "two levels"), Axis("seed", int, "seed")),
        run_overrides=lambda point, preset: [],
        directions=(
            Direction("output rises with level", "output", "level", +1, where={"frame": "a"}),
            Direction("output falls with level", "output", "level", -1, where={"frame": "a"}),
            Direction("output b > a", "output", "frame", +1, "paired", ("a", "b"), where={"level": 1}),
            Direction("input rises with level", "input_image", "level", +1),
        ),
    )


def _table(scale: float = 1.0) -> pd.DataFrame:
    rows = []
    for level, frame, seed in itertools.product([1, 2, 3, 4], ["a", "b"], [1, 2, 3]):
        ds = scale * (level + 0.1 * seed + (0.5 + 0.1 * seed if frame == "b" else 0.0))
        rows.append({"level": level, "frame": frame, "seed": seed, "predictor": "network", "measure": "output",
                     "ds": ds, "k": 2})  # fmt: skip
    for level in [1, 2, 3, 4]:
        rows.append({"level": level, "frame": None, "seed": None, "predictor": None, "measure": "input_image",
                     "ds": float(level), "k": 2})  # fmt: skip
    return pd.DataFrame(rows)


def test_table_verdicts_effects_and_counts_on_a_constructed_table(tmp_path) -> None:  # noqa: ANN001
    table = _table()
    curves = pd.concat([table.assign(k=k, ds=table["ds"] * (1 if k <= 3 else -1)) for k in (2, 3, 4, 5)])
    settings = {"k_range": [2, 4], "bootstrap_resamples": 2000, "bootstrap_seed": 0}
    out = direction_table(_experiment(), table, curves, settings=settings).set_index("direction")
    rise, fall, paired, inputs = (out.loc[label] for label in
                                  ("output rises with level", "output falls with level", "output b > a",
                                   "input rises with level"))  # fmt: skip
    assert rise["verdict"] == "holds" and fall["verdict"] == "reversed"
    assert rise["runs"] == 12 and rise["seeds"] == 3
    assert rise["effect"] == pytest.approx(3.0)  # level 4 - level 1, same for every seed
    assert rise["ci_low"] == pytest.approx(3.0) and rise["ci_high"] == pytest.approx(3.0)
    # Paired over seeds: differences 0.6, 0.7, 0.8.
    assert paired["verdict"] == "holds" and paired["seeds"] == 3
    assert paired["effect"] == pytest.approx(0.7)
    assert paired["statistic"] == pytest.approx(paired_t([0, 0, 0], [0.6, 0.7, 0.8], alternative="greater")[0])
    # Input DS has no seeds: 4 points, exact one-sided p = 1/4! < 0.05; one "seed", so no CI.
    assert inputs["verdict"] == "holds" and inputs["p"] == pytest.approx(1 / 24)
    assert inputs["runs"] == 4 and inputs["seeds"] == 1 and math.isnan(inputs["ci_low"])
    # Secondary: k = 2, 3 keep the sign, k = 4 flips it (k = 5 is outside the range).
    assert rise["k_count"] == 3 and rise["k_share"] == pytest.approx(2 / 3)
    assert fall["k_share"] == pytest.approx(1 / 3)
    written = write_directions(_experiment(), tmp_path, table, curves, settings=settings)
    assert (tmp_path / "directions.csv").is_file()
    read = pd.read_csv(tmp_path / "directions.csv")
    numeric = ["statistic", "p", "effect", "ci_low", "ci_high", "runs", "seeds", "k_share"]
    np.testing.assert_allclose(read[numeric].to_numpy(float), written[numeric].to_numpy(float), rtol=1e-12)
    assert list(read["verdict"]) == list(written["verdict"])


def test_bad_declarations_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="sign must be"):
        Direction("x", "output", "level", 2)
    with pytest.raises(ValueError, match="paired test needs levels"):
        Direction("x", "output", "frame", 1, "paired")
    with pytest.raises(ValueError, match="measure must be"):
        Direction("x", "gt_test", "level", 1)
    with pytest.raises(ValueError, match="unknown axes"):
        Experiment(
            name="toy",
            axes=(Axis("level", int, "ordered"),),
            run_overrides=lambda point, preset: [],
            directions=(Direction("x", "output", "yaw", 1),),
        )


def _synthetic_results(folder) -> pd.DataFrame:  # noqa: ANN001
    """A measurements.csv of the synthetic experiment (3 seeds, 4 cluster sizes) whose directions are known."""
    rows = []
    for kind, s in itertools.product(["image_aug", "shape_aug"], [1, 5, 10, 35]):
        sign = -1 if kind == "image_aug" else 1
        rows.append({"experiment": "synthetic", "kind": kind, "s": s, "measure": "input_image", "ds": 1.0 + s, "k": 2})
        rows.append({"experiment": "synthetic", "kind": kind, "s": s, "measure": "input_shape", "ds": 2.0, "k": 2})
        for seed in (1, 2, 3):
            rows.append({"experiment": "synthetic", "kind": kind, "s": s, "seed": seed, "predictor": "network",
                         "measure": "output", "ds": 10.0 + sign * s + 0.1 * seed, "k": 2})  # fmt: skip
    table = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "measurements.csv", index=False)
    return table


def test_command_rewrites_directions_of_an_old_results_folder(tmp_path, capsys) -> None:  # noqa: ANN001
    from experiments.directions import main
    from experiments.registry import get_experiment

    table = _synthetic_results(tmp_path / "old")
    assert main([str(tmp_path / "old")]) == 0
    written = pd.read_csv(tmp_path / "old" / "directions.csv")
    expected = direction_table(get_experiment("synthetic"), table)
    assert list(written["direction"]) == list(expected["direction"])
    assert list(written["verdict"]) == ["holds", "not established", "holds", "holds"]  # input shape DS is flat
    np.testing.assert_allclose(written["effect"], expected["effect"])
    assert "output DS falls along image_aug" in capsys.readouterr().out


def test_commands_refuse_a_folder_without_results_in_one_line(tmp_path, capsys) -> None:  # noqa: ANN001
    from experiments.directions import main as directions_main
    from experiments.results_tables import main as tables_main

    for main in (directions_main, tables_main):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / "missing")])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: no measurements.csv in") and "\n" not in error
