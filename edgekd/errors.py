"""Typed errors: every user-facing failure is one of these, so the CLI can print it without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeKDError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits 2 for any subclass."""


class ConfigError(EdgeKDError):
    """A config file, a declarative spec or a command-line override is invalid."""


class DataError(EdgeKDError):
    """A dataset, pairs file or image is missing, corrupt or malformed (the message names the file)."""


class UnsafeFileError(DataError):
    """A file tried to do something its format must not do (e.g. a pickle importing a callable)."""


class ModelError(EdgeKDError):
    """A model file or architecture cannot be built, loaded or run."""


class UnsupportedTargetError(EdgeKDError):
    """A target, runtime or profile is unknown or not installed on this host."""


class RemoteError(EdgeKDError):
    """The device cannot be reached, refuses us, or a copy/run step over SSH failed or timed out."""


class ConversionError(EdgeKDError):
    """An export or a parity check failed."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """Message for an unknown registry key: what was asked, what exists, the closest spelling."""
    known = sorted(known)
    return f"unknown {kind} '{name}'; known: {', '.join(known)}.{did_you_mean(name, known)}"
