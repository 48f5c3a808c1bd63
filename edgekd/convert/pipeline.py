"""``edgekd convert``: checkpoint → int8 (or float, or PTQ) artifact, proven to match its PyTorch model.

Every conversion ends with two checks, written into ``manifest.json`` beside the artifact:
- parity: per-image cosine between the artifact's embeddings and the PyTorch model it came from (the
  PT2E converted model for QAT artifacts, the float model for ``--float``), on real faces when given;
- int8 share: the fraction of conv/FC multiply-adds the runtime really executes in int8 (its optimised
  or compiled graph, not the file), against the target spec's ``min_int8_mac_share``.
A failed check raises :class:`~edgekd.errors.ConversionError` (exit status 2) after the manifest is
written, so the report is kept. PTQ artifacts (baselines) are compared with the float model and their
parity is reported, not enforced: PTQ has no PyTorch twin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.convert.exporters import export_artifact
from edgekd.convert.golden import NUM_GOLDEN, artifact_sha256, write_golden
from edgekd.convert.images import face_images
from edgekd.convert.int8_share import Int8ShareReport, int8_share
from edgekd.convert.manifest import Manifest, checkpoint_sha256, tool_versions, write_manifest
from edgekd.convert.parity import ParityReport, compare_embeddings
from edgekd.convert.weight_range import artifact_weight_bound
from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ConversionError, ModelError
from edgekd.isa import DESCRIPTIONS, exact_isas, host_isa
from edgekd.models import create_model, default_preprocess, detect_architecture, load_state_dict_file
from edgekd.quant import convert, example_input, load_target, set_mode, strip_fake_quant
from edgekd.quant.integer_reference import IntegerReference, parity_reference
from edgekd.quant.spec import TargetSpec, list_targets
from edgekd.runtime import load_embedder
from edgekd.runtime.torch_backend import TorchEmbedder
from edgekd.train.checkpoint import load_student, read_checkpoint

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    artifact: Path
    manifest: Path
    mode: str  # "qat" | "float" | "ptq"
    parity: ParityReport
    int8: Int8ShareReport | None
    failures: list[str] = field(default_factory=list)
    # vs the float32 converted model, when parity used an integer twin (informational)
    parity_float: ParityReport | None = None
    # vs the deployment ISA's arithmetic when this host runs other int8 kernels (informational)
    parity_deployment: ParityReport | None = None
    host_isa: str | None = None
    deployment_isas: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_markdown(self) -> str:
        parts = [f"## {self.artifact} ({self.mode})", ""]
        if self.deployment_isas:
            parts += [
                f"int8 arithmetic: this host is {self.host_isa}; the artifact computes its trained network "
                f"exactly on {', '.join(self.deployment_isas)}",
                "",
            ]
        parts.append(self.parity.to_markdown())
        if self.parity_deployment is not None:
            p = self.parity_deployment
            parts += [
                "",
                f"**This host ({self.host_isa}) is not a deployment ISA**: parity above is against this "
                f"host's arithmetic. Against the deployment arithmetic (`{p.reference}`, informational: "
                f"what this host's kernels change): mean {p.mean_cosine:.6f}, min {p.min_cosine:.6f}. "
                "Check on the device with `edgekd bench`.",
            ]
        if self.parity_float is not None:
            p = self.parity_float
            parts += [
                "",
                f"vs the float32 converted model (`{p.reference}`, informational: the floor two correct "
                f"int8 implementations share): mean {p.mean_cosine:.6f}, min {p.min_cosine:.6f}",
            ]
        if self.int8 is not None:
            parts += ["", self.int8.to_markdown()]
        if self.failures:
            parts += ["", "**FAILED:** " + "; ".join(self.failures)]
        return "\n".join(parts)


@dataclass
class _Source:
    """What the checkpoint gives: the float student, the QAT graph (if any), its target."""

    float_model: nn.Module
    arch: str
    qat_model: nn.Module | None
    target: TargetSpec | None
    sha256: str


def _load_source(path: Path, arch: str | None) -> _Source:
    sha = checkpoint_sha256(path)
    try:
        read_checkpoint(path)
    except ModelError as exc:
        if "not an edgekd checkpoint" not in str(exc):
            raise
        state = load_state_dict_file(path)  # a plain float state_dict (e.g. a pretrained student)
        arch = arch or detect_architecture(state)
        model = create_model(arch)
        model.load_state_dict(state)
        return _Source(model.eval(), arch, None, None, sha)
    loaded = load_student(path)
    if loaded.target is None:
        return _Source(loaded.model, loaded.arch, None, None, sha)
    return _Source(strip_fake_quant(loaded.model), loaded.arch, loaded.model, loaded.target, sha)


def _resolve_target(source: _Source, target: str | None, mode: str) -> TargetSpec:
    if target is None:
        if source.target is None:
            raise ConversionError("this checkpoint has no target: pass --target onnx|openvino|tflite")
        return source.target
    spec = load_target(target)
    if mode == "qat" and source.target is not None and source.target.name != spec.name:
        raise ConversionError(
            f"the checkpoint was trained with QAT for target '{source.target.name}', not '{spec.name}': "
            f"its fake quantization mirrors {source.target.name}'s arithmetic. Convert it with "
            f"--target {source.target.name}, retrain with --target {spec.name}, or use --float/--ptq"
        )
    return spec


def _reference_kind(spec: TargetSpec) -> str:
    """The parity reference of this toolkit's spec of the same name: a checkpoint stores the spec it was
    trained with, but how its artifact is checked is the converter's business (a newer edgekd knows
    more runtimes' integer arithmetic). User specs with another name keep their own setting."""
    if spec.name in list_targets():
        return load_target(spec.name).converter.reference
    return spec.converter.reference


