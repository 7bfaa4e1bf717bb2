"""Issue 22's faults, each instance with the input that failed: finished artefacts verified before reuse,
one writer per folder, no hangs, one-line errors, no silent acceptance, no orphaned jobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dispersion_score.artefact import FileRecord, mismatch, record_file
from dispersion_score.cli import main as ds_main


def _shape_folder(folder: Path, count: int = 6) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        np.save(folder / f"s{i}.npy", (rng.normal(size=(200, 3)) * (1 + 0.3 * i)).astype(np.float32))
    return folder


def _ds_line(capsys) -> str:
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dispersion score"))


# --- kind 1: a finished artefact is verified before it is reused ------------------------------------------


def test_file_record_catches_truncation_header_shape_and_one_edited_entry(tmp_path: Path) -> None:
    path = tmp_path / "D.npy"
    values = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.save(path, values)
    record = FileRecord.from_json(record_file(path).to_json())
    assert record == record_file(path) and mismatch(path, record) is None
    edited = values.copy()
    edited[3, 4] = 1e6
    np.save(path, edited)
    assert "CRC-32" in mismatch(path, record)
    np.save(path, values[:4, :4])
    assert "bytes" in mismatch(path, record)
    np.save(path, values.reshape(4, 16))  # same size, other shape
    assert "shape (4, 16)" in mismatch(path, record)
    np.save(path, values)
    data = bytearray(path.read_bytes())
    data[:6] = b"garbag"
    path.write_bytes(bytes(data))
    assert "header" in mismatch(path, record)
    assert "cannot be verified" in mismatch(path, None)


@pytest.mark.parametrize("damage", ["replaced_4x4", "row_zeroed_and_1e6", "header", "truncated"])
def test_cli_tiled_matrix_is_verified_before_reuse(tmp_path: Path, capsys, damage: str) -> None:
    shapes = _shape_folder(tmp_path / "s")
    out = tmp_path / "D.npy"
    argv = ["shapes", str(shapes), "--out", str(out), "--k", "2", "--points", "100", "--tiles", "2", "--no-progress"]
    assert ds_main(argv) == 0
    first = _ds_line(capsys)
    reference = np.load(out).copy()
    if damage == "replaced_4x4":
        np.save(out, np.random.default_rng(1).random((4, 4)).astype(np.float32))
    elif damage == "row_zeroed_and_1e6":
        edited = reference.copy()
        edited[0] = 0
        edited[1, 2] = 1e6
        np.save(out, edited)
    elif damage == "header":
        data = bytearray(out.read_bytes())
        data[10:40] = b"{'descr': '<f4', 'shape': (9,)"
        out.write_bytes(bytes(data))
    else:
        out.write_bytes(out.read_bytes()[:100])
    assert ds_main(argv) == 0
    assert _ds_line(capsys) == first  # recomputed, not read from the damaged file
    np.testing.assert_array_equal(np.load(out), reference)
