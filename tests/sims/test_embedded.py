"""The embedded PyBullet world: apartments, rendering, collisions, dynamics, ground truth."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")

from engram.perception.geometry import backproject_depth, project_points
from engram.sims.base import Simulator
from engram.sims.embedded import ApartmentSpec, EmbeddedSim, generate_apartment
from engram.sims.embedded.dynamics import PersonPath, Relocation, ScriptedDynamics
from engram.sims.embedded.sim import coverage_actions, coverage_waypoints

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim() -> EmbeddedSim:
    s = EmbeddedSim(seed=0)
    yield s
    s.close()


@pytest.fixture(scope="module")
def level_sim() -> EmbeddedSim:
    """A level camera (no pitch), so the image centre looks horizontally."""
    s = EmbeddedSim(seed=1, camera_pitch_deg=0.0)
    yield s
    s.close()


# -- the apartment spec (pure data) ------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_apartment_meets_the_brief(seed: int) -> None:
    spec = generate_apartment(seed)
    assert isinstance(spec, ApartmentSpec)
    assert 3 <= len(spec.rooms) <= 6
    assert len({r.name for r in spec.rooms}) == len(spec.rooms)
    assert len(spec.objects) >= 15
    assert len({o.label for o in spec.objects}) >= 10
    ids = [o.instance_id for o in spec.all_objects()]
    assert len(ids) == len(set(ids)) and min(ids) >= 1
    assert len(spec.doors) == len(spec.rooms) - 1  # one door per split: a tree that connects every room
    furniture_labels = {f.label for f in spec.furniture}
    assert furniture_labels & {"table", "sofa", "bed", "shelf"}
    for obj in spec.all_objects():
        room = spec.room(obj.room)
        x, y, z = obj.position_m
        assert room.box.contains(x, y), (obj.label, obj.position_m, room)
        assert z - obj.half_extents_m[2] >= -1e-6  # nothing below the floor
        assert obj.parts or obj.urdf
    # Each door joins two different rooms and lies on their shared wall line.
    for door in spec.doors:
        a, b = (spec.room(n).box for n in door.rooms)
        assert door.rooms[0] != door.rooms[1]
        assert spec.room_of(*door.center_m) is None  # the opening is in the wall, between rooms
        gap = (b.y_min - a.y_max) if door.wall_axis == "x" else (b.x_min - a.x_max)
        assert abs(abs(gap) - spec.wall_thickness_m) < 1e-6 or gap < 0


def test_same_seed_same_apartment_and_seeds_differ() -> None:
    a, b, c = generate_apartment(3), generate_apartment(3), generate_apartment(4)
    assert a == b
    assert a != c
    assert [o.position_m for o in a.objects] != [o.position_m for o in c.objects]


def test_bad_generator_input_raises() -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_apartment(-1)
    with pytest.raises(ValueError, match="n_rooms"):
        generate_apartment(0, n_rooms=7)
    with pytest.raises(ValueError, match="n_objects"):
        generate_apartment(0, n_objects=3)


def test_import_stays_cheap() -> None:
    code = (
        "import sys, engram, engram.sims.embedded, engram.sims.embedded.scenes;"
        "bad = [m for m in ('pybullet', 'torch', 'open3d', 'hydra') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- frames ------------------------------------------------------------------------


def test_frame_contents_and_time(sim: EmbeddedSim) -> None:
    assert isinstance(sim, Simulator)
    frame = sim.reset()
    assert frame.timestamp_s == 0.0 and frame.index == 0
    assert frame.rgb.shape == (240, 320, 3) and frame.depth_m.dtype == np.float32
    assert frame.instances.dtype == np.int32 and frame.has_geometry
    k = frame.intrinsics
    assert (k.cx, k.cy) == (159.5, 119.5)
    cam = frame.world_from_camera
    assert cam.translation[2] == pytest.approx(1.3)
    assert cam.rotation[2, 2] == pytest.approx(-math.sin(math.radians(20.0)))  # optical axis pitched down
    f1 = sim.step("turn_left")
    f2 = sim.step("stop")
    assert (f1.timestamp_s, f2.timestamp_s) == (0.25, 0.5)
    assert sim.observe().timestamp_s == 0.5
    yaw = sim.agent_xy_yaw[2]
    assert math.isclose(
        abs(((yaw - sim.apartment.agent_start[2]) + math.pi) % (2 * math.pi) - math.pi), math.radians(30), abs_tol=1e-9
    )
    assert sim.reset().timestamp_s == 0.0


def _bottom_row_rooms(spec: ApartmentSpec) -> list:
    return [r for r in spec.rooms if abs(r.box.y_min - (spec.bounds.y_min + spec.wall_thickness_m / 2)) < 1e-6]


def test_depth_to_a_wall_at_a_known_distance(level_sim: EmbeddedSim) -> None:
    spec = level_sim.apartment
    checked = 0
    for room in _bottom_row_rooms(spec):
        for frac in np.linspace(0.2, 0.8, 7):
            x = room.box.x_min + frac * (room.box.x_max - room.box.x_min)
            dist = 1.37
            y = room.box.y_min + dist  # the wall face is at room.box.y_min
            if not level_sim.is_free(x, y):
                continue
            frame = level_sim.set_agent_pose(x, y, -math.pi / 2)
            centre = frame.instances[118:122, 158:162]
            if (centre != 0).any():
                continue  # furniture in the way
            np.testing.assert_allclose(frame.depth_m[118:122, 158:162], dist, atol=0.01)
            checked += 1
    assert checked >= 3


def _ray_box_hits(origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Slab-method ray parameter t of the first hit of each ray with each axis-aligned box, "N B" (inf: miss)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t1 = (lo[None] - origin[:, None] if origin.ndim == 2 else lo[None] - origin) * inv[:, None]
        t2 = (hi[None] - origin[:, None] if origin.ndim == 2 else hi[None] - origin) * inv[:, None]
        tmin = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf).max(axis=2)
        tmax = np.nan_to_num(np.maximum(t1, t2), nan=np.inf).min(axis=2)
    return np.where((tmax >= tmin) & (tmax > 0), np.maximum(tmin, 0.0), np.inf)


def test_depth_matches_analytic_ray_casts(sim: EmbeddedSim) -> None:
    """Every wall, floor, ceiling and box-furniture pixel against an exact ray-box intersection."""
    spec = sim.apartment
    walls_lo = np.array([np.subtract(w.center_m, w.half_extents_m) for w in spec.walls])
    walls_hi = np.array([np.add(w.center_m, w.half_extents_m) for w in spec.walls])
    boxes = [o for o in spec.furniture if len(o.parts) == 1 and o.parts[0].shape == "box"]
    gt = sim.ground_truth
    cells = np.argwhere(gt.reachable_map().free)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(8):
        xy = gt.reachable_map().cell_to_world(cells[rng.integers(len(cells))])
        frame = sim.set_agent_pose(float(xy[0]), float(xy[1]), float(rng.uniform(-math.pi, math.pi)))
        k, cam = frame.intrinsics, frame.world_from_camera
        ids = np.array([0] + [b.instance_id for b in boxes])
        vs, us = np.nonzero(np.isin(frame.instances, ids))
        pick = rng.choice(len(vs), size=min(len(vs), 8000), replace=False)
        vs, us = vs[pick], us[pick]
        # Rays with camera-frame z = 1, so the hit parameter t is the depth along the optical axis.
        dirs = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones(len(us))], 1) @ cam.rotation.T
        origin = cam.translation
        t = _ray_box_hits(origin, dirs, walls_lo, walls_hi).min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.minimum(t, np.where(dirs[:, 2] < 0, -origin[2] / dirs[:, 2], np.inf))  # floor
            t = np.minimum(t, np.where(dirs[:, 2] > 0, (spec.wall_height_m - origin[2]) / dirs[:, 2], np.inf))
        for b in boxes:  # yawed boxes: intersect in the box frame
            c, s = math.cos(b.yaw_rad), math.sin(b.yaw_rad)
            box_from_world = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
            o_local = box_from_world @ (origin - np.asarray(b.position_m))
            h = np.asarray(b.half_extents_m)
            t = np.minimum(t, _ray_box_hits(o_local, dirs @ box_from_world.T, -h[None], h[None])[:, 0])
        errors.append(np.abs(frame.depth_m[vs, us] - t))
    err = np.concatenate(errors)
    assert len(err) > 20_000
    assert np.percentile(err, 99) < 0.001
    assert err.max() < 0.01


def _front_views(sim: EmbeddedSim, obj, dists: tuple[float, ...], min_pixels: int):
    """From free spots at ``dists`` in front of ``obj`` (its local +y, the side facing the room),
    looking at it: the world points of its pixels, and the same points in its box frame."""
    c, s = math.cos(obj.yaw_rad), math.sin(obj.yaw_rad)
    front = np.array([-s, c])
    for dist in dists:
        xy = np.asarray(obj.position_m[:2]) + front * (obj.half_extents_m[1] + dist)
        if not sim.is_free(*xy):
            continue
        frame = sim.set_agent_pose(float(xy[0]), float(xy[1]), math.atan2(-front[1], -front[0]))
        mask = frame.instances == obj.instance_id
        if mask.sum() < min_pixels:
            continue
        depth = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
        pts_world = frame.world_from_camera.transform_points(backproject_depth(depth, frame.intrinsics))
        local = (pts_world - np.asarray(obj.position_m)) @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        yield pts_world, local


def test_backprojected_box_lies_on_its_surface(sim: EmbeddedSim) -> None:
    spec = sim.apartment
    tested = 0
    for obj in spec.furniture:
        if len(obj.parts) != 1 or obj.parts[0].shape != "box":
            continue
        for _, local in _front_views(sim, obj, (1.2, 1.6, 2.0), min_pixels=200):
            # signed distance to the box surface
            q = np.abs(local) - np.asarray(obj.half_extents_m)
            sdf = np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)
            assert np.abs(sdf).max() < 0.01, (obj.label, np.abs(sdf).max())
            tested += 1
            break
    assert tested >= 2


def test_segmentation_ids_map_to_the_right_objects(sim: EmbeddedSim) -> None:
    spec = sim.apartment
    by_id = spec.by_id()
    checked = 0
    for obj in spec.objects[:12]:
        # Stand 1.2 m from the object, facing it.
        for ang in np.linspace(0, 2 * math.pi, 8, endpoint=False):
            xy = np.asarray(obj.position_m[:2]) + 1.2 * np.array([math.cos(ang), math.sin(ang)])
            if sim.is_free(*xy):
                break
        else:
            continue
        frame = sim.set_agent_pose(float(xy[0]), float(xy[1]), ang + math.pi)
        ids_in_view = set(np.unique(frame.instances).tolist()) - {0}
        assert ids_in_view == set(frame.labels)
        for iid, label in frame.labels.items():
            assert by_id[iid].label == label
        if obj.instance_id not in frame.labels:
            continue
        # The pixels labelled with the id backproject into that object's box (2 cm slack).
        depth = np.where(frame.instances == obj.instance_id, frame.depth_m, 0.0).astype(np.float32)
        pts = frame.world_from_camera.transform_points(backproject_depth(depth, frame.intrinsics))
        c, s = math.cos(obj.yaw_rad), math.sin(obj.yaw_rad)
        local = (pts - np.asarray(obj.position_m)) @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        assert (np.abs(local) <= np.asarray(obj.half_extents_m) + 0.02).all(axis=1).mean() > 0.97, obj.label
        checked += 1
    assert checked >= 5


def test_known_point_projects_where_it_renders(sim: EmbeddedSim) -> None:
    """A small magenta sphere at a known point: its image centroid is the point's projection."""
    world = sim._world
    p, cid = world.p, world.client
    frame = sim.reset()
    cam = frame.world_from_camera
    radius = 0.03
    vis = p.createVisualShape(p.GEOM_SPHERE, radius=radius, rgbaColor=[1, 0, 1, 1], physicsClientId=cid)
    body = p.createMultiBody(0.0, -1, vis, [0, 0, -50], physicsClientId=cid)
    try:
        # Near the axis a small sphere's image is a disc centred on the projection (off axis,
        # perspective stretches it outward by ~offset * (r / z)^2: < 0.05 px here).
        for u_target, v_target, z in [(159.5, 119.5, 0.6), (100.0, 80.0, 1.0), (220.25, 160.75, 1.0)]:
            k = frame.intrinsics
            ray = np.array([(u_target - k.cx) / k.fx, (v_target - k.cy) / k.fy, 1.0])
            point = cam.transform_points((ray * z)[None])[0]
            p.resetBasePositionAndOrientation(body, point.tolist(), [0, 0, 0, 1], physicsClientId=cid)
            rgb = sim.observe().rgb.astype(int)
            mask = (rgb[..., 0] > 120) & (rgb[..., 2] > 120) & (rgb[..., 1] < 50)
            assert mask.sum() > 30
            vs, us = np.nonzero(mask)
            uv, _, visible = project_points(cam.inverse().transform_points(point[None]), k)
            assert visible[0]
            assert us.mean() == pytest.approx(uv[0, 0], abs=0.15)
            assert vs.mean() == pytest.approx(uv[0, 1], abs=0.15)
    finally:
        p.removeBody(body, physicsClientId=cid)
        world._hidden.discard(body)


