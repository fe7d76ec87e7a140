"""Recorded RGB-D datasets as a stream of `Frame`s.

`RgbdDataset` owns three on-disk layouts:

- TUM RGB-D: ``rgb.txt`` / ``depth.txt`` (``timestamp path`` lines),
  ``groundtruth.txt`` (``timestamp tx ty tz qx qy qz qw``, camera to world);
  colour and depth are associated by nearest timestamp, the pose is
  interpolated at the colour timestamp; depth PNGs are uint16 metres x 5000.
- Open3D / ICL-NUIM: ``color/`` (or ``image/``), ``depth/`` and
  ``trajectory.log`` (per frame a line ``i j n`` and a 4x4 camera-to-world
  matrix); depth PNGs are uint16 millimetres.
- Microsoft 7-Scenes: ``frame-NNNNNN.color.{png,jpg}``, ``frame-NNNNNN.depth.png``
  (uint16 millimetres, 0 or 65535 = no return), ``frame-NNNNNN.pose.txt``
  (4x4 camera-to-world, OpenCV camera) and ``camera-intrinsics.txt`` (3x3 K,
  when present; 585/585/320/240 otherwise).

Depth becomes float32 metres with 0 for no return. Poses are expressed in a
z-up world (the ICL-NUIM log's world is the first camera's OpenCV frame,
y down, and is rotated to z up here; TUM's motion-capture world is already
z up; 7-Scenes' world is KinectFusion's first camera, usually tilted, so
gravity is estimated from the data, see `estimate_world_from_dataset`).
`load_rgbd_pair` reads one colour/depth pair, e.g. the single TUM
frame in the sample data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engram.types import CameraIntrinsics, Frame, Pose

__all__ = [
    "ICL_INTRINSICS",
    "SEVENSCENES_INTRINSICS",
    "TUM_FR1_INTRINSICS",
    "WORLD_FROM_OPENCV_CAMERA",
    "RgbdDataset",
    "associate_timestamps",
    "estimate_world_from_dataset",
    "is_sevenscenes_folder",
    "load_rgbd_pair",
    "read_sevenscenes_pose",
    "read_trajectory_log",
    "read_tum_list",
    "read_tum_trajectory",
    "write_tum_trajectory",
]

# (fx, fy, cx, cy) defaults; the image size comes from the files.
TUM_FR1_INTRINSICS = (517.3, 516.5, 318.6, 255.3)
ICL_INTRINSICS = (525.0, 525.0, 319.5, 239.5)
SEVENSCENES_INTRINSICS = (585.0, 585.0, 320.0, 240.0)

# A level OpenCV camera (x right, y down, z forward) seen from a z-up world
# whose x axis points where the camera looks.
WORLD_FROM_OPENCV_CAMERA = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 0.0])

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_FORMATS = ("auto", "tum", "icl", "7scenes")
_DEFAULT_INTRINSICS = {"tum": TUM_FR1_INTRINSICS, "icl": ICL_INTRINSICS, "7scenes": SEVENSCENES_INTRINSICS}
_DEFAULT_DEPTH_SCALE = {"tum": 5000.0, "icl": 1000.0, "7scenes": 1000.0}
_MISSING_POSES = ("error", "skip", "keep")


# --------------------------------------------------------------------------- file formats
def read_tum_list(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A TUM ``rgb.txt`` / ``depth.txt``: timestamps (float64, seconds) and relative file names.

    Raises:
        FileNotFoundError: the list is missing.
        ValueError: a line that is not ``timestamp filename``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TUM list {path} does not exist")
    stamps: list[float] = []
    names: list[str] = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        try:
            t = float(parts[0])
        except (ValueError, IndexError):
            t = math.nan
        if len(parts) < 2 or not math.isfinite(t):
            raise ValueError(f"{path}:{line_no}: expected 'timestamp filename', got {line!r}")
        stamps.append(t)
        names.append(parts[1])
    return np.asarray(stamps, dtype=np.float64), names


def read_tum_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A TUM trajectory: timestamps "N" and poses "N 4 4" (``world_from_camera``).

    Lines are ``timestamp tx ty tz qx qy qz qw``; ``#`` starts a comment.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a malformed line or a quaternion far from unit norm.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TUM trajectory {path} does not exist")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            values = [float(v) for v in line.replace(",", " ").split()]
        except ValueError:
            values = []
        if len(values) != 8 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{path}:{line_no}: expected 'timestamp tx ty tz qx qy qz qw', got {line!r}")
        rows.append(values)
    if not rows:
        return np.zeros(0), np.zeros((0, 4, 4))
    data = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(data[:, 4:8], axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > 1e-2)
    if len(bad):
        raise ValueError(f"{path}: quaternion of pose {int(bad[0])} has norm {norms[bad[0]]:.4f}, not 1")
    return data[:, 0], _poses_from_tq(data[:, 1:4], data[:, 4:8])


def write_tum_trajectory(path: str | Path, timestamps_s: np.ndarray, world_from_camera: np.ndarray) -> None:
    """Write poses "N 4 4" with timestamps "N" as TUM ``timestamp tx ty tz qx qy qz qw`` lines."""
    t = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
    m = np.asarray(world_from_camera, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (4, 4) or len(m) != len(t):
        raise ValueError(f"need N timestamps and N 4x4 poses, got {t.shape} and {m.shape}")
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for ti, mi in zip(t, m):
        q = Pose(mi).as_quaternion()
        tx, ty, tz = mi[:3, 3]
        lines.append(f"{ti:.6f} {tx:.6f} {ty:.6f} {tz:.6f} {q[0]:.6f} {q[1]:.6f} {q[2]:.6f} {q[3]:.6f}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_trajectory_log(path: str | Path) -> np.ndarray:
    """An Open3D ``trajectory.log``: "N 4 4" float64 ``world_from_camera`` matrices.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not blocks of one header line and four matrix rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory {path} does not exist")
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) % 5:
        raise ValueError(f"{path}: {len(lines)} non-empty lines, not a multiple of 5 (header + 4x4 per pose)")
    mats = np.empty((len(lines) // 5, 4, 4))
    for k in range(len(lines) // 5):
        rows = lines[5 * k + 1 : 5 * k + 5]
        if any(len(r) != 4 for r in rows):
            raise ValueError(f"{path}: pose {k} (line {5 * k + 2}) is not a 4x4 matrix")
        try:
            mats[k] = np.asarray(rows, dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"{path}: pose {k} (line {5 * k + 2}) is not numeric") from exc
    return mats


def read_sevenscenes_pose(path: str | Path) -> np.ndarray | None:
    """A 7-Scenes ``frame-NNNNNN.pose.txt``: one 4x4 ``world_from_camera`` matrix, or None.

    None where tracking was lost (the dataset writes ``-inf`` / ``nan`` then).

    Raises:
        ValueError: not 16 numbers, or a last row other than (0, 0, 0, 1).
    """
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a 4x4 matrix of numbers") from exc
    if m.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4x4 matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        return None
    if not np.allclose(m[3], (0, 0, 0, 1), atol=1e-6):
        raise ValueError(f"{path}: the last row of a pose must be 0 0 0 1, got {m[3].tolist()}")
    # KinectFusion writes rotations orthonormal to ~1e-4 only: snap to the nearest rotation
    u, sv, vt = np.linalg.svd(m[:3, :3])
    if np.max(np.abs(sv - 1.0)) > 1e-2 or np.linalg.det(u @ vt) < 0:
        raise ValueError(f"{path}: the 3x3 block is not a rotation (singular values {np.round(sv, 4).tolist()})")
    m[:3, :3] = u @ vt
    return m


def _points(depth_m: np.ndarray, k: tuple[float, float, float, float], step: int) -> np.ndarray:
    """Camera-frame points "N 3" of the valid depth pixels, every ``step`` pixels."""
    fx, fy, cx, cy = k
    d = depth_m[::step, ::step].astype(np.float64)
    v, u = np.mgrid[0 : depth_m.shape[0] : step, 0 : depth_m.shape[1] : step]
    ok = d > 0
    d, u, v = d[ok], u[ok], v[ok]
    return np.stack([(u - cx) / fx * d, (v - cy) / fy * d, d], axis=-1)


def _points_and_normals(
    depth_m: np.ndarray, k: tuple[float, float, float, float], step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points "N 3" and their unit surface normals "N 3" (facing the camera), every
    ``step`` pixels, where the pixel and its right and lower neighbours lie on one surface."""
    fx, fy, cx, cy = k
    d = depth_m[::step, ::step].astype(np.float64)
    v, u = np.mgrid[0 : depth_m.shape[0] : step, 0 : depth_m.shape[1] : step]
    p = np.stack([(u - cx) / fx * d, (v - cy) / fy * d, d], axis=-1)
    dx = p[:-1, 1:] - p[:-1, :-1]
    dy = p[1:, :-1] - p[:-1, :-1]
    n = -np.cross(dx, dy)  # x right cross y down points away from the camera; flip it
    ok = (d[:-1, :-1] > 0) & (d[:-1, 1:] > 0) & (d[1:, :-1] > 0)
    # neighbours on one surface only (no depth jumps)
    ok &= (np.abs(dx[..., 2]) < 0.05 * d[:-1, :-1]) & (np.abs(dy[..., 2]) < 0.05 * d[:-1, :-1])
    n, pts = n[ok], p[:-1, :-1][ok]
    norm = np.linalg.norm(n, axis=1)
    keep = norm > 0
    return pts[keep], n[keep] / norm[keep, None]


def estimate_world_from_dataset(
    poses: np.ndarray,
    depths_m: Sequence[np.ndarray | None] | None = None,
    intrinsics: tuple[float, float, float, float] | None = None,
    *,
    step: int = 4,
    align_walls: bool = True,
) -> Pose:
    """A rotation taking a dataset's world (any orientation) to engram's z-up world.

    Hand-held cameras are held roughly level, so the mean of the cameras'
    "down" axes (OpenCV +y) is a first guess of gravity. With depth images it
    is refined from the surfaces seen: floors, table tops and counters are
    the large horizontal planes, so their normals form the densest cluster
    within 60 degrees of the cameras' up (walls lie further out); "up" is the
    densest normal direction (most normals within 5 degrees), refined by the
    mean of the normals within 3 degrees of it, so clutter does not pull it.
    Depth quantisation tilts per-pixel normals toward the camera, so the
    last step fits a plane to the points of the largest horizontal surface
    (the densest height along that "up", a few centimetres either side). The
    world x axis is the first camera's viewing direction made horizontal, as
    `WORLD_FROM_OPENCV_CAMERA` does for a level camera, then (with
    ``align_walls``) turned by less than 45 degrees onto the dominant wall
    direction, so that walls and furniture line up with the world axes and
    axis-aligned boxes fit them. The origin is kept.

    Args:
        poses: "N 4 4" ``dataset_from_camera`` matrices (OpenCV camera).
        depths_m: optional depth images (metres) of some of those frames,
            ``depths_m[i]`` seen from ``poses[i]``.
        intrinsics: (fx, fy, cx, cy) of the depth images.
        step: pixel step for the normals.
        align_walls: turn the x axis onto the dominant wall direction (needs depth).

    Returns:
        ``world_from_dataset`` (a pure rotation).
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if not len(poses):
        return Pose.identity()
    down = poses[:, :3, 1].mean(axis=0)
    up = -down / max(np.linalg.norm(down), 1e-12)
    n_all = np.zeros((0, 3))
    if depths_m and intrinsics is not None:
        normals = [
            _points_and_normals(d, intrinsics, step)[1] @ poses[i, :3, :3].T
            for i, d in enumerate(depths_m)
            if d is not None
        ]
        n = n_all = np.concatenate(normals) if normals else np.zeros((0, 3))
        # horizontal surfaces lie within 60 degrees of the cameras' up (pitch and roll
        # stay below that); walls seen by those cameras lie further out
        n = n[n @ up > 0.5]
        if len(n) >= 200:
            rng = np.random.default_rng(0)
            sample = n[rng.choice(len(n), min(len(n), 20000), replace=False)]
            candidates = sample[: min(len(sample), 2000)]
            # the densest direction: most normals within 5 degrees of it
            counts = (candidates @ sample.T > math.cos(math.radians(5.0))).sum(axis=1)
            up = candidates[int(np.argmax(counts))]
            for max_deg in (5.0, 3.0, 3.0):
                near = n[n @ up > math.cos(math.radians(max_deg))]
                up = near.mean(axis=0)
                up /= np.linalg.norm(up)
        # Depth quantisation biases per-pixel normals toward the camera by a few
        # degrees; a plane fitted to the points of the largest horizontal surface
        # (the densest height along "up") is not biased.
        clouds = [
            _points(d, intrinsics, 2 * step) @ poses[i, :3, :3].T + poses[i, :3, 3]
            for i, d in enumerate(depths_m)
            if d is not None
        ]
        pts = np.concatenate(clouds) if clouds else np.zeros((0, 3))
        for half_width_m in (0.06, 0.04, 0.03, 0.02, 0.02):
            h = pts @ up
            if len(h) < 200:
                break
            counts, edges = np.histogram(h, bins=max(1, int(np.ptp(h) / 0.01)))
            peak = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
            plane = pts[np.abs(h - peak) < half_width_m]
            if len(plane) < 200:
                break
            normal = np.linalg.svd(plane - plane.mean(axis=0), full_matrices=False)[2][-1]
            if abs(normal @ up) < math.cos(math.radians(10.0)):
                break  # not a horizontal surface after all: keep the normals' estimate
            up = normal * np.sign(normal @ up)
    forward = poses[0, :3, 2] - (poses[0, :3, 2] @ up) * up
    if np.linalg.norm(forward) < 1e-6:  # first camera looks straight up or down
        forward = poses[0, :3, 0] - (poses[0, :3, 0] @ up) * up
    x = forward / np.linalg.norm(forward)
    y = np.cross(up, x)
    if align_walls and len(walls := n_all[np.abs(n_all @ up) < 0.15]) >= 200:
        # rooms are boxes: turn x (by less than 45 degrees) onto the dominant wall direction,
        # the mode of the walls' horizontal angles modulo 90 degrees
        phi = np.arctan2(walls @ y, walls @ x)
        turn = np.angle(np.exp(4j * phi).mean()) / 4.0
        x, y = math.cos(turn) * x + math.sin(turn) * y, -math.sin(turn) * x + math.cos(turn) * y
    world_from_dataset = np.stack([x, y, up])  # rows: the world axes in dataset coordinates
    return Pose.from_rt(world_from_dataset, [0.0, 0.0, 0.0])


def estimate_floor_height(
    world_from_cameras: Sequence[Pose] | np.ndarray,
    depths_m: Sequence[np.ndarray | None],
    intrinsics: tuple[float, float, float, float],
    *,
    step: int = 4,
    min_share: float = 0.02,
    min_area_m2: float = 2.0,
    min_below_camera_m: float = 0.5,
) -> float | None:
    """The floor's height in a z-up world, from depth images and their poses (None when unsure).

    The points whose surface faces up (normal within 15 degrees of +z) are binned by height
    (2 cm); a level is a bin and its two neighbours. The floor is the lowest level that holds
    at least ``min_share`` of those points, covers at least ``min_area_m2`` seen from above
    (10 cm cells: a table top is smaller), and lies at least ``min_below_camera_m`` under the
    cameras' median height. A sequence that never shows such a level (a desk seen from close
    by) gives None rather than the desk's top.

    Args:
        world_from_cameras: poses of the views (`Pose` or "N 4 4"), OpenCV cameras in a z-up world.
        depths_m: their depth images (metres; 0 = none); None entries are skipped.
        intrinsics: (fx, fy, cx, cy) of the depth images.
        step: pixel step.
        min_share, min_area_m2, min_below_camera_m: what a floor needs (above).
    """
    mats = [np.asarray(p.matrix if isinstance(p, Pose) else p, np.float64).reshape(4, 4) for p in world_from_cameras]
    if len(mats) != len(depths_m):
        raise ValueError(f"{len(mats)} poses for {len(depths_m)} depth images")
    heights, cells, cams = [], [], []
    for m, d in zip(mats, depths_m):
        if d is None:
            continue
        cams.append(m[2, 3])
        pts, normals = _points_and_normals(d, intrinsics, step)
        up = normals @ m[2, :3] > math.cos(math.radians(15.0))  # the normal's world z
        world = pts[up] @ m[:3, :3].T + m[:3, 3]
        heights.append(world[:, 2])
        cells.append(np.floor(world[:, :2] / 0.1).astype(np.int64))
    if not heights:
        return None
    h = np.concatenate(heights)
    xy = np.concatenate(cells)
    if len(h) < 200:
        return None
    lo = math.floor(float(h.min()) / 0.02)
    b = np.floor(h / 0.02).astype(np.int64) - lo
    counts = np.bincount(b)
    level = counts + np.r_[0, counts[:-1]] + np.r_[counts[1:], 0]  # a bin and its neighbours
    top = float(np.median(cams)) - min_below_camera_m
    for i in np.flatnonzero(level >= min_share * len(h)):  # lowest first
        z = (lo + i + 0.5) * 0.02
        if z > top:
            break
        band = np.abs(b - i) <= 1
        area = len(np.unique(xy[band][:, 0] * 1_000_003 + xy[band][:, 1])) * 0.01
        if area >= min_area_m2:
            return float(np.median(h[band]))
    return None


def _poses_from_tq(t: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """Vectorised quaternion (x, y, z, w) + translation to "N 4 4"."""
    q = q_xyzw / np.linalg.norm(q_xyzw, axis=1, keepdims=True)
    x, y, z, w = q.T
    m = np.zeros((len(q), 4, 4))
    m[:, 0, 0] = 1 - 2 * (y * y + z * z)
    m[:, 0, 1] = 2 * (x * y - z * w)
    m[:, 0, 2] = 2 * (x * z + y * w)
    m[:, 1, 0] = 2 * (x * y + z * w)
    m[:, 1, 1] = 1 - 2 * (x * x + z * z)
    m[:, 1, 2] = 2 * (y * z - x * w)
    m[:, 2, 0] = 2 * (x * z - y * w)
    m[:, 2, 1] = 2 * (y * z + x * w)
    m[:, 2, 2] = 1 - 2 * (x * x + y * y)
    m[:, :3, 3] = t
    m[:, 3, 3] = 1.0
    return m


def associate_timestamps(first_s: np.ndarray, second_s: np.ndarray, max_difference_s: float) -> np.ndarray:
    """Pair timestamps one-to-one, closest pairs first (as TUM's ``associate.py``).

    Each timestamp of ``first_s`` is paired among its two nearest neighbours in ``second_s``.

    Returns:
        "M 2" int64 index pairs (i into ``first_s``, j into ``second_s``),
        sorted by i, with ``|first_s[i] - second_s[j]| <= max_difference_s``.
    """
    a = np.asarray(first_s, dtype=np.float64)
    b = np.asarray(second_s, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(b, kind="stable")
    bs = b[order]
    # candidates: the two neighbours of each a in sorted b
    pos = np.searchsorted(bs, a)
    cand_i = np.concatenate([np.arange(len(a)), np.arange(len(a))])
    cand_j = np.concatenate([np.clip(pos - 1, 0, len(bs) - 1), np.clip(pos, 0, len(bs) - 1)])
    diff = np.abs(a[cand_i] - bs[cand_j])
    ok = diff <= max_difference_s
    cand_i, cand_j, diff = cand_i[ok], cand_j[ok], diff[ok]
    # greedy, closest pair first, each timestamp used once (a loop over frames, not pixels)
    used_i: set[int] = set()
    used_j: set[int] = set()
    pairs = []
    for k in np.argsort(diff, kind="stable"):
        i, j = int(cand_i[k]), int(cand_j[k])
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, int(order[j])))
    out = np.asarray(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    return out


def _interpolate_poses(
    stamps_s: np.ndarray, poses: np.ndarray, query_s: np.ndarray, max_gap_s: float, max_difference_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poses at ``query_s``: linear in translation, slerp in rotation.

    Returns "Q 4 4" poses and a "Q" bool mask of queries that fell between
    two trajectory samples at most ``max_gap_s`` apart, or within
    ``max_difference_s`` of a sample.
    """
    order = np.argsort(stamps_s)
    ts, ps = stamps_s[order], poses[order]
    out = np.tile(np.eye(4), (len(query_s), 1, 1))
    if len(ts) == 0:
        return out, np.zeros(len(query_s), dtype=bool)
    hi = np.clip(np.searchsorted(ts, query_s), 1, max(len(ts) - 1, 1))
    lo = hi - 1
    if len(ts) == 1:
        lo = hi = np.zeros(len(query_s), dtype=np.int64)
    t0, t1 = ts[lo], ts[hi]
    span = t1 - t0
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(span > 0, (query_s - t0) / span, 0.0)
    inside = (alpha >= 0) & (alpha <= 1) & (span <= max_gap_s)
    near_end = np.minimum(np.abs(query_s - t0), np.abs(query_s - t1)) <= max_difference_s
    valid = inside | near_end
    alpha = np.clip(alpha, 0.0, 1.0)
    q0 = np.stack([Pose(m).as_quaternion() for m in ps[lo]]) if len(lo) else np.zeros((0, 4))
    q1 = np.stack([Pose(m).as_quaternion() for m in ps[hi]]) if len(hi) else np.zeros((0, 4))
    dot = np.sum(q0 * q1, axis=1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    small = sin_t < 1e-6
    w0 = np.where(small, 1 - alpha, np.sin((1 - alpha) * theta) / np.where(small, 1, sin_t))
    w1 = np.where(small, alpha, np.sin(alpha * theta) / np.where(small, 1, sin_t))
    q = w0[:, None] * q0 + w1[:, None] * q1
    t = (1 - alpha)[:, None] * ps[lo, :3, 3] + alpha[:, None] * ps[hi, :3, 3]
    out = _poses_from_tq(t, q) if len(q) else out
    return out, valid


# --------------------------------------------------------------------------- image reading
def _read_depth_m(path: Path, depth_scale: float) -> np.ndarray | None:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return None
    if raw.ndim == 3:
        raw = raw[..., 0]
    depth = raw.astype(np.float32) / np.float32(depth_scale)
    if raw.dtype == np.uint16:
        depth[raw == 65535] = 0.0  # 7-Scenes (and other Kinect recordings) mark no return with the largest value
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def _read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_rgbd_pair(
    color_path: str | Path,
    depth_path: str | Path,
    depth_scale: float = 5000.0,
    intrinsics: CameraIntrinsics | tuple[float, float, float, float] | None = None,
    *,
    index: int = 0,
    timestamp_s: float = 0.0,
    world_from_camera: Pose | None = None,
) -> Frame:
    """One colour image and its depth PNG as a `Frame`.

    Args:
        color_path: the colour image.
        depth_path: the uint16 depth image, ``depth_scale`` units per metre.
        depth_scale: 5000 for TUM, 1000 for ICL-NUIM / Open3D.
        intrinsics: a `CameraIntrinsics`, or (fx, fy, cx, cy) for the image
            size read from the file; TUM freiburg1 values when None.
        index, timestamp_s, world_from_camera: passed to the frame.

    Raises:
        FileNotFoundError: either file is missing.
        ValueError: an unreadable image, or colour and depth of different sizes.
    """
    color_path, depth_path = Path(color_path), Path(depth_path)
    for p in (color_path, depth_path):
        if not p.is_file():
            raise FileNotFoundError(f"image {p} does not exist")
    if not depth_scale > 0:
        raise ValueError(f"depth_scale must be positive, got {depth_scale}")
    rgb = _read_rgb(color_path)
    if rgb is None:
        raise ValueError(f"colour image {color_path} could not be read")
    depth = _read_depth_m(depth_path, depth_scale)
    if depth is None:
        raise ValueError(f"depth image {depth_path} could not be read")
    if depth.shape != rgb.shape[:2]:
        raise ValueError(f"depth {depth_path} is {depth.shape[::-1]} but colour {color_path} is {rgb.shape[1::-1]}")
    k = _make_intrinsics(intrinsics, TUM_FR1_INTRINSICS, rgb.shape[1], rgb.shape[0])
    return Frame(
        index=index,
        timestamp_s=timestamp_s,
        rgb=rgb,
        depth_m=depth,
        intrinsics=k,
        world_from_camera=world_from_camera,
        meta={"color_path": str(color_path), "depth_path": str(depth_path)},
    )


def _make_intrinsics(
    given: CameraIntrinsics | tuple[float, float, float, float] | None,
    default: tuple[float, float, float, float],
    width: int,
    height: int,
) -> CameraIntrinsics:
    if isinstance(given, CameraIntrinsics):
        if (given.width, given.height) != (width, height):
            raise ValueError(f"intrinsics are for {given.width}x{given.height} but the images are {width}x{height}")
        return given
    values = default if given is None else tuple(given)
    if len(values) != 4:
        raise ValueError(f"intrinsics must be CameraIntrinsics or (fx, fy, cx, cy), got {given!r}")
    fx, fy, cx, cy = (float(v) for v in values)
    return CameraIntrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)


# --------------------------------------------------------------------------- the dataset
def _frame_number(stem: str) -> int:
    digits = "".join(ch for ch in stem.split("-")[-1] if ch.isdigit())
    return int(digits) if digits else 0


def is_sevenscenes_folder(path: str | Path) -> bool:
    """True when ``path`` holds 7-Scenes ``frame-NNNNNN.depth.png`` files."""
    path = Path(path)
    return path.is_dir() and next(path.glob("frame-*.depth.png"), None) is not None


@dataclass(frozen=True)
class _Entry:
    index: int
    timestamp_s: float
    color: Path
    depth: Path
    world_from_camera: np.ndarray | None


class RgbdDataset:
    """Frames of a recorded RGB-D sequence (TUM, Open3D/ICL-NUIM or 7-Scenes layout).

    Args:
        path: the sequence folder.
        format: "tum", "icl" (Open3D layout), "7scenes" or "auto" (decided by the files).
        depth_scale: depth PNG units per metre; 5000 (TUM) or 1000 (ICL, 7-Scenes) when None.
        intrinsics: `CameraIntrinsics` or (fx, fy, cx, cy); when None, TUM
            freiburg1, ICL-NUIM (525, 525, 319.5, 239.5), or 7-Scenes'
            ``camera-intrinsics.txt`` (585, 585, 320, 240 without it).
        stride: keep every ``stride``-th frame.
        max_frames: keep at most this many frames (after the stride).
        with_poses: read the trajectory (False: frames without poses).
        missing_poses: what to do when the trajectory does not cover every
            frame: "error" (raise, the default), "skip" (drop such frames) or
            "keep" (yield them without a pose).
        world_from_dataset: maps the dataset's world frame into engram's z-up
            world; when None, `WORLD_FROM_OPENCV_CAMERA` for ICL (its world
            is the first camera), identity for TUM, and for 7-Scenes a
            rotation estimated from the poses and the horizontal surfaces in
            24 depth images spread over the whole sequence
            (`estimate_world_from_dataset`; ``stride`` and ``max_frames`` do
            not change it, so every reading of a sequence shares one world).
        max_difference_s: TUM colour/depth (and pose) association tolerance.
        fps: frame rate giving ICL timestamps (``index / fps``).

    Raises:
        FileNotFoundError: the folder or a required list/trajectory is missing.
        ValueError: an undecidable format, malformed files, or (with
            ``missing_poses="error"``) fewer poses than frames.

    Iterating yields `Frame`s whose ``index`` is the frame's number in the
    whole sequence (so ``stride`` leaves gaps) and whose ``meta`` holds the
    file paths. Missing or unreadable images are skipped with a warning
    naming the file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        format: str = "auto",
        depth_scale: float | None = None,
        intrinsics: CameraIntrinsics | tuple[float, float, float, float] | None = None,
        stride: int = 1,
        max_frames: int | None = None,
        with_poses: bool = True,
        missing_poses: str = "error",
        world_from_dataset: Pose | np.ndarray | None = None,
        max_difference_s: float = 0.02,
        fps: float = 30.0,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"RGB-D dataset folder {self.path} does not exist")
        if isinstance(stride, bool) or int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if max_frames is not None and (int(max_frames) != max_frames or max_frames < 0):
            raise ValueError(f"max_frames must be a non-negative integer, got {max_frames!r}")
        if missing_poses not in _MISSING_POSES:
            raise ValueError(f"missing_poses must be one of {_MISSING_POSES}, got {missing_poses!r}")
        if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
            raise ValueError(f"depth_scale must be a positive number, got {depth_scale!r}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.format = self._detect(format)
        self.depth_scale = float(depth_scale) if depth_scale is not None else _DEFAULT_DEPTH_SCALE[self.format]
        self.with_poses = bool(with_poses)
        self.missing_poses = missing_poses
        self.max_difference_s = float(max_difference_s)
        self.fps = float(fps)
        self._intrinsics_arg = intrinsics
        self._intrinsics: CameraIntrinsics | None = None
        self._floor_z_m: dict[int, float | None] = {}  # estimate_floor_z_m's, per view count
        index = {"tum": self._index_tum, "icl": self._index_icl, "7scenes": self._index_7scenes}[self.format]
        all_entries = index()
        if world_from_dataset is None:
            if self.format == "icl":
                world_from_dataset = WORLD_FROM_OPENCV_CAMERA
            elif self.format == "7scenes" and self.with_poses:
                world_from_dataset = self._estimate_gravity(all_entries)
            else:
                world_from_dataset = Pose.identity()
        self.world_from_dataset = (
            world_from_dataset if isinstance(world_from_dataset, Pose) else Pose(world_from_dataset)
        )

        entries = all_entries[:: int(stride)]
        if max_frames is not None:
            entries = entries[: int(max_frames)]
        self._entries: list[_Entry] = entries

    # layout -----------------------------------------------------------------
    def _detect(self, fmt: str) -> str:
        if fmt not in _FORMATS:
            raise ValueError(f"format must be one of {_FORMATS}, got {fmt!r}")
        is_tum = (self.path / "rgb.txt").is_file() and (self.path / "depth.txt").is_file()
        is_icl = self._color_dir() is not None and (self.path / "depth").is_dir()
        is_7scenes = is_sevenscenes_folder(self.path)
        if fmt == "auto":
            if is_tum:
                return "tum"
            if is_icl:
                return "icl"
            if is_7scenes:
                return "7scenes"
            raise ValueError(
                f"{self.path} is neither a TUM sequence (rgb.txt + depth.txt), "
                "an Open3D/ICL-NUIM one (color/ + depth/ + trajectory.log) "
                "nor a 7-Scenes one (frame-NNNNNN.color.png/.jpg + .depth.png + .pose.txt)"
            )
        if fmt == "7scenes" and not is_7scenes:
            raise FileNotFoundError(
                f"{self.path} is not a 7-Scenes sequence: frame-NNNNNN.depth.png files are required"
            )
        if fmt == "tum" and not is_tum:
            raise FileNotFoundError(f"{self.path} is not a TUM sequence: rgb.txt and depth.txt are required")
        if fmt == "icl" and not is_icl:
            raise FileNotFoundError(f"{self.path} is not an Open3D/ICL-NUIM sequence: color/ and depth/ are required")
        return fmt

    def _color_dir(self) -> Path | None:
        for name in ("color", "image", "rgb"):
            if (self.path / name).is_dir():
                return self.path / name
        return None

    def _index_tum(self) -> list[_Entry]:
        rgb_t, rgb_names = read_tum_list(self.path / "rgb.txt")
        depth_t, depth_names = read_tum_list(self.path / "depth.txt")
        pairs = associate_timestamps(rgb_t, depth_t, self.max_difference_s)
        if len(pairs) < len(rgb_t):
            warnings.warn(
                f"{self.path}: {len(rgb_t) - len(pairs)} of {len(rgb_t)} colour images have no depth image within "
                f"{self.max_difference_s} s; they are skipped",
                RuntimeWarning,
                stacklevel=3,
            )
        stamps = rgb_t[pairs[:, 0]]
        poses: np.ndarray | None = None
        has_pose = np.ones(len(pairs), dtype=bool)
        if self.with_poses:
            gt_path = self.path / "groundtruth.txt"
            if not gt_path.is_file():
                raise FileNotFoundError(
                    f"{gt_path} does not exist; pass with_poses=False to read the sequence without poses"
                )
            gt_t, gt_poses = read_tum_trajectory(gt_path)
            # Motion capture runs at 100+ Hz: allow a few missed samples between neighbours.
            poses, has_pose = _interpolate_poses(
                gt_t,
                gt_poses,
                stamps,
                max_gap_s=max(5 * self.max_difference_s, 0.1),
                max_difference_s=self.max_difference_s,
            )
            if not has_pose.all():
                n_missing = int((~has_pose).sum())
                if self.missing_poses == "error":
                    raise ValueError(
                        f"{gt_path} has {len(gt_t)} poses covering {len(pairs) - n_missing} of the {len(pairs)} "
                        f"frames; pass missing_poses='skip' or 'keep' to use the frames without a pose"
                    )
        entries = []
        for k, (i, j) in enumerate(pairs):
            if poses is not None and not has_pose[k] and self.missing_poses == "skip":
                continue
            color = self.path / rgb_names[i]
            depth = self.path / depth_names[j]
            if not depth.is_file():
                warnings.warn(
                    f"skipping frame {k} (t={stamps[k]:.6f}): depth file {depth} is missing",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            if not color.is_file():
                warnings.warn(
                    f"skipping frame {k} (t={stamps[k]:.6f}): colour file {color} is missing",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            pose = poses[k] if poses is not None and has_pose[k] else None
            entries.append(_Entry(k, float(stamps[k]), color, depth, pose))
        return entries

    def _index_icl(self) -> list[_Entry]:
        color_dir = self._color_dir()
        assert color_dir is not None
        colors = {p.stem: p for p in color_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
        depths = {p.stem: p for p in (self.path / "depth").iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
        stems = sorted(colors)
        poses: np.ndarray | None = None
        if self.with_poses:
            log = self.path / "trajectory.log"
            if not log.is_file():
                raise FileNotFoundError(
                    f"{log} does not exist; pass with_poses=False to read the sequence without poses"
                )
            poses = read_trajectory_log(log)
            if len(poses) < len(stems) and self.missing_poses == "error":
                raise ValueError(
                    f"{log} has {len(poses)} poses but {color_dir} has {len(stems)} frames; "
                    "pass missing_poses='skip' or 'keep' to use the frames without a pose"
                )
            if len(poses) > len(stems):
                warnings.warn(
                    f"{log} has {len(poses)} poses for {len(stems)} frames; the extra poses are ignored",
                    RuntimeWarning,
                    stacklevel=3,
                )
        entries = []
        for k, stem in enumerate(stems):
            pose = None
            if poses is not None:
                if k < len(poses):
                    pose = poses[k]
                elif self.missing_poses == "skip":
                    continue
            if stem not in depths:
                warnings.warn(
                    f"skipping frame {k}: no depth image for {colors[stem]} in {self.path / 'depth'}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            entries.append(_Entry(k, k / self.fps, colors[stem], depths[stem], pose))
        return entries

    def _index_7scenes(self) -> list[_Entry]:
        depths = {p.name[: -len(".depth.png")]: p for p in self.path.glob("frame-*.depth.png")}
        colors: dict[str, Path] = {}
        for p in self.path.glob("frame-*.color.*"):
            if p.suffix.lower() in _IMAGE_SUFFIXES:
                colors.setdefault(p.name.split(".")[0], p)
        stems = sorted(colors, key=_frame_number)
        entries = []
        n_missing = 0
        for stem in stems:
            number = _frame_number(stem)
            if stem not in depths:
                warnings.warn(
                    f"skipping frame {number}: no depth image {stem}.depth.png in {self.path}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            pose = None
            if self.with_poses:
                pose_path = self.path / f"{stem}.pose.txt"
                if pose_path.is_file():
                    pose = read_sevenscenes_pose(pose_path)
                if pose is None:
                    n_missing += 1
                    if self.missing_poses == "skip":
                        continue
            entries.append(_Entry(number, number / self.fps, colors[stem], depths[stem], pose))
        if n_missing and self.missing_poses == "error":
            raise ValueError(
                f"{self.path}: {n_missing} of {len(stems)} frames have no readable frame-NNNNNN.pose.txt; "
                "pass missing_poses='skip' or 'keep' to use the frames without a pose"
            )
        return entries

    def _estimate_gravity(self, entries: list[_Entry], n_views: int = 24) -> Pose:
        posed = [e for e in entries if e.world_from_camera is not None]
        if not posed:
            return Pose.identity()
        views = [posed[i] for i in np.linspace(0, len(posed) - 1, min(n_views, len(posed))).astype(int)]
        depths = [_read_depth_m(e.depth, self.depth_scale) for e in views]
        k = self._intrinsics_tuple()
        return estimate_world_from_dataset(np.stack([e.world_from_camera for e in views]), depths, k)

    def estimate_floor_z_m(self, n_views: int = 24) -> float | None:
        """The floor's height in engram's world, from the depth of ``n_views`` posed frames spread
        over the frames this dataset yields (`estimate_floor_height`); None without poses, or
        when no level is clearly the floor. Read once, then kept."""
        if n_views not in self._floor_z_m:
            posed = [(e, pose) for e in self._entries if (pose := self._pose(e)) is not None]
            views = [posed[i] for i in np.linspace(0, len(posed) - 1, min(n_views, len(posed))).astype(int)]
            self._floor_z_m[n_views] = (
                estimate_floor_height(
                    [pose for _, pose in views],
                    [_read_depth_m(e.depth, self.depth_scale) for e, _ in views],
                    self._intrinsics_tuple(),
                )
                if views
                else None
            )
        return self._floor_z_m[n_views]

    def _intrinsics_tuple(self) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) as given, or the layout's default."""
        given = self._intrinsics_arg
        if isinstance(given, CameraIntrinsics):
            return (given.fx, given.fy, given.cx, given.cy)
        if given is not None:
            return tuple(float(v) for v in given)  # type: ignore[return-value]
        if self.format == "7scenes":
            k_path = self.path / "camera-intrinsics.txt"
            if k_path.is_file():
                try:
                    k = np.loadtxt(k_path, dtype=np.float64, ndmin=2)
                except ValueError as exc:
                    raise ValueError(f"{k_path}: not a 3x3 matrix of numbers") from exc
                if k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
                    raise ValueError(
                        f"{k_path}: expected a 3x3 camera matrix K with positive focal lengths, got {k.tolist()}"
                    )
                return (float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]))
        return _DEFAULT_INTRINSICS[self.format]

    # access -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def timestamps_s(self) -> np.ndarray:
        """Timestamps of the frames this dataset yields."""
        return np.array([e.timestamp_s for e in self._entries])

    def poses(self) -> list[Pose | None]:
        """``world_from_camera`` of every frame (None where the trajectory has none), without reading images."""
        return [self._pose(e) for e in self._entries]

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The camera intrinsics (the image size is read from the first colour image)."""
        if self._intrinsics is None:
            if not self._entries:
                raise ValueError(f"{self.path}: no frames, so no image size for the intrinsics")
            rgb = _read_rgb(self._entries[0].color)
            if rgb is None:
                raise ValueError(f"colour image {self._entries[0].color} could not be read")
            given = self._intrinsics_arg if isinstance(self._intrinsics_arg, CameraIntrinsics) else None
            self._intrinsics = _make_intrinsics(given, self._intrinsics_tuple(), rgb.shape[1], rgb.shape[0])
        return self._intrinsics

    def _pose(self, e: _Entry) -> Pose | None:
        if e.world_from_camera is None or not self.with_poses:
            return None
        return self.world_from_dataset @ Pose(e.world_from_camera)

    def _load(self, e: _Entry) -> Frame | None:
        rgb = _read_rgb(e.color)
        if rgb is None:
            warnings.warn(
                f"skipping frame {e.index}: colour image {e.color} could not be read", RuntimeWarning, stacklevel=3
            )
            return None
        depth = _read_depth_m(e.depth, self.depth_scale)
        if depth is None:
            warnings.warn(
                f"skipping frame {e.index}: depth image {e.depth} could not be read", RuntimeWarning, stacklevel=3
            )
            return None
        if depth.shape != rgb.shape[:2]:
            warnings.warn(
                f"skipping frame {e.index}: depth {e.depth} is {depth.shape[::-1]} but colour is {rgb.shape[1::-1]}",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        k = self.intrinsics
        if (k.width, k.height) != (rgb.shape[1], rgb.shape[0]):
            warnings.warn(
                f"skipping frame {e.index}: {e.color} has a different image size", RuntimeWarning, stacklevel=3
            )
            return None
        return Frame(
            index=e.index,
            timestamp_s=e.timestamp_s,
            rgb=rgb,
            depth_m=depth,
            intrinsics=k,
            world_from_camera=self._pose(e),
            meta={"color_path": str(e.color), "depth_path": str(e.depth), "dataset": self.format},
        )

    def __getitem__(self, i: int) -> Frame:
        """The ``i``-th frame this dataset yields (not the sequence frame number)."""
        n = len(self._entries)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frames")
        frame = self._load(self._entries[i])
        if frame is None:
            raise ValueError(f"frame {i} of {self.path} could not be read (see the warning)")
        return frame

    def __iter__(self) -> Iterator[Frame]:
        for e in self._entries:
            frame = self._load(e)
            if frame is not None:
                yield frame

    def __repr__(self) -> str:
        return f"RgbdDataset({str(self.path)!r}, format={self.format!r}, frames={len(self)})"
