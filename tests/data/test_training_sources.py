"""Several training roots as one set, and held-out identities from pairs and from name files."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.data.concat import ConcatFaces
from edgekd.data.identity_folder import IdentityFolderDataset
from edgekd.errors import DataError
from edgekd.train.batches import build_train_set, read_names
from tests.helpers import make_lfw


@pytest.fixture()
def roots(tmp_path):
    # LFW-like root: pairs of fold 1 use Ann and Bob; Cid and Dee are training identities
    lfw = make_lfw(
        tmp_path / "lfw", "1 1", ["Ann 1 2", "Ann 1 Bob 1"], {"Ann": 2, "Bob": 1, "Cid": 3, "Dee": 2}
    )
    extra = make_lfw(tmp_path / "extra", "", [], {"Cid": 2, "Eve": 4}, seed=1)  # another 'Cid'
    return lfw, extra


def test_two_roots_concatenate_with_disjoint_labels(roots):
    lfw, extra = roots
    ts = build_train_set([str(lfw), str(extra)])
    assert len(ts.dataset) == 8 + 6
    # 4 + 2 classes: the second root's Cid is not merged with the first root's
    assert ts.num_classes == 6
    labels = ts.labels
    assert set(labels[:8]) == {0, 1, 2, 3} and set(labels[8:]) == {4, 5}
    sample = ts.dataset[8]
    assert sample.label == 4 and "extra" in sample.source and sample.image.shape == (112, 112, 3)


def test_pairs_and_name_files_hold_identities_out_of_every_root(roots, tmp_path):
    lfw, extra = roots
    names = tmp_path / "names.txt"
    names.write_text("cfp_001\tCid   # a mapping line: both words are held out\n\n")
    ts = build_train_set([str(lfw), str(extra)], exclude_pairs=str(lfw), exclude_names=[str(names)])
    kept = {s.source.split("/")[-2] for s in (ts.dataset[i] for i in range(len(ts.dataset)))}
    assert kept == {"Dee", "Eve"}
    assert ts.num_classes == 2 and len(ts.dataset) == 2 + 4


def test_read_names_rejects_empty_and_missing_files(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(DataError, match="lists no identity names"):
        read_names(empty)
    with pytest.raises(DataError, match="cannot read identity names"):
        read_names(tmp_path / "missing.txt")


def test_bad_roots_are_named(roots, tmp_path):
    lfw, _ = roots
    with pytest.raises(DataError, match="nowhere"):
        build_train_set([str(lfw), str(tmp_path / "nowhere")])
    with pytest.raises(DataError, match="cannot be combined"):
        build_train_set([str(lfw), "synthetic"])


def test_concat_index_bounds(roots):
    lfw, extra = roots
    both = ConcatFaces([IdentityFolderDataset(lfw), IdentityFolderDataset(extra)])
    assert np.array_equal(both.labels(), np.r_[[0, 0, 1, 2, 2, 2, 3, 3], [4, 4, 5, 5, 5, 5]])
    with pytest.raises(IndexError):
        both[len(both)]
