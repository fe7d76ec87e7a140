"""Exports of what the memory holds, for other tools, and an optional TSDF surface layer.

Array-level writers put point clouds, meshes, per-object clouds, the camera
trajectory and a top-down image into one folder that MeshLab, CloudCompare
and Open3D open directly (binary little-endian PLY, TUM trajectory text,
PNG). They take plain arrays and small dataclasses (points "N 3", colours
"N 3" uint8, labels), so a scene-level exporter only gathers arrays and
calls `export_folder`. The PLY writer is numpy only; Open3D (the ``[3d]``
extra) is needed by `TsdfSurface` alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engram._optional import require
from engram.types import Frame, Pose

__all__ = [
    "MeshArrays",
    "ObjectCloud",
    "write_point_cloud_ply",
    "write_mesh_ply",
    "write_trajectory_ply",
    "write_trajectory_tum",
    "write_object_clouds",
    "top_down_image",
    "write_top_down_png",
    "export_folder",
    "height_colors",
    "TsdfSurface",
]

_MAX_IMAGE_SIDE = 8192


@dataclass
class MeshArrays:
    """A triangle mesh as arrays.

    Attributes:
        vertices: "V 3" float64 positions, metres.
        triangles: "T 3" int vertex indices, counter-clockwise seen from outside.
        vertex_colors: "V 3" uint8, or None.
        vertex_normals: "V 3" float, or None.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    vertex_colors: np.ndarray | None = None
    vertex_normals: np.ndarray | None = None


@dataclass
class ObjectCloud:
    """One object's points for export.

    Attributes:
        object_id: the object's id in the memory.
        label: category name (goes into the file name and labels.json).
        points: "N 3" world points.
        colors: "N 3" uint8, or None (a colour per object is chosen then).
        extra: more JSON-serialisable facts for labels.json (score, first seen, ...).
    """

    object_id: int
    label: str
    points: np.ndarray
    colors: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- validation
def _points(points: Any, name: str = "points") -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains {int((~np.isfinite(p)).any(axis=1).sum())} rows with NaN or inf")
    return p


def _colors(colors: Any, n: int, name: str = "colors") -> np.ndarray | None:
    if colors is None:
        return None
    c = np.asarray(colors)
    if c.shape != (n, 3):
        raise ValueError(f"{name} must have shape ({n}, 3) to match the points, got {c.shape}")
    if c.dtype != np.uint8:
        if np.issubdtype(c.dtype, np.floating) and np.all((c >= 0) & (c <= 1)):
            c = np.round(c * 255.0)
        if np.any((c < 0) | (c > 255)):
            raise ValueError(f"{name} must be uint8 (0..255) or floats in [0, 1]")
        c = c.astype(np.uint8)
    return c


def _normals(normals: Any, n: int) -> np.ndarray | None:
    if normals is None:
        return None
    v = np.asarray(normals, dtype=np.float64)
    if v.shape != (n, 3):
        raise ValueError(f"normals must have shape ({n}, 3) to match the points, got {v.shape}")
    return v


# --------------------------------------------------------------------------- PLY
def _vertex_table(
    points: np.ndarray, colors: np.ndarray | None, normals: np.ndarray | None
) -> tuple[np.ndarray, list[str]]:
    fields: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = ["property float x", "property float y", "property float z"]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        header += ["property float nx", "property float ny", "property float nz"]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    table = np.empty(len(points), dtype=fields)
    table["x"], table["y"], table["z"] = points.T
    if normals is not None:
        table["nx"], table["ny"], table["nz"] = normals.T
    if colors is not None:
        table["red"], table["green"], table["blue"] = colors.T
    return table, header


