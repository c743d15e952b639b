"""Plugin registries for ciphers and attacks, fed by Python entry points.

Every cipher, built-in or third-party, is a class registered under the entry-point group
``ppattack.ciphers`` (attacks: ``ppattack.attacks``); the entry-point name is the registry
key and must equal the class's ``name``. Registries load lazily on first use. A plugin that
fails to import is logged as a warning and skipped; two distributions registering the same
name is a :class:`PluginError` naming both.
"""
from __future__ import annotations

import difflib
import fnmatch
import logging
from importlib import metadata
from typing import Any, Generic, TypeVar

from .attack import Attack
from .cipher import Cipher
from .errors import PluginError, UnknownComponentError
from .params import instantiate

log = logging.getLogger(__name__)
T = TypeVar("T")


def _distribution_name(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


class Registry(Generic[T]):
    """Name -> class, loaded from one entry-point group."""

    def __init__(self, group: str, kind: str, base: type):
        self.group = group
        self.kind = kind
        self.base = base
        self._classes: dict[str, type] | None = None
        self.failures: dict[str, str] = {}

    def reload(self) -> None:
        """Forget what was loaded (after installing or removing plugins in this process)."""
        self._classes = None
        self.failures = {}

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        found: dict[str, metadata.EntryPoint] = {}
        for entry_point in metadata.entry_points(group=self.group):
            other = found.get(entry_point.name)
            if other is not None and _distribution_name(other) != _distribution_name(entry_point):
                raise PluginError(
                    f"{self.kind} '{entry_point.name}' is registered twice: by "
                    f"{_distribution_name(other)} ({other.value}) and by "
                    f"{_distribution_name(entry_point)} ({entry_point.value}); uninstall one of them")
            found[entry_point.name] = entry_point
        return found

    def _load(self) -> dict[str, type]:
        if self._classes is not None:
            return self._classes
        classes: dict[str, type] = {}
        for name, entry_point in sorted(self._entry_points().items()):
            try:
                cls = entry_point.load()
            except Exception as e:  # a broken plugin must not break the registry
                self._skip(name, entry_point, f"failed to import: {e.__class__.__name__}: {e}")
                continue
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                self._skip(name, entry_point, f"is not a subclass of ppattack.{self.base.__name__}")
                continue
            if cls.name != name:
                self._skip(name, entry_point, f"class declares name {cls.name!r}, entry point says {name!r}")
                continue
            classes[name] = cls
        self._classes = classes
        return classes

    def _skip(self, name: str, entry_point: metadata.EntryPoint, why: str) -> None:
        message = f"skipping {self.kind} plugin '{name}' from {_distribution_name(entry_point)}: {why}"
        self.failures[name] = message
        log.warning(message)

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        return sorted(n for n in self._load() if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str) -> type:
        """The class registered as ``name``; unknown names suggest close matches."""
        classes = self._load()
        if name in classes:
            return classes[name]
        if name in self.failures:
            raise UnknownComponentError(self.failures[name])
        close = difflib.get_close_matches(name, list(classes), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(classes))}"
        raise UnknownComponentError(
            f"unknown {self.kind} '{name}': {hint} (`ppattack list {self.kind}s` shows all)")

    def create(self, name: str, **params: Any) -> T:
        """Instantiate ``name`` with keyword parameters (unset ``None`` values are dropped)."""
        return instantiate(self.get(name), self.kind, name,
                           {k: v for k, v in params.items() if v is not None})


CIPHERS: Registry = Registry("ppattack.ciphers", "cipher", Cipher)
ATTACKS: Registry = Registry("ppattack.attacks", "attack", Attack)


def list_ciphers(pattern: str = "*") -> list[str]:
    """Names of the installed ciphers matching ``pattern`` (shell wildcard)."""
    return CIPHERS.names(pattern)


def list_attacks(pattern: str = "*") -> list[str]:
    """Names of the installed attacks matching ``pattern`` (shell wildcard)."""
    return ATTACKS.names(pattern)


def create_cipher(name: str, **params: Any):
    """``create_cipher("proposed", block_size=16)``: a configured cipher."""
    return CIPHERS.create(name, **params)


def create_attack(name: str, **params: Any):
    """``create_attack("itn", budget="quick")``: a configured attack."""
    return ATTACKS.create(name, **params)
