"""The core library's performance targets (issue 2), in one process: Chamfer matrices, then k-medoids.

    .venv/bin/python -m benchmarks.bench_ds            # N = 200 clouds × 2500 points; N = 5000, k = 500
    .venv/bin/python -m benchmarks.bench_ds --quick    # smaller inputs, for a smoke run

Runs ``benchmarks.bench_chamfer`` (this library against the reference-style row loop and faiss) and
``benchmarks.bench_kmedoids`` (against the Rust FasterPAM / alternating of the ``kmedoids`` package), prints
each one's ratios and writes them together to ``benchmarks/results/bench_ds.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import bench_chamfer, bench_kmedoids
from dispersion_score.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs (smoke run, not the targets)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_ds.json")
    args = parser.parse_args(argv)
    chamfer_args = ["--n", "40", "--faiss-pairs", "50", "--torch-clouds", "10"] if args.quick else []
    kmedoids_args = ["--n", "1000", "--k", "100", "--repeats", "1"] if args.quick else []
    chamfer_out, kmedoids_out = RESULTS / "bench_chamfer.json", RESULTS / "bench_kmedoids.json"
    print("== Chamfer matrix ==")
    bench_chamfer.main([*chamfer_args, "--out", str(chamfer_out)])
    print("\n== k-medoids ==")
    bench_kmedoids.main([*kmedoids_args, "--out", str(kmedoids_out)])
    document = {
        "quick": args.quick,
        "chamfer": json.loads(chamfer_out.read_text()),
        "kmedoids": json.loads(kmedoids_out.read_text()),
    }
    atomic_write_text(args.out, json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
