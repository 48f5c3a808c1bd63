"""Folder-per-identity training sets: ``root/<identity>/<image>.jpg|png`` (CASIA-WebFace, VGGFace2, ...)."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from edgekd.data.image import decode_image
from edgekd.data.sample import FaceSample
from edgekd.errors import DataError

OnError = Literal["raise", "skip"]


def _visible(path: Path) -> bool:
    """Hidden entries (``.DS_Store``, ``.ipynb_checkpoints``) are never identities or images."""
    return not path.name.startswith(".")


def _list_identities(root: Path, include: Iterable[str] | None, exclude: Iterable[str] | None) -> list[Path]:
    """Identity folders in name order, after ``include``/``exclude`` (names absent from root are fine)."""
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"cannot list identity folders in {root}: {exc}") from exc
    if include is not None:
        wanted = set(include)
        folders = [p for p in folders if p.name in wanted]
    if exclude is not None:
        unwanted = set(exclude)
        folders = [p for p in folders if p.name not in unwanted]
    return folders


def _list_images(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise DataError(f"cannot list images in {folder}: {exc}") from exc
    return [p for p in entries if _visible(p) and p.suffix.lower() in extensions and p.is_file()]


class IdentityFolderDataset:
    """Labelled faces from one sub-folder per identity, as a :class:`FaceDataset`.

    Identities are the visible sub-folders in name order, filtered by ``include`` then ``exclude``
    (e.g. LFW test identities excluded from training); folders without images are dropped, and the
    rest get labels ``0 .. num_classes - 1``. Images are the files with ``extensions`` (any case),
    in name order.

    Corrupt images: ``__getitem__`` always raises :class:`DataError` naming the file, because silently
    substituting or skipping inside a DataLoader would change what an index means mid-epoch and bias
    identities without anyone noticing. Instead :meth:`verify` decodes every image once, before
    training; ``on_error`` is its policy (``"raise"`` on the first corrupt file, ``"skip"`` drops
    corrupt files and records them in :attr:`skipped`). Labels stay fixed through ``verify`` so a
    classifier head sized from :attr:`num_classes` stays valid.
    """

    def __init__(
        self,
        root: str | Path,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        on_error: OnError = "raise",
        extensions: Iterable[str] = (".jpg", ".jpeg", ".png"),
    ):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = Path(root)
        self.on_error = on_error
        self.extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        if not self.root.is_dir():
            raise DataError(f"identity folder root not found or not a directory: {self.root}")
        self.classes: list[str] = []
        self.files: list[Path] = []
        labels: list[int] = []
        for folder in _list_identities(self.root, include, exclude):
            images = _list_images(folder, self.extensions)
            if images:
                labels += [len(self.classes)] * len(images)
                self.classes.append(folder.name)
                self.files += images
        self._labels = np.asarray(labels, dtype=np.int64)
        self.skipped: list[Path] = []
        if not self.files:
            raise DataError(
                f"no images ({', '.join(self.extensions)}) in identity folders under {self.root}"
                + (" after include/exclude" if include is not None or exclude is not None else "")
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labels(self) -> np.ndarray:
        """Label of every image (int64, by dataset index), e.g. for identity-balanced samplers."""
        return self._labels

    def __len__(self) -> int:
        return len(self.files)

    def _check(self, index: int) -> int:
        i = operator.index(index)
        if not 0 <= i < len(self.files):
            raise IndexError(f"{self.root}: index {i} out of range 0..{len(self.files) - 1}")
        return i

    def raw_bytes(self, index: int) -> bytes:
        """The image file's bytes, so writers (RecordIO, ``.bin``) copy it without re-encoding."""
        path = self.files[self._check(index)]
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc

    def __getitem__(self, index: int) -> FaceSample:
        i = self._check(index)
        path = self.files[i]
        image = decode_image(self.raw_bytes(i), str(path))
        return FaceSample(image=image, label=int(self._labels[i]), source=str(path))

    def verify(self) -> int:
        """Decode every image once; returns how many corrupt images were dropped (``on_error="skip"``).

        With ``on_error="raise"`` the first corrupt image raises :class:`DataError` naming it. If every
        image is corrupt, :class:`DataError` is raised either way: an empty training set is never what
        was meant.
        """
        keep: list[int] = []
        bad: list[Path] = []
        for i, path in enumerate(self.files):
            try:
                decode_image(self.raw_bytes(i), str(path))
            except DataError:
                if self.on_error == "raise":
                    raise
                bad.append(path)
            else:
                keep.append(i)
        if not keep:
            raise DataError(f"every image under {self.root} failed to decode (first: {bad[0]})")
        self.files = [self.files[i] for i in keep]
        self._labels = self._labels[keep]
        self.skipped += bad
        return len(bad)