# -- motion and collisions ---------------------------------------------------------------


def test_agent_cannot_pass_through_a_wall(level_sim: EmbeddedSim) -> None:
    spec = level_sim.apartment
    room = _bottom_row_rooms(spec)[0]
    face_y = room.box.y_min  # the exterior wall's inner face
    x = next(
        room.box.x_min + f * (room.box.x_max - room.box.x_min)
        for f in np.linspace(0.1, 0.9, 33)
        if level_sim.is_free(room.box.x_min + f * (room.box.x_max - room.box.x_min), face_y + 1.0)
    )
    level_sim.set_agent_pose(x, face_y + 1.0, -math.pi / 2)
    collided = False
    for _ in range(12):
        frame = level_sim.step("move_forward")
        y = level_sim.agent_xy_yaw[1]
        assert y - face_y >= level_sim.agent_radius_m - 1e-6
        collided |= frame.meta["collided"]
    assert collided
    assert y - face_y == pytest.approx(level_sim.agent_radius_m, abs=0.015)  # it stops at the wall
    # Fast continuous commands do not tunnel either.
    level_sim.step_velocity(20.0, 0.0, duration_s=1.0)
    assert level_sim.agent_xy_yaw[1] - face_y >= level_sim.agent_radius_m - 1e-6
    # Teleporting into the wall is refused and leaves the pose unchanged.
    before = level_sim.agent_xy_yaw
    with pytest.raises(ValueError, match="collide"):
        level_sim.set_agent_pose(x, face_y - 0.02, 0.0)
    assert level_sim.agent_xy_yaw == before


