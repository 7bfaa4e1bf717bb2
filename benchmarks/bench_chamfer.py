"""Chamfer matrix benchmark: this library against a reference-style loop and faiss, in one process.

Run from the repository root:

    .venv/bin/python -m benchmarks.bench_chamfer [--n 200] [--points 2500] [--threads 1]

Compared, all on the same unit-ball clouds and the same number of threads:

(a) ``chamfer_matrix`` (compiled backend, the CPU default), the full N x N matrix; also its pure torch
    backend (the fallback without a compiler) on a subset of clouds, extrapolated per pair.
(b) the reference implementation's scheme: a Python loop over rows i, each row compared with batches of
    clouds j > i (``--ref-batch``: 8 here to bound CPU memory, 32 in the original) by dense brute force.
    The original ran a CUDA brute-force kernel; on a CPU the dense torch equivalent either materialises
    all differences (``--ref-style diff``) or, like AtlasNet's Python fallback, forms Gram matrices with
    three bmm's (``bmm``). Both are timed on the first ``--ref-rows`` rows and extrapolated per pair.
(c) faiss-cpu: one exact ``IndexFlatL2`` search per pair and direction (k = 1), timed on ``--faiss-pairs``
    pairs and extrapolated per pair; with faiss's default settings and with its BLAS path forced
    (``distance_compute_blas_threshold = 20``), the faster of the two being the baseline.

(d) the kernel's instruction-set variants (``--variants``: the native build, the AVX2 body where the
    CPU has AVX-512, the portable body), one thread, on the first ``--variant-pairs`` pairs, each
    against the per-core limit of its instruction mix (:func:`mix_limit`) at the core clock measured
    in the same run (a chain of dependent adds, ``benchmarks/csrc/kernel_peak.cpp``: no hardware
    counters are needed), on clouds small enough to stay in the L1 cache (the ceiling of the kernel's
    own instruction stream), and next to the mix alone in registers (inline assembly: what the core
    reaches with these instructions, a check of the derived limit). All timings are interleaved over
    ``--repeats-variants`` rounds and the fastest round kept, so load from other processes hits every
    implementation alike.

Prints the per-pair times and the ratios, checks that all implementations agree, and writes
``benchmarks/results/bench_chamfer.json`` (settings, provenance, times, ratios).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._inputs import random_clouds, surface_clouds
from dispersion_score import _chamfer_kernel, _native, chamfer_matrix, normalize_unit_ball
from dispersion_score.io import atomic_write_text, provenance

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_chamfer.json"
PEAK_SOURCE = Path(__file__).resolve().parent / "csrc" / "kernel_peak.cpp"


def reference_rows(clouds: torch.Tensor, rows: range, *, batch: int, style: str) -> tuple[np.ndarray, int]:
    """The reference scheme for the given rows: returns (values of pairs (i, j > i) in row order, count)."""
    n = clouds.shape[0]
    values = []
    with torch.no_grad():
        for i in rows:
            for start in range(i + 1, n, batch):
                others = clouds[start : start + batch]
                query = clouds[i : i + 1].expand(others.shape[0], -1, -1)
                values.append(_dense_chamfer(query, others, style))
    result = torch.cat(values).numpy() if values else np.zeros(0, np.float32)
    return result, len(result)


def _dense_chamfer(x: torch.Tensor, y: torch.Tensor, style: str) -> torch.Tensor:
    if style == "diff":
        d = (x[:, :, None, :] - y[:, None, :, :]).square().sum(-1)
    else:  # AtlasNet's Python fallback: Gram matrices by bmm, diagonals as squared norms
        xx, yy, zz = (
            torch.bmm(x, x.transpose(2, 1)),
            torch.bmm(y, y.transpose(2, 1)),
            torch.bmm(x, y.transpose(2, 1)),
        )
        diag = torch.arange(x.shape[1])
        rx = xx[:, diag, diag].unsqueeze(1).expand_as(zz)
        ry = yy[:, diag, diag].unsqueeze(1).expand_as(zz)
        d = rx.transpose(2, 1) + ry - 2 * zz
    return d.amin(dim=2).mean(dim=1) + d.amin(dim=1).mean(dim=1)


def faiss_pairs(clouds: np.ndarray, pairs: list[tuple[int, int]], *, blas_threshold: int | None) -> np.ndarray:
    """One IndexFlatL2 search per pair and direction (k = 1); faiss returns squared L2 distances."""
    import faiss

    if blas_threshold is not None:
        faiss.cvar.distance_compute_blas_threshold = blas_threshold
    out = np.empty(len(pairs), dtype=np.float64)
    for k, (i, j) in enumerate(pairs):
        index_i, index_j = faiss.IndexFlatL2(3), faiss.IndexFlatL2(3)
        index_i.add(clouds[i])
        index_j.add(clouds[j])
        d_ij, _ = index_j.search(clouds[i], 1)
        d_ji, _ = index_i.search(clouds[j], 1)
        out[k] = d_ij.mean() + d_ji.mean()
    return out


def timed(function, repeats: int = 1):
    """(result, best wall time over ``repeats`` runs); the minimum is the least disturbed by other load."""
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def core_name() -> str:
    """The CPU core family from /proc/cpuinfo (vendor, family, model), as named in :func:`mix_limit`."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.machine()
    vendor, family, model = info.get("vendor_id", ""), info.get("cpu family", ""), info.get("model", "")
    if vendor == "AuthenticAMD" and family.isdigit() and model.isdigit():
        family_number, model_number = int(family), int(model)
        if family_number == 25:  # Zen 4: models 0x10-0x1F, 0x60-0x7F, 0xA0-0xAF; the rest Zen 3
            zen4 = 0x10 <= model_number <= 0x1F or 0x60 <= model_number <= 0x7F or 0xA0 <= model_number <= 0xAF
            return "Zen 4" if zen4 else "Zen 3"
        return {23: "Zen 1/2", 26: "Zen 5"}.get(family_number, f"AMD family {family_number}")
    if vendor == "GenuineIntel":
        return "Intel"
    return info.get("model name", platform.machine())


