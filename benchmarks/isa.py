"""One int8 artifact, two x86 CPUs: QAT+KD under the 7-bit rule vs PTQ under it vs 8 bits, on VNNI and AVX2.

    python benchmarks/isa.py [--runtimes onnx,openvino] [--runs-dir runs/bench_isa] [--emulate 64]

Inputs: the QAT+KD checkpoints of ``benchmarks/qat.py`` for the portable targets (``onnx``, ``openvino``:
weights |w| ≤ 63) and their 8-bit ``-vnni`` variants, made by
``python benchmarks/qat.py --targets onnx,openvino,onnx-vnni,openvino-vnni --methods 'qat+kd(sface)'
--steps 40 --name isa_qat_kd_sface --out runs/bench_isa``.

Per runtime, five artifacts (``edgekd convert``): float; QAT+KD 7-bit and 8-bit; PTQ of the pretrained
student with the runtime's own tool under the constraint (ORT ``reduce_range``, NNCF
``overflow_fix="enable"``) and at its 8-bit default. Each is run on
- **this host's ISA** (real): LFW folds 6-10 and CFP-FP (10 folds), parity from the convert manifest;
- **the other x86 ISA**. From a VNNI host, AVX2, natively: OpenVINO through oneDNN's own switch
  (``ONEDNN_MAX_CPU_ISA=AVX2``), ONNX Runtime through the CPUID mask (``edgekd/bench/cpuid_mask.py``:
  AVX-512/VNNI hidden from CPUID; Intel CPUs with CPUID faulting). Accuracy and latency are then real AVX2
  code on this core (not an AVX2-only CPU's latency), and ``--emulate`` faces check that these kernels
  compute what QEMU Haswell computes. Where ORT has no mask (AMD), its AVX2 kernels run only under QEMU
  (those faces: cosine vs this host's embeddings and vs the AVX2 twin); where those embeddings equal
  this host's (7-bit), the accuracy is this host's; else not measured unless ``--twin-eval`` runs the
  AVX2 twin on every face of the QAT artifacts. QEMU timing is not a latency: never reported. From an
  AVX2 host, VNNI is reachable only through the twin: those rows say "not measured".
Latency: one face, batch 1, 1 thread, median of ``--runs``, the five artifacts interleaved in blocks.
Writes results/isa.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import child_result, interleaved_samples, write_result

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 10
METHOD = "qat+kd(sface)"
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2"}  # oneDNN's dispatcher control; OpenVINO's CPU plugin honours it


def artifacts(runtime: str) -> list[dict]:
    """The five artifacts of one runtime: label, convert arguments, and the target they are checked for."""
    portable, wide = runtime, f"{runtime}-vnni"
    return [
        {"label": "float", "target": portable, "ckpt": f"{portable}-{METHOD}", "mode": "float"},
        {"label": "QAT+KD 7-bit", "target": portable, "ckpt": f"{portable}-{METHOD}", "mode": "qat"},
        {"label": "QAT+KD 8-bit", "target": wide, "ckpt": f"{wide}-{METHOD}", "mode": "qat"},
        {"label": "PTQ 7-bit", "target": portable, "ckpt": None, "mode": "ptq"},
        {"label": "PTQ 8-bit", "target": wide, "ckpt": None, "mode": "ptq"},
    ]


def cosines(a, b) -> dict:
    import numpy as np

    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(1)
    return {"mean": float(cos.mean()), "min": float(cos.min()), "faces": len(cos)}


def accuracy(embedder, sets: dict) -> dict:
    from edgekd.eval import evaluate

    out = {}
    for name, vset in sets.items():
        m = evaluate(embedder, vset, progress=False).metrics
        out[name] = {"accuracy": 100 * m.accuracy, "std": 100 * m.accuracy_std}
    return out


def verification_sets() -> dict:
    from edgekd.data import load_verification_set
    from edgekd.paths import shared_dir

    data = shared_dir() / "data"
    return {
        "lfw": load_verification_set(data / "lfw112", "6-10"),
        "cfp_fp": load_verification_set(data / "cfp112"),
    }


def latencies(paths: dict[str, Path], face, runs: int) -> dict[str, float]:
    """Median ms per artifact, batch 1, 1 thread, interleaved so every artifact sees the same machine."""
    import numpy as np

    from edgekd.runtime import load_embedder

    singles = {label: load_embedder(p, threads=1) for label, p in paths.items()}
    samples = interleaved_samples(singles, face, runs, ROUNDS)
    return {label: float(np.median(v)) for label, v in samples.items()}


def twin(ckpt: Path, target: str, isa: str):
    """The trained network in ``isa``'s integer arithmetic (edgekd's twin of the runtime's kernels)."""
    from edgekd.models import default_preprocess
    from edgekd.quant import convert, load_target
    from edgekd.quant.integer_reference import parity_reference
    from edgekd.runtime.torch_backend import TorchEmbedder
    from edgekd.train.checkpoint import load_student

    student, spec = load_student(ckpt), load_target(target)
    ref = parity_reference(convert(student.model, spec), spec.converter.reference, isa)
    return TorchEmbedder(ref, default_preprocess(student.arch), f"twin {isa}")


