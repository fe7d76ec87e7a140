"""The dynamic half of the memory: what moves, where things are now, what changed.

Two parts, after Mem4D and KARMA:

* `TransientLayer` keeps the geometry of moving things (people, a door being
  opened) as time-stamped voxels whose weight halves every ``half_life_s``,
  so moving bodies never enter the static octree and fade from memory once
  they are gone.
* `ObjectTracker` follows every object of the object map through time: an
  object expected in view but not detected becomes *missing*; the same
  category seen again elsewhere makes it *moved*, with the times and both
  positions. Changes go to a long-term log and to a bounded short-term
  memory (`ChangeMemory`) that keeps the changes most worth remembering
  (recent, and often asked about).

Queries: `where_is` (now or at a past time), `last_seen`, `changes(since_s)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Set
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from engram.perception.geometry import project_points
from engram.perception.motion import DYNAMIC_CATEGORIES
from engram.types import CameraIntrinsics, Pose

__all__ = [
    "TransientLayer",
    "ObjectStatus",
    "ChangeEvent",
    "ChangeMemory",
    "ObjectTracker",
    "pack_keys",
    "unpack_keys",
]

# the building and things that move on their own: seeing them where an object was is not a replacement
_NOT_REPLACEMENTS = ("wall", "floor", "ceiling", "door", "window", "background", *sorted(DYNAMIC_CATEGORIES))

_BITS = 21
_OFF = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


_NO_VOTE = object()


def _vote_label(obj: Any) -> str:
    """The label an object's votes alone give (`MapObject.vote_label`): what matching compares, as
    association does; the geometric weights on the fused object only name it."""
    vote = getattr(obj, "vote_label", _NO_VOTE)  # (``label`` as the default would be worked out every time)
    return str(obj.label if vote is _NO_VOTE else vote)


def pack_keys(keys: np.ndarray) -> np.ndarray:
    """Integer voxel indices "N 3" -> one int64 per voxel (21 bits per axis)."""
    k = np.asarray(keys, dtype=np.int64) + _OFF
    if k.size and (k.min() < 0 or k.max() > _MASK):
        raise ValueError("voxel index out of the representable range (+-1M voxels per axis)")
    return (k[:, 0] << (2 * _BITS)) | (k[:, 1] << _BITS) | k[:, 2]


def unpack_keys(packed: np.ndarray) -> np.ndarray:
    p = np.asarray(packed, dtype=np.int64)
    out = np.empty((len(p), 3), np.int64)
    out[:, 0] = (p >> (2 * _BITS)) & _MASK
    out[:, 1] = (p >> _BITS) & _MASK
    out[:, 2] = p & _MASK
    return out - _OFF


class TransientLayer:
    """Time-stamped voxels of moving things, with exponential decay.

    Each voxel holds a weight (observations, decayed) and the time it was
    last seen. Decay is applied lazily at query time:
    ``w(t) = w * 0.5 ** ((t - t_last) / half_life_s)``.

    Args:
        voxel_size_m: voxel edge length.
        half_life_s: time for a weight to halve once nothing is seen there.
        min_weight: voxels whose decayed weight falls below this are dropped by `prune`.
        max_voxels: hard cap; the stalest voxels go first.
    """

    def __init__(
        self, voxel_size_m: float = 0.05, half_life_s: float = 5.0, min_weight: float = 0.05, max_voxels: int = 200_000
    ) -> None:
        if not voxel_size_m > 0 or not half_life_s > 0:
            raise ValueError(f"voxel_size_m and half_life_s must be positive, got {voxel_size_m}, {half_life_s}")
        self.voxel_size_m = float(voxel_size_m)
        self.half_life_s = float(half_life_s)
        self.min_weight = float(min_weight)
        self.max_voxels = int(max_voxels)
        self._keys = np.empty(0, np.int64)  # sorted packed keys
        self._w = np.empty(0, np.float32)
        self._t = np.empty(0, np.float64)

    def __len__(self) -> int:
        return len(self._keys)

    def _decayed(self, t_s: float) -> np.ndarray:
        dt = np.maximum(t_s - self._t, 0.0)
        return self._w * np.power(0.5, dt / self.half_life_s).astype(np.float32)

    def add(self, points_world: np.ndarray, t_s: float) -> None:
        """Record moving geometry seen at time ``t_s`` (one unit of weight per voxel per call)."""
        pts = np.asarray(points_world, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points_world must have shape (N, 3), got {pts.shape}")
        pts = pts[np.isfinite(pts).all(axis=1)]
        if not len(pts):
            return
        new = np.unique(pack_keys(np.floor(pts / self.voxel_size_m)))
        w = self._decayed(t_s)
        pos = np.searchsorted(self._keys, new)
        found = pos < len(self._keys)
        found[found] = self._keys[pos[found]] == new[found]
        w[pos[found]] += 1.0
        t = self._t.copy()
        t[pos[found]] = t_s
        # decay is folded into the stored weight, so the stored time is now t_s for every voxel
        t[:] = t_s
        fresh = new[~found]
        keys = np.concatenate([self._keys, fresh])
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._w = np.concatenate([w, np.ones(len(fresh), np.float32)])[order]
        self._t = np.concatenate([t, np.full(len(fresh), t_s)])[order]
        if len(self._keys) > self.max_voxels:
            self.prune(t_s)
            if len(self._keys) > self.max_voxels:
                keep = np.sort(np.argsort(self._w)[-self.max_voxels :])
                self._keys, self._w, self._t = self._keys[keep], self._w[keep], self._t[keep]

    def prune(self, t_s: float) -> int:
        """Drop voxels whose weight has decayed below ``min_weight``; returns how many."""
        keep = self._decayed(t_s) >= self.min_weight
        dropped = int((~keep).sum())
        self._keys, self._w, self._t = self._keys[keep], self._w[keep], self._t[keep]
        return dropped

    def centers(self, t_s: float, min_weight: float = 0.5) -> np.ndarray:
        """Centres of voxels with decayed weight >= ``min_weight`` at time ``t_s``."""
        keep = self._decayed(t_s) >= min_weight
        return (unpack_keys(self._keys[keep]) + 0.5) * self.voxel_size_m

    def weight_at(self, points: np.ndarray, t_s: float) -> np.ndarray:
        """Decayed weight of the voxels containing ``points`` (0 where none)."""
        q = pack_keys(np.floor(np.asarray(points, np.float64) / self.voxel_size_m))
        pos = np.searchsorted(self._keys, q)
        out = np.zeros(len(q), np.float32)
        ok = pos < len(self._keys)
        ok[ok] = self._keys[pos[ok]] == q[ok]
        out[ok] = self._decayed(t_s)[pos[ok]]
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"keys": self._keys.copy(), "weights": self._w.copy(), "times": self._t.copy()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._keys = np.asarray(arrays["keys"], np.int64)
        self._w = np.asarray(arrays["weights"], np.float32)
        self._t = np.asarray(arrays["times"], np.float64)


class TrackedObject(Protocol):
    """What the tracker needs of an object-map entry (it reads them, never writes them)."""

    @property
    def label(self) -> str: ...

    centroid: np.ndarray
    box_min: np.ndarray
    box_max: np.ndarray
    first_seen_s: float
    last_seen_s: float


@dataclass
class ObjectStatus:
    """Where an object stands in time.

    Attributes:
        state: "present", "missing" or "moved" (moved: seen again elsewhere after missing).
        misses: consecutive frames where it was expected in view but not detected.
        missing_since_s: when it was first not found (None while present).
        history: (t_s, x, y, z) positions in time order; a jump marks a move.
    """

    state: str = "present"
    misses: int = 0
    missing_since_s: float | None = None
    history: list[tuple[float, float, float, float]] = field(default_factory=list)

    def position_at(self, t_s: float | None) -> np.ndarray | None:
        if not self.history:
            return None
        if t_s is None:
            return np.array(self.history[-1][1:])
        times = [h[0] for h in self.history]
        i = int(np.searchsorted(times, t_s, side="right")) - 1
        if i < 0:
            return None
        return np.array(self.history[i][1:])


@dataclass
class ChangeEvent:
    """One change in the scene.

    Attributes:
        kind: "moved", "appeared" or "disappeared".
        object_id: the object-map id (stable across a move).
        label: the object's category.
        t_s: when the change was noticed.
        from_xyz / to_xyz: positions before / after (None where not applicable).
        last_seen_before_s: for moves and disappearances, when it was last seen in the old place.
        inferred: for moves, True when the old place was not seen empty: the object
            appeared in space mapped empty before, and it is the only object of its
            category that could have come from elsewhere.
    """

    kind: str
    object_id: int
    label: str
    t_s: float
    from_xyz: tuple[float, float, float] | None = None
    to_xyz: tuple[float, float, float] | None = None
    last_seen_before_s: float | None = None
    inferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChangeMemory:
    """A short-term memory of recent changes with a fixed capacity (KARMA's short-term memory).

    When full, the entry with the lowest retention score goes:
    ``recency + relevance`` where recency decays with ``half_life_s`` since the
    change and relevance grows each time the change is returned by a query.
    """

    def __init__(self, capacity: int = 64, half_life_s: float = 600.0, relevance_weight: float = 0.5) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.half_life_s = float(half_life_s)
        self.relevance_weight = float(relevance_weight)
        self.entries: list[ChangeEvent] = []
        self.hits: list[int] = []

    def _scores(self, now_s: float) -> np.ndarray:
        t = np.array([e.t_s for e in self.entries])
        recency = np.power(0.5, np.maximum(now_s - t, 0.0) / self.half_life_s)
        return recency + self.relevance_weight * np.log1p(np.array(self.hits, dtype=np.float64))

    def add(self, event: ChangeEvent) -> None:
        if len(self.entries) >= self.capacity:
            worst = int(np.argmin(self._scores(event.t_s)))
            del self.entries[worst]
            del self.hits[worst]
        self.entries.append(event)
        self.hits.append(0)

    def recall(self, since_s: float | None = None, label: str | None = None) -> list[ChangeEvent]:
        out = []
        for i, e in enumerate(self.entries):
            if (since_s is None or e.t_s >= since_s) and (label is None or e.label == label):
                self.hits[i] += 1
                out.append(e)
        return out

    def __len__(self) -> int:
        return len(self.entries)


def _xyz(p) -> tuple[float, float, float]:
    return float(p[0]), float(p[1]), float(p[2])


def _centroid(obj: TrackedObject) -> np.ndarray:
    return np.asarray(obj.centroid, dtype=np.float64)


def _boxes_apart(a: TrackedObject, b: TrackedObject, gap_m: float = 0.0) -> bool:
    """True when the axis-aligned boxes of ``a`` and ``b`` are separated by more than ``gap_m``."""
    lo_a, hi_a = np.asarray(a.box_min, np.float64), np.asarray(a.box_max, np.float64)
    lo_b, hi_b = np.asarray(b.box_min, np.float64), np.asarray(b.box_max, np.float64)
    return bool(np.any((lo_a > hi_b + gap_m) | (lo_b > hi_a + gap_m)))


def _chroma(obj: TrackedObject) -> np.ndarray | None:
    """Mean chromaticity (r, g) / (r + g + b) of an object's stored colours, None without colours.

    Chromaticity rather than RGB, so the same surface under brighter or dimmer
    shading gives about the same value.
    """
    c = getattr(obj, "colors", None)
    if c is None or len(c) == 0:
        return None
    rgb = np.asarray(c, np.float64).reshape(-1, 3) + 1.0
    ch = rgb / rgb.sum(axis=1, keepdims=True)
    return ch[:, :2].mean(axis=0)


def _extent_m(obj: TrackedObject) -> float:
    return float(np.max(np.asarray(obj.box_max, np.float64) - np.asarray(obj.box_min, np.float64)))


@functools.lru_cache(maxsize=4096)
def _spread(n: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)`` (as ``np.linspace`` rounds them down); read-only, shared."""
    idx = np.linspace(0, n - 1, k).astype(np.int64)
    idx.flags.writeable = False
    return idx


class ObjectTracker:
    """Object states over time: present, missing, moved; positions at any time; change events.

    The tracker never decides association itself: the object map fuses
    detections, and the tracker is told which objects were detected in each
    frame and which were newly created. It then

    1. counts a miss for every known object that should have been visible
       (inside the image, in range, not occluded by nearer depth, big enough
       to detect) but was not detected; ``miss_frames`` misses make it missing.
       With depth, a miss needs evidence of absence: the depth at the
       object's remembered surface points lies behind them (`seen_through`),
       so an object that is there but was not detected is not counted;
    2. pairs a missing object with a newly created object of the same
       category whose box lies apart from the old one: that is a move, and
       the caller merges the new object's id into the old one's, so the
       object keeps one identity;
    3. infers a move when the old place was not seen again: a new object
       that *appeared* in space mapped empty before, with exactly one other
       object of its category (no larger than ``max_inferred_extent_m``) not
       seen since before it appeared. The event is marked ``inferred``.

    Where several missing objects (or several newcomers) could pair, a
    clearly closest colour decides, else the most recent one.

    Args:
        miss_frames: expected-but-unseen frames before "missing".
        min_move_m: re-sightings closer than this to the old place are not moves.
        occlusion_margin_m: measured depth this much nearer than the object means it is hidden.
        min_extent_px: objects projecting smaller than this are not expected to be detected.
        max_range_m: objects farther than this are not expected to be detected.
        through_margin_m: depth this much beyond a remembered surface point sees through it.
        max_inferred_extent_m: larger objects (furniture) are never inferred to have moved
            without their old place being seen empty.
        min_size_ratio: a move keeps an object's size: the smaller of the old and the new
            object's longest sides is at least this share of the larger.
    """

    def __init__(
        self,
        miss_frames: int = 2,
        min_move_m: float = 0.25,
        occlusion_margin_m: float = 0.25,
        min_extent_px: float = 8.0,
        max_range_m: float = 4.0,
        short_term_capacity: int = 64,
        through_margin_m: float = 0.04,
        max_inferred_extent_m: float = 0.8,
        min_size_ratio: float = 1 / 3,
    ) -> None:
        self.miss_frames = int(miss_frames)
        self.min_move_m = float(min_move_m)
        self.occlusion_margin_m = float(occlusion_margin_m)
        self.min_extent_px = float(min_extent_px)
        self.max_range_m = float(max_range_m)
        self.through_margin_m = float(through_margin_m)
        self.max_inferred_extent_m = float(max_inferred_extent_m)
        if not 0.0 <= min_size_ratio <= 1.0:
            raise ValueError(f"min_size_ratio must be in [0, 1], got {min_size_ratio}")
        self.min_size_ratio = float(min_size_ratio)
        self.colour_match = 0.03  # chromaticity distance under which two colours are the same
        self.status: dict[int, ObjectStatus] = {}
        self.events: list[ChangeEvent] = []
        self.recent = ChangeMemory(capacity=short_term_capacity)
        self.aliases: dict[int, int] = {}  # merged-away id -> surviving id

    # bookkeeping ---------------------------------------------------------
    def resolve(self, object_id: int) -> int:
        seen = set()
        while object_id in self.aliases and object_id not in seen:
            seen.add(object_id)
            object_id = self.aliases[object_id]
        return object_id

    def _log(self, event: ChangeEvent) -> None:
        self.events.append(event)
        self.recent.add(event)

    def expected_visible(
        self,
        objects: Mapping[int, TrackedObject],
        world_from_camera: Pose,
        intrinsics: CameraIntrinsics,
        depth_m: np.ndarray | None,
        margin_px: int = 8,
    ) -> list[int]:
        """Ids of objects that a detector should see in this view."""
        status = self.status
        ids = [i for i in objects if (st := status.get(i)) is None or st.state != "missing"]
        if not ids:
            return []
        objs = [objects[i] for i in ids]
        cents = np.array([o.centroid for o in objs], dtype=np.float64).reshape(-1, 3)
        ext = (
            np.array([o.box_max for o in objs], dtype=np.float64)
            - np.array([o.box_min for o in objs], dtype=np.float64)
        ).max(axis=1)
        cam = world_from_camera.inverse().transform_points(cents)
        uv, z, vis = project_points(cam, intrinsics)
        with np.errstate(invalid="ignore", divide="ignore"):
            size_px = intrinsics.fx * ext / np.maximum(z, 1e-6)
            vis &= (z < self.max_range_m) & (size_px >= self.min_extent_px)
            vis &= (uv[:, 0] >= margin_px) & (uv[:, 0] < intrinsics.width - margin_px)
            vis &= (uv[:, 1] >= margin_px) & (uv[:, 1] < intrinsics.height - margin_px)
        if depth_m is not None and vis.any():
            u = np.clip(np.round(uv[vis, 0]).astype(int), 0, intrinsics.width - 1)
            v = np.clip(np.round(uv[vis, 1]).astype(int), 0, intrinsics.height - 1)
            measured = depth_m[v, u].astype(np.float64)
            # unknown depth at the centre: we cannot tell, so do not expect a detection
            ok = np.isfinite(measured) & (measured > 0) & (measured >= z[vis] - self.occlusion_margin_m)
            sub = np.flatnonzero(vis)
            vis[sub[~ok]] = False
        return [i for i, v in zip(ids, vis) if v]

    def seen_through(
        self,
        objects: Mapping[int, TrackedObject],
        ids: list[int],
        world_from_camera: Pose,
        intrinsics: CameraIntrinsics,
        depth_m: np.ndarray,
        instances: np.ndarray | None = None,
        labels: dict[int, str] | None = None,
        ignore_labels: tuple[str, ...] = _NOT_REPLACEMENTS,
        max_points: int = 64,
        min_points: int = 3,
        min_fraction: float = 0.5,
        replaced_margin_m: float = 0.3,
    ) -> set[int]:
        """Ids among ``ids`` whose remembered place the depth shows empty, or taken by something else.

        Up to ``max_points`` of each object's stored surface points are
        projected into the depth image. A point is *seen through* where the
        measured depth lies more than ``through_margin_m`` behind it, and
        *present* where it lies within that margin (points hidden behind
        nearer depth say nothing). With an instance image, a point whose
        pixel shows an object of another category at most
        ``replaced_margin_m`` in front of it (or within the margin) is
        *replaced*: something else stands there now (``ignore_labels``, the
        building and moving categories, never replace). An object is absent when
        at least ``min_points`` points, and at least ``min_fraction`` of the
        present, replaced and seen-through ones, are seen through or replaced.
        Objects without stored points are judged at their centroid.
        """
        if not ids:
            return set()
        counts, pts = [], []
        for i in ids:
            stored = getattr(objects[i], "points", None)
            p = np.zeros((0, 3)) if stored is None else np.asarray(stored)
            if p.ndim != 2 or len(p) == 0:
                p = _centroid(objects[i])[None]
            elif len(p) > max_points:
                p = p[_spread(len(p), max_points)]  # the points read, then converted (not all of them)
            pts.append(p)
            counts.append(len(p))
        pts_w = np.concatenate(pts).astype(np.float64, copy=False)
        own = np.repeat(np.arange(len(ids), dtype=np.int64), counts)
        cam = world_from_camera.inverse().transform_points(pts_w)
        uv, z, vis = project_points(cam, intrinsics)
        # a visible point rounds to a pixel inside the image; the others read pixel (0, 0), masked below
        uvi = np.rint(np.where(vis[:, None], uv, 0.0)).astype(np.int64)
        u, v = uvi[:, 0], uvi[:, 1]
        measured = np.where(vis, depth_m[v, u], np.nan).astype(np.float64)
        with np.errstate(invalid="ignore"):
            valid = vis & np.isfinite(measured) & (measured > 0)
            through = valid & (measured > z + self.through_margin_m)
            present = valid & (np.abs(measured - z) <= self.through_margin_m)
            near_front = valid & (measured >= z - replaced_margin_m) & ~through
        if instances is not None and labels and near_front.any():
            # labels as small integer codes: one lookup per instance id and per object, not per point
            code: dict[str, int] = {"": 0}
            pix_ids, pix_inv = np.unique(instances[v[near_front], u[near_front]], return_inverse=True)
            pix_code = np.array([code.setdefault(labels.get(int(i), ""), len(code)) for i in pix_ids.tolist()])
            own_code = np.array([code.setdefault(_vote_label(objects[i]), len(code)) for i in ids])
            ignored = np.array([lab in ignore_labels for lab in code], dtype=bool)  # code order = insertion order
            pix_label = pix_code[pix_inv.reshape(-1)]
            other = (pix_label != 0) & (pix_label != own_code[own[near_front]]) & ~ignored[pix_label]
            replaced = np.zeros(len(own), bool)
            replaced[np.flatnonzero(near_front)[other]] = True
            through |= replaced
            present &= ~replaced
        n_through = np.bincount(own[through], minlength=len(ids))
        n_present = np.bincount(own[present], minlength=len(ids))
        absent = (n_through >= np.minimum(min_points, np.bincount(own, minlength=len(ids)))) & (n_through > 0)
        absent &= n_through >= min_fraction * (n_through + n_present)
        return {i for i, a in zip(ids, absent) if a}

    def observe(
        self,
        t_s: float,
        objects: Mapping[int, TrackedObject],
        detected_ids: set[int],
        new_ids: set[int],
        expected_ids: list[int],
        new_in_known_space: set[int] | None = None,
    ) -> list[tuple[int, int]]:
        """Update states after one frame.

        Args:
            t_s: frame time.
            objects: the object map's objects after the frame was fused.
            detected_ids: objects detected in this frame.
            new_ids: objects created in this frame.
            expected_ids: objects that should have been detected (see `expected_visible`).
            new_in_known_space: new objects whose place was already mapped free
                or occupied before (they appeared, rather than were first seen).

        Returns:
            (old_id, new_id) pairs the caller must merge (new into old): moves.
        """
        merges: list[tuple[int, int]] = []
        for oid in detected_ids:
            st = self.status.setdefault(oid, ObjectStatus())
            c = _centroid(objects[oid])
            if not st.history or np.linalg.norm(np.asarray(st.history[-1][1:]) - c) > 0.05:
                st.history.append((t_s, float(c[0]), float(c[1]), float(c[2])))
            if st.state == "missing":
                # found again where it was: it was hidden, not gone
                st.state = "present"
                st.missing_since_s = None
            st.misses = 0
        for oid in expected_ids:
            if oid in detected_ids or oid not in objects:
                continue
            st = self.status.setdefault(oid, ObjectStatus())
            st.misses += 1
            if st.misses >= self.miss_frames and st.state != "missing":
                st.state = "missing"
                st.missing_since_s = t_s
                merges.extend(self._pair_missing(oid, objects, t_s, taken={m[1] for m in merges}))
                if not any(m[0] == oid for m in merges):
                    self._log(
                        ChangeEvent(
                            "disappeared",
                            oid,
                            objects[oid].label,
                            t_s,
                            from_xyz=_xyz(_centroid(objects[oid])),
                            last_seen_before_s=float(objects[oid].last_seen_s),
                        )
                    )
        for nid in sorted(new_ids):
            if nid not in objects or any(nid == m[1] for m in merges):
                continue
            old = self._find_missing(objects[nid], objects, exclude=nid)
            if old is not None:
                merges.append((old, nid))
                self._log_move(old, nid, objects, t_s)
                continue
            if not (new_in_known_space and nid in new_in_known_space):
                continue
            old = self._only_candidate(objects[nid], objects, exclude=detected_ids | {nid})
            if old is not None:
                merges.append((old, nid))
                self._log_move(old, nid, objects, t_s, inferred=True)
            else:
                self._log(ChangeEvent("appeared", nid, objects[nid].label, t_s, to_xyz=_xyz(_centroid(objects[nid]))))
        return merges

    def _is_elsewhere(self, old: TrackedObject, new: TrackedObject) -> bool:
        """Could ``new`` be ``old`` after a move: far enough, not overlapping the old box, and about
        its size (a first view may show part of it, but a fragment a tenth of a chair's size that
        a segmenter cut off somewhere is not the chair, moved)."""
        sizes = sorted((_extent_m(old), _extent_m(new)))
        return bool(
            np.linalg.norm(_centroid(old) - _centroid(new)) >= self.min_move_m
            and _boxes_apart(old, new)
            and sizes[0] >= self.min_size_ratio * sizes[1]
        )

    def _only_candidate(
        self, new_obj: TrackedObject, objects: Mapping[int, TrackedObject], exclude: set[int]
    ) -> int | None:
        """The one object of ``new_obj``'s category that may have moved to where it appeared."""
        new_label = _vote_label(new_obj)
        cands = [
            i
            for i, o in objects.items()
            if i not in exclude
            and _vote_label(o) == new_label
            and self.status.get(i, ObjectStatus()).state != "missing"
            and o.last_seen_s < new_obj.first_seen_s
            and _extent_m(o) <= self.max_inferred_extent_m
        ]
        if not cands or not all(self._is_elsewhere(objects[i], new_obj) for i in cands):
            return None
        # with several of its kind, nothing says which one moved (colours of identical
        # objects differ only by shading): wait for an old place to be seen empty
        return cands[0] if len(cands) == 1 else None

    def _by_colour(self, ref_obj: TrackedObject, cands: list[int], objects: Mapping[int, TrackedObject]) -> int | None:
        """The candidate whose colour is clearly the closest to ``ref_obj``'s, or None."""
        ref = _chroma(ref_obj)
        if ref is None or not cands:
            return None
        dist = []
        for i in cands:
            c = _chroma(objects[i])
            dist.append(np.inf if c is None else float(np.linalg.norm(c - ref)))
        order = np.argsort(dist)
        best = dist[order[0]]
        second = dist[order[1]] if len(cands) > 1 else np.inf
        if best <= self.colour_match and second >= 2.5 * best + self.colour_match:
            return cands[int(order[0])]
        return None

    def _find_missing(self, new_obj: TrackedObject, objects: Mapping[int, TrackedObject], exclude: int) -> int | None:
        new_label = _vote_label(new_obj)
        cands = [
            oid
            for oid, st in self.status.items()
            if oid != exclude
            and st.state == "missing"
            and oid in objects
            and _vote_label(objects[oid]) == new_label
            and self._is_elsewhere(objects[oid], new_obj)
        ]
        if len(cands) > 1:
            by_colour = self._by_colour(new_obj, cands, objects)
            if by_colour is not None:
                return by_colour
        # otherwise the one that went missing last
        return max(cands, key=lambda i: self.status[i].missing_since_s or -math.inf, default=None)

    def _pair_missing(
        self, oid: int, objects: Mapping[int, TrackedObject], t_s: float, taken: Set[int] = frozenset()
    ) -> list[tuple[int, int]]:
        """A newly missing object may already have been seen elsewhere: an object of
        its category first seen after it was last seen in the old place, and not ``taken``
        (paired with another object that went missing in the same frame)."""
        old = objects[oid]
        old_label = _vote_label(old)
        cands = [
            (o.first_seen_s, i)
            for i, o in objects.items()
            if i != oid
            and i not in taken
            and _vote_label(o) == old_label
            and o.first_seen_s > old.last_seen_s
            and self.status.get(i, ObjectStatus()).state != "missing"
            and self._is_elsewhere(old, o)
        ]
        if not cands:
            return []
        nid = self._by_colour(old, [i for _, i in cands], objects) if len(cands) > 1 else None
        if nid is None:
            _, nid = max(cands)  # the latest newcomer
        self._log_move(oid, nid, objects, t_s)
        return [(oid, nid)]

    def _log_move(
        self, old: int, new: int, objects: Mapping[int, TrackedObject], t_s: float, inferred: bool = False
    ) -> None:
        st = self.status.setdefault(old, ObjectStatus())
        to = _centroid(objects[new])
        self._log(
            ChangeEvent(
                "moved",
                old,
                objects[old].label,
                t_s,
                from_xyz=_xyz(_centroid(objects[old])),
                to_xyz=_xyz(to),
                last_seen_before_s=float(objects[old].last_seen_s),
                inferred=inferred,
            )
        )
        st.state = "moved"
        st.misses = 0
        st.missing_since_s = None
        new_hist = self.status.pop(new, ObjectStatus()).history
        st.history.extend(new_hist or [(t_s, *_xyz(to))])
        st.history.sort(key=lambda h: h[0])
        self.aliases[new] = old

    # queries ---------------------------------------------------------------
    def where_is(self, object_id: int, at_s: float | None = None) -> np.ndarray | None:
        st = self.status.get(self.resolve(object_id))
        return None if st is None else st.position_at(at_s)

    def changes(self, since_s: float | None = None, kinds: tuple[str, ...] | None = None) -> list[ChangeEvent]:
        return [e for e in self.events if (since_s is None or e.t_s >= since_s) and (kinds is None or e.kind in kinds)]

    def forget(self, object_id: int) -> None:
        self.status.pop(object_id, None)

    # persistence -------------------------------------------------------------
    def to_records(self) -> dict[str, Any]:
        return {
            "status": {str(k): asdict(v) for k, v in self.status.items()},
            "events": [e.to_dict() for e in self.events],
            "recent": [e.to_dict() for e in self.recent.entries],
            "recent_hits": list(self.recent.hits),
            "aliases": {str(k): v for k, v in self.aliases.items()},
        }

    def load_records(self, rec: dict[str, Any]) -> None:
        def ev(d: dict) -> ChangeEvent:
            d = dict(d)
            for key in ("from_xyz", "to_xyz"):
                if d.get(key) is not None:
                    d[key] = tuple(d[key])
            return ChangeEvent(**d)

        self.status = {}
        for k, v in rec.get("status", {}).items():
            v = dict(v)
            v["history"] = [tuple(h) for h in v.get("history", [])]
            self.status[int(k)] = ObjectStatus(**v)
        self.events = [ev(e) for e in rec.get("events", [])]
        self.recent.entries = [ev(e) for e in rec.get("recent", [])]
        self.recent.hits = list(rec.get("recent_hits", [0] * len(self.recent.entries)))
        self.aliases = {int(k): int(v) for k, v in rec.get("aliases", {}).items()}
