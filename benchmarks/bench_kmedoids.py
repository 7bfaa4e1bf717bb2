"""k-medoids benchmark: this library against the ``kmedoids`` package (Rust FasterPAM), in one process.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_kmedoids [--n 5000] [--k 500] [--repeats 3]
    .venv/bin/python -m benchmarks.bench_kmedoids --n 20000 --k 500 --repeats 1   # the memory check

Input: ``benchmarks._inputs.clustered_distance_matrix``, squared Euclidean distances of N points
around 50 Gaussian centres in 5-D (float32, exactly symmetric, zero diagonal). Everything single-threaded
(``torch.set_num_threads(1)``, ``n_cpu=1``). Compared, interleaved over ``--repeats`` rounds (the
fastest round counts; every round is stored):

* ``kmedoids(D, k, method="pam")`` (the whole public call: checks of D, k-medoids++ seeding, alternate,
  swaps) against ``kmedoids.fasterpam(D, k)`` with its default random initialisation, and against
  FasterPAM started from our k-medoids++ seeding (its time plus the seeding's: the same start).
  Targets: inertia <= 1.001 x FasterPAM's, time <= 1.5 x FasterPAM's.
* ``kmedoids(D, k, method="alternate")`` against ``kmedoids.alternating`` from the same seeding
  (its time plus the seeding's) and with its own random initialisation. Target: time <= 2 x.

Memory: the peak resident set during each of our calls (Linux VmHWM, reset before the call) minus the
resident set before it, next to the 4·N² bytes of D. Writes ``benchmarks/results/bench_kmedoids.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._inputs import clustered_distance_matrix
from dispersion_score import kmedoids
from dispersion_score.io import atomic_write_text, provenance
from dispersion_score.kmedoids import kpp_seed

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_kmedoids.json"
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
    seeding, out["seeding"] = measure(lambda: kpp_seed(torch.from_numpy(D), k, args.seed))
    init = seeding.numpy().astype(np.int64)
    for method in ("pam", "alternate"):
        result, out[method] = measure(lambda m=method: kmedoids(D, k, method=m, seed=args.seed))
        out[method].update(inertia=result.inertia, n_iter=result.n_iter, n_swaps=result.n_swaps)
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
        out[name].update(inertia=float(result.loss), n_iter=int(result.n_iter),
                         n_swaps=int(getattr(result, "n_swap", None) or 0))
    # Starting from our seeding, the reference's time includes the seeding (as ours does).
    for name in ("fasterpam_same_init", "alternating_same_init"):
        out[name]["wall_s"] += out["seeding"]["wall_s"]
        out[name]["cpu_s"] += out["seeding"]["cpu_s"]
    return out


def summarize(rounds: list[dict[str, dict[str, Any]]], n: int) -> dict[str, Any]:
    """Fastest round per call (wall and CPU time separately), inertias, ratios, targets."""
    names = list(rounds[0])
    best = {
        name: {clock: min(r[name][clock] for r in rounds) for clock in ("wall_s", "cpu_s")} for name in names
    }
    inertia = {name: rounds[-1][name]["inertia"] for name in names if "inertia" in rounds[-1][name]}
    summary: dict[str, Any] = {"times": best, "inertia": inertia, "d_gib": 4 * n * n / GIB}
    summary["pam_swaps"] = rounds[-1]["pam"]["n_swaps"]
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
        for ours, theirs in (("pam", "fasterpam_random"), ("pam", "fasterpam_same_init"),
                             ("alternate", "alternating_same_init"), ("alternate", "alternating_random")):
            for clock in ("wall_s", "cpu_s"):
                ratios[f"time_{clock[:-2]}_{ours}_vs_{theirs}"] = best[ours][clock] / best[theirs][clock]
            ratios[f"inertia_{ours}_vs_{theirs}"] = inertia[ours] / inertia[theirs]
        summary["ratios"] = ratios

        def worst(prefix: str, ours: str, theirs: tuple[str, ...]) -> float:
            return max(ratios[f"{prefix}_{ours}_vs_{t}"] for t in theirs)

        fasterpam = ("fasterpam_random", "fasterpam_same_init")
        targets.update({
            "pam_inertia_le_1.001x_fasterpam": worst("inertia", "pam", fasterpam) <= 1.001,
            "pam_wall_time_le_1.5x_fasterpam": worst("time_wall", "pam", fasterpam) <= 1.5,
            "pam_cpu_time_le_1.5x_fasterpam": worst("time_cpu", "pam", fasterpam) <= 1.5,
            "alternate_wall_time_le_2x_alternating": worst("time_wall", "alternate", ("alternating_same_init",)) <= 2,
            "alternate_cpu_time_le_2x_alternating": worst("time_cpu", "alternate", ("alternating_same_init",)) <= 2,
        })
    summary["targets"] = targets
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    n, k = args.n, args.k
    print(f"building D: N = {n}, float32, {4 * n * n / GIB:.2f} GiB ...", flush=True)
    start = time.perf_counter()
    D = clustered_distance_matrix(n, dim=args.dim, clusters=args.clusters, seed=args.data_seed)
    print(f"  built in {time.perf_counter() - start:.1f} s", flush=True)
    rounds = []
    for r in range(args.repeats):
        rounds.append(one_round(D, k, args))
        print(f"round {r + 1}/{args.repeats} (wall / cpu s): " + ", ".join(
            f"{name} {v['wall_s']:.3f}/{v['cpu_s']:.3f}" for name, v in rounds[-1].items()), flush=True)
    return {
        "benchmark": "kmedoids",
        "settings": {"n": n, "k": k, "dim": args.dim, "clusters": args.clusters, "data_seed": args.data_seed,
                     "seed": args.seed, "repeats": args.repeats, "threads": args.threads,
                     "reference": None if args.skip_reference else f"kmedoids {metadata.version('kmedoids')}"},
        "provenance": provenance("cpu"),
        "summary": summarize(rounds, n),
        "rounds": rounds,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    print("\nfastest round (wall / cpu s), inertia of the last round:")
    for name, clocks in summary["times"].items():
        inertia = summary["inertia"].get(name)
        extra = f"   inertia {inertia:.6g}" if inertia is not None else ""
        print(f"  {name:24s} {clocks['wall_s']:8.3f} / {clocks['cpu_s']:8.3f}{extra}")
    for name, value in summary.get("ratios", {}).items():
        print(f"  ratio {name:52s} {value:.4f}")
    print(f"  D {summary['d_gib']:.3f} GiB; extra peak during the call (GiB): "
          + ", ".join(f"{m} {v:.3f}" for m, v in summary["extra_peak_gib"].items())
          + f"; peak RSS {summary['peak_rss_gib']:.2f} GiB")
    for name, ok in summary["targets"].items():
        print(f"  target {name:44s} {'met' if ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of items (default 5000)")
    parser.add_argument("--k", type=int, default=500, help="number of medoids (default 500)")
    parser.add_argument("--dim", type=int, default=5, help="point dimension of the test matrix")
    parser.add_argument("--clusters", type=int, default=50, help="Gaussian clusters in the test matrix")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the test matrix")
    parser.add_argument("--seed", type=int, default=0, help="k-medoids seed (both implementations)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the fastest counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the reference uses n_cpu=1)")
    parser.add_argument("--skip-reference", action="store_true", help="time this library only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    args = parser.parse_args(argv)
    if args.n < 2 or not 1 <= args.k <= args.n or args.repeats < 1:
        parser.error("need N >= 2, 1 <= k <= N and --repeats >= 1")
    report = run(args)
    _print_summary(report["summary"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
