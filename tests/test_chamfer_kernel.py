"""The compiled Chamfer kernel: every instruction-set variant gives bit-identical results, equal to an
exact (rational-arithmetic) model of its float32 arithmetic, and compiles without warnings."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dispersion_score import _chamfer_kernel, _native

COMPILER = _native.find_compiler()
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler")

# Variants this CPU can run; "portable" (-march=native -DDS_PORTABLE) and "baseline" (the compiler's
# default target, software fma where the target has none) run the portable body.
VARIANTS = [v for v, flag in _chamfer_kernel.VARIANT_CPU_FLAG.items() if _native.cpu_has(flag)]


@pytest.fixture(scope="module")
def kernels() -> dict[str, _chamfer_kernel.ChamferKernel]:
    return {variant: _chamfer_kernel.load_variant(variant) for variant in VARIANTS}


def _clouds(rng: np.random.Generator, sizes: list[int], offset: float = 0.0) -> list[np.ndarray]:
    return [(rng.standard_normal((n, 3)) * rng.uniform(0.1, 2.0) + offset).astype(np.float32) for n in sizes]


# Sizes around every lane count and query block (4, 8, 16), and larger ragged ones.
SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 257, 1000]


def _all_pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    ia, ib = np.meshgrid(np.arange(count), np.arange(count), indexing="ij")
    return ia.ravel(), ib.ravel()


def test_each_variant_holds_the_body_its_flags_select(kernels):
    expected = {"avx512": "avx512", "avx2": "avx2", "portable": "portable"}
    for variant, kernel in kernels.items():
        if variant in expected:
            assert kernel.isa == expected[variant], variant
        assert kernel.lanes in (4, 8, 16) and _chamfer_kernel.PAD % kernel.query_block == 0
    native = kernels["native"].isa
    if _native.cpu_has("avx512f"):
        assert native == "avx512"
    elif _native.cpu_has("avx2") and _native.cpu_has("fma"):
        assert native == "avx2"


@pytest.mark.parametrize("offset", [0.0, 1000.0, -1.0e5])
def test_variants_give_identical_chamfer_values(kernels, offset):
    rng = np.random.default_rng(7)
    clouds = _clouds(rng, SIZES, offset)
    store = _chamfer_kernel.pack_store(clouds)
    ia, ib = _all_pairs(len(clouds))
    results = {v: k.chamfer_pairs(store, ia, ib, threads=2) for v, k in kernels.items()}
    reference = results["portable"]
    for variant, values in results.items():
        assert values.tobytes() == reference.tobytes(), f"{variant} differs from portable"
    # and they are right: float64 brute force, to float32 rounding of the distances
    for p in range(0, len(ia), 7):
        a, b = clouds[ia[p]].astype(np.float64), clouds[ib[p]].astype(np.float64)
        d = ((a[:, None] - b[None]) ** 2).sum(-1)
        assert np.isclose(reference[p], d.min(1).mean() + d.min(0).mean(), rtol=1e-5, atol=0)


def test_variants_give_identical_nearest_indices_with_ties(kernels):
    rng = np.random.default_rng(3)
    clouds = []
    for n in (5, 17, 33, 64, 130):
        base = rng.integers(-3, 4, size=(n, 3)).astype(np.float32) * 0.5  # a grid: many equal distances
        clouds += [base, base[rng.permutation(n)] + np.float32(0.25)]
    store = _chamfer_kernel.pack_store(clouds)
    ia = np.arange(0, len(clouds), 2)
    for index in range(len(ia)):
        pair = ia[index : index + 1]
        results = {v: k.nearest_pairs(store, pair, pair + 1, threads=1) for v, k in kernels.items()}
        ab, ba = results["portable"]
        for variant, (got_ab, got_ba) in results.items():
            assert np.array_equal(got_ab, ab) and np.array_equal(got_ba, ba), variant
        a, b = clouds[pair[0]].astype(np.float64), clouds[pair[0] + 1].astype(np.float64)
        d = ((a[:, None] - b[None]) ** 2).sum(-1)
        assert np.array_equal(ab[0], d.argmin(1)) and np.array_equal(ba[0], d.argmin(0))  # smallest index


def _round_f32(value: Fraction) -> Fraction:
    """``value`` rounded to the nearest float32 (ties to even), exactly: no double rounding."""
    if value == 0:
        return Fraction(0)
    near = np.float32(float(value))  # within one float32 step of the answer
    candidates = {Fraction(float(c)) for c in (np.nextafter(near, -np.inf), near, np.nextafter(near, np.inf))}
    return min(candidates, key=lambda c: (abs(c - value), int(np.float32(float(c)).view(np.int32)) & 1))


def _exact_model_chamfer(a: np.ndarray, b: np.ndarray) -> np.float32:
    """The kernel's arithmetic, each operation rounded to float32 exactly once: d = fma(dz, dz, fma(dy,
    dy, dx*dx)), dx = b - a; minima summed in point order in float64, the result rounded to float32."""
    fa = [[Fraction(float(v)) for v in p] for p in a]
    fb = [[Fraction(float(v)) for v in q] for q in b]
    d = []
    for p in fa:
        row = []
        for q in fb:
            dx, dy, dz = (_round_f32(q[c] - p[c]) for c in range(3))
            row.append(_round_f32(dz * dz + _round_f32(dy * dy + _round_f32(dx * dx))))
        d.append(row)
    row_sum = 0.0
    for row in d:
        row_sum += float(min(row))
    col_sum = 0.0
    for j in range(len(fb)):
        col_sum += float(min(row[j] for row in d))
    return np.float32(row_sum / len(fa) + col_sum / len(fb))


def test_native_kernel_equals_an_exact_model_of_its_arithmetic(kernels):
    rng = np.random.default_rng(11)
    clouds = _clouds(rng, [3, 9, 18], offset=0.0) + _clouds(rng, [5, 11], offset=300.0)
    store = _chamfer_kernel.pack_store(clouds)
    ia, ib = np.array([0, 1, 2, 1, 3]), np.array([1, 2, 0, 1, 4])
    got = kernels["native"].chamfer_pairs(store, ia, ib, threads=1)
    expected = [_exact_model_chamfer(clouds[i], clouds[j]) for i, j in zip(ia, ib, strict=True)]
    assert got.tobytes() == np.array(expected, dtype=np.float32).tobytes()


def test_cache_key_changes_with_the_flags_and_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPERSION_SCORE_CACHE", str(tmp_path))
    source = _chamfer_kernel.SOURCE.read_text(encoding="utf-8")
    first = _native.build_library(source, (), stem="k")
    assert _native.build_library(source, (), stem="k") == first  # cached
    assert _native.build_library(source, ("-DDS_PORTABLE",), stem="k") != first
    assert _native.build_library(source + "\n// changed\n", (), stem="k") != first
    monkeypatch.setattr(_native, "machine_tag", lambda: "another CPU")
    assert _native.build_library(source, (), stem="k") != first


CROSS = {"compiler": shutil.which("aarch64-linux-gnu-g++"), "emulator": shutil.which("qemu-aarch64-static")}


@pytest.mark.skipif(None in CROSS.values(), reason="needs aarch64-linux-gnu-g++ and qemu-aarch64-static")
@pytest.mark.parametrize(("flags", "isa"), [((), "neon"), (("-DDS_PORTABLE",), "portable")])
def test_aarch64_builds_give_identical_results(kernels, tmp_path, flags, isa):
    """The kernel built for AArch64 (the NEON body, and the portable one) and run under qemu-user gives
    the same bits as this machine's native build."""
    rng = np.random.default_rng(5)
    clouds = _clouds(rng, [1, 7, 16, 33, 100], offset=0.0) + _clouds(rng, [9, 250], offset=-500.0)
    clouds += [c.copy() for c in _clouds(rng, [40, 40, 40, 40], offset=2.0)]
    store = _chamfer_kernel.pack_store(clouds)
    ia, ib = _all_pairs(len(clouds))
    na, nb = np.array([7, 8]), np.array([9, 10])  # the 40-point clouds
    for name, array in {
        "store.f32": store.data,
        "offset.i64": store.offset,
        "padded.i64": store.padded,
        "size.i64": store.size,
        "ia.i64": ia.astype(np.int64),
        "ib.i64": ib.astype(np.int64),
        "na.i64": na.astype(np.int64),
        "nb.i64": nb.astype(np.int64),
    }.items():
        array.tofile(tmp_path / name)
    program = tmp_path / "driver"
    driver = Path(__file__).resolve().parent / "csrc" / "kernel_driver.cpp"
    build = [CROSS["compiler"], *_native.COMMON_FLAGS[:3], *flags, "-static", "-Wall", "-Wextra"]
    build += ["-I", str(_chamfer_kernel.SOURCE.parent), str(driver), "-o", str(program)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    run = subprocess.run([CROSS["emulator"], str(program), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == isa, (run.returncode, run.stdout, run.stderr)
    native = kernels["native"]
    expected = native.chamfer_pairs(store, ia, ib, threads=1)
    assert np.fromfile(tmp_path / "chamfer.f32", dtype=np.float32).tobytes() == expected.tobytes()
    idx_ab, idx_ba = native.nearest_pairs(store, na, nb, threads=1)
    assert np.array_equal(np.fromfile(tmp_path / "idx_ab.i64", dtype=np.int64), idx_ab.ravel())
    assert np.array_equal(np.fromfile(tmp_path / "idx_ba.i64", dtype=np.int64), idx_ba.ravel())


@pytest.mark.skipif(shutil.which("clang++") is None or COMPILER is None, reason="needs clang++")
@pytest.mark.parametrize("variant", [v for v in ("native", "avx2", "portable") if v in VARIANTS])
def test_clang_builds_give_identical_results(kernels, variant, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "clang++")
    monkeypatch.setenv("DISPERSION_SCORE_CACHE", str(tmp_path))
    clang = _chamfer_kernel.load_variant(variant)
    assert clang.path.parent == tmp_path
    rng = np.random.default_rng(9)
    clouds = _clouds(rng, SIZES[::2], offset=10.0)
    store = _chamfer_kernel.pack_store(clouds)
    ia, ib = _all_pairs(len(clouds))
    expected = kernels[variant].chamfer_pairs(store, ia, ib, threads=1)
    assert clang.chamfer_pairs(store, ia, ib, threads=2).tobytes() == expected.tobytes()


def test_benchmark_variant_section_runs_and_reports_consistent_rates():
    pytest.importorskip("faiss")
    from benchmarks import bench_chamfer

    clouds = _clouds(np.random.default_rng(1), [64] * 4)
    clock, rows = bench_chamfer.kernel_variants(np.stack(clouds), variants=["native", "portable"], pairs=6, repeats=1)
    assert 0.1 < clock["ghz"] < 10 and clock["points"] == 64
    assert [row["isa"] for row in rows][1] == "portable"
    for row in rows:
        assert row["ms_per_pair"] > 0 and row["point_pairs_per_cycle"] > 0 and row["faiss_over_this"] > 0
        seconds_per_pair = row["ms_per_pair"] / 1e3
        assert np.isclose(row["point_pairs_per_cycle"], 64 * 64 / seconds_per_pair / (clock["ghz"] * 1e9))
        if row["limit_point_pairs_per_cycle"]:
            assert np.isclose(
                row["percent_of_limit"], 100 * row["point_pairs_per_cycle"] / row["limit_point_pairs_per_cycle"]
            )
