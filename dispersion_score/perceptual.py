"""Perceptual image features for the image dispersion score (docs/library.md).

An RGB image in [0, 1] is resized to 224×224 (the image reader's bilinear filter,
:func:`dispersion_score.images.resize_image`), normalised with the ImageNet mean and
std, and passed through torchvision's VGG16 ``features[:16]`` (the output of relu3_3, 256×56×56). The
channel-wise maximum of that map is the 3136-d feature (``pool="channel_max"``, the paper's choice);
``pool="none"`` keeps the whole 802,816-d map. :func:`pixel_features` gives raw pixels instead.

Weights are never downloaded here. ``weights="imagenet"`` reads torchvision's cached
``vgg16-397923af.pth`` from the torch hub cache (``$TORCH_HOME/hub/checkpoints``); a path to a state-dict
file works too; ``weights="random"`` (explicit, seeded) exists for tests, and :func:`feature_label` marks
features computed with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dispersion_score._validation import resolve_device
from dispersion_score.images import ALPHA_MODES, load_images, resize_batch

if TYPE_CHECKING:
    from torchvision.models import VGG16_Weights

IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLS = ("channel_max", "none")
__all__ = ["ALPHA_MODES", "feature_label", "load_images", "perceptual_features", "pixel_features", "vgg16_relu3_3"]
# torchvision's VGG16 `features` layout up to relu3_3: conv sizes, "M" = 2×2 max-pool. It yields modules
# 0..15 with the same indices (and state-dict keys) as `vgg16().features[:16]`.
_VGG16_RELU3_3_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256)
_RELU3_3_CHANNELS = 256
_RELU3_3_SIZE = 56
_NUM_LAYERS = 16
# torchvision's names for the VGG16 weights (VGG16_Weights members, "DEFAULT", and this library's "imagenet").
_TORCHVISION_NAMES = ("imagenet", "DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_FEATURES")


def _build_relu3_3_layers() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_RELU3_3_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(item)
    return nn.Sequential(*layers)


def _resolve_weights(weights: Any) -> tuple[str, Any]:
    """Returns (kind, value): ("random", None), ("enum", VGG16_Weights) or ("file", Path)."""
    if isinstance(weights, str) and weights == "random":
        return "random", None
    try:
        from torchvision.models import VGG16_Weights  # late: torchvision takes ~1 s to import
    except ImportError:  # an optional dependency (extra "imagenet"): files and "random" work without it
        if isinstance(weights, str) and weights in _TORCHVISION_NAMES:
            raise ValueError(
                f"weights={weights!r} names torchvision's VGG16 weights, and torchvision is not installed: install "
                "the torchvision built for your torch (or this library with its extra: pip install "
                "'/path/to/dispersion-score[imagenet]'), or pass the weights file itself "
                "(weights='/path/to/vgg16-397923af.pth', --weights on the command line)"
            ) from None
        if isinstance(weights, str | os.PathLike):
            return "file", Path(weights)
        raise
    if isinstance(weights, VGG16_Weights):
        return "enum", weights
    if isinstance(weights, str):
        if weights == "random":
            return "random", None
        if weights == "imagenet":
            return "enum", VGG16_Weights.IMAGENET1K_V1
        if weights in VGG16_Weights.__members__ or weights == "DEFAULT":
            return "enum", VGG16_Weights[weights]
    if isinstance(weights, str | os.PathLike):
        return "file", Path(weights)
    raise ValueError(
        f"weights must be 'imagenet', 'random', a torchvision VGG16_Weights value or a path to a VGG16 "
        f"state-dict file, got {weights!r}"
    )


def _cached_weights_file(enum: VGG16_Weights) -> Path:
    # The same file name and directory torchvision's load_state_dict_from_url would use.
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)


def _missing_weights_message(enum: VGG16_Weights, expected: Path) -> str:
    name = expected.name
    return (
        f"pretrained VGG16 weights ({enum}) not found at {expected}; this library never downloads weights. "
        f"Either copy {name} (from {enum.url}) into {expected.parent} (the torch hub cache; set TORCH_HOME "
        f"to use another cache directory), or pass the file directly: weights='/path/to/{name}' "
        f"(command line: --weights /path/to/{name}). weights='random' gives untrained features for tests only."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG16 weights file not found: {path} (expected 'imagenet', 'random', a VGG16_Weights name or "
            f"a path to a state-dict file such as vgg16-397923af.pth)"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for unreadable files
        raise ValueError(f"could not read VGG16 weights file {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(
            f"VGG16 weights file {path} does not hold a state dict (a dict of tensors); got {type(loaded).__name__}"
        )
    return loaded


def _vgg16_layouts() -> dict[str, dict[str, tuple[int, ...]]]:
    """Every key and shape of the state dicts accepted as VGG16 weights, by description: torchvision's full
    VGG16, its ``features`` part, and features[:16] (what :func:`vgg16_relu3_3` holds), the last two with or
    without the ``features.`` prefix. Written from the architecture (configuration D of Simonyan & Zisserman,
    2015, in torchvision's module numbering), so it needs neither torchvision nor memory; a test compares it
    with torchvision's own ``vgg16().state_dict()``."""
    full = _vgg16_shapes()
    features = {key.removeprefix("features."): shape for key, shape in full.items() if key.startswith("features.")}
    relu3_3 = {key: shape for key, shape in features.items() if int(key.split(".", 1)[0]) < _NUM_LAYERS}
    prefixed = {f"features.{key}": shape for key, shape in relu3_3.items()}
    return {
        "a full torchvision VGG16 state dict": full,
        "VGG16's features part": features,
        "VGG16's features part (features.*)": {f"features.{key}": shape for key, shape in features.items()},
        "VGG16 features[:16] (conv1_1 … relu3_3)": relu3_3,
        "VGG16 features[:16] (features.*)": prefixed,
    }


# VGG16 (configuration D): 3×3 convolutions with these output channels, "M" = 2×2 max-pool; then three fully
# connected layers on the 512×7×7 pooled map. In torchvision each convolution is followed by a ReLU module and
# the classifier is Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear: the indices below follow from that.
_VGG16_LAYOUT: tuple[int | str, ...] = (*_VGG16_RELU3_3_LAYOUT, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_VGG16_CLASSIFIER = ((0, 512 * 7 * 7, 4096), (3, 4096, 4096), (6, 4096, 1000))


def _vgg16_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(item), channels, 3, 3)
        shapes[f"features.{index}.bias"] = (int(item),)
        index, channels = index + 2, int(item)
    for index, inputs, outputs in _VGG16_CLASSIFIER:
        shapes[f"classifier.{index}.weight"] = (outputs, inputs)
        shapes[f"classifier.{index}.bias"] = (outputs,)
    return shapes


def _relu3_3_state_dict(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The features[:16] weights of a file whose every key and shape is one of :func:`_vgg16_layouts`.

    A file of another network is refused, including one that shares VGG16's first layers (VGG19 differs from
    layer 16 on, VGG16-BN from layer 1): identifying the file by its first 16 layers alone would serve VGG19's
    features as "VGG16 relu3_3".
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    layouts = _vgg16_layouts()
    if not any(shapes == layout for layout in layouts.values()):
        closest = min(layouts.values(), key=lambda layout: len(set(layout) ^ set(shapes)))
        missing = sorted(set(closest) - set(shapes), key=_layer_order)
        unexpected = sorted(set(shapes) - set(closest), key=_layer_order)
        wrong = sorted((k for k in set(closest) & set(shapes) if closest[k] != shapes[k]), key=_layer_order)
        details = [f"missing keys {missing[:6]}"] if missing else []
        details += [f"unexpected keys {unexpected[:6]}"] if unexpected else []
        details += (
            ["wrong shapes " + ", ".join(f"{k}: {shapes[k]} != {closest[k]}" for k in wrong[:4])] if wrong else []
        )
        raise ValueError(
            f"VGG16 weights file {path} is not a torchvision VGG16 state dict (every key and shape is compared "
            f"with {', '.join(layouts)}; " + "; ".join(details) + ")"
        )
    state = {key.removeprefix("features."): value for key, value in state.items() if not key.startswith("classifier.")}
    return {key: value for key, value in state.items() if int(key.split(".", 1)[0]) < _NUM_LAYERS}


def _layer_order(key: str) -> tuple[int, str]:
    index = key.removeprefix("features.").split(".", 1)[0]
    return (int(index), key) if index.isdigit() else (10**6, key)


def _load_relu3_3_weights(layers: nn.Sequential, path: Path) -> None:
    state = _relu3_3_state_dict(_read_state_dict(path), path)
    layers.load_state_dict({k: v.float() for k, v in state.items()})


def vgg16_relu3_3(weights: str | os.PathLike | VGG16_Weights = "imagenet", *, seed: int = 0) -> nn.Sequential:
    """VGG16 ``features[:16]`` (conv1_1 … relu3_3) in eval mode on the CPU, with the given weights.

    Args:
        weights: "imagenet" (torchvision's IMAGENET1K_V1 file from the torch hub cache), a
            ``torchvision.models.VGG16_Weights`` value or its name, a path to a state-dict file (a full
            VGG16 state dict or its ``features`` part), or "random" (torchvision's VGG initialisation,
            Kaiming-normal convolutions and zero biases, drawn from a generator seeded with ``seed``).
        seed: seed of the random weights; ignored otherwise.

    Returns:
        ``nn.Sequential`` of 16 modules mapping (B, 3, H, W) normalised images to (B, 256, H/4, W/4).

    Raises:
        FileNotFoundError: the weights file (or the cached ImageNet file) does not exist; the message says
            how to supply it. Nothing is ever downloaded.
        ValueError: the file is unreadable or is not a VGG16 state dict.
    """
    kind, value = _resolve_weights(weights)
    if kind == "enum" and value.name == "IMAGENET1K_FEATURES":
        # Those weights expect 0..255 inputs with another mean; silently normalising them like the
        # IMAGENET1K_V1 weights would give meaningless features.
        raise ValueError("VGG16_Weights.IMAGENET1K_FEATURES is not supported; use IMAGENET1K_V1 ('imagenet')")
    with torch.device("meta"):
        layers = _build_relu3_3_layers()
    layers = layers.to_empty(device="cpu")
    if kind == "random":
        generator = torch.Generator().manual_seed(seed)
        for module in layers:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
    elif kind == "enum":
        path = _cached_weights_file(value)
        if not path.is_file():
            raise FileNotFoundError(_missing_weights_message(value, path))
        _load_relu3_3_weights(layers, path)
    else:
        _load_relu3_3_weights(layers, value)
    return layers.eval().requires_grad_(False)


def feature_label(weights: str | os.PathLike | VGG16_Weights = "imagenet", pool: str = "channel_max") -> str:
    """A name for the features computed with these settings, for result files and plots.

    Examples: ``vgg16_relu3_3_channelmax[imagenet1k_v1]``, ``vgg16_relu3_3_full[file:vgg16-397923af.pth]``,
    ``vgg16_relu3_3_channelmax[random-weights]``.
    """
    _validate_pool(pool)
    kind, value = _resolve_weights(weights)
    if kind == "random":
        source = "random-weights"
    elif kind == "enum":
        source = value.name.lower()
    else:
        source = f"file:{value.name}"
    return f"vgg16_relu3_3_{'channelmax' if pool == 'channel_max' else 'full'}[{source}]"


def _validate_pool(pool: str) -> None:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")


def _as_image_batch(images: Any) -> torch.Tensor:
    # A list of arrays is stacked by numpy first: torch converts such lists element by element (slow, warns).
    tensor = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W) (RGB), got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[2] == 0 or tensor.shape[3] == 0:
        raise ValueError(f"images must be a non-empty (N, 3, H, W) batch, got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(
            f"images must be floating point RGB in [0, 1], got dtype {tensor.dtype} (divide uint8 images by 255)"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("images contain NaN or inf; expected RGB values in [0, 1]")
    low, high = float(tensor.min()), float(tensor.max())
    if low < -1e-4 or high > 1 + 1e-4:
        raise ValueError(f"images must be RGB in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    return tensor


def _resize(batch: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] → (B, 3, size, size) with the image reader's filter."""
    return resize_batch(batch, size)


def _normalize_imagenet(batch: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch - mean) / std


def _is_path_list(images: Any) -> bool:
    return (
        isinstance(images, Sequence)
        and not isinstance(images, str | bytes)
        and len(images) > 0
        and all(isinstance(p, str | os.PathLike) for p in images)
    )


def _image_source(images: Any) -> tuple[int, Any]:
    """Validates ``images`` once; returns (N, a path list or an (N, 3, H, W) tensor)."""
    if _is_path_list(images):
        return len(images), list(images)
    tensor = _as_image_batch(images)
    return int(tensor.shape[0]), tensor


def _batches(source: Any, batch_size: int, image_size: int):
    """Yields batches (B, 3, H, W) in [0, 1]; file lists are read one batch at a time (alpha dropped)."""
    for start in range(0, len(source), batch_size):
        chunk = source[start : start + batch_size]
        yield load_images(chunk, size=image_size) if isinstance(chunk, list) else chunk


def perceptual_features(
    images: Any,
    *,
    weights: str | os.PathLike | VGG16_Weights = "imagenet",
    pool: str = "channel_max",
    device: str | torch.device | None = None,
    batch_size: int = 32,
    progress: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """VGG16 relu3_3 perceptual features of RGB images (docs/library.md).

    Args:
        images: (N, 3, H, W) float RGB in [0, 1] (tensor or array; any H, W, resized to 224×224 with the
            image reader's bilinear filter), or a sequence of N image file paths, read ``batch_size`` at a
            time with :func:`dispersion_score.images.load_images` (alpha dropped) so memory stays O(batch).
        weights: see :func:`vgg16_relu3_3`; "random" only for tests (label the result with
            :func:`feature_label`).
        pool: "channel_max" — max over the 256 channels of the 256×56×56 map → (N, 3136), the paper's
            feature; "none" — the whole map flattened in (C, H, W) order → (N, 802816).
        device: where the network runs; None = the device of an ``images`` tensor, else the CPU.
        batch_size: images per forward pass.
        progress: show a tqdm bar (stderr).
        seed: seed of random weights; ignored for other weights.

    Returns:
        (N, d) float32 array, d = 3136 or 802816, rows in input order.
    """
    _validate_pool(pool)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n, source = _image_source(images)
    device = resolve_device(device, source)
    network = vgg16_relu3_3(weights, seed=seed).to(device)
    dim = _RELU3_3_SIZE**2 if pool == "channel_max" else _RELU3_3_CHANNELS * _RELU3_3_SIZE**2
    out = np.empty((n, dim), dtype=np.float32)
    row = 0
    with torch.no_grad(), tqdm(total=n, desc="VGG16 features", unit="img", disable=not progress) as bar:
        for batch in _batches(source, batch_size, IMAGE_SIZE):
            x = _normalize_imagenet(_resize(batch.to(device=device, dtype=torch.float32), IMAGE_SIZE))
            fmap = network(x)
            pooled = fmap.amax(dim=1) if pool == "channel_max" else fmap
            out[row : row + len(batch)] = pooled.reshape(len(batch), -1).cpu().numpy()
            row += len(batch)
            bar.update(len(batch))
    return out


def pixel_features(images: Any, *, size: int = IMAGE_SIZE) -> np.ndarray:
    """Raw-pixel features: RGB in [0, 1] resized to size×size (the image reader's bilinear filter), flattened.

    Args:
        images: (N, 3, H, W) float RGB in [0, 1], or a sequence of N image file paths.
        size: side of the resized image.

    Returns:
        (N, 3·size·size) float32 array in (C, H, W) order, no normalisation.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    _, source = _image_source(images)
    parts = [_resize(batch.float(), size).reshape(len(batch), -1) for batch in _batches(source, 256, size)]
    return torch.cat(parts).numpy().astype(np.float32, copy=False)
