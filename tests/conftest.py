"""Shared fixtures: the real sample data beside the repository, small synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engram.types import CameraIntrinsics, Frame, Pose

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (ICL-NUIM living room, one TUM frame); skips when absent."""
    if not (SHARED_DATA / "icl_livingroom1" / "trajectory.log").exists():
        pytest.skip(f"sample data not found at {SHARED_DATA} (see the README's data section)")
    return SHARED_DATA


@pytest.fixture
def small_intrinsics() -> CameraIntrinsics:
    return CameraIntrinsics(fx=80.0, fy=80.0, cx=39.5, cy=29.5, width=80, height=60)


@pytest.fixture
def wall_frame(small_intrinsics: CameraIntrinsics) -> Frame:
    """A camera at the origin looking along +x (world z up) at a flat wall 2 m away."""
    k = small_intrinsics
    depth = np.full((k.height, k.width), 2.0, dtype=np.float32)
    # OpenCV camera (z forward, x right, y down) looking along world +x with world z up.
    world_from_camera = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 1.0])
    return Frame(
        index=0,
        timestamp_s=0.0,
        rgb=np.full((k.height, k.width, 3), 128, np.uint8),
        depth_m=depth,
        intrinsics=k,
        world_from_camera=world_from_camera,
    )


def render_boxes(boxes, world_from_camera: Pose, k: CameraIntrinsics, floor_z: float | None = 0.0):
    """Ray-cast axis-aligned boxes (and a floor plane) analytically.

    Args:
        boxes: list of (instance_id, box_min xyz, box_max xyz).
        world_from_camera: OpenCV camera pose in the z-up world.
        k: intrinsics.
        floor_z: height of an infinite floor (instance 0), or None.

    Returns:
        depth_m "H W" float32 (0 = no hit) and instances "H W" int32.
    """
    us, vs = np.meshgrid(np.arange(k.width), np.arange(k.height))
    d_cam = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us, float)], -1).reshape(-1, 3)
    r = world_from_camera.rotation
    d_w = d_cam @ r.T  # ray direction with unit camera-z component
    o = world_from_camera.translation
    best = np.full(len(d_w), np.inf)
    ids = np.zeros(len(d_w), np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for iid, lo, hi in boxes:
            lo, hi = np.asarray(lo, float), np.asarray(hi, float)
            t1 = (lo - o) / d_w
            t2 = (hi - o) / d_w
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tmax >= tmin) & (tmin > 0) & (tmin < best)
            best[hit] = tmin[hit]
            ids[hit] = iid
        if floor_z is not None:
            t = (floor_z - o[2]) / d_w[:, 2]
            hit = (t > 0) & (t < best)
            best[hit] = t[hit]
            ids[hit] = 0
    depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32)  # t is z-depth since d_cam.z == 1
    return depth.reshape(k.height, k.width), ids.reshape(k.height, k.width)


@pytest.fixture
def box_renderer():
    return render_boxes
