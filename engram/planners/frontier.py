"""Frontier exploration from memory alone.

Candidates are frontier regions: traversable floor cells of the memory's
grid that touch unknown space, clustered into regions (the memory's 3D-Mem
frontier snapshots point at the same regions). Each region is scored by
expected gain (its size, in metres of boundary) against the A* path cost to
reach it; the agent follows the path with discrete actions, replans as the
map grows, looks around on arrival, and stops at a coverage goal, when no
reachable frontier is left, or at the step budget.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engram.planners.navigation import (
    UNKNOWN,
    PathFollower,
    TraversabilityGrid,
    densify,
    distance_field,
    forget_bump,
    memory_grid,
    planning_cost,
    record_bump,
    shortcut_path,
    trace_path,
    yaw_of,
)

__all__ = ["FrontierRegion", "grid_frontiers", "FrontierExplorer", "ExplorationResult", "yaw_of", "record_bump"]


@dataclass
class FrontierRegion:
    """A connected stretch of frontier cells.

    Attributes:
        center_xy: the member cell nearest the region's mean (so it lies on the frontier).
        size_m: boundary length (cells x resolution).
        direction_xy: unit vector toward the unknown side.
    """

    center_xy: np.ndarray
    size_m: float
    direction_xy: np.ndarray
    cells: np.ndarray


def grid_frontiers(grid: TraversabilityGrid, min_size_m: float = 0.3) -> list[FrontierRegion]:
    """Frontier regions of a traversability grid (free, traversable cells with an unknown 4-neighbour)."""
    import cv2

    trav = grid.traversable()
    unk = grid.state == UNKNOWN
    pad = np.pad(unk, 1, constant_values=True)
    touch = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
    front = trav & touch
    if not front.any():
        return []
    n, lab = cv2.connectedComponents(front.astype(np.uint8), connectivity=8)
    rows, cols = np.nonzero(lab)
    ids = lab[rows, cols]
    order = np.argsort(ids, kind="stable")
    rows, cols, ids = rows[order], cols[order], ids[order]
    bounds = np.searchsorted(ids, np.arange(1, n + 1))
    # direction toward unknown: mean offset of unknown cells in a 5x5 window
    unk_f = unk.astype(np.float32)
    gy = cv2.Sobel(unk_f, cv2.CV_32F, 0, 1, ksize=5)
    gx = cv2.Sobel(unk_f, cv2.CV_32F, 1, 0, ksize=5)
    out = []
    for k in range(1, n):
        a, b = bounds[k - 1], bounds[k]
        if (b - a) * grid.resolution_m < min_size_m:
            continue
        rc = np.stack([rows[a:b], cols[a:b]], 1)
        mean = rc.mean(axis=0)
        centre = rc[np.argmin(((rc - mean) ** 2).sum(1))]
        d = np.array([gx[rc[:, 0], rc[:, 1]].sum(), gy[rc[:, 0], rc[:, 1]].sum()])  # (x=col, y=row)
        nd = np.linalg.norm(d)
        out.append(
            FrontierRegion(
                center_xy=grid.cell_to_world(centre),
                size_m=float((b - a) * grid.resolution_m),
                direction_xy=d / nd if nd > 0 else np.zeros(2),
                cells=rc,
            )
        )
    return out


@dataclass
class ExplorationResult:
    steps: int
    frames: int
    reason: str
    trajectory_xy: list[tuple[float, float]] = field(default_factory=list)
    goals_xy: list[tuple[float, float]] = field(default_factory=list)


class FrontierExplorer:
    """Explore with frontiers until the budget or the coverage goal.

    Args:
        memory: a SceneMemory (anything with ``integrate(frame)`` and ``octree``).
        robot_radius_m: obstacle inflation.
        replan_every: steps between replans while following a path.
        min_frontier_m: ignore frontier regions shorter than this.
        distance_weight: how much path length costs against frontier size.
        look_around: turn a full circle at the start and after reaching a frontier.
        blacklist_radius_m: frontiers near a goal that could not be reached are skipped.
        unknown_radius_m: when no frontier is reachable, unknown floor this close to the robot
            counts as passable (the camera never sees the floor right around the robot).
        max_forgets: when no frontier is reachable while obstacles felt from bumps are in the map,
            take those guesses back and try again, at most this many times per exploration.
    """

    def __init__(
        self,
        memory,
        *,
        robot_radius_m: float = 0.25,
        floor_z_m: float = 0.0,
        replan_every: int = 8,
        min_frontier_m: float = 0.3,
        distance_weight: float = 1.0,
        look_around: bool = True,
        turn_deg: float = 30.0,
        blacklist_radius_m: float = 0.5,
        unknown_radius_m: float = 1.0,
        max_forgets: int = 3,
    ) -> None:
        self.memory = memory
        self.robot_radius_m = robot_radius_m
        self.tight_radius_m = 0.8 * robot_radius_m
        self.squeeze_radius_m = 0.6 * robot_radius_m
        self.floor_z_m = floor_z_m
        self.replan_every = replan_every
        self.min_frontier_m = min_frontier_m
        self.distance_weight = distance_weight
        self.look_around = look_around
        self.turns_per_circle = int(round(360.0 / turn_deg))
        self.blacklist_radius_m = blacklist_radius_m
        self.unknown_radius_m = unknown_radius_m
        self.follower = PathFollower(turn_deg=turn_deg)
        self.blacklist: list[np.ndarray] = []
        # the last few places where a move was blocked: kept out of plans even on the driven trail. Only a
        # few, because where the contact was is a guess (straight ahead); an old wrong guess must not wall
        # off a doorway for good (the octree keeps the felt obstacle until the camera sees otherwise)
        self.bumps: deque[np.ndarray] = deque(maxlen=3)
        # every obstacle this explorer marked from a bump and has not taken back: where the contact was is a
        # guess (straight ahead), so a side contact in a narrow passage can mark the passage itself shut
        self.felt: list[np.ndarray] = []
        self.max_forgets = max_forgets
        self.forgets = 0

    def grid(self, radius_m: float | None = None) -> TraversabilityGrid:
        return memory_grid(
            self.memory, floor_z_m=self.floor_z_m, robot_radius_m=radius_m or self.robot_radius_m, bumps_xy=self.bumps
        )

    def choose(
        self, grid: TraversabilityGrid, xy: np.ndarray, unknown_radius_m: float = 0.0
    ) -> tuple[FrontierRegion, np.ndarray] | None:
        """The best frontier and the path to it, or None when none is reachable.

        One Dijkstra pass from the agent gives the path cost to every frontier
        cell; a region's cost is that of its nearest cell, and its utility is
        size / (1 + weight x cost). ``unknown_radius_m``: unknown cells this
        close to the robot are passable (see `planning_cost`).
        """
        regions = grid_frontiers(grid, self.min_frontier_m)
        regions = [
            r for r in regions if all(np.linalg.norm(r.center_xy - b) > self.blacklist_radius_m for b in self.blacklist)
        ]
        if not regions:
            return None
        cm = planning_cost(grid, xy, unknown_radius_m)
        if cm is None:
            return None
        cost, (sr, sc) = cm
        dist, parent = distance_field(cost, sr, sc)
        dist = dist * grid.resolution_m
        best = None
        for r in regions:
            d = dist[r.cells[:, 0], r.cells[:, 1]]
            i = int(np.argmin(d))
            if not np.isfinite(d[i]):
                continue
            util = r.size_m / (1.0 + self.distance_weight * float(d[i]))
            if best is None or util > best[0]:
                best = (util, r, r.cells[i])
        if best is None:
            return None
        _, region, cell = best
        cells = shortcut_path(np.isfinite(cost), trace_path(parent, int(cell[0]), int(cell[1])))
        return region, densify(grid.cell_to_world(cells), 0.25)

    def forget_felt(self) -> int:
        """Take back every obstacle this explorer marked from a bump; returns how many."""
        n = len(self.felt)
        for xy in self.felt:
            forget_bump(self.memory, xy)
        self.felt.clear()
        self.bumps.clear()
        self.forgets += 1
        return n

    def explore(
        self,
        sim,
        max_steps: int = 400,
        coverage_fn: Callable[[], float] | None = None,
        coverage_goal: float = 1.0,
        on_frame: Callable | None = None,
        progress: bool = False,
        look_around: bool | None = None,
    ) -> ExplorationResult:
        """Drive ``sim`` (reset already) and integrate every frame into the memory.

        ``look_around`` overrides the constructor's choice for this call (a
        resumed search need not turn a full circle again).
        """
        steps = 0
        frames = 0
        traj: list[tuple[float, float]] = []
        goals: list[tuple[float, float]] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_steps, desc="explore", unit="step")

        def act(action: str) -> None:
            nonlocal steps, frames
            frame = sim.step(action)
            steps += 1
            self.memory.integrate(frame)
            if action == "move_forward" and hasattr(self.memory, "mark_obstacle"):
                bump = record_bump(self.memory, frame, sim.agent_pose, self.robot_radius_m)
                if bump is not None:
                    self.bumps.append(bump)
                    self.felt.append(bump)
            frames += 1
            p = sim.agent_pose.translation
            traj.append((float(p[0]), float(p[1])))
            if on_frame is not None:
                on_frame(frame)
            if bar is not None:
                bar.update(1)

        def spin() -> None:
            for _ in range(self.turns_per_circle):
                if steps >= max_steps:
                    return
                act("turn_left")

        reason = "budget"
        frame0 = sim.observe()
        # a resumed exploration sees the frame the memory already has: integrate it once only
        if getattr(self.memory, "last_timestamp_s", None) != frame0.timestamp_s:
            self.memory.integrate(frame0)
            frames += 1
        if self.look_around if look_around is None else look_around:
            spin()
        stuck = 0
        rounds = 0
        while steps < max_steps and rounds < 4 * max_steps + 10:
            rounds += 1
            if coverage_fn is not None and coverage_fn() >= coverage_goal:
                reason = "coverage goal"
                break
            grid = self.grid()
            pose = sim.agent_pose
            xy = pose.translation[:2].copy()
            choice = self.choose(grid, xy)
            if choice is None:
                # boxed in by the safety margin or standing in the camera's blind spot:
                # plan with the body's own radius, through unknown floor right around the robot
                choice = self.choose(self.grid(self.tight_radius_m), xy, unknown_radius_m=self.unknown_radius_m)
            if choice is None:
                # a passage the body fits through only on the voxels' rounding (bumps will tell)
                choice = self.choose(self.grid(self.squeeze_radius_m), xy, unknown_radius_m=self.unknown_radius_m)
            if choice is None and self.felt and self.forgets < self.max_forgets:
                # every way on may be shut by obstacles only felt, at guessed places: take them back and
                # look again (a real obstacle is felt again, or seen, and the budget bounds the retries)
                self.forget_felt()
                continue
            if choice is None:
                reason = "no reachable frontier"
                break
            region, path = choice
            goals.append((float(region.center_xy[0]), float(region.center_xy[1])))
            self.follower.set_path(path)
            steps_before = steps
            moved = 0
            start_xy = xy.copy()
            for _ in range(self.replan_every):
                if steps >= max_steps:
                    break
                pose = sim.agent_pose
                a = self.follower.next_action(pose.translation[:2], yaw_of(pose))
                if a == "stop":
                    break
                before = sim.agent_pose.translation[:2].copy()
                act(a)
                moved += 1
                if a == "move_forward" and np.linalg.norm(sim.agent_pose.translation[:2] - before) < 0.01:
                    self.follower.note_bump()
                    break  # bumped: plan again around what was felt
            pose = sim.agent_pose
            if self.follower.done(pose.translation[:2]):
                # arrived: face the unknown side of the frontier
                target = pose.translation[:2] + region.direction_xy
                for _ in range(self.turns_per_circle // 2):
                    if steps >= max_steps:
                        break
                    turn = self.follower.turn_towards(sim.agent_pose.translation[:2], yaw_of(sim.agent_pose), target)
                    if turn is None:
                        break
                    act(turn)
                # seen from here; if it is still a frontier, it cannot be seen better
                self.blacklist.append(region.center_xy)
            if steps == steps_before:
                self.blacklist.append(region.center_xy)  # nothing to do for this one: never pick it again
            if np.linalg.norm(pose.translation[:2] - start_xy) < 0.05 and moved:
                stuck += 1
                if stuck >= 3:
                    self.blacklist.append(region.center_xy)
                    stuck = 0
            else:
                stuck = 0
        if bar is not None:
            bar.close()
        return ExplorationResult(steps=steps, frames=frames, reason=reason, trajectory_xy=traj, goals_xy=goals)
