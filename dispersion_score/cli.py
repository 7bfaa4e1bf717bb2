"""Command line: ``dispersion-score {matrix,images,shapes,elbow,estimate,diagnose} ...`` (console script
``dispersion-score``).

Every subcommand prints a human-readable summary, or with ``--json`` the result document of
:func:`dispersion_score.io.result_document` (result, settings, provenance) on stdout; ``--out FILE.json``
also saves it. Progress bars go to stderr when it is a terminal. Bad input (a ValueError from the
library, a missing file, a bad k spec) prints one line on stderr and exits with status 2. Directory scans
say what they skipped (in the summary, and under ``settings.skipped``), and an output that the next scan
of the same directory would read back as an input is refused. k-medoids runs with one CPU thread
(``threads=1``: measured several times faster than two, see docs/library.md); the Chamfer kernel and
VGG16 use torch's thread count.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from dispersion_score._cli_tiles import (
    add_estimate_parser,
    add_launch_options,
    cmd_estimate,
    launch_from_options,
    matrix_output,
    print_estimate,
    tiled_requested,
)
from dispersion_score._validation import resolve_device
from dispersion_score.frames import FRAMES
from dispersion_score.images import IMAGE_SUFFIXES
from dispersion_score.io import FileScan, read_npy, scan_files
from dispersion_score.launch import non_negative_int, positive_int
from dispersion_score.locks import DirectoryLockedError

EXIT_BAD_INPUT = 2
# k-medoids is a long chain of small operations: one thread is fastest (docs/library.md).
KMEDOIDS_THREADS = 1
# parse_k_spec lists its values; a longer range can only be a typo (k <= N, and N items fit in memory).
_MAX_LISTED_KS = 10**7


class _UsageError(ValueError):
    """A command-line value that argparse could not check on its own."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block: scripts and logs read the last line.
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def k_values(spec: str) -> range | list[int]:
    """``"2:100:2"`` → range(2, 101, 2) (START:STOP[:STEP], STOP included; lazy, so an absurd STOP costs
    nothing before it is checked against N); ``"2,5,10"`` → [2, 5, 10]; ``"7"`` → [7]."""
    try:
        if ":" in spec:
            parts = [int(p) for p in spec.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
            if step < 1 or stop < start:
                raise ValueError
            ks: range | list[int] = range(start, stop + 1, step)
        else:
            ks = [int(p) for p in spec.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad k spec {spec!r}; expected START:STOP[:STEP] (STOP included, STEP >= 1), a comma list or one int"
        ) from None
    if not ks or min(ks[0], ks[-1]) < 1:  # ks[0], ks[-1]: a range's extremes without iterating it
        raise argparse.ArgumentTypeError(f"bad k spec {spec!r}; every k must be >= 1")
    return ks


def parse_k_spec(spec: str) -> list[int]:
    """:func:`k_values` as a list (refused beyond 10⁷ values instead of filling memory)."""
    ks = k_values(spec)
    if len(ks) > _MAX_LISTED_KS:
        raise argparse.ArgumentTypeError(f"k spec {spec!r} has {len(ks)} values; k can be at most N, the items")
    return list(ks)


def _fraction(text: str) -> float:
    """--subsample: a fraction in (0, 1]; "1" means the whole set (a count is --subsample-size)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        hint = f" (for a count of items use --subsample-size {text})" if text.isdigit() else ""
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}{hint}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        choices=("pam", "alternate"),
        default="pam",
        help="k-medoids method: pam (swap-refined, default) or alternate (the paper's)",
    )
    parser.add_argument("--device", default=None, help="cpu (default), cuda, cuda:0, ... (the library's device rule)")
    parser.add_argument("--json", action="store_true", help="print the result document as JSON on stdout")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also save the result document to this .json file (shapes: a .npy name is the distance matrix "
        "file instead, as --save-matrix)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_ds_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=positive_int, required=True, help="number of medoids")
    parser.add_argument(
        "--seeds",
        type=non_negative_int,
        nargs="+",
        default=[0],
        help="k-medoids seeds; several give mean and std (default: 0)",
    )
    _add_subsample(parser, "compute DS on a random subset")
    _add_common(parser)


def _add_subsample(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--subsample",
        type=_fraction,
        default=None,
        help=f"{what}: a fraction of the items in (0, 1], e.g. 0.1 (1 = all of them)",
    )
    group.add_argument(
        "--subsample-size", type=positive_int, default=None, metavar="COUNT", help=f"{what}: this many items, e.g. 5000"
    )


def _add_format_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--npz-key",
        default=None,
        metavar="NAME",
        help="the array to read from .npz files (default: an archive's only array)",
    )
    parser.add_argument(
        "--voxel-threshold",
        type=_threshold,
        default=0.5,
        metavar="T",
        help="occupancy grids: a cell is occupied when its value is >= T (default 0.5)",
    )


def _threshold(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dispersion-score",
        description="Dispersion score (Zhou et al., 3DV 2021): mean distance of items to their k-medoids.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    matrix = commands.add_parser("matrix", help="DS of a precomputed (N, N) distance matrix (.npy)")
    matrix.add_argument("matrix", type=Path, help="(N, N) distance matrix, .npy")
    _add_ds_options(matrix)

    images = commands.add_parser("images", help="DS of a directory of images (VGG16 relu3_3 perceptual distance)")
    images.add_argument("directory", type=Path, help="directory of .png/.jpg images (sorted by path)")
    images.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (torch hub cache), a VGG16 state-dict file, or random (tests only)",
    )
    images.add_argument(
        "--pool",
        choices=("channel_max", "none"),
        default="channel_max",
        help="channel_max: 3136-d (paper); none: the 802,816-d relu3_3 map",
    )
    images.add_argument(
        "--features", choices=("vgg16", "pixels"), default="vgg16", help="vgg16 (perceptual, default) or raw pixels"
    )
    images.add_argument(
        "--image-size", type=positive_int, default=224, help="side of the raw-pixel features (VGG16 always uses 224)"
    )
    images.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    images.add_argument("--recursive", action="store_true", help="also read images in subdirectories")
    images.add_argument("--save-matrix", type=Path, default=None, help="write the distance matrix (.npy)")
    images.add_argument("--save-features", type=Path, default=None, help="write the (N, d) features (.npy)")
    _add_ds_options(images)

    shapes = commands.add_parser("shapes", help="DS of a directory of shapes (Chamfer distance)")
    shapes.add_argument("directory", type=Path, help="directory of shape files (sorted by path; docs/formats.md)")
    shapes.add_argument("--points", type=positive_int, default=2500, help="points per shape (default 2500)")
    shapes.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the point sampling (k-medoids seeds: --seeds)"
    )
    shapes.add_argument("--no-normalize", action="store_true", help="skip the unit-ball normalisation")
    _add_format_options(shapes)
    shapes.add_argument("--recursive", action="store_true", help="also read shapes in subdirectories")
    shapes.add_argument("--save-matrix", type=Path, default=None, help="write the Chamfer matrix (.npy)")
    shapes.add_argument(
        "--dry-run",
        action="store_true",
        help="print pairs, tiles, matrix bytes and a calibrated time estimate; compute nothing",
    )
    _add_ds_options(shapes)
    add_launch_options(shapes)

    elbow = commands.add_parser("elbow", help="DS for a range of k (DS-vs-k curve) on a distance matrix")
    elbow.add_argument("matrix", type=Path, help="(N, N) distance matrix, .npy")
    elbow.add_argument(
        "--k", type=k_values, required=True, help="START:STOP[:STEP] (STOP included), e.g. 2:100:2, or a comma list"
    )
    elbow.add_argument("--seed", type=non_negative_int, default=0, help="k-medoids seed")
    _add_subsample(elbow, "compute the curve on one random subset")
    elbow.add_argument("--plot", type=Path, default=None, help="write the DS-vs-k plot (.png, .pdf, .svg)")
    _add_common(elbow)
    add_estimate_parser(commands)
    _add_diagnose(commands)
    return parser


# --- helpers --------------------------------------------------------------------------------------------


def _device(name: str | None) -> str:
    try:
        return str(resolve_device(name))
    except ValueError as exc:
        raise _UsageError(f"--device: {exc}") from None


def _load_matrix(path: Path) -> np.ndarray:
    return read_npy(path, what="matrix")


def _subsample_value(args: argparse.Namespace) -> float | int | None:
    """The library's subsample: a float fraction or an int count (--subsample / --subsample-size)."""
    return args.subsample_size if args.subsample_size is not None else args.subsample


def _scan(args: argparse.Namespace, suffixes: tuple[str, ...], what: str, outputs: Sequence[Path | None]) -> FileScan:
    """Scan the input directory (what it skipped goes into the summary and the settings), and refuse
    outputs that the next scan of the same directory would read as inputs."""
    scan = scan_files(args.directory, suffixes, what=what, recursive=args.recursive)
    _refuse_outputs_inside([args.directory], suffixes, what, outputs, recursive=args.recursive)
    return scan


def _refuse_outputs_inside(
    directories: Sequence[Path | None],
    suffixes: tuple[str, ...],
    what: str,
    outputs: Sequence[Path | None],
    *,
    recursive: bool,
) -> None:
    """Refuses an output that the next scan of one of the input ``directories`` would read as one of its
    ``suffixes`` files (every command that scans a folder calls this before any work)."""
    for directory in (d.resolve() for d in directories if d is not None):
        for output in outputs:
            if output is None or output.suffix.lower() not in suffixes:
                continue
            parent = output.resolve().parent
            if parent == directory or (recursive and directory in parent.parents):
                raise _UsageError(
                    f"output {output} is inside the input directory {directory} and would be read as one of the "
                    f"{what} next time; write it elsewhere"
                )


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _ds_settings(args: argparse.Namespace, device: str, n: int) -> dict[str, Any]:
    return {
        "command": args.command,
        "k": args.k,
        "method": args.method,
        "seeds": list(args.seeds),
        "subsample": _subsample_value(args),
        "device": device,
        "n_items": n,
    }


def _compute_ds(D: Any, args: argparse.Namespace, device: str) -> Any:
    from dispersion_score.score import dispersion_score, dispersion_scores

    if len(set(args.seeds)) != len(args.seeds):  # a repeated seed would shrink the reported std
        raise _UsageError(f"--seeds {' '.join(map(str, args.seeds))}: a seed is repeated; give distinct seeds")
    options = {
        "method": args.method,
        "device": device,
        "subsample": _subsample_value(args),
        "threads": KMEDOIDS_THREADS,
    }
    if len(args.seeds) == 1:
        return dispersion_score(D, args.k, seed=args.seeds[0], **options)
    return dispersion_scores(D, args.k, seeds=tuple(args.seeds), **options)


def _format_ds(result: Any, settings: dict[str, Any]) -> list[str]:
    head = f"k={settings['k']}, method={settings['method']}, N={settings['n_items']}"
    if settings.get("subsample") is not None:
        head += f", subsample={settings['subsample']}"
    if len(settings["seeds"]) == 1:
        return [f"dispersion score DS = {result.ds:.6g}  (inertia {result.inertia:.6g}; {head}, seed {result.seed})"]
    lines = [
        f"dispersion score DS = {result.mean:.6g} ± {result.std:.6g}  (mean ± sample std over "
        f"{len(result.results)} seeds; {head})"
    ]
    lines += [f"  seed {r.seed}: DS = {r.ds:.6g}  inertia {r.inertia:.6g}" for r in result.results]
    return lines


def _medoid_line(result: Any, files: Sequence[str]) -> list[str]:
    if not hasattr(result, "medoids"):  # several seeds: medoids differ per seed, see --json
        return []
    names = [files[int(m)] for m in result.medoids]
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    return [f"medoids: {shown}"]


def _emit(
    args: argparse.Namespace, result: Any, settings: dict[str, Any], lines: list[str], matrix_file: Path | None = None
) -> None:
    from dispersion_score.io import dumps, result_document, save_result

    if args.out is not None:
        save_result(args.out, result, matrix_path=matrix_file, settings=settings)
    if args.json:
        document = result_document(
            result,
            settings=settings,
            device=settings.get("device"),
            matrix_file=os.fspath(matrix_file) if matrix_file else None,
        )
        sys.stdout.write(dumps(document))
    else:
        print("\n".join(lines))
        if args.out is not None:
            print(f"saved {args.out}")


# --- subcommands ----------------------------------------------------------------------------------------


def _cmd_matrix(args: argparse.Namespace) -> int:
    device = _device(args.device)
    D = _load_matrix(args.matrix)
    settings = _ds_settings(args, device, int(D.shape[0]))
    settings["matrix"] = os.fspath(args.matrix)
    result = _compute_ds(D, args, device)
    _emit(args, result, settings, _format_ds(result, settings), matrix_file=args.matrix)
    return 0


def _cmd_images(args: argparse.Namespace) -> int:
    from dispersion_score.features import feature_matrix
    from dispersion_score.io import atomic_save_npy
    from dispersion_score.perceptual import feature_label, perceptual_features, pixel_features

    device = _device(args.device)
    scan = _scan(args, IMAGE_SUFFIXES, "images", [args.save_matrix, args.save_features, args.out])
    files = scan.files
    if args.features == "pixels":
        label = f"rgb_pixels_{args.image_size}"
        features = pixel_features(files, size=args.image_size)
    else:
        label = feature_label(args.weights, args.pool)
        features = perceptual_features(
            files,
            weights=args.weights,
            pool=args.pool,
            device=device,
            batch_size=args.batch_size,
            progress=_progress(args),
        )
    if args.save_features is not None:
        atomic_save_npy(args.save_features, features)
    D = feature_matrix(features, device=device, progress=_progress(args))
    if args.save_matrix is not None:
        atomic_save_npy(args.save_matrix, D)
    settings = _ds_settings(args, device, len(files))
    vgg = args.features == "vgg16"
    settings.update(
        {
            "directory": os.fspath(args.directory),
            "features": label,
            "weights": os.fspath(args.weights) if vgg else None,
            "weights_seed": 0 if vgg and args.weights == "random" else None,
            "pool": args.pool if vgg else None,
            "image_size": 224 if vgg else args.image_size,
            "distance": "squared_euclidean_over_dim",
            "files": [p.relative_to(args.directory).as_posix() for p in files],
            "skipped": scan.skipped,
        }
    )
    result = _compute_ds(D, args, device)
    lines = [f"{len(files)} images from {args.directory}, features {label}"] + scan.skipped_summary()
    lines += _format_ds(result, settings)
    lines += _medoid_line(result, settings["files"])
    if "random-weights" in label:
        lines.append("note: random VGG16 weights (for tests); the paper's DS needs --weights imagenet")
    _emit(args, result, settings, lines, matrix_file=args.save_matrix)
    return 0


def _cmd_shapes(args: argparse.Namespace) -> int:
    from dispersion_score.chamfer import chamfer_matrix
    from dispersion_score.io import atomic_save_npy
    from dispersion_score.shapes_io import SHAPE_SUFFIXES, conversion_rules, load_shapes

    device = _device(args.device)
    scan = _scan(args, SHAPE_SUFFIXES, "shape files", [args.save_matrix, args.out])
    files = scan.files
    matrix_file = matrix_output(args)
    if args.dry_run:
        print_estimate(len(files), args, device=device)
        return 0
    tiles: dict[str, Any] = {}
    if tiled_requested(args):  # out of core: resumable tiles written into the .npy, DS on the memory map
        if matrix_file is None:
            raise _UsageError("--tiles/--launcher/--workers/--gpus write the matrix to a file: add --out D.npy")
        tiles = {"out": matrix_file, "launch": launch_from_options(args), "tile_size": args.tiles}
    clouds = load_shapes(files, num_points=args.points, seed=args.seed, npz_key=args.npz_key,
                         voxel_threshold=args.voxel_threshold, progress=_progress(args))  # fmt: skip
    try:
        D = chamfer_matrix(clouds, device=device, normalize=not args.no_normalize, progress=_progress(args), **tiles)
    except DirectoryLockedError:
        raise  # another process computes this matrix: bad input (exit 2), not a failed job
    except RuntimeError as exc:  # failed tile jobs: the message names their logs; a rerun resumes
        print(f"dispersion-score shapes: {exc}", file=sys.stderr)
        return 1
    if args.save_matrix is not None and not tiles:
        atomic_save_npy(args.save_matrix, D)
    settings = _ds_settings(args, device, len(files))
    settings.update(
        {
            "directory": os.fspath(args.directory),
            "points": args.points,
            "sample_seed": args.seed,
            "normalize": not args.no_normalize,
            "distance": "chamfer_squared_mean_sum" + ("_unit_ball" if not args.no_normalize else ""),
            "files": [p.relative_to(args.directory).as_posix() for p in files],
            "skipped": scan.skipped,
            "conversion": conversion_rules(files, npz_key=args.npz_key, voxel_threshold=args.voxel_threshold),
        }
    )
    result = _compute_ds(D, args, device)
    lines = [f"{len(files)} shapes from {args.directory}, {args.points} points each"] + scan.skipped_summary()
    lines += _format_ds(result, settings)
    lines += _medoid_line(result, settings["files"])
    _emit(args, result, settings, lines, matrix_file=args.save_matrix)
    return 0


def _cmd_elbow(args: argparse.Namespace) -> int:
    from dispersion_score.score import elbow

    device = _device(args.device)
    if args.plot is not None:
        _check_plot_format(args.plot)
    D = _load_matrix(args.matrix)
    curve = elbow(
        D,
        args.k,
        method=args.method,
        seed=args.seed,
        device=device,
        subsample=_subsample_value(args),
        threads=KMEDOIDS_THREADS,
    )
    ks, ds = [int(k) for k in curve.ks], [float(v) for v in curve.ds]
    settings = {
        "command": "elbow",
        "matrix": os.fspath(args.matrix),
        "ks": ks,
        "method": args.method,
        "seed": args.seed,
        "subsample": _subsample_value(args),
        "device": device,
        "n_items": int(D.shape[0]),
    }
    if args.plot is not None:
        _plot_elbow(args.plot, ks, ds, title=f"{args.matrix.name}: DS vs k ({args.method}, seed {args.seed})")
        settings["plot"] = os.fspath(args.plot)
    lines = [f"DS vs k on {args.matrix} (N={D.shape[0]}, method={args.method}, seed {args.seed})", f"{'k':>6}  DS"] + [
        f"{k:>6}  {v:.6g}" for k, v in zip(ks, ds, strict=True)
    ]
    if args.plot is not None:
        lines.append(f"plot written to {args.plot}")
    _emit(args, curve, settings, lines, matrix_file=args.matrix)
    return 0


def _check_plot_format(path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FigureCanvasAgg.get_supported_filetypes():
        raise _UsageError(f"--plot {path}: unsupported image format {suffix!r}; use .png, .pdf or .svg")


def _plot_elbow(path: Path, ks: Sequence[int], ds: Sequence[float], *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dispersion_score.io import save_figure

    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(ks, ds, marker="o", markersize=3)
    axis.set_xlabel("k (number of medoids)")
    axis.set_ylabel("dispersion score")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    try:
        save_figure(figure, path)
    finally:
        plt.close(figure)


# --- diagnose (dispersion_score.diagnose) ----------------------------------------------------------------


def _add_diagnose(commands: Any) -> None:
    diagnose = commands.add_parser(
        "diagnose", help="place predictions on the DS scale between recognition and the ground truth"
    )
    diagnose.add_argument("--predictions", type=Path, required=True, help="folder of predicted shapes")
    diagnose.add_argument("--ground-truth", type=Path, required=True, help="folder of ground-truth shapes (same names)")
    diagnose.add_argument("--train", type=Path, default=None, help="folder of training shapes (oracle NN, medoids)")
    diagnose.add_argument(
        "--train-matrix",
        type=Path,
        default=None,
        help="the training shapes' Chamfer matrix (.npy, e.g. from shapes --save-matrix) to reuse",
    )
    diagnose.add_argument("--k", type=positive_int, required=True, help="number of medoids")
    diagnose.add_argument(
        "--frame",
        choices=FRAMES,
        default="object",
        help="viewer: predictions and ground truth in each item's camera frame (needs --rotations)",
    )
    diagnose.add_argument(
        "--rotations",
        type=Path,
        default=None,
        help="folder of <name>.npy (3, 3) world-to-camera rotations, one per test item (viewer)",
    )
    diagnose.add_argument("--points", type=positive_int, default=2500, help="points per shape (default 2500)")
    diagnose.add_argument("--seed", type=non_negative_int, default=0, help="seed of the point sampling")
    diagnose.add_argument("--kmedoids-seed", type=non_negative_int, default=0, help="seed of k-medoids")
    diagnose.add_argument("--no-normalize", action="store_true", help="skip the unit-ball normalisation")
    _add_format_options(diagnose)
    diagnose.add_argument("--recursive", action="store_true", help="also read shapes in subdirectories")
    diagnose.add_argument("--plot", type=Path, default=None, help="write the DS-scale plot (.png, .pdf, .svg)")
    _add_common(diagnose)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from dispersion_score.diagnose import diagnose_folders, plot_diagnosis
    from dispersion_score.io import save_figure
    from dispersion_score.shapes_io import SHAPE_SUFFIXES

    device = _device(args.device)
    if args.plot is not None:
        _check_plot_format(args.plot)
    outputs = [args.out, args.plot]
    inputs = [args.predictions, args.ground_truth, args.train]
    _refuse_outputs_inside(inputs, SHAPE_SUFFIXES, "shape files", outputs, recursive=args.recursive)
    _refuse_outputs_inside([args.rotations], (".npy",), "rotations", outputs, recursive=args.recursive)
    train_matrix = _load_matrix(args.train_matrix) if args.train_matrix is not None else None
    result, names = diagnose_folders(
        args.predictions, args.ground_truth, k=args.k, train_dir=args.train, train_matrix=train_matrix,
        frame=args.frame, rotations_dir=args.rotations, points=args.points, sample_seed=args.seed,
        recursive=args.recursive, method=args.method, seed=args.kmedoids_seed, normalize=not args.no_normalize,
        npz_key=args.npz_key, voxel_threshold=args.voxel_threshold, device=device, progress=_progress(args),
    )  # fmt: skip
    settings = {"command": "diagnose", "predictions": os.fspath(args.predictions),
                "ground_truth": os.fspath(args.ground_truth), "train": args.train and os.fspath(args.train),
                "train_matrix": args.train_matrix and os.fspath(args.train_matrix), "k": args.k,
                "frame": args.frame, "rotations": args.rotations and os.fspath(args.rotations),
                "points": args.points, "sample_seed": args.seed, "kmedoids_seed": args.kmedoids_seed,
                "method": args.method, "normalize": not args.no_normalize, "device": device,
                "names": names, "conversion": _diagnose_conversion(args)}  # fmt: skip
    if args.plot is not None:
        save_figure(plot_diagnosis(result, title=f"{args.predictions} vs {args.ground_truth}"), args.plot)
        settings["plot"] = os.fspath(args.plot)
    lines = [
        f"{result.n} test items, k={result.k}, {result.frame} frame (DS in the object frame), method={args.method}",
        f"output DS (predictions)   {result.ds_predictions:.6g}",
        f"DS of the ground truth    {result.ds_ground_truth:.6g}",
        f"DS of recognition         {result.ds_recognition:.6g}  (ground truth snapped to {result.recognition_source})",
        f"position                  {result.position:.4g}  (0 = recognition, 1 = ground truth)",
        f"test Chamfer              {result.chamfer:.6g}",
        f"F-score                   {result.fscore:.4f} (Euclidean, tau 0.01), {result.fscore_atlasnet:.4f} (AtlasNet)",
    ]
    if result.n_train is not None:
        lines += [
            f"oracle NN ({result.n_train} training shapes): DS {result.ds_oracle:.6g}, Chamfer "
            f"{result.chamfer_oracle:.6g}, F-score {result.fscore_oracle:.4f}",
            f"distinct nearest training shapes: predictions {result.distinct_nearest_predictions}, "
            f"ground truth {result.distinct_nearest_oracle}",
        ]
    if args.plot is not None:
        lines.append(f"plot written to {args.plot}")
    _emit(args, result, settings, lines)
    return 0


def _diagnose_conversion(args: argparse.Namespace) -> dict[str, Any]:
    from dispersion_score.diagnose import match_shape_files
    from dispersion_score.shapes_io import conversion_rules, list_shape_files

    _, pred_files, gt_files = match_shape_files(args.predictions, args.ground_truth, recursive=args.recursive)
    train_files = list_shape_files(args.train, recursive=args.recursive) if args.train is not None else []
    return conversion_rules([*pred_files, *gt_files, *train_files], npz_key=args.npz_key,
                            voxel_threshold=args.voxel_threshold)  # fmt: skip


_COMMANDS = {
    "matrix": _cmd_matrix,
    "images": _cmd_images,
    "shapes": _cmd_shapes,
    "elbow": _cmd_elbow,
    "estimate": cmd_estimate,
    "diagnose": _cmd_diagnose,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, OSError, DirectoryLockedError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"dispersion-score {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"dispersion-score {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
