"""Drawing pieces shared by the experiments' figures: every run as a point, and the mean with its bootstrap CI.

The CI is the one ``directions.csv`` uses (:func:`experiments.directions.bootstrap_mean_ci`, 95 %, seeded), so a
figure and the directions table agree; with one run there is no bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from experiments.directions import DEFAULTS, bootstrap_mean_ci

RUN_STYLE = {"s": 12, "alpha": 0.45, "linewidths": 0, "zorder": 3}


def runs_and_mean(
    axis: Any,
    rows: pd.DataFrame,
    by: str,
    levels: Sequence[Any],
    *,
    value: str = "ds",
    positions: Sequence[float] | None = None,
    label: str = "network",
    color: str | None = None,
    offset: float = 0.0,
) -> None:
    """Draws, on a matplotlib Axes, every row's ``value`` as a point at its level of ``by`` and, per level, the
    mean joined by a line with a bootstrap 95 % CI bar over the rows (the seeds).

    Args:
        axis: the matplotlib Axes.
        rows: one row per run; columns ``by`` and ``value``.
        by: the column giving each run's level; ``levels``: its values in drawing order.
        positions: x of each level (default: the levels themselves); ``offset`` is added (side-by-side groups).
        label, color: legend label and colour of the mean.
    """
    x = np.asarray(positions if positions is not None else levels, dtype=float) + offset
    means, lows, highs = [], [], []
    for position, level in zip(x, levels, strict=True):
        values = rows.loc[rows[by] == level, value].astype(float).dropna().to_numpy()
        means.append(values.mean() if len(values) else np.nan)
        low, high = bootstrap_mean_ci(
            values, resamples=DEFAULTS["bootstrap_resamples"], seed=DEFAULTS["bootstrap_seed"]
        )
        lows.append(low)
        highs.append(high)
        if len(values):
            axis.scatter(np.full(len(values), position), values, color=color or "C0", **RUN_STYLE)
    means, lows, highs = map(np.asarray, (means, lows, highs))
    error = np.vstack([np.nan_to_num(means - lows), np.nan_to_num(highs - means)])
    n = rows.groupby(by)[value].count()
    runs = f"{int(n.min())}–{int(n.max())}" if len(n) and n.min() != n.max() else f"{int(n.max()) if len(n) else 0}"
    axis.errorbar(
        x,
        means,
        yerr=error,
        marker="o",
        capsize=3,
        color=color,
        label=f"{label}: runs ({runs} per point), mean, 95 % CI",
    )
