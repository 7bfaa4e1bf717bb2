"""k-medoids swap order: the seeded block-shuffled processing order against index order, in one process.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_kmedoids_order [--seeds 10] [--matrix NAME=FILE.npy[:K1,K2]]

``kmedoids(D, k, seed=s)`` (the default ``pam``, two starts) as it is, whose swaps take the candidates in
``clustering.swap_order`` (blocks of 16 items, shuffled per start), against the same call with the swaps
in index order (the order of versions before it: ``swap_order`` replaced by ``arange`` for those calls),
interleaved per seed on the quality suite's matrices (``benchmarks.bench_kmedoids --suite quality``:
``--sources``, ``--chamfer-root``, ``--matrix``). Per family: the ratio of mean inertias (shuffled / index
order), how many (matrix, seed) pairs end lower / equal / higher and the one-sided Wilcoxon p of "the
shuffled order costs more", and the ratio of total CPU times. With result matrices of an experiment as
``--matrix`` files at the preset's k, the inertia ratio is what the change does to DS values computed
before it (DS = inertia / N). Writes ``benchmarks/results/bench_kmedoids_order.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.bench_kmedoids import MATRIX_SOURCES, RESULTS, add_matrix_arguments, measure, paired_comparison
from dispersion_score import clustering, kmedoids
from dispersion_score.io import atomic_write_text, provenance

OUT = RESULTS / "bench_kmedoids_order.json"


def _index_order(n: int, seed: int, start: int = 0) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def _call(D: np.ndarray, k: int, seed: int, *, shuffled: bool) -> tuple[float, float]:
    """(inertia, CPU seconds) of kmedoids(D, k, seed=seed) with the shuffled or the index order."""
    original = clustering.swap_order
    if not shuffled:
        clustering.swap_order = _index_order
    try:
        result, timing = measure(lambda: kmedoids(D, k, seed=seed, threads=1))
    finally:
        clustering.swap_order = original
    return result.inertia, timing["cpu_s"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = [case for source in args.sources for case in MATRIX_SOURCES[source](args)]
    kmedoids(cases[0][2], 2, threads=1)  # builds (or loads) the compiled kernel before any timing
    rows: dict[str, dict[str, list[float]]] = {}
    for family, label, D, k in cases:
        row = rows.setdefault(family, {"shuffled": [], "index": [], "shuffled_s": [], "index_s": []})
        for seed in range(args.seeds):
            for shuffled in (seed % 2 == 0, seed % 2 == 1):  # alternate which goes first
                inertia, cpu = _call(D, k, seed, shuffled=shuffled)
                name = "shuffled" if shuffled else "index"
                row[name].append(inertia)
                row[f"{name}_s"].append(cpu)
        print(f"  {family} {label}: {np.mean(row['shuffled']) / np.mean(row['index']):.6f}", flush=True)
    summary = []
    for family, row in rows.items():
        summary.append(
            {
                "family": family,
                "mean_ratio": float(np.mean(row["shuffled"]) / np.mean(row["index"])),
                "largest_change": float(np.max(np.abs(np.array(row["shuffled"]) / np.array(row["index"]) - 1))),
                "seeds": paired_comparison(row["shuffled"], row["index"]),
                "cpu_time_ratio": float(sum(row["shuffled_s"]) / sum(row["index_s"])),
            }
        )
    return {
        "benchmark": "kmedoids_swap_order",
        "settings": {"seeds": args.seeds, "sources": args.sources, "matrix": args.matrix},
        "provenance": provenance("cpu"),
        "summary": summary,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..SEEDS-1 per matrix")
    add_matrix_arguments(parser)
    parser.add_argument("--out", type=Path, default=OUT, help="JSON output file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a benchmark process: every compared call single-threaded
    report = run(args)
    print(
        "\n| matrix family | mean inertia shuffled / index order | largest change at one seed "
        "| seeds lower / equal / higher | p (shuffled higher) | CPU time shuffled / index order |"
    )
    print("|---|---|---|---|---|---|")
    for row in report["summary"]:
        seeds = row["seeds"]
        print(
            f"| {row['family']} | {row['mean_ratio']:.6f} | {row['largest_change']:.2e} "
            f"| {seeds['lower']} / {seeds['equal']} / {seeds['higher']} | {seeds['p_higher']:.2g} "
            f"| {row['cpu_time_ratio']:.2f} |"
        )
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
