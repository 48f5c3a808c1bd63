"""Can the ``cakd`` term collapse on its own? Optimise only its parameters on random inputs.

    python benchmarks/cakd_collapse.py [--steps 300] [--aligns mse,vicreg,infonce] [--variants base]

``unrelated`` inputs: student maps and teacher tokens drawn independently every step, so no real
agreement exists: a loss that still goes to ~0 does so by making both sides' outputs input-independent
("std": batch standard deviation of the normalised MHSA outputs, about 1 = input-dependent, 0 =
constant). ``related``: the teacher tokens are a fixed random linear map of the student's pixels, so an
alignment exists and the loss should fall. ``--aligns`` are the ``align`` options of
:class:`edgekd.losses.cakd.CAKD`. Variants are monkeypatched onto it: ``fixT`` frozen teacher
projection, ``nobias`` bias-free URFM v/out and MHSA qkv/proj, ``ortho`` fixed orthogonal bias-free
value/output paths plus a frozen orthogonal teacher projection. Writes results/cakd_collapse.{md,json};
reading in docs/methods/cakd.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

from edgekd.losses.cakd import CAKD
from edgekd.losses.outputs import StudentOut, TeacherOut

CS, DT, N = 64, 48, 8


def _fixed_orthogonal(lin: nn.Linear) -> None:
    lin.bias = None
    nn.init.orthogonal_(lin.weight)
    lin.weight.requires_grad_(False)


def make_term(variant: str, mapping_grad: str, align: str = "mse") -> CAKD:
    """``align`` is ``name`` or ``name:var_weight`` (e.g. ``vicreg:25``, VICReg's own weighting)."""
    name, _, var = align.partition(":")
    options = {"var_weight": float(var)} if var else {}
    term = CAKD(CS, DT, dim=32, num_centres=16, heads=4, mapping_grad=mapping_grad, align=name, **options)  # type: ignore[arg-type]
    urfm, mhsa = term.mapping.urfm, term.mapping.mhsa
    if "nobias" in variant:
        for lin in (urfm.v, urfm.out, mhsa.qkv, mhsa.proj):
            lin.bias = None
    if "fixT" in variant:
        term.teacher_proj.requires_grad_(False)
    if "ortho" in variant:
        _fixed_orthogonal(urfm.v)
        _fixed_orthogonal(urfm.out)
        _fixed_orthogonal(mhsa.proj)
        mhsa.qkv.bias = None
        d = mhsa.proj.weight.shape[0]
        with torch.no_grad():
            nn.init.orthogonal_(mhsa.qkv.weight[2 * d :])
        mhsa.qkv.weight.register_hook(lambda g: torch.cat([g[: 2 * d], torch.zeros_like(g[2 * d :])]))
        nn.init.orthogonal_(term.teacher_proj.weight)
        term.teacher_proj.requires_grad_(False)
    return term


def run(
    variant: str, steps: int, mapping_grad: str, align: str = "mse", related: bool = False
) -> list[tuple[int, float, float, float]]:
    torch.manual_seed(0)
    term = make_term(variant, mapping_grad, align)
    opt = torch.optim.AdamW([p for p in term.parameters() if p.requires_grad], lr=1e-3, weight_decay=5e-4)
    gen, log = torch.Generator().manual_seed(123), []
    relation = torch.randn(CS, DT, generator=gen) / math.sqrt(CS)  # teacher = fixed linear map of student
    for step in range(steps + 1):
        fmap = torch.randn(N, CS, 8, 8, generator=gen)
        tokens = torch.randn(N, 64, DT, generator=gen)
        if related:
            tokens = fmap.flatten(2).transpose(1, 2) @ relation  # (N, 64, DT), same 8x8 grid
        prompts = torch.randn(N, 4, DT, generator=gen)
        student = StudentOut(embedding=torch.zeros(N, 4), features={"last_map": fmap})
        teacher = TeacherOut(
            embedding=torch.zeros(N, 4), features={"tokens": tokens, "prompt_tokens": prompts}
        )
        loss = term(student, teacher, torch.zeros(N, dtype=torch.long))
        if step % 100 == 0 or step == steps:
            with torch.no_grad():
                o_s, o_t = term.map_student(fmap)[0], term.map_teacher(tokens, prompts)[0]
                std_s = float(F.layer_norm(o_s, o_s.shape[-1:]).std(0).mean())
                std_t = float(F.layer_norm(o_t, o_t.shape[-1:]).std(0).mean())
            log.append((step, float(loss.detach()), std_s, std_t))
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return log


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--aligns", default="mse,vicreg,vicreg:25,infonce", help="align[:var_weight],...")
    parser.add_argument("--variants", default="base")
    parser.add_argument("--mapping-grad", default="student", choices=["student", "both"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="cakd_collapse", help="result file stem in benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, table = (
        [],
        [
            "| align | variant | inputs | loss at step 0 | loss at the end | end / start "
            "| std S at the end | std T at the end |",
            "|---|---|---|---|---|---|---|---|",
        ],
    )
    for align in args.aligns.split(","):
        for variant in args.variants.split(","):
            for inputs in ("unrelated", "related"):
                log = run(variant, args.steps, args.mapping_grad, align, inputs == "related")
                (_, first, _, _), (_, last, std_s, std_t) = log[0], log[-1]
                rows.append({"align": align, "variant": variant, "inputs": inputs, "log": log})
                table.append(
                    f"| {align} | {variant} | {inputs} | {first:.4f} | {last:.4f} | {last / first:.3f} "
                    f"| {std_s:.3f} | {std_t:.3f} |"
                )
                print(table[-1], flush=True)
    body = (
        f"Only the `cakd` term's parameters trained (AdamW, lr 1e-3), {args.steps} steps, batch {N}, "
        f"student map {CS}x8x8, teacher tokens 64x{DT}, mapping_grad={args.mapping_grad}. std: batch "
        "standard deviation of the LayerNorm-ed MHSA outputs (about 1: input-dependent; 0: constant). "
        f"InfoNCE's value for uninformative logits is log {N} = {math.log(N):.3f} (+ the attention term)."
        "\n\n" + "\n".join(table) + "\n"
    )
    write_result(
        args.name, "Can the cakd alignment collapse? (only the loss's parameters train)", body, {"rows": rows}
    )


if __name__ == "__main__":
    main()
