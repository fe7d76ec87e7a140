"""Navigation on what the memory knows: a 2D traversability grid, A*, path following.

The grid is derived from the octree alone (never from simulator truth):

* a cell is an *obstacle* if any occupied voxel above it lies in the obstacle
  band (between ``step_height_m`` above the floor and the robot's height);
* it is *free* if the floor under it was seen (occupied voxels in the floor
  band) or the space just above the floor was seen free, and it is no obstacle;
* everything else is *unknown*.

Grid cells are aligned with the octree's voxels. Obstacles are inflated by
the robot radius; the trail the robot has driven stays passable (it stood
there) except around bumps. A* and Dijkstra (numba, 8-connected, no corner
cutting) run on the inflated grid; unknown cells can be allowed at a cost, and
unknown floor right around the robot (below the camera's view) is passable
when the robot would otherwise be boxed in. Paths are shortened by
line-of-sight shortcutting (any-angle). `PathFollower` turns a path into the
discrete actions every driven source understands (move_forward, turn_left,
turn_right). `Navigator` drives to points and to objects named by text.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numba
import numpy as np

__all__ = [
    "TraversabilityGrid",
    "astar",
    "distance_map",
    "distance_field",
    "trace_path",
    "shortcut_path",
    "segment_clear",
    "memory_grid",
    "record_bump",
    "forget_bump",
    "yaw_of",
    "planning_cost",
    "ObjectTarget",
    "CameraModel",
    "PathFollower",
    "Navigator",
    "NavigationResult",
    "UNKNOWN",
    "FREE",
    "OBSTACLE",
]

UNKNOWN, FREE, OBSTACLE = 0, 1, 2


@dataclass
class TraversabilityGrid:
    """A top-down grid of the floor.

    Attributes:
        state: "H W" int8 of UNKNOWN / FREE / OBSTACLE (before inflation).
        origin_xy: world (x, y) of the corner of cell (0, 0).
        resolution_m: cell edge length.
        inflated: "H W" bool, obstacles grown by the robot radius.
    """

    state: np.ndarray
    origin_xy: np.ndarray
    resolution_m: float
    inflated: np.ndarray

    @classmethod
    def from_octree(
        cls,
        octree,
        *,
        floor_z_m: float = 0.0,
        robot_radius_m: float = 0.2,
        robot_height_m: float = 1.6,
        step_height_m: float = 0.12,
        resolution_m: float | None = None,
        margin_m: float = 1.0,
        bounds_xy: tuple[np.ndarray, np.ndarray] | None = None,
        fill_holes_m: float = 0.1,
    ) -> TraversabilityGrid:
        """Project the octree into a traversability grid.

        ``fill_holes_m``: unknown gaps up to about this size between seen floor
        cells count as seen (a morphological closing).
        """
        res = float(resolution_m or octree.voxel_size_m)
        occ = octree.occupied_centers()
        free = octree.free_centers()
        if bounds_xy is None:
            pts = [p[:, :2] for p in (occ, free) if len(p)]
            if not pts:
                g = np.zeros((1, 1), np.int8)
                return cls(g, np.zeros(2), res, np.zeros((1, 1), bool))
            allp = np.concatenate(pts)
            lo, hi = allp.min(axis=0) - margin_m, allp.max(axis=0) + margin_m
            # align cell edges with voxel edges: voxel centres then fall mid-cell, never on a
            # boundary where rounding would skip some cells and double others (striped walls)
            lo = np.floor(lo / res + 1e-6) * res
        else:
            lo, hi = np.asarray(bounds_xy[0], float), np.asarray(bounds_xy[1], float)
        shape = np.maximum(np.ceil((hi - lo) / res).astype(int), 1)
        h, w = int(shape[1]), int(shape[0])  # rows = y, cols = x

        def cells(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ij = np.floor((p[:, :2] - lo) / res).astype(np.int64)
            ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
            return ij[ok, 1], ij[ok, 0]

        vs = octree.voxel_size_m
        z_obs_lo = floor_z_m + step_height_m
        z_obs_hi = floor_z_m + robot_height_m
        known = np.zeros((h, w), bool)
        obstacle = np.zeros((h, w), bool)
        if len(occ):
            z = occ[:, 2]
            floor = occ[(z >= floor_z_m - 1.5 * vs) & (z < z_obs_lo)]
            r, c = cells(floor)
            known[r, c] = True
            ob = occ[(z >= z_obs_lo) & (z <= z_obs_hi)]
            r, c = cells(ob)
            obstacle[r, c] = True
        if len(free):
            z = free[:, 2]
            low = free[(z >= floor_z_m - vs) & (z < floor_z_m + 0.5)]
            r, c = cells(low)
            known[r, c] = True
        if fill_holes_m > 0:
            # far floor is sampled more sparsely than the grid: close the pinholes
            # between seen cells (obstacles are applied after, so walls stay walls)
            import cv2

            n = 2 * int(round(fill_holes_m / res)) + 1
            known = cv2.morphologyEx(known.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((n, n), np.uint8)).astype(bool)
        state = np.zeros((h, w), np.int8)
        state[known] = FREE
        state[obstacle] = OBSTACLE
        return cls(state, lo.astype(np.float64), res, _inflate(obstacle, robot_radius_m / res))

    def mark_visited(self, xy: np.ndarray, max_gap_m: float = 0.6) -> None:
        """Cells the robot's centre has passed through are traversable: it stood there.

        ``xy`` is the "N 2" trajectory in order; consecutive positions closer than
        ``max_gap_m`` are joined by straight segments so the trail stays connected.
        Seen obstacles stay obstacles.
        """
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        if not len(xy):
            return
        pts = [xy]
        if len(xy) > 1:
            a, b = xy[:-1], xy[1:]
            near = np.linalg.norm(b - a, axis=1) <= max_gap_m
            t = np.linspace(0.0, 1.0, 9)[1:-1, None, None]
            pts.append((a[near] + t * (b[near] - a[near])).reshape(-1, 2))
        rc = self.world_to_cell(np.concatenate(pts))
        # 3x3 around each: a diagonal run of single cells is no passage for a search that never cuts corners
        rc = (rc[:, None, :] + np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)])[None]).reshape(-1, 2)
        rc = rc[self.in_bounds(rc)]
        keep = self.state[rc[:, 0], rc[:, 1]] != OBSTACLE
        rc = rc[keep]
        self.state[rc[:, 0], rc[:, 1]] = FREE
        self.inflated[rc[:, 0], rc[:, 1]] = False

    # coordinates ----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.state.shape

    def world_to_cell(self, xy) -> np.ndarray:
        p = np.asarray(xy, dtype=np.float64)
        ij = np.floor((p[..., :2] - self.origin_xy) / self.resolution_m).astype(np.int64)
        return ij[..., ::-1]  # (row, col)

    def cell_to_world(self, rc) -> np.ndarray:
        rc = np.asarray(rc, dtype=np.float64)
        return self.origin_xy + (rc[..., ::-1] + 0.5) * self.resolution_m

    def in_bounds(self, rc) -> np.ndarray:
        rc = np.asarray(rc)
        return (rc[..., 0] >= 0) & (rc[..., 0] < self.shape[0]) & (rc[..., 1] >= 0) & (rc[..., 1] < self.shape[1])

    def traversable(self, allow_unknown: bool = False) -> np.ndarray:
        ok = ~self.inflated
        if allow_unknown:
            return ok & (self.state != OBSTACLE)
        return ok & (self.state == FREE)

    def nearest_traversable(self, xy, max_radius_m: float = 1.5, allow_unknown: bool = False) -> np.ndarray | None:
        """The traversable cell centre nearest to ``xy`` within ``max_radius_m``, or None."""
        rc = self.world_to_cell(xy)
        trav = self.traversable(allow_unknown)
        r = int(math.ceil(max_radius_m / self.resolution_m))
        r0, c0 = int(rc[0]), int(rc[1])
        rows = np.arange(max(0, r0 - r), min(self.shape[0], r0 + r + 1))
        cols = np.arange(max(0, c0 - r), min(self.shape[1], c0 + r + 1))
        if not len(rows) or not len(cols):
            return None
        sub = trav[np.ix_(rows, cols)]
        if not sub.any():
            return None
        rr, cc = np.nonzero(sub)
        d = (rows[rr] - r0) ** 2 + (cols[cc] - c0) ** 2
        i = int(np.argmin(d))
        return self.cell_to_world(np.array([rows[rr[i]], cols[cc[i]]]))

    def plan(self, start_xy, goal_xy, *, allow_unknown: bool = False, unknown_cost: float = 2.0, snap_m: float = 0.6):
        """A* from start to goal in world coordinates; returns "N 2" waypoints or None.

        The start is snapped to the nearest traversable cell (the robot may sit on
        an inflated margin after a collision); the goal too, within ``snap_m``.
        """
        trav = self.traversable(allow_unknown)
        s = self.world_to_cell(start_xy)
        g = self.world_to_cell(goal_xy)
        if not (self.in_bounds(s) and self.in_bounds(g)):
            return None
        if not trav[s[0], s[1]]:
            near = self.nearest_traversable(start_xy, 0.6, allow_unknown)
            if near is None:
                return None
            s = self.world_to_cell(near)
        if not trav[g[0], g[1]]:
            near = self.nearest_traversable(goal_xy, snap_m, allow_unknown)
            if near is None:
                return None
            g = self.world_to_cell(near)
        cost = np.where(trav, 1.0, np.inf)
        if allow_unknown:
            cost[trav & (self.state == UNKNOWN)] = unknown_cost
        cells = astar(cost, int(s[0]), int(s[1]), int(g[0]), int(g[1]))
        if cells is None:
            return None
        return self.cell_to_world(cells)

    def path_length(self, path: np.ndarray | None) -> float:
        if path is None or len(path) < 2:
            return 0.0 if path is not None else math.inf
        return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())

    def to_image(self) -> np.ndarray:
        """RGB top-down picture (rows flipped so +y is up): unknown grey, free white, obstacle black."""
        img = np.full(self.state.shape + (3,), 150, np.uint8)
        img[self.state == FREE] = 255
        img[self.inflated & (self.state != OBSTACLE)] = (215, 215, 230)
        img[self.state == OBSTACLE] = 30
        return img[::-1]


def planning_cost(
    grid: TraversabilityGrid, xy, unknown_radius_m: float = 0.0, unknown_cost: float = 2.0, snap_m: float = 0.6
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Per-cell cost for path search from ``xy`` (1 on traversable cells, inf elsewhere) and the start cell.

    With ``unknown_radius_m`` > 0, unknown cells (not within the obstacle
    margin) that close to the robot cost ``unknown_cost``: a camera pitched
    down never sees the floor right around the robot, and without this a robot
    standing in its own blind spot can find itself boxed in. The start snaps to
    the nearest passable cell within ``snap_m`` (the robot may rest on a margin).
    Returns None when the robot is off the grid or nothing passable is near.
    """
    cost = np.where(grid.traversable(), 1.0, np.inf)
    start = grid.world_to_cell(xy)
    if not grid.in_bounds(start):
        return None
    if unknown_radius_m > 0:
        r = int(math.ceil(unknown_radius_m / grid.resolution_m))
        rr, cc = np.mgrid[-r : r + 1, -r : r + 1]
        disk = rr**2 + cc**2 <= r * r
        cells = np.stack([rr[disk] + start[0], cc[disk] + start[1]], 1)
        cells = cells[grid.in_bounds(cells)]
        unk = (grid.state[cells[:, 0], cells[:, 1]] == UNKNOWN) & ~grid.inflated[cells[:, 0], cells[:, 1]]
        cost[cells[unk, 0], cells[unk, 1]] = unknown_cost
    if not np.isfinite(cost[start[0], start[1]]):
        r = int(math.ceil(snap_m / grid.resolution_m))
        r0, c0 = int(start[0]), int(start[1])
        lo_r, lo_c = max(0, r0 - r), max(0, c0 - r)
        sub = np.isfinite(cost[lo_r : r0 + r + 1, lo_c : c0 + r + 1])
        if not sub.any():
            return None
        rr, cc = np.nonzero(sub)
        rr, cc = rr + lo_r, cc + lo_c
        i = int(np.argmin((rr - r0) ** 2 + (cc - c0) ** 2))
        start = np.array([rr[i], cc[i]])
    return cost, (int(start[0]), int(start[1]))


