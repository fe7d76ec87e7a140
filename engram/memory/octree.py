"""The static occupancy map: a sparse probabilistic octree with OctoMap's update model.

`OccupancyOctree` keeps a log-odds occupancy value per observed voxel, with
OctoMap's sensor model (Hornung et al. 2013): each scan adds a hit to the
cell of every endpoint and a miss to every cell a ray crosses, each cell
once per scan and occupied winning over free; values are clamped so the map
stays updatable. Keys follow OctoMap's 16-level key space,
``key = floor(p / voxel_size_m) + 2**15``; the public API speaks in signed
*voxel indices* ``floor(p / voxel_size_m)`` (= key - 2**15), like
`engram.perception.geometry.voxel_keys`.

Storage is sparse and keyed by Morton code (x in bit 0, y in bit 1, z in
bit 2 of each triple, OctoMap's child order): the code of the node ``level``
levels above a voxel is ``code >> (3 * level)``, so coarse queries need no
pointer tree. Voxels are kept in 4x4x4 bricks (a hash table from brick code
to a row of 64 float32 values, NaN = unknown), which costs fewer bytes per
voxel than one hash entry per voxel and keeps ray traversal cache-friendly.
Ray casting (Amanatides-Woo DDA, the same traversal as OctoMap's
``computeRayKeys``) and all lookups are numba kernels in `_octree_kernels`,
parallel over rays/points; the thread count is numba's
(`numba.set_num_threads`).

The map saves to engram's own versioned ``.npz`` layout (`save` / `load`,
`to_arrays` / `from_arrays`) and exports to, and imports from, OctoMap's
binary ``.bt`` format (`export_bt` / `from_bt`).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FREE", "OCCUPIED", "UNKNOWN", "OccupancyOctree", "ScanMarks", "ScanStats", "logodds"]

UNKNOWN, FREE, OCCUPIED = 0, 1, 2

DEPTH = 16
_KEY_OFFSET = 1 << 15
_FORMAT_NAME = "engram.OccupancyOctree"
_FORMAT_VERSION = 1
_MAX_SCAN_GRID_CELLS = 1 << 26  # dense per-scan mark grid up to 64 MiB, sparse fallback above
_TABLE_MAX_LOAD = 0.5
_BT_HEADER = "# Octomap OcTree binary file"


def logodds(probability: float) -> float:
    """log(p / (1 - p)), rounded to float32 as OctoMap stores it."""
    return float(np.float32(math.log(probability / (1.0 - probability))))


@dataclass(frozen=True)
class ScanStats:
    """What one `OccupancyOctree.insert_scan` did.

    Attributes:
        n_points: rows of the input.
        n_dropped: points that were skipped: NaN / inf coordinates, or a ray
            end outside the 16-level key space (about +-1638 m at 5 cm).
        n_occupied: distinct voxels updated as occupied (hits).
        n_free: distinct voxels updated as free (misses).
        n_steps: DDA steps taken over all rays (cells entered).
    """

    n_points: int
    n_dropped: int
    n_occupied: int
    n_free: int
    n_steps: int = 0


@dataclass
class ScanMarks:
    """A discretized scan marked but not applied yet (`OccupancyOctree.voxel_scan_marks`).

    Attributes:
        grid: dense byte grid over the scan's key box (1: free, 2: occupied,
            one sentinel byte at the end), or None when the box was too large
            for one (then ``free`` / ``occ`` hold the codes).
        lo: key of the grid's cell (0, 0, 0).
        dims: the grid's cells along x, y, z.
        max_marked: an upper bound on the marked cells.
        free, occ: the codes `OccupancyOctree.voxel_scan` returns, once asked
            for (`codes`).
    """

    grid: np.ndarray | None
    lo: np.ndarray
    dims: np.ndarray
    max_marked: int
    free: np.ndarray | None = None
    occ: np.ndarray | None = None

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(free codes, occupied codes): each voxel once, disjoint, as `OccupancyOctree.voxel_scan` returns them."""
        if self.free is None or self.occ is None:
            assert self.grid is not None
            self.free, self.occ = _kernels().collect_marks(self.grid, self.lo, self.dims)
        return self.free, self.occ


def _kernels():
    # numba compiles on first use; keep `import engram.memory.octree` cheap
    from engram.memory import _octree_kernels

    return _octree_kernels


def _check_points(points: Any, name: str = "points", *, allow_nonfinite: bool = False) -> np.ndarray:
    if not isinstance(points, np.ndarray):
        try:
            points = np.asarray(points)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an (N, 3) numeric array, got {type(points).__name__}") from exc
    if points.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric (float or int) array, got dtype {points.dtype}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {points.shape}")
    p = np.ascontiguousarray(points, dtype=np.float64)
    if not allow_nonfinite and not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or inf")
    return p


def _check_vector3(value: Any, name: str) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be 3 finite numbers, got {value!r}") from exc
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    return v


def _check_keys(keys: Any, name: str) -> np.ndarray:
    k = np.asarray(keys)
    if k.size == 0:
        return np.zeros((0, 3), np.int64)
    if k.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer (N, 3) array of voxel indices, got dtype {k.dtype}")
    if k.ndim != 2 or k.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {k.shape}")
    k = k.astype(np.int64)
    if k.min() < -_KEY_OFFSET or k.max() >= _KEY_OFFSET:
        raise ValueError(f"{name} has voxel indices outside the 16-level key space [-32768, 32767]")
    return k


def _check_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= DEPTH:
        raise ValueError(f"level must be an integer in [0, {DEPTH}], got {level!r}")
    return int(level)


# Two ray walkers mark the same cells: `mark_scan` (four rays in lock step) and `mark_scan_serial`
# (one ray at a time). Which is faster depends on the core, so the first scans of a process time
# both (a few each, the first call of each left out: it may load the compiled code) and the faster
# walks every later scan. ENGRAM_RAY_WALKER=mark_scan|mark_scan_serial fixes the choice.
_WALKERS = ("mark_scan", "mark_scan_serial")
_WALKER_TRIALS = 4
_walker_ns: dict[str, list[float]] = {name: [] for name in _WALKERS}
_walker_choice: str | None = None


