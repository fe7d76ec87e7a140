"""RgbdDataset and load_rgbd_pair on the real sample data and on small folders built from it."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.perception.geometry import frame_points_world
from engram.sims.rgbd import (
    RgbdDataset,
    associate_timestamps,
    estimate_floor_height,
    load_rgbd_pair,
    read_trajectory_log,
    read_tum_trajectory,
    write_tum_trajectory,
)
from engram.types import CameraIntrinsics, Pose


def test_icl_sample_loads_and_views_overlap(shared_data: Path) -> None:
    cKDTree = pytest.importorskip("scipy.spatial").cKDTree
    ds = RgbdDataset(shared_data / "icl_livingroom1")
    assert ds.format == "icl" and len(ds) == 211
    k = ds.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (525.0, 525.0, 319.5, 239.5, 640, 480)
    f0, f100 = ds[0], ds[100]
    assert f100.index == 100 and f100.timestamp_s == pytest.approx(100 / 30)
    assert f0.depth_m.dtype == np.float32 and f0.has_geometry
    # depth is millimetres / 1000: compare with the raw PNG
    raw = cv2.imread(str(shared_data / "icl_livingroom1" / "depth" / "00100.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(f100.depth_m, raw / 1000.0, atol=1e-6)
    p0 = frame_points_world(f0, stride=4)
    p100 = frame_points_world(f100, stride=4)
    dist, _ = cKDTree(p0).query(p100)
    assert np.median(dist) < 0.03
    # without poses the same views do not overlap: the check above can fail
    moved = (f100.world_from_camera.inverse()).transform_points(p100)
    dist_wrong, _ = cKDTree(p0).query(moved)
    assert np.median(dist_wrong) > 0.05


def test_icl_world_is_z_up(shared_data: Path) -> None:
    """The floor of the living room is horizontal in the world frame and below the camera."""
    f0 = RgbdDataset(shared_data / "icl_livingroom1", max_frames=1)[0]
    pts = frame_points_world(f0, stride=4)
    lowest = pts[pts[:, 2] < np.percentile(pts[:, 2], 15)]
    # a plane fit through the lowest points: its normal is close to z
    centred = lowest - lowest.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    assert abs(normal[2]) > 0.98
    assert lowest[:, 2].mean() < f0.world_from_camera.translation[2]


def test_icl_stride_max_frames_and_no_poses(shared_data: Path) -> None:
    ds = RgbdDataset(shared_data / "icl_livingroom1", stride=50, max_frames=3, with_poses=False)
    frames = list(ds)
    assert [f.index for f in frames] == [0, 50, 100]
    assert all(f.world_from_camera is None for f in frames)


def _copy_icl(shared_data: Path, dst: Path, n: int) -> Path:
    src = shared_data / "icl_livingroom1"
    for sub in ("color", "depth"):
        (dst / sub).mkdir(parents=True)
        for p in sorted((src / sub).iterdir())[:n]:
            shutil.copy(p, dst / sub / p.name)
    return dst


def test_short_trajectory_is_a_clear_error(shared_data: Path, tmp_path: Path) -> None:
    root = _copy_icl(shared_data, tmp_path / "seq", 5)
    poses = read_trajectory_log(shared_data / "icl_livingroom1" / "trajectory.log")[:3]
    lines = []
    for i, m in enumerate(poses):
        lines.append(f"{i} {i} {i + 1}")
        lines += [" ".join(f"{v:.8f}" for v in row) for row in m]
    (root / "trajectory.log").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"3 poses.*5 frames"):
        RgbdDataset(root)
    kept = RgbdDataset(root, missing_poses="keep")
    assert len(kept) == 5
    assert [p is not None for p in kept.poses()] == [True, True, True, False, False]
    assert len(RgbdDataset(root, missing_poses="skip")) == 3


def test_unreadable_images_are_skipped(shared_data: Path, tmp_path: Path) -> None:
    root = _copy_icl(shared_data, tmp_path / "seq", 4)
    (root / "color" / "00001.jpg").write_bytes(b"not a jpeg")
    (root / "depth" / "00003.png").unlink()
    with pytest.warns(RuntimeWarning, match="00003"):
        ds = RgbdDataset(root, with_poses=False)
    assert len(ds) == 3
    with pytest.warns(RuntimeWarning, match="00001.jpg"):
        frames = list(ds)
    assert [f.index for f in frames] == [0, 2]


def _make_tum(shared_data: Path, root: Path, n: int, gt_poses: list[Pose]) -> None:
    """A TUM folder of ``n`` copies of the sample frame, 30 Hz colour, depth 5 ms later, 100 Hz ground truth."""
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_lines, depth_lines = ["# color images"], ["# depth images"]
    for i in range(n):
        t = 1000.0 + i / 30.0
        shutil.copy(shared_data / "tum_single" / "color.png", root / "rgb" / f"{t:.6f}.png")
        shutil.copy(shared_data / "tum_single" / "depth.png", root / "depth" / f"{t + 0.005:.6f}.png")
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.005:.6f} depth/{t + 0.005:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    gt_t = 1000.0 - 0.05 + np.arange(len(gt_poses)) * 0.01
    write_tum_trajectory(root / "groundtruth.txt", gt_t, np.stack([p.matrix for p in gt_poses]))


def test_tum_folder_with_a_missing_depth_file(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "tum"
    # ground truth: a camera moving along x at 1 m/s, rotating about z at 1 rad/s
    gt = [Pose.from_xyz_yaw(-0.05 + 0.01 * i, 0.0, 1.5, -0.05 + 0.01 * i) for i in range(40)]
    _make_tum(shared_data, root, 8, gt)
    victim = sorted((root / "depth").iterdir())[3]
    victim.unlink()
    with pytest.warns(RuntimeWarning, match=victim.name):
        ds = RgbdDataset(root)
    assert ds.format == "tum" and len(ds) == 7
    frames = list(ds)
    assert [f.index for f in frames] == [0, 1, 2, 4, 5, 6, 7]
    single = load_rgbd_pair(shared_data / "tum_single" / "color.png", shared_data / "tum_single" / "depth.png")
    for f in frames:
        np.testing.assert_array_equal(f.depth_m, single.depth_m)
        # interpolated pose at the colour timestamp: x = yaw = t - 1000
        s = f.timestamp_s - 1000.0
        assert f.world_from_camera.allclose(Pose.from_xyz_yaw(s, 0.0, 1.5, s), atol=1e-4)
    k = ds.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == (517.3, 516.5, 318.6, 255.3)
    with pytest.warns(RuntimeWarning, match=victim.name):
        custom = RgbdDataset(root, intrinsics=(500.0, 500.0, 320.0, 240.0), with_poses=False)
    assert custom.intrinsics.fx == 500.0


def test_tum_trajectory_not_covering_frames(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "tum"
    # ground truth ends at t = 1000.06: frames at +0, +0.033 lie inside, +0.067 within 0.02 s of the end
    gt = [Pose.from_xyz_yaw(0.01 * i, 0.0, 1.0, 0.0) for i in range(12)]
    _make_tum(shared_data, root, 6, gt)
    with pytest.raises(ValueError, match="12 poses covering 3 of the 6 frames"):
        RgbdDataset(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(RgbdDataset(root, missing_poses="skip")) == 3
        assert [p is None for p in RgbdDataset(root, missing_poses="keep").poses()] == [False] * 3 + [True] * 3


def test_tum_single_frame(shared_data: Path) -> None:
    folder = shared_data / "tum_single"
    frame = load_rgbd_pair(folder / "color.png", folder / "depth.png", 5000.0)
    raw = cv2.imread(str(folder / "depth.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(frame.depth_m, raw / 5000.0, rtol=1e-6)
    assert frame.intrinsics.width == 640 and frame.intrinsics.fx == 517.3
    valid = frame.depth_m[frame.depth_m > 0]
    assert 0.3 < np.median(valid) < 5.0  # a desk at Kinect range
    k = CameraIntrinsics(fx=520.0, fy=520.0, cx=319.5, cy=239.5, width=640, height=480)
    assert load_rgbd_pair(folder / "color.png", folder / "depth.png", 5000.0, k).intrinsics is k
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_rgbd_pair(folder / "color.png", folder / "missing.png")


def test_tum_trajectory_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    poses = []
    for _ in range(5):
        q = rng.normal(size=4)
        poses.append(Pose.from_quaternion(q / np.linalg.norm(q), rng.normal(size=3)).matrix)
    write_tum_trajectory(tmp_path / "t.txt", np.arange(5) * 0.1, np.stack(poses))
    t, back = read_tum_trajectory(tmp_path / "t.txt")
    np.testing.assert_allclose(t, np.arange(5) * 0.1)
    np.testing.assert_allclose(back, np.stack(poses), atol=1e-5)


def test_associate_timestamps_is_one_to_one() -> None:
    a = np.array([0.0, 1.0, 2.0, 3.0])
    b = np.array([2.005, 0.01, 1.5, 1.99, 5.0])
    pairs = associate_timestamps(a, b, 0.02)
    np.testing.assert_array_equal(pairs, [[0, 1], [2, 0]])


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RgbdDataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither"):
        RgbdDataset(tmp_path / "empty")


def _looking_around(z: float, pitch_deg: float = 35.0, n: int = 8) -> list[Pose]:
    """Cameras at height ``z`` turning on the spot, pitched down (OpenCV cameras, z-up world)."""
    r0 = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    p = np.radians(pitch_deg)
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    return [
        Pose.from_rt(Pose.from_xyz_yaw(0.0, 0.0, 0.0, yaw).rotation @ ry @ r0, [0.0, 0.0, z])
        for yaw in np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ]


FLOOR_K = CameraIntrinsics(fx=200.0, fy=200.0, cx=159.5, cy=119.5, width=320, height=240)


def test_floor_height_is_the_lowest_wide_level_not_a_table_top(box_renderer) -> None:
    # a floor 1.3 m below a hand-held camera's origin, a table whose top is 0.55 m below it
    table = (1, (0.8, -0.6, -1.3), (1.6, 0.6, -0.55))
    poses = _looking_around(0.0)
    depths = [box_renderer([table], p, FLOOR_K, floor_z=-1.3)[0] for p in poses]
    k = (FLOOR_K.fx, FLOOR_K.fy, FLOOR_K.cx, FLOOR_K.cy)
    assert estimate_floor_height(poses, depths, k) == pytest.approx(-1.3, abs=0.02)
    # the same with no floor in sight: the table's top is no floor (too small), so no answer
    no_floor = [box_renderer([table], p, FLOOR_K, floor_z=None)[0] for p in poses]
    assert estimate_floor_height(poses, no_floor, k) is None
    # a level 0.3 m under the camera (less than 0.5 m) is no floor a hand-held camera is held over
    low = _looking_around(-1.0)
    assert estimate_floor_height(low, [box_renderer([], p, FLOOR_K, floor_z=-1.3)[0] for p in low], k) is None
    with pytest.raises(ValueError, match="poses for"):
        estimate_floor_height(poses[:2], depths, k)


@pytest.mark.parametrize(
    "name, boxes",
    [
        ("icl_livingroom1", "icl_livingroom1_boxes.json"),
        ("sevenscenes_redkitchen", "sevenscenes_redkitchen_boxes.json"),
    ],
)
def test_floor_height_of_real_sequences_meets_the_hand_made_boxes(shared_data: Path, name: str, boxes: str) -> None:
    # the boxes of things standing on the floor (chairs, a sideboard, a table) were drawn down to it by hand
    import json

    data = shared_data / name
    if not data.is_dir():
        pytest.skip(f"{name} not in the sample data")
    spec = json.loads((Path(__file__).resolve().parents[1] / "data" / boxes).read_text())
    floor = np.median(
        [o["min"][2] for o in spec["objects"] if o["name"] in ("chair", "rocking chair", "sideboard", "table")]
    )
    est = RgbdDataset(data).estimate_floor_z_m()
    assert est is not None and abs(est - floor) < 0.05, (est, floor)
