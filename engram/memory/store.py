"""The on-disk format of every engram memory: one directory, one manifest, atomic saves.

A store is a directory holding a ``manifest.json`` and the layers' files
(``.npy`` arrays, ``.json`` tables and graphs, raw bytes such as ``.jpg`` /
``.png`` snapshots). The manifest names the store's ``kind`` (``"scene_memory"``,
``"video_memory"``, ...) and the kind's layout ``version``, records who wrote
it (engram version, UTC time, host) and the sha256 and size of every file.
`SceneMemory.save` and the video memory both go through `write_store` /
`read_store`, so every memory shares one checked, versioned, crash-safe format.

Atomicity. A save never touches the files of the previous save. Each save is
written into a hidden sibling temp directory, every file and directory is
fsynced, the manifest is written last, and the finished directory is renamed
to a hidden *generation* directory ``.<name>.engram-g<N>``. The user's path is
a relative symlink to the current generation, and the commit is one
``rename(2)`` of a new symlink over it. A process killed (SIGKILL, power cut
after the fsyncs) at any point therefore leaves either the old or the new
generation behind the path, both complete. Where symlinks are unavailable the
path is a real directory swapped with two renames; `read_store` then recovers
the newest complete generation if a crash fell between them. Stale temp
directories of killed writers are removed by the next save. By default one
previous generation is kept, so a reader that resolved the path just before a
commit can finish reading.

Format versions. A store newer than this engram reads fails with
`StoreVersionError` naming the engram version that wrote it; an older one goes
through the migrations registered with `register_migration`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "StoreContents",
    "StoreCorruptError",
    "StoreError",
    "StoreNotFoundError",
    "StoreVersionError",
    "decoding",
    "manifest_checksum",
    "read_store",
    "register_migration",
    "set_fault_hook",
    "store_generations",
    "store_kind",
    "write_store",
]

FORMAT_NAME = "engram.store"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

_GEN_RE = re.compile(r"^\.(?P<name>.+)\.engram-g(?P<gen>\d{8})$")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
_CHUNK = 1 << 20
_MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists names and checksums: kilobytes, not gigabytes
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FILE_TYPES = ("bytes", "npy", "json")
_MANIFEST_KEYS = frozenset(
    {"format", "format_version", "kind", "version", "generation", "created", "meta", "files", "manifest_sha256"}
)
_ENTRY_KEYS = frozenset({"sha256", "size", "type"})
# open(2) flags for reading store files: never follow a link, never block on a FIFO or device
_O_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)

# Fault injection for crash tests: when set, called with a step name before and
# after every durable filesystem operation of a save (a test kills the process
# from here to stop a save at an exact point).
_crash_hook: Callable[[str], None] | None = None


class StoreError(ValueError):
    """A store cannot be written or read as asked."""


class StoreCorruptError(StoreError):
    """A file of a store is missing, truncated or fails its checksum; the message names it."""


class StoreVersionError(StoreError):
    """The store's format version cannot be read by this engram."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No store at the path (also a `FileNotFoundError`)."""


def _engram_version() -> str:
    try:
        from engram import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - only when engram itself is half-imported
        return "unknown"


def _checkpoint(step: str) -> None:
    if _crash_hook is not None:
        _crash_hook(step)


def set_fault_hook(hook: Callable[[str], None] | None) -> None:
    """Install (or remove, with None) a fault-injection hook for crash tests.

    The hook is called with a step name (``"write:<file>"``, ``"rename_tmp"``,
    ``"replace_link"``, ``"committed"``, ...) before and after every durable
    filesystem operation of `write_store`; a crash test kills the process from
    it (``os.kill(os.getpid(), signal.SIGKILL)``) to stop a save at an exact
    point. Steps before ``"rename_tmp"`` never change what `read_store` sees;
    from ``"committed"`` on it sees the new save.
    """
    global _crash_hook
    if hook is not None and not callable(hook):
        raise ValueError(f"hook must be callable or None, got {type(hook).__name__}")
    _crash_hook = hook


# ---------------------------------------------------------------------------
# migrations

_MIGRATIONS: dict[tuple[str, int], Callable[[StoreContents], StoreContents]] = {}


