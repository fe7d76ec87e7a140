"""One depth frame reduced to voxel keys, computed once and read by every layer.

`scan_frame` walks the depth image once (compiled): each valid pixel is
back-projected, moved to the world frame and keyed to the octree voxel that
holds it, with no float64 point cloud in between. The resulting `FrameScan`
keeps the pixel and Morton code of every endpoint, and optionally the static
map's log-odds there before the frame (for the static/dynamic split).
Everything downstream (the split, the discretized octree update, transient
geometry, object fusion) reads these keys; metric points are computed only
for the pixels that need them (`FrameScan.points_world`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engram.types import CameraIntrinsics, Pose

__all__ = ["FrameScan", "scan_frame"]


@dataclass
class FrameScan:
    """The valid depth pixels of one frame and their endpoint voxels.

    Attributes:
        pixels: "N" int64 flat pixel index ``v * width + u`` of each valid
            (finite, positive) depth sample, row-major order.
        codes: "N" int64 Morton code of the octree voxel holding each
            endpoint (-1 outside the key space); see `OccupancyOctree`.
        log_odds: "N" float32 static-map log-odds before this frame: the
            larger of the endpoint's and that of the point ``beyond_m``
            farther along the ray (NaN when either is unknown); None when not
            asked. Where the endpoint's value is above ``beyond_below`` it is
            stored alone (the larger value is above that bound as well).
        depth_m: the frame's "H W" depth image.
        intrinsics: its camera.
        world_from_camera: its pose.
        stride: every ``stride``-th pixel in both directions was sampled.
        voxel_size_m: the octree's voxel edge.
    """

    pixels: np.ndarray
    codes: np.ndarray
    log_odds: np.ndarray | None
    depth_m: np.ndarray
    intrinsics: CameraIntrinsics
    world_from_camera: Pose
    stride: int
    voxel_size_m: float

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def origin(self) -> np.ndarray:
        """Camera centre in the world frame, metres."""
        return np.array(self.world_from_camera.translation, np.float64)

    def uv(self, select: np.ndarray | None = None) -> np.ndarray:
        """ "N 2" int64 (u, v) pixels (of the selected rows: an index or boolean mask)."""
        p = self.pixels if select is None else self.pixels[select]
        w = self.intrinsics.width
        return np.stack([p % w, p // w], axis=1)

    def points_world(self, select: np.ndarray | None = None) -> np.ndarray:
        """ "M 3" float64 world points of the selected rows (all when None), computed on demand."""
        uv = self.uv(select)
        k = self.intrinsics
        z = self.depth_m.reshape(-1)[uv[:, 1] * k.width + uv[:, 0]].astype(np.float64)
        cam = np.empty((len(z), 3))
        cam[:, 0] = (uv[:, 0] - k.cx) / k.fx * z
        cam[:, 1] = (uv[:, 1] - k.cy) / k.fy * z
        cam[:, 2] = z
        m = self.world_from_camera.matrix
        return cam @ np.ascontiguousarray(m[:3, :3].T) + m[:3, 3]

    def heights_world(self, select: np.ndarray | None = None) -> np.ndarray:
        """ "M" world z of the selected rows (all when None): `points_world`'s last column, for less work.

        For every row it is computed over the image grid (float32, no pixel
        division) and read at the scan's pixels; for a selection, as `points_world` does.
        """
        k = self.intrinsics
        r = self.world_from_camera.matrix[2]
        if select is not None:
            uv = self.uv(select)
            z = self.depth_m.reshape(-1)[uv[:, 1] * k.width + uv[:, 0]].astype(np.float64)
            return z * (r[0] * (uv[:, 0] - k.cx) / k.fx + r[1] * (uv[:, 1] - k.cy) / k.fy + r[2]) + r[3]
        cols = ((np.arange(k.width) - k.cx) / k.fx * r[0]).astype(np.float32)
        rows = ((np.arange(k.height) - k.cy) / k.fy * r[1] + r[2]).astype(np.float32)
        d = np.asarray(self.depth_m, np.float32).reshape(-1)[self.pixels]
        slope = (rows[:, None] + cols[None, :]).reshape(-1)[self.pixels]
        return (d * slope + np.float32(r[3])).astype(np.float64)


def scan_frame(
    octree,
    depth_m: np.ndarray,
    intrinsics: CameraIntrinsics,
    world_from_camera: Pose,
    *,
    stride: int = 1,
    beyond_m: float | None = None,
    beyond_below: float = np.inf,
) -> FrameScan:
    """Key every ``stride``-th valid depth pixel to its octree voxel in one compiled pass.

    Args:
        octree: the `OccupancyOctree` whose keys (and, with ``beyond_m``, values) are used.
        depth_m: "H W" depth along the optical axis, metres (0 / NaN: no return).
        intrinsics: matching pinhole intrinsics.
        world_from_camera: camera pose.
        stride: sample every ``stride``-th pixel in both directions.
        beyond_m: also read the map's log-odds at each endpoint and this far
            beyond it along the ray (`FrameScan.log_odds`); None skips the reads.
        beyond_below: read the point beyond only where the endpoint's
            log-odds is at most this (a caller testing ``log_odds <= x`` passes x).

    Returns:
        The scan; the octree is not modified.
    """
    from engram.memory import _octree_kernels as kern

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    d = np.asarray(depth_m)
    if d.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f"depth_m shape {d.shape} does not match intrinsics {intrinsics.height}x{intrinsics.width}")
    if d.dtype != np.float32 and d.dtype != np.float64:
        d = d.astype(np.float32)
    n_max = ((d.shape[0] + stride - 1) // stride) * ((d.shape[1] + stride - 1) // stride)
    pixels = np.empty(n_max, np.int64)
    codes = np.empty(n_max, np.int64)
    want = beyond_m is not None
    log_odds = np.empty(n_max if want else 0, np.float32)
    m = np.ascontiguousarray(world_from_camera.matrix, np.float64)
    n = kern.depth_codes(
        d, int(stride), float(intrinsics.fx), float(intrinsics.fy), float(intrinsics.cx), float(intrinsics.cy), m,
        octree._inv_res, float(beyond_m or 0.0), float(beyond_below), octree._tkeys, octree._trows, octree._shift, octree._pool, want,
        pixels, codes, log_odds,
    )  # fmt: skip
    return FrameScan(
        pixels=pixels[:n], codes=codes[:n], log_odds=log_odds[:n] if want else None, depth_m=d,
        intrinsics=intrinsics, world_from_camera=world_from_camera, stride=int(stride),
        voxel_size_m=octree.voxel_size_m,
    )  # fmt: skip
