"""Camera geometry by round trips and known scenes."""

from __future__ import annotations

import numpy as np
import pytest

from engram.perception.geometry import (
    backproject_depth,
    frame_points_world,
    project_points,
    voxel_centers,
    voxel_keys,
)
from engram.types import CameraIntrinsics, Pose


def test_project_backproject_round_trip(small_intrinsics):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, size=(small_intrinsics.height, small_intrinsics.width)).astype(np.float32)
    pts, px = backproject_depth(depth, small_intrinsics, return_pixels=True)
    assert len(pts) == depth.size
    uv, z, visible = project_points(pts, small_intrinsics)
    assert visible.all()
    np.testing.assert_allclose(uv, px, atol=1e-6)
    np.testing.assert_allclose(z, depth[px[:, 1], px[:, 0]], rtol=1e-6)


def test_invalid_depth_skipped(small_intrinsics):
    depth = np.ones((small_intrinsics.height, small_intrinsics.width), np.float32)
    depth[0, :] = 0.0
    depth[1, :] = np.nan
    pts = backproject_depth(depth, small_intrinsics)
    assert len(pts) == depth.size - 2 * small_intrinsics.width
    assert np.isfinite(pts).all()
    assert len(backproject_depth(depth, small_intrinsics, max_depth_m=0.5)) == 0


def test_principal_point_ray_is_optical_axis():
    k = CameraIntrinsics(fx=100, fy=100, cx=2.0, cy=1.0, width=5, height=3)
    depth = np.zeros((3, 5), np.float32)
    depth[1, 2] = 3.0
    np.testing.assert_allclose(backproject_depth(depth, k), [[0.0, 0.0, 3.0]])


def test_wall_frame_points_lie_on_the_wall(wall_frame):
    pts = frame_points_world(wall_frame)
    # a flat image at constant z=2 m seen along world +x: the wall is the plane x = 2
    np.testing.assert_allclose(pts[:, 0], 2.0, atol=1e-9)
    # camera at height 1 m: the image's top row maps above 1 m, bottom below
    assert pts[:, 2].max() > 1.0 > pts[:, 2].min()


def test_points_behind_camera_not_visible(small_intrinsics):
    uv, z, vis = project_points(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]), small_intrinsics)
    assert not vis[0] and vis[1]
    assert np.isnan(uv[0]).all()


def test_voxel_keys_and_centres():
    pts = np.array([[0.01, 0.049, -0.01], [0.051, 0.0, 0.0]])
    keys = voxel_keys(pts, 0.05)
    assert keys.tolist() == [[0, 0, -1], [1, 0, 0]]
    centres = voxel_centers(keys, 0.05)
    assert np.all(np.abs(centres - pts) <= 0.025 + 1e-12)
    with pytest.raises(ValueError):
        voxel_keys(pts, -1.0)


def test_transform_chain_reads_right_to_left():
    world_from_base = Pose.from_xyz_yaw(1.0, 0.0, 0.0, np.pi / 2)
    base_from_camera = Pose.from_rt(np.eye(3), [0.0, 0.0, 1.5])
    world_from_camera = world_from_base @ base_from_camera
    np.testing.assert_allclose(world_from_camera.translation, [1.0, 0.0, 1.5])
