"""RGB-D odometry on the ICL-NUIM sample: accuracy against the shipped poses, skipped and lost frames."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open3d")

from engram.perception.odometry import (  # noqa: E402
    LEVEL_CAMERA_POSE,
    RgbdOdometry,
    align_rigid,
    ate_rmse_m,
    pose_delta,
    rpe_rmse_m,
    with_estimated_poses,
)
from engram.sims.rgbd import RgbdDataset  # noqa: E402
from engram.types import Frame, Pose  # noqa: E402

N_FRAMES = 30


@pytest.fixture(scope="module")
def icl_frames(shared_data: Path) -> list[Frame]:
    return list(RgbdDataset(shared_data / "icl_livingroom1", max_frames=N_FRAMES))


def _without_poses(frames: list[Frame]) -> list[Frame]:
    return [dataclasses.replace(f, world_from_camera=None) for f in frames]


def _random_pose(rng: np.random.Generator) -> Pose:
    q = rng.normal(size=4)
    return Pose.from_quaternion(q / np.linalg.norm(q), rng.normal(size=3))


def test_alignment_recovers_a_known_rigid_transform() -> None:
    rng = np.random.default_rng(0)
    traj = [Pose.from_xyz_yaw(np.cos(t), np.sin(t), 0.1 * t, t) for t in np.linspace(0, 3, 40)]
    other_from_world = _random_pose(rng)
    moved = [other_from_world @ p for p in traj]
    np.testing.assert_allclose(
        align_rigid(np.stack([p.translation for p in traj]), np.stack([p.translation for p in moved])),
        other_from_world.matrix,
        atol=1e-9,
    )
    assert ate_rmse_m(moved, traj) < 1e-9
    assert rpe_rmse_m(moved, traj) < 1e-9
    # one camera displaced by 2 cm: exactly two of the N - 1 relative motions are off by 2 cm
    bumped = list(traj)
    bumped[17] = Pose.from_rt(np.eye(3), [0.02, 0.0, 0.0]) @ traj[17]
    assert rpe_rmse_m(bumped, traj) == pytest.approx(0.02 * np.sqrt(2 / (len(traj) - 1)), rel=1e-6)
    # isotropic position noise of sigma per axis: ATE close to sqrt(3) * sigma (alignment absorbs a little)
    noisy = np.stack([p.matrix for p in traj])
    noisy[:, :3, 3] += rng.normal(scale=0.01, size=(len(traj), 3))
    assert 0.012 < ate_rmse_m(noisy, traj) < 0.0175


def test_tracks_icl_within_5cm(icl_frames: list[Frame]) -> None:
    odo = RgbdOdometry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean sequence raises no warning
        out = list(with_estimated_poses(_without_poses(icl_frames), tracker=odo))
    assert len(out) == N_FRAMES
    assert all(f.meta["tracking"] in ("ok", "keyframe") for f in out)
    assert all(f.world_from_camera is not None for f in out)
    assert len(odo.keyframe_indices) >= 2  # the camera moves enough to need new keyframes
    est = [f.world_from_camera for f in out]
    ref = [f.world_from_camera for f in icl_frames]
    assert ate_rmse_m(est, ref) < 0.05
    assert rpe_rmse_m(est, ref) < 0.01
    # the first frame is the level camera at the origin; poses in the dataset's z-up world agree with it
    assert out[0].world_from_camera.allclose(LEVEL_CAMERA_POSE)
    assert icl_frames[0].world_from_camera.allclose(LEVEL_CAMERA_POSE, atol=1e-6)
    # without any alignment the estimated path ends near the shipped one
    end_m, _ = pose_delta(np.linalg.inv(ref[-1].matrix) @ est[-1].matrix)
    assert end_m < 0.05


def test_empty_depth_is_skipped_and_a_jump_is_lost_then_recovered(icl_frames: list[Frame], shared_data: Path) -> None:
    frames = _without_poses(icl_frames[:16])
    blank = dataclasses.replace(frames[5], depth_m=np.zeros_like(frames[5].depth_m))
    far = RgbdDataset(shared_data / "icl_livingroom1", with_poses=False)[150]  # another part of the room
    stream = frames[:5] + [blank] + frames[6:10] + [dataclasses.replace(far, index=10)] + frames[11:]
    with pytest.warns(RuntimeWarning, match="frame 5 skipped"):
        out = list(with_estimated_poses(stream))
    status = [f.meta["tracking"] for f in out]
    assert status[5] == "skipped" and out[5].world_from_camera is None
    assert "valid depth" in out[5].meta["tracking_reason"]
    assert status[10] == "lost" and out[10].world_from_camera is None
    assert all(s in ("ok", "keyframe") for i, s in enumerate(status) if i not in (5, 10))
    # tracking went on through both: the poses after them still match the shipped ones
    idx = [i for i in range(len(out)) if i not in (5, 10)]
    ref = [icl_frames[i].world_from_camera for i in idx]
    est = [out[i].world_from_camera for i in idx]
    assert ate_rmse_m(est, ref) < 0.05


def test_first_frame_without_depth_says_so(icl_frames: list[Frame]) -> None:
    frames = _without_poses(icl_frames[:4])
    frames[0] = dataclasses.replace(frames[0], depth_m=np.zeros_like(frames[0].depth_m))
    with pytest.warns(RuntimeWarning, match="first frame"):
        out = list(with_estimated_poses(frames))
    assert out[0].meta["tracking"] == "skipped"
    # frame 1 starts the world, the rest follow it
    assert out[1].world_from_camera.allclose(LEVEL_CAMERA_POSE)
    assert all(f.world_from_camera is not None for f in out[1:])


def test_source_pose_is_kept_and_anchors_the_world(icl_frames: list[Frame]) -> None:
    start = Pose.from_xyz_yaw(1.0, 2.0, 1.5, 0.3) @ LEVEL_CAMERA_POSE
    frames = [dataclasses.replace(f, world_from_camera=start if f.index == 0 else None) for f in icl_frames[:3]]
    out = list(with_estimated_poses(frames, drop_untracked=True))
    assert out[0].world_from_camera.allclose(start)
    assert out[0].meta["source_world_from_camera"] == start
    assert "source_world_from_camera" not in out[1].meta


def test_bad_arguments(icl_frames: list[Frame]) -> None:
    with pytest.raises(ValueError, match="method"):
        RgbdOdometry(method="orb")
    with pytest.raises(ValueError, match="downsample"):
        RgbdOdometry(downsample=0)
    with pytest.raises(ValueError, match="min_fitness"):
        with_estimated_poses(iter(()), min_fitness=2.0)  # raised at the call, not at the first frame
    no_k = dataclasses.replace(icl_frames[0], intrinsics=None)
    with pytest.raises(ValueError, match="intrinsics"):
        RgbdOdometry().track(no_k)


def test_depth_downsampling_keeps_surfaces_and_drops_edges() -> None:
    from engram.perception.odometry import _downsample_depth

    depth = np.zeros((4, 6), np.float32)
    depth[:2, :2] = [[1.0, 1.02], [1.0, 0.0]]  # one surface, one hole: mean of the valid three
    depth[:2, 2:4] = [[1.0, 3.0], [1.0, 3.0]]  # a depth edge: dropped, never 2.0
    depth[2:, :] = np.nan  # no return
    small = _downsample_depth(depth, 2)
    assert small.shape == (2, 3) and small.dtype == np.float32
    assert small[0, 0] == pytest.approx(3.02 / 3)
    assert small[0, 1] == 0.0 and small[0, 2] == 0.0
    assert np.all(small[1] == 0.0)


def test_static_real_kinect_frame_stays_put(shared_data: Path) -> None:
    """The same real TUM frame five times: a camera that does not move gets no motion."""
    from engram.sims.rgbd import load_rgbd_pair

    frame = load_rgbd_pair(shared_data / "tum_single" / "color.png", shared_data / "tum_single" / "depth.png", 5000.0)
    frames = [dataclasses.replace(frame, index=i, timestamp_s=i / 30) for i in range(5)]
    out = list(with_estimated_poses(frames))
    for f in out:
        moved_m, turned_deg = pose_delta(np.linalg.inv(LEVEL_CAMERA_POSE.matrix) @ f.world_from_camera.matrix)
        assert moved_m < 1e-3 and turned_deg < 0.1
