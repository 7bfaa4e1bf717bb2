"""The GPU acceptance run in one command (docs/gpu.md): every step in its own process, under its own budget.

On the GPU machine, from the repository root (the wheels of ``benchmarks.gpu.prepare`` installed first)::

    python3 -m benchmarks.gpu.run --out "$OUT"

Here, on the CPU, at tiny sizes (what the test suite runs)::

    .venv/bin/python -m benchmarks.gpu.run --dry --out /tmp/gpu-dry

Writes ``OUT/gpu_run.json`` (rewritten after every step: environment, each step's status, seconds, budget
and figures, and a summary) and ``OUT/gpu_run.log`` (every step's output). A step that fails, crashes or
runs out of its budget is recorded as such, with what it measured before, and the next step runs; the whole
run stops starting steps when less than a step's minimum is left of ``--deadline``. Exit status: 0 when no
step failed (skipped steps say why), 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from benchmarks.gpu._step import MODES, read_figures
from dataset.locations import REPO_ROOT
from dispersion_score.atomic import atomic_write_text
from dispersion_score.paths import check_writable_folder

FORMAT = "dispersion-score-gpu-run/1"
JSON_NAME, LOG_NAME = "gpu_run.json", "gpu_run.log"
EXIT_SKIPPED, EXIT_CHECK_FAILED = 3, 4  # benchmarks.gpu.steps (not imported: the runner stays torch-free)
MIN_STEP_SECONDS = 20.0


@dataclass(frozen=True)
class Step:
    """One step: its name (``benchmarks.gpu.steps``), its time budget in full mode, and what it checks."""

    name: str
    seconds: float
    what: str


# Budgets add up to 520 s: the device's 10-minute call keeps 80 s for starting, installing wheels and copying.
STEPS = (
    Step("environment", 25, "Python, torch, CUDA, GPU, CPUs, compiler, carried packages"),
    Step("pytest_cuda", 140, "pytest -m cuda: every CUDA test (they compare GPU and CPU results)"),
    Step("chamfer", 75, "Chamfer matrix N=2000 x 2500 points: pairs/s vs torch cdist/min and the CPU kernel"),
    Step("vgg", 30, "VGG16 relu3_3 features at 224^2: images/s (random weights)"),
    Step("kmedoids", 60, "k-medoids pam N=5000, k=500 on the GPU vs the CPU, same seed"),
    Step("train_quick", 45, "quick synthetic run on the GPU vs the CPU, same seed: loss within 5 %"),
    Step("train_paper_synthetic", 35, "paper synthetic preset at 224^2, batch 8: ms/step, memory, sweep time"),
    Step("train_paper_shapenet", 70, "paper ShapeNet preset on the stand-in, batch 64: ms/step, sweep time"),
    Step("tiles", 40, "tiled matrix with Launch(gpus=(0,)) equal to the in-memory result"),
)
DRY_SECONDS = 240.0  # per step in dry mode: this CPU is slow and shared


def _utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (py3.10)


def _run_step(step: Step, mode: str, seconds: float, out: Path, work: Path, log: TextIO) -> dict[str, Any]:
    result_file = work / f"{step.name}.json"
    command = [sys.executable, "-m", "benchmarks.gpu.steps", step.name, "--mode", mode]
    command += ["--result", str(result_file), "--work", str(work / step.name), "--seconds", f"{seconds:.1f}"]
    log.write(f"\n===== {step.name} ({step.what}); budget {seconds:.3g} s; {_utc()}\n")
    log.flush()
    started = time.perf_counter()
    # A new session, so that a step over its budget is killed with every process it started.
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=seconds)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        timed_out = True
    log.write(stderr)
    elapsed = time.perf_counter() - started
    figures = read_figures(result_file)
    entry: dict[str, Any] = {"status": "passed", "seconds": round(elapsed, 2), "budget_s": round(seconds, 1)}
    last_line = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if timed_out:
        entry.update(status="failed", error=f"ran out of its {seconds:.3g} s budget (killed); figures are partial")
    elif proc.returncode == EXIT_SKIPPED:
        entry.update(status="skipped", reason=figures.get("skip_reason", last_line))
    elif proc.returncode == EXIT_CHECK_FAILED:
        entry.update(status="failed", error=figures.get("check_failed", last_line))
    elif proc.returncode != 0:
        entry.update(status="failed", error=f"exit {proc.returncode}: {last_line[:500]}")
    entry["figures"] = figures
    log.write(f"===== {step.name}: {entry['status']} in {elapsed:.1f} s\n")
    log.flush()
    return entry


def summary_lines(document: dict[str, Any]) -> list[str]:
    """The headline figures of a run document, one line each (printed at the end and stored in the JSON)."""
    steps = document["steps"]
    lines = [f"{name}: {entry['status']} ({entry['seconds']} s)" for name, entry in steps.items()]

    def figure(step: str, key: str) -> Any:
        return steps.get(step, {}).get("figures", {}).get(key)

    env = steps.get("environment", {}).get("figures", {})
    lines.append(f"machine: {env.get('gpu', 'no GPU')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')})")
    for step, key in (
        ("chamfer", "library_device_pairs_per_s"),
        ("chamfer", "library_vs_cdist_min"),
        ("chamfer", "library_device_vs_cpu"),
        ("vgg", "images_per_s_batch_128"),
        ("kmedoids", "device_speedup_vs_cpu"),
        ("train_quick", "max_relative_loss_difference"),
        ("train_paper_synthetic", "ms_per_step"),
        ("train_paper_synthetic", "projected_sweep_hours_one_gpu"),
        ("train_paper_shapenet", "ms_per_step_with_loader"),
        ("train_paper_shapenet", "projected_sweep_hours_one_gpu"),
        ("tiles", "bit_identical"),
    ):
        value = figure(step, key)
        if value is not None:
            lines.append(f"{step}.{key} = {json.dumps(value)}")
    return lines


def run(
    out: Path,
    *,
    dry: bool = False,
    only: tuple[str, ...] = (),
    deadline: float | None = None,
    budgets: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Runs the steps (all, or ``only``), writing ``out/gpu_run.json`` after each, and returns the document.

    Args:
        out: results folder (created); the device tool brings back ``$OUT``.
        dry: tiny sizes on the CPU (every step still runs end to end).
        only: step names to run (default: all, in order).
        deadline: seconds after which no step is started and a running one gets only what is left (None: 540
            in full mode, within the device's 10-minute call; 1800 dry).
        budgets: per-step budgets in seconds replacing the defaults.
    """
    known = {step.name for step in STEPS}
    unknown = sorted(set(only) - known) + sorted(set(budgets or {}) - known)
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; known: {[step.name for step in STEPS]}")
    mode = "dry" if dry else "full"
    deadline = deadline if deadline is not None else (1800.0 if dry else 540.0)
    out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"format": FORMAT, "mode": mode, "started": _utc(), "sizes": MODES[mode].__dict__}
    document["steps"] = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-run-") as scratch, open(out / LOG_NAME, "a") as log:
        log.write(f"GPU run, mode {mode}, started {document['started']}, python {sys.executable}\n")
        for step in STEPS:
            if only and step.name not in only:
                continue
            seconds = (budgets or {}).get(step.name, DRY_SECONDS if dry else step.seconds)
            left = deadline - (time.perf_counter() - began)
            if left < MIN_STEP_SECONDS:
                reason = f"not started: {left:.0f} s left of the {deadline:.0f} s deadline"
                document["steps"][step.name] = {"status": "skipped", "seconds": 0, "reason": reason, "figures": {}}
            else:
                entry = _run_step(step, mode, min(seconds, left), out, Path(scratch), log)
                document["steps"][step.name] = entry
            document["finished"] = _utc()
            document["seconds"] = round(time.perf_counter() - began, 1)
            document["summary"] = summary_lines(document)
            atomic_write_text(out / JSON_NAME, json.dumps(document, indent=1, allow_nan=True))
    return document


def _parse_budgets(values: list[str]) -> dict[str, float]:
    budgets = {}
    for value in values:
        name, _, seconds = value.partition("=")
        try:
            budgets[name] = float(seconds)
        except ValueError:
            raise SystemExit(f"error: --budget takes STEP=SECONDS, got {value!r}") from None
    return budgets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.run", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results/gpu")))
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU: checks the script itself")
    parser.add_argument("--only", nargs="+", default=(), metavar="STEP", help="run only these steps")
    parser.add_argument(
        "--deadline", type=float, default=None, help="seconds for the whole run (default 540; dry 1800)"
    )
    parser.add_argument("--budget", nargs="+", default=[], metavar="STEP=SECONDS", help="replace a step's budget")
    args = parser.parse_args(argv)
    try:
        check_writable_folder(args.out, "--out")
        document = run(
            args.out, dry=args.dry, only=tuple(args.only), deadline=args.deadline, budgets=_parse_budgets(args.budget)
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(document["summary"]))
    print(f"results: {args.out / JSON_NAME}, log: {args.out / LOG_NAME}")
    return 1 if any(entry["status"] == "failed" for entry in document["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
