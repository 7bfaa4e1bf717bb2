"""Figures of the ShapeNet experiments, drawn only from each experiment's tables (``ds_table.csv``,
``ds_vs_k.csv``). Used by ``experiments.shapenet``, ``plot_scripts/plot_shapenet.py`` and
``plot_scripts/shapenet_results.ipynb``.

* ``more_imgs``: four panels against the yaw range r: input image DS, input shape DS, output DS (networks,
  mean ± std over seeds; baselines as markers; ground-truth test DS dashed) and test Chamfer.
* ``more_shapes``: output DS per decoder, object- vs viewer-centred bars (mean ± std), with the input shape DS
  of each frame and the baselines; :func:`output_ds_table` gives the same numbers as a table.
* ``nviews``: input image DS, input shape DS and output DS against the number of training views.
* every experiment: DS against k for each set (``ds_vs_k.csv``), to see whether the ordering holds over k.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Figures are built without pyplot: no global state and no display backend (headless, worker processes);
# a notebook shows the returned Figure objects inline.
from matplotlib.figure import Figure

from dispersion_score.frames import FRAMES
from dispersion_score.io import save_figure
from experiments.figure_parts import runs_and_mean

NETWORK = "network"


def load_tables(results_dir: Path | str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(ds_table, ds_vs_k or None) of one experiment's results folder."""
    results_dir = Path(results_dir)
    path = results_dir / "ds_table.csv"
    if not path.exists():
        raise ValueError(f"no table at {path}; run the experiment's evaluation first")
    curves = results_dir / "ds_vs_k.csv"
    return pd.read_csv(path), (pd.read_csv(curves) if curves.exists() else None)


def _stats(rows: pd.DataFrame, by: str, value: str = "ds") -> pd.DataFrame:
    return rows.groupby(by)[value].agg(["mean", "std", "count"]).fillna({"std": 0.0})


def _networks(table: pd.DataFrame, measure: str = "output") -> pd.DataFrame:
    rows = table[table["measure"] == measure]
    return rows[rows["predictor"].fillna(NETWORK) == NETWORK]


def _baselines(table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["measure"] == "output"]
    return rows[rows["predictor"].fillna(NETWORK) != NETWORK]


def _gt_line(axis, table: pd.DataFrame) -> None:  # noqa: ANN001
    gt = table.loc[table["measure"] == "gt_test", "ds"]
    if len(gt):
        axis.axhline(float(gt.iloc[0]), linestyle="--", color="grey", label="ground-truth test DS")


def _finish(figure: Figure, table: pd.DataFrame, title: str) -> Figure:
    presets = ", ".join(sorted(str(p) for p in table["preset"].dropna().unique()))
    features = ", ".join(sorted(str(f) for f in table["features"].dropna().unique() if f != "chamfer"))
    k = ", ".join(str(int(v)) for v in sorted(table["k"].dropna().unique()))
    figure.suptitle(f"{title} · preset {presets} · k = {k} · image features {features}", fontsize=9)
    figure.tight_layout()
    return figure


def yaw_figure(table: pd.DataFrame) -> Figure:
    """more_imgs: input image DS, input shape DS, output DS and Chamfer against the yaw range r."""
    figure = Figure(figsize=(16, 4))
    axes = figure.subplots(1, 4)
    yaws = sorted(int(r) for r in table["yaw"].dropna().unique())
    image = _stats(table[table["measure"] == "input_image"], "yaw").reindex(yaws)
    axes[0].plot(yaws, image["mean"], marker="o")
    shape = table.loc[table["measure"] == "input_shape", "ds"]
    if len(shape):
        # One value for every r (the shapes do not depend on the renders): a flat line on a scale that shows it.
        value = float(shape.iloc[0])
        axes[1].plot(yaws, [value] * len(yaws), marker="o", label=f"all training shapes (one value: {value:.4g})")
        axes[1].set_ylim(0, 1.5 * value if value > 0 else 1)
        axes[1].legend(fontsize=8)
    for axis, value, name in ((axes[2], "ds", "output DS"), (axes[3], "chamfer", "test Chamfer")):
        runs_and_mean(axis, _networks(table), "yaw", yaws, value=value)
        for predictor, rows in _baselines(table).groupby("predictor"):
            per = _stats(rows, "yaw", value).reindex(yaws)
            axis.plot(yaws, per["mean"], marker="x", linestyle=":", label=str(predictor))
        if value == "ds":
            _gt_line(axis, table)
        axis.set_title(name, fontsize=10)
        axis.legend(fontsize=7)
    axes[0].set_title("input image DS", fontsize=10)
    axes[1].set_title("input shape DS", fontsize=10)
    for axis in axes:
        axis.set_xlabel("yaw range r (degrees)")
        axis.set_xticks(yaws)
        axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return _finish(figure, table, "more dispersed images (test: r = 90 renders)")


def output_ds_table(table: pd.DataFrame) -> pd.DataFrame:
    """more_shapes: output DS per decoder (rows) and frame (columns), 'mean ± std (n seeds)'."""
    rows = _networks(table)
    cells = rows.groupby(["decoder", "frame"])["ds"].agg(["mean", "std", "count"]).fillna({"std": 0.0})
    text = cells.apply(lambda r: f"{r['mean']:.4g} ± {r['std']:.2g} ({int(r['count'])})", axis=1)
    return text.unstack("frame")


