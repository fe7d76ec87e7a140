"""Frontiers: where known free floor meets unknown space.

The octree's navigable band (a slab of heights above the floor, where a robot
body would be) is projected to a 2D grid: a cell is occupied when any voxel of
its column in the band is occupied, free when some voxel is free and none is
occupied, and unknown otherwise. Frontier cells are free cells with an unknown
4-neighbour that are not next to an obstacle (an unseen gap beside a wall is
no way out). They are grouped into regions by 8-connected components
(OpenCV), each with a centre on the frontier and a viewing direction toward
the unknown side. Everything is array work over the grid; no loop over cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BandGrid", "FloorGrid", "Frontier", "floor_band_grid", "detect_frontiers", "UNKNOWN", "FREE", "OCCUPIED"]

UNKNOWN, FREE, OCCUPIED = 0, 1, 2

_NEIGHBOURS_8 = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


@dataclass
class FloorGrid:
    """Top-down grid of the navigable band.

    Attributes:
        states: "H W" int8 of UNKNOWN / FREE / OCCUPIED; row = y, column = x.
        origin_xy: world (x, y) of the lower corner of cell (0, 0).
        cell_size_m: cell edge length.
        floor_z_m: floor height the band was measured from.
    """

    states: np.ndarray
    origin_xy: np.ndarray
    cell_size_m: float
    floor_z_m: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.states.shape

    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """ "N 2" world (x, y) -> "N 2" int64 (row, col) (may lie outside the grid)."""
        p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        c = np.floor((p - self.origin_xy) / self.cell_size_m).astype(np.int64)
        return c[:, ::-1]

    def cell_to_world(self, rc: np.ndarray) -> np.ndarray:
        """ "N 2" (row, col) -> "N 2" world (x, y) of the cell centres."""
        rc = np.asarray(rc, dtype=np.float64).reshape(-1, 2)
        return (rc[:, ::-1] + 0.5) * self.cell_size_m + self.origin_xy

    def state_at(self, xy: np.ndarray) -> np.ndarray:
        """States of the cells holding world points "N 2" (UNKNOWN outside the grid)."""
        rc = self.world_to_cell(xy)
        h, w = self.states.shape
        inside = (rc[:, 0] >= 0) & (rc[:, 0] < h) & (rc[:, 1] >= 0) & (rc[:, 1] < w)
        out = np.full(len(rc), UNKNOWN, dtype=np.int8)
        out[inside] = self.states[rc[inside, 0], rc[inside, 1]]
        return out


@dataclass
class Frontier:
    """One frontier region.

    Attributes:
        id: index in the list `detect_frontiers` returned (largest first).
        center: "3" world point on the frontier (the member cell nearest the
            region's mean), at floor height.
        direction: "3" unit vector (z = 0) from the known toward the unknown side.
        cells: "K 2" world (x, y) of the region's cell centres.
        size: number of cells.
        cell_size_m: grid cell edge length.
    """

    id: int
    center: np.ndarray
    direction: np.ndarray
    cells: np.ndarray
    size: int
    cell_size_m: float

    @property
    def length_m(self) -> float:
        """Approximate extent of the region (cells times cell size)."""
        return self.size * self.cell_size_m


def _check_band(floor_z_m: float, band_m: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(b) for b in band_m)
    if not np.isfinite(floor_z_m):
        raise ValueError(f"floor_z_m must be finite, got {floor_z_m}")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"band_m must be (low, high) heights above the floor with low < high, got {band_m}")
    return floor_z_m + lo, floor_z_m + hi


def floor_band_grid(
    octree,
    *,
    floor_z_m: float = 0.0,
    band_m: tuple[float, float] = (0.1, 1.5),
    level: int = 1,
    margin_cells: int = 2,
) -> FloorGrid:
    """Project the octree's band of heights above the floor to a 2D grid.

    Args:
        octree: an `OccupancyOctree` (``free_centers`` / ``occupied_centers``
            / ``voxel_size_m`` are used).
        floor_z_m: floor height.
        band_m: (low, high) heights above the floor a robot body occupies;
            voxels whose centres lie in it count.
        level: octree level of the cells (cell size = voxel size * 2**level;
            a coarse node is occupied when any child is).
        margin_cells: unknown border around the known cells.

    Returns:
        The grid (empty 1x1 unknown grid when nothing is known in the band).
    """
    z_lo, z_hi = _check_band(floor_z_m, band_m)
    if level < 0 or margin_cells < 0:
        raise ValueError(f"level and margin_cells must be >= 0, got {level} and {margin_cells}")
    cell = float(octree.voxel_size_m) * (1 << int(level))
    box_min = np.array([-1e9, -1e9, z_lo])  # finite: the octree checks its box
    box_max = np.array([1e9, 1e9, z_hi])
    occ = octree.occupied_centers(level, box_min, box_max)[:, :2]
    free = octree.free_centers(level, box_min, box_max)[:, :2]
    known = np.concatenate([occ, free])
    if len(known) == 0:
        return FloorGrid(np.zeros((1, 1), np.int8), np.zeros(2), cell, float(floor_z_m))
    # cell boundaries on the octree's own grid, so that each column maps to one cell
    lo_idx = np.floor(known.min(axis=0) / cell).astype(np.int64) - margin_cells
    hi_idx = np.floor(known.max(axis=0) / cell).astype(np.int64) + margin_cells
    origin = lo_idx * cell
    w, h = (hi_idx - lo_idx + 1).tolist()
    states = np.zeros((h, w), np.int8)
    fc = np.floor(free / cell).astype(np.int64) - lo_idx
    states[fc[:, 1], fc[:, 0]] = FREE
    oc = np.floor(occ / cell).astype(np.int64) - lo_idx
    states[oc[:, 1], oc[:, 0]] = OCCUPIED  # occupied wins over free in a column
    return FloorGrid(states, origin.astype(np.float64), cell, float(floor_z_m))


class BandGrid:
    """`floor_band_grid` kept up to date scan by scan instead of rebuilt from the whole map.

    Per top-down cell it counts the known and the occupied voxels of the band
    (a voxel belongs to the band when the centre of its level-``level`` node
    does, as in `floor_band_grid`). `apply_scan` writes a scan into the octree
    and moves the counts of the voxels that scan touched, so `grid` costs the
    grid's size, not the map's. A change to the octree made elsewhere (a
    felt obstacle, eviction, loading) is noticed by the octree's version and
    answered with one full recount.

    Args:
        voxel_size_m: the octree's voxel edge.
        floor_z_m, band_m, level: as in `floor_band_grid`.
    """

    def __init__(
        self, voxel_size_m: float, *, floor_z_m: float = 0.0, band_m: tuple[float, float] = (0.1, 1.5), level: int = 1
    ) -> None:
        self.z_lo, self.z_hi = _check_band(floor_z_m, band_m)
        if level < 0:
            raise ValueError(f"level must be >= 0, got {level}")
        self.floor_z_m = float(floor_z_m)
        self.band_m = (float(band_m[0]), float(band_m[1]))
        self.level = int(level)
        self.cell_size_m = float(voxel_size_m) * (1 << self.level)
        self._occ = np.zeros((0, 0), np.int32)  # [y, x] counts of occupied band voxels
        self._known = np.zeros((0, 0), np.int32)  # [y, x] counts of known band voxels
        self._lo = np.zeros(2, np.int64)  # cell (x, y) index of element [0, 0]
        self._tree: Any = None  # the octree the counts follow (compared by identity)
        self._version = -1
        self.n_rebuilds = 0
        # band rows of `apply_marks` (cells, occupied and known changes), grown as scans need
        self._scratch = (np.empty((0, 2), np.int64), np.empty(0, np.int32), np.empty(0, np.int32))

    def _columns(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from engram.memory import _octree_kernels as kern

        cols = np.empty((codes.shape[0], 2), np.int64)
        mask = kern.band_columns(codes, self.level, self.cell_size_m, self.z_lo, self.z_hi, cols)
        return mask, cols[mask]

    def _cover(self, cols: np.ndarray) -> None:
        """Grow the count arrays to hold cells ``cols`` "N 2" (x, y), with slack."""
        if cols.shape[0] == 0:
            return
        self._cover_box(cols.min(axis=0), cols.max(axis=0))

    def _cover_box(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Grow the count arrays to hold the cells (x, y) from ``lo`` to ``hi``, with slack."""
        h, w = self._occ.shape
        if self._occ.size and np.all(lo >= self._lo) and np.all(hi < self._lo + np.array([w, h])):
            return
        slack = 16
        new_lo = np.minimum(lo, self._lo) - slack if self._occ.size else lo - slack
        new_hi = np.maximum(hi, self._lo + np.array([w, h]) - 1) + slack if self._occ.size else hi + slack
        nw, nh = (new_hi - new_lo + 1).tolist()
        occ = np.zeros((nh, nw), np.int32)
        known = np.zeros((nh, nw), np.int32)
        if self._occ.size:
            dx, dy = (self._lo - new_lo).tolist()
            occ[dy : dy + h, dx : dx + w] = self._occ
            known[dy : dy + h, dx : dx + w] = self._known
        self._occ, self._known, self._lo = occ, known, new_lo

    def _count(self, cols: np.ndarray, d_occ: np.ndarray, d_known: np.ndarray) -> None:
        changed = (d_occ != 0) | (d_known != 0)  # most voxels a scan touches keep their state
        cols, d_occ, d_known = cols[changed], d_occ[changed], d_known[changed]
        self._cover(cols)
        y = cols[:, 1] - self._lo[1]
        x = cols[:, 0] - self._lo[0]
        np.add.at(self._occ, (y, x), d_occ)
        np.add.at(self._known, (y, x), d_known)

    def rebuild(self, octree) -> None:
        """Recount from every voxel of ``octree``."""
        codes, values = octree._sorted()
        mask, cols = self._columns(codes)
        self._occ = np.zeros((0, 0), np.int32)
        self._known = np.zeros((0, 0), np.int32)
        self._lo = np.zeros(2, np.int64)
        self._count(cols, (values[mask] >= octree._thr).astype(np.int32), np.ones(cols.shape[0], np.int32))
        self._tree, self._version = octree, octree._version
        self.n_rebuilds += 1

    def apply_scan(self, octree, free_codes: np.ndarray, occupied_codes: np.ndarray) -> None:
        """``octree.apply_codes(free_codes, occupied_codes)``, keeping the counts in step."""
        if self._tree is not octree or self._version != octree._version:
            octree.apply_codes(free_codes, occupied_codes)
            self.rebuild(octree)
            return
        from engram.memory import _octree_kernels as kern

        codes, before, deltas = octree._apply_traced(
            np.ascontiguousarray(free_codes, np.int64), np.ascontiguousarray(occupied_codes, np.int64)
        )
        # one pass: the band voxels that became known or crossed the threshold (most keep their state)
        n = codes.shape[0]
        cols = np.empty((n, 2), np.int64)
        d_occ = np.empty(n, np.int32)
        d_known = np.empty(n, np.int32)
        m, box = kern.band_changes(
            codes, before, deltas, octree._lo, octree._hi, octree._thr,
            self.level, self.cell_size_m, self.z_lo, self.z_hi, cols, d_occ, d_known,
        )  # fmt: skip
        if m:
            self._cover_box(box[:2], box[2:])
            kern.add_band_counts(self._occ, self._known, self._lo, cols[:m], d_occ[:m], d_known[:m])
        self._version = octree._version

    def apply_marks(self, octree, marks) -> None:
        """`apply_scan` of a `ScanMarks` scan (`OccupancyOctree.voxel_scan_marks`), in one pass over its grid."""
        if marks.grid is None:
            self.apply_scan(octree, *marks.codes())
            return
        if self._tree is not octree or self._version != octree._version:
            octree.apply_marks(marks)
            self.rebuild(octree)
            return
        from engram.memory import _octree_kernels as kern

        n = marks.max_marked
        if self._scratch[0].shape[0] < n:  # kept between scans: only the rows written are touched
            self._scratch = (np.empty((n, 2), np.int64), np.empty(n, np.int32), np.empty(n, np.int32))
        m, box = octree._apply_marks(marks, (self.level, self.cell_size_m, self.z_lo, self.z_hi), self._scratch)
        if m:
            cols, d_occ, d_known = self._scratch
            self._cover_box(box[:2], box[2:])
            kern.add_band_counts(self._occ, self._known, self._lo, cols[:m], d_occ[:m], d_known[:m])
        self._version = octree._version

    def grid(self, octree, margin_cells: int = 2) -> FloorGrid:
        """The `FloorGrid` `floor_band_grid` would build from ``octree`` now."""
        if self._tree is not octree or self._version != octree._version:
            self.rebuild(octree)
        ys, xs = np.nonzero(self._known > 0)
        if len(xs) == 0:
            return FloorGrid(np.zeros((1, 1), np.int8), np.zeros(2), self.cell_size_m, self.floor_z_m)
        y0, y1 = ys.min() - margin_cells, ys.max() + margin_cells + 1
        x0, x1 = xs.min() - margin_cells, xs.max() + margin_cells + 1
        states = np.zeros((y1 - y0, x1 - x0), np.int8)
        cy0, cx0 = max(y0, 0), max(x0, 0)
        known = self._known[cy0:y1, cx0:x1]
        occ = self._occ[cy0:y1, cx0:x1]
        sub = np.where(occ > 0, OCCUPIED, np.where(known > 0, FREE, UNKNOWN)).astype(np.int8)
        states[cy0 - y0 : cy0 - y0 + sub.shape[0], cx0 - x0 : cx0 - x0 + sub.shape[1]] = sub
        origin = (np.array([x0, y0]) + self._lo) * self.cell_size_m
        return FloorGrid(states, origin.astype(np.float64), self.cell_size_m, self.floor_z_m)


def detect_frontiers(
    octree,
    *,
    floor_z_m: float = 0.0,
    band_m: tuple[float, float] = (0.1, 1.5),
    level: int = 1,
    min_cluster_cells: int = 3,
    obstacle_clearance_cells: int = 1,
    grid: FloorGrid | None = None,
) -> list[Frontier]:
    """Frontier regions of the navigable band, largest first.

    Args:
        octree: an `OccupancyOctree` (ignored when ``grid`` is given).
        floor_z_m, band_m, level: see `floor_band_grid`.
        min_cluster_cells: drop regions with fewer cells (sensor noise).
        obstacle_clearance_cells: frontier cells within this many cells
            (Chebyshev distance) of an occupied cell are dropped.
        grid: a precomputed `FloorGrid` to use instead of the octree.

    Returns:
        The frontiers, ids 0..n-1 in order of decreasing size.
    """
    import cv2

    if min_cluster_cells < 1:
        raise ValueError(f"min_cluster_cells must be >= 1, got {min_cluster_cells}")
    if obstacle_clearance_cells < 0:
        raise ValueError(f"obstacle_clearance_cells must be >= 0, got {obstacle_clearance_cells}")
    g = grid if grid is not None else floor_band_grid(octree, floor_z_m=floor_z_m, band_m=band_m, level=level)
    s = g.states
    h, w = s.shape
    padded = np.pad(s, 1, constant_values=UNKNOWN)
    free = s == FREE
    unknown_nbr = np.zeros_like(free)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        unknown_nbr |= padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] == UNKNOWN
    mask = free & unknown_nbr
    if obstacle_clearance_cells:
        k = 2 * obstacle_clearance_cells + 1
        near_obstacle = cv2.dilate((s == OCCUPIED).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        mask &= ~near_obstacle
    if not mask.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    rows, cols = np.nonzero(mask)
    lab = labels[rows, cols]
    sizes = stats[:, cv2.CC_STAT_AREA]
    keep_label = sizes >= min_cluster_cells
    keep_label[0] = False
    sel = keep_label[lab]
    rows, cols, lab = rows[sel], cols[sel], lab[sel]
    if len(lab) == 0:
        return []

    # direction: sum of the offsets toward unknown 8-neighbours, per region
    nb = padded[1 + rows[:, None] + _NEIGHBOURS_8[:, 0], 1 + cols[:, None] + _NEIGHBOURS_8[:, 1]] == UNKNOWN
    vec_rc = nb.astype(np.float64) @ _NEIGHBOURS_8.astype(np.float64)  # (dr, dc) per cell
    sum_dr = np.bincount(lab, weights=vec_rc[:, 0], minlength=n)
    sum_dc = np.bincount(lab, weights=vec_rc[:, 1], minlength=n)
    count = np.bincount(lab, minlength=n).astype(np.float64)
    mean_r = np.bincount(lab, weights=rows, minlength=n) / np.maximum(count, 1)
    mean_c = np.bincount(lab, weights=cols, minlength=n) / np.maximum(count, 1)
    # centre: the member cell nearest the region mean
    d2 = (rows - mean_r[lab]) ** 2 + (cols - mean_c[lab]) ** 2
    order = np.lexsort((d2, lab))
    first = order[np.r_[True, lab[order][1:] != lab[order][:-1]]]
    centre_of = {int(lab[i]): (rows[i], cols[i]) for i in first}  # one entry per region

    regions = sorted(centre_of, key=lambda L: (-count[L], centre_of[L]))
    by_label = np.argsort(lab, kind="stable")
    starts = np.searchsorted(lab[by_label], regions)
    out: list[Frontier] = []
    for new_id, L in enumerate(regions):  # one step per region
        members = by_label[starts[new_id] : starts[new_id] + int(count[L])]
        rc = np.stack([rows[members], cols[members]], axis=1)
        cr, cc = centre_of[L]
        centre_xy = g.cell_to_world(np.array([[cr, cc]]))[0]
        d = np.array([sum_dc[L], sum_dr[L], 0.0])  # x follows columns, y follows rows
        norm = np.linalg.norm(d)
        direction = d / norm if norm > 0 else np.array([1.0, 0.0, 0.0])
        out.append(
            Frontier(
                id=new_id,
                center=np.array([centre_xy[0], centre_xy[1], g.floor_z_m]),
                direction=direction,
                cells=g.cell_to_world(rc),
                size=int(count[L]),
                cell_size_m=g.cell_size_m,
            )
        )
    return out
