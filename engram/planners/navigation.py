"""Navigation on what the memory knows: a 2D traversability grid, A*, path following.

The grid is derived from the octree alone (never from simulator truth):

* a cell is an *obstacle* if any occupied voxel above it lies in the obstacle
  band (between ``step_height_m`` above the floor and the robot's height);
* it is *free* if the floor under it was seen (occupied voxels in the floor
  band) or the space just above the floor was seen free, and it is no obstacle;
* everything else is *unknown*.

Obstacles are inflated by the robot radius. A* (numba, 8-connected, octile
heuristic) runs on the inflated grid; unknown cells can be allowed at a cost
for exploration. `PathFollower` turns a path into the discrete actions every
driven source understands (move_forward, turn_left, turn_right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["TraversabilityGrid", "astar", "distance_map", "PathFollower", "Navigator", "NavigationResult", "UNKNOWN", "FREE", "OBSTACLE"]

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
    if not ok:
        return None
    out = [(gr, gc)]
    cur = parent[gr, gc]
    while cur >= 0:
        out.append((cur // w, cur % w))
        cur = parent[cur // w, cur % w]
    return np.array(out[::-1], dtype=np.int64)


def yaw_of(pose) -> float:
    """Heading (radians, about +z) of a z-up ``world_from_base`` pose."""
    r = pose.rotation
    return math.atan2(r[1, 0], r[0, 0])


def distance_map(cost: np.ndarray, sr: int, sc: int) -> np.ndarray:
    """Path cost from (sr, sc) to every cell (Dijkstra, same moves as `astar`); inf where unreachable."""
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if not np.isfinite(cost[sr, sc]):
        return np.full(cost.shape, np.inf)
    _, g, _ = _astar_kernel(cost, sr, sc, -1, -1)
    return g


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

    def set_path(self, path: np.ndarray | None) -> None:
        self.path = None if path is None else np.asarray(path, dtype=np.float64)

    def done(self, xy) -> bool:
        return self.path is None or float(np.linalg.norm(self.path[-1] - np.asarray(xy)[:2])) <= self.goal_tolerance_m

    def next_action(self, xy, yaw_rad: float) -> str:
        if self.done(xy):
            return "stop"
        p = np.asarray(xy, dtype=np.float64)[:2]
        d = np.linalg.norm(self.path - p, axis=1)
        i = int(np.argmin(d))
        # the first waypoint at least lookahead away, past the closest one
        ahead = np.flatnonzero(d[i:] >= self.lookahead_m)
        target = self.path[i + ahead[0]] if len(ahead) else self.path[-1]
        heading = math.atan2(target[1] - p[1], target[0] - p[0])
        err = (heading - yaw_rad + math.pi) % (2 * math.pi) - math.pi
        if abs(err) > self.turn_rad / 2:
            return "turn_left" if err > 0 else "turn_right"
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


@dataclass
class NavigationResult:
    """How a navigation episode ended.

    Attributes:
        success: reached the goal (the planner's own judgement, from memory).
        status: "reached", "unreachable", "not found", "budget".
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


class Navigator:
    """Point-goal and object-goal navigation from memory.

    Short range: A* on the traversability grid. Long range (goals beyond
    ``long_range_m``): a route over the place graph first, then A* between
    consecutive places, which keeps each A* search small.

    Args:
        memory: a SceneMemory.
        robot_radius_m: obstacle inflation.
        view_distance_m: object goals stop this far from the object's box.
        replan_every: steps between replans.
    """

    def __init__(
        self,
        memory,
        *,
        robot_radius_m: float = 0.25,
        floor_z_m: float = 0.0,
        view_distance_m: float = 0.7,
        replan_every: int = 10,
        long_range_m: float = 8.0,
        turn_deg: float = 30.0,
    ) -> None:
        self.memory = memory
        self.robot_radius_m = robot_radius_m
        self.floor_z_m = floor_z_m
        self.view_distance_m = view_distance_m
        self.replan_every = replan_every
        self.long_range_m = long_range_m
        self.follower = PathFollower(turn_deg=turn_deg)

    def grid(self) -> TraversabilityGrid:
        return TraversabilityGrid.from_octree(
            self.memory.octree, floor_z_m=self.floor_z_m, robot_radius_m=self.robot_radius_m
        )

    def viewpoint(self, grid: TraversabilityGrid, start_xy, box_min, box_max) -> tuple[np.ndarray, np.ndarray] | None:
        """A reachable cell from which the object's box is close and in view, and the path to it."""
        box_min = np.asarray(box_min, float)
        box_max = np.asarray(box_max, float)
        centre = (box_min[:2] + box_max[:2]) / 2
        half = (box_max[:2] - box_min[:2]) / 2
        trav = grid.traversable()
        rows, cols = np.nonzero(trav)
        if not len(rows):
            return None
        xy = grid.cell_to_world(np.stack([rows, cols], 1))
        # distance from each free cell to the object's footprint
        d = np.linalg.norm(np.maximum(np.abs(xy - centre) - half, 0.0), axis=1)
        ring = (d >= 0.25) & (d <= self.view_distance_m + 0.3)
        if not ring.any():
            ring = d <= self.view_distance_m + 0.8
        if not ring.any():
            return None
        cand = xy[ring]
        cd = d[ring]
        # prefer cells near the wanted distance and near the start
        score = np.abs(cd - self.view_distance_m) + 0.15 * np.linalg.norm(cand - np.asarray(start_xy)[:2], axis=1)
        order = np.argsort(score)[:200]
        # keep viewpoints that see the object: nothing occupied between the camera and the box
        target = (box_min + box_max) / 2
        seen = self._line_of_sight(cand[order], target, box_min, box_max)
        order = np.concatenate([order[seen], order[~seen]])  # fall back to blind ones if none sees it
        for i in order[:8]:
            path = self.plan(grid, start_xy, cand[i])
            if path is not None:
                return cand[i], path
        return None

    def _line_of_sight(self, xy: np.ndarray, target: np.ndarray, box_min, box_max, eye_height_m: float = 1.2) -> np.ndarray:
        """For floor points ``xy``, whether a camera there sees the box (the first occupied voxel is in it)."""
        if not len(xy):
            return np.zeros(0, bool)
        origins = np.c_[xy, np.full(len(xy), self.floor_z_m + eye_height_m)]
        d = target - origins
        dist = np.linalg.norm(d, axis=1)
        hit, pts = self.memory.octree.cast_ray(origins, d / np.maximum(dist, 1e-9)[:, None], float(dist.max() + 0.5))
        slack = 2 * self.memory.octree.voxel_size_m
        inside = np.all((pts >= np.asarray(box_min) - slack) & (pts <= np.asarray(box_max) + slack), axis=1)
        far = np.linalg.norm(pts - origins, axis=1) >= dist - slack
        with np.errstate(invalid="ignore"):
            return ~hit | inside | far

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
                legs = []
                cur = start_xy
                for wp in list(np.asarray(route)[1:-1, :2]) + [goal_xy]:
                    leg = grid.plan(cur, wp)
                    if leg is None:
                        legs = None
                        break
                    legs.append(leg if not legs else leg[1:])
                    cur = leg[-1]
                if legs:
                    return np.concatenate(legs)
        return grid.plan(start_xy, goal_xy)

    def go_to(self, sim, goal_xy, *, max_steps: int = 300, face_xy=None) -> NavigationResult:
        """Drive to a point, integrating every frame; replans as the map grows."""
        steps = 0
        travelled = 0.0
        goal_xy = np.asarray(goal_xy, float)[:2]
        last = sim.agent_pose.translation[:2].copy()
        fails = 0
        while steps < max_steps:
            grid = self.grid()
            pose = sim.agent_pose
            path = self.plan(grid, pose.translation[:2], goal_xy)
            if path is None:
                fails += 1
                if fails >= 2:
                    return NavigationResult(False, "unreachable", f"no path to ({goal_xy[0]:.2f}, {goal_xy[1]:.2f}) in the known map", steps, travelled, tuple(goal_xy))
                continue
            self.follower.set_path(path)
            for _ in range(self.replan_every):
                pose = sim.agent_pose
                a = self.follower.next_action(pose.translation[:2], yaw_of(pose))
                if a == "stop" or steps >= max_steps:
                    break
                frame = sim.step(a)
                self.memory.integrate(frame)
                steps += 1
                if a == "move_forward" and hasattr(self.memory, "mark_obstacle"):
                    from engram.planners.frontier import record_bump

                    record_bump(self.memory, frame, sim.agent_pose, self.robot_radius_m)
                now = sim.agent_pose.translation[:2]
                travelled += float(np.linalg.norm(now - last))
                last = now.copy()
            if self.follower.done(sim.agent_pose.translation[:2]):
                break
        else:
            return NavigationResult(False, "budget", "step budget used up before reaching the goal", steps, travelled, tuple(goal_xy))
        if face_xy is not None:
            for _ in range(12):
                pose = sim.agent_pose
                a = self.follower.turn_towards(pose.translation[:2], yaw_of(pose), face_xy)
                if a is None or steps >= max_steps:
                    break
                self.memory.integrate(sim.step(a))
                steps += 1
        return NavigationResult(True, "reached", "reached the goal", steps, travelled, tuple(map(float, goal_xy)))

    def go_to_object(self, sim, text: str, *, max_steps: int = 400, explorer=None, explore_steps: int = 200) -> NavigationResult:
        """Object-goal navigation: find ``text`` in memory, go to a viewpoint near it, face it.

        Explores first (with ``explorer``) when memory has no match.
        """
        hits = self.memory.query(text=text, kinds=("object",), k=1, min_score=0.75)
        explored = 0
        if not hits and explorer is not None:
            budget = min(explore_steps, max_steps)
            while not hits and explored < budget:
                res = explorer.explore(sim, max_steps=min(40, budget - explored))
                explored += res.steps
                self.memory.finalize()
                hits = self.memory.query(text=text, kinds=("object",), k=1, min_score=0.75)
                if res.reason == "no reachable frontier" or res.steps == 0:
                    break
        if not hits:
            return NavigationResult(False, "not found", f"nothing in memory matches {text!r}" + (" after exploring" if explorer else ""), explored)
        hit = hits[0]
        box_min = np.asarray(hit.evidence["box_min"])
        box_max = np.asarray(hit.evidence["box_max"])
        target = (box_min + box_max) / 2
        grid = self.grid()
        vp = self.viewpoint(grid, sim.agent_pose.translation[:2], box_min, box_max)
        if vp is None:
            return NavigationResult(False, "unreachable", f"no reachable viewpoint near the {hit.label} (object {hit.id})", explored, object_id=hit.id, target_xyz=tuple(map(float, target)))
        goal, _ = vp
        res = self.go_to(sim, goal, max_steps=max_steps - explored, face_xy=target[:2])
        res.steps += explored
        res.object_id = hit.id
        res.target_xyz = tuple(map(float, target))
        if res.success:
            res.message = f"reached the {hit.label} (object {hit.id}) at ({target[0]:.2f}, {target[1]:.2f})"
        return res