def register_migration(
    kind: str, from_version: int
) -> Callable[[Callable[[StoreContents], StoreContents]], Callable[[StoreContents], StoreContents]]:
    """Register a function that upgrades a ``kind`` store from ``from_version`` to ``from_version + 1``.

    The function receives the old `StoreContents` and returns new contents,
    usually ``contents.replaced({...}, removed=[...])``; the returned version
    number is set by the registry. Migrations run in memory on load, the files
    on disk stay as written.

    Example:
        >>> @register_migration("scene_memory", 1)
        ... def _v1_to_v2(old):
        ...     return old.replaced({"places.json": {"nodes": old.json("graph.json")["nodes"]}})
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
        raise ValueError(f"from_version must be a positive integer, got {from_version!r}")

    def decorator(fn: Callable[[StoreContents], StoreContents]) -> Callable[[StoreContents], StoreContents]:
        key = (kind, from_version)
        if key in _MIGRATIONS and _MIGRATIONS[key] is not fn:
            raise ValueError(f"a migration for {kind} version {from_version} is already registered")
        _MIGRATIONS[key] = fn
        return fn

    return decorator


# ---------------------------------------------------------------------------
# encoding


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays inside JSON data become plain numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encode(name: str, value: Any) -> tuple[bytes | np.ndarray, str]:
    """Check one file's value and serialise what is cheap to serialise.

    Returns the payload (bytes, or the array itself: arrays are streamed to disk
    by `_write_payload` so a large memory is not held twice) and the type tag.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "bytes"
    if isinstance(value, np.ndarray):
        if not name.endswith(".npy"):
            raise StoreError(f"store file {name!r}: an array must be saved under a .npy name")
        if value.dtype.hasobject:
            raise StoreError(f"store file {name!r}: object arrays cannot be stored (dtype {value.dtype})")
        return value, "npy"
    if isinstance(value, (dict, list)):
        if not name.endswith(".json"):
            raise StoreError(f"store file {name!r}: a dict or list must be saved under a .json name")
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"), default=_json_default)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"store file {name!r} is not valid JSON data: {exc}") from exc
        return text.encode("utf-8"), "json"
    raise StoreError(
        f"store file {name!r}: unsupported value type {type(value).__name__} "
        "(use bytes, a numpy array or a JSON dict/list)"
    )


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _FILE_NAME_RE.fullmatch(name) or len(name) > 255:
        raise StoreError(
            f"store file name {name!r} is invalid: use a relative path of letters, digits, '_', '-', '.' and '/'"
        )
    parts = name.split("/")
    if any(p in (".", "..") for p in parts):
        raise StoreError(f"store file name {name!r} must not contain '.' or '..' components")
    if name == MANIFEST_NAME:
        raise StoreError(f"store file name {MANIFEST_NAME!r} is reserved for the manifest")
    return name


# ---------------------------------------------------------------------------
# durable filesystem steps


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.size += len(view)
        return self._fh.write(view)


def _write_payload(path: Path, payload: bytes | np.ndarray) -> tuple[str, int]:
    """Write one file durably; returns its sha256 and size."""
    with open(path, "wb") as fh:
        w = _HashingWriter(fh)
        if isinstance(payload, np.ndarray):
            np.lib.format.write_array(w, payload, allow_pickle=False)
        else:
            w.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    return w.sha256.hexdigest(), w.size


