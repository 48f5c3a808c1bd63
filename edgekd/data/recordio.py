"""MXNet RecordIO training sets (``train.rec`` + ``train.idx``, as MS1MV2 and Glint360K ship), without MXNet.

Framing (dmlc-core): each record is ``uint32 magic 0xCED7230A``, ``uint32 lrec`` (upper 3 bits: the
continuation flag, 0 whole / 1 start / 2 middle / 3 end; lower 29 bits: the length), the payload, then
zero padding to a multiple of 4. A payload containing the magic at a 4-byte-aligned offset is split
there (the magic itself dropped) so a reader that lost sync can find the next record by scanning for
the magic; reading re-joins the parts with the magic put back. ``train.idx`` lines are
``"{key}\\t{byte_offset}"``.

Payloads start with an ``IRHeader`` (``<IfQQ``: flag, label, id, id2); with ``flag > 0`` the label is
``flag`` float32 values after the header. insightface's layout: record 0 is a header with label
``(first_identity_key, end_key)``; images have keys ``1 .. first_identity_key - 1`` and each identity
record ``first_identity_key .. end_key - 1`` has label ``(start_key, end_key)`` of its images. Sets
without that header record (record 0 has ``flag == 0``) are all images. Labels are float32, so keys
above 2**24 (Glint360K's largest) are only approximate in identity records; image labels are exact.
"""

from __future__ import annotations

import numbers
import operator
import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from edgekd.data.image import decode_image, encode_jpeg
from edgekd.data.sample import FaceSample
from edgekd.errors import DataError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_FRAME = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
_LENGTH_BITS = 29
_MAX_LENGTH = (1 << _LENGTH_BITS) - 1
WHOLE, START, MIDDLE, END = 0, 1, 2, 3


class IRHeader(NamedTuple):
    """Image-record header: ``label`` is a float when ``flag == 0``, else ``flag`` float32 values."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def pack(header: IRHeader, payload: bytes) -> bytes:
    """Serialise a header and payload as MXNet's ``recordio.pack`` does (``flag`` follows the label)."""
    if isinstance(header.label, numbers.Number):
        return _IR.pack(0, float(header.label), header.id, header.id2) + payload
    label = np.asarray(header.label, dtype="<f4").ravel()
    return _IR.pack(label.size, 0.0, header.id, header.id2) + label.tobytes() + payload


def unpack(record: bytes, source: str = "record") -> tuple[IRHeader, bytes]:
    """Split a record into its :class:`IRHeader` and payload; short records raise :class:`DataError`."""
    if len(record) < _IR.size:
        raise DataError(f"{source}: record of {len(record)} bytes is shorter than its {_IR.size}-byte header")
    flag, label, rid, rid2 = _IR.unpack_from(record)
    end = _IR.size + 4 * flag
    if flag == 0:
        return IRHeader(0, label, rid, rid2), record[end:]
    if len(record) < end:
        raise DataError(f"{source}: header promises {flag} label values but the record ends first")
    values = np.frombuffer(record, dtype="<f4", count=flag, offset=_IR.size).astype(np.float32)
    return IRHeader(flag, values, rid, rid2), record[end:]


def _aligned_magic_offsets(payload: bytes) -> list[int]:
    """4-byte-aligned offsets where the magic occurs: where the writer must split the payload."""
    found, pos = [], payload.find(_MAGIC_BYTES)
    while pos >= 0:
        if pos % 4 == 0:
            found.append(pos)
            pos = payload.find(_MAGIC_BYTES, pos + 4)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1)
    return found


def _frame(cflag: int, data: bytes) -> bytes:
    return _FRAME.pack(MAGIC, (cflag << _LENGTH_BITS) | len(data)) + data


def write_record(stream: IO[bytes], payload: bytes) -> int:
    """Append one framed record to ``stream``; returns the bytes written (parts, headers, padding)."""
    if len(payload) > _MAX_LENGTH:
        raise ValueError(f"record of {len(payload)} bytes exceeds RecordIO's {_MAX_LENGTH}-byte limit")
    cuts = _aligned_magic_offsets(payload)
    starts = [0, *(c + 4 for c in cuts)]
    ends = [*cuts, len(payload)]
    chunks = []
    for n, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        first, last = n == 0, n == len(cuts)
        cflag = WHOLE if first and last else START if first else END if last else MIDDLE
        chunks.append(_frame(cflag, payload[lo:hi]))
    chunks.append(b"\0" * (-len(payload) % 4))  # only the last part can be unaligned
    data = b"".join(chunks)
    stream.write(data)
    return len(data)