def _mode(source: _Source, float_: bool, ptq: bool) -> str:
    if float_ and ptq:
        raise ConversionError("--float and --ptq exclude each other")
    if float_:
        return "float"
    if ptq:
        return "ptq"
    if source.qat_model is None:
        raise ConversionError(
            "this is a float checkpoint (no QAT target): use --ptq --calib DIR for a post-training-"
            "quantized baseline, --float for a float artifact, or train with `edgekd distill-qat`"
        )
    return "qat"


def _ptq_artifact(
    source: _Source, spec: TargetSpec, out: Path, pre: PreprocessSpec, calib: np.ndarray, dynamic: bool
) -> Path:
    """PTQ with each runtime's own tool (:mod:`edgekd.formats`: ORT quantize_static, NNCF, litert-torch's
    PT2E quantizer). A portable target (weights |w| ≤ 64) gets the tool's own 7-bit option: ORT
    ``reduce_range``, NNCF ``overflow_fix="enable"``; an 8-bit one the tool's default."""
    from edgekd.formats import get_format

    return get_format(spec.runtime).ptq(source.float_model, spec, out, pre, calib, dynamic)


def _deployment_isas(spec: TargetSpec, mode: str, artifact: Path) -> tuple[str, ...]:
    """Where the artifact computes its network exactly: a QAT artifact's weights are the spec's; a PTQ
    tool's are read from the file (ORT/NNCF decide the range, and their 8-bit defaults exceed 64)."""
    if mode == "float":
        return ()
    if mode == "qat":
        return spec.exact_isas
    bound = artifact_weight_bound(artifact)
    return exact_isas(spec.runtime, bound if bound is not None else 0)


def _embedding_size(model: nn.Module) -> int:
    set_mode(model, train=False)
    with torch.no_grad():
        return int(model(example_input(batch=2)).shape[1])


def _input_quantization(artifact: Path) -> dict[str, Any] | None:
    """The artifact's input scale/zero point when it takes integer input (TFLite full-integer)."""
    if artifact.suffix != ".tflite":
        return None
    from ai_edge_litert.interpreter import Interpreter

    from edgekd.runtime.litert_backend import tensor_quantization

    detail = Interpreter(model_path=str(artifact)).get_input_details()[0]
    q = tensor_quantization(detail)
    return None if q is None else q.to_dict()


def convert_checkpoint(
    checkpoint: str | Path,
    target: str | None = None,
    out: str | Path | None = None,
    *,
    float_: bool = False,
    ptq: bool = False,
    calib: str | Path | None = None,
    num_calib: int = 512,
    parity_data: str | Path | None = None,
    num_parity: int = 256,
    dynamic_batch: bool = False,
    arch: str | None = None,
    threads: int | None = None,
) -> ConvertResult:
    """Produce the artifact, check parity and int8 share, write the manifest; see the module docstring."""
    checkpoint = Path(checkpoint)
    source = _load_source(checkpoint, arch)
    mode = _mode(source, float_, ptq)
    spec = _resolve_target(source, target, mode)
    out = Path(out) if out else checkpoint.parent / f"{spec.name}-{mode}"
    pre = default_preprocess(source.arch)
    if mode == "ptq":
        if calib is None:
            raise ConversionError("--ptq needs --calib DIR (face crops, one folder per identity)")
        calib_images = face_images(calib, count=num_calib, seed=1)
        artifact = _ptq_artifact(source, spec, out, pre, calib_images, dynamic_batch)
        reference: nn.Module = source.float_model
    else:
        reference = convert(source.qat_model, spec) if mode == "qat" else source.float_model
        artifact = export_artifact(reference, spec, out, pre, "model", mode == "qat", dynamic_batch)
    host, deploy = host_isa(runtime=spec.runtime), _deployment_isas(spec, mode, artifact)
    check_against, deployed = reference, None
    if mode == "qat":
        check_against = parity_reference(reference, _reference_kind(spec), host)
        if host not in deploy:
            log.warning(
                "target '%s' (weights |w| ≤ %d) is exact on %s; this host is %s (%s), whose int8 kernels "
                "compute another network: parity is checked against this host's arithmetic, and the "
                "deployment arithmetic is reported beside it",
                spec.name,
                spec.weight_bound,
                ", ".join(deploy),
                host,
                DESCRIPTIONS[host],
            )
            deployed = parity_reference(reference, _reference_kind(spec), deploy[0])
    images = face_images(parity_data, count=num_parity, seed=2)
    manifest = Manifest(
        target=spec.name,
        artifact=artifact.name,
        preprocess=pre,
        embedding_size=_embedding_size(reference),
        source_sha256=source.sha256,
        tool_versions=tool_versions(),
        extra={
            "mode": mode,
            "arch": source.arch,
            "dynamic_batch": dynamic_batch,
            "target_spec": spec.to_dict(),
            "host_isa": host,
            "deployment_isas": list(deploy),
        },
    )
    write_manifest(manifest, out)  # the artifact loaders read the preprocessing from it
    informational = {"float32": reference if check_against is not reference else None, "deployment": deployed}
    return _check_and_record(
        manifest, artifact, out, check_against, pre, images, spec, mode, threads, informational
    )


