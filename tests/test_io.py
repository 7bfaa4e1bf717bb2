"""Tests of result files (atomic writes, provenance, JSON round trip) and of reading shape directories."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
import trimesh

import dispersion_score
from dispersion_score.io import (
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_text,
    load_result,
    provenance,
    save_result,
    to_jsonable,
)
from dispersion_score.shapes_io import list_shape_files, load_shapes


@dataclasses.dataclass
class _Result:
    ds: np.float32
    inertia: float
    k: int
    medoids: np.ndarray
    labels: np.ndarray
    method: str


def _result() -> _Result:
    return _Result(
        ds=np.float32(0.25),
        inertia=np.float64(1.0),
        k=np.int64(2),
        medoids=np.array([0, 3], dtype=np.int64),
        labels=np.array([0, 0, 1, 1], dtype=np.int64),
        method="pam",
    )


def test_atomic_writes_leave_only_the_target(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "first")
    atomic_write_text(tmp_path / "a.txt", "second")
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
    atomic_save_npy(tmp_path / "c.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a.txt",
        "c.npy",
        "sub",
        "sub/b.bin",
    ]
    assert (tmp_path / "a.txt").read_text() == "second"
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "m.npy"
    atomic_save_npy(target, np.ones(3))
    with pytest.raises(ValueError):
        atomic_save_npy(target, np.array([object()], dtype=object))  # allow_pickle=False refuses it
    np.testing.assert_array_equal(np.load(target), np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npy"]


def test_atomic_write_permissions_like_plain_open(tmp_path):
    atomic_write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_provenance_keys():
    info = provenance("cpu")
    for key in ("python", "torch", "numpy", "dispersion_score", "platform", "hostname", "time", "device"):
        assert key in info, key
    assert info["dispersion_score"] == dispersion_score.__version__
    assert info["torch"] == torch.__version__ and info["numpy"] == np.__version__
    assert info["device"] == "cpu"
    assert "T" in info["time"]
    json.dumps(info)
    assert provenance()["device"] is None


def test_to_jsonable_converts_numpy_torch_and_non_finite():
    converted = to_jsonable(
        {
            "a": np.float32(1.5),
            "b": torch.tensor([1, 2]),
            "c": (np.int64(3),),
            "d": float("nan"),
            "e": -np.inf,
            "f": np.bool_(True),
            "g": torch.device("cpu"),
        }
    )
    assert converted == {"a": 1.5, "b": [1, 2], "c": [3], "d": "nan", "e": "-inf", "f": True, "g": "cpu"}
    assert type(converted["a"]) is float and type(converted["f"]) is bool
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())


def test_save_and_load_round_trip(tmp_path):
    matrix = np.random.default_rng(0).random((4, 4)).astype(np.float32)
    settings = {"k": 2, "method": "pam", "seeds": (0,), "device": "cpu"}
    path = save_result(tmp_path / "out" / "ds.json", _result(), matrix=matrix, settings=settings)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ds.json", "ds.npy"]

    loaded = load_result(path)
    assert loaded["kind"] == "_Result"
    assert loaded["result"] == {
        "ds": 0.25,
        "inertia": 1.0,
        "k": 2,
        "medoids": [0, 3],
        "labels": [0, 0, 1, 1],
        "method": "pam",
    }
    assert loaded["settings"] == {"k": 2, "method": "pam", "seeds": [0], "device": "cpu"}
    assert loaded["provenance"]["device"] == "cpu"
    assert loaded["matrix_file"] == "ds.npy"
    np.testing.assert_array_equal(loaded["matrix"], matrix)
    assert load_result(path, load_matrix=False)["matrix"] is None


def test_save_result_references_existing_matrix_and_lists(tmp_path):
    atomic_save_npy(tmp_path / "shared" / "D.npy", np.zeros((2, 2), np.float32))
    path = save_result(
        tmp_path / "r" / "elbow.json",
        [{"k": 1, "ds": 0.5}, _result()],
        matrix_path=tmp_path / "shared" / "D.npy",
        settings={},
    )
    loaded = load_result(path)
    assert loaded["matrix_file"] == os.path.join("..", "shared", "D.npy")
    assert loaded["matrix"].shape == (2, 2)
    assert loaded["kind"] == "list[dict]" and loaded["result"][0] == {"k": 1, "ds": 0.5}
    assert loaded["provenance"]["device"] is None


def test_save_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\.npy"):
        save_result(tmp_path / "r.npy", {}, settings={})
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        save_result(tmp_path / "r.json", {}, matrix_path=tmp_path / "missing.npy")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_result(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a dispersion-score result"):
        load_result(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError, match="absent.json"):
        load_result(tmp_path / "absent.json")


# --- shape directories ---------------------------------------------------------------------------------


def _box_mesh() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(2.0, 1.0, 0.5))


def test_list_shape_files_sorted_and_filtered(tmp_path):
    for name in ("b.npy", "a.obj", "c.off", "d.ply", "notes.md"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.npy").write_bytes(b"")
    assert [p.name for p in list_shape_files(tmp_path)] == ["a.obj", "b.npy", "c.off", "d.ply"]
    assert [p.name for p in list_shape_files(tmp_path, recursive=True)] == [
        "a.obj",
        "b.npy",
        "c.off",
        "d.ply",
        "e.npy",
    ]
    with pytest.raises(ValueError, match="no shape files"):
        list_shape_files(_empty(tmp_path))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_shape_files(tmp_path / "nowhere")


def _empty(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty


def test_load_npy_uses_first_three_columns_without_replacement(tmp_path):
    dense = np.random.default_rng(0).normal(size=(100, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", dense)
    clouds = load_shapes([tmp_path / "a.npy"], num_points=50, seed=3)
    assert clouds.shape == (1, 50, 3) and clouds.dtype == np.float32
    rows = {tuple(r) for r in dense[:, :3]}
    assert all(tuple(p) in rows for p in clouds[0])
    assert len({tuple(p) for p in clouds[0]}) == 50, "no duplicates when the file has enough points"
    np.testing.assert_array_equal(clouds, load_shapes([tmp_path / "a.npy"], num_points=50, seed=3))
    assert not np.array_equal(clouds, load_shapes([tmp_path / "a.npy"], num_points=50, seed=4))
    everything = load_shapes([tmp_path / "a.npy"], num_points=None)
    np.testing.assert_array_equal(everything[0], dense[:, :3])
    assert load_shapes([tmp_path / "a.npy"], num_points=150).shape == (1, 150, 3)


def test_items_are_sampled_independently(tmp_path):
    dense = np.random.default_rng(0).normal(size=(100, 3))
    np.save(tmp_path / "a.npy", dense)
    two = load_shapes([tmp_path / "a.npy", tmp_path / "a.npy"], num_points=20, seed=0)
    assert not np.array_equal(two[0], two[1]), "items must not share one random stream position"
    np.testing.assert_array_equal(two[0], load_shapes([tmp_path / "a.npy"], num_points=20, seed=0)[0])


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply"])
def test_meshes_are_sampled_on_the_surface(tmp_path, suffix):
    path = tmp_path / f"box{suffix}"
    _box_mesh().export(path)
    clouds = load_shapes([path], num_points=4000, seed=0)
    points = clouds[0].astype(np.float64)
    half = np.array([1.0, 0.5, 0.25])
    # Every sample lies on a face of the box: one coordinate at ±half-extent, the others inside.
    on_face = np.isclose(np.abs(points), half, atol=1e-5).any(axis=1)
    assert on_face.all() and (np.abs(points) <= half + 1e-5).all()
    # Area-uniform: the share of samples on the two largest faces (2×1 each, total area 7) is 4/7.
    on_largest = np.isclose(np.abs(points[:, 2]), 0.25, atol=1e-5).mean()
    assert abs(on_largest - 4 / 7) < 0.04
    np.testing.assert_array_equal(clouds, load_shapes([path], num_points=4000, seed=0))


def test_point_cloud_ply(tmp_path):
    points = np.random.default_rng(2).normal(size=(30, 3))
    trimesh.PointCloud(points).export(tmp_path / "cloud.ply")
    loaded = load_shapes([tmp_path / "cloud.ply"], num_points=None)[0]
    np.testing.assert_allclose(np.sort(loaded, axis=0), np.sort(points, axis=0), atol=1e-6)


def test_bad_shape_files_name_the_file(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((10, 2)))
    with pytest.raises(ValueError, match="flat.npy"):
        load_shapes([tmp_path / "flat.npy"])
    np.save(tmp_path / "nan.npy", np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="nan.npy.*NaN"):
        load_shapes([tmp_path / "nan.npy"])
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(ValueError, match="empty.npy"):
        load_shapes([tmp_path / "empty.npy"])
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npy"):
        load_shapes([tmp_path / "junk.npy"])
    (tmp_path / "junk.off").write_text("OFF\nnot numbers\n")
    with pytest.raises(ValueError, match="junk.off"):
        load_shapes([tmp_path / "junk.off"])
    with pytest.raises(FileNotFoundError, match="gone.obj"):
        load_shapes([tmp_path / "gone.obj"])
    _box_mesh().export(tmp_path / "box.obj")
    with pytest.raises(ValueError, match="box.obj.*num_points"):
        load_shapes([tmp_path / "box.obj"], num_points=None)
    with pytest.raises(ValueError, match="num_points"):
        load_shapes([tmp_path / "box.obj"], num_points=0)


# --- point layout, whole-file checks, directory scans, empty files (issue 9, items 2, 4, 5, 11) -------------


def test_channels_first_and_square_arrays_are_refused_naming_file_and_shape(tmp_path):
    points = np.random.default_rng(3).normal(size=(500, 3))
    np.save(tmp_path / "channels_first.npy", points.T)  # (3, 500): was read as 3 points
    with pytest.raises(ValueError, match=r"channels_first\.npy has shape \(3, 500\) \(channels first"):
        load_shapes([tmp_path / "channels_first.npy"], num_points=100)
    D = np.abs(points[:6, None, 0] - points[None, :6, 0])  # a (6, 6) distance matrix left in the folder
    np.save(tmp_path / "D.npy", D)
    with pytest.raises(ValueError, match=r"D\.npy has shape \(6, 6\)"):
        load_shapes([tmp_path / "D.npy"], num_points=None)
    np.save(tmp_path / "normals.npy", np.concatenate([points, points], axis=1))  # (500, 6): x, y, z + normals
    loaded = load_shapes([tmp_path / "normals.npy"], num_points=None)[0]
    np.testing.assert_array_equal(loaded, points.astype(np.float32))
    np.save(tmp_path / "three.npy", points[:3])  # (3, 3): three points, as written
    assert load_shapes([tmp_path / "three.npy"], num_points=None)[0].shape == (3, 3)


def test_a_nan_is_found_whatever_points_are_drawn(tmp_path):
    points = np.random.default_rng(4).normal(size=(10_000, 3))
    points[7_777, 1] = np.nan
    np.save(tmp_path / "one_nan.npy", points)
    for seed in range(8):  # before: most of these samples missed the NaN point and passed
        with pytest.raises(ValueError, match=r"one_nan\.npy contains NaN or inf coordinates \(first at point 7777"):
            load_shapes([tmp_path / "one_nan.npy"], num_points=100, seed=seed)
    # A mesh whose one NaN vertex sits on a tiny face that area-uniform sampling would almost never hit.
    obj = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1e-9\nv nan 0 1e-9\nf 1 2 3\nf 1 4 5\n"
    (tmp_path / "nan_vertex.obj").write_text(obj)
    with pytest.raises(ValueError, match=r"nan_vertex\.obj contains NaN"):
        load_shapes([tmp_path / "nan_vertex.obj"], num_points=100)


def test_coordinates_beyond_float32_are_named(tmp_path):
    np.save(tmp_path / "huge.npy", np.array([[0.0, 0.0, 0.0], [1e39, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"huge\.npy has coordinates that overflow float32 \(first at point 1"):
        load_shapes([tmp_path / "huge.npy"], num_points=None)


def test_every_unreadable_file_is_named(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 10)))
    (tmp_path / "b.npy").write_bytes(b"junk")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match=r"2 shape files cannot be used: .*a\.npy.*; .*b\.npy"):
        load_shapes([tmp_path / name for name in ("a.npy", "b.npy", "c.npy")], num_points=5)


def test_empty_and_foreign_npy_files_give_one_line_errors(tmp_path):
    from dispersion_score.io import read_npy

    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npy is empty \(0 bytes\)"):
        read_npy(tmp_path / "empty.npy", what="matrix")
    with pytest.raises(ValueError, match=r"empty\.npy is empty"):
        load_shapes([tmp_path / "empty.npy"])
    np.save(tmp_path / "full.npy", np.zeros((4, 4)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=r"could not read matrix .*cut\.npy"):
        read_npy(tmp_path / "cut.npy", what="matrix")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"objects\.npy"):
        read_npy(tmp_path / "objects.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.ones(2))
    with pytest.raises(ValueError, match="several arrays"):
        read_npy(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="is a directory"):
        read_npy(tmp_path)
    with pytest.raises(FileNotFoundError, match="absent"):
        read_npy(tmp_path / "absent.npy")


def test_scan_reports_what_it_skipped_and_never_reads_hidden_files(tmp_path):
    from dispersion_score.io import scan_files

    for name in ("b.npy", "a.obj", "notes.txt", ".hidden.npy", "._a.obj", ".lock"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.npy").write_bytes(b"")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "b-checkpoint.npy").write_bytes(b"")
    scan = scan_files(tmp_path, (".npy", ".obj"), what="shape files")
    assert [p.name for p in scan.files] == ["a.obj", "b.npy"]
    assert scan.skipped == {
        "hidden": ["._a.obj", ".hidden.npy", ".ipynb_checkpoints", ".lock"],
        "not .npy/.obj": ["notes.txt"],
        "subdirectory, not read without --recursive": ["sub"],
    }
    deep = scan_files(tmp_path, (".npy", ".obj"), what="shape files", recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in deep.files] == ["a.obj", "b.npy", "sub/c.npy"]
    assert "sub" not in str(deep.skipped) and ".ipynb_checkpoints" in deep.skipped["hidden"]
    assert deep.skipped_summary()[0].startswith("skipped 4 (hidden): ")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        scan_files(tmp_path / "file", (".npy",), what="shape files")
