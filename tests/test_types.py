"""Shared types: poses compose and invert as rigid transforms; frames validate once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram.types import CameraIntrinsics, Frame, Pose


def random_pose(rng: np.random.Generator) -> Pose:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return Pose.from_quaternion(q, rng.uniform(-5, 5, size=3))


def test_inverse_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a_from_b = random_pose(rng)
        assert (a_from_b @ a_from_b.inverse()).allclose(Pose.identity(), atol=1e-12)
        assert (a_from_b.inverse() @ a_from_b).allclose(Pose.identity(), atol=1e-12)


def test_composition_matches_sequential_transforms():
    rng = np.random.default_rng(1)
    a_from_b, b_from_c = random_pose(rng), random_pose(rng)
    pts_c = rng.normal(size=(50, 3))
    np.testing.assert_allclose((a_from_b @ b_from_c) @ pts_c, a_from_b @ (b_from_c @ pts_c), atol=1e-12)


def test_transform_preserves_distances():
    rng = np.random.default_rng(2)
    pose = random_pose(rng)
    p = rng.normal(size=(30, 3))
    q = pose @ p
    d0 = np.linalg.norm(p[:, None] - p[None], axis=-1)
    d1 = np.linalg.norm(q[:, None] - q[None], axis=-1)
    np.testing.assert_allclose(d0, d1, atol=1e-10)


def test_quaternion_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(50):
        pose = random_pose(rng)
        again = Pose.from_quaternion(pose.as_quaternion(), pose.translation)
        assert again.allclose(pose, atol=1e-9)


def test_yaw_rotates_x_to_heading():
    pose = Pose.from_xyz_yaw(1.0, 2.0, 0.0, math.pi / 2)
    np.testing.assert_allclose(pose @ np.array([[1.0, 0, 0]]), [[1.0, 3.0, 0.0]], atol=1e-12)


@pytest.mark.parametrize(
    "matrix, fragment",
    [
        (np.diag([1.0, 1.0, 2.0, 1.0]), "orthonormal"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "reflection"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.eye(3), "shape"),
    ],
)
def test_non_rigid_poses_rejected(matrix, fragment):
    with pytest.raises(ValueError, match=fragment):
        Pose(matrix)


def test_intrinsics_from_fov_and_scaling():
    k = CameraIntrinsics.from_fov(320, 240, 90.0)
    assert k.fy == pytest.approx(120.0)
    assert (k.cx, k.cy) == (159.5, 119.5)
    half = k.scaled(0.5)
    assert (half.width, half.height) == (160, 120)
    assert half.cx == pytest.approx(79.5) and half.fx == pytest.approx(60.0)
    with pytest.raises(ValueError, match="fx"):
        CameraIntrinsics(fx=-1, fy=1, cx=0, cy=0, width=4, height=4)


def _frame(**kw):
    base = dict(index=0, timestamp_s=0.0, rgb=np.zeros((4, 6, 3), np.uint8))
    base.update(kw)
    return Frame(**base)


def test_frame_validation_names_the_field():
    k = CameraIntrinsics(fx=5, fy=5, cx=2.5, cy=1.5, width=6, height=4)
    ok = _frame(depth_m=np.ones((4, 6), np.float32), intrinsics=k, world_from_camera=np.eye(4))
    assert ok.has_geometry and isinstance(ok.world_from_camera, Pose)
    cases = [
        (dict(rgb=np.zeros((4, 6), np.uint8)), "rgb"),
        (dict(rgb=np.zeros((4, 6, 3), np.float32)), "rgb"),
        (dict(rgb=np.zeros((0, 6, 3), np.uint8)), "rgb"),
        (dict(depth_m=np.ones((3, 6), np.float32)), "depth_m"),
        (dict(depth_m=np.ones((4, 6), np.float64)), "depth_m"),
        (dict(depth_m=np.full((4, 6), np.inf, np.float32)), "depth_m"),
        (dict(depth_m=-np.ones((4, 6), np.float32)), "depth_m"),
        (dict(intrinsics=CameraIntrinsics(fx=5, fy=5, cx=2, cy=2, width=5, height=4)), "intrinsics"),
        (dict(world_from_camera=np.diag([1, 1, 3, 1.0])), "world_from_camera"),
        (dict(instances=np.zeros((4, 6), np.int64)), "instances"),
        (dict(timestamp_s=float("nan")), "timestamp_s"),
        (dict(index=-1), "index"),
        (dict(labels={"a": 1}), "labels"),
    ]
    for kw, field in cases:
        with pytest.raises(ValueError, match=field):
            _frame(**kw)


def test_nan_depth_is_no_return_not_an_error():
    d = np.ones((4, 6), np.float32)
    d[0, 0] = np.nan
    d[1, 1] = 0.0
    assert _frame(depth_m=d).depth_m is d
