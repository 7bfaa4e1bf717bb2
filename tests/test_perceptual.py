"""Tests of VGG16 relu3_3 perceptual features, weight loading and image reading (docs/library.md).

VGG16 at 224×224 costs about 0.2 s per image on a CPU, so every test uses two or three images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from dispersion_score.perceptual import (
    feature_label,
    load_images,
    perceptual_features,
    pixel_features,
    vgg16_relu3_3,
)

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def _images(n: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _naive_relu3_3_channel_max(images: torch.Tensor, network: torch.nn.Sequential) -> np.ndarray:
    """relu3_3 channel max in float64, layer by layer from the network's conv weights."""
    convs = [m for m in network if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7
    x = images.double()
    x = (x - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(STD, dtype=torch.float64).view(
        1, 3, 1, 1
    )
    pool_after = {1, 3}  # conv1_2 and conv2_2 are followed by 2×2 max-pooling
    for i, conv in enumerate(convs):
        x = F.relu(F.conv2d(x, conv.weight.double(), conv.bias.double(), padding=1))
        if i in pool_after:
            x = F.max_pool2d(x, 2)
    n, c, h, w = x.shape
    assert (c, h, w) == (256, 56, 56)
    out = np.full((n, h * w), -np.inf)
    for channel in range(c):
        out = np.maximum(out, x[:, channel].reshape(n, -1).numpy())
    return out


def test_layers_match_torchvision_vgg16_features_prefix():
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None).features[:16]
    ours = vgg16_relu3_3("random")
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert not ours.training


def test_accepted_weight_layouts_match_torchvision_vgg16():
    """The layouts the weights check accepts are written from the architecture (no torchvision needed at run
    time); here they are compared with torchvision's own VGG16, key by key and shape by shape."""
    from dispersion_score.perceptual import _vgg16_layouts

    with torch.device("meta"):
        reference = {
            key: tuple(value.shape) for key, value in torchvision.models.vgg16(weights=None).state_dict().items()
        }
    layouts = _vgg16_layouts()
    assert layouts["a full torchvision VGG16 state dict"] == reference
    features = {k.removeprefix("features."): v for k, v in reference.items() if k.startswith("features.")}
    assert layouts["VGG16's features part"] == features
    with torch.device("meta"):
        relu3_3 = {
            k: tuple(v.shape) for k, v in torchvision.models.vgg16(weights=None).features[:16].state_dict().items()
        }
    assert layouts["VGG16 features[:16] (conv1_1 … relu3_3)"] == relu3_3


def test_channel_max_matches_naive_computation():
    images = _images(2)
    features = perceptual_features(images, weights="random", seed=3, batch_size=1)
    assert features.shape == (2, 3136) and features.dtype == np.float32
    expected = _naive_relu3_3_channel_max(images, vgg16_relu3_3("random", seed=3))
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_random_weights_deterministic_per_seed_and_batch_independent():
    images = _images(2, size=64, seed=1)
    a = perceptual_features(images, weights="random", seed=0, batch_size=1)
    b = perceptual_features(images, weights="random", seed=0, batch_size=2)
    c = perceptual_features(images[:1], weights="random", seed=1)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(a[:1] - c).max() > 1e-3
    state = torch.random.get_rng_state()
    vgg16_relu3_3("random", seed=0)
    assert torch.equal(state, torch.random.get_rng_state()), "random weights must not touch the global RNG"


def test_resize_to_224_is_bilinear_antialiased():
    images = _images(2, size=96, seed=2)
    resized = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    a = perceptual_features(images, weights="random")
    b = perceptual_features(resized, weights="random")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_pool_none_is_full_relu3_3_map_and_max_of_it_is_channel_max():
    images = _images(1, size=64)
    full = perceptual_features(images, weights="random", pool="none")
    pooled = perceptual_features(images, weights="random")
    assert full.shape == (1, 256 * 56 * 56)
    np.testing.assert_array_equal(full.reshape(1, 256, 56 * 56).max(axis=1), pooled)


def test_numpy_input_equals_tensor_input():
    images = _images(1, size=32)
    np.testing.assert_array_equal(
        perceptual_features(images.numpy(), weights="random"), perceptual_features(images, weights="random")
    )


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.rand(2, 4, 32, 32), r"\(N, 3, H, W\)"),
        (torch.rand(3, 32, 32), r"\(N, 3, H, W\)"),
        (torch.zeros(0, 3, 32, 32), "non-empty"),
        ((torch.rand(1, 3, 32, 32) * 255).to(torch.uint8), "floating point"),
        (torch.rand(1, 3, 32, 32) * 255, r"\[0, 1\]"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
    ],
)
def test_bad_images_raise(images, match):
    with pytest.raises(ValueError, match=match):
        perceptual_features(images, weights="random")


