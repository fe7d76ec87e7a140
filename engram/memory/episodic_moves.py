"""Move detection for the episodic timeline: instances seen away from where they were seen before.

`MoveTracker` keeps, per instance id, the box its observed surface points
spanned so far (10th-90th percentile per view, merged over views). An
instance moved when its points now lie further than ``threshold_m`` from that
box: partial views of one large object (a sofa seen from either end) stay next
to each other, a relocated mug lands metres away. Instance ids are assumed
stable across frames (simulators, trackers). Split out of `EpisodicMemory`,
which calls `observe` once per sampled frame and saves `state` with itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engram.types import Frame

__all__ = ["MoveTracker"]


class MoveTracker:
    """Per-instance observed extents and the moves they reveal.

    Args:
        threshold_m: an instance whose points lie further than this from its
            remembered box is recorded as moved.
    """

    def __init__(self, threshold_m: float = 0.75) -> None:
        self.threshold_m = float(threshold_m)
        # instance id -> (label, observed extent [min xyz, max xyz], time_s)
        self.positions: dict[int, tuple[str, np.ndarray, float]] = {}

    def observe(self, frame: Frame) -> list[str]:
        """Labels of instances seen away from where they were seen before (updates the extents)."""
        if self.threshold_m <= 0 or not (frame.has_geometry and frame.instances is not None and frame.labels):
            return []
        from engram.perception.geometry import backproject_depth

        depth, k, pose = frame.depth_m, frame.intrinsics, frame.world_from_camera
        assert depth is not None and k is not None and pose is not None  # has_geometry
        stride = max(1, frame.width // 80)
        pts, px = backproject_depth(depth, k, stride=stride, return_pixels=True)
        if len(pts) == 0:
            return []
        ids = frame.instances[px[:, 1], px[:, 0]].astype(np.int64)
        keep = ids > 0
        ids, pts = ids[keep], pts[keep]
        if ids.size == 0:
            return []
        world = pose.transform_points(pts)
        order = np.argsort(ids, kind="stable")
        ids, world = ids[order], world[order]
        uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
        min_pts = 3  # a few surface points place an object well enough to see a move of metres
        moved: list[str] = []
        for i, j, n in zip(uniq.tolist(), first.tolist(), counts.tolist()):
            name = frame.labels.get(i)
            if name is None or n < min_pts:
                continue
            lo, hi = np.percentile(world[j : j + n], [10.0, 90.0], axis=0)
            box = np.concatenate([lo, hi])
            prev = self.positions.get(i)
            if prev is not None and prev[0] == name:
                old = prev[1]
                gap = np.maximum(0.0, np.maximum(old[:3] - hi, lo - old[3:]))
                if float(np.linalg.norm(gap)) > self.threshold_m:
                    moved.append(name)
                else:
                    box = np.concatenate([np.minimum(old[:3], lo), np.maximum(old[3:], hi)])
            self.positions[i] = (name, box, frame.timestamp_s)
        return moved

    def state(self) -> list[list[Any]]:
        """JSON-ready extents: [[id, label, [6 floats], time_s], ...]."""
        return [[k, v[0], v[1].tolist(), v[2]] for k, v in self.positions.items()]

    def load_state(self, rows: list[list[Any]]) -> None:
        self.positions = {int(k): (str(name), np.array(p, dtype=np.float64), float(t)) for k, name, p, t in rows}
