import numpy as np
import pytest

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import (
    CLASSES,
    HELDOUT_SEED_BASE,
    SEED_RANGE,
    TRAIN_SEED_BASE,
    identity_seed,
    make_identities,
    make_identity,
)


def test_same_seed_same_identity_and_world_seed_matters():
    fresh = make_identity.__wrapped__  # bypass the cache: really draw twice
    a, b = fresh("train", 7, 3), fresh("train", 7, 3)
    assert a == b
    assert np.array_equal(a.vector(), b.vector())
    assert not np.array_equal(a.vector(), fresh("train", 7, 4).vector())


def test_seed_ranges_are_disjoint():
    assert TRAIN_SEED_BASE + SEED_RANGE <= HELDOUT_SEED_BASE
    train = {identity_seed("train", i) for i in (0, 1, SEED_RANGE - 1)}
    heldout = {identity_seed("heldout", i) for i in (0, 1, SEED_RANGE - 1)}
    assert not train & heldout
    for bad in (-1, SEED_RANGE):
        with pytest.raises(FlexIPInputError):
            identity_seed("train", bad)
    with pytest.raises(FlexIPInputError):
        identity_seed("test", 0)


def test_train_and_heldout_parameters_are_distinct():
    train = make_identities("train", 300)
    heldout = make_identities("heldout", 60)
    assert {i.name for i in train}.isdisjoint(i.name for i in heldout)
    assert {i.seed for i in train}.isdisjoint(i.seed for i in heldout)
    a = np.stack([i.vector() for i in train])
    b = np.stack([i.vector() for i in heldout])
    # Compare continuous parameters only (class, pattern and accessory indices may coincide).
    distance = np.abs(a[:, None, 1:] - b[None, :, 1:]).sum(-1)
    assert distance.min() > 0.5
    within = np.abs(a[:, None, 1:] - a[None, :, 1:]).sum(-1) + np.eye(len(a)) * 1e9
    assert within.min() > 0.5


def test_classes_balanced_and_colours_contrast():
    assert len(CLASSES) >= 5
    identities = make_identities("train", 60)
    counts = {noun: sum(i.noun == noun for i in identities) for noun in CLASSES}
    assert set(counts.values()) == {60 // len(CLASSES)}
    luma = lambda c: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]  # noqa: E731
    for identity in identities:
        assert abs(luma(identity.primary) - luma(identity.secondary)) >= 0.25 - 1e-3
        assert identity.to_json()["name"] == identity.name
