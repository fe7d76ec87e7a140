"""`EmbeddedSim`: a mobile camera agent in a procedural PyBullet apartment, observed as `Frame`s.

The agent is a cylinder on the floor with pose (x, y, yaw) and a camera on a
mast at ``camera_height_m``, pitched down by ``camera_pitch_deg``. It takes the
discrete actions of `engram.sims.base.ACTIONS` or continuous velocity / goal
commands; every command advances simulated time by ``time_step_s`` and checks
the agent's cylinder against walls, furniture, objects and the person with
PyBullet's collision queries, so it stops at walls instead of passing through.

Frames carry RGB, metric depth, instance ids with labels (0 = floor, walls,
ceiling), intrinsics, ``world_from_camera`` (OpenCV camera, z-up world) and
simulated time. Rendering uses PyBullet's CPU TinyRenderer with a projection
matrix built from the intrinsics, and skips rooms the camera cannot see
(a 2D ray fan through the door openings), which is exact because walls run
from floor to ceiling.

`coverage_waypoints` / `coverage_actions` give a scripted walk through every
room for jobs and benchmarks that run before a planner exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from engram.sims.base import ACTIONS
from engram.sims.embedded.dynamics import PERSON_LABEL, ScriptedDynamics
from engram.sims.embedded.groundtruth import GroundTruth
from engram.sims.embedded.scenes import ApartmentSpec, generate_apartment
from engram.types import CameraIntrinsics, Frame, Pose

__all__ = ["EmbeddedSim", "base_from_camera", "coverage_actions", "coverage_walk", "coverage_waypoints"]


def base_from_camera(camera_height_m: float, camera_pitch_deg: float) -> Pose:
    """The OpenCV camera on the agent's base (x forward, z up), pitched down by ``camera_pitch_deg``."""
    th = math.radians(camera_pitch_deg)
    x_cam = [0.0, -1.0, 0.0]
    z_cam = [math.cos(th), 0.0, -math.sin(th)]
    y_cam = [-math.sin(th), 0.0, -math.cos(th)]
    rot = np.array([x_cam, y_cam, z_cam]).T
    return Pose.from_rt(rot, [0.0, 0.0, camera_height_m])


