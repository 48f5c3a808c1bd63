"""LFW layout + pairs.txt: parsing, folds, missing images and malformed lines."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.data import load_verification_set
from edgekd.data.folds import parse_folds
from edgekd.data.lfw import identities_in_pairs, read_lfw_pairs
from edgekd.errors import ConfigError, DataError
from tests.helpers import make_lfw

PEOPLE = {"Ann_A": 2, "Bob_B": 2, "Cid_C": 1, "Dee_D": 2}
# 2 folds, 1 same + 1 different pair per fold
LINES = ["Ann_A 1 2", "Ann_A 1 Cid_C 1", "Bob_B 1 2", "Bob_B 2 Dee_D 1"]


def test_canonical_pairs(tmp_path):
    root = make_lfw(tmp_path / "lfw", "2 1", LINES, PEOPLE)
    vset = read_lfw_pairs(root)
    assert vset.num_pairs == 4
    assert vset.issame.tolist() == [True, False, True, False]
    assert vset.folds.tolist() == [1, 1, 2, 2]
    assert len(vset.images) == 6  # each image once
    a, b = vset.pairs[1]
    assert vset.images[a].source.endswith("Ann_A/Ann_A_0001.jpg")
    assert vset.images[b].source.endswith("Cid_C/Cid_C_0001.jpg")
    assert vset.images[a].image.shape == (112, 112, 3) and vset.images[a].image.dtype == np.uint8


def test_fold_selection_keeps_only_used_images(tmp_path):
    root = make_lfw(tmp_path / "lfw", "2 1", LINES, PEOPLE)
    sub = load_verification_set(root, "2")
    assert sub.num_pairs == 2 and sub.folds.tolist() == [2, 2]
    assert len(sub.images) == 3
    assert identities_in_pairs(sub) == {"Bob_B", "Dee_D"}
    with pytest.raises(DataError, match=r"asked for \[3\]"):
        load_verification_set(root, "2-3")


def test_missing_image_is_named(tmp_path):
    root = make_lfw(tmp_path / "lfw", "2 1", LINES, PEOPLE)
    (root / "Dee_D" / "Dee_D_0001.jpg").unlink()
    with pytest.raises(DataError, match=r"pair 4 not found: .*Dee_D_0001\.jpg"):
        read_lfw_pairs(root)


def test_corrupt_image_is_named(tmp_path):
    root = make_lfw(tmp_path / "lfw", "2 1", LINES, PEOPLE)
    (root / "Ann_A" / "Ann_A_0002.jpg").write_bytes(b"not a jpeg")
    vset = read_lfw_pairs(root)
    with pytest.raises(DataError, match=r"corrupt or unreadable image .*Ann_A_0002\.jpg"):
        vset.images[vset.pairs[0, 1]]


@pytest.mark.parametrize(
    ("header", "lines", "pattern"),
    [
        ("2 1", [*LINES[:3], "Bob_B two Dee_D 1"], r"pairs\.txt:5: expected"),
        ("2 2", LINES, r"header promises 2x2x2 pairs, file has 4"),
        ("two 1", LINES, r"pairs\.txt:1: expected header"),
    ],
)
def test_malformed_pairs_file(tmp_path, header, lines, pattern):
    root = make_lfw(tmp_path / "lfw", header, lines, PEOPLE)
    with pytest.raises(DataError, match=pattern):
        read_lfw_pairs(root)


def test_path_list_pairs_file(tmp_path):
    root = make_lfw(tmp_path / "lfw", "2 1", LINES, PEOPLE)
    paths = [
        "Ann_A/Ann_A_0001.jpg",
        "Ann_A/Ann_A_0002.jpg",
        "",
        "Bob_B/Bob_B_0001.jpg",
        "Cid_C/Cid_C_0001.jpg",
    ]
    lst = root / "pairs_01.txt"
    lst.write_text("\n".join(paths * 10) + "\n")
    vset = load_verification_set(lst)
    assert vset.num_pairs == 20 and vset.issame.tolist() == [True, False] * 10
    assert sorted(set(vset.folds.tolist())) == list(range(1, 11))


def test_missing_sources(tmp_path):
    with pytest.raises(DataError, match="pairs source not found"):
        load_verification_set(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="pairs file not found"):
        load_verification_set(tmp_path / "empty")


@pytest.mark.parametrize(
    ("spec", "folds"), [("6-10", (6, 7, 8, 9, 10)), ("1,3,5-6", (1, 3, 5, 6)), ("all", None), (None, None)]
)
def test_parse_folds(spec, folds):
    assert parse_folds(spec) == folds


@pytest.mark.parametrize("spec", ["6-", "10-6", "a", "0-2"])
def test_parse_folds_rejects(spec):
    with pytest.raises(ConfigError, match="fold"):
        parse_folds(spec)


@pytest.mark.shared
def test_real_lfw_pairs(lfw_root):
    vset = read_lfw_pairs(lfw_root)
    assert vset.num_pairs == 6000 and vset.issame.sum() == 3000
    assert np.bincount(vset.folds).tolist() == [0] + [600] * 10
    test = load_verification_set(lfw_root, "6-10")
    assert test.num_pairs == 3000
