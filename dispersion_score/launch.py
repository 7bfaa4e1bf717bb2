"""Run a list of independent jobs (training runs, evaluations, matrix tiles) locally or on SLURM, resumably.

Each job is a command line plus a marker file that the command writes last when it succeeds. A sweep skips
jobs whose marker exists, runs the others (in parallel, one per GPU or per CPU worker), keeps going when one
fails, and reports the failures with the log file of each, so the caller can exit non-zero. :class:`Launch`
holds where jobs run (launcher, GPUs, CPU workers, SLURM settings); every sweep of the project takes one.

Local parallelism: with ``gpus=[0, 1]`` each job sees one GPU through ``CUDA_VISIBLE_DEVICES`` and gets
``--device cuda:0``; without GPUs, ``workers`` CPU processes run at once with their thread counts set
(``OMP_NUM_THREADS`` etc.) to ``cores // workers`` so they do not oversubscribe the machine.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

from tqdm import tqdm

LOGGER = logging.getLogger(__name__)
LAUNCHERS = ("local", "slurm", "submitit-local")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Job:
    """One unit of a sweep.

    Attributes:
        name: unique, human-readable name (also used for the SLURM job name).
        command: argv; the runner appends ``--device <device>``.
        done_marker: file the command writes last on success; its presence means "skip".
        log_file: where the command's stdout and stderr go.
    """

    name: str
    command: tuple[str, ...]
    done_marker: Path
    log_file: Path


@dataclass
class SweepReport:
    """What a sweep did. ``failed`` maps job name → log file."""

    skipped: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"{len(self.succeeded)} ran, {len(self.skipped)} skipped (already done), {len(self.failed)} failed"]
        lines += [f"  FAILED {name}: see {log}" for name, log in sorted(self.failed.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class Launch:
    """Where a sweep's jobs run.

    Attributes:
        launcher: "local" (subprocesses here), "slurm" (submitit on a SLURM cluster) or "submitit-local"
            (submitit's local executor: the SLURM code path without a cluster).
        gpus: GPU indices; locally one job per listed GPU at a time, on SLURM one GPU per job.
        workers: concurrent CPU jobs when ``gpus`` is empty; None = the caller's default.
        slurm_parameters: extra submitit ``update_parameters`` keywords (``slurm_partition``, ``timeout_min``,
            ``cpus_per_task``, ``slurm_array_parallelism``, ...).
        threads: math-library threads of each local CPU worker; None = cores // workers.
    """

    launcher: str = "local"
    gpus: tuple[int, ...] = ()
    workers: int | None = None
    slurm_parameters: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise ValueError(f"workers must be a positive number of processes, got {self.workers!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ValueError(f"threads must be a positive number of threads per worker, got {self.threads!r}")
        if any(isinstance(gpu, bool) or gpu < 0 for gpu in self.gpus) or len(set(self.gpus)) != len(self.gpus):
            raise ValueError(f"gpus must be distinct non-negative GPU indices, got {list(self.gpus)}")

    @property
    def device(self) -> str:
        """Device of the work done in the calling process (the first listed GPU, else the CPU)."""
        return f"cuda:{self.gpus[0]}" if self.gpus else "cpu"

    def check_available(self) -> None:
        """Checks up front that the requested GPUs and launcher exist on this machine.

        Raises:
            ValueError: a listed GPU that CUDA does not see, or ``launcher="slurm"`` where no SLURM command
                (``sbatch``) is on the PATH. Checked once, so that a sweep does not start every job only
                to have each fail with the cause hidden in its log.
        """
        if self.gpus:
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"--gpus {' '.join(map(str, self.gpus))}: CUDA is not available on this machine")
            count = torch.cuda.device_count()
            missing = [gpu for gpu in self.gpus if gpu >= count]
            if missing and self.launcher == "local":
                raise ValueError(f"--gpus {missing}: only {count} CUDA device(s) visible (indices 0..{count - 1})")
        if self.launcher == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--launcher slurm: no SLURM here (sbatch is not on the PATH); use --launcher local")

    def run(
        self,
        jobs: Sequence[Job],
        *,
        default_workers: int = 1,
        cwd: Path | None = None,
        folder: Path | None = None,
        description: str = "jobs",
    ) -> SweepReport:
        """:func:`run_jobs` with these settings (``default_workers`` when ``workers`` is None)."""
        return run_jobs(
            jobs,
            launcher=self.launcher,
            gpus=self.gpus,
            workers=self.workers or default_workers,
            cwd=cwd,
            slurm_folder=folder,
            slurm_parameters=self.slurm_parameters,
            description=description,
            threads=self.threads,
        )


def run_jobs(
    jobs: Sequence[Job],
    *,
    launcher: str = "local",
    gpus: Sequence[int] | None = None,
    workers: int = 1,
    cwd: Path | None = None,
    slurm_folder: Path | None = None,
    slurm_parameters: dict[str, Any] | None = None,
    description: str = "jobs",
    threads: int | None = None,
) -> SweepReport:
    """Run ``jobs``, skipping finished ones; never raises for a failing job.

    Args:
        jobs: the jobs; names must be unique.
        launcher: "local" (subprocesses here), "slurm" (submitit on a SLURM cluster) or "submitit-local"
            (submitit's local executor: the SLURM code path without a cluster, used in tests).
        gpus: GPU indices; one job per GPU at a time (local), or one GPU per job (slurm).
        workers: number of concurrent CPU jobs when ``gpus`` is empty.
        cwd: working directory of the commands.
        slurm_folder: where submitit keeps its files (launcher "slurm"/"submitit-local").
        slurm_parameters: extra ``executor.update_parameters`` keywords (partition, timeout_min, ...).
        description: label of the progress bar.
        threads: math-library threads per local CPU worker (None: cores // workers).

    Returns:
        A SweepReport listing skipped, succeeded and failed jobs.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"job names must be unique; repeated: {duplicates}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    report = SweepReport()
    pending = []
    for job in jobs:
        if job.done_marker.exists():
            report.skipped.append(job.name)
        else:
            pending.append(job)
    if not pending:
        return report
    if launcher == "local":
        _run_local(
            pending, report, gpus=list(gpus or []), workers=workers, cwd=cwd, description=description, threads=threads
        )
    else:
        cluster = "slurm" if launcher == "slurm" else "local"
        _run_submitit(
            pending,
            report,
            cluster=cluster,
            gpus=list(gpus or []),
            folder=slurm_folder or Path("log/submitit"),
            parameters=slurm_parameters or {},
            cwd=cwd,
            description=description,
        )
    for name in report.failed:
        LOGGER.error("job %s failed; log: %s", name, report.failed[name])
    return report


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that cap a process's math-library threads."""
    return {variable: str(threads) for variable in _THREAD_VARIABLES}


def _run_local(
    jobs: list[Job],
    report: SweepReport,
    *,
    gpus: list[int],
    workers: int,
    cwd: Path | None,
    description: str,
    threads: int | None = None,
) -> None:
    if gpus:
        slots = [({"CUDA_VISIBLE_DEVICES": str(gpu)}, "cuda:0") for gpu in gpus]
    else:
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        slots = [({**thread_environment(threads), "CUDA_VISIBLE_DEVICES": ""}, "cpu")] * workers
    free_slots = list(range(len(slots)))
    queue = list(jobs)
    running: dict[Future[int], tuple[Job, int]] = {}
    with ThreadPoolExecutor(max_workers=len(slots)) as pool, tqdm(total=len(jobs), desc=description) as bar:
        while queue or running:
            while queue and free_slots:
                job, slot = queue.pop(0), free_slots.pop(0)
                env_extra, device = slots[slot]
                future = pool.submit(_run_subprocess, job, env_extra, device, cwd)
                running[future] = (job, slot)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job, slot = running.pop(future)
                free_slots.append(slot)
                _record(report, job, future.result())
                bar.update(1)


def _run_subprocess(job: Job, env_extra: dict[str, str], device: str, cwd: Path | None) -> int:
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **env_extra}
    command = [*job.command, "--device", device]
    with open(job.log_file, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        log.flush()
        try:
            return subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=_end_with_parent()
            ).returncode
        except OSError as error:  # e.g. the executable does not exist
            log.write(f"could not start: {error}\n")
            return 127


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the job end with the process that starts it (:func:`die_with_parent`);
    None off Linux. Without it, killing a sweep leaves its jobs running as orphans that hold their run folders.

    The signal follows the thread that forked the job; the sweep starts jobs from its pool threads, which live
    as long as the sweep's ``run``, so a job never outlives the sweep that waits for it."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    return lambda: die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """Makes this process receive SIGKILL when process ``parent`` (the one that started it) ends, however it
    ends (SIGKILL included: no handler of the parent runs then); if ``parent`` has already ended, exits now.
    Called in a child: a job's ``preexec_fn``, or a pool worker's set-up (:mod:`dataset.build.worker_pool`).
    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
        os._exit(1)


def _record(report: SweepReport, job: Job, returncode: int) -> None:
    # A zero exit without the marker is still a failure: the job did not finish its work.
    if returncode == 0 and job.done_marker.exists():
        report.succeeded.append(job.name)
    else:
        report.failed[job.name] = job.log_file


def _run_submitit(
    jobs: list[Job],
    report: SweepReport,
    *,
    cluster: str,
    gpus: list[int],
    folder: Path,
    parameters: dict[str, Any],
    cwd: Path | None,
    description: str,
) -> None:
    import submitit  # imported here: only the SLURM path needs it

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    device = "cuda:0" if gpus else "cpu"
    if cluster == "slurm":
        executor.update_parameters(gpus_per_node=1 if gpus else 0, **parameters)
    elif parameters:
        executor.update_parameters(**parameters)
    # One array job (``slurm_array_parallelism`` caps the tasks running at once); the array carries the
    # sweep's name, each task's command and log stay per job.
    executor.update_parameters(name=description.replace(" ", "-"))
    submitted = []
    with executor.batch():
        for job in jobs:
            submitted.append((job, executor.submit(_LoggedCommand(job, device, cwd))))
    for job, handle in tqdm(submitted, desc=description):
        try:
            returncode = handle.result()
        except Exception as error:  # noqa: BLE001 - a failed job must not stop the sweep
            job.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log_file, "a") as log:
                log.write(f"submitit job failed: {error}\n")
            returncode = 1
        _record(report, job, returncode)


class _LoggedCommand:
    """Picklable callable that runs a job's command on the executing node."""

    def __init__(self, job: Job, device: str, cwd: Path | None) -> None:
        self.job, self.device, self.cwd = job, device, cwd

    def __call__(self) -> int:
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK", os.cpu_count() or 1))
        return _run_subprocess(self.job, thread_environment(threads), self.device, self.cwd)


def python_command(script: Path | str, *args: str) -> tuple[str, ...]:
    """argv running ``script`` with this interpreter."""
    return (sys.executable, str(script), *args)


def fail_on(report: SweepReport, what: str, *, echo: Callable[[str], None] = print) -> int:
    """Print the report; return the process exit code (1 when any job failed)."""
    echo(f"{what}: {report.summary()}")
    return 0 if report.ok else 1


# --- command-line options (the library's CLI and every experiment entry point) -------------------------------


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``prog: error: argument --x: ... (see prog --help)``) and exit
    status 2, instead of the usage block: scripts and logs read the last line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _bounded_int(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds, GPU indices)."""
    return _bounded_int(text, 0, "a non-negative integer")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (durations, scales); NaN and infinities are refused."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def square_int(text: str) -> int:
    """argparse type: a positive perfect square (1, 4, 9, 16, ...): rays per pixel of the renderers."""
    value = _bounded_int(text, 1, "a positive square (1, 4, 9, 16, ...)")
    if math.isqrt(value) ** 2 != value:
        raise argparse.ArgumentTypeError(f"expected a positive square (1, 4, 9, 16, ...), got {text!r}")
    return value


def _bounded_int(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


class ArgumentTarget(Protocol):
    """An ``argparse.ArgumentParser`` or one of its argument groups (argparse keeps the group class private)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> Any: ...


