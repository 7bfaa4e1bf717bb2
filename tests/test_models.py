"""Networks: output shapes of every model and template, templates, gradients, predict mode, overfitting."""

from __future__ import annotations

import pytest
import torch

from dataset.toy import ToyShapesDataset
from dispersion_score.chamfer import chamfer_distance
from models import MODELS, build_model
from models.engine import train_step
from models.templates import SphereTemplate, SquareTemplate
from models.training import make_optimizer

TINY = {"bottleneck": 16, "atlasnet": {"hidden": 8}, "psgn": {"hidden": [8]}, "foldnet": {"hidden": [8]}}


def _config(name: str, num_points: int = 100, **atlasnet: object) -> dict:
    model = {**TINY, "name": name, "atlasnet": {**TINY["atlasnet"], **atlasnet}}
    return {"model": model, "data": {"num_points": num_points}}


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One thread: the machine's cores are shared, and oversubscribed torch threads slow down tenfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _images(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size)


@pytest.mark.parametrize(
    ("config", "train_points", "predict_points"),
    [
        (_config("atlasnet", 2500, sphere_level=4), 2500, 2562),  # docs/models.md: one sphere, 2562 at test
        (_config("atlasnet", 100, sphere_level=2), 100, 162),
        (_config("atlasnet", 100, template="sphere", primitives=3, sphere_level=1), 99, 3 * 42),
        (_config("atlasnet", 100, template="square"), 100, 100),  # one 10 × 10 grid
        (_config("atlasnet", 100, template="square", primitives=4), 100, 4 * 25),  # 4 patches of 5 × 5
        (_config("atlasnet", 2500, template="square", primitives=25), 2500, 2500),  # 25 patches of 10 × 10
        (_config("atlasnet", 100, template="square", primitives=4, grid_size=3), 100, 4 * 9),
        (_config("psgn", 123), 123, 123),
        (_config("foldnet", 100), 100, 100),  # 10 × 10 grid
        (_config("foldnet", 2500), 2500, 2500),  # docs/models.md: 50 × 50
    ],
)
def test_output_shapes(config: dict, train_points: int, predict_points: int) -> None:
    model = build_model(config)
    images = _images(batch=3, size=40)
    assert model(images).shape == (3, train_points, 3)
    assert model.predict(images).shape == (3, predict_points, 3)
    assert model.num_points(regular=False) == train_points
    assert model.num_points(regular=True) == predict_points


def test_any_input_size_from_32() -> None:
    model = build_model(_config("atlasnet", sphere_level=2))
    for size in (32, 47, 64, 137):
        assert model.predict(_images(size=size)).shape == (2, 162, 3)
    with pytest.raises(ValueError, match="at least 32"):
        model(_images(size=31))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 1, 64, 64))


def test_default_sizes_follow_spec() -> None:
    model = build_model({})
    assert model.encoder.net.fc.out_features == 1024
    decoder = model.decoders[0]
    widths = [m.out_channels for m in decoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert widths == [1024, 512, 512, 512, 3]
    psgn = build_model({"model": {"name": "psgn"}})
    linears = [m.out_features for m in psgn.mlp if isinstance(m, torch.nn.Linear)]
    assert linears == [512, 512, 512, 2500 * 3]


def test_unknown_model_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="model.name") as error:
        build_model({"model": {"name": "pointr"}})
    for name in MODELS:
        assert name in str(error.value)


def test_templates() -> None:
    sphere = SphereTemplate(level=4)
    regular = sphere.regular_points()
    assert regular.shape == (3, 2562) == (3, SphereTemplate.vertex_count(4))
    torch.testing.assert_close(regular.norm(dim=0), torch.ones(2562))
    assert len({tuple(p) for p in regular.T.tolist()}) == 2562  # no duplicate vertices
    random = sphere.random_points(4, 500)
    assert random.shape == (4, 3, 500)
    torch.testing.assert_close(random.norm(dim=1), torch.ones(4, 500))
    # Uniform on the sphere: the mean of many samples is near the centre, each coordinate's variance 1/3.
    many = sphere.random_points(1, 20000)[0]
    assert many.mean(dim=1).abs().max() < 0.03
    torch.testing.assert_close(many.var(dim=1), torch.full((3,), 1 / 3), atol=0.02, rtol=0)

    square = SquareTemplate(grid_size=5)
    grid = square.regular_points()
    assert grid.shape == (2, 25)
    assert grid.min() == 0 and grid.max() == 1
    assert sorted(set(grid[0].tolist())) == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    random = square.random_points(2, 300)
    assert random.shape == (2, 2, 300) and random.min() >= 0 and random.max() <= 1
    assert SquareTemplate.grid_size_for(100) == 10 and SquareTemplate.grid_size_for(2500 / 25) == 10


