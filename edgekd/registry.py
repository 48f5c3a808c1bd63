"""Lazy name → constructor registries.

Entries are import strings (``"edgekd.models.iresnet:iresnet50"``) resolved on first use, so an
optional runtime (OpenVINO, LiteRT) is imported only when it is selected, and importing a registry
imports nothing heavy. An unknown key raises with the known keys and a close-match suggestion.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from edgekd.errors import EdgeKDError, unknown_name


class Registry(Mapping[str, str]):
    """Maps names to ``"module:attr"`` import strings; ``get(name)`` imports and returns the object."""

    def __init__(self, kind: str, entries: Mapping[str, str], error: type[EdgeKDError] = EdgeKDError):
        self.kind = kind
        self._entries = dict(entries)
        self._error = error

    def __getitem__(self, name: str) -> str:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, name: str) -> Callable[..., Any]:
        """Import and return the object registered as ``name``; unknown names raise the registry's error."""
        if name not in self._entries:
            raise self._error(unknown_name(self.kind, name, self._entries))
        module_name, _, attr = self._entries[name].partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)