def host_run(runtime: str, args) -> dict:
    """Convert, evaluate and time the five artifacts on this host; emulate AVX2 on a few faces."""
    import numpy as np

    from edgekd.bench.emulation import can_emulate, emulated_embeddings
    from edgekd.convert.images import face_images
    from edgekd.convert.pipeline import convert_checkpoint
    from edgekd.convert.weight_range import artifact_weight_bound
    from edgekd.isa import X86_AVX2, host_isa
    from edgekd.models import default_preprocess
    from edgekd.paths import shared_dir
    from edgekd.runtime import load_embedder
    from edgekd.runtime.torch_backend import TorchEmbedder
    from edgekd.train.checkpoint import load_student

    shared = shared_dir()
    lfw, pretrained = shared / "data/lfw112", shared / "models/mobilefacenet/mobilefacenet_ms1m.pt"
    sets, host = verification_sets(), host_isa()
    faces = face_images(lfw, count=args.emulate, seed=7)
    rows, paths = [], {}
    for item in artifacts(runtime):
        ckpt = args.runs_dir / item["ckpt"] / "last.pt" if item["ckpt"] else pretrained
        out = args.out / runtime / item["label"].replace(" ", "_").replace("+", "")
        extra = {"ptq": True, "calib": lfw, "num_calib": args.calib} if item["mode"] == "ptq" else {}
        result = convert_checkpoint(
            ckpt, item["target"], out, float_=item["mode"] == "float", parity_data=lfw,
            num_parity=args.parity, threads=1, **extra,
        )  # fmt: skip
        row = {
            **item,
            "source": str(ckpt),
            "artifact": str(result.artifact),
            "max_abs_weight": artifact_weight_bound(result.artifact) if item["mode"] != "float" else None,
            "deployment_isas": list(result.deployment_isas),
            "parity": result.parity.to_dict(),
        }
        if item["mode"] == "qat":
            student = load_student(ckpt)
            fq = TorchEmbedder(student.model, default_preprocess(student.arch), "fake-quant")
            row["fake_quant"] = accuracy(fq, sets)
        embedder = load_embedder(result.artifact, threads=2)
        row[host] = {"accuracy": accuracy(embedder, sets), "how": "real"}
        if host != X86_AVX2 and item["mode"] != "float" and can_emulate(X86_AVX2):
            emulated = emulated_embeddings(result.artifact, faces, X86_AVX2, threads=2, qemu=True)
            np.save(out / "avx2_emulated.npy", emulated)
            row["avx2_emulated_embeddings"] = str(out / "avx2_emulated.npy")
            row["avx2_emulated"] = {"vs_host": cosines(emulated, embedder.embed(faces))}
            if item["mode"] == "qat":
                row["avx2_emulated"]["vs_twin"] = cosines(
                    emulated, twin(ckpt, item["target"], X86_AVX2).embed(faces)
                )
            if runtime == "onnx" and args.twin_eval and item["mode"] == "qat":
                row["avx2_twin_accuracy"] = accuracy(twin(ckpt, item["target"], X86_AVX2), sets)
        rows.append(row)
        paths[item["label"]] = result.artifact
    face = face_images(lfw, count=1, seed=3)
    for label, ms in latencies(paths, face, args.runs).items():
        next(r for r in rows if r["label"] == label)[host]["latency_ms"] = ms
    return {"host_isa": host, "rows": rows}


