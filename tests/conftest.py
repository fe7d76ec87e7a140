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