def memory_grid(memory, *, floor_z_m: float = 0.0, robot_radius_m: float = 0.25, bumps_xy=None) -> TraversabilityGrid:
    """The planners' grid: the octree's projection plus the trail the robot has driven (``memory.trajectory``).

    ``bumps_xy``: places where a move was blocked; the cells within the robot
    radius of each are kept out of plans, trail or not (a bump is felt, and the
    camera may later see the spot as free).
    """
    grid = TraversabilityGrid.from_octree(memory.octree, floor_z_m=floor_z_m, robot_radius_m=robot_radius_m)
    traj = getattr(memory, "trajectory", None)
    if traj:
        grid.mark_visited(np.array([m[:2, 3] for _, _, m in traj], np.float64))
    if bumps_xy is not None and len(bumps_xy):
        r = int(math.ceil(robot_radius_m / grid.resolution_m))
        rr, cc = np.mgrid[-r : r + 1, -r : r + 1]
        disk = np.stack([rr[rr**2 + cc**2 <= r * r], cc[rr**2 + cc**2 <= r * r]], 1)
        rc = (grid.world_to_cell(np.asarray(bumps_xy, np.float64).reshape(-1, 2))[:, None, :] + disk[None]).reshape(
            -1, 2
        )
        rc = rc[grid.in_bounds(rc)]
        grid.inflated[rc[:, 0], rc[:, 1]] = True
    return grid


