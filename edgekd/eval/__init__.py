"""Evaluation: pure metrics (:mod:`verification`), embedding runner, reports."""

from edgekd.eval.runner import EvalResult, evaluate
from edgekd.eval.verification import VerificationMetrics, roc

__all__ = ["EvalResult", "VerificationMetrics", "evaluate", "roc"]
