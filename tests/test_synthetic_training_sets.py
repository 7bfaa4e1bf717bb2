"""Splits and the 16 training-set definitions (pure functions; the written files are tested in the build test)."""

import pytest

from dataset.synthetic.training_sets import (
    CLUSTER_CENTRES,
    CLUSTER_SIZES,
    POOL_SIZE,
    cluster_offsets,
    referenced_pool_indices,
    round_half_away_from_zero,
    split_instances,
    training_set_items,
)


@pytest.mark.parametrize(
    ("x", "expected"),
    [(0.5, 1), (-0.5, -1), (2.5, 3), (-2.5, -3), (2.4999, 2), (-2.4999, -2), (157.5, 158), (0.0, 0), (3.0, 3)],
)
def test_round_half_away_from_zero(x, expected):
    assert round_half_away_from_zero(x) == expected


def test_cluster_offsets_are_symmetric_and_distinct():
    assert cluster_offsets(1) == [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]
    assert cluster_offsets(5) == [-23, -18, -13, -8, -3, 3, 8, 13, 18, 23]
    assert cluster_offsets(10) == [-45, -35, -25, -15, -5, 5, 15, 25, 35, 45]
    for s in CLUSTER_SIZES:
        offsets = cluster_offsets(s)
        assert offsets == [-o for o in reversed(offsets)]
        assert len(set(offsets)) == 10
        # the exact definition, offset by offset, from s·(j − 4.5)
        for j, o in enumerate(offsets):
            exact = s * (j - 4.5)
            assert abs(o - exact) <= 0.5 and (abs(o - exact) < 0.5 or abs(o) > abs(exact))


def test_split_parameters():
    pool, test, val = split_instances("train", 1000), split_instances("test", 200), split_instances("val", 200)
    assert [i.t for i in pool[:3]] == [0.0, 0.001, 0.002] and pool[-1].t == 0.999
    assert test[0].t == 0.0025 and test[-1].t == 0.9975
    assert val[0].t == 0.00125 and val[-1].t == pytest.approx(0.99625)
    pool_t = {round(i.t * 1000, 9) for i in pool}
    assert not pool_t & {round(i.t * 1000, 9) for i in test + val}  # no test/val shape in the pool
    assert pool[250].id == "train_0250" and pool[250].path("points.npy") == "instances/train_0250/points.npy"
    with pytest.raises(ValueError, match="split"):
        split_instances("training", 3)


@pytest.mark.parametrize("s", CLUSTER_SIZES)
def test_image_aug_two_target_shapes_images_spread_by_s(s):
    items = training_set_items("image_aug", s)
    assert len(items) == 20
    assert {item.shape_index for item in items} == set(CLUSTER_CENTRES)
    for cluster, centre in enumerate(CLUSTER_CENTRES):
        mine = [item for item in items if item.cluster == cluster]
        assert [item.item for item in mine] == list(range(10))
        assert all(item.shape_index == centre for item in mine)
        assert [item.image_index - centre for item in mine] == cluster_offsets(s)


@pytest.mark.parametrize("s", CLUSTER_SIZES)
def test_shape_aug_images_fixed_shapes_spread_by_s(s):
    items = training_set_items("shape_aug", s)
    image_aug_35 = training_set_items("image_aug", 35)
    assert [i.image_index for i in items] == [i.image_index for i in image_aug_35]
    if s == 1:
        assert items == image_aug_35
    else:
        image_aug_s = training_set_items("image_aug", s)
        assert [i.shape_index for i in items] == [i.image_index for i in image_aug_s]


def test_shape_aug_35_pairs_each_image_with_its_own_shape():
    assert all(item.image_index == item.shape_index for item in training_set_items("shape_aug", 35))


def test_spread_grows_with_s():
    def spread(values):
        return max(values) - min(values)

    image_spread = [spread([i.image_index for i in training_set_items("image_aug", s)[:10]]) for s in CLUSTER_SIZES]
    shape_spread = [spread([i.shape_index for i in training_set_items("shape_aug", s)[:10]]) for s in CLUSTER_SIZES]
    assert image_spread == sorted(image_spread) and len(set(image_spread)) == 8
    assert shape_spread[0] == 0 and shape_spread == sorted(shape_spread)


def test_referenced_pool_indices_fit_in_the_pool():
    used = referenced_pool_indices()
    assert used[0] >= 0 and used[-1] < POOL_SIZE
    assert used[0] == 250 - 158 and used[-1] == 750 + 158
    assert set(CLUSTER_CENTRES) <= set(used)


def test_unknown_kind_or_size():
    with pytest.raises(ValueError, match="kind"):
        training_set_items("img_aug", 5)
    with pytest.raises(ValueError, match="cluster size"):
        training_set_items("image_aug", 7)