def _inflate(obstacle: np.ndarray, radius_cells: float) -> np.ndarray:
    import cv2

    r = int(math.ceil(radius_cells))
    if r <= 0 or not obstacle.any():
        return obstacle.copy()
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    kernel = ((yy**2 + xx**2) <= radius_cells**2 + 1e-9).astype(np.uint8)
    return cv2.dilate(obstacle.astype(np.uint8), kernel).astype(bool)


@numba.njit(cache=True)
def _astar_kernel(cost, sr, sc, gr, gc):  # pragma: no cover - compiled
    h, w = cost.shape
    inf = np.inf
    g = np.full((h, w), inf)
    parent = np.full((h, w), -1, np.int64)
    closed = np.zeros((h, w), np.bool_)
    # binary heap of (f, r*w+c)
    cap = 1024
    hf = np.empty(cap)
    hi = np.empty(cap, np.int64)
    n = 0
    g[sr, sc] = 0.0
    hf[0] = 0.0
    hi[0] = sr * w + sc
    n = 1
    dr = np.array([-1, -1, -1, 0, 0, 1, 1, 1])
    dc = np.array([-1, 0, 1, -1, 1, -1, 0, 1])
    dd = np.array([1.4142135623730951, 1.0, 1.4142135623730951, 1.0, 1.0, 1.4142135623730951, 1.0, 1.4142135623730951])
    while n > 0:
        # pop
        cur = hi[0]
        n -= 1
        if n > 0:
            lf, li = hf[n], hi[n]
            k = 0
            while True:
                c1 = 2 * k + 1
                if c1 >= n:
                    break
                c2 = c1 + 1
                m = c1
                if c2 < n and hf[c2] < hf[c1]:
                    m = c2
                if hf[m] < lf:
                    hf[k] = hf[m]
                    hi[k] = hi[m]
                    k = m
                else:
                    break
            hf[k] = lf
            hi[k] = li
        r = cur // w
        c = cur % w
        if closed[r, c]:
            continue
        closed[r, c] = True
        if r == gr and c == gc:
            return parent, g, True
        for k8 in range(8):
            nr = r + dr[k8]
            nc = c + dc[k8]
            if nr < 0 or nr >= h or nc < 0 or nc >= w or closed[nr, nc]:
                continue
            cc = cost[nr, nc]
            if cc == inf:
                continue
            if dr[k8] != 0 and dc[k8] != 0:
                # no corner cutting
                if cost[r, nc] == inf or cost[nr, c] == inf:
                    continue
            ng = g[r, c] + dd[k8] * cc
            if ng < g[nr, nc]:
                g[nr, nc] = ng
                parent[nr, nc] = r * w + c
                hval = 0.0
                if gr >= 0:
                    ar = abs(nr - gr)
                    ac = abs(nc - gc)
                    hval = (ar + ac) + (1.4142135623730951 - 2.0) * min(ar, ac)
                f = ng + hval
                if n >= cap:
                    cap *= 2
                    nf = np.empty(cap)
                    ni = np.empty(cap, np.int64)
                    nf[:n] = hf[:n]
                    ni[:n] = hi[:n]
                    hf = nf
                    hi = ni
                # push
                k = n
                n += 1
                while k > 0:
                    p = (k - 1) // 2
                    if hf[p] <= f:
                        break
                    hf[k] = hf[p]
                    hi[k] = hi[p]
                    k = p
                hf[k] = f
                hi[k] = nr * w + nc
    return parent, g, False


