"""Teacher embeddings computed once per image and memory-mapped for every later epoch and run.

A frozen teacher gives the same embedding for an image in every epoch, so distilling from it need not
run it more than once. The cache holds, for every sample ``i`` of a dataset, the L2-normalised float32
teacher embedding of the image and (``flip=True``) of its mirror image, as ``.npy`` files read through
``np.memmap``::

    <cache_root>/<key>/embeddings.npy        (N, D) float32 (or float16), unit rows
    <cache_root>/<key>/flip_embeddings.npy   (N, D) likewise (when built with flip)
    <cache_root>/<key>/meta.json             count, dim, dtype, teacher, flip, created, fingerprints

Millions of rows: the arrays are written chunk by chunk into memory-mapped files, so RAM stays bounded;
``dtype="float16"`` halves the disk and page-cache footprint (unit rows lose < 1e-3 per element, far below
what distillation resolves). Under DDP every rank embeds its share of the chunks into the same files
(``dist``), so the cache fills ``world`` times faster, and rank 0 renames the entry into place.

``key`` is the sha256 of the dataset fingerprint (its ``fingerprint()`` method, else its length and every
sample's ``source``) and the teacher fingerprint (its ``fingerprint()`` method, else the sha256 of
``teacher_file``, else the embedder's class, name, embedding size and input spec). An entry is written
in a temporary folder and renamed into place, so a crash never leaves a half-written entry under its key;
an entry that is nonetheless unusable (missing ``meta.json``, missing or mis-shaped arrays) is rebuilt
with a warning.

>>> cache = TeacherCache.open_or_build(teacher, dataset, "cache/teacher")  # doctest: +SKIP
>>> cache[[0, 5, 7]].shape  # torch.float32, unit rows                    # doctest: +SKIP
torch.Size([3, 512])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from edgekd.data.sample import FaceDataset, FaceSample, dataset_fingerprint
from edgekd.distributed import DistInfo, all_ranks, barrier, broadcast_object
from edgekd.errors import DataError
from edgekd.eval.runner import embed_dataset
from edgekd.runtime.base import Embedder, l2_normalize
from edgekd.runtime.known import file_sha256

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the layout or the key recipe changes: old entries are then never matched
EMBEDDINGS, FLIP_EMBEDDINGS, META = "embeddings.npy", "flip_embeddings.npy", "meta.json"
CHUNK = 8192  # images per embed_dataset call, so RAM stays bounded however large the dataset


def teacher_fingerprint(embedder: Embedder, teacher_file: str | os.PathLike[str] | None = None) -> str:
    """``embedder.fingerprint()``, else sha256 of ``teacher_file``, else class + name + size + input spec."""
    method = getattr(embedder, "fingerprint", None)
    if callable(method):
        return f"embedder:{method()}"
    if teacher_file is not None:
        path = Path(teacher_file)
        if not path.is_file():
            raise DataError(f"teacher file not found: {path}")
        return f"file:{file_sha256(path)}"
    described = {
        "class": f"{type(embedder).__module__}.{type(embedder).__qualname__}",
        "name": embedder.name,
        "embedding_size": int(getattr(embedder, "embedding_size", 0)),
        "input_spec": embedder.input_spec.to_dict(),
    }
    return "described:" + json.dumps(described, sort_keys=True)


DTYPES = ("float32", "float16")


def cache_key(dataset_fp: str, teacher_fp: str, dtype: str = "float32") -> str:
    """Folder name of a cache entry: sha256 of the version, both fingerprints and (when not float32,
    so float32 entries keep their keys) the storage dtype."""
    fields = {"version": CACHE_VERSION, "dataset": dataset_fp, "teacher": teacher_fp}
    if dtype != "float32":
        fields["dtype"] = dtype
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class _Slice:
    """Samples ``start..stop-1`` of a dataset as a dataset of their own (no copying)."""

    def __init__(self, dataset: FaceDataset, start: int, stop: int):
        self.dataset, self.start, self.stop = dataset, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> FaceSample:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.dataset[self.start + index]


def _load_array(path: Path, shape: tuple[int, int], dtype: str = "float32") -> np.memmap:
    """Open a cached ``.npy`` read-only as a memmap; DataError unless it is ``dtype`` of ``shape``."""
    if not path.is_file():
        raise DataError(f"{path.name} is missing")
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:  # truncated or not .npy
        raise DataError(f"{path.name} is unreadable: {exc}") from exc
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise DataError(f"{path.name} is {array.dtype} {array.shape}, meta.json says {dtype} {shape}")
    return array


class TeacherCache:
    """Memory-mapped teacher embeddings of one dataset: ``embeddings`` and ``flip_embeddings`` ``(N, D)``.

    Index with sample indices: ``cache[indices]`` → ``(B, D)`` float32 tensor (``cache.flipped(indices)``
    for the mirror view).
    """

    def __init__(
        self, path: Path, embeddings: np.memmap, flip_embeddings: np.memmap | None, meta: dict[str, Any]
    ):
        self.path = path
        self.embeddings = embeddings
        self.flip_embeddings = flip_embeddings
        self.meta = meta

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __getitem__(self, indices: Any) -> torch.Tensor:
        """Embeddings of samples ``indices`` (int, slice, sequence, array or tensor) as a float32 tensor."""
        return _gather(self.embeddings, indices)

    def flipped(self, indices: Any) -> torch.Tensor:
        """Mirror-image embeddings of samples ``indices``; DataError when built without ``flip``."""
        if self.flip_embeddings is None:
            raise DataError(f"teacher cache {self.path} was built without flip embeddings")
        return _gather(self.flip_embeddings, indices)

    @classmethod
    def open(cls, path: str | os.PathLike[str], count: int | None = None) -> TeacherCache:
        """Open an existing entry; DataError when it is incomplete, corrupt or (``count``) of another size."""
        path = Path(path)
        try:
            meta = json.loads((path / META).read_text())
            shape = (int(meta["count"]), int(meta["dim"]))
            flip = bool(meta["flip"])
            dtype = str(meta.get("dtype", "float32"))
            if dtype not in DTYPES:
                raise ValueError(f"dtype {dtype!r}")
        except FileNotFoundError:
            raise DataError(f"{META} is missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{META} is malformed: {exc!r}") from exc
        if count is not None and shape[0] != count:
            raise DataError(f"it holds {shape[0]} embeddings, the dataset has {count} samples")
        embeddings = _load_array(path / EMBEDDINGS, shape, dtype)
        flip_embeddings = _load_array(path / FLIP_EMBEDDINGS, shape, dtype) if flip else None
        return cls(path, embeddings, flip_embeddings, meta)

    @classmethod
    def open_or_build(
        cls,
        embedder: Embedder,
        dataset: FaceDataset,
        cache_root: str | os.PathLike[str],
        flip: bool = True,
        batch_size: int = 64,
        progress: bool = True,
        teacher_file: str | os.PathLike[str] | None = None,
        dtype: str = "float32",
        dist: DistInfo | None = None,
        chunk: int = CHUNK,
    ) -> TeacherCache:
        """The cached teacher embeddings of ``dataset``, computing them only if no usable entry exists.

        ``teacher_file`` (the teacher's model file) makes the key follow the file's bytes, for embedders
        without a ``fingerprint()`` method (e.g. ONNX teachers). ``dtype``: ``float32`` or ``float16``
        storage. ``dist``: every rank of a process group calls this; they fill one entry together.
        """
        if dtype not in DTYPES:
            raise DataError(f"teacher cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dist = dist or DistInfo()
        dataset_fp = dataset_fingerprint(dataset)
        teacher_fp = teacher_fingerprint(embedder, teacher_file)
        path = Path(cache_root) / cache_key(dataset_fp, teacher_fp, dtype)
        usable = cls._usable(path, len(dataset), flip) if dist.is_main else None
        if broadcast_object(usable is not None, dist):
            return usable if usable is not None else cls.open(path, count=len(dataset))
        meta = {
            "teacher": embedder.name,
            "teacher_fingerprint": teacher_fp,
            "dataset_fingerprint": dataset_fp,
        }
        build = _Build(path, embedder, dataset, flip, dtype, dist, chunk)
        build.run(batch_size, progress and dist.is_main, meta)
        return cls.open(path, count=len(dataset))

    @classmethod
    def _usable(cls, path: Path, count: int, flip: bool) -> TeacherCache | None:
        """The entry at ``path`` when it is complete and has the views asked for; None otherwise."""
        if not path.exists():
            return None
        try:
            cache = cls.open(path, count=count)
        except DataError as exc:
            log.warning("teacher cache %s is unusable (%s); rebuilding it", path, exc)
            return None
        if flip and cache.flip_embeddings is None:
            log.info("teacher cache %s has no flip embeddings; rebuilding it with them", path)
            return None
        log.info("teacher cache hit: %s (%d x %d)", path, len(cache), cache.dim)
        return cache


def _gather(array: np.ndarray, indices: Any) -> torch.Tensor:
    if isinstance(indices, torch.Tensor):
        indices = indices.cpu().numpy()
    return torch.from_numpy(np.array(array[indices], dtype=np.float32))  # copy: memmaps are read-only


class _Build:
    """One entry written by every rank into shared memory-mapped files in a temporary folder, which rank
    0 renames into place; a crash never leaves a half-written entry under its key."""

    def __init__(self, path, embedder, dataset, flip, dtype, dist, chunk):
        self.path, self.embedder, self.dataset, self.flip = path, embedder, dataset, flip
        self.dtype, self.dist, self.chunk, self.n = dtype, dist, chunk, len(dataset)
        if self.n == 0:
            raise DataError("cannot cache teacher embeddings of an empty dataset")
        self.names = [EMBEDDINGS, FLIP_EMBEDDINGS] if flip else [EMBEDDINGS]

    def run(self, batch_size: int, progress: bool, meta: dict[str, Any]) -> None:
        tmp, filled = self._create(), False
        try:
            self._fill_share(tmp, batch_size, progress)
            filled = True
        finally:  # every rank reaches this once, whether its share failed or not
            complete = all_ranks(filled, self.dist)
            try:
                if self.dist.is_main:
                    try:
                        if complete:
                            self._publish(tmp, meta)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
            finally:
                barrier(self.dist)
        if not complete:
            raise DataError(f"another rank failed while filling teacher cache {self.path}; none was written")

    def _fill_share(self, tmp: Path, batch_size: int, progress: bool) -> None:
        """Embed this rank's chunks (every ``world``-th from ``rank``) into the shared files."""
        arrays = {name: np.load(tmp / name, mmap_mode="r+") for name in self.names}
        mine = list(range(self.dist.rank * self.chunk, self.n, self.dist.world * self.chunk))
        rows = sum(min(self.chunk, self.n - start) for start in mine)
        ranks = f" ({self.dist.world} ranks)" if self.dist.enabled else ""
        with tqdm(
            total=rows, desc=f"cache {self.embedder.name}{ranks}", unit="img", disable=not progress
        ) as bar:
            for start in mine:
                stop = min(self.n, start + self.chunk)
                self._fill(arrays, start, stop, batch_size)
                bar.update(stop - start)
        for array in arrays.values():
            array.flush()

    def _create(self) -> Path:
        """Rank 0 makes the folder and the (N, D) files (D from one image); every rank learns its name
        (an empty name when rank 0 failed, so no rank waits for files that will never exist)."""
        tmp = ""
        if self.dist.is_main:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = tempfile.mkdtemp(prefix=f".tmp-{self.path.name[:12]}-", dir=self.path.parent)
                dim = int(self.embedder.embed(self.dataset[0].image[None]).shape[1])
                for name in self.names:
                    shape, dtype = (self.n, dim), np.dtype(self.dtype)
                    np.lib.format.open_memmap(Path(tmp) / name, "w+", dtype, shape).flush()
            except BaseException:
                broadcast_object("", self.dist)
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)
                raise
        tmp = broadcast_object(tmp, self.dist)
        if not tmp:
            raise DataError(f"rank 0 failed to create teacher cache {self.path}")
        return Path(tmp)

    def _fill(self, arrays: dict[str, np.memmap], start: int, stop: int, batch_size: int) -> None:
        part = _Slice(self.dataset, start, stop)
        raw, raw_flip = embed_dataset(
            self.embedder, part, batch_size=batch_size, flip=self.flip, progress=False
        )
        arrays[EMBEDDINGS][start:stop] = l2_normalize(raw)
        if self.flip:
            arrays[FLIP_EMBEDDINGS][start:stop] = l2_normalize(raw_flip)

    def _publish(self, tmp: Path, meta: dict[str, Any]) -> None:
        dim = int(np.load(tmp / EMBEDDINGS, mmap_mode="r").shape[1])
        created = datetime.now(UTC).isoformat(timespec="seconds")
        info = {"version": CACHE_VERSION, "count": self.n, "dim": dim, "flip": self.flip}
        info |= {"dtype": self.dtype, "ranks": self.dist.world}
        (tmp / META).write_text(json.dumps({**info, **meta, "created": created}, indent=2) + "\n")
        if self.path.exists():
            shutil.rmtree(self.path)
        try:
            tmp.rename(self.path)
        except OSError:  # another process renamed its entry into place first: keep it if it is usable
            TeacherCache.open(self.path, count=self.n)
            log.info("teacher cache %s was written concurrently; using that entry", self.path)
        flipped = ", + flip" if self.flip else ""
        log.info("teacher cache written: %s (%d x %d %s%s)", self.path, self.n, dim, self.dtype, flipped)
