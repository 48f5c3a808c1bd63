"""QEMU emulation of another ISA: clear errors when it can't run."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.bench import emulation
from edgekd.errors import UnsupportedTargetError
from edgekd.isa import ARM64, X86_AVX2


def test_unknown_isa_has_no_emulator():
    with pytest.raises(UnsupportedTargetError, match=r"no emulator for ISA 'arm64'.*x86-avx2"):
        emulation.emulator(ARM64)
    assert not emulation.can_emulate(ARM64)


def test_missing_qemu_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(emulation.shutil, "which", lambda _: None)
    assert not emulation.can_emulate(X86_AVX2)
    with pytest.raises(
        UnsupportedTargetError, match="needs qemu-x86_64-static: apt-get install qemu-user-static"
    ):
        emulation.emulator(X86_AVX2).prefix()
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(UnsupportedTargetError, match="qemu-user-static"):
        emulation.emulated_embeddings(model, np.zeros((1, 112, 112, 3), np.uint8), X86_AVX2)
