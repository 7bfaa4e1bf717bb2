"""8-bit sRGB and PNG encoding shared by the renderers (synthetic scenes, ShapeNet meshes, the stand-in's views)."""

from __future__ import annotations

import io

import numpy as np


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] → 8-bit sRGB (IEC 61966-2-1 transfer curve, rounded to nearest)."""
    linear = np.clip(linear, 0.0, 1.0)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)
    return np.floor(encoded * 255.0 + 0.5).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB or (H, W, 4) uint8 straight-alpha RGBA → PNG bytes (same array, same bytes).

    Raises:
        ValueError: another shape or dtype.
    """
    from PIL import Image  # imported here: Pillow is only needed when images are written

    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) or (H, W, 4) uint8, got {image.shape} {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB" if image.shape[2] == 3 else "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()
