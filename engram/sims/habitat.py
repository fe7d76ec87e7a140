"""habitat-sim as an engram source: the same reset / step / observe as the embedded world.

`HabitatSource` drives a habitat-sim 0.2.x / 0.3.x `Simulator` with RGB, depth
and semantic camera sensors and turns each observation into a `Frame`. This
module is the one place that knows habitat's conventions, and it converts at
this edge only:

- habitat's world is y-up (gravity -y) and an agent looks down -z; engram's
  world is z-up. ``engram (x, y, z) = habitat (x, -z, y)``, so habitat's
  default forward (-z) is engram's +y and both keep +x.
- habitat's cameras follow OpenGL (x right, y up, looking down -z); engram's
  follow OpenCV (x right, y down, z forward): a rotation of pi about x.
- habitat hands rotations over as numpy-quaternion ``(w, x, y, z)``, magnum
  quaternions, or lists in habitat-lab's ``[x, y, z, w]`` order; engram uses
  ``[x, y, z, w]`` arrays.

The pure conversion functions (`habitat_to_engram_world_from_camera`, ...)
need nothing but numpy. habitat_sim itself is imported when a `HabitatSource`
is built; without it, construction raises one `MissingExtraError` that says
how to install it (habitat-sim ships through conda, not PyPI).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engram._optional import require
from engram.sims.base import ACTIONS
from engram.types import CameraIntrinsics, Frame, Pose

__all__ = [
    "ENGRAM_FROM_HABITAT_WORLD",
    "HabitatSource",
    "engram_to_habitat_agent_state",
    "engram_to_habitat_points",
    "engram_to_habitat_world_from_camera",
    "habitat_intrinsics",
    "habitat_to_engram_points",
    "habitat_to_engram_world_from_base",
    "habitat_to_engram_world_from_camera",
    "observation_to_frame",
    "quaternion_to_xyzw",
    "semantic_labels",
]

# engram world <- habitat world: (x, y, z)_engram = (x, -z, y)_habitat.
ENGRAM_FROM_HABITAT_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# OpenGL camera <- OpenCV camera (rotation by pi about x).
_GL_FROM_CV = np.diag([1.0, -1.0, -1.0])
# habitat agent body (x right, y up, forward -z) <- engram base (x forward, y left, z up).
_AGENT_FROM_BASE = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])

SENSOR_UUIDS = {"rgb": "color_sensor", "depth": "depth_sensor", "semantic": "semantic_sensor"}


# ---------------------------------------------------------------------------
# conventions (pure functions)


def quaternion_to_xyzw(rotation: Any) -> np.ndarray:
    """Any quaternion habitat hands over, as a unit ``[x, y, z, w]`` float64 array.

    Accepts numpy-quaternion objects (attributes ``w, x, y, z``), magnum
    quaternions (``vector`` and ``scalar``) and 4-sequences in habitat-lab's
    ``[x, y, z, w]`` order (``quaternion_to_list``).
    """
    if all(hasattr(rotation, a) for a in ("w", "x", "y", "z")):
        q = np.array([rotation.x, rotation.y, rotation.z, rotation.w], dtype=np.float64)
    elif hasattr(rotation, "scalar") and hasattr(rotation, "vector"):
        v = rotation.vector
        q = np.array([v[0], v[1], v[2], rotation.scalar], dtype=np.float64)
    else:
        try:
            q = np.asarray(rotation, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"rotation must be a quaternion or 4 numbers [x, y, z, w], got {rotation!r}") from exc
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValueError(f"rotation must be 4 finite numbers [x, y, z, w], got {q}")
    n = float(np.linalg.norm(q))
    if abs(n - 1.0) > 1e-3:
        raise ValueError(f"rotation quaternion must have unit norm, got norm {n:.4f}")
    return q / n


def _position(position: Any, name: str = "position") -> np.ndarray:
    p = np.asarray(position, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be 3 finite numbers, got {position!r}")
    return p


def habitat_to_engram_points(points_h: Any) -> np.ndarray:
    """Points in habitat's y-up world, "N 3" or "3", to engram's z-up world."""
    p = np.asarray(points_h, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points must have shape (N, 3) or (3,), got {p.shape}")
    return p @ ENGRAM_FROM_HABITAT_WORLD.T


def engram_to_habitat_points(points_e: Any) -> np.ndarray:
    """Points in engram's z-up world, "N 3" or "3", to habitat's y-up world."""
    p = np.asarray(points_e, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points must have shape (N, 3) or (3,), got {p.shape}")
    return p @ ENGRAM_FROM_HABITAT_WORLD


def habitat_to_engram_world_from_camera(position: Any, rotation_xyzw: Any) -> Pose:
    """A habitat sensor's world pose to engram's ``world_from_camera`` (OpenCV camera, z-up world).

    Args:
        position: the sensor's position in habitat's world (``sensor_states[uuid].position``).
        rotation_xyzw: its rotation: ``[x, y, z, w]`` or a numpy-quaternion / magnum quaternion.
    """
    habitat_from_gl = Pose.from_quaternion(quaternion_to_xyzw(rotation_xyzw), _position(position))
    r = ENGRAM_FROM_HABITAT_WORLD @ habitat_from_gl.rotation @ _GL_FROM_CV
    t = ENGRAM_FROM_HABITAT_WORLD @ habitat_from_gl.translation
    return Pose.from_rt(r, t)


def engram_to_habitat_world_from_camera(world_from_camera: Pose) -> tuple[np.ndarray, np.ndarray]:
    """The inverse: engram's ``world_from_camera`` to a habitat sensor (position, ``[x, y, z, w]``)."""
    r = ENGRAM_FROM_HABITAT_WORLD.T @ world_from_camera.rotation @ _GL_FROM_CV.T
    t = ENGRAM_FROM_HABITAT_WORLD.T @ world_from_camera.translation
    return t, Pose.from_rt(r, np.zeros(3)).as_quaternion()


