"""What `engram index` is asked to index: paths, folders, globs and lists of paths, as `SourceSpec`.

Each argument is a video file, an RGB-D folder (Open3D / ICL-NUIM, TUM or 7-Scenes),
a ROS bag (``.bag``, ``.mcap`` or a ROS 2 folder), a folder holding any of
these (searched recursively), a glob, a text file (``.txt`` / ``.list``) of
such paths one per line, or an object-store URI (``s3://``, ``gs://``,
``file://``) of a video or bag file that the workers read through pyarrow.
Every source gets a stable id from its resolved path, so a rerun finds the
memory it built before. A path given twice is indexed once; a path that does
not exist or whose kind cannot be told becomes a spec with an error, recorded
as a failure of that source without stopping the others.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "BAG_SUFFIXES",
    "VIDEO_SUFFIXES",
    "SourceSpec",
    "expand_sources",
    "fingerprint",
    "source_kind",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
BAG_SUFFIXES = (".bag", ".mcap")
LIST_SUFFIXES = (".txt", ".list")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class SourceSpec:
    """One source to index.

    Attributes:
        path: the resolved local path, or the URI as given.
        kind: "video", "rgbd", "bag", or "" when it cannot be told (see ``error``).
        source_id: stable id: a readable stem plus a hash of ``path``.
        error: why the source cannot be indexed ("" when it can).
    """

    path: str
    kind: str
    source_id: str
    error: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _source_id(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path.rstrip("/")).name.rsplit(".", 1)[0])[:40].strip("_") or "source"
    return f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:12]}"


def source_kind(path: str | Path) -> str:
    """ "video", "rgbd" or "bag" for a path, "" when it is none of them (no reading beyond names)."""
    s = str(path)
    if _URI.match(s):
        low = s.lower()
        return "video" if low.endswith(VIDEO_SUFFIXES) else "bag" if low.endswith(BAG_SUFFIXES) else ""
    p = Path(s)
    if p.is_dir():
        if (
            (p / "trajectory.log").exists()
            or (p / "color").is_dir()
            or (p / "rgb.txt").exists()
            or next(p.glob("frame-*.depth.png"), None) is not None  # 7-Scenes
        ):
            return "rgbd"
        if (p / "metadata.yaml").exists():
            return "bag"
        return ""
    low = p.name.lower()
    if low.endswith(VIDEO_SUFFIXES):
        return "video"
    if low.endswith(BAG_SUFFIXES):
        return "bag"
    return ""


def fingerprint(path: str | Path) -> str:
    """Changes when the source does: size and head/tail hash of a file, names and sizes of a folder's files."""
    s = str(path)
    if _URI.match(s):
        return ""
    p = Path(s)
    h = hashlib.sha256()
    if p.is_file():
        st = p.stat()
        h.update(str(st.st_size).encode())
        with open(p, "rb") as fh:
            h.update(fh.read(1 << 20))
            if st.st_size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read(1 << 20))
    elif p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p)}\0{f.stat().st_size}\n".encode())
    return h.hexdigest()[:32]


def _scan_folder(root: Path) -> list[Path]:
    """Sources inside a folder that is not one itself, in name order (recursive, hidden entries skipped)."""
    found: list[Path] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found += [entry] if source_kind(entry) else _scan_folder(entry)
        elif source_kind(entry):
            found.append(entry)
    return found


def _read_list(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line if _URI.match(line) or os.path.isabs(line) else str(path.parent / line))
    return out


def expand_sources(
    items: Sequence[str | Path] | str | Path,
) -> tuple[list[SourceSpec], list[str]]:
    """Expand paths, folders, globs, URIs and list files into sources.

    Returns:
        The specs in the order given (folders in name order) and the paths that
        were given more than once (indexed once).

    Raises:
        ValueError: nothing was given, or a glob matches nothing.
    """
    if isinstance(items, (str, Path)):
        items = [items]
    items = [str(i) for i in items]
    if not items:
        raise ValueError("no sources given: pass videos, RGB-D folders, bags, folders of them, globs or a list file")
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    duplicates: list[str] = []

    def add(path: str, error: str = "") -> None:
        key = path if _URI.match(path) else str(Path(path).expanduser().resolve())
        if key in seen:
            duplicates.append(path)
            return
        seen.add(key)
        kind = "" if error else source_kind(key)
        if not error and not kind:
            error = (
                f"cannot tell what {path} is: expected a video ({', '.join(VIDEO_SUFFIXES)}), an RGB-D folder "
                "(Open3D / ICL-NUIM, TUM or 7-Scenes), a ROS bag (.bag, .mcap or a ROS 2 folder) or a folder of them"
            )
        specs.append(SourceSpec(path=key, kind=kind, source_id=_source_id(key), error=error))

    def walk(raw: Iterable[str], depth: int) -> None:
        for item in raw:
            if _URI.match(item):
                add(item)
                continue
            if glob.has_magic(item):
                matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
                if not matches:
                    raise ValueError(f"the pattern {item!r} matches no file or folder")
                walk(matches, depth)
                continue
            p = Path(item).expanduser()
            if not p.exists():
                add(item, f"no such file or folder: {p}")
            elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES and depth < 4:
                walk(_read_list(p), depth + 1)
            elif p.is_dir() and not source_kind(p):
                inner = _scan_folder(p)
                if not inner:
                    add(item, f"the folder {p} holds no video, RGB-D folder or bag")
                walk([str(q) for q in inner], depth)
            else:
                add(str(p))

    walk([str(i) for i in items], 0)
    return specs, duplicates
