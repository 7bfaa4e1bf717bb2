"""Loading a released network of the original code, and reading images as the original read them."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import PointCloudNet
from models.original.convert import OriginalCheckpointError, build_compatible_model, load_converted_state
from models.original.runs import EXPERIMENTS, OriginalRun, describe_original_run

_R2N2_CROP, _R2N2_SIZE = 127, 224


def load_original_run(
    run_dir: str | Path, *, device: str | torch.device = "cpu", checkpoint: str = "last", rgb_input: bool = True
) -> tuple[PointCloudNet, OriginalRun]:
    """A network of the original release as one of this project's models, in eval mode, and its settings.

    The model computes what the original computed at test time: the same ResNet-18 (``AvgPool2d(7)``), the
    same decoder weights, BatchNorm with the stored running statistics (eval mode), the same regular
    templates (PyMesh's level-4 icosphere, 2562 points, for SPHERE; the int(sqrt(number_points_eval //
    primitives))² grid of each SQUARE patch; FoldNet's int(sqrt(number_points))² grid) and PSGN's point
    order. ``model.predict(images)`` gives (B, ``run.predicted_points``, 3) points, in the object frame
    for ``run.mode == "object"`` and in the camera frame for "viewer" (rotate back with P R, docs/shapenet.md).

    Args:
        run_dir: a run folder of ``log/train_synthetic``, ``log/more_imgs`` or ``log/more_shapes``.
        device: where the model goes ("cpu", "cuda", "cuda:N").
        checkpoint: "last" (the weights the original's evaluation used) or "best" (best validation epoch).
        rgb_input: True (default): the model takes RGB images in [0, 1] like every network of this project
            (it reverses the channels itself for the synthetic runs, which were trained on BGR images).
            False: it expects exactly the original's input (BGR for the synthetic runs; see
            ``run.channel_order``).

    Returns:
        (model, run): ``run.checkpoint_info`` holds the weights' SHA-256, the saved epoch and loss (synthetic
        runs), conversion notes and ``model_input`` ("rgb" or "bgr": what the model expects);
        ``run.provenance()`` says the weights come from the original release.

    Raises:
        OriginalRunError: the folder's settings cannot be read (see ``describe_original_run``).
        OriginalCheckpointError: the weights file is unreadable or does not fit (the message names the key).
    """
    run = describe_original_run(run_dir, checkpoint=checkpoint)
    content, digest = _read_weights(run.weights_file)
    state, saved = _state_dict(content, run)
    model = build_compatible_model(run, rgb_input=rgb_input)
    notes = load_converted_state(model, state, run, source=run.weights_file)
    info: dict[str, Any] = {
        "weights_sha256": digest,
        **saved,
        "conversion_notes": notes,
        "model_input": "rgb" if rgb_input else run.channel_order,
    }
    return model.to(torch.device(device)).eval(), dataclasses.replace(run, checkpoint_info=info)


def original_image(path: str | os.PathLike, experiment: str, *, channel_order: str = "rgb") -> torch.Tensor:
    """An image file read as the original code read it at test time for ``experiment``.

    * "train_synthetic": ``cv2.imread`` + ``ToTensor``: 8-bit colour, alpha dropped (not composited), the
      file's size (224×224), values / 255; the original fed BGR;
    * "more_imgs" (yaw renders): PIL RGBA, ``ToTensor``, the first three channels (no crop or resize);
    * "more_shapes" (R2N2 renders, 137×137 RGBA): ``CenterCrop(127)``, ``Resize(224)`` (bilinear, on the RGBA
      image: Pillow resizes RGBA with premultiplied alpha), ``ToTensor``, the first three channels.

    No ImageNet normalisation in any case.

    Args:
        path: the image file.
        experiment: one of ``EXPERIMENTS``.
        channel_order: "rgb" (default: for models from ``load_original_run(..., rgb_input=True)``) or "bgr"
            (the original's own tensor for the synthetic runs).

    Returns:
        (3, H, W) float32 tensor in [0, 1].
    """
    from PIL import Image

    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {EXPERIMENTS}, got {experiment!r}")
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    try:
        with Image.open(path) as opened:
            if experiment == "train_synthetic":
                picture = opened.convert("RGB")
            else:
                picture = opened.convert("RGBA")
                if experiment == "more_shapes":
                    width, height = picture.size
                    left, top = int(round((width - _R2N2_CROP) / 2.0)), int(round((height - _R2N2_CROP) / 2.0))
                    picture = picture.crop((left, top, left + _R2N2_CROP, top + _R2N2_CROP))
                    picture = picture.resize((_R2N2_SIZE, _R2N2_SIZE), Image.BILINEAR)
            array = np.asarray(picture, dtype=np.float32)[:, :, :3] / 255.0
    except OSError as error:
        raise ValueError(f"image {path} is not readable: {error}") from None
    if channel_order == "bgr":
        array = array[:, :, ::-1]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _read_weights(path: Path) -> tuple[Any, str]:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        # weights_only: the release's files hold tensors and plain containers; no pickled code runs.
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means the same thing to the user
        raise OriginalCheckpointError(
            f"{path} is not a readable PyTorch file ({type(error).__name__}: {error}); download it again "
            "(bash download/download_checkpts.sh)"
        ) from None
    return content, digest


def _state_dict(content: Any, run: OriginalRun) -> tuple[dict[str, Any], dict[str, Any]]:
    path = run.weights_file
    if not isinstance(content, dict):
        raise OriginalCheckpointError(f"{path} holds a {type(content).__name__}, not a state dict")
    if run.experiment != "train_synthetic":
        return content, {}
    # train_toydata.py saves {"epoch", "model_state_dict", "optimizer_state_dict", "loss"}
    if "model_state_dict" not in content:
        raise OriginalCheckpointError(
            f"{path} has no 'model_state_dict' (keys: {sorted(map(str, content))[:8]}); the synthetic runs "
            "save a dict with epoch, model_state_dict, optimizer_state_dict and loss"
        )
    saved = {}
    for key in ("epoch", "loss"):
        value = content.get(key)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)):
            saved[f"saved_{key}"] = value
    state = content["model_state_dict"]
    if not isinstance(state, dict):
        raise OriginalCheckpointError(f"{path}: model_state_dict holds a {type(state).__name__}, not a dict")
    return state, saved
