"""Mapping the original release's state dicts onto this project's networks, every key accounted for.

The original's modules (YefanZhou/dispersion-score, read for facts; its code is not used here):

* encoder (every network): ``model/resnet.py``, torchvision's ResNet-18 layout (the same parameter names:
  ``conv1``, ``bn1``, ``layer{1..4}.{0,1}.{conv,bn}{1,2}``, ``downsample.{0,1}``, ``fc`` → bottleneck) but
  ``AvgPool2d(7)`` instead of adaptive pooling;
* AtlasNet (``model/atlasnet.py``, ``model/model_blocks.py``: ``decoder.decoder.{i}`` = ``Mapping2Dto3D``):
  ``conv1`` (dim → bottleneck) + latent → ``bn1`` → ReLU → ``conv2`` → ``bn2`` → ReLU →
  ``num_layers`` × [``conv_list.{j}`` → ``bn_list.{j}`` → ReLU] → ``last_conv``: our ``PrimitiveDecoder``
  layer for layer;
* PSGN (``model/baseline_models.py``: ``decoder`` = ``PSGNDecoder``): ``fc1..fc3`` + ``bn1..bn3`` + ReLU,
  ``fc4`` → N·3 read as ``view(B, 3, N).transpose(1, 2)`` (coordinate-major): our ``PSGN`` reads its output
  point-major, so ``fc4``'s rows are permuted (row c·N + p → p·3 + c), which gives the same points in the
  same order;
* FoldNet (``FoldNetDecoder``): ``folding{1,2}`` = Sequential(Conv1d(bottleneck + d → h), BN, ReLU,
  Conv1d(h → h), BN, ReLU, Conv1d(h → 3)) on ``cat(codeword, points)``: the first layer's weight is split
  into our ``code_in`` (its first ``bottleneck`` input columns) and ``point_in`` (the last d, with the bias).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from models.atlasnet import AtlasNet
from models.base import PointCloudNet
from models.encoder import ResNet18Encoder
from models.foldnet import FoldNet
from models.original.runs import OriginalRun
from models.psgn import PSGN

Transform = Callable[[torch.Tensor], torch.Tensor]
_BN_BUFFERS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_CONV = ("weight", "bias")
_SHOWN = 8


class OriginalCheckpointError(ValueError):
    """An original checkpoint that does not fit the architecture its run describes (the message names the key)."""


@dataclasses.dataclass(frozen=True)
class _Rule:
    """One original key: its expected shape and the key(s) of ours it becomes, each with a transform."""

    original: str
    shape: tuple[int, ...]
    targets: tuple[tuple[str, Transform], ...]


def build_compatible_model(run: OriginalRun, *, rgb_input: bool = True) -> PointCloudNet:
    """The network of this project that computes exactly what ``run``'s original network computed.

    Args:
        run: the run's settings (``describe_original_run``).
        rgb_input: True (default): the model takes RGB images (as every dataset of this project gives them)
            and, for a network trained on BGR images (the synthetic runs), reverses the channels itself.
            False: the model is fed as the original fed it (BGR for the synthetic runs).

    Returns:
        A freshly initialised network with the original's shapes, regular templates and pooling.
    """
    if run.network == "atlasnet":
        model: PointCloudNet = AtlasNet(
            template=run.template,
            primitives=run.primitives,
            num_points=run.num_points,
            bottleneck=run.bottleneck,
            hidden=run.hidden,
            hidden_layers=run.hidden_layers,
            sphere_level=4,
            grid_size=run.grid_size,
            sphere_construction="pymesh",
        )
    elif run.network == "psgn":
        model = PSGN(num_points=run.num_points, bottleneck=run.bottleneck, hidden=(run.hidden,) * 3)
    else:
        model = FoldNet(grid_size=run.grid_size or 0, bottleneck=run.bottleneck, hidden=(run.hidden,) * 2)
    channel_order = "bgr" if rgb_input and run.channel_order == "bgr" else "rgb"
    model.encoder = ResNet18Encoder(run.bottleneck, channel_order=channel_order, pooling="fixed7")
    return model


def load_converted_state(
    model: PointCloudNet, state: Mapping[str, Any], run: OriginalRun, *, source: str | Path
) -> list[str]:
    """Loads an original state dict into ``model`` (from ``build_compatible_model(run)``).

    Every key of ``state`` must be one the original architecture with ``run``'s settings has, with its exact
    shape, and every parameter and buffer of ``model`` is set. Tolerated and reported: a ``module.`` prefix
    on every key (weights saved from ``nn.DataParallel``) and absent BatchNorm ``num_batches_tracked``
    counters (older PyTorch; unused in eval mode).

    Args:
        model: the target network.
        state: the original's ``model_state_dict`` / ``network.pth`` content (name → tensor).
        run: the run's settings.
        source: the file the state came from (for messages).

    Returns:
        Notes on what was tolerated (empty for a clean checkpoint).

    Raises:
        OriginalCheckpointError: a key the architecture lacks, a missing key, a shape that differs, or a value
            that is not a tensor; the message names the file, the key, and the expected shape and the run
            setting it follows from.
    """
    notes: list[str] = []
    state = _strip_data_parallel(dict(state), notes)
    rules = {rule.original: rule for rule in _rules(model, run)}
    unexpected = sorted(set(state) - set(rules))
    if unexpected:
        raise OriginalCheckpointError(
            f"{source}: {len(unexpected)} key(s) that the original {_describe(run)} does not have: {_head(unexpected)}"
        )
    converted: dict[str, torch.Tensor] = {}
    missing_counters = []
    for key, rule in rules.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                missing_counters.append(key)
                value = torch.zeros(rule.shape, dtype=torch.long)
            else:
                raise OriginalCheckpointError(
                    f"{source}: missing key {key!r} (expected shape {list(rule.shape)} for the original "
                    f"{_describe(run)})"
                )
        else:
            value = state[key]
        if not isinstance(value, torch.Tensor):
            raise OriginalCheckpointError(f"{source}: {key!r} holds a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != rule.shape:
            raise OriginalCheckpointError(
                f"{source}: {key!r} has shape {list(value.shape)}, expected {list(rule.shape)} for the original "
                f"{_describe(run)} (settings from {_setting_sources(run)})"
            )
        for target, transform in rule.targets:
            converted[target] = transform(value)
    if missing_counters:
        notes.append(f"{len(missing_counters)} BatchNorm num_batches_tracked counters absent (set to 0; unused)")
    ours = model.state_dict()
    unset = sorted(set(ours) - set(converted))
    if unset:  # a bug of this module, not of the checkpoint
        raise RuntimeError(f"conversion leaves {len(unset)} parameter(s) of the model unset: {_head(unset)}")
    model.load_state_dict(
        {key: value.to(dtype=ours[key].dtype).clone() for key, value in converted.items()}, strict=True
    )
    return notes


# ---------------------------------------------------------------------------------------------- mapping


def _identity(value: torch.Tensor) -> torch.Tensor:
    return value


def _rules(model: PointCloudNet, run: OriginalRun) -> list[_Rule]:
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    rules = [
        _Rule(f"encoder.{key[len('encoder.net.') :]}", shape, ((key, _identity),))
        for key, shape in ours.items()
        if key.startswith("encoder.net.")
    ]
    if run.network == "atlasnet":
        rules += _atlasnet_rules(ours, run)
    elif run.network == "psgn":
        rules += _psgn_rules(ours, run)
    else:
        rules += _foldnet_rules(ours, run)
    return rules


def _same(ours: Mapping[str, tuple[int, ...]], original: str, target: str, fields: tuple[str, ...]) -> list[_Rule]:
    return [_Rule(f"{original}.{f}", ours[f"{target}.{f}"], ((f"{target}.{f}", _identity),)) for f in fields]


def _atlasnet_rules(ours: Mapping[str, tuple[int, ...]], run: OriginalRun) -> list[_Rule]:
    rules = []
    for i in range(run.primitives):
        original, target = f"decoder.decoder.{i}", f"decoders.{i}"
        rules += _same(ours, f"{original}.conv1", f"{target}.first", _CONV)
        rules += _same(ours, f"{original}.bn1", f"{target}.first_norm", _BN_BUFFERS)
        rules += _same(ours, f"{original}.conv2", f"{target}.body.0", _CONV)
        rules += _same(ours, f"{original}.bn2", f"{target}.body.1", _BN_BUFFERS)
        for j in range(run.hidden_layers):
            rules += _same(ours, f"{original}.conv_list.{j}", f"{target}.body.{3 + 3 * j}", _CONV)
            rules += _same(ours, f"{original}.bn_list.{j}", f"{target}.body.{4 + 3 * j}", _BN_BUFFERS)
        rules += _same(ours, f"{original}.last_conv", f"{target}.last", _CONV)
    return rules


def _psgn_rules(ours: Mapping[str, tuple[int, ...]], run: OriginalRun) -> list[_Rule]:
    rules = []
    for layer in range(3):
        rules += _same(ours, f"decoder.fc{layer + 1}", f"mlp.{3 * layer}", _CONV)
        rules += _same(ours, f"decoder.bn{layer + 1}", f"mlp.{3 * layer + 1}", _BN_BUFFERS)
    points = run.num_points

    def point_major(value: torch.Tensor) -> torch.Tensor:
        # original output row c·N + p (coordinate c of point p) becomes our row p·3 + c
        return value.reshape(3, points, *value.shape[1:]).transpose(0, 1).reshape(value.shape)

    for field in _CONV:
        rules.append(_Rule(f"decoder.fc4.{field}", ours[f"mlp.9.{field}"], ((f"mlp.9.{field}", point_major),)))
    return rules


def _foldnet_rules(ours: Mapping[str, tuple[int, ...]], run: OriginalRun) -> list[_Rule]:
    rules = []
    code = run.bottleneck
    for fold, point_dim in ((1, 2), (2, 3)):
        original, target = f"decoder.folding{fold}", f"fold{fold}"
        hidden = ours[f"{target}.point_in.weight"][0]

        def codeword_part(value: torch.Tensor) -> torch.Tensor:
            return value[:, :code, 0]  # cat((codeword, points)): the codeword comes first

        def point_part(value: torch.Tensor) -> torch.Tensor:
            return value[:, code:, :]

        rules.append(
            _Rule(
                f"{original}.0.weight",
                (hidden, code + point_dim, 1),
                ((f"{target}.code_in.weight", codeword_part), (f"{target}.point_in.weight", point_part)),
            )
        )
        rules += _same(ours, f"{original}.0", f"{target}.point_in", ("bias",))
        rules += _same(ours, f"{original}.1", f"{target}.rest.0", _BN_BUFFERS)
        rules += _same(ours, f"{original}.3", f"{target}.rest.2", _CONV)
        rules += _same(ours, f"{original}.4", f"{target}.rest.3", _BN_BUFFERS)
        rules += _same(ours, f"{original}.6", f"{target}.rest.5", _CONV)
    return rules


# ---------------------------------------------------------------------------------------------- helpers


def _strip_data_parallel(state: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    if state and all(isinstance(key, str) and key.startswith("module.") for key in state):
        notes.append("'module.' prefix (weights saved from nn.DataParallel) removed from every key")
        return {key[len("module.") :]: value for key, value in state.items()}
    return state


def _describe(run: OriginalRun) -> str:
    if run.network == "atlasnet":
        shape = f"{run.primitives} {run.template.upper()} primitive(s), hidden {run.hidden} × {run.hidden_layers}"
    elif run.network == "psgn":
        shape = f"{run.num_points} points, hidden {run.hidden}"
    else:
        shape = f"{run.grid_size}×{run.grid_size} grid, hidden {run.hidden}"
    return f"{run.network} ({shape}, bottleneck {run.bottleneck})"


def _setting_sources(run: OriginalRun) -> str:
    sources = sorted(set(run.sources.values()))
    return ", ".join(sources) if sources else "defaults"


def _head(keys: list[str]) -> str:
    shown = ", ".join(repr(key) for key in keys[:_SHOWN])
    return shown + (f", … ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")
