"""The sweep runner: skipping, failure isolation, parallel slots, thread and GPU pinning, submitit path."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from dispersion_score.launch import Job, fail_on, run_jobs

# A job that records its argv and environment into its marker, or fails when asked to.
_JOB_CODE = """
import json, os, sys, time
marker, behaviour = sys.argv[1], sys.argv[2]
if behaviour == "fail":
    print("boom", flush=True)
    sys.exit(3)
if behaviour.startswith("wait-for:"):
    deadline = time.time() + 20
    while not os.path.exists(behaviour.split(":", 1)[1]):
        if time.time() > deadline:
            sys.exit(4)
        time.sleep(0.05)
if behaviour == "no-marker":
    sys.exit(0)
env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")}
with open(marker, "w") as f:
    json.dump({"argv": sys.argv[3:], "env": env}, f)
"""


def _job(tmp_path: Path, name: str, behaviour: str = "ok") -> Job:
    marker = tmp_path / name / "done"
    marker.parent.mkdir(parents=True, exist_ok=True)
    command = (sys.executable, "-c", _JOB_CODE, str(marker), behaviour)
    return Job(name, command, marker, tmp_path / name / "job.log")


def test_failed_job_does_not_stop_the_sweep(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "a"), _job(tmp_path, "b", "fail"), _job(tmp_path, "c"), _job(tmp_path, "d", "no-marker")]
    report = run_jobs(jobs, workers=2)
    assert sorted(report.succeeded) == ["a", "c"]
    assert set(report.failed) == {"b", "d"}  # a zero exit without the marker is a failure too
    assert "boom" in report.failed["b"].read_text()
    messages: list[str] = []
    assert fail_on(report, "training", echo=messages.append) == 1
    assert "FAILED b" in messages[0] and str(report.failed["b"]) in messages[0]


def test_finished_jobs_are_skipped(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "a"), _job(tmp_path, "b")]
    first = run_jobs(jobs)
    assert sorted(first.succeeded) == ["a", "b"] and first.ok
    jobs[0].done_marker.write_text("{}")  # would be overwritten if the job ran again
    second = run_jobs(jobs)
    assert sorted(second.skipped) == ["a", "b"] and not second.succeeded
    assert jobs[0].done_marker.read_text() == "{}"


def test_workers_run_concurrently_with_capped_threads(tmp_path: Path) -> None:
    # "a" can only finish once "b" has written its marker: this passes only if both run at once.
    b = _job(tmp_path, "b")
    a = _job(tmp_path, "a", f"wait-for:{b.done_marker}")
    report = run_jobs([a, b], workers=2)
    assert report.ok, report.summary()
    recorded = json.loads(a.done_marker.read_text())
    assert recorded["argv"] == ["--device", "cpu"]
    assert recorded["env"]["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert recorded["env"]["CUDA_VISIBLE_DEVICES"] == ""


def test_threads_option_caps_each_jobs_math_threads(tmp_path: Path) -> None:
    """``--threads`` reaches every local CPU job's environment (sweeps sharing one machine must not each take
    cores // workers threads: two-thread jobs beside other work spin and run many times slower)."""
    import argparse

    from dispersion_score.launch import add_launch_arguments, launch_from_arguments

    parser = argparse.ArgumentParser()
    add_launch_arguments(parser)
    launch = launch_from_arguments(parser.parse_args(["--workers", "1", "--threads", "1"]))
    assert launch is not None and launch.threads == 1
    job = _job(tmp_path, "a")
    assert launch.run([job]).ok
    assert json.loads(job.done_marker.read_text())["env"]["OMP_NUM_THREADS"] == "1"
    default = launch_from_arguments(parser.parse_args(["--workers", "1"]))
    assert default is not None and default.threads is None  # cores // workers, as before
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])


def test_one_job_per_gpu_pinned_with_cuda_visible_devices(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, name) for name in "abcd"]
    report = run_jobs(jobs, gpus=[3, 5])
    assert report.ok
    seen = [json.loads(job.done_marker.read_text()) for job in jobs]
    assert {item["env"]["CUDA_VISIBLE_DEVICES"] for item in seen} <= {"3", "5"}
    assert all(item["argv"] == ["--device", "cuda:0"] for item in seen)


def test_submitit_local_launcher(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "a"), _job(tmp_path, "b", "fail")]
    report = run_jobs(jobs, launcher="submitit-local", slurm_folder=tmp_path / "submitit")
    assert report.succeeded == ["a"]
    assert list(report.failed) == ["b"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="launcher must be one of"):
        run_jobs([_job(tmp_path, "a")], launcher="pbs")
    with pytest.raises(ValueError, match="unique"):
        run_jobs([_job(tmp_path, "a"), _job(tmp_path, "a")])
    with pytest.raises(ValueError, match="workers"):
        run_jobs([_job(tmp_path, "a")], workers=0)