def test_discrete_and_goal_motion(sim: EmbeddedSim) -> None:
    sim.reset()
    x0, y0, yaw0 = sim.agent_xy_yaw
    frame = sim.step("move_forward")
    x1, y1, _ = sim.agent_xy_yaw
    if not frame.meta["collided"]:
        assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(0.25, abs=1e-9)
        assert math.atan2(y1 - y0, x1 - x0) == pytest.approx(yaw0, abs=1e-9)
    sim.step("turn_right")
    assert ((sim.agent_xy_yaw[2] - yaw0 + math.radians(30) + math.pi) % (2 * math.pi)) - math.pi == pytest.approx(
        0.0, abs=1e-9
    )
    gx, gy = sim.apartment.agent_start[:2]
    for _ in range(10):
        sim.step_towards(gx, gy)
    assert math.hypot(sim.agent_xy_yaw[0] - gx, sim.agent_xy_yaw[1] - gy) < 0.05


def test_bad_commands_raise(sim: EmbeddedSim) -> None:
    with pytest.raises(ValueError, match="action"):
        sim.step("jump")
    with pytest.raises(ValueError, match="finite"):
        sim.set_agent_pose(float("nan"), 1.0, 0.0)
    with pytest.raises(ValueError, match="width"):
        EmbeddedSim(width=0)
    with pytest.raises(ValueError, match="dynamics"):
        EmbeddedSim(dynamics="chaos")
    with pytest.raises(ValueError, match="instance id"):
        EmbeddedSim(dynamics=ScriptedDynamics(relocations=(Relocation(1.0, 9999, (1.0, 1.0, 0.5)),)))


