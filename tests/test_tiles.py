"""Out-of-core matrices in tiles: bit-identical to the in-memory functions, resumable, robust to killed
workers and corrupt tiles, through local processes and submitit; k-medoids on the memory map; the GPU
memory check; the CLI."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks._inputs import ragged_clouds, random_clouds, random_features
from dispersion_score import (
    _chamfer_kernel,
    chamfer,
    chamfer_cross,
    chamfer_matrix,
    dispersion_score,
    feature_matrix,
    tiles,
)
from dispersion_score._device_memory import check_fits_on_device
from dispersion_score._matrix import as_distance_tensor
from dispersion_score._tile_plan import marker_path, plan_tiles, tile_path
from dispersion_score.cli import main
from dispersion_score.launch import Launch

HAS_KERNEL = _chamfer_kernel.load_kernel() is not None
BACKENDS = [
    pytest.param("compiled", marks=pytest.mark.skipif(not HAS_KERNEL, reason="no C++ compiler")),
    "torch",
]


@pytest.fixture
def one_job_per_slot(monkeypatch):
    """Fewer worker processes: each one costs a Python + torch start-up."""
    monkeypatch.setattr(tiles, "JOBS_PER_SLOT", 1)


def _markers(out: Path) -> dict[str, int]:
    folder = Path(f"{out}.tiles") / "tiles"
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}


def _prepared(clouds, backend: str = "auto"):
    return chamfer._prepare_sets([clouds], ("clouds",), None, True, None, backend)[0]


# --- the plan -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [True, False])
def test_plan_covers_every_pair_once(symmetric: bool) -> None:
    groups_a, groups_b = [5, 1, 12], [7, 3] if not symmetric else [5, 1, 12]

    def side(u: int, v: int) -> int:
        return 2 + u + v  # different block sides per group pair, as the torch backend has

    plan = plan_tiles(groups_a, groups_b, symmetric=symmetric, tile_size=4, block_side=side)
    starts_a, starts_b = np.cumsum([0, *groups_a]), np.cumsum([0, *groups_b])
    count = np.zeros((starts_a[-1], starts_b[-1]), dtype=int)
    for tile in plan:
        assert (tile.a1 - tile.a0) % side(tile.u, tile.v) == 0 or tile.a1 == groups_a[tile.u]
        rows = np.arange(tile.a0, tile.a1) + starts_a[tile.u]
        cols = np.arange(tile.b0, tile.b1) + starts_b[tile.v]
        block = np.ones((len(rows), len(cols)), dtype=int)
        if tile.diagonal:
            block = np.triu(block, k=1)
        count[np.ix_(rows, cols)] += block
    if symmetric:
        count = count + count.T
        np.testing.assert_array_equal(count, 1 - np.eye(len(count), dtype=int))
    else:
        np.testing.assert_array_equal(count, 1)
    assert sum(t.pairs for t in plan) == (count.sum() // 2 if symmetric else count.sum())


# --- the same bits as in memory -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_square_dense_and_ragged_equal_in_memory(tmp_path: Path, backend: str) -> None:
    dense = random_clouds(23, 40, seed=1, scale=0.3, offset=2.0)  # 23 is no multiple of the tile size
    ragged = ragged_clouds([30, 41, 50, 70, 90, 33, 21, 64, 65, 128, 100, 17, 18, 40], seed=2)
    for name, clouds, size in (("dense", dense, 5), ("ragged", ragged, 3)):
        expected = chamfer_matrix(clouds, backend=backend)
        got = chamfer_matrix(clouds, backend=backend, out=tmp_path / f"{name}.npy", tile_size=size)
        assert isinstance(got, np.memmap) and got.dtype == np.float32
        assert np.array_equal(got, expected), name
        assert np.array_equal(np.load(tmp_path / f"{name}.npy"), expected)
    not_normalized = chamfer_matrix(dense, backend=backend, normalize=False)
    got = chamfer_matrix(dense, backend=backend, normalize=False, out=tmp_path / "raw.npy", tile_size=7)
    assert np.array_equal(got, not_normalized)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_equals_in_memory(tmp_path: Path, backend: str) -> None:
    set_a = ragged_clouds([30, 40, 50, 70, 90, 33, 21], seed=3)
    set_b = random_clouds(11, 45, seed=4)
    expected = chamfer_cross(set_a, set_b, backend=backend)
    got = chamfer_cross(set_a, set_b, backend=backend, out=tmp_path / "x.npy", tile_size=4)
    assert got.shape == (7, 11)
    assert np.array_equal(got, expected)


def test_torch_tiles_follow_the_in_memory_blocks(tmp_path: Path) -> None:
    """A tile side that is no multiple of the block side is rounded up: the blocks stay the same."""
    clouds = random_clouds(20, 30, seed=5)
    expected = chamfer_matrix(clouds, backend="torch", block_size=3)
    got = chamfer_matrix(clouds, backend="torch", block_size=3, out=tmp_path / "D.npy", tile_size=4)
    manifest = json.loads((tmp_path / "D.npy.tiles" / "manifest.json").read_text())
    assert all((tile[3] - tile[2]) % 3 == 0 or tile[3] == 20 for tile in manifest["tiles"])
    assert np.array_equal(got, expected)


def test_thread_count_changes_no_value(tmp_path: Path) -> None:
    """Workers run with fewer threads than the caller: the torch matmuls and reductions must not care."""
    clouds = ragged_clouds([200, 300, 333, 600, 64, 128, 99, 150, 70, 256] * 2, seed=20)
    features = random_features(700, 50, seed=21, offset=3.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        expected, expected_f = chamfer_matrix(clouds, backend="torch"), feature_matrix(features, block_size=128)
        torch.set_num_threads(1)
        got = chamfer_matrix(clouds, backend="torch", out=tmp_path / "D.npy", tile_size=3)
        got_f = feature_matrix(features, block_size=128, out=tmp_path / "F.npy", tile_size=200)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(got, expected) and np.array_equal(got_f, expected_f)


def test_features_equal_in_memory(tmp_path: Path) -> None:
    features = random_features(301, 9, seed=6, offset=50.0)
    expected = feature_matrix(features, block_size=16)
    got = feature_matrix(features, block_size=16, out=tmp_path / "F.npy", tile_size=40)
    assert np.array_equal(got, expected)
    assert np.array_equal(feature_matrix(features, out=tmp_path / "G.npy"), feature_matrix(features))


# --- launchers ------------------------------------------------------------------------------------------


def test_local_workers_equal_in_memory_with_capped_threads(tmp_path: Path, one_job_per_slot) -> None:
    clouds = ragged_clouds([40, 50, 64, 33, 21, 64, 65, 80, 17, 18, 25], seed=7)
    launch = Launch("local", workers=2, threads=1)
    got = chamfer_matrix(clouds, out=tmp_path / "D.npy", tile_size=3, launch=launch)
    assert np.array_equal(got, chamfer_matrix(clouds))
    logs = sorted((tmp_path / "D.npy.tiles" / "logs").glob("*.log"))
    assert len(logs) == 2
    assert all("on cpu with 1 threads" in log.read_text() for log in logs)
    progress = (tmp_path / "D.npy.tiles" / "progress.log").read_text()
    assert "start: 0/" in progress and "pairs/s" in progress and "ETA" in progress and "end: " in progress


def test_submitit_local_launcher_equals_in_memory(tmp_path: Path) -> None:
    clouds = random_clouds(13, 30, seed=8)
    got = chamfer_matrix(clouds, out=tmp_path / "D.npy", tile_size=5, launch=Launch("submitit-local", workers=1))
    assert np.array_equal(got, chamfer_matrix(clouds))
    assert list((tmp_path / "D.npy.tiles" / "submitit").iterdir()), "the jobs went through submitit"


def _tile_workers(parent: int) -> list[int]:
    """Process ids of the tile workers started by ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"dispersion_score.tiles" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_sigkill_of_a_worker_mid_tile_then_rerun(tmp_path: Path, one_job_per_slot) -> None:
    clouds = random_clouds(48, 400, seed=9)
    out = tmp_path / "D.npy"
    launch = Launch("local", workers=1)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            chamfer_matrix(clouds, out=out, tile_size=2, launch=launch)  # 300 small tiles, each fsynced twice
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    folder = Path(f"{out}.tiles") / "tiles"
    deadline = time.monotonic() + 120
    while not (folder.exists() and any(folder.glob("*.json"))) and time.monotonic() < deadline:
        time.sleep(0.002)
    workers = _tile_workers(os.getpid())
    assert len(workers) == 1, "one worker computing tiles"
    os.kill(workers[0], signal.SIGKILL)
    thread.join(timeout=120)
    assert errors and isinstance(errors[0], RuntimeError) and "Run the same call again" in str(errors[0])
    assert not out.exists(), "no matrix from an incomplete run"
    done = len(list(folder.glob("*.json")))
    assert 0 < done < 300

    got = chamfer_matrix(clouds, out=out, tile_size=2, launch=launch)
    assert np.array_equal(got, chamfer_matrix(clouds))
    starts = [line for line in (Path(f"{out}.tiles") / "progress.log").read_text().splitlines() if "start:" in line]
    assert starts[-1].split("start: ")[1].startswith(f"{done}/300 tiles already done")