def avx2_env(runtime: str) -> tuple[dict[str, str], str] | None:
    """How a child process runs ``runtime``'s AVX2 kernels natively on this VNNI CPU, if it can: oneDNN's
    dispatch limit (OpenVINO), the CPUID mask (ONNX Runtime, Intel CPUs with CPUID faulting)."""
    from edgekd.bench import cpuid_mask

    if runtime == "openvino":
        return AVX2_ENV, "real AVX2 kernels (ONEDNN_MAX_CPU_ISA)"
    if cpuid_mask.available():
        return cpuid_mask.CpuidMask().env(), "real AVX2 kernels (CPUID mask)"
    return None


def avx2_run(runtime: str, args) -> dict:
    """In a child whose runtime dispatches AVX2 kernels (``avx2_env``): accuracy, latency, and the check
    that these are the kernels QEMU Haswell runs (same embeddings)."""
    import numpy as np

    from edgekd.convert.images import face_images
    from edgekd.isa import X86_AVX2, host_isa
    from edgekd.paths import shared_dir
    from edgekd.runtime import load_embedder

    backend = {"onnx": "onnxruntime", "openvino": "openvino"}[runtime]
    if host_isa(runtime=backend) != X86_AVX2:
        sys.exit(f"the AVX2 child of {runtime} still sees {host_isa(runtime=backend)}")
    host = json.loads((args.out / runtime / "host.json").read_text())
    sets, how = verification_sets(), avx2_env(runtime)[1]
    faces = face_images(shared_dir() / "data/lfw112", count=args.emulate, seed=7)
    res, paths = {}, {}
    for row in host["rows"]:
        embedder = load_embedder(Path(row["artifact"]), threads=2)
        res[row["label"]] = {"accuracy": accuracy(embedder, sets), "how": how}
        emu = row.get("avx2_emulated_embeddings")
        if emu:
            res[row["label"]]["vs_qemu"] = cosines(embedder.embed(faces), np.load(emu))
        paths[row["label"]] = Path(row["artifact"])
    for label, ms in latencies(
        paths, face_images(shared_dir() / "data/lfw112", count=1, seed=3), args.runs
    ).items():
        res[label]["latency_ms"] = ms
    return res


def run_child(flag: list[str], env: dict | None = None) -> dict:
    return child_result([__file__, *flag, *sys.argv[1:]], env)


def _acc(a: dict | None, key: str) -> str:
    return f"{a[key]['accuracy']:.2f}" if a else "not measured"


def _emulated_refs(e: dict, host: str) -> list[tuple[str, dict]]:
    """What the QEMU Haswell embeddings were compared with: the AVX2 twin (is the twin right?) and the
    host's artifact, i.e. the trained network where the host is a deployment ISA (is it the same?)."""
    refs = [("AVX2 twin", e["vs_twin"])] if "vs_twin" in e else []
    return [*refs, (f"{host} run", e["vs_host"])]


