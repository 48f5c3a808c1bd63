"""--device: resolution and its errors on any machine; training on a GPU where one exists."""

from __future__ import annotations

import pytest
import torch

from edgekd.device import resolve_device
from edgekd.errors import ConfigError
from edgekd.train.checkpoint import load_student
from edgekd.train.trainer import Distiller
from tests.train.test_trainer import config, teacher  # noqa: F401 (fixture)


def test_cpu_and_auto_resolve_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda:1")
    with pytest.raises(ConfigError, match="allowed: cpu, cuda, cuda:N, auto"):
        resolve_device("tpu")


def test_a_rank_takes_its_local_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="only 2 CUDA"):
        resolve_device("cuda:2")
    with pytest.raises(ConfigError, match="takes a GPU number"):
        resolve_device("cuda:x")


def test_cpu_training_stays_on_the_cpu(tmp_path, teacher):  # noqa: F811
    trainer = Distiller(config(tmp_path, teacher, device="cpu", steps=2), False)
    trainer.run()
    assert {p.device.type for p in trainer.student.parameters()} == {"cpu"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("target", [None, "onnx"], ids=["float-bf16", "qat-fp32"])
def test_training_on_a_gpu_and_the_checkpoint_loads_on_the_cpu(tmp_path, teacher, target):  # noqa: F811
    trainer = Distiller(config(tmp_path, teacher, device="cuda", steps=3, qat={"target": target}), False)
    result = trainer.run()
    assert {p.device.type for p in trainer.student.parameters()} == {"cuda"}
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    loaded = load_student(result.last_checkpoint)  # saved from the GPU, read on the CPU
    assert {p.device.type for p in loaded.model.parameters()} == {"cpu"}


def test_eval_device_places_pytorch_models_and_refuses_a_gpu_for_artifacts(tmp_path, monkeypatch):
    """eval --device: a PyTorch embedder moves there; an ONNX artifact stays on its CPU runtime under
    auto and is refused (not silently ignored) under an explicit GPU."""
    import numpy as np
    from click.testing import CliRunner

    from edgekd.cli import main
    from edgekd.errors import ModelError
    from edgekd.models import create_model, default_preprocess
    from edgekd.runtime import load_embedder, place_on_device
    from edgekd.runtime.torch_backend import TorchEmbedder
    from tests.helpers import tiny_onnx

    model = create_model("mobilefacenet", width=0.25, blocks=[1, 1, 1, 1], embedding_size=32)
    emb = TorchEmbedder(model, default_preprocess("mobilefacenet"), name="tiny")
    assert place_on_device(emb, "cpu") is emb and emb.device == torch.device("cpu")
    onnx = load_embedder(tiny_onnx(tmp_path / "t.onnx", np.eye(3, 16)), preprocess="raw255")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert place_on_device(onnx, "auto") is onnx
    with pytest.raises(ModelError, match="not a PyTorch model"):
        place_on_device(onnx, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(
        main, ["eval", "-m", str(tmp_path / "t.onnx"), "--preprocess", "raw255", "--device", "cuda"]
    )
    assert result.exit_code != 0 and "no CUDA device" in result.output
    assert "Traceback" not in result.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_eval_on_a_gpu_matches_the_cpu():
    import numpy as np

    from edgekd.models import create_model, default_preprocess
    from edgekd.runtime.torch_backend import TorchEmbedder

    model = create_model("mobilefacenet", width=0.25, blocks=[1, 1, 1, 1], embedding_size=32)
    faces = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    cpu = TorchEmbedder(model, default_preprocess("mobilefacenet"), name="t").embed(faces)
    gpu = TorchEmbedder(model, default_preprocess("mobilefacenet"), name="t").to("cuda").embed(faces)
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)


def test_an_onnx_teacher_stays_on_the_cpu_without_a_gpu_provider(tmp_path, monkeypatch):
    import numpy as np
    import onnxruntime as ort

    from edgekd.runtime import load_embedder
    from tests.helpers import tiny_onnx

    emb = load_embedder(tiny_onnx(tmp_path / "t.onnx", np.eye(3, 16)), preprocess="raw255")
    faces = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    before = emb.embed(faces)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert emb.to_cuda(0) is False
    np.testing.assert_array_equal(emb.embed(faces), before)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_an_onnx_teacher_runs_on_onnxruntime_cuda_where_installed(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from edgekd.runtime import load_embedder
    from tests.helpers import tiny_onnx

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider (install onnxruntime-gpu)")
    emb = load_embedder(tiny_onnx(tmp_path / "t.onnx", np.eye(3, 16)), preprocess="raw255")
    faces = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    cpu = emb.embed(faces)
    assert emb.to_cuda(0) is True
    np.testing.assert_allclose(emb.embed(faces), cpu, atol=1e-4)
