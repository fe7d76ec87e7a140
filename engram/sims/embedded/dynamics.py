"""Scripted dynamics for the embedded apartment: relocated objects and a walking person.

A `ScriptedDynamics` is a plain, deterministic script: where each event puts
which object at which time, and the path a person walks. Given a time it says
where everything is, so the ground truth at any time is exact and a run can be
replayed. The simulator applies the script after every step and logs every
pose change in its `GroundTruth`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engram.sims.embedded.scenes import ApartmentSpec

__all__ = ["PERSON_LABEL", "PersonPath", "Relocation", "ScriptedDynamics"]

PERSON_LABEL = "person"


_MIN_RELOCATION_M = 0.5  # scripted relocations move an object at least this far


@dataclass(frozen=True)
class Relocation:
    """Move object ``instance_id`` so its bounding-box centre is at ``position_m`` from ``time_s`` on."""

    time_s: float
    instance_id: int
    position_m: tuple[float, float, float]
    yaw_rad: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.time_s) or self.time_s < 0:
            raise ValueError(f"Relocation.time_s must be finite and >= 0, got {self.time_s}")
        if len(self.position_m) != 3 or not all(math.isfinite(v) for v in self.position_m):
            raise ValueError(f"Relocation.position_m must be 3 finite numbers, got {self.position_m}")
        if not math.isfinite(self.yaw_rad):
            raise ValueError(f"Relocation.yaw_rad must be finite, got {self.yaw_rad}")


@dataclass(frozen=True)
class PersonPath:
    """A person walking back and forth along a polyline on the floor.

    Attributes:
        waypoints_xy: at least two (x, y) points.
        speed_mps: walking speed.
        start_s: time the walk starts (the person stands at the first point before).
    """

    waypoints_xy: tuple[tuple[float, float], ...]
    speed_mps: float = 0.8
    start_s: float = 0.0

    def __post_init__(self) -> None:
        pts = np.asarray(self.waypoints_xy, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2 or not np.all(np.isfinite(pts)):
            raise ValueError(f"PersonPath.waypoints_xy must be >= 2 finite (x, y) points, got shape {pts.shape}")
        if not (math.isfinite(self.speed_mps) and self.speed_mps > 0):
            raise ValueError(f"PersonPath.speed_mps must be positive, got {self.speed_mps}")
        if np.linalg.norm(np.diff(pts, axis=0), axis=1).sum() <= 0:
            raise ValueError("PersonPath.waypoints_xy has zero length")

    def pose_at(self, t_s: float) -> tuple[tuple[float, float, float], float]:
        """(feet position, heading yaw) at time ``t_s``; the walk ping-pongs along the path."""
        pts = np.asarray(self.waypoints_xy, dtype=np.float64)
        seg = np.diff(pts, axis=0)
        seg_len = np.linalg.norm(seg, axis=1)
        total = float(seg_len.sum())
        s = max(0.0, t_s - self.start_s) * self.speed_mps
        s = s % (2 * total)
        forward = s <= total
        if not forward:
            s = 2 * total - s
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])
        k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
        while seg_len[k] == 0 and k < len(seg) - 1:
            k += 1
        frac = 0.0 if seg_len[k] == 0 else (s - cum[k]) / seg_len[k]
        xy = pts[k] + min(max(frac, 0.0), 1.0) * seg[k]
        d = seg[k] if forward else -seg[k]
        yaw = math.atan2(d[1], d[0])
        return (float(xy[0]), float(xy[1]), 0.0), yaw


@dataclass(frozen=True)
class ScriptedDynamics:
    """Object relocations at given times and an optional walking person.

    Attributes:
        relocations: events, applied in time order.
        person: the walking person's path, or None.
    """

    relocations: tuple[Relocation, ...] = ()
    person: PersonPath | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "relocations", tuple(sorted(self.relocations, key=lambda r: (r.time_s, r.instance_id)))
        )

    def validate(self, spec: ApartmentSpec) -> None:
        """Raise ValueError if an event names an object the apartment does not have."""
        ids = {o.instance_id for o in spec.all_objects()}
        for r in self.relocations:
            if r.instance_id not in ids:
                raise ValueError(
                    f"relocation at t={r.time_s} s names instance id {r.instance_id}, which is not in the apartment"
                )

    def events_between(self, t0_s: float, t1_s: float) -> list[Relocation]:
        """Relocations with t0 < time <= t1 (t0 = -inf includes time 0)."""
        return [r for r in self.relocations if t0_s < r.time_s <= t1_s]

    @classmethod
    def random(
        cls,
        spec: ApartmentSpec,
        seed: int = 0,
        *,
        n_relocations: int = 4,
        period_s: float = 20.0,
        person: bool = True,
        person_speed_mps: float = 0.8,
    ) -> ScriptedDynamics:
        """A plausible script: small objects moved onto other furniture tops, a person walking between two rooms.

        Args:
            spec: the apartment.
            seed: random seed (the same seed gives the same script).
            n_relocations: number of relocation events.
            period_s: one event every ``period_s`` seconds, starting at ``period_s``.
            person: add a walking person.
            person_speed_mps: the person's speed.
        """
        if n_relocations < 0:
            raise ValueError(f"n_relocations must be >= 0, got {n_relocations}")
        if not period_s > 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        rng = np.random.default_rng(seed + 7919 * (spec.seed + 1))
        tops = [f for f in spec.furniture if f.label in ("table", "desk", "counter", "cabinet", "sink")]
        movable = [o for o in spec.objects if o.half_extents_m[0] < 0.2 and o.half_extents_m[1] < 0.2]
        # where every object stands now (x, y, footprint radius), so a moved object lands in a free spot
        now = {
            o.instance_id: (o.position_m[0], o.position_m[1], math.hypot(*o.half_extents_m[:2])) for o in spec.objects
        }
        events = []
        for k in range(n_relocations):
            if not tops or not movable:
                break
            for _attempt in range(50):
                obj = movable[int(rng.integers(len(movable)))]
                top = tops[int(rng.integers(len(tops)))]
                r = math.hypot(obj.half_extents_m[0], obj.half_extents_m[1])
                fx, fy = max(top.half_extents_m[0] - r - 0.03, 0.0), max(top.half_extents_m[1] - r - 0.03, 0.0)
                lx, ly = rng.uniform(-fx, fx), rng.uniform(-fy, fy)
                c, s = math.cos(top.yaw_rad), math.sin(top.yaw_rad)
                x = top.position_m[0] + c * lx - s * ly
                y = top.position_m[1] + s * lx + c * ly
                ox, oy, _ = now[obj.instance_id]
                if math.hypot(x - ox, y - oy) < _MIN_RELOCATION_M:
                    continue  # a relocation takes the object somewhere else
                if any(
                    i != obj.instance_id and math.hypot(x - px, y - py) < r + pr + 0.05
                    for i, (px, py, pr) in now.items()
                ):
                    continue  # never into another object
                break
            else:
                break
            z = top.top_z_m + obj.half_extents_m[2] + 0.001
            now[obj.instance_id] = (x, y, r)
            events.append(
                Relocation(
                    (k + 1) * period_s,
                    obj.instance_id,
                    (round(x, 4), round(y, 4), round(z, 4)),
                    round(float(rng.uniform(-math.pi, math.pi)), 3),
                )
            )
        path = None
        if person and len(spec.rooms) >= 2:
            from engram.sims.embedded.groundtruth import GroundTruth

            gt = GroundTruth(spec, agent_radius_m=0.3)
            reach = gt.reachable_map()
            order = rng.permutation(len(spec.rooms))
            pts = None
            for a, b in [(order[0], order[1]), (order[1], order[2 % len(order)])]:
                pa = _room_point(gt, spec.rooms[int(a)].box.center)
                pb = _room_point(gt, spec.rooms[int(b)].box.center)
                if pa is None or pb is None:
                    continue
                pts = gt.shortest_path(pa, pb)
                if len(pts) >= 2:
                    break
            if pts is not None and len(pts) >= 2:
                keep = pts[:: max(1, int(round(0.5 / reach.resolution_m)))]
                if not np.allclose(keep[-1], pts[-1]):
                    keep = np.vstack([keep, pts[-1]])
                path = PersonPath(
                    tuple((round(float(x), 3), round(float(y), 3)) for x, y in keep), speed_mps=person_speed_mps
                )
        return cls(relocations=tuple(events), person=path)


def _room_point(gt: object, xy: Sequence[float]) -> tuple[float, float] | None:
    """The reachable cell closest to ``xy``."""
    reach = gt.reachable_map()  # type: ignore[attr-defined]
    cells = np.argwhere(reach.free)
    if len(cells) == 0:
        return None
    centres = reach.cell_to_world(cells)
    k = int(np.argmin(np.linalg.norm(centres - np.asarray(xy), axis=1)))
    return float(centres[k, 0]), float(centres[k, 1])