def table(results: dict) -> str:
    rows = [
        "| runtime | artifact | max \\|w\\| | exact on | ISA (how) | LFW 6-10 % | CFP-FP % "
        "| Δ vs fake-quant LFW / CFP pp | parity mean / min cos | latency ms | int8 speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for runtime, res in results.items():
        host = res["host_isa"]
        for r in res["rows"]:
            fq = r.get("fake_quant")
            w = r["max_abs_weight"] if r["max_abs_weight"] is not None else "float"
            exact = ", ".join(r["deployment_isas"]) or "-"
            for isa in (host, "x86-avx2" if host != "x86-avx2" else "x86-vnni"):
                cell = r.get(isa) or {}
                acc = cell.get("accuracy")
                how = cell.get("how", "")
                parity = ""
                if isa == host:
                    p = r["parity"]
                    parity = f"{p['mean_cosine']:.5f} / {p['min_cosine']:.5f} vs {p['reference']}"
                elif "avx2_emulated" in r:
                    e = r["avx2_emulated"]
                    cells = [
                        f"{c['mean']:.5f} / {c['min']:.5f} vs {ref}" for ref, c in _emulated_refs(e, host)
                    ]
                    parity = "; ".join(cells) + f" (QEMU Haswell, {e['vs_host']['faces']} faces)"
                    if "vs_qemu" in cell:
                        q = cell["vs_qemu"]
                        parity += f"; these kernels vs QEMU: {q['mean']:.6f} / {q['min']:.6f}"
                    if acc is None and e["vs_host"]["min"] > 0.99999:
                        acc, how = r[host]["accuracy"], f"= {host} (same embeddings under QEMU Haswell)"
                    if acc is None and "avx2_twin_accuracy" in r:
                        acc, how = r["avx2_twin_accuracy"], "AVX2 twin (matches QEMU, above)"
                delta = (
                    f"{acc['lfw']['accuracy'] - fq['lfw']['accuracy']:+.2f} / "
                    f"{acc['cfp_fp']['accuracy'] - fq['cfp_fp']['accuracy']:+.2f}"
                    if acc and fq
                    else ""
                )
                ms = cell.get("latency_ms")
                flt = (next(x for x in res["rows"] if x["label"] == "float").get(isa) or {}).get("latency_ms")
                speed = f"×{flt / ms:.2f}" if ms and flt and r["label"] != "float" else ""
                lat = f"{ms:.2f}" if ms else ("not measured (QEMU is no latency)" if isa != host else "")
                rows.append(
                    f"| {runtime} | {r['label']} | {w} | {exact} | {isa} ({how or 'not measured'}) "
                    f"| {_acc(acc, 'lfw')} | {_acc(acc, 'cfp_fp')} | {delta} | {parity} | {lat} | {speed} |"
                )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runtimes", default="onnx,openvino")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench_isa"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_isa_artifacts"))
    parser.add_argument("--runs", type=int, default=200, help="latency runs per artifact")
    parser.add_argument("--calib", type=int, default=512, help="PTQ calibration faces (LFW)")
    parser.add_argument("--parity", type=int, default=256, help="faces for convert's parity check")
    parser.add_argument("--emulate", type=int, default=64, help="faces run under QEMU Haswell per artifact")
    parser.add_argument("--twin-eval", action="store_true", help="ORT QAT rows: AVX2 twin on every face")
    parser.add_argument("--reuse", action="store_true", help="reuse the per-runtime results in --out")
    parser.add_argument("--name", default="isa", help="result file stem in benchmarks/results/")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: one runtime on this host
    parser.add_argument("--avx2", help=argparse.SUPPRESS)  # internal: one runtime's AVX2 kernels
    args = parser.parse_args()
    if args.single:
        print("RESULT " + json.dumps(host_run(args.single, args)))
        return
    if args.avx2:
        print("RESULT " + json.dumps(avx2_run(args.avx2, args)))
        return
    results = {}
    for runtime in args.runtimes.split(","):
        cache = args.out / runtime / "result.json"
        if args.reuse and cache.exists():
            results[runtime] = json.loads(cache.read_text())
        else:
            res = run_child(["--single", runtime])
            native = avx2_env(runtime)
            if native is not None and res["host_isa"] != "x86-avx2":
                (args.out / runtime / "host.json").write_text(json.dumps(res))
                for label, cell in run_child(["--avx2", runtime], native[0]).items():
                    next(r for r in res["rows"] if r["label"] == label)["x86-avx2"] = cell
            cache.write_text(json.dumps(res))
            results[runtime] = res
        body = (
            "Checkpoints: QAT+KD (SFace) of `benchmarks/qat.py`, 40 steps on LFW training identities, per "
            "target; PTQ: the pretrained student with the runtime's tool, "
            f"{args.calib} LFW training faces. Accuracy: LFW folds 6-10 (3,000 pairs) and CFP-FP (7,000 "
            "pairs, 10 folds), no flip. Parity on this host: vs the twin of its arithmetic (QAT; PTQ vs the "
            f"float model, informational), {args.parity} faces. Latency: batch 1, 1 thread, median of "
            f"{args.runs}, interleaved. 'exact on': where the artifact computes its network exactly "
            "(weights |w| ≤ 64 or exact accumulation; edgekd/isa.py).\n\n" + table(results)
        )
        write_result(
            args.name,
            "Int8 arithmetic per x86 ISA: 7-bit QAT+KD vs PTQ vs 8 bits",
            body,
            {"results": results},
        )


if __name__ == "__main__":
    main()
