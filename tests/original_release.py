"""Test helper (not a test module): checkpoints and a miniature release in the original code's formats.

Everything here is written from facts read in the original code (YefanZhou/dispersion-score), not produced
by this project's converter, so tests of the converter can fail:

* ``original_state_dict``: the parameter names and shapes of the original's ``EncoderDecoder`` (AtlasNet),
  ``PSGN`` and ``FoldNet`` modules (``model/resnet.py``, ``model/model_blocks.py``,
  ``model/baseline_models.py``), filled with seeded random values (BatchNorm running statistics included,
  so eval-mode BatchNorm matters);
* ``write_synthetic_run``: a run folder as ``train_toydata.py`` leaves it (``<date>_<description>`` with
  ``checkpoint.pt`` = {epoch, model_state_dict, optimizer_state_dict, loss} and ``opts.yaml``);
* ``write_shapenet_run``: a ShapeNet run folder (``network.pth`` = plain state dict, ``opts.yaml``);
* ``write_original_release``: a miniature release: the original synthetic data layout
  (``CubeSphere_interp_1000/instance_NNN/{Isometric.png, pt_30000.npy}``, the index files
  ``test_interp_1000.json`` … in the original's entry format, the ``CubeSphere_interp_1000.json``
  catalogue, a ``cluster_image_aug_2by10_cltsize01.json`` training set) where
  ``download/download_data.sh`` puts it, and synthetic run folders under ``log/train_synthetic``.

Use: ``from tests.original_release import write_original_release`` (the repository root on sys.path, as
pytest's ``pythonpath`` setting gives it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image

ORIGINAL_SYNTHETIC_ROOT = "dataset/synthetic_data/original_cubesphere_1000"  # as download_data.sh writes it
INTERP = "CubeSphere_interp_1000"
_BLOCKS = ((1, 64, 64, 1), (2, 64, 128, 2), (3, 128, 256, 2), (4, 256, 512, 2))  # layer, in, out, stride


# ------------------------------------------------------------------------------------- state dicts


def original_resnet18_shapes(bottleneck: int) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the original's ``resnet.resnet18(num_classes=bottleneck)``."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn_shapes("bn1", 64)}
    for layer, inplanes, planes, stride in _BLOCKS:
        for block in (0, 1):
            prefix = f"layer{layer}.{block}"
            cin = inplanes if block == 0 else planes
            shapes[f"{prefix}.conv1.weight"] = (planes, cin, 3, 3)
            shapes.update(_bn_shapes(f"{prefix}.bn1", planes))
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            shapes.update(_bn_shapes(f"{prefix}.bn2", planes))
            if block == 0 and (stride != 1 or inplanes != planes):
                shapes[f"{prefix}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                shapes.update(_bn_shapes(f"{prefix}.downsample.1", planes))
    shapes["fc.weight"] = (bottleneck, 512)
    shapes["fc.bias"] = (bottleneck,)
    return shapes


def original_decoder_shapes(
    network: str,
    *,
    template: str = "SPHERE",
    primitives: int = 1,
    bottleneck: int = 1024,
    hidden: int = 512,
    num_layers: int = 2,
    num_points: int = 2500,
) -> dict[str, tuple[int, ...]]:
    """Names (with the ``decoder.`` prefix) and shapes of the original's decoder parameters."""
    shapes: dict[str, tuple[int, ...]] = {}
    if network == "atlasnet":  # Atlasnet.decoder = ModuleList of Mapping2Dto3D
        dim = {"SPHERE": 3, "SQUARE": 2}[template]
        for i in range(primitives):
            p = f"decoder.decoder.{i}"
            shapes |= _conv_shapes(f"{p}.conv1", bottleneck, dim) | _conv_shapes(f"{p}.conv2", hidden, bottleneck)
            for j in range(num_layers):
                shapes |= _conv_shapes(f"{p}.conv_list.{j}", hidden, hidden)
            shapes |= _conv_shapes(f"{p}.last_conv", 3, hidden)
            shapes |= _bn_shapes(f"{p}.bn1", bottleneck) | _bn_shapes(f"{p}.bn2", hidden)
            for j in range(num_layers):
                shapes |= _bn_shapes(f"{p}.bn_list.{j}", hidden)
    elif network == "psgn":  # PSGNDecoder
        for k in (1, 2, 3):
            shapes |= _bn_shapes(f"decoder.bn{k}", hidden)
        for k, (out, cin) in enumerate([(hidden, bottleneck), (hidden, hidden), (hidden, hidden)], start=1):
            shapes[f"decoder.fc{k}.weight"], shapes[f"decoder.fc{k}.bias"] = (out, cin), (out,)
        shapes["decoder.fc4.weight"], shapes["decoder.fc4.bias"] = (num_points * 3, hidden), (num_points * 3,)
    elif network == "foldnet":  # FoldNetDecoder, SQUARE template: folding1 takes codeword + 2, folding2 + 3
        for fold, extra in ((1, 2), (2, 3)):
            p = f"decoder.folding{fold}"
            shapes |= _conv_shapes(f"{p}.0", hidden, bottleneck + extra) | _bn_shapes(f"{p}.1", hidden)
            shapes |= _conv_shapes(f"{p}.3", hidden, hidden) | _bn_shapes(f"{p}.4", hidden)
            shapes |= _conv_shapes(f"{p}.6", 3, hidden)
    else:
        raise ValueError(f"unknown network {network!r}")
    return shapes


