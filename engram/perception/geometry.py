"""Camera geometry: depth to points, points to pixels, rigid transforms, voxel keys.

Everything here is vectorised over whole images or point sets. Camera frames
follow OpenCV (x right, y down, z forward); pixel centres are at integer
coordinates (see `CameraIntrinsics`).
"""

from __future__ import annotations

import numpy as np

from engram.types import CameraIntrinsics, Frame, Pose

__all__ = [
    "backproject_depth",
    "frame_points_world",
    "project_points",
    "transform_points",
    "voxel_keys",
    "voxel_centers",
    "pixel_rays",
]


def _check_depth(depth_m: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    d = np.asarray(depth_m)
    if d.ndim != 2:
        raise ValueError(f"depth_m must be a 2D (H, W) array, got shape {d.shape}")
    if d.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(
            f"depth_m shape {d.shape} does not match intrinsics {intrinsics.height}x{intrinsics.width} (HxW)"
        )
    return d


def pixel_rays(intrinsics: CameraIntrinsics, stride: int = 1) -> np.ndarray:
    """Unit-depth rays (x/z, y/z, 1) for every ``stride``-th pixel, shape (H', W', 3)."""
    us = np.arange(0, intrinsics.width, stride, dtype=np.float64)
    vs = np.arange(0, intrinsics.height, stride, dtype=np.float64)
    x = (us - intrinsics.cx) / intrinsics.fx
    y = (vs - intrinsics.cy) / intrinsics.fy
    rays = np.empty((len(vs), len(us), 3))
    rays[..., 0] = x[None, :]
    rays[..., 1] = y[:, None]
    rays[..., 2] = 1.0
    return rays


def backproject_depth(
    depth_m: np.ndarray,
    intrinsics: CameraIntrinsics,
    *,
    stride: int = 1,
    min_depth_m: float = 0.0,
    max_depth_m: float | None = None,
    return_pixels: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Depth image to 3D points in the camera frame.

    Pixels with 0, NaN or out-of-range depth are skipped.

    Args:
        depth_m: "H W" depth along the optical axis, metres.
        intrinsics: matching pinhole intrinsics.
        stride: use every ``stride``-th pixel in both directions.
        min_depth_m: drop depths at or below this.
        max_depth_m: drop depths above this (None keeps all).
        return_pixels: also return the "N 2" integer (u, v) pixel of each point.

    Returns:
        "N 3" float64 points, and the pixels when asked.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    d = _check_depth(depth_m, intrinsics)[::stride, ::stride].astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(d) & (d > min_depth_m)
        if max_depth_m is not None:
            valid &= d <= max_depth_m
    vs, us = np.nonzero(valid)
    z = d[vs, us]
    u = us * stride
    v = vs * stride
    pts = np.empty((len(z), 3))
    pts[:, 0] = (u - intrinsics.cx) / intrinsics.fx * z
    pts[:, 1] = (v - intrinsics.cy) / intrinsics.fy * z
    pts[:, 2] = z
    if return_pixels:
        return pts, np.stack([u, v], axis=1).astype(np.int64)
    return pts


def project_points(points_cam: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project camera-frame points to pixels.

    Returns:
        uv: "N 2" float64 pixel coordinates (NaN behind the camera).
        depth: "N" z in the camera frame.
        visible: "N" bool, in front of the camera and inside the image
            (pixel centre rounding, so -0.5 <= u < W - 0.5).
    """
    p = np.asarray(points_cam, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    z = p[:, 2]
    front = z > 1e-9
    uv = np.full((len(p), 2), np.nan)
    zf = z[front]
    uv[front, 0] = p[front, 0] / zf * intrinsics.fx + intrinsics.cx
    uv[front, 1] = p[front, 1] / zf * intrinsics.fy + intrinsics.cy
    with np.errstate(invalid="ignore"):
        visible = (
            front
            & (uv[:, 0] >= -0.5)
            & (uv[:, 0] < intrinsics.width - 0.5)
            & (uv[:, 1] >= -0.5)
            & (uv[:, 1] < intrinsics.height - 0.5)
        )
    return uv, z, visible


def transform_points(a_from_b: Pose | np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Points in frame b to frame a: ``points_a = a_from_b @ points_b``."""
    pose = a_from_b if isinstance(a_from_b, Pose) else Pose(a_from_b)
    return pose.transform_points(points_b)


def frame_points_world(
    frame: Frame, *, stride: int = 1, max_depth_m: float | None = None, return_pixels: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Backproject a frame's depth into the world frame."""
    depth, k, world_from_camera = frame.depth_m, frame.intrinsics, frame.world_from_camera
    if depth is None or k is None or world_from_camera is None:  # not frame.has_geometry
        missing = [n for n in ("depth_m", "intrinsics", "world_from_camera") if getattr(frame, n) is None]
        raise ValueError(f"frame {frame.index} cannot be backprojected: missing {', '.join(missing)}")
    out = backproject_depth(depth, k, stride=stride, max_depth_m=max_depth_m, return_pixels=return_pixels)
    if return_pixels:
        pts, px = out
        return world_from_camera.transform_points(pts), px
    return world_from_camera.transform_points(out)


def voxel_keys(points: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """Integer voxel indices floor(p / voxel_size), "N 3" int64."""
    if not voxel_size_m > 0:
        raise ValueError(f"voxel_size_m must be positive, got {voxel_size_m}")
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    return np.floor(p / voxel_size_m).astype(np.int64)


def voxel_centers(keys: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """Centres of integer voxel indices, "N 3" float64."""
    return (np.asarray(keys, dtype=np.float64) + 0.5) * voxel_size_m
