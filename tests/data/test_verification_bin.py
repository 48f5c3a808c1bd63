"""insightface .bin: lossless round trip, KFold folds, and a restricted unpickler that never runs code."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekd.data.image import decode_image, encode_jpeg
from edgekd.data.sample import FaceSample, VerificationSet
from edgekd.data.verification_bin import read_verification_bin, write_verification_bin
from edgekd.errors import DataError, UnsafeFileError


def _jpegs(count: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode_jpeg(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), 90) for _ in range(count)]


class _EncodedImages:
    """A dataset that can hand out its original bytes (like LFW's), exercising ``raw_bytes``."""

    def __init__(self, blobs: list[bytes]):
        self.blobs = blobs

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, index: int) -> FaceSample:
        return FaceSample(decode_image(self.blobs[index], f"mem#{index}"), -1, f"mem#{index}")

    def raw_bytes(self, index: int) -> bytes:
        return self.blobs[index]


class _ArrayImages:
    """A dataset without ``raw_bytes``: the writer must JPEG-encode its pixels."""

    def __init__(self, images: list[np.ndarray]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> FaceSample:
        return FaceSample(self.images[index], -1, f"arr#{index}")


def _vset(images, pairs, issame) -> VerificationSet:
    pairs, issame = np.asarray(pairs, dtype=np.int64), np.asarray(issame, dtype=bool)
    return VerificationSet("t", images, pairs, issame, np.ones(len(issame), dtype=np.int64))


def test_round_trip_keeps_bytes_issame_and_makes_kfold_folds(tmp_path: Path):
    blobs = _jpegs(8)
    pairs = np.random.default_rng(1).integers(0, 8, size=(23, 2))
    issame = np.random.default_rng(2).random(23) < 0.5
    path = tmp_path / "lfw.bin"
    write_verification_bin(path, _vset(_EncodedImages(blobs), pairs, issame))

    vset = read_verification_bin(path)
    assert vset.name == "lfw"
    assert vset.num_pairs == 23
    np.testing.assert_array_equal(vset.issame, issame)
    for p, (a, b) in enumerate(pairs):
        i, j = vset.pairs[p]
        assert vset.images.raw_bytes(i) == blobs[a] and vset.images.raw_bytes(j) == blobs[b]
    # KFold(10, shuffle=False) on 23 pairs: the first 23 % 10 = 3 folds get 3 pairs, the rest 2.
    expected = np.repeat(np.arange(1, 11), [3, 3, 3, 2, 2, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(vset.folds, expected)
    sample = vset.images[5]
    np.testing.assert_array_equal(sample.image, decode_image(blobs[pairs[2, 1]], "x"))
    assert sample.label == -1 and sample.source == f"{path}#5"


def test_written_file_is_what_insightface_loads(tmp_path: Path):
    images = [np.full((12, 12, 3), v, dtype=np.uint8) for v in (10, 200, 90)]
    path = tmp_path / "x.bin"
    write_verification_bin(path, _vset(_ArrayImages(images), [[0, 1], [2, 2]], [False, True]), quality=80)

    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x04"  # protocol 4
    bins, issame_list = pickle.loads(raw, encoding="bytes")
    assert issame_list == [False, True] and all(type(s) is bool for s in issame_list)
    assert bins == [encode_jpeg(images[i], 80) for i in (0, 1, 2, 2)]
    assert not list(tmp_path.glob("*.tmp"))


def test_num_folds_is_configurable_and_must_fit(tmp_path: Path):
    path = tmp_path / "s.bin"
    path.write_bytes(pickle.dumps((_jpegs(8), [True, False, True, False])))
    np.testing.assert_array_equal(read_verification_bin(path, num_folds=3).folds, [1, 1, 2, 3])
    with pytest.raises(DataError, match="cannot be split"):
        read_verification_bin(path, num_folds=10)


class _Reduce:
    """Pickles as ``func(*args)``: what a hostile file does to run code at load time."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("where", ["bins", "issame", "top"])
def test_hostile_pickle_is_refused_without_running(tmp_path: Path, where: str):
    marker = tmp_path / "pwned"
    payload = _Reduce(os.system, f"touch {marker}")
    obj = {
        "bins": ([b"x", payload], [True]),
        "issame": ([b"a", b"b"], [payload]),
        "top": payload,
    }[where]
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(UnsafeFileError) as err:
        read_verification_bin(path, num_folds=1)
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


def test_payload_is_live_so_the_refusal_test_means_something(tmp_path: Path):
    marker = tmp_path / "created"
    data = pickle.dumps(([_Reduce(open, str(marker), "w")], [True]))
    path = tmp_path / "evil.bin"
    path.write_bytes(data)
    with pytest.raises(UnsafeFileError, match=r"'io\.open'"):
        read_verification_bin(path, num_folds=1)
    assert not marker.exists()
    pickle.loads(data)[0][0].close()  # the unrestricted unpickler does run it
    assert marker.exists()


def _proto2_global_call(module: str, name: str, *args: str) -> bytes:
    """Protocol-2 pickle of ``([module.name(*args)], [True])`` with string arguments."""
    body = b"\x80\x02(c" + f"{module}\n{name}\n".encode() + b"("
    for arg in args:
        encoded = arg.encode()
        body += b"X" + struct.pack("<I", len(encoded)) + encoded
    return body + b"tR" + b"l]\x88a\x86."


def test_codecs_encode_only_allowed_for_latin1(tmp_path: Path):
    path = tmp_path / "c.bin"
    path.write_bytes(_proto2_global_call("_codecs", "encode", "abc", "rot13"))
    with pytest.raises(UnsafeFileError, match="rot13"):
        read_verification_bin(path, num_folds=1)
    path.write_bytes(_proto2_global_call("_codecs", "encode", "ab", "latin1"))
    with pytest.raises(DataError, match="1 images for 1 pairs") as err:  # decoded fine, then validated
        read_verification_bin(path, num_folds=1)
    assert not isinstance(err.value, UnsafeFileError)


def test_numpy_bools_are_refused_by_policy(tmp_path: Path):
    path = tmp_path / "np.bin"
    path.write_bytes(pickle.dumps((_jpegs(2), [np.bool_(True)])))
    with pytest.raises(UnsafeFileError, match="numpy"):
        read_verification_bin(path, num_folds=1)


def test_python3_protocol2_pickle_with_codecs_and_empty_bytes(tmp_path: Path):
    blobs = [*_jpegs(3), b""]
    path = tmp_path / "p2.bin"
    data = pickle.dumps((blobs, [True, False]), protocol=2)
    assert b"_codecs" in data and b"bytes" in data  # really uses the two allowed globals
    path.write_bytes(data)
    vset = read_verification_bin(path, num_folds=2)
    assert [vset.images.raw_bytes(i) for i in range(4)] == blobs
    with pytest.raises(DataError, match=rf"{path.name}#3"):
        vset.images[3]  # decoding is lazy and names file#index


def _python2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What Python 2's ``cPickle.dump((bins, issame), f, 2)`` writes: str as (SHORT_)BINSTRING."""
    out = b"\x80\x02(("
    for blob in bins:
        if len(blob) < 256:
            out += b"U" + bytes([len(blob)]) + blob
        else:
            out += b"T" + struct.pack("<i", len(blob)) + blob
    out += b"l("
    out += b"".join(b"\x88" if s else b"\x89" for s in issame)
    return out + b"lt."


def test_python2_pickle_reads_as_bytes(tmp_path: Path):
    blobs = [b"\xff\xd8tiny", *_jpegs(3)]  # one short (SHORT_BINSTRING), others long (BINSTRING)
    path = tmp_path / "py2.bin"
    path.write_bytes(_python2_pickle(blobs, [True, False]))
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())  # the default ASCII decoding cannot read it
    vset = read_verification_bin(path, num_folds=2)
    assert [vset.images.raw_bytes(i) for i in range(4)] == blobs
    np.testing.assert_array_equal(vset.issame, [True, False])
    np.testing.assert_array_equal(vset.images[1].image, decode_image(blobs[1], "x"))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"bins": [], "issame": []}, "expected a pickled"),
        (([b"a", b"b"], [True], "extra"), "expected a pickled"),
        (([b"a", "not bytes"], [True]), r"bins\[1\]"),
        (([b"a", b"b"], [2]), r"issame_list\[0\]"),
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([], []), "no pairs"),
    ],
)
def test_wrong_structure_is_a_data_error_naming_the_file(tmp_path: Path, obj, message: str):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(DataError, match=message) as err:
        read_verification_bin(path, num_folds=1)
    assert not isinstance(err.value, UnsafeFileError)
    assert str(path) in str(err.value)


def test_missing_and_truncated_files(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        read_verification_bin(tmp_path / "nope.bin")
    path = tmp_path / "cut.bin"
    path.write_bytes(pickle.dumps((_jpegs(2), [True]))[:-40])
    with pytest.raises(DataError, match="not a readable pickle") as err:
        read_verification_bin(path, num_folds=1)
    assert str(path) in str(err.value)