# Point pairs per cycle one core can reach with the kernel's instruction mix. Per vector step of W
# point pairs the kernel issues 3 vsubps, 1 vmulps, 2 vfmadd (FP) and 2 vpminsd (vector integer); the
# query coordinates come from memory (AVX-512: {1to16} operands; AVX2: the pre-broadcast block), the
# streamed cloud with 4 loads and 1 store per QB steps, all within the load/store ports' width.
MIX_LIMITS: dict[tuple[str, str], tuple[float, str]] = {
    ("Zen 3", "avx2"): (
        4.0,
        "4 x 256-bit pipes: FP0/FP1 mul+fma (3 ops), FP2/FP3 add (3 subs), vpminsd on any (2): "
        "8 ops / 4 pipes = 2 cycles per 8 pairs",
    ),
    ("Zen 4", "avx2"): (
        4.0,
        "as Zen 3: 4 x 256-bit pipes, 8 ops / 4 pipes = 2 cycles per 8 pairs",
    ),
    ("Zen 4", "avx512"): (
        4.0,
        "512-bit ops take a 256-bit pipe for 2 cycles: 8 ops x 2 / 4 pipes = 4 cycles per 16 pairs",
    ),
    ("Zen 5", "avx2"): (4.0, "as Zen 4 (assumed, not measured)"),
    ("Zen 5", "avx512"): (8.0, "4 x 512-bit pipes: 8 ops / 4 pipes = 2 cycles per 16 pairs (not measured)"),
    ("Intel", "avx512"): (
        4.0,
        "Skylake-SP to Sapphire Rapids: 512-bit FP and vpminsd on ports 0 and 5: 8 ops / 2 = 4 cycles per "
        "16 pairs (not measured)",
    ),
    ("Intel", "avx2"): (
        2.0,
        "Skylake-class: FP add/mul/fma and vpminsd on ports 0 and 1: 8 ops / 2 = 4 cycles per 8 pairs (not measured)",
    ),
}


