"""Ground truth of an embedded apartment, for metrics: free space, rooms, paths, object poses.

Everything here is computed from the `ApartmentSpec` (pure data) and the
scripted-dynamics pose log, never from rendered images, so it is exact up to
the 5 cm grid. The free-space grid is indexed ``[row, col] = [iy, ix]``; cell
``(iy, ix)`` covers ``x in [ox + ix * res, ox + (ix + 1) * res)`` and likewise
for y, where ``(ox, oy)`` is ``origin_xy_m``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engram.sims.embedded.spec import (
    ApartmentSpec,
    Box2D,
    Door,
    ObjectSpec,
    Room,
    Wall,
)

__all__ = ["FreeSpaceMap", "GroundTruth", "ObjectPose", "rasterize_obstacles", "reachable_check"]

SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class FreeSpaceMap:
    """A top-down boolean grid with its placement in the world.

    Attributes:
        free: "H W" bool, True where the floor is free of walls, furniture and
            objects (rows are y, columns are x).
        origin_xy_m: world (x, y) of the grid's lower-left corner (cell (0, 0)'s corner).
        resolution_m: cell size.
    """

    free: np.ndarray
    origin_xy_m: tuple[float, float]
    resolution_m: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.free.shape  # type: ignore[return-value]

    def world_to_cell(self, xy: np.ndarray | Sequence[float]) -> np.ndarray:
        """(x, y) points, "N 2" or "2", to integer (iy, ix) cells (not clipped)."""
        p = np.asarray(xy, dtype=np.float64)
        ix = np.floor((p[..., 0] - self.origin_xy_m[0]) / self.resolution_m).astype(np.int64)
        iy = np.floor((p[..., 1] - self.origin_xy_m[1]) / self.resolution_m).astype(np.int64)
        return np.stack([iy, ix], axis=-1)

    def cell_to_world(self, cells: np.ndarray | Sequence[int]) -> np.ndarray:
        """(iy, ix) cells to the (x, y) of their centres."""
        c = np.asarray(cells, dtype=np.float64)
        x = self.origin_xy_m[0] + (c[..., 1] + 0.5) * self.resolution_m
        y = self.origin_xy_m[1] + (c[..., 0] + 0.5) * self.resolution_m
        return np.stack([x, y], axis=-1)

    def in_bounds(self, cells: np.ndarray) -> np.ndarray:
        c = np.asarray(cells)
        return (c[..., 0] >= 0) & (c[..., 0] < self.free.shape[0]) & (c[..., 1] >= 0) & (c[..., 1] < self.free.shape[1])


@dataclass(frozen=True)
class ObjectPose:
    """Where an object is at a time."""

    instance_id: int
    label: str
    position_m: tuple[float, float, float]
    yaw_rad: float


def _grid_geometry(bounds: Box2D, resolution_m: float, margin_m: float = 0.25) -> tuple[tuple[float, float], int, int]:
    ox, oy = bounds.x_min - margin_m, bounds.y_min - margin_m
    nx = int(math.ceil((bounds.x_max + margin_m - ox) / resolution_m))
    ny = int(math.ceil((bounds.y_max + margin_m - oy) / resolution_m))
    return (ox, oy), ny, nx


def _fill_polygons(grid: np.ndarray, polygons: Iterable[np.ndarray], origin: tuple[float, float], res: float) -> None:
    import cv2

    shift = 4
    scale = float(1 << shift)
    for poly in polygons:
        # cv2 pixel (col, row) centres sit at integer coordinates; ours at (i + 0.5) * res.
        pts = (np.asarray(poly) - np.asarray(origin)) / res - 0.5
        cv2.fillConvexPoly(grid, np.round(pts * scale).astype(np.int32), 1, lineType=cv2.LINE_8, shift=shift)


def _box_poly(b: Box2D) -> np.ndarray:
    return np.array([[b.x_min, b.y_min], [b.x_max, b.y_min], [b.x_max, b.y_max], [b.x_min, b.y_max]])


def rasterize_obstacles(
    bounds: Box2D,
    walls: Sequence[Wall],
    objects: Sequence[ObjectSpec],
    resolution_m: float = 0.05,
    *,
    max_height_m: float = 1.8,
) -> FreeSpaceMap:
    """Free floor: inside the apartment and not under a wall or an object lower than ``max_height_m``."""
    if not resolution_m > 0:
        raise ValueError(f"resolution_m must be positive, got {resolution_m}")
    origin, ny, nx = _grid_geometry(bounds, resolution_m)
    occupied = np.zeros((ny, nx), np.uint8)
    polys = [_box_poly(w.box2d()) for w in walls if w.center_m[2] - w.half_extents_m[2] < max_height_m]
    polys += [o.footprint() for o in objects if o.position_m[2] - o.half_extents_m[2] < max_height_m]
    _fill_polygons(occupied, polys, origin, resolution_m)
    inside = np.zeros((ny, nx), np.uint8)
    _fill_polygons(inside, [_box_poly(bounds)], origin, resolution_m)
    free = (inside > 0) & (occupied == 0)
    return FreeSpaceMap(free=free, origin_xy_m=origin, resolution_m=resolution_m)


def _clearance_mask(fsm: FreeSpaceMap, radius_m: float) -> np.ndarray:
    import cv2

    # Distance from each free cell centre to the nearest occupied cell centre.
    dist_cells = cv2.distanceTransform(fsm.free.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # The obstacle's edge is half a cell closer than its centre.
    return fsm.free & ((dist_cells - 0.5) * fsm.resolution_m >= radius_m)


def _component(mask: np.ndarray, seed_cell: tuple[int, int]) -> np.ndarray:
    import cv2

    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    lab = labels[seed_cell]
    if lab == 0:
        return np.zeros_like(mask)
    return labels == lab


def reachable_check(
    bounds: Box2D,
    rooms: Sequence[Room],
    walls: Sequence[Wall],
    objects: Sequence[ObjectSpec],
    doors: Sequence[Door],
    agent_radius_m: float = 0.25,
) -> tuple[float, float] | None:
    """A free start (x, y) in the first room from which every room and door is reachable, else None."""
    fsm = rasterize_obstacles(bounds, walls, objects)
    clear = _clearance_mask(fsm, agent_radius_m)
    import cv2

    _, labels = cv2.connectedComponents(clear.astype(np.uint8), connectivity=8)
    comp_of_room = []
    for r in rooms:
        cells = _cells_in_box(fsm, r.box)
        labs = labels[cells[:, 0], cells[:, 1]]
        labs = labs[labs > 0]
        if len(labs) == 0:
            return None
        comp_of_room.append(np.bincount(labs).argmax())
    if len(set(comp_of_room)) != 1:
        return None
    comp = comp_of_room[0]
    for d in doors:
        c = fsm.world_to_cell(d.center_m)
        if labels[c[0], c[1]] != comp:
            return None
    # Start: the reachable cell of the living room (first room named so, else the first) closest to its centre.
    living = next((r for r in rooms if r.name == "living room"), rooms[0])
    cells = _cells_in_box(fsm, living.box)
    ok = labels[cells[:, 0], cells[:, 1]] == comp
    # Prefer cells with extra clearance so an agent can turn on the spot.
    wide = _clearance_mask(fsm, agent_radius_m + 0.2)[cells[:, 0], cells[:, 1]] & ok
    cand = cells[wide] if wide.any() else cells[ok]
    xy = fsm.cell_to_world(cand)
    k = int(np.argmin(np.linalg.norm(xy - np.asarray(living.box.center), axis=1)))
    return (round(float(xy[k, 0]), 3), round(float(xy[k, 1]), 3))


def _cells_in_box(fsm: FreeSpaceMap, box: Box2D) -> np.ndarray:
    lo = fsm.world_to_cell((box.x_min, box.y_min))
    hi = fsm.world_to_cell((box.x_max, box.y_max))
    iy, ix = np.mgrid[
        max(lo[0], 0) : min(hi[0] + 1, fsm.free.shape[0]), max(lo[1], 0) : min(hi[1] + 1, fsm.free.shape[1])
    ]
    cells = np.stack([iy.ravel(), ix.ravel()], axis=1)
    centres = fsm.cell_to_world(cells)
    inside = (
        (centres[:, 0] >= box.x_min)
        & (centres[:, 0] <= box.x_max)
        & (centres[:, 1] >= box.y_min)
        & (centres[:, 1] <= box.y_max)
    )
    return cells[inside]


def _dijkstra(passable: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Octile (8-connected) geodesic distance in cells from ``source``; inf where unreachable."""
    try:
        from engram.sims.embedded._grid import dijkstra_numba
    except ImportError:  # pragma: no cover - numba is a core dependency
        dijkstra_numba = None
    if dijkstra_numba is not None:
        return dijkstra_numba(passable.astype(np.bool_), int(source[0]), int(source[1]))
    h, w = passable.shape  # pragma: no cover
    dist = np.full((h, w), np.inf)
    dist[source] = 0.0
    heap = [(0.0, source[0], source[1])]
    steps = [
        (-1, 0, 1.0),
        (1, 0, 1.0),
        (0, -1, 1.0),
        (0, 1, 1.0),
        (-1, -1, SQRT2),
        (-1, 1, SQRT2),
        (1, -1, SQRT2),
        (1, 1, SQRT2),
    ]
    while heap:
        d, i, j = heapq.heappop(heap)
        if d > dist[i, j]:
            continue
        for di, dj, c in steps:
            a, b = i + di, j + dj
            if 0 <= a < h and 0 <= b < w and passable[a, b] and d + c < dist[a, b]:
                if di and dj and not (passable[i + di, j] and passable[i, j + dj]):
                    continue
                dist[a, b] = d + c
                heapq.heappush(heap, (d + c, a, b))
    return dist


