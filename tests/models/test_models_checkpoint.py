"""load_state_dict_file: accepted layouts, and every bad file turned into a ModelError naming it."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from edgekd.errors import ModelError
from edgekd.models import create_model, load_state_dict_file

STATE = {"w": torch.ones(2, 3), "b": torch.zeros(3)}


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model"])
def test_loads_raw_or_wrapped_state_dict(tmp_path: Path, wrapper: str | None) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(STATE if wrapper is None else {wrapper: STATE, "epoch": torch.tensor(3)}, path)
    loaded = load_state_dict_file(path)
    assert list(loaded) == list(STATE)
    assert all(torch.equal(loaded[k], STATE[k]) for k in STATE)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pt"
    with pytest.raises(ModelError, match=re.escape(f"not found: {path}")):
        load_state_dict_file(path)


class _RunsCode:
    """Unpickling this calls ``os.system(command)``: what a malicious model file does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_refuses_pickle_that_executes_code(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"w": torch.ones(1), "x": _RunsCode(f"touch {marker}")}
    path = tmp_path / "evil.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(ModelError, match=re.escape(f"refused to load {path}")):
        load_state_dict_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n", b"PK\x03\x04truncated zip"])
def test_not_a_torch_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=re.escape(str(path))):
        load_state_dict_file(path)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_state_dict_file(tmp_path)


@pytest.mark.parametrize("obj", [torch.ones(3), [torch.ones(3)], {"w": 1.0}, {"state_dict": {"w": "x"}}])
def test_not_a_state_dict(tmp_path: Path, obj: object) -> None:
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(ModelError, match=re.escape(f"{path} is not a state_dict")):
        load_state_dict_file(path)


def test_builder_rejects_weights_of_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "mbf.pt"
    torch.save(create_model("mobilefacenet").state_dict(), path)
    with pytest.raises(ModelError, match=re.escape(f"{path} does not fit mobilefacenet_ms1m")):
        create_model("mobilefacenet_ms1m", weights=path)
