"""`ManipulationScene`: a Franka Panda at a table with objects and containers, in PyBullet.

The arm is pybullet_data's ``franka_panda/panda.urdf`` on a fixed base at the
table's edge. Objects (mug, block, bottle) and open containers (bowl, box)
stand on the table; physics runs at 240 Hz with gravity. Control is
Cartesian: `move_ee` solves inverse kinematics for the grasp frame between
the fingertips (re-solved from the current joint state until the error is
below a millimetre or two) and drives the joints with position control;
`open_gripper` / `close_gripper` drive the two finger joints.

Grasps are friction grasps by default: a top-down approach, closing the
fingers with a bounded force, and lifting. ``grasp_mode="constraint"``
switches to a fallback that, once both fingers touch the object, welds it to
the hand with a fixed constraint (reliable for any shape, not physical).

Two cameras produce `Frame`s: a fixed camera looking at the table from the
front and a wrist camera on the hand looking along the fingers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engram._optional import require
from engram.sims.embedded.groundtruth import ObjectPose
from engram.sims.embedded.world import (
    linearize_depth,
    opengl_projection_matrix,
    opengl_view_matrix,
)
from engram.types import CameraIntrinsics, Frame, Pose

__all__ = ["ManipulationScene", "look_at"]

TABLE_TOP_Z_M = 0.62
PANDA_EE_LINK = 11  # panda_grasptarget: between the fingertips
PANDA_HAND_LINK = 8
PANDA_ARM_JOINTS = tuple(range(7))
PANDA_FINGER_JOINTS = (9, 10)
PANDA_REST_Q = (0.0, -0.4, 0.0, -2.4, 0.0, 2.0, math.pi / 4)
# Gripper pointing straight down (hand z along world -z), fingers opening along world y at yaw 0.
_DOWN = (math.pi, 0.0, 0.0)


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> Pose:
    """world_from_camera for an OpenCV camera at ``eye`` looking at ``target`` (image up ~ ``up``)."""
    e, t, u = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = t - e
    if np.linalg.norm(z) < 1e-9:
        raise ValueError("look_at: eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, u)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to up")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return Pose.from_rt(np.stack([x, y, z], axis=1), e)


@dataclass(frozen=True)
class _Item:
    instance_id: int
    label: str
    kind: str  # "object" or "container"
    body: int


class ManipulationScene:
    """A Panda arm, a table, graspable objects and containers.

    Args:
        seed: jitters the object layout (same seed, same layout).
        width, height: image size of both cameras.
        vertical_fov_deg: field of view of both cameras.
        grasp_mode: "friction" (physical) or "constraint" (weld on contact).
        control_hz: physics steps per second.
    """

    OBJECT_LABELS = ("mug", "block", "bottle")
    CONTAINER_LABELS = ("bowl", "box")

    def __init__(
        self,
        seed: int = 0,
        width: int = 320,
        height: int = 240,
        vertical_fov_deg: float = 60.0,
        *,
        grasp_mode: str = "friction",
        control_hz: float = 240.0,
    ) -> None:
        if grasp_mode not in ("friction", "constraint"):
            raise ValueError(f"grasp_mode must be 'friction' or 'constraint', got {grasp_mode!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 8 <= v <= 4096:
                raise ValueError(f"{name} must be an integer in [8, 4096], got {v!r}")
        if not (math.isfinite(control_hz) and 30.0 <= control_hz <= 2000.0):
            raise ValueError(f"control_hz must be in [30, 2000], got {control_hz}")
        self.p = require("pybullet", "the manipulation scene")
        self.grasp_mode = grasp_mode
        self.width, self.height = int(width), int(height)
        self.intrinsics = CameraIntrinsics.from_fov(self.width, self.height, vertical_fov_deg)
        self.dt_s = 1.0 / float(control_hz)
        self._near_far = {"fixed": (0.05, 5.0), "wrist": (0.01, 3.0)}
        self._proj = {name: opengl_projection_matrix(self.intrinsics, *nf) for name, nf in self._near_far.items()}
        self.world_from_fixed_camera = look_at((1.4, 0.0, 1.45), (0.35, 0.0, 0.75))
        # Wrist camera on the hand: 5 cm off the finger axis, looking along the fingers (hand +z).
        self.hand_from_wrist_camera = Pose.from_rt(
            [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [0.06, 0.0, 0.02]
        )
        self.client = -1
        self._seed = int(seed)
        self._build()

    # -- construction -------------------------------------------------------------
    def _build(self) -> None:
        p = self.p
        pybullet_data = require("pybullet_data", "the Panda model")
        if self.client >= 0:
            p.disconnect(physicsClientId=self.client)
        cid = self.client = p.connect(p.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setTimeStep(self.dt_s, physicsClientId=cid)
        p.setPhysicsEngineParameter(numSolverIterations=100, physicsClientId=cid)
        rng = np.random.default_rng(self._seed)
        self._time_s = 0.0
        self._index = 0
        self._constraint: int | None = None
        self._held: int | None = None

        floor_col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[2, 2, 0.05], physicsClientId=cid)
        floor_vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[2, 2, 0.05], rgbaColor=[0.72, 0.62, 0.5, 1], physicsClientId=cid
        )
        self.floor = p.createMultiBody(0, floor_col, floor_vis, [0.5, 0, -0.05], physicsClientId=cid)
        half = [0.45, 0.6, 0.03]
        tcol = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
        tvis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=[0.55, 0.38, 0.22, 1], physicsClientId=cid)
        self.table = p.createMultiBody(0, tcol, tvis, [0.5, 0.0, TABLE_TOP_Z_M - half[2]], physicsClientId=cid)
        lcol = p.createCollisionShape(
            p.GEOM_BOX, halfExtents=[0.03, 0.03, (TABLE_TOP_Z_M - 0.06) / 2], physicsClientId=cid
        )
        lvis = p.createVisualShape(
            p.GEOM_BOX,
            halfExtents=[0.03, 0.03, (TABLE_TOP_Z_M - 0.06) / 2],
            rgbaColor=[0.55, 0.38, 0.22, 1],
            physicsClientId=cid,
        )
        self._legs = [
            p.createMultiBody(
                0, lcol, lvis, [0.5 + sx * 0.4, sy * 0.55, (TABLE_TOP_Z_M - 0.06) / 2], physicsClientId=cid
            )
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
        p.changeDynamics(self.table, -1, lateralFriction=1.0, physicsClientId=cid)

        self.robot = p.loadURDF(
            "franka_panda/panda.urdf",
            [0.0, 0.0, TABLE_TOP_Z_M],
            useFixedBase=True,
            flags=p.URDF_USE_SELF_COLLISION,
            physicsClientId=cid,
        )
        for j, q in zip(PANDA_ARM_JOINTS, PANDA_REST_Q):
            p.resetJointState(self.robot, j, q, physicsClientId=cid)
        for j in PANDA_FINGER_JOINTS:
            p.resetJointState(self.robot, j, 0.04, physicsClientId=cid)
            p.changeDynamics(
                self.robot, j, lateralFriction=1.5, spinningFriction=0.01, frictionAnchor=True, physicsClientId=cid
            )
        info = [p.getJointInfo(self.robot, j, physicsClientId=cid) for j in PANDA_ARM_JOINTS]
        self._lower = [i[8] for i in info]
        self._upper = [i[9] for i in info]
        self._ranges = [u - lo for lo, u in zip(self._lower, self._upper)]
        self._q_target = list(PANDA_REST_Q)
        self._finger_target = 0.08
        self._apply_targets()

        # Layout: containers on the robot's left, objects in front; small jitter from the seed.
        def jit() -> float:
            return float(rng.uniform(-0.03, 0.03))

        self._items: list[_Item] = []
        self._add(self._make_mug((0.45 + jit(), -0.15 + jit())), "mug", "object")
        self._add(self._make_block((0.55 + jit(), 0.0 + jit())), "block", "object")
        self._add(self._make_bottle((0.4 + jit(), 0.05 + jit())), "bottle", "object")
        self._add(self._make_bowl((0.62 + jit(), 0.25 + jit())), "bowl", "container")
        self._add(self._make_box((0.38 + jit(), 0.3 + jit())), "box", "container")
        self.table_id = len(self._items) + 1
        self.robot_id = len(self._items) + 2
        self._labels = {it.instance_id: it.label for it in self._items}
        self._labels[self.table_id] = "table"
        self._labels[self.robot_id] = "robot"
        n = p.getNumBodies(physicsClientId=cid)
        self._lut = np.zeros(n + 2, np.int32)
        for it in self._items:
            self._lut[it.body + 1] = it.instance_id
        for b in [self.table, *self._legs]:
            self._lut[b + 1] = self.table_id
        self._lut[self.robot + 1] = self.robot_id
        self.step_physics(120)  # let everything settle

    def _add(self, body: int, label: str, kind: str) -> None:
        self._items.append(_Item(len(self._items) + 1, label, kind, body))
        self.p.changeDynamics(
            body, -1, lateralFriction=1.2, spinningFriction=0.005, rollingFriction=0.0005, physicsClientId=self.client
        )

    def _make_mug(self, xy: Sequence[float]) -> int:
        return self.p.loadURDF(
            "objects/mug.urdf", [xy[0], xy[1], TABLE_TOP_Z_M + 0.005], globalScaling=0.7, physicsClientId=self.client
        )

    def _make_block(self, xy: Sequence[float]) -> int:
        p, cid = self.p, self.client
        h = 0.022
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[h, h, h], physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=[h, h, h], rgbaColor=[0.15, 0.45, 0.85, 1], physicsClientId=cid
        )
        return p.createMultiBody(0.08, col, vis, [xy[0], xy[1], TABLE_TOP_Z_M + h], physicsClientId=cid)

    def _make_bottle(self, xy: Sequence[float]) -> int:
        p, cid = self.p, self.client
        r, hh = 0.025, 0.06
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=r, height=2 * hh, physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=r, length=2 * hh, rgbaColor=[0.1, 0.6, 0.25, 1], physicsClientId=cid
        )
        return p.createMultiBody(0.1, col, vis, [xy[0], xy[1], TABLE_TOP_Z_M + hh], physicsClientId=cid)

    def _container(
        self, xy: Sequence[float], boxes: list[tuple[list[float], list[float], float]], color: list[float], mass: float
    ) -> int:
        """A static-looking open container from boxes (half extents, centre offset, yaw)."""
        p, cid = self.p, self.client
        halves = [b[0] for b in boxes]
        offsets = [b[1] for b in boxes]
        orns = [p.getQuaternionFromEuler([0, 0, b[2]]) for b in boxes]
        col = p.createCollisionShapeArray(
            [p.GEOM_BOX] * len(boxes),
            halfExtents=halves,
            collisionFramePositions=offsets,
            collisionFrameOrientations=orns,
            physicsClientId=cid,
        )
        vis = p.createVisualShapeArray(
            [p.GEOM_BOX] * len(boxes),
            halfExtents=halves,
            visualFramePositions=offsets,
            visualFrameOrientations=orns,
            physicsClientId=cid,
        )
        body = p.createMultiBody(mass, col, vis, [xy[0], xy[1], TABLE_TOP_Z_M + 0.001], physicsClientId=cid)
        p.changeVisualShape(body, -1, rgbaColor=color, physicsClientId=cid)
        return body

    def _make_bowl(self, xy: Sequence[float]) -> int:
        radius, wall_h, t, n = 0.085, 0.05, 0.008, 12
        boxes = [([radius * 0.9, radius * 0.9, 0.005], [0.0, 0.0, 0.005], 0.0)]
        seg = 2 * radius * math.tan(math.pi / n) / 2 + 0.002
        for k in range(n):
            a = 2 * math.pi * k / n
            boxes.append(([t / 2, seg, wall_h / 2], [radius * math.cos(a), radius * math.sin(a), wall_h / 2], a))
        return self._container(xy, boxes, [0.9, 0.55, 0.15, 1.0], mass=0.5)

    def _make_box(self, xy: Sequence[float]) -> int:
        hx, hy, h, t = 0.09, 0.09, 0.07, 0.006
        boxes = [
            ([hx, hy, t / 2], [0.0, 0.0, t / 2], 0.0),
            ([t / 2, hy, h / 2], [hx, 0.0, h / 2], 0.0),
            ([t / 2, hy, h / 2], [-hx, 0.0, h / 2], 0.0),
            ([hx, t / 2, h / 2], [0.0, hy, h / 2], 0.0),
            ([hx, t / 2, h / 2], [0.0, -hy, h / 2], 0.0),
        ]
        return self._container(xy, boxes, [0.7, 0.55, 0.35, 1.0], mass=0.6)

    # -- state --------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self._time_s

    @property
    def labels(self) -> dict[int, str]:
        """Instance id -> label for objects, containers, the table and the robot."""
        return dict(self._labels)

    def instance_id(self, label: str) -> int:
        """The id of the (first) item with this label."""
        for it in self._items:
            if it.label == label:
                return it.instance_id
        raise ValueError(f"no item labelled {label!r}; items: {[it.label for it in self._items]}")

    def _body(self, instance_id: int) -> int:
        for it in self._items:
            if it.instance_id == instance_id:
                return it.body
        raise ValueError(f"no item with instance id {instance_id}")

    def object_poses(self) -> dict[int, ObjectPose]:
        """Ground-truth pose of every object and container (base position, yaw)."""
        out = {}
        for it in self._items:
            pos, orn = self.p.getBasePositionAndOrientation(it.body, physicsClientId=self.client)
            yaw = self.p.getEulerFromQuaternion(orn)[2]
            out[it.instance_id] = ObjectPose(it.instance_id, it.label, tuple(pos), float(yaw))
        return out

    def aabb(self, instance_id: int) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned bounding box (min, max) of an item."""
        lo, hi = self.p.getAABB(self._body(instance_id), physicsClientId=self.client)
        return np.asarray(lo), np.asarray(hi)

    def is_inside(self, object_id: int, container_id: int) -> bool:
        """True when the object's centre lies within the container's footprint, above its floor and below its rim + 5 cm."""
        lo, hi = self.aabb(container_id)
        c = 0.5 * (np.add(*self.aabb(object_id)))
        return bool(lo[0] < c[0] < hi[0] and lo[1] < c[1] < hi[1] and lo[2] < c[2] < hi[2] + 0.05)

    @property
    def ee_pose(self) -> Pose:
        """world_from_grasp: the grasp frame between the fingertips (z along the fingers)."""
        st = self.p.getLinkState(self.robot, PANDA_EE_LINK, computeForwardKinematics=True, physicsClientId=self.client)
        return Pose.from_quaternion(st[5], st[4])

    @property
    def gripper_opening_m(self) -> float:
        """Distance between the fingers."""
        return float(
            sum(self.p.getJointState(self.robot, j, physicsClientId=self.client)[0] for j in PANDA_FINGER_JOINTS)
        )

    @property
    def holding(self) -> int | None:
        """Instance id of the object held between both fingers (contacts with both), or None."""
        for it in self._items:
            if it.kind != "object":
                continue
            touch = [
                bool(self.p.getContactPoints(self.robot, it.body, linkIndexA=j, physicsClientId=self.client))
                for j in PANDA_FINGER_JOINTS
            ]
            if all(touch) or (self._constraint is not None and self._held == it.instance_id):
                return it.instance_id
        return None

    # -- control ------------------------------------------------------------------
    def _apply_targets(self) -> None:
        p = self.p
        p.setJointMotorControlArray(
            self.robot,
            list(PANDA_ARM_JOINTS),
            p.POSITION_CONTROL,
            targetPositions=self._q_target,
            forces=[87.0] * 4 + [12.0] * 3,
            positionGains=[0.05] * 7,
            physicsClientId=self.client,
        )
        p.setJointMotorControlArray(
            self.robot,
            list(PANDA_FINGER_JOINTS),
            p.POSITION_CONTROL,
            targetPositions=[self._finger_target / 2] * 2,
            forces=[self._finger_force] * 2,
            physicsClientId=self.client,
        )

    _finger_force = 40.0

    def step_physics(self, n_steps: int = 1) -> None:
        """Advance physics by ``n_steps`` control periods."""
        for _ in range(int(n_steps)):
            self.p.stepSimulation(physicsClientId=self.client)
        self._time_s += n_steps * self.dt_s

    def _arm_q(self) -> np.ndarray:
        return np.array([self.p.getJointState(self.robot, j, physicsClientId=self.client)[0] for j in PANDA_ARM_JOINTS])

    def move_ee(
        self,
        position_m: Sequence[float],
        yaw_rad: float = 0.0,
        *,
        tolerance_m: float = 0.003,
        max_time_s: float = 4.0,
    ) -> bool:
        """Move the grasp frame to ``position_m`` pointing down, rotated ``yaw_rad`` about z.

        Returns:
            True when the grasp frame ends within ``tolerance_m`` of the target.
        """
        pos = np.asarray(position_m, dtype=np.float64).reshape(-1)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)) or not math.isfinite(yaw_rad):
            raise ValueError(f"position_m must be 3 finite numbers and yaw_rad finite, got {position_m}, {yaw_rad}")
        if np.linalg.norm(pos[:2]) > 0.85 or pos[2] < TABLE_TOP_Z_M - 0.01:
            raise ValueError(f"target {pos.tolist()} is out of the arm's reach (0.85 m from the base, above the table)")
        p, cid = self.p, self.client
        orn = p.getQuaternionFromEuler([_DOWN[0], _DOWN[1], yaw_rad])
        steps = int(max_time_s / self.dt_s)
        err = math.inf
        for k in range(steps):
            if k % 10 == 0:
                q = p.calculateInverseKinematics(
                    self.robot,
                    PANDA_EE_LINK,
                    pos.tolist(),
                    orn,
                    lowerLimits=self._lower,
                    upperLimits=self._upper,
                    jointRanges=self._ranges,
                    restPoses=list(PANDA_REST_Q),
                    maxNumIterations=100,
                    residualThreshold=1e-5,
                    physicsClientId=cid,
                )
                self._q_target = list(q[:7])
                self._apply_targets()
            self.step_physics(1)
            err = float(np.linalg.norm(self.ee_pose.translation - pos))
            if err < tolerance_m and k % 10 == 9:
                vel = [p.getJointState(self.robot, j, physicsClientId=cid)[1] for j in PANDA_ARM_JOINTS]
                if max(abs(v) for v in vel) < 0.05:
                    return True
        return err < tolerance_m

    def open_gripper(self) -> None:
        """Open the fingers fully (8 cm) and release anything held."""
        if self._constraint is not None:
            self.p.removeConstraint(self._constraint, physicsClientId=self.client)
            self._constraint = None
            self._held = None
        self._finger_target = 0.08
        self._apply_targets()
        self.step_physics(int(0.5 / self.dt_s))

    def close_gripper(self) -> int | None:
        """Close the fingers (bounded force); returns the id of the object now held, or None."""
        self._finger_target = 0.0
        self._apply_targets()
        self.step_physics(int(0.6 / self.dt_s))
        held = self.holding
        if held is not None and self.grasp_mode == "constraint" and self._constraint is None:
            p, cid = self.p, self.client
            body = self._body(held)
            hand = p.getLinkState(self.robot, PANDA_HAND_LINK, physicsClientId=cid)
            obj_pos, obj_orn = p.getBasePositionAndOrientation(body, physicsClientId=cid)
            inv_pos, inv_orn = p.invertTransform(hand[4], hand[5])
            rel_pos, rel_orn = p.multiplyTransforms(inv_pos, inv_orn, obj_pos, obj_orn)
            self._constraint = p.createConstraint(
                self.robot,
                PANDA_HAND_LINK,
                body,
                -1,
                p.JOINT_FIXED,
                [0, 0, 0],
                rel_pos,
                [0, 0, 0],
                rel_orn,
                physicsClientId=cid,
            )
            self._held = held
        return held

    def grasp_at(
        self, position_m: Sequence[float], yaw_rad: float = 0.0, *, approach_m: float = 0.12, lift_m: float = 0.15
    ) -> int | None:
        """Top-down grasp: open, go above, descend to ``position_m``, close, lift. Returns the held id or None."""
        pos = np.asarray(position_m, dtype=np.float64)
        self.open_gripper()
        above = pos + [0.0, 0.0, approach_m]
        self.move_ee(above, yaw_rad)
        self.move_ee(pos, yaw_rad, max_time_s=3.0)
        self.close_gripper()
        self.move_ee(pos + [0.0, 0.0, lift_m], yaw_rad)
        return self.holding

    def place_at(self, position_m: Sequence[float], yaw_rad: float = 0.0, *, approach_m: float = 0.1) -> None:
        """Carry the held object above ``position_m``, lower it there, open, and retreat."""
        pos = np.asarray(position_m, dtype=np.float64)
        self.move_ee(pos + [0.0, 0.0, approach_m], yaw_rad)
        self.move_ee(pos, yaw_rad, max_time_s=3.0)
        self.open_gripper()
        self.move_ee(pos + [0.0, 0.0, approach_m + 0.05], yaw_rad)

    def grasp_pose(self, instance_id: int) -> tuple[np.ndarray, float]:
        """A top-down grasp for an object from its ground truth: (position, yaw).

        x, y: the body's origin (the mug's axis, not its handle-shifted box
        centre); z: 2.5 cm below the top. The fingers close across the mug's
        handle direction, so neither finger lands on the handle.
        """
        lo, hi = self.aabb(instance_id)
        pose = self.object_poses()[instance_id]
        x, y = pose.position_m[0], pose.position_m[1]
        if pose.label != "mug":
            x, y = 0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1])
        z = max(hi[2] - 0.025, lo[2] + 0.01)
        return np.array([x, y, z]), float(pose.yaw_rad + math.pi / 2)

    def pick(self, label: str) -> bool:
        """Pick the object with ``label`` using its ground-truth pose; True when it is held after lifting."""
        iid = self.instance_id(label)
        position, yaw = self.grasp_pose(iid)
        held = self.grasp_at(position, yaw)
        return held == iid

    def place_in(self, label: str) -> bool:
        """Release the held object above the container ``label``; True when it ends inside."""
        held = self.holding
        if held is None:
            raise ValueError("place_in: the gripper holds nothing")
        cid = self.instance_id(label)
        lo, hi = self.aabb(cid)
        olo, _ = self.aabb(held)
        ee_z = self.ee_pose.translation[2]
        # Lower until the object's bottom is 2 cm above the container's rim.
        target = np.array([0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), ee_z + (hi[2] + 0.02 - olo[2])])
        self.place_at(target, approach_m=0.05)
        self.step_physics(int(0.5 / self.dt_s))
        return self.is_inside(held, cid)

    def home(self) -> None:
        """Back to the rest pose (gripper state unchanged)."""
        self._q_target = list(PANDA_REST_Q)
        self._apply_targets()
        self.step_physics(int(1.5 / self.dt_s))

    # -- observation -------------------------------------------------------------
    def camera_pose(self, camera: str = "fixed") -> Pose:
        """world_from_camera of the "fixed" or "wrist" camera."""
        if camera == "fixed":
            return self.world_from_fixed_camera
        if camera == "wrist":
            st = self.p.getLinkState(
                self.robot, PANDA_HAND_LINK, computeForwardKinematics=True, physicsClientId=self.client
            )
            return Pose.from_quaternion(st[5], st[4]) @ self.hand_from_wrist_camera
        raise ValueError(f"camera must be 'fixed' or 'wrist', got {camera!r}")

    def observe(self, camera: str = "fixed") -> Frame:
        """Render one camera as a Frame (RGB, depth, instances with labels, pose, time)."""
        p = self.p
        wfc = self.camera_pose(camera)
        near, far = self._near_far[camera]
        _, _, rgba, depth_buf, seg = p.getCameraImage(
            self.width,
            self.height,
            viewMatrix=opengl_view_matrix(wfc),
            projectionMatrix=self._proj[camera],
            renderer=p.ER_TINY_RENDERER,
            shadow=0,
            lightDirection=[0.4, 0.3, 1.0],
            physicsClientId=self.client,
        )
        rgb = np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3])
        depth = linearize_depth(np.asarray(depth_buf, dtype=np.float32).reshape(self.height, self.width), near, far)
        seg = np.asarray(seg, dtype=np.int32).reshape(self.height, self.width)
        instances = self._lut[np.clip(seg + 1, 0, len(self._lut) - 1)]
        ids = np.nonzero(np.bincount(instances.ravel()))[0]
        self._index += 1
        return Frame(
            index=self._index - 1,
            timestamp_s=self._time_s,
            rgb=rgb,
            depth_m=depth,
            intrinsics=self.intrinsics,
            world_from_camera=wfc,
            instances=instances,
            labels={int(i): self._labels[int(i)] for i in ids if i != 0},
            meta={"source": "embedded-manipulation", "camera": camera, "seed": self._seed},
        )

    def observe_all(self) -> dict[str, Frame]:
        return {"fixed": self.observe("fixed"), "wrist": self.observe("wrist")}

    def reset(self, seed: int | None = None) -> Frame:
        """Rebuild the scene (same layout unless ``seed`` is given) and return the fixed camera's frame."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
            self._seed = int(seed)
        self._build()
        return self.observe("fixed")

    def close(self) -> None:
        if self.client >= 0:
            try:
                self.p.disconnect(physicsClientId=self.client)
            except Exception:  # noqa: BLE001 - already disconnected
                pass
            self.client = -1

    def __enter__(self) -> ManipulationScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