class GroundTruth:
    """Ground truth of one apartment (and its scripted dynamics) for metrics.

    Args:
        spec: the apartment.
        agent_radius_m: radius of the agent's footprint, for reachability and paths.
        resolution_m: free-space grid cell size.
    """

    def __init__(self, spec: ApartmentSpec, agent_radius_m: float = 0.2, resolution_m: float = 0.05) -> None:
        if not agent_radius_m >= 0:
            raise ValueError(f"agent_radius_m must be >= 0, got {agent_radius_m}")
        self.spec = spec
        self.agent_radius_m = float(agent_radius_m)
        self.resolution_m = float(resolution_m)
        self._free = rasterize_obstacles(spec.bounds, spec.walls, spec.all_objects(), resolution_m)
        self._reachable: FreeSpaceMap | None = None
        self._dist_cache: dict[tuple[int, int], np.ndarray] = {}
        self._labels = spec.labels()
        # Pose log: per instance id, a time-sorted list of (time_s, position, yaw).
        self._log: dict[int, list[tuple[float, tuple[float, float, float], float]]] = {
            o.instance_id: [(0.0, tuple(o.position_m), float(o.yaw_rad))] for o in spec.all_objects()
        }
        self._time_s = 0.0

    def episode_copy(self) -> GroundTruth:
        """A ground truth sharing this one's maps and path cache, with the pose log back at time 0."""
        new = object.__new__(GroundTruth)
        new.__dict__.update(self.__dict__)
        new._log = {iid: [entries[0]] for iid, entries in self._log.items() if entries and entries[0][0] == 0.0}
        new._labels = dict(self._labels)
        return new

    # -- maps ----------------------------------------------------------------
    def free_space_map(self) -> FreeSpaceMap:
        """Floor free of walls, furniture and objects at the start (5 cm cells by default)."""
        return self._free

    def reachable_map(self) -> FreeSpaceMap:
        """Free floor where the agent's centre can be, connected to the agent's start."""
        if self._reachable is None:
            clear = _clearance_mask(self._free, self.agent_radius_m)
            start = self._free.world_to_cell(self.spec.agent_start[:2])
            comp = _component(clear, (int(start[0]), int(start[1])))
            self._reachable = FreeSpaceMap(comp, self._free.origin_xy_m, self._free.resolution_m)
        return self._reachable

    # -- rooms ---------------------------------------------------------------
    def room_of(self, xy: Sequence[float]) -> str | None:
        """Name of the room containing (x, y), or None in walls, door openings and outside."""
        x, y = float(xy[0]), float(xy[1])
        return self.spec.room_of(x, y)

    def rooms(self) -> dict[str, Box2D]:
        """Room name -> floor rectangle inside the walls."""
        return {r.name: r.box for r in self.spec.rooms}

    def doors(self) -> list[Door]:
        return list(self.spec.doors)

    # -- paths ---------------------------------------------------------------
    def _snap(self, xy: Sequence[float], max_snap_m: float = 0.5) -> tuple[int, int] | None:
        reach = self.reachable_map()
        c = reach.world_to_cell(np.asarray(xy[:2], dtype=np.float64))
        if reach.in_bounds(c) and reach.free[c[0], c[1]]:
            return int(c[0]), int(c[1])
        r = int(math.ceil(max_snap_m / reach.resolution_m))
        i0, j0 = int(c[0]), int(c[1])
        sub = reach.free[max(i0 - r, 0) : i0 + r + 1, max(j0 - r, 0) : j0 + r + 1]
        if not sub.any():
            return None
        ii, jj = np.nonzero(sub)
        ii, jj = ii + max(i0 - r, 0), jj + max(j0 - r, 0)
        k = int(np.argmin((ii - i0) ** 2 + (jj - j0) ** 2))
        if math.hypot(ii[k] - i0, jj[k] - j0) * reach.resolution_m > max_snap_m:
            return None
        return int(ii[k]), int(jj[k])

    def _distance_field(self, cell: tuple[int, int]) -> np.ndarray:
        if cell not in self._dist_cache:
            if len(self._dist_cache) > 64:
                self._dist_cache.pop(next(iter(self._dist_cache)))
            self._dist_cache[cell] = _dijkstra(self.reachable_map().free, cell)
        return self._dist_cache[cell]

    def shortest_path_length(self, a_xy: Sequence[float], b_xy: Sequence[float]) -> float:
        """Geodesic distance (metres) between two floor points on the reachable grid; inf if unreachable.

        Points within 0.5 m of reachable floor snap to it (a goal object on a
        table is reached from beside the table).
        """
        a, b = self._snap(a_xy), self._snap(b_xy)
        if a is None or b is None:
            return math.inf
        return float(self._distance_field(a)[b] * self.resolution_m)

    def shortest_path(self, a_xy: Sequence[float], b_xy: Sequence[float]) -> np.ndarray:
        """World (x, y) cell centres along a shortest path from a to b, "N 2"; empty if unreachable."""
        a, b = self._snap(a_xy), self._snap(b_xy)
        if a is None or b is None:
            return np.zeros((0, 2))
        dist = self._distance_field(a)
        if not np.isfinite(dist[b]):
            return np.zeros((0, 2))
        free = self.reachable_map().free
        path = [b]
        cur = b
        h, w = dist.shape
        while cur != a:
            i, j = cur
            # The predecessor: the legal neighbour (no corner cutting) with dist + step == dist[cur].
            best, best_d = cur, math.inf
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    p, q = i + di, j + dj
                    if not (di or dj) or not (0 <= p < h and 0 <= q < w) or not free[p, q]:
                        continue
                    if di and dj and not (free[i + di, j] and free[i, j + dj]):
                        continue
                    d = dist[p, q] + (SQRT2 if di and dj else 1.0)
                    if d < best_d and dist[p, q] < dist[cur]:
                        best, best_d = (p, q), d
            if (
                best == cur or best_d > dist[cur] + 1e-6
            ):  # pragma: no cover - a consistent distance field always has a predecessor
                break
            path.append(best)
            cur = best
        return self.reachable_map().cell_to_world(np.array(path[::-1]))

    # -- objects -------------------------------------------------------------
    def record_pose(
        self, instance_id: int, label: str, time_s: float, position_m: Sequence[float], yaw_rad: float
    ) -> None:
        """Log that an object is at a pose from ``time_s`` on (called by the simulator's dynamics)."""
        if not math.isfinite(time_s) or time_s < 0:
            raise ValueError(f"time_s must be finite and >= 0, got {time_s}")
        pos = tuple(float(v) for v in position_m)
        if len(pos) != 3 or not all(math.isfinite(v) for v in pos):
            raise ValueError(f"position_m must be 3 finite numbers, got {position_m}")
        entries = self._log.setdefault(int(instance_id), [])
        if entries and time_s < entries[-1][0]:
            raise ValueError(f"pose log for id {instance_id} must advance in time: {time_s} < {entries[-1][0]}")
        self._labels[int(instance_id)] = label
        entries.append((float(time_s), pos, float(yaw_rad)))  # type: ignore[arg-type]

    def objects_at(self, t_s: float) -> dict[int, ObjectPose]:
        """Every object's pose at time ``t_s`` (objects that appear later are absent)."""
        out = {}
        for iid, entries in self._log.items():
            times = [e[0] for e in entries]
            k = int(np.searchsorted(times, t_s, side="right")) - 1
            if k < 0:
                continue
            _, pos, yaw = entries[k]
            out[iid] = ObjectPose(iid, self._labels[iid], pos, yaw)
        return out

    def object_poses(self) -> dict[int, ObjectPose]:
        """The latest logged pose of every object."""
        return self.objects_at(math.inf)

    def pose_log(self) -> list[tuple[float, int, str, tuple[float, float, float], float]]:
        """Every logged pose change as (time_s, instance_id, label, position_m, yaw_rad), time-sorted."""
        rows = [(t, iid, self._labels[iid], p, y) for iid, es in self._log.items() for (t, p, y) in es]
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def labels(self) -> dict[int, str]:
        """Instance id -> label for every object ever present (furniture, objects, the person)."""
        return dict(self._labels)