def test_bad_options_raise():
    with pytest.raises(ValueError, match="pool"):
        perceptual_features(_images(1, 8), weights="random", pool="mean")
    with pytest.raises(ValueError, match="weights"):
        perceptual_features(_images(1, 8), weights=None)
    with pytest.raises(ValueError, match="batch_size"):
        perceptual_features(_images(1, 8), weights="random", batch_size=0)


def test_feature_label_names_weights_and_pool(tmp_path):
    assert feature_label("random", "channel_max") == "vgg16_relu3_3_channelmax[random-weights]"
    assert feature_label("imagenet", "none") == "vgg16_relu3_3_full[imagenet1k_v1]"
    assert feature_label(torchvision.models.VGG16_Weights.DEFAULT) == "vgg16_relu3_3_channelmax[imagenet1k_v1]"
    assert feature_label(tmp_path / "w.pth") == "vgg16_relu3_3_channelmax[file:w.pth]"


def _random_state_dict(seed: int) -> dict[str, torch.Tensor]:
    return vgg16_relu3_3("random", seed=seed).state_dict()


def test_weights_file_features_part_gives_identical_features(tmp_path):
    path = tmp_path / "features.pth"
    torch.save(_random_state_dict(seed=7), path)
    images = _images(1, size=48)
    from_file = perceptual_features(images, weights=path)
    in_memory = perceptual_features(images, weights="random", seed=7)
    np.testing.assert_array_equal(from_file, in_memory)


def _full_state_dict(architecture: str, first_layers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's ``architecture`` ("vgg16", "vgg19") state dict, every key at its true shape, with
    ``first_layers`` (features[:16]) in place; the other tensors are zeros expanded from one element, so the
    file holds one float for each (a few MB instead of 528)."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in getattr(torchvision.models, architecture)(weights=None).state_dict().items()}
    state = {key: torch.zeros(1).expand(shape) for key, shape in shapes.items()}
    state.update({f"features.{k}": v for k, v in first_layers.items()})
    return state


def test_weights_file_full_vgg16_layout_gives_identical_features(tmp_path):
    path = tmp_path / "vgg16-full.pth"
    torch.save(_full_state_dict("vgg16", _random_state_dict(seed=8)), path)
    images = _images(1, size=48)
    np.testing.assert_array_equal(
        perceptual_features(images, weights=str(path)), perceptual_features(images, weights="random", seed=8)
    )


def test_vgg19_weights_are_refused_although_their_first_layers_match(tmp_path):
    """Issue 22: a VGG19 state dict was accepted as VGG16 (the check stopped at layer 15, where VGG19 first
    differs) and its first layers used as "VGG16 relu3_3"."""
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(_full_state_dict("vgg19", _random_state_dict(seed=8)), path)
    with pytest.raises(ValueError, match="vgg19-dcbb9e9d.pth is not a torchvision VGG16 state dict.*unexpected keys"):
        vgg16_relu3_3(path)
    features = {k.removeprefix("features."): v for k, v in _full_state_dict("vgg19", {}).items() if "features" in k}
    torch.save(features, path)  # its features part only
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        vgg16_relu3_3(path)


def test_missing_imagenet_weights_explain_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        perceptual_features(_images(1, 8), weights="imagenet")
    message = str(info.value)
    assert "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "--weights" in message and "TORCH_HOME" in message
    assert not any(tmp_path.rglob("*.pth")), "nothing may be downloaded"


def test_cached_imagenet_weights_are_loaded_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in _random_state_dict(seed=9).items()}, cache / "vgg16-397923af.pth")
    images = _images(1, size=32)
    np.testing.assert_array_equal(
        perceptual_features(images, weights="imagenet"), perceptual_features(images, weights="random", seed=9)
    )


