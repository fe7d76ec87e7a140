"""Per-frame static / dynamic split: which pixels show something that moves.

Two kinds of evidence, both per pixel and vectorised:

* semantic: instances whose category is known to move (people, animals,
  robots) are dynamic wherever they stand;
* geometric: depth that contradicts the static map. The memory layer looks up
  the static map's log-odds at each measured endpoint and passes them here; an
  endpoint inside confidently free space means something is there now that was
  not before.

Isolated contradicting pixels are mostly sensor noise and pose jitter at depth
edges, so the geometric mask is cleaned with a morphological opening and only
blobs above a minimum size survive. This module never touches the memory: the
caller hands in arrays (perception does not import memory).

Without any label, a moving body is told from a changed static scene (an object
put down where the map had free space) by tracking: `MotionTracker` follows the
connected blobs of the dynamic mask from frame to frame by their 3D centroids.
A blob whose track has travelled is a *mover* (a person walking, a robot): it
never settles into the static map while it is tracked, and what it covers is not
an object. A blob that stays put for a while is a change of the static scene and
may settle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DYNAMIC_CATEGORIES",
    "MotionSplit",
    "MotionTracker",
    "blob_labels",
    "blob_widths_m",
    "grow_over_depth",
    "semantic_dynamic_mask",
    "contradiction_mask",
    "split_dynamic",
]

# Depth beyond this is no measurement (a renderer's far plane, a sensor's saturated value).
_MAX_DEPTH_M = 1000.0

# Categories that move on their own. A user with other movers passes their own set.
DYNAMIC_CATEGORIES = frozenset({"person", "human", "pedestrian", "dog", "cat", "robot", "animal"})


@dataclass
class MotionSplit:
    """Result of `split_dynamic` for one frame.

    Attributes:
        dynamic_pixels: "H W" bool, True where the frame shows something moving.
        semantic_pixels: "H W" bool, the part of ``dynamic_pixels`` owed to moving
            categories (dilated like it); the rest is geometric evidence only.
        n_semantic: pixels flagged by category.
        n_geometric: pixels flagged by contradiction with the static map (after cleaning).
        geometric_pixels: "H W" bool, those pixels (not dilated); None without geometric evidence.
    """

    dynamic_pixels: np.ndarray
    semantic_pixels: np.ndarray
    n_semantic: int
    n_geometric: int
    geometric_pixels: np.ndarray | None = None


def semantic_dynamic_mask(
    instances: np.ndarray | None, labels: dict[int, str], categories: Iterable[str] = DYNAMIC_CATEGORIES
) -> np.ndarray | None:
    """Pixels of instances whose label is a moving category, or None without instances."""
    if instances is None:
        return None
    cats = {c.lower() for c in categories}
    ids = [i for i, name in labels.items() if name.lower() in cats]
    if not ids:
        return np.zeros(instances.shape, dtype=bool)
    return np.isin(instances, np.asarray(ids, dtype=instances.dtype))


def contradiction_mask(
    pixels_uv: np.ndarray,
    endpoint_log_odds: np.ndarray,
    shape_hw: tuple[int, int],
    *,
    free_log_odds: float = -1.0,
    stride: int = 1,
    min_blob_px: int = 12,
) -> np.ndarray:
    """Pixels whose depth endpoint lies in confidently free space of the static map.

    Args:
        pixels_uv: "N 2" (u, v) pixel of each measured endpoint.
        endpoint_log_odds: "N" static-map log-odds at each endpoint (NaN = unknown).
        shape_hw: image size.
        free_log_odds: endpoints at or below this are "confidently free"
            (OctoMap's miss update is -0.405, so -1.0 means about three misses).
        stride: the sampling stride the endpoints were taken at; the mask is
            cleaned on that grid and upsampled back.
        min_blob_px: blobs smaller than this many (strided) pixels are dropped.

    Returns:
        "H W" bool mask.
    """
    import cv2

    h, w = shape_hw
    gh, gw = (h + stride - 1) // stride, (w + stride - 1) // stride
    grid: np.ndarray = np.zeros((gh, gw), np.uint8)
    with np.errstate(invalid="ignore"):
        hit = endpoint_log_odds <= free_log_odds
    if hit.any():
        uv = pixels_uv[hit] // stride
        grid[uv[:, 1], uv[:, 0]] = 1
        grid = cv2.morphologyEx(grid, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        if not grid.any():  # the opening left nothing: no blobs to measure
            return np.zeros((h, w), bool)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_blob_px
        grid = keep[lab].astype(np.uint8)
    if not grid.any():
        return np.zeros((h, w), bool)
    if stride > 1:  # each grid cell back to its stride x stride block
        grid = cv2.resize(grid, (gw * stride, gh * stride), interpolation=cv2.INTER_NEAREST)[:h, :w]
    return grid.astype(bool)


def split_dynamic(
    shape_hw: tuple[int, int],
    *,
    instances: np.ndarray | None = None,
    labels: dict[int, str] | None = None,
    pixels_uv: np.ndarray | None = None,
    endpoint_log_odds: np.ndarray | None = None,
    stride: int = 1,
    categories: Iterable[str] = DYNAMIC_CATEGORIES,
    free_log_odds: float = -1.0,
    min_blob_px: int = 12,
    dilate_px: int = 2,
) -> MotionSplit:
    """Combine semantic and geometric evidence into one dynamic-pixel mask.

    The union is dilated by ``dilate_px`` so that depth-edge pixels around a
    moving body (mixed foreground/background depth) do not leak into the
    static map as a ghost outline.
    """
    import cv2

    h, w = shape_hw
    mask = np.zeros((h, w), bool)
    n_sem = n_geo = 0
    sem = semantic_dynamic_mask(instances, labels or {}, categories)
    if sem is not None:
        n_sem = int(np.count_nonzero(sem))
        if n_sem:
            mask |= sem
    sem_mask = mask.copy()
    geo = None
    if pixels_uv is not None and endpoint_log_odds is not None and len(pixels_uv):
        geo = contradiction_mask(
            pixels_uv, endpoint_log_odds, (h, w), free_log_odds=free_log_odds, stride=stride, min_blob_px=min_blob_px
        )
        n_geo = int(np.count_nonzero(geo))
        if n_geo:
            mask |= geo
    if dilate_px > 0 and mask.any():
        k = 2 * dilate_px + 1
        kernel = np.ones((k, k), np.uint8)
        mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        if n_sem:
            sem_mask = cv2.dilate(sem_mask.astype(np.uint8), kernel).astype(bool)
    return MotionSplit(
        dynamic_pixels=mask, semantic_pixels=sem_mask, n_semantic=n_sem, n_geometric=n_geo, geometric_pixels=geo
    )


def blob_labels(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected blobs (8-connected) of a bool mask: (number of blobs, "H W" int32 labels, 0 = background)."""
    import cv2

    n, lab = cv2.connectedComponents(np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8)
    return int(n) - 1, lab.astype(np.int32, copy=False)


@dataclass
class _Track:
    track_id: int
    first_t_s: float
    last_t_s: float
    first_xy: np.ndarray
    last_xyz: np.ndarray
    travelled_m: float = 0.0
    moving: bool = False
    wide_hits: int = 0  # frames its blob was wide (`MotionTracker.min_width_m`)


class MotionTracker:
    """Blobs of dynamic geometry followed from frame to frame by their 3D centroids.

    Each frame's blobs (ids 1..n, points in world coordinates) are matched to the
    live tracks greedily, nearest first, within ``gate_m + max_speed_mps * dt``.
    A track becomes *moving* once its centroid has been ``move_m`` or more (in the
    floor plane) from where it was first seen, and stays moving while it is
    tracked; a track unseen for ``lost_after_s`` is dropped. A blob's centroid
    shifts a little as the camera sees more or less of a still thing, so
    ``move_m`` is well above that (a walking person covers it in a few frames).
    Only a track whose blob was wide (``blob_widths_m``: a disc of ``min_width_m``
    fits in it, as a head or a torso does) in ``min_wide_frames`` frames becomes
    moving: on a real camera, slivers of mixed depth along the edges of still
    furniture contradict the map in one place after another, and a track hopping
    between them travels as far as a walker does (on the 7-Scenes kitchen, nine
    such tracks in 500 frames, each wide once; the embedded world's walker was
    wide in 2 to 7 frames by the time it had travelled ``move_m``).

    Args:
        gate_m: match radius for a blob seen again at once.
        max_speed_mps: the fastest mover expected; the radius grows by this per second apart.
        move_m: displacement that makes a track moving.
        lost_after_s: a track unseen this long is forgotten.
        settle_after_s: `observe` reports a blob as settled (a changed static scene,
            free to join the static map) once its track is this old and not moving.
        min_width_m: the widest disc a blob must hold to count as wide.
        min_wide_frames: frames a track's blob must be wide in before it can become moving.
    """

    def __init__(
        self,
        gate_m: float = 0.5,
        max_speed_mps: float = 2.0,
        move_m: float = 0.3,
        lost_after_s: float = 2.0,
        settle_after_s: float = 1.0,
        min_width_m: float = 0.15,
        min_wide_frames: int = 2,
    ) -> None:
        if not (gate_m > 0 and max_speed_mps >= 0 and move_m > 0 and lost_after_s > 0 and settle_after_s >= 0) or not (
            min_width_m >= 0 and min_wide_frames >= 0
        ):
            raise ValueError("MotionTracker: gate_m, move_m, lost_after_s must be positive, the others >= 0")
        self.min_width_m = float(min_width_m)
        self.min_wide_frames = int(min_wide_frames)
        self.gate_m = float(gate_m)
        self.max_speed_mps = float(max_speed_mps)
        self.move_m = float(move_m)
        self.lost_after_s = float(lost_after_s)
        self.settle_after_s = float(settle_after_s)
        self.tracks: list[_Track] = []
        self.started_moving: list[_Track] = []  # the tracks that became moving in the last update
        self._next_id = 1

    def update(self, centroids: np.ndarray, t_s: float, wide: np.ndarray | None = None) -> list[_Track]:
        """Match blob centroids ("N 3") seen at ``t_s`` to tracks; returns the track of each blob.

        ``wide`` ("N" bool; None: all) says which blobs may make their track moving.
        """
        c = np.asarray(centroids, np.float64).reshape(-1, 3)
        can_move = np.ones(len(c), bool) if wide is None else np.asarray(wide, bool).reshape(-1)
        self.tracks = [tr for tr in self.tracks if t_s - tr.last_t_s <= self.lost_after_s]
        out: list[_Track | None] = [None] * len(c)
        self.started_moving = []
        if self.tracks and len(c):
            last = np.stack([tr.last_xyz for tr in self.tracks])
            dt = np.array([max(t_s - tr.last_t_s, 0.0) for tr in self.tracks])
            dist = np.linalg.norm(last[:, None, :] - c[None, :, :], axis=2)
            ok = dist <= (self.gate_m + self.max_speed_mps * dt)[:, None]
            used_t: set[int] = set()
            for flat in np.argsort(dist, axis=None):
                i, j = divmod(int(flat), len(c))
                if not ok[i, j] or i in used_t or out[j] is not None:
                    continue
                used_t.add(i)
                tr = self.tracks[i]
                tr.travelled_m = max(tr.travelled_m, float(np.linalg.norm(c[j, :2] - tr.first_xy)))
                tr.wide_hits += int(can_move[j])
                if not tr.moving and tr.travelled_m >= self.move_m and tr.wide_hits >= self.min_wide_frames:
                    tr.moving = True
                    self.started_moving.append(tr)
                tr.last_xyz, tr.last_t_s = c[j].copy(), float(t_s)
                out[j] = tr
        for j in range(len(c)):
            if out[j] is None:
                tr = _Track(
                    self._next_id, float(t_s), float(t_s), c[j, :2].copy(), c[j].copy(), wide_hits=int(can_move[j])
                )
                self._next_id += 1
                self.tracks.append(tr)
                out[j] = tr
        return [tr for tr in out if tr is not None]

    def observe(
        self,
        blob_of_point: np.ndarray,
        points_world: np.ndarray,
        t_s: float,
        widths_m: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Track this frame's blobs from their points.

        Args:
            blob_of_point: "N" blob id (>= 1) of each dynamic point; 0 = in no blob (ignored).
            points_world: "N 3" the points.
            t_s: frame time.
            widths_m: each blob's width indexed by blob id (`blob_widths_m`); None: every
                blob counts as wide.

        Returns:
            ("M" blob ids that were tracked, "M" bool moving per blob, "M" bool settled per blob).
        """
        b = np.asarray(blob_of_point, np.int64)
        pts = np.asarray(points_world, np.float64)
        keep = b > 0
        self.started_moving = []  # of this frame only, blobs or none
        if not keep.any():
            e = np.zeros(0, bool)
            return np.zeros(0, np.int64), e, e
        ids, inv = np.unique(b[keep], return_inverse=True)
        cnt = np.bincount(inv, minlength=len(ids)).astype(np.float64)
        cent = np.stack([np.bincount(inv, weights=pts[keep, k], minlength=len(ids)) / cnt for k in range(3)], axis=1)
        wide = None if widths_m is None else np.asarray(widths_m, np.float64)[ids] >= self.min_width_m
        tracks = self.update(cent, t_s, wide)
        moving = np.array([tr.moving for tr in tracks], bool)
        settled = np.array([not tr.moving and t_s - tr.first_t_s >= self.settle_after_s for tr in tracks], bool)
        return ids, moving, settled


def blob_widths_m(blobs: np.ndarray, n: int, depth_m: np.ndarray, fx: float) -> np.ndarray:
    """The widest disc inside each blob, in metres: "n+1" widths indexed by blob id (0 for none).

    Twice the largest distance (in pixels) from a blob's pixel to the nearest pixel
    outside it (at most half the frame's shorter side), times that pixel's depth over the
    focal length.
    """
    import cv2

    out = np.zeros(n + 1, np.float64)
    inside = blobs > 0
    if n == 0 or not inside.any():
        return out
    dist_px = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
    # no disc wider than the frame fits in it (and a blob that fills the frame has no pixel outside
    # it: OpenCV then gives FLT_MAX)
    dist_px = np.minimum(dist_px, 0.5 * min(inside.shape))
    d = np.asarray(depth_m, np.float64)[inside]
    d = np.where((d > 0) & (d < _MAX_DEPTH_M), d, 0.0)  # no return (0, NaN, a renderer's far value): no width
    width = 2.0 * dist_px[inside] * d / float(fx)
    np.maximum.at(out, blobs[inside], width)
    return out


def grow_over_depth(
    seed: np.ndarray,
    depth_m: np.ndarray,
    allowed: np.ndarray,
    *,
    stride: int = 1,
    jump_m: float = 0.1,
    jump_rel: float = 0.03,
    min_seed_share: float = 0.0,
) -> np.ndarray:
    """Extend a mask over the depth-continuous surface it lies on, within ``allowed`` pixels.

    A moving body contradicts the static map only where the map knew the space
    free; the rest of it (in space not mapped yet) has the same continuous depth.
    The image is cut at depth jumps larger than ``max(jump_m, jump_rel * depth)``
    (the farther pixel of each jump is the cut), and every 4-connected piece of
    ``allowed`` that a seed pixel touches joins the mask. Works on the
    ``stride`` grid (the pixels the depth was sampled at) and returns a full-size mask.

    Args:
        seed: "H W" bool, the mask to grow (kept as it is).
        depth_m: "H W" depth (0 or non-finite = no measurement).
        allowed: "H W" bool, pixels the mask may grow into (read on the stride grid).
        min_seed_share: a piece joins only if seed pixels are at least this share of it.
            A body that stepped into view contradicts the map over a fair part of
            itself; a few contradicting pixels on the rim of a table or a chair (mixed
            depth at an edge, a little pose error on real data) are not a body, and
            must not take in the whole surface they touch.
    """
    import cv2

    h, w = seed.shape
    d = np.asarray(depth_m, np.float32)[::stride, ::stride]
    sd = seed[::stride, ::stride]
    ok = np.isfinite(d) & (d > 0)
    d = np.where(ok, d, np.float32(np.inf))
    tol = np.maximum(np.float32(jump_m), np.float32(jump_rel) * np.where(ok, d, 0))
    cut = ~ok
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            a = d[:-1] if axis == 0 else d[:, :-1]
            b = d[1:] if axis == 0 else d[:, 1:]
            ta = tol[:-1] if axis == 0 else tol[:, :-1]
            tb = tol[1:] if axis == 0 else tol[:, 1:]
            jump = ~(np.abs(a - b) <= np.minimum(ta, tb))
            far_a, far_b = jump & (a > b), jump & ~(a > b)
            if axis == 0:
                cut[:-1] |= far_a
                cut[1:] |= far_b
            else:
                cut[:, :-1] |= far_a
                cut[:, 1:] |= far_b
    region = (np.asarray(allowed, bool)[::stride, ::stride] | sd) & ~cut
    n, lab = cv2.connectedComponents(region.astype(np.uint8), connectivity=4)
    hit = np.unique(lab[sd & region])
    hit = hit[hit > 0]
    if min_seed_share > 0 and len(hit):
        size = np.bincount(lab.ravel(), minlength=n)
        seeded = np.bincount(lab[sd & region], minlength=n)
        hit = hit[seeded[hit] >= min_seed_share * size[hit]]
    grown = sd | (np.isin(lab, hit) if len(hit) else False)
    full = np.repeat(np.repeat(grown, stride, axis=0), stride, axis=1)[:h, :w]
    return np.asarray(seed, bool) | full
