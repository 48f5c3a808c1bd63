"""insightface verification ``.bin`` files (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...).

A ``.bin`` is a pickle of ``(bins, issame_list)``: ``bins`` holds ``2P`` encoded images (JPEG bytes),
pair ``i`` being ``bins[2i]`` and ``bins[2i + 1]``, and ``issame_list`` holds ``P`` booleans. The files
carry no folds; readers split the pairs into contiguous folds as insightface's ``KFold(shuffle=False)``.

Pickles can run arbitrary code while loading, and these files are downloaded from mirrors, so they are
read with :class:`_RestrictedUnpickler`, which builds nothing but the plain containers the format needs.
"""

from __future__ import annotations

import io
import operator
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgekd.data.folds import contiguous_folds
from edgekd.data.image import decode_image, encode_jpeg
from edgekd.data.sample import FaceDataset, FaceSample, VerificationSet
from edgekd.errors import DataError, UnsafeFileError

# Encodings Python 3 writes for bytes in protocol < 3 pickles: ``_codecs.encode(text, "latin1")``.
_LATIN1_NAMES = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"})


@runtime_checkable
class RawBytesSource(Protocol):
    """Optional dataset extension: the image's original encoded bytes, or ``None`` if there are none.

    Writers (``.bin``, RecordIO) copy these verbatim instead of decoding and re-encoding, which would
    lose quality (JPEG generations) and change the bytes other tools compare against.
    """

    def raw_bytes(self, index: int) -> bytes | None: ...


def encoded_image(dataset: FaceDataset, index: int, quality: int = 95) -> bytes:
    """Encoded bytes of ``dataset[index]``: the original file when the dataset has it, else a JPEG."""
    raw_bytes = getattr(dataset, "raw_bytes", None)
    if callable(raw_bytes):
        data = raw_bytes(index)
        if data is not None:
            return bytes(data)
    return encode_jpeg(dataset[index].image, quality)


class BinImages:
    """The images of a ``.bin`` as a :class:`FaceDataset`, decoded on access.

    Decoding all ``2P`` images up front would cost seconds and hundreds of MB for sets that are
    usually evaluated in batches; the compressed bytes are what the pickle already holds.
    """

    def __init__(self, bins: Sequence[bytes], path: str | Path):
        self._bins = bins
        self.path = str(path)

    def __len__(self) -> int:
        return len(self._bins)

    def _check(self, index: int) -> int:
        i = operator.index(index)
        if not 0 <= i < len(self._bins):
            raise IndexError(f"{self.path}: image index {i} out of range 0..{len(self._bins) - 1}")
        return i

    def __getitem__(self, index: int) -> FaceSample:
        i = self._check(index)
        source = f"{self.path}#{i}"
        return FaceSample(image=decode_image(self._bins[i], source), label=-1, source=source)

    def raw_bytes(self, index: int) -> bytes:
        """The stored encoded image, so re-writing a ``.bin`` is lossless."""
        return self._bins[self._check(index)]


def _safe_empty_bytes(path: str) -> Callable[..., bytes]:
    """Stand-in for ``bytes``: Python 3 pickles ``b""`` as ``bytes()`` in protocols < 3."""

    def make(*args: Any) -> bytes:
        if args:
            raise UnsafeFileError(f"{path}: refused pickle call bytes{args!r:.60} (only bytes() is allowed)")
        return b""

    return make


