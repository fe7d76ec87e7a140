"""RgbdDataset on the 7-Scenes layout: the real red-kitchen sample and small folders built from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.perception.geometry import frame_points_world
from engram.sims.rgbd import (
    RgbdDataset,
    estimate_world_from_dataset,
    read_sevenscenes_pose,
)
from engram.types import Pose

BOXES = Path(__file__).resolve().parents[1] / "data" / "sevenscenes_redkitchen_boxes.json"


@pytest.fixture(scope="module")
def kitchen(shared_data: Path) -> Path:
    path = shared_data / "sevenscenes_redkitchen"
    if not (path / "frame-000000.pose.txt").exists():
        pytest.skip(f"7-Scenes sample not found at {path}")
    return path


def _plane_tilt_deg(points: np.ndarray) -> float:
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return float(np.degrees(np.arccos(abs(normal[2]))))


def _copy(
    kitchen: Path,
    dst: Path,
    numbers: list[int],
    dataset_from_file: np.ndarray | None = None,
) -> Path:
    dst.mkdir(parents=True)
    shutil.copy(kitchen / "camera-intrinsics.txt", dst)
    for n in numbers:
        stem = f"frame-{n:06d}"
        shutil.copy(kitchen / f"{stem}.color.jpg", dst)
        shutil.copy(kitchen / f"{stem}.depth.png", dst)
        pose = np.loadtxt(kitchen / f"{stem}.pose.txt")
        if dataset_from_file is not None:
            pose = dataset_from_file @ pose
        np.savetxt(dst / f"{stem}.pose.txt", pose)
    return dst


def test_sample_loads_with_its_intrinsics_numbers_and_depth(kitchen: Path) -> None:
    cKDTree = pytest.importorskip("scipy.spatial").cKDTree
    ds = RgbdDataset(kitchen)
    assert ds.format == "7scenes" and len(ds) == 500
    k = ds.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (
        585.0,
        585.0,
        320.0,
        240.0,
        640,
        480,
    )
    f0, f10 = ds[0], ds[5]
    assert f10.index == 10 and f10.timestamp_s == pytest.approx(10 / 30)  # frame numbers, not positions
    raw = cv2.imread(str(kitchen / "frame-000010.depth.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(f10.depth_m, np.where(raw == 65535, 0, raw) / 1000.0, atol=1e-6)
    # consecutive views overlap with the poses, and do not without them
    p0, p10 = frame_points_world(f0, stride=4), frame_points_world(f10, stride=4)
    assert np.median(cKDTree(p0).query(p10)[0]) < 0.03
    wrong = f10.world_from_camera.inverse().transform_points(p10)
    assert np.median(cKDTree(p0).query(wrong)[0]) > 0.1


def test_world_is_z_up_floor_and_table_top_level(kitchen: Path) -> None:
    ds = RgbdDataset(kitchen, stride=10)
    pts = np.concatenate([frame_points_world(f, stride=8) for f in ds])
    boxes = {b["name"]: b for b in json.loads(BOXES.read_text())["objects"]}
    table = boxes["table"]
    lo, hi = np.array(table["min"]), np.array(table["max"])
    top = pts[np.all((pts[:, :2] > lo[:2] + 0.1) & (pts[:, :2] < hi[:2] - 0.1), axis=1)]
    top = top[np.abs(top[:, 2] - np.median(top[top[:, 2] > hi[2] - 0.1, 2])) < 0.04]
    floor_z = np.percentile(pts[:, 2], 1)
    floor = pts[np.abs(pts[:, 2] - floor_z) < 0.05]
    assert len(top) > 1000 and len(floor) > 1000
    assert _plane_tilt_deg(top) < 1.5 and _plane_tilt_deg(floor) < 1.5
    # a dining table stands 0.6-0.85 m above the floor, and the cameras look from above it
    assert 0.6 < np.median(top[:, 2]) - np.median(floor[:, 2]) < 0.85
    cam_z = np.array([p.translation[2] for p in ds.poses()])
    assert np.all(cam_z > np.median(top[:, 2]))


def test_gravity_estimate_does_not_depend_on_the_dataset_frame(kitchen: Path, tmp_path: Path) -> None:
    """The same frames under a tilted dataset world end up in the same z-up world."""
    numbers = list(range(0, 1000, 84))
    plain = RgbdDataset(_copy(kitchen, tmp_path / "plain", numbers))
    tilt = Pose.from_rt(cv2.Rodrigues(np.array([0.5, -0.3, 1.2]))[0], [0.3, -1.0, 2.0])
    tilted = RgbdDataset(_copy(kitchen, tmp_path / "tilted", numbers, tilt.matrix))
    for a, b in zip(plain.poses(), tilted.poses()):
        # camera "up" in the world and camera heights agree (yaw and origin may differ)
        ua = a.rotation.T @ np.array([0.0, 0.0, 1.0])
        ub = b.rotation.T @ np.array([0.0, 0.0, 1.0])
        assert np.degrees(np.arccos(np.clip(ua @ ub, -1, 1))) < 1.0
    za = np.array([p.translation[2] for p in plain.poses()])
    zb = np.array([p.translation[2] for p in tilted.poses()])
    np.testing.assert_allclose(za - za[0], zb - zb[0], atol=0.03)


def test_estimate_without_depth_uses_the_cameras_down_axis() -> None:
    level = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0, 0, 0]).matrix  # OpenCV camera, level, looking +x
    tilt = Pose.from_rt(cv2.Rodrigues(np.array([0.2, 0.9, -0.4]))[0], [0, 0, 0]).matrix
    world_from_dataset = estimate_world_from_dataset(np.stack([tilt @ level]))
    camera_in_world = world_from_dataset.matrix @ tilt @ level
    unreadable = estimate_world_from_dataset(np.stack([tilt @ level]), [None], (585.0, 585.0, 320.0, 240.0))
    np.testing.assert_allclose(unreadable.matrix, world_from_dataset.matrix)  # no depth read: the same guess
    np.testing.assert_allclose(camera_in_world[:3, 1], [0, 0, -1], atol=1e-9)  # camera y points down


def test_missing_and_malformed_poses(kitchen: Path, tmp_path: Path) -> None:
    root = _copy(kitchen, tmp_path / "seq", [0, 2, 4, 6])
    (root / "frame-000002.pose.txt").write_text("-inf -inf -inf -inf\n" * 4)  # tracking lost
    assert read_sevenscenes_pose(root / "frame-000002.pose.txt") is None
    with pytest.raises(ValueError, match="1 of 4 frames"):
        RgbdDataset(root)
    assert [f.index for f in RgbdDataset(root, missing_poses="skip")] == [0, 4, 6]
    kept = RgbdDataset(root, missing_poses="keep")
    assert [p is None for p in kept.poses()] == [False, True, False, False]
    (root / "frame-000004.pose.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="frame-000004.pose.txt"):
        RgbdDataset(root, missing_poses="keep")
    (root / "frame-000004.pose.txt").write_text("2 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(ValueError, match="not a rotation"):
        RgbdDataset(root, missing_poses="keep")
    (root / "frame-000004.pose.txt").unlink()
    (root / "frame-000006.depth.png").unlink()
    with pytest.warns(RuntimeWarning, match="no depth image"):
        ds = RgbdDataset(root, missing_poses="skip", world_from_dataset=np.eye(4))
    assert [f.index for f in ds] == [0]


def test_map_job_recognises_the_layout(kitchen: Path) -> None:
    from engram.jobs.mapping import open_source

    src = open_source(kitchen, stride=100)
    assert isinstance(src, RgbdDataset) and src.format == "7scenes" and len(src) == 5


def test_annotated_boxes_hold_reconstructed_points(kitchen: Path) -> None:
    """The hand-made boxes sit on the surfaces of the reconstruction in the reader's world."""
    ds = RgbdDataset(kitchen, stride=5)
    pts = np.concatenate([frame_points_world(f, stride=4) for f in ds])
    objects = json.loads(BOXES.read_text())["objects"]
    assert len(objects) >= 10
    for box in objects:
        lo, hi = np.array(box["min"]), np.array(box["max"])
        assert np.all(hi > lo) and np.all(hi - lo < 2.5), box
        inside = np.all((pts >= lo) & (pts <= hi), axis=1).sum()
        assert inside > 50, f"{box['name']} ({box['instance']}): {inside} points inside"
