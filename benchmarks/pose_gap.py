"""Where does a distilled student agree with its teacher? Frontal pairs vs frontal-profile pairs of CFP.

    python benchmarks/pose_gap.py [--runs cosface,l2,cosface+l2] [--name pose_gap]

For the teacher (SFace), the pretrained student and the float students of ``benchmarks/recipes.py`` runs,
every CFP image is embedded once; then, on CFP-FF (frontal-frontal) and CFP-FP (frontal-profile) pairs:
- the Pearson correlation between the student's and the teacher's pair cosines (1 = it ranks pairs
  exactly as the teacher does: what embedding distillation aims at, measured where it is tested);
- the same-person / different-person cosine gap (mean same − mean different) of each model.
If distillation on frontal training faces moves the FF agreement but not the FP one, the data, not the
loss, limits what KD transfers to profile faces. Writes results/<name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result


def embeddings(embedder, images) -> np.ndarray:
    from edgekd.eval.runner import embed_dataset

    emb, _ = embed_dataset(embedder, images, 64, False, False)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def pair_stats(emb: np.ndarray, teacher: np.ndarray, vset) -> dict:
    a, b = vset.pairs[:, 0], vset.pairs[:, 1]
    cos, t_cos = (emb[a] * emb[b]).sum(1), (teacher[a] * teacher[b]).sum(1)
    same = vset.issame
    return {
        "agreement_r": float(np.corrcoef(cos, t_cos)[0, 1]),
        "gap": float(cos[same].mean() - cos[~same].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="cosface,l2,cosface+l2")
    parser.add_argument("--recipes", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="pose_gap")
    args = parser.parse_args()
    from edgekd.data import load_verification_set
    from edgekd.models import default_preprocess
    from edgekd.paths import shared_dir
    from edgekd.runtime import load_embedder
    from edgekd.runtime.torch_backend import TorchEmbedder
    from edgekd.train.checkpoint import load_student

    cfp = shared_dir() / "data/cfp112"
    fp, ff = load_verification_set(cfp), load_verification_set(cfp / "pairs_ff.txt")
    sets = {"CFP-FF": ff, "CFP-FP": fp}
    teacher = {k: embeddings(load_embedder("sface", threads=args.threads), v.images) for k, v in sets.items()}
    models = {"pretrained": load_embedder("mobilefacenet_ms1m", threads=args.threads)}
    for run in [r for r in args.runs.split(",") if r]:
        student = load_student(args.recipes / run / "last.pt")
        models[run] = TorchEmbedder(student.model, default_preprocess(student.arch), name=run)
    rows, payload = [], {}
    for name, model in [("teacher SFace", None), *models.items()]:
        stats = {}
        for key, vset in sets.items():
            emb = teacher[key] if model is None else embeddings(model, vset.images)
            stats[key] = pair_stats(emb, teacher[key], vset)
        payload[name] = stats
        cells = " | ".join(
            f"{stats[k]['agreement_r']:.3f} | {stats[k]['gap']:.3f}" for k in ("CFP-FF", "CFP-FP")
        )
        rows.append(f"| {name} | {cells} |")
        print(rows[-1], flush=True)
    body = (
        "Pair cosines of each model against SFace's on the same pairs (Pearson r), and each model's mean "
        "same-person minus different-person cosine. Students: float checkpoints of `benchmarks/recipes.py` "
        f"({args.recipes}).\n\n| model | FF agreement r | FF gap | FP agreement r | FP gap |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_result(args.name, "Teacher agreement on frontal vs profile pairs (CFP)", body, {"models": payload})
    print(json.dumps(payload)[:200])


if __name__ == "__main__":
    main()
