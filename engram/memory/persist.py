"""Saving and loading a whole SceneMemory through the one store format (`engram.memory.store`).

Layout of a scene store (kind ``scene_memory``, version 1):

    scene.json              settings and counters
    octree.npy ...          the octree's arrays (``octree/<name>.npy``)
    objects.json + .npz     object records (arrays in the .npz)
    snapshots.json + .npz   snapshot candidates and snapshots (images in the .npz)
    places.json + .npz      the place graph
    dynamic.json            object states and change events
    transient.npz           the transient layer
    trajectory.npz          camera poses
    timeline/...            the episodic timeline's own files

Records with arrays are split into JSON (structure) and one .npz per layer
(arrays and bytes), so a save writes a handful of files, not one per object.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from engram.memory.store import StoreCorruptError, StoreError, read_store, write_store

__all__ = ["save_scene", "load_scene", "SCENE_KIND", "SCENE_VERSION"]

SCENE_KIND = "scene_memory"
# 2: settings gained room_context and object records room_weights. A version 1 store reads as it
# is (the setting takes its default, its objects have no room context until the next finalize);
# an engram that reads only version 1 refuses a version 2 store by name instead of failing on
# the unknown setting.
SCENE_VERSION = 2
SCENE_READS = (1, 2)


def _pack(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Replace arrays and bytes in a nested structure with references into ``arrays``."""
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, (bytes, bytearray)):
        key = f"a{len(arrays)}"
        arrays[key] = np.frombuffer(bytes(obj), dtype=np.uint8)
        return {"__bytes__": key}
    if isinstance(obj, dict):
        if any(not isinstance(k, str) for k in obj):
            return {"__dict__": [[_pack(k, arrays), _pack(v, arrays)] for k, v in obj.items()]}
        return {k: _pack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return {"__set__": [_pack(v, arrays) for v in sorted(obj)]}
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "matrix") and hasattr(obj, "inverse"):  # a Pose
        return {"__pose__": np.asarray(obj.matrix).tolist()}
    return obj