def original_state_dict(network: str, *, seed: int = 0, **settings: Any) -> dict[str, torch.Tensor]:
    """A state dict in the original's naming and shapes with seeded random values.

    Weights ~ N(0, 1/fan_in) (activations stay of order one through the 18 layers), biases and BatchNorm
    affine parameters and running statistics random too (running_var in [0.5, 2]).
    """
    bottleneck = settings.get("bottleneck", 1024)
    shapes = {f"encoder.{k}": v for k, v in original_resnet18_shapes(bottleneck).items()}
    shapes |= original_decoder_shapes(network, **settings)
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        field = key.rsplit(".", 1)[1]
        if field == "num_batches_tracked":
            state[key] = torch.tensor(1234, dtype=torch.long)
        elif field == "running_var":
            state[key] = 0.5 + 1.5 * torch.rand(shape, generator=generator)
        elif field in ("running_mean", "bias"):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif field == "weight" and len(shape) == 1:  # BatchNorm scale
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        else:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=generator) / np.sqrt(fan_in)
    return state


def _conv_shapes(prefix: str, out: int, cin: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (out, cin, 1), f"{prefix}.bias": (out,)}


def _bn_shapes(prefix: str, size: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{f}": (size,) for f in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()
    }


# ------------------------------------------------------------------------------------- run folders


def original_opts(**values: Any) -> dict[str, Any]:
    """The options ``opts.yaml`` holds (the original's argument parser defaults, overridden)."""
    opts = {
        "batch_size": 32, "nepoch": 150, "manual_seed": 1, "lrate": 0.001, "mode": "viewer", "nviews_train": 1,
        "normalization": "UnitBall", "shapenet13": False, "SVR": True, "number_points": 2500,
        "number_points_eval": 2500, "dir_name": "log/oneExp", "encoder": "resnet18", "network": "atlasnet",
        "num_layers": 2, "hidden_neurons": 512, "nb_primitives": 25, "template_type": "SPHERE",
        "remove_all_batchNorms": False, "bottleneck_size": 1024, "activation": "relu",
        "train_json_file": "cluster_image_aug_2by10_cltsize01.json", "test_json_file": "test_interp_1000.json",
        "val_json_file": "val_interp_1000.json", "data_base_dir": "dataset/synthetic_data/cubesphere_1000",
        "yawrange": 0, "anglelimit_search": False,
    }  # fmt: skip
    opts.update(values)
    return opts


def synthetic_run_name(kind: str, cluster_size: int, seed: int, *, date: str = "20210301_1200") -> str:
    """The folder name train_synthetic.py gives a run (``<date>_<description>``)."""
    return f"{date}_cluster_{kind}_aug_2by10_cltsize{cluster_size:02d}_seed{seed}_BS8_Epoch1200"


