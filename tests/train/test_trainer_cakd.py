"""The Distiller with an online, prompted ViT teacher (``--method cakd``), float and QAT.

Tiny models (a 4x4-token ViT, a quarter-width MobileFaceNet) and 3 steps: what is checked is the
plumbing the method depends on, which fails loudly when broken: the frozen teacher stays bit-identical,
the prompts learn, QAT applies to the student only, checkpoints rebuild into plain embedders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.ao.quantization.fake_quantize import FakeQuantizeBase as TorchFakeQuantizeBase
from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

from edgekd.cli import main
from edgekd.config import load_config
from edgekd.errors import ModelError
from edgekd.losses.methods import as_config, method_losses
from edgekd.models import create_model
from edgekd.train.checkpoint import load_student, read_checkpoint
from edgekd.train.config import DistillConfig
from edgekd.train.trainer import Distiller
from tests.helpers import tiny_onnx

TINY = {"width": 0.25, "blocks": [1, 1, 1, 1], "embedding_size": 32}
VIT_OPTIONS = {"patch_size": 28, "embedding_size": 16}  # 4x4 tokens, 192-d: a fast "Transformer"
CAKD = [
    {"name": "cosface"},
    {"name": "cakd", "weight": 5.0, "params": {"dim": 32, "num_centres": 4, "heads": 2, "num_buckets": 4}},
]


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit") / "vit.pt"
    torch.save(create_model("vit_face_tiny", **VIT_OPTIONS).state_dict(), path)
    return path


def config(tmp: Path, teacher: Path | str, **kw) -> DistillConfig:
    values = dict(
        student="mobilefacenet",
        student_options=TINY,
        teacher=str(teacher),
        teacher_arch="vit_face_tiny",
        teacher_options=VIT_OPTIONS,
        apt_prompts=2,
        losses=CAKD,
        steps=3,
        batch_size=4,
        synthetic_identities=4,
        synthetic_images_per_identity=2,
        checkpoint_every=100,
        out=str(tmp / "run"),
        cache_dir=str(tmp / "cache"),
        threads=1,
        qat={"calib_batches": 1},
    )
    values.update(kw)
    return load_config(DistillConfig, None, [], **values)


def _has_fake_quant(module: torch.nn.Module) -> bool:
    return any(isinstance(m, FakeQuantizeBase | TorchFakeQuantizeBase) for m in module.modules())


@pytest.mark.parametrize("target", [None, "onnx"], ids=["float", "qat-onnx"])
def test_online_teacher_trains_prompts_only_and_checkpoint_reloads(tmp_path, vit_file, target):
    cfg = config(tmp_path, vit_file, qat={"target": target, "calib_batches": 1})
    trainer = Distiller(cfg, progress=False)
    assert trainer.online is not None and trainer.teacher is None  # online, no embedding cache
    vit_before = {k: v.clone() for k, v in trainer.online.teacher.state_dict().items()}
    prompts_before = trainer.online.prompts.detach().clone()
    result = trainer.run()

    assert result.step == 3
    assert all(torch.isfinite(torch.tensor(row["cakd"])) and row["cakd"] > 0 for row in result.history)
    assert "apt_anchor" in result.history[0]  # the teacher's own loss keeps the prompts discriminative
    for key, value in trainer.online.teacher.state_dict().items():  # weights and BN statistics
        assert torch.equal(value, vit_before[key]), f"frozen teacher tensor {key} changed"
    assert not torch.equal(trainer.online.prompts.detach(), prompts_before), "the prompts did not learn"
    assert not _has_fake_quant(trainer.online), "the teacher must never be prepared for QAT"
    if target is None:
        assert not _has_fake_quant(trainer.student)
    else:
        assert isinstance(trainer.student, torch.fx.GraphModule) and _has_fake_quant(trainer.student)

    ckpt = read_checkpoint(result.last_checkpoint)
    assert ckpt["taps"] == {"last_map": "conv2"}
    assert torch.equal(ckpt["apt"]["prompts"], trainer.online.prompts.detach())
    loaded = load_student(result.last_checkpoint)
    assert isinstance(loaded.model, torch.fx.GraphModule) == (target is not None)
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        emb = loaded.model(x)
    assert isinstance(emb, torch.Tensor) and emb.shape == (3, TINY["embedding_size"])
    # the reloaded embedder computes what the trained (tapped) student computed
    from edgekd.quant import set_mode

    set_mode(trainer.student, train=False)
    with torch.no_grad():
        trained_emb, maps = trainer.student(x)
    # float: the tapped and the reloaded graph may pick different conv kernels (AVX2 hosts do; 3e-11 apart)
    exact = {"rtol": 0, "atol": 0} if target is not None else {"rtol": 1e-5, "atol": 1e-8}
    torch.testing.assert_close(emb, trained_emb, **exact)
    assert maps["last_map"].shape == (3, 512, 7, 7)  # the tap survives export + prepare_qat_pt2e


def test_resume_restores_prompts(tmp_path, vit_file):
    a = Distiller(config(tmp_path / "a", vit_file), progress=False)
    a.run(max_steps=2)
    b = Distiller(config(tmp_path / "a", vit_file), progress=False)
    b.resume(tmp_path / "a" / "run" / "last.pt")
    assert b.step == 2
    assert torch.equal(b.online.prompts, a.online.prompts)


def test_onnx_teacher_with_cakd_is_a_clear_error(tmp_path):
    onnx_teacher = tiny_onnx(tmp_path / "t.onnx", torch.randn(3, 16).numpy())
    with pytest.raises(ModelError, match="ONNX teachers cannot be prompted"):
        Distiller(config(tmp_path, onnx_teacher, teacher_arch=None, teacher_options={}), progress=False)


def test_cli_method_cakd(tmp_path, vit_file):
    """``--method cakd`` through the CLI: the recipe's channel options are filled from the models."""
    assert [s.name for s in method_losses("cakd")] == ["cosface", "cakd"]
    assert "student_channels" not in as_config(method_losses("cakd"))[1]["params"]
    args = ["distill", "--method", "cakd", "--teacher", str(vit_file), "--teacher-arch", "vit_face_tiny"]
    args += ["--steps", "1", "-b", "4", "--out", str(tmp_path / "run"), "-t", "1", "--no-progress"]
    args += ["--student", "mobilefacenet", "-o", "student_options={width: 0.25, blocks: [1,1,1,1]}"]
    args += ["-o", "teacher_options={patch_size: 28, embedding_size: 16}", "-o", "synthetic_identities=4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 1

    result = CliRunner().invoke(main, ["distill", "--method", "cakd", "--teacher", str(tmp_path / "x.onnx")])
    assert result.exit_code != 0 and "cannot be prompted" in result.output