def mix_limit(core: str, isa: str) -> tuple[float, str] | None:
    """(point pairs per cycle, derivation) of the kernel's instruction mix on ``core``, None if unknown."""
    return MIX_LIMITS.get((core, isa))


def default_variants() -> list[str]:
    """The native build, plus the AVX2 body where the native one is AVX-512, plus the portable body."""
    variants = ["native"]
    if _native.cpu_has("avx512f") and _native.cpu_has("avx2"):
        variants.append("avx2")
    return variants + ["portable"]


def _time_call(function) -> float:
    """CPU time of the calling thread (every one-thread timing here runs in it): time the core spent on
    other processes sharing it is not counted, unlike wall time."""
    start = time.thread_time()
    function()
    return time.thread_time() - start


def kernel_variants(clouds: np.ndarray, *, variants: list[str], pairs: int, repeats: int) -> tuple[dict, list[dict]]:
    """Time each kernel variant on one thread against its mix limit, interleaved with the clock.

    Returns ({"core", "ghz"}, one row per variant).
    """
    import faiss

    faiss_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one thread, like the kernel: the per-core comparison
    try:
        return _kernel_variants(clouds, variants=variants, pairs=pairs, repeats=repeats)
    finally:
        faiss.omp_set_num_threads(faiss_threads)