def write_synthetic_run(
    log_root: Path,
    kind: str,
    cluster_size: int,
    seed: int,
    *,
    bottleneck: int = 1024,
    hidden: int = 512,
    with_opts: bool = True,
    state: dict[str, torch.Tensor] | None = None,
    weights_seed: int = 0,
) -> tuple[Path, dict[str, torch.Tensor]]:
    """A synthetic run folder under ``log_root/train_synthetic``; returns it and its original state dict."""
    run_dir = log_root / "train_synthetic" / synthetic_run_name(kind, cluster_size, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = original_state_dict(
            "atlasnet", seed=weights_seed, template="SPHERE", bottleneck=bottleneck, hidden=hidden
        )
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-6, "betas": (0.9, 0.999), "eps": 1e-8, "params": []}]}
    checkpoint = {"epoch": 1199, "model_state_dict": state, "optimizer_state_dict": optimizer, "loss": 0.0123}
    torch.save(checkpoint, run_dir / "checkpoint.pt")
    if with_opts:
        opts = original_opts(
            network="atlasnet", template_type="SPHERE", nb_primitives=1, bottleneck_size=bottleneck,
            hidden_neurons=hidden, manual_seed=seed, batch_size=8, nepoch=1200,
            train_json_file=f"cluster_{kind}_aug_2by10_cltsize{cluster_size:02d}.json",
            dir_name=str(run_dir), description=run_dir.name,
        )  # fmt: skip
        (run_dir / "opts.yaml").write_text(yaml.dump(opts, default_flow_style=False, sort_keys=False))
    return run_dir, state


def write_shapenet_run(
    log_root: Path,
    experiment: str,
    network: str,
    template: str,
    primitives: int,
    *,
    mode: str = "object",
    seed: int = 1,
    yaw: int = 0,
    bottleneck: int = 1024,
    hidden: int = 512,
    weights_seed: int = 0,
) -> tuple[Path, dict[str, torch.Tensor]]:
    """A more_imgs / more_shapes run folder (``network.pth`` + ``opts.yaml``); returns it and its state."""
    model = f"{network}{template}{primitives}"
    if experiment == "more_imgs":
        description = f"more_imgs_yawrange{yaw:03d}_{mode}_{model}_seed{seed}"
    else:
        description = f"more_shapes_{mode}_{model}_seed{seed}"
    run_dir = log_root / experiment / f"20210401_0900_{description}"
    run_dir.mkdir(parents=True, exist_ok=True)
    state = original_state_dict(
        network, seed=weights_seed, template=template, primitives=primitives, bottleneck=bottleneck, hidden=hidden
    )
    torch.save(state, run_dir / "network.pth")
    opts = original_opts(
        network=network, template_type=template, nb_primitives=primitives, bottleneck_size=bottleneck,
        hidden_neurons=hidden, manual_seed=seed, mode=mode, yawrange=yaw, batch_size=64, nepoch=120,
        shapenet13=True, dir_name=str(run_dir), description=run_dir.name,
    )  # fmt: skip
    (run_dir / "opts.yaml").write_text(yaml.dump(opts, default_flow_style=False, sort_keys=False))
    return run_dir, state


# ------------------------------------------------------------------------------------- the data


@dataclasses.dataclass(frozen=True)
class MiniRelease:
    """What ``write_original_release`` wrote (all paths absolute)."""

    root: Path  # plays the repository root
    data_root: Path  # root / ORIGINAL_SYNTHETIC_ROOT
    log_root: Path  # root / "log"
    test_instances: tuple[int, ...]  # instance numbers of test_interp_1000.json, in file order
    runs: tuple[Path, ...]
    states: dict[Path, dict[str, torch.Tensor]]


def instance_image(t: float, size: int = 224) -> np.ndarray:
    """(size, size, 3) uint8: a grey disc↔square on white whose shape follows t and whose colour is not
    symmetric in R and B (so a channel swap changes the input)."""
    axis = np.linspace(-1.0, 1.0, size)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    exponent = 2.0 + 8.0 * t
    inside = (np.abs(x / 0.6) ** exponent + np.abs(y / 0.6) ** exponent) < 1.0
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    image[inside] = (int(60 + 120 * t), 110, int(200 - 100 * t))
    return image


