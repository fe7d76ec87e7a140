"""Small helpers shared across layers: clock times for people, folder sizes. Imports nothing of engram."""

from __future__ import annotations

from pathlib import Path

__all__ = ["dir_size_mb", "fmt_time"]


def fmt_time(t_s: float) -> str:
    """Seconds as ``mm:ss``, or ``h:mm:ss`` from an hour on; rounded to the second, never negative."""
    t = int(round(max(float(t_s), 0.0)))
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def dir_size_mb(path: str | Path) -> float:
    """Size in MB (10^6 bytes) of a file, or of every file under a folder (links resolved once)."""
    root = Path(path).resolve()
    if root.is_file():
        return root.stat().st_size / 1e6
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