@pytest.mark.parametrize("config", [_config("atlasnet"), _config("atlasnet", template="square", primitives=2),
                                    _config("psgn"), _config("foldnet")])  # fmt: skip
def test_gradients_reach_the_encoder(config: dict) -> None:
    model = build_model(config)
    loss = chamfer_distance(model(_images()), torch.rand(2, 50, 3))
    loss.backward()
    first_conv = model.encoder.net.conv1.weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


def test_predict_is_deterministic_eval_mode_and_restores_training() -> None:
    model = build_model(_config("atlasnet"))
    model.train()
    images = _images()
    first = model.predict(images)
    assert model.training
    assert not first.requires_grad
    torch.testing.assert_close(model.predict(images), first, rtol=0, atol=0)
    # Training mode samples fresh template points each call.
    assert not torch.equal(model(images), model(images))
    model.eval()
    model.predict(images)
    assert not model.training


def test_atlasnet_primitives_are_independent_patches() -> None:
    model = build_model(_config("atlasnet", template="square", primitives=3, grid_size=4)).eval()
    images = _images()
    before = model.predict(images)
    with torch.no_grad():
        model.decoders[1].last.bias.add_(1.0)
    after = model.predict(images)
    per_patch = 16
    torch.testing.assert_close(after[:, :per_patch], before[:, :per_patch])
    torch.testing.assert_close(after[:, per_patch : 2 * per_patch], before[:, per_patch : 2 * per_patch] + 1.0)
    torch.testing.assert_close(after[:, 2 * per_patch :], before[:, 2 * per_patch :])


def test_atlasnet_latent_is_a_bias_of_the_first_layer() -> None:
    # Naive reference: first layer on [template ⊕ latent] with the latent's weight the identity.
    model = build_model(_config("atlasnet", sphere_level=1)).eval()
    decoder = model.decoders[0]
    latent = torch.randn(2, 16)
    template = model.template.regular_points()
    first = torch.nn.Conv1d(3 + 16, 16, 1)
    with torch.no_grad():
        first.weight.copy_(torch.cat([decoder.first.weight, torch.eye(16)[:, :, None]], dim=1))
        first.bias.copy_(decoder.first.bias)
    stacked = torch.cat([template.expand(2, 3, -1), latent[:, :, None].expand(2, 16, template.shape[1])], dim=1)
    hidden = torch.relu(decoder.first_norm(first(stacked)))
    expected = decoder.last(decoder.body(hidden)).transpose(1, 2)
    torch.testing.assert_close(model.decode(latent, regular=True), expected)


def test_foldnet_split_first_layer_equals_concatenation() -> None:
    model = build_model(_config("foldnet", 49)).eval()
    latent = torch.randn(2, 16)
    fold = model.fold1
    concat = torch.nn.Conv1d(16 + 2, fold.point_in.out_channels, 1)
    with torch.no_grad():
        concat.weight.copy_(torch.cat([fold.code_in.weight, fold.point_in.weight[:, :, 0]], dim=1)[:, :, None])
        concat.bias.copy_(fold.point_in.bias)
    grid = model.grid
    stacked = torch.cat([latent[:, :, None].expand(2, 16, grid.shape[1]), grid.expand(2, 2, -1)], dim=1)
    torch.testing.assert_close(fold(grid, latent), fold.rest(concat(stacked)))
    # The second fold reads the first fold's output, not the grid.
    folded = fold(grid, latent)
    torch.testing.assert_close(model.decode(latent, regular=True), model.fold2(folded, latent).transpose(1, 2))


@pytest.mark.parametrize("name", ["atlasnet", "psgn", "foldnet"])
def test_overfits_two_items(name: str) -> None:
    """The training loss on two items falls tenfold within a few hundred steps (tiny network, 32 px)."""
    toy = ToyShapesDataset(index_file="train:2", num_points=200, image_size=32)
    images = torch.stack([toy[0]["image"], toy[1]["image"]])
    points = torch.stack([toy[0]["points"], toy[1]["points"]])
    width = {
        "bottleneck": 64,
        "atlasnet": {"hidden": 64},
        "psgn": {"hidden": [64]},
        "foldnet": {"hidden": [64]},
    }
    model = build_model({"model": {"name": name, **width}, "data": {"num_points": 200}})
    optimizer, _ = make_optimizer(model, {"lr": 1e-3, "weight_decay": 0.0, "milestones": [], "gamma": 0.1})
    first = float(train_step(model, images, points, optimizer).detach())
    losses = [first]
    while len(losses) < 250 and losses[-1] >= first / 10:
        losses.append(float(train_step(model, images, points, optimizer).detach()))
    assert losses[-1] < first / 10, f"{name}: loss {first:.4g} → {losses[-1]:.4g} after {len(losses)} steps"
