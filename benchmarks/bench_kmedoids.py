"""k-medoids benchmark: this library against the ``kmedoids`` package (Rust FasterPAM), in one process.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_kmedoids [--n 5000] [--k 500] [--repeats 3]
    .venv/bin/python -m benchmarks.bench_kmedoids --n 20000 --k 500 --repeats 1 --mmap /tmp/km  # ShapeNet scale
    .venv/bin/python -m benchmarks.bench_kmedoids --suite quality [--n-init 1 auto]  # inertia vs FasterPAM

``--suite speed`` (the default) is described first, ``--suite quality`` after it.

Input: ``benchmarks._inputs.clustered_distance_matrix``, squared Euclidean distances of N points
around 50 Gaussian centres in 5-D (float32, exactly symmetric, zero diagonal). Everything single-threaded
(``torch.set_num_threads(1)``, ``n_cpu=1``). Compared, interleaved over ``--repeats`` rounds (the
median counts; every round is stored; the machine may be shared, so ratios of one run are what to read):

* ``kmedoids(D, k, method="pam")`` (the whole public call: checks of D, k-medoids++ seeding, alternate,
  swaps, all its starts) against ``kmedoids.fasterpam(D, k)`` with its default random initialisation, and
  against FasterPAM started from our k-medoids++ seeding (its time plus the seeding's: the same start).
  Targets: inertia <= 1.001 x FasterPAM's (both), time <= 1.5 x FasterPAM's (as users run it: random
  initialisation), and per start <= 1.5 x FasterPAM from our seeding.
* ``kmedoids(D, k, method="alternate")`` against ``kmedoids.alternating`` from the same seeding
  (its time plus the seeding's) and with its own random initialisation. Target: time <= 2 x.

Memory: the peak resident set during each of our calls (Linux VmHWM, reset before the call) minus the
resident set before it, next to the 4·N² bytes of D. ``--mmap DIR`` saves D to DIR and runs every call on
``np.load(..., mmap_mode="r")`` (as the library's tiled matrices are used; the resident set then counts
the map's file pages). The time and memory of ``pam`` are projected to ``--project-n`` (default 35,021,
the ShapeNet-13 training set) by N² for time and N for the call's own memory. Writes
``benchmarks/results/bench_kmedoids.json``.
``--compare-threads`` also times ``pam`` with ``threads=2`` against ``threads=1`` (the default
``--threads``), the measurement behind the advice to pass ``threads=1``.

Quality suite: mean inertia of ``kmedoids(D, k, method="pam", seed=s)`` over seeds 0..9 against
``kmedoids.fasterpam(D, k, random_state=s)`` on matrix families (each a few matrices): clustered and
unclustered, low- and high-dimensional (squared Euclidean / dim of seeded points), and real Chamfer
matrices of the synthetic data (``chamfer_matrix`` of every instance's ``points.npy`` under
``--chamfer-root``, 500 points each; cached in ``benchmarks/results/``). More matrices: ``--matrix
NAME=FILE.npy[:K1,K2,...]`` (e.g. a ShapeNet stand-in's Chamfer matrix), or a new entry in
``MATRIX_SOURCES``. Per family it prints the ratio of mean inertias ours / FasterPAM (the mean over the
family's matrices of each matrix's ratio), the worst single seed (ours / FasterPAM at the same seed) and
the ratios of total CPU and wall times (both sides timed per seed, interleaved, after a warm-up call that
builds the compiled kernel), and, over the family's (matrix, seed) pairs, how many seeds end lower, equal
and higher than FasterPAM with the one-sided Wilcoxon signed-rank p of "ours costs more"
(:func:`paired_comparison`): local optima differ from seed to seed, so "equal or better" is judged by that
test, next to the mean. Writes ``benchmarks/results/bench_kmedoids_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._inputs import blob_points, clustered_distance_matrix, squared_distances_over_dim
from dataset.locations import REPO_ROOT
from dispersion_score import chamfer_matrix, kmedoids
from dispersion_score.clustering import kpp_seed
from dispersion_score.io import atomic_save_npy, atomic_write_text, provenance

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "bench_kmedoids.json"
QUALITY_OUT = RESULTS / "bench_kmedoids_quality.json"
GIB = 1024**3


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(call: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run `call` once: its result and {wall_s, cpu_s, memory (GiB: RSS before, peak during, extra)}."""
    before = _status_kib("VmRSS")
    exact = _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    memory = {
        "rss_before_gib": before / 2**20 if before is not None else None,
        "peak_rss_gib": peak / 2**20 if peak is not None else None,
        "extra_peak_gib": (peak - before) / 2**20 if peak is not None and before is not None else None,
        "peak_is_per_call": exact,
    }
    return result, {"wall_s": wall, "cpu_s": cpu, "memory": memory}


