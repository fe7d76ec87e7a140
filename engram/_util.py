"""Small helpers shared across layers: clock times for people, folder sizes, name registries, number checks. Imports nothing of engram."""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "dir_size_bytes", "dir_size_mb", "fmt_time", "non_negative"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to factories, for the backends a config or a user picks by name (encoders, detectors, ...).

    Args:
        kind: what the registry holds, for messages ("detector", "image encoder").
        lazy: name -> module that registers it when imported; such a name is listed when its
            module exists and imported on first `build`, so that importing engram stays light.
    """

    def __init__(self, kind: str, lazy: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._lazy = dict(lazy or {})

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Class or factory decorator: ``@registry.register("mine")`` makes ``build("mine")`` work."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return deco

    def available(self) -> list[str]:
        """Every name `build` accepts (lazy ones whose module exists included)."""
        lazy = {n for n, m in self._lazy.items() if importlib.util.find_spec(m) is not None}
        return sorted(set(self._factories) | lazy)

    def build(self, name: str, **kwargs: Any) -> T:
        """The backend registered as ``name``, built with ``kwargs``.

        Raises:
            ValueError: unknown name (the message lists the known ones).
        """
        if name not in self._factories and name in self._lazy and importlib.util.find_spec(self._lazy[name]):
            importlib.import_module(self._lazy[name])
        if name not in self._factories:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}")
        return self._factories[name](**kwargs)


def fmt_time(t_s: float) -> str:
    """Seconds as ``mm:ss``, or ``h:mm:ss`` from an hour on; rounded to the second, never negative."""
    t = int(round(max(float(t_s), 0.0)))
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def dir_size_bytes(path: str | Path) -> int:
    """Size in bytes of a file, or of every file under a folder (links resolved once); 0 where nothing is."""
    root = Path(path).resolve()
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def dir_size_mb(path: str | Path) -> float:
    """Size in MB (10^6 bytes) of a file, or of every file under a folder (links resolved once)."""
    return dir_size_bytes(path) / 1e6


def non_negative(name: str, value: Any) -> float:
    """``value`` as a finite number >= 0; anything else (NaN, a negative, a string, None) is a
    ValueError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v