def instance_cloud(t: float, count: int = 30000, seed: int = 0) -> np.ndarray:
    """(count, 3) float64 points (open3d's sample_points_uniformly gives float64) on a superellipsoid."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((count, 3))
    exponent = 2.0 + 8.0 * t
    scale = (np.abs(directions) ** exponent).sum(axis=1, keepdims=True) ** (1.0 / exponent)
    return 0.86 * directions / scale


def _entry(image_instance: int, shape_instance: int, *, dir_instance: int, t: float) -> dict[str, Any]:
    # The original entries: dir_path/shapekey_value describe one instance; ptcloud_path names pt_1024.npy
    # (the loaders read pt_30000.npy beside it).
    return {
        "dir_path": f"{INTERP}/instance_{dir_instance:03d}",
        "model_path": f"{INTERP}/instance_{shape_instance:03d}/model.obj",
        "isometric_path": f"{INTERP}/instance_{image_instance:03d}/Isometric.png",
        "ptcloud_path": f"{INTERP}/instance_{shape_instance:03d}/pt_1024.npy",
        "cube_scale": 0.5,
        "sphere_scale": 0.86,
        "shapekey_value": t,
        "rot_val": 0,
        "rot_axis": [0, 0, 0],
    }


def write_original_release(
    root: Path,
    *,
    test_instances: Sequence[int] = (3, 130, 257, 384, 511, 638, 765, 892),
    runs: Sequence[tuple[str, int, int]] = (("image", 1, 1),),
    image_size: int = 224,
    points: int = 30000,
    bottleneck: int = 64,
    hidden: int = 32,
) -> MiniRelease:
    """A miniature original release under ``root`` (which plays the repository root).

    Args:
        root: where to write; gets ``dataset/synthetic_data/original_cubesphere_1000/`` and
            ``log/train_synthetic/``.
        test_instances: instance numbers (t = n / 1000) of the test split, written in this order.
        runs: (kind "image"/"shape", cluster size, seed) of each synthetic run folder.
        image_size: side of the Isometric.png renders (224 in the release; the original ResNet needs
            at least 193).
        points: points per pt_30000.npy (30000 as released).
        bottleneck, hidden: network sizes recorded in opts.yaml (small by default to keep files small).
    """
    data_root = root / ORIGINAL_SYNTHETIC_ROOT
    centres = (250, 750)
    pool = sorted({c + d for c in centres for d in (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)} | set(centres))
    val_instances = (1, 128, 255)
    catalogue = []
    for number in sorted(set(pool) | set(test_instances) | set(val_instances)):
        folder = data_root / INTERP / f"instance_{number:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        t = number / 1000
        Image.fromarray(instance_image(t, image_size)).save(folder / "Isometric.png")
        np.save(folder / "pt_30000.npy", instance_cloud(t, points, seed=number))
        catalogue.append(_entry(number, number, dir_instance=number, t=t))
    _write_json(data_root / f"{INTERP}.json", catalogue)
    for name, numbers in (("test", test_instances), ("val", val_instances), ("train", pool)):
        _write_json(data_root / f"{name}_interp_1000.json", [_entry(n, n, dir_instance=n, t=n / 1000) for n in numbers])
    offsets = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)  # s = 1: ±1..±5 around each centre
    cluster = [_entry(c + d, c, dir_instance=c + d, t=(c + d) / 1000) for c in centres for d in offsets]
    _write_json(data_root / "cluster_image_aug_2by10_cltsize01.json", cluster)

    log_root = root / "log"
    run_dirs, states = [], {}
    for index, (kind, cluster_size, seed) in enumerate(runs):
        run_dir, state = write_synthetic_run(
            log_root, kind, cluster_size, seed, bottleneck=bottleneck, hidden=hidden, weights_seed=100 + index
        )
        run_dirs.append(run_dir)
        states[run_dir] = state
    return MiniRelease(root, data_root, log_root, tuple(test_instances), tuple(run_dirs), states)


def _write_json(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=4))
