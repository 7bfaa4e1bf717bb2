"""Chamfer distance, Chamfer matrices and F-score against naive float64 references written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks._inputs import ragged_clouds, random_clouds, surface_clouds
from dispersion_score import (
    _chamfer_kernel,
    _native,
    chamfer_cross,
    chamfer_distance,
    chamfer_matrix,
    fscore,
    normalize_unit_ball,
)
from dispersion_score.chamfer import _nearest_indices, _nearest_indices_torch

HAS_KERNEL = _chamfer_kernel.load_kernel() is not None
BACKENDS = [
    pytest.param("compiled", marks=pytest.mark.skipif(not HAS_KERNEL, reason="no C++ compiler")),
    "torch",
]


# --- naive references (float64, loops over pairs and points) -------------------------------------------


def naive_normalize(points: np.ndarray) -> np.ndarray:
    centred = points.astype(np.float64) - points.astype(np.float64).mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=1)).max()
    return centred / scale if scale > 0 else centred


def naive_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance of every point of a to its nearest point of b, and the reverse."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d_ab = np.array([min(((p - q) ** 2).sum() for q in b) for p in a])
    d_ba = np.array([min(((q - p) ** 2).sum() for p in a) for q in b])
    return d_ab, d_ba


def naive_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d_ab, d_ba = naive_pair(a, b)
    return d_ab.mean() + d_ba.mean()


def naive_cross(set_a, set_b, normalize: bool = True) -> np.ndarray:
    if normalize:
        set_a = [naive_normalize(c) for c in set_a]
        set_b = [naive_normalize(c) for c in set_b]
    return np.array([[naive_chamfer(a, b) for b in set_b] for a in set_a])


def naive_fscore(pred: np.ndarray, gt: np.ndarray, tau: float, squared: bool) -> float:
    d_pred, d_gt = naive_pair(pred, gt)
    if not squared:
        d_pred, d_gt = np.sqrt(d_pred), np.sqrt(d_gt)
    precision, recall = (d_pred < tau).mean(), (d_gt < tau).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def assert_symmetric_zero_diagonal(matrix: np.ndarray) -> None:
    assert matrix.dtype == np.float32
    assert np.array_equal(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 0)


# --- chamfer_matrix / chamfer_cross ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalize", [True, False])
def test_matrix_matches_naive_dense(backend, normalize):
    clouds = random_clouds(6, 23, seed=1, scale=2.0, offset=5.0)
    got = chamfer_matrix(clouds, normalize=normalize, backend=backend)
    expected = naive_cross(list(clouds), list(clouds), normalize=normalize)
    np.fill_diagonal(expected, 0.0)
    assert_symmetric_zero_diagonal(got)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6 * expected.max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_ragged_matches_naive(backend):
    # Sizes span several torch buckets and need padding inside a bucket; P = 1 clouds included.
    clouds = ragged_clouds([1, 5, 16, 17, 40, 37, 3, 1, 60], seed=2)
    got = chamfer_matrix(clouds, backend=backend, block_size=2)
    expected = naive_cross(clouds, clouds)
    np.fill_diagonal(expected, 0.0)
    assert_symmetric_zero_diagonal(got)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_matches_naive(backend):
    set_a = ragged_clouds([7, 30, 12], seed=3)
    set_b = list(surface_clouds(4, 25, seed=4))
    got = chamfer_cross(set_a, set_b, backend=backend, block_size=2)
    assert got.shape == (3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, naive_cross(set_a, set_b), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_with_itself_agrees_with_matrix(backend):
    clouds = surface_clouds(5, 40, seed=5)
    square = chamfer_matrix(clouds, backend=backend)
    cross = chamfer_cross(clouds, clouds, backend=backend)
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(cross[off], square[off], rtol=1e-5)
    assert np.all(np.abs(np.diag(cross)) < 1e-6)


@pytest.mark.skipif(not HAS_KERNEL, reason="no C++ compiler")
def test_backends_agree_and_block_size_does_not_matter():
    clouds = surface_clouds(11, 300, seed=6)
    reference = chamfer_matrix(clouds, backend="compiled")
    for block_size in (1, 3, 4):
        assert np.array_equal(chamfer_matrix(clouds, backend="compiled", block_size=block_size), reference)
        np.testing.assert_allclose(
            chamfer_matrix(clouds, backend="torch", block_size=block_size), reference, rtol=1e-4, atol=1e-7
        )


def test_input_types_give_the_same_matrix():
    clouds = random_clouds(4, 20, seed=7)
    from_numpy = chamfer_matrix(clouds)
    np.testing.assert_array_equal(chamfer_matrix(torch.from_numpy(clouds)), from_numpy)
    np.testing.assert_array_equal(chamfer_matrix(list(clouds)), from_numpy)
    np.testing.assert_array_equal(chamfer_matrix(clouds.astype(np.float64)), from_numpy)
    np.testing.assert_array_equal(chamfer_matrix(torch.from_numpy(clouds).requires_grad_()), from_numpy)


def test_single_cloud_and_progress_bar():
    assert chamfer_matrix(random_clouds(1, 5)).tolist() == [[0.0]]
    assert chamfer_matrix(random_clouds(3, 5), progress=True).shape == (3, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_normalisation_invariance(backend):
    clouds = surface_clouds(5, 60, seed=8)
    rng = np.random.default_rng(0)
    moved = clouds * rng.uniform(0.1, 10, size=(5, 1, 1)) + rng.normal(size=(5, 1, 3)) * 100
    base = chamfer_matrix(clouds, backend=backend)
    np.testing.assert_allclose(chamfer_matrix(moved, backend=backend), base, rtol=1e-4, atol=1e-7)
    # Without normalisation: a common translation changes nothing, a common scale s multiplies by s².
    raw = chamfer_matrix(clouds, normalize=False, backend=backend)
    shifted = chamfer_matrix(clouds + np.array([30.0, -20.0, 50.0]), normalize=False, backend=backend)
    np.testing.assert_allclose(shifted, raw, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(chamfer_matrix(clouds * 3, normalize=False, backend=backend), 9 * raw, rtol=1e-5)


def test_matrix_falls_back_to_torch_without_kernel(monkeypatch):
    kernel = _native.LazyKernel(lambda: None, "Chamfer kernel")
    kernel.disable("disabled by the test")
    monkeypatch.setattr(_chamfer_kernel, "KERNEL", kernel)
    clouds = random_clouds(4, 10, seed=9)
    expected = naive_cross(list(clouds), list(clouds))
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(chamfer_matrix(clouds), expected, rtol=2e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="disabled by the test"):
        chamfer_matrix(clouds, backend="compiled")


def test_kernel_build_can_be_disabled(monkeypatch):
    monkeypatch.setenv("DISPERSION_SCORE_NO_COMPILE", "1")
    with pytest.raises(RuntimeError, match="DISPERSION_SCORE_NO_COMPILE"):
        _chamfer_kernel._build_and_load()


# --- normalize_unit_ball -----------------------------------------------------------------------------------


def test_normalize_unit_ball():
    cloud = random_clouds(1, 50, seed=10, scale=3.0, offset=7.0)[0]
    out = normalize_unit_ball(cloud)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (50, 3)
    np.testing.assert_allclose(out, naive_normalize(cloud), atol=1e-6)
    batch = torch.from_numpy(random_clouds(3, 20, seed=11, offset=-4.0)).double()
    out_batch = normalize_unit_ball(batch)
    assert isinstance(out_batch, torch.Tensor) and out_batch.dtype == torch.float64
    np.testing.assert_allclose(out_batch.mean(dim=1).numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(out_batch.norm(dim=2).amax(dim=1).numpy(), 1.0)
    # All points equal: centred, not divided by zero.
    assert np.array_equal(normalize_unit_ball(np.ones((4, 3))), np.zeros((4, 3)))


# --- chamfer_distance -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chamfer_distance_matches_naive(dtype):
    a = torch.from_numpy(random_clouds(3, 17, seed=12)).to(dtype)
    b = torch.from_numpy(random_clouds(3, 29, seed=13)).to(dtype)
    expected = torch.tensor([naive_chamfer(a[k].numpy(), b[k].numpy()) for k in range(3)], dtype=torch.float64)
    per_pair = chamfer_distance(a, b, reduction="none")
    assert per_pair.shape == (3,) and per_pair.dtype == dtype
    np.testing.assert_allclose(per_pair.double().numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(float(chamfer_distance(a, b)), float(expected.mean()), rtol=1e-5)
    np.testing.assert_allclose(float(chamfer_distance(a, b, reduction="sum")), float(expected.sum()), rtol=1e-5)


def test_chamfer_distance_gradcheck():
    a = torch.from_numpy(random_clouds(2, 6, seed=14)).double().requires_grad_()
    b = torch.from_numpy(random_clouds(2, 5, seed=15)).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: chamfer_distance(x, y, reduction="none"), (a, b))


def test_chamfer_distance_gradient_matches_dense_min():
    # float32 goes through the compiled nearest-neighbour kernel (when present); compare with autograd
    # through a dense min over all distances.
    a = torch.from_numpy(random_clouds(2, 40, seed=16)).requires_grad_()
    b = torch.from_numpy(random_clouds(2, 33, seed=17)).requires_grad_()
    chamfer_distance(a, b).backward()
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    d = (a2[:, :, None, :] - b2[:, None, :, :]).square().sum(-1)
    (d.amin(dim=2).mean(dim=1) + d.amin(dim=1).mean(dim=1)).mean().backward()
    torch.testing.assert_close(a.grad, a2.grad)
    torch.testing.assert_close(b.grad, b2.grad)


def test_nearest_indices_backends_agree():
    a = torch.from_numpy(random_clouds(3, 70, seed=18))
    b = torch.from_numpy(random_clouds(3, 45, seed=19))
    idx_ab, idx_ba = _nearest_indices(a, b)
    ref_ab, ref_ba = _nearest_indices_torch(a.double(), b.double())
    assert torch.equal(idx_ab, ref_ab) and torch.equal(idx_ba, ref_ba)


# --- fscore ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("convention", "threshold", "tau", "squared"),
    [
        ("euclidean", None, 0.01, False),
        ("euclidean", 0.3, 0.3, False),
        ("atlasnet_squared", None, 0.001, True),
        ("atlasnet_squared", 0.05, 0.05, True),
    ],
)
def test_fscore_matches_naive(convention, threshold, tau, squared):
    rng = np.random.default_rng(20)
    gt = rng.uniform(-1, 1, size=(3, 40, 3))
    pred = gt[:, :35] + rng.normal(scale=[[[0.003]], [[0.1]], [[0.2]]], size=(3, 35, 3))
    got = fscore(
        torch.from_numpy(pred).float(),
        torch.from_numpy(gt).float(),
        threshold=threshold,
        convention=convention,
    )
    expected = [naive_fscore(pred[k], gt[k], tau, squared) for k in range(3)]
    assert got.shape == (3,) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_fscore_extremes():
    cloud = torch.from_numpy(random_clouds(2, 30, seed=21))
    assert torch.equal(fscore(cloud, cloud), torch.ones(2))
    assert torch.equal(fscore(cloud, cloud + 10.0), torch.zeros(2))


# --- bad input ---------------------------------------------------------------------------------------------


def test_bad_clouds_raise_value_error_naming_the_item():
    good = random_clouds(4, 10)
    nan = good.copy()
    nan[2, 7, 1] = np.nan
    with pytest.raises(ValueError, match=r"clouds\[2\].*point 7"):
        chamfer_matrix(nan)
    inf = list(good)
    inf[3] = inf[3].copy()
    inf[3][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"clouds_b\[3\]"):
        chamfer_cross(good, inf)
    with pytest.raises(ValueError, match=r"clouds\[1\] is an empty cloud"):
        chamfer_matrix([good[0], np.zeros((0, 3)), good[1]])
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        chamfer_matrix(good[..., :2])
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        chamfer_matrix(good[0])
    with pytest.raises(ValueError, match=r"clouds\[1\] must have shape \(P, 3\)"):
        chamfer_matrix([good[0], good[1][:, :2]])
    with pytest.raises(ValueError, match="no clouds"):
        chamfer_matrix([])
    with pytest.raises(ValueError, match="real numbers"):
        chamfer_matrix(np.array([["a", "b", "c"]], dtype=object)[None])


def test_bad_options_raise_value_error():
    clouds = random_clouds(3, 5)
    with pytest.raises(ValueError, match="backend"):
        chamfer_matrix(clouds, backend="faiss")
    with pytest.raises(ValueError, match="block_size"):
        chamfer_matrix(clouds, block_size=0)
    with pytest.raises(ValueError, match="device"):
        chamfer_matrix(clouds, device="tpu")
    with pytest.raises(ValueError, match="reduction"):
        chamfer_distance(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), reduction="max")
    with pytest.raises(ValueError, match="batch size"):
        chamfer_distance(torch.zeros(2, 2, 3), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"\(B, P, 3\)"):
        chamfer_distance(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(torch.zeros(1, 0, 3), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="convention"):
        fscore(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), convention="chamfer")
    with pytest.raises(ValueError, match="threshold"):
        fscore(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), threshold=0)
    bad = torch.zeros(2, 4, 3)
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"gt\[1\].*point 2"):
        fscore(torch.zeros(2, 4, 3), bad)


# --- CUDA --------------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_matches_cpu():
    clouds = surface_clouds(9, 200, seed=22)
    cpu = chamfer_matrix(clouds)
    np.testing.assert_allclose(chamfer_matrix(clouds, device="cuda"), cpu, rtol=1e-4, atol=1e-7)
    on_gpu = torch.from_numpy(clouds).cuda()
    np.testing.assert_allclose(chamfer_matrix(on_gpu), cpu, rtol=1e-4, atol=1e-7)
    ragged = ragged_clouds([5, 40, 33, 1], seed=23)
    np.testing.assert_allclose(
        chamfer_cross(ragged, clouds[:3], device="cuda"),
        chamfer_cross(ragged, clouds[:3]),
        rtol=1e-4,
        atol=1e-7,
    )


@pytest.mark.cuda
def test_cuda_loss_and_fscore():
    a = torch.from_numpy(random_clouds(2, 50, seed=24)).requires_grad_()
    b = torch.from_numpy(random_clouds(2, 40, seed=25))
    chamfer_distance(a, b).backward()
    a_gpu = a.detach().cuda().requires_grad_()
    loss = chamfer_distance(a_gpu, b.cuda())
    loss.backward()
    torch.testing.assert_close(loss.cpu(), chamfer_distance(a.detach(), b))
    torch.testing.assert_close(a_gpu.grad.cpu(), a.grad)
    torch.testing.assert_close(
        fscore(a.detach().cuda(), b.cuda(), threshold=0.5).cpu(), fscore(a.detach(), b, threshold=0.5)
    )


# --- far from the origin (issue 9, item 1) and beyond float32 (item 14) -----------------------------------


def _far_clouds() -> list[np.ndarray]:
    """The reported case: a and its copy shifted by 0.1 sit at x = 1000, the third cloud at x = -1000."""
    a = np.array([[1000.0, 0.0, 0.0], [1001.0, 0.0, 0.0]], dtype=np.float32)
    return [a, a + np.array([0.0, 0.1, 0.0], np.float32), -a]


@pytest.mark.parametrize("backend", BACKENDS)
def test_clouds_far_from_the_origin_keep_their_distances(backend):
    clouds = _far_clouds()
    D = chamfer_matrix(clouds, normalize=False, backend=backend)
    assert D[0, 1] == pytest.approx(0.02, rel=1e-5)  # was 0.0 with the torch backend
    np.testing.assert_allclose(D, naive_cross(clouds, clouds, normalize=False), rtol=1e-5)
    cross = chamfer_cross(clouds[:1], clouds[1:], normalize=False, backend=backend)
    np.testing.assert_allclose(cross, naive_cross(clouds[:1], clouds[1:], normalize=False), rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("offset", [100.0, 1000.0, 1e5])
def test_offset_clouds_match_float64(backend, offset):
    # 64-point clouds of unit spread at ±offset (before: relative error 2e-3 at 100 and 0.6 at 1000).
    rng = np.random.default_rng(int(offset))
    clouds = [(rng.normal(size=(64, 3)) + offset * sign).astype(np.float32) for sign in (1, 1, -1, 1)]
    clouds.append(rng.normal(size=(48, 3)).astype(np.float32) * 0.5 + offset)  # another size (ragged)
    reference = naive_cross(clouds, clouds, normalize=False)
    np.testing.assert_allclose(chamfer_matrix(clouds, normalize=False, backend=backend), reference, rtol=2e-6)
    np.testing.assert_allclose(
        chamfer_cross(clouds[:2], clouds[2:], normalize=False, backend=backend), reference[:2, 2:], rtol=2e-6
    )


def test_nearest_neighbours_of_far_paired_clouds():
    # The training loss path (torch nearest indices): the pair sits at 1000 from the origin.
    a, b = (torch.from_numpy(c)[None] for c in _far_clouds()[:2])
    d_ab, d_ba = naive_pair(a[0].numpy(), b[0].numpy())
    torch.testing.assert_close(chamfer_distance(a, b), torch.tensor(d_ab.mean() + d_ba.mean(), dtype=torch.float32))
    idx_ab, idx_ba = _nearest_indices_torch(a, b)
    assert idx_ab.tolist() == [[0, 1]] and idx_ba.tolist() == [[0, 1]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_beyond_float32_are_reported(backend):
    clouds = [np.array([[1e20, 0.0, 0.0], [0.0, 0.0, 0.0]]), np.array([[-1e20, 0.0, 0.0], [0.0, 0.0, 0.0]])]
    with pytest.raises(ValueError, match="overflows float32"):
        chamfer_matrix(clouds, normalize=False, backend=backend)
    with pytest.raises(ValueError, match="beyond float32's range"):
        chamfer_matrix([np.array([[1e39, 0.0, 0.0]]), np.zeros((1, 3))], normalize=False, backend=backend)
    assert np.isfinite(chamfer_matrix(clouds, backend=backend)).all()  # normalised: fine


def test_unit_ball_transform_is_the_normalisation():
    from dispersion_score.chamfer import unit_ball_transform

    points = random_clouds(1, 50, seed=30, offset=7.0)[0].astype(np.float64)
    centroid, scale = unit_ball_transform(points)
    np.testing.assert_allclose((points - centroid) / scale, normalize_unit_ball(points), rtol=0, atol=1e-15)
    np.testing.assert_allclose((points - centroid) / scale, naive_normalize(points), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_argument_gives_the_same_matrix_and_leaves_torch_alone(backend):
    clouds = surface_clouds(12, 100, seed=31)
    before = torch.get_num_threads()
    one = chamfer_matrix(clouds, backend=backend, threads=1)
    assert torch.get_num_threads() == before
    np.testing.assert_array_equal(one, chamfer_matrix(clouds, backend=backend, threads=2))
    cross = chamfer_cross(clouds[:3], clouds, backend=backend, threads=1)
    np.testing.assert_array_equal(cross, chamfer_cross(clouds[:3], clouds, backend=backend, threads=2))
    np.testing.assert_allclose(cross, one[:3], rtol=1e-5, atol=1e-7)  # a cross matrix computes i == j too
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        chamfer_matrix(clouds, threads=0)