def _unpack(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj and len(obj) == 1:
            return arrays[obj["__array__"]]
        if "__bytes__" in obj and len(obj) == 1:
            return arrays[obj["__bytes__"]].tobytes()
        if "__set__" in obj and len(obj) == 1:
            return {_unpack(v, arrays) for v in obj["__set__"]}
        if "__dict__" in obj and len(obj) == 1:
            return {_unpack(k, arrays): _unpack(v, arrays) for k, v in obj["__dict__"]}
        if "__pose__" in obj and len(obj) == 1:
            from engram.types import Pose

            return Pose(np.array(obj["__pose__"]))
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
    return buf.getvalue()


def _npz_load(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _layer(files: dict[str, Any], name: str, records: Any) -> None:
    arrays: dict[str, np.ndarray] = {}
    files[f"{name}.json"] = {"records": _pack(records, arrays)}
    files[f"{name}.npz"] = _npz_bytes(arrays)


def _read_layer(contents, name: str) -> Any:
    arrays = _npz_load(contents.read_bytes(f"{name}.npz"))
    return _unpack(contents.json(f"{name}.json")["records"], arrays)


def save_scene(memory, path: str) -> None:
    """Write ``memory`` atomically to ``path`` (the caller holds the memory's read lock)."""
    files: dict[str, Any] = {}
    files["scene.json"] = {
        "config": memory.config,
        "frames_seen": memory.frames_seen,
        "frames_mapped": memory.frames_mapped,
        "last_timestamp_s": memory.last_timestamp_s,
        "first_timestamp_s": memory.first_timestamp_s,
        # the floor the detector found (the objects' geometric prior measures heights from it)
        "objects_floor_z_m": memory.objects.floor_z_m,
    }
    for name, arr in memory.octree.to_arrays().items():
        files[f"octree/{name}.npy"] = np.asarray(arr)
    _layer(files, "objects", memory.objects.to_records())
    _layer(files, "snapshots", memory.snapshots.to_records())
    _layer(files, "places", memory.places.to_records())
    files["dynamic.json"] = memory.tracker.to_records()
    files["transient.npz"] = _npz_bytes(memory.transient.to_arrays())
    traj = memory.trajectory
    files["trajectory.npz"] = _npz_bytes(
        {
            "index": np.array([i for i, _, _ in traj], np.int64),
            "t_s": np.array([t for _, t, _ in traj], np.float64),
            "world_from_camera": np.array([m for _, _, m in traj], np.float64).reshape(-1, 4, 4),
        }
    )
    meta: dict[str, Any] = {"stats": dict(memory.stats())}
    if memory.timeline is not None:
        tfiles, tmeta = memory.timeline.to_files()
        for name, value in tfiles.items():
            files[f"timeline/{name}"] = value
        meta["timeline"] = tmeta
    write_store(path, files, kind=SCENE_KIND, version=SCENE_VERSION, meta=meta)


class _Prefixed(Mapping):
    """A read-only view of the store files under one folder, named without the folder."""

    def __init__(self, contents, prefix: str) -> None:
        self._c = contents
        self._p = prefix

    def __getitem__(self, name: str) -> Any:
        return self._c[self._p + name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (self._p + name) in self._c

    def keys(self):
        return [n[len(self._p) :] for n in self._c.names() if n.startswith(self._p)]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default


def load_scene(path: str, scene_cls: type):
    """Read a memory saved with `save_scene`; checksum or version problems name the file.

    Args:
        path: the store folder.
        scene_cls: the class to build (`SceneMemory` or a subclass), called with the saved
            settings; passed in because this module sits below `engram.memory.scene`.

    Raises:
        StoreNotFoundError: no store at ``path``.
        StoreError: any problem with what is there (a `StoreCorruptError` when the
            files pass their checksums but do not decode as a scene memory).
    """
    from engram.memory.store import decoding

    try:
        with decoding(path, "a scene memory"):
            return _load_scene(path, scene_cls)
    except StoreError:
        raise
    except ValueError as exc:  # a setting out of range: SceneMemory(**config) refuses it
        raise StoreCorruptError(f"store {path}: its files do not decode as a scene memory ({str(exc)[:300]})") from exc


def _load_scene(path: str, scene_cls: type):
    from engram.memory.dynamic import TransientLayer
    from engram.memory.objects import ObjectMap
    from engram.memory.octree import OccupancyOctree
    from engram.memory.places import PlaceGraph
    from engram.memory.snapshots import SnapshotMemory

    c = read_store(path, kind=SCENE_KIND, supported_versions=SCENE_READS)
    scene = c.json("scene.json")
    cfg = dict(scene["config"])
    cfg.pop("timeline", None)
    want_timeline = "timeline/nodes.json" in c
    mem = scene_cls(**cfg, timeline=False)
    octree_arrays = {n[len("octree/") : -len(".npy")]: c.array(n) for n in c.names() if n.startswith("octree/")}
    mem.octree = OccupancyOctree.from_arrays(octree_arrays)
    mem.objects = ObjectMap.from_records(_read_layer(c, "objects"), voxel_size_m=mem.voxel_size_m)
    floor = scene.get("objects_floor_z_m")  # absent in stores written before it was kept
    if floor is not None:
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not math.isfinite(floor):
            raise StoreCorruptError(f"store {path}: scene.json objects_floor_z_m={floor!r} is not a height in metres")
        mem.objects.floor_z_m = float(floor)
    mem.snapshots = SnapshotMemory.from_records(_read_layer(c, "snapshots"))
    mem.places = PlaceGraph.from_records(_read_layer(c, "places"))
    mem.tracker.load_records(c.json("dynamic.json"))
    mem.transient = TransientLayer(mem.voxel_size_m, half_life_s=cfg.get("transient_half_life_s", 5.0))
    mem.transient.load_arrays(_npz_load(c.read_bytes("transient.npz")))
    tr = _npz_load(c.read_bytes("trajectory.npz"))
    mem.trajectory = [(int(i), float(t), m) for i, t, m in zip(tr["index"], tr["t_s"], tr["world_from_camera"])]
    mem.frames_seen = int(scene["frames_seen"])
    mem.frames_mapped = int(scene["frames_mapped"])
    from engram.types import MAX_TIMESTAMP_S

    for key in ("first_timestamp_s", "last_timestamp_s"):
        t = scene[key]
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not abs(t) <= MAX_TIMESTAMP_S):
            raise StoreCorruptError(f"store {path}: scene.json {key}={t!r} is not a plausible time in seconds")
    mem.last_timestamp_s = scene["last_timestamp_s"]
    mem.first_timestamp_s = scene["first_timestamp_s"]
    if want_timeline:
        from engram.memory.episodic import EpisodicMemory

        mem.timeline = EpisodicMemory.from_files(
            _Prefixed(c, "timeline/"), c.meta.get("timeline", {}), text_encoder=mem.text_encoder, where=str(path)
        )
        mem.config["timeline"] = True
    if mem.frames_mapped:
        from engram.memory.frontiers import detect_frontiers

        mem.frontiers = detect_frontiers(mem.octree, floor_z_m=mem.floor_z_m)
    return mem
