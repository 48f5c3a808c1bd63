"""Teacher cache: built once (normalised, with the mirror view), reused without running the teacher,
keyed by dataset and teacher, rebuilt when corrupt, written atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.data.preprocess import PreprocessSpec
from edgekd.data.sample import FaceSample
from edgekd.errors import DataError
from edgekd.runtime.base import Embedder, l2_normalize
from edgekd.train.teacher_cache import TeacherCache

DIM = 6


class CountingEmbedder(Embedder):
    """A linear "teacher" on 8x8 images that counts its forward calls."""

    def __init__(self, name: str = "fake-teacher", fail: bool = False):
        self.name = name
        self.input_spec = PreprocessSpec(size=(8, 8))
        self.embedding_size = DIM
        self.calls = 0
        self.fail = fail
        self.weights = np.random.default_rng(0).normal(size=(3 * 8 * 8, DIM)).astype(np.float32)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail:
            raise RuntimeError("teacher crashed")
        return batch.reshape(len(batch), -1) @ self.weights


class Faces:
    def __init__(self, n: int = 7, seed: int = 0, prefix: str = "img"):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        self.prefix = prefix

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> FaceSample:
        return FaceSample(self.images[i], i % 3, f"{self.prefix}/{i}.jpg")


def _build(root, embedder=None, dataset=None, **kwargs) -> TeacherCache:
    return TeacherCache.open_or_build(
        embedder or CountingEmbedder(), dataset or Faces(), root, batch_size=3, progress=False, **kwargs
    )


def test_build_normalised_embeddings_and_mirror_view(tmp_path):
    faces, embedder = Faces(), CountingEmbedder()
    cache = _build(tmp_path, embedder, faces)
    expected = l2_normalize(embedder.embed(faces.images, normalize=False))
    mirrored = l2_normalize(embedder.embed(np.ascontiguousarray(faces.images[:, :, ::-1]), normalize=False))
    np.testing.assert_allclose(cache.embeddings, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cache.flip_embeddings, mirrored, rtol=1e-6, atol=1e-6)
    assert isinstance(cache.embeddings, np.memmap) and cache.embeddings.dtype == np.float32
    batch = cache[torch.tensor([4, 0, 2])]
    assert batch.dtype == torch.float32 and batch.shape == (3, DIM)
    torch.testing.assert_close(batch, torch.from_numpy(expected[[4, 0, 2]]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cache.flipped([1]), torch.from_numpy(mirrored[[1]]), rtol=1e-6, atol=1e-6)
    meta = json.loads((cache.path / "meta.json").read_text())
    assert (meta["count"], meta["dim"], meta["teacher"], meta["flip"]) == (7, DIM, "fake-teacher", True)
    assert "created" in meta
    assert [p.name for p in tmp_path.iterdir()] == [cache.path.name]  # no temporary folder left


def test_second_call_does_not_run_the_teacher(tmp_path):
    first = _build(tmp_path)
    again = CountingEmbedder()
    second = _build(tmp_path, again)
    assert again.calls == 0 and second.path == first.path
    np.testing.assert_array_equal(second.embeddings, first.embeddings)


def test_key_follows_dataset_and_teacher(tmp_path):
    base = _build(tmp_path).path
    assert _build(tmp_path, dataset=Faces(prefix="other")).path != base
    assert _build(tmp_path, CountingEmbedder(name="other-teacher")).path != base
    model = tmp_path / "teacher.onnx"
    model.write_bytes(b"weights v1")
    v1 = _build(tmp_path / "c", teacher_file=model).path
    model.write_bytes(b"weights v2")
    assert _build(tmp_path / "c", teacher_file=model).path != v1


def test_dataset_fingerprint_method_is_used(tmp_path):
    class Fingerprinted(Faces):
        def fingerprint(self) -> str:
            return "ms1m-v3"

        def __getitem__(self, i: int) -> FaceSample:
            sample = super().__getitem__(i)
            return FaceSample(sample.image, sample.label, f"random-{np.random.random()}")

    assert _build(tmp_path, dataset=Fingerprinted()).path == _build(tmp_path, dataset=Fingerprinted()).path


@pytest.mark.parametrize("damage", ["no_meta", "bad_shape", "truncated", "bad_meta"])
def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    path = _build(tmp_path).path
    if damage == "no_meta":
        (path / "meta.json").unlink()
    elif damage == "bad_shape":
        np.save(path / "embeddings.npy", np.zeros((5, DIM), np.float32))
    elif damage == "truncated":
        data = (path / "flip_embeddings.npy").read_bytes()
        (path / "flip_embeddings.npy").write_bytes(data[: len(data) // 2])
    else:
        (path / "meta.json").write_text("{not json")
    again = CountingEmbedder()
    with caplog.at_level(logging.WARNING, logger="edgekd.train.teacher_cache"):
        cache = _build(tmp_path, again)
    assert again.calls > 0 and "unusable" in caplog.text
    assert cache.path == path and cache.embeddings.shape == (7, DIM)


def test_cache_without_flip_is_rebuilt_when_flip_is_asked(tmp_path):
    plain = _build(tmp_path, flip=False)
    assert plain.flip_embeddings is None
    with pytest.raises(DataError, match="without flip"):
        plain.flipped([0])
    assert _build(tmp_path, CountingEmbedder(), flip=False).flip_embeddings is None
    again = CountingEmbedder()
    assert _build(tmp_path, again, flip=True).flip_embeddings is not None and again.calls > 0


def test_failed_build_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="teacher crashed"):
        _build(tmp_path, CountingEmbedder(fail=True))
    assert list(tmp_path.iterdir()) == []


def test_chunked_build_matches(tmp_path):
    whole = _build(tmp_path / "whole")
    chunked = _build(tmp_path / "chunked", chunk=3)
    np.testing.assert_array_equal(chunked.embeddings, whole.embeddings)
    np.testing.assert_array_equal(chunked.flip_embeddings, whole.flip_embeddings)


def test_float16_storage_halves_the_bytes_and_keeps_unit_rows(tmp_path):
    full = _build(tmp_path)
    half = _build(tmp_path, dtype="float16")
    assert half.path != full.path  # its own key; float32 entries keep theirs
    assert half.embeddings.dtype == np.float16 and half.embeddings.nbytes * 2 == full.embeddings.nbytes
    assert json.loads((half.path / "meta.json").read_text())["dtype"] == "float16"
    got = half[[0, 3, 6]]
    assert got.dtype == torch.float32  # losses always see float32
    torch.testing.assert_close(got, full[[0, 3, 6]], rtol=0, atol=1e-3)
    torch.testing.assert_close(half.flipped([2]), full.flipped([2]), rtol=0, atol=1e-3)
    again = CountingEmbedder()
    assert _build(tmp_path, again, dtype="float16").path == half.path and again.calls == 0
    with pytest.raises(DataError, match="dtype must be one of float32, float16"):
        _build(tmp_path, dtype="int8")


def _fill_as_rank(rank: int, root: str, port: int, out: str) -> None:
    """One of two gloo ranks filling one cache entry (spawned by the test below)."""
    import torch.distributed as dist

    from edgekd.distributed import DistInfo

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        embedder = CountingEmbedder()
        cache = TeacherCache.open_or_build(
            embedder, Faces(n=10), root, batch_size=3, progress=False, dist=DistInfo(rank, 2), chunk=2
        )
        record = {"calls": embedder.calls, "path": str(cache.path)}
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


def test_two_ranks_fill_one_entry_each_embedding_its_share(tmp_path):
    """Under DDP every rank embeds every other chunk into the shared files: the entry equals a single
    process's bit for bit, and rank 1 ran the teacher on 2 of the 5 chunks only."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_fill_as_rank, args=(str(tmp_path / "two"), port, str(tmp_path)), nprocs=2, join=True)
    single_teacher = CountingEmbedder()
    single = _build(tmp_path / "one", single_teacher, Faces(n=10), chunk=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    shared = TeacherCache.open(ranks[0]["path"], count=10)
    assert ranks[1]["path"] == ranks[0]["path"]
    np.testing.assert_array_equal(shared.embeddings, single.embeddings)
    np.testing.assert_array_equal(shared.flip_embeddings, single.flip_embeddings)
    per_chunk = (single_teacher.calls - 1) / 5  # one probe call finds the dimension
    assert ranks[1]["calls"] == 2 * per_chunk and ranks[0]["calls"] == 1 + 3 * per_chunk
    assert json.loads((Path(ranks[0]["path"]) / "meta.json").read_text())["ranks"] == 2
    assert [p.name for p in (tmp_path / "two").iterdir()] == [shared.path.name]  # no temporary left