def _read_exact(stream: IO[bytes], size: int, source: str, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise DataError(f"{source}: truncated {what} (wanted {size} bytes, file has {len(data)})")
    return data


def read_record(stream: IO[bytes], source: str = "record") -> bytes:
    """Read the record at the stream's position, re-joining continuation parts with the magic."""
    parts: list[bytes] = []
    while True:
        magic, lrec = _FRAME.unpack(_read_exact(stream, _FRAME.size, source, "record frame"))
        if magic != MAGIC:
            raise DataError(
                f"{source}: bad magic 0x{magic:08X} (expected 0x{MAGIC:08X}); not a RecordIO record"
            )
        cflag, length = lrec >> _LENGTH_BITS, lrec & _MAX_LENGTH
        if cflag not in ((WHOLE, START) if not parts else (MIDDLE, END)):
            raise DataError(f"{source}: continuation flag {cflag} out of order after {len(parts)} part(s)")
        parts.append(_read_exact(stream, length + (-length % 4), source, "record payload")[:length])
        if cflag in (WHOLE, END):
            return _MAGIC_BYTES.join(parts)


def _parse_index_slowly(text: bytes, idx_path: Path) -> None:
    """Find the first malformed line for the error message (the fast path only knows one exists)."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            int(fields[0]), int(fields[1])
        except ValueError:
            raise DataError(f"{idx_path}:{lineno}: expected 'key<TAB>offset', got {line[:60]!r}") from None
    raise DataError(f"{idx_path}: malformed index")


def read_index(idx_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse a ``.idx`` into ``(keys, offsets)`` int64 arrays in file order.

    Vectorised because MS1MV2's index has 5.8M lines; a per-line loop only runs to explain an error.
    """
    idx_path = Path(idx_path)
    try:
        text = idx_path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read RecordIO index {idx_path}: {exc}") from exc
    tokens = text.split()
    if len(tokens) % 2:
        _parse_index_slowly(text, idx_path)
    try:
        table = np.array(tokens, dtype=np.bytes_).astype(np.int64).reshape(-1, 2)
    except ValueError:
        _parse_index_slowly(text, idx_path)
        raise
    keys, offsets = table[:, 0].copy(), table[:, 1].copy()
    if len(np.unique(keys)) != len(keys):
        raise DataError(f"{idx_path}: duplicate keys in the index")
    if len(keys) and (offsets.min() < 0 or keys.min() < 0):
        raise DataError(f"{idx_path}: negative key or offset in the index")
    return keys, offsets


class RecordIODataset:
    """An insightface ``.rec``/``.idx`` training set as a :class:`FaceDataset` of labelled RGB faces.

    Only paths and the index live in the object; the ``.rec`` is opened on first read, and again in any
    new process, so it can be handed to forked or spawned DataLoader workers without sharing a file
    offset. Not safe for concurrent reads from several threads of one process.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        if not self.rec_path.is_file():
            raise DataError(f"RecordIO file not found: {self.rec_path}")
        keys, offsets = read_index(self.idx_path)
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._sorted_offsets = keys[order], offsets[order]
        self._file: IO[bytes] | None = None
        self._pid = -1
        self._labels: np.ndarray | None = None
        self._image_keys, self._identity_keys = self._layout(keys)
        self.close()  # opened to read record 0; workers reopen their own
        if len(self._image_keys) == 0:
            raise DataError(f"{self.rec_path}: no image records")

    # -- low-level access -------------------------------------------------------------------------

    def _stream(self) -> IO[bytes]:
        if self._file is None or self._pid != os.getpid():
            if self._file is not None:
                self._file.close()  # a forked copy: closes only this process's descriptor
            try:
                self._file = self.rec_path.open("rb")
            except OSError as exc:
                raise DataError(f"cannot open {self.rec_path}: {exc}") from exc
            self._pid = os.getpid()
        return self._file

    def _where(self, key: int) -> str:
        return f"{self.rec_path}, key {key}"

    def _position(self, key: int) -> int | None:
        """Where ``key`` sits in the sorted index, or ``None`` when the index lacks it."""
        pos = int(np.searchsorted(self._sorted_keys, key))
        found = pos < len(self._sorted_keys) and int(self._sorted_keys[pos]) == key
        return pos if found else None

    def read_key(self, key: int) -> tuple[IRHeader, bytes]:
        """The unpacked record stored under ``key`` (header and payload)."""
        pos = self._position(key)
        if pos is None:
            raise DataError(f"{self._where(key)}: key not in index {self.idx_path}")
        offset = int(self._sorted_offsets[pos])
        where = f"{self._where(key)} at offset {offset}"
        stream = self._stream()
        stream.seek(offset)
        return unpack(read_record(stream, where), where)

    def _layout(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Image keys and identity-record keys (``None`` when the set has no header record 0)."""
        if self._position(0) is None:
            return keys, None
        header, _ = self.read_key(0)
        if header.flag == 0:
            return keys, None
        if header.flag < 2:
            raise DataError(f"{self._where(0)}: header record needs 2 label values, has {header.flag}")
        first_identity, end = int(header.label[0]), int(header.label[1])
        if not 1 <= first_identity <= end:
            raise DataError(f"{self._where(0)}: bad header range ({first_identity}, {end})")
        wanted = np.arange(1, end, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_keys, wanted), len(self._sorted_keys) - 1)
        missing = wanted[self._sorted_keys[pos] != wanted]
        if len(missing):
            raise DataError(f"{self._where(int(missing[0]))}: promised by header record 0 but not in index")
        return wanted[: first_identity - 1], wanted[first_identity - 1 :]

    # -- FaceDataset ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._image_keys)

    def _key(self, index: int) -> int:
        i = operator.index(index)
        if not 0 <= i < len(self._image_keys):
            raise IndexError(f"{self.rec_path}: index {i} out of range 0..{len(self._image_keys) - 1}")
        return int(self._image_keys[i])

    @staticmethod
    def _label_of(header: IRHeader) -> int:
        return int(header.label if header.flag == 0 else header.label[0])

    def __getitem__(self, index: int) -> FaceSample:
        key = self._key(index)
        header, payload = self.read_key(key)
        source = f"{self.rec_path}#{key}"
        return FaceSample(image=decode_image(payload, source), label=self._label_of(header), source=source)

    def fingerprint(self) -> str:
        """Which set this is, without reading its images: the files' paths, sizes and modification times
        (a teacher cache keyed on it is rebuilt when the ``.rec`` is rewritten)."""
        parts = []
        for path in (self.rec_path, self.idx_path):
            st = path.stat()
            parts.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
        return "recordio:" + "|".join(parts)

    def raw_bytes(self, index: int) -> bytes:
        """The stored encoded image (usually JPEG), for lossless copies into other formats."""
        return self.read_key(self._key(index))[1]

    # -- identities -------------------------------------------------------------------------------

    @property
    def has_header(self) -> bool:
        """Whether the set has insightface's header and identity records."""
        return self._identity_keys is not None

    @property
    def num_classes(self) -> int:
        """Identity count: identity records when present, else ``max(label) + 1`` (reads every record)."""
        if self._identity_keys is not None:
            return len(self._identity_keys)
        return int(self.labels().max()) + 1

    def identities(self) -> dict[int, np.ndarray]:
        """``{class: dataset indices of its images}``; from identity records when present (cheap).

        Identity record ``first_identity_key + c`` describes class ``c``, as insightface writes them.
        Sets without identity records are grouped by reading every record's label.
        """
        if self._identity_keys is None:
            labels = self.labels()
            return {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        out: dict[int, np.ndarray] = {}
        count = len(self._image_keys)
        for c, key in enumerate(self._identity_keys.tolist()):
            header, _ = self.read_key(key)
            if header.flag < 2:
                raise DataError(f"{self._where(key)}: identity record needs (start, end), flag {header.flag}")
            start, end = int(header.label[0]), int(header.label[1])
            if not 1 <= start <= end <= count + 1:
                raise DataError(
                    f"{self._where(key)}: identity range ({start}, {end}) outside images 1..{count}"
                )
            out[c] = np.arange(start - 1, end - 1, dtype=np.int64)
        return out

    def labels(self) -> np.ndarray:
        """Class of every image (int64, by dataset index); cached after the first call."""
        if self._labels is None:
            if self._identity_keys is not None:
                labels = np.full(len(self), -1, dtype=np.int64)
                for c, indices in self.identities().items():
                    labels[indices] = c
            else:
                labels = np.array([self._label_of(self.read_key(int(k))[0]) for k in self._image_keys])
            self._labels = labels.astype(np.int64)
        return self._labels

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the open ``.rec`` handle (reopened automatically on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1  # a file handle cannot travel to a spawned worker
        return state


_Entry = tuple[int, int, int]  # (label, offset in the spill file, length)


def _spill(samples: Iterable[tuple[np.ndarray | bytes, int]], spill: IO[bytes], quality: int) -> list[_Entry]:
    """Encode every sample into ``spill``; returns ``(label, offset, length)`` in arrival order.

    Spilling to disk keeps memory flat when converting millions of images that must be regrouped by
    label before their keys are known.
    """
    entries: list[_Entry] = []
    for image, label in samples:
        label = operator.index(label)
        if label < 0:
            raise ValueError(f"labels must be >= 0, got {label}")
        data = bytes(image) if isinstance(image, (bytes, bytearray)) else encode_jpeg(image, quality)
        entries.append((label, spill.tell(), len(data)))
        spill.write(data)
    if not entries:
        raise ValueError("no samples to write")
    entries.sort(key=lambda e: e[0])  # stable: arrival order within an identity
    return entries


def _write_all(
    rec: IO[bytes], entries: list[_Entry], spill: IO[bytes], with_header: bool
) -> list[tuple[int, int]]:
    """Write header, images and identity records; returns ``(key, offset)`` for the index."""
    index: list[tuple[int, int]] = []
    num_classes = entries[-1][0] + 1
    first_key = 1 if with_header else 0
    first_identity = first_key + len(entries)

    def put(key: int, header: IRHeader, payload: bytes) -> None:
        index.append((key, rec.tell()))
        write_record(rec, pack(header, payload))

    if with_header:
        put(0, IRHeader(2, np.array([first_identity, first_identity + num_classes]), 0, 0), b"")
    bounds = np.searchsorted([e[0] for e in entries], np.arange(num_classes + 1)) + first_key
    for key, (label, offset, length) in enumerate(entries, start=first_key):
        spill.seek(offset)
        put(key, IRHeader(0, float(label), key, 0), spill.read(length))
    if with_header:
        for c in range(num_classes):
            key = first_identity + c
            put(key, IRHeader(2, np.array([bounds[c], bounds[c + 1]]), key, 0), b"")
    return index


def write_recordio(
    rec_path: str | Path,
    idx_path: str | Path | None,
    samples: Iterable[tuple[np.ndarray | bytes, int]],
    quality: int = 95,
    with_header: bool = True,
) -> int:
    """Write ``(image, label)`` samples as an insightface ``.rec``/``.idx``; returns the image count.

    ``image`` is ``(H, W, 3)`` uint8 RGB (JPEG-encoded at ``quality``) or already-encoded bytes (stored
    as they are). Images are grouped by label (stable), keyed from 1 after header record 0, followed by
    one identity record per class ``0 .. max(label)`` (classes without images get an empty range, so
    record position keeps meaning class). ``with_header=False`` writes images only, keyed from 0.
    Both files are written under temporary names and renamed at the end.
    """
    rec_path = Path(rec_path)
    idx_path = Path(idx_path) if idx_path is not None else rec_path.with_suffix(".idx")
    rec_tmp, idx_tmp = (p.with_name(p.name + ".tmp") for p in (rec_path, idx_path))
    try:
        with tempfile.TemporaryFile(dir=rec_path.parent) as spill:
            entries = _spill(samples, spill, quality)
            with rec_tmp.open("wb") as rec:
                index = _write_all(rec, entries, spill, with_header)
        idx_tmp.write_bytes("".join(f"{key}\t{offset}\n" for key, offset in index).encode("ascii"))
        os.replace(rec_tmp, rec_path)
        os.replace(idx_tmp, idx_path)
    except OSError as exc:
        raise DataError(f"cannot write RecordIO {rec_path}: {exc}") from exc
    finally:
        rec_tmp.unlink(missing_ok=True)
        idx_tmp.unlink(missing_ok=True)
    return len(entries)
