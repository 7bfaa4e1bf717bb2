"""The original release's run folders: what each run is, read from its folder name and ``opts.yaml``.

Facts (YefanZhou/dispersion-score, read for facts): ``train_synthetic.py`` / ``train_more_*.py`` launch one
training per setting with ``--description``; the run folder is ``<dir_name>/<YYYYmmdd_HHMM>_<description>``,
with ``opts.yaml`` (``yaml.dump`` of every option) beside the weights. Descriptions:

* ``log/train_synthetic``: ``cluster_{image|shape}_aug_2by10_cltsize{NN}_seed{S}_BS8_Epoch1200``;
  weights ``checkpoint.pt`` (a dict with ``model_state_dict``; ``best_checkpoint.pt`` holds the best
  validation epoch), AtlasNet with one SPHERE primitive, bottleneck 1024, hidden 512;
* ``log/more_imgs``: ``more_imgs_yawrange{RRR}_{object|viewer}_{network}{TEMPLATE}{primitives}_seed{S}``;
* ``log/more_shapes``: ``more_shapes_{object|viewer}_{network}{TEMPLATE}{primitives}_seed{S}``;
  ShapeNet weights ``network.pth`` (a plain state dict; ``network_best.pth`` the best epoch).

The original's evaluation (``eval/output_ds*.py``) used ``checkpoint.pt`` / ``network.pth``, the synthetic
``test_interp_1000.json`` split, the r = 90 yaw renders for every more-images run and R2N2 view 00 for the
more-shapes runs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dataset.shapenet.layout import TEST_YAW  # every more-images run was evaluated on r = 90

LOGGER = logging.getLogger(__name__)

REPOSITORY = "https://github.com/YefanZhou/dispersion-score"
EXPERIMENTS = ("train_synthetic", "more_imgs", "more_shapes")
# Where download/download_checkpts.sh puts each checkpoint archive (relative to the repository root), and the
# Google Drive ids of the archives (from the original's download/download_checkpts.sh).
DEFAULT_RUN_ROOTS = {name: f"log/{name}" for name in EXPERIMENTS}
CHECKPOINT_ARCHIVES = {
    "train_synthetic": ("toydata_checkpoints.zip", "1h3mZUMueGfrhPTZo1BoNNYLyPymlpZb7"),
    "more_imgs": ("shapenet_moreimgs_checkpoints.zip", "1EMdeJKc906Xn_RPWZSup-4s_TjNsp0IM"),
    "more_shapes": ("shapenet_moreshapes_checkpoints.zip", "15ZUTzQAGtlJs-mUX0waY0pdnlLf3eO7n"),
}
# The original's synthetic data (cubesphere_1000.zip) is unpacked here by download/download_data.sh: NOT
# dataset/synthetic_data/cubesphere_1000, where this project's own builder writes its paper preset.
ORIGINAL_SYNTHETIC_ROOT = "dataset/synthetic_data/original_cubesphere_1000"
SHAPENET_ROOT = "dataset/data"

WEIGHT_FILES = {
    "train_synthetic": {"last": "checkpoint.pt", "best": "best_checkpoint.pt"},
    "more_imgs": {"last": "network.pth", "best": "network_best.pth"},
    "more_shapes": {"last": "network.pth", "best": "network_best.pth"},
}
NETWORKS = ("atlasnet", "psgn", "foldnet")
TEMPLATES = {"SPHERE": "sphere", "SQUARE": "square"}
SPHERE_VERTICES = 2562  # pymesh.generate_icosphere(1, [0, 0, 0], 4), whatever number_points_eval says

_DATE = r"(?:\d{8}_\d{4}_)?"
_NET = r"(?P<network>atlasnet|psgn|foldnet)(?P<template>SPHERE|SQUARE)(?P<primitives>\d+)"
_NAME_PATTERNS = {
    "train_synthetic": re.compile(
        _DATE + r"cluster_(?P<kind>image|shape)_aug_2by10_cltsize(?P<cluster_size>\d+)_seed(?P<seed>\d+)"
        r"(?:_BS\d+)?(?:_Epoch\d+)?"
    ),
    "more_imgs": re.compile(
        _DATE + r"more_imgs_yawrange(?P<yaw>\d+)_(?P<mode>object|viewer)_" + _NET + r"_seed(?P<seed>\d+)"
    ),
    "more_shapes": re.compile(_DATE + r"more_shapes_(?P<mode>object|viewer)_" + _NET + r"_seed(?P<seed>\d+)"),
}
_TRAIN_FILE = re.compile(r"cluster_(?P<kind>image|shape)_aug_2by10_cltsize(?P<cluster_size>\d+)\.json")

# Defaults of the original's argument parser and train_synthetic.py (used where opts.yaml is absent).
_ORIGINAL_DEFAULTS: dict[str, Any] = {
    "bottleneck_size": 1024,
    "hidden_neurons": 512,
    "num_layers": 2,
    "number_points": 2500,
    "number_points_eval": 2500,
    "activation": "relu",
    "remove_all_batchNorms": False,
    "encoder": "resnet18",
    "SVR": True,
    "test_json_file": "test_interp_1000.json",
    "val_json_file": "val_interp_1000.json",
}
_SYNTHETIC_NETWORK = {"network": "atlasnet", "template_type": "SPHERE", "nb_primitives": 1}


class OriginalRunError(ValueError):
    """A run folder of the original release that cannot be read or is not supported (the message says why)."""


@dataclasses.dataclass(frozen=True)
class OriginalRun:
    """One trained network of the original release: its settings and where they came from.

    Attributes:
        run_dir: the run folder.
        experiment: "train_synthetic", "more_imgs" or "more_shapes" (the folder it was released in).
        weights_file: the weights the original's evaluation used (``checkpoint.pt`` / ``network.pth``), or
            the best-epoch file when asked for.
        network: "atlasnet", "psgn" or "foldnet".
        template: "sphere" or "square" (AtlasNet's primitive; FoldNet always folds a square grid, PSGN has
            none: the original's options still say SPHERE for PSGN, and this field repeats them).
        primitives: AtlasNet patches.
        bottleneck: latent size (ResNet-18 ``fc`` output).
        hidden: width of the decoder's hidden layers (``hidden_neurons``).
        hidden_layers: AtlasNet's hidden → hidden layers (``num_layers``).
        num_points: training points (``number_points``): PSGN's output size; FoldNet's grid is
            int(sqrt(num_points))².
        eval_points: ``number_points_eval``: a SQUARE patch predicts an int(sqrt(eval_points // primitives))²
            grid.
        mode: "object" or "viewer": the frame the network predicts in (viewer: rotate back with P R before
            output DS, docs/shapenet.md). Always "object" for the synthetic runs (no camera there).
        seed: training seed (``manual_seed``).
        kind, cluster_size: synthetic training set ("image_aug"/"shape_aug", s); None for ShapeNet runs.
        train_file, val_file, test_file: synthetic index files (relative to the data root); None otherwise.
        yaw: more-images training yaw range r in degrees; None otherwise.
        channel_order: channel order of the images the network was trained on: "bgr" for the synthetic runs
            (read with ``cv2.imread``), "rgb" for ShapeNet (PIL).
        opts: the run's ``opts.yaml`` as read ({} if absent).
        sources: where each setting came from ("opts.yaml", "folder name", or the original's defaults).
        checkpoint_info: filled by ``load_original_run``: epoch, loss, SHA-256 of the weights, conversion
            notes, and the channel order the returned model expects.
    """

    run_dir: Path
    experiment: str
    weights_file: Path
    network: str
    template: str
    primitives: int
    bottleneck: int
    hidden: int
    hidden_layers: int
    num_points: int
    eval_points: int
    mode: str
    seed: int
    kind: str | None
    cluster_size: int | None
    train_file: str | None
    val_file: str | None
    test_file: str | None
    yaw: int | None
    channel_order: str
    opts: Mapping[str, Any]
    sources: Mapping[str, str]
    checkpoint_info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.run_dir.name

    @property
    def grid_size(self) -> int | None:
        """Side of the regular grid: per SQUARE patch for AtlasNet, of the folded grid for FoldNet."""
        if self.network == "foldnet":
            return math.isqrt(self.num_points)
        if self.network == "atlasnet" and self.template == "square":
            return math.isqrt(self.eval_points // self.primitives)
        return None

    @property
    def predicted_points(self) -> int:
        """Points per predicted cloud at test time (2562 for one sphere, 25·100 for 25 squares, 2500 else)."""
        if self.network == "psgn":
            return self.num_points
        if self.network == "atlasnet" and self.template == "sphere":
            return self.primitives * SPHERE_VERTICES
        grid = self.grid_size or 0
        return (self.primitives if self.network == "atlasnet" else 1) * grid * grid

    @property
    def image_transform(self) -> str:
        """The original's test-time image reading for this run, in words (``original_image`` does it)."""
        if self.experiment == "train_synthetic":
            return (
                "cv2.imread(path) (BGR, alpha dropped, file size: 224x224), ToTensor (/255); "
                "no crop, resize or normalisation"
            )
        if self.experiment == "more_imgs":
            return "PIL RGBA 224x224, ToTensor (/255), first three channels (RGB); no crop, resize or normalisation"
        return (
            "PIL RGBA 137x137, CenterCrop(127), Resize(224, bilinear, on RGBA: Pillow premultiplies alpha), "
            "ToTensor (/255), first three channels (RGB); no normalisation"
        )

    @property
    def test_data(self) -> dict[str, Any]:
        """The test split the original evaluated this run on (paths relative to the repository root)."""
        if self.experiment == "train_synthetic":
            return {
                "dataset": "cubesphere",
                "root": ORIGINAL_SYNTHETIC_ROOT,
                "index_file": self.test_file,
                "num_points": 2500,
                "normalization": "unit_ball",
                "image_size": None,
            }
        common = {"dataset": "shapenet", "root": SHAPENET_ROOT, "split": "test", "frame": self.mode}
        if self.experiment == "more_imgs":
            return {**common, "images": "yaw", "yaw": TEST_YAW, "image_size": 224}
        return {**common, "images": "r2n2", "view": 0, "image_size": 224}

    @property
    def output_ds_protocol(self) -> dict[str, Any]:
        """How the original measured this run's output DS (eval/output_ds_synthetic.py, output_ds_aug.py,
        output_ds_viewer_inv.py), to compare with its stored numbers.

        Note ``normalize_predictions: False``: the original's Chamfer matrix of the predictions was computed on
        the raw predicted points (``ChamferDistanceL2``: mean d1 + mean d2 of squared distances), whereas
        ``dispersion_score.chamfer_matrix`` normalises every cloud to the unit ball unless told
        ``normalize=False``.
        """
        return {
            "k": 2 if self.experiment == "train_synthetic" else 500,
            "method": "alternate",  # scikit-learn-extra KMedoids(init="k-medoids++"), random_state=1
            "seed": 1,
            "normalize_predictions": False,
            "items": "all test items",  # rsample=1 in the original's eval scripts
            "frame": "object" if self.mode == "object" else "viewer predictions rotated back (P R) first",
        }

    def data_root(self, repository_root: str | Path | None = None) -> Path:
        """The folder of ``test_data`` (``test_data["root"]`` under the repository root).

        Args:
            repository_root: the folder holding ``dataset/`` and ``log/``; by default the one that holds
                this run as ``log/<experiment>/<run>`` (as ``download/download_checkpts.sh`` places it), else
                the current directory.
        """
        if repository_root is None:
            inside_log = self.run_dir.parent.name == self.experiment and self.run_dir.parent.parent.name == "log"
            repository_root = self.run_dir.parents[2] if inside_log else Path(".")
        return Path(repository_root) / self.test_data["root"]

    def data_config(self) -> dict[str, Any]:
        """The ``data`` section of a training config (``models.config``) for the synthetic runs.

        Raises:
            OriginalRunError: for ShapeNet runs (their test data is described by ``test_data``).
        """
        if self.experiment != "train_synthetic":
            raise OriginalRunError(f"{self.run_dir}: data_config is only defined for the synthetic runs")
        return {
            "dataset": "cubesphere",
            "root": ORIGINAL_SYNTHETIC_ROOT,
            "train_file": self.train_file,
            "val_file": self.val_file,
            "test_file": self.test_file,
            "num_points": 2500,
            "image_size": 224,
            "normalization": "unit_ball",
        }

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from, for result records."""
        archive, drive_id = CHECKPOINT_ARCHIVES[self.experiment]
        return {
            "weights": "original release",
            "repository": REPOSITORY,
            "archive": archive,
            "google_drive_id": drive_id,
            "run": self.name,
            "weights_file": str(self.weights_file),
            "converted_by": "models.original.load_original_run",
            **dict(self.checkpoint_info),
        }

    def record(self) -> dict[str, Any]:
        """Settings and provenance as a JSON-able dict (for result records and tables)."""
        settings = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("opts", "checkpoint_info", "run_dir", "weights_file")
        }
        return {
            **settings,
            "run_dir": str(self.run_dir),
            "sources": dict(self.sources),
            "predicted_points": self.predicted_points,
            "output_ds_protocol": self.output_ds_protocol,
            "provenance": self.provenance(),
        }


def describe_original_run(run_dir: str | Path, *, checkpoint: str = "last") -> OriginalRun:
    """The settings of one original run folder, without reading its weights.

    Args:
        run_dir: a folder under ``log/train_synthetic``, ``log/more_imgs`` or ``log/more_shapes`` (the
            experiment is told by the folder name, or by the parent folder's name).
        checkpoint: "last" (default; the weights the original's evaluation used: ``checkpoint.pt`` /
            ``network.pth``) or "best" (``best_checkpoint.pt`` / ``network_best.pth``).

    Returns:
        An ``OriginalRun`` (``checkpoint_info`` empty).

    Raises:
        OriginalRunError: not a directory, an unrecognised name without ``opts.yaml``, the weights file
            missing, a folder name and ``opts.yaml`` that disagree, or settings the original could train but
            this project cannot run (another activation, no BatchNorm, ResNet-50, an autoencoder, FoldNet on
            a sphere) — the message names the folder and the setting.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise OriginalRunError(f"original run folder not found: {run_dir}")
    if checkpoint not in ("last", "best"):
        raise OriginalRunError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    opts = _read_opts(run_dir)
    experiment, named = _experiment_and_name_fields(run_dir, opts)
    weights_file = run_dir / WEIGHT_FILES[experiment][checkpoint]
    if not weights_file.is_file():
        raise OriginalRunError(f"{run_dir}: weights file {weights_file.name} not found")
    settings, sources = _settings(run_dir, experiment, named, opts)
    return OriginalRun(run_dir=run_dir, experiment=experiment, weights_file=weights_file, opts=opts,
                       sources=sources, **settings)  # fmt: skip


def list_original_runs(
    log_root: str | Path = "log", *, experiments: Iterable[str] = EXPERIMENTS, checkpoint: str = "last"
) -> list[OriginalRun]:
    """Every run folder of the original release under ``log_root``, sorted by experiment and name.

    Args:
        log_root: the folder holding ``train_synthetic``, ``more_imgs``, ``more_shapes`` (as
            ``download/download_checkpts.sh`` places them); experiments whose folder is absent are skipped.
        experiments: which of them to list.
        checkpoint: "last" or "best" (see ``describe_original_run``).

    Returns:
        The runs' ``OriginalRun`` descriptions. Sub-folders without the weights file (e.g. ``tensorboard``)
        are skipped with a logged warning naming them.

    Raises:
        OriginalRunError: an unknown experiment name, or a run folder whose settings cannot be read.
    """
    log_root = Path(log_root)
    runs = []
    for experiment in experiments:
        if experiment not in EXPERIMENTS:
            raise OriginalRunError(f"unknown experiment {experiment!r}; expected one of {EXPERIMENTS}")
        folder = log_root / experiment
        if not folder.is_dir():
            continue
        for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not (run_dir / WEIGHT_FILES[experiment][checkpoint]).is_file():
                LOGGER.warning("%s: no %s, not a run folder; skipped", run_dir, WEIGHT_FILES[experiment][checkpoint])
                continue
            runs.append(describe_original_run(run_dir, checkpoint=checkpoint))
    return runs


# ------------------------------------------------------------------------------------------------ helpers


class _TolerantLoader(yaml.SafeLoader):
    """Safe YAML loading that reads unknown (python object) tags as None instead of failing."""


_TolerantLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def _read_opts(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "opts.yaml"
    if not path.is_file():
        return {}
    try:
        opts = yaml.load(path.read_text(), Loader=_TolerantLoader)  # noqa: S506 - safe loader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise OriginalRunError(f"{path} is not readable YAML: {error}") from None
    if not isinstance(opts, dict):
        raise OriginalRunError(f"{path} must hold a mapping of options, got {type(opts).__name__}")
    return opts


def _experiment_and_name_fields(run_dir: Path, opts: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    for experiment, pattern in _NAME_PATTERNS.items():
        match = pattern.fullmatch(run_dir.name)
        if match:
            return experiment, {k: v for k, v in match.groupdict().items() if v is not None}
    if run_dir.parent.name in EXPERIMENTS and opts:
        return run_dir.parent.name, {}
    raise OriginalRunError(
        f"{run_dir}: not an original run folder: its name matches none of the original's run names "
        f"(e.g. 20210315_0112_cluster_image_aug_2by10_cltsize01_seed1_BS8_Epoch1200, "
        f"..._more_imgs_yawrange000_object_atlasnetSPHERE1_seed1, ..._more_shapes_viewer_psgnSPHERE1_seed2) "
        f"and it is not in a folder named one of {EXPERIMENTS} with an opts.yaml"
    )


def _settings(
    run_dir: Path, experiment: str, named: Mapping[str, str], opts: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(field: str, name_value: Any, opts_key: str | None, default: Any = None, convert=lambda v: v) -> None:
        from_opts = convert(opts[opts_key]) if opts_key and opts.get(opts_key) is not None else None
        from_name = convert(name_value) if name_value is not None else None
        if from_opts is not None and from_name is not None and from_opts != from_name:
            raise OriginalRunError(
                f"{run_dir}: the folder name says {field}={from_name!r} but opts.yaml says "
                f"{opts_key}={opts[opts_key]!r}"
            )
        if from_opts is not None:
            values[field], sources[field] = from_opts, "opts.yaml"
        elif from_name is not None:
            values[field], sources[field] = from_name, "folder name"
        else:
            if default is None:
                raise OriginalRunError(f"{run_dir}: cannot tell {field} (no opts.yaml key {opts_key!r})")
            values[field], sources[field] = default, "default of the original code"

    synthetic = experiment == "train_synthetic"
    defaults = {**_ORIGINAL_DEFAULTS, **(_SYNTHETIC_NETWORK if synthetic else {})}
    take("network", named.get("network"), "network", defaults.get("network"), str)
    take("template", named.get("template"), "template_type", defaults.get("template_type"), str)
    take("primitives", named.get("primitives"), "nb_primitives", defaults.get("nb_primitives"), int)
    take("seed", named.get("seed"), "manual_seed", None, int)
    take("bottleneck", None, "bottleneck_size", defaults["bottleneck_size"], int)
    take("hidden", None, "hidden_neurons", defaults["hidden_neurons"], int)
    take("hidden_layers", None, "num_layers", defaults["num_layers"], int)
    take("num_points", None, "number_points", defaults["number_points"], int)
    take("eval_points", None, "number_points_eval", defaults["number_points_eval"], int)
    _check_supported(run_dir, values, opts, defaults)
    if values["template"] not in TEMPLATES:
        raise OriginalRunError(f"{run_dir}: template {values['template']!r} is not supported (SPHERE or SQUARE)")
    values["template"] = TEMPLATES[values["template"]]

    if synthetic:
        # The synthetic data has no camera: the original's --mode option (default "viewer") was unused.
        values["mode"], sources["mode"] = "object", "synthetic data (no camera)"
        from_file = _TRAIN_FILE.fullmatch(str(opts.get("train_json_file", "")))
        file_set = (f"{from_file['kind']}_aug", int(from_file["cluster_size"])) if from_file else None
        name_set = (f"{named['kind']}_aug", int(named["cluster_size"])) if "kind" in named else None
        if file_set and name_set and file_set != name_set:
            raise OriginalRunError(
                f"{run_dir}: the folder name says {name_set[0]} s={name_set[1]} but opts.yaml trains on "
                f"{opts['train_json_file']}"
            )
        if not (file_set or name_set):
            raise OriginalRunError(f"{run_dir}: cannot tell the training set (no name match, no train_json_file)")
        values["kind"], values["cluster_size"] = file_set or name_set
        sources["kind"] = sources["cluster_size"] = "opts.yaml" if file_set else "folder name"
        values["train_file"] = f"cluster_{values['kind']}_2by10_cltsize{values['cluster_size']:02d}.json"
        sources["train_file"] = sources["kind"]
        take("val_file", None, "val_json_file", defaults["val_json_file"], str)
        take("test_file", None, "test_json_file", defaults["test_json_file"], str)
        values["yaw"] = None
        values["channel_order"] = "bgr"
    else:
        take("mode", named.get("mode"), "mode", None, str)
        values.update(kind=None, cluster_size=None, train_file=None, val_file=None, test_file=None)
        if experiment == "more_imgs":
            take("yaw", named.get("yaw"), "yawrange", None, int)
        else:
            values["yaw"] = None
        values["channel_order"] = "rgb"
    if values["network"] not in NETWORKS:
        raise OriginalRunError(f"{run_dir}: network {values['network']!r} is not one of {NETWORKS}")
    if values["network"] == "foldnet" and values["template"] != "square":
        raise OriginalRunError(
            f"{run_dir}: FoldNet on a {values['template']} template (the original's sphere.npy grid) is not "
            "supported; the released FoldNet runs fold a SQUARE grid"
        )
    return values, sources


def _check_supported(
    run_dir: Path, values: Mapping[str, Any], opts: Mapping[str, Any], defaults: Mapping[str, Any]
) -> None:
    required = {"activation": "relu", "remove_all_batchNorms": False, "encoder": "resnet18", "SVR": True}
    for key, expected in required.items():
        value = opts.get(key, defaults[key])
        if value != expected:
            raise OriginalRunError(
                f"{run_dir}: opts.yaml has {key}={value!r}; only {key}={expected!r} (what every released run "
                "used) can be converted"
            )
    for key in ("primitives", "bottleneck", "hidden", "num_points", "eval_points"):
        if values[key] < 1:
            raise OriginalRunError(f"{run_dir}: {key} must be >= 1, got {values[key]}")