def frame_figure(table: pd.DataFrame) -> Figure:
    """more_shapes: output DS per decoder, object- vs viewer-centred (every run, mean, 95 % CI), with baselines."""
    figure = Figure(figsize=(11, 4.5))
    axis, inputs = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    rows = _networks(table)
    decoders = sorted(rows["decoder"].dropna().unique())
    frames = [f for f in FRAMES if f in set(rows["frame"].dropna())]
    width = 0.8 / max(1, len(frames))
    positions = np.arange(len(decoders))
    for i, frame in enumerate(frames):
        runs_and_mean(
            axis,
            rows[rows["frame"] == frame],
            "decoder",
            decoders,
            positions=positions,
            offset=(i - (len(frames) - 1) / 2) * width,
            label=f"{frame}-centred",
            color=f"C{i}",
        )
    # A baseline's line has its frame's bar colour and its predictor's dash pattern.
    dashes = {"clustering": ":", "retrieval": "-.", "oracle": (0, (5, 2))}
    for predictor, group in _baselines(table).groupby("predictor"):
        for frame, per in group.groupby("frame"):
            axis.axhline(
                float(per["ds"].mean()),
                linestyle=dashes.get(str(predictor), ":"),
                linewidth=1.2,
                label=f"{predictor} ({frame})",
                color=f"C{frames.index(frame)}" if frame in frames else "C2",
            )
    _gt_line(axis, table)
    axis.set_xticks(positions, decoders, fontsize=8)
    axis.set_ylabel("output DS (object frame)")
    axis.legend(fontsize=7)
    axis.set_title("output DS per decoder", fontsize=10)
    shape = table[table["measure"] == "input_shape"].set_index("frame")["ds"]
    image = table.loc[table["measure"] == "input_image", "ds"]
    labels = [f"shape DS\n{f}" for f in shape.index] + ["image DS"]
    inputs.bar(range(len(labels)), [*shape.values, *(image.values[:1])], color=["C0", "C1", "C4"][: len(labels)])
    inputs.set_xticks(range(len(labels)), labels, fontsize=8)
    inputs.set_title("input DS", fontsize=10)
    inputs.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return _finish(figure, table, "more dispersed shapes: object- vs viewer-centred targets")


def views_figure(table: pd.DataFrame) -> Figure:
    """nviews: input image DS, input shape DS and output DS against the number of training views."""
    figure = Figure(figsize=(13, 4))
    axes = figure.subplots(1, 3)
    views = sorted(int(v) for v in table["views"].dropna().unique())
    for axis, measure, name in zip(
        axes,
        ("input_image", "input_shape", "output"),
        ("input image DS", "input shape DS (viewer-centred)", "output DS"),
        strict=True,
    ):
        if measure == "output":
            runs_and_mean(axis, _networks(table, measure), "views", views)
        else:
            axis.plot(views, _stats(table[table["measure"] == measure], "views").reindex(views)["mean"], marker="o")
        if measure == "output":
            _gt_line(axis, table)
            axis.legend(fontsize=8)
        axis.set_xlabel("training views per shape")
        axis.set_xticks(views)
        axis.set_title(name, fontsize=10)
        axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return _finish(figure, table, "number of training views (viewer-centred AtlasNet)")


def ds_vs_k_figure(curves: pd.DataFrame, axis_name: str | None) -> Figure:
    """DS against k, one panel per measure, one line per set (seeds averaged)."""
    measures = [m for m in ("input_image", "input_shape", "output", "gt_test") if m in set(curves["measure"])]
    figure = Figure(figsize=(4.2 * len(measures), 3.8))
    axes = np.atleast_1d(figure.subplots(1, len(measures)))
    for axis, measure in zip(axes, measures, strict=True):
        rows = curves[curves["measure"] == measure].copy()
        title = f"{measure} DS vs k"
        if measure == "output" and "predictor" in rows:
            # The question is the networks' ordering over k; the baselines' curves stay in ds_vs_k.csv.
            rows = rows[rows["predictor"].isna() | (rows["predictor"] == "network")]
            title += " (networks)"
        rows["label"] = _set_labels(rows, axis_name)
        for label, group in rows.groupby("label", sort=True):
            mean = group.groupby("k")["ds"].mean()
            mean = mean[mean > 0]  # DS is 0 at k = N, which a log axis cannot show
            axis.plot(mean.index, mean.values, marker=".", label=label)
        axis.set_xlabel("k")
        axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=6)
    figure.tight_layout()
    return figure


def _set_labels(rows: pd.DataFrame, axis_name: str | None) -> list[str]:
    labels = []
    for row in rows.itertuples(index=False):
        parts = [str(row.predictor)] if isinstance(row.predictor, str) else []
        for column in ("yaw", "frame", "decoder", "views"):
            value = getattr(row, column, None)
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                parts.append(f"{column}={value:g}" if isinstance(value, float) else f"{column}={value}")
        labels.append(" ".join(parts) or "all")
    return labels


FIGURES = {"more_imgs": ("yaw", yaw_figure), "more_shapes": ("frame", frame_figure), "nviews": ("views", views_figure)}


def write_figures(results_dir: Path | str, experiment: str) -> list[Path]:
    """Writes ``figures/<experiment>.png``, ``figures/ds_vs_k.png`` and, for more_shapes,
    ``output_ds_by_decoder.csv``; returns the paths."""
    results_dir = Path(results_dir)
    table, curves = load_tables(results_dir)
    axis_name, draw = FIGURES[experiment]
    paths = [save_figure(draw(table), results_dir / "figures" / f"{experiment}.png", dpi=110)]
    if curves is not None and len(curves):
        paths.append(save_figure(ds_vs_k_figure(curves, axis_name), results_dir / "figures" / "ds_vs_k.png", dpi=110))
    if experiment == "more_shapes":
        path = results_dir / "output_ds_by_decoder.csv"
        from dispersion_score.io import atomic_write_text

        atomic_write_text(path, output_ds_table(table).to_csv())
        paths.append(path)
    return paths