def add_launch_arguments(parser: ArgumentTarget, *, jobs: str = "jobs") -> None:
    """``--launcher``, ``--workers``, ``--threads``, ``--gpus`` and the SLURM options of a :class:`Launch` (defaults
    None: unset; see :func:`launch_from_arguments`). ``jobs`` names what the jobs are in the help texts."""
    parser.add_argument("--launcher", choices=LAUNCHERS, default=None, help=f"where {jobs} run (default: local)")
    parser.add_argument("--workers", type=positive_int, default=None, help=f"concurrent CPU {jobs}")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help=f"math-library threads of each CPU {jobs[:-1] if jobs.endswith('s') else jobs} (default: cores // "
        "workers; lower it when other work shares the machine)",
    )
    parser.add_argument(
        "--gpus", type=non_negative_int, nargs="*", default=None, help=f"GPU indices, one of the {jobs} per GPU"
    )
    parser.add_argument("--slurm-partition", default=None, help="SLURM partition (--launcher slurm)")
    parser.add_argument("--slurm-timeout-min", type=positive_int, default=240, help="time limit per SLURM job, minutes")
    parser.add_argument("--slurm-cpus-per-task", type=positive_int, default=4, help="CPU cores per SLURM job")
    parser.add_argument("--slurm-max-concurrent", type=positive_int, default=None, help="SLURM array tasks at once")


def launch_from_arguments(args: argparse.Namespace, *, check: bool = True, optional: bool = False) -> Launch | None:
    """The :class:`Launch` of options added by :func:`add_launch_arguments`.

    Args:
        args: the parsed options.
        check: check the GPUs and SLURM against this machine (:meth:`Launch.check_available`).
        optional: return None (work in this process) when no launcher, worker count or GPU was given.

    Raises:
        ValueError: a GPU CUDA does not see, or SLURM where there is none (with ``check``).
    """
    if optional and args.launcher is None and args.workers is None and args.gpus is None:
        return None
    launcher = args.launcher or "local"
    slurm: dict[str, Any] = {}
    if launcher == "slurm":
        slurm = {"timeout_min": args.slurm_timeout_min, "cpus_per_task": args.slurm_cpus_per_task}
        if args.slurm_partition:
            slurm["slurm_partition"] = args.slurm_partition
        if args.slurm_max_concurrent:
            slurm["slurm_array_parallelism"] = args.slurm_max_concurrent
    launch = Launch(launcher, tuple(args.gpus or ()), args.workers, slurm, args.threads)
    if check:
        launch.check_available()
    return launch