def one_round(D: np.ndarray, k: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every compared call once, interleaved: name -> {wall_s, cpu_s, memory, inertia, ...}."""
    import kmedoids as reference  # the Rust FasterPAM package: a benchmark reference only

    out: dict[str, dict[str, Any]] = {}
    threads = args.threads
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")  # a read-only memory map: only read here
        tensor = torch.from_numpy(D)
    seeding, out["seeding"] = measure(lambda: kpp_seed(tensor, k, args.seed, threads=threads))
    init = seeding.numpy().astype(np.int64)
    for method in ("pam", "alternate"):
        result, out[method] = measure(lambda m=method: kmedoids(D, k, method=m, seed=args.seed, threads=threads))
        out[method].update(inertia=result.inertia, n_iter=result.n_iter, n_swaps=result.n_swaps, n_init=result.n_init)
    if args.compare_threads:
        result, out["pam_2_threads"] = measure(lambda: kmedoids(D, k, seed=args.seed, threads=2))
        out["pam_2_threads"].update(inertia=result.inertia, n_iter=result.n_iter, n_swaps=result.n_swaps)
    if args.skip_reference:
        return out
    calls = {
        "fasterpam_random": lambda: reference.fasterpam(D, k, random_state=args.seed, n_cpu=1),
        "fasterpam_same_init": lambda: reference.fasterpam(D, init.copy(), n_cpu=1),
        "alternating_same_init": lambda: reference.alternating(D, init.copy()),
        "alternating_random": lambda: reference.alternating(D, k, random_state=args.seed),
    }
    for name, call in calls.items():
        result, out[name] = measure(call)
        out[name].update(
            inertia=float(result.loss), n_iter=int(result.n_iter), n_swaps=int(getattr(result, "n_swap", None) or 0)
        )
    # Starting from our seeding, the reference's time includes the seeding (as ours does).
    for name in ("fasterpam_same_init", "alternating_same_init"):
        out[name]["wall_s"] += out["seeding"]["wall_s"]
        out[name]["cpu_s"] += out["seeding"]["cpu_s"]
    return out


def summarize(rounds: list[dict[str, dict[str, Any]]], n: int) -> dict[str, Any]:
    """Median over rounds per call (wall and CPU time separately), inertias, ratios, targets."""
    names = list(rounds[0])
    best = {
        name: {clock: float(np.median([r[name][clock] for r in rounds])) for clock in ("wall_s", "cpu_s")}
        for name in names
    }
    inertia = {name: rounds[-1][name]["inertia"] for name in names if "inertia" in rounds[-1][name]}
    summary: dict[str, Any] = {"times": best, "inertia": inertia, "d_gib": 4 * n * n / GIB}
    summary["pam_swaps"] = rounds[-1]["pam"]["n_swaps"]
    if "pam_2_threads" in best:
        summary["pam_2_threads_vs_1_wall"] = best["pam_2_threads"]["wall_s"] / best["pam"]["wall_s"]
    summary["extra_peak_gib"] = {
        m: max(r[m]["memory"]["extra_peak_gib"] or 0.0 for r in rounds) for m in ("pam", "alternate")
    }
    summary["peak_rss_gib"] = max(r[m]["memory"]["peak_rss_gib"] or 0.0 for r in rounds for m in ("pam", "alternate"))
    targets = {
        "extra_memory_below_d": max(summary["extra_peak_gib"].values()) < summary["d_gib"],
        "peak_rss_le_24gib": summary["peak_rss_gib"] <= 24.0,
    }
    if "fasterpam_random" in best:
        ratios = {}
        for ours, theirs in (
            ("pam", "fasterpam_random"),
            ("pam", "fasterpam_same_init"),
            ("alternate", "alternating_same_init"),
            ("alternate", "alternating_random"),
        ):
            for clock in ("wall_s", "cpu_s"):
                ratios[f"time_{clock[:-2]}_{ours}_vs_{theirs}"] = best[ours][clock] / best[theirs][clock]
            ratios[f"inertia_{ours}_vs_{theirs}"] = inertia[ours] / inertia[theirs]
        summary["ratios"] = ratios

        def worst(prefix: str, ours: str, theirs: tuple[str, ...]) -> float:
            return max(ratios[f"{prefix}_{ours}_vs_{t}"] for t in theirs)

        fasterpam = ("fasterpam_random", "fasterpam_same_init")
        # pam runs n_init starts where FasterPAM from our seeding is one: that comparison is per start.
        starts = rounds[-1]["pam"]["n_init"]
        for clock in ("wall", "cpu"):
            ratios[f"time_{clock}_pam_per_start_vs_fasterpam_same_init"] = (
                ratios[f"time_{clock}_pam_vs_fasterpam_same_init"] / starts
            )
        targets.update(
            {
                "pam_inertia_le_1.001x_fasterpam": worst("inertia", "pam", fasterpam) <= 1.001,
                "pam_wall_time_le_1.5x_fasterpam": ratios["time_wall_pam_vs_fasterpam_random"] <= 1.5,
                "pam_cpu_time_le_1.5x_fasterpam": ratios["time_cpu_pam_vs_fasterpam_random"] <= 1.5,
                "pam_wall_time_per_start_le_1.5x_fasterpam_same_init": ratios[
                    "time_wall_pam_per_start_vs_fasterpam_same_init"
                ]
                <= 1.5,
                "alternate_wall_time_le_2x_alternating": worst("time_wall", "alternate", ("alternating_same_init",))
                <= 2,
                "alternate_cpu_time_le_2x_alternating": worst("time_cpu", "alternate", ("alternating_same_init",)) <= 2,
            }
        )
    summary["targets"] = targets
    return summary


def project(summary: dict[str, Any], n: int, k: int, target_n: int) -> dict[str, Any]:
    """Time and memory of ``pam`` projected from N to target_n at the same k: every pass of the swap search,
    the seeding's and the alternate step's are O(N²) or O(N·k) reads of D, so time scales at most as N²;
    memory is D (4·N² bytes, mapped or loaded) plus what the call adds, which is O(N·k) (scaled by N)."""
    scale = (target_n / n) ** 2
    pam = summary["times"]["pam"]
    out = {
        "n": target_n,
        "k": k,
        "d_gib": 4 * target_n**2 / GIB,
        "pam_wall_s": pam["wall_s"] * scale,
        "pam_cpu_s": pam["cpu_s"] * scale,
        "pam_extra_gib": summary["extra_peak_gib"]["pam"] * target_n / n,
    }
    if "fasterpam_random" in summary["times"]:
        out["fasterpam_random_wall_s"] = summary["times"]["fasterpam_random"]["wall_s"] * scale
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, k = args.n, args.k
    _warm_up(args.threads)
    print(f"building D: N = {n}, float32, {4 * n * n / GIB:.2f} GiB ...", flush=True)
    start = time.perf_counter()
    D = clustered_distance_matrix(n, dim=args.dim, clusters=args.clusters, seed=args.data_seed)
    print(f"  built in {time.perf_counter() - start:.1f} s", flush=True)
    if args.mmap is not None:
        path = args.mmap / f"D_{n}.npy"
        args.mmap.mkdir(parents=True, exist_ok=True)
        np.save(path, D)
        del D
        D = np.load(path, mmap_mode="r")  # every call reads the file's pages; nothing is loaded up front
        print(f"  memory-mapped from {path}", flush=True)
    rounds = []
    for r in range(args.repeats):
        rounds.append(one_round(D, k, args))
        print(
            f"round {r + 1}/{args.repeats} (wall / cpu s): "
            + ", ".join(f"{name} {v['wall_s']:.3f}/{v['cpu_s']:.3f}" for name, v in rounds[-1].items()),
            flush=True,
        )
    return {
        "benchmark": "kmedoids",
        "settings": {
            "n": n,
            "k": k,
            "dim": args.dim,
            "clusters": args.clusters,
            "data_seed": args.data_seed,
            "seed": args.seed,
            "repeats": args.repeats,
            "threads": args.threads,
            "memory_mapped": args.mmap is not None,
            "reference": None if args.skip_reference else f"kmedoids {metadata.version('kmedoids')}",
        },
        "provenance": provenance("cpu"),
        "summary": (summary := summarize(rounds, n)),
        "projection": project(summary, n, k, args.project_n),
        "rounds": rounds,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    print("\nmedian of the rounds (wall / cpu s), inertia of the last round:")
    for name, clocks in summary["times"].items():
        inertia = summary["inertia"].get(name)
        extra = f"   inertia {inertia:.6g}" if inertia is not None else ""
        print(f"  {name:24s} {clocks['wall_s']:8.3f} / {clocks['cpu_s']:8.3f}{extra}")
    for name, value in summary.get("ratios", {}).items():
        print(f"  ratio {name:52s} {value:.4f}")
    print(
        f"  D {summary['d_gib']:.3f} GiB; extra peak during the call (GiB): "
        + ", ".join(f"{m} {v:.3f}" for m, v in summary["extra_peak_gib"].items())
        + f"; peak RSS {summary['peak_rss_gib']:.2f} GiB"
    )
    for name, ok in summary["targets"].items():
        print(f"  target {name:44s} {'met' if ok else 'MISSED'}")


# --- quality suite -------------------------------------------------------------------------------------

QualityCase = tuple[str, str, np.ndarray, int]  # family, matrix label, D, k


def _point_families(args: argparse.Namespace) -> list[QualityCase]:
    """Squared Euclidean / dim matrices of seeded points, three matrices (data seeds 0..2) per family."""
    cases: list[QualityCase] = []
    for data_seed in range(3):
        rng = np.random.default_rng(data_seed)
        families = {
            ("clustered 2-D (600 pts, 10 blobs)", 12): blob_points(600, dim=2, blobs=10, seed=data_seed),
            ("unclustered 2-D (600 uniform)", 12): rng.random((600, 2)),
            ("unclustered 2-D (600 uniform)", 40): rng.random((600, 2)),
            ("clustered 3-D (1000 pts, 40 blobs)", 50): blob_points(1000, dim=3, blobs=40, seed=data_seed),
            ("unclustered 64-D (600 Gaussian)", 12): rng.normal(size=(600, 64)),
            ("clustered 50-D (800 pts, 30 blobs, std 4)", 40): blob_points(
                800, dim=50, blobs=30, std=4.0, seed=data_seed
            ),
        }
        for (family, k), points in families.items():
            D = squared_distances_over_dim(points)
            cases.append((f"{family}, k={k}", f"data seed {data_seed}", D, k))
        # Large k: the speed suite's input at a size where ten seeds stay quick.
        D = clustered_distance_matrix(2000, clusters=50, seed=data_seed)
        cases.append(("clustered 5-D (2000 pts, 50 clusters), k=200", f"data seed {data_seed}", D, 200))
    return cases


def _chamfer_cases(args: argparse.Namespace) -> list[QualityCase]:
    """Chamfer matrix of every instance of a synthetic dataset root (cached), at k = 2, 10, 50."""
    root = args.chamfer_root
    files = sorted(root.glob("instances/*/points.npy"))
    if not files:
        print(
            f"no instances under {root}: skipping the Chamfer family (build it with python -m dataset.synthetic "
            f"--root {root} --image-size 64 --pool clusters)",
            flush=True,
        )
        return []
    cache = RESULTS / f"chamfer_{root.name}_{len(files)}x500.npy"
    if cache.is_file():
        D = np.load(cache)
    else:
        print(f"Chamfer matrix of {len(files)} clouds of {root} (500 points each) ...", flush=True)
        rng = np.random.default_rng(0)
        clouds = []
        for path in files:
            points = np.load(path)
            clouds.append(points[rng.choice(len(points), size=min(500, len(points)), replace=False)])
        D = chamfer_matrix(clouds, progress=True)
        atomic_save_npy(cache, D)
    return [(f"Chamfer, {root.name} (N={len(D)}), k={k}", "", D, k) for k in (2, 10, 50) if k < len(D)]


def _matrix_file_cases(args: argparse.Namespace) -> list[QualityCase]:
    """``--matrix NAME=FILE.npy[:K1,K2,...]`` (default k: 2, 10, 50)."""
    cases: list[QualityCase] = []
    for spec in args.matrix:
        name, _, rest = spec.partition("=")
        path, _, ks = rest.partition(":")
        D = np.load(path)
        for k in [int(v) for v in ks.split(",")] if ks else [2, 10, 50]:
            if k < len(D):
                cases.append((f"{name} (N={len(D)}), k={k}", path, D, k))
    return cases


# Where quality matrices come from; a new source (e.g. ShapeNet Chamfer matrices) is one more entry.
MATRIX_SOURCES: dict[str, Callable[[argparse.Namespace], list[QualityCase]]] = {
    "points": _point_families,
    "chamfer": _chamfer_cases,
    "files": _matrix_file_cases,
}


def add_matrix_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--sources``, ``--chamfer-root`` and ``--matrix``: which matrices :data:`MATRIX_SOURCES` give."""
    parser.add_argument(
        "--sources",
        nargs="+",
        choices=tuple(MATRIX_SOURCES),
        default=list(MATRIX_SOURCES),
        help=f"{prefix}matrix sources",
    )
    parser.add_argument(
        "--chamfer-root",
        type=Path,
        default=REPO_ROOT / "dataset/synthetic_data/cubesphere_quick",
        help=f"{prefix}synthetic dataset root of the Chamfer family",
    )
    parser.add_argument(
        "--matrix",
        action="append",
        default=[],
        metavar="NAME=FILE.npy[:K1,K2]",
        help=f"{prefix}another distance matrix (repeatable)",
    )


def _inertia(D: np.ndarray, medoids: np.ndarray) -> float:
    """sum_i min_m D[i, m] accumulated in float64, as our KMedoidsResult.inertia (so both sides are summed
    the same way; the reference's own loss is accumulated differently)."""
    return float(D[:, np.asarray(medoids, dtype=np.int64)].min(axis=1).sum(dtype=np.float64))


# Two inertias within this relative difference are the same optimum summed in another order (ours adds the
# float32 distances exactly, the reference side in numpy's float64 pairwise order): a tie, not a win or loss.
TIE_RTOL = 1e-9


def paired_comparison(ours: Sequence[float], reference: Sequence[float], rtol: float = TIE_RTOL) -> dict[str, Any]:
    """Ours against the reference on the same (matrix, seed) pairs: how many seeds end lower, equal (within
    ``rtol``) and higher, and the one-sided Wilcoxon signed-rank p of "ours costs more" (ties dropped,
    Wilcoxon's rule; scipy's exact distribution for up to 50 pairs). p is 1.0 when every pair ties: a mean
    ratio a hair above 1 is then rounding, and a few local optima a little higher at a few seeds are judged
    against the seeds where ours ends lower."""
    from scipy import stats

    a, b = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    diff = a - b
    diff[np.abs(diff) <= rtol * np.maximum(np.abs(a), np.abs(b))] = 0.0
    nonzero = diff[diff != 0.0]
    p = 1.0 if nonzero.size == 0 else float(stats.wilcoxon(nonzero, alternative="greater").pvalue)
    return {
        "lower": int((diff < 0).sum()),
        "equal": int((diff == 0).sum()),
        "higher": int((diff > 0).sum()),
        "p_higher": p,
    }


def _warm_up(threads: int) -> None:
    """One small call before any timing: it builds (or loads) the compiled kernel and imports lazily."""
    kmedoids(clustered_distance_matrix(64, clusters=4, seed=0), 3, threads=threads)


def run_quality(args: argparse.Namespace) -> dict[str, Any]:
    """Every case × seeds 0..args.seeds-1: our pam (for each --n-init) and FasterPAM; per-family summary."""
    import kmedoids as reference

    cases = [case for source in args.sources for case in MATRIX_SOURCES[source](args)]
    _warm_up(args.threads)
    rows = []
    for family, label, D, k in cases:
        fasterpam, fp_time, fp_cpu = [], [], []
        ours = {n_init: ([], [], []) for n_init in args.n_init}  # inertias, wall s, CPU s per seed
        for seed in range(args.seeds):
            # Interleaved per seed, so that the shared machine's load changes hit both sides alike.
            result, timing = measure(lambda D=D, k=k, s=seed: reference.fasterpam(D, k, random_state=s, n_cpu=1))
            fasterpam.append(_inertia(D, result.medoids))
            fp_time.append(timing["wall_s"])
            fp_cpu.append(timing["cpu_s"])
            for n_init, (inertias, wall, cpu) in ours.items():
                result, timing = measure(
                    lambda D=D, k=k, s=seed, r=n_init: kmedoids(D, k, seed=s, n_init=r, threads=args.threads)
                )
                inertias.append(result.inertia)
                wall.append(timing["wall_s"])
                cpu.append(timing["cpu_s"])
        for n_init, (inertias, wall, cpu) in ours.items():
            rows.append(
                {
                    "family": family,
                    "matrix": label,
                    "n": len(D),
                    "k": k,
                    "n_init": n_init or "auto",
                    "ours": inertias,
                    "fasterpam": fasterpam,
                    "ours_s": sum(wall),
                    "fasterpam_s": sum(fp_time),
                    "ours_cpu_s": sum(cpu),
                    "fasterpam_cpu_s": sum(fp_cpu),
                }
            )
        print(
            f"  {family} {label}: "
            + ", ".join(
                f"n_init={r['n_init']} inertia {np.mean(r['ours']) / np.mean(fasterpam):.4f} "
                f"CPU time {r['ours_cpu_s'] / r['fasterpam_cpu_s']:.2f}"
                for r in rows[-len(args.n_init) :]
            ),
            flush=True,
        )
    summary = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for n_init in [n or "auto" for n in args.n_init]:
            group = [r for r in rows if r["family"] == family and r["n_init"] == n_init]
            summary.append(
                {
                    "family": family,
                    "n_init": n_init,
                    "matrices": len(group),
                    "mean_ratio": float(np.mean([np.mean(r["ours"]) / np.mean(r["fasterpam"]) for r in group])),
                    "seeds": paired_comparison(
                        [v for r in group for v in r["ours"]], [v for r in group for v in r["fasterpam"]]
                    ),
                    "worst_seed_ratio": float(max(max(np.array(r["ours"]) / np.array(r["fasterpam"])) for r in group)),
                    "time_ratio": sum(r["ours_s"] for r in group) / sum(r["fasterpam_s"] for r in group),
                    "cpu_time_ratio": sum(r["ours_cpu_s"] for r in group) / sum(r["fasterpam_cpu_s"] for r in group),
                }
            )
    return {
        "benchmark": "kmedoids_quality",
        "settings": {
            "seeds": args.seeds,
            "n_init": args.n_init,
            "threads": args.threads,
            "sources": args.sources,
            "reference": f"kmedoids {metadata.version('kmedoids')}",
        },
        "provenance": provenance("cpu"),
        "summary": summary,
        "rows": rows,
    }


def _print_quality(summary: list[dict[str, Any]]) -> None:
    print(
        "\n| matrix family | n_init | mean inertia ours / FasterPAM | worst seed | CPU time ours / FasterPAM "
        "| wall time ours / FasterPAM | seeds lower / equal / higher | p (ours higher) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in summary:
        seeds = row["seeds"]
        print(
            f"| {row['family']} ({row['matrices']} matri{'ces' if row['matrices'] > 1 else 'x'}) | {row['n_init']} "
            f"| {row['mean_ratio']:.4f} | {row['worst_seed_ratio']:.4f} | {row['cpu_time_ratio']:.2f} "
            f"| {row['time_ratio']:.2f} | {seeds['lower']} / {seeds['equal']} / {seeds['higher']} "
            f"| {seeds['p_higher']:.2g} |"
        )


def _n_init(text: str) -> int | None:
    return None if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("speed", "quality"), default="speed", help="what to measure")
    parser.add_argument("--n", type=int, default=5000, help="number of items (default 5000)")
    parser.add_argument("--k", type=int, default=500, help="number of medoids (default 500)")
    parser.add_argument("--dim", type=int, default=5, help="point dimension of the test matrix")
    parser.add_argument("--clusters", type=int, default=50, help="Gaussian clusters in the test matrix")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the test matrix")
    parser.add_argument("--seed", type=int, default=0, help="k-medoids seed (both implementations)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median counts")
    parser.add_argument(
        "--mmap",
        type=Path,
        default=None,
        metavar="DIR",
        help="speed: save D as DIR/D_<N>.npy and run every call on np.load(mmap_mode='r')",
    )
    parser.add_argument(
        "--project-n",
        type=int,
        default=35021,
        help="speed: N to project time and memory to (default: ShapeNet-13, 35,021)",
    )
    parser.add_argument("--threads", type=int, default=1, help="our threads= (the reference uses n_cpu=1)")
    parser.add_argument("--compare-threads", action="store_true", help="speed: also time pam with threads=2")
    parser.add_argument("--skip-reference", action="store_true", help="time this library only")
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    parser.add_argument("--seeds", type=int, default=10, help="quality: seeds 0..SEEDS-1 per matrix")
    parser.add_argument(
        "--n-init",
        type=_n_init,
        nargs="+",
        default=[None],
        help="quality: our n_init values (auto = the library's default)",
    )
    add_matrix_arguments(parser, "quality: ")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a benchmark process: every compared call single-threaded (FasterPAM: n_cpu=1)
    if args.suite == "quality":
        report = run_quality(args)
        _print_quality(report["summary"])
    else:
        if args.n < 2 or not 1 <= args.k <= args.n or args.repeats < 1:
            parser.error("need N >= 2, 1 <= k <= N and --repeats >= 1")
        report = run(args)
        _print_summary(report["summary"])
        p = report["projection"]
        print(
            f"  projected to N = {p['n']:,} (x{(p['n'] / args.n) ** 2:.2f} per O(N²) pass): "
            f"pam {p['pam_wall_s']:.1f} s wall / {p['pam_cpu_s']:.1f} s CPU"
            + (f" (FasterPAM {p['fasterpam_random_wall_s']:.1f} s)" if "fasterpam_random_wall_s" in p else "")
            + f"; D {p['d_gib']:.2f} GiB plus ~{p['pam_extra_gib']:.2f} GiB added by the call"
        )
    out = args.out or (QUALITY_OUT if args.suite == "quality" else DEFAULT_OUT)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
