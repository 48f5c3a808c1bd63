"""Folder-per-identity training sets: labels, filters, corrupt images and the verify() pass."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekd.data.identity_folder import IdentityFolderDataset
from edgekd.data.image import encode_jpeg
from edgekd.errors import DataError


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, np.ndarray]:
    """root/{alice: 2 jpg + notes.txt, bob: 1 PNG + 1 .JPG, carol: 1 png, dave: empty, .cache: 1 jpg}."""
    rng = np.random.default_rng(0)
    images = {}
    layout = {
        "alice/a1.jpg": "jpg",
        "alice/a0.jpeg": "jpg",
        "bob/b0.png": "png",
        "bob/B1.JPG": "jpg",
        "carol/c0.png": "png",
        ".cache/x.jpg": "jpg",
        "alice/.hidden.jpg": "jpg",
    }
    for rel, kind in layout.items():
        image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_png(image) if kind == "png" else encode_jpeg(image))
        images[rel] = image
    (tmp_path / "alice" / "notes.txt").write_text("not an image")
    (tmp_path / "dave").mkdir()
    (tmp_path / "stray.jpg").write_bytes(encode_jpeg(images["alice/a1.jpg"]))
    return images


def _names(ds: IdentityFolderDataset) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in ds.files]


def test_identities_sorted_labels_dense_and_images_filtered(tmp_path: Path, tree):
    ds = IdentityFolderDataset(tmp_path)
    assert ds.classes == ["alice", "bob", "carol"] and ds.num_classes == 3  # empty dave dropped
    assert _names(ds) == ["alice/a0.jpeg", "alice/a1.jpg", "bob/B1.JPG", "bob/b0.png", "carol/c0.png"]
    assert ds.labels().tolist() == [0, 0, 1, 1, 2] and len(ds) == 5
    sample = ds[3]
    np.testing.assert_array_equal(sample.image, tree["bob/b0.png"])  # PNG is lossless
    assert sample.label == 1 and sample.source == str(tmp_path / "bob" / "b0.png")
    assert ds.raw_bytes(0) == (tmp_path / "alice" / "a0.jpeg").read_bytes()
    with pytest.raises(IndexError):
        ds[5]


def test_include_exclude_relabel_and_ignore_unknown_names(tmp_path: Path, tree):
    ds = IdentityFolderDataset(tmp_path, exclude={"alice", "Zed_Unknown"})
    assert ds.classes == ["bob", "carol"] and ds.labels().tolist() == [0, 0, 1]
    assert ds[2].label == 1 and ds[2].source.endswith("c0.png")
    ds = IdentityFolderDataset(tmp_path, include=["carol", "alice", "nobody"], exclude=["carol"])
    assert ds.classes == ["alice"] and len(ds) == 2
    ds = IdentityFolderDataset(tmp_path, extensions=("png",))
    assert ds.classes == ["bob", "carol"] and _names(ds) == ["bob/b0.png", "carol/c0.png"]


def test_empty_or_fully_filtered_roots_are_errors(tmp_path: Path, tree):
    with pytest.raises(DataError, match="after include/exclude"):
        IdentityFolderDataset(tmp_path, include=["nobody"])
    with pytest.raises(DataError, match="no images"):
        IdentityFolderDataset(tmp_path / "dave")
    with pytest.raises(DataError, match="not found"):
        IdentityFolderDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="on_error"):
        IdentityFolderDataset(tmp_path, on_error="ignore")


def _corrupt(tmp_path: Path) -> Path:
    bad = tmp_path / "bob" / "b0.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return bad


def test_corrupt_image_error_names_the_file(tmp_path: Path, tree):
    bad = _corrupt(tmp_path)
    ds = IdentityFolderDataset(tmp_path)
    ds[2]
    with pytest.raises(DataError, match="corrupt") as err:
        ds[3]
    assert str(bad) in str(err.value)
    with pytest.raises(DataError) as err:
        ds.verify()
    assert str(bad) in str(err.value) and len(ds) == 5  # "raise": nothing dropped


def test_verify_skip_drops_corrupt_images_and_keeps_labels(tmp_path: Path, tree):
    bad = _corrupt(tmp_path)
    (tmp_path / "carol" / "c0.png").write_bytes(b"")
    ds = IdentityFolderDataset(tmp_path, on_error="skip")
    assert ds.verify() == 2
    assert ds.skipped == [bad, tmp_path / "carol" / "c0.png"]
    assert _names(ds) == ["alice/a0.jpeg", "alice/a1.jpg", "bob/B1.JPG"]
    assert ds.labels().tolist() == [0, 0, 1] and ds.num_classes == 3  # carol keeps label 2, now unused
    assert [ds[i].label for i in range(3)] == [0, 0, 1]
    assert ds.verify() == 0


def test_verify_skip_with_nothing_left_is_an_error(tmp_path: Path, tree):
    _corrupt(tmp_path)
    ds = IdentityFolderDataset(tmp_path, include=["bob"], extensions=(".png",), on_error="skip")
    with pytest.raises(DataError, match="every image"):
        ds.verify()
