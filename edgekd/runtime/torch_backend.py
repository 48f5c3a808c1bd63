"""PyTorch backend: eager ``nn.Module`` students and teachers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgekd.data.preprocess import PreprocessSpec
from edgekd.runtime.base import Embedder


class TorchEmbedder(Embedder):
    """Wraps a module mapping ``(N, 3, H, W)`` float to ``(N, D)`` embeddings, run in eval mode."""

    def __init__(
        self,
        module: nn.Module,
        input_spec: PreprocessSpec,
        name: str,
        threads: int | None = None,
        device: torch.device | str | None = None,
    ):
        if threads:
            torch.set_num_threads(threads)
        # channels_last: 2x faster convolutions on CPU (measured: MobileFaceNet 50 → 102 img/s, 2 threads)
        # A prepared/exported GraphModule refuses .eval(): its owner switches it (edgekd.quant.set_mode).
        if not isinstance(module, torch.fx.GraphModule):
            module = module.eval()
        self.module = module.to(memory_format=torch.channels_last)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if device is not None:
            self.module = self.module.to(self.device)
        self.input_spec = input_spec
        self.name = name
        self.embedding_size = int(getattr(module, "embedding_size", 0)) or self._probe_size()

    def to(self, device: torch.device | str) -> TorchEmbedder:
        """Run on ``device`` from now on (weights moved once; inputs per batch)."""
        self.device = torch.device(device)
        self.module = self.module.to(self.device)
        return self

    def _probe_size(self) -> int:
        h, w = self.input_spec.size
        return int(self._forward(np.zeros((1, 3, h, w), np.float32)).shape[1])

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        if self.input_spec.layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.module(x).float().cpu().numpy()