def _write_ply(path: Path, header_lines: list[str], blocks: list[np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "\n".join(
        ["ply", "format binary_little_endian 1.0", "comment written by engram", *header_lines, "end_header"]
    )
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii") + b"\n")
        for block in blocks:
            fh.write(np.ascontiguousarray(block).tobytes())
    return path


def write_point_cloud_ply(path: str | Path, points: Any, colors: Any = None, normals: Any = None) -> Path:
    """Write a point cloud as binary PLY (float32 positions, uchar colours).

    Args:
        path: the .ply file; parent folders are created.
        points: "N 3" positions in metres.
        colors: "N 3" uint8 (or floats in [0, 1]), optional.
        normals: "N 3", optional.

    Raises:
        ValueError: shapes that do not match, or NaN/inf positions.
    """
    p = _points(points)
    c = _colors(colors, len(p))
    n = _normals(normals, len(p))
    table, props = _vertex_table(p, c, n)
    return _write_ply(Path(path), [f"element vertex {len(p)}", *props], [table])


def write_mesh_ply(path: str | Path, mesh: MeshArrays) -> Path:
    """Write a triangle mesh as binary PLY (vertex colours and normals when present).

    Raises:
        ValueError: triangles that index outside the vertices, or bad shapes.
    """
    v = _points(mesh.vertices, "mesh.vertices")
    t = np.asarray(mesh.triangles)
    if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"mesh.triangles must be an integer (T, 3) array, got {t.dtype} {t.shape}")
    if len(t) and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"mesh.triangles index vertices outside 0..{len(v) - 1} (min {t.min()}, max {t.max()})")
    c = _colors(mesh.vertex_colors, len(v), "mesh.vertex_colors")
    n = _normals(mesh.vertex_normals, len(v))
    table, props = _vertex_table(v, c, n)
    faces = np.empty(len(t), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    faces["n"] = 3
    faces["v"] = t.astype(np.int32)
    header = [f"element vertex {len(v)}", *props, f"element face {len(t)}", "property list uchar int vertex_indices"]
    return _write_ply(Path(path), header, [table, faces])


def _trajectory_matrices(poses: Any) -> np.ndarray:
    if isinstance(poses, np.ndarray):
        m = np.asarray(poses, dtype=np.float64)
    else:
        m = (
            np.stack([p.matrix if isinstance(p, Pose) else np.asarray(p, dtype=np.float64) for p in poses])
            if len(poses)
            else np.zeros((0, 4, 4))
        )
    if m.ndim != 3 or m.shape[1:] != (4, 4):
        raise ValueError(f"trajectory must be N 4x4 world_from_camera poses, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("trajectory contains NaN or inf")
    return m


def write_trajectory_ply(path: str | Path, poses: Any, color: tuple[int, int, int] = (255, 0, 0)) -> Path:
    """Camera positions as a PLY line set: one vertex per pose, an edge between consecutive poses.

    Open3D reads it with ``read_line_set``; MeshLab and CloudCompare show the vertices.
    """
    m = _trajectory_matrices(poses)
    pts = m[:, :3, 3]
    cols = np.tile(np.asarray(color, dtype=np.uint8), (len(pts), 1))
    table, props = _vertex_table(pts, cols, None)
    edges = np.empty(max(len(pts) - 1, 0), dtype=[("vertex1", "<i4"), ("vertex2", "<i4")])
    edges["vertex1"] = np.arange(len(edges))
    edges["vertex2"] = np.arange(1, len(edges) + 1)
    header = [
        f"element vertex {len(pts)}",
        *props,
        f"element edge {len(edges)}",
        "property int vertex1",
        "property int vertex2",
    ]
    return _write_ply(Path(path), header, [table, edges])


def write_trajectory_tum(path: str | Path, poses: Any, timestamps_s: Any = None) -> Path:
    """Poses as TUM text lines ``timestamp tx ty tz qx qy qz qw`` (timestamps 0, 1, 2... when None)."""
    m = _trajectory_matrices(poses)
    t = np.arange(len(m), dtype=np.float64) if timestamps_s is None else np.asarray(timestamps_s, dtype=np.float64)
    if t.shape != (len(m),):
        raise ValueError(f"need {len(m)} timestamps, got shape {t.shape}")
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for ti, mi in zip(t, m):  # one line per pose
        q = Pose(mi).as_quaternion()
        x, y, z = mi[:3, 3]
        lines.append(f"{ti:.6f} {x:.6f} {y:.6f} {z:.6f} {q[0]:.7f} {q[1]:.7f} {q[2]:.7f} {q[3]:.7f}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- objects
def _slug(label: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return s[:40] or "object"


def _palette(i: int) -> np.ndarray:
    """A distinct, stable colour per index (golden-ratio hue steps)."""
    hue = (i * 0.618033988749895) % 1.0
    hsv = np.array([[[hue * 180.0, 200.0, 230.0]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]


def write_object_clouds(out_dir: str | Path, objects: Sequence[ObjectCloud]) -> dict[int, Path]:
    """One PLY per object, named ``object_<id>_<label>.ply``, and a ``labels.json`` index.

    labels.json lists, per object: id, label, file, point count, centroid and
    axis-aligned box, plus each object's ``extra``.

    Raises:
        ValueError: duplicate object ids or bad point arrays.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [int(o.object_id) for o in objects]
    if len(set(ids)) != len(ids):
        raise ValueError(f"object ids must be unique, got duplicates in {sorted(ids)}")
    checked = [(o, _points(o.points, f"object {o.object_id} points")) for o in objects]
    written: dict[int, Path] = {}
    index = []
    for k, (obj, pts) in enumerate(checked):
        cols = _colors(obj.colors, len(pts), f"object {obj.object_id} colors")
        if cols is None:
            cols = np.tile(_palette(k), (len(pts), 1))
        name = f"object_{int(obj.object_id):04d}_{_slug(obj.label)}.ply"
        written[int(obj.object_id)] = write_point_cloud_ply(out / name, pts, cols)
        entry: dict[str, Any] = {"id": int(obj.object_id), "label": obj.label, "file": name, "n_points": len(pts)}
        if len(pts):
            entry["centroid_m"] = pts.mean(axis=0).round(4).tolist()
            entry["box_min_m"] = pts.min(axis=0).round(4).tolist()
            entry["box_max_m"] = pts.max(axis=0).round(4).tolist()
        entry.update(obj.extra)
        index.append(entry)
    (out / "labels.json").write_text(json.dumps({"objects": index}, indent=2))
    return written


# --------------------------------------------------------------------------- top-down image
def top_down_image(
    points: Any,
    colors: Any = None,
    *,
    resolution_m: float = 0.05,
    max_z_m: float | None = None,
    trajectory: Any = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, np.ndarray]:
    """Look down the z axis: each cell shows the colour of its highest point.

    Args:
        points: "N 3" world points (z up).
        colors: "N 3" uint8; without colours cells are shaded by height.
        resolution_m: cell size.
        max_z_m: ignore points above this (cut a ceiling away).
        trajectory: optional world_from_camera poses drawn as a red path.
        background: colour of empty cells.

    Returns:
        The "H W 3" uint8 image (x to the right, y up; cells aligned to
        multiples of ``resolution_m``) and the world (x, y) of the image's
        top-left cell centre.

    Raises:
        ValueError: no points, or an image larger than 8192 cells a side.
    """
    if not resolution_m > 0:
        raise ValueError(f"resolution_m must be positive, got {resolution_m}")
    p = _points(points)
    c = _colors(colors, len(p))
    if max_z_m is not None:
        keep = p[:, 2] <= max_z_m
        p = p[keep]
        c = c[keep] if c is not None else None
    traj = _trajectory_matrices(trajectory)[:, :3, 3] if trajectory is not None else np.zeros((0, 3))
    both = np.concatenate([p[:, :2], traj[:, :2]]) if len(traj) else p[:, :2]
    if len(both) == 0:
        raise ValueError("top_down_image needs at least one point")
    lo = np.floor(both.min(axis=0) / resolution_m) * resolution_m  # cells aligned to the world grid
    hi = both.max(axis=0)
    size = np.floor((hi - lo) / resolution_m).astype(np.int64) + 1
    if size.max() > _MAX_IMAGE_SIDE:
        raise ValueError(
            f"top-down image would be {size[0]}x{size[1]} cells at {resolution_m} m; use a coarser resolution_m"
        )
    width, height = int(size[0]), int(size[1])
    img = np.empty((height, width, 3), np.uint8)
    img[:] = np.asarray(background, np.uint8)
    if len(p):
        col = np.floor((p[:, 0] - lo[0]) / resolution_m).astype(np.int64)
        row = (height - 1) - np.floor((p[:, 1] - lo[1]) / resolution_m).astype(np.int64)
        if c is None:
            z = p[:, 2]
            span = max(float(z.max() - z.min()), 1e-9)
            shade = (40 + 200 * (z - z.min()) / span).astype(np.uint8)
            c = np.stack([shade, shade, shade], axis=1)
        # sort by height so the highest point of each cell is written last
        order = np.argsort(p[:, 2], kind="stable")
        img[row[order], col[order]] = c[order]
    if len(traj) >= 1:
        px = np.stack(
            [
                np.floor((traj[:, 0] - lo[0]) / resolution_m),
                (height - 1) - np.floor((traj[:, 1] - lo[1]) / resolution_m),
            ],
            axis=1,
        ).astype(np.int32)
        cv2.polylines(img, [px.reshape(-1, 1, 2)], False, (255, 0, 0), 1)
        cv2.circle(img, (int(px[-1, 0]), int(px[-1, 1])), 2, (255, 0, 0), -1)
    origin = np.array([lo[0] + 0.5 * resolution_m, lo[1] + (height - 0.5) * resolution_m])
    return img, origin


def write_top_down_png(path: str | Path, points: Any, colors: Any = None, **kwargs: Any) -> Path:
    """`top_down_image` written as a PNG; keyword arguments as there."""
    img, _ = top_down_image(points, colors, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write {path}")
    return path


# --------------------------------------------------------------------------- one folder
def height_colors(z: np.ndarray) -> np.ndarray:
    """RGB colours (uint8, N x 3) for heights ``z``: viridis between the 2nd and 98th percentile."""
    import cv2

    z = np.asarray(z, np.float64).reshape(-1)
    if not len(z):
        return np.zeros((0, 3), np.uint8)
    t = (z - np.percentile(z, 2)) / max(np.percentile(z, 98) - np.percentile(z, 2), 1e-6)
    g = (np.clip(t, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(g.reshape(-1, 1), cv2.COLORMAP_VIRIDIS).reshape(-1, 3)[:, ::-1].copy()


def export_folder(
    out_dir: str | Path,
    *,
    points: Any = None,
    colors: Any = None,
    normals: Any = None,
    mesh: MeshArrays | None = None,
    objects: Sequence[ObjectCloud] = (),
    trajectory: Any = None,
    timestamps_s: Any = None,
    top_down_resolution_m: float = 0.05,
    top_down_max_z_m: float | None = None,
) -> dict[str, Path]:
    """Write everything given into one folder.

    Files: ``map.ply`` (the coloured cloud), ``mesh.ply``, ``objects/`` (one
    cloud per object and ``labels.json``), ``trajectory.ply`` (line set) and
    ``trajectory.txt`` (TUM), ``top_down.png``.

    Returns:
        What was written: keys "map", "mesh", "objects", "trajectory_ply",
        "trajectory_tum", "top_down".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if points is not None:
        written["map"] = write_point_cloud_ply(out / "map.ply", points, colors, normals)
    if mesh is not None:
        written["mesh"] = write_mesh_ply(out / "mesh.ply", mesh)
    if len(objects):
        write_object_clouds(out / "objects", objects)
        written["objects"] = out / "objects" / "labels.json"
    if trajectory is not None:
        written["trajectory_ply"] = write_trajectory_ply(out / "trajectory.ply", trajectory)
        written["trajectory_tum"] = write_trajectory_tum(out / "trajectory.txt", trajectory, timestamps_s)
    cloud = None
    if points is not None and len(points):
        cloud = (points, colors)
    elif mesh is not None and len(mesh.vertices):
        cloud = (mesh.vertices, mesh.vertex_colors)
    if cloud is not None:
        written["top_down"] = write_top_down_png(
            out / "top_down.png",
            cloud[0],
            cloud[1],
            resolution_m=top_down_resolution_m,
            max_z_m=top_down_max_z_m,
            trajectory=trajectory,
        )
    return written


# --------------------------------------------------------------------------- TSDF surface
class TsdfSurface:
    """A truncated signed distance surface fused from posed RGB-D frames (Open3D VoxelBlockGrid).

    Integrated beside the occupancy map from the same frames, for meshes.

    Args:
        voxel_size_m: TSDF voxel size.
        sdf_trunc_m: truncation distance; 4 voxels when None.
        depth_max_m: depth beyond this is not fused.
        block_resolution: voxels per hash-block side.
        block_count: initial hash-map capacity (grows when needed).
        with_color: also fuse colour.
    """

    def __init__(
        self,
        voxel_size_m: float = 0.02,
        *,
        sdf_trunc_m: float | None = None,
        depth_max_m: float = 4.0,
        block_resolution: int = 8,
        block_count: int = 20000,
        with_color: bool = True,
    ) -> None:
        if not (math.isfinite(voxel_size_m) and voxel_size_m > 0):
            raise ValueError(f"voxel_size_m must be positive, got {voxel_size_m}")
        trunc = 4.0 * voxel_size_m if sdf_trunc_m is None else float(sdf_trunc_m)
        if not trunc > voxel_size_m:
            raise ValueError(f"sdf_trunc_m must exceed voxel_size_m ({voxel_size_m}), got {trunc}")
        if not depth_max_m > 0:
            raise ValueError(f"depth_max_m must be positive, got {depth_max_m}")
        o3d = require("open3d", "the TSDF surface layer")
        self._o3d = o3d
        self.voxel_size_m = float(voxel_size_m)
        self.sdf_trunc_m = trunc
        self.depth_max_m = float(depth_max_m)
        self.with_color = bool(with_color)
        core = o3d.core
        names: tuple[str, ...] = ("tsdf", "weight", "color") if with_color else ("tsdf", "weight")
        self._grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=names,
            attr_dtypes=tuple(core.float32 for _ in names),
            attr_channels=tuple([1, 1, 3][: len(names)]),
            voxel_size=self.voxel_size_m,
            block_resolution=int(block_resolution),
            block_count=int(block_count),
            device=core.Device("CPU:0"),
        )
        self.n_integrated = 0

    def integrate(self, frame: Frame) -> bool:
        """Fuse one posed RGB-D frame; returns False (and changes nothing) when it has no valid depth.

        Raises:
            ValueError: the frame lacks depth, intrinsics or pose.
        """
        if not frame.has_geometry:
            missing = [n for n in ("depth_m", "intrinsics", "world_from_camera") if getattr(frame, n) is None]
            raise ValueError(f"frame {frame.index} cannot be fused into the TSDF: missing {', '.join(missing)}")
        o3d = self._o3d
        core = o3d.core
        assert frame.depth_m is not None and frame.intrinsics is not None and frame.world_from_camera is not None
        depth = np.nan_to_num(frame.depth_m, nan=0.0).astype(np.float32)
        depth[depth > self.depth_max_m] = 0.0
        if not np.any(depth > 0):
            return False
        k = core.Tensor(frame.intrinsics.matrix, core.float64)
        camera_from_world = core.Tensor(frame.world_from_camera.inverse().matrix, core.float64)
        depth_img = o3d.t.geometry.Image(np.ascontiguousarray(depth))
        mult = self.sdf_trunc_m / self.voxel_size_m
        blocks = self._grid.compute_unique_block_coordinates(
            depth_img, k, camera_from_world, 1.0, self.depth_max_m, mult
        )
        if self.with_color:
            color = o3d.t.geometry.Image(np.ascontiguousarray(frame.rgb, dtype=np.float32) / np.float32(255.0))
            self._grid.integrate(blocks, depth_img, color, k, k, camera_from_world, 1.0, self.depth_max_m, mult)
        else:
            self._grid.integrate(blocks, depth_img, k, camera_from_world, 1.0, self.depth_max_m, mult)
        self.n_integrated += 1
        return True

    def extract_mesh(self, weight_threshold: float = 0.5) -> MeshArrays:
        """The zero level set as a mesh (marching cubes) over voxels whose weight exceeds the threshold.

        The default keeps every voxel seen by at least one frame; raise it to
        keep only surfaces seen several times. Empty arrays before any integration.
        """
        if self.n_integrated == 0:
            return MeshArrays(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
        mesh = self._grid.extract_triangle_mesh(weight_threshold=float(weight_threshold))
        verts = mesh.vertex.positions.numpy().astype(np.float64)
        tris = mesh.triangle.indices.numpy().astype(np.int64)
        colors = None
        if self.with_color and "colors" in mesh.vertex:
            colors = np.clip(np.round(mesh.vertex.colors.numpy() * 255.0), 0, 255).astype(np.uint8)
        normals = mesh.vertex.normals.numpy().astype(np.float64) if "normals" in mesh.vertex else None
        return MeshArrays(verts, tris, colors, normals)

    def extract_point_cloud(self, weight_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray | None]:
        """Surface points "N 3" (zero crossings between voxels) and their colours "N 3" uint8 (None without colour).

        A surface lying exactly on voxel centres has no strict sign change and
        yields no points here (the mesh still has it).
        """
        if self.n_integrated == 0:
            return np.zeros((0, 3)), (np.zeros((0, 3), np.uint8) if self.with_color else None)
        pcd = self._grid.extract_point_cloud(weight_threshold=float(weight_threshold))
        pts = pcd.point.positions.numpy().astype(np.float64)
        colors = None
        if self.with_color and "colors" in pcd.point:
            colors = np.clip(np.round(pcd.point.colors.numpy() * 255.0), 0, 255).astype(np.uint8)
        return pts, colors

    def __len__(self) -> int:
        """Allocated hash blocks."""
        return int(self._grid.hashmap().size())
