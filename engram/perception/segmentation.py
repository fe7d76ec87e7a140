"""Instance masks to 3D detections.

A detection is one instance seen in one frame: its label, its pixels lifted to
world points (with colours), its image box and, optionally, its mask crop and
an embedding. Instance masks come from a simulator (``Frame.instances``, ground
truth) or from a `Detector` plug-in (masks + labels + scores from RGB). The
conversion is one vectorised pass over the instance image: pixels are grouped
by a stable argsort of their ids, never visited one by one. This module also
owns the voxel-connectivity clustering used to drop stray points (flying
pixels at depth edges) from a detection; the object map reuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numba import njit

from engram.types import Frame

__all__ = [
    "Detection",
    "InstanceMasks",
    "Detector",
    "detections_from_instances",
    "detections_from_masks",
    "instances_from_masks",
    "pack_voxel_keys",
    "voxel_cluster_labels",
    "largest_clusters_mask",
]

# Packed voxel keys: three 21-bit fields, each offset so that keys within
# +-2**20 voxels of the origin stay non-negative (52 km at 5 cm voxels).
_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)
_KEY_MASK = (1 << _KEY_BITS) - 1


@dataclass
class Detection:
    """One instance seen in one frame.

    Attributes:
        instance_id: the id of the instance in the source's instance image.
            For simulator frames this is ground truth; consumers must not use
            it to associate detections across frames (a real detector has no
            such id), only to score.
        label: category name.
        score: detector confidence in [0, 1] (1.0 for simulator masks).
        pixel_count: pixels of the instance at full resolution.
        points_world: "N 3" float32 world points of the sampled pixels.
        colors: "N 3" uint8 RGB of those points.
        bbox_xyxy: (x0, y0, x1, y1) inclusive pixel box at full resolution.
        frame_index: index of the frame it was seen in.
        timestamp_s: time of that frame.
        mask: optional "h w" bool crop of the mask inside ``bbox_xyxy``.
        embedding: optional "D" float32 feature (image crop or region).
        label_scores: optional label distribution ({label: probability}) from
            the detector; the object map votes with it instead of ``label`` alone.
    """

    instance_id: int
    label: str
    score: float
    pixel_count: int
    points_world: np.ndarray
    colors: np.ndarray
    bbox_xyxy: tuple[int, int, int, int]
    frame_index: int = 0
    timestamp_s: float = 0.0
    mask: np.ndarray | None = None
    embedding: np.ndarray | None = None
    label_scores: dict[str, float] | None = None

    def __post_init__(self) -> None:
        p = np.asarray(self.points_world, dtype=np.float32)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"Detection.points_world must have shape (N, 3), got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ValueError("Detection.points_world contains NaN or inf")
        c = np.asarray(self.colors)
        if c.shape != p.shape:
            raise ValueError(f"Detection.colors must have shape {p.shape} to match the points, got {c.shape}")
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"Detection.label must be a non-empty string, got {self.label!r}")
        if not 0.0 <= float(self.score) <= 1.0:
            raise ValueError(f"Detection.score must be in [0, 1], got {self.score}")
        self.points_world = p
        self.colors = c.astype(np.uint8, copy=False)
        self.score = float(self.score)
        if self.embedding is not None:
            e = np.asarray(self.embedding, dtype=np.float32).reshape(-1)
            if not np.all(np.isfinite(e)):
                raise ValueError("Detection.embedding contains NaN or inf")
            self.embedding = e

    @property
    def centroid(self) -> np.ndarray:
        """Mean of the points, float64 (3,); NaN when there are none."""
        if len(self.points_world) == 0:
            return np.full(3, np.nan)
        return self.points_world.mean(axis=0, dtype=np.float64)


@dataclass
class InstanceMasks:
    """What a `Detector` returns for one image.

    Attributes:
        masks: "K H W" bool masks.
        labels: K category names.
        scores: "K" confidences in [0, 1].
        embeddings: optional "K D" float32 features, one per mask.
        label_scores: optional per-mask label distribution ({label: probability}),
            so that a later view can overrule a doubtful label; ``labels[i]`` is
            its best entry (or "object" when none is confident).
        extra: backend-specific extras (kept out of the memory).
    """

    masks: np.ndarray
    labels: list[str]
    scores: np.ndarray
    embeddings: np.ndarray | None = None
    label_scores: list[dict[str, float]] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = np.asarray(self.masks)
        if m.ndim != 3:
            raise ValueError(f"InstanceMasks.masks must have shape (K, H, W), got {m.shape}")
        self.masks = m.astype(bool, copy=False)
        k = m.shape[0]
        if len(self.labels) != k:
            raise ValueError(f"InstanceMasks.labels has {len(self.labels)} entries for {k} masks")
        s = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if s.shape != (k,):
            raise ValueError(f"InstanceMasks.scores must have {k} entries, got {s.shape}")
        if np.any(~np.isfinite(s)) or np.any(s < 0) or np.any(s > 1):
            raise ValueError("InstanceMasks.scores must be finite and in [0, 1]")
        self.scores = s
        if self.embeddings is not None:
            e = np.asarray(self.embeddings, dtype=np.float32)
            if e.ndim != 2 or e.shape[0] != k:
                raise ValueError(f"InstanceMasks.embeddings must have shape ({k}, D), got {e.shape}")
            self.embeddings = e
        self.labels = list(self.labels)
        if self.label_scores is not None:
            if len(self.label_scores) != k:
                raise ValueError(f"InstanceMasks.label_scores has {len(self.label_scores)} entries for {k} masks")
            self.label_scores = [{str(a): float(b) for a, b in d.items()} for d in self.label_scores]

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """ "K 4" int64 inclusive pixel boxes (x0, y0, x1, y1) of the masks; -1 rows for empty masks."""
        k = self.masks.shape[0]
        out = np.full((k, 4), -1, np.int64)
        if k == 0:
            return out
        rows = np.any(self.masks, axis=2)
        cols = np.any(self.masks, axis=1)
        has = rows.any(axis=1)
        h, w = self.masks.shape[1:]
        out[has, 1] = rows[has].argmax(axis=1)
        out[has, 3] = h - 1 - rows[has, ::-1].argmax(axis=1)
        out[has, 0] = cols[has].argmax(axis=1)
        out[has, 2] = w - 1 - cols[has, ::-1].argmax(axis=1)
        return out

    @classmethod
    def empty(cls, height: int, width: int) -> InstanceMasks:
        """No instances in an image of this size."""
        return cls(np.zeros((0, height, width), bool), [], np.zeros(0))


@runtime_checkable
class Detector(Protocol):
    """An instance segmenter: one frame in, masks + labels + scores (+ embeddings) out.

    Backends read what they need from the `Frame` (``rgb`` always; ``depth_m``,
    ``intrinsics`` and ``world_from_camera`` when they use geometry). Built by
    name with `engram.perception.detectors.build_detector`. An optional
    ``labels_are_evidence`` attribute (True when absent) says whether its names are
    evidence enough for `SceneMemory`'s dynamic layer: a segment named after a moving
    category ("person") is kept out of the static map, and a remembered object whose
    place shows a thing of another name is gone. The classifier-based ``rgbd`` and
    ``rgb`` set it False: people are then found by motion, absence by depth alone.
    """

    name: str

    def detect(self, frame: Frame) -> InstanceMasks:
        """The instances found in ``frame`` (masks at the frame's full resolution)."""
        ...


def pack_voxel_keys(keys: np.ndarray) -> np.ndarray:
    """Pack "N 3" int64 voxel indices into one sortable int64 per voxel.

    Neighbouring voxels differ by a constant: ``pack(k + d) == pack(k) +
    pack_offset(d)`` for keys within +-2**20 of the origin, which is what the
    neighbourhood searches rely on.
    """
    k = np.asarray(keys, dtype=np.int64) + _KEY_OFFSET
    if k.size and (k.min() < 0 or k.max() > _KEY_MASK):
        raise ValueError("voxel keys exceed the packable range of +-2**20 voxels per axis")
    return (k[:, 0] << (2 * _KEY_BITS)) | (k[:, 1] << _KEY_BITS) | k[:, 2]


def packed_voxel_keys(points: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """``pack_voxel_keys(np.floor(points / voxel_size_m))`` in one pass.

    The division runs in the points' float type (float32 points: float32, as
    NumPy divides them by a Python float); other dtypes go through float64.
    """
    p = np.asarray(points)
    if p.dtype != np.float32:
        p = p.astype(np.float64, copy=False)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    out = np.empty(p.shape[0], np.int64)
    if not _floor_pack(np.ascontiguousarray(p), p.dtype.type(voxel_size_m), out):
        raise ValueError("voxel keys exceed the packable range of +-2**20 voxels per axis")
    return out


@njit(cache=True)
def _floor_pack(p, voxel, out):  # pragma: no cover - compiled
    for i in range(p.shape[0]):
        acc = np.int64(0)
        for a in range(3):
            f = np.floor(p[i, a] / voxel)
            if not (f >= -_KEY_OFFSET and f <= _KEY_MASK - _KEY_OFFSET):  # also NaN
                return False
            acc = (acc << _KEY_BITS) | (np.int64(f) + _KEY_OFFSET)
        out[i] = acc
    return True


def unpack_voxel_keys(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_voxel_keys`: "N" int64 -> "N 3" int64 voxel indices."""
    p = np.asarray(packed, dtype=np.int64)
    out = np.empty((len(p), 3), dtype=np.int64)
    out[:, 0] = (p >> (2 * _KEY_BITS)) & _KEY_MASK
    out[:, 1] = (p >> _KEY_BITS) & _KEY_MASK
    out[:, 2] = p & _KEY_MASK
    return out - _KEY_OFFSET


def neighbour_offsets(radius: int = 1, *, half: bool = False) -> np.ndarray:
    """Packed offsets of the (2r+1)^3 voxel neighbourhood (including 0).

    With ``half`` only the offsets that are lexicographically positive are
    returned (each undirected neighbour pair once), without 0.
    """
    r = np.arange(-radius, radius + 1, dtype=np.int64)
    d = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    if half:
        pos = (d[:, 0] > 0) | ((d[:, 0] == 0) & (d[:, 1] > 0)) | ((d[:, 0] == 0) & (d[:, 1] == 0) & (d[:, 2] > 0))
        d = d[pos]
    return (d[:, 0] << (2 * _KEY_BITS)) + (d[:, 1] << _KEY_BITS) + d[:, 2]


# The 13 forward neighbours of a voxel (each undirected neighbour pair once): (0, 0, +1) and the
# columns (dx, dy) = (0, 1), (1, -1), (1, 0), (1, 1) with dz = -1, 0, +1, packed with 16 bits per axis
# (the column offsets at dz = 0).
_HALF_COLUMNS_16 = np.array([(dx << 32) + (dy << 16) for dx, dy in ((0, 1), (1, -1), (1, 0), (1, 1))], np.int64)


def voxel_cluster_labels(points: np.ndarray, voxel_size_m: float, groups: np.ndarray | None = None) -> np.ndarray:
    """Connected components of the occupied voxels (26-connectivity).

    Two points share a cluster when a chain of occupied voxels, each touching
    the next by a face, edge or corner, links their voxels: DBSCAN with
    ``eps`` of about one voxel and ``min_samples`` of 1, on a grid.

    Args:
        points: "N 3" points.
        voxel_size_m: grid size.
        groups: optional "N" non-negative ints (< 16384); points of different
            groups never share a cluster, so many point sets (all detections
            of a frame) are clustered in one pass.

    Returns:
        "N" int64 cluster labels 0..C-1, ordered by decreasing cluster size
        (point count).
    """
    if not voxel_size_m > 0:
        raise ValueError(f"voxel_size_m must be positive, got {voxel_size_m}")
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)
    if groups is None:
        g = np.zeros(len(p), dtype=np.int64)
    else:
        g = np.asarray(groups, dtype=np.int64).reshape(-1)
        if g.shape != (len(p),):
            raise ValueError(f"groups must have shape ({len(p)},), got {g.shape}")
        if g.min() < 0 or g.max() >= 1 << 14:
            raise ValueError("groups must be in [0, 16384)")
    packed = np.empty(len(p), np.int64)
    if not _pack_keys_16(p, float(voxel_size_m), g, packed):
        raise ValueError(f"points span more than {(1 << 16) - 2} voxels of {voxel_size_m} m along an axis")
    return _cluster_ranks(packed, _HALF_COLUMNS_16)


@njit(cache=True)
def _pack_keys_16(p, voxel_size_m, g, out):  # pragma: no cover - compiled
    """``out[i]``: group and voxel of point i, 16 bits each, voxels counted from 1 at the points' minimum
    (so that -1 neighbours stay in range); False when the points span 2**16 - 2 voxels or more."""
    n = p.shape[0]
    k = np.empty((n, 3), np.int64)
    lo = np.empty(3, np.int64)
    for a in range(3):
        lo[a] = np.iinfo(np.int64).max
    for i in range(n):
        for a in range(3):
            v = np.int64(np.floor(p[i, a] / voxel_size_m))
            k[i, a] = v
            if v < lo[a]:
                lo[a] = v
    for i in range(n):
        for a in range(3):
            k[i, a] -= lo[a] - 1
            if k[i, a] >= (1 << 16) - 1:
                return False
        out[i] = (g[i] << 48) | (k[i, 0] << 32) | (k[i, 1] << 16) | k[i, 2]
    return True


@njit(cache=True, inline="always")
def _join(parent, a, b):  # pragma: no cover - compiled
    """Union of the sets of ``a`` and ``b`` (path halving; the smaller root stays the root)."""
    x = a
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    y = b
    while parent[y] != y:
        parent[y] = parent[parent[y]]
        y = parent[y]
    if x < y:
        parent[y] = x
    elif y < x:
        parent[x] = y


@njit(cache=True)
def _cluster_ranks(packed, columns):  # pragma: no cover - compiled
    """`voxel_cluster_labels` of packed voxel keys: sort, join occupied neighbours, rank components by size.

    ``columns``: packed (dx, dy, 0) of the neighbour columns searched besides
    the voxel's own (see ``_HALF_COLUMNS_16``); each is searched at dz = -1, 0, +1.

    Components are numbered by their smallest key, then ranked by decreasing
    point count (ties keep that order).
    """
    n = packed.shape[0]
    order = np.argsort(packed)
    uniq = np.empty(n, np.int64)
    inv = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        p = packed[order[i]]
        if m == 0 or uniq[m - 1] != p:
            uniq[m] = p
            m += 1
        inv[order[i]] = m - 1
    uniq = uniq[:m]
    parent = np.arange(m)
    for i in range(m - 1):  # (0, 0, +1): the next key
        if uniq[i + 1] == uniq[i] + 1:
            _join(parent, i, i + 1)
    for o in columns:  # keys + o ascend with the keys: one merge-like walk per column, three keys at a time
        j = 0
        for i in range(m):
            t = uniq[i] + o - 1
            while j < m and uniq[j] < t:
                j += 1
            if j >= m:
                break
            for jj in range(j, min(j + 3, m)):  # keys are distinct: dz = -1, 0, +1 are consecutive if present
                if uniq[jj] > t + 2:
                    break
                _join(parent, i, jj)
    comp = np.empty(m, np.int64)
    n_comp = 0
    for i in range(m):  # a root is its component's smallest index: roots come first in key order
        x = i
        while parent[x] != x:
            x = parent[x]
        if x == i:
            comp[i] = n_comp
            n_comp += 1
        else:
            comp[i] = comp[x]
    sizes = np.zeros(n_comp, np.int64)
    for i in range(n):
        sizes[comp[inv[i]]] += 1
    rank = np.empty(n_comp, np.int64)
    rank[np.argsort(-sizes, kind="mergesort")] = np.arange(n_comp)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = rank[comp[inv[i]]]
    return out


def largest_clusters_mask(
    points: np.ndarray,
    voxel_size_m: float,
    *,
    min_fraction: float = 0.25,
    min_points: int = 1,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Keep-mask of the points in the largest voxel cluster and in clusters at
    least ``min_fraction`` of its size (and at least ``min_points``).

    Stray points (flying pixels at depth edges, a sliver of the wall behind an
    object) form small separate clusters and are dropped; an object split in
    two by an occluder keeps both halves. With ``groups`` the rule applies
    within each group (see `voxel_cluster_labels`).
    """
    labels = voxel_cluster_labels(points, voxel_size_m, groups)
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    sizes = np.bincount(labels)
    if groups is None:
        largest = np.full(len(sizes), sizes[0])
    else:
        g = np.asarray(groups, dtype=np.int64).reshape(-1)
        group_of_cluster = np.zeros(len(sizes), dtype=np.int64)
        group_of_cluster[labels] = g
        largest_in_group = np.zeros(int(g.max()) + 1, dtype=np.int64)
        np.maximum.at(largest_in_group, group_of_cluster, sizes)  # one step per cluster
        largest = largest_in_group[group_of_cluster]
    keep = ((sizes >= min_fraction * largest) & (sizes >= min_points)) | (sizes == largest)
    return keep[labels]


def instances_from_masks(masks: InstanceMasks) -> tuple[np.ndarray, dict[int, str], dict[int, float]]:
    """Flatten overlapping masks into an instance image; the higher score wins.

    Returns:
        ("H W" int32 ids, 1..K for mask k-1, 0 = none), {id: label}, {id: score}.
    """
    k, h, w = masks.masks.shape
    if k == 0:
        return np.zeros((h, w), np.int32), {}, {}
    # painted from the lowest score up, so the best mask is the last written at each pixel (of equal
    # scores, the later mask); one pass per mask, not a "K H W" stack
    order = np.argsort(masks.scores, kind="stable")
    if masks.masks.dtype == np.bool_:
        ids = _paint_masks(masks.masks, order)
    else:
        ids = np.zeros((h, w), np.int32)
        for i in order:
            ids[masks.masks[i]] = i + 1
    labels = {i + 1: masks.labels[i] for i in range(k)}
    scores = {i + 1: float(masks.scores[i]) for i in range(k)}
    return ids, labels, scores


def detections_from_masks(frame: Frame, masks: InstanceMasks, **kwargs) -> list[Detection]:
    """Detections from a `Detector`'s masks on ``frame`` (see `detections_from_instances`)."""
    if masks.masks.shape[1:] != (frame.height, frame.width):
        raise ValueError(
            f"masks have size {masks.masks.shape[1:]} but the frame is {(frame.height, frame.width)} (H, W)"
        )
    ids, labels, scores = instances_from_masks(masks)
    embeddings = None
    if masks.embeddings is not None:
        embeddings = {i + 1: masks.embeddings[i] for i in range(len(masks.labels))}
    label_scores = None
    if masks.label_scores is not None:
        label_scores = {i + 1: masks.label_scores[i] for i in range(len(masks.labels))}
    return detections_from_instances(
        frame, instances=ids, labels=labels, scores=scores, embeddings=embeddings, label_scores=label_scores, **kwargs
    )


def detections_from_instances(
    frame: Frame,
    *,
    stride: int = 2,
    min_pixels: int = 40,
    min_points: int = 10,
    max_depth_m: float = 6.0,
    ignore_labels: Iterable[str] = ("wall", "floor", "ceiling"),
    erode_edges: bool = True,
    denoise_voxel_m: float | None = 0.05,
    keep_masks: bool = False,
    instances: np.ndarray | None = None,
    labels: Mapping[int, str] | None = None,
    scores: Mapping[int, float] | None = None,
    embeddings: Mapping[int, np.ndarray] | None = None,
    label_scores: Mapping[int, Mapping[str, float]] | None = None,
) -> list[Detection]:
    """Turn a frame's instance image into 3D detections in the world frame.

    Args:
        frame: a frame with depth, intrinsics and pose (``has_geometry``).
        stride: sample every ``stride``-th pixel for the 3D points.
        min_pixels: drop instances with fewer full-resolution pixels.
        min_points: drop instances with fewer valid 3D points after filtering.
        max_depth_m: ignore depth beyond this (noisy, and far objects are
            seen better later).
        ignore_labels: categories that are structure, not objects
            (case-insensitive).
        erode_edges: drop pixels whose 4-neighbours belong to another
            instance; mixed depth at mask borders makes flying points.
        denoise_voxel_m: keep only the main voxel clusters of each
            detection's points at this grid size (None disables).
        keep_masks: store the full-resolution mask crop in each detection.
        instances, labels: override ``frame.instances`` / ``frame.labels``
            (for masks from a detector).
        scores: per-id confidence (default 1.0).
        embeddings: per-id feature vectors.
        label_scores: per-id label distributions.

    Returns:
        Detections sorted by decreasing pixel count.

    Raises:
        ValueError: the frame has no instances or cannot be backprojected.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if not max_depth_m > 0:
        raise ValueError(f"max_depth_m must be positive, got {max_depth_m}")
    ins = frame.instances if instances is None else np.asarray(instances)
    names = frame.labels if labels is None else labels
    if ins is None:
        raise ValueError(f"frame {frame.index} has no instance image (Frame.instances is None)")
    if ins.shape != (frame.height, frame.width):
        raise ValueError(f"instances must have shape {(frame.height, frame.width)}, got {ins.shape}")
    full_depth, k, world_from_camera = frame.depth_m, frame.intrinsics, frame.world_from_camera
    if full_depth is None or k is None or world_from_camera is None:  # not frame.has_geometry
        missing = [n for n in ("depth_m", "intrinsics", "world_from_camera") if getattr(frame, n) is None]
        raise ValueError(f"frame {frame.index} cannot give 3D detections: missing {', '.join(missing)}")
    ignored = {s.lower() for s in ignore_labels}
    h, w = ins.shape

    # Full-resolution grouping: pixel counts and boxes per id.
    ids, counts, y0, y1, x0, x1 = _instance_boxes(ins)

    keep = (ids != 0) & (counts >= min_pixels)
    for j in np.flatnonzero(keep):  # one step per instance, not per pixel
        name = names.get(int(ids[j]))
        if name is None or name.lower() in ignored:
            keep[j] = False
    if not keep.any():
        return []
    kept_ids = ids[keep]

    # Strided sampling of 3D points for the kept ids.
    if _small_ids(ins, ids):
        # one compiled pass: kept id, same id at the four full-resolution neighbours, depth in range;
        # the camera points, colours and the order by instance (stable) on the way
        group_lut = np.full(int(ids[-1]) + 1, -1, np.int64)
        group_lut[kept_ids] = np.arange(len(kept_ids))
        cam, colours, porder, starts = _sample_points(
            ins, full_depth, frame.rgb, group_lut, stride, erode_edges, np.float32(max_depth_m),
            float(k.fx), float(k.fy), float(k.cx), float(k.cy),
        )  # fmt: skip
        lo, hi = starts[:-1], starts[1:]
        group = np.repeat(np.arange(len(kept_ids), dtype=np.int64), hi - lo)
    else:
        sub = ins[::stride, ::stride]
        depth = full_depth[::stride, ::stride]
        valid = np.isin(sub, kept_ids)
        if erode_edges:
            # compare each sampled pixel with its four full-resolution neighbours
            pad = np.pad(ins, 1, mode="edge")
            hs, ws = sub.shape
            for dv, du in ((0, 1), (2, 1), (1, 0), (1, 2)):
                valid &= pad[dv : dv + stride * hs : stride, du : du + stride * ws : stride] == sub
        with np.errstate(invalid="ignore"):
            valid &= np.isfinite(depth) & (depth > 0) & (depth <= max_depth_m)
        vs, us = np.nonzero(valid)
        z = depth[vs, us].astype(np.float64)
        u = us * stride
        v = vs * stride
        cam = np.empty((len(z), 3))
        cam[:, 0] = (u - k.cx) / k.fx * z
        cam[:, 1] = (v - k.cy) / k.fy * z
        cam[:, 2] = z
        colours = frame.rgb[v, u]
        pid = sub[vs, us]
        porder = np.argsort(pid, kind="stable")
        pid_sorted = pid[porder]
        lo = np.searchsorted(pid_sorted, kept_ids, side="left")
        hi = np.searchsorted(pid_sorted, kept_ids, side="right")
        group = np.searchsorted(kept_ids, pid_sorted)
    world = world_from_camera.transform_points(cam).astype(np.float32)

    if denoise_voxel_m is not None and len(porder):
        # all instances in one clustering pass, grouped by instance
        ok = largest_clusters_mask(world[porder], denoise_voxel_m, groups=group)
        kept_before = np.concatenate(([0], np.cumsum(ok)))
        porder = porder[ok]
        lo, hi = kept_before[lo], kept_before[hi]

    out: list[Detection] = []
    kept_rows = np.flatnonzero(keep)
    for j, iid, a, b in zip(kept_rows, kept_ids, lo, hi):  # one step per instance
        sel = porder[a:b]
        if len(sel) < min_points:
            continue
        pts = world[sel]
        col = colours[sel]
        iid = int(iid)
        box = (int(x0[j]), int(y0[j]), int(x1[j]), int(y1[j]))
        crop = None
        if keep_masks:
            crop = ins[box[1] : box[3] + 1, box[0] : box[2] + 1] == iid
        emb = None if embeddings is None else embeddings.get(iid)
        out.append(
            Detection(
                instance_id=iid,
                label=names[iid],
                score=1.0 if scores is None else float(scores.get(iid, 1.0)),
                pixel_count=int(counts[j]),
                points_world=pts,
                colors=col,
                bbox_xyxy=box,
                frame_index=frame.index,
                timestamp_s=frame.timestamp_s,
                mask=crop,
                embedding=emb,
                label_scores=None if label_scores is None else dict(label_scores.get(iid) or {}) or None,
            )
        )
    out.sort(key=lambda d: -d.pixel_count)
    return out


def _small_ids(ins: np.ndarray, ids: np.ndarray) -> bool:
    """Are the instance ids non-negative integers small enough to index a table by?"""
    return ins.dtype.kind in "iu" and len(ids) > 0 and int(ids[0]) >= 0 and int(ids[-1]) <= max(4 * ins.size, 1 << 16)


def _instance_boxes(ins: np.ndarray) -> tuple[np.ndarray, ...]:
    """(ids ascending, pixel counts, row min, row max, column min, column max) of an instance image."""
    lo, hi = int(ins.min()), int(ins.max())
    if ins.dtype.kind in "iu" and lo >= 0 and hi <= max(4 * ins.size, 1 << 16):
        counts, y0, y1, x0, x1 = _id_boxes(np.ascontiguousarray(ins), hi + 1)
        ids = np.flatnonzero(counts)
        return ids.astype(ins.dtype), counts[ids], y0[ids], y1[ids], x0[ids], x1[ids]
    h, w = ins.shape
    flat = ins.reshape(-1)
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    counts = np.diff(np.r_[starts, len(flat)])
    rows = order // w
    cols = order - rows * w
    return (
        sorted_ids[starts],
        counts,
        np.minimum.reduceat(rows, starts),
        np.maximum.reduceat(rows, starts),
        np.minimum.reduceat(cols, starts),
        np.maximum.reduceat(cols, starts),
    )


@njit(cache=True)
def _id_boxes(ins, n):  # pragma: no cover - compiled
    """Pixel count and box of every id 0..n-1 of an instance image, in one pass."""
    h, w = ins.shape
    counts = np.zeros(n, np.int64)
    y0 = np.full(n, h, np.int64)
    y1 = np.full(n, -1, np.int64)
    x0 = np.full(n, w, np.int64)
    x1 = np.full(n, -1, np.int64)
    for r in range(h):
        c = 0
        while c < w:  # one update per run of equal ids along the row
            i = ins[r, c]
            start = c
            c += 1
            while c < w and ins[r, c] == i:
                c += 1
            counts[i] += c - start
            if r < y0[i]:
                y0[i] = r
            if r > y1[i]:
                y1[i] = r
            if start < x0[i]:
                x0[i] = start
            if c - 1 > x1[i]:
                x1[i] = c - 1
    return counts, y0, y1, x0, x1


@njit(cache=True)
def _paint_masks(masks, order):  # pragma: no cover - compiled
    """``ids[masks[i]] = i + 1`` for each ``i`` of ``order`` in turn: the last mask painted wins a pixel."""
    _, h, w = masks.shape
    ids = np.zeros((h, w), np.int32)
    for i in order:
        v = np.int32(i + 1)
        for r in range(h):
            for c in range(w):
                if masks[i, r, c]:
                    ids[r, c] = v
    return ids


@njit(cache=True)
def _sample_points(ins, depth, rgb, group_lut, stride, erode, max_depth, fx, fy, cx, cy):  # pragma: no cover
    """The sampled points of `detections_from_instances`, row by row: every ``stride``-th pixel of a kept
    id whose four neighbours (clamped at the border) carry the same id when ``erode``, with finite depth
    in (0, max_depth].

    ``group_lut[id]``: the kept id's group (its rank among the kept ids), -1 for the others.

    Returns:
        ("N 3" float64 camera points, "N 3" colours, "N" order of the points by group (stable),
        "G + 1" start of each group in that order).
    """
    h, w = ins.shape
    hs, ws = (h + stride - 1) // stride, (w + stride - 1) // stride
    n_groups = 0
    for i in range(group_lut.shape[0]):
        n_groups = max(n_groups, group_lut[i] + 1)
    cam = np.empty((hs * ws, 3), np.float64)
    colours = np.empty((hs * ws, 3), rgb.dtype)
    grp = np.empty(hs * ws, np.int64)
    counts = np.zeros(n_groups + 1, np.int64)
    n = 0
    for i in range(hs):
        r = i * stride
        for j in range(ws):
            c = j * stride
            iid = ins[r, c]
            if iid < 0 or iid >= group_lut.shape[0] or group_lut[iid] < 0:
                continue
            if erode and (
                ins[max(r - 1, 0), c] != iid
                or ins[min(r + 1, h - 1), c] != iid
                or ins[r, max(c - 1, 0)] != iid
                or ins[r, min(c + 1, w - 1)] != iid
            ):
                continue
            d = depth[r, c]
            if not (np.isfinite(d) and d > 0 and d <= max_depth):
                continue
            z = np.float64(d)
            cam[n, 0] = (np.float64(c) - cx) / fx * z
            cam[n, 1] = (np.float64(r) - cy) / fy * z
            cam[n, 2] = z
            for ch in range(3):
                colours[n, ch] = rgb[r, c, ch]
            g = group_lut[iid]
            grp[n] = g
            counts[g + 1] += 1
            n += 1
    for g in range(n_groups):
        counts[g + 1] += counts[g]
    order = np.empty(n, np.int64)
    fill = counts[:-1].copy()
    for i in range(n):
        g = grp[i]
        order[fill[g]] = i
        fill[g] += 1
    return cam[:n], colours[:n], order, counts
