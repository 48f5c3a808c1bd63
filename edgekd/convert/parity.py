"""Parity: does the deployed artifact compute what the PyTorch model computes, image by image?

Accuracy on a benchmark can hide a broken conversion (a few wrong embeddings barely move LFW accuracy),
and a mean cosine alone hides a handful of images that a runtime gets badly wrong (saturated int8
activations, a mis-scaled input). So the check is per image and looks at both the mean and the worst:
by default mean ≥ 0.999 and min ≥ 0.99 (issue #5), between the artifact and the *converted* PyTorch
model (the one whose arithmetic the artifact should reproduce), on the same images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgekd.errors import ConversionError, ModelError
from edgekd.runtime.base import Embedder, l2_normalize

DEFAULT_MEAN_THRESHOLD = 0.999
DEFAULT_MIN_THRESHOLD = 0.99


@dataclass(frozen=True)
class ParityReport:
    """Per-image cosine statistics of ``candidate`` against ``reference`` and the verdict."""

    reference: str
    candidate: str
    num_images: int
    mean_cosine: float
    min_cosine: float
    worst_image: int  # index into the checked images of the lowest cosine
    mean_threshold: float = DEFAULT_MEAN_THRESHOLD
    min_threshold: float = DEFAULT_MIN_THRESHOLD

    @property
    def passed(self) -> bool:
        return self.mean_cosine >= self.mean_threshold and self.min_cosine >= self.min_threshold

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}

    def to_markdown(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return "\n".join(
            [
                f"### Parity: {verdict}",
                "",
                f"`{self.candidate}` vs `{self.reference}` on {self.num_images} images",
                "",
                "| cosine | value | threshold |",
                "|---|---|---|",
                f"| mean | {self.mean_cosine:.6f} | ≥ {self.mean_threshold} |",
                f"| min (image {self.worst_image}) | {self.min_cosine:.6f} | ≥ {self.min_threshold} |",
            ]
        )


def cosine_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(N, D)`` embedding matrices (float64 for the sum)."""
    if a.shape != b.shape:
        raise ModelError(f"embeddings differ in shape: {a.shape} vs {b.shape}")
    return np.sum(l2_normalize(a).astype(np.float64) * l2_normalize(b), axis=1)


def check_parity(
    candidate: Embedder,
    reference: Embedder,
    images: np.ndarray,
    mean_threshold: float = DEFAULT_MEAN_THRESHOLD,
    min_threshold: float = DEFAULT_MIN_THRESHOLD,
) -> ParityReport:
    """Embed ``images`` ((N, H, W, 3) uint8 RGB) through both embedders and compare per image.

    Each embedder applies its own preprocessing spec, so a spec mismatch between artifact and
    reference shows up here as a failure, as it would in deployment.
    """
    if len(images) == 0:
        raise ModelError("parity needs at least one image")
    return compare_embeddings(
        candidate.embed(images),
        reference.embed(images),
        candidate.name,
        reference.name,
        mean_threshold,
        min_threshold,
    )


def compare_embeddings(
    candidate: np.ndarray,
    reference: np.ndarray,
    candidate_name: str,
    reference_name: str,
    mean_threshold: float = DEFAULT_MEAN_THRESHOLD,
    min_threshold: float = DEFAULT_MIN_THRESHOLD,
) -> ParityReport:
    """The parity report of two ``(N, D)`` embedding matrices of the same images, row by row."""
    if len(candidate) == 0:
        raise ModelError("parity needs at least one image")
    cos = cosine_per_image(candidate, reference)
    worst = int(np.argmin(cos))
    return ParityReport(
        reference=reference_name,
        candidate=candidate_name,
        num_images=len(cos),
        mean_cosine=float(cos.mean()),
        min_cosine=float(cos[worst]),
        worst_image=worst,
        mean_threshold=mean_threshold,
        min_threshold=min_threshold,
    )


def require_parity(report: ParityReport) -> ParityReport:
    """Return the report if it passed; otherwise raise :class:`ConversionError` carrying the report."""
    if not report.passed:
        raise ConversionError(f"parity check failed\n\n{report.to_markdown()}")
    return report
