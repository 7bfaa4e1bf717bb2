"""Reading images as RGB in [0, 1], the one reader of the project (perceptual features, datasets).

Every image mode Pillow can return is read with its real intensities, or refused with a message naming the
file:

* 8-bit modes (``1``, ``L``, ``LA``, ``La``, ``P``, ``PA``, ``RGB``, ``RGBA``, ``RGBa``, ``RGBX``, ``CMYK``,
  ``YCbCr``, ``LAB``, ``HSV``): converted to RGB(A) by Pillow (colour spaces by its conversions,
  premultiplied alpha undone), divided by 255;
* 16-bit greyscale (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``; a 16-bit PNG is one of these): divided by
  65535 (Pillow's own ``convert`` would clip them to 255, i.e. white);
* 32-bit float greyscale (``F``, e.g. a float TIFF): taken as is when every value is finite and in [0, 1],
  refused otherwise (its range is not defined by the file);
* 32-bit integer greyscale (``I``): a PNG (older Pillow reads 16-bit PNGs so) is divided by 65535; any other
  file is refused, as its range is not defined.

Resizing uses one filter everywhere, on the float32 intensities: bilinear with antialiasing when shrinking
(``torch.nn.functional.interpolate(..., mode="bilinear", antialias=True, align_corners=False)``, the same
kernel as Pillow's ``BILINEAR`` resize, which it matches to about 1e-5). Alpha is dropped (the stored RGB
is kept, docs/shapenet.md) or composited onto white before resizing.

Imports only numpy and Pillow at module level (torch inside the functions that resize or build tensors).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ALPHA_MODES = ("drop", "white")
_EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _validate_options(size: int | None, alpha: str) -> None:
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}")


def _grey_float(image: Image.Image, path: Path) -> np.ndarray | None:
    """(H, W) float32 intensities in [0, 1] of a greyscale image deeper than 8 bits; None for 8-bit modes."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and image.format == "PNG"):
        return np.asarray(image, dtype=np.float32) / np.float32(65535.0)
    if mode == "I":
        raise ValueError(
            f"image {path} is a 32-bit integer image (mode I, format {image.format}): its intensity range is not "
            "defined by the file; save it as an 8- or 16-bit image"
        )
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ValueError(f"image {path} (32-bit float, mode F) holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"image {path} (32-bit float, mode F) has values in [{low:.4g}, {high:.4g}]; a float image must "
                "hold intensities in [0, 1]"
            )
        return values
    if mode in _EIGHT_BIT_MODES:
        return None
    raise ValueError(f"image {path} has the unsupported image mode {mode!r}")


def _eight_bit_rgba(image: Image.Image) -> Image.Image:
    if image.mode == "La":  # Pillow converts La to nothing: undo the premultiplied alpha by hand
        grey, alpha = (np.asarray(band, dtype=np.float64) for band in image.split())
        straight = np.where(alpha > 0, grey * 255.0 / np.maximum(alpha, 1.0), 0.0)
        grey_band = Image.fromarray(np.clip(np.rint(straight), 0, 255).astype(np.uint8))
        image = Image.merge("LA", (grey_band, image.getchannel("a")))
    return image.convert("RGBA")


def resize_batch(batch: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) float images → (B, C, size, size) with the one filter (bilinear, antialiased), clipped
    to [0, 1]; returned unchanged when already that size."""
    import torch.nn.functional as F

    if batch.shape[-2:] == (size, size):
        return batch
    resized = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp_(0.0, 1.0)


def resize_image(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, 3) float32 RGB image in [0, 1] to (size, size, 3) with :func:`resize_batch`."""
    import torch

    if rgb.shape[:2] == (size, size):
        return rgb
    tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    return resize_batch(tensor, size)[0].permute(1, 2, 0).numpy()


def read_image(path: str | os.PathLike, *, size: int | None = None, alpha: str = "drop") -> np.ndarray:
    """One image file as an (H, W, 3) float32 RGB array in [0, 1] (see the module docstring for the modes).

    Args:
        path: the file (anything Pillow reads: PNG, JPEG, TIFF, ...).
        size: resize to size × size (aspect ratio not kept, no crop); None keeps the stored size.
        alpha: "drop" (default: keep the stored RGB, ignore alpha, as SVR networks see 3D-R2N2 renders) or
            "white" (composite onto a white background).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an image, or a mode whose intensities are undefined (the message names the file).
    """
    _validate_options(size, alpha)
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            grey = _grey_float(image, path)
            rgba = None if grey is not None else np.asarray(_eight_bit_rgba(image), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"could not read image {path}: {exc}") from exc
    if rgba is None:
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    elif alpha == "white":
        a = rgba[..., 3:]
        rgb = rgba[..., :3] * a + (1.0 - a)
    else:
        rgb = np.ascontiguousarray(rgba[..., :3])  # alpha dropped, the stored colour kept
    return rgb if size is None else resize_image(rgb, size)


def load_images(paths: Sequence[str | os.PathLike], *, size: int | None = 224, alpha: str = "drop") -> torch.Tensor:
    """Reads image files as an RGB float batch in [0, 1] with :func:`read_image`.

    Args:
        paths: N image files.
        size: resize every image to size×size (the reader's bilinear filter, no crop, aspect ratio not kept);
            None keeps the stored size (then all images must have the same size).
        alpha: "drop" (default) or "white", as in :func:`read_image`.

    Returns:
        (N, 3, size, size) float32 tensor in [0, 1], in the order of ``paths``.

    Raises:
        ValueError: an unreadable file, an unsupported mode, or (``size=None``) images of different sizes;
            the message names the file.
    """
    import torch

    _validate_options(size, alpha)
    if len(paths) == 0:
        raise ValueError("load_images needs at least one path")
    images: list[torch.Tensor] = []
    for path in paths:
        tensor = torch.from_numpy(np.ascontiguousarray(read_image(path, size=size, alpha=alpha))).permute(2, 0, 1)
        if images and tensor.shape != images[0].shape:
            raise ValueError(
                f"image {path} has size {tuple(tensor.shape[1:])}, expected {tuple(images[0].shape[1:])} like "
                f"{paths[0]} (pass size= to resize)"
            )
        images.append(tensor)
    return torch.stack(images)
