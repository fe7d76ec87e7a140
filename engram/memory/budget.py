"""Memory budgets: keep a `SceneMemory` bounded over a day-long run.

A `MemoryBudget` caps every layer that grows with time (voxels, objects,
snapshots, timeline nodes, transient voxels, places, the trajectory and the
per-record frame lists) and says what to give up first when a cap is reached:

* octree: voxels far from where the agent has been lately go first, free
  voxels before occupied ones; occupied voxels within ``keep_radius_m`` of the
  agent's current position are never forgotten;
* objects: one-off detections seen long ago are pruned, duplicates merged,
  then the objects seen least recently (and least often) go;
* snapshots: the candidate cache is capped and, over budget, the snapshots are
  re-clustered (redundant ones merge);
* timeline: adjacent similar events are consolidated (`EpisodicMemory.consolidate`);
* transient layer: decayed voxels are pruned, then the stalest;
* places: the places farthest from the agent go (never the one it is at);
* trajectory: old poses are thinned (every other one), recent ones kept whole.

`SceneMemory(budget=MemoryBudget())` enforces it every ``every_frames``
frames from inside `integrate` (under the memory's write lock). The default
caps keep a day-long run at 30 frames/s bounded to a few hundred megabytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engram.memory.octree import OCCUPIED

__all__ = ["MemoryBudget"]

# Eviction goes down to this share of a cap, so the next frames do not trigger it again at once.
_HYSTERESIS = 0.9


def _check_cap(name: str, value: Any, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} or None, got {value!r}")
    return int(value)


def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Like `_check_cap`, for settings that cannot be None."""
    checked = _check_cap(name, value, minimum)
    if checked is None:
        raise ValueError(f"{name} must be an integer >= {minimum}, got None")
    return checked


def _check_positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


