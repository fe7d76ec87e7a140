"""RGB-D odometry on the ICL-NUIM living-room sample with its poses removed.

Compares engram's `RgbdOdometry` (keyframe dense RGB-D odometry + ICP to a
local map) with Open3D's own trackers on the same frames, on this machine:

- open3d legacy frame-to-frame: ``pipelines.odometry.compute_rgbd_odometry``
  (hybrid term), consecutive frames chained, at the same tracking resolution;
- open3d t.slam frame-to-model: ``t.pipelines.slam.Model`` (TSDF
  VoxelBlockGrid, ray-cast model frame, point-to-plane tracking).

Reported per tracker: ATE RMSE after rigid alignment against the shipped
poses (themselves an Open3D reconstruction, not ground truth), RPE RMSE of
the frame-to-frame translation, tracking frames/s (images decoded
beforehand; one extra row includes decoding), and for engram the
occupied-voxel IoU at 5 cm between maps built from estimated and from
shipped poses.

    python benchmarks/odometry.py [--data ../shared/data/icl_livingroom1] [--frames 211]

Last line: ``ate_rmse_m: A rpe_m: R fps: F`` for engram's default tracker.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram.perception.geometry import frame_points_world  # noqa: E402
from engram.perception.odometry import (  # noqa: E402
    LEVEL_CAMERA_POSE,
    RgbdOdometry,
    ate_rmse_m,
    rpe_rmse_m,
    with_estimated_poses,
)
from engram.sims.rgbd import RgbdDataset  # noqa: E402
from engram.types import Frame, Pose  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "icl_livingroom1"
VOXEL_M = 0.05


class _Clock:
    """Wall and process CPU time since construction."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def rates(self, n: int) -> tuple[float, float]:
        """(frames per wall second, frames per CPU second of this process, all threads)."""
        return n / (time.perf_counter() - self.wall), n / max(time.process_time() - self.cpu, 1e-9)


def _metrics(est: list[Pose | None], ref: list[Pose]) -> tuple[float, float, int]:
    ok = [i for i, p in enumerate(est) if p is not None]
    # RPE over consecutive tracked frames only
    e = [est[i] for i in ok]
    r = [ref[i] for i in ok]
    return ate_rmse_m(e, r), rpe_rmse_m(e, r), len(ok)


def run_engram(frames: list[Frame], **kw) -> tuple[list[Pose | None], tuple[float, float]]:
    odo = RgbdOdometry(**kw)
    clock = _Clock()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = list(with_estimated_poses(frames, tracker=odo))
    return [f.world_from_camera for f in out], clock.rates(len(frames))


def run_engram_streaming(data: Path, n: int) -> tuple[float, float]:
    """Decode + track, straight from disk."""
    src = RgbdDataset(data, with_poses=False, max_frames=n)
    clock = _Clock()
    count = sum(1 for _ in with_estimated_poses(src))
    return clock.rates(count)


def _small(frame: Frame, factor: int):
    import cv2

    k = frame.intrinsics
    h, w = k.height // factor, k.width // factor
    rgb = cv2.resize(frame.rgb, (w, h), interpolation=cv2.INTER_AREA)
    depth = cv2.resize(frame.depth_m, (w, h), interpolation=cv2.INTER_NEAREST)
    return rgb, depth, k.scaled(1.0 / factor)


