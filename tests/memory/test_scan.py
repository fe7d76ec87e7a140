from __future__ import annotations

import numpy as np
import pytest

from engram.memory.octree import OccupancyOctree
from engram.memory.scan import scan_frame
from engram.perception.geometry import backproject_depth
from engram.types import CameraIntrinsics, Pose

K = CameraIntrinsics(fx=90.0, fy=95.0, cx=63.5, cy=47.5, width=128, height=96)


def _depth(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.4, 6.0, size=(K.height, K.width)).astype(np.float32)
    d[rng.random(d.shape) < 0.1] = 0.0
    d[rng.random(d.shape) < 0.05] = np.nan
    return d


POSE = Pose.from_rt(
    np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    @ np.array([[np.cos(0.3), 0, np.sin(0.3)], [0, 1, 0], [-np.sin(0.3), 0, np.cos(0.3)]]),
    [0.4, -0.2, 1.1],
)


@pytest.mark.parametrize("stride", [1, 3])
def test_scan_keys_the_same_pixels_and_points_as_backprojection(stride):
    depth = _depth()
    tree = OccupancyOctree(0.05)
    scan = scan_frame(tree, depth, K, POSE, stride=stride)
    pts_cam, px = backproject_depth(depth, K, stride=stride, return_pixels=True)
    pts = POSE.transform_points(pts_cam)
    assert np.array_equal(scan.uv(), px)
    assert np.allclose(scan.points_world(), pts, atol=1e-9)
    assert np.allclose(scan.heights_world(), pts[:, 2], atol=1e-4)  # z alone (float32 for all rows), or of some rows
    some = np.arange(0, len(pts), 7)
    assert np.allclose(scan.heights_world(some), pts[some, 2], atol=1e-9)
    # keys agree except where a point sits within rounding of a voxel face
    same = scan.codes == tree.point_codes(pts)
    assert same.mean() > 0.999
    on_face = np.abs(pts / 0.05 - np.round(pts / 0.05)).min(axis=1) < 1e-9
    assert np.all(same | on_face)


def test_scan_reads_the_map_before_the_frame_at_the_endpoint_and_beyond():
    depth = _depth(1)
    tree = OccupancyOctree(0.05)
    rng = np.random.default_rng(2)
    # a map with free, occupied and unknown voxels around the endpoints
    pts = POSE.transform_points(backproject_depth(depth, K))
    tree.update_points(pts[::2], rng.choice([-2.0, -0.5, 1.0], size=len(pts[::2])).astype(np.float32))
    tree.update_points(pts[1::7] + 0.05, -2.0)
    beyond = 0.075
    scan = scan_frame(tree, depth, K, POSE, beyond_m=beyond, beyond_below=-1.0)
    p = scan.points_world()
    ray = p - POSE.translation
    far = p + ray * (beyond / np.linalg.norm(ray, axis=1, keepdims=True))
    expected = np.maximum(tree.log_odds(p), tree.log_odds(far))  # NaN where either is unknown
    low = ~(tree.log_odds(p) > -1.0)  # the bound: beyond is only read at or below it (or unknown)
    assert np.array_equal(np.isnan(scan.log_odds[low]), np.isnan(expected[low]))
    ok = ~np.isnan(expected) & low
    assert np.allclose(scan.log_odds[ok], expected[ok])
    # above the bound the stored value is the endpoint's, and the test "<= -1" gives the same answer
    assert np.array_equal(scan.log_odds[~low], tree.log_odds(p)[~low])
    with np.errstate(invalid="ignore"):
        assert np.array_equal(scan.log_odds <= -1.0, expected <= -1.0)


def test_bad_depth_shape_raises():
    with pytest.raises(ValueError):
        scan_frame(OccupancyOctree(0.05), np.zeros((5, 5), np.float32), K, POSE)
    with pytest.raises(ValueError):
        scan_frame(OccupancyOctree(0.05), _depth(), K, POSE, stride=0)
