"""Tiny face-model artifacts for the runtime/convert tests: one small CNN exported to each runtime.

The network has what the real students have, in miniature: a strided conv + BN + ReLU, a depthwise conv
with a residual add, a pointwise conv, global pooling and an FC embedding. 112x112 input, so every
preprocessing spec applies unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.data.preprocess import PreprocessSpec
from edgekd.runtime.loaders import METADATA_KEY

SPEC = PreprocessSpec.preset("arcface")
EMBEDDING = 8


class TinyFaceNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pw = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, EMBEDDING)
        self.embedding_size = EMBEDDING

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.dw(x)
        x = self.pw(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def tiny_model(seed: int = 0) -> TinyFaceNet:
    """Random init with non-trivial BN statistics (so folding BN is actually exercised)."""
    torch.manual_seed(seed)
    model = TinyFaceNet()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def example(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, *SPEC.size)


def dynamic_batch() -> tuple[dict[int, torch.export.Dim]]:
    return ({0: torch.export.Dim("batch", min=1, max=256)},)


def export_onnx(model: nn.Module, path: Path, spec: PreprocessSpec = SPEC) -> Path:
    """Dynamo ONNX export with a dynamic batch and edgekd's preprocessing metadata."""
    import onnx

    program = torch.onnx.export(
        model, (example(),), dynamo=True, dynamic_shapes=dynamic_batch(), verbose=False
    )
    program.save(str(path))
    proto = onnx.load(str(path))
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(spec.to_dict()))
    onnx.save(proto, str(path))
    return path


def export_openvino(model: nn.Module, path: Path | None = None):
    """``ov.convert_model`` of a ``torch.export`` program; saved (without fp16 compression) if ``path``."""
    import openvino as ov

    ov_model = ov.convert_model(torch.export.export(model, (example(),), dynamic_shapes=dynamic_batch()))
    if path is not None:
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return ov_model


def export_tflite(model: nn.Module, path: Path, int8: bool = False) -> Path:
    """litert-torch conversion at batch 1; ``int8`` = PT2E full-integer (symmetric per-channel weights)."""
    import litert_torch

    x = example(1)
    if not int8:
        litert_torch.convert(model, (x,)).export(str(path))
        return path
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgekd.quant import litert_shim

    litert_shim.apply()
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), quantizer)
    for _ in range(4):
        prepared(example(1))
    converted = convert_pt2e(prepared, fold_quantize=False)
    litert_torch.convert(converted, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(
        str(path)
    )
    return path


def faces(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random faces (low-frequency noise): realistic activation ranges for calibration."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 14, 14, 3)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2).astype(np.uint8)


def tflite_in_subprocess(model_seed: int, path: Path, int8: bool = False) -> Path:
    """Convert in a child process: litert-torch imports JAX, whose threads make any later ``os.fork``
    in the test process (NNCF, multiprocessing) unsafe, so JAX must never load into the pytest process."""
    import subprocess
    import sys

    code = (
        "from pathlib import Path; from tests.convert.artifacts import export_tflite, tiny_model; "
        f"export_tflite(tiny_model({model_seed}), Path({str(path)!r}), int8={int8})"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"TFLite conversion failed:\n{done.stderr[-3000:]}")
    return path