def test_corrupt_or_wrong_weights_file_names_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth"):
        vgg16_relu3_3(corrupt)

    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong)
    with pytest.raises(ValueError, match="resnet.pth.*not a torchvision VGG16 state dict"):
        vgg16_relu3_3(wrong)

    bad_shape = tmp_path / "bad_shape.pth"
    state = _random_state_dict(seed=0)
    state["0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, bad_shape)
    with pytest.raises(ValueError, match="bad_shape.pth.*0.weight"):
        vgg16_relu3_3(bad_shape)

    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(ValueError, match="list.pth"):
        vgg16_relu3_3(not_a_dict)

    with pytest.raises(FileNotFoundError, match="missing.pth"):
        vgg16_relu3_3(tmp_path / "missing.pth")


def _write_png(path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def test_load_images_rgb_alpha_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    _write_png(tmp_path / "rgb.png", rgb)
    rgba = np.concatenate([rgb, np.zeros((20, 30, 1), np.uint8)], axis=2)  # fully transparent
    rgba[:10, :, 3] = 255
    _write_png(tmp_path / "rgba.png", rgba)
    _write_png(tmp_path / "grey.png", rgb[..., 0])

    native = load_images([tmp_path / "rgb.png", tmp_path / "rgba.png"], size=None)
    assert native.shape == (2, 3, 20, 30) and native.dtype == torch.float32
    expected = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(native[0], expected)
    torch.testing.assert_close(native[1], expected)  # alpha="drop" keeps the stored RGB

    white = load_images([tmp_path / "rgba.png"], size=None, alpha="white")[0]
    torch.testing.assert_close(white[:, :10], expected[:, :10])
    assert torch.all(white[:, 10:] == 1.0)

    grey = load_images([tmp_path / "grey.png"], size=None)[0]
    for channel in range(3):
        torch.testing.assert_close(grey[channel], expected[0])

    resized = load_images([tmp_path / "rgb.png"], size=16)
    assert resized.shape == (1, 3, 16, 16)
    torch.testing.assert_close(
        resized,
        F.interpolate(expected[None], size=(16, 16), mode="bilinear", align_corners=False, antialias=True),
    )


def test_load_images_errors_name_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_images([tmp_path / "broken.png"])
    with pytest.raises(FileNotFoundError, match="absent.png"):
        load_images([tmp_path / "absent.png"])
    _write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    _write_png(tmp_path / "b.png", np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="b.png"):
        load_images([tmp_path / "a.png", tmp_path / "b.png"], size=None)
    with pytest.raises(ValueError, match="alpha"):
        load_images([tmp_path / "a.png"], alpha="black")


def test_path_list_input_equals_loaded_tensor(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        _write_png(paths[-1], rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8))
    from_paths = perceptual_features(paths, weights="random", batch_size=1)
    from_tensor = perceptual_features(load_images(paths), weights="random")
    np.testing.assert_array_equal(from_paths, from_tensor)


def test_pixel_features():
    images = _images(2, size=8)
    np.testing.assert_array_equal(pixel_features(images, size=8), images.reshape(2, -1).numpy())
    assert pixel_features(images, size=4).shape == (2, 48)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    images = _images(2, size=64)
    cpu = perceptual_features(images, weights="random", device="cpu")
    cuda = perceptual_features(images, weights="random", device="cuda")
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-3 * np.abs(cpu).max())


def test_imagenet1k_features_weights_are_refused():
    # Those weights expect 0..255 inputs with another normalisation; accepting them would be silently wrong.
    with pytest.raises(ValueError, match="IMAGENET1K_FEATURES"):
        vgg16_relu3_3(torchvision.models.VGG16_Weights.IMAGENET1K_FEATURES)