class EmbeddedSim:
    """A camera agent in a procedural apartment (PyBullet, DIRECT mode, CPU rendering).

    Args:
        seed: apartment seed.
        width, height: image size in pixels.
        vertical_fov_deg: vertical field of view.
        camera_height_m: camera height above the floor.
        camera_pitch_deg: downward pitch of the camera (0 = level).
        time_step_s: simulated time per command.
        dynamics: None (static world), a `ScriptedDynamics`, or "random" /
            a dict of keyword arguments for `ScriptedDynamics.random`.
        forward_step_m: distance of ``move_forward``.
        turn_step_deg: angle of ``turn_left`` / ``turn_right``.
        agent_radius_m: radius of the agent's collision cylinder.
        near_m, far_m: clipping planes; depth beyond ``far_m`` reads 0.
        n_rooms, n_objects: passed to `generate_apartment` (None: from the seed).
        cull_hidden_rooms: skip rooms the camera cannot see (faster, same image).
        instance_masks: put the renderer's ground-truth instance masks and labels
            into each frame (the ``oracle`` detector reads them). False gives frames
            as a real camera would (RGB-D and pose only); the truth is still there
            for scoring through `last_ground_truth`.
    """

    def __init__(
        self,
        seed: int = 0,
        width: int = 320,
        height: int = 240,
        vertical_fov_deg: float = 60.0,
        camera_height_m: float = 1.3,
        camera_pitch_deg: float = 20.0,
        time_step_s: float = 0.25,
        dynamics: ScriptedDynamics | str | dict | None = None,
        *,
        forward_step_m: float = 0.25,
        turn_step_deg: float = 30.0,
        agent_radius_m: float = 0.2,
        near_m: float = 0.05,
        far_m: float = 30.0,
        n_rooms: int | None = None,
        n_objects: int | None = None,
        cull_hidden_rooms: bool = True,
        instance_masks: bool = True,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 8 <= value <= 4096:
                raise ValueError(f"{name} must be an integer in [8, 4096], got {value!r}")
        checks = (
            ("vertical_fov_deg", vertical_fov_deg, 1.0, 170.0),
            ("camera_height_m", camera_height_m, 0.1, 2.4),
            ("camera_pitch_deg", camera_pitch_deg, -89.0, 89.0),
            ("time_step_s", time_step_s, 1e-4, 60.0),
            ("forward_step_m", forward_step_m, 1e-3, 5.0),
            ("turn_step_deg", turn_step_deg, 0.1, 180.0),
            ("agent_radius_m", agent_radius_m, 0.05, 1.0),
        )
        for name, value, lo, hi in checks:
            if not isinstance(value, (int, float, np.number)) or not math.isfinite(value) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
        if not (0 < near_m < far_m):
            raise ValueError(f"need 0 < near_m < far_m, got near_m={near_m}, far_m={far_m}")
        self.width, self.height = int(width), int(height)
        self.instance_masks = bool(instance_masks)
        self._last_gt: tuple[np.ndarray, dict[int, str]] | None = None
        self.vertical_fov_deg = float(vertical_fov_deg)
        self.camera_height_m = float(camera_height_m)
        self.camera_pitch_deg = float(camera_pitch_deg)
        self.time_step_s = float(time_step_s)
        self.forward_step_m = float(forward_step_m)
        self.turn_step_rad = math.radians(turn_step_deg)
        self.agent_radius_m = float(agent_radius_m)
        self.near_m, self.far_m = float(near_m), float(far_m)
        self.cull_hidden_rooms = bool(cull_hidden_rooms)
        self._n_rooms, self._n_objects = n_rooms, n_objects
        self._dynamics_arg = dynamics
        self.intrinsics = CameraIntrinsics.from_fov(self.width, self.height, self.vertical_fov_deg)
        self.base_from_camera = base_from_camera(self.camera_height_m, self.camera_pitch_deg)
        from engram.sims.embedded.world import opengl_projection_matrix

        self._projection = opengl_projection_matrix(self.intrinsics, self.near_m, self.far_m)
        self._world = None
        self._seed = None
        self._build(int(seed))

    # -- construction -----------------------------------------------------------
    def _make_dynamics(self, spec: ApartmentSpec) -> ScriptedDynamics | None:
        d = self._dynamics_arg
        if d is None:
            return None
        if isinstance(d, ScriptedDynamics):
            d.validate(spec)
            return d
        if isinstance(d, str):
            if d != "random":
                raise ValueError(f"dynamics must be None, 'random', a dict or a ScriptedDynamics, got {d!r}")
            return ScriptedDynamics.random(spec, seed=spec.seed)
        if isinstance(d, Mapping):  # a dict, or an OmegaConf DictConfig from hydra
            kwargs = {str(k): v for k, v in d.items()}
            kwargs.setdefault("seed", spec.seed)
            return ScriptedDynamics.random(spec, **kwargs)
        raise ValueError(f"dynamics must be None, 'random', a dict or a ScriptedDynamics, got {type(d).__name__}")

    def _build(self, seed: int) -> None:
        from engram.sims.embedded.world import PyBulletWorld

        spec = generate_apartment(seed, self._n_rooms, self._n_objects)
        dynamics = self._make_dynamics(spec)
        self._person_id = max(spec.labels()) + 1 if dynamics is not None and dynamics.person is not None else None
        if self._world is not None:
            self._world.close()
        self._world = PyBulletWorld(spec, person_instance_id=self._person_id)
        self._agent_shape = self._world.make_agent_shape(self.agent_radius_m, self._agent_height_m)
        self._spec = spec
        self._seed = seed
        self._dynamics = dynamics
        self._gt_template = GroundTruth(spec, agent_radius_m=self.agent_radius_m)
        self._labels = spec.labels()
        if self._person_id is not None:
            self._labels[self._person_id] = PERSON_LABEL
        self._reset_state()

    @property
    def _agent_height_m(self) -> float:
        # From just above the floor to the camera: low objects on the floor block the agent.
        return max(self.camera_height_m, 0.3) - 0.03

    def _reset_state(self) -> None:
        spec = self._spec
        self._time_s = 0.0
        self._index = 0
        self._x, self._y, self._yaw = spec.agent_start
        self._ground_truth = self._gt_template.episode_copy()
        for obj in spec.all_objects():
            self._world.set_object_pose(obj.instance_id, obj.position_m, obj.yaw_rad)
        self._last_action = None
        self._collided = False
        if self._dynamics is not None:
            self._apply_dynamics(-math.inf, 0.0)

    # -- public state ------------------------------------------------------------
    @property
    def apartment(self) -> ApartmentSpec:
        """The apartment spec (pure data)."""
        return self._spec

    @property
    def ground_truth(self) -> GroundTruth:
        """Free space, rooms, paths and the object pose log of this episode."""
        return self._ground_truth

    @property
    def dynamics(self) -> ScriptedDynamics | None:
        return self._dynamics

    @property
    def seed(self) -> int:
        return int(self._seed)

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset."""
        return self._time_s

    @property
    def agent_pose(self) -> Pose:
        """world_from_base: the agent's base on the floor, x forward, z up."""
        return Pose.from_xyz_yaw(self._x, self._y, 0.0, self._yaw)

    @property
    def agent_xy_yaw(self) -> tuple[float, float, float]:
        return (self._x, self._y, self._yaw)

    @property
    def world_from_camera(self) -> Pose:
        return self.agent_pose @ self.base_from_camera

    @property
    def person_instance_id(self) -> int | None:
        """Instance id of the walking person (label "person"), or None."""
        return self._person_id

    # -- control ------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Frame:
        """Start a new episode (a new apartment when ``seed`` differs) and return the first frame."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
            if int(seed) != self._seed:
                self._build(int(seed))
                return self.observe()
        self._reset_state()
        return self.observe()

    def step(self, action: str) -> Frame:
        """Apply a discrete action (move_forward, turn_left, turn_right, stop) and return the new frame."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        collided = False
        if action == "move_forward":
            collided = self._translate(self.forward_step_m)
        elif action == "turn_left":
            self._yaw = _wrap(self._yaw + self.turn_step_rad)
        elif action == "turn_right":
            self._yaw = _wrap(self._yaw - self.turn_step_rad)
        return self._advance(action, collided)

    def step_velocity(self, linear_mps: float, angular_radps: float, duration_s: float | None = None) -> Frame:
        """Drive with constant forward and yaw velocity for ``duration_s`` (default one time step)."""
        dt = self.time_step_s if duration_s is None else float(duration_s)
        if not (math.isfinite(linear_mps) and math.isfinite(angular_radps)):
            raise ValueError(f"velocities must be finite, got linear={linear_mps}, angular={angular_radps}")
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        n = max(1, int(math.ceil(abs(linear_mps) * dt / 0.05)), int(math.ceil(abs(angular_radps) * dt / 0.1)))
        collided = False
        for _ in range(n):
            self._yaw = _wrap(self._yaw + angular_radps * dt / n / 2)
            if not collided and linear_mps != 0:
                collided = self._translate(linear_mps * dt / n)
            self._yaw = _wrap(self._yaw + angular_radps * dt / n / 2)
        return self._advance_by("velocity", collided, dt)

    def step_towards(self, x: float, y: float, max_speed_mps: float = 1.0, max_turn_radps: float = math.pi) -> Frame:
        """One time step toward a goal point: turn toward it, then drive (straight when facing it)."""
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"goal must be finite, got ({x}, {y})")
        dx, dy = x - self._x, y - self._y
        dist = math.hypot(dx, dy)
        dt = self.time_step_s
        turn = _wrap(math.atan2(dy, dx) - self._yaw) if dist > 1e-6 else 0.0
        max_turn = max_turn_radps * dt
        turn = max(-max_turn, min(max_turn, turn))
        self._yaw = _wrap(self._yaw + turn)
        collided = False
        if dist > 1e-6 and abs(_wrap(math.atan2(dy, dx) - self._yaw)) < math.radians(30):
            collided = self._translate(min(dist, max_speed_mps * dt))
        return self._advance_by("goal", collided, dt)

    def set_agent_pose(self, x: float, y: float, yaw_rad: float, *, check_collision: bool = True) -> Frame:
        """Teleport the agent (time does not advance); raises ValueError if it would stand inside something."""
        for name, v in (("x", x), ("y", y), ("yaw_rad", yaw_rad)):
            if not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if check_collision and self._collides(float(x), float(y)):
            raise ValueError(f"agent at ({x:.3f}, {y:.3f}) would collide with the apartment")
        self._x, self._y, self._yaw = float(x), float(y), _wrap(float(yaw_rad))
        return self.observe()

    def is_free(self, x: float, y: float) -> bool:
        """True when the agent's cylinder fits at (x, y)."""
        return not self._collides(float(x), float(y))

    # -- internals ----------------------------------------------------------------
    def _collides(self, x: float, y: float) -> bool:
        half = self._agent_height_m / 2
        return self._world.collides(self._agent_shape, [x, y, 0.03 + half], self.agent_radius_m, half)

    def _translate(self, distance_m: float) -> bool:
        """Move along the heading in <= 5 cm sub-steps; stop before the first collision. True if blocked."""
        n = max(1, int(math.ceil(abs(distance_m) / 0.05)))
        c, s = math.cos(self._yaw), math.sin(self._yaw)
        step = distance_m / n
        for _ in range(n):
            nx, ny = self._x + c * step, self._y + s * step
            if self._collides(nx, ny):
                # Close the remaining gap to within 1 cm.
                lo, hi = 0.0, 1.0
                for _ in range(3):
                    mid = 0.5 * (lo + hi)
                    if self._collides(self._x + c * step * mid, self._y + s * step * mid):
                        hi = mid
                    else:
                        lo = mid
                self._x, self._y = self._x + c * step * lo, self._y + s * step * lo
                return True
            self._x, self._y = nx, ny
        return False

    def _advance(self, action: str, collided: bool) -> Frame:
        return self._advance_by(action, collided, self.time_step_s)

    def _advance_by(self, action: str, collided: bool, dt: float) -> Frame:
        t0 = self._time_s
        self._time_s = t0 + dt
        self._index += 1
        self._last_action = action
        self._collided = collided
        if self._dynamics is not None:
            self._apply_dynamics(t0, self._time_s)
        return self.observe()

    def _apply_dynamics(self, t0: float, t1: float) -> None:
        gt = self._ground_truth
        labels = self._spec.labels()
        for ev in self._dynamics.events_between(t0, t1):
            self._world.set_object_pose(ev.instance_id, ev.position_m, ev.yaw_rad)
            gt.record_pose(ev.instance_id, labels[ev.instance_id], ev.time_s, ev.position_m, ev.yaw_rad)
        if self._dynamics.person is not None:
            pos, yaw = self._dynamics.person.pose_at(t1)
            self._world.set_object_pose(self._person_id, pos, yaw)
            gt.record_pose(self._person_id, PERSON_LABEL, max(t1, 0.0), pos, yaw)

    def last_ground_truth(self) -> tuple[np.ndarray, dict[int, str]]:
        """Ground-truth instance ids ("H W" int32) and {id: label} of the last rendered view.

        For scoring only: with ``instance_masks=False`` the frames carry no
        instances, and this is where benchmarks read the truth they score against.
        """
        if self._last_gt is None:
            raise RuntimeError("no view rendered yet: call reset() first")
        return self._last_gt

    def observe(self) -> Frame:
        """Render the current view (time does not advance)."""
        world = self._world
        wfc = self.world_from_camera
        if self.cull_hidden_rooms:
            world.cull(world.visible_rooms(wfc, self.intrinsics, max_range_m=self.far_m))
        from engram.sims.embedded.world import opengl_view_matrix

        r = world.render(opengl_view_matrix(wfc), self._projection, self.width, self.height, self.near_m, self.far_m)
        counts = np.bincount(r.instances.ravel(), minlength=1)
        ids = np.nonzero(counts)[0]
        all_labels = self._labels
        labels = {int(i): all_labels[int(i)] for i in ids if i != 0}
        self._last_gt = (r.instances, labels)
        return Frame(
            index=self._index,
            timestamp_s=self._time_s,
            rgb=r.rgb,
            depth_m=r.depth_m,
            intrinsics=self.intrinsics,
            world_from_camera=wfc,
            instances=r.instances if self.instance_masks else None,
            labels=labels if self.instance_masks else {},
            meta={
                "source": "embedded",
                "seed": self._seed,
                "agent_xy_yaw": (self._x, self._y, self._yaw),
                "action": self._last_action,
                "collided": self._collided,
                "room": self._spec.room_of(self._x, self._y),
            },
        )

    def close(self) -> None:
        """Disconnect the PyBullet client."""
        if self._world is not None:
            self._world.close()
            self._world = None

    def __enter__(self) -> EmbeddedSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        return (
            f"EmbeddedSim(seed={self._seed}, {self.width}x{self.height}, rooms={len(self._spec.rooms)}, "
            f"objects={len(self._spec.objects)}, t={self._time_s:.2f}s)"
        )