def _check_and_record(
    manifest: Manifest,
    artifact: Path,
    out: Path,
    reference: nn.Module,
    pre: PreprocessSpec,
    images: np.ndarray,
    spec: TargetSpec,
    mode: str,
    threads: int | None,
    informational: dict[str, nn.Module | None] | None = None,
) -> ConvertResult:
    """Parity against ``reference`` (enforced) and against the ``informational`` models, reported only:
    ``float32`` (the converted model in float32: the floor two correct int8 runtimes share, when the
    reference is an integer twin) and ``deployment`` (the twin of the deployment ISA, when this host's
    int8 kernels compute another network)."""
    embedder = load_embedder(artifact, threads=threads)
    candidate = embedder.embed(images)  # once: every report below compares against these

    def against(model: nn.Module, kind: str) -> tuple[ParityReport, np.ndarray]:
        ref = _torch_embedder(model, pre, kind)
        embeddings = ref.embed(images)
        return compare_embeddings(candidate, embeddings, embedder.name, ref.name), embeddings

    report, reference_embeddings = against(reference, mode)
    extra = {
        key: against(model, f"qat-{key}") for key, model in (informational or {}).items() if model is not None
    }
    floor, deployed = (extra[k][0] if k in extra else None for k in ("float32", "deployment"))
    if mode == "ptq":  # no integer twin of the tools' graphs: the artifact as this host runs it
        targeted = candidate, f"the artifact on {manifest.extra.get('host_isa')} (PTQ: no integer twin)"
    elif deployed is not None:  # this host runs other kernels: the deployment ISA's twin
        targeted = extra["deployment"][1], deployed.reference
    else:
        targeted = reference_embeddings, report.reference
    golden = write_golden(out, images[:NUM_GOLDEN], targeted[0][:NUM_GOLDEN], targeted[1])
    share = int8_share(artifact) if mode != "float" else None
    failures = []
    if mode != "ptq" and not report.passed:
        failures.append(
            f"parity: mean cosine {report.mean_cosine:.5f} (≥ {report.mean_threshold}), "
            f"min {report.min_cosine:.5f} (≥ {report.min_threshold})"
        )
    if share is not None and share.share < spec.converter.min_int8_mac_share:
        failures.append(
            f"int8 share {100 * share.share:.2f} % < {100 * spec.converter.min_int8_mac_share:.0f} %"
        )
    manifest = Manifest(
        **{
            **manifest.__dict__,
            "input_quantization": _input_quantization(artifact),
            "parity": report.to_dict(),
            "extra": {
                **manifest.extra,
                "parity_vs_float_simulation": floor.to_dict() if floor is not None else None,
                "parity_vs_deployment_arithmetic": deployed.to_dict() if deployed is not None else None,
            },
            "int8_share": share.to_dict() if share is not None else None,
            "artifact_sha256": artifact_sha256(artifact),
            "golden": golden,
        }
    )
    path = write_manifest(manifest, out)
    host = manifest.extra.get("host_isa")
    deploy = tuple(manifest.extra.get("deployment_isas", ()))
    result = ConvertResult(artifact, path, mode, report, share, failures, floor, deployed, host, deploy)
    if failures:
        raise ConversionError(f"conversion checks failed for {artifact}\n\n{result.to_markdown()}")
    return result


def _torch_embedder(model: nn.Module, pre: PreprocessSpec, mode: str) -> TorchEmbedder:
    set_mode(model, train=False)
    kind = getattr(model, "name", None) if isinstance(model, IntegerReference) else None
    return TorchEmbedder(model, pre, name=f"pytorch-{mode}" + (f" ({kind})" if kind else ""))


__all__ = ["ConvertResult", "convert_checkpoint"]
