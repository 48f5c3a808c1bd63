"""Teacher embeddings computed once per image and memory-mapped for every later epoch and run.

A frozen teacher gives the same embedding for an image in every epoch, so distilling from it need not
run it more than once. The cache holds, for every sample ``i`` of a dataset, the L2-normalised float32
teacher embedding of the image and (``flip=True``) of its mirror image, as ``.npy`` files read through
``np.memmap``::

    <cache_root>/<key>/embeddings.npy        (N, D) float32, unit rows
    <cache_root>/<key>/flip_embeddings.npy   (N, D) float32, unit rows (when built with flip)
    <cache_root>/<key>/meta.json             count, dim, teacher, flip, created, fingerprints

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


def cache_key(dataset_fp: str, teacher_fp: str) -> str:
    """Folder name of a cache entry: sha256 of the version and both fingerprints."""
    payload = json.dumps(
        {"version": CACHE_VERSION, "dataset": dataset_fp, "teacher": teacher_fp}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


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


def _load_array(path: Path, shape: tuple[int, int]) -> np.memmap:
    """Open a cached ``.npy`` read-only as a memmap; DataError unless it is float32 of ``shape``."""
    if not path.is_file():
        raise DataError(f"{path.name} is missing")
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:  # truncated or not .npy
        raise DataError(f"{path.name} is unreadable: {exc}") from exc
    if array.dtype != np.float32 or array.shape != shape:
        raise DataError(f"{path.name} is {array.dtype} {array.shape}, meta.json says float32 {shape}")
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
        except FileNotFoundError:
            raise DataError(f"{META} is missing") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{META} is malformed: {exc!r}") from exc
        if count is not None and shape[0] != count:
            raise DataError(f"it holds {shape[0]} embeddings, the dataset has {count} samples")
        embeddings = _load_array(path / EMBEDDINGS, shape)
        flip_embeddings = _load_array(path / FLIP_EMBEDDINGS, shape) if flip else None
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
    ) -> TeacherCache:
        """The cached teacher embeddings of ``dataset``, computing them only if no usable entry exists.

        ``teacher_file`` (the teacher's model file) makes the key follow the file's bytes, for embedders
        without a ``fingerprint()`` method (e.g. ONNX teachers).
        """
        dataset_fp = dataset_fingerprint(dataset)
        teacher_fp = teacher_fingerprint(embedder, teacher_file)
        path = Path(cache_root) / cache_key(dataset_fp, teacher_fp)
        if path.exists():
            try:
                cache = cls.open(path, count=len(dataset))
            except DataError as exc:
                log.warning("teacher cache %s is unusable (%s); rebuilding it", path, exc)
            else:
                if not flip or cache.flip_embeddings is not None:
                    log.info("teacher cache hit: %s (%d x %d)", path, len(cache), cache.dim)
                    return cache
                log.info("teacher cache %s has no flip embeddings; rebuilding it with them", path)
        meta = {
            "teacher": embedder.name,
            "teacher_fingerprint": teacher_fp,
            "dataset_fingerprint": dataset_fp,
        }
        _build(path, embedder, dataset, flip, batch_size, progress, meta)
        return cls.open(path, count=len(dataset))


def _gather(array: np.ndarray, indices: Any) -> torch.Tensor:
    if isinstance(indices, torch.Tensor):
        indices = indices.cpu().numpy()
    return torch.from_numpy(np.array(array[indices], dtype=np.float32))  # copy: memmaps are read-only


def _build(
    path: Path,
    embedder: Embedder,
    dataset: FaceDataset,
    flip: bool,
    batch_size: int,
    progress: bool,
    meta: dict[str, Any],
) -> None:
    """Embed ``dataset`` into a temporary folder next to ``path``, then rename it to ``path``."""
    n = len(dataset)
    if n == 0:
        raise DataError("cannot cache teacher embeddings of an empty dataset")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name[:12]}-", dir=path.parent))
    try:
        arrays: dict[str, np.memmap] = {}
        with tqdm(total=n, desc=f"cache {embedder.name}", unit="img", disable=not progress) as bar:
            for start in range(0, n, CHUNK):
                stop = min(n, start + CHUNK)
                part = _Slice(dataset, start, stop)
                raw, raw_flip = embed_dataset(
                    embedder, part, batch_size=batch_size, flip=flip, progress=False
                )
                views = {EMBEDDINGS: raw} | ({FLIP_EMBEDDINGS: raw_flip} if raw_flip is not None else {})
                for name, values in views.items():
                    if name not in arrays:  # (N, D) files, sized once D is known
                        arrays[name] = np.lib.format.open_memmap(
                            tmp / name, "w+", np.float32, (n, values.shape[1])
                        )
                    arrays[name][start:stop] = l2_normalize(values)
                bar.update(stop - start)
        for array in arrays.values():
            array.flush()
        dim = int(arrays[EMBEDDINGS].shape[1])
        del arrays  # close the memmaps before the rename
        created = datetime.now(UTC).isoformat(timespec="seconds")
        info = {"version": CACHE_VERSION, "count": n, "dim": dim, "flip": flip, "dtype": "float32"}
        (tmp / META).write_text(json.dumps({**info, **meta, "created": created}, indent=2) + "\n")
        if path.exists():
            shutil.rmtree(path)
        try:
            tmp.rename(path)
        except OSError:  # another process renamed its entry into place first: keep it if it is usable
            TeacherCache.open(path, count=n)
            log.info("teacher cache %s was written concurrently; using that entry", path)
        log.info("teacher cache written: %s (%d x %d%s)", path, n, dim, ", + flip" if flip else "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
