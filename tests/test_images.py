"""The one image reader (dispersion_score.images): every Pillow mode with its real intensities, or refused
(issue 9, item 3). Each file is written here in a real format with a known intensity; the expected RGB is
worked out by hand (or, for colour-space modes, by the colour-space's own formula)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dispersion_score.features import feature_matrix
from dispersion_score.images import load_images, read_image
from dispersion_score.perceptual import pixel_features


def _grey16(path, value: int, shape=(6, 5)):
    Image.fromarray(np.full(shape, value, np.uint16)).save(path)  # mode I;16
    return path


def test_sixteen_bit_grey_png_keeps_its_intensity(tmp_path):
    path = _grey16(tmp_path / "half.png", 32768)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    rgb = read_image(path)
    assert rgb.shape == (6, 5, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb, 32768 / 65535, rtol=1e-6)


def test_two_dark_sixteen_bit_images_are_not_the_same_image(tmp_path):
    # Before: both loaded as white (Pillow clips I;16 to 255 when converting), so their distance was 0.
    paths = [_grey16(tmp_path / "a.png", 8000, (8, 8)), _grey16(tmp_path / "b.png", 24000, (8, 8))]
    D = feature_matrix(pixel_features(paths, size=8))
    expected = ((24000 - 8000) / 65535) ** 2  # squared difference per pixel, mean over the 192 values
    assert D[0, 1] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("mode", "fmt", "value", "expected"),
    [
        ("I;16B", "TIFF", 16384, 16384 / 65535),
        ("I;16", "TIFF", 49152, 49152 / 65535),
        ("L", "PNG", 51, 0.2),
        ("1", "PNG", 1, 1.0),
        ("F", "TIFF", 0.25, 0.25),
    ],
)
def test_grey_modes(tmp_path, mode, fmt, value, expected):
    path = tmp_path / f"img.{fmt.lower()}"
    Image.new(mode, (4, 3), value).save(path, format=fmt)
    with Image.open(path) as image:
        assert image.mode == mode
    np.testing.assert_allclose(read_image(path), expected, rtol=1e-6)


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N"])
def test_every_sixteen_bit_layout(mode):
    from dispersion_score.images import _grey_float

    image = Image.new(mode, (3, 2), 40000)
    np.testing.assert_allclose(_grey_float(image, "in-memory"), 40000 / 65535, rtol=1e-6)


@pytest.mark.parametrize(
    ("mode", "colour", "expected_rgb"),
    [
        ("RGB", (255, 51, 0), (1.0, 0.2, 0.0)),
        ("RGBA", (255, 51, 0, 128), (1.0, 0.2, 0.0)),  # alpha dropped, stored colour kept
        ("RGBX", (255, 51, 0, 0), (1.0, 0.2, 0.0)),
        ("LA", (51, 10), (0.2, 0.2, 0.2)),
        ("CMYK", (0, 204, 255, 0), (1.0, 0.2, 0.0)),  # R = 255 - C, ... (no ink is white)
        ("YCbCr", (128, 128, 128), (128 / 255, 128 / 255, 128 / 255)),  # neutral chroma: grey
    ],
)
def test_colour_modes(tmp_path, mode, colour, expected_rgb):
    path = tmp_path / "img.tiff"
    Image.new(mode, (3, 2), colour).save(path, format="TIFF")
    rgb = read_image(path)
    np.testing.assert_allclose(rgb[0, 0], expected_rgb, atol=1.5 / 255)


def test_palette_premultiplied_and_lab_modes(tmp_path):
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 255, 51, 0] + [0] * 762)
    palette.save(tmp_path / "p.png")
    np.testing.assert_allclose(read_image(tmp_path / "p.png")[0, 0], (1.0, 0.2, 0.0), atol=1e-6)
    # Premultiplied alpha (RGBa, La) is undone: stored 50 at alpha 128 is the colour 100.
    rgba_pre = Image.new("RGBa", (2, 2), (50, 50, 50, 128)).convert("RGBA")
    rgba_pre.save(tmp_path / "pre.png")
    assert read_image(tmp_path / "pre.png")[0, 0, 0] == pytest.approx(99 / 255, abs=1.5 / 255)
    # Modes no file format stores (Pillow makes them in memory): through the same conversion.
    from dispersion_score.images import _eight_bit_rgba, _grey_float

    la_pre = Image.new("La", (2, 2), (50, 128))
    assert _grey_float(la_pre, "la") is None
    assert np.asarray(_eight_bit_rgba(la_pre))[0, 0, 0] == pytest.approx(100, abs=1)
    hsv = Image.new("HSV", (2, 2), (0, 255, 255))  # hue 0, full saturation and value: red
    assert _grey_float(hsv, "hsv") is None
    assert tuple(np.asarray(_eight_bit_rgba(hsv))[0, 0]) == (255, 0, 0, 255)
    # LAB: L* = 100 with a* = b* = 0 is white.
    lab = Image.merge("LAB", [Image.new("L", (2, 2), v) for v in (255, 128, 128)])
    lab.save(tmp_path / "lab.tiff")
    np.testing.assert_allclose(read_image(tmp_path / "lab.tiff")[0, 0], 1.0, atol=2 / 255)


def test_undefined_ranges_are_refused_naming_the_file(tmp_path):
    Image.fromarray(np.full((3, 3), 70000, np.int32)).save(tmp_path / "int32.tiff")  # mode I
    with pytest.raises(ValueError, match=r"int32\.tiff.*mode I"):
        read_image(tmp_path / "int32.tiff")
    Image.fromarray(np.full((3, 3), 2.5, np.float32)).save(tmp_path / "bright.tiff")  # mode F
    with pytest.raises(ValueError, match=r"bright\.tiff.*\[2\.5, 2\.5\]"):
        read_image(tmp_path / "bright.tiff")
    Image.fromarray(np.full((3, 3), np.nan, np.float32)).save(tmp_path / "nan.tiff")
    with pytest.raises(ValueError, match=r"nan\.tiff.*NaN"):
        read_image(tmp_path / "nan.tiff")


def test_resize_is_the_antialiased_bilinear_filter_at_every_depth(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, size=(20, 30), dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(values.astype(np.float32) / 65535)[None, None].expand(1, 3, 20, 30),
        size=(16, 16),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    torch.testing.assert_close(load_images([tmp_path / "deep.png"], size=16), expected.clamp(0, 1))


def test_dataset_reads_images_with_the_same_reader(tmp_path):
    import json

    from dataset.synthetic.dataset import CubeSphereDataset

    _grey16(tmp_path / "img.png", 32768, (8, 8))
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32))
    entry = {"id": "a", "image": "img.png", "points": "pts.npy", "t_image": 0.0, "t_shape": 0.0}
    (tmp_path / "index.json").write_text(json.dumps([entry]))
    image = CubeSphereDataset(tmp_path, "index.json", num_points=10)[0]["image"]
    torch.testing.assert_close(image, torch.full((3, 8, 8), 32768 / 65535))
