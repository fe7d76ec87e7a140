"""Manipulation targets from memory: top-down grasps, reachability and collision checks.

The planner reads an object's fused points and box from the SceneMemory (never
the simulator's truth), proposes a top-down pre-grasp and grasp pose with the
fingers closing across the object's narrow side, and checks it against the
octree: the approach corridor must be free of anything but the object itself,
and the target must be within the arm's reach. `pick` / `place_in` run the plan
on any arm that offers ``grasp_at(position, yaw)`` / ``place_at(position, yaw)``
and ``holding`` (the embedded Panda scene does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GraspPlan", "ManipulationPlanner"]


@dataclass
class GraspPlan:
    """A top-down grasp.

    Attributes:
        object_id: the memory object.
        label: its category.
        position: grasp point of the gripper (world, metres).
        yaw_rad: gripper yaw about +z.
        pregrasp: the point above the grasp the gripper descends from.
        width_m: object width across the closing direction.
        reachable: within the arm's workspace.
        collision_free: the approach corridor holds nothing but the object.
        reason: why not, when the plan cannot be executed.
    """

    object_id: int
    label: str
    position: np.ndarray
    yaw_rad: float
    pregrasp: np.ndarray
    width_m: float
    reachable: bool
    collision_free: bool
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.reachable and self.collision_free


class ManipulationPlanner:
    """Grasp and place targets for objects in a SceneMemory.

    Args:
        memory: the SceneMemory (objects + octree).
        base_xyz: the arm's base position in the world.
        reach_m: horizontal reach from the base.
        min_z_m: lowest reachable height (e.g. the table top).
        approach_m: pre-grasp height above the grasp point.
        finger_depth_m: how far below the object's top the fingers close.
        gripper_radius_m: radius of the approach corridor checked in the octree.
        max_width_m: widest object the gripper can close around.
    """

    def __init__(
        self,
        memory,
        *,
        base_xyz=(0.0, 0.0, 0.0),
        reach_m: float = 0.85,
        min_z_m: float = 0.0,
        approach_m: float = 0.12,
        finger_depth_m: float = 0.025,
        gripper_radius_m: float = 0.04,
        max_width_m: float = 0.08,
    ) -> None:
        self.memory = memory
        self.base_xyz = np.asarray(base_xyz, float)
        self.reach_m = reach_m
        self.min_z_m = min_z_m
        self.approach_m = approach_m
        self.finger_depth_m = finger_depth_m
        self.gripper_radius_m = gripper_radius_m
        self.max_width_m = max_width_m

    def find(self, text: str):
        """The memory object best matching ``text`` (ValueError when none does)."""
        hits = self.memory.query(text=text, kinds=("object",), k=1, min_score=0.75)
        if not hits:
            raise ValueError(f"nothing in memory matches {text!r}")
        return self.memory.objects.objects[hits[0].id]

    def grasp(self, obj) -> GraspPlan:
        """A top-down grasp for a memory object."""
        pts = np.asarray(obj.points, float)
        top = float(obj.box_max[2])
        # the object's body: the upper part's points, centred by the median (robust to a handle)
        upper = pts[pts[:, 2] >= top - 0.05] if len(pts) else pts
        if len(upper) < 3:
            upper = pts
        centre_xy = np.median(upper[:, :2], axis=0)
        # close across the narrow side: the minor principal axis of the footprint
        xy = upper[:, :2] - centre_xy
        if len(xy) >= 3:
            w, v = np.linalg.eigh(np.cov(xy.T) + 1e-9 * np.eye(2))
            major = v[:, 1]
            yaw = math.atan2(major[1], major[0])  # fingers open along the gripper's y: across the major axis
            proj = xy @ v[:, 0]
            width = float(proj.max() - proj.min()) if len(proj) else 0.0
        else:
            yaw, width = 0.0, 0.0
        z = max(top - self.finger_depth_m, float(obj.box_min[2]) + 0.01)
        pos = np.array([centre_xy[0], centre_xy[1], z])
        pre = pos + [0.0, 0.0, self.approach_m]
        reachable, reason = self._reachable(pos)
        free, why = self._corridor_free(obj, pos, pre)
        if width > self.max_width_m:
            reachable, reason = False, f"the {obj.label} is {width:.3f} m wide; the gripper opens {self.max_width_m} m"
        return GraspPlan(int(obj.id), obj.label, pos, float(yaw), pre, width, reachable, free, reason or why)

    def _reachable(self, p: np.ndarray) -> tuple[bool, str]:
        d = float(np.linalg.norm(p[:2] - self.base_xyz[:2]))
        if d > self.reach_m:
            return False, f"{d:.2f} m from the arm's base; reach is {self.reach_m} m"
        if p[2] < self.min_z_m:
            return False, f"target height {p[2]:.2f} m is below the workspace ({self.min_z_m} m)"
        return True, ""

    def _corridor_free(self, obj, pos: np.ndarray, pre: np.ndarray) -> tuple[bool, str]:
        """No occupied voxel in the gripper's vertical corridor except the object's own."""
        oct_ = self.memory.octree
        vs = oct_.voxel_size_m
        r = self.gripper_radius_m
        g = np.arange(-r, r + 1e-9, vs / 2)
        gx, gy = np.meshgrid(g, g)
        disk = np.stack([gx.ravel(), gy.ravel()], 1)
        disk = disk[np.linalg.norm(disk, axis=1) <= r]
        zs = np.arange(pos[2], pre[2] + 1e-9, vs / 2)
        samples = np.concatenate([np.c_[pos[0] + disk[:, 0], pos[1] + disk[:, 1], np.full(len(disk), z)] for z in zs])
        from engram.memory.octree import OCCUPIED

        occ = oct_.state(samples) == OCCUPIED
        # the object's own voxels (its box, one voxel of slack) do not count
        lo = np.asarray(obj.box_min) - vs
        hi = np.asarray(obj.box_max) + vs
        own = np.all((samples >= lo) & (samples <= hi), axis=1)
        blocked = occ & ~own
        if blocked.any():
            z = samples[blocked, 2].min()
            return False, f"the approach to the {obj.label} is blocked at z={z:.2f} m"
        return True, ""

    def place_target(self, container, held) -> tuple[np.ndarray, float]:
        """Gripper position that holds ``held`` (as grasped) 2 cm above ``container``'s rim, centred."""
        plan = self.grasp(held)
        below_gripper = plan.position[2] - float(held.box_min[2])  # object bottom under the grasp point
        cx, cy = (np.asarray(container.box_min[:2]) + np.asarray(container.box_max[:2])) / 2
        z = float(container.box_max[2]) + 0.02 + below_gripper
        return np.array([cx, cy, z]), plan.yaw_rad

    # execution on an arm -------------------------------------------------------------
    def survey(self, arm, points, *, camera: str = "wrist", yaw_rad: float = 0.0) -> int:
        """Look at the workspace from above with the wrist camera and integrate what it sees.

        A fixed camera sees objects from one side, which biases their boxes toward
        it; a few top-down views make the boxes (and so the grasps) true.
        Returns the number of frames integrated.
        """
        n = 0
        for p in points:
            arm.move_ee(p, yaw_rad)
            self.memory.integrate(arm.observe(camera))
            n += 1
        return n

    def pick(self, arm, text: str) -> tuple[bool, GraspPlan]:
        """Grasp the object named ``text`` with ``arm``; True when the arm holds something after lifting."""
        obj = self.find(text)
        plan = self.grasp(obj)
        if not plan.ok:
            return False, plan
        held = arm.grasp_at(plan.position, plan.yaw_rad, approach_m=self.approach_m)
        return held is not None, plan

    def place_in(self, arm, held_text: str, container_text: str) -> bool:
        """Put the held object (named ``held_text`` in memory) into the container named ``container_text``."""
        container = self.find(container_text)
        held = self.find(held_text)
        target, yaw = self.place_target(container, held)
        ok, why = self._reachable(target)
        if not ok:
            raise ValueError(f"cannot place in the {container.label}: {why}")
        arm.place_at(target, yaw, approach_m=0.05)
        return arm.holding is None