def _wrap(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2 * math.pi) - math.pi


# -- scripted coverage walk ------------------------------------------------------


def coverage_waypoints(ground_truth: GroundTruth, start_xy: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """One reachable point per room (nearest its centre), visited in greedy nearest-by-path order.

    Args:
        ground_truth: the apartment's ground truth.
        start_xy: where the walk starts (default: the apartment's agent start).

    Returns:
        (x, y) waypoints, one per reachable room, starting with the start's room.
    """
    spec = ground_truth.spec
    reach = ground_truth.reachable_map()
    cells = np.argwhere(reach.free)
    centres = reach.cell_to_world(cells)
    points = []
    for room in spec.rooms:
        b = room.box.shrink(0.05)
        inside = (
            (centres[:, 0] >= b.x_min)
            & (centres[:, 0] <= b.x_max)
            & (centres[:, 1] >= b.y_min)
            & (centres[:, 1] <= b.y_max)
        )
        if not inside.any():
            continue
        cand = centres[inside]
        k = int(np.argmin(np.linalg.norm(cand - np.asarray(room.box.center), axis=1)))
        points.append((float(cand[k, 0]), float(cand[k, 1])))
    cur = tuple(spec.agent_start[:2]) if start_xy is None else (float(start_xy[0]), float(start_xy[1]))
    order = []
    left = list(points)
    while left:
        d = [ground_truth.shortest_path_length(cur, p) for p in left]
        k = int(np.argmin(d))
        if not math.isfinite(d[k]):
            break  # the rest cannot be reached from here
        cur = left.pop(k)
        order.append(cur)
    return order


def coverage_actions(
    sim: EmbeddedSim, *, look_around: bool = True, max_actions: int = 5000, goal_tolerance_m: float = 0.3
) -> Iterator[str]:
    """Discrete actions that walk ``sim``'s agent through every room (closed loop: reads the agent's pose).

    The caller applies each yielded action with ``sim.step`` before asking for
    the next. At each room's waypoint the agent turns a full circle when
    ``look_around`` is set. Follows shortest paths on the ground-truth grid;
    after a blocked move it waits two steps (``stop``) and re-plans, and it
    gives a waypoint up after eight blocked moves.
    """
    # Plan with 10 cm of extra clearance, so that quantised turns do not graze walls; where
    # that closes a passage (a narrow gap beside furniture), fall back to 5 cm. The apartment
    # generator guarantees every room is connected for a 25 cm radius.
    planners = [GroundTruth(sim.apartment, agent_radius_m=sim.agent_radius_m + m) for m in (0.1, 0.05)]

    def plan(goal: tuple[float, float]) -> tuple[np.ndarray, Any]:
        for planner in planners:
            path = planner.shortest_path(sim.agent_xy_yaw[:2], goal)
            if len(path):
                return path, planner.reachable_map()
        return np.zeros((0, 2)), planners[-1].reachable_map()

    n = 0
    turns_per_circle = max(1, int(round(2 * math.pi / sim.turn_step_rad)))
    for wp in coverage_waypoints(planners[-1], sim.agent_xy_yaw[:2]):
        blocked = 0
        path, reach = plan(wp)
        while n < max_actions:
            x, y, yaw = sim.agent_xy_yaw
            if math.hypot(wp[0] - x, wp[1] - y) <= goal_tolerance_m or len(path) == 0 or blocked >= 8:
                break
            # Aim at the farthest path point (up to 1 m ahead) in straight, clear sight.
            k0 = int(np.argmin(np.linalg.norm(path - [x, y], axis=1)))
            rest = path[k0:]
            target = rest[min(len(rest) - 1, 2)]
            for cand in rest[np.linalg.norm(rest - [x, y], axis=1) <= 1.0][::-1]:
                if _line_clear(reach, (x, y), cand):
                    target = cand
                    break
            err = _wrap(math.atan2(target[1] - y, target[0] - x) - yaw)
            if abs(err) > sim.turn_step_rad / 2:
                action = "turn_left" if err > 0 else "turn_right"
            else:
                action = "move_forward"
            yield action
            n += 1
            if action == "move_forward":
                nx, ny, _ = sim.agent_xy_yaw
                if math.hypot(nx - x, ny - y) < 0.5 * sim.forward_step_m:
                    blocked += 1
                    # Something in the way (often the walking person): wait a moment, then re-plan.
                    for _ in range(2):
                        if n < max_actions:
                            yield "stop"
                            n += 1
                    path, reach = plan(wp)
        if look_around:
            for _ in range(turns_per_circle):
                if n >= max_actions:
                    return
                yield "turn_left"
                n += 1
        if n >= max_actions:
            return


def _line_clear(reach: Any, a_xy: Sequence[float], b_xy: Sequence[float]) -> bool:
    """True when every 2.5 cm sample of the segment a-b lies on reachable floor."""
    a, b = np.asarray(a_xy, dtype=np.float64), np.asarray(b_xy, dtype=np.float64)
    n = max(2, int(np.linalg.norm(b - a) / (0.5 * reach.resolution_m)) + 1)
    pts = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)
    cells = reach.world_to_cell(pts)
    ok = reach.in_bounds(cells)
    if not ok.all():
        return False
    return bool(reach.free[cells[:, 0], cells[:, 1]].all())


def coverage_walk(sim: EmbeddedSim, *, look_around: bool = True, max_actions: int = 5000) -> Iterator[Frame]:
    """Frames of a coverage walk: the current frame, then one per action of `coverage_actions`."""
    yield sim.observe()
    for action in coverage_actions(sim, look_around=look_around, max_actions=max_actions):
        yield sim.step(action)
