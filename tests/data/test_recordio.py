"""RecordIO: dmlc framing (incl. magic inside payloads), IRHeader, insightface layout, errors naming keys."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekd.data.image import decode_image, encode_jpeg
from edgekd.data.recordio import (
    MAGIC,
    IRHeader,
    RecordIODataset,
    pack,
    read_index,
    read_record,
    unpack,
    write_record,
    write_recordio,
)
from edgekd.data.synthetic import SyntheticFaces
from edgekd.errors import DataError

M = struct.pack("<I", MAGIC)


def _lrec(cflag: int, length: int) -> bytes:
    return struct.pack("<I", (cflag << 29) | length)


def _frames(data: bytes) -> list[tuple[int, int]]:
    """Walk the raw file: ``(cflag, length)`` of every frame, checking the magic of each."""
    frames, pos = [], 0
    while pos < len(data):
        magic, lrec = struct.unpack_from("<II", data, pos)
        assert magic == MAGIC
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        frames.append((cflag, length))
        pos += 8 + length + (-length % 4)
    return frames


def test_whole_record_layout_and_padding():
    buf = io.BytesIO()
    assert write_record(buf, b"hello") == 16
    assert buf.getvalue() == M + _lrec(0, 5) + b"hello\0\0\0"


def test_magic_at_aligned_offset_is_split_like_dmlc():
    payload = b"ab\0\0" + M + b"cd"
    buf = io.BytesIO()
    write_record(buf, payload)
    assert buf.getvalue() == M + _lrec(1, 4) + b"ab\0\0" + M + _lrec(3, 2) + b"cd\0\0"
    buf.seek(0)
    assert read_record(buf) == payload


@pytest.mark.parametrize(
    "payload",
    [
        M,
        M + M,
        M + b"abcd" + M + M + b"xyz",
        b"1234" + M,
        b"12" + M + b"34",  # unaligned: stays one part
        b"",
        bytes(range(256)) * 3 + M + b"!",
    ],
    ids=["only-magic", "two-magics", "magics-between", "magic-at-end", "unaligned", "empty", "long"],
)
def test_payloads_with_magic_round_trip(payload: bytes):
    buf = io.BytesIO()
    write_record(buf, payload)
    write_record(buf, b"next")
    aligned = [i for i in range(0, len(payload) - 3, 4) if payload[i : i + 4] == M]
    flags = [cflag for cflag, _ in _frames(buf.getvalue())]
    assert flags == ([0] if not aligned else [1] + [2] * (len(aligned) - 1) + [3]) + [0]
    buf.seek(0)
    assert read_record(buf) == payload
    assert read_record(buf) == b"next"  # the stream is left exactly at the next record


def test_unaligned_magic_is_not_split():
    buf = io.BytesIO()
    write_record(buf, b"12" + M + b"34")
    assert buf.getvalue()[4:8] == _lrec(0, 8)


def test_reader_rejects_bad_magic_truncation_and_flag_order():
    with pytest.raises(DataError, match="bad magic"):
        read_record(io.BytesIO(b"\0" * 16), "f.rec#3")
    with pytest.raises(DataError, match="truncated"):
        read_record(io.BytesIO(M + _lrec(0, 8) + b"abc"), "f.rec#3")
    with pytest.raises(DataError, match="continuation flag 3"):
        read_record(io.BytesIO(M + _lrec(3, 4) + b"abcd"), "f.rec#3")


def test_irheader_pack_unpack():
    header, payload = unpack(pack(IRHeader(7, 12.0, 5, 9), b"jpeg"))
    assert header == IRHeader(0, 12.0, 5, 9) and payload == b"jpeg"  # number label forces flag 0
    record = pack(IRHeader(0, np.array([3, 8]), 0, 0), b"")
    assert len(record) == 24 + 8 and struct.unpack("<IfQQ", record[:24]) == (2, 0.0, 0, 0)
    header, payload = unpack(record)
    assert header.flag == 2 and header.label.tolist() == [3.0, 8.0] and payload == b""
    with pytest.raises(DataError, match="shorter"):
        unpack(b"abc")
    with pytest.raises(DataError, match="label values"):
        unpack(struct.pack("<IfQQ", 5, 0, 0, 0) + b"\0" * 8)


@pytest.fixture()
def written(tmp_path: Path):
    """7 synthetic images of 3 identities, given out of label order."""
    faces = SyntheticFaces(num_identities=3, images_per_identity=3, size=(24, 24), seed=4)
    order = [4, 0, 7, 2, 5, 1, 3]
    samples = [(faces[i].image, faces[i].label) for i in order]
    rec, idx = tmp_path / "train.rec", tmp_path / "train.idx"
    assert write_recordio(rec, idx, iter(samples), quality=90) == 7
    return rec, idx, samples


def test_write_then_read_keeps_payloads_labels_and_groups_by_label(written):
    rec, _, samples = written
    ds = RecordIODataset(rec)
    assert len(ds) == 7 and ds.has_header and ds.num_classes == 3
    expected = sorted(samples, key=lambda s: s[1])  # stable: arrival order within a label
    for i, (image, label) in enumerate(expected):
        jpeg = encode_jpeg(image, 90)
        assert ds.raw_bytes(i) == jpeg
        sample = ds[i]
        assert sample.label == label and isinstance(sample.label, int)
        np.testing.assert_array_equal(sample.image, decode_image(jpeg, "x"))
        assert sample.source == f"{rec}#{i + 1}"
    np.testing.assert_array_equal(ds.labels(), [e[1] for e in expected])


def test_insightface_header_and_identity_records(written):
    rec, idx, _ = written
    ds = RecordIODataset(rec, idx)
    header, payload = ds.read_key(0)
    assert header.flag == 2 and header.label.tolist() == [8.0, 11.0] and payload == b""
    keys, _ = read_index(idx)
    assert keys.tolist() == list(range(11))
    ranges = [ds.read_key(k)[0].label.tolist() for k in (8, 9, 10)]
    bounds = 1 + np.concatenate([[0], np.cumsum(np.bincount([label for _, label in written[2]]))])
    assert ranges == [[bounds[c], bounds[c + 1]] for c in range(3)] and bounds[-1] == 8
    image_header, _ = ds.read_key(3)
    assert image_header.flag == 0 and image_header.id == 3
    identities = ds.identities()
    assert sorted(identities) == [0, 1, 2]
    for c, indices in identities.items():
        assert all(ds[int(i)].label == c for i in indices)


def test_set_without_header_reads_all_keys_as_images(tmp_path: Path):
    rec = tmp_path / "plain.rec"
    blobs = [b"\0\0\0\0" + M + b"jpeg-ish", encode_jpeg(np.zeros((8, 8, 3), np.uint8)), b"abc"]
    write_recordio(rec, None, [(blobs[0], 5), (blobs[1], 2), (blobs[2], 5)], with_header=False)
    ds = RecordIODataset(rec)
    assert not ds.has_header and len(ds) == 3
    assert [ds.raw_bytes(i) for i in range(3)] == [blobs[1], blobs[0], blobs[2]]  # bytes kept as given
    assert ds.labels().tolist() == [2, 5, 5] and ds.num_classes == 6
    assert {c: v.tolist() for c, v in ds.identities().items()} == {2: [0], 5: [1, 2]}
    assert ds[0].source == f"{rec}#0"


def test_classes_without_images_keep_their_identity_record(tmp_path: Path):
    rec = tmp_path / "gap.rec"
    write_recordio(rec, None, [(b"a", 0), (b"b", 2)])
    ds = RecordIODataset(rec)
    assert ds.num_classes == 3
    assert {c: v.tolist() for c, v in ds.identities().items()} == {0: [0], 1: [], 2: [1]}


def _offset(idx: Path, key: int) -> int:
    keys, offsets = read_index(idx)
    return int(offsets[keys.tolist().index(key)])


def test_corrupt_magic_names_file_and_key(written):
    rec, idx, _ = written
    data = bytearray(rec.read_bytes())
    at = _offset(idx, 5)
    data[at : at + 4] = b"JUNK"
    rec.write_bytes(bytes(data))
    ds = RecordIODataset(rec)
    ds[3]  # other records still read
    with pytest.raises(DataError, match="bad magic") as err:
        ds[4]
    assert str(rec) in str(err.value) and "key 5" in str(err.value)


def test_truncated_rec_names_key(written):
    rec, idx, _ = written
    rec.write_bytes(rec.read_bytes()[: _offset(idx, 7) + 12])
    ds = RecordIODataset(rec)
    with pytest.raises(DataError, match="truncated") as err:
        ds[6]
    assert "key 7" in str(err.value)


def test_index_problems(tmp_path: Path, written):
    rec, idx, _ = written
    with pytest.raises(DataError, match="not found"):
        RecordIODataset(tmp_path / "none.rec")
    with pytest.raises(DataError, match="cannot read RecordIO index"):
        RecordIODataset(rec, tmp_path / "none.idx")
    lines = idx.read_text().splitlines()
    bad = tmp_path / "bad.idx"
    bad.write_text("\n".join([*lines[:3], "4\tnot-a-number", *lines[4:]]) + "\n")
    with pytest.raises(DataError, match=r"bad\.idx:4"):
        RecordIODataset(rec, bad)
    bad.write_text("\n".join(lines[:5]) + "\n")  # header promises keys 1..10
    with pytest.raises(DataError, match=r"key 5.*promised by header"):
        RecordIODataset(rec, bad)


def test_survives_pickling_and_fork(written, monkeypatch):
    rec, _, samples = written
    ds = RecordIODataset(rec)
    first = ds.raw_bytes(0)
    handle = ds._file
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.raw_bytes(0) == first
    monkeypatch.setattr(os, "getpid", lambda: -12345)  # as seen by a forked worker
    assert ds.raw_bytes(1) == encode_jpeg(sorted(samples, key=lambda s: s[1])[1][0], 90)
    assert ds._file is not handle  # reopened, so no file offset is shared with the parent


def test_writer_rejects_bad_input(tmp_path: Path):
    with pytest.raises(ValueError, match="no samples"):
        write_recordio(tmp_path / "e.rec", None, [])
    with pytest.raises(ValueError, match=">= 0"):
        write_recordio(tmp_path / "n.rec", None, [(b"x", -1)])
    assert not list(tmp_path.iterdir())