def run_open3d_legacy(frames: list[Frame], factor: int = 2) -> tuple[list[Pose | None], tuple[float, float]]:
    import open3d as o3d

    odo = o3d.pipelines.odometry
    prepared = []
    for f in frames:
        rgb, depth, k = _small(f, factor)
        gray = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0
        prepared.append(
            o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(np.ascontiguousarray(gray)),
                o3d.geometry.Image(np.ascontiguousarray(depth)),
                depth_scale=1.0,
                depth_trunc=4.0,
                convert_rgb_to_intensity=False,
            )
        )
    pin = o3d.camera.PinholeCameraIntrinsic(k.width, k.height, k.fx, k.fy, k.cx, k.cy)
    option = odo.OdometryOption()
    option.depth_max = 4.0
    pose = np.array(LEVEL_CAMERA_POSE.matrix)  # the same anchor engram uses
    poses: list[Pose | None] = [Pose(pose)]
    velocity = np.eye(4)
    clock = _Clock()
    for i in range(1, len(prepared)):
        ok, prev_from_cur, _ = odo.compute_rgbd_odometry(
            prepared[i], prepared[i - 1], pin, velocity, odo.RGBDOdometryJacobianFromHybridTerm(), option
        )
        if not ok:
            poses.append(None)
            continue
        velocity = prev_from_cur
        pose = pose @ prev_from_cur
        poses.append(Pose(_ortho(pose)))
    return poses, clock.rates(len(frames))


def run_open3d_slam(
    frames: list[Frame], factor: int = 2, voxel_m: float = 0.02
) -> tuple[list[Pose | None], tuple[float, float]]:
    import open3d as o3d

    core = o3d.core
    dev = core.Device("CPU:0")
    smalls = [_small(f, factor) for f in frames]
    k = smalls[0][2]
    kt = core.Tensor(k.matrix, core.float64)
    first = np.array(LEVEL_CAMERA_POSE.matrix)
    model = o3d.t.pipelines.slam.Model(voxel_m, 16, 40000, core.Tensor(np.eye(4)), dev)
    inp = o3d.t.pipelines.slam.Frame(k.height, k.width, kt, dev)
    ray = o3d.t.pipelines.slam.Frame(k.height, k.width, kt, dev)
    t_cur = core.Tensor(np.eye(4))
    poses: list[Pose | None] = []
    clock = _Clock()
    for i, (rgb, depth, _) in enumerate(smalls):
        inp.set_data_from_image("depth", o3d.t.geometry.Image(np.ascontiguousarray(depth)))
        inp.set_data_from_image("color", o3d.t.geometry.Image(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0))
        if i > 0:
            try:
                res = model.track_frame_to_model(inp, ray, 1.0, 4.0, 0.07)
                t_cur = t_cur @ res.transformation
            except RuntimeError:
                poses.append(None)
                continue
        poses.append(Pose(_ortho(first @ t_cur.numpy())))
        model.update_frame_pose(i, t_cur)
        model.integrate(inp, 1.0, 4.0, 8.0)
        model.synthesize_model_frame(ray, 1.0, 0.1, 4.0, 8.0)
    return poses, clock.rates(len(frames))


def _ortho(m: np.ndarray) -> np.ndarray:
    out = np.array(m, dtype=np.float64)
    u, _, vt = np.linalg.svd(out[:3, :3])
    out[:3, :3] = u @ vt
    out[3] = (0, 0, 0, 1)
    return out


def octree_occupied_keys(frames: list[Frame], poses: list[Pose | None]) -> np.ndarray | None:
    """Occupied 5 cm voxels of an OccupancyOctree (ray-cast free space) built with ``poses``; None without octree."""
    try:
        from engram.memory.octree import OccupancyOctree
    except ImportError:
        return None
    tree = OccupancyOctree(VOXEL_M)
    for f, p in zip(frames, poses):
        if p is not None:
            posed = dataclasses.replace(f, world_from_camera=p)
            tree.insert_scan(frame_points_world(posed, stride=8, max_depth_m=4.0), p.translation, max_range_m=4.0)
    return np.floor(tree.occupied_centers() / VOXEL_M).astype(np.int64)


def point_voxel_keys(frames: list[Frame], poses: list[Pose | None]) -> np.ndarray:
    """5 cm voxels that hold a backprojected point (no free-space reasoning)."""
    keys = []
    for f, p in zip(frames, poses):
        if p is not None:
            pts = frame_points_world(dataclasses.replace(f, world_from_camera=p), stride=8, max_depth_m=4.0)
            keys.append(np.floor(pts / VOXEL_M).astype(np.int64))
    return np.unique(np.concatenate(keys), axis=0)