def _safe_latin1_encode(path: str) -> Callable[..., bytes]:
    """Stand-in for ``_codecs.encode``, which Python 3 uses to pickle non-empty bytes in protocols < 3.

    The real function can run any registered codec; this one only does the ``latin1`` round trip
    those pickles need, so the global is harmless.
    """

    def encode(text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
        if rest or not isinstance(text, str) or str(encoding).lower() not in _LATIN1_NAMES:
            raise UnsafeFileError(
                f"{path}: refused pickle call _codecs.encode with encoding {encoding!r} "
                "(only latin1 text → bytes is allowed)"
            )
        return text.encode("latin-1")

    return encode


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves no real globals.

    The format needs only lists/tuples of bytes, bools and ints, which pickle builds with its own
    opcodes; the one exception is bytes in protocol < 3 pickles written by Python 3, which reference
    ``_codecs.encode`` (and ``__builtin__.bytes`` for ``b""``). Those two names resolve to local
    stand-ins that can only produce bytes. Every other global is refused with :class:`UnsafeFileError`
    before it is imported, so a hostile ``__reduce__`` (``os.system``, ``builtins.eval``, ...) never runs.

    NumPy scalars (``numpy.core.multiarray.scalar`` with a ``numpy.dtype``) are refused too, even though
    some third-party ``.bin`` files store ``issame`` as ``numpy.bool_``: ``scalar`` builds a value of
    any dtype from raw bytes (object dtype included), which is not safe to allow. Such files must be
    re-saved with plain bools (``[bool(x) for x in issame]``) by a trusted process.
    """

    def __init__(self, file: io.BufferedIOBase, path: str):
        super().__init__(file, encoding="bytes")  # Python 2 ``str`` → bytes, as the images are.
        self._path = path
        self._allowed: dict[tuple[str, str], Callable[..., bytes]] = {
            ("_codecs", "encode"): _safe_latin1_encode(path),
            ("__builtin__", "bytes"): _safe_empty_bytes(path),
            ("builtins", "bytes"): _safe_empty_bytes(path),
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"{self._path}: refused to load global '{module}.{name}' from the pickle; a verification "
                ".bin only holds bytes, bools and ints (the file may be hostile or not a .bin)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"{self._path}: refused pickle persistent id {pid!r:.60}")


def _unpickle(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, str(path)).load()
    except FileNotFoundError as exc:
        raise DataError(f"verification .bin not found: {path}") from exc
    except UnsafeFileError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise DataError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def _validate(obj: Any, path: Path) -> tuple[list[bytes], np.ndarray]:
    """Check the unpickled object is ``(bins, issame)`` of the right types and lengths."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{path}: expected a pickled (bins, issame_list) pair, got {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise DataError(f"{path}: bins and issame_list must be lists")
    bad = next((i for i, b in enumerate(bins) if not isinstance(b, bytes)), None)
    if bad is not None:
        raise DataError(f"{path}: bins[{bad}] is {type(bins[bad]).__name__}, expected encoded image bytes")
    bad = next((i for i, s in enumerate(issame) if type(s) not in (bool, int) or s not in (0, 1)), None)
    if bad is not None:
        raise DataError(f"{path}: issame_list[{bad}] is {issame[bad]!r:.40}, expected a bool")
    if len(bins) != 2 * len(issame):
        raise DataError(f"{path}: {len(bins)} images for {len(issame)} pairs; expected exactly two per pair")
    if not issame:
        raise DataError(f"{path}: no pairs")
    return list(bins), np.asarray(issame, dtype=bool)


def read_verification_bin(path: str | Path, num_folds: int = 10) -> VerificationSet:
    """Read an insightface ``.bin`` safely; pairs are split into ``num_folds`` contiguous 1-based folds.

    Raises :class:`UnsafeFileError` if the pickle references any callable beyond what bytes need, and
    :class:`DataError` (naming the file) if it is missing, corrupt or not ``(bins, issame_list)``.
    Images are decoded lazily, so a corrupt image surfaces as ``DataError`` naming ``file#index``.
    """
    if num_folds < 1:
        raise ValueError(f"num_folds must be >= 1, got {num_folds}")
    path = Path(path)
    bins, issame = _validate(_unpickle(path), path)
    if len(issame) < num_folds:
        raise DataError(f"{path}: {len(issame)} pairs cannot be split into {num_folds} folds")
    return VerificationSet(
        name=path.stem,
        images=BinImages(bins, path),
        pairs=np.arange(len(bins), dtype=np.int64).reshape(-1, 2),
        issame=issame,
        folds=contiguous_folds(len(issame), num_folds),
    )


def write_verification_bin(path: str | Path, vset: VerificationSet, quality: int = 95) -> None:
    """Write ``vset`` as an insightface ``.bin`` (pickle protocol 4) that insightface tools can read.

    Pairs are written in order, so reading back with the same number of contiguous folds restores the
    folds of sets whose folds are contiguous (LFW's are). Images come from the dataset's optional
    ``raw_bytes(index)`` (lossless copy) or are JPEG-encoded at ``quality``; an image used by several
    pairs is encoded once. The file is written to a temporary name and renamed, so a failure never
    leaves a truncated ``.bin`` behind.
    """
    path = Path(path)
    cache: dict[int, bytes] = {}
    bins: list[bytes] = []
    for index in np.asarray(vset.pairs, dtype=np.int64).ravel().tolist():
        if index not in cache:
            cache[index] = encoded_image(vset.images, index, quality)
        bins.append(cache[index])
    issame = [bool(s) for s in np.asarray(vset.issame).tolist()]
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            pickle.dump((bins, issame), f, protocol=4)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {path}: {exc}") from exc
