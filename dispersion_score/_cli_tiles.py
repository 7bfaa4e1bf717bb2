"""Command-line options of the tiled (out-of-core) matrix path, and ``dispersion-score estimate``.

``dispersion-score shapes DIR --out D.npy --tiles 1024 --launcher local --workers 8 --k 500`` computes the
Chamfer matrix in resumable tiles (:mod:`dispersion_score.tiles`) into ``D.npy`` and then the DS on the
memory map; ``--dry-run`` prints what it would cost instead. ``dispersion-score estimate --n 35021`` does
the same without a directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dispersion_score.launch import Launch, add_launch_arguments, launch_from_arguments, positive_float, positive_int

_TILE_OPTIONS = ("tiles", "launcher", "workers", "gpus")


def add_launch_options(parser: argparse.ArgumentParser) -> None:
    """``--tiles`` and the launch options (:func:`~dispersion_score.launch.add_launch_arguments`), all unset by
    default: the tiles then run in this process."""
    group = parser.add_argument_group("tiled matrix (large N: resumable tiles into the --out/--save-matrix .npy)")
    group.add_argument("--tiles", type=positive_int, default=None, help="clouds per tile side (default 1024)")
    add_launch_arguments(group, jobs="tile jobs")


def tiled_requested(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in _TILE_OPTIONS)


def launch_from_options(args: argparse.Namespace, *, check: bool = True) -> Launch | None:
    """The :class:`Launch` of the options, checked against this machine unless ``check`` is False (an
    estimate for a cluster); None (this process) when no launcher, worker count or GPU was given."""
    return launch_from_arguments(args, check=check, optional=True)


def matrix_output(args: argparse.Namespace) -> Path | None:
    """The matrix file: ``--save-matrix``, or ``--out`` when it names a .npy (``--out`` then no longer
    means the result document)."""
    if args.out is not None and args.out.suffix.lower() == ".npy":
        if args.save_matrix is not None:
            raise ValueError("--out D.npy already names the matrix file; drop --save-matrix (or use --out X.json)")
        args.save_matrix, args.out = args.out, None
    return args.save_matrix


def add_estimate_parser(commands: Any) -> None:
    estimate = commands.add_parser(
        "estimate", help="pairs, tiles, bytes and projected time of a tiled Chamfer matrix (calibrated here)"
    )
    estimate.add_argument("directory", type=Path, nargs="?", default=None, help="shape directory (N = its files)")
    estimate.add_argument("--n", type=positive_int, default=None, help="number of clouds (instead of a directory)")
    estimate.add_argument("--n-b", type=positive_int, default=None, help="clouds of a second set: a cross matrix")
    estimate.add_argument("--points", type=positive_int, default=2500, help="points per cloud (default 2500)")
    estimate.add_argument("--recursive", action="store_true", help="also count shapes in subdirectories")
    estimate.add_argument("--backend", choices=("auto", "compiled", "torch"), default="auto")
    estimate.add_argument("--device", default=None, help="device of the in-process path (no launcher)")
    estimate.add_argument("--seconds", type=positive_float, default=3.0, help="calibration time (default 3 s)")
    add_launch_options(estimate)


def print_estimate(
    n: int, args: argparse.Namespace, *, n_b: int | None = None, device: str | None = None, backend: str = "auto"
) -> None:
    from dispersion_score._tile_estimate import estimate_chamfer

    result = estimate_chamfer(
        n,
        n_b,
        points=args.points,
        tile_size=args.tiles,
        launch=launch_from_options(args, check=False),
        device=device,
        backend=backend,
        seconds=getattr(args, "seconds", 3.0),
    )
    print("\n".join(result.lines()))


def cmd_estimate(args: argparse.Namespace) -> int:
    from dispersion_score.shapes_io import list_shape_files

    if (args.directory is None) == (args.n is None):
        raise ValueError("give either a shape directory or --n (the number of clouds)")
    n = args.n if args.directory is None else len(list_shape_files(args.directory, recursive=args.recursive))
    print_estimate(n, args, n_b=args.n_b, device=args.device, backend=args.backend)
    return 0
