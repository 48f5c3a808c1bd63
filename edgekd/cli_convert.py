"""``edgekd convert`` (registered on the main group by :mod:`edgekd.cli`)."""

from __future__ import annotations

from typing import Any

import click

from edgekd.cli import _friendly, main


@main.command("convert")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(dir_okay=False),
    help="edgekd checkpoint (last.pt/best.pt), or a float state_dict for --float/--ptq.",
)
@click.option("--target", help="onnx, openvino, tflite or a spec .yaml.  [default: the checkpoint's]")
@click.option("--out", help="Output folder (artifact + manifest.json).  [default: beside the checkpoint]")
@click.option(
    "--float", "float_", is_flag=True, help="Export the float model for the same runtime (baseline)."
)
@click.option(
    "--ptq", is_flag=True, help="Post-training quantization with the runtime's own tool (baseline)."
)
@click.option(
    "--calib", type=click.Path(file_okay=False), help="Calibration faces for --ptq (identity folders)."
)
@click.option("--num-calib", type=int, default=512, show_default=True, help="Calibration images for --ptq.")
@click.option(
    "--parity-data",
    type=click.Path(file_okay=False),
    help="Real faces for the parity check (identity folders, e.g. LFW).  [default: synthetic faces]",
)
@click.option("--num-parity", type=int, default=256, show_default=True, help="Images for the parity check.")
@click.option("--dynamic-batch", is_flag=True, help="Symbolic batch dimension (default: batch 1).")
@click.option("--arch", help="Architecture of a plain state_dict (detected from its keys if omitted).")
@click.option("-t", "--threads", type=int, help="Runtime threads for the checks.")
@_friendly
def convert_cmd(checkpoint: str, **options: Any) -> None:
    """Produce the int8 artifact of a trained student and prove it computes the same embeddings.

    \b
    QAT checkpoint → the PT2E converted model → ONNX QDQ (ORT fuses it to QLinearConv), OpenVINO IR
    (from the ExportedProgram) or TFLite (litert-torch). Then: parity (cosine to the PyTorch model,
    mean ≥ 0.999, min ≥ 0.99) and the share of conv/FC MACs the runtime executes in int8; both go to
    manifest.json, and a failed check exits with status 2.
    Examples:
      edgekd convert --checkpoint runs/distill/last.pt --parity-data ../shared/data/lfw112
      edgekd convert --checkpoint mobilefacenet_ms1m.pt --target onnx --ptq --calib ../shared/data/lfw112
      edgekd eval -m runs/distill/onnx-qat/model.onnx -p ../shared/data/lfw112 --folds 6-10
    """
    from edgekd.convert.pipeline import convert_checkpoint

    result = convert_checkpoint(checkpoint, **options)
    click.echo(result.to_markdown())
    click.echo(f"\nwrote {result.artifact} and {result.manifest}")