def _kernel_variants(clouds: np.ndarray, *, variants: list[str], pairs: int, repeats: int) -> tuple[dict, list[dict]]:
    store = _chamfer_kernel.pack_store(list(clouds))
    iu = np.triu_indices(len(clouds), 1)
    ia, ib = iu[0][:pairs], iu[1][:pairs]
    points = clouds.shape[1]
    kernels = {v: _chamfer_kernel.load_variant(v) for v in variants}
    peak_text = PEAK_SOURCE.read_text(encoding="utf-8")
    peaks = {
        v: ctypes.CDLL(str(_native.build_library(peak_text, _chamfer_kernel.VARIANT_FLAGS[v], stem="kernel_peak")))
        for v in variants
    }
    clock = peaks[variants[0]]
    clock.ds_bench_clock.restype = ctypes.c_int64
    clock.ds_bench_clock.argtypes = [ctypes.c_int64]
    for library in peaks.values():
        library.ds_bench_l1.restype = ctypes.c_double
        library.ds_bench_l1.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
        library.ds_bench_mix.restype = ctypes.c_int64
        library.ds_bench_mix.argtypes = [ctypes.c_int64]
    mix_pairs = {v: peaks[v].ds_bench_mix(0) for v in variants}  # per iteration; -1: no mix loop
    # Portable builds can be 30x slower: time fewer pairs so every variant takes similar time.
    counts = {v: pairs if kernels[v].isa != "portable" else max(1, pairs // 30) for v in variants}
    l1_na, l1_nb = 512, 1536  # 6 + 24 KB: inside a 32 KB L1 data cache
    l1_repeats = {v: max(1, counts[v] * points * points // (l1_na * l1_nb)) for v in variants}
    adds = 25_000_000
    faiss_list = list(zip(ia.tolist(), ib.tolist(), strict=True))
    best = {"clock": math.inf, "faiss": math.inf}
    best |= {v: math.inf for v in variants} | {f"l1 {v}": math.inf for v in variants}
    best |= {f"mix {v}": math.inf for v in variants}
    mix_iterations = 5_000_000
    for _ in range(repeats):
        best["clock"] = min(best["clock"], _time_call(lambda: clock.ds_bench_clock(adds)))
        best["faiss"] = min(best["faiss"], _time_call(lambda: faiss_pairs(clouds, faiss_list, blas_threshold=20)))
        for v in variants:
            n = counts[v]
            best[v] = min(
                best[v], _time_call(lambda v=v, n=n: kernels[v].chamfer_pairs(store, ia[:n], ib[:n], threads=1))
            )
            best[f"l1 {v}"] = min(
                best[f"l1 {v}"], _time_call(lambda v=v: peaks[v].ds_bench_l1(l1_repeats[v], l1_na, l1_nb))
            )
            if mix_pairs[v] > 0:
                best[f"mix {v}"] = min(best[f"mix {v}"], _time_call(lambda v=v: peaks[v].ds_bench_mix(mix_iterations)))
    ghz = 8 * adds / best["clock"] / 1e9
    core = core_name()
    rows = []
    for v in variants:
        kernel = kernels[v]
        rate = counts[v] * points * points / best[v]  # point pairs per second (padding not counted)
        l1_rate = l1_repeats[v] * l1_na * l1_nb / best[f"l1 {v}"]
        limit = mix_limit(core, kernel.isa)
        row = {
            "variant": v,
            "isa": kernel.isa,
            "lanes": kernel.lanes,
            "query_block": kernel.query_block,
            "flags": " ".join(_chamfer_kernel.VARIANT_FLAGS[v]),
            "pairs_timed": counts[v],
            "ms_per_pair": 1e3 * best[v] / counts[v],
            "point_pairs_per_cycle": rate / (ghz * 1e9),
            "l1_point_pairs_per_cycle": l1_rate / (ghz * 1e9),
            "limit_point_pairs_per_cycle": limit[0] if limit else None,
            "limit_derivation": limit[1] if limit else "no limit stated for this core and body",
        }
        if mix_pairs[v] > 0:  # the mix alone, in registers: what this core really reaches with it
            row["mix_point_pairs_per_cycle"] = mix_iterations * mix_pairs[v] / best[f"mix {v}"] / (ghz * 1e9)
            row["percent_of_mix_peak"] = 100 * row["point_pairs_per_cycle"] / row["mix_point_pairs_per_cycle"]
        if limit:
            row["percent_of_limit"] = 100 * row["point_pairs_per_cycle"] / limit[0]
            row["l1_percent_of_limit"] = 100 * row["l1_point_pairs_per_cycle"] / limit[0]
            row["limit_ms_per_pair"] = 1e3 * points * points / (limit[0] * ghz * 1e9)
        rows.append(row)
    faiss_ms = 1e3 * best["faiss"] / len(faiss_list)
    for row in rows:
        row["faiss_blas_ms_per_pair_same_rounds"] = faiss_ms
        row["faiss_over_this"] = faiss_ms / row["ms_per_pair"]
    return {"core": core, "ghz": ghz, "points": points, "timer": "thread CPU time"}, rows


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    builder = surface_clouds if args.inputs == "surface" else random_clouds
    raw = builder(args.n, args.points, seed=args.seed)
    unit = normalize_unit_ball(raw)
    n_pairs = args.n * (args.n - 1) // 2
    kernel = _chamfer_kernel.load_kernel()  # compile (once per machine) outside the timings
    if kernel is None:
        print(f"compiled kernel unavailable ({_chamfer_kernel.unavailable_reason()}); (a) uses the torch backend")
    results: dict = {}

    # (a) this library, full matrix.
    ours, t_ours = timed(lambda: chamfer_matrix(raw, progress=args.progress), repeats=args.repeats)
    results["ours"] = {
        "backend": "compiled" if kernel else "torch",
        "pairs_timed": n_pairs,
        "seconds": t_ours,
    }
    sub = min(args.n, args.torch_clouds)
    ours_torch, t_torch = timed(lambda: chamfer_matrix(raw[:sub], backend="torch"))
    results["ours_torch_backend"] = {"pairs_timed": sub * (sub - 1) // 2, "seconds": t_torch}

    # (c) faiss on a subset of pairs, in upper-triangle order.
    iu = np.triu_indices(args.n, 1)
    pairs = list(zip(iu[0][: args.faiss_pairs].tolist(), iu[1][: args.faiss_pairs].tolist(), strict=True))
    for label, threshold in (("faiss_default", None), ("faiss_blas", 20)):
        import faiss as faiss_module

        saved = faiss_module.cvar.distance_compute_blas_threshold
        values, seconds = timed(lambda t=threshold: faiss_pairs(unit, pairs, blas_threshold=t), repeats=args.repeats)
        faiss_module.cvar.distance_compute_blas_threshold = saved
        results[label] = {
            "pairs_timed": len(pairs),
            "seconds": seconds,
            "blas_threshold": threshold or saved,
            "max_rel_diff_vs_ours": _rel_diff(values, ours[iu[0][: len(pairs)], iu[1][: len(pairs)]]),
        }

    # (d) the kernel's variants against the limit of their instruction mix.
    clock_info, variant_rows = ({}, [])
    if kernel is not None and args.variants:
        clock_info, variant_rows = kernel_variants(
            unit, variants=args.variants, pairs=min(n_pairs, args.variant_pairs), repeats=args.repeats_variants
        )

    # (b) the reference scheme on the first rows.
    unit_t = torch.from_numpy(unit)
    rows = range(min(args.ref_rows, args.n - 1))
    for style in args.ref_style:
        values, seconds = timed(lambda s=style: reference_rows(unit_t, rows, batch=args.ref_batch, style=s))
        count = values[1]
        results[f"reference_{style}"] = {
            "pairs_timed": count,
            "seconds": seconds,
            "rows_timed": len(rows),
            "batch": args.ref_batch,
            "max_rel_diff_vs_ours": _rel_diff(values[0], ours[np.triu_indices(args.n, 1)][:count]),
        }

    for entry in results.values():
        entry["ms_per_pair"] = 1e3 * entry["seconds"] / max(1, entry["pairs_timed"])
        entry["extrapolated_seconds_full_matrix"] = entry["ms_per_pair"] * n_pairs / 1e3
    faiss_best = min(("faiss_default", "faiss_blas"), key=lambda k: results[k]["ms_per_pair"])
    per_pair = results["ours"]["ms_per_pair"]
    ratios = {f"{name}_over_ours": entry["ms_per_pair"] / per_pair for name, entry in results.items() if name != "ours"}
    ratios["faiss_best_over_ours"] = results[faiss_best]["ms_per_pair"] / per_pair
    torch_diff = _rel_diff(ours_torch[np.triu_indices(sub, 1)], ours[:sub, :sub][np.triu_indices(sub, 1)])
    return {
        "benchmark": "chamfer_matrix",
        "settings": {
            "n": args.n,
            "points": args.points,
            "inputs": args.inputs,
            "seed": args.seed,
            "threads": args.threads,
            "repeats": args.repeats,
            "device": "cpu",
            "cpu": cpu_model(),
            "faiss": faiss.__version__,
            "extrapolation": "per pair, to all N(N-1)/2 pairs",
        },
        "provenance": provenance("cpu"),
        "results": results,
        "faiss_baseline": faiss_best,
        "ratios": ratios,
        "max_rel_diff_torch_backend_vs_compiled": torch_diff,
        "clock": clock_info,
        "kernel_variants": variant_rows,
    }


def _rel_diff(values: np.ndarray, reference: np.ndarray) -> float:
    values, reference = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    if values.size == 0:
        return 0.0
    return float(np.max(np.abs(values - reference) / np.maximum(np.abs(reference), 1e-30)))


def report(document: dict) -> str:
    s = document["settings"]
    lines = [
        f"Chamfer matrix, N = {s['n']} clouds x {s['points']} points ({s['inputs']}), CPU, "
        f"{s['threads']} thread(s), {s['cpu']}"
    ]
    for name, entry in document["results"].items():
        lines.append(
            f"  {name:22s} {entry['ms_per_pair']:9.3f} ms/pair  (timed {entry['pairs_timed']} pairs in "
            f"{entry['seconds']:.2f} s; full matrix {entry['extrapolated_seconds_full_matrix']:.1f} s)"
        )
    lines.append("  ratios (time per pair of X / ours; > 1 means ours is faster):")
    for name, value in document["ratios"].items():
        lines.append(f"    {name:36s} {value:8.2f}x")
    lines.append(
        f"  faiss baseline = {document['faiss_baseline']}; agreement (max rel. diff vs ours): "
        + ", ".join(
            f"{k} {v['max_rel_diff_vs_ours']:.1e}"
            for k, v in document["results"].items()
            if "max_rel_diff_vs_ours" in v
        )
        + f", torch backend {document['max_rel_diff_torch_backend_vs_compiled']:.1e}"
    )
    clock = document.get("clock") or {}
    if document.get("kernel_variants"):
        lines.append(
            f"  kernel variants, 1 thread, core {clock['core']} at {clock['ghz']:.2f} GHz (measured in this run), "
            f"{clock['points']}-point clouds, {clock['timer']}, interleaved rounds, fastest kept:"
        )
    for row in document.get("kernel_variants", []):
        limit = (
            f"{row['percent_of_limit']:5.1f} % of the limit {row['limit_point_pairs_per_cycle']:.0f} pairs/cycle "
            f"({row['limit_ms_per_pair']:.3f} ms/pair); in L1 {row['l1_percent_of_limit']:5.1f} %"
            + (
                f"; the mix alone in registers reaches {row['mix_point_pairs_per_cycle']:.2f} pairs/cycle"
                f" (this is {row['percent_of_mix_peak']:.0f} % of it)"
                if "mix_point_pairs_per_cycle" in row
                else ""
            )
            if row["limit_point_pairs_per_cycle"]
            else "no limit stated for this core"
        )
        lines.append(
            f"    {row['variant']:9s} {row['isa']:8s} {row['lanes']:2d} lanes x {row['query_block']:2d} points: "
            f"{row['ms_per_pair']:8.3f} ms/pair = {row['point_pairs_per_cycle']:.2f} pairs/cycle, {limit}; "
            f"faiss (BLAS path, same rounds: {row['faiss_blas_ms_per_pair_same_rounds']:.3f} ms/pair) / this "
            f"{row['faiss_over_this']:.2f}x"
        )
    lines.append(
        "  (reference and faiss are timed on a subset and extrapolated per pair; timings are noisy when"
        " other processes share the cores)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of clouds")
    parser.add_argument("--points", type=int, default=2500, help="points per cloud")
    parser.add_argument("--inputs", choices=("surface", "gaussian"), default="surface")
    parser.add_argument("--threads", type=int, default=1, help="threads for every implementation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="timings of (a) and (c): best of this many")
    parser.add_argument("--ref-rows", type=int, default=1, help="rows timed for the reference scheme")
    parser.add_argument(
        "--ref-batch",
        type=int,
        default=8,
        help="clouds j per dense batch (the original used 32 on a GPU; 8 bounds CPU memory)",
    )
    parser.add_argument("--ref-style", nargs="+", choices=("diff", "bmm"), default=["bmm", "diff"])
    parser.add_argument("--faiss-pairs", type=int, default=300, help="pairs timed for faiss")
    parser.add_argument("--torch-clouds", type=int, default=40, help="clouds for the torch-backend timing")
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=list(_chamfer_kernel.VARIANT_FLAGS),
        default=None,
        help="kernel variants for (d) (default: native, avx2 where the CPU has AVX-512, portable; none: skip)",
    )
    parser.add_argument("--variant-pairs", type=int, default=60, help="pairs timed per variant round")
    parser.add_argument("--repeats-variants", type=int, default=7, help="interleaved rounds for (d)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.variants is None:
        args.variants = default_variants()
    if args.n < 2 or args.points < 1 or args.threads < 1:
        parser.error("need --n >= 2, --points >= 1, --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    document = run(args)
    print(report(document))
    atomic_write_text(args.out, json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
