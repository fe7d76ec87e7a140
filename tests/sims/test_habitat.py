"""engram.sims.habitat: habitat -> engram conventions, the placeholder error, and a fake habitat_sim end to end."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from engram._optional import MissingExtraError
from engram.perception.geometry import frame_points_world, project_points
from engram.sims import habitat as hab
from engram.sims.base import Simulator
from engram.types import Pose

SQ = math.sqrt(0.5)


class FakeQuat:
    """numpy-quaternion's shape: attributes w, x, y, z."""

    def __init__(self, w: float, x: float, y: float, z: float) -> None:
        self.w, self.x, self.y, self.z = w, x, y, z


def _yaw_quat_h(yaw_h_rad: float) -> FakeQuat:
    """A rotation by ``yaw_h_rad`` about habitat's +y (up)."""
    return FakeQuat(math.cos(yaw_h_rad / 2), 0.0, math.sin(yaw_h_rad / 2), 0.0)


# ---------------------------------------------------------------------------
# conventions against hand-worked examples


def _project_world(pose: Pose, point_e, k):
    cam = pose.inverse().transform_points(np.asarray([point_e], dtype=np.float64))
    uv, z, visible = project_points(cam, k)
    return uv[0], z[0], visible[0]


def test_identity_habitat_camera_looks_along_engram_plus_y() -> None:
    k = hab.habitat_intrinsics(320, 240, 90.0)
    assert k.fx == pytest.approx(160.0) and k.fy == pytest.approx(160.0)
    # Agent at habitat (1, 0, -2), camera 1.5 m up, no rotation: it looks down habitat -z.
    # In engram that camera sits at (1, 2, 1.5) and looks along +y.
    pose = hab.habitat_to_engram_world_from_camera([1.0, 1.5, -2.0], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(pose.translation, [1.0, 2.0, 1.5])
    uv, z, vis = _project_world(pose, [1.0, 5.0, 1.5], k)  # 3 m straight ahead
    assert vis and z == pytest.approx(3.0)
    np.testing.assert_allclose(uv, [k.cx, k.cy], atol=1e-9)
    uv, _, _ = _project_world(pose, [2.0, 5.0, 1.5], k)  # 1 m to the right (+x in both worlds)
    np.testing.assert_allclose(uv, [k.cx + 160.0 / 3.0, k.cy], atol=1e-9)
    uv, _, _ = _project_world(pose, [1.0, 5.0, 2.5], k)  # 1 m up: higher in the image, smaller v
    np.testing.assert_allclose(uv, [k.cx, k.cy - 160.0 / 3.0], atol=1e-9)
    _, _, vis = _project_world(pose, [1.0, -1.0, 1.5], k)  # behind the camera
    assert not vis


def test_turned_habitat_camera() -> None:
    k = hab.habitat_intrinsics(320, 240, 90.0)
    # +90 deg about habitat +y turns the view from -z to -x: engram -x, and its right is engram +y.
    pose = hab.habitat_to_engram_world_from_camera([0.0, 1.5, 0.0], [0.0, SQ, 0.0, SQ])
    uv, z, vis = _project_world(pose, [-3.0, 0.0, 1.5], k)
    assert vis and z == pytest.approx(3.0)
    np.testing.assert_allclose(uv, [k.cx, k.cy], atol=1e-9)
    uv, _, _ = _project_world(pose, [-3.0, 1.0, 1.5], k)
    np.testing.assert_allclose(uv, [k.cx + 160.0 / 3.0, k.cy], atol=1e-9)
    # Tilted 45 deg down (-45 about habitat +x): a floor point 1.5 m ahead is at the image centre.
    c, s = math.cos(-math.pi / 8), math.sin(-math.pi / 8)
    pose = hab.habitat_to_engram_world_from_camera([0.0, 1.5, 0.0], [s, 0.0, 0.0, c])
    uv, z, vis = _project_world(pose, [0.0, 1.5, 0.0], k)
    assert vis and z == pytest.approx(1.5 * math.sqrt(2))
    np.testing.assert_allclose(uv, [k.cx, k.cy], atol=1e-9)


def test_corner_pixel_is_at_half_the_field_of_view() -> None:
    k = hab.habitat_intrinsics(200, 100, 60.0)
    # The image's left edge (u = -0.5) is 30 deg left of the optical axis.
    assert math.degrees(math.atan((k.cx + 0.5) / k.fx)) == pytest.approx(30.0)
    with pytest.raises(ValueError, match="hfov_deg"):
        hab.habitat_intrinsics(200, 100, 180.0)


def test_point_and_pose_round_trips() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3))
    np.testing.assert_allclose(hab.habitat_to_engram_points(hab.engram_to_habitat_points(pts)), pts, atol=1e-12)
    # habitat up (+y) is engram up (+z); habitat forward (-z) is engram +y
    np.testing.assert_allclose(hab.habitat_to_engram_points([0.0, 1.0, 0.0]), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(hab.habitat_to_engram_points([0.0, 0.0, -1.0]), [0.0, 1.0, 0.0])
    assert np.linalg.det(hab.ENGRAM_FROM_HABITAT_WORLD) == pytest.approx(1.0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        t = rng.normal(size=3)
        pose = hab.habitat_to_engram_world_from_camera(t, q)
        t2, q2 = hab.engram_to_habitat_world_from_camera(pose)
        np.testing.assert_allclose(t2, t, atol=1e-9)
        assert min(np.abs(q2 - q).max(), np.abs(q2 + q).max()) < 1e-9
        # a point seen by the habitat camera at GL (0, 0, -d) is d metres down engram's optical axis
        d = rng.uniform(0.5, 5.0)
        habitat_from_gl = Pose.from_quaternion(q, t)
        p_h = habitat_from_gl.transform_points([[0.0, 0.0, -d]])[0]
        p_cam = pose.inverse().transform_points(hab.habitat_to_engram_points(p_h)[None])[0]
        np.testing.assert_allclose(p_cam, [0.0, 0.0, d], atol=1e-9)


def test_agent_state_to_base_pose() -> None:
    # habitat's identity agent faces -z: engram yaw +90 deg (facing +y).
    base = hab.habitat_to_engram_world_from_base([2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(base.translation, [2.0, 1.0, 0.0])
    np.testing.assert_allclose(base.rotation[:, 0], [0.0, 1.0, 0.0], atol=1e-12)  # forward
    np.testing.assert_allclose(base.rotation[:, 2], [0.0, 0.0, 1.0], atol=1e-12)  # up
    for yaw in np.linspace(-3.0, 3.0, 7):
        pos, q = hab.engram_to_habitat_agent_state(1.0, -2.0, float(yaw))
        back = hab.habitat_to_engram_world_from_base(pos, q)
        assert back.allclose(Pose.from_xyz_yaw(1.0, -2.0, 0.0, float(yaw)), atol=1e-9)
        assert abs(q[0]) < 1e-12 and abs(q[2]) < 1e-12  # a yaw is a rotation about habitat y only
    pos, q = hab.engram_to_habitat_agent_state(0.0, 0.0, math.pi / 2)
    np.testing.assert_allclose(q, [0, 0, 0, 1], atol=1e-12)


def test_quaternion_forms() -> None:
    want = np.array([0.0, SQ, 0.0, SQ])
    np.testing.assert_allclose(hab.quaternion_to_xyzw(FakeQuat(SQ, 0.0, SQ, 0.0)), want)
    magnum_like = types.SimpleNamespace(vector=(0.0, SQ, 0.0), scalar=SQ)
    np.testing.assert_allclose(hab.quaternion_to_xyzw(magnum_like), want)
    np.testing.assert_allclose(hab.quaternion_to_xyzw([0.0, SQ, 0.0, SQ]), want)
    with pytest.raises(ValueError, match="unit norm"):
        hab.quaternion_to_xyzw([0.0, 0.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="4 finite"):
        hab.quaternion_to_xyzw([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="position"):
        hab.habitat_to_engram_world_from_camera([0.0, np.nan, 0.0], [0, 0, 0, 1])


# ---------------------------------------------------------------------------
# placeholder when habitat_sim is missing


def test_missing_habitat_sim_raises_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "habitat_sim", None)  # makes `import habitat_sim` fail
    with pytest.raises(MissingExtraError, match=r"conda install habitat-sim -c conda-forge -c aihabitat") as info:
        hab.HabitatSource("scene.glb")
    assert isinstance(info.value.__cause__, ImportError)
    assert isinstance(info.value, ImportError)


def test_importing_engram_never_imports_habitat_sim() -> None:
    import subprocess

    code = (
        "import sys, engram, engram.sims.habitat; "
        "assert 'habitat_sim' not in sys.modules; assert 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


# ---------------------------------------------------------------------------
# a fake habitat_sim that renders a wall analytically, in habitat's own conventions

WALL_Z_H = -5.0  # the wall plane z = -5 in habitat (engram y = +5)


def _rot_y(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _make_fake_habitat_sim(raycast=None) -> types.ModuleType:
    """A stand-in habitat_sim; ``raycast(origins_h, dirs_h) -> (t, ids)`` replaces the analytic wall."""
    m = types.ModuleType("habitat_sim")

    class Bag:
        def __init__(self, *args, **kwargs) -> None:
            self.args = args
            self.__dict__.update(kwargs)

    class SensorType:
        COLOR, DEPTH, SEMANTIC = "color", "depth", "semantic"

    class ShortestPath:
        def __init__(self) -> None:
            self.requested_start = None
            self.requested_end = None
            self.geodesic_distance = math.inf
            self.points = []

    class AgentState:
        def __init__(self) -> None:
            self.position = np.zeros(3)
            self.rotation = FakeQuat(1.0, 0.0, 0.0, 0.0)
            self.sensor_states = {}

    class PathFinder:
        is_loaded = True  # the tests below turn it off to exercise navmesh baking

        def is_navigable(self, p) -> bool:
            p = np.asarray(p)
            return bool(abs(p[1]) < 1e-6 and -4.0 <= p[0] <= 4.0 and -4.5 <= p[2] <= 4.0)

        def find_path(self, path) -> bool:
            a, b = np.asarray(path.requested_start), np.asarray(path.requested_end)
            if not (self.is_navigable(a) and self.is_navigable(b)):
                return False
            path.geodesic_distance = float(np.linalg.norm(b - a))
            path.points = [a, b]
            return True

        def snap_point(self, p):
            return np.array([p[0], 0.0, p[2]])

        def get_random_navigable_point(self):
            return np.array([0.5, 0.0, 1.0])

    class Agent:
        def __init__(self, cfg) -> None:
            self.cfg = cfg
            self.position = np.zeros(3)
            self.yaw_h = 0.0
            self.sensor_height = cfg.sensor_specifications[0].position[1]
            self.pitch_h = cfg.sensor_specifications[0].orientation[0]  # about the sensor's x

        def set_state(self, state) -> None:
            q = state.rotation  # numpy-quaternion-like (the adapter falls back to it without numpy-quaternion)
            if not hasattr(q, "w"):
                q = FakeQuat(q[3], q[0], q[1], q[2])
            assert abs(q.x) < 1e-9 and abs(q.z) < 1e-9, "the fake supports yaw only"
            self.yaw_h = 2.0 * math.atan2(q.y, q.w)
            self.position = np.asarray(state.position, dtype=np.float64).copy()

        def get_state(self):
            s = AgentState()
            s.position = self.position.copy()
            s.rotation = _yaw_quat_h(self.yaw_h)
            sensor_pos = self.position + _rot_y(self.yaw_h) @ np.array([0.0, self.sensor_height, 0.0])
            qy, p = _yaw_quat_h(self.yaw_h), self.pitch_h
            qx = FakeQuat(math.cos(p / 2), math.sin(p / 2), 0.0, 0.0)
            # yaw then pitch (Hamilton product qy * qx, both written out)
            sensor_q = FakeQuat(
                qy.w * qx.w - qy.y * 0.0 - qy.x * qx.x,
                qy.w * qx.x + qy.x * qx.w,
                qy.y * qx.w,
                -qy.y * qx.x,
            )
            s.sensor_states = {
                spec.uuid: types.SimpleNamespace(position=sensor_pos, rotation=sensor_q)
                for spec in self.cfg.sensor_specifications
            }
            return s

        def act(self, name: str) -> None:
            amount = self.cfg.action_space[name].args[1].amount
            if name == "move_forward":
                self.position = self.position + _rot_y(self.yaw_h) @ np.array([0.0, 0.0, -amount])
            elif name == "turn_left":
                self.yaw_h += math.radians(amount)
            elif name == "turn_right":
                self.yaw_h -= math.radians(amount)

    class SemanticScene:
        def __init__(self) -> None:
            cat = lambda n: types.SimpleNamespace(name=lambda: n)  # noqa: E731
            self.objects = [
                types.SimpleNamespace(semantic_id=3, id="_3", category=cat("wall")),
                None,
                types.SimpleNamespace(semantic_id=7, id="_7", category=cat("painting")),
            ]
            self.categories = []

    class Simulator:
        def __init__(self, cfg) -> None:
            self.cfg = cfg
            self.pathfinder = PathFinder()
            self.semantic_scene = SemanticScene()
            self.agent = None
            self.closed = False
            spec = cfg.agents[0].sensor_specifications[0]
            self.h, self.w = spec.resolution
            self.hfov = spec.hfov

        def recompute_navmesh(self, pathfinder, settings) -> bool:
            self.navmesh_settings = settings
            pathfinder.is_loaded = True
            return True

        def initialize_agent(self, i: int):
            self.agent = Agent(self.cfg.agents[i])
            return self.agent

        def seed(self, s: int) -> None:
            self.seeded = s

        def reset(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

        def get_sensor_observations(self):
            # Cast a ray per pixel in habitat's OpenGL camera (x right, y up, looking down -z).
            f = 0.5 * self.w / math.tan(math.radians(self.hfov) / 2)
            u = np.arange(self.w) - (self.w - 1) / 2
            v = np.arange(self.h) - (self.h - 1) / 2
            dirs = np.stack(np.broadcast_arrays(u[None, :] / f, -v[:, None] / f, -np.ones((self.h, 1))), axis=-1)
            state = self.agent.get_state()
            origin = state.sensor_states["depth_sensor"].position
            world_dirs = dirs @ (_rot_y(self.agent.yaw_h) @ _rot_x(self.agent.pitch_h)).T
            if raycast is not None:
                origins = np.broadcast_to(origin, world_dirs.shape).reshape(-1, 3)
                t, ids = raycast(origins, world_dirs.reshape(-1, 3))
                t, ids = t.reshape(self.h, self.w), ids.reshape(self.h, self.w)
                hit = np.isfinite(t)
                depth = np.where(hit, t, 0.0).astype(np.float32)
                semantic = np.where(hit, ids, 0).astype(np.uint32)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    t = (WALL_Z_H - origin[2]) / world_dirs[..., 2]
                hit = np.isfinite(t) & (t > 0)
                depth = np.where(hit, t, 0.0).astype(np.float32)  # t is the z-depth: dirs have unit -z
                hit_x = origin[0] + t * world_dirs[..., 0]
                semantic = np.where(hit, np.where(hit_x < 1.0, 3, 7), 0).astype(np.uint32)
            rgba = np.zeros((self.h, self.w, 4), np.uint8)
            rgba[..., 0] = np.where(semantic == 7, 200, 90)
            rgba[..., 3] = 255
            return {"color_sensor": rgba, "depth_sensor": depth, "semantic_sensor": semantic}

    agent_mod = types.ModuleType("habitat_sim.agent")
    agent_mod.AgentConfiguration = Bag
    agent_mod.ActionSpec = Bag
    agent_mod.ActuationSpec = Bag
    m.agent = agent_mod
    m.SensorType = SensorType
    m.CameraSensorSpec = Bag
    m.SimulatorConfiguration = Bag
    m.Configuration = lambda sim_cfg, agents: types.SimpleNamespace(sim_cfg=sim_cfg, agents=agents)
    m.Simulator = Simulator
    m.AgentState = AgentState
    m.ShortestPath = ShortestPath
    m.NavMeshSettings = lambda: types.SimpleNamespace(include_static_objects=False)
    m.PathFinder = PathFinder
    return m


@pytest.fixture
def fake_habitat(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = _make_fake_habitat_sim()
    monkeypatch.setitem(sys.modules, "habitat_sim", fake)
    monkeypatch.setitem(sys.modules, "habitat_sim.agent", fake.agent)
    return fake


def test_fake_sim_frames_follow_engram_conventions(fake_habitat, tmp_path: Path) -> None:
    src = hab.HabitatSource(
        tmp_path / "scene.glb", width=64, height=48, hfov_deg=90, start_pose=(0.0, 0.0, math.pi / 2)
    )
    assert isinstance(src, Simulator)
    frame = src.reset()
    assert frame.index == 0 and frame.timestamp_s == 0.0
    assert frame.rgb.shape == (48, 64, 3) and frame.depth_m.dtype == np.float32 and frame.instances.dtype == np.int32
    assert frame.has_geometry
    # Every wall pixel backprojects onto the engram plane y = +5, whatever its depth.
    pts, px = frame_points_world(frame, return_pixels=True)
    assert len(pts) > 0.9 * 48 * 64
    np.testing.assert_allclose(pts[:, 1], 5.0, atol=1e-4)
    # Camera 1.5 m up: the top image row sees points higher than the bottom row.
    top, bottom = pts[px[:, 1] == 0], pts[px[:, 1] == 47]
    assert top[:, 2].min() > 1.5 > bottom[:, 2].max()
    # engram +x (right of a camera facing +y) is the image's right side, where the painting (x >= 1) is.
    painting = frame.instances == 7
    assert painting[:, -1].all() and not painting[:, 0].any()
    assert frame.labels == {3: "wall", 7: "painting"}
    np.testing.assert_allclose(frame.world_from_camera.translation, [0.0, 0.0, 1.5], atol=1e-9)

    base = src.agent_pose
    np.testing.assert_allclose(base.translation, [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(base.rotation[:, 0], [0.0, 1.0, 0.0], atol=1e-9)

    centre = frame.depth_m[23:25, 31:33].mean()
    frame2 = src.step("move_forward")
    assert frame2.index == 1 and frame2.timestamp_s == pytest.approx(0.25)
    np.testing.assert_allclose(src.agent_pose.translation, [0.0, 0.25, 0.0], atol=1e-9)
    assert frame2.depth_m[23:25, 31:33].mean() == pytest.approx(centre - 0.25, abs=1e-4)

    src.step("turn_left")  # +30 deg about engram +z: counter-clockwise seen from above
    yaw = math.atan2(src.agent_pose.rotation[1, 0], src.agent_pose.rotation[0, 0])
    assert yaw == pytest.approx(math.pi / 2 + math.radians(30))
    frame4 = src.step("stop")
    pts = frame_points_world(frame4)
    np.testing.assert_allclose(pts[:, 1], 5.0, atol=1e-4)
    with pytest.raises(ValueError, match="unknown action 'jump'"):
        src.step("jump")
    src.close()
    with pytest.raises(ValueError, match="closed"):
        src.observe()


def test_fake_sim_pitched_camera(fake_habitat, tmp_path: Path) -> None:
    src = hab.HabitatSource(
        tmp_path / "scene.glb", width=65, height=49, camera_pitch_deg=20.0, start_pose=(0.0, 0.0, math.pi / 2)
    )
    frame = src.reset()
    pts, px = frame_points_world(frame, return_pixels=True)
    np.testing.assert_allclose(pts[:, 1], 5.0, atol=1e-4)  # still the wall plane
    # the optical axis, 20 deg down from 1.5 m, meets the wall 5 m away at 1.5 - 5 tan(20 deg)
    centre = pts[(px[:, 0] == 32) & (px[:, 1] == 24)][0]
    assert centre[2] == pytest.approx(1.5 - 5.0 * math.tan(math.radians(20.0)), abs=1e-4)
    # the camera's z axis (forward) points 20 deg below the horizon, towards +y
    fwd = frame.world_from_camera.rotation[:, 2]
    np.testing.assert_allclose(fwd, [0.0, math.cos(math.radians(20)), -math.sin(math.radians(20))], atol=1e-9)
    # the agent's base stays level
    np.testing.assert_allclose(src.agent_pose.rotation[:, 2], [0.0, 0.0, 1.0], atol=1e-9)


def test_fake_sim_pathfinder_in_engram_coordinates(fake_habitat, tmp_path: Path) -> None:
    with hab.HabitatSource(tmp_path / "scene.glb", width=16, height=12) as src:
        # engram (1, 2, 0) is habitat (1, 0, -2): on the fake navmesh
        assert src.is_navigable([1.0, 2.0, 0.0])
        assert not src.is_navigable([1.0, 2.0, 1.0])  # 1 m above the floor
        assert not src.is_navigable([1.0, -4.2, 0.0])  # habitat z = 4.2, outside
        assert src.geodesic_distance([0.0, 0.0, 0.0], [3.0, 4.0, 0.0]) == pytest.approx(5.0)
        assert src.geodesic_distance([0.0, 0.0, 0.0], [0.0, -4.2, 0.0]) == math.inf
        path = src.shortest_path([0.0, 0.0, 0.0], [3.0, 4.0, 0.0])
        np.testing.assert_allclose(path, [[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]], atol=1e-12)
        # no start pose: the (seeded) random navigable point, habitat (0.5, 0, 1) = engram (0.5, -1, 0)
        src.reset(seed=3)
        np.testing.assert_allclose(src.agent_pose.translation, [0.5, -1.0, 0.0], atol=1e-9)


def test_navmesh_is_baked_when_the_scene_has_none(
    fake_habitat, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fake_habitat.PathFinder, "is_loaded", False)
    src = hab.HabitatSource(tmp_path / "scene.glb", width=16, height=12, agent_radius_m=0.3)
    settings = src._sim.navmesh_settings
    assert settings.agent_radius == 0.3 and settings.agent_height == 1.5 and settings.include_static_objects
    assert src.pathfinder_loaded and src.is_navigable([0.0, 0.0, 0.0])


def test_sidecar_labels_and_start_pose(fake_habitat, tmp_path: Path) -> None:
    import json

    sidecar = {"labels": {"7": "poster"}, "agent_start": [0.0, 1.0, math.pi / 2]}
    (tmp_path / "apt.engram.json").write_text(json.dumps(sidecar))
    src = hab.HabitatSource(tmp_path / "apt.scene_instance.json", width=16, height=12, labels={3: "brick wall"})
    frame = src.reset()
    assert frame.labels == {3: "brick wall", 7: "poster"}
    assert src.ground_truth is None  # a sidecar without a seed: not an engram export
    np.testing.assert_allclose(src.agent_pose.translation, [0.0, 1.0, 0.0], atol=1e-9)


def test_hydra_config_builds_the_source(fake_habitat, tmp_path: Path) -> None:
    pytest.importorskip("hydra")
    from engram.config import compose, instantiate

    cfg = compose(
        "explore",
        [
            "sim=habitat",
            f"sim.scene_path={tmp_path / 'apt.glb'}",
            "sim.width=32",
            "sim.height=24",
            "sim.start_pose=[0.0,0.0,1.5707963]",
        ],
    )
    src = instantiate(cfg.sim)
    assert isinstance(src, hab.HabitatSource)
    frame = src.reset()
    assert frame.rgb.shape == (24, 32, 3)
    np.testing.assert_allclose(src.agent_pose.rotation[:, 0], [0.0, 1.0, 0.0], atol=1e-6)


def test_bad_arguments(fake_habitat) -> None:
    with pytest.raises(ValueError, match="width"):
        hab.HabitatSource("s.glb", width=0)
    with pytest.raises(ValueError, match="sensor_height_m"):
        hab.HabitatSource("s.glb", sensor_height_m=-1.0)
    with pytest.raises(ValueError, match="start_pose"):
        hab.HabitatSource("s.glb", start_pose=(1.0, 2.0))


def test_semantic_labels_from_categories_only() -> None:
    cats = [types.SimpleNamespace(index=lambda i=i: i, name=lambda n=n: n) for i, n in [(1, "chair"), (2, "table")]]
    scene = types.SimpleNamespace(objects=[], categories=[None, *cats])
    assert hab.semantic_labels(scene) == {1: "chair", 2: "table"}
    assert hab.semantic_labels(None) == {}


def test_exported_apartment_seen_through_habitat_matches_the_embedded_world(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both halves of issue 11 at once: export a seeded apartment, let a stand-in habitat_sim
    ray-cast the exported .glb in habitat's own conventions, drive it through HabitatSource with
    the embedded world's actions, and compare with the embedded world's frames."""
    o3d = pytest.importorskip("open3d")
    trimesh = pytest.importorskip("trimesh")
    try:
        from engram.sims.embedded import EmbeddedSim
    except (ImportError, AttributeError) as exc:  # pragma: no cover
        pytest.skip(f"the embedded world is not importable: {exc}")
    from engram.sims.embedded.export_glb import export_apartment
    from engram.sims.embedded.scenes import generate_apartment

    spec = generate_apartment(2)
    ex = export_apartment(spec, tmp_path)
    scene = trimesh.load(ex.glb)
    rs = o3d.t.geometry.RaycastingScene()
    instance_of = {}
    for node in scene.graph.nodes_geometry:
        transform, geom = scene.graph[node]
        mesh = scene.geometry[geom]
        v = mesh.vertices @ transform[:3, :3].T + transform[:3, 3]
        gid = rs.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32)))
        instance_of[int(gid)] = int(node.split("_")[1]) if node.startswith("obj_") else 0
    lookup = np.zeros(max(instance_of) + 2, np.int64)
    for gid, iid in instance_of.items():
        lookup[gid] = iid

    def raycast(origins_h, dirs_h):
        hit = rs.cast_rays(o3d.core.Tensor(np.concatenate([origins_h, dirs_h], 1).astype(np.float32)))
        gids = hit["geometry_ids"].numpy().astype(np.int64)
        ids = np.where(gids < len(lookup), lookup[np.minimum(gids, len(lookup) - 1)], 0)
        return hit["t_hit"].numpy(), ids

    fake = _make_fake_habitat_sim(raycast)
    monkeypatch.setitem(sys.modules, "habitat_sim", fake)
    monkeypatch.setitem(sys.modules, "habitat_sim.agent", fake.agent)

    w, h, vfov, cam_h, pitch = 64, 48, 60.0, 1.3, 20.0
    hfov = math.degrees(2 * math.atan(math.tan(math.radians(vfov / 2)) * w / h))
    embedded = EmbeddedSim(
        seed=spec.seed, width=w, height=h, vertical_fov_deg=vfov, camera_height_m=cam_h, camera_pitch_deg=pitch
    )
    # the start pose comes from the export's sidecar
    habitat = hab.HabitatSource(
        ex.scene_instance, width=w, height=h, hfov_deg=hfov, sensor_height_m=cam_h, camera_pitch_deg=pitch
    )
    try:
        pairs = [(embedded.reset(), habitat.reset())]
        for action in ("turn_left", "turn_left", "turn_right", "turn_right", "turn_right"):
            pairs.append((embedded.step(action), habitat.step(action)))
    finally:
        embedded.close()
        habitat.close()
    gt = habitat.ground_truth  # regenerated from the export's seed
    assert gt is not None and gt.labels() == spec.labels()
    for a, b in pairs:
        np.testing.assert_allclose(b.intrinsics.matrix, a.intrinsics.matrix, atol=1e-6)
        assert b.world_from_camera.allclose(a.world_from_camera, atol=1e-6)
        valid = (a.depth_m > 0) & (b.depth_m > 0)
        assert valid.mean() > 0.95
        assert np.percentile(np.abs(a.depth_m - b.depth_m)[valid], 95) < 0.01
        assert (a.instances == b.instances)[valid].mean() > 0.99
        assert {i: n for i, n in b.labels.items() if i} == {i: n for i, n in a.labels.items() if i in b.labels and i}


# ---------------------------------------------------------------------------
# a real habitat-sim, when one is installed


@pytest.mark.habitat
def test_real_habitat_sim_loads_an_exported_apartment(tmp_path: Path) -> None:
    try:
        import habitat_sim  # noqa: F401
    except ImportError:
        pytest.skip(
            "habitat_sim is not installed: it ships through conda only "
            "(conda install habitat-sim -c conda-forge -c aihabitat); no PyPI wheel exists for this platform"
        )
    from engram.sims.embedded.export_glb import export_apartment
    from engram.sims.embedded.scenes import generate_apartment

    spec = generate_apartment(0)
    paths = export_apartment(spec, tmp_path)
    from engram.sims.embedded.groundtruth import GroundTruth

    with hab.HabitatSource(
        paths.scene_instance, scene_dataset_config=paths.scene_dataset_config, width=64, height=48
    ) as src:
        frame = src.reset()
        assert frame.has_geometry and np.isfinite(frame.depth_m).all()
        ids = set(np.unique(frame.instances).tolist()) - {0}
        assert ids <= set(spec.labels())
        # the agent starts where the embedded world starts it
        np.testing.assert_allclose(src.agent_pose.translation[:2], spec.agent_start[:2], atol=0.1)
        # habitat's navmesh agrees with the embedded world's free-space ground truth
        gt = GroundTruth(spec, agent_radius_m=0.2)
        start = np.array([*spec.agent_start[:2], 0.0])
        for room in spec.rooms:
            goal = np.array([*room.box.center, 0.0])
            ours = gt.shortest_path_length(start[:2], goal[:2])
            if not math.isfinite(ours) or not src.is_navigable(goal):
                continue
            assert src.geodesic_distance(start, goal) == pytest.approx(ours, rel=0.15, abs=0.3)
