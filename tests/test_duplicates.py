import numpy as np
import pytest
from synthetic import make_synthetic

from fer_core.duplicates.grouping import (NO_GROUP, components_from_pairs, describe_groups, find_leaks, group_exact,
                                          group_near)
from fer_core.duplicates.hashing import phash_batch


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=0)


def members_by_group(dataset, group_of) -> set[frozenset[str]]:
    return {frozenset(dataset.ids[group_of == g].tolist()) for g in np.unique(group_of[group_of != NO_GROUP])}


def test_exact_groups_are_exactly_the_planted_identical_copies(synthetic):
    dataset, planted = synthetic
    groups = members_by_group(dataset, group_exact(dataset.pixels))
    assert groups == {frozenset(planted.exact_copy), frozenset(planted.conflicting_copy),
                      frozenset(planted.cross_split_copy)}


def test_near_groups_add_the_shifted_and_reencoded_copies(synthetic):
    dataset, planted = synthetic
    groups = members_by_group(dataset, group_near(phash_batch(dataset.pixels), 6))
    assert groups == {frozenset(pair) for pair in (planted.exact_copy, planted.conflicting_copy,
                                                  planted.cross_split_copy, planted.shifted_copy, planted.jpeg_copy)}


def test_group_table_flags_conflicts_and_cross_split(synthetic):
    dataset, planted = synthetic
    table = describe_groups(dataset, group_exact(dataset.pixels))
    by_members = {frozenset(row.members): row for row in table.itertuples()}
    conflicting = by_members[frozenset(planted.conflicting_copy)]
    assert conflicting.conflicting and not conflicting.cross_split
    cross = by_members[frozenset(planted.cross_split_copy)]
    assert cross.cross_split and not cross.conflicting
    assert table["conflicting"].sum() == 1 and table["cross_split"].sum() == 1


def test_leaks_are_the_planted_training_copy_of_a_test_image(synthetic):
    dataset, planted = synthetic
    leaks = find_leaks(dataset, 6)
    test_id, training_id = planted.cross_split_copy
    assert dataset.ids[leaks.test_rows].tolist() == [test_id]
    assert dataset.ids[leaks.train_rows].tolist() == [training_id]


def test_leaks_list_every_training_copy_even_in_clumps():
    from synthetic import draw_face

    from fer_core.dataset.loading import Dataset

    face = draw_face(np.random.default_rng(0))
    pixels = np.stack([face] * 4)
    dataset = Dataset(ids=np.array(["t1", "t2", "t3", "x"]), pixels=pixels, labels=np.zeros(4, np.int8),
                      usages=np.array(["Training", "Training", "Training", "PrivateTest"]))
    leaks = find_leaks(dataset, 0)
    assert sorted(dataset.ids[leaks.train_rows].tolist()) == ["t1", "t2", "t3"]


def test_components_are_numbered_by_first_row():
    group_of = components_from_pairs(6, np.array([4, 1]), np.array([5, 2]))
    assert group_of.tolist() == [NO_GROUP, 0, 0, NO_GROUP, 1, 1]
