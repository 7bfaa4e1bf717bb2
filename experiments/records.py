"""Measurement records of an experiment: one JSON per measurement, gathered into a tidy CSV table.

A record holds the table columns (kind, s, seed, measure, ds, inertia, k, n, chamfer, fscore, preset,
method, ...) at the top level, plus the exact settings and provenance under ``settings`` / ``provenance``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dispersion_score.io import atomic_save_npy, atomic_write_text, provenance

TABLE_COLUMNS = (
    "kind",
    "s",
    "seed",
    "measure",
    "ds",
    "inertia",
    "k",
    "n",
    "chamfer",
    "fscore",
    "preset",
    "method",
    "features",
    "ds_seed",
    "device",
    "matrix",
)


def write_record(
    path: Path,
    columns: dict[str, Any],
    *,
    settings: dict[str, Any],
    device: str | None = None,
    matrix: np.ndarray | None = None,
    matrix_path: Path | None = None,
) -> dict[str, Any]:
    """Write one measurement (and its distance matrix) atomically; the JSON is written last."""
    record = {column: columns.get(column) for column in TABLE_COLUMNS}
    record.update({key: value for key, value in columns.items() if key not in record})
    if matrix is not None:
        if matrix_path is None:
            raise ValueError("matrix_path is required when a matrix is given")
        atomic_save_npy(matrix_path, matrix)
        record["matrix"] = str(matrix_path.relative_to(path.parent.parent))
    record["device"] = device
    record["settings"] = settings
    record["provenance"] = provenance(device=device)
    atomic_write_text(path, json.dumps(record, indent=2, default=_json_default) + "\n")
    return record


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_records(records_dir: Path) -> list[dict[str, Any]]:
    """All records under ``records_dir``; an unreadable record is an error naming the file."""
    records = []
    for path in sorted(records_dir.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"unreadable record {path}: {error}") from error
    return records


def records_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy table: one row per measurement, the columns of TABLE_COLUMNS first."""
    nested = ("settings", "provenance")
    rows = [{key: value for key, value in record.items() if key not in nested} for record in records]
    table = pd.DataFrame(rows)
    for column in TABLE_COLUMNS:
        if column not in table.columns:
            table[column] = None
    ordered = list(TABLE_COLUMNS) + [column for column in table.columns if column not in TABLE_COLUMNS]
    table = table[ordered]
    for column in ("s", "seed"):
        table[column] = pd.array(table[column], dtype="Int64")
    return table.sort_values(["measure", "kind", "s", "seed"], na_position="first").reset_index(drop=True)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the table as CSV atomically."""
    atomic_write_text(path, table.to_csv(index=False))