def astar(cost: np.ndarray, sr: int, sc: int, gr: int, gc: int) -> np.ndarray | None:
    """A* over a cost grid (inf = blocked), 8-connected without corner cutting.

    Returns:
        "N 2" (row, col) cells from start to goal, or None when unreachable.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    h, w = cost.shape
    for r, c in ((sr, sc), (gr, gc)):
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"cell ({r}, {c}) is outside the {h}x{w} grid")
    if not np.isfinite(cost[sr, sc]) or not np.isfinite(cost[gr, gc]):
        return None
    parent, _, ok = _astar_kernel(cost, sr, sc, gr, gc)
    return trace_path(parent, gr, gc) if ok else None


def yaw_of(pose) -> float:
    """Heading (radians, about +z) of a z-up ``world_from_base`` pose."""
    r = pose.rotation
    return math.atan2(r[1, 0], r[0, 0])


def record_bump(memory, frame, pose, radius_m: float) -> np.ndarray | None:
    """If the last move was blocked (a bump), mark a small column just ahead as an obstacle in memory.

    Returns:
        The (x, y) of the bump, or None when the move was not blocked.
    """
    if not frame.meta.get("collided"):
        return None
    yaw = yaw_of(pose)
    ahead = pose.translation[:2] + (radius_m + 0.02) * np.array([math.cos(yaw), math.sin(yaw)])
    memory.mark_obstacle(_bump_column(ahead), BUMP_LOG_ODDS)
    return ahead


BUMP_LOG_ODDS = 2.0


def _bump_column(xy) -> np.ndarray:
    zs = np.arange(0.2, 1.0, 0.1)
    return np.c_[np.full((len(zs), 2), np.asarray(xy, float)[:2]), zs]


def forget_bump(memory, xy) -> None:
    """Take back the obstacle `record_bump` marked at ``xy`` (its log-odds, subtracted).

    What the camera saw there stays: a wall seen (clamped high) is still occupied after. A voxel
    known only from the bump would land exactly on the occupancy threshold (0), which counts as
    occupied, so a hundredth more is taken: it ends as barely free air.
    """
    memory.mark_obstacle(_bump_column(xy), -(BUMP_LOG_ODDS + 0.01))


def distance_map(cost: np.ndarray, sr: int, sc: int) -> np.ndarray:
    """Path cost from (sr, sc) to every cell (Dijkstra, same moves as `astar`); inf where unreachable."""
    return distance_field(cost, sr, sc)[0]


def distance_field(cost: np.ndarray, sr: int, sc: int) -> tuple[np.ndarray, np.ndarray]:
    """Dijkstra from (sr, sc): path cost to every cell and each cell's parent (flat index, -1 at the root).

    `trace_path` turns the parents into the cheapest path to any cell, so one
    pass serves every candidate goal.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    h, w = cost.shape
    if not (0 <= sr < h and 0 <= sc < w):
        raise ValueError(f"cell ({sr}, {sc}) is outside the {h}x{w} grid")
    if not np.isfinite(cost[sr, sc]):
        return np.full(cost.shape, np.inf), np.full(cost.shape, -1, np.int64)
    parent, g, _ = _astar_kernel(cost, sr, sc, -1, -1)
    return g, parent


