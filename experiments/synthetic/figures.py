"""Figures of the synthetic experiment, drawn only from ``ds_table.csv`` and the saved ``.npy`` matrices.

Used by ``plot_scripts/plot_synthetic.py`` (PNG files) and ``plot_scripts/synthetic_dataset.ipynb``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Figures are built without pyplot: no global state and no display backend, so this works headless and in
# worker processes; a notebook shows the returned Figure objects inline.
from matplotlib.figure import Figure

from dispersion_score.io import read_npy, save_figure
from experiments.figure_parts import runs_and_mean

KIND_TITLES = {"image_aug": "more dispersed images", "shape_aug": "more dispersed shapes"}
MEASURE_TITLES = {"input_image": "input image DS", "input_shape": "input shape DS", "output": "output DS"}
# Recognition baselines drawn as reference points in the output-DS panels (docs/baselines.md).
BASELINE_STYLES = {
    "clustering": {"marker": "s", "color": "tab:red", "label": "clustering baseline"},
    "retrieval": {"marker": "D", "color": "tab:green", "label": "retrieval baseline"},
    "oracle": {"marker": "v", "color": "tab:purple", "label": "oracle NN (upper bound of retrieval)"},
}


def load_table(results_dir: Path | str) -> pd.DataFrame:
    path = Path(results_dir) / "ds_table.csv"
    if not path.exists():
        raise ValueError(f"no table at {path}; run eval_scripts/eval_ds_synthetic.py first")
    return pd.read_csv(path)


def tick_labels(kind: str, sizes: list[int]) -> list[str]:
    """The paper's names: S1I1..S1I8 along image_aug, S1I8..S8I8 along shape_aug."""
    if kind == "image_aug":
        return [f"S1I{i + 1}" for i in range(len(sizes))]
    return [f"S{i + 1}I{len(sizes)}" for i in range(len(sizes))]


def network_rows(table: pd.DataFrame) -> pd.Series:
    """True for rows that are not a baseline's (networks and inputs; tables without a predictor column)."""
    if "predictor" not in table:
        return pd.Series(True, index=table.index)
    return table["predictor"].isna() | (table["predictor"] == "network")


def ds_curves(table: pd.DataFrame) -> Figure:
    """2×3 panels: rows image_aug / shape_aug, columns input image, input shape and output DS against s.

    Output DS shows every training run (points) and their mean with a bootstrap 95 % CI over seeds; the
    recognition baselines (one value per s) are reference points joined by thin dashed lines; the ground-truth
    test DS is a dashed line.
    """
    figure = Figure(figsize=(13, 7))
    axes = figure.subplots(2, 3, squeeze=False)
    gt = table.loc[table["measure"] == "gt_test", "ds"]
    for row, kind in enumerate(KIND_TITLES):
        rows = table[table["kind"] == kind]
        sizes = sorted(int(s) for s in rows["s"].dropna().unique())
        for column, measure in enumerate(MEASURE_TITLES):
            axis = axes[row][column]
            measured = rows[(rows["measure"] == measure) & network_rows(rows)]
            positions = np.arange(len(sizes))
            if measure == "output":
                runs_and_mean(axis, measured, "s", sizes, positions=positions)
            else:
                # One training set per s: one value, no seeds.
                axis.plot(positions, measured.groupby("s")["ds"].mean().reindex(sizes), marker="o")
            if measure == "output":
                _baseline_points(axis, rows[rows["measure"] == "output"], sizes)
                if len(gt):
                    axis.axhline(float(gt.iloc[0]), linestyle="--", color="grey", label="ground-truth test DS")
                axis.legend(loc="best", fontsize=7)
            axis.set_xticks(positions, tick_labels(kind, sizes), fontsize=8)
            axis.set_title(f"{MEASURE_TITLES[measure]} — {KIND_TITLES[kind]}", fontsize=10)
            axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _caption(figure, table)
    figure.tight_layout()
    return figure


def _baseline_points(axis: object, outputs: pd.DataFrame, sizes: list[int]) -> None:
    if "predictor" not in outputs:
        return
    for name, style in BASELINE_STYLES.items():
        values = outputs[outputs["predictor"] == name].groupby("s")["ds"].mean().reindex(sizes)
        if values.notna().any():
            axis.plot(np.arange(len(sizes)), values.to_numpy(), linestyle=":", linewidth=1, markersize=5, **style)


def distance_matrix_grid(results_dir: Path | str, table: pd.DataFrame | None = None) -> Figure:
    """Rows s; columns images / shapes / network predictions of image_aug, then of shape_aug (first seed)."""
    results_dir = Path(results_dir)
    table = load_table(results_dir) if table is None else table
    sizes = sorted(int(s) for s in table["s"].dropna().unique())
    columns = [(kind, measure) for kind in KIND_TITLES for measure in MEASURE_TITLES]
    figure = Figure(figsize=(2 * len(columns), 2 * len(sizes)))
    axes = figure.subplots(len(sizes), len(columns), squeeze=False)
    for column, (kind, measure) in enumerate(columns):
        matrices = [_matrix(results_dir, table, kind, s, measure) for s in sizes]
        present = [m for m in matrices if m is not None]
        vmax = max((float(m.max()) for m in present), default=1.0) or 1.0
        for row, matrix in enumerate(matrices):
            axis = axes[row][column]
            axis.set_xticks([])
            axis.set_yticks([])
            if matrix is None:
                axis.text(0.5, 0.5, "missing", ha="center", va="center", transform=axis.transAxes)
            else:
                axis.imshow(matrix, cmap="viridis", vmin=0.0, vmax=vmax)
            if row == 0:
                axis.set_title(f"{kind}\n{MEASURE_TITLES[measure].removesuffix(' DS')}", fontsize=9)
            if column == 0:
                axis.set_ylabel(f"s = {sizes[row]}")
    figure.tight_layout()
    return figure


def _matrix(results_dir: Path, table: pd.DataFrame, kind: str, s: int, measure: str) -> np.ndarray | None:
    rows = table[(table["kind"] == kind) & (table["s"] == s) & (table["measure"] == measure) & network_rows(table)]
    if "seed" in rows and rows["seed"].notna().any():
        rows = rows.sort_values("seed")
    for relative in rows["matrix"].dropna():
        path = results_dir / relative
        if path.exists():
            return read_npy(path, what="distance matrix")
    return None


def _caption(figure: Figure, table: pd.DataFrame) -> None:
    presets = ", ".join(sorted(str(p) for p in table["preset"].dropna().unique()))
    features = ", ".join(sorted(str(f) for f in table["features"].dropna().unique() if f != "chamfer"))
    seeds = table.loc[(table["measure"] == "output") & network_rows(table), "seed"].nunique()
    figure.suptitle(f"preset: {presets} · image features: {features} · {seeds} training seed(s)", fontsize=9)


def write_figures(results_dir: Path | str) -> list[Path]:
    """Write ``figures/ds_curves.png`` and ``figures/distance_matrices.png``; return their paths."""
    results_dir = Path(results_dir)
    table = load_table(results_dir)
    out = []
    for name, figure in (
        ("ds_curves.png", ds_curves(table)),
        ("distance_matrices.png", distance_matrix_grid(results_dir, table)),
    ):
        path = results_dir / "figures" / name
        out.append(save_figure(figure, path, dpi=110, tight=False))
    return out