@dataclass
class MemoryBudget:
    """Caps on what a `SceneMemory` keeps, and the eviction policies that hold them.

    Every cap may be None (no cap on that layer).

    Args:
        max_voxels: known octree voxels (free and occupied).
        max_objects: objects of the `ObjectMap`.
        max_snapshots: memory snapshots; over it the snapshots are re-clustered.
        max_snapshot_candidates: cached candidate frames of the snapshot memory.
        max_timeline_nodes: nodes of the episodic timeline.
        max_transient_voxels: voxels of the transient (dynamic) layer.
        max_places: nodes of the place graph.
        max_trajectory_poses: poses kept in ``memory.trajectory``.
        max_frames_per_record: frame indices kept per object, per place and
            in the place graph's frame index (the most recent ones).
        max_change_events: change events (moved / appeared / disappeared) kept.
        keep_radius_m: occupied voxels this close to the agent's current
            position are never evicted.
        recent_poses: how many recent trajectory poses count as "where the agent
            has been lately" for voxel eviction.
        object_stale_s: objects detected fewer than ``object_min_detections``
            times and not seen for this long are pruned at every enforcement.
        object_min_detections: see ``object_stale_s``.
        every_frames: `SceneMemory` enforces the budget every this many frames.
    """

    max_voxels: int | None = 3_000_000
    max_objects: int | None = 5_000
    max_snapshots: int | None = 1_000
    max_snapshot_candidates: int | None = 256
    max_timeline_nodes: int | None = 5_000
    max_transient_voxels: int | None = 100_000
    max_places: int | None = 5_000
    max_trajectory_poses: int | None = 20_000
    max_frames_per_record: int | None = 256
    max_change_events: int | None = 10_000
    keep_radius_m: float = 3.0
    recent_poses: int = 256
    object_stale_s: float = 300.0
    object_min_detections: int = 2
    every_frames: int = 50

    def __post_init__(self) -> None:
        self.max_voxels = _check_cap("max_voxels", self.max_voxels)
        self.max_objects = _check_cap("max_objects", self.max_objects, 0)
        self.max_snapshots = _check_cap("max_snapshots", self.max_snapshots)
        self.max_snapshot_candidates = _check_cap("max_snapshot_candidates", self.max_snapshot_candidates)
        self.max_timeline_nodes = _check_cap("max_timeline_nodes", self.max_timeline_nodes)
        self.max_transient_voxels = _check_cap("max_transient_voxels", self.max_transient_voxels)
        self.max_places = _check_cap("max_places", self.max_places)
        self.max_trajectory_poses = _check_cap("max_trajectory_poses", self.max_trajectory_poses, 2)
        self.max_frames_per_record = _check_cap("max_frames_per_record", self.max_frames_per_record)
        self.max_change_events = _check_cap("max_change_events", self.max_change_events, 0)
        self.keep_radius_m = _check_positive("keep_radius_m", self.keep_radius_m)
        self.object_stale_s = _check_positive("object_stale_s", self.object_stale_s)
        self.recent_poses = _check_count("recent_poses", self.recent_poses)
        self.object_min_detections = _check_count("object_min_detections", self.object_min_detections)
        self.every_frames = _check_count("every_frames", self.every_frames)

    def to_dict(self) -> dict[str, Any]:
        """Plain keyword arguments (``MemoryBudget(**b.to_dict()) == b``)."""
        return asdict(self)

    # ------------------------------------------------------------------
    def enforce(self, memory: Any) -> dict[str, int]:
        """Bring every layer of ``memory`` within the budget.

        Call it from the thread that writes the memory: `SceneMemory` calls it
        inside `integrate`, under its write lock. It never takes the lock
        itself.

        Args:
            memory: a `SceneMemory`.

        Returns:
            How much was evicted per layer: ``voxels``, ``objects``,
            ``snapshots``, ``snapshot_candidates``, ``timeline_nodes``,
            ``transient_voxels``, ``places``, ``trajectory_poses``,
            ``frame_refs`` (frame indices dropped from per-record lists) and
            ``change_events``.
        """
        now_s = memory.last_timestamp_s
        agent_xyz = self._agent_position(memory)
        out = {
            "voxels": self._enforce_octree(memory, agent_xyz),
            "objects": self._enforce_objects(memory, now_s),
            "snapshots": 0,
            "snapshot_candidates": 0,
            "timeline_nodes": 0,
            "transient_voxels": 0,
            "places": self._enforce_places(memory, agent_xyz),
            "trajectory_poses": self._enforce_trajectory(memory),
            "frame_refs": 0,
            "change_events": self._enforce_events(memory),
        }
        out["snapshots"], out["snapshot_candidates"] = self._enforce_snapshots(memory)
        out["timeline_nodes"] = self._enforce_timeline(memory)
        out["transient_voxels"] = self._enforce_transient(memory, now_s)
        out["frame_refs"] = self._enforce_frame_lists(memory)
        return out

    # ------------------------------------------------------------------
    @staticmethod
    def _agent_position(memory: Any) -> np.ndarray | None:
        if not memory.trajectory:
            return None
        return np.asarray(memory.trajectory[-1][2], np.float64)[:3, 3].copy()

    def _recent_positions(self, memory: Any) -> np.ndarray:
        recent = memory.trajectory[-self.recent_poses :]
        if not recent:
            return np.zeros((0, 3))
        step = max(1, len(recent) // 32)  # a few anchors are enough: consecutive poses are close
        pos = np.array([m[:3, 3] for _, _, m in recent[::step]] + [recent[-1][2][:3, 3]], np.float64)
        return pos

    def _enforce_octree(self, memory: Any, agent_xyz: np.ndarray | None) -> int:
        tree = memory.octree
        if self.max_voxels is None or len(tree) <= self.max_voxels:
            return 0
        n_drop = len(tree) - int(self.max_voxels * _HYSTERESIS)
        centers = (tree.keys().astype(np.float64) + 0.5) * tree.voxel_size_m
        occupied = tree.state(centers) == OCCUPIED
        anchors = self._recent_positions(memory)
        dist_recent = np.full(len(centers), np.inf)
        dist_agent = np.full(len(centers), np.inf)
        chunk = 1 << 18
        for s in range(0, len(centers), chunk):  # bounded temporaries, a handful of chunks
            c = centers[s : s + chunk]
            if len(anchors):
                d2 = ((c[:, None, :] - anchors[None, :, :]) ** 2).sum(axis=2)
                dist_recent[s : s + chunk] = np.sqrt(d2.min(axis=1))
            if agent_xyz is not None:
                dist_agent[s : s + chunk] = np.linalg.norm(c - agent_xyz, axis=1)
        protected = occupied & (dist_agent <= self.keep_radius_m)
        near = dist_agent <= self.keep_radius_m
        # eviction order: far free, far occupied, near free (farthest first within each); never near occupied
        tier = np.where(near, 2, np.where(occupied, 1, 0))
        candidates = np.flatnonzero(~protected)
        order = candidates[np.lexsort((-dist_recent[candidates], tier[candidates]))]
        drop = order[:n_drop]
        if len(drop) == 0:
            return 0
        before = len(tree)
        tree.remove_points(centers[drop])
        self._compact_octree(tree)
        return before - len(tree)

    @staticmethod
    def _compact_octree(tree: Any) -> None:
        """Rebuild the voxel storage when most of its bricks are empty, so a long run's storage stays bounded."""
        n_bricks = int(getattr(tree, "_n_bricks", 0))
        if n_bricks == 0 or len(tree) >= 0.25 * n_bricks * 64:
            return
        fresh = type(tree).from_arrays(tree.to_arrays())
        # swap the storage in place: every holder of ``memory.octree`` keeps seeing the same map
        for name in ("_shift", "_tkeys", "_trows", "_pool", "_n_bricks", "_n_known"):
            setattr(tree, name, getattr(fresh, name))
        tree._touch()

    def _forget_object_ids(self, memory: Any, ids: list[int]) -> None:
        if not ids:
            return
        memory.snapshots.remove_objects(ids)
        for oid in ids:
            memory.places.remove_object(oid)
            memory.tracker.forget(oid)

    def _enforce_objects(self, memory: Any, now_s: float | None) -> int:
        objs = memory.objects
        removed: list[int] = []
        if now_s is not None:
            removed += objs.prune(
                min_detections=self.object_min_detections, seen_before_s=float(now_s) - self.object_stale_s
            )
            self._forget_object_ids(memory, removed)
        if self.max_objects is None or len(objs) <= self.max_objects:
            return len(removed)
        merged = objs.merge_duplicates()
        if merged:
            memory.snapshots.remap_objects({gone: keep for keep, gone in merged})
            for keep, gone in merged:
                memory.places.rename_object(gone, keep)
                memory.tracker.aliases[gone] = keep
                memory.tracker.forget(gone)
        n = len(merged)
        excess = len(objs) - int(self.max_objects * _HYSTERESIS)
        if excess > 0:
            ranked = sorted(objs.objects.values(), key=lambda o: (o.last_seen_s, o.n_detections, o.id))
            gone = [o.id for o in ranked[:excess]]
            for oid in gone:
                objs.remove(oid)
            self._forget_object_ids(memory, gone)
            removed += gone
        return len(removed) + n

    def _enforce_snapshots(self, memory: Any) -> tuple[int, int]:
        snaps = memory.snapshots
        n_cand = 0
        if self.max_snapshot_candidates is not None:
            snaps.max_candidates = min(snaps.max_candidates, self.max_snapshot_candidates)
            before = snaps.n_candidates
            snaps._evict()  # the snapshot memory's own policy: never the last view of an object
            n_cand = before - snaps.n_candidates
        n_snap = 0
        if self.max_snapshots is not None and len(snaps.snapshots) > self.max_snapshots:
            before = len(snaps.snapshots)
            snaps.update({i: o.centroid for i, o in memory.objects.objects.items()}, full=True)
            n_snap = max(0, before - len(snaps.snapshots))
        return n_snap, n_cand

    def _enforce_timeline(self, memory: Any) -> int:
        tl = memory.timeline
        if tl is None or self.max_timeline_nodes is None:
            return 0
        cap = max(self.max_timeline_nodes, tl.num_levels)
        tl.max_nodes = cap  # the timeline then consolidates itself as frames arrive
        before = len(tl)
        if before > cap:
            tl.consolidate(max(tl.num_levels, int(cap * _HYSTERESIS)))
        return before - len(tl)

    def _enforce_transient(self, memory: Any, now_s: float | None) -> int:
        layer = memory.transient
        before = len(layer)
        if self.max_transient_voxels is not None:
            layer.max_voxels = min(layer.max_voxels, self.max_transient_voxels)
        if now_s is not None:
            layer.prune(float(now_s))
        if self.max_transient_voxels is not None and len(layer) > self.max_transient_voxels:
            # stalest first (the layer's own order of weights after decay)
            keep = np.sort(np.argsort(layer._w)[-self.max_transient_voxels :])
            layer._keys, layer._w, layer._t = layer._keys[keep], layer._w[keep], layer._t[keep]
        return before - len(layer)

    def _enforce_places(self, memory: Any, agent_xyz: np.ndarray | None) -> int:
        places = memory.places
        if self.max_places is None or len(places) <= self.max_places:
            return 0
        n_drop = len(places) - int(self.max_places * _HYSTERESIS)
        ids = np.asarray(places._ids)
        xy = np.asarray(places._xy)
        if agent_xyz is None:
            dist = np.zeros(len(ids))
        else:
            dist = np.linalg.norm(xy - agent_xyz[:2], axis=1)
        last = getattr(places, "_last_place", None)
        keep_mask = ids == (last if last is not None else -1)  # the place the agent is at stays
        order = np.flatnonzero(~keep_mask)[np.argsort(-dist[~keep_mask], kind="stable")]
        gone = [int(i) for i in ids[order[:n_drop]]]
        if not gone:
            return 0
        places.graph.remove_nodes_from(gone)
        keep = ~np.isin(ids, gone)
        places._ids, places._xy = ids[keep], xy[keep]
        gone_set = set(gone)
        places._place_of_frame = {f: p for f, p in places._place_of_frame.items() if p not in gone_set}
        return len(gone)

    def _enforce_trajectory(self, memory: Any) -> int:
        cap = self.max_trajectory_poses
        traj = memory.trajectory
        if cap is None or len(traj) <= cap:
            return 0
        before = len(traj)
        while len(traj) > cap:
            # thin the older half (every other pose); the recent half stays whole
            split = len(traj) - cap // 2
            traj = traj[:split:2] + traj[split:]
        memory.trajectory = traj
        return before - len(traj)

    def _enforce_events(self, memory: Any) -> int:
        cap = self.max_change_events
        events = memory.tracker.events
        if cap is None or len(events) <= cap:
            return 0
        n = len(events) - cap
        del events[:n]  # oldest first
        return n

    def _enforce_frame_lists(self, memory: Any) -> int:
        cap = self.max_frames_per_record
        if cap is None:
            return 0
        n = 0
        for obj in memory.objects.objects.values():
            if len(obj.frames) > cap:
                n += len(obj.frames) - cap
                del obj.frames[:-cap]
        places = memory.places
        for _, data in places.graph.nodes(data=True):
            frames = data.get("frames")
            if frames is not None and len(frames) > cap:
                n += len(frames) - cap
                del frames[:-cap]
        # the frame -> place index: keep snapshot frames, candidate frames and the most recent frames
        index = places._place_of_frame
        limit = cap * max(1, len(places))
        if len(index) > limit:
            wanted = {s.frame_index for s in memory.snapshots.snapshots} | set(memory.snapshots.candidate_frames())
            recent = sorted(index)[-limit:]
            kept = {f: index[f] for f in recent}
            kept.update({f: index[f] for f in wanted if f in index})
            n += len(index) - len(kept)
            places._place_of_frame = kept
        return n
