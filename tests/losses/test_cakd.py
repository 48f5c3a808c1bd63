"""CAKD: APT prompted teacher (frozen weights, prompt-only gradients), URFM distances and buckets, the
"cakd" loss (shapes for several token/pixel grids, exactly zero for identical sides, errors)."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ConfigError, ModelError
from edgekd.losses import LossSpec, build_objective
from edgekd.losses.cakd import CAKD, batch_infonce
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.losses.urfm import (
    ARCFACE_LANDMARKS,
    URFM,
    bucketize,
    face_distance,
    facial_regions,
    grid_positions,
)
from edgekd.models.apt import PromptedTeacher, make_prompted_teacher
from edgekd.models.vit import ViTFace

N, DT, CS = 2, 32, 24  # batch, teacher token width, student channels


def tiny_teacher(patch_size: int = 16, num_prompts: int = 3) -> PromptedTeacher:
    torch.manual_seed(0)
    vit = ViTFace(patch_size=patch_size, dim=DT, depth=2, heads=2, embedding_size=16)
    return PromptedTeacher(vit, num_prompts=num_prompts)


def tiny_term(**options) -> CAKD:
    torch.manual_seed(1)
    defaults = {"student_channels": CS, "teacher_channels": DT, "dim": 16, "num_centres": 4, "heads": 2}
    return CAKD(**{**defaults, **options})


def student_out(side: int = 7, channels: int = CS) -> StudentOut:
    fmap = torch.randn(N, channels, side, side, requires_grad=True)
    return StudentOut(embedding=torch.randn(N, 8), features={"last_map": fmap})


def images() -> torch.Tensor:
    return torch.randn(N, 3, 112, 112, generator=torch.Generator().manual_seed(2))


# --- APT: the prompted teacher ------------------------------------------------------------------


def test_only_prompts_and_the_mapping_get_gradients_on_the_teacher_side() -> None:
    teacher, term = tiny_teacher(), tiny_term()
    student = student_out()
    loss = term(student, teacher(images()).to_teacher_out(), torch.zeros(N, dtype=torch.long))
    loss.backward()
    assert all(p.grad is None for p in teacher.teacher.parameters())
    assert teacher.prompts.grad is not None and teacher.prompts.grad.abs().sum() > 0
    assert term.teacher_proj.weight.grad.abs().sum() > 0 and term.student_proj.weight.grad.abs().sum() > 0
    assert term.mapping.urfm.bucket_bias.grad.abs().sum() > 0
    assert student.features["last_map"].grad.abs().sum() > 0
    assert list(teacher.trainable_parameters()) == [teacher.prompts]


def test_teacher_weights_and_statistics_unchanged_after_training_steps() -> None:
    teacher, term = tiny_teacher(), tiny_term()
    face = build_objective([LossSpec("cosface")], embedding_size=16, num_classes=4)
    before = {k: v.clone() for k, v in teacher.teacher.state_dict().items()}
    prompts0 = teacher.prompts.detach().clone()
    params = [*teacher.trainable_parameters(), *term.parameters(), *face.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    teacher.train()
    assert teacher.training and not teacher.teacher.training  # the frozen ViT stays in eval mode
    labels = torch.tensor([0, 1])
    for step in range(3):
        out = teacher(images())
        face_loss, _ = face(StudentOut(out.embedding), TeacherOut(out.embedding), labels, step)
        loss = face_loss + term(student_out(), out.to_teacher_out(), labels, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = teacher.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    assert not torch.equal(prompts0, teacher.prompts)


@pytest.mark.parametrize("patch_size", [8, 16])
def test_prompted_teacher_outputs(patch_size: int) -> None:
    teacher = tiny_teacher(patch_size, num_prompts=3).eval()
    with torch.no_grad():
        out = teacher(images())
        assert out.tokens.shape == (N, (112 // patch_size) ** 2, DT)
        assert out.prompt_tokens.shape == (N, 3, DT)
        assert torch.equal(out.embedding, teacher.teacher.forward_head(out.tokens))
        plain = teacher.teacher(images())
    assert not torch.allclose(out.embedding, plain)  # the prompts steer the frozen teacher


def test_deep_prompts_of_wrong_shape_are_rejected() -> None:
    vit = tiny_teacher().teacher
    with pytest.raises(ModelError, match=r"deep prompts must be \(depth=2, P, D=32\)"):
        vit.forward_deep_prompted(images(), torch.zeros(3, 1, DT))


def test_onnx_and_cnn_teachers_cannot_be_prompted() -> None:
    with pytest.raises(ModelError, match="ONNX teachers cannot be prompted: APT needs a PyTorch Transformer"):
        make_prompted_teacher("sface_2021dec_fp32.onnx")
    with pytest.raises(ModelError, match="not a Transformer"):
        make_prompted_teacher("mobilefacenet")
    with pytest.raises(ModelError, match="num_prompts"):
        PromptedTeacher(tiny_teacher().teacher, num_prompts=0)


def test_prompted_teacher_from_state_dict_file(tmp_path) -> None:
    vit = ViTFace(patch_size=16, dim=DT, depth=2, heads=2, embedding_size=16)
    torch.save(vit.state_dict(), tmp_path / "vit.pt")
    with pytest.raises(ModelError):  # non-default options: not detectable from the keys alone
        make_prompted_teacher(tmp_path / "vit.pt")
    torch.save(ViTFace(dim=192, depth=4, heads=3).state_dict(), tmp_path / "tiny.pt")
    teacher = make_prompted_teacher(tmp_path / "tiny.pt", num_prompts=2)
    assert teacher.prompts.shape == (4, 2, 192)


# --- URFM: distances, buckets, mapping ----------------------------------------------------------


def test_bucketize_known_values() -> None:
    d = torch.tensor([0.0, 7.99, 8.0, 31.9, 32.0, 40.0, 80.0, 160.0, 1e5])
    # unit 8 px, 8 buckets: exact 0..3 below 4 units (32 px), then 4 + ⌊4·ln(u/4)/ln 5⌋ up to 160 px:
    # 40 px → 4 + ⌊0.55⌋, 80 px → 4 + ⌊2.28⌋
    assert bucketize(d, unit=8.0, num_buckets=8, far=160.0).tolist() == [0, 0, 1, 3, 4, 4, 6, 7, 7]


def test_face_distance_known_values() -> None:
    left_eye, right_eye = torch.tensor([ARCFACE_LANDMARKS[0]]), torch.tensor([ARCFACE_LANDMARKS[1]])
    eyes = float(torch.dist(left_eye, right_eye))
    assert torch.allclose(face_distance(left_eye, right_eye, gamma=0.5), torch.tensor([[1.5 * eyes]]))
    near = left_eye + torch.tensor([[3.0, 4.0]])  # same region (left eye): only the Euclidean 5 px
    assert torch.allclose(face_distance(left_eye, near, gamma=2.0), torch.tensor([[5.0]]))
    assert facial_regions(torch.tensor(ARCFACE_LANDMARKS)).tolist() == [0, 1, 2, 3, 4]
    assert grid_positions(2, 2).tolist() == [[28.0, 28.0], [84.0, 28.0], [28.0, 84.0], [84.0, 84.0]]


def test_urfm_buckets_centres_and_position_free_tokens() -> None:
    urfm = URFM(dim=16, num_centres=4, heads=2, num_buckets=8, gamma=1.0)
    index = urfm.buckets((2, 2), extra=3)  # centres sit exactly on the 2x2 grid
    assert index.shape == (4, 7)
    assert index[:, :4].diagonal().tolist() == [0, 0, 0, 0]
    assert (index[:, :4] > 0).sum() == 12 and (index[:, 4:] == 8).all()


@pytest.mark.parametrize("grid", [(7, 7), (14, 14), (12, 12)])
def test_urfm_shapes(grid: tuple[int, int]) -> None:
    urfm = URFM(dim=16, num_centres=9, heads=4)
    m = grid[0] * grid[1]
    h, attn = urfm(torch.randn(N, m, 16), grid, extra=torch.randn(N, 2, 16))
    assert h.shape == (N, 9, 16) and attn.shape == (N, 4, 9, m + 2)
    assert torch.allclose(attn.sum(-1), torch.ones(N, 4, 9))


# --- the cakd loss ------------------------------------------------------------------------------


@pytest.mark.parametrize("patch_size", [8, 16])
@pytest.mark.parametrize("side", [7, 14])
def test_loss_for_several_token_and_pixel_grids(patch_size: int, side: int) -> None:
    teacher, term = tiny_teacher(patch_size), tiny_term()
    out = teacher(images()).to_teacher_out()
    student = student_out(side)
    loss = term(student, out, torch.zeros(N, dtype=torch.long))
    assert loss.shape == () and torch.isfinite(loss) and loss > 0
    mapped, attn = term.map_student(student.features["last_map"])
    assert mapped.shape == (N, 4, 16) and attn.shape == (N, 2, 4, 4)


@pytest.mark.parametrize("mapping_grad", ["student", "both"])
def test_loss_exactly_zero_for_identical_sides(mapping_grad: str) -> None:
    term = tiny_term(student_channels=DT, mapping_grad=mapping_grad, align="mse")
    tokens = torch.randn(N, 49, DT)
    fmap = tokens.transpose(1, 2).reshape(N, DT, 7, 7)  # the same features as a 7x7 pixel map
    student = StudentOut(torch.zeros(N, 8), features={"last_map": fmap})
    teacher = TeacherOut(torch.zeros(N, 8), features={"tokens": tokens})
    labels = torch.zeros(N, dtype=torch.long)
    assert term(student, teacher, labels) > 0  # different projections: not zero yet
    with torch.no_grad():
        term.student_proj.weight.copy_(term.teacher_proj.weight)
    assert torch.equal(term(student, teacher, labels), torch.zeros(()))
    shifted = TeacherOut(torch.zeros(N, 8), features={"tokens": tokens.roll(1, dims=1)})
    assert term(student, shifted, labels) > 0  # same values, other positions: the mapping sees it


def test_identical_attention_but_other_outputs_only_counts_mhsa() -> None:
    term = tiny_term(student_channels=DT, attn_weight=0.0)
    tokens = torch.randn(N, 49, DT)
    student = StudentOut(torch.zeros(N, 8), features={"last_map": torch.randn(N, DT, 7, 7)})
    teacher = TeacherOut(torch.zeros(N, 8), features={"tokens": tokens})
    assert tiny_term(student_channels=DT, mhsa_weight=0.0, attn_weight=0.0)(student, teacher, None) == 0
    assert term(student, teacher, None) > 0


def test_registered_with_options_and_teacher_feature_flag() -> None:
    spec = LossSpec(
        "cakd", 2.0, {"student_channels": CS, "teacher_channels": DT, "num_centres": 9, "gamma": 0.5}
    )
    objective = build_objective([LossSpec("cosface"), spec], embedding_size=8, num_classes=4)
    assert objective.terms["cakd"].needs_teacher_features
    assert not objective.terms["cosface"].needs_teacher_features
    assert objective.terms["cakd"].mapping.urfm.centres.shape == (9, 128)
    with pytest.raises(ConfigError, match="mapping_grad"):
        LossSpec("cakd", params={"mapping_grad": "teacher"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_centres": 10}, "must be a square.*nearest: 9, 16"),
        ({"dim": 18, "heads": 4}, "multiple of heads"),
        ({"num_buckets": 1}, "num_buckets"),
        ({"gamma": -1.0}, "gamma"),
        ({"attn_weight": -1.0}, "weights"),
        ({"align": "cosine"}, "align must be one of infonce, vicreg, mse"),
        ({"temperature": 0.0}, "temperature"),
        ({"var_weight": -1.0}, "var_weight"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_term(**options)


def test_bad_inputs_say_what_to_do() -> None:
    term, labels = tiny_term(), torch.zeros(N, dtype=torch.long)
    tokens = TeacherOut(torch.zeros(N, 8), features={"tokens": torch.randn(N, 49, DT)})
    with pytest.raises(ValueError, match=r"student.features\['last_map'\].*FeatureTap"):
        term(StudentOut(torch.zeros(N, 8)), tokens, labels)
    with pytest.raises(ValueError, match="run a PyTorch Transformer teacher online"):
        term(student_out(), TeacherOut(torch.zeros(N, 8)), labels)
    with pytest.raises(ValueError, match="student_channels=24"):
        term(student_out(channels=10), tokens, labels)
    with pytest.raises(ValueError, match="N_T a square"):
        term(
            student_out(), TeacherOut(torch.zeros(N, 8), features={"tokens": torch.randn(N, 50, DT)}), labels
        )


# --- collapse-proof alignment -------------------------------------------------------------------


def test_batch_infonce_known_values() -> None:
    constant = torch.ones(4, 3, 8)  # every image the same: uninformative logits
    assert torch.allclose(batch_infonce(constant, constant, 0.1), torch.log(torch.tensor(4.0)))
    separated = torch.eye(4)[:, None, :].expand(4, 3, 4)  # image i = unit vector e_i at every centre
    assert batch_infonce(separated, separated, 0.01) < 1e-6
    assert batch_infonce(separated, separated.roll(1, dims=0), 0.01) > 50  # every positive mismatched
    with pytest.raises(ValueError, match="at least 2 images"):
        batch_infonce(constant[:1], constant[:1], 0.1)


def _train_alone(align: str, related: bool, steps: int = 200) -> tuple[float, float, float]:
    """Optimise only the term's parameters (as benchmarks/cakd_collapse.py): (first loss, last loss,
    smaller of the two sides' batch std of the normalised outputs at the end)."""
    torch.manual_seed(0)
    term = CAKD(32, 24, dim=16, num_centres=4, heads=2, align=align)
    opt = torch.optim.AdamW(term.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    relation = torch.randn(32, 24, generator=gen) / 32**0.5
    losses = []
    for _ in range(steps):
        fmap = torch.randn(8, 32, 6, 6, generator=gen)
        tokens = (
            fmap.flatten(2).transpose(1, 2) @ relation if related else torch.randn(8, 36, 24, generator=gen)
        )
        student = StudentOut(torch.zeros(8, 4), features={"last_map": fmap})
        loss = term(student, TeacherOut(torch.zeros(8, 4), features={"tokens": tokens}), None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        stds = [
            float(torch.nn.functional.layer_norm(o, o.shape[-1:]).std(0).mean())
            for o in (term.map_student(fmap)[0], term.map_teacher(tokens)[0])
        ]
    return losses[0], losses[-1], min(stds)


def test_infonce_alignment_cannot_collapse_on_unrelated_inputs() -> None:
    _, last, std = _train_alone("infonce", related=False)
    assert last > 0.9 * torch.log(torch.tensor(8.0))  # no better than chance: nothing to align
    assert std >= 0.5  # outputs stay input-dependent
    _, mse_last, mse_std = _train_alone("mse", related=False)
    assert mse_last < 0.01 and mse_std < 0.1  # the old form reaches ~0 by making both sides constant


def test_infonce_alignment_falls_on_related_inputs() -> None:
    first, last, std = _train_alone("infonce", related=True)
    assert last < 0.4 * first and std >= 0.5
