"""Fixtures for bench tests: a tiny ONNX face model that declares its preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.runtime.loaders import METADATA_KEY
from tests.helpers import tiny_onnx

ARCFACE = {"mean": [127.5] * 3, "std": [127.5] * 3}


@pytest.fixture
def tiny(tmp_path):
    """(N,3,112,112) → average pool → 3×8 linear map: a fast 'face model' with known outputs."""
    weights = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    return tiny_onnx(tmp_path / "tiny.onnx", weights, metadata={METADATA_KEY: json.dumps(ARCFACE)})
