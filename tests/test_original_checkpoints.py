"""The original release's networks: converted models against reference forward passes written here.

The checkpoints are fabricated in the original's exact naming and shapes (tests/original_release.py, from
reading its model code), with random weights; the reference forward passes below follow the original's
modules (model/resnet.py, model/model_blocks.py, model/atlasnet.py, model/template.py,
model/baseline_models.py) with torch.nn.functional only.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from models.original import (
    OriginalCheckpointError,
    OriginalRunError,
    describe_original_run,
    list_original_runs,
    load_original_run,
    original_image,
)
from models.templates import SphereTemplate, pymesh_icosphere
from tests.original_release import (
    instance_image,
    synthetic_run_name,
    write_shapenet_run,
    write_synthetic_run,
)

TOL = 1e-5


# ------------------------------------------------------------------------- the original, re-written


def _bn(x: torch.Tensor, s: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(
        x, s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"], s[f"{prefix}.weight"], s[f"{prefix}.bias"],
        training=False, eps=1e-5,
    )  # fmt: skip


def _resnet18(s: dict, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(_bn(F.conv2d(x, s["encoder.conv1.weight"], stride=2, padding=3), s, "encoder.bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for layer, stride in zip((1, 2, 3, 4), (1, 2, 2, 2), strict=True):
        for block in (0, 1):
            p = f"encoder.layer{layer}.{block}"
            step = stride if block == 0 else 1
            out = F.relu(_bn(F.conv2d(x, s[f"{p}.conv1.weight"], stride=step, padding=1), s, f"{p}.bn1"))
            out = _bn(F.conv2d(out, s[f"{p}.conv2.weight"], padding=1), s, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in s:
                x = _bn(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=step), s, f"{p}.downsample.1")
            x = F.relu(out + x)
    x = F.avg_pool2d(x, 7)  # the original's nn.AvgPool2d(7)
    return F.linear(x.view(x.shape[0], -1), s["encoder.fc.weight"], s["encoder.fc.bias"])


def _conv1d(x: torch.Tensor, s: dict, prefix: str) -> torch.Tensor:
    return F.conv1d(x, s[f"{prefix}.weight"], s[f"{prefix}.bias"])


def _atlasnet(s: dict, images: torch.Tensor, templates: list[torch.Tensor], num_layers: int) -> torch.Tensor:
    latent = _resnet18(s, images).unsqueeze(2)
    patches = []
    for i, points in enumerate(templates):  # Mapping2Dto3D.forward
        p = f"decoder.decoder.{i}"
        x = _conv1d(points.unsqueeze(0), s, f"{p}.conv1") + latent
        x = F.relu(_bn(x, s, f"{p}.bn1"))
        x = F.relu(_bn(_conv1d(x, s, f"{p}.conv2"), s, f"{p}.bn2"))
        for j in range(num_layers):
            x = F.relu(_bn(_conv1d(x, s, f"{p}.conv_list.{j}"), s, f"{p}.bn_list.{j}"))
        patches.append(_conv1d(x, s, f"{p}.last_conv").unsqueeze(1))
    out = torch.cat(patches, dim=1)  # (B, nb_prim, 3, P); the eval scripts then transpose(2, 3).view(B, -1, 3)
    return out.transpose(2, 3).contiguous().view(images.shape[0], -1, 3)


def _psgn(s: dict, images: torch.Tensor, num_points: int) -> torch.Tensor:
    x = _resnet18(s, images)
    for k in (1, 2, 3):
        x = F.relu(_bn(F.linear(x, s[f"decoder.fc{k}.weight"], s[f"decoder.fc{k}.bias"]), s, f"decoder.bn{k}"))
    x = F.linear(x, s["decoder.fc4.weight"], s["decoder.fc4.bias"])
    return x.view(images.shape[0], 3, num_points).transpose(1, 2)


def _folding(s: dict, x: torch.Tensor, prefix: str) -> torch.Tensor:
    x = F.relu(_bn(_conv1d(x, s, f"{prefix}.0"), s, f"{prefix}.1"))
    x = F.relu(_bn(_conv1d(x, s, f"{prefix}.3"), s, f"{prefix}.4"))
    return _conv1d(x, s, f"{prefix}.6")


def _foldnet(s: dict, images: torch.Tensor, num_points: int) -> torch.Tensor:
    grid_dim = int(math.sqrt(num_points))
    axis = np.linspace(0, 1, grid_dim)
    points = torch.tensor(np.array(list(itertools.product(axis, axis)))).float().T  # build_grid, SQUARE
    code = _resnet18(s, images).unsqueeze(2).repeat(1, 1, grid_dim * grid_dim)
    points = points.unsqueeze(0).expand(images.shape[0], -1, -1)
    first = _folding(s, torch.cat((code, points), dim=1), "decoder.folding1")
    return _folding(s, torch.cat((code, first), dim=1), "decoder.folding2").transpose(1, 2)


def _square_grid(npoints: int) -> torch.Tensor:
    grain = int(np.sqrt(npoints)) - 1  # SquareTemplate.generate_square
    vertices = [[i / grain, j / grain, 0] for i in range(grain + 1) for j in range(grain + 1)]
    return torch.from_numpy(np.array(vertices)).float()[:, :2].T


def _lattice_icosphere(level: int) -> np.ndarray:
    """PyMesh's icosphere as a set: the barycentric lattice of denominator 2^level on each face of the
    icosahedron (repeated midpoint subdivision of a flat triangle), projected onto the sphere."""
    r = (1 + math.sqrt(5)) / 2
    corners = np.array([[-1, r, 0], [1, r, 0], [-1, -r, 0], [1, -r, 0], [0, -1, r], [0, 1, r], [0, -1, -r],
                        [0, 1, -r], [r, 0, -1], [r, 0, 1], [-r, 0, -1], [-r, 0, 1]], dtype=float)  # fmt: skip
    # the 20 faces are the triangles of mutually adjacent corners (edge length 2)
    adjacent = lambda a, b: abs(np.linalg.norm(corners[a] - corners[b]) - 2) < 1e-9  # noqa: E731
    faces = [f for f in itertools.combinations(range(12), 3) if all(adjacent(*e) for e in itertools.combinations(f, 2))]
    n = 2**level
    points = {}
    for a, b, c in faces:
        for i in range(n + 1):
            for j in range(n + 1 - i):
                p = (i * corners[a] + j * corners[b] + (n - i - j) * corners[c]) / n
                points[tuple(np.round(p, 9))] = p
    cloud = np.array(list(points.values()))
    return cloud / np.linalg.norm(cloud, axis=1, keepdims=True)


def _matching(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index into ``reference`` of each row of ``ours`` (sets that agree to rounding)."""
    from scipy.spatial import cKDTree

    distance, index = cKDTree(reference).query(ours)
    assert distance.max() < 1e-6
    assert len(set(index.tolist())) == len(ours) == len(reference)
    return index


