"""One source in, one committed memory and its catalogue rows out.

`SourceIndexer` is what each worker (a Ray actor, or this process) holds: it
loads the encoders once and then indexes sources one after another through
the public build APIs (`VideoQA.build_from_frames` for videos,
`SceneMemory.from_config` + `integrate` for RGB-D folders and bags), so new
detectors and memory settings reach the fleet through their configs.

A source is built in a private temp folder under ``<catalogue>/.tmp``: the
memory store, the snapshot JPEGs and ``records.parquet`` (one row per event,
keyframe and object, with the text embedding the catalogue searches). Then
``source.json`` is written and the folder is renamed to
``<catalogue>/sources/<source_id>`` in one ``rename(2)``. A worker killed
before the rename leaves only its temp folder, which the next run removes;
two attempts racing for the same source cannot both commit (renaming onto a
non-empty folder fails), so every source is in the catalogue at most once.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engram.fleet.sources import _URI, SourceSpec, fingerprint

__all__ = [
    "RECORD_COLUMNS",
    "SourceIndexer",
    "is_complete",
    "read_source_json",
    "settings_key",
]

# catalogue table columns, in order (embedding last)
RECORD_COLUMNS = (
    "source_id", "source_path", "source_kind", "kind", "record_id", "level",
    "start_s", "end_s", "abs_start_s", "x", "y", "z", "label", "text", "snapshot", "embedding",
)  # fmt: skip
# stream times above this are Unix time stamps (ROS bags recorded on a robot), below it stream seconds
_UNIX_EPOCH_MIN_S = 1e9
_PROGRESS_EVERY = 8


def settings_key(settings: dict[str, Any]) -> str:
    """A short hash of the build settings: a memory built with other settings is not reused."""
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_source_json(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "source.json").read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, spec: SourceSpec, key: str) -> bool:
    """The committed memory of ``spec`` at ``folder`` exists, with the current file and settings."""
    info = read_source_json(folder)
    if not info or info.get("status") != "complete" or info.get("settings_key") != key:
        return False
    return info.get("fingerprint") == fingerprint(spec.path) and (folder / "records.parquet").is_file()


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SourceIndexer:
    """Builds sources into a catalogue folder; holds the encoders for all of them.

    Args:
        settings: the fleet settings (engram/configs/fleet.yaml as plain dicts).
        catalogue_dir: the catalogue folder (shared storage on a cluster).
    """

    def __init__(self, settings: dict[str, Any], catalogue_dir: str | Path) -> None:
        self.settings = settings
        self.key = settings_key(settings)
        self.root = Path(catalogue_dir)
        self._encoders: dict[tuple[str, str, str], Any] = {}
        self.text_encoder = self.encoder("text", settings["text_encoder"])
        self.pid = os.getpid()

    def encoder(self, kind: str, name: Any, options: dict[str, Any] | None = None) -> Any:
        """The encoder ``name`` (built once per worker), or ``name`` itself when it is not a name."""
        if name is None or not isinstance(name, str):
            return name
        key = (kind, name, json.dumps(options or {}, sort_keys=True))
        if key not in self._encoders:
            from engram.perception import encoders

            build = encoders.build_image_encoder if kind == "image" else encoders.build_text_encoder
            self._encoders[key] = build(name, **(options or {}))
        return self._encoders[key]

    # -- one source -------------------------------------------------------------
    def index(self, spec: SourceSpec, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Build one source and commit it; never raises for a bad source.

        Returns:
            ``{"source_id", "status": "done" | "skipped" | "failed", "frames", "rows",
            "error", "wall_s", "cpu_s", "pid"}``.
        """
        t0, c0 = time.perf_counter(), time.process_time()
        out: dict[str, Any] = {
            "source_id": spec.source_id,
            "path": spec.path,
            "frames": 0,
            "rows": 0,
            "error": "",
            "pid": self.pid,
        }
        final = self.root / "sources" / spec.source_id
        tmp = None
        try:
            if spec.error:
                raise ValueError(spec.error)
            if is_complete(final, spec, self.key):
                out["status"] = "skipped"
                return out
            tmp = self.root / ".tmp" / f"{spec.source_id}.{os.getpid()}.{secrets.token_hex(4)}"
            tmp.mkdir(parents=True)
            local, cleanup = _localize(spec.path, tmp)
            try:
                frames, rows = self._build(spec, local, tmp, progress)
            finally:
                if cleanup is not None:
                    shutil.rmtree(cleanup, ignore_errors=True)
            info = {
                "status": "complete",
                "source": spec.to_json(),
                "fingerprint": fingerprint(spec.path),
                "settings_key": self.key,
                "frames": frames,
                "rows": rows,
                "wall_s": round(time.perf_counter() - t0, 3),
                "cpu_s": round(time.process_time() - c0, 3),
                "built_by_pid": self.pid,
                "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / "source.json").write_text(json.dumps(info, indent=1))
            _fsync_tree(tmp)
            out["status"] = self._commit(tmp, final, spec)
            tmp = None if out["status"] == "done" else tmp
            out.update(frames=frames, rows=rows)
        except Exception as exc:  # noqa: BLE001 - a bad source is recorded, the others go on
            out["status"] = "failed"
            out["error"] = f"{type(exc).__name__}: {exc}"
            out["traceback"] = traceback.format_exc(limit=6)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            out["wall_s"] = round(time.perf_counter() - t0, 3)
            out["cpu_s"] = round(time.process_time() - c0, 3)
        return out

    def _commit(self, tmp: Path, final: Path, spec: SourceSpec) -> str:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            if is_complete(final, spec, self.key):
                return "skipped"  # another attempt committed it first
            old = self.root / ".tmp" / f"stale-{spec.source_id}.{secrets.token_hex(4)}"
            os.rename(final, old)  # an outdated build: moved aside, then replaced
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if is_complete(final, spec, self.key):
                return "skipped"
            raise
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return "done"

    def _build(
        self,
        spec: SourceSpec,
        local: str,
        tmp: Path,
        progress: Callable[[int], None] | None,
    ) -> tuple[int, int]:
        counter = _Counter(progress)
        if spec.kind == "video":
            rows = self._build_video(spec, local, tmp, counter)
        elif spec.kind in ("rgbd", "bag"):
            rows = self._build_scene(spec, local, tmp, counter)
        else:
            raise ValueError(f"unknown source kind {spec.kind!r} for {spec.path}")
        counter.flush()
        _write_records(tmp / "records.parquet", rows, self.text_encoder)
        return counter.total, len(rows["kind"])

    def detector(self, name: Any, options: dict[str, Any] | None = None) -> Any:
        """The detector ``name`` (built once per worker), or ``name`` itself when it is not a name."""
        if not isinstance(name, str):
            return name
        key = ("detector", name, json.dumps(options or {}, sort_keys=True))
        if key not in self._encoders:
            from engram.perception.detectors import build_detector

            self._encoders[key] = build_detector(name, **(options or {}))
        return self._encoders[key]

    def _build_video(self, spec: SourceSpec, local: str, tmp: Path, counter: _Counter) -> dict[str, list]:
        import inspect

        from engram.qa.video import VideoQA
        from engram.sims.video import VideoSource

        v = dict(self.settings["video"])
        fps = float(v.get("sample_fps", 1.0))
        src = VideoSource(local, target_fps=fps, max_frames=v.get("max_frames"))
        # every setting the public build API takes goes through, so new build options reach the fleet
        accepted = inspect.signature(VideoQA.build_from_frames).parameters
        kw = {
            k: val for k, val in v.items() if k in accepted and k not in ("frames", "out_dir", "source_id", "total_s")
        }
        kw.update(resume=False, progress=False, sample_fps=fps)
        img_opts = dict(v.get("image_encoder_options") or {})
        kw["image_encoder"] = self.encoder("image", v.get("image_encoder"), img_opts)
        kw["text_encoder"] = self.encoder("text", v.get("text_encoder"))
        if v.get("detector") is not None and "detector" in accepted:
            kw["detector"] = self.detector(v["detector"], v.get("detector_options"))
        qa = VideoQA.build_from_frames(
            counter.wrap(iter(src)),
            tmp / "memory",
            source_id=spec.path,
            total_s=src.duration_s,
            **kw,
        )
        if not qa.report.complete:
            raise ValueError(f"{spec.path}: {qa.report.summary()}")
        return video_records(qa.memory, spec, tmp)

    def _build_scene(self, spec: SourceSpec, local: str, tmp: Path, counter: _Counter) -> dict[str, list]:
        import itertools

        from engram.jobs.mapping import open_source, resolve_floor
        from engram.memory.scene import SceneMemory

        s = dict(self.settings.get("scene") or {})
        source = open_source(local, "auto", int(s.get("stride", 1)), s.get("max_frames"))
        frames: Iterator = iter(source)
        try:
            first = next(frames)
        except StopIteration:
            raise ValueError(f"{spec.path} holds no frames") from None
        stream: Iterator = itertools.chain([first], frames)
        est = s.get("estimate_poses", "auto")
        if first.depth_m is not None and (est is True or (est == "auto" and first.world_from_camera is None)):
            from engram.perception.odometry import with_estimated_poses

            stream = with_estimated_poses(stream)
        cfg = {k: v for k, v in dict(self.settings["memory"]).items() if not k.startswith("_")}
        cfg["floor_z_m"], _ = resolve_floor(s.get("floor_z_m", "auto"), source)  # as `engram map` finds it
        for name, kind in (("image_encoder", "image"), ("text_encoder", "text")):
            if isinstance(cfg.get(name), str):
                cfg[name] = self.encoder(kind, cfg[name])
        if isinstance(cfg.get("detector"), str):  # loaded once per worker, like the encoders
            cfg["detector"] = self.detector(cfg["detector"], cfg.pop("detector_kwargs", None))
        mem = SceneMemory.from_config(cfg)
        for frame in counter.wrap(stream):
            mem.integrate(frame)
        mem.finalize()
        mem.save(str(tmp / "memory"))
        return scene_records(mem, spec, tmp)


class _Counter:
    """Counts frames as they stream and reports them every few frames."""

    def __init__(self, report: Callable[[int], None] | None) -> None:
        self.report = report
        self.total = 0
        self._pending = 0

    def wrap(self, frames: Iterator) -> Iterator:
        for f in frames:
            yield f
            self.total += 1
            self._pending += 1
            if self._pending >= _PROGRESS_EVERY:
                self.flush()

    def flush(self) -> None:
        if self.report is not None and self._pending:
            self.report(self._pending)
        self._pending = 0


def _localize(path: str, tmp: Path) -> tuple[str, Path | None]:
    """A local path for ``path``: itself, or an object-store file copied next to the build."""
    if not _URI.match(path):
        return path, None
    if path.startswith("file://"):
        return path[len("file://") :], None
    from engram._optional import require

    fs = require("pyarrow.fs", "reading sources from object storage")
    filesystem, inner = fs.FileSystem.from_uri(path)
    where = tmp.parent / f"download-{tmp.name}"
    where.mkdir(parents=True, exist_ok=True)
    local = where / Path(inner).name
    with filesystem.open_input_stream(inner) as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
    return str(local), where


# -- records ------------------------------------------------------------------------


def _empty_rows() -> dict[str, list]:
    return {c: [] for c in RECORD_COLUMNS if c != "embedding"}


def _add(rows: dict[str, list], spec: SourceSpec, kind: str, record_id: int, level: int, start_s: float, end_s: float,
         position: Any, label: str, text: str, snapshot: str) -> None:  # fmt: skip
    p = (np.nan, np.nan, np.nan) if position is None else tuple(float(v) for v in np.asarray(position, float)[:3])
    rows["source_id"].append(spec.source_id)
    rows["source_path"].append(spec.path)
    rows["source_kind"].append(spec.kind)
    rows["kind"].append(kind)
    rows["record_id"].append(int(record_id))
    rows["level"].append(int(level))
    rows["start_s"].append(float(start_s))
    rows["end_s"].append(float(end_s))
    rows["abs_start_s"].append(float(start_s) if start_s >= _UNIX_EPOCH_MIN_S else np.nan)
    rows["x"].append(p[0])
    rows["y"].append(p[1])
    rows["z"].append(p[2])
    rows["label"].append(label)
    rows["text"].append(text or label)
    rows["snapshot"].append(snapshot)


def _write_jpeg(tmp: Path, name: str, data: bytes | None, spec: SourceSpec) -> str:
    """Write a snapshot JPEG; returns its path relative to the catalogue ("" when there is none)."""
    if not data:
        return ""
    folder = tmp / "snapshots"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return f"sources/{spec.source_id}/snapshots/{name}"


def video_records(memory: Any, spec: SourceSpec, tmp: Path) -> dict[str, list]:
    """Rows for every event of a video memory, at every level; level-0 events carry their first keyframe."""
    rows = _empty_rows()
    for level in range(memory.num_levels):
        for n in memory.nodes(level):
            snap = (
                _write_jpeg(
                    tmp,
                    f"event-{n.node_id}.jpg",
                    n.keyframes[0] if n.keyframes else None,
                    spec,
                )
                if level == 0
                else ""
            )
            label = ", ".join(t for t, _ in n.labels[:3]) or ", ".join(t for t, _ in n.tags[:2])
            _add(
                rows,
                spec,
                "event",
                n.node_id,
                level,
                n.start_s,
                n.end_s,
                None,
                label,
                n.description,
                snap,
            )
    return rows


def _camera_positions(mem: Any) -> tuple[np.ndarray, np.ndarray]:
    if not mem.trajectory:
        return np.zeros(0), np.zeros((0, 3))
    times = np.array([t for _, t, _ in mem.trajectory], float)
    pos = np.array([m[:3, 3] for _, _, m in mem.trajectory], float)
    return times, pos


def scene_records(mem: Any, spec: SourceSpec, tmp: Path) -> dict[str, list]:
    """Rows for a scene memory: objects (centroid), keyframes (3D-Mem snapshots, camera position) and timeline events."""
    rows = _empty_rows()
    objs = mem.objects.objects
    snap_paths: dict[int, str] = {}
    for s in mem.snapshots.snapshots:
        path = _write_jpeg(tmp, f"keyframe-{s.frame_index}.jpg", s.image_jpeg, spec)
        snap_paths[s.frame_index] = path
        labels = sorted({objs[i].label for i in s.object_ids if i in objs})
        pose = np.asarray(getattr(s.world_from_camera, "matrix", s.world_from_camera), float)
        _add(rows, spec, "keyframe", s.frame_index, 0, s.timestamp_s, s.timestamp_s, pose[:3, 3], ", ".join(labels),
             "view of " + ", ".join(labels) if labels else "", path)  # fmt: skip
    for o in objs.values():
        snap = mem.snapshots.snapshot_of(o.id)
        st = mem.tracker.status.get(o.id)
        state = getattr(st, "state", "present")
        text = o.label if state == "present" else f"{o.label} ({state})"
        _add(rows, spec, "object", o.id, 0, o.first_seen_s, o.last_seen_s, o.centroid, o.label, text,
             snap_paths.get(snap.frame_index, "") if snap is not None else "")  # fmt: skip
    if mem.timeline is not None:
        times, pos = _camera_positions(mem)
        for level in range(mem.timeline.num_levels):
            for n in mem.timeline.nodes(level):
                where = None
                if len(times):
                    where = pos[int(np.argmin(np.abs(times - 0.5 * (n.start_s + n.end_s))))]
                label = ", ".join(t for t, _ in n.labels[:3])
                _add(
                    rows,
                    spec,
                    "event",
                    n.node_id,
                    level,
                    n.start_s,
                    n.end_s,
                    where,
                    label,
                    n.description,
                    "",
                )
    return rows


def _write_records(path: Path, rows: dict[str, list], text_encoder: Any) -> None:
    from engram._optional import require

    pa = require("pyarrow", "the fleet catalogue")
    pq = require("pyarrow.parquet", "the fleet catalogue")
    texts = rows["text"]
    dim = int(getattr(text_encoder, "dim", 0) or len(text_encoder.encode(["x"])[0]))
    emb = np.zeros((len(texts), dim), np.float32)
    for i in range(0, len(texts), 256):
        emb[i : i + 256] = np.asarray(text_encoder.encode(texts[i : i + 256]), np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb /= np.maximum(norms, 1e-12)
    table = records_table(rows, emb)
    pq.write_table(table, path)
    del pa


def records_table(rows: dict[str, list], embeddings: np.ndarray) -> Any:
    """The catalogue's Arrow table for rows (column lists) and their "N D" float32 embeddings."""
    import pyarrow as pa

    types = {"record_id": pa.int64(), "level": pa.int32()}
    floats = ("start_s", "end_s", "abs_start_s", "x", "y", "z")
    cols = {}
    for c in RECORD_COLUMNS[:-1]:
        t = types.get(c, pa.float64() if c in floats else pa.string())
        cols[c] = pa.array(rows[c], type=t)
    emb = np.ascontiguousarray(embeddings, np.float32)
    dim = emb.shape[1] if emb.ndim == 2 else 0
    cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), dim)
    return pa.table(cols)
