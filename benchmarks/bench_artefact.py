"""What verifying a finished artefact costs (dispersion_score.artefact): the streamed CRC-32 of
:func:`~dispersion_score.artefact.record_file` against a SHA-256 of the same file and against plainly reading
it, on one file, in one run, repeated.

    .venv/bin/python -m benchmarks.bench_artefact              # a 1 GiB float32 .npy in the system temp folder
    .venv/bin/python -m benchmarks.bench_artefact --mib 256

Prints GB/s of each and the ratios record / read and record / SHA-256 (medians over the repeats). The file is
read from the page cache after the first pass, so the numbers are the checksum's cost, not the disk's.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dispersion_score.artefact import mismatch, record_file

_BLOCK = 8 << 20


def _read(path: Path) -> None:
    with open(path, "rb") as handle:
        while handle.read(_BLOCK):
            pass


def _sha256(path: Path) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)


def _median_seconds(function: Callable[[Path], object], path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the test matrix in MiB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    side = int((args.mib * 2**20 / 4) ** 0.5)
    with tempfile.TemporaryDirectory(prefix="bench-artefact-") as folder:
        path = Path(folder) / "D.npy"
        matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(side, side))
        matrix[:] = np.random.default_rng(0).random((side, side), dtype=np.float32)
        matrix.flush()
        del matrix
        _read(path)  # into the page cache
        gigabytes = path.stat().st_size / 1e9
        record = record_file(path)
        seconds = {
            "read": _median_seconds(_read, path, args.repeats),
            "sha256": _median_seconds(_sha256, path, args.repeats),
            "record (CRC-32)": _median_seconds(record_file, path, args.repeats),
            "verify (CRC-32)": _median_seconds(lambda p: mismatch(p, record), path, args.repeats),
        }
    print(f"{side} x {side} float32 matrix, {gigabytes:.2f} GB, median of {args.repeats}")
    for name, value in seconds.items():
        print(f"  {name:16} {value:7.3f} s  {gigabytes / value:6.2f} GB/s")
    print(f"ratio verify / read    {seconds['verify (CRC-32)'] / seconds['read']:.2f}")
    print(f"ratio verify / sha256  {seconds['verify (CRC-32)'] / seconds['sha256']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
