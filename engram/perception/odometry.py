"""Camera poses for RGB-D streams that have none.

`RgbdOdometry` tracks a depth camera with Open3D: each frame is aligned to
the current keyframe by Open3D's multi-scale dense RGB-D odometry
(photometric + geometric "hybrid" by default), and every new keyframe is
refined by point-to-plane ICP against a local map made of the recent
keyframes, which keeps the drift of the keyframe chain small. A failure
check (too few correspondences, a residual too large, or a jump beyond a
threshold from the motion model) marks a frame untracked instead of giving
it a wrong pose; the next frames are tracked against the last good keyframe
again, so tracking recovers once the camera sees that keyframe's view again
(there is no global relocalisation). Frames with too little valid depth are skipped
with a warning and leave the tracker untouched.

`with_estimated_poses(source, **kw)` wraps any iterable of `Frame`s and
yields them with ``world_from_camera`` filled in and ``meta["tracking"]``
set to "ok", "keyframe", "lost" or "skipped".

Open3D is the ``[3d]`` extra; it is imported when a tracker is built.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from engram._optional import require
from engram.types import CameraIntrinsics, Frame, Pose

__all__ = [
    "RgbdOdometry",
    "TrackingResult",
    "with_estimated_poses",
    "LEVEL_CAMERA_POSE",
    "pose_delta",
    "align_rigid",
    "ate_rmse_m",
    "rpe_rmse_m",
]

# A level OpenCV camera (x right, y down, z forward) in engram's z-up world,
# looking along +x: the default pose of the first tracked frame.
LEVEL_CAMERA_POSE = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 0.0])

_METHODS = ("hybrid", "point_to_plane", "intensity")


def pose_delta(a_from_b: np.ndarray) -> tuple[float, float]:
    """Translation (m) and rotation angle (deg) of a 4x4 rigid transform."""
    m = np.asarray(a_from_b, dtype=np.float64)
    cos = (np.trace(m[:3, :3]) - 1.0) / 2.0
    return float(np.linalg.norm(m[:3, 3])), float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


@dataclass(frozen=True)
class TrackingResult:
    """What the tracker made of one frame.

    Attributes:
        index: the frame's index.
        status: "init" (first frame, defines the world), "ok", "keyframe"
            (tracked and made a keyframe), "lost" (failed the check, no pose)
            or "skipped" (too little valid depth, not tried).
        world_from_camera: the estimated pose; None when lost or skipped.
        fitness: fraction of pixels with a depth correspondence in the
            odometry (0..1; NaN when not tried).
        inlier_rmse_m: residual of the odometry over the inliers.
        reason: why a frame was lost or skipped ("" otherwise).
    """

    index: int
    status: str
    world_from_camera: Pose | None
    fitness: float = math.nan
    inlier_rmse_m: float = math.nan
    reason: str = ""

    @property
    def tracked(self) -> bool:
        return self.world_from_camera is not None


@dataclass
class _Keyframe:
    index: int
    world_from_camera: np.ndarray
    rgbd: Any  # open3d.t.geometry.RGBDImage at tracking resolution
    points_world: Any  # open3d.geometry.PointCloud with normals


class RgbdOdometry:
    """Keyframe-based RGB-D tracking with Open3D (frame-to-keyframe odometry + ICP to a local map).

    Args:
        method: Open3D odometry term: "hybrid" (photometric + geometric),
            "point_to_plane" (geometric only) or "intensity".
        downsample: images are shrunk by this integer factor for tracking
            (2 turns 640x480 into 320x240; poses stay metric). Colour is
            block-averaged, depth averaged over consistent valid pixels of each
            block, so both keep the same pixel geometry.
        depth_min_m, depth_max_m: depth used for tracking.
        iterations: Gauss-Newton iterations per pyramid level, in the order
            of Open3D's convergence criteria list (its default is (10, 5, 3)).
        min_valid_depth_fraction: frames with less valid depth are skipped.
        min_fitness: odometry/ICP with a smaller correspondence fraction fails.
        max_inlier_rmse_m: odometry with a larger residual fails.
        max_translation_m, max_rotation_deg: a result that moves further
            than this from the motion model's prediction (per frame since
            the last tracked one) is a jump and fails.
        keyframe_translation_m, keyframe_rotation_deg: motion from the
            current keyframe that starts a new keyframe.
        keyframe_min_fitness: a tracked frame whose overlap with the
            keyframe falls below this becomes a keyframe.
        local_map_keyframes: keyframes in the local map for ICP (0: no ICP).
        icp_voxel_m: voxel size of the ICP clouds.
        icp_max_distance_m: ICP correspondence distance.
        max_icp_correction_m: an ICP refinement that moves a keyframe further
            than this from its odometry pose is ignored.
        initial_pose: ``world_from_camera`` of the first tracked frame; when
            None, the first frame's own pose if it has one, else
            `LEVEL_CAMERA_POSE`.
    """

    def __init__(
        self,
        *,
        method: str = "hybrid",
        downsample: int = 2,
        depth_min_m: float = 0.1,
        depth_max_m: float = 4.0,
        iterations: tuple[int, ...] = (6, 4, 2),
        min_valid_depth_fraction: float = 0.1,
        min_fitness: float = 0.3,
        max_inlier_rmse_m: float = 0.05,
        max_translation_m: float = 0.25,
        max_rotation_deg: float = 20.0,
        keyframe_translation_m: float = 0.1,
        keyframe_rotation_deg: float = 8.0,
        keyframe_min_fitness: float = 0.7,
        local_map_keyframes: int = 6,
        icp_voxel_m: float = 0.02,
        icp_max_distance_m: float = 0.05,
        max_icp_correction_m: float = 0.1,
        initial_pose: Pose | None = None,
    ) -> None:
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        if isinstance(downsample, bool) or int(downsample) != downsample or downsample < 1:
            raise ValueError(f"downsample must be a positive integer, got {downsample!r}")
        if not 0 <= depth_min_m < depth_max_m:
            raise ValueError(f"need 0 <= depth_min_m < depth_max_m, got {depth_min_m}, {depth_max_m}")
        if not iterations or any(int(i) < 1 for i in iterations):
            raise ValueError(f"iterations must be positive counts per pyramid level, got {iterations}")
        for name, value in (
            ("min_valid_depth_fraction", min_valid_depth_fraction),
            ("min_fitness", min_fitness),
            ("keyframe_min_fitness", keyframe_min_fitness),
        ):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name, value in (
            ("max_inlier_rmse_m", max_inlier_rmse_m),
            ("max_translation_m", max_translation_m),
            ("max_rotation_deg", max_rotation_deg),
            ("keyframe_translation_m", keyframe_translation_m),
            ("keyframe_rotation_deg", keyframe_rotation_deg),
            ("icp_voxel_m", icp_voxel_m),
            ("icp_max_distance_m", icp_max_distance_m),
            ("max_icp_correction_m", max_icp_correction_m),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if local_map_keyframes < 0:
            raise ValueError(f"local_map_keyframes must be >= 0, got {local_map_keyframes}")
        self._o3d = require("open3d", "RGB-D odometry")
        o3d = self._o3d
        self.method = method
        self.downsample = int(downsample)
        self.depth_min_m = float(depth_min_m)
        self.depth_max_m = float(depth_max_m)
        self.min_valid_depth_fraction = float(min_valid_depth_fraction)
        self.min_fitness = float(min_fitness)
        self.max_inlier_rmse_m = float(max_inlier_rmse_m)
        self.max_translation_m = float(max_translation_m)
        self.max_rotation_deg = float(max_rotation_deg)
        self.keyframe_translation_m = float(keyframe_translation_m)
        self.keyframe_rotation_deg = float(keyframe_rotation_deg)
        self.keyframe_min_fitness = float(keyframe_min_fitness)
        self.local_map_keyframes = int(local_map_keyframes)
        self.icp_voxel_m = float(icp_voxel_m)
        self.icp_max_distance_m = float(icp_max_distance_m)
        self.max_icp_correction_m = float(max_icp_correction_m)
        self.initial_pose = initial_pose

        odo = o3d.t.pipelines.odometry
        self._method = {
            "hybrid": odo.Method.Hybrid,
            "point_to_plane": odo.Method.PointToPlane,
            "intensity": odo.Method.Intensity,
        }[method]
        self._criteria = [odo.OdometryConvergenceCriteria(int(i)) for i in iterations]
        self._loss = odo.OdometryLossParams(0.07, 0.05, 0.1)
        self._icp_criteria = o3d.pipelines.registration.ICPConvergenceCriteria(1e-6, 1e-6, 15)

        self.reset()

    # state ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything: the next frame with depth starts a new world."""
        self._keyframe: _Keyframe | None = None
        self._local_map: deque[_Keyframe] = deque(maxlen=max(self.local_map_keyframes, 1))
        self._map_cloud: Any = None
        self._last_pose: np.ndarray | None = None
        self._velocity: np.ndarray = np.eye(4)  # last_from_current of the previous tracked step
        self._frames_since_tracked = 0
        self._intrinsics: CameraIntrinsics | None = None
        self._k_tensor: Any = None
        self.results: list[TrackingResult] = []
        self.keyframe_indices: list[int] = []
        self._warned_first = False

    @property
    def initialised(self) -> bool:
        return self._keyframe is not None

    # helpers ----------------------------------------------------------------
    def _prepare(self, frame: Frame) -> tuple[Any, np.ndarray, float]:
        """Resize and wrap a frame for Open3D; also return the small depth and its valid fraction."""
        o3d = self._o3d
        k = frame.intrinsics
        assert k is not None and frame.depth_m is not None
        f = self.downsample
        if self._intrinsics is None:
            if k.width < 16 * f or k.height < 16 * f:
                raise ValueError(f"frame {frame.index}: image {k.width}x{k.height} is too small to track")
            self._intrinsics = k
            self._small = CameraIntrinsics(
                fx=k.fx / f,
                fy=k.fy / f,
                cx=(k.cx + 0.5) / f - 0.5,
                cy=(k.cy + 0.5) / f - 0.5,
                width=k.width // f,
                height=k.height // f,
            )
            self._k_tensor = o3d.core.Tensor(self._small.matrix, o3d.core.Dtype.Float64)
        elif k != self._intrinsics:
            raise ValueError(f"frame {frame.index}: intrinsics changed mid-stream ({k} vs {self._intrinsics})")
        small = self._small
        if f > 1:
            h, w = small.height * f, small.width * f
            rgb = cv2.resize(frame.rgb[:h, :w], (small.width, small.height), interpolation=cv2.INTER_AREA)
            depth = _downsample_depth(frame.depth_m[:h, :w], f)
        else:
            rgb, depth = frame.rgb, frame.depth_m
        depth = np.nan_to_num(depth, nan=0.0)
        valid = (depth > self.depth_min_m) & (depth < self.depth_max_m)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
        fraction = float(valid.mean())
        color = np.ascontiguousarray(rgb, dtype=np.float32)
        color *= 1.0 / 255.0
        rgbd = o3d.t.geometry.RGBDImage(o3d.t.geometry.Image(color), o3d.t.geometry.Image(np.ascontiguousarray(depth)))
        return rgbd, depth, fraction

    def _cloud(self, depth_small: np.ndarray, world_from_camera: np.ndarray) -> Any:
        """Legacy Open3D cloud (world frame, normals from the depth grid), voxel-downsampled."""
        o3d = self._o3d
        pts, normals = _grid_points_and_normals(depth_small, self._small, stride=2)
        keep = _voxel_representatives(pts, self.icp_voxel_m)
        pts, normals = pts[keep], normals[keep]
        rot, trans = world_from_camera[:3, :3], world_from_camera[:3, 3]
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts @ rot.T + trans))
        pc.normals = o3d.utility.Vector3dVector(normals @ rot.T)
        return pc

    def _rebuild_map(self) -> None:
        clouds = [kf.points_world for kf in self._local_map]
        if not clouds:
            self._map_cloud = None
            return
        merged = self._o3d.geometry.PointCloud()
        for c in clouds:
            merged += c
        self._map_cloud = merged if len(merged.points) >= 50 else None

    def _add_keyframe(self, index: int, rgbd: Any, depth_small: np.ndarray, pose: np.ndarray) -> None:
        kf = _Keyframe(index, pose.copy(), rgbd, self._cloud(depth_small, pose))
        self._keyframe = kf
        if self.local_map_keyframes > 0:
            self._local_map.append(kf)
            self._rebuild_map()
        self.keyframe_indices.append(index)

    def _refine_with_map(self, depth_small: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
        """Point-to-plane ICP of the frame's cloud against the local map; the odometry pose if ICP fails."""
        if self._map_cloud is None or self.local_map_keyframes == 0:
            return world_from_camera
        o3d = self._o3d
        reg = o3d.pipelines.registration
        source = self._cloud(depth_small, np.eye(4))
        if len(source.points) < 50:
            return world_from_camera
        res = reg.registration_icp(
            source,
            self._map_cloud,
            self.icp_max_distance_m,
            world_from_camera,
            reg.TransformationEstimationPointToPlane(),
            self._icp_criteria,
        )
        if len(res.correspondence_set) < 50:
            return world_from_camera
        refined = np.asarray(res.transformation)
        moved_m, _ = pose_delta(np.linalg.inv(world_from_camera) @ refined)
        if res.fitness < self.min_fitness or moved_m > self.max_icp_correction_m:
            return world_from_camera
        return refined

    # tracking ---------------------------------------------------------------
    def track(self, frame: Frame) -> TrackingResult:
        """Estimate the pose of the next frame of the stream.

        Raises:
            ValueError: the frame has no intrinsics, or the intrinsics change
                mid-stream.
        """
        if frame.intrinsics is None:
            raise ValueError(f"frame {frame.index} has no intrinsics: RGB-D odometry needs them")
        if frame.depth_m is None:
            return self._skip(frame, "the frame has no depth image")
        rgbd, depth_small, fraction = self._prepare(frame)
        if fraction < self.min_valid_depth_fraction:
            return self._skip(
                frame, f"only {fraction:.1%} of pixels have valid depth (< {self.min_valid_depth_fraction:.0%})"
            )

        if self._keyframe is None:
            pose = self.initial_pose or frame.world_from_camera or LEVEL_CAMERA_POSE
            m = np.array(pose.matrix)
            self._add_keyframe(frame.index, rgbd, depth_small, m)
            self._last_pose = m
            self._velocity = np.eye(4)
            self._frames_since_tracked = 0
            return self._record(TrackingResult(frame.index, "init", Pose(m), 1.0, 0.0))

        o3d = self._o3d
        kf = self._keyframe
        assert self._last_pose is not None
        steps = self._frames_since_tracked + 1
        # Constant velocity while tracking; after a loss, start from the last good pose.
        predicted = self._last_pose @ self._velocity if self._frames_since_tracked == 0 else self._last_pose
        kf_from_world = np.linalg.inv(kf.world_from_camera)
        init = kf_from_world @ predicted
        try:
            res = o3d.t.pipelines.odometry.rgbd_odometry_multi_scale(
                rgbd,
                kf.rgbd,
                self._k_tensor,
                o3d.core.Tensor(init),
                1.0,
                self.depth_max_m,
                self._criteria,
                self._method,
                self._loss,
            )
        except RuntimeError as exc:  # Open3D raises on a singular system (no overlap)
            return self._lose(frame, f"odometry failed: {str(exc).strip().splitlines()[-1][:120]}")
        fitness = float(res.fitness)
        rmse = float(res.inlier_rmse)
        kf_from_cam = res.transformation.numpy()
        if not np.all(np.isfinite(kf_from_cam)):
            return self._lose(frame, "odometry returned a non-finite pose", fitness, rmse)
        if fitness < self.min_fitness:
            return self._lose(
                frame, f"too few correspondences: fitness {fitness:.2f} < {self.min_fitness:.2f}", fitness, rmse
            )
        if rmse > self.max_inlier_rmse_m:
            return self._lose(frame, f"residual {rmse:.3f} m > {self.max_inlier_rmse_m} m", fitness, rmse)
        world_from_cam = kf.world_from_camera @ kf_from_cam
        jump_m, jump_deg = pose_delta(np.linalg.inv(predicted) @ world_from_cam)
        if jump_m > self.max_translation_m * steps or jump_deg > self.max_rotation_deg * steps:
            return self._lose(
                frame, f"jump of {jump_m:.2f} m / {jump_deg:.1f} deg from the predicted pose", fitness, rmse
            )

        from_kf_m, from_kf_deg = pose_delta(kf_from_cam)
        status = "ok"
        if (
            from_kf_m > self.keyframe_translation_m
            or from_kf_deg > self.keyframe_rotation_deg
            or fitness < self.keyframe_min_fitness
        ):
            world_from_cam = self._refine_with_map(depth_small, world_from_cam)
            self._add_keyframe(frame.index, rgbd, depth_small, world_from_cam)
            status = "keyframe"
        self._velocity = np.linalg.inv(self._last_pose) @ world_from_cam if steps == 1 else np.eye(4)
        self._last_pose = world_from_cam
        self._frames_since_tracked = 0
        return self._record(TrackingResult(frame.index, status, Pose(_orthonormalise(world_from_cam)), fitness, rmse))

    def _record(self, result: TrackingResult) -> TrackingResult:
        self.results.append(result)
        return result

    def _lose(self, frame: Frame, reason: str, fitness: float = math.nan, rmse: float = math.nan) -> TrackingResult:
        self._frames_since_tracked += 1
        self._velocity = np.eye(4)
        return self._record(TrackingResult(frame.index, "lost", None, fitness, rmse, reason))

    def _skip(self, frame: Frame, reason: str) -> TrackingResult:
        if self._keyframe is None and not self._warned_first:
            warnings.warn(
                f"the first frame ({frame.index}) cannot be tracked: {reason}; "
                "tracking starts at the first frame with enough depth",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_first = True
        else:
            warnings.warn(f"frame {frame.index} skipped by odometry: {reason}", RuntimeWarning, stacklevel=3)
        if self._keyframe is not None:
            self._frames_since_tracked += 1
        return self._record(TrackingResult(frame.index, "skipped", None, reason=reason))


def _downsample_depth(depth_m: np.ndarray, factor: int, max_spread_ratio: float = 0.05) -> np.ndarray:
    """Shrink depth by an integer factor: the mean of each block's valid depths.

    A block whose valid depths spread more than ``max_spread_ratio`` of their
    mean (a depth edge) or that has no valid pixel becomes 0, so no point is
    invented between a foreground and a background surface.
    """
    h, w = depth_m.shape[0] // factor, depth_m.shape[1] // factor
    d = np.nan_to_num(depth_m[: h * factor, : w * factor], nan=0.0)
    # Elementwise over the factor**2 strided sub-images: much faster than reducing a 4D block view.
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    hi = np.zeros((h, w), np.float32)
    lo = np.full((h, w), np.inf, np.float32)
    for dv in range(factor):
        for du in range(factor):
            sub = d[dv::factor, du::factor]
            valid = sub > 0
            total += sub
            count += valid
            np.maximum(hi, sub, out=hi)
            np.minimum(lo, np.where(valid, sub, np.inf), out=lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    ok = (count > 0) & (hi - lo <= max_spread_ratio * np.nan_to_num(mean))
    return np.where(ok, mean, 0.0).astype(np.float32)


def _grid_points_and_normals(
    depth_m: np.ndarray, k: CameraIntrinsics, stride: int = 2, max_jump_ratio: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points and unit normals of an organised depth image (every ``stride``-th pixel).

    Normals come from central differences on the pixel grid (no neighbour
    search); pixels next to missing depth or a depth discontinuity larger
    than ``max_jump_ratio`` times the depth are dropped. Normals face the camera.
    """
    vs = np.arange(0, depth_m.shape[0], stride)
    us = np.arange(0, depth_m.shape[1], stride)
    z = depth_m[np.ix_(vs, us)].astype(np.float64)
    p = np.empty(z.shape + (3,))
    p[..., 0] = ((us[None, :] - k.cx) / k.fx) * z
    p[..., 1] = ((vs[:, None] - k.cy) / k.fy) * z
    p[..., 2] = z
    dx = p[1:-1, 2:] - p[1:-1, :-2]
    dy = p[2:, 1:-1] - p[:-2, 1:-1]
    zc = z[1:-1, 1:-1]
    ok = (zc > 0) & (z[1:-1, 2:] > 0) & (z[1:-1, :-2] > 0) & (z[2:, 1:-1] > 0) & (z[:-2, 1:-1] > 0)
    lim = max_jump_ratio * zc * stride
    ok &= (np.abs(dx[..., 2]) < lim) & (np.abs(dy[..., 2]) < lim)
    n = np.cross(dx[ok], dy[ok])
    norm = np.linalg.norm(n, axis=1)
    good = norm > 1e-12
    n = n[good] / norm[good, None]
    pts = p[1:-1, 1:-1][ok][good]
    flip = np.einsum("ij,ij->i", n, pts) > 0
    n[flip] *= -1.0
    return pts, n


def _voxel_representatives(points: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """Indices of one point per occupied voxel (the first one), for downsampling."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.floor(points / voxel_size_m).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, first = np.unique(flat, return_index=True)
    return first


def _orthonormalise(m: np.ndarray) -> np.ndarray:
    """Project the rotation block back onto SO(3) (float32 ICP results drift off it slightly)."""
    out = np.array(m, dtype=np.float64)
    u, _, vt = np.linalg.svd(out[:3, :3])
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    out[:3, :3] = r
    out[3] = (0.0, 0.0, 0.0, 1.0)
    return out


def with_estimated_poses(
    source: Iterable[Frame], *, drop_untracked: bool = False, tracker: RgbdOdometry | None = None, **kwargs: Any
) -> Iterator[Frame]:
    """The frames of ``source``, lazily, with ``world_from_camera`` estimated by `RgbdOdometry`.

    Args:
        source: any iterable of RGB-D frames with intrinsics.
        drop_untracked: leave out lost and skipped frames instead of yielding
            them without a pose.
        tracker: a tracker to use (built from ``kwargs`` when None).
        **kwargs: `RgbdOdometry` arguments.

    Returns:
        An iterator over copies of the frames: ``world_from_camera`` set (None when untracked),
        ``meta["tracking"]`` the status, ``meta["tracking_reason"]`` why a
        frame is untracked, ``meta["source_world_from_camera"]`` the pose the
        source gave, if any.

    Raises:
        ValueError: bad tracker arguments (at the call, before any frame is read).
    """
    if tracker is not None and kwargs:
        raise ValueError("pass either a tracker or RgbdOdometry keyword arguments, not both")
    # Built here, not inside the generator, so bad arguments fail at the call.
    odo = tracker if tracker is not None else RgbdOdometry(**kwargs)
    return _track_stream(source, odo, drop_untracked)


def _track_stream(source: Iterable[Frame], odo: RgbdOdometry, drop_untracked: bool) -> Iterator[Frame]:
    any_tracked = False
    n = 0
    for frame in source:
        n += 1
        result = odo.track(frame)
        any_tracked |= result.tracked
        if drop_untracked and not result.tracked:
            continue
        meta = dict(frame.meta)
        meta["tracking"] = "keyframe" if result.status == "init" else result.status
        if result.reason:
            meta["tracking_reason"] = result.reason
        if frame.world_from_camera is not None:
            meta["source_world_from_camera"] = frame.world_from_camera
        yield dataclasses.replace(frame, world_from_camera=result.world_from_camera, meta=meta)
    if n and not any_tracked:
        warnings.warn(
            f"none of the {n} frames could be tracked (see the earlier warnings)", RuntimeWarning, stacklevel=2
        )


# --------------------------------------------------------------------------- evaluation
def align_rigid(source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
    """The rigid transform (no scale) that best maps ``source_points`` onto ``target_points``.

    Horn/Umeyama closed form by SVD of the cross-covariance, with the
    reflection fix; least squares over corresponding "N 3" points.

    Returns:
        "4 4" ``target_from_source``.
    """
    a = np.asarray(source_points, dtype=np.float64)
    b = np.asarray(target_points, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"need two (N, 3) arrays of corresponding points, got {a.shape} and {b.shape}")
    if len(a) < 3:
        raise ValueError(f"need at least 3 corresponding points to align, got {len(a)}")
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    u, _, vt = np.linalg.svd((a - ma).T @ (b - mb))
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    r = vt.T @ d @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = mb - r @ ma
    return m


def _stack(poses: Any) -> np.ndarray:
    if isinstance(poses, np.ndarray):
        m = np.asarray(poses, dtype=np.float64)
    else:
        m = np.stack([p.matrix if isinstance(p, Pose) else np.asarray(p, dtype=np.float64) for p in poses])
    if m.ndim != 3 or m.shape[1:] != (4, 4):
        raise ValueError(f"poses must be N 4x4 matrices, got shape {m.shape}")
    return m


def ate_rmse_m(estimated: Any, reference: Any) -> float:
    """Absolute trajectory error: RMSE of camera positions after rigid alignment (Sturm et al. 2012).

    Args:
        estimated, reference: N corresponding ``world_from_camera`` poses
            (Pose objects or "N 4 4" arrays), each in its own world frame.
    """
    est, ref = _stack(estimated), _stack(reference)
    if len(est) != len(ref):
        raise ValueError(f"trajectories differ in length: {len(est)} estimated vs {len(ref)} reference poses")
    ref_from_est = align_rigid(est[:, :3, 3], ref[:, :3, 3])
    moved = est[:, :3, 3] @ ref_from_est[:3, :3].T + ref_from_est[:3, 3]
    return float(np.sqrt(np.mean(np.sum((moved - ref[:, :3, 3]) ** 2, axis=1))))


def rpe_rmse_m(estimated: Any, reference: Any, delta: int = 1) -> float:
    """Relative pose error: RMSE of the translation error of the motion over ``delta`` frames.

    Independent of the world frames, so no alignment is needed.
    """
    est, ref = _stack(estimated), _stack(reference)
    if len(est) != len(ref):
        raise ValueError(f"trajectories differ in length: {len(est)} estimated vs {len(ref)} reference poses")
    if not 1 <= delta < len(est):
        raise ValueError(f"delta must be in [1, {len(est) - 1}], got {delta}")
    rel_est = np.linalg.inv(est[:-delta]) @ est[delta:]
    rel_ref = np.linalg.inv(ref[:-delta]) @ ref[delta:]
    err = np.linalg.inv(rel_ref) @ rel_est
    return float(np.sqrt(np.mean(np.sum(err[:, :3, 3] ** 2, axis=1))))