def _nearest(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    return cKDTree(reference).query(points)[0]


def _images(count: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def test_compatibility_options_keep_defaults() -> None:
    """The options added for the original release's networks: defaults unchanged, options as documented."""
    from models.encoder import ResNet18Encoder

    torch.manual_seed(0)
    plain = ResNet18Encoder(16).eval()
    assert (plain.channel_order, plain.pooling) == ("rgb", "adaptive")
    images = torch.rand(1, 3, 224, 224)
    bgr = ResNet18Encoder(16, channel_order="bgr", pooling="fixed7").eval()
    bgr.load_state_dict(plain.state_dict())
    with torch.no_grad():
        # at 224x224 AvgPool2d(7) is global pooling; "bgr" reverses the channels first
        torch.testing.assert_close(bgr(images), plain(images.flip(1)), atol=1e-5, rtol=1e-5)
        # larger inputs: the original's fixed pooling averages only the top-left 7x7 window
        larger = torch.rand(1, 3, 256, 256)
        assert not torch.allclose(bgr(larger.flip(1)), plain(larger), atol=1e-4)
    with pytest.raises(ValueError, match="at least 193x193"):
        bgr(torch.rand(1, 3, 192, 192))
    with pytest.raises(ValueError, match="channel_order"):
        ResNet18Encoder(16, channel_order="rbg")
    sphere = SphereTemplate(4, construction="pymesh").regular_points()
    assert sphere.shape == (3, 2562)
    torch.testing.assert_close(sphere, torch.from_numpy(pymesh_icosphere(4).T).float())
    with pytest.raises(ValueError, match="construction"):
        SphereTemplate(4, construction="blender")


# ------------------------------------------------------------------------- equivalence per decoder


def test_icosphere_is_pymeshs() -> None:
    ours = pymesh_icosphere(4)
    assert ours.shape == (2562, 3) == (SphereTemplate.vertex_count(4), 3)
    _matching(ours, _lattice_icosphere(4))  # the same set
    # PyMesh's order: the 12 corners, then edge midpoints in the order faces (0, 11, 5), (0, 5, 1), ... meet them
    level1 = pymesh_icosphere(1)
    corners = pymesh_icosphere(0)
    mid = lambda a, b: (corners[a] + corners[b]) / np.linalg.norm(corners[a] + corners[b])  # noqa: E731
    np.testing.assert_allclose(level1[:12], corners)
    expected = [mid(0, 11), mid(11, 5), mid(5, 0), mid(5, 1), mid(1, 0), mid(1, 7), mid(7, 0)]
    np.testing.assert_allclose(level1[12:19], expected, atol=1e-15)
    assert len(level1) == 42
    # trimesh's icosphere (this project's default template) is another vertex set
    default = SphereTemplate(4).regular_points().T.numpy()
    assert _nearest(default, ours).max() > 1e-3


def test_atlasnet_sphere_synthetic_run_equals_the_original(tmp_path) -> None:
    run_dir, state = write_synthetic_run(tmp_path / "log", "image", 5, 2, weights_seed=3, bottleneck=96, hidden=48)
    model, run = load_original_run(run_dir, rgb_input=False)
    images = _images()
    ours = model.predict(images)
    assert ours.shape == (2, 2562, 3) and run.predicted_points == 2562
    reference_template = _lattice_icosphere(4)
    order = _matching(model.template.regular_points().T.double().numpy(), reference_template)
    template = torch.from_numpy(reference_template).float().T
    with torch.no_grad():
        reference = _atlasnet(state, images, [template], num_layers=2)
    assert reference.abs().max() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(ours, reference[:, order], atol=TOL, rtol=0)
    # rgb_input=True (the default): the model takes RGB and gives the original's output on BGR
    rgb_model, rgb_run = load_original_run(run_dir)
    torch.testing.assert_close(rgb_model.predict(images.flip(1)), ours, atol=TOL, rtol=0)
    assert rgb_run.checkpoint_info["model_input"] == "rgb" and run.checkpoint_info["model_input"] == "bgr"


@pytest.mark.parametrize("primitives", [25, 4])
def test_atlasnet_square_equals_the_original(tmp_path, primitives: int) -> None:
    run_dir, state = write_shapenet_run(
        tmp_path / "log", "more_shapes", "atlasnet", "SQUARE", primitives, mode="viewer", bottleneck=64, hidden=32
    )
    model, run = load_original_run(run_dir)
    grid = _square_grid(2500 // primitives)  # the original: number_points_eval // nb_primitives points
    assert run.predicted_points == primitives * grid.shape[1]
    images = _images(1)
    with torch.no_grad():
        reference = _atlasnet(state, images, [grid] * primitives, num_layers=2)
    torch.testing.assert_close(model.predict(images), reference, atol=TOL, rtol=0)


def test_psgn_equals_the_original_in_point_order(tmp_path) -> None:
    run_dir, state = write_shapenet_run(
        tmp_path / "log", "more_shapes", "psgn", "SPHERE", 1, mode="viewer", bottleneck=64, hidden=48
    )
    model, run = load_original_run(run_dir)
    images = _images()
    with torch.no_grad():
        reference = _psgn(state, images, 2500)
    torch.testing.assert_close(model.predict(images), reference, atol=TOL, rtol=0)
    assert run.mode == "viewer" and run.predicted_points == 2500


def test_foldnet_equals_the_original(tmp_path) -> None:
    run_dir, state = write_shapenet_run(
        tmp_path / "log", "more_shapes", "foldnet", "SQUARE", 1, seed=3, bottleneck=64, hidden=48
    )
    model, run = load_original_run(run_dir)
    images = _images(1)
    with torch.no_grad():
        reference = _foldnet(state, images, 2500)
    torch.testing.assert_close(model.predict(images), reference, atol=TOL, rtol=0)
    assert run.grid_size == 50 and run.seed == 3


@pytest.mark.cuda
def test_conversion_on_cuda(tmp_path) -> None:
    run_dir, state = write_shapenet_run(tmp_path / "log", "more_imgs", "atlasnet", "SPHERE", 1, yaw=45)
    model, _ = load_original_run(run_dir, device="cuda")
    images = _images(1)
    cpu_model, _ = load_original_run(run_dir)
    torch.testing.assert_close(model.predict(images.cuda()).cpu(), cpu_model.predict(images), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------- bad checkpoints


def _expect_error(run_dir, state, message: str) -> None:
    torch.save(state, run_dir / "network.pth")
    with pytest.raises(OriginalCheckpointError, match=message):
        load_original_run(run_dir)


def test_bad_checkpoints_name_the_key(tmp_path) -> None:
    run_dir, state = write_shapenet_run(tmp_path / "log", "more_shapes", "psgn", "SPHERE", 1, hidden=16)
    missing = dict(state)
    del missing["decoder.bn2.running_var"]
    _expect_error(run_dir, missing, r"missing key 'decoder\.bn2\.running_var' \(expected shape \[16\]")
    wrong = dict(state, **{"encoder.fc.weight": torch.zeros(1000, 512)})
    _expect_error(run_dir, wrong, r"'encoder\.fc\.weight' has shape \[1000, 512\], expected \[1024, 512\]")
    extra = dict(state, **{"decoder.fc5.weight": torch.zeros(3, 3)})
    _expect_error(run_dir, extra, r"1 key\(s\) that the original psgn .* does not have: 'decoder\.fc5\.weight'")
    _expect_error(run_dir, dict(state, **{"decoder.fc1.bias": [0.0] * 16}), r"'decoder\.fc1\.bias' holds a list")
    (run_dir / "network.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OriginalCheckpointError, match="not a readable PyTorch file"):
        load_original_run(run_dir)


def test_tolerated_differences_are_reported(tmp_path) -> None:
    run_dir, state = write_shapenet_run(
        tmp_path / "log", "more_imgs", "atlasnet", "SPHERE", 1, bottleneck=64, hidden=16
    )
    reference, _ = load_original_run(run_dir)
    parallel = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(parallel, run_dir / "network.pth")
    model, run = load_original_run(run_dir)
    notes = " ".join(run.checkpoint_info["conversion_notes"])
    assert "module." in notes and "num_batches_tracked" in notes
    images = _images(1)
    torch.testing.assert_close(model.predict(images), reference.predict(images), atol=0, rtol=0)


def test_synthetic_checkpoint_without_model_state_dict(tmp_path) -> None:
    run_dir, state = write_synthetic_run(tmp_path / "log", "shape", 10, 1, bottleneck=32, hidden=16)
    torch.save(state, run_dir / "checkpoint.pt")  # a bare state dict where the dict is expected
    with pytest.raises(OriginalCheckpointError, match="no 'model_state_dict'"):
        load_original_run(run_dir)


# ------------------------------------------------------------------------- settings and provenance


def test_settings_from_name_and_opts(tmp_path) -> None:
    log = tmp_path / "log"
    run_dir, _ = write_synthetic_run(log, "shape", 25, 3, bottleneck=32, hidden=16)
    run = describe_original_run(run_dir)
    assert (run.experiment, run.kind, run.cluster_size, run.seed) == ("train_synthetic", "shape_aug", 25, 3)
    assert (run.network, run.template, run.primitives, run.bottleneck, run.hidden) == ("atlasnet", "sphere", 1, 32, 16)
    assert run.mode == "object" and run.channel_order == "bgr"  # opts.yaml says mode: viewer, unused there
    assert run.train_file == "cluster_shape_aug_2by10_cltsize25.json" and run.test_file == "test_interp_1000.json"
    assert run.data_config()["root"] == "dataset/synthetic_data/original_cubesphere_1000"
    assert run.sources["bottleneck"] == "opts.yaml" and run.sources["seed"] == "opts.yaml"

    imgs, _ = write_shapenet_run(log, "more_imgs", "atlasnet", "SPHERE", 1, yaw=75, seed=2, hidden=16)
    run = describe_original_run(imgs)
    assert (run.experiment, run.yaw, run.mode, run.seed, run.channel_order) == ("more_imgs", 75, "object", 2, "rgb")
    assert run.test_data["yaw"] == 90 and run.test_data["images"] == "yaw"
    shapes, _ = write_shapenet_run(log, "more_shapes", "atlasnet", "SQUARE", 25, mode="viewer", hidden=16)
    run = describe_original_run(shapes)
    assert (run.template, run.primitives, run.grid_size, run.predicted_points) == ("square", 25, 10, 2500)
    assert run.test_data["images"] == "r2n2" and run.test_data["frame"] == "viewer"

    record = run.record()
    assert record["provenance"]["weights"] == "original release"
    assert record["provenance"]["google_drive_id"] == "15ZUTzQAGtlJs-mUX0waY0pdnlLf3eO7n"
    import json

    json.dumps(record)  # JSON-able


def test_synthetic_run_without_opts_uses_the_name_and_the_original_defaults(tmp_path) -> None:
    # no opts.yaml: the original's sizes (bottleneck 1024, hidden 512) are assumed, and the weights have them
    run_dir, _ = write_synthetic_run(tmp_path / "log", "image", 35, 2, with_opts=False, bottleneck=1024, hidden=512)
    run = describe_original_run(run_dir)
    assert (run.kind, run.cluster_size, run.seed, run.bottleneck) == ("image_aug", 35, 2, 1024)
    assert run.sources["seed"] == "folder name" and run.sources["bottleneck"] == "default of the original code"
    model, loaded = load_original_run(run_dir)
    assert loaded.checkpoint_info["saved_epoch"] == 1199 and len(loaded.checkpoint_info["weights_sha256"]) == 64
    assert not model.training


def test_bad_run_folders(tmp_path) -> None:
    log = tmp_path / "log"
    run_dir, _ = write_synthetic_run(log, "image", 5, 1, bottleneck=32, hidden=16)
    opts = yaml.safe_load((run_dir / "opts.yaml").read_text())
    (run_dir / "opts.yaml").write_text(yaml.dump({**opts, "manual_seed": 2}))
    with pytest.raises(OriginalRunError, match=r"folder name says seed=1 but opts\.yaml says manual_seed=2"):
        describe_original_run(run_dir)
    (run_dir / "opts.yaml").write_text(yaml.dump({**opts, "activation": "tanh"}))
    with pytest.raises(OriginalRunError, match=r"activation='tanh'"):
        describe_original_run(run_dir)
    (run_dir / "opts.yaml").write_text(yaml.dump(opts))
    (run_dir / "checkpoint.pt").unlink()
    with pytest.raises(OriginalRunError, match="checkpoint.pt not found"):
        describe_original_run(run_dir)
    stray = log / "elsewhere" / "my_run"
    stray.mkdir(parents=True)
    with pytest.raises(OriginalRunError, match="not an original run folder"):
        describe_original_run(stray)


def test_list_original_runs(tmp_path, caplog) -> None:
    log = tmp_path / "log"
    a, _ = write_synthetic_run(log, "image", 1, 1, bottleneck=32, hidden=16)
    b, _ = write_synthetic_run(log, "shape", 35, 1, bottleneck=32, hidden=16)
    c, _ = write_shapenet_run(log, "more_shapes", "foldnet", "SQUARE", 1, bottleneck=32, hidden=16)
    (log / "train_synthetic" / "tensorboard").mkdir()
    runs = list_original_runs(log)
    assert [r.run_dir for r in runs] == [a, b, c]
    assert "tensorboard" in caplog.text
    assert [r.name for r in list_original_runs(log, experiments=["more_shapes"])] == [c.name]
    assert synthetic_run_name("image", 1, 1) == a.name


def test_original_image_reading(tmp_path) -> None:
    from PIL import Image

    picture = instance_image(0.3, 224)
    Image.fromarray(picture).save(tmp_path / "Isometric.png")
    rgb = original_image(tmp_path / "Isometric.png", "train_synthetic")
    torch.testing.assert_close(rgb, torch.from_numpy(picture.transpose(2, 0, 1) / 255.0).float())
    torch.testing.assert_close(original_image(tmp_path / "Isometric.png", "train_synthetic", channel_order="bgr"),
                               rgb.flip(0))  # fmt: skip
    # R2N2: 137x137 RGBA, centre crop 127 (offset 5), resize to 224
    rgba = np.zeros((137, 137, 4), dtype=np.uint8)
    rgba[5:132, 5:132] = (10, 200, 30, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "00.png")
    r2n2 = original_image(tmp_path / "00.png", "more_shapes")
    assert r2n2.shape == (3, 224, 224)
    torch.testing.assert_close(r2n2[:, 112, 112], torch.tensor([10, 200, 30]) / 255.0)
    torch.testing.assert_close(r2n2[:, 0, 0], torch.tensor([10, 200, 30]) / 255.0)  # the crop removed the border
    yaw = original_image(tmp_path / "00.png", "more_imgs")
    assert yaw.shape == (3, 137, 137) and yaw[:, 0, 0].abs().sum() == 0


def test_miniature_release_through_our_dataset(tmp_path) -> None:
    """Our CubeSphereDataset (RGB) + the converted model = the original pipeline: cv2 (BGR) + its network."""
    from dataset.synthetic.dataset import CubeSphereDataset
    from models.engine import predict_points
    from tests.original_release import write_original_release

    release = write_original_release(tmp_path, test_instances=(40, 520, 970), bottleneck=48, hidden=24)
    (run,) = list_original_runs(release.log_root)
    model, run = load_original_run(run.run_dir)
    assert run.data_root() == release.data_root == release.root / run.test_data["root"]
    test_set = CubeSphereDataset(run.data_root(), run.test_data["index_file"], num_points=2500)
    assert [item["t"] for item in test_set] == [0.04, 0.52, 0.97] == [item["t_image"] for item in test_set]
    ours = predict_points(model, test_set, batch_size=2)
    paths = [release.data_root / f"CubeSphere_interp_1000/instance_{n:03d}/Isometric.png" for n in (40, 520, 970)]
    bgr = torch.stack([original_image(path, "train_synthetic", channel_order="bgr") for path in paths])
    order = _matching(model.template.regular_points().T.double().numpy(), _lattice_icosphere(4))
    template = torch.from_numpy(_lattice_icosphere(4)).float().T
    with torch.no_grad():
        reference = _atlasnet(release.states[run.run_dir], bgr, [template], num_layers=2)[:, order]
    np.testing.assert_allclose(ours, reference.numpy(), atol=TOL, rtol=0)
    assert not np.allclose(ours[0], ours[2], atol=1e-3)  # the images differ, so do the predictions
    training = CubeSphereDataset(release.data_root, run.train_file, num_points=100)
    assert len(training) == 20 and {item["t"] for item in training} == {0.25, 0.75}