def test_two_sims_coexist() -> None:
    a = EmbeddedSim(seed=2, width=64, height=48)
    b = EmbeddedSim(seed=5, width=64, height=48)
    try:
        fa, fb = a.observe(), b.observe()
        assert a._world.client != b._world.client
        assert a.apartment != b.apartment
        b.close()
        fa2 = a.observe()
        np.testing.assert_array_equal(fa.rgb, fa2.rgb)
        assert fb.rgb.shape == (48, 64, 3)
    finally:
        a.close()
        b.close()


# -- composed objects ---------------------------------------------------------------------


def _part_extent(shape: str, half: tuple[float, float, float]) -> np.ndarray:
    if shape == "box":
        return np.asarray(half)
    if shape == "cylinder":
        return np.array([half[0], half[0], half[2]])
    return np.full(3, half[0])  # sphere


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_part_lies_inside_its_objects_box(seed: int) -> None:
    spec = generate_apartment(seed)
    multi = 0
    for obj in spec.all_objects():
        half = np.asarray(obj.half_extents_m)
        for part in obj.parts:
            reach = np.abs(np.asarray(part.offset_m)) + _part_extent(part.shape, part.half_extents_m)
            assert np.all(reach <= half + 1e-9), (obj.label, part, obj.half_extents_m)
        if obj.parts:
            # each box is tight: the parts reach every face of it
            lo = np.min([np.asarray(p.offset_m) - _part_extent(p.shape, p.half_extents_m) for p in obj.parts], axis=0)
            hi = np.max([np.asarray(p.offset_m) + _part_extent(p.shape, p.half_extents_m) for p in obj.parts], axis=0)
            np.testing.assert_allclose(lo, -half, atol=1e-6, err_msg=obj.label)
            np.testing.assert_allclose(hi, half, atol=1e-6, err_msg=obj.label)
        multi += len(obj.parts) > 1
    assert multi >= 5


