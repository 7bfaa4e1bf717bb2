"""Prepares the GPU run (docs/gpu.md), here, with registry access: ``python -m benchmarks.gpu.prepare``.

Downloads the Python 3.12 manylinux x86_64 wheels of the packages the run imports that the GPU machine lacks
into the git-ignored ``.gpu_wheels/``, checks that their own requirements are there or on the machine, and
fails (exit 1) when the tracked tree plus the untracked files that would travel plus the wheels exceed the
device's 64 MiB.

What the run imports beyond the GPU machine's packages (torch, torchvision, numpy, scipy, scikit-learn, pandas,
matplotlib, pillow, pyyaml, tqdm, tensorboard, pytest, threadpoolctl, filelock, ...):

* trimesh: ``models.templates`` (every network's templates) and ``tests/test_cli.py`` at import;
* embreex: the ShapeNet stand-in's renderer (``dataset.shapenet.render.renderer``), built there for the ShapeNet step.

Not carried, because the run never imports them: mitsuba (the synthetic data's renderer: the synthetic
steps train on the procedural toy data), submitit (SLURM only), kmedoids and faiss (benchmark references).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from dataset.locations import REPO_ROOT

WHEELS_DIR = ".gpu_wheels"
COMMIT_FILE = "commit.txt"  # the tree's commit, read by the run's environment step (no .git travels)
LIMIT_BYTES = 64 * 2**20
# Package name -> version to fetch when this environment does not have it installed.
CARRIED = {"trimesh": "5.2.0", "embreex": "4.4.0.post1"}
# What the GPU machine's image has (device README, KINDS.md), as normalised distribution names.
ON_DEVICE = {
    "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "pillow", "pyyaml", "tqdm",
    "tensorboard", "pytest", "threadpoolctl", "filelock", "packaging", "typing-extensions",
}  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions() -> dict[str, str]:
    """The carried packages at the versions installed here (the ones the suite tested), else the defaults."""
    versions = {}
    for name, default in CARRIED.items():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = default
    return versions


def download(folder: Path, versions: dict[str, str], *, python_version: str = "3.12") -> list[Path]:
    """``pip download`` of each package's CPython manylinux x86_64 wheel (no dependencies) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):
        if not any(_normalise(stale.name.split("-")[0]) == _normalise(name) for name in versions):
            stale.unlink()  # a package no longer carried: two versions of one stop the install there
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version"]
    command += [python_version, "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += [f"{name}=={version}" for name, version in versions.items()]
    subprocess.run(command, check=True)
    return sorted(folder.glob("*.whl"))


def write_commit(folder: Path, repo: Path = REPO_ROOT) -> str:
    """Writes ``git rev-parse HEAD`` (with ``-dirty`` when tracked files differ from it) to ``folder``."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMMIT_FILE).write_text(commit + "\n")
    return commit


def missing_requirements(wheels: list[Path]) -> list[str]:
    """Requirements (``Requires-Dist`` without extras) of the wheels that neither they nor the device provide."""
    provided = ON_DEVICE | {_normalise(wheel.name.split("-")[0]) for wheel in wheels}
    missing = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
            for line in archive.read(metadata).decode().splitlines():
                if line.startswith("Requires-Dist:") and "extra ==" not in line:
                    name = _normalise(re.split(r"[ ;<>=!~\[(]", line.split(":", 1)[1].strip())[0])
                    if name not in provided:
                        missing.append(f"{wheel.name} needs {name}")
    return missing


def travelling_bytes(repo: Path = REPO_ROOT) -> dict[str, int]:
    """Bytes that travel without ``carry``: tracked files and untracked files git does not ignore."""
    sizes = {}
    for label, args in (("tracked", ["--cached"]), ("untracked", ["--others", "--exclude-standard"])):
        listing = subprocess.run(["git", "ls-files", "-z", *args], cwd=repo, check=True, capture_output=True).stdout
        paths = [repo / name for name in listing.decode().split("\0") if name]
        sizes[label] = sum(path.stat().st_size for path in paths if path.is_file() and not path.is_symlink())
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only measure what would travel; download nothing")
    parser.add_argument(
        "--python-version", default="3.12", help="the GPU machine's Python, MAJOR.MINOR (default 3.12, the device's)"
    )
    args = parser.parse_args(argv)
    folder = REPO_ROOT / WHEELS_DIR
    if args.check:
        wheels = sorted(folder.glob("*.whl"))
    else:
        wheels = download(folder, pinned_versions(), python_version=args.python_version)
        print(f"tree at {write_commit(folder)} ({WHEELS_DIR}/{COMMIT_FILE})")
    missing = missing_requirements(wheels)
    sizes = travelling_bytes()
    sizes["wheels"] = sum(wheel.stat().st_size for wheel in wheels)
    total = sum(sizes.values())
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {WHEELS_DIR}/{wheel.name}")
    parts = ", ".join(f"{label} {size / 2**20:.2f} MiB" for label, size in sizes.items())
    print(f"travels: {parts}; total {total / 2**20:.2f} MiB of {LIMIT_BYTES / 2**20:.0f} MiB")
    if missing:
        print("error: requirements neither carried nor on the GPU machine: " + "; ".join(missing), file=sys.stderr)
        return 1
    if total > LIMIT_BYTES:
        print(
            f"error: {total / 2**20:.2f} MiB would travel, over the {LIMIT_BYTES / 2**20:.0f} MiB limit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
