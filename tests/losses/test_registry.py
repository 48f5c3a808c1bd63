"""Every registered loss: builds from a spec, gives a finite scalar with finite gradients, is deterministic;
spec validation and the weighted objective."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.losses import REGISTRY, LossSpec, build_objective, list_losses, parse_losses
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.teacher_logits import centre_logits, class_centres
from tests.losses.batch import C, D, random_batch

NAMES = sorted(REGISTRY)
# Terms reading teacher tokens/feature maps need an online teacher's features, not this embedding batch;
# they carry their own shape/gradient tests (tests/test_cakd.py).
EMBEDDING_TERMS = [n for n in NAMES if not REGISTRY.resolve(n).needs_teacher_features]


def _run(name: str, seed: int = 0, step: int = 10):
    torch.manual_seed(seed)  # parameter init (margin heads, projections)
    objective = build_objective([LossSpec(name)], embedding_size=D, num_classes=C, teacher_dim=D)
    b = random_batch(seed)
    total, logs = objective(b.student, b.teacher, b.labels, step)
    return objective, b, total, logs


@pytest.mark.parametrize("name", EMBEDDING_TERMS)
def test_scalar_finite_with_gradient(name):
    objective, b, total, logs = _run(name)
    assert total.shape == () and torch.isfinite(total)
    assert list(logs) == [name] and torch.equal(logs[name], total.detach())
    total.backward()
    term = objective.terms[name]
    grads = [b.student.logits.grad] if term.needs_logits else [b.student.embedding.grad]
    grads += [p.grad for p in objective.parameters()]
    assert grads[0] is not None and grads[0].abs().sum() > 0
    assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", EMBEDDING_TERMS)
def test_deterministic(name):
    assert torch.equal(_run(name, seed=3)[2], _run(name, seed=3)[2])


def test_list_losses_matches_registry():
    assert list_losses() == NAMES == ["arcface", "cakd", "cosface", "fc", "gkd", "iled", "kd", "l2", "rpsd"]


def test_unknown_loss_name_suggests():
    with pytest.raises(ConfigError, match=r"unknown loss 'gdk'.*Did you mean 'gkd'"):
        LossSpec("gdk")


def test_unknown_option_names_loss_key_allowed_and_suggestion():
    with pytest.raises(ConfigError) as err:
        parse_losses([{"name": "arcface"}, {"name": "gkd", "tua": 0.9}], source="run.yaml")
    message = str(err.value)
    for part in ("loss 'gkd'", "'tua'", "tau, alpha", "Did you mean 'tau'", "run.yaml", "losses[1]"):
        assert part in message


def test_bad_option_value_and_literal_suggestion():
    with pytest.raises(ConfigError, match="option 'T' expects float, got 'four'"):
        LossSpec("kd", params={"T": "four"})
    with pytest.raises(ConfigError, match="Did you mean 'batch'"):
        LossSpec("gkd", params={"k_mode": "bacth"})


def test_dimension_options_are_not_configurable():
    with pytest.raises(ConfigError, match="set by build_objective"):
        LossSpec("arcface", params={"num_classes": 5})


@pytest.mark.parametrize("weight", [-1.0, float("nan"), "1"])
def test_bad_weight(weight):
    with pytest.raises(ConfigError, match="weight"):
        LossSpec("kd", weight=weight)


def test_flat_and_nested_config_forms():
    flat, nested, bare = parse_losses(
        [{"name": "gkd", "weight": 0.5, "T": 2, "tau": 0.9}, {"name": "kd", "params": {"T": 3.0}}, "fc"]
    )
    assert (flat.name, flat.weight, flat.params) == ("gkd", 0.5, {"T": 2, "tau": 0.9})
    assert nested.params == {"T": 3.0} and bare == LossSpec("fc")
    assert LossSpec.from_dict(flat.to_dict()) == flat
    with pytest.raises(ConfigError, match="both inline and under 'params'"):
        LossSpec.from_dict({"name": "kd", "T": 1.0, "params": {"T": 2.0}})
    with pytest.raises(ConfigError, match="no 'name'"):
        LossSpec.from_dict({"weight": 1.0})


def test_weighted_sum_total_and_logs():
    torch.manual_seed(0)
    specs = [LossSpec("arcface"), LossSpec("kd", 0.5), LossSpec("fc", 2.0), LossSpec("fc", 3.0)]
    objective = build_objective(specs, D, C, teacher_dim=D)
    assert list(objective.terms) == ["arcface", "kd", "fc", "fc_2"]
    b = random_batch(1)
    total, logs = objective(b.student, b.teacher, b.labels, 0)
    expected = logs["arcface"] + 0.5 * logs["kd"] + 2.0 * logs["fc"] + 3.0 * logs["fc_2"]
    assert torch.allclose(total, expected)


def test_weighted_sum_fills_missing_logits_from_head_and_centres():
    torch.manual_seed(0)
    objective = build_objective([LossSpec("cosface"), LossSpec("kd")], D, C, teacher_dim=D)
    b = random_batch(2)
    centres = class_centres(torch.randn(4 * C, D), torch.arange(4 * C) % C, C)
    objective.set_teacher_centres(centres)
    student, teacher = StudentOut(b.student.embedding), TeacherOut(b.teacher.embedding)
    _, logs = objective(student, teacher, b.labels)
    full_student = StudentOut(b.student.embedding, objective.head.logits(b.student.embedding))
    full_teacher = TeacherOut(b.teacher.embedding, centre_logits(b.teacher.embedding, centres, s=64.0))
    assert torch.allclose(logs["kd"], objective.terms["kd"](full_student, full_teacher, b.labels))


def test_missing_teacher_logits_say_how_to_get_them():
    objective = build_objective([LossSpec("arcface"), LossSpec("gkd")], D, C, teacher_dim=D)
    b = random_batch()
    with pytest.raises(ValueError, match=r"needs teacher logits.*set_teacher_centres"):
        objective(b.student, TeacherOut(b.teacher.embedding), b.labels)


def test_no_losses():
    with pytest.raises(ConfigError, match="no losses"):
        build_objective([], D, C)


def test_state_dict_holds_each_weight_once_and_the_bank():
    objective = build_objective([LossSpec("arcface"), LossSpec("rpsd", params={"bank_size": 4})], D, C, D)
    objective.set_teacher_centres(torch.randn(C, D))
    keys = set(objective.state_dict())
    assert "terms.arcface.head.weight" in keys and not any(k.startswith("head.") for k in keys)
    assert {"terms.rpsd.bank.embeddings", "terms.rpsd.bank.ptr"} <= keys and "teacher_centres" not in keys
