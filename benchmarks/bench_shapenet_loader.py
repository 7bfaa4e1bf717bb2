"""ShapeNet reader: DataLoader throughput against a hand-written loop, cache build time, worker memory.

Run from the repository root (builds the quick stand-in first if it is missing):

    .venv/bin/python -m benchmarks.bench_shapenet_loader [--root dataset/shapenet_data/standin] [--repeats 2]

(a) Items/s of ``DataLoader(ShapeNet(root, split="train", views=23, image_size=224), batch_size=32,
    num_workers=2)`` against the same DataLoader over a minimal hand-written dataset that reads the same PNGs
    (Pillow, RGB), centre-crops 127, resizes to 224 (the same bilinear antialiased filter) and takes the same
    2500 points from the same cache rows; timed alternately; ratio = reader / hand loop (target >= 0.8).
(b) Seconds per 1,000 shapes to build the normalised-cloud cache from 30,000-point ``.points.ply.npy``
    files (written fresh in a temporary folder, so they may still be in the page cache: an upper bound on
    speed for a cold disk).
(c) Peak memory of a DataLoader worker reading every item of a root with 250 and with 1,000 shapes (cheap
    fake roots: one shared PNG, random clouds): RssAnon (private memory) and VmRSS, for the reader (rows
    read with ``os.pread``) and for the same reader indexing the memory map instead.

Prints a table and writes ``benchmarks/results/bench_shapenet_loader.json`` (settings, provenance, numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dataset.locations import REPO_ROOT
from dataset.shapenet.cache import load_split_clouds
from dataset.shapenet.dataset import ShapeNet, category_ids, split_files
from dataset.shapenet.layout import r2n2_dir
from dataset.shapenet.standin.build import DEFAULT_ROOT, ensure_standin
from dispersion_score.io import atomic_write_text, provenance

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "bench_shapenet_loader.json"
CHAIR = "03001627"


# --------------------------------------------------------------------------------------------- (a) throughput


class HandLoop(Dataset):
    """The minimal loop: same PNGs, same crop/resize, same rows of the same cache, same point draws."""

    def __init__(self, reader: ShapeNet) -> None:
        self.paths = [str(p) for p in reader.image_paths()]
        self.rows = reader._item_rows.copy()
        self.cache = str(reader.clouds.path)
        self.num_points, self.seed = reader.num_points, reader.seed
        self.clouds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.clouds is None:
            self.clouds = np.load(self.cache, mmap_mode="r")
        with Image.open(self.paths[index]) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)[5:132, 5:132] / 255.0
        tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        image = torch.nn.functional.interpolate(tensor, size=(224, 224), mode="bilinear", antialias=True)[0]
        dense = self.clouds[self.rows[index]]
        choice = np.random.default_rng([self.seed, index]).integers(0, dense.shape[0], size=self.num_points)
        return {"image": image, "points": torch.from_numpy(np.asarray(dense[choice]))}


def _items_per_second(dataset: Dataset, workers: int, batch: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, shuffle=False)
    started = time.perf_counter()
    count = sum(len(b["points"]) for b in loader)
    return count / (time.perf_counter() - started)


def throughput(root: Path, cache: Path, *, views: int, repeats: int, workers: int, batch: int) -> dict[str, Any]:
    reader = ShapeNet(root, split="train", views=views, image_size=224, cache_dir=cache)
    hand = HandLoop(reader)
    torch.testing.assert_close(reader[7]["points"], hand[7]["points"], rtol=0, atol=0)  # same work
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_items_per_second(reader, workers, batch))
        theirs.append(_items_per_second(hand, workers, batch))
    return {
        "items": len(reader),
        "views": views,
        "workers": workers,
        "batch": batch,
        "reader_items_per_s": ours,
        "hand_items_per_s": theirs,
        "ratio": statistics.median(ours) / statistics.median(theirs),
    }


# --------------------------------------------------------------------------------------------- fake roots


def _fake_root(root: Path, shapes: int, *, seed: int = 0) -> None:
    """taxonomy.json, ``shapes`` chair clouds (30,000 raw points each) and one R2N2 view each (hard links
    to one PNG) with a 24-line metadata file."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / "taxonomy.json").write_text(json.dumps([{"synsetId": CHAIR, "name": "chair", "children": []}]))
    clouds = root / "ShapeNetV1PointCloud" / CHAIR
    clouds.mkdir(parents=True)
    png = root / "shared.png"
    picture = np.zeros((137, 137, 4), np.uint8)
    picture[30:100, 40:90] = (200, 120, 60, 255)
    Image.fromarray(picture).save(png)
    metadata = "".join(f"{rng.uniform(0, 360)!r} {rng.uniform(25, 30)!r} 0 0.8 25\n" for _ in range(24))
    for k in range(shapes):
        model_id = f"{k:08x}" + "0" * 24
        np.save(clouds / f"{model_id}.points.ply.npy", rng.normal(size=(30000, 3)).astype(np.float32) + k % 7)
        rendering = r2n2_dir(root, CHAIR, model_id)
        rendering.mkdir(parents=True)
        os.link(png, rendering / "01.png")
        (rendering / "rendering_metadata.txt").write_text(metadata)


