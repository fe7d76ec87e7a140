"""The Panda manipulation scene: IK, friction and constraint grasps, cameras."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet")

from engram.perception.geometry import backproject_depth
from engram.sims.embedded import ManipulationScene
from engram.sims.embedded.manipulation import TABLE_TOP_Z_M, look_at


@pytest.fixture(scope="module")
def scene() -> ManipulationScene:
    s = ManipulationScene(seed=0, width=160, height=120)
    yield s
    s.close()


def test_cameras_see_the_table_at_its_height(scene: ManipulationScene) -> None:
    frame = scene.observe("fixed")
    assert frame.has_geometry and frame.rgb.shape == (120, 160, 3)
    assert {"mug", "bowl", "box", "table", "robot"} <= set(frame.labels.values())
    # Table-top pixels backproject onto the plane z = table top (known geometry).
    table_id = scene.table_id
    depth = np.where(frame.instances == table_id, frame.depth_m, 0.0).astype(np.float32)
    pts = frame.world_from_camera.transform_points(backproject_depth(depth, frame.intrinsics))
    top = pts[pts[:, 2] > TABLE_TOP_Z_M - 0.05]
    assert len(top) > 500
    assert np.median(np.abs(top[:, 2] - TABLE_TOP_Z_M)) < 0.002
    # Every labelled pixel of the mug lies inside the mug's box.
    mug = scene.instance_id("mug")
    lo, hi = scene.aabb(mug)
    depth = np.where(frame.instances == mug, frame.depth_m, 0.0).astype(np.float32)
    pts = frame.world_from_camera.transform_points(backproject_depth(depth, frame.intrinsics))
    assert len(pts) > 10
    assert ((pts >= lo - 0.01) & (pts <= hi + 0.01)).all()
    wrist = scene.observe("wrist")
    assert wrist.has_geometry and wrist.meta["camera"] == "wrist"


def test_look_at_points_the_optical_axis_at_the_target() -> None:
    pose = look_at((1.0, 2.0, 3.0), (0.0, 0.0, 1.0))
    axis = pose.rotation[:, 2]
    np.testing.assert_allclose(axis, np.array([-1.0, -2.0, -2.0]) / 3.0, atol=1e-12)
    assert pose.rotation[2, 1] < 0  # image y (down) points down in the world
    with pytest.raises(ValueError):
        look_at((0, 0, 1), (0, 0, 0))


def test_inverse_kinematics_reaches_targets(scene: ManipulationScene) -> None:
    for target in ([0.45, -0.1, 0.85], [0.55, 0.1, 0.75], [0.35, 0.0, 0.9]):
        assert scene.move_ee(target, yaw_rad=0.3)
        ee = scene.ee_pose
        np.testing.assert_allclose(ee.translation, target, atol=0.003)
        assert ee.rotation[2, 2] < -0.999  # the fingers point straight down
        # The wrist camera rides on the hand.
        assert np.linalg.norm(scene.camera_pose("wrist").translation - ee.translation) < 0.2
    with pytest.raises(ValueError, match="reach"):
        scene.move_ee([2.0, 0.0, 0.8])
    with pytest.raises(ValueError):
        scene.move_ee([0.4, 0.0, float("nan")])


def test_friction_grasp_mug_into_bowl(scene: ManipulationScene) -> None:
    mug, bowl = scene.instance_id("mug"), scene.instance_id("bowl")
    z0 = scene.object_poses()[mug].position_m[2]
    assert scene.pick("mug")
    assert scene.holding == mug
    assert scene.object_poses()[mug].position_m[2] > z0 + 0.1  # lifted by friction alone
    assert scene.place_in("bowl")
    assert scene.holding is None
    assert scene.is_inside(mug, bowl)
    with pytest.raises(ValueError, match="holds nothing"):
        scene.place_in("box")


def test_constraint_grasp_block_into_box() -> None:
    s = ManipulationScene(seed=1, width=32, height=24, grasp_mode="constraint")
    try:
        block, box = s.instance_id("block"), s.instance_id("box")
        assert s.pick("block")
        assert s._constraint is not None
        assert s.place_in("box")
        assert s._constraint is None
        assert s.is_inside(block, box)
    finally:
        s.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="grasp_mode"):
        ManipulationScene(grasp_mode="magnet")
    with pytest.raises(ValueError, match="seed"):
        ManipulationScene(seed=-2)


def test_same_seed_same_layout() -> None:
    a, b = ManipulationScene(seed=3, width=16, height=12), ManipulationScene(seed=3, width=16, height=12)
    try:
        pa, pb = a.object_poses(), b.object_poses()
        for k in pa:
            assert pa[k].position_m == pytest.approx(pb[k].position_m, abs=1e-9)
        assert math.isclose(a.time_s, b.time_s)
    finally:
        a.close()
        b.close()