def test_composed_furniture_renders_inside_its_box_and_the_bathtub_is_hollow() -> None:
    """Cabinets, desks, toilets, bathtubs and beds are built of several parts: what the camera
    sees of each, back-projected, lies in its box; looking down into a bathtub, the camera sees
    its bottom below the rim (the depth shows the basin, not a lid)."""
    seen: set[str] = set()
    hollow = False
    for seed in range(6):
        spec = generate_apartment(seed)
        targets = [f for f in spec.furniture if len(f.parts) > 1 and f.label != "shelf"]
        if not targets:
            continue
        sim = EmbeddedSim(seed=seed, width=160, height=120)
        try:
            for obj in targets:
                for pts, local in _front_views(sim, obj, (1.0, 1.4, 1.8), min_pixels=100):
                    outside = np.abs(local) - np.asarray(obj.half_extents_m)
                    assert outside.max() < 0.01, (obj.label, outside.max())
                    seen.add(obj.label)
                    if obj.label == "bathtub":
                        rim_z = obj.position_m[2] + obj.half_extents_m[2]
                        hollow |= bool(np.any(pts[:, 2] < rim_z - 0.2))
                    break
        finally:
            sim.close()
    assert {"cabinet", "bed", "bathtub"} <= seen, seen
    assert hollow


# -- dynamics and ground truth ------------------------------------------------------------


