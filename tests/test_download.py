"""download/*.sh and download/download.py without a network: no test sends traffic beyond the loopback.

The offline path is exercised with DS_DOWNLOAD_PROBE pointing at a closed loopback port (and with
DS_DOWNLOAD_OFFLINE=1); downloads are replaced by --from-dir archives or a fake gdown module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

from dataset.locations import REPO_ROOT

SCRIPTS = REPO_ROOT / "download"


def _module():
    spec = importlib.util.spec_from_file_location("download_script", SCRIPTS / "download.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


download = _module()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("DS_")}
    environment |= {"PYTHON": sys.executable, "DS_DOWNLOAD_PROBE": f"127.0.0.1:{_closed_port()}"}
    environment |= env or {}
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args], capture_output=True, text=True, env=environment, timeout=60
    )


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for name, data in files.items():
            handle.writestr(name, data)
    return path


def _checkpoint_zips(folder: Path) -> dict[str, Path]:
    run = "20210301_1200_cluster_image_aug_2by10_cltsize01_seed1_BS8_Epoch1200"
    return {
        "train-synthetic": _zip(
            folder / "toydata_checkpoints.zip", {f"train_synthetic/{run}/checkpoint.pt": b"w" * 100}
        ),
        "more-imgs": _zip(folder / "shapenet_moreimgs_checkpoints.zip", {"more_imgs/a/network.pth": b"x"}),
        "more-shapes": _zip(folder / "shapenet_moreshapes_checkpoints.zip", {"more_shapes/b/network.pth": b"y"}),
    }


@pytest.mark.parametrize("script", ["download_data.sh", "download_checkpts.sh"])
@pytest.mark.parametrize("how", ["closed port", "forced"])
def test_offline_fails_fast_and_leaves_nothing(tmp_path, script: str, how: str) -> None:
    env = {"DS_DOWNLOAD_OFFLINE": "1"} if how == "forced" else {}
    result = _run(script, "--root", str(tmp_path), env=env)
    assert result.returncode == 3, result.stderr
    assert "no connection to Google Drive" in result.stderr and "Nothing was downloaded or written" in result.stderr
    assert "--from-dir" in result.stderr and "https://drive.google.com/file/d/" in result.stderr
    if how == "closed port":
        assert "127.0.0.1" in result.stderr
    assert _tree(tmp_path) == []
    if script == "download_data.sh":
        assert "dataset/data/ShapeNetCore.v1/<synset>/<model id>/model.obj" in result.stdout


def test_from_dir_unpacks_atomically_and_reruns_offline(tmp_path) -> None:
    zips = _checkpoint_zips(tmp_path / "browser")
    root = tmp_path / "repo"
    result = _run("download_checkpts.sh", "--root", str(root), "--from-dir", str(tmp_path / "browser"))
    assert result.returncode == 0, result.stderr
    run = root / "log/train_synthetic/20210301_1200_cluster_image_aug_2by10_cltsize01_seed1_BS8_Epoch1200"
    assert (run / "checkpoint.pt").read_bytes() == b"w" * 100
    assert (root / "log/more_imgs/a/network.pth").is_file() and (root / "log/more_shapes/b/network.pth").is_file()
    marker = json.loads((root / "log/train_synthetic" / download.MARKER).read_text())
    assert marker["google_drive_id"] == "1h3mZUMueGfrhPTZo1BoNNYLyPymlpZb7" and len(marker["sha256"]) == 64
    assert all(path.is_file() for path in zips.values())  # the user's files are left alone
    assert not [p for p in (root / "log").iterdir() if p.name.startswith(".")]  # no temporary folders
    # a rerun has nothing to do and needs no network
    again = _run("download_checkpts.sh", "--root", str(root), env={"DS_DOWNLOAD_OFFLINE": "1"})
    assert again.returncode == 0 and again.stdout.count("already in") == 3


def test_never_overwrites_existing_folders(tmp_path) -> None:
    browser = tmp_path / "browser"
    _zip(browser / "cubesphere_1000.zip", {"cubesphere_1000/test_interp_1000.json": b"[]"})
    ours = tmp_path / "dataset/synthetic_data/cubesphere_1000"  # this project's builder output
    ours.mkdir(parents=True)
    (ours / "manifest.json").write_text("ours")
    result = _run(
        "download_data.sh", "--root", str(tmp_path), "--from-dir", str(browser), "--only", "original-cubesphere"
    )
    assert result.returncode == 0, result.stderr
    assert (ours / "manifest.json").read_text() == "ours" and _tree(ours) == ["manifest.json"]
    assert (tmp_path / "dataset/synthetic_data/original_cubesphere_1000/test_interp_1000.json").read_text() == "[]"

    # a target folder that this script did not make stops everything before any work
    mine = tmp_path / "log/more_imgs"
    mine.mkdir(parents=True)
    (mine / "my_run").write_text("mine")
    _checkpoint_zips(browser)
    before = _tree(tmp_path)
    refused = _run("download_checkpts.sh", "--root", str(tmp_path), "--from-dir", str(browser))
    assert refused.returncode == 1
    assert "refusing to overwrite" in refused.stderr and str(mine) in refused.stderr
    assert _tree(tmp_path) == before


def test_corrupt_archive_leaves_nothing(tmp_path) -> None:
    browser = tmp_path / "browser"
    path = _zip(browser / "shapenet_moreimgs_checkpoints.zip", {"more_imgs/a/network.pth": b"0123456789" * 50})
    data = bytearray(path.read_bytes())
    offset = data.index(b"network.pth") + len("network.pth") + 5  # inside the compressed member data
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    root = tmp_path / "repo"
    result = _run("download_checkpts.sh", "--root", str(root), "--from-dir", str(browser), "--only", "more-imgs")
    assert result.returncode == 1 and "corrupt" in result.stderr
    assert not root.exists() and path.is_file()  # nothing written; the user's file kept


def test_unknown_name_and_missing_file(tmp_path) -> None:
    result = _run("download_data.sh", "--root", str(tmp_path), "--only", "shapenet-meshes")
    assert result.returncode == 1 and "unknown data archive(s) ['shapenet-meshes']" in result.stderr
    result = _run(
        "download_data.sh", "--root", str(tmp_path), "--from-dir", str(tmp_path), "--only", "original-anglelimit"
    )
    assert result.returncode == 1 and "ShapeNetV1RenderingAnglelimit.zip not found" in result.stderr
    assert "1Y2nAktYbeRJ23bhjqZp3c4kh5P8oBYdp" in result.stderr


# ---------------------------------------------------------------------------- in-process: the download step


@pytest.fixture()
def online(monkeypatch):
    """The connectivity check passes (no traffic is sent: the download function is replaced too)."""
    monkeypatch.setattr(download, "_check_online", lambda archives: None)


def _fake_gdown(monkeypatch, download_function) -> None:
    module = types.ModuleType("gdown")
    module.__version__ = "test"
    module.download = download_function
    monkeypatch.setitem(sys.modules, "gdown", module)


def test_download_with_gdown_resumes_and_cleans_up(tmp_path, monkeypatch, online) -> None:
    source = _zip(tmp_path / "drive" / "x.zip", {"more_shapes/run/network.pth": b"z" * 10})
    calls = []

    def fake_download(*, id, output, quiet, resume):  # noqa: A002 - gdown's own keyword
        calls.append((id, Path(output).name, resume))
        Path(output).write_bytes(source.read_bytes())
        return output

    _fake_gdown(monkeypatch, fake_download)
    (archive,) = download._select("checkpoints", ["more-shapes"])
    root, cache = tmp_path / "repo", tmp_path / "repo/.downloads"
    made = download.run([archive], root=root, cache_dir=cache)
    assert made == [root / "log/more_shapes"] and (root / "log/more_shapes/run/network.pth").read_bytes() == b"z" * 10
    assert calls == [("15ZUTzQAGtlJs-mUX0waY0pdnlLf3eO7n", "shapenet_moreshapes_checkpoints.zip", True)]
    assert not (cache / archive.filename).exists()  # deleted once unpacked
    assert "done shapenet_moreshapes_checkpoints.zip" in (cache / "download.log").read_text()


def test_drive_refusal_and_missing_gdown(tmp_path, monkeypatch, online) -> None:
    (archive,) = download._select("data", ["original-cubesphere"])
    monkeypatch.setitem(sys.modules, "gdown", None)  # import gdown fails
    with pytest.raises(download.DownloadFailure, match="gdown is not installed") as error:
        download.run([archive], root=tmp_path, cache_dir=tmp_path / ".downloads")
    assert error.value.status == download.EXIT_NO_GDOWN and _tree(tmp_path) == []

    def refuse(*, id, output, quiet, resume):  # noqa: A002
        raise RuntimeError("Too many users have viewed or downloaded this file recently")

    _fake_gdown(monkeypatch, refuse)
    with pytest.raises(download.DownloadFailure, match="did not deliver cubesphere_1000.zip") as error:
        download.run([archive], root=tmp_path, cache_dir=tmp_path / ".downloads")
    assert error.value.status == download.EXIT_DRIVE and "Too many users" in str(error.value)
    assert not (tmp_path / archive.target).exists()


def test_archive_without_top_folder_and_disk_space(tmp_path, monkeypatch) -> None:
    browser = tmp_path / "browser"
    _zip(browser / "ShapeNetV1PointCloud.zip", {"02691156/a.points.ply.npy": b"1", "03001627/b.points.ply.npy": b"2"})
    (archive,) = download._select("data", ["shapenet-pointclouds"])
    root = tmp_path / "repo"
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=1))
    with pytest.raises(download.DownloadFailure, match="make room"):
        download.run([archive], root=root, cache_dir=root / ".downloads", from_dir=browser)
    assert not (root / archive.target).exists() and _tree(root / "dataset/data") == []
    monkeypatch.undo()
    download.run([archive], root=root, cache_dir=root / ".downloads", from_dir=browser)
    target = root / archive.target
    assert (target / "02691156/a.points.ply.npy").read_bytes() == b"1" and (target / download.MARKER).is_file()
    assert sorted(p.name for p in (root / "dataset/data").iterdir()) == ["ShapeNetV1PointCloud"]


def test_targets_agree_with_the_loaders() -> None:
    from models.original import CHECKPOINT_ARCHIVES, DEFAULT_RUN_ROOTS, ORIGINAL_SYNTHETIC_ROOT

    by_top = {archive.top: archive for archive in download.ARCHIVES}
    for experiment, target in DEFAULT_RUN_ROOTS.items():
        assert by_top[experiment].target == target
        assert (by_top[experiment].filename, by_top[experiment].drive_id) == CHECKPOINT_ARCHIVES[experiment]
    assert by_top["cubesphere_1000"].target == ORIGINAL_SYNTHETIC_ROOT != "dataset/synthetic_data/cubesphere_1000"


def test_list_says_when_the_root_does_not_exist(tmp_path: Path, capsys) -> None:
    assert download.main(["list", "--root", str(tmp_path / "nowhere")]) == 0
    out = capsys.readouterr().out
    assert "does not exist yet" in out and "nowhere" in out
    assert not (tmp_path / "nowhere").exists()  # listing creates nothing
    assert download.main(["list", "--root", str(tmp_path)]) == 0
    assert "does not exist yet" not in capsys.readouterr().out
