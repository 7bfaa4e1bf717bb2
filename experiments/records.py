"""Measurement records of an experiment: one result file per measurement, gathered into a long table.

A record is a result document of :func:`dispersion_score.io.save_result` (the library's one result format)
with ``kind = "measurement"``: ``result`` holds the table columns (the experiment's axes, ``predictor``,
``measure``, ``ds``, ``inertia``, ``k``, ``n``, ``chamfer``, ``fscore``, ...), ``settings`` and
``provenance`` say how and where it was computed, and ``matrix_file`` points at its distance matrix.

The long table has one row per measurement; its first columns are ``experiment``, the axes of the
experiment, then :data:`MEASUREMENT_COLUMNS`, then any other column a record carries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dispersion_score.artefact import FileRecord, inputs_mismatch, mismatch
from dispersion_score.io import atomic_write_text, load_result, save_result

RECORD_KIND = "measurement"
MEASUREMENT_COLUMNS = (
    "predictor",
    "measure",
    "ds",
    "inertia",
    "k",
    "n",
    "chamfer",
    "fscore",
    "fscore_atlasnet",
    "preset",
    "method",
    "kmedoids_revision",
    "features",
    "ds_seed",
    "device",
    "matrix",
    "predictions",
)
_NUMERIC = ("ds", "inertia", "chamfer", "fscore", "fscore_atlasnet")


def write_record(
    path: Path,
    columns: Mapping[str, Any],
    *,
    settings: Mapping[str, Any],
    device: str | None = None,
    matrix: np.ndarray | None = None,
    matrix_path: Path | None = None,
) -> dict[str, Any]:
    """Writes one measurement (and its distance matrix) atomically; the JSON is written last.

    Returns:
        The record's columns as they go into the table (``device`` included).
    """
    if matrix is not None and matrix_path is None:
        raise ValueError("matrix_path is required when a matrix is given")
    columns = {**columns, "device": device}
    save_result(
        path, columns, matrix=matrix, matrix_path=matrix_path, settings=settings, device=device, kind=RECORD_KIND
    )
    return columns


def read_records(records_dir: Path) -> list[dict[str, Any]]:
    """The columns of every record under ``records_dir`` (``matrix`` relative to the results folder).

    Raises:
        ValueError: an unreadable record, or a file that is not a measurement record (names the file; a
            rerun of the evaluation measures such records again, see :func:`record_mismatch`).
    """
    rows = []
    for path in sorted(records_dir.glob("*.json")):
        try:
            document = load_result(path, load_matrix=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"unreadable record {path}: {error}") from error
        if document.get("kind") != RECORD_KIND or not isinstance(document.get("result"), dict):
            raise ValueError(f"{path} is not a measurement record (kind {document.get('kind')!r})")
        row = dict(document["result"])
        if document.get("matrix_file"):
            row["matrix"] = os.path.normpath(Path(records_dir.name) / document["matrix_file"]).replace(os.sep, "/")
        for column in _NUMERIC:  # strict JSON stores non-finite floats as strings
            if isinstance(row.get(column), str):
                row[column] = float(row[column])
        rows.append(row)
    return rows


def record_mismatch(path: Path, expected: Mapping[str, Any] | None = None) -> str | None:
    """Why the record at ``path`` cannot be reused as a finished measurement (missing, unreadable or
    truncated JSON, not a measurement, its matrix missing or not the file written with it, the files it was
    measured from changed since: ``settings.made_from``, or a result column other than ``expected`` says, e.g.
    a DS of another k-medoids revision), or None when it can. A record that does not verify is measured
    again."""
    if not path.is_file():
        return "it does not exist"
    try:
        document = load_result(path, load_matrix=False)
    except (OSError, ValueError) as error:
        return str(error)
    if document.get("kind") != RECORD_KIND or not isinstance(document.get("result"), dict):
        return f"it is not a measurement record (kind {document.get('kind')!r})"
    for column, value in (expected or {}).items():
        stored = document["result"].get(column)
        if stored != value:
            return f"its {column} is {stored!r}, this version's is {value!r}"
    if document.get("matrix_file"):
        reason = mismatch(path.parent / document["matrix_file"], FileRecord.from_json(document.get("matrix_record")))
        if reason is not None:
            return f"its matrix {document['matrix_file']}: {reason}"
    settings = document.get("settings")
    return inputs_mismatch(settings.get("made_from")) if isinstance(settings, dict) else None


def long_table(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> pd.DataFrame:
    """One row per measurement: ``experiment``, the axes, :data:`MEASUREMENT_COLUMNS`, then the rest."""
    first = ["experiment", *axes, *MEASUREMENT_COLUMNS]
    table = pd.DataFrame([dict(row) for row in rows])
    for column in first:
        if column not in table.columns:
            table[column] = None
    table = table[first + [column for column in table.columns if column not in first]]
    for axis in axes:  # integer axes stay integers (pandas would make them float next to empty cells)
        values = [row[axis] for row in rows if not _missing(row.get(axis))]
        if values and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            table[axis] = pd.array([row.get(axis) for row in rows], dtype="Int64")
    order = ["measure", *axes, "predictor"]
    return table.sort_values(order, na_position="first", kind="stable").reset_index(drop=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the table as CSV atomically."""
    atomic_write_text(path, table.to_csv(index=False))
