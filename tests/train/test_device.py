"""--device: resolution and its errors on any machine; training on a GPU where one exists."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.train.checkpoint import load_student
from edgekd.train.device import resolve_device
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
