"""Memory snapshots (3D-Mem): the few frames that together show every object.

Objects are clustered by co-visibility. A cluster becomes a snapshot when one
frame sees every object of it; otherwise it is split and each part tried
again. Among the frames that see a whole cluster the choice prefers frames
that are already snapshots, then frames that see more objects, then frames
with a higher score. Every object belongs to exactly one snapshot, and a
snapshot's frame sees all of its objects.

The memory keeps a bounded cache of candidate frames: a frame whose objects
are a subset of another cached frame's (with no better score) can never be
the better choice and is not kept, and a small JPEG is stored only for frames
in the cache. Updates are incremental: only the snapshots that hold an object
seen again (or new objects) are re-clustered.

Frontier snapshots are the views toward unexplored space: for each frontier
region, the recent frame that looks at it best, or a pose to look from.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram.types import Pose

__all__ = ["Snapshot", "FrontierSnapshot", "SnapshotMemory"]


@dataclass
class Snapshot:
    """One memory snapshot: a frame and the objects it stands for.

    Attributes:
        frame_index: the frame (also the snapshot's id).
        timestamp_s: its time.
        world_from_camera: the camera pose of that frame.
        object_ids: the objects of this snapshot (all visible in the frame).
        image_jpeg: small JPEG of the frame (None if no image was given).
        score: the frame's score when it was added.
    """

    frame_index: int
    timestamp_s: float
    world_from_camera: Pose
    object_ids: tuple[int, ...]
    image_jpeg: bytes | None = None
    score: float = 1.0

    @property
    def id(self) -> int:
        return self.frame_index


@dataclass
class FrontierSnapshot:
    """A view toward one frontier region.

    Attributes:
        frontier_id: id of the frontier it looks at.
        center: "3" frontier centre (world, metres).
        direction: "3" unit direction from the known toward the unknown side.
        world_from_camera: pose of the best frame looking at it or, when no
            frame does, a proposed pose to look from.
        frame_index: the frame, or None for a proposed pose.
        timestamp_s: that frame's time, or None.
        image_jpeg: small JPEG of the frame when one was kept.
        view_score: how squarely the frame looks at the frontier (0 for a
            proposed pose).
    """

    frontier_id: int
    center: np.ndarray
    direction: np.ndarray
    world_from_camera: Pose
    frame_index: int | None = None
    timestamp_s: float | None = None
    image_jpeg: bytes | None = None
    view_score: float = 0.0

    @property
    def observed(self) -> bool:
        """True when the view comes from a real frame."""
        return self.frame_index is not None


@dataclass
class _Candidate:
    frame_index: int
    timestamp_s: float
    pose: Pose
    objects: frozenset[int]
    score: float
    jpeg: bytes | None = None


@dataclass
class _Recent:
    frame_index: int
    timestamp_s: float
    pose: Pose
    small_rgb: np.ndarray | None = field(default=None, repr=False)


def _encode_jpeg(rgb_small: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb_small[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV failure
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _look_from(eye: np.ndarray, forward: np.ndarray) -> Pose:
    """OpenCV camera at ``eye`` looking along ``forward`` in a z-up world."""
    z = forward / np.linalg.norm(forward)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return Pose.from_rt(np.stack([x, y, z], axis=1), eye)


class SnapshotMemory:
    """3D-Mem memory snapshots over a stream of frames.

    Args:
        max_candidates: bound on cached candidate frames. Snapshot frames, and
            frames that are the last to show some object, are never evicted,
            so the bound can be exceeded by those.
        split: how a cluster no frame covers is split: ``"cover"`` takes the
            objects of the frame that covers most of it as one part (greedy
            set cover, fewest snapshots); ``"kmeans"`` is 3D-Mem's spatial
            2-means on object positions (needs ``object_positions`` in
            `update`; falls back to ``"cover"`` without them).
        jpeg_max_side: longest side of stored images, pixels.
        jpeg_quality: JPEG quality 1-100.
        recent_frames: how many recent frames are kept (pose and a small
            image) as candidates for frontier views.
    """

    def __init__(
        self,
        *,
        max_candidates: int = 256,
        split: str = "cover",
        jpeg_max_side: int = 160,
        jpeg_quality: int = 80,
        recent_frames: int = 64,
    ) -> None:
        if max_candidates < 1:
            raise ValueError(f"max_candidates must be >= 1, got {max_candidates}")
        if split not in ("cover", "kmeans"):
            raise ValueError(f"split must be 'cover' or 'kmeans', got {split!r}")
        if jpeg_max_side < 8:
            raise ValueError(f"jpeg_max_side must be >= 8, got {jpeg_max_side}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
        if recent_frames < 0:
            raise ValueError(f"recent_frames must be >= 0, got {recent_frames}")
        self.max_candidates = int(max_candidates)
        self.split = split
        self.jpeg_max_side = int(jpeg_max_side)
        self.jpeg_quality = int(jpeg_quality)
        self._candidates: dict[int, _Candidate] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._snapshot_of: dict[int, int] = {}  # object id -> snapshot frame
        self._frames_of: dict[int, int] = {}  # object id -> number of candidates showing it
        self._dirty: set[int] = set()
        self._recent: deque[_Recent] = deque(maxlen=int(recent_frames)) if recent_frames else deque(maxlen=0)
        self.frontier_snapshots: list[FrontierSnapshot] = []

    # access ----------------------------------------------------------------
    @property
    def snapshots(self) -> list[Snapshot]:
        """Current snapshots, oldest frame first (call `update` first for the latest)."""
        return [self._snapshots[k] for k in sorted(self._snapshots)]

    def snapshot_of(self, object_id: int) -> Snapshot | None:
        """The snapshot holding this object (None if it has none yet)."""
        frame = self._snapshot_of.get(object_id)
        return None if frame is None else self._snapshots[frame]

    def get(self, snapshot_id: int) -> Snapshot:
        """Snapshot by id (its frame index); ValueError if there is none."""
        try:
            return self._snapshots[snapshot_id]
        except KeyError:
            raise ValueError(f"no snapshot with id {snapshot_id!r}") from None

    @property
    def object_ids(self) -> set[int]:
        """Objects seen in the cached frames."""
        return set(self._frames_of)

    @property
    def n_candidates(self) -> int:
        return len(self._candidates)

    def candidate_frames(self) -> list[int]:
        """Frame indices in the candidate cache, ascending."""
        return sorted(self._candidates)

    # input -------------------------------------------------------------------
    def add_frame(
        self,
        frame_index: int,
        timestamp_s: float,
        world_from_camera: Pose | np.ndarray,
        visible_object_ids: Iterable[int],
        rgb: np.ndarray | None = None,
        score: float = 1.0,
    ) -> bool:
        """Record which objects a frame sees.

        Args:
            frame_index: index of the frame (unique).
            timestamp_s: its time.
            world_from_camera: its camera pose.
            visible_object_ids: ids of the objects detected in it.
            rgb: "H W 3" uint8 image; a small JPEG is kept if the frame
                enters the candidate cache.
            score: frame confidence (e.g. summed detection scores); breaks
                ties between frames that see the same objects.

        Returns:
            True when the frame entered the candidate cache.
        """
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
            raise ValueError(f"frame_index must be a non-negative integer, got {frame_index!r}")
        frame_index = int(frame_index)
        ts = float(timestamp_s)
        if not math.isfinite(ts):
            raise ValueError(f"timestamp_s must be finite, got {timestamp_s!r}")
        if not math.isfinite(float(score)):
            raise ValueError(f"score must be finite, got {score!r}")
        pose = world_from_camera if isinstance(world_from_camera, Pose) else Pose(world_from_camera)
        try:
            objects = frozenset(int(o) for o in visible_object_ids)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"visible_object_ids must be integers: {exc}") from exc
        if rgb is not None:
            if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise ValueError("rgb must be an (H, W, 3) uint8 array")
        if frame_index in self._candidates:
            raise ValueError(f"frame {frame_index} was already added")

        small = None if rgb is None else _shrink(rgb, self.jpeg_max_side)
        if self._recent.maxlen:
            self._recent.append(_Recent(frame_index, ts, pose, small))
        if not objects:
            return False

        # a frame seeing a subset of another cached frame (no better score) is never the better choice
        dominated: list[int] = []
        for c in self._candidates.values():
            if objects <= c.objects and (objects != c.objects or c.score >= score):
                return False
            if c.objects <= objects and (c.objects != objects or score > c.score):
                if c.frame_index not in self._snapshots:
                    dominated.append(c.frame_index)
        for f in dominated:
            self._drop_candidate(f)
        jpeg = None if small is None else _encode_jpeg(small, self.jpeg_quality)
        self._candidates[frame_index] = _Candidate(frame_index, ts, pose, objects, float(score), jpeg)
        for o in objects:
            self._frames_of[o] = self._frames_of.get(o, 0) + 1
        self._dirty |= objects
        self._evict()
        return True

    def _drop_candidate(self, frame_index: int) -> None:
        c = self._candidates.pop(frame_index)
        for o in c.objects:
            n = self._frames_of[o] - 1
            if n:
                self._frames_of[o] = n
            else:
                del self._frames_of[o]

    def _evict(self) -> None:
        excess = len(self._candidates) - self.max_candidates
        if excess <= 0:
            return
        order = sorted(
            (c for c in self._candidates.values() if c.frame_index not in self._snapshots),
            key=lambda c: (len(c.objects), c.score, c.frame_index),
        )
        for c in order:
            if excess <= 0:
                break
            if all(self._frames_of[o] > 1 for o in c.objects):  # never the last view of an object
                self._drop_candidate(c.frame_index)
                excess -= 1

    # clustering -----------------------------------------------------------------
    def update(
        self, object_positions: Mapping[int, Sequence[float] | np.ndarray] | None = None, *, full: bool = False
    ) -> None:
        """Re-cluster the objects seen since the last update (all with ``full``).

        Args:
            object_positions: object id -> centroid, used by ``split="kmeans"``.
            full: re-cluster every object, not only the affected snapshots.
        """
        if full:
            work = set(self._frames_of)
            affected = set(self._snapshots)
        else:
            if not self._dirty:
                return
            work = {o for o in self._dirty if o in self._frames_of}
            affected = {self._snapshot_of[o] for o in work if o in self._snapshot_of}
            for f in affected:
                work |= set(self._snapshots[f].object_ids)
        self._dirty.clear()
        previous = set(self._snapshots)
        for f in affected:
            for o in self._snapshots.pop(f).object_ids:
                self._snapshot_of.pop(o, None)
        if not work:
            return
        ids = sorted(work)
        bit = {o: 1 << i for i, o in enumerate(ids)}
        masks: list[tuple[int, _Candidate]] = []
        for c in self._candidates.values():
            m = 0
            for o in c.objects:
                b = bit.get(o)
                if b:
                    m |= b
            if m:
                masks.append((m, c))

        def preference(c: _Candidate) -> tuple:
            return (
                c.frame_index in previous or c.frame_index in self._snapshots,
                len(c.objects),
                c.score,
                c.frame_index,
            )

        positions = None
        if self.split == "kmeans" and object_positions is not None:
            positions = {o: np.asarray(object_positions[o], dtype=np.float64) for o in ids if o in object_positions}

        stack = [sum(bit.values())]
        while stack:
            cluster = stack.pop()
            covering = [c for m, c in masks if m & cluster == cluster]
            if covering:
                self._assign(max(covering, key=preference), cluster, ids)
                continue
            parts = None
            if positions is not None:
                parts = self._kmeans_split(cluster, ids, positions)
            if parts is None:
                best_m, _ = max(masks, key=lambda mc: ((mc[0] & cluster).bit_count(), preference(mc[1])))
                part = best_m & cluster
                if part == 0:  # objects no cached frame shows: cannot be placed
                    continue
                parts = (part, cluster & ~part)
            stack.extend(p for p in parts if p)
        # frames that stopped being snapshots may now be dominated by another cached frame
        for f in previous - set(self._snapshots):
            cand = self._candidates.get(f)
            if cand is None:
                continue
            for d in self._candidates.values():
                if d is not cand and cand.objects <= d.objects and (cand.objects != d.objects or d.score >= cand.score):
                    self._drop_candidate(f)
                    break

    def _assign(self, c: _Candidate, cluster: int, ids: list[int]) -> None:
        members = [ids[i] for i in range(cluster.bit_length()) if cluster >> i & 1]
        snap = self._snapshots.get(c.frame_index)
        if snap is None:
            snap = Snapshot(c.frame_index, c.timestamp_s, c.pose, (), c.jpeg, c.score)
            self._snapshots[c.frame_index] = snap
        snap.object_ids = tuple(sorted(set(snap.object_ids) | set(members)))
        for o in members:
            self._snapshot_of[o] = c.frame_index

    @staticmethod
    def _kmeans_split(cluster: int, ids: list[int], positions: dict[int, np.ndarray]) -> tuple[int, int] | None:
        members = [i for i in range(cluster.bit_length()) if cluster >> i & 1 and ids[i] in positions]
        if len(members) < 2 or len(members) != bin(cluster).count("1"):
            return None
        x = np.stack([positions[ids[i]] for i in members])
        # deterministic 2-means: start from the two points farthest apart along the main axis
        centred = x - x.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0] if len(x) > 2 else centred[0]
        proj = centred @ axis
        centres = np.stack([x[np.argmin(proj)], x[np.argmax(proj)]])
        for _ in range(20):
            lab = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            if lab.min() == lab.max():
                return None
            new = np.stack([x[lab == k].mean(axis=0) for k in (0, 1)])
            if np.allclose(new, centres):
                break
            centres = new
        a = sum(1 << members[j] for j in range(len(members)) if lab[j] == 0)
        return a, cluster & ~a

    # object changes ---------------------------------------------------------------
    def remap_objects(self, mapping: Mapping[int, int]) -> None:
        """Apply object merges ({old id: surviving id}, e.g. from `ObjectMap.merge_duplicates`)."""
        self._rewrite(lambda o: mapping.get(o, o), set(mapping))

    def rename_object(self, old_id: int, new_id: int) -> None:
        """Object ``old_id`` is now known as ``new_id`` (one merge; see `remap_objects`)."""
        self.remap_objects({int(old_id): int(new_id)})

    def remove_objects(self, object_ids: Iterable[int]) -> None:
        """Forget objects (removed from the object map)."""
        gone = set(object_ids)
        self._rewrite(lambda o: None if o in gone else o, gone)

    def _rewrite(self, fn, touched: set[int]) -> None:
        if not touched & (set(self._frames_of) | set(self._snapshot_of)):
            return
        new_candidates: dict[int, _Candidate] = {}
        self._frames_of.clear()
        for f, c in self._candidates.items():
            objs = frozenset(x for x in (fn(o) for o in c.objects) if x is not None)
            if not objs and f not in self._snapshots:
                continue
            c.objects = objs
            new_candidates[f] = c
            for o in objs:
                self._frames_of[o] = self._frames_of.get(o, 0) + 1
        self._candidates = new_candidates
        # the snapshots holding touched objects are rebuilt by the next update
        for f in {self._snapshot_of[o] for o in touched if o in self._snapshot_of}:
            snap = self._snapshots[f]
            mapped = {x for x in (fn(o) for o in snap.object_ids) if x is not None}
            self._dirty |= mapped
            for o in snap.object_ids:
                self._snapshot_of.pop(o, None)
            snap.object_ids = ()
            del self._snapshots[f]
        for o in list(self._snapshot_of):
            if fn(o) is None:
                del self._snapshot_of[o]
        self._dirty = {x for x in (fn(o) for o in self._dirty) if x is not None}
        # dropped snapshot frames with no objects left leave the cache too
        for f in [f for f, c in self._candidates.items() if not c.objects]:
            del self._candidates[f]

    # frontier views ---------------------------------------------------------------
    def update_frontiers(
        self,
        frontiers: Sequence[Any],
        *,
        fov_deg: float = 70.0,
        max_distance_m: float = 6.0,
        standoff_m: float = 1.0,
        eye_height_m: float | None = None,
    ) -> list[FrontierSnapshot]:
        """One view toward each frontier.

        A frame qualifies when the frontier centre is inside its horizontal
        field of view, within ``max_distance_m``, and the camera faces the
        frontier's unknown side; the best one looks most squarely at it and
        from closest. Without one, a pose ``standoff_m`` back from the centre
        looking along the frontier's direction is proposed.

        Args:
            frontiers: objects with ``id``, ``center`` (3) and ``direction`` (3),
                as from `engram.memory.frontiers.detect_frontiers`.
            fov_deg: horizontal field of view of the camera.
            max_distance_m: farthest a frame may be from the frontier.
            standoff_m: distance of a proposed pose behind the frontier centre.
            eye_height_m: height of a proposed pose (default: the mean height
                of the recent frames, else the frontier centre's height).

        Returns:
            The frontier snapshots (also kept in ``frontier_snapshots``).
        """
        if not 0 < fov_deg < 180:
            raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
        views: list[tuple[int, float, Pose, np.ndarray | None, bytes | None]] = [
            (r.frame_index, r.timestamp_s, r.pose, r.small_rgb, None) for r in self._recent
        ]
        seen = {v[0] for v in views}
        views += [
            (c.frame_index, c.timestamp_s, c.pose, None, c.jpeg)
            for c in self._candidates.values()
            if c.frame_index not in seen
        ]
        if views:
            eyes = np.stack([v[2].translation for v in views])
            fwd = np.stack([v[2].rotation[:, 2] for v in views])
        half = math.radians(fov_deg) / 2.0
        out: list[FrontierSnapshot] = []
        for fr in frontiers:
            center = np.asarray(fr.center, dtype=np.float64).reshape(3)
            direction = np.asarray(fr.direction, dtype=np.float64).reshape(3)
            n = np.linalg.norm(direction)
            direction = direction / n if n > 0 else np.array([1.0, 0.0, 0.0])
            best = None
            if views:
                to_c = center - eyes
                to_c[:, 2] = 0.0
                dist = np.linalg.norm(to_c, axis=1)
                f2 = fwd.copy()
                f2[:, 2] = 0.0
                f2 /= np.maximum(np.linalg.norm(f2, axis=1, keepdims=True), 1e-9)
                cos_a = (to_c * f2).sum(1) / np.maximum(dist, 1e-9)
                faces = f2 @ direction
                ok = (dist <= max_distance_m) & (dist > 1e-6) & (cos_a >= math.cos(half)) & (faces > 0)
                if ok.any():
                    score = np.where(ok, cos_a * faces / (1.0 + 0.2 * dist), -np.inf)
                    best = int(np.argmax(score))
                    view_score = float(score[best])
            if best is not None:
                f, ts, pose, small, jpeg = views[best]
                if jpeg is None and small is not None:
                    jpeg = _encode_jpeg(small, self.jpeg_quality)
                out.append(FrontierSnapshot(int(fr.id), center, direction, pose, f, ts, jpeg, view_score))
            else:
                h = eye_height_m
                if h is None:
                    h = float(np.mean(eyes[:, 2])) if views else float(center[2])
                eye = center - standoff_m * direction
                eye[2] = h
                target = center + standoff_m * direction
                target[2] = h
                out.append(FrontierSnapshot(int(fr.id), center, direction, _look_from(eye, target - eye)))
        self.frontier_snapshots = out
        return out

    # persistence ----------------------------------------------------------------------
    def to_records(self) -> dict[str, list[dict[str, Any]]]:
        """Plain records of the candidates and snapshots, for saving."""
        return {
            "candidates": [
                {
                    "frame_index": c.frame_index,
                    "timestamp_s": c.timestamp_s,
                    "world_from_camera": np.array(c.pose.matrix),
                    "object_ids": sorted(c.objects),
                    "score": c.score,
                    "image_jpeg": c.jpeg,
                }
                for c in sorted(self._candidates.values(), key=lambda c: c.frame_index)
            ],
            "snapshots": [{"frame_index": s.frame_index, "object_ids": list(s.object_ids)} for s in self.snapshots],
        }

    @classmethod
    def from_records(cls, records: Mapping[str, Any], **kwargs: Any) -> SnapshotMemory:
        """Rebuild from `to_records` output (``kwargs`` go to the constructor)."""
        mem = cls(**kwargs)
        try:
            for r in records["candidates"]:
                f = int(r["frame_index"])
                c = _Candidate(
                    f,
                    float(r["timestamp_s"]),
                    Pose(r["world_from_camera"]),
                    frozenset(int(o) for o in r["object_ids"]),
                    float(r["score"]),
                    r.get("image_jpeg"),
                )
                mem._candidates[f] = c
                for o in c.objects:
                    mem._frames_of[o] = mem._frames_of.get(o, 0) + 1
            for r in records["snapshots"]:
                f = int(r["frame_index"])
                c = mem._candidates[f]
                objs = tuple(sorted(int(o) for o in r["object_ids"]))
                if not set(objs) <= c.objects:
                    raise ValueError(f"snapshot {f} lists objects its frame does not see")
                mem._snapshots[f] = Snapshot(f, c.timestamp_s, c.pose, objs, c.jpeg, c.score)
                for o in objs:
                    if o in mem._snapshot_of:
                        raise ValueError(f"object {o} is in two snapshots")
                    mem._snapshot_of[o] = f
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad snapshot records: {exc!r}") from exc
        mem._dirty = set(mem._frames_of) - set(mem._snapshot_of)
        return mem

    def digest(self) -> str:
        """Content hash of the snapshots (frames and their objects)."""
        h = hashlib.sha256()
        for s in self.snapshots:
            h.update(f"{s.frame_index}:{s.object_ids};".encode())
        return h.hexdigest()
