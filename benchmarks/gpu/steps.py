"""One step of the GPU run in this process: ``python -m benchmarks.gpu.steps NAME --mode M --result F --work D``.

The runner (:mod:`benchmarks.gpu.run`) starts one such process per step under the step's time budget. The
step records its figures in ``--result`` as it goes; its exit status says how it ended: 0 passed, 3 skipped
(the reason is the last line of stderr, also in the result file as ``skip_reason``), 4 a check failed,
anything else an error.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

from benchmarks.gpu._step import MODES, CheckFailed, Recorder, Sizes, StepSkipped, cpu_count
from dataset.locations import REPO_ROOT

EXIT_SKIPPED, EXIT_CHECK_FAILED = 3, 4
INJECTED_FAILURE = "DISPERSION_SCORE_GPU_RUN_FAIL"  # a step name: that step raises (the runner's own test)


def environment_step(sizes: Sizes, record: Recorder, work: Path) -> None:
    """Step 0: what ran: Python, torch, CUDA, the GPU, the CPUs, the compiler, the carried packages."""
    import torch

    from dispersion_score import _chamfer_kernel

    commit_file = REPO_ROOT / ".gpu_wheels" / "commit.txt"  # written by benchmarks.gpu.prepare: no .git travels
    record.put("source_commit", commit_file.read_text().strip() if commit_file.is_file() else _git_head())
    record.put("python", platform.python_version())
    record.put("torch", torch.__version__)
    record.put("torch_cuda", torch.version.cuda)
    record.put("cudnn", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
    record.put("cudnn_allow_tf32", torch.backends.cudnn.allow_tf32)
    record.put("matmul_allow_tf32", torch.backends.cuda.matmul.allow_tf32)
    record.put("cuda_available", torch.cuda.is_available())
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        record.put("gpu", properties.name)
        record.put("gpu_memory_gib", properties.total_memory / 2**30)
        record.put("gpu_count", torch.cuda.device_count())
    record.put("cpus", cpu_count())
    record.put("machine", platform.machine())
    record.put("compiler", shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++"))
    record.put("compiled_chamfer_kernel", _chamfer_kernel.load_kernel() is not None)
    record.put("compiled_chamfer_kernel_note", _chamfer_kernel.unavailable_reason())
    versions = {}
    for package in ("numpy", "scipy", "scikit-learn", "torchvision", "trimesh", "embreex", "pytest", "pyyaml"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    record.put("packages", versions)
    if sizes.device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckFailed("full mode needs CUDA, and torch sees no CUDA device")


def _git_head() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def pytest_step(sizes: Sizes, record: Recorder, work: Path, *, seconds: float) -> None:
    """Step 1: ``pytest -m cuda`` (the CUDA tests, which compare GPU with CPU results)."""
    import torch

    junit = work / "pytest.xml"
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    command += list(sizes.pytest_paths)
    record.put("command", " ".join(command[1:]))
    try:  # a little under the step's budget, so the counts of a slow run still get recorded
        proc = subprocess.run(command, cwd=REPO_ROOT, timeout=max(5.0, seconds - 15.0), capture_output=True, text=True)
        output, timed_out = proc.stdout + proc.stderr, False
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode(errors="replace") + (error.stderr or b"").decode(errors="replace")
        timed_out = True
    print(output, flush=True)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", output)}
    record.put("counts", counts)
    record.put("timed_out", timed_out)
    failures = _junit_failures(junit)
    record.put("failures", failures)
    if timed_out:
        raise CheckFailed(f"pytest -m cuda ran out of its {seconds:.0f} s budget")
    if failures or proc.returncode not in (0, 5):
        raise CheckFailed(f"pytest -m cuda: {len(failures)} failing tests (exit {proc.returncode})")
    if not torch.cuda.is_available():
        raise StepSkipped(f"no CUDA device: the {counts.get('skipped', 0)} cuda tests were collected and skipped")


def _junit_failures(path: Path) -> list[str]:
    """'test id: first line of the message' of every failing or erroring test in a JUnit XML report."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return []
    found = []
    for case in root.iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            message = (problem.get("message") or "").splitlines()
            found.append(f"{case.get('classname')}::{case.get('name')}: {message[0][:300] if message else ''}")
    return found


def _steps() -> dict[str, Callable[..., None]]:
    from benchmarks.gpu import step_compute, step_train

    return {
        "environment": environment_step,
        "pytest_cuda": pytest_step,
        "chamfer": step_compute.chamfer_step,
        "vgg": step_compute.vgg_step,
        "kmedoids": step_compute.kmedoids_step,
        "train_quick": step_train.quick_training_step,
        "train_paper_synthetic": step_train.paper_synthetic_step,
        "train_paper_shapenet": step_train.paper_shapenet_step,
        "tiles": step_compute.tiles_step,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.steps", description=__doc__.split("\n")[0])
    parser.add_argument("name")
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--result", type=Path, required=True, help="JSON file of the step's figures")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder of the step")
    parser.add_argument("--seconds", type=float, required=True, help="the step's time budget")
    args = parser.parse_args(argv)
    steps = _steps()
    if args.name not in steps:
        parser.error(f"unknown step {args.name!r}; known: {', '.join(steps)}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.mode == "dry":  # this process only: the dry run shares a small, busy CPU with other work
        import torch

        torch.set_num_threads(1)
    record = Recorder(args.result)
    started = time.perf_counter()
    try:
        if os.environ.get(INJECTED_FAILURE) == args.name:
            raise RuntimeError(f"failure injected by {INJECTED_FAILURE}={args.name}")
        extra = {"seconds": args.seconds} if args.name == "pytest_cuda" else {}
        steps[args.name](MODES[args.mode], record, args.work, **extra)
    except StepSkipped as skipped:
        record.put("skip_reason", str(skipped))
        print(f"skipped: {skipped}", file=sys.stderr)
        return EXIT_SKIPPED
    except CheckFailed as failed:
        record.put("check_failed", str(failed))
        print(f"check failed: {failed}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    finally:
        print(f"step {args.name}: {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