def _to_bytes(payload: bytes | np.ndarray) -> bytes:
    if isinstance(payload, np.ndarray):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, payload, allow_pickle=False)
        return buf.getvalue()
    return payload


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serialise writers of one store (an advisory lock the kernel drops when a writer dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one writer per store is the caller's job
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _symlinks_supported(parent: Path) -> bool:
    if os.environ.get("ENGRAM_STORE_NO_SYMLINKS"):
        return False
    probe = parent / f".engram-symlink-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.symlink("target", probe)
    except (OSError, NotImplementedError):
        return False
    probe.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------
# layout on disk


def _gen_dir(parent: Path, name: str, generation: int) -> Path:
    return parent / f".{name}.engram-g{generation:08d}"


def _tmp_prefix(name: str) -> str:
    return f".{name}.engram-tmp-"


def _link_prefix(name: str) -> str:
    return f".{name}.engram-link-"


def store_generations(path: str | os.PathLike[str]) -> dict[int, Path]:
    """The complete generation directories beside a store, by generation number."""
    p = Path(path)
    out: dict[int, Path] = {}
    if not p.parent.is_dir():
        return out
    for entry in p.parent.iterdir():
        m = _GEN_RE.match(entry.name)
        if m and m.group("name") == p.name and (entry / MANIFEST_NAME).is_file():
            out[int(m.group("gen"))] = entry
    return out


def manifest_checksum(manifest: Mapping[str, Any]) -> str:
    """The sha256 a manifest carries of itself: over its canonical JSON without the checksum field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _open_regular(path: Path, what: str, directory: Path) -> tuple[int, int]:
    """Open a store file for reading without following links or blocking; returns (fd, size).

    Raises `StoreCorruptError` when the file is a link, a FIFO, a device or a directory.
    """
    if not stat.S_ISREG(os.lstat(path).st_mode):  # FileNotFoundError: the caller's
        raise StoreCorruptError(f"store {directory}: {what} is not a regular file (a link, folder or device)")
    try:
        fd = os.open(path, _O_READ)  # O_NOFOLLOW, O_NONBLOCK: in case it changed since the lstat
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symlink under O_NOFOLLOW; ENXIO: a FIFO without writer; EACCES ...
        raise StoreCorruptError(
            f"store {directory}: {what} cannot be opened as a plain file ({exc.strerror})"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise StoreCorruptError(f"store {directory}: {what} is not a regular file")
    return fd, st.st_size


def _read_exact(fd: int, size: int) -> bytearray:
    """Read up to ``size`` bytes from ``fd`` (fewer if the file is shorter); the fd stays open."""
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        while got < size:
            n = fh.readinto(view[got:])
            if not n:
                break
            got += n
    view.release()
    return data if got == size else data[:got]


def _check_manifest(manifest: Any, directory: Path) -> dict[str, Any]:
    """The schema of a manifest: every field engram reads, with its type; unknown fields are damage."""

    def bad(field: str, why: str = "is missing or malformed") -> StoreCorruptError:
        return StoreCorruptError(f"store {directory}: {MANIFEST_NAME} field {field!r} {why}")

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise StoreCorruptError(f"store {directory}: {MANIFEST_NAME} is not an {FORMAT_NAME} manifest")
    if "manifest_sha256" in manifest:  # first: a damaged version or kind is damage, not a newer store
        if not (isinstance(manifest["manifest_sha256"], str) and _SHA256_RE.match(manifest["manifest_sha256"])):
            raise bad("manifest_sha256")
        try:
            ok = manifest_checksum(manifest) == manifest["manifest_sha256"]
        except (ValueError, TypeError, RecursionError):  # NaN or nesting no writer produces
            ok = False
        if not ok:
            raise StoreCorruptError(f"store {directory}: {MANIFEST_NAME} fails its own sha256 checksum")
    for key, check in (
        ("format_version", lambda v: _is_int(v) and v >= 1),
        ("kind", lambda v: isinstance(v, str) and 0 < len(v) <= 200),
        ("version", lambda v: _is_int(v) and v >= 1),
        ("files", lambda v: isinstance(v, dict)),
    ):
        if not check(manifest.get(key)):
            raise bad(key)
    if manifest["format_version"] > FORMAT_VERSION:
        return manifest  # a newer container: read_store reports the version, not the fields it cannot know
    unknown = sorted(set(manifest) - _MANIFEST_KEYS)
    if unknown:
        raise bad(unknown[0], "is unknown")
    if "generation" in manifest and not (_is_int(manifest["generation"]) and manifest["generation"] >= 0):
        raise bad("generation")
    if not isinstance(manifest.get("meta", {}), dict):
        raise bad("meta")
    created = manifest.get("created", {})
    if not isinstance(created, dict) or not all(isinstance(v, str) for v in created.values()):
        raise bad("created")
    for fname, entry in manifest["files"].items():
        try:
            _check_name(fname)
        except StoreError:
            raise StoreCorruptError(
                f"store {directory}: {MANIFEST_NAME} names a file outside the store or with a bad name: {fname[:200]!r}"
            ) from None
        if (
            not isinstance(entry, dict)
            or set(entry) - _ENTRY_KEYS
            or not (isinstance(entry.get("sha256"), str) and _SHA256_RE.match(entry["sha256"]))
            or not (_is_int(entry.get("size")) and entry["size"] >= 0)
            or entry.get("type", "bytes") not in _FILE_TYPES
        ):
            raise StoreCorruptError(f"store {directory}: manifest entry for file {fname!r} is malformed")
    names = set(manifest["files"])
    for fname in names:  # "a" and "a/b" cannot both be files
        parts = fname.split("/")
        if any("/".join(parts[:i]) in names for i in range(1, len(parts))):
            raise StoreCorruptError(f"store {directory}: manifest lists {fname!r} inside another file")
    return manifest


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_NAME
    try:
        fd, size = _open_regular(path, MANIFEST_NAME, directory)
    except FileNotFoundError as exc:
        raise StoreCorruptError(f"store {directory}: {MANIFEST_NAME} is missing") from exc
    try:
        if size > _MAX_MANIFEST_BYTES:
            raise StoreCorruptError(f"store {directory}: {MANIFEST_NAME} is {size} bytes, too large to be a manifest")
        raw = bytes(_read_exact(fd, size))
    finally:
        os.close(fd)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise StoreCorruptError(f"store {directory}: {MANIFEST_NAME} is not valid JSON ({exc})") from None
    return _check_manifest(manifest, directory)


def store_kind(path: str | os.PathLike[str]) -> str:
    """What the store at ``path`` holds (its manifest's ``kind``), without reading its files.

    Raises:
        FileNotFoundError: no store at ``path``.
        StoreError: ``path`` is not an engram store, or its manifest is damaged.
    """
    p = Path(path)
    where = _resolve(p)
    if where is None:
        raise FileNotFoundError(f"no engram memory at {p}")
    return str(_read_manifest(where)["kind"])


def _resolve(path: Path) -> Path | None:
    """The directory holding the current save behind ``path``, recovering after a crash."""
    if path.is_symlink():
        target = path.parent / os.readlink(path)
        if (target / MANIFEST_NAME).is_file():
            return target
    elif path.is_dir():
        if os.path.lexists(path / MANIFEST_NAME):  # whatever it is, _read_manifest judges it
            return path
        if any(path.iterdir()):
            raise StoreError(f"{path} is a directory but not an engram store (no {MANIFEST_NAME})")
    # The path is missing (a crash between the two renames of a no-symlink
    # save) or dangling: every generation directory is complete, take the newest.
    gens = store_generations(path)
    if gens:
        return gens[max(gens)]
    return None


# ---------------------------------------------------------------------------
# writing


def write_store(
    path: str | os.PathLike[str],
    files: Mapping[str, bytes | np.ndarray | dict | list],
    *,
    kind: str,
    version: int,
    meta: Mapping[str, Any] | None = None,
    keep_previous: bool = True,
) -> Path:
    """Save ``files`` atomically as a store at ``path``.

    Args:
        path: the store's path (created, or replaced if it already holds a store).
        files: relative file name -> value: ``bytes`` (written as is, e.g. encoded
            ``.jpg`` / ``.png`` images), a numpy array (``.npy`` names) or a JSON
            ``dict`` / ``list`` (``.json`` names). Names may contain ``/``.
        kind: what the store holds, e.g. ``"scene_memory"``.
        version: the layout version of ``kind`` the caller writes (>= 1).
        meta: JSON metadata kept in the manifest (layer settings, counts, ...).
        keep_previous: keep the previous generation on disk until the next save,
            so readers that opened it just before this commit can finish.

    Returns:
        The generation directory now behind ``path``.

    Raises:
        StoreError: a bad name or value, or ``path`` is something other than a store;
            nothing on disk changes then.
    """
    if not isinstance(kind, str) or not kind:
        raise StoreError(f"kind must be a non-empty string, got {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StoreError(f"version must be a positive integer, got {version!r}")
    if not isinstance(files, Mapping):
        raise StoreError(f"files must be a mapping name -> value, got {type(files).__name__}")
    try:
        meta_dict = json.loads(json.dumps(dict(meta or {}), allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"store meta is not valid JSON data: {exc}") from exc

    # Check everything before touching the disk, so bad input changes nothing.
    encoded: dict[str, tuple[bytes | np.ndarray, str]] = {}
    for name, value in files.items():
        _check_name(name)
        encoded[name] = _encode(name, value)
    names = set(encoded)
    for name in names:  # "a" and "a/b" cannot both exist
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise StoreError(f"store file {name!r} is inside {'/'.join(parts[:i])!r}, which is a file")

    p = Path(os.path.abspath(os.fspath(path)))
    parent, name = p.parent, p.name
    if not name:
        raise StoreError(f"store path {path!r} has no name")
    parent.mkdir(parents=True, exist_ok=True)
    if p.exists() and not p.is_symlink() and not p.is_dir():
        raise StoreError(f"{p} exists and is not a store directory")

    with _locked(parent / f".{name}.engram-lock"):
        current = _resolve(p)  # raises when p is a non-store directory
        current_gen = _current_generation(current)
        _remove_stale(parent, name)
        existing = store_generations(p)
        generation = max([current_gen, *existing.keys()]) + 1

        tmp = parent / f"{_tmp_prefix(name)}{os.getpid()}-{secrets.token_hex(4)}"
        _checkpoint("mkdir_tmp")
        tmp.mkdir()
        try:
            entries = _write_files(tmp, encoded)
        except BaseException:
            _rmtree(tmp)  # e.g. a full disk: leave nothing behind, the previous save is untouched
            raise
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "version": version,
            "generation": generation,
            "created": {
                "engram_version": _engram_version(),
                "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "host": socket.gethostname(),
                "python": sys.version.split()[0],
                "numpy": np.__version__,
            },
            "meta": meta_dict,
            "files": entries,
        }
        manifest["manifest_sha256"] = manifest_checksum(manifest)
        _checkpoint("write:manifest")
        _write_durable(tmp / MANIFEST_NAME, json.dumps(manifest, indent=1).encode("utf-8"))
        _checkpoint("fsync_tmp")
        _fsync_dir(tmp)

        final = _gen_dir(parent, name, generation)
        _checkpoint("rename_tmp")
        os.rename(tmp, final)
        _checkpoint("fsync_parent")
        _fsync_dir(parent)
        _commit(p, final, current, current_gen)
        _checkpoint("committed")

        live = p.parent / os.readlink(p) if p.is_symlink() else p
        keep = {live}
        if keep_previous and current_gen > 0:
            keep.add(_gen_dir(parent, name, current_gen))
        for gen_path in store_generations(p).values():
            if gen_path not in keep:
                # Rename before deleting, so a half-deleted directory never
                # looks like a complete generation to a recovering reader.
                doomed = parent / f"{_tmp_prefix(name)}old-{secrets.token_hex(4)}"
                _checkpoint("retire_old")
                os.rename(gen_path, doomed)
                _checkpoint("remove_old")
                _rmtree(doomed)
        _fsync_dir(parent)
        _checkpoint("done")
        return live


def _write_files(tmp: Path, encoded: Mapping[str, tuple[bytes | np.ndarray, str]]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    subdirs: set[Path] = set()
    for fname in sorted(encoded):
        payload, typ = encoded[fname]
        target = tmp / fname
        if target.parent != tmp and target.parent not in subdirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            subdirs.update(d for d in target.parents if d != tmp and tmp in d.parents)
        _checkpoint(f"write:{fname}")
        sha, size = _write_payload(target, payload)
        entries[fname] = {"sha256": sha, "size": size, "type": typ}
    for d in sorted(subdirs, key=lambda d: len(d.parts), reverse=True):
        _fsync_dir(d)
    return entries


def _current_generation(current: Path | None) -> int:
    if current is None:
        return 0
    try:
        return int(_read_manifest(current).get("generation", 0))
    except StoreCorruptError:
        return 0


def _remove_stale(parent: Path, name: str) -> None:
    """Remove what killed writers left: temp directories and half-made links (we hold the lock)."""
    for entry in parent.iterdir():
        if entry.name.startswith(_tmp_prefix(name)) or entry.name.startswith(_link_prefix(name)):
            _checkpoint("remove_stale")
            _rmtree(entry)


def _commit(p: Path, final: Path, current: Path | None, current_gen: int) -> None:
    """Make ``p`` point at ``final`` with one atomic rename (or two, without symlinks)."""
    parent = p.parent
    if _symlinks_supported(parent):
        if p.is_dir() and not p.is_symlink():
            # A real directory from a no-symlink save: move it to its generation
            # name first; a crash right after leaves p missing and read_store
            # recovers the newest generation (the new one, already complete).
            if current == p:
                _checkpoint("park_current")
                os.rename(p, _gen_dir(parent, p.name, current_gen))
            else:
                p.rmdir()  # an empty directory (_resolve refuses any other)
            _fsync_dir(parent)
        link = parent / f"{_link_prefix(p.name)}{os.getpid()}-{secrets.token_hex(4)}"
        _checkpoint("symlink")
        os.symlink(final.name, link)
        _checkpoint("replace_link")
        os.replace(link, p)
        _checkpoint("fsync_commit")
        _fsync_dir(parent)
        return
    # No symlinks: p is a real directory; swap with two renames.
    if p.is_symlink():
        _checkpoint("unlink_link")
        p.unlink()
    elif p.is_dir():
        if current == p:
            _checkpoint("park_current")
            os.rename(p, _gen_dir(parent, p.name, current_gen))
        else:
            p.rmdir()
    _fsync_dir(parent)
    _checkpoint("promote_new")
    os.rename(final, p)
    _checkpoint("fsync_commit")
    _fsync_dir(parent)


# ---------------------------------------------------------------------------
# reading


@contextlib.contextmanager
def decoding(path: Any, what: str) -> Iterator[None]:
    """Turn a decoding failure of verified store files (a missing key, a wrong type) into one
    `StoreCorruptError` naming the store, for loaders of a store kind."""
    try:
        yield
    except StoreError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise StoreCorruptError(
            f"store {path}: its files do not decode as {what} ({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc


def _npy_from_buffer(data: bytes | bytearray) -> np.ndarray:
    """Parse .npy bytes; a bytearray is used in place (zero copy, writable)."""
    fmt = np.lib.format
    head = io.BytesIO(bytes(memoryview(data)[: min(len(data), 1 << 20)]))
    version = fmt.read_magic(head)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(head)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(head)
    else:  # other header versions (e.g. 3.0 for unicode field names): numpy's own reader
        return np.load(io.BytesIO(bytes(data)), allow_pickle=False)
    if dtype.hasobject:
        raise ValueError("object arrays are not allowed")
    count = int(np.prod(shape, dtype=np.int64))
    offset = head.tell()
    if offset + count * dtype.itemsize != len(data):
        raise ValueError(f"{len(data) - offset} data bytes for shape {shape} of {dtype}")
    if count == 0:
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    if not isinstance(data, bytearray):
        data = bytearray(data)
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


@dataclass(frozen=True)
class _Override:
    data: bytes
    typ: str


class StoreContents:
    """A store opened for reading: manifest facts plus lazy, checksum-verified file access.

    Files are read only when asked for; each read checks size and sha256 and
    raises `StoreCorruptError` naming the file when they do not match.

    Attributes:
        path: the generation directory read.
        kind: what the store holds.
        version: the layout version (after migrations, the one the caller supports).
        stored_version: the version written on disk.
        generation: the save counter of this store (1 for the first save).
        meta: the manifest's metadata.
        created: who wrote it: engram version, UTC time, host.
    """

    def __init__(
        self,
        path: Path,
        manifest: Mapping[str, Any],
        *,
        overrides: Mapping[str, _Override] | None = None,
        removed: Iterable[str] = (),
        version: int | None = None,
    ) -> None:
        self.path = path
        self._manifest = dict(manifest)
        self._overrides = dict(overrides or {})
        self._removed = frozenset(removed)
        self.kind: str = manifest["kind"]
        self.stored_version: int = int(manifest["version"])
        self.version: int = self.stored_version if version is None else version
        self.generation: int = int(manifest.get("generation", 0))
        self.meta: dict[str, Any] = dict(manifest.get("meta", {}))
        self.created: dict[str, Any] = dict(manifest.get("created", {}))

    # names -----------------------------------------------------------
    def names(self) -> list[str]:
        """All file names, sorted."""
        disk = set(self._manifest["files"]) - self._removed
        return sorted(disk | set(self._overrides))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._overrides or (name in self._manifest["files"] and name not in self._removed)
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # access ----------------------------------------------------------
    def _member(self, name: str) -> Path:
        """The path of file ``name``, checked to lie inside the store: every folder on the way a real
        folder (no link), the name relative and without '..' (checked with the manifest)."""
        _check_name(name)
        cur = self.path
        for part in name.split("/")[:-1]:
            cur = cur / part
            st = os.lstat(cur)  # FileNotFoundError: handled by the caller
            if not stat.S_ISDIR(st.st_mode):
                raise StoreCorruptError(f"store {self.path}: file {name!r} lies under {part!r}, which is not a folder")
        return cur / name.rsplit("/", 1)[-1]

    def check_files(self) -> None:
        """Check, without reading them, that every file is a regular file inside the store with the
        manifest's size (raises `StoreCorruptError` naming the first that is not)."""
        root = os.path.realpath(self.path)
        for name in self.names():
            if name in self._overrides:
                continue
            try:
                path = self._member(name)
                st = os.lstat(path)
            except FileNotFoundError:
                raise StoreCorruptError(f"store {self.path}: file {name!r} is missing") from None
            if not stat.S_ISREG(st.st_mode):
                raise StoreCorruptError(
                    f"store {self.path}: file {name!r} is not a regular file (a link, folder or device)"
                )
            if os.path.commonpath([root, os.path.realpath(path)]) != root:
                raise StoreCorruptError(f"store {self.path}: file {name!r} lies outside the store")
            want = self._manifest["files"][name]["size"]
            if st.st_size != want:
                raise StoreCorruptError(
                    f"store {self.path}: file {name!r} has {st.st_size} bytes, the manifest says {want}"
                )

    def _read_verified(self, name: str) -> bytes | bytearray:
        if name in self._overrides:
            return self._overrides[name].data
        if name not in self:
            raise KeyError(f"store {self.path} has no file {name!r} (files: {', '.join(self.names()) or 'none'})")
        entry = self._manifest["files"][name]
        try:
            fd, size = _open_regular(self._member(name), f"file {name!r}", self.path)
        except FileNotFoundError as exc:
            if not self.path.exists():
                raise StoreError(
                    f"store {self.path}: generation {self.generation} was removed by newer saves while it was "
                    "being read; open the store again"
                ) from exc
            raise StoreCorruptError(f"store {self.path}: file {name!r} is missing") from exc
        try:
            if size != entry["size"]:  # before reading: a huge or truncated file is not read at all
                raise StoreCorruptError(
                    f"store {self.path}: file {name!r} has {size} bytes, the manifest says {entry['size']}"
                )
            data = _read_exact(fd, size)
        finally:
            os.close(fd)
        if len(data) != size:
            raise StoreCorruptError(f"store {self.path}: file {name!r} has {len(data)} bytes, the manifest says {size}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise StoreCorruptError(f"store {self.path}: file {name!r} fails its sha256 checksum")
        return data

    def read_bytes(self, name: str) -> bytes:
        """The verified bytes of one file."""
        return bytes(self._read_verified(name))

    def _type(self, name: str) -> str:
        if name in self._overrides:
            return self._overrides[name].typ
        if name not in self:
            raise KeyError(f"store {self.path} has no file {name!r}")
        return str(self._manifest["files"][name].get("type", "bytes"))

    def array(self, name: str) -> np.ndarray:
        """A ``.npy`` file as a (writable) numpy array, without copying the file's data."""
        data = self._read_verified(name)
        try:
            return _npy_from_buffer(data)
        except (ValueError, OSError, EOFError) as exc:
            raise StoreCorruptError(f"store {self.path}: file {name!r} is not a valid .npy array ({exc})") from exc

    def json(self, name: str) -> Any:
        """A ``.json`` file decoded."""
        data = self.read_bytes(name)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorruptError(f"store {self.path}: file {name!r} is not valid JSON ({exc})") from exc

    def __getitem__(self, name: str) -> Any:
        """A file decoded by its type: array, JSON value or bytes."""
        typ = self._type(name)
        if typ == "npy":
            return self.array(name)
        if typ == "json":
            return self.json(name)
        return self.read_bytes(name)

    def verify(self) -> None:
        """Check every file on disk against the manifest (raises `StoreCorruptError` on the first bad one)."""
        for name in self.names():
            if name not in self._overrides:
                self.read_bytes(name)

    # migrations ------------------------------------------------------
    def replaced(
        self, files: Mapping[str, bytes | np.ndarray | dict | list] | None = None, *, removed: Iterable[str] = ()
    ) -> StoreContents:
        """New contents with some files replaced, added or removed (in memory; for migrations)."""
        overrides = dict(self._overrides)
        gone = set(self._removed)
        for name in removed:
            overrides.pop(name, None)
            gone.add(name)
        for name, value in (files or {}).items():
            _check_name(name)
            payload, typ = _encode(name, value)
            overrides[name] = _Override(_to_bytes(payload), typ)
            gone.discard(name)
        return StoreContents(self.path, self._manifest, overrides=overrides, removed=gone, version=self.version)

    def __repr__(self) -> str:
        return (
            f"StoreContents(kind={self.kind!r}, version={self.version}, generation={self.generation}, "
            f"files={len(self)}, path={str(self.path)!r})"
        )


def read_store(
    path: str | os.PathLike[str], *, kind: str, supported_versions: Iterable[int], verify: bool = False
) -> StoreContents:
    """Open the store at ``path`` for reading.

    Args:
        path: the path given to `write_store`.
        kind: the kind the caller expects; another kind raises `StoreError`.
        supported_versions: the layout versions the caller reads, e.g. ``range(1, 4)``.
            An older version is upgraded through `register_migration` functions.
        verify: check every file's checksum now instead of on first access.

    Every file the manifest names is checked before any is opened: a relative
    name without '..', a regular file (no link, FIFO or device) inside the
    store, of the size the manifest gives. The manifest carries its own sha256
    and every field of it is checked, so damage is one `StoreCorruptError`.

    Raises:
        StoreNotFoundError: no store at ``path`` (a `FileNotFoundError` too).
        StoreCorruptError: the manifest, a file's place or size, or (with ``verify``)
            a file's checksum is wrong.
        StoreVersionError: the store is newer than supported (the message names the
            engram version that wrote it) or older with no migration path.
    """
    supported = sorted({int(v) for v in supported_versions})
    if not supported:
        raise ValueError("supported_versions must name at least one version")
    p = Path(os.path.abspath(os.fspath(path)))
    directory = _resolve(p)
    if directory is None:
        raise StoreNotFoundError(f"no engram store at {p}")
    manifest = _read_manifest(directory)
    writer = manifest.get("created", {}).get("engram_version", "unknown")
    if manifest["format_version"] > FORMAT_VERSION:
        raise StoreVersionError(
            f"store {p} uses container format {manifest['format_version']}; engram {_engram_version()} reads "
            f"format {FORMAT_VERSION}: upgrade to engram >= {writer}"
        )
    if manifest["kind"] != kind:
        raise StoreError(f"store {p} holds a {manifest['kind']!r}, not a {kind!r}")
    contents = StoreContents(directory, manifest)
    contents.check_files()  # names, links, devices and sizes, before any file is opened
    version = contents.stored_version
    if version > supported[-1]:
        raise StoreVersionError(
            f"store {p} is {kind} version {version}, written by engram {writer}; engram {_engram_version()} "
            f"reads {kind} versions {supported[0]}..{supported[-1]}: upgrade to engram >= {writer}"
        )
    while version not in supported:
        fn = _MIGRATIONS.get((kind, version))
        if fn is None:
            raise StoreVersionError(
                f"store {p} is {kind} version {version}, written by engram {writer}; engram {_engram_version()} "
                f"reads versions {supported[0]}..{supported[-1]} and has no migration from version {version}: "
                f"load it with engram {writer}"
            )
        contents = fn(contents)
        if not isinstance(contents, StoreContents):
            raise TypeError(f"migration of {kind} from version {version} returned {type(contents).__name__}")
        version += 1
        contents.version = version
    if verify:
        contents.verify()
    return contents
