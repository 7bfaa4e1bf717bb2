"""feature_matrix against a naive float64 pairwise loop written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks._inputs import random_features
from dispersion_score import feature_matrix


def naive_feature_matrix(features: np.ndarray) -> np.ndarray:
    f = features.astype(np.float64)
    n, d = f.shape
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = sum((f[i, k] - f[j, k]) ** 2 for k in range(d)) / d
    return out


def assert_symmetric_zero_diagonal(matrix: np.ndarray) -> None:
    assert matrix.dtype == np.float32
    assert np.array_equal(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 0)


@pytest.mark.parametrize("block_size", [None, 1, 3, 7])
def test_matches_naive(block_size):
    features = random_features(11, 9, seed=1)
    got = feature_matrix(features, block_size=block_size)
    assert_symmetric_zero_diagonal(got)
    np.testing.assert_allclose(got, naive_feature_matrix(features), rtol=1e-5, atol=1e-6)


def test_large_offset_keeps_precision():
    # Norms ~ 1e4 x the distances: the plain expansion in float32 would lose the distances entirely.
    features = random_features(8, 16, seed=2, offset=100.0)
    np.testing.assert_allclose(feature_matrix(features), naive_feature_matrix(features), rtol=1e-4, atol=1e-5)


def test_input_types_and_duplicates():
    features = random_features(5, 4, seed=3)
    features[4] = features[1]
    expected = feature_matrix(features)
    assert expected[1, 4] == 0 and expected[4, 1] == 0
    np.testing.assert_array_equal(feature_matrix(torch.from_numpy(features)), expected)
    np.testing.assert_array_equal(feature_matrix(torch.from_numpy(features).requires_grad_()), expected)
    np.testing.assert_allclose(feature_matrix(features.astype(np.float64)), expected, rtol=1e-6)
    ints = np.arange(12).reshape(4, 3)
    np.testing.assert_allclose(feature_matrix(ints), naive_feature_matrix(ints), rtol=1e-6)
    assert feature_matrix(features[:1]).tolist() == [[0.0]]
    assert feature_matrix(features, progress=True).shape == (5, 5)


def test_bad_input_raises_value_error_naming_the_item():
    features = random_features(6, 5)
    features[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"features\[4\] \(item 4\).*column 2"):
        feature_matrix(features)
    features[4, 2] = 0
    features[0, 0] = -np.inf
    with pytest.raises(ValueError, match=r"item 0"):
        feature_matrix(features)
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        feature_matrix(np.zeros(5))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        feature_matrix(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"N >= 1 and d >= 1"):
        feature_matrix(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"N >= 1 and d >= 1"):
        feature_matrix(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="block_size"):
        feature_matrix(np.zeros((3, 2)), block_size=-1)
    with pytest.raises(ValueError, match="real numbers"):
        feature_matrix(np.zeros((3, 2), dtype=complex))


@pytest.mark.cuda
def test_cuda_matches_cpu():
    features = random_features(300, 64, seed=4)
    cpu = feature_matrix(features)
    on_gpu = feature_matrix(torch.from_numpy(features).cuda(), block_size=128)
    assert_symmetric_zero_diagonal(on_gpu)
    np.testing.assert_allclose(on_gpu, cpu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(feature_matrix(features, device="cuda"), cpu, rtol=1e-4, atol=1e-6)


def test_tight_cluster_far_from_the_mean_keeps_its_distances():
    # Centring on the mean cannot help items that sit together far from it (issue 9, item 1): two items
    # 0.1 apart at x = 1000 and one at x = -1000; in float32 their distance was lost entirely.
    features = np.array([[1000.0, 0.0], [1000.0, 0.1], [-1000.0, 0.0]], dtype=np.float32)
    D = feature_matrix(features)
    np.testing.assert_allclose(D, naive_feature_matrix(features), rtol=1e-6)
    rng = np.random.default_rng(5)
    clusters = np.concatenate([rng.normal(size=(6, 32)) + 1e3, rng.normal(size=(6, 32)) - 3e3]).astype(np.float32)
    np.testing.assert_allclose(feature_matrix(clusters, block_size=4), naive_feature_matrix(clusters), rtol=2e-6)


def test_values_beyond_float32_are_reported():
    with pytest.raises(ValueError, match=r"features\[0\].*1e\+39.*float32"):
        feature_matrix(np.array([[1e39, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="squared distances up to .*float32"):
        feature_matrix(np.array([[1e20, 0.0], [-1e20, 1.0]]))
