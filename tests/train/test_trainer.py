"""The distillation trainer: exact resume, DDP agreement, NaN stop, checkpoints and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgekd.cli import main
from edgekd.config import load_config
from edgekd.errors import ConfigError, DataError, ModelError, UnsupportedTargetError
from edgekd.train.checkpoint import load_student, read_checkpoint
from edgekd.train.config import DistillConfig
from edgekd.train.trainer import Distiller, TrainingDiverged
from tests.helpers import tiny_onnx

TINY = {"width": 0.25, "blocks": [1, 1, 1, 1], "embedding_size": 32}
LOSSES = ["cosface", {"name": "l2", "weight": 10.0, "params": {"projection": True}}]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "t.onnx"
    return tiny_onnx(path, np.random.default_rng(0).normal(size=(3, 16)))


def config(tmp: Path, teacher: Path, **kw) -> DistillConfig:
    values = dict(
        student="mobilefacenet",
        student_options=TINY,
        teacher=str(teacher),
        teacher_preprocess="raw255",
        losses=LOSSES,
        steps=6,
        batch_size=8,
        checkpoint_every=3,
        log_every=1,
        synthetic_identities=8,
        out=str(tmp / "run"),
        cache_dir=str(tmp / "cache"),
        threads=1,
    )
    values.update(kw)
    return load_config(DistillConfig, None, [], **values)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


@pytest.mark.parametrize("target", [None, "onnx"], ids=["float", "qat-onnx"])
def test_resume_ends_with_the_same_weights(tmp_path, teacher, target):
    full = Distiller(
        config(tmp_path / "a", teacher, qat={"target": target, "freeze_observers_step": 4}), False
    )
    full.run()
    killed = Distiller(
        config(tmp_path / "b", teacher, qat={"target": target, "freeze_observers_step": 4}), False
    )
    killed.run(max_steps=3)  # as if killed right after the step-3 checkpoint
    resumed = Distiller(
        config(tmp_path / "b", teacher, qat={"target": target, "freeze_observers_step": 4}), False
    )
    resumed.resume(tmp_path / "b" / "run" / "last.pt")
    assert resumed.step == 3
    resumed.run()
    a, b = _state(tmp_path / "a" / "run" / "last.pt"), _state(tmp_path / "b" / "run" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs after resume")
    rows = (tmp_path / "b" / "run" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(1, 7)]  # no duplicated steps


def test_checkpoint_holds_everything_to_continue_and_convert(tmp_path, teacher):
    Distiller(config(tmp_path, teacher, qat={"target": "openvino"}, steps=3), False).run()
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert {"model", "objective", "optimizer", "scheduler", "step", "rng", "config", "target"} <= set(ckpt)
    assert ckpt["step"] == 3 and ckpt["target"]["name"] == "openvino"
    loaded = load_student(tmp_path / "run" / "last.pt")
    assert isinstance(loaded.model, torch.fx.GraphModule) and loaded.target.name == "openvino"
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(loaded.model(x), loaded.model(x))  # eval mode, observers frozen: stable


def test_nan_loss_stops_with_a_clear_message_and_keeps_last_good(tmp_path, teacher, monkeypatch):
    trainer = Distiller(config(tmp_path, teacher, checkpoint_every=1), False)
    original = trainer.objective.forward

    def poisoned(student, t, labels, step):
        total, parts = original(student, t, labels, step)
        return (total * float("nan"), parts) if step == 2 else (total, parts)

    monkeypatch.setattr(trainer.objective, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 2 .*cosface=.*last good checkpoint"):
        trainer.run()
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2


def test_bad_inputs_give_clear_errors(tmp_path, teacher):
    with pytest.raises(UnsupportedTargetError, match="unknown target 'tflit'"):
        Distiller(config(tmp_path, teacher, qat={"target": "tflit"}), False)
    with pytest.raises(ConfigError, match="set projection: true"):
        Distiller(config(tmp_path, teacher, losses=["cosface", "l2"]), False)
    empty = tmp_path / "empty"
    (empty / "nobody").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        Distiller(config(tmp_path, teacher, data=str(empty)), False)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    trainer = Distiller(config(tmp_path, teacher), False)
    with pytest.raises(ModelError, match="not a readable edgekd checkpoint"):
        trainer.resume(corrupt)
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(ModelError, match="not an edgekd checkpoint"):
        trainer.resume(tmp_path / "plain.pt")


def test_resume_refuses_a_checkpoint_of_another_target(tmp_path, teacher):
    Distiller(config(tmp_path, teacher, steps=3), False).run()
    trainer = Distiller(config(tmp_path / "q", teacher, qat={"target": "onnx"}), False)
    with pytest.raises(ConfigError, match="trained for target float"):
        trainer.resume(tmp_path / "run" / "last.pt")


def test_cli_reports_errors_without_traceback(tmp_path):
    result = CliRunner().invoke(main, ["distill-qat", "--target", "tflit", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: unknown target 'tflit'" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_ddp_two_gloo_ranks_match_one_process(tmp_path, teacher):
    args = [
        "distill", "--student", "mobilefacenet", "--teacher", str(teacher), "--steps", "4", "-b", "8",
        "-t", "1", "--no-progress",
        "-o", "student_options={width: 0.25, blocks: [1, 1, 1, 1], embedding_size: 32}",
        "-o", "teacher_preprocess=raw255", "-o", "synthetic_identities=8",
        "-o", f"cache_dir={tmp_path / 'cache'}",
        "-o", "losses=[cosface, {name: l2, weight: 10.0, params: {projection: true}}]",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "edgekd", *args, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
         "-m", "edgekd", *args, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _state(tmp_path / "one" / "last.pt"), _state(tmp_path / "two" / "last.pt")
    moved = 0
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(
                a[key], b[key], rtol=1e-4, atol=1e-5, msg=f"{key}: 2 ranks != 1 process"
            )
            moved += 1
    assert moved > 10


def test_head_only_steps_keep_the_backbone_still_then_train_it(tmp_path, teacher):
    cfg = config(tmp_path, teacher, steps=4, optim={"head_only_steps": 2, "warmup_steps": 1})
    trainer = Distiller(cfg, False)
    backbone0 = {k: v.clone() for k, v in trainer.student.state_dict().items()}
    heads0 = [p.detach().clone() for p in trainer.objective.parameters()]
    trainer.run(max_steps=2)
    same = all(
        torch.equal(v, trainer.student.state_dict()[k]) for k, v in backbone0.items() if v.is_floating_point()
    )
    assert same, "the backbone moved during head-only steps"
    assert any(not torch.equal(a, b) for a, b in zip(heads0, trainer.objective.parameters(), strict=True))
    trainer.run()
    moved = [
        k
        for k, v in backbone0.items()
        if v.is_floating_point() and not torch.equal(v, trainer.student.state_dict()[k])
    ]
    assert moved, "the backbone never trained after the head-only steps"


def test_head_only_steps_are_refused_when_there_is_nothing_but_the_backbone(tmp_path, teacher):
    same_dim = tiny_onnx(tmp_path / "t32.onnx", np.random.default_rng(0).normal(size=(3, 32)))
    with pytest.raises(ConfigError, match="no head or projection"):
        Distiller(
            config(tmp_path, same_dim, losses=[{"name": "l2", "weight": 1.0}], optim={"head_only_steps": 2}),
            False,
        )
    with pytest.raises(ConfigError, match="must be below steps"):
        config(tmp_path, teacher, steps=4, optim={"head_only_steps": 4})


def test_workers_decode_the_same_batches_and_resume_stays_exact(tmp_path, teacher):
    """DataLoader workers change when a step is decoded, never what it holds: a float run with 2 workers,
    killed after step 3 and resumed, ends with the weights of an uninterrupted run without workers."""
    from edgekd.train.pipeline import decoded_steps

    plain = Distiller(config(tmp_path / "a", teacher), False)
    inline = list(decoded_steps(plain.batches, 2, 6))
    threaded = list(decoded_steps(plain.batches, 2, 6, workers=2))
    assert [d.step for d in threaded] == [2, 3, 4, 5]
    for a, b in zip(inline, threaded, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.images, b.images)
    plain.run()
    killed = Distiller(config(tmp_path / "b", teacher, workers=2), False)
    killed.run(max_steps=3)
    resumed = Distiller(config(tmp_path / "b", teacher, workers=2), False)
    resumed.resume(tmp_path / "b" / "run" / "last.pt")
    resumed.run()
    a, b = _state(tmp_path / "a" / "run" / "last.pt"), _state(tmp_path / "b" / "run" / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs with workers")


def test_bad_worker_settings_are_config_errors(tmp_path, teacher):
    with pytest.raises(ConfigError, match="workers must be >= 0"):
        config(tmp_path, teacher, workers=-1)


def test_a_recordio_training_set_trains_is_filtered_and_resumes_exactly(tmp_path, teacher):
    from edgekd.data.recordio import write_recordio
    from edgekd.data.synthetic import SyntheticFaces

    faces = SyntheticFaces(num_identities=6, images_per_identity=3, seed=2)
    rec = tmp_path / "train.rec"
    write_recordio(rec, None, ((faces[i].image, faces[i].label) for i in range(len(faces))))
    held = tmp_path / "held.txt"
    held.write_text("2\n")  # a .rec's identities are its class numbers
    kw = dict(data=str(rec), exclude_names=[str(held)], workers=1)
    full = Distiller(config(tmp_path / "a", teacher, **kw), False)
    assert full.data.num_classes == 5 and len(full.data.dataset) == 15
    assert all("#" in full.data.dataset[i].source for i in range(3))
    full.run()
    killed = Distiller(config(tmp_path / "b", teacher, **kw), False)
    killed.run(max_steps=3)
    resumed = Distiller(config(tmp_path / "b", teacher, **kw), False)
    resumed.resume(tmp_path / "b" / "run" / "last.pt")
    resumed.run()
    a, b = _state(tmp_path / "a" / "run" / "last.pt"), _state(tmp_path / "b" / "run" / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs after resume")
    everyone = tmp_path / "all.txt"
    everyone.write_text(" ".join(str(c) for c in range(6)))
    with pytest.raises(DataError, match="every identity is held out"):
        Distiller(config(tmp_path / "c", teacher, data=str(rec), exclude_names=[str(everyone)]), False)


def test_lr_schedule_warms_up_then_decays_by_cosine():
    from edgekd.train.trainer import lr_factor

    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, min_ratio=0.1) == pytest.approx(0.1)


def test_pose_views_give_the_teacher_embedding_of_the_turned_image(tmp_path, teacher):
    """A turned sample's teacher target is the teacher's embedding of exactly those pixels (the view's
    cache), the draw is a pure function of the step (0 or 2 workers), and views leave the indices and
    flips of samples shown as they are untouched."""
    from edgekd.runtime import load_embedder
    from edgekd.runtime.base import l2_normalize
    from edgekd.train.pipeline import decoded_steps

    plain = Distiller(config(tmp_path / "a", teacher), False)
    posed = Distiller(config(tmp_path / "b", teacher, pose_views=2, pose_prob=0.5), False)
    assert len(posed.pose_caches) == 2 and not plain.pose_caches
    steps = list(decoded_steps(posed.batches, 0, 4))
    views = np.concatenate([d.views for d in steps])
    assert (views == -1).any() and (views == 0).any() and (views == 1).any()
    for d, p in zip(steps, decoded_steps(plain.batches, 0, 4), strict=True):
        np.testing.assert_array_equal(d.indices, p.indices)
        shown = d.views < 0
        np.testing.assert_array_equal(d.flips[shown], p.flips[shown])
        np.testing.assert_array_equal(d.images[shown], p.images[shown])
        assert not d.flips[~shown].any() and not np.array_equal(d.images[~shown], p.images[~shown])
    for a, b in zip(steps, decoded_steps(posed.batches, 0, 4, workers=2), strict=True):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.views, b.views)
    d = steps[0]
    target = posed._assemble(d).teacher
    tm = load_embedder(str(teacher), threads=1, preprocess="raw255")
    direct = l2_normalize(tm.embed(d.images))  # the teacher run on the very images the student sees
    np.testing.assert_allclose(target.numpy(), direct, atol=1e-5)
    posed.run()  # trains end to end with views


def test_bad_pose_settings_are_config_errors(tmp_path, teacher):
    for bad in ({"pose_views": -1}, {"pose_prob": 1.5}, {"pose_max_yaw": 90.0}):
        with pytest.raises(ConfigError, match="pose_views must be >= 0"):
            config(tmp_path, teacher, **bad)