def ray_walker() -> str:
    """The ray walker the next scan uses (while still timing both: the one with fewer timings)."""
    global _walker_choice
    if _walker_choice is not None:
        return _walker_choice
    forced = os.environ.get("ENGRAM_RAY_WALKER")
    if forced:
        if forced not in _WALKERS:
            raise ValueError(f"ENGRAM_RAY_WALKER must be one of {', '.join(_WALKERS)}, got {forced!r}")
        _walker_choice = forced
        return forced
    pending = [name for name in _WALKERS if len(_walker_ns[name]) < _WALKER_TRIALS]
    if pending:
        return min(pending, key=lambda name: len(_walker_ns[name]))
    _walker_choice = min(_WALKERS, key=lambda name: float(np.median(_walker_ns[name][1:])))
    return _walker_choice


def _time_walker(name: str, seconds: float, steps: int) -> None:
    if _walker_choice is None and steps >= 10_000:  # small scans time the call, not the walk
        _walker_ns[name].append(seconds / steps)


class OccupancyOctree:
    """Sparse log-odds occupancy voxels with OctoMap's update rule and clamping.

    Args:
        voxel_size_m: edge of a leaf voxel in metres.
        prob_hit: occupancy probability of a voxel holding a ray endpoint.
        prob_miss: occupancy probability of a voxel a ray passes through.
        clamp_min, clamp_max: probability bounds every value is clamped to.
        occupancy_threshold: a voxel is occupied at or above this probability.

    Example:
        >>> tree = OccupancyOctree(0.05)
        >>> stats = tree.insert_scan(points_world, origin=camera_xyz, max_range_m=4.0)
        >>> tree.state(query_points)        # int8 UNKNOWN / FREE / OCCUPIED
    """

    depth: int = DEPTH

    def __init__(
        self,
        voxel_size_m: float = 0.05,
        *,
        prob_hit: float = 0.7,
        prob_miss: float = 0.4,
        clamp_min: float = 0.12,
        clamp_max: float = 0.97,
        occupancy_threshold: float = 0.5,
    ) -> None:
        try:
            res = float(voxel_size_m)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"voxel_size_m must be a positive number, got {voxel_size_m!r}") from exc
        if not math.isfinite(res) or res <= 0.0:
            raise ValueError(f"voxel_size_m must be a positive finite number, got {voxel_size_m!r}")
        probs = {
            "prob_hit": prob_hit,
            "prob_miss": prob_miss,
            "clamp_min": clamp_min,
            "clamp_max": clamp_max,
            "occupancy_threshold": occupancy_threshold,
        }
        for name, p in probs.items():
            if not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 < float(p) < 1.0:
                raise ValueError(f"{name} must be a probability in (0, 1), got {p!r}")
        if not prob_hit > 0.5:
            raise ValueError(f"prob_hit must be above 0.5 (a hit raises occupancy), got {prob_hit}")
        if not prob_miss < 0.5:
            raise ValueError(f"prob_miss must be below 0.5 (a miss lowers occupancy), got {prob_miss}")
        if not clamp_min < clamp_max:
            raise ValueError(f"clamp_min must be below clamp_max, got {clamp_min} >= {clamp_max}")
        self.voxel_size_m = res
        self.prob_hit = float(prob_hit)
        self.prob_miss = float(prob_miss)
        self.clamp_min = float(clamp_min)
        self.clamp_max = float(clamp_max)
        self.occupancy_threshold = float(occupancy_threshold)
        self._inv_res = 1.0 / res  # OctoMap multiplies by 1/res; so do we, for identical keys
        self._hit = np.float32(logodds(self.prob_hit))
        self._miss = np.float32(logodds(self.prob_miss))
        self._lo = np.float32(logodds(self.clamp_min))
        self._hi = np.float32(logodds(self.clamp_max))
        self._thr = np.float32(logodds(self.occupancy_threshold))
        self._clear()

    # storage -----------------------------------------------------------------
    def _clear(self) -> None:
        self._shift = 64 - 10
        self._tkeys = np.full(1 << 10, -1, np.int64)
        self._trows = np.zeros(1 << 10, np.int32)
        self._pool = np.full(256 * 64, np.nan, np.float32)
        self._n_bricks = 0
        self._n_known = 0
        self._version = 0
        self._cache: dict[Any, Any] = {}

    def _grow(self, extra_bricks: int) -> None:
        """Make room for at least ``extra_bricks`` more bricks."""
        k = _kernels()
        need = self._n_bricks + max(1, extra_bricks)
        cap = self._tkeys.shape[0]
        if need > cap * _TABLE_MAX_LOAD:
            new_cap = cap
            while need > new_cap * _TABLE_MAX_LOAD:
                new_cap *= 2
            shift = 64 - int(new_cap).bit_length() + 1
            self._tkeys, self._trows = k.rehash(self._tkeys, self._trows, new_cap, shift)
            self._shift = shift
        rows = self._pool.shape[0] // 64
        if need > rows:
            new_rows = max(need, int(rows * 1.5) + 1)
            pool = np.full(new_rows * 64, np.nan, np.float32)
            pool[: self._pool.shape[0]] = self._pool
            self._pool = pool

    def _max_bricks(self) -> int:
        return min(int(self._tkeys.shape[0] * _TABLE_MAX_LOAD), self._pool.shape[0] // 64)

    def _touch(self) -> None:
        self._version += 1
        self._cache.clear()

    def _add(self, codes: np.ndarray, deltas: np.ndarray, before: np.ndarray | None = None) -> None:
        k = _kernels()
        start, n = 0, codes.shape[0]
        trace = np.zeros(0, np.float32) if before is None else before
        while start < n:
            start, self._n_bricks, n_new = k.add_log_odds(
                self._tkeys, self._trows, self._shift, self._pool, self._n_bricks, self._max_bricks(),
                codes, deltas, start, self._lo, self._hi, trace,
            )  # fmt: skip
            self._n_known += int(n_new)
            if start < n:
                self._grow(max(64, (n - start) // 16))
        self._touch()

    def _set(self, codes: np.ndarray, values: np.ndarray) -> None:
        k = _kernels()
        start, n = 0, codes.shape[0]
        while start < n:
            start, self._n_bricks, delta = k.set_log_odds(
                self._tkeys, self._trows, self._shift, self._pool, self._n_bricks, self._max_bricks(),
                codes, values, start,
            )  # fmt: skip
            self._n_known += int(delta)
            if start < n:
                self._grow(max(64, (n - start) // 16))
        self._touch()

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """All known voxels as (Morton codes ascending, log-odds); cached until the map changes."""
        got = self._cache.get("sorted")
        if got is None:
            codes, values = _kernels().extract_sorted(self._tkeys, self._trows, self._pool, self._n_known)
            if codes.shape[0] != self._n_known:
                raise RuntimeError("octree voxel count is inconsistent with its storage")
            got = self._cache["sorted"] = (codes, values)
        return got

    def _level_table(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Morton codes of the known nodes at ``level`` and their max child log-odds."""
        got = self._cache.get(("level", level))
        if got is None:
            codes, values = self._sorted()
            if level == 0 or codes.shape[0] == 0:
                got = (codes, values)
            else:
                parent = codes >> (3 * level)
                starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
                got = (parent[starts], np.maximum.reduceat(values, starts))
            self._cache[("level", level)] = got
        return got

    def _codes_of_indices(self, indices: np.ndarray) -> np.ndarray:
        return _kernels().encode_keys(indices + _KEY_OFFSET)

    def _indices_of_codes(self, codes: np.ndarray) -> np.ndarray:
        return _kernels().decode_codes(codes) - _KEY_OFFSET

    # scans -----------------------------------------------------------------------
    def _check_origin_range(self, origin: Any, max_range_m: float | None) -> tuple[np.ndarray, float]:
        o = _check_vector3(origin, "origin")
        if np.any(np.abs(np.floor(o * self._inv_res)) >= _KEY_OFFSET):
            raise ValueError(f"origin {o.tolist()} is outside the octree's key space")
        if max_range_m is None:
            return o, -1.0
        try:
            max_r = float(max_range_m)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"max_range_m must be a positive number or None, got {max_range_m!r}") from exc
        if not max_r > 0.0 or math.isnan(max_r):
            raise ValueError(f"max_range_m must be a positive number or None, got {max_range_m!r}")
        return o, (-1.0 if math.isinf(max_r) else max_r)

    def _scan_codes(
        self, points_world: Any, origin: Any, max_range_m: float | None, discretize: bool = False
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Free and occupied Morton codes of a scan, each once, occupied winning; plus dropped and steps."""
        k = _kernels()
        p = _check_points(points_world, "points_world", allow_nonfinite=True)
        o, max_r = self._check_origin_range(origin, max_range_m)
        n = p.shape[0]
        empty = np.zeros(0, np.int64)
        if n == 0:
            return empty, empty, 0, 0
        if discretize:
            codes = k.point_codes(p, self._inv_res)
            hits = k.unique_codes(codes, np.ones(n, np.bool_))
            free, occ, steps = self._target_codes(hits, empty, o, max_r)
            return free, occ, int(np.count_nonzero(codes < 0)), steps
        ends = np.empty((n, 3), np.float64)
        end_keys = np.empty((n, 3), np.int64)
        kinds = np.empty(n, np.int8)
        box = np.empty(6, np.int64)
        k.prepare_scan(p, o, self._inv_res, max_r, ends, end_keys, kinds, box)
        n_dropped = int(np.count_nonzero(kinds < k.KIND_HIT))
        if n_dropped == n:
            return empty, empty, n_dropped, 0
        free, occ, steps = self._mark_rays(o, ends, end_keys, kinds, box)
        return free, occ, n_dropped, steps

    def _target_codes(
        self, hit_codes: np.ndarray, free_end_codes: np.ndarray, origin: np.ndarray, max_r: float
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """A discretized scan: one ray to the centre of each voxel (OctoMap's ``discretize``).

        ``hit_codes`` hold endpoints (occupied); rays to ``free_end_codes``
        free their end voxel as well, unless an endpoint holds it.

        Returns:
            (free codes, occupied codes, DDA steps).
        """
        marks, steps = self._target_marks(hit_codes, free_end_codes, origin, max_r)
        free, occ = marks.codes()
        return free, occ, steps

    def _target_marks(
        self, hit_codes: np.ndarray, free_end_codes: np.ndarray, origin: np.ndarray, max_r: float
    ) -> tuple[ScanMarks, int]:
        """`_target_codes` before its cells are collected: the marks and the DDA steps."""
        k = _kernels()
        codes = np.concatenate([hit_codes, free_end_codes])
        n = codes.shape[0]
        if n == 0:
            return ScanMarks(None, np.zeros(3, np.int64), np.zeros(3, np.int64), 0, codes, codes), 0
        target_kinds = np.full(n, k.KIND_HIT, np.int8)
        target_kinds[hit_codes.shape[0] :] = k.KIND_FREE_END
        ends = np.empty((n, 3), np.float64)
        end_keys = np.empty((n, 3), np.int64)
        kinds = np.empty(n, np.int8)
        box = np.empty(6, np.int64)
        k.prepare_targets(codes, target_kinds, origin, self.voxel_size_m, max_r, ends, end_keys, kinds, box)
        return self._mark_grid(origin, ends, end_keys, kinds, box)

    def _mark_rays(
        self, o: np.ndarray, ends: np.ndarray, end_keys: np.ndarray, kinds: np.ndarray, box: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Free and occupied codes of prepared rays (`prepare_scan` / `prepare_targets` output), and steps."""
        marks, steps = self._mark_grid(o, ends, end_keys, kinds, box)
        free, occ = marks.codes()
        return free, occ, steps

    def _mark_grid(
        self, o: np.ndarray, ends: np.ndarray, end_keys: np.ndarray, kinds: np.ndarray, box: np.ndarray
    ) -> tuple[ScanMarks, int]:
        """`_mark_rays` before its cells are collected: the marks (in a grid where the box allows) and steps."""
        k = _kernels()
        n = kinds.shape[0]
        lo = box[:3] - 1  # one cell of margin around the scan's key box
        dims = box[3:] - lo + 2
        cells = int(np.prod(dims))
        if cells <= _MAX_SCAN_GRID_CELLS:
            grid = np.zeros(cells + 1, np.uint8)  # + a sentinel byte
            n_chunks = max(1, min(n // 256, 256))
            name = ray_walker()
            t0 = time.perf_counter()
            steps = getattr(k, name)(o, ends, end_keys, kinds, lo, dims, self.voxel_size_m, grid, n_chunks)
            _time_walker(name, time.perf_counter() - t0, int(steps))
            # each step marks one cell; the origin's cell and the rays' end cells are marked besides
            return ScanMarks(grid, lo, dims, min(int(steps) + n + 1, cells)), int(steps)
        # a scan spread over a huge box (long-range lidar): collect every ray's cells and sort
        counts = k.count_ray_steps(o, ends, end_keys, kinds, self.voxel_size_m)
        offsets = np.zeros(n, np.int64)
        np.cumsum(counts[:-1], out=offsets[1:])
        ray_codes = np.empty(int(counts.sum()), np.int64)  # origin cell once per ray: dropped by np.unique
        k.fill_ray_codes(o, ends, end_keys, kinds, self.voxel_size_m, offsets, ray_codes)
        hit_keys = end_keys[kinds == k.KIND_HIT]
        occ = np.unique(k.encode_keys(np.ascontiguousarray(hit_keys)))
        free_end_keys = np.ascontiguousarray(end_keys[kinds == k.KIND_FREE_END])
        free = np.unique(np.concatenate([ray_codes, k.encode_keys(free_end_keys)]))
        free = free[~np.isin(free, occ, assume_unique=True)]
        return ScanMarks(None, lo, dims, len(free) + len(occ), free, occ), int(counts.sum())

    def insert_scan(
        self, points_world: Any, origin: Any, max_range_m: float | None = None, *, discretize: bool = False
    ) -> ScanStats:
        """Integrate one scan: endpoints get a hit, cells crossed by a ray a miss.

        Every cell is updated at most once per scan and a cell holding an
        endpoint is only updated as occupied (OctoMap's ``insertPointCloud``).
        A point farther than ``max_range_m`` from ``origin`` frees the cells up
        to max range and marks nothing occupied. NaN / inf points are dropped
        and counted.

        Args:
            points_world: "N 3" ray endpoints in the world frame, metres.
            origin: sensor position in the world frame, metres.
            max_range_m: longest ray to integrate (None or inf: no limit).
            discretize: OctoMap's ``discretize`` option: points are first
                reduced to their voxels and one ray goes to the centre of each
                (max range applies to that centre). Far fewer ray steps for
                dense depth images; the same map as OctoMap run with the option.

        Returns:
            What was updated.

        Raises:
            ValueError: wrong shape or dtype, a non-finite origin, a bad max range.
                The map is unchanged.
        """
        free, occ, n_dropped, steps = self._scan_codes(points_world, origin, max_range_m, discretize)
        n = int(np.shape(points_world)[0])
        self._apply_codes(free, occ)
        return ScanStats(n_points=n, n_dropped=n_dropped, n_occupied=int(occ.shape[0]), n_free=int(free.shape[0]),
                         n_steps=steps)  # fmt: skip

    def scan_keys(
        self, points_world: Any, origin: Any, max_range_m: float | None = None, *, discretize: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The voxels `insert_scan` would update, without applying them.

        Returns:
            (free "F 3", occupied "O 3") int64 voxel indices, each voxel once,
            disjoint (occupied wins). ``apply_keys`` of them equals ``insert_scan``.
        """
        free, occ, _, _ = self._scan_codes(points_world, origin, max_range_m, discretize)
        return self._indices_of_codes(free), self._indices_of_codes(occ)

    def voxel_scan(
        self,
        hit_codes: np.ndarray,
        origin: Any,
        max_range_m: float | None = None,
        *,
        free_end_codes: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A discretized scan from voxel Morton codes (`FrameScan.codes`), without applying it.

        One ray goes from ``origin`` to the centre of each voxel, as OctoMap's
        ``insertPointCloud(..., discretize=true)`` does after reducing the
        points to their voxels; a centre beyond ``max_range_m`` frees up to max
        range only. Rays toward ``free_end_codes`` (moving bodies) free their
        end voxel as well, unless a hit voxel is the same.

        Args:
            hit_codes: "K" distinct int64 Morton codes of endpoint voxels.
            origin: sensor position, metres.
            max_range_m: longest ray (None: no limit).
            free_end_codes: "L" distinct codes of voxels whose rays free them.

        Returns:
            (free codes, occupied codes): each voxel once, disjoint; `apply_codes` applies them.
        """
        return self.voxel_scan_marks(hit_codes, origin, max_range_m, free_end_codes=free_end_codes).codes()

    def voxel_scan_marks(
        self,
        hit_codes: np.ndarray,
        origin: Any,
        max_range_m: float | None = None,
        *,
        free_end_codes: np.ndarray | None = None,
    ) -> ScanMarks:
        """`voxel_scan` with its cells left in the scan's grid: `apply_marks` (or
        `BandGrid.apply_marks`) applies them in one pass, `ScanMarks.codes` lists them.

        Raises:
            ValueError: as `voxel_scan`.
        """
        o, max_r = self._check_origin_range(origin, max_range_m)
        hits = np.ascontiguousarray(hit_codes, np.int64)
        ends = np.zeros(0, np.int64) if free_end_codes is None else np.ascontiguousarray(free_end_codes, np.int64)
        for name, c in (("hit_codes", hits), ("free_end_codes", ends)):
            if c.ndim != 1 or (c.size and (c.min() < 0 or c.max() >= 1 << (3 * DEPTH))):
                raise ValueError(f"{name} must be a vector of Morton codes in the 16-level key space")
        marks, _ = self._target_marks(hits, ends, o, max_r)
        return marks

    def apply_marks(self, marks: ScanMarks) -> None:
        """Apply a `voxel_scan_marks` scan: the map `apply_codes` of its `ScanMarks.codes` gives."""
        self._apply_marks(marks)

    def _apply_marks(
        self, marks: ScanMarks, band: tuple[Any, ...] | None = None, out: tuple[np.ndarray, ...] | None = None
    ) -> tuple[int, np.ndarray]:
        """Apply ``marks``; with ``band`` (level, cell size, z low, z high) note the band voxels whose state
        changed in ``out`` (cols "M 2", d_occ, d_known, M >= ``marks.max_marked``), as `band_changes` does.

        Returns:
            (band rows filled, their cells' box (min x, min y, max x, max y)).
        """
        box = np.empty(4, np.int64)
        box[0] = box[1] = np.iinfo(np.int64).max
        box[2] = box[3] = np.iinfo(np.int64).min
        if marks.grid is None:
            self._apply_codes(*marks.codes())
            return 0, box
        k = _kernels()
        lo, dims = marks.lo, marks.dims
        n_blocks = 1
        for a in range(3):
            n_blocks *= int((lo[a] + dims[a] - 1) >> 2) - int(lo[a] >> 2) + 1
        if band is None:
            level, size, z_lo, z_hi = 0, 1.0, 0.0, 0.0
            cols, d_occ, d_known = np.empty((0, 2), np.int64), np.empty(0, np.int32), np.empty(0, np.int32)
        else:
            level, size, z_lo, z_hi = band
            assert out is not None
            cols, d_occ, d_known = out
        start, n_out = 0, 0
        while True:
            start, self._n_bricks, n_new, n_out = k.apply_marks(
                marks.grid, lo, dims, self._tkeys, self._trows, self._shift, self._pool, self._n_bricks,
                self._max_bricks(), start, self._miss, self._hit, self._lo, self._hi, band is not None, self._thr,
                int(level), float(size), float(z_lo), float(z_hi), cols, d_occ, d_known, n_out, box,
            )  # fmt: skip
            self._n_known += int(n_new)
            if start >= n_blocks:
                break
            self._grow(max(64, min(n_blocks - start, marks.max_marked // 16)))
        self._touch()
        return int(n_out), box

    def scan_codes(
        self, points_world: Any, origin: Any, max_range_m: float | None = None, *, n_free_ends: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """`scan_keys` as Morton codes; the last ``n_free_ends`` rays free their end voxel too
        (rays toward moving bodies), unless another ray ends there.
        """
        k = _kernels()
        p = _check_points(points_world, "points_world", allow_nonfinite=True)
        o, max_r = self._check_origin_range(origin, max_range_m)
        n = p.shape[0]
        if not 0 <= n_free_ends <= n:
            raise ValueError(f"n_free_ends must be in [0, {n}], got {n_free_ends}")
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ends = np.empty((n, 3), np.float64)
        end_keys = np.empty((n, 3), np.int64)
        kinds = np.empty(n, np.int8)
        box = np.empty(6, np.int64)
        k.prepare_scan(p, o, self._inv_res, max_r, ends, end_keys, kinds, box)
        tail = kinds[n - n_free_ends :]
        tail[tail == k.KIND_HIT] = k.KIND_FREE_END
        free, occ, _ = self._mark_rays(o, ends, end_keys, kinds, box)
        return free, occ

    def lookup_codes(self, codes: np.ndarray) -> np.ndarray:
        """Log-odds "N" float32 of voxels given by Morton codes (NaN unknown or negative code)."""
        c = np.ascontiguousarray(codes, np.int64)
        return _kernels().lookup_codes(self._tkeys, self._trows, self._shift, self._pool, c)

    def point_codes(self, points: Any) -> np.ndarray:
        """ "N" int64 Morton codes of the voxels holding ``points`` (-1 for non-finite or out-of-space points)."""
        p = _check_points(points, allow_nonfinite=True)
        return _kernels().point_codes(p, self._inv_res)

    @staticmethod
    def unique_codes(codes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The distinct non-negative codes (where ``mask``), in order of first appearance (no sort)."""
        c = np.ascontiguousarray(codes, np.int64)
        m = np.ones(c.shape[0], np.bool_) if mask is None else np.ascontiguousarray(mask, np.bool_)
        return _kernels().unique_codes(c, m)

    def apply_codes(
        self, free_codes: np.ndarray, occupied_codes: np.ndarray, *, trace: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """`apply_keys` for Morton codes (as `voxel_scan` returns them): one miss / one hit per code.

        With ``trace``, returns (codes, log-odds before, log-odds after) of
        the voxels updated (free codes first; NaN before: was unknown), for
        layers kept up to date from the changes alone.
        """
        return self._apply_codes(
            np.ascontiguousarray(free_codes, np.int64), np.ascontiguousarray(occupied_codes, np.int64), trace
        )

    def _apply_codes(self, free: np.ndarray, occ: np.ndarray, trace: bool = False):
        if not trace:
            self._apply_traced(free, occ, trace=False)
            return None
        codes, before, deltas = self._apply_traced(free, occ)
        after = np.clip(np.where(np.isnan(before), np.float32(0.0), before) + deltas, self._lo, self._hi)
        return codes, before, after

    def _apply_traced(
        self, free: np.ndarray, occ: np.ndarray, trace: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One miss per free code, one hit per occupied code: (codes, log-odds before (NaN: unknown), deltas)."""
        codes = np.concatenate([free, occ])
        deltas = np.empty(codes.shape[0], np.float32)
        deltas[: free.shape[0]] = self._miss
        deltas[free.shape[0] :] = self._hit
        before = np.empty(codes.shape[0] if trace else 0, np.float32)
        self._add(codes, deltas, before if trace else None)
        return codes, before, deltas

    def apply_keys(self, free_keys: Any, occupied_keys: Any) -> None:
        """One miss update per row of ``free_keys``, one hit update per row of ``occupied_keys``.

        Args:
            free_keys: "F 3" integer voxel indices (as from `scan_keys`).
            occupied_keys: "O 3" integer voxel indices.
        """
        f = _check_keys(free_keys, "free_keys")
        o = _check_keys(occupied_keys, "occupied_keys")
        self._apply_codes(self._codes_of_indices(f), self._codes_of_indices(o))

    def update_points(self, points: Any, delta_log_odds: float | np.ndarray) -> None:
        """Add a log-odds delta (then clamp) to the voxel holding each point.

        Args:
            points: "N 3" finite points, metres; a voxel holding several points
                gets several updates.
            delta_log_odds: one value, or "N" values.
        """
        p = _check_points(points)
        d = np.asarray(delta_log_odds, dtype=np.float32)
        if d.ndim == 0:
            d = np.full(p.shape[0], d, np.float32)
        if d.shape != (p.shape[0],):
            raise ValueError(f"delta_log_odds must be a scalar or shape ({p.shape[0]},), got {d.shape}")
        if not np.all(np.isfinite(d)):
            raise ValueError("delta_log_odds contains NaN or inf")
        codes = self._point_codes(p)
        self._add(codes, d)

    def remove_points(self, points: Any) -> None:
        """Forget the voxels holding ``points`` (they become unknown)."""
        p = _check_points(points)
        codes = self._point_codes(p)
        self._set(codes, np.full(codes.shape[0], np.nan, np.float32))

    def _point_codes(self, p: np.ndarray) -> np.ndarray:
        codes = _kernels().point_codes(p, self._inv_res)
        if codes.size and codes.min() < 0:
            raise ValueError("points lie outside the octree's key space")
        return codes

    # queries ---------------------------------------------------------------------
    def voxel_indices(self, points: Any) -> np.ndarray:
        """The octree's voxel index of each point (floor(p * (1 / voxel_size_m)), OctoMap's rounding)."""
        p = _check_points(points)
        return np.floor(p * self._inv_res).astype(np.int64)

    def log_odds(self, points: Any, level: int = 0) -> np.ndarray:
        """Log-odds occupancy at ``points``: float32 "N", NaN where unknown.

        At ``level`` > 0 the value is that of the node ``level`` levels above
        the voxel: the max over its known children (OctoMap's inner nodes).
        """
        p = _check_points(points, allow_nonfinite=True)
        level = _check_level(level)
        k = _kernels()
        if level == 0:
            return k.lookup_points(self._tkeys, self._trows, self._shift, self._pool, p, self._inv_res)
        codes = k.point_codes(p, self._inv_res)
        children = 1 << (3 * level)
        if ("level", level) not in self._cache and p.shape[0] * children <= self._n_known:
            # few queries on a map changed since the last table: read each node's children from the
            # hash (the same max over its known voxels) instead of sorting the whole map again
            valid = codes >= 0
            kids = ((codes[valid] >> (3 * level)) << (3 * level))[:, None] + np.arange(children, dtype=np.int64)
            vals = k.lookup_codes(self._tkeys, self._trows, self._shift, self._pool, kids.reshape(-1))
            vals = vals.reshape(-1, children)
            out = np.full(p.shape[0], np.nan, np.float32)
            known = ~np.isnan(vals)
            node_max = np.where(known, vals, -np.inf).max(axis=1)
            some = known.any(axis=1)  # a node with no known child stays unknown
            out[np.flatnonzero(valid)[some]] = node_max[some]
            return out
        node_codes, node_values = self._level_table(level)
        out = np.full(p.shape[0], np.nan, np.float32)
        if node_codes.shape[0] == 0:
            return out
        q = np.where(codes >= 0, codes >> (3 * level), -1)
        i = np.minimum(np.searchsorted(node_codes, q), node_codes.shape[0] - 1)
        found = (codes >= 0) & (node_codes[i] == q)
        out[found] = node_values[i[found]]
        return out

    def _state_of(self, values: np.ndarray) -> np.ndarray:
        out = np.full(values.shape[0], UNKNOWN, np.int8)
        with np.errstate(invalid="ignore"):
            out[values >= self._thr] = OCCUPIED
            out[values < self._thr] = FREE
        return out

    def state(self, points: Any, level: int = 0) -> np.ndarray:
        """int8 "N" of UNKNOWN / FREE / OCCUPIED at ``points`` (see `log_odds` for ``level``)."""
        return self._state_of(self.log_odds(points, level))

    def cast_ray(
        self,
        origins: Any,
        directions: Any,
        max_range_m: float | np.ndarray | None,
        *,
        ignore_unknown: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """First occupied voxel along each ray (OctoMap's ``castRay``, batched).

        The voxel holding the origin counts. A ray gives up when the next
        voxel's centre is farther than ``max_range_m``, or, with
        ``ignore_unknown`` False, at the first unknown voxel.

        Args:
            origins: "N 3" (or one "3") ray origins, metres.
            directions: "N 3" (or one "3") non-zero directions (any length).
            max_range_m: scalar or "N"; None: until the ray leaves the map's bounds.
            ignore_unknown: walk through unknown voxels as if free.

        Returns:
            (hit "N" bool, hit_points "N 3" voxel centres, NaN where no hit).
        """
        o = np.atleast_2d(_check_points(np.atleast_2d(np.asarray(origins)), "origins"))
        d = np.atleast_2d(_check_points(np.atleast_2d(np.asarray(directions)), "directions"))
        n = max(o.shape[0], d.shape[0])
        if o.shape[0] not in (1, n) or d.shape[0] not in (1, n):
            raise ValueError(f"origins {o.shape} and directions {d.shape} must have the same number of rows")
        o = np.ascontiguousarray(np.broadcast_to(o, (n, 3)))
        d = np.ascontiguousarray(np.broadcast_to(d, (n, 3)))
        norms = np.linalg.norm(d, axis=1)
        if np.any(norms == 0.0):
            raise ValueError("directions must be non-zero")
        if max_range_m is None:
            b = self.bounds()
            if b is None:
                r = np.zeros(n)
            else:
                corners = np.array([[b[i >> j & 1][j] for j in range(3)] for i in range(8)])
                r = np.linalg.norm(o[:, None, :] - corners[None], axis=2).max(axis=1) + self.voxel_size_m
        else:
            r = np.asarray(max_range_m, dtype=np.float64)
            if r.ndim == 0:
                r = np.full(n, float(r))
            if r.shape != (n,):
                raise ValueError(f"max_range_m must be a scalar or shape ({n},), got {r.shape}")
            if np.any(np.isnan(r)) or np.any(r < 0):
                raise ValueError("max_range_m must be non-negative")
        hit = np.zeros(n, np.bool_)
        points = np.empty((n, 3), np.float64)
        if n == 0:
            return hit, points
        _kernels().cast_rays(
            self._tkeys, self._trows, self._shift, self._pool, o, d, np.ascontiguousarray(r, np.float64),
            self.voxel_size_m, self._thr, bool(ignore_unknown), hit, points,
        )  # fmt: skip
        return hit, points

    def _centers(self, wanted: int, level: int, box_min: Any, box_max: Any) -> np.ndarray:
        level = _check_level(level)
        codes, values = self._level_table(level)
        sel = self._state_of(values) == wanted
        node = _kernels().decode_codes(codes[sel])
        size = self.voxel_size_m * (1 << level)
        centers = (node.astype(np.float64) - (_KEY_OFFSET >> level) + 0.5) * size
        if box_min is not None or box_max is not None:
            lo = _check_vector3(box_min, "box_min") if box_min is not None else np.full(3, -np.inf)
            hi = _check_vector3(box_max, "box_max") if box_max is not None else np.full(3, np.inf)
            inside = np.all((centers >= lo) & (centers <= hi), axis=1)
            centers = centers[inside]
        return centers

    def occupied_centers(self, level: int = 0, box_min: Any = None, box_max: Any = None) -> np.ndarray:
        """Centres "M 3" of occupied nodes at ``level`` (metres), optionally with centres inside a box."""
        return self._centers(OCCUPIED, level, box_min, box_max)

    def free_centers(self, level: int = 0, box_min: Any = None, box_max: Any = None) -> np.ndarray:
        """Centres "M 3" of free nodes at ``level`` (metres), optionally with centres inside a box."""
        return self._centers(FREE, level, box_min, box_max)

    def keys(self) -> np.ndarray:
        """Voxel indices "M 3" int64 of every known voxel, in Morton order."""
        return self._indices_of_codes(self._sorted()[0])

    def values(self) -> np.ndarray:
        """Log-odds "M" float32 of every known voxel, in the order of `keys`."""
        return self._sorted()[1].copy()

    def __len__(self) -> int:
        return self._n_known

    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(min corner, max corner) in metres of the known voxels, or None when empty."""
        if self._n_known == 0:
            return None
        idx = self.keys()
        return idx.min(axis=0) * self.voxel_size_m, (idx.max(axis=0) + 1) * self.voxel_size_m

    @property
    def nbytes(self) -> int:
        """Bytes held by the voxel storage (hash table and brick pool)."""
        return int(self._tkeys.nbytes + self._trows.nbytes + self._pool.nbytes)

    def __repr__(self) -> str:
        return f"OccupancyOctree(voxel_size_m={self.voxel_size_m}, voxels={self._n_known})"

    # copies, persistence ----------------------------------------------------------
    def _params(self) -> dict[str, float]:
        return {
            "prob_hit": self.prob_hit,
            "prob_miss": self.prob_miss,
            "clamp_min": self.clamp_min,
            "clamp_max": self.clamp_max,
            "occupancy_threshold": self.occupancy_threshold,
        }

    def copy(self) -> OccupancyOctree:
        """An independent copy."""
        other = OccupancyOctree(self.voxel_size_m, **self._params())
        other._shift = self._shift
        other._tkeys = self._tkeys.copy()
        other._trows = self._trows.copy()
        other._pool = self._pool.copy()
        other._n_bricks = self._n_bricks
        other._n_known = self._n_known
        return other

    def digest(self) -> str:
        """SHA-256 of the parameters and every (voxel, log-odds); independent of insertion order."""
        codes, values = self._sorted()
        h = hashlib.sha256()
        h.update(np.array([self.voxel_size_m, *self._params().values()], np.float64).tobytes())
        h.update(np.ascontiguousarray(codes, "<i8").tobytes())
        h.update(np.ascontiguousarray(values, "<f4").tobytes())
        return h.hexdigest()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The map as plain arrays (engram's versioned layout), for `from_arrays` and stores."""
        codes, values = self._sorted()
        params = self._params()
        return {
            "format": np.array(_FORMAT_NAME),
            "format_version": np.array(_FORMAT_VERSION, np.int64),
            "voxel_size_m": np.array(self.voxel_size_m, np.float64),
            "params": np.array([params[k] for k in sorted(params)], np.float64),
            "param_names": np.array(sorted(params)),
            "morton_codes": codes.copy(),
            "log_odds": values.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> OccupancyOctree:
        """Rebuild a map from `to_arrays` output.

        Raises:
            ValueError: missing fields, another format, a newer version, bad values.
        """
        try:
            fmt = str(np.asarray(arrays["format"]))
            version = int(np.asarray(arrays["format_version"]))
            res = float(np.asarray(arrays["voxel_size_m"]))
            names = [str(x) for x in np.asarray(arrays["param_names"]).reshape(-1)]
            params = np.asarray(arrays["params"], np.float64).reshape(-1)
            codes = np.asarray(arrays["morton_codes"])
            values = np.asarray(arrays["log_odds"])
        except KeyError as exc:
            raise ValueError(f"octree arrays lack the field {exc.args[0]!r}") from exc
        if fmt != _FORMAT_NAME:
            raise ValueError(f"not an engram octree: format {fmt!r}")
        if version > _FORMAT_VERSION:
            raise ValueError(f"octree format version {version} is newer than this engram reads ({_FORMAT_VERSION})")
        expected = {"prob_hit", "prob_miss", "clamp_min", "clamp_max", "occupancy_threshold"}
        if len(names) != len(params) or set(names) != expected:
            raise ValueError(f"octree param_names must be {sorted(expected)}, got {names}")
        tree = cls(res, **dict(zip(names, params.tolist())))
        if codes.ndim != 1 or values.shape != codes.shape:
            raise ValueError(f"morton_codes {codes.shape} and log_odds {values.shape} must be equal-length vectors")
        if codes.dtype.kind not in "iu" or values.dtype.kind != "f":
            raise ValueError("morton_codes must be integers and log_odds floats")
        codes = codes.astype(np.int64)
        values = values.astype(np.float32)
        if codes.size:
            if codes.min() < 0 or codes.max() >= 1 << (3 * DEPTH):
                raise ValueError("morton_codes outside the 16-level key space")
            if np.any(np.diff(codes) <= 0):
                raise ValueError("morton_codes must be strictly increasing")
            if not np.all(np.isfinite(values)):
                raise ValueError("log_odds must be finite")
            tree._set(codes, values)
        return tree

    def save(self, path: str | os.PathLike) -> None:
        """Write the map to ``path`` (an uncompressed ``.npz``, engram's versioned layout)."""
        with open(path, "wb") as f:
            np.savez(f, **self.to_arrays())  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle

    @classmethod
    def load(cls, path: str | os.PathLike) -> OccupancyOctree:
        """Read a map written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays({k: data[k] for k in data.files})

    # OctoMap binary ---------------------------------------------------------------
    def _bt_nodes(self) -> tuple[np.ndarray, int]:
        """The maximum-likelihood tree, pruned, as OctoMap writes it: (node bytes, node count)."""
        codes, values = self._sorted()
        if codes.shape[0] == 0:
            return np.zeros(0, np.uint8), 0
        # leaves: (code at own level, state 1 free / 2 occupied); prune 8 equal leaf siblings
        leaf_codes = codes
        leaf_state = np.where(values >= self._thr, 2, 1).astype(np.int64)
        all_leaf_codes, all_leaf_levels, all_leaf_state = [], [], []
        inner_by_level: list[np.ndarray] = []  # inner node codes per level 1..16
        for level in range(1, DEPTH + 1):
            if leaf_codes.shape[0] == 0:
                inner_by_level.append(leaf_codes)
                continue
            parent = leaf_codes >> 3
            starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
            counts = np.diff(np.r_[starts, parent.shape[0]])
            same = np.minimum.reduceat(leaf_state, starts) == np.maximum.reduceat(leaf_state, starts)
            collapsible = (counts == 8) & same
            member_collapsed = np.repeat(collapsible, counts)
            keep = ~member_collapsed
            all_leaf_codes.append(leaf_codes[keep])
            all_leaf_levels.append(np.full(int(keep.sum()), level - 1, np.int64))
            all_leaf_state.append(leaf_state[keep])
            # parents with a non-collapsed child are inner nodes at this level; collapsed parents
            # become leaves one level up
            inner = parent[starts[~collapsible]]
            inner_by_level.append(inner)
            leaf_codes = parent[starts[collapsible]]
            leaf_state = leaf_state[starts[collapsible]]
            if level == DEPTH and leaf_codes.shape[0]:
                # the whole key space is one uniform leaf: OctoMap keeps a root with 8 leaf children
                inner_by_level[-1] = np.zeros(1, np.int64)
                all_leaf_codes.append(np.arange(8, dtype=np.int64))
                all_leaf_levels.append(np.full(8, DEPTH - 1, np.int64))
                all_leaf_state.append(np.full(8, leaf_state[0], np.int64))
        # inner nodes: a parent can appear from several child groups at different levels; merge
        inner_codes: list[np.ndarray] = []
        inner_levels: list[np.ndarray] = []
        carry = np.zeros(0, np.int64)
        for level in range(1, DEPTH + 1):
            here = np.union1d(inner_by_level[level - 1], carry)
            inner_codes.append(here)
            inner_levels.append(np.full(here.shape[0], level, np.int64))
            carry = np.unique(here >> 3)
        ic = np.concatenate(inner_codes)
        il = np.concatenate(inner_levels)
        # every node except the root has a parent; 2-bit child codes go into the parent's mask
        lc = np.concatenate(all_leaf_codes)
        ll = np.concatenate(all_leaf_levels)
        ls = np.concatenate(all_leaf_state)
        child_codes = np.concatenate([lc, ic[il < DEPTH]])
        child_levels = np.concatenate([ll, il[il < DEPTH]])
        child_bits = np.concatenate([ls, np.full(int((il < DEPTH).sum()), 3, np.int64)])
        # pre-order: by the Morton code of the node's first voxel, a node before its descendants
        combined = (ic << (3 * il)) * (DEPTH + 1) + (DEPTH - il)
        order = np.argsort(combined)
        ic, il, combined = ic[order], il[order], combined[order]
        parent_level = child_levels + 1
        wanted = ((child_codes >> 3) << (3 * parent_level)) * (DEPTH + 1) + (DEPTH - parent_level)
        pos = np.searchsorted(combined, wanted)
        if np.any(combined[np.minimum(pos, combined.shape[0] - 1)] != wanted):
            raise RuntimeError("octree export: a node's parent is missing")
        masks = np.zeros(ic.shape[0], np.int64)
        np.add.at(masks, pos, child_bits << (2 * (child_codes & 7)))
        data = np.empty(2 * ic.shape[0], np.uint8)
        data[0::2] = masks & 0xFF
        data[1::2] = masks >> 8
        n_nodes = int(ic.shape[0] + lc.shape[0])
        return data, n_nodes

    def export_bt(self, path: str | os.PathLike) -> None:
        """Write the map as an OctoMap binary tree (``.bt``), readable by OctoMap tools and pyoctomap.

        Like OctoMap's ``writeBinary`` this stores the maximum-likelihood map
        (occupied / free per voxel) with equal siblings pruned.
        """
        data, n_nodes = self._bt_nodes()
        header = (
            f"{_BT_HEADER}\n# (feel free to add / change comments, but leave the first line as it is!)\n#\n"
            f"id OcTree\nsize {n_nodes}\nres {self.voxel_size_m!r}\ndata\n"
        )
        with open(path, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(data.tobytes())

    @classmethod
    def from_bt(cls, path: str | os.PathLike, **params: float) -> OccupancyOctree:
        """Read an OctoMap binary tree (``.bt``).

        Occupied leaves get the clamp_max log-odds and free leaves clamp_min,
        as in OctoMap's ``readBinary``; pruned leaves are expanded to voxels.

        Args:
            path: the ``.bt`` file.
            **params: sensor-model parameters for the new map (see the constructor).
        """
        raw = Path(path).read_bytes()
        if not raw.startswith(_BT_HEADER.encode()):
            raise ValueError(f"{path}: not an OctoMap binary file (first line must start with {_BT_HEADER!r})")
        fields: dict[str, str] = {}
        pos = raw.index(b"\n") + 1
        while True:
            end = raw.find(b"\n", pos)
            if end < 0:
                raise ValueError(f"{path}: header has no 'data' line")
            line = raw[pos:end].decode("ascii", "replace").strip()
            pos = end + 1
            if line == "data":
                break
            if line and not line.startswith("#"):
                key, _, value = line.partition(" ")
                fields[key] = value.strip()
        if fields.get("id") != "OcTree":
            raise ValueError(f"{path}: tree type {fields.get('id')!r} is not OcTree")
        try:
            res = float(fields["res"])
            size = int(fields.get("size", "0"))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: header needs numeric 'res' and 'size'") from exc
        tree = cls(res, **params)
        if size == 0:
            return tree
        k = _kernels()
        codes, levels, occ, used = k.read_bt_nodes(np.frombuffer(raw, np.uint8, offset=pos), size)
        if used < 0:
            raise ValueError(f"{path}: truncated or malformed node data")
        values = np.where(occ, tree._hi, tree._lo).astype(np.float32)
        full = codes << (3 * levels)
        order = np.argsort(full)
        vc, vv = k.expand_leaves(codes[order], levels[order], values[order])
        tree._set(vc, vv)
        return tree