def test_scripted_relocation_and_person_are_logged_and_rendered() -> None:
    spec = generate_apartment(0)
    mover = next(o for o in spec.objects if o.parts and o.half_extents_m[2] < 0.1)
    # Onto a table in another room: the object must be drawn (not culled) where it is now.
    table = next(f for f in spec.furniture if f.label in ("table", "desk", "counter") and f.room != mover.room)
    target = (table.position_m[0], table.position_m[1], table.top_z_m + mover.half_extents_m[2])
    start_xy = spec.agent_start[:2]
    path = PersonPath(((start_xy[0] + 1.5, start_xy[1]), (start_xy[0] + 1.5, start_xy[1] + 1.0)), speed_mps=0.5)
    dyn = ScriptedDynamics(relocations=(Relocation(1.0, mover.instance_id, target, 0.3),), person=path)
    s = EmbeddedSim(seed=0, width=160, height=120, dynamics=dyn)
    try:
        for _ in range(6):
            s.step("stop")
        gt = s.ground_truth
        assert gt.objects_at(0.75)[mover.instance_id].position_m == mover.position_m
        assert gt.objects_at(1.0)[mover.instance_id].position_m == pytest.approx(target)
        assert gt.object_poses()[mover.instance_id].yaw_rad == pytest.approx(0.3)
        pos, _ = s._world.p.getBasePositionAndOrientation(
            s._world.body_of_instance[mover.instance_id], physicsClientId=s._world.client
        )
        assert pos[2] == pytest.approx(target[2] + mover.parts[0].offset_m[2], abs=1e-6)
        # Seen in its new room, from 1 m beside the table.
        tx, ty = target[0], target[1]
        for ang in np.linspace(0, 2 * math.pi, 16, endpoint=False):
            ax, ay = tx + 1.0 * math.cos(ang), ty + 1.0 * math.sin(ang)
            if s.is_free(ax, ay) and spec.room_of(ax, ay) == table.room:
                frame = s.set_agent_pose(ax, ay, ang + math.pi)
                if mover.instance_id in frame.labels:
                    break
        else:
            pytest.fail("the relocated object is not rendered in its new room")
        pid = s.person_instance_id
        person_log = [row for row in gt.pose_log() if row[1] == pid]
        assert [row[0] for row in person_log] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
        assert person_log[-1][3][:2] == pytest.approx(path.pose_at(1.5)[0][:2])
        assert person_log[-1][3][1] == pytest.approx(start_xy[1] + 0.75)
        # Face the person: it is rendered with the label "person".
        px, py, _ = person_log[-1][3]
        frame = s.set_agent_pose(start_xy[0], start_xy[1], math.atan2(py - start_xy[1], px - start_xy[0]))
        assert frame.labels.get(pid) == "person"
        # A reset puts everything back.
        s.reset()
        assert s.ground_truth.objects_at(10.0)[mover.instance_id].position_m == mover.position_m
    finally:
        s.close()


def test_random_dynamics_is_deterministic() -> None:
    spec = generate_apartment(1)
    a, b = ScriptedDynamics.random(spec, seed=3), ScriptedDynamics.random(spec, seed=3)
    assert a == b and len(a.relocations) == 4 and a.person is not None
    a.validate(spec)


@pytest.mark.parametrize("apartment", range(6))
def test_random_relocations_go_elsewhere_and_never_into_another_object(apartment: int) -> None:
    import math

    spec = generate_apartment(apartment)
    script = ScriptedDynamics.random(spec, seed=apartment, n_relocations=6, period_s=5.0)
    now = {o.instance_id: o for o in spec.objects}
    pos = {i: o.position_m[:2] for i, o in now.items()}
    for ev in script.relocations:
        o = now[ev.instance_id]
        assert math.dist(ev.position_m[:2], pos[o.instance_id]) >= 0.5
        for i, p in pos.items():
            if i != o.instance_id:  # footprints (bounding circles) stay apart
                gap = (
                    math.dist(ev.position_m[:2], p)
                    - math.hypot(*o.half_extents_m[:2])
                    - math.hypot(*now[i].half_extents_m[:2])
                )
                assert gap > 0.0, (o.label, now[i].label)
        pos[o.instance_id] = ev.position_m[:2]


def test_free_space_map_and_rooms(sim: EmbeddedSim) -> None:
    gt = sim.ground_truth
    spec = sim.apartment
    fsm = gt.free_space_map()
    assert fsm.resolution_m == 0.05
    assert fsm.free.dtype == bool
    # Wall centres are occupied, room interiors away from furniture are free.
    for w in spec.walls:
        if w.center_m[2] - w.half_extents_m[2] > 0:
            continue  # lintels are above the agent
        cell = fsm.world_to_cell(w.center_m[:2])
        assert not fsm.free[cell[0], cell[1]]
    start = fsm.world_to_cell(spec.agent_start[:2])
    assert fsm.free[start[0], start[1]]
    # cell_to_world inverts world_to_cell at cell centres.
    cells = np.array([[3, 7], [10, 2]])
    np.testing.assert_array_equal(fsm.world_to_cell(fsm.cell_to_world(cells)), cells)
    # Free cells agree with the simulator's own collision test for a point-sized agent
    # (sampled at cell centres well inside free or occupied areas).
    assert gt.room_of(spec.agent_start[:2]) == "living room"
    for door in spec.doors:
        assert gt.room_of(door.center_m) is None
        c = fsm.world_to_cell(door.center_m)
        assert fsm.free[c[0], c[1]]
    for room in spec.rooms:
        assert gt.room_of(room.box.center) == room.name


