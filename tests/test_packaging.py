"""What `pip install` gets: the wheel and sdist built from the tracked files hold the library (every tracked file
under dispersion_score/, its C++ sources included) and nothing else; dependencies are ranges, requirements.txt
pins each within its range; the library runs without its optional torchvision."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import dispersion_score

CHECKOUT = Path(__file__).resolve().parents[1]
needs_checkout = pytest.mark.skipif(
    not (CHECKOUT / "pyproject.toml").is_file() or shutil.which("git") is None,
    reason="needs the git checkout (run from the installed wheel's test copy)",
)


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=CHECKOUT, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name and (CHECKOUT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and sdist of a copy of the tracked files (as in a fresh clone; the working tree's versions)."""
    root = tmp_path_factory.mktemp("package")
    source = root / "src"
    for name in tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(root / "dist"), str(source)], check=True, env=env)  # fmt: skip
    build_sdist = "from setuptools import build_meta; build_meta.build_sdist(r'%s')" % (root / "dist")
    subprocess.run([sys.executable, "-c", build_sdist], cwd=source, check=True, env=env, capture_output=True)
    (wheel,) = (root / "dist").glob("dispersion_score-*.whl")
    (sdist,) = (root / "dist").glob("dispersion_score-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def library_files() -> set[str]:
    return {name for name in tracked_files() if name.startswith("dispersion_score/")}


@needs_checkout
def test_the_wheel_holds_the_library_and_nothing_else(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"dispersion_score-{dispersion_score.__version__}.dist-info/"
        metadata = email.message_from_bytes(wheel.read(info + "METADATA"))
        entry_points = wheel.read(info + "entry_points.txt").decode()
    assert library_files() <= names, f"tracked library files missing: {sorted(library_files() - names)}"
    others = {name for name in names - library_files() if not name.startswith(info)}
    assert not others, f"the wheel holds more than the library: {sorted(others)}"
    assert wheel_top_level(names) == {"dispersion_score", info.rstrip("/")}
    assert metadata["Version"] == dispersion_score.__version__  # one place: dispersion_score.__version__
    assert "dispersion-score = dispersion_score.cli:main" in entry_points
    requirements = metadata.get_all("Requires-Dist")
    pinned = [r for r in requirements if "==" in r.split(";")[0]]
    assert not pinned, f"dependencies must be ranges, not pins: {pinned}"
    assert any(r.startswith("torch>=") for r in requirements)
    assert {"imagenet", "slurm", "experiments", "dev"} <= set(metadata.get_all("Provides-Extra"))


def wheel_top_level(names: set[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names}


@needs_checkout
def test_the_sdist_holds_the_library_and_its_build_files_only(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {member.name.split("/", 1)[1] for member in sdist.getmembers() if member.isfile()}
    assert library_files() <= names, f"tracked library files missing: {sorted(library_files() - names)}"
    extra = {name for name in names - library_files() if not name.startswith("dispersion_score.egg-info/")}
    assert extra <= {"PKG-INFO", "README.md", "pyproject.toml", "setup.cfg", "MANIFEST.in"}, sorted(extra)


@needs_checkout
def test_requirements_pin_every_declared_dependency_within_its_range():
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for line in (CHECKOUT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"requirements.txt must pin exact versions: {line}"
            pins[canonicalize_name(requirement.name)] = specifier.version
    for requirement in declared:
        assert "==" not in str(requirement.specifier), f"pyproject.toml pins {requirement}"
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert requirement.specifier.contains(pins[name]), f"pin {name}=={pins[name]} is outside {requirement}"
    assert set(pins) <= {canonicalize_name(r.name) for r in declared}, "requirements.txt pins an undeclared package"


def test_perceptual_features_run_without_torchvision(monkeypatch, tmp_path):
    """torchvision is optional (extra "imagenet"): random weights and weight files work without it, torchvision's
    weight names are refused with what to do."""
    from dispersion_score.perceptual import perceptual_features, vgg16_relu3_3

    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` now raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    layers = vgg16_relu3_3("random", seed=0)
    torch.save(layers.state_dict(), tmp_path / "vgg16_features.pth")
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    from_file = perceptual_features(images, weights=tmp_path / "vgg16_features.pth", device="cpu")
    np.testing.assert_array_equal(from_file, perceptual_features(images, weights="random", device="cpu"))
    with pytest.raises(ValueError, match=r"weights='imagenet' names torchvision's VGG16 weights.*not installed"):
        vgg16_relu3_3("imagenet")


@needs_checkout
def test_readme_scripts_import_the_experiment_code_from_anywhere(tmp_path):
    """The README's scripts run with the venv's python from any folder, without PYTHONPATH (./setup.sh puts the
    checkout on .venv's path; no script touches sys.path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for script in ("train_scripts/train_synthetic.py", "eval_scripts/eval_ds_synthetic.py"):
        text = (CHECKOUT / script).read_text()
        assert "sys.path" not in text, f"{script} edits sys.path"
        done = subprocess.run([sys.executable, str(CHECKOUT / script), "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, f"{script} --help failed:\n{done.stderr[-2000:]}"