def cache_build(work: Path, shapes: int) -> dict[str, Any]:
    root = work / f"cache_{shapes}"
    _fake_root(root, shapes)
    files = split_files(root, "train", [CHAIR]) + split_files(root, "test", [CHAIR])
    started = time.perf_counter()
    clouds = load_split_clouds(
        files, split="train", root=root, categories=[CHAIR], cache_dir=work / "cache", progress=False
    )
    seconds = time.perf_counter() - started
    assert len(clouds) == shapes
    return {"shapes": shapes, "seconds": seconds, "seconds_per_1000_shapes": seconds * 1000 / shapes}


# --------------------------------------------------------------------------------------------- (c) memory


def _status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) // 1024  # MiB
    return values


class _MemmapReader(ShapeNet):
    """The reader with rows taken from the memory map (the alternative the benchmark compares)."""

    def _dense_row(self, row: int) -> np.ndarray:
        return self.dense_points()[row]


class _Probe(Dataset):
    """Items of a dataset plus the worker's memory after reading them."""

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.inner[index]
        return {"points": item["points"], **{k: torch.tensor(v) for k, v in _status().items()}}


def worker_memory(work: Path, sizes: list[int], workers: int) -> list[dict[str, Any]]:
    rows = []
    for shapes in sizes:
        root = work / f"rss_{shapes}"
        _fake_root(root, shapes, seed=shapes)
        for kind, cls in (("pread", ShapeNet), ("memmap", _MemmapReader)):
            reader = cls(root, split="train", categories=[CHAIR], image_size=224, cache_dir=work / "cache")
            loader = DataLoader(_Probe(reader), batch_size=16, num_workers=workers)
            peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
            for batch in loader:
                for key in peak:
                    peak[key] = max(peak[key], int(batch[key].max()))
            row = {"shapes": shapes, "items": len(reader), "rows_read_with": kind}
            rows.append(row | {f"peak_{k}_MiB": v for k, v in peak.items()})
    return rows


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="stand-in (or real) data root")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--views", type=int, default=23, help="R2N2 training views per shape in (a)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-shapes", type=int, default=1000, help="shapes of the cache-build test (b)")
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.root == DEFAULT_ROOT:
        ensure_standin(args.root)
    category_ids(args.root)  # a clear error now if the root is not a ShapeNet root
    with tempfile.TemporaryDirectory(prefix="bench_shapenet_") as tmp:
        work = Path(tmp)
        a = throughput(
            args.root, work / "cache", views=args.views, repeats=args.repeats, workers=args.workers, batch=32
        )
        ours, theirs = statistics.median(a["reader_items_per_s"]), statistics.median(a["hand_items_per_s"])
        print(
            f"(a) {a['items']} items, 224², {a['workers']} workers: reader {ours:.0f} items/s, "
            f"hand loop {theirs:.0f} items/s, ratio {a['ratio']:.2f} (target >= 0.8)"
        )
        b = cache_build(work, args.cache_shapes)
        print(
            f"(b) cache build: {b['seconds']:.1f} s for {b['shapes']} shapes "
            f"({b['seconds_per_1000_shapes']:.1f} s / 1000)"
        )
        c = worker_memory(work, args.rss_sizes, args.workers)
        print("(c) worker peak memory (MiB):")
        for row in c:
            print(
                f"    {row['shapes']:>5} shapes, rows via {row['rows_read_with']:<6}: "
                f"RssAnon {row['peak_RssAnon_MiB']:>4}, RssFile {row['peak_RssFile_MiB']:>4}, "
                f"VmRSS {row['peak_VmRSS_MiB']:>4}"
            )
        shutil.rmtree(work / "cache", ignore_errors=True)
    document = {
        "benchmark": "bench_shapenet_loader",
        "settings": vars(args) | {"root": str(args.root), "out": str(args.out)},
        "provenance": provenance(),
        "throughput": a,
        "cache_build": b,
        "worker_memory": c,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
