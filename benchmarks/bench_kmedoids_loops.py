"""The k-medoids kernel's swap step: its two evaluation loops, in every instruction-set variant this CPU runs,
on the same starts in one run (the measurements behind ``_kmedoids_kernel.batched_swap_loop``).

For each (matrix, k): eight starts (seeds 0-3, starts 0 and 1, as ``kmedoids`` makes them), each variant's
swap step with the 16-candidate loop and with the one-candidate loop, interleaved over ``--repeats`` rounds
(fastest kept, CPU time, one thread); prints batched / one-at-a-time per variant, each variant's time against
the native build's, and the loop the kernel picks by default. Every variant and loop must make the same swaps (checked).

    python -m benchmarks.bench_kmedoids_loops [--repeats 5] [--out benchmarks/results/bench_kmedoids_loops.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._inputs import clustered_distance_matrix
from dispersion_score import _kmedoids_kernel, _native
from dispersion_score import clustering as km
from dispersion_score.io import atomic_write_text, provenance

RESULTS = Path(__file__).resolve().parent / "results"
RTOL = 1e-10  # the relative improvement a swap must bring (clustering._SWAP_RTOL)
CASES = [(600, 12, 10), (600, 12, 60), (1000, 20, 48), (1000, 20, 80), (2000, 60, 60), (2000, 60, 300)]


def _starts(D: np.ndarray, k: int, kernel: _kmedoids_kernel.KMedoidsKernel) -> list[tuple[np.ndarray, np.ndarray]]:
    Dt, n = torch.from_numpy(D), len(D)
    starts = []
    for seed in range(4):
        for start in (0, 1):
            medoids = km.kpp_seed(Dt, k, seed, start=start).numpy()
            if start == 0:  # start 0 swaps from the alternate step's result, as kmedoids does
                medoids, _ = kernel.alternate(D, medoids, 300)
            starts.append((medoids, km.swap_order(n, seed, start)))
    return starts


def run(repeats: int) -> list[dict]:
    kernels = {
        v: _kmedoids_kernel.load_variant(v)
        for v, flag in _kmedoids_kernel.VARIANT_CPU_FLAG.items()
        if _native.cpu_has(flag)
    }
    rows = []
    for n, clusters, k in CASES:
        D = clustered_distance_matrix(n, clusters=clusters, seed=1)
        starts = _starts(D, k, kernels["native"])
        best: dict[tuple[str, bool], float] = {}
        results = set()
        for round_ in range(repeats):
            for variant, kernel in kernels.items():
                for batched in (True, False) if round_ % 2 else (False, True):
                    t0 = time.process_time()
                    out = [kernel.swap(D, m, max_examined=300 * n, rtol=RTOL, order=o, batched=batched)
                           for m, o in starts]  # fmt: skip
                    elapsed = time.process_time() - t0
                    best[variant, batched] = min(best.get((variant, batched), np.inf), elapsed)
                    results.add(tuple((tuple(m.tolist()), e, s) for m, e, s in out))
        if len(results) != 1:
            raise RuntimeError(f"N = {n}, k = {k}: the variants or loops made different swaps")
        for variant, kernel in kernels.items():
            rule = kernel.wide_vectors and _kmedoids_kernel.batched_swap_loop(n, k)  # the kernel's default
            chosen = best[variant, rule]
            rows.append({
                "n": n, "k": k, "variant": variant,
                "batched_s": best[variant, True], "one_at_a_time_s": best[variant, False],
                "batched_over_one": best[variant, True] / best[variant, False], "rule_batched": rule,
                "rule_over_fastest": chosen / min(best[variant, True], best[variant, False]),
                "rule_time_over_native": chosen / best["native", rule],
            })  # fmt: skip
            r = rows[-1]
            print(
                f"N = {n:5d}, k = {k:3d}, {variant:8s}: batched / one at a time {r['batched_over_one']:.3f}; "
                f"the rule ({'batched' if rule else 'one at a time'}) takes {r['rule_over_fastest']:.2f}x the "
                f"faster loop, {r['rule_time_over_native']:.2f}x the native build",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the fastest counts")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_kmedoids_loops.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = run(args.repeats)
    document = {"benchmark": "kmedoids_loops", "repeats": args.repeats, "rows": rows, "provenance": provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(document, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
