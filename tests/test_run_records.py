"""Finished training runs and their consumers are verified before reuse (issue 22, kind 1, for trained weights):
``done`` keeps the final model's record; a damaged model is trained again by a rerun and refused by a load;
predictions and measurements made from files that changed since are made again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dispersion_score.artefact import inputs_mismatch, made_from
from experiments.prediction_files import is_complete, write_predictions
from experiments.records import record_mismatch, write_record
from models.engine import load_trained, train
from models.training import DONE_FILE, FINAL_FILE, CheckpointError, final_model_problem
from tests.test_trainer import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    return train(TINY, tmp_path / "run")


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, other contents
    path.write_bytes(bytes(data))


def test_done_keeps_the_final_models_record(finished: Path) -> None:
    document = json.loads((finished / DONE_FILE).read_text())
    assert document["final"]["size"] == (finished / FINAL_FILE).stat().st_size
    assert final_model_problem(finished) is None


def test_damaged_final_model_is_refused_by_load_naming_the_file(finished: Path) -> None:
    _tamper(finished / FINAL_FILE)
    with pytest.raises(CheckpointError, match=r"final model .*final\.pt is not the one its training wrote"):
        load_trained(finished)


def test_rerun_trains_a_run_whose_final_model_was_damaged(finished: Path, capsys) -> None:
    good = (finished / FINAL_FILE).read_bytes()
    (finished / FINAL_FILE).write_bytes(good[: len(good) // 2])  # truncated
    capsys.readouterr()
    train(TINY, finished)
    assert "training the run again" in capsys.readouterr().err
    assert final_model_problem(finished) is None
    load_trained(finished)  # usable again


def test_rerun_skips_an_intact_finished_run(finished: Path, capsys) -> None:
    before = (finished / FINAL_FILE).stat().st_mtime_ns
    train(TINY, finished)
    assert "skipping" in capsys.readouterr().out
    assert (finished / FINAL_FILE).stat().st_mtime_ns == before


def test_a_run_finished_before_records_is_taken_as_it_is(finished: Path) -> None:
    (finished / DONE_FILE).write_text("2026-01-01 00:00:00\n")  # what older versions wrote
    assert final_model_problem(finished) is None
    load_trained(finished)


def test_inputs_mismatch_names_the_changed_input(tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"0123456789")
    entries = made_from([source])
    assert inputs_mismatch(entries) is None
    assert inputs_mismatch([]) is None and inputs_mismatch(None) is None
    _tamper(source)
    assert str(source.resolve()) in inputs_mismatch(entries)
    source.unlink()
    assert "does not exist" in inputs_mismatch(entries)
    assert inputs_mismatch("garbage") == "its list of inputs is unreadable"


def test_predictions_of_changed_weights_are_made_again(tmp_path: Path) -> None:
    weights = tmp_path / "final.pt"
    weights.write_bytes(b"weights of the first training")
    points = np.random.default_rng(0).random((3, 5, 3), dtype=np.float32)
    write_predictions(tmp_path, "run_a", points, info={"predictor": "network"}, settings={}, sources=[weights])
    assert is_complete(tmp_path, "run_a")
    weights.write_bytes(b"weights of a second training")
    assert not is_complete(tmp_path, "run_a")


def test_measurement_of_changed_predictions_is_measured_again(tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.npy"
    np.save(predictions, np.zeros((2, 4, 3), dtype=np.float32))
    record = tmp_path / "records" / "run_a_output.json"
    matrix = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    settings = {"made_from": made_from([predictions])}
    write_record(record, {"ds": 0.5}, settings=settings, matrix=matrix, matrix_path=tmp_path / "m.npy")
    assert record_mismatch(record) is None
    np.save(predictions, np.ones((2, 4, 3), dtype=np.float32))
    assert "changed since" in record_mismatch(record)