def trace_path(parent: np.ndarray, r: int, c: int) -> np.ndarray:
    """The "N 2" (row, col) cells from a `distance_field` root to (r, c)."""
    w = parent.shape[1]
    out = [(r, c)]
    cur = parent[r, c]
    while cur >= 0:
        out.append((cur // w, cur % w))
        cur = parent[cur // w, cur % w]
    return np.array(out[::-1], dtype=np.int64)


def segment_clear(free: np.ndarray, a_rc: np.ndarray, b_rc: np.ndarray) -> bool:
    """Whether the straight segment between two cell centres crosses only ``free`` cells.

    Samples the segment at a quarter cell, and also the two cells beside each
    diagonal step, so a shortcut never squeezes between two blocked corners.
    """
    a = np.asarray(a_rc, np.float64)
    b = np.asarray(b_rc, np.float64)
    n = int(np.ceil(4 * np.abs(b - a).max())) + 1
    t = np.linspace(0.0, 1.0, n)[:, None]
    p = a + t * (b - a)
    cells = np.unique(
        np.concatenate(
            [np.floor(p + 0.5 + o) for o in ((0, 0), (0.25, 0.25), (-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25))]
        ).astype(np.int64),
        axis=0,
    )
    h, w = free.shape
    if (cells < 0).any() or (cells[:, 0] >= h).any() or (cells[:, 1] >= w).any():
        return False
    return bool(free[cells[:, 0], cells[:, 1]].all())


def shortcut_path(free: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Any-angle smoothing of a grid path: keep a cell only where the straight line from the last kept
    cell to the next one would leave ``free`` (greedy line-of-sight shortcutting, as in Theta*'s
    post-processing). The result visits a subset of the input cells, in order."""
    cells = np.asarray(cells, np.int64)
    if len(cells) <= 2:
        return cells
    kept = [0]
    i, n = 0, len(cells)
    while i < n - 1:
        j = i + 1
        while j + 1 < n and segment_clear(free, cells[i], cells[j + 1]):
            j += 1
        kept.append(j)
        i = j
    return cells[kept]


def densify(path_xy: np.ndarray, spacing_m: float) -> np.ndarray:
    """Resample a polyline so consecutive points are at most ``spacing_m`` apart (the follower's lookahead
    needs intermediate points on long straight segments)."""
    path_xy = np.asarray(path_xy, np.float64)
    if len(path_xy) < 2:
        return path_xy
    out = [path_xy[:1]]
    for a, b in zip(path_xy[:-1], path_xy[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing_m)))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + t * (b - a))
    return np.concatenate(out)


class PathFollower:
    """Turns a waypoint path into discrete actions (move_forward / turn_left / turn_right).

    Args:
        forward_m: distance of one move_forward.
        turn_deg: angle of one turn.
        lookahead_m: steer toward the path point this far ahead.
        goal_tolerance_m: close enough to the last waypoint.
    """

    def __init__(
        self, forward_m: float = 0.25, turn_deg: float = 30.0, lookahead_m: float = 0.5, goal_tolerance_m: float = 0.2
    ) -> None:
        self.forward_m = forward_m
        self.turn_rad = math.radians(turn_deg)
        self.lookahead_m = lookahead_m
        self.goal_tolerance_m = goal_tolerance_m
        self.path: np.ndarray | None = None
        self._careful_moves = 0

    def note_bump(self, moves: int = 3) -> None:
        """After a blocked move, steer toward the nearest path point ahead (not the lookahead point) for a
        few moves: cutting a corner toward a far point is what runs a robot into things."""
        self._careful_moves = moves

    def set_path(self, path: np.ndarray | None) -> None:
        self.path = None if path is None else np.asarray(path, dtype=np.float64)

    def done(self, xy) -> bool:
        return self.path is None or float(np.linalg.norm(self.path[-1] - np.asarray(xy)[:2])) <= self.goal_tolerance_m

    def next_action(self, xy, yaw_rad: float) -> str:
        if self.done(xy) or self.path is None:
            return "stop"
        p = np.asarray(xy, dtype=np.float64)[:2]
        d = np.linalg.norm(self.path - p, axis=1)
        i = int(np.argmin(d))
        # the first waypoint at least lookahead away, past the closest one
        lookahead = min(self.lookahead_m, 0.6 * self.forward_m) if self._careful_moves > 0 else self.lookahead_m
        ahead = np.flatnonzero(d[i:] >= lookahead)
        target = self.path[i + ahead[0]] if len(ahead) else self.path[-1]
        heading = math.atan2(target[1] - p[1], target[0] - p[0])
        err = (heading - yaw_rad + math.pi) % (2 * math.pi) - math.pi
        if abs(err) > self.turn_rad / 2:
            return "turn_left" if err > 0 else "turn_right"
        self._careful_moves = max(0, self._careful_moves - 1)
        return "move_forward"

    def turn_towards(self, xy, yaw_rad: float, target_xy) -> str | None:
        """A turn action that faces ``target_xy``, or None if already facing it."""
        p = np.asarray(xy, dtype=np.float64)[:2]
        t = np.asarray(target_xy, dtype=np.float64)[:2]
        heading = math.atan2(t[1] - p[1], t[0] - p[0])
        err = (heading - yaw_rad + math.pi) % (2 * math.pi) - math.pi
        if abs(err) <= self.turn_rad / 2:
            return None
        return "turn_left" if err > 0 else "turn_right"


def _xy(v) -> tuple[float, float]:
    return float(v[0]), float(v[1])


def _xyz(v) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


@dataclass
class NavigationResult:
    """How a navigation episode ended.

    Attributes:
        success: reached the goal (the planner's own judgement, from memory).
        status: "reached", "no view" (stopped near it without a clear view), "unreachable", "not found",
            "blocked" (every way on bumps into something), "budget".
        message: a sentence for the user.
        steps: actions taken.
        path_length_m: distance actually travelled.
        goal_xy: where the planner went (a viewpoint near the object for object goals).
        object_id: the memory object chosen, for object goals.
    """

    success: bool
    status: str
    message: str
    steps: int = 0
    path_length_m: float = 0.0
    goal_xy: tuple[float, float] | None = None
    object_id: int | None = None
    target_xyz: tuple[float, float, float] | None = None


@dataclass
class CameraModel:
    """What the planner needs of the robot's camera to judge a viewpoint (from one of its own frames).

    Attributes:
        eye_z_m: camera height in the world.
        axis_elevation_rad: elevation of the optical axis (negative when pitched down).
        half_vfov_rad, half_hfov_rad: half fields of view.
    """

    eye_z_m: float = 1.3
    axis_elevation_rad: float = -math.radians(20.0)
    half_vfov_rad: float = math.radians(30.0)
    half_hfov_rad: float = math.radians(37.5)

    @classmethod
    def from_frame(cls, frame) -> CameraModel | None:
        """From a frame with a pose and intrinsics (the camera is assumed above the base's centre)."""
        if frame is None or frame.world_from_camera is None or frame.intrinsics is None:
            return None
        m = np.asarray(frame.world_from_camera.matrix)
        k = frame.intrinsics
        return cls(
            eye_z_m=float(m[2, 3]),
            axis_elevation_rad=float(math.asin(np.clip(m[2, 2], -1.0, 1.0))),
            half_vfov_rad=float(math.atan2(k.height / 2.0, k.fy)),
            half_hfov_rad=float(math.atan2(k.width / 2.0, k.fx)),
        )


@dataclass
class ObjectTarget:
    """An object-goal candidate: a memory object and its axis-aligned box (world, metres)."""

    object_id: int
    label: str
    box_min: np.ndarray
    box_max: np.ndarray

    @property
    def centre(self) -> np.ndarray:
        return (self.box_min + self.box_max) / 2


class Navigator:
    """Point-goal and object-goal navigation from memory.

    Point goals: A* on the traversability grid; goals beyond ``long_range_m``
    are routed over the place graph first, then A* between consecutive places,
    which keeps each search small.

    Object goals: every memory object matching the text is a candidate. One
    Dijkstra pass from the robot gives the path cost to every free cell; a
    *viewpoint* is a reachable cell within ``view_distance_m`` of an object's
    box from which the camera, turned toward the object, has part of the box
    inside its field of view with nothing occupied in between (rays cast in the
    octree). The robot goes to the cheapest viewpoint of any instance over an
    any-angle (shortcut) path, re-choosing as the map grows, and stops as soon
    as where it stands is a viewpoint within ``stop_distance_m``.

    Args:
        memory: a SceneMemory.
        robot_radius_m: obstacle inflation.
        view_distance_m: viewpoints chosen as goals lie at most this far from the object's box.
        stop_distance_m: the robot stops at any viewpoint at most this far from the box.
        replan_every: steps between replans.
        turn_deg: the robot's turn step (a turn toward the object ends within half of it).
        closest_match_min_score: when no object is named after the goal (query score 0.75: the
            word, a synonym), even after exploring, the robot goes to the objects the memory's
            text query ranks first if they score at least this (a related word, a detector's
            second guess: better than giving up); None gives up.
        confidence_margin: of the objects named after the goal, the robot goes to those whose
            name holds at least the largest share of its label distribution minus this (1.0: any
            of them, the nearest first).
    """

    def __init__(
        self,
        memory,
        *,
        robot_radius_m: float = 0.25,
        floor_z_m: float = 0.0,
        view_distance_m: float = 0.7,
        stop_distance_m: float = 0.9,
        replan_every: int = 10,
        long_range_m: float = 8.0,
        turn_deg: float = 30.0,
        unknown_radius_m: float = 1.0,
        closest_match_min_score: float | None = 0.5,
        confidence_margin: float = 0.15,
    ) -> None:
        if not 0 < view_distance_m <= stop_distance_m:
            raise ValueError(f"need 0 < view_distance_m <= stop_distance_m, got {view_distance_m}, {stop_distance_m}")
        self.memory = memory
        self.robot_radius_m = robot_radius_m
        self.tight_radius_m = 0.8 * robot_radius_m
        self.floor_z_m = floor_z_m
        self.view_distance_m = view_distance_m
        self.stop_distance_m = stop_distance_m
        self.replan_every = replan_every
        self.long_range_m = long_range_m
        self.turn_rad = math.radians(turn_deg)
        self.unknown_radius_m = unknown_radius_m
        if closest_match_min_score is not None and not 0 < closest_match_min_score <= 0.75:
            raise ValueError(f"closest_match_min_score must be in (0, 0.75] or None, got {closest_match_min_score}")
        self.closest_match_min_score = closest_match_min_score
        if not 0.0 <= confidence_margin <= 1.0:
            raise ValueError(f"confidence_margin must be in [0, 1], got {confidence_margin}")
        self.confidence_margin = confidence_margin
        self.follower = PathFollower(turn_deg=turn_deg)
        self.camera: CameraModel | None = None
        self.bumps: deque[np.ndarray] = deque(maxlen=3)  # the last blocked moves (shared with an explorer it drives)
        self.on_frame = None  # called with every frame it integrates (a live view, a logger)

    def grid(self, radius_m: float | None = None) -> TraversabilityGrid:
        return memory_grid(
            self.memory, floor_z_m=self.floor_z_m, robot_radius_m=radius_m or self.robot_radius_m, bumps_xy=self.bumps
        )

    # object viewpoints -------------------------------------------------------------
    def _sample_points(self, t: ObjectTarget) -> np.ndarray:
        """Points on the object's box a camera should see: top face (centre and inner corners) and centre."""
        c = t.centre
        lo, hi = t.box_min, t.box_max
        top = hi[2]
        q = 0.25 * (hi[:2] - lo[:2])
        corners = np.array([[c[0] + sx * q[0], c[1] + sy * q[1], top] for sx in (-1, 1) for sy in (-1, 1)])
        return np.vstack([[c[0], c[1], top], c, corners])

    def sees(self, xy: np.ndarray, target: ObjectTarget, *, check_occlusion: bool = True) -> np.ndarray:
        """For robot positions ``xy`` ("N 2"), whether the camera turned toward the object sees part of its box.

        In view: some sample point of the box lies inside the field of view with
        a margin that allows for the turn step (the robot turns in steps, so it
        faces the object within half a step). Unoccluded: the ray from the
        camera to that point meets nothing occupied before the box.
        """
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        cam = self.camera or CameraModel()
        pts = self._sample_points(target)
        rel = pts[None, :, :2] - xy[:, None, :]  # N P 2
        r = np.linalg.norm(rel, axis=2)
        to_c = target.centre[:2] - xy
        yaw = np.arctan2(to_c[:, 1], to_c[:, 0])
        bearing = (np.arctan2(rel[..., 1], rel[..., 0]) - yaw[:, None] + math.pi) % (2 * math.pi) - math.pi
        elev = np.arctan2(pts[None, :, 2] - cam.eye_z_m, np.maximum(r, 1e-6))
        margin = math.radians(3.0)
        ok = np.abs(bearing) <= cam.half_hfov_rad - self.turn_rad / 2 - margin
        ok &= elev >= cam.axis_elevation_rad - cam.half_vfov_rad + margin
        ok &= elev <= cam.axis_elevation_rad + cam.half_vfov_rad - margin
        if not check_occlusion or not ok.any():
            return np.asarray(ok.any(axis=1))
        n_idx, p_idx = np.nonzero(ok)
        origins = np.c_[xy[n_idx], np.full(len(n_idx), cam.eye_z_m)]
        ends = pts[p_idx]
        d = ends - origins
        dist = np.linalg.norm(d, axis=1)
        hit, hp = self.memory.octree.cast_ray(origins, d / np.maximum(dist, 1e-9)[:, None], float(dist.max() + 0.2))
        slack = 1.5 * self.memory.octree.voxel_size_m
        with np.errstate(invalid="ignore"):
            inside = np.all((hp >= target.box_min - slack) & (hp <= target.box_max + slack), axis=1)
            beyond = np.linalg.norm(hp - origins, axis=1) >= dist - slack
        clear = ~hit | inside | beyond
        out = np.zeros(len(xy), bool)
        out[n_idx[clear]] = True
        return out

    def _box_distance(self, xy: np.ndarray, t: ObjectTarget) -> np.ndarray:
        half = (t.box_max[:2] - t.box_min[:2]) / 2
        return np.linalg.norm(np.maximum(np.abs(np.asarray(xy)[..., :2] - t.centre[:2]) - half, 0.0), axis=-1)

    def at_viewpoint(self, xy, targets: list[ObjectTarget]) -> ObjectTarget | None:
        """The target that the robot at ``xy`` already sees from close enough, if any."""
        xy = np.asarray(xy, np.float64)[:2]
        for t in targets:
            if self._box_distance(xy, t) <= self.stop_distance_m and self.sees(xy[None], t)[0]:
                return t
        return None

    def choose_viewpoint(
        self, grid: TraversabilityGrid, xy, targets: list[ObjectTarget], *, unknown_near: bool = False
    ) -> tuple[ObjectTarget, np.ndarray] | None:
        """The cheapest viewpoint over all targets and the path to it ("N 2" world waypoints), or None."""
        cm = planning_cost(grid, xy, self.unknown_radius_m if unknown_near else 0.0)
        if cm is None:
            return None
        cost, (sr, sc) = cm
        dist, parent = distance_field(cost, sr, sc)
        reach = np.argwhere(np.isfinite(dist))
        if not len(reach):
            return None
        reach_xy = grid.cell_to_world(reach)
        best = None
        for occlusion in (True, False):  # a blind viewpoint beats none: the view is checked again on the way
            for t in targets:
                d_box = self._box_distance(reach_xy, t)
                for limit in (self.view_distance_m, self.stop_distance_m):
                    band = np.flatnonzero(d_box <= limit)
                    if not len(band):
                        continue
                    band = band[np.argsort(dist[reach[band, 0], reach[band, 1]], kind="stable")]
                    # cheapest first; stop at the first that sees the object
                    for chunk in range(0, min(len(band), 600), 150):
                        idx = band[chunk : chunk + 150]
                        ok = self.sees(reach_xy[idx], t, check_occlusion=occlusion)
                        if ok.any():
                            i = idx[int(np.argmax(ok))]
                            c = float(dist[reach[i, 0], reach[i, 1]])
                            if best is None or c < best[0]:
                                best = (c, t, reach[i])
                            break
                    if best is not None and best[1] is t:
                        break
            if best is not None:
                break
        if best is None:
            return None
        _, t, cell = best
        cells = trace_path(parent, int(cell[0]), int(cell[1]))
        cells = shortcut_path(np.isfinite(cost), cells)
        return t, densify(grid.cell_to_world(cells), 0.25)

    def viewpoint(self, grid: TraversabilityGrid, start_xy, box_min, box_max) -> tuple[np.ndarray, np.ndarray] | None:
        """A reachable cell from which the object's box is close and in view, and the path to it."""
        t = ObjectTarget(-1, "", np.asarray(box_min, float), np.asarray(box_max, float))
        res = self.choose_viewpoint(grid, start_xy, [t])
        if res is None:
            return None
        return res[1][-1], res[1]

    # point goals -------------------------------------------------------------------
    def plan(self, grid: TraversabilityGrid, start_xy, goal_xy) -> np.ndarray | None:
        start_xy = np.asarray(start_xy, float)[:2]
        goal_xy = np.asarray(goal_xy, float)[:2]
        places = getattr(self.memory, "places", None)
        if places is not None and np.linalg.norm(goal_xy - start_xy) > self.long_range_m:
            try:
                route = places.shortest_path(np.r_[start_xy, self.floor_z_m], np.r_[goal_xy, self.floor_z_m])
            except Exception:  # no route on the place graph: fall back to one A* search
                route = None
            if route is not None and len(route) >= 2:
                legs: list[np.ndarray] = []
                cur = start_xy
                for wp in list(np.asarray(route)[1:-1, :2]) + [goal_xy]:
                    leg = grid.plan(cur, wp)
                    if leg is None:
                        legs = []  # one leg has no path: one A* search below
                        break
                    legs.append(leg if not legs else leg[1:])
                    cur = leg[-1]
                if legs:
                    return np.concatenate(legs)
        return grid.plan(start_xy, goal_xy)

    def _step(self, sim, action: str) -> float:
        """One action: integrate the frame, record a bump; returns the distance moved."""
        before = sim.agent_pose.translation[:2].copy()
        frame = sim.step(action)
        self.memory.integrate(frame)
        if self.on_frame is not None:
            self.on_frame(frame)
        if self.camera is None:
            self.camera = CameraModel.from_frame(frame)
        if action == "move_forward" and hasattr(self.memory, "mark_obstacle"):
            bump = record_bump(self.memory, frame, sim.agent_pose, self.robot_radius_m)
            if bump is not None:
                self.bumps.append(bump)
        return float(np.linalg.norm(sim.agent_pose.translation[:2] - before))

    def go_to(self, sim, goal_xy, *, max_steps: int = 300, face_xy=None) -> NavigationResult:
        """Drive to a point, integrating every frame; replans as the map grows."""
        steps = 0
        travelled = 0.0
        goal_xy = np.asarray(goal_xy, float)[:2]
        while steps < max_steps:
            grid = self.grid()
            pose = sim.agent_pose
            path = self.plan(grid, pose.translation[:2], goal_xy)
            if path is None:
                path = self.plan(self.grid(self.tight_radius_m), pose.translation[:2], goal_xy)
            if path is None:
                return NavigationResult(
                    False,
                    "unreachable",
                    f"no path to ({goal_xy[0]:.2f}, {goal_xy[1]:.2f}) in the known map",
                    steps,
                    travelled,
                    _xy(goal_xy),
                )
            self.follower.set_path(path)
            for _ in range(self.replan_every):
                pose = sim.agent_pose
                a = self.follower.next_action(pose.translation[:2], yaw_of(pose))
                if a == "stop" or steps >= max_steps:
                    break
                moved = self._step(sim, a)
                travelled += moved
                steps += 1
                if a == "move_forward" and moved < 0.01:
                    self.follower.note_bump()
                    break  # bumped: plan again around what was felt
            if self.follower.done(sim.agent_pose.translation[:2]):
                break
        else:
            return NavigationResult(
                False, "budget", "step budget used up before reaching the goal", steps, travelled, _xy(goal_xy)
            )
        steps += self._face(sim, face_xy, max_steps - steps)
        return NavigationResult(True, "reached", "reached the goal", steps, travelled, _xy(goal_xy))

    def _face(self, sim, face_xy, budget: int) -> int:
        n = 0
        if face_xy is None:
            return 0
        for _ in range(int(round(math.pi / self.turn_rad)) + 1):
            pose = sim.agent_pose
            a = self.follower.turn_towards(pose.translation[:2], yaw_of(pose), face_xy)
            if a is None or n >= budget:
                break
            self._step(sim, a)
            n += 1
        return n

    # object goals ------------------------------------------------------------------
    def _targets(self, text: str, min_score: float = 0.75) -> list[ObjectTarget]:
        """The objects the robot may go to for ``text``: those the memory ranks first, under the
        same name, and of these the ones named about as surely as the surest (their name's share
        of their label distribution at most ``confidence_margin`` below the best): a detector's
        names are often wrong, and the surer ones are right more often than the nearest one."""
        hits = self.memory.query(text=text, kinds=("object",), k=64, min_score=min_score)
        if not hits:
            return []
        best = hits[0].score
        hits = [h for h in hits if h.score >= best - 0.05 and h.label == hits[0].label]
        surest = max(h.evidence.get("label_share", 1.0) for h in hits)
        return [
            ObjectTarget(
                int(h.id), h.label, np.asarray(h.evidence["box_min"], float), np.asarray(h.evidence["box_max"], float)
            )
            for h in hits
            if h.evidence.get("label_share", 1.0) >= surest - self.confidence_margin
        ]

    def go_to_object(
        self, sim, text: str, *, max_steps: int = 400, explorer=None, explore_steps: int = 200
    ) -> NavigationResult:
        """Object-goal navigation: find ``text`` in memory, go to the cheapest viewpoint of any instance, face it.

        Explores first (with ``explorer``) when memory has no match. The
        distance reported includes any exploring done on the way.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must name an object, got {text!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if self.camera is None:
            self.camera = CameraModel.from_frame(sim.observe())
        if explorer is not None and explorer.bumps is not self.bumps:
            self.bumps.extend(explorer.bumps)
            explorer.bumps = self.bumps
        targets = self._targets(text)
        steps = 0
        travelled = 0.0
        if not targets and explorer is not None:
            budget = min(explore_steps, max_steps)
            while not targets and steps < budget:
                res = explorer.explore(sim, max_steps=min(40, budget - steps), look_around=False)
                steps += res.steps
                tr = np.asarray(res.trajectory_xy, float).reshape(-1, 2)
                if len(tr) > 1:
                    travelled += float(np.linalg.norm(np.diff(tr, axis=0), axis=1).sum())
                self.memory.finalize()
                targets = self._targets(text)
                if res.reason == "no reachable frontier" or res.steps == 0:
                    break
        if not targets and self.closest_match_min_score is not None:
            # nothing named so: what the memory ranks first for the words is the best bet left
            targets = self._targets(text, min_score=self.closest_match_min_score)
        if not targets:
            return NavigationResult(
                False,
                "not found",
                f"nothing in memory matches {text!r}" + (" after exploring" if explorer else ""),
                steps,
                travelled,
            )
        chosen: ObjectTarget | None = None
        goal = None
        failures = 0
        bumps_here = 0
        while steps < max_steps:
            if bumps_here >= 6:
                return NavigationResult(
                    False,
                    "blocked",
                    "blocked: every way on from here bumps into something",
                    steps,
                    travelled,
                    None if goal is None else _xy(goal),
                    None if chosen is None else chosen.object_id,
                )
            xy = sim.agent_pose.translation[:2]
            seen = self.at_viewpoint(xy, targets)
            if seen is not None:
                chosen = seen
                break
            grid = self.grid()
            choice = self.choose_viewpoint(grid, xy, targets)
            if choice is None:
                # boxed in by the margin, or standing in the blind spot under the camera
                choice = self.choose_viewpoint(self.grid(self.tight_radius_m), xy, targets, unknown_near=True)
            if choice is None:
                choice = self.choose_viewpoint(self.grid(0.6 * self.robot_radius_m), xy, targets, unknown_near=True)
            if choice is None:
                failures += 1
                if failures >= 2 or explorer is None:
                    break
                res = explorer.explore(
                    sim, max_steps=min(30, max_steps - steps), look_around=False
                )  # see more, then retry
                steps += res.steps
                tr = np.asarray(res.trajectory_xy, float).reshape(-1, 2)
                if len(tr) > 1:
                    travelled += float(np.linalg.norm(np.diff(tr, axis=0), axis=1).sum())
                self.memory.finalize()
                targets = self._targets(text) or targets
                continue
            chosen, path = choice
            goal = path[-1]
            self.follower.set_path(path)
            arrived = False
            for _ in range(self.replan_every):
                pose = sim.agent_pose
                a = self.follower.next_action(pose.translation[:2], yaw_of(pose))
                if a == "stop":
                    arrived = True
                    break
                if steps >= max_steps:
                    break
                moved = self._step(sim, a)
                travelled += moved
                steps += 1
                if a == "move_forward" and moved < 0.01:
                    bumps_here += 1
                    self.follower.note_bump()
                    break  # bumped: the obstacle is in memory now, plan again
                if moved >= 0.01:
                    bumps_here = 0
                if a == "move_forward" and self.at_viewpoint(sim.agent_pose.translation[:2], [chosen]) is not None:
                    arrived = True
                    break
            if arrived:
                break
        else:
            return NavigationResult(
                False,
                "budget",
                "step budget used up before reaching a view of the object",
                steps,
                travelled,
                None if goal is None else _xy(goal),
                None if chosen is None else chosen.object_id,
                None if chosen is None else _xyz(chosen.centre),
            )
        if chosen is None:
            t = targets[0]
            return NavigationResult(
                False,
                "unreachable",
                f"no reachable viewpoint near the {t.label} (object {t.object_id})",
                steps,
                travelled,
                object_id=t.object_id,
                target_xyz=_xyz(t.centre),
            )
        steps += self._face(sim, chosen.centre[:2], max_steps - steps)
        xy = sim.agent_pose.translation[:2]
        ok = bool(
            self._box_distance(xy, chosen) <= self.stop_distance_m + self.follower.goal_tolerance_m
            and self.sees(xy[None], chosen)[0]
        )
        c = chosen.centre
        msg = (
            f"reached the {chosen.label} (object {chosen.object_id}) at ({c[0]:.2f}, {c[1]:.2f})"
            if ok
            else f"stopped near the {chosen.label} (object {chosen.object_id}) without a clear view"
        )
        return NavigationResult(
            ok,
            "reached" if ok else "no view",
            msg,
            steps,
            travelled,
            _xy(xy) if goal is None else _xy(goal),
            chosen.object_id,
            _xyz(c),
        )