def test_shortest_paths_match_networkx(sim: EmbeddedSim) -> None:
    nx = pytest.importorskip("networkx")
    gt = sim.ground_truth
    reach = gt.reachable_map()
    free = reach.free
    g = nx.Graph()
    h, w = free.shape
    for di, dj, cost in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, math.sqrt(2)), (1, -1, math.sqrt(2))):
        i, j = np.nonzero(free)
        a, b = i + di, j + dj
        ok = (a >= 0) & (a < h) & (b >= 0) & (b < w)
        i, j, a, b = i[ok], j[ok], a[ok], b[ok]
        ok = free[a, b]
        if di and dj:  # diagonal moves may not cut a blocked corner
            ok &= free[i + di, j] & free[i, j + dj]
        g.add_weighted_edges_from(
            zip(zip(i[ok].tolist(), j[ok].tolist()), zip(a[ok].tolist(), b[ok].tolist()), [cost] * int(ok.sum()))
        )
    waypoints = coverage_waypoints(gt)
    src = tuple(int(v) for v in reach.world_to_cell(waypoints[0]))
    lengths = nx.single_source_dijkstra_path_length(g, src)
    for wp in waypoints[1:]:
        dst = tuple(int(v) for v in reach.world_to_cell(wp))
        ours = gt.shortest_path_length(waypoints[0], wp)
        assert ours == pytest.approx(lengths[dst] * reach.resolution_m, rel=1e-9)
        assert ours >= math.dist(waypoints[0], wp) - 1e-9
        path = gt.shortest_path(waypoints[0], wp)
        assert np.linalg.norm(np.diff(path, axis=0), axis=1).sum() == pytest.approx(ours, rel=1e-9)
    assert gt.shortest_path_length(waypoints[0], waypoints[0]) == 0.0
    assert gt.shortest_path_length(waypoints[0], (-50.0, -50.0)) == math.inf


def test_coverage_walk_visits_every_room() -> None:
    s = EmbeddedSim(seed=0, width=48, height=36)
    try:
        rooms = set()
        n = 0
        for action in coverage_actions(s, look_around=False):
            frame = s.step(action)
            rooms.add(frame.meta["room"])
            n += 1
        assert {r.name for r in s.apartment.rooms} <= rooms
        assert n < 1000
    finally:
        s.close()


def test_hydra_config_instantiates() -> None:
    hydra = pytest.importorskip("hydra")
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "engram" / "configs" / "sim" / "embedded.yaml")
    assert cfg._target_ == "engram.sims.embedded.EmbeddedSim"
    s = hydra.utils.instantiate(cfg, width=64, height=48, dynamics={"n_relocations": 2, "person": True})
    try:
        frame = s.observe()
        assert frame.rgb.shape == (48, 64, 3)
        assert len(s.dynamics.relocations) == 2 and s.person_instance_id is not None
    finally:
        s.close()


def test_room_culling_never_changes_the_image() -> None:
    culled = EmbeddedSim(seed=3, width=160, height=120)
    full = EmbeddedSim(seed=3, width=160, height=120, cull_hidden_rooms=False)
    try:
        reach = culled.ground_truth.reachable_map()
        cells = np.argwhere(reach.free)
        rng = np.random.default_rng(1)
        hidden_any = False
        for _ in range(10):
            x, y = reach.cell_to_world(cells[rng.integers(len(cells))])
            yaw = float(rng.uniform(-math.pi, math.pi))
            a = culled.set_agent_pose(float(x), float(y), yaw)
            b = full.set_agent_pose(float(x), float(y), yaw)
            hidden_any |= bool(culled._world._hidden)
            np.testing.assert_array_equal(a.instances, b.instances)
            np.testing.assert_array_equal(a.depth_m, b.depth_m)
            np.testing.assert_array_equal(a.rgb, b.rgb)
        assert hidden_any  # the culling did hide something
    finally:
        culled.close()
        full.close()