def habitat_to_engram_world_from_base(position: Any, rotation_xyzw: Any) -> Pose:
    """A habitat agent's state to engram's ``world_from_base`` (base: x forward, y left, z up, on the floor)."""
    habitat_from_agent = Pose.from_quaternion(quaternion_to_xyzw(rotation_xyzw), _position(position))
    r = ENGRAM_FROM_HABITAT_WORLD @ habitat_from_agent.rotation @ _AGENT_FROM_BASE
    return Pose.from_rt(r, ENGRAM_FROM_HABITAT_WORLD @ habitat_from_agent.translation)


def engram_to_habitat_agent_state(
    x_m: float, y_m: float, yaw_rad: float, z_m: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """An engram floor pose (x, y, yaw about +z, 0 = facing +x) to a habitat agent (position, ``[x, y, z, w]``)."""
    world_from_base = Pose.from_xyz_yaw(x_m, y_m, z_m, yaw_rad)
    r = ENGRAM_FROM_HABITAT_WORLD.T @ world_from_base.rotation @ _AGENT_FROM_BASE.T
    position = ENGRAM_FROM_HABITAT_WORLD.T @ world_from_base.translation
    return position, Pose.from_rt(r, np.zeros(3)).as_quaternion()


def habitat_intrinsics(width: int, height: int, hfov_deg: float) -> CameraIntrinsics:
    """Pinhole intrinsics of a habitat pinhole camera (square pixels, horizontal field of view)."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
    return CameraIntrinsics(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)


def _xyzw_to_habitat_rotation(habitat_sim: Any, q_xyzw: np.ndarray) -> Any:
    """A ``[x, y, z, w]`` array in the form the installed habitat_sim expects for AgentState.rotation."""
    try:
        import quaternion as npq  # numpy-quaternion, a habitat_sim dependency

        return npq.quaternion(float(q_xyzw[3]), float(q_xyzw[0]), float(q_xyzw[1]), float(q_xyzw[2]))
    except ImportError:
        utils = getattr(getattr(habitat_sim, "utils", None), "common", None)
        if utils is not None and hasattr(utils, "quat_from_coeffs"):
            return utils.quat_from_coeffs(q_xyzw)
        return np.asarray(q_xyzw, dtype=np.float64)


# ---------------------------------------------------------------------------
# labels


def semantic_labels(semantic_scene: Any) -> dict[int, str]:
    """Semantic id -> category name from a habitat ``SemanticScene``.

    Uses the annotated objects (MP3D ``.house``, HM3D ``.semantic.txt``,
    Replica ``info_semantic.json``); scenes that only carry a category lexicon
    (rigid objects with category ``semantic_id``\\ s, HSSD-style) map category
    indices to names instead.
    """
    labels: dict[int, str] = {}
    if semantic_scene is None:
        return labels
    for obj in getattr(semantic_scene, "objects", None) or []:
        if obj is None:
            continue
        sid = getattr(obj, "semantic_id", None)
        if sid is None:  # older builds: the id string ends in the number, e.g. "_12" or "3_5_12"
            try:
                sid = int(str(obj.id).split("_")[-1])
            except (AttributeError, ValueError):
                continue
        category = getattr(obj, "category", None)
        name = category.name() if category is not None else ""
        if name:
            labels[int(sid)] = str(name)
    if labels:
        return labels
    for category in getattr(semantic_scene, "categories", None) or []:
        if category is None:
            continue
        try:
            index, name = int(category.index()), str(category.name())
        except (AttributeError, TypeError, ValueError):
            continue
        if name and index >= 0:
            labels[index] = name
    return labels


def _sidecar(scene_path: Path) -> dict[str, Any]:
    """The ``*.engram.json`` an engram scene export writes beside its files (labels, start pose)."""
    candidates = [scene_path.with_suffix(".engram.json")]
    if scene_path.name.endswith(".scene_instance.json"):
        candidates.append(scene_path.with_name(scene_path.name.replace(".scene_instance.json", ".engram.json")))
    for c in candidates:
        if c.is_file():
            try:
                return json.loads(c.read_text())
            except (OSError, json.JSONDecodeError):
                return {}
    return {}


# ---------------------------------------------------------------------------
# the source


class HabitatSource:
    """habitat-sim as an engram `Simulator`: reset, step(action), observe -> `Frame`.

    Args:
        scene_path: a scene habitat loads: a ``.glb`` / ``.ply`` stage, a
            ``.scene_instance.json``, or a scene id known to ``scene_dataset_config``.
        width, height: sensor resolution in pixels.
        hfov_deg: horizontal field of view of all three cameras.
        sensor_height_m: camera height above the agent's feet.
        camera_pitch_deg: downward pitch of the cameras (0 = level), as in `EmbeddedSim`.
        seed: seed for habitat's random navigable points (start poses).
        scene_dataset_config: a ``*.scene_dataset_config.json`` (HM3D, HSSD, an engram export).
        forward_step_m, turn_step_deg: the discrete actions' sizes (as in `EmbeddedSim`).
        time_step_s: simulated time per step, for ``Frame.timestamp_s``.
        start_pose: engram ``(x_m, y_m, yaw_rad)`` for `reset`; None takes the
            export's ``agent_start`` when present, else a random navigable point.
        semantic: add the semantic sensor (instances + labels in each frame).
        labels: semantic id -> name, overriding the scene's annotations.
        gpu_device_id: habitat's GPU for rendering.
        max_depth_m: depth sensor far plane; deeper pixels read 0 (no return).
        agent_radius_m, agent_height_m: the agent's cylinder, for a navmesh computed
            here when the scene ships none (an engram export has none).

    Raises:
        MissingExtraError: habitat_sim is not installed (the message says how).
        ValueError: a bad argument.
    """

    def __init__(
        self,
        scene_path: str | Path,
        *,
        width: int = 320,
        height: int = 240,
        hfov_deg: float = 90.0,
        sensor_height_m: float = 1.5,
        camera_pitch_deg: float = 0.0,
        seed: int = 0,
        scene_dataset_config: str | Path | None = None,
        forward_step_m: float = 0.25,
        turn_step_deg: float = 30.0,
        time_step_s: float = 0.25,
        start_pose: Sequence[float] | None = None,
        semantic: bool = True,
        labels: Mapping[int, str] | None = None,
        gpu_device_id: int = 0,
        max_depth_m: float = 10.0,
        agent_radius_m: float = 0.2,
        agent_height_m: float = 1.5,
    ) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (
            ("sensor_height_m", sensor_height_m),
            ("forward_step_m", forward_step_m),
            ("turn_step_deg", turn_step_deg),
            ("time_step_s", time_step_s),
            ("max_depth_m", max_depth_m),
            ("agent_radius_m", agent_radius_m),
            ("agent_height_m", agent_height_m),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(camera_pitch_deg, (int, float)) and -89.0 <= camera_pitch_deg <= 89.0):
            raise ValueError(f"camera_pitch_deg must be a number in [-89, 89], got {camera_pitch_deg!r}")
        if start_pose is not None and len(start_pose) != 3:
            raise ValueError(f"start_pose must be (x_m, y_m, yaw_rad), got {start_pose!r}")
        self.intrinsics = habitat_intrinsics(int(width), int(height), hfov_deg)
        habitat_sim = require("habitat_sim", "the habitat-sim source")
        self._hs = habitat_sim
        self.scene_path = Path(scene_path)
        self.sensor_height_m = float(sensor_height_m)
        self.time_step_s = float(time_step_s)
        self.max_depth_m = float(max_depth_m)
        self._seed = int(seed)
        self._semantic = bool(semantic)
        sidecar = _sidecar(self.scene_path) if self.scene_path.suffix else {}
        self._start_pose = tuple(start_pose) if start_pose is not None else sidecar.get("agent_start")

        sim_cfg = habitat_sim.SimulatorConfiguration()
        sim_cfg.scene_id = str(scene_path)
        if scene_dataset_config is not None:
            sim_cfg.scene_dataset_config_file = str(scene_dataset_config)
        sim_cfg.gpu_device_id = int(gpu_device_id)
        sim_cfg.random_seed = self._seed
        sim_cfg.enable_physics = False

        specs = []
        kinds = [("rgb", habitat_sim.SensorType.COLOR), ("depth", habitat_sim.SensorType.DEPTH)]
        if self._semantic:
            kinds.append(("semantic", habitat_sim.SensorType.SEMANTIC))
        for kind, sensor_type in kinds:
            spec = habitat_sim.CameraSensorSpec()
            spec.uuid = SENSOR_UUIDS[kind]
            spec.sensor_type = sensor_type
            spec.resolution = [int(height), int(width)]
            spec.position = [0.0, self.sensor_height_m, 0.0]
            # habitat's sensor orientation is Euler angles in radians; looking down is negative about x
            spec.orientation = [-math.radians(float(camera_pitch_deg)), 0.0, 0.0]
            spec.hfov = float(hfov_deg)  # habitat converts to magnum Deg
            subtypes = getattr(habitat_sim, "SensorSubType", None)
            if subtypes is not None:
                spec.sensor_subtype = subtypes.PINHOLE
            if kind == "depth":
                spec.far = self.max_depth_m
            specs.append(spec)

        agent_cfg = habitat_sim.agent.AgentConfiguration()
        agent_cfg.sensor_specifications = specs
        act, actuation = habitat_sim.agent.ActionSpec, habitat_sim.agent.ActuationSpec
        agent_cfg.action_space = {
            "move_forward": act("move_forward", actuation(amount=float(forward_step_m))),
            "turn_left": act("turn_left", actuation(amount=float(turn_step_deg))),
            "turn_right": act("turn_right", actuation(amount=float(turn_step_deg))),
        }
        agent_cfg.radius = float(agent_radius_m)
        agent_cfg.height = float(agent_height_m)
        self._sim = habitat_sim.Simulator(habitat_sim.Configuration(sim_cfg, [agent_cfg]))
        self._agent = self._sim.initialize_agent(0)
        if not self.pathfinder_loaded:
            self._compute_navmesh(float(agent_radius_m), float(agent_height_m))

        self.labels: dict[int, str] = dict(semantic_labels(getattr(self._sim, "semantic_scene", None)))
        self.labels.update({int(k): str(v) for k, v in (sidecar.get("labels") or {}).items()})
        self.labels.update({int(k): str(v) for k, v in (labels or {}).items()})
        self._sidecar = sidecar
        self._agent_radius_m = float(agent_radius_m)
        self._ground_truth: Any = None
        self._index = 0
        self._steps = 0
        self._closed = False

    # -- Simulator protocol ----------------------------------------------
    def reset(self, seed: int | None = None) -> Frame:
        """Put the agent at its start pose (or a seeded random navigable point) and observe."""
        self._check_open()
        if seed is not None:
            self._seed = int(seed)
        if hasattr(self._sim, "seed"):
            self._sim.seed(self._seed)
        self._sim.reset()
        state = self._hs.AgentState()
        if self._start_pose is not None:
            x, y, yaw = (float(v) for v in self._start_pose)
            position, q = engram_to_habitat_agent_state(x, y, yaw)
            if self.pathfinder_loaded:
                snapped = np.asarray(self._sim.pathfinder.snap_point(position), dtype=np.float64)
                if snapped.shape == (3,) and np.all(np.isfinite(snapped)):  # NaN: no navmesh nearby
                    position = snapped
        else:
            rng = np.random.default_rng(self._seed)
            if self.pathfinder_loaded:
                position = np.asarray(self._sim.pathfinder.get_random_navigable_point(), dtype=np.float64)
            else:
                position = np.zeros(3)
            _, q = engram_to_habitat_agent_state(0.0, 0.0, float(rng.uniform(-math.pi, math.pi)))
        state.position = np.asarray(position, dtype=np.float64)
        state.rotation = _xyzw_to_habitat_rotation(self._hs, q)
        self._agent.set_state(state)
        self._index = 0
        self._steps = 0
        return self.observe()

    def step(self, action: str) -> Frame:
        """Apply one of `engram.sims.base.ACTIONS` and observe; ``"stop"`` only observes."""
        self._check_open()
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        if action != "stop":
            self._agent.act(action)
        self._steps += 1
        return self.observe()

    def observe(self) -> Frame:
        """The current observation as a `Frame` (engram conventions)."""
        self._check_open()
        obs = self._sim.get_sensor_observations()
        state = self._agent.get_state()
        sensor = state.sensor_states[SENSOR_UUIDS["rgb"]]
        frame = observation_to_frame(
            obs,
            sensor_position=sensor.position,
            sensor_rotation=sensor.rotation,
            intrinsics=self.intrinsics,
            index=self._index,
            timestamp_s=self._steps * self.time_step_s,
            labels=self.labels,
            meta={"source": "habitat", "scene": str(self.scene_path)},
        )
        self._index += 1
        return frame

    @property
    def agent_pose(self) -> Pose:
        """``world_from_base``: the agent on the floor, x forward, y left, z up (engram world)."""
        self._check_open()
        state = self._agent.get_state()
        return habitat_to_engram_world_from_base(state.position, state.rotation)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sim.close()

    def __enter__(self) -> HabitatSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ground_truth(self) -> Any:
        """The embedded world's `GroundTruth` for a scene exported from it (by its sidecar), else None.

        Gives jobs the same metrics (coverage, object positions) in habitat as in
        the embedded world. The apartment is regenerated from the recorded seed and
        checked against the recorded labels and bounds.
        """
        if self._ground_truth is None and "seed" in self._sidecar:
            from engram.sims.embedded.groundtruth import GroundTruth
            from engram.sims.embedded.scenes import generate_apartment

            spec = generate_apartment(int(self._sidecar["seed"]))
            labels = {str(i): n for i, n in spec.labels().items()}
            bounds = [spec.bounds.x_min, spec.bounds.y_min, spec.bounds.x_max, spec.bounds.y_max]
            if labels != self._sidecar.get("labels") or not np.allclose(bounds, self._sidecar.get("bounds", bounds)):
                return None  # exported with non-default generator settings: cannot be regenerated from the seed
            self._ground_truth = GroundTruth(spec, agent_radius_m=self._agent_radius_m)
        return self._ground_truth

    # -- navmesh, for metrics ----------------------------------------------
    @property
    def pathfinder_loaded(self) -> bool:
        pf = getattr(self._sim, "pathfinder", None)
        return bool(pf is not None and getattr(pf, "is_loaded", False))

    def _compute_navmesh(self, radius_m: float, height_m: float) -> None:
        """Bake a navmesh from the loaded scene, its static objects (furniture) included."""
        nav_settings_cls = getattr(self._hs, "NavMeshSettings", None)
        if nav_settings_cls is None or not hasattr(self._sim, "recompute_navmesh"):
            return
        settings = nav_settings_cls()
        if hasattr(settings, "set_defaults"):
            settings.set_defaults()
        settings.agent_radius = radius_m
        settings.agent_height = height_m
        if hasattr(settings, "include_static_objects"):  # habitat-sim >= 0.3
            settings.include_static_objects = True
            self._sim.recompute_navmesh(self._sim.pathfinder, settings)
        else:  # habitat-sim 0.2.x takes it as an argument
            self._sim.recompute_navmesh(self._sim.pathfinder, settings, include_static_objects=True)

    def _pathfinder(self) -> Any:
        self._check_open()
        if not self.pathfinder_loaded:
            raise ValueError(f"scene {self.scene_path} has no navmesh (none shipped and baking one failed)")
        return self._sim.pathfinder

    def geodesic_distance(self, start_m: Sequence[float], goal_m: Sequence[float]) -> float:
        """Shortest walkable distance on the navmesh between two engram-world points; inf when unreachable."""
        pf = self._pathfinder()
        path = self._hs.ShortestPath()
        path.requested_start = engram_to_habitat_points(_position(start_m, "start_m"))
        path.requested_end = engram_to_habitat_points(_position(goal_m, "goal_m"))
        if not pf.find_path(path):
            return math.inf
        d = float(path.geodesic_distance)
        return d if math.isfinite(d) else math.inf

    def shortest_path(self, start_m: Sequence[float], goal_m: Sequence[float]) -> np.ndarray:
        """The navmesh path's points in the engram world, "N 3" (empty when unreachable)."""
        pf = self._pathfinder()
        path = self._hs.ShortestPath()
        path.requested_start = engram_to_habitat_points(_position(start_m, "start_m"))
        path.requested_end = engram_to_habitat_points(_position(goal_m, "goal_m"))
        if not pf.find_path(path) or len(path.points) == 0:
            return np.zeros((0, 3))
        return habitat_to_engram_points(np.asarray(path.points, dtype=np.float64).reshape(-1, 3))

    def is_navigable(self, point_m: Sequence[float]) -> bool:
        """True when an engram-world point lies on the navmesh."""
        pf = self._pathfinder()
        return bool(pf.is_navigable(engram_to_habitat_points(_position(point_m, "point_m"))))

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("HabitatSource is closed")


def observation_to_frame(
    observations: Mapping[str, Any],
    *,
    sensor_position: Any,
    sensor_rotation: Any,
    intrinsics: CameraIntrinsics,
    index: int,
    timestamp_s: float,
    labels: Mapping[int, str] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Frame:
    """One habitat observation dict (``color_sensor`` RGBA, ``depth_sensor``, ``semantic_sensor``) as a `Frame`.

    Depth that is not finite or not positive becomes 0 (no return); semantic
    ids become int32 instances with the labels of the ids present.
    """
    rgba = np.asarray(observations[SENSOR_UUIDS["rgb"]])
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
        raise ValueError(f"color observation must be H x W x 3 or 4, got shape {rgba.shape}")
    rgb = np.ascontiguousarray(rgba[..., :3], dtype=np.uint8)
    depth = None
    if SENSOR_UUIDS["depth"] in observations:
        d = np.asarray(observations[SENSOR_UUIDS["depth"]], dtype=np.float32)
        if d.ndim == 3 and d.shape[2] == 1:
            d = d[..., 0]
        with np.errstate(invalid="ignore"):
            d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0)).astype(np.float32)
        depth = d
    instances = None
    frame_labels: dict[int, str] = {}
    if SENSOR_UUIDS["semantic"] in observations:
        s = np.asarray(observations[SENSOR_UUIDS["semantic"]])
        if s.ndim == 3 and s.shape[2] == 1:
            s = s[..., 0]
        if s.size and int(s.max()) > np.iinfo(np.int32).max:
            raise ValueError(f"semantic id {int(s.max())} does not fit int32")
        instances = s.astype(np.int32)
        if labels:
            present = np.unique(instances)
            frame_labels = {int(i): labels[int(i)] for i in present if int(i) in labels}
    return Frame(
        index=index,
        timestamp_s=timestamp_s,
        rgb=rgb,
        depth_m=depth,
        intrinsics=intrinsics,
        world_from_camera=habitat_to_engram_world_from_camera(sensor_position, sensor_rotation),
        instances=instances,
        labels=frame_labels,
        meta=dict(meta or {}),
    )