def voxel_iou(a: np.ndarray, b: np.ndarray) -> float:
    sa = {tuple(k) for k in a.tolist()}
    sb = {tuple(k) for k in b.tolist()}
    return len(sa & sb) / max(len(sa | sb), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--frames", type=int, default=211)
    ap.add_argument("--quick", action="store_true", help="engram default tracker only")
    args = ap.parse_args()

    ref_ds = RgbdDataset(args.data, max_frames=args.frames)
    ref = list(ref_ds.poses())
    frames = list(RgbdDataset(args.data, with_poses=False, max_frames=args.frames))
    k = frames[0].intrinsics
    print(f"ICL-NUIM living room 1: {len(frames)} frames at {k.width}x{k.height}, shipped poses removed")

    run_engram(frames[:5])  # warm-up: Open3D's first calls allocate and initialise
    rows = []
    est, rates = run_engram(frames)
    ate, rpe, n_ok = _metrics(est, ref)
    rows.append(("engram RgbdOdometry (default: /2, hybrid, local-map ICP)", ate, rpe, rates, n_ok))
    default = (ate, rpe, rates[0])
    engram_est = est
    if not args.quick:
        for label, kw in (
            ("engram, no local-map ICP (local_map_keyframes=0)", {"local_map_keyframes": 0}),
            ("engram, point_to_plane term", {"method": "point_to_plane"}),
            ("engram, /4 resolution (160x120)", {"downsample": 4}),
        ):
            est, rates = run_engram(frames, **kw)
            rows.append((label, *_metrics(est, ref)[:2], rates, _metrics(est, ref)[2]))
        rates = run_engram_streaming(args.data, args.frames)
        rows.append(("engram default incl. JPEG/PNG decoding", default[0], default[1], rates, n_ok))
        for label, fn in (
            ("open3d legacy f2f RGB-D odometry (hybrid, /2)", run_open3d_legacy),
            ("open3d t.slam frame-to-model (TSDF 2 cm, /2)", run_open3d_slam),
        ):
            est, rates = fn(frames)
            rows.append((label, *_metrics(est, ref)[:2], rates, _metrics(est, ref)[2]))

    name_w = max(len(r[0]) for r in rows)
    print(
        f"{'tracker':<{name_w}}  {'tracked':>7}  {'ate_rmse_m':>10}  {'rpe_m':>8}  {'fps':>6}  "
        f"{'fps/engram':>10}  {'cpu-s fps':>9}"
    )
    for label, ate, rpe, (fps, cpu_fps), n_ok in rows:
        print(
            f"{label:<{name_w}}  {n_ok:>7}  {ate:>10.4f}  {rpe:>8.4f}  {fps:>6.1f}  "
            f"{fps / default[2]:>9.2f}x  {cpu_fps:>9.1f}"
        )
    print(
        "fps: wall-clock frames/s; cpu-s fps: frames per CPU-second of this process (all threads), less load-dependent"
    )

    t0 = time.perf_counter()
    iou = voxel_iou(point_voxel_keys(frames, engram_est), point_voxel_keys(frames, ref))
    print(f"point-voxel IoU at {VOXEL_M * 100:.0f} cm (all frames), estimated vs shipped poses: {iou:.3f}")
    if not args.quick:
        # every 2nd frame keeps the ray casting affordable on a shared machine
        keys_est = octree_occupied_keys(frames[::2], engram_est[::2])
        keys_ref = octree_occupied_keys(frames[::2], ref[::2])
        if keys_est is not None and keys_ref is not None:
            print(
                f"OccupancyOctree occupied-voxel IoU at {VOXEL_M * 100:.0f} cm (every 2nd frame), estimated vs "
                f"shipped poses: {voxel_iou(keys_est, keys_ref):.3f} ({len(keys_est)} vs {len(keys_ref)} voxels, "
                f"{time.perf_counter() - t0:.0f} s)"
            )
    print(f"ate_rmse_m: {default[0]:.4f} rpe_m: {default[1]:.4f} fps: {default[2]:.1f}")


if __name__ == "__main__":
    main()
