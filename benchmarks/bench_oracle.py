"""Oracle-NN throughput: the test × train Chamfer of the oracle baseline against the square DS matrix, one run.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_oracle [--train 300] [--test 100] [--points 2500] [--threads 1]

Compared, on the same seeded surface clouds, device, backend and thread count, interleaved (a, b, c, a, b, c, ...)
so that load from other processes hits all alike; the best of ``--repeats`` runs of each counts:

(a) ``chamfer_matrix(train)``: the square matrix of input shape DS, N(N-1)/2 pairs;
(b) ``dispersion_score.nearest_shapes(test, train)``: the oracle baseline as it runs (one
    ``chamfer_cross`` test × train matrix without re-normalisation, then the argmin), N_test · N_train pairs;
(c) ``chamfer_cross(test, train)`` with the unit-ball normalisation of (a), for a like-for-like comparison.

Prints pairs per second and the ratios (b)/(a), (c)/(a) (target >= 0.9), checks that the cross matrix equals the
square one where they overlap, and writes ``benchmarks/results/bench_oracle.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._inputs import surface_clouds
from dispersion_score import _chamfer_kernel, chamfer_cross, chamfer_matrix, nearest_shapes, normalize_unit_ball
from dispersion_score.io import atomic_write_text, provenance

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_oracle.json"


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    clouds = normalize_unit_ball(surface_clouds(args.train + args.test, args.points, seed=args.seed))
    train, test = clouds[: args.train], clouds[args.train :]
    options = {"device": args.device, "backend": args.backend}
    if args.device == "cpu" and args.backend != "torch":
        _chamfer_kernel.load_kernel()  # compile (once per machine) outside the timings
    cases = {
        "square_matrix": (lambda: chamfer_matrix(train, **options), args.train * (args.train - 1) // 2),
        "oracle": (lambda: nearest_shapes(test, train, device=args.device), args.test * args.train),
        "cross_matrix": (lambda: chamfer_cross(test, train, **options), args.test * args.train),
    }
    if args.backend != "auto":  # the oracle uses the default backend: time it only where that is the one asked for
        del cases["oracle"]
    best = dict.fromkeys(cases, math.inf)
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, (function, _) in cases.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[name] = function()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    results = {
        name: {"pairs": pairs, "seconds": best[name], "pairs_per_second": pairs / best[name]}
        for name, (_, pairs) in cases.items()
    }
    square = results["square_matrix"]["pairs_per_second"]
    ratios = {f"{name}_over_square": entry["pairs_per_second"] / square for name, entry in results.items()}
    del ratios["square_matrix_over_square"]
    # Agreement where the sets overlap: cross(train[:m], train) against rows of the square matrix.
    m = min(20, args.train)
    overlap = chamfer_cross(train[:m], train, **options)
    reference = outputs["square_matrix"][:m]
    off_diagonal = ~np.eye(m, args.train, dtype=bool)
    agreement = float(np.max(np.abs(overlap - reference)[off_diagonal] / np.maximum(reference[off_diagonal], 1e-30)))
    return {
        "benchmark": "oracle_cross_vs_square",
        "settings": {
            "train": args.train,
            "test": args.test,
            "points": args.points,
            "threads": args.threads,
            "device": args.device,
            "backend": args.backend,
            "repeats": args.repeats,
            "seed": args.seed,
            "inputs": "benchmarks._inputs.surface_clouds, unit-ball normalised",
        },
        "provenance": provenance(args.device),
        "results": results,
        "ratios": ratios,
        "max_rel_diff_cross_vs_square": agreement,
    }


def report(document: dict) -> str:
    s = document["settings"]
    lines = [
        f"oracle test x train Chamfer vs the square matrix: N_train = {s['train']}, N_test = {s['test']}, "
        f"{s['points']} points, {s['device']}, backend {s['backend']}, {s['threads']} thread(s), best of {s['repeats']}"
    ]
    for name, entry in document["results"].items():
        rate = entry["pairs_per_second"]
        lines.append(f"  {name:14s} {entry['pairs']:8d} pairs in {entry['seconds']:7.2f} s: {rate:9.1f} pairs/s")
    for name, value in document["ratios"].items():
        lines.append(f"  {name:28s} {value:6.3f}  (target >= 0.9)")
    lines.append(f"  max rel. diff cross vs square where they overlap: {document['max_rel_diff_cross_vs_square']:.1e}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=300, help="training clouds (square matrix side)")
    parser.add_argument("--test", type=int, default=100, help="test clouds")
    parser.add_argument("--points", type=int, default=2500, help="points per cloud")
    parser.add_argument("--threads", type=int, default=1, help="torch / kernel threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backend", choices=("auto", "compiled", "torch"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings per case; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    document = run(parse_args(argv))
    print(report(document))
    out = parse_args(argv).out
    atomic_write_text(out, json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