# --- resuming, corrupt tiles, settings ------------------------------------------------------------------


def test_corrupt_and_half_written_tiles_are_recomputed(tmp_path: Path) -> None:
    clouds = random_clouds(17, 30, seed=10)
    expected = chamfer_matrix(clouds)
    out = tmp_path / "D.npy"
    tiles.tiled_chamfer(_prepared(clouds), out=out, tile_size=4, keep_tiles=True)
    work = Path(f"{out}.tiles")
    out.unlink()
    before = _markers(out)
    truncated, unmarked, flipped = 0, 3, 5
    data = tile_path(work, truncated).read_bytes()
    tile_path(work, truncated).write_bytes(data[: len(data) // 2])
    marker_path(work, unmarked).unlink()
    data = bytearray(tile_path(work, flipped).read_bytes())
    data[-4:] = np.float32(123.0).tobytes()  # same size and header: only the CRC-32 tells
    tile_path(work, flipped).write_bytes(bytes(data))
    (work / "tiles" / ".t000002.npy.abc.tmp").write_bytes(b"left by a killed writer")

    got = tiles.tiled_chamfer(_prepared(clouds), out=out, tile_size=4, keep_tiles=True)
    assert np.array_equal(got, expected)
    after = _markers(out)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten == {f"t{i:06d}.json" for i in (truncated, unmarked, flipped)}
    assert not list((work / "tiles").glob(".*.tmp"))
    log = (work / "progress.log").read_text()
    assert "failed their check" in log, "the flipped tile is caught at assembly, by its CRC-32"


def test_rerun_reuses_the_matrix_and_refuses_other_inputs(tmp_path: Path) -> None:
    clouds = random_clouds(9, 20, seed=11)
    out = tmp_path / "D.npy"
    first = chamfer_matrix(clouds, out=out, tile_size=4)
    assert not (Path(f"{out}.tiles") / "tiles").exists() and not (Path(f"{out}.tiles") / "input.npy").exists()
    log = Path(f"{out}.tiles") / "progress.log"
    lines = log.read_text()
    again = chamfer_matrix(clouds, out=out, tile_size=4)
    assert np.array_equal(again, first) and log.read_text() == lines, "nothing recomputed"
    with pytest.raises(ValueError, match="fingerprint"):
        chamfer_matrix(random_clouds(9, 20, seed=12), out=out, tile_size=4)
    with pytest.raises(ValueError, match="tile_size"):
        chamfer_matrix(clouds, out=out, tile_size=5)
    np.save(tmp_path / "other.npy", np.zeros((9, 9), np.float32))
    with pytest.raises(ValueError, match="exists"):
        chamfer_matrix(clouds, out=tmp_path / "other.npy")
    out.unlink()  # deleted by hand: computed again from the manifest's settings
    assert np.array_equal(chamfer_matrix(clouds, out=out, tile_size=4), first)


def test_bad_tile_options(tmp_path: Path) -> None:
    clouds = random_clouds(4, 10, seed=13)
    with pytest.raises(ValueError, match="need out="):
        chamfer_matrix(clouds, launch=Launch("local"))
    with pytest.raises(ValueError, match="need out="):
        feature_matrix(np.ones((3, 2)), tile_size=2)
    with pytest.raises(ValueError, match="tile_size must be a positive integer"):
        chamfer_matrix(clouds, out=tmp_path / "D.npy", tile_size=0)
    with pytest.raises(ValueError, match=".npy"):
        chamfer_matrix(clouds, out=tmp_path / "D.bin")
    with pytest.raises(ValueError, match="threads must be a positive"):
        Launch("local", workers=2, threads=0)
    with pytest.raises(ValueError, match="CPU only"):
        chamfer_matrix(clouds, out=tmp_path / "D.npy", backend="compiled", launch=Launch("local", gpus=(0,)))
    chamfer_matrix(clouds, out=tmp_path / "E.npy", tile_size=2)
    with pytest.raises(ValueError, match="unknown tile indices"):
        tiles.run_tiles(tmp_path / "E.npy.tiles", [99], "cpu")
    with pytest.raises(ValueError, match="planned for cpu"):
        tiles.run_tiles(tmp_path / "E.npy.tiles", [0], "cuda:0")


# --- k-medoids on the memory map, GPU memory check --------------------------------------------------------


def test_dispersion_score_reads_the_memory_map_without_a_copy(tmp_path: Path) -> None:
    points = random_features(60, 3, seed=14)
    D = feature_matrix(points, out=tmp_path / "D.npy", tile_size=16)
    tensor = as_distance_tensor(D)
    assert tensor.data_ptr() == D.ctypes.data, "the tensor is a view of the memory map"
    expected = dispersion_score(np.array(D), 5, seed=1)
    got = dispersion_score(D, 5, seed=1)
    assert got.ds == expected.ds and np.array_equal(got.medoids, expected.medoids)


def test_gpu_fit_check_decides_from_free_memory(monkeypatch) -> None:
    gib = 1 << 30
    calls = []

    def mem_get_info(device):
        calls.append(device)
        return 6 * gib, 16 * gib

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    check_fits_on_device(4 * gib, torch.device("cuda:0"), what="D")  # 4 + 1 GiB headroom <= 6
    with pytest.raises(ValueError, match=r"D needs 5\.5 GiB on cuda:0.*only 6 GiB of its 16 GiB are free"):
        check_fits_on_device(int(5.5 * gib), torch.device("cuda:0"), what="D")
    check_fits_on_device(100 * gib, torch.device("cpu"), what="D")
    assert len(calls) == 2, "the CPU is not checked"


def test_as_distance_tensor_refuses_a_matrix_too_large_for_the_gpu(monkeypatch) -> None:
    """The decision happens before any copy: no CUDA is needed to see it refuse."""
    import dispersion_score._matrix as matrix_module

    monkeypatch.setattr(matrix_module, "resolve_device", lambda device, *tensors: torch.device("cuda:0"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 << 20, 1 << 34))
    with pytest.raises(ValueError, match=r"D \(300 x 300 float32\) needs .*device='cpu'"):
        as_distance_tensor(np.zeros((300, 300), np.float32), device="cuda:0")


# --- command line -------------------------------------------------------------------------------------------


def test_cli_shapes_tiled_dry_run_and_estimate(tmp_path: Path, capsys) -> None:
    from dispersion_score.shapes_io import list_shape_files, load_shapes

    shapes = tmp_path / "shapes"
    shapes.mkdir()
    rng = np.random.default_rng(15)
    for i in range(7):
        np.save(shapes / f"s{i}.npy", rng.normal(size=(200, 3)) * (1 + i % 3))
    status = main(
        [
            "shapes",
            str(shapes),
            "--k",
            "2",
            "--points",
            "50",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "D.npy"),
            "--tiles",
            "3",
        ]
    )
    assert status == 0
    assert "DS = " in capsys.readouterr().out
    clouds = load_shapes(list_shape_files(shapes), num_points=50, seed=0)
    assert np.array_equal(np.load(tmp_path / "D.npy"), chamfer_matrix(clouds))

    status = main(["shapes", str(shapes), "--k", "2", "--device", "cpu", "--dry-run", "--workers", "2"])
    out = capsys.readouterr().out
    assert status == 0 and "pairs 21 " in out and "projected time" in out and "2 at once" in out
    status = main(["estimate", "--n", "35021", "--seconds", "0.2", "--gpus", "0", "1"])
    out = capsys.readouterr().out
    assert status == 0 and "4.91 GB" in out and "613,217,710" in out and "tiles of up to 1024 x 1024" in out
    if not torch.cuda.is_available():
        assert "unmeasured" in out
    status = main(["shapes", str(shapes), "--k", "2", "--tiles", "4"])
    assert status == 2 and "--out D.npy" in capsys.readouterr().err


# --- CUDA (run where a GPU is lent) -------------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_tiles_equal_in_memory(tmp_path: Path, one_job_per_slot) -> None:
    clouds = ragged_clouds([300, 310, 500, 2500, 2500, 120, 2400] * 3, seed=16)
    expected = chamfer_matrix(clouds, device="cuda")
    got = chamfer_matrix(clouds, device="cuda", out=tmp_path / "D.npy", tile_size=5)
    assert np.array_equal(got, expected)
    got = chamfer_matrix(clouds, device="cuda", out=tmp_path / "E.npy", tile_size=5, launch=Launch("local", gpus=(0,)))
    assert np.array_equal(got, expected)
    other = random_clouds(9, 700, seed=17)
    expected = chamfer_cross(clouds, other, device="cuda")
    assert np.array_equal(chamfer_cross(clouds, other, device="cuda", out=tmp_path / "X.npy", tile_size=4), expected)
    features = random_features(500, 64, seed=18)
    expected = feature_matrix(features, device="cuda", block_size=64)
    got = feature_matrix(features, device="cuda", block_size=64, out=tmp_path / "F.npy", tile_size=100)
    assert np.array_equal(got, expected)


@pytest.mark.cuda
def test_cuda_kmedoids_refuses_a_matrix_larger_than_free_memory(monkeypatch, tmp_path: Path) -> None:
    D = feature_matrix(random_features(50, 3, seed=19), out=tmp_path / "D.npy")
    assert dispersion_score(D, 3, device="cuda").ds == pytest.approx(dispersion_score(np.array(D), 3).ds, rel=1e-6)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 << 20, 1 << 34))
    with pytest.raises(ValueError, match="are free"):
        dispersion_score(D, 3, device="cuda")
