"""Grid navigation: A* agrees with Dijkstra, respects walls, inflation and the follower's geometry."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from engram.planners.navigation import (
    FREE,
    OBSTACLE,
    UNKNOWN,
    PathFollower,
    TraversabilityGrid,
    astar,
    planning_cost,
    segment_clear,
    shortcut_path,
)


def _grid_graph(cost):
    g = nx.Graph()
    h, w = cost.shape
    for r in range(h):
        for c in range(w):
            if not np.isfinite(cost[r, c]):
                continue
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                nr, nc = r + dr, c + dc
                if not (0 <= nr < h and 0 <= nc < w) or not np.isfinite(cost[nr, nc]):
                    continue
                if dr and dc and (not np.isfinite(cost[r, nc]) or not np.isfinite(cost[nr, c])):
                    continue
                # A* charges the cost of the cell entered; use the symmetric mean for an undirected check on uniform costs
                g.add_edge((r, c), (nr, nc), weight=math.hypot(dr, dc))
    return g


@pytest.mark.parametrize("seed", range(5))
def test_astar_matches_dijkstra_on_random_mazes(seed):
    rng = np.random.default_rng(seed)
    cost = np.where(rng.random((30, 40)) < 0.25, np.inf, 1.0)
    cost[0, 0] = cost[-1, -1] = 1.0
    path = astar(cost, 0, 0, 29, 39)
    g = _grid_graph(cost)
    try:
        expected = nx.dijkstra_path_length(g, (0, 0), (29, 39))
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        assert path is None
        return
    assert path is not None
    assert np.isfinite(cost[path[:, 0], path[:, 1]]).all()
    steps = np.abs(np.diff(path, axis=0))
    assert steps.max() <= 1
    length = float(np.hypot(steps[:, 0], steps[:, 1]).sum())
    assert length == pytest.approx(expected, abs=1e-9)


class FakeOctree:
    """Two rooms split by a wall with a door, floor seen everywhere."""

    voxel_size_m = 0.1

    def __init__(self):
        xs = np.arange(0.05, 6.0, 0.1)
        ys = np.arange(0.05, 3.0, 0.1)
        fx, fy = np.meshgrid(xs, ys)
        floor = np.stack([fx.ravel(), fy.ravel(), np.full(fx.size, 0.05 - 0.1)], 1)
        wall_y = ys[(ys < 1.2) | (ys > 1.8)]  # a door between y=1.2 and y=1.8
        wz = np.arange(0.05, 2.0, 0.1)
        wy, wzz = np.meshgrid(wall_y, wz)
        wall = np.stack([np.full(wy.size, 3.05), wy.ravel(), wzz.ravel()], 1)
        self._occ = np.concatenate([floor, wall])

    def occupied_centers(self):
        return self._occ

    def free_centers(self):
        return np.empty((0, 3))


def test_grid_from_octree_routes_through_the_door():
    grid = TraversabilityGrid.from_octree(FakeOctree(), robot_radius_m=0.2, margin_m=0.0)
    assert (grid.state == OBSTACLE).sum() > 0 and (grid.state == FREE).sum() > 0
    path = grid.plan((1.0, 0.5), (5.0, 0.5))
    assert path is not None
    # it must pass x = 3.05 inside the door opening, away from the door posts by the robot radius
    crossing = path[np.argmin(np.abs(path[:, 0] - 3.05))]
    assert 1.2 + 0.2 - 0.1 <= crossing[1] <= 1.8 - 0.2 + 0.1
    # never on an inflated cell
    rc = grid.world_to_cell(path)
    assert not grid.inflated[rc[:, 0], rc[:, 1]].any()
    # the detour through the door (rise ~0.9 m each way) is longer than the 4 m straight line
    assert grid.path_length(path) > 2 * math.hypot(2.0, 0.85)


def test_unknown_space_is_only_used_when_allowed():
    state = np.full((10, 30), FREE, np.int8)
    state[:, 10:20] = UNKNOWN
    grid = TraversabilityGrid(state, np.zeros(2), 0.1, np.zeros_like(state, bool))
    assert grid.plan((0.05, 0.5), (2.9, 0.5)) is None
    assert grid.plan((0.05, 0.5), (2.9, 0.5), allow_unknown=True) is not None


def test_follower_turns_then_moves():
    f = PathFollower()
    f.set_path(np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]]))
    assert f.next_action((0.0, 0.0), 0.0) == "turn_left"  # the path goes +y, we face +x
    assert f.next_action((0.0, 0.0), math.pi / 2) == "move_forward"
    assert f.next_action((0.0, 0.0), math.pi) == "turn_right"
    assert f.next_action((0.0, 1.95), math.pi / 2) == "stop"


def test_exploration_can_be_resumed_on_the_same_memory():
    """Exploring in chunks (active QA, object search) must not integrate the current view twice."""
    from engram.memory.scene import SceneMemory
    from engram.planners.frontier import FrontierExplorer
    from engram.sims.embedded import EmbeddedSim

    sim = EmbeddedSim(seed=1, width=96, height=72)
    try:
        sim.reset()
        mem = SceneMemory(detector="oracle", voxel_size_m=0.1, timeline=False)
        ex = FrontierExplorer(mem, look_around=False)
        first = ex.explore(sim, max_steps=3)
        second = ex.explore(sim, max_steps=3)
        assert first.steps == 3 and second.steps == 3
        assert mem.frames_seen == 1 + 3 + 3
    finally:
        sim.close()


# any-angle smoothing ----------------------------------------------------------------


def _polyline_length(cells):
    d = np.diff(np.asarray(cells, float), axis=0)
    return float(np.hypot(d[:, 0], d[:, 1]).sum())


@pytest.mark.parametrize("seed", range(5))
def test_shortcut_keeps_a_clear_shorter_subpath(seed):
    rng = np.random.default_rng(100 + seed)
    free = rng.random((40, 50)) >= 0.2
    free[0, 0] = free[-1, -1] = True
    cost = np.where(free, 1.0, np.inf)
    path = astar(cost, 0, 0, 39, 49)
    if path is None:
        pytest.skip("no path in this maze")
    short = shortcut_path(free, path)
    # a subsequence of the grid path, same ends
    pos = [int(np.flatnonzero((path == c).all(1))[0]) for c in short]
    assert pos == sorted(pos) and pos[0] == 0 and pos[-1] == len(path) - 1
    # every straight leg stays on free cells: check with a dense independent sampling
    for a, b in zip(short[:-1], short[1:]):
        t = np.linspace(0, 1, 200)[:, None]
        p = np.rint(a + t * (b - a)).astype(int)
        assert free[p[:, 0], p[:, 1]].all()
    assert _polyline_length(short) <= _polyline_length(path) + 1e-9


def test_shortcut_on_open_floor_is_the_straight_line():
    free = np.ones((30, 30), bool)
    path = astar(np.ones((30, 30)), 2, 3, 25, 17)
    short = shortcut_path(free, path)
    assert len(short) == 2
    assert _polyline_length(short) == pytest.approx(math.hypot(23, 14))


def test_segment_blocked_by_a_wall():
    free = np.ones((20, 20), bool)
    free[:, 10] = False
    free[15:, 10] = True  # a gap at the bottom
    assert not segment_clear(free, np.array([5, 2]), np.array([5, 18]))
    assert segment_clear(free, np.array([17, 2]), np.array([17, 18]))
    assert segment_clear(free, np.array([2, 2]), np.array([2, 9]))


# grid from the octree -------------------------------------------------------------------


def test_grid_cells_align_with_voxels():
    """A straight wall of 5 cm voxels is a gap-free line of obstacle cells on a 5 cm grid."""
    octree = FakeOctree()
    vs = 0.05
    ys = (np.arange(0, 60) + 0.5) * vs
    zs = (np.arange(4, 30) + 0.5) * vs
    wy, wz = np.meshgrid(ys, zs)
    wall = np.stack([np.full(wy.size, 2.025), wy.ravel(), wz.ravel()], 1)
    fx, fy = np.meshgrid((np.arange(0, 80) + 0.5) * vs, ys)
    floor = np.stack([fx.ravel(), fy.ravel(), np.full(fx.size, -0.025)], 1)
    octree._occ = np.concatenate([floor, wall])
    octree.voxel_size_m = vs
    grid = TraversabilityGrid.from_octree(octree, robot_radius_m=0.0, margin_m=0.37)
    obstacle_rows, obstacle_cols = np.nonzero(grid.state == OBSTACLE)
    assert len(np.unique(obstacle_cols)) == 1  # one column of cells
    assert len(obstacle_rows) == len(ys)  # one cell per voxel, none skipped or doubled
    assert (grid.state == FREE).sum() == 80 * 60 - 60


def test_visited_trail_is_traversable_but_obstacles_stay():
    state = np.full((20, 40), FREE, np.int8)
    state[:, 20] = OBSTACLE
    state[10, 20] = FREE
    inflated = np.zeros_like(state, bool)
    inflated[:, 17:24] = True  # the margin closes the one-cell gap
    grid = TraversabilityGrid(state, np.zeros(2), 0.1, inflated)
    assert grid.plan((0.5, 1.05), (3.5, 1.05)) is None
    grid.mark_visited(np.array([[1.0, 1.05], [1.5, 1.05], [2.0, 1.05], [2.5, 1.05], [3.0, 1.05]]))
    assert grid.plan((0.5, 1.05), (3.5, 1.05)) is not None  # the robot went through here
    assert (grid.state[:, 20] == OBSTACLE).sum() == 19


def test_unknown_floor_around_the_robot_frees_a_boxed_in_start():
    state = np.full((40, 40), FREE, np.int8)
    rr, cc = np.mgrid[:40, :40]
    state[(rr - 20) ** 2 + (cc - 20) ** 2 <= 64] = UNKNOWN  # the camera's blind disc, radius 0.4 m
    grid = TraversabilityGrid(state, np.zeros(2), 0.05, np.zeros_like(state, bool))
    robot = grid.cell_to_world(np.array([20, 20]))
    cost, start = planning_cost(grid, robot)
    assert tuple(start) != (20, 20)  # snapped to the nearest known floor, 0.45 m away at most
    assert planning_cost(grid, robot, snap_m=0.2) is None
    cost, start = planning_cost(grid, robot, unknown_radius_m=0.5)
    assert tuple(start) == (20, 20) and np.isfinite(cost[(rr - 20) ** 2 + (cc - 20) ** 2 <= 64]).all()


# object viewpoints ----------------------------------------------------------------------


def _project(world_from_camera, intrinsics, pts):
    cam = (world_from_camera.inverse().matrix @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
    z = cam[:, 2]
    u = intrinsics.fx * cam[:, 0] / z + intrinsics.cx
    v = intrinsics.fy * cam[:, 1] / z + intrinsics.cy
    return (z > 0) & (u >= 0) & (u < intrinsics.width) & (v >= 0) & (v < intrinsics.height)


def test_view_check_agrees_with_the_camera_projection():
    """Where the planner says the object is in view, the real pinhole projection puts it in the image for
    every heading the turn steps can end on; floor objects at the robot's feet are out of view."""
    from engram.memory.scene import SceneMemory
    from engram.planners.navigation import CameraModel, Navigator, ObjectTarget
    from engram.sims.embedded.sim import base_from_camera
    from engram.types import CameraIntrinsics, Pose

    intr = CameraIntrinsics.from_fov(320, 240, 60.0)
    b_from_c = base_from_camera(1.3, 20.0)
    nav = Navigator(SceneMemory(detector="oracle", voxel_size_m=0.1, timeline=False))
    cam = CameraModel(
        eye_z_m=1.3,
        axis_elevation_rad=-math.radians(20.0),
        half_vfov_rad=math.atan2(120, intr.fy),
        half_hfov_rad=math.atan2(160, intr.fx),
    )
    nav.camera = cam
    rng = np.random.default_rng(0)
    agree = 0
    for _ in range(300):
        centre = rng.uniform(-0.2, 0.2, 2)
        height = rng.uniform(0.05, 0.9)
        half = rng.uniform(0.03, 0.3, 2)
        t = ObjectTarget(1, "thing", np.r_[centre - half, 0.0], np.r_[centre + half, height])
        xy = rng.uniform(-2.0, 2.0, (1, 2))
        if np.all(np.abs(xy[0] - centre) < half + 0.2):
            continue
        said = nav.sees(xy, t, check_occlusion=False)[0]
        if not said:
            continue
        agree += 1
        face = math.atan2(*(centre - xy[0])[::-1])
        for err in np.radians([-14.9, 0.0, 14.9]):
            c, s = math.cos(face + err), math.sin(face + err)
            w_from_b = Pose.from_rt(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]), [xy[0, 0], xy[0, 1], 0.0])
            assert _project(w_from_b @ b_from_c, intr, nav._sample_points(t)).any()
    assert agree > 30
    # a ball at the robot's feet is under the camera; two metres ahead it is in view
    ball = ObjectTarget(1, "ball", np.array([-0.1, -0.1, 0.0]), np.array([0.1, 0.1, 0.2]))
    assert not nav.sees(np.array([[0.45, 0.0]]), ball, check_occlusion=False)[0]
    assert nav.sees(np.array([[2.0, 0.0]]), ball, check_occlusion=False)[0]


def test_viewpoint_is_the_cheapest_unoccluded_one():
    """Two mugs: the nearer one by path wins; a wall hides the mug from the robot's side of it."""
    from engram.memory.octree import OccupancyOctree
    from engram.planners.navigation import Navigator, ObjectTarget

    class Mem:
        trajectory: list = []

    vs = 0.05
    octree = OccupancyOctree(vs)
    xs, ys = np.meshgrid((np.arange(0, 120) + 0.5) * vs, (np.arange(0, 80) + 0.5) * vs)
    floor = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, -0.025)], 1)
    # a wall at x = 3.0 from y = 0 to y = 3.0 (open above), full height
    wy, wz = np.meshgrid((np.arange(0, 60) + 0.5) * vs, (np.arange(0, 40) + 0.5) * vs)
    wall = np.stack([np.full(wy.size, 3.025), wy.ravel(), wz.ravel()], 1)
    table = np.stack(np.meshgrid(np.arange(3.3, 3.7, vs), np.arange(1.3, 1.7, vs), [0.725]), -1).reshape(-1, 3)
    octree.update_points(np.concatenate([floor, wall, table]), 3.0)
    mem = Mem()
    mem.octree = octree
    nav = Navigator(mem, robot_radius_m=0.2)
    grid = nav.grid()
    mug = ObjectTarget(1, "mug", np.array([3.45, 1.45, 0.75]), np.array([3.55, 1.55, 0.85]))
    start = np.array([1.0, 1.5])
    choice = nav.choose_viewpoint(grid, start, [mug])
    assert choice is not None
    t, path = choice
    goal = path[-1]
    # the goal is on the mug's side of the wall, reached around its open end (y > 3.0)
    assert goal[0] > 3.0 + 0.2 and path[:, 1].max() > 3.0
    assert nav._box_distance(goal, mug) <= nav.view_distance_m + 1e-9
    # a second mug in the robot's room is nearer by path: chosen instead
    near = ObjectTarget(2, "mug", np.array([1.0, 0.4, 0.75]), np.array([1.1, 0.5, 0.85]))
    t2, path2 = nav.choose_viewpoint(grid, start, [mug, near])
    assert t2.object_id == 2 and grid.path_length(path2) < grid.path_length(path)


def test_a_bump_blocks_the_driven_trail():
    """The trail the robot drove is passable, except where a move was blocked."""
    from engram.planners.navigation import memory_grid
    from engram.types import Pose

    class Mem:
        octree = FakeOctree()
        trajectory = [(i, 0.25 * i, Pose.from_rt(np.eye(3), [0.5 + 0.25 * i, 0.5, 1.3]).matrix) for i in range(10)]

    free = memory_grid(Mem(), robot_radius_m=0.2)
    assert free.plan((0.5, 0.5), (2.7, 0.5)) is not None
    bumped = memory_grid(Mem(), robot_radius_m=0.2, bumps_xy=[(1.5, 0.5)])
    cell = bumped.world_to_cell(np.array([1.5, 0.5]))
    assert not bumped.traversable()[cell[0], cell[1]]
    path = bumped.plan((0.5, 0.5), (2.5, 0.5))
    assert path is not None and np.linalg.norm(path - [1.5, 0.5], axis=1).min() >= 0.2 - 0.05


def test_object_goal_that_memory_does_not_know_ends_at_once():
    from engram.planners.navigation import Navigator

    class Mem:
        octree = FakeOctree()
        trajectory: list = []

        def query(self, **kwargs):
            return []

    class Sim:
        def observe(self):
            return None

    nav = Navigator(Mem())
    res = nav.go_to_object(Sim(), "unicorn", max_steps=50)
    assert not res.success and res.status == "not found" and res.steps == 0 and "unicorn" in res.message
    with pytest.raises(ValueError, match="text"):
        nav.go_to_object(Sim(), "  ")
    with pytest.raises(ValueError, match="max_steps"):
        nav.go_to_object(Sim(), "mug", max_steps=0)


def _octree_memory():
    """A real SceneMemory whose map is FakeOctree's two rooms (floor and wall seen, door open)."""
    from engram.memory.scene import SceneMemory

    mem = SceneMemory(voxel_size_m=0.1, timeline=False)
    mem.octree.update_points(FakeOctree().occupied_centers(), 3.0)
    return mem


def test_a_felt_obstacle_can_be_taken_back_but_a_seen_one_stays():
    from types import SimpleNamespace

    from engram.planners.navigation import forget_bump, memory_grid, record_bump
    from engram.types import Pose

    mem = _octree_memory()

    def route():
        return memory_grid(mem, robot_radius_m=0.2).plan((1.0, 0.5), (5.0, 0.5))

    assert route() is not None
    bumped = SimpleNamespace(meta={"collided": True})
    facing_x = Pose.from_rt(np.eye(3), [3.05 - 0.22, 1.5, 0.0])
    assert record_bump(mem, SimpleNamespace(meta={}), facing_x, 0.2) is None  # not blocked: nothing felt
    assert route() is not None
    xy = record_bump(mem, bumped, facing_x, 0.2)
    assert np.allclose(xy, [3.05, 1.5])
    assert route() is None  # the felt column shuts the only door
    forget_bump(mem, xy)
    assert route() is not None
    # a bump against the wall, taken back: the wall the camera saw is still there
    wall = mem.octree.occupied_centers()
    xy = record_bump(mem, bumped, Pose.from_rt(np.eye(3), [3.05 - 0.22, 0.55, 0.0]), 0.2)
    forget_bump(mem, xy)
    assert {tuple(p) for p in np.round(wall, 3)} == {tuple(p) for p in np.round(mem.octree.occupied_centers(), 3)}


def test_explorer_takes_back_felt_obstacles_before_giving_up():
    """No frontier reachable with felt obstacles in the map: forget them, look again, then stop."""
    from types import SimpleNamespace

    from engram.planners.frontier import FrontierExplorer
    from engram.types import Pose

    class Mem:
        octree = FakeOctree()
        trajectory = []
        floor_z_m = 0.0
        last_timestamp_s = None

        def __init__(self):
            self.marks = []

        def integrate(self, frame):
            self.last_timestamp_s = frame.timestamp_s

        def mark_obstacle(self, points, log_odds=2.0):
            self.marks.append((np.asarray(points)[:, :2].mean(0).round(3).tolist(), log_odds))

    class Sim:
        agent_pose = Pose.from_rt(np.eye(3), [1.0, 0.5, 0.0])

        def observe(self):
            return SimpleNamespace(timestamp_s=0.0, meta={})

    mem = Mem()
    ex = FrontierExplorer(mem, look_around=False, max_forgets=1)
    ex.felt = [np.array([3.05, 1.5])]
    tries = []

    def choose(grid, xy, unknown_radius_m=0.0):
        tries.append(len(ex.felt))
        return None

    ex.choose = choose
    res = ex.explore(Sim(), max_steps=10)
    assert res.reason == "no reachable frontier"
    assert tries == [1, 1, 1, 0, 0, 0]  # three plans with the felt obstacle, three after taking it back
    assert mem.marks == [([3.05, 1.5], -2.01)] and ex.felt == [] and ex.forgets == 1


def test_object_goal_named_by_nothing_falls_back_to_the_closest_match():
    """No object is named after the goal: before giving up, the navigator asks the memory's
    text query for its best object at the lower score (a related word, a second guess)."""
    from engram.planners.navigation import Navigator

    class Hit:
        def __init__(self, score):
            self.id, self.label, self.score = 7, "cabinet", score
            self.evidence = {"box_min": [1.0, 1.0, 0.0], "box_max": [1.5, 1.5, 0.9]}

    class Mem:
        octree = FakeOctree()
        trajectory: list = []

        def __init__(self, best):
            self.best, self.asked = best, []

        def query(self, text, kinds, k, min_score):
            self.asked.append(min_score)
            return [Hit(self.best)] if self.best >= min_score else []

    class Sim:
        def observe(self):
            return None

    # a related object scoring 0.6: not a match (0.75), but the closest one (0.5)
    nav = Navigator(Mem(0.6))
    assert nav._targets("fridge") == []
    assert [t.object_id for t in nav._targets("fridge", min_score=nav.closest_match_min_score)] == [7]
    # nothing close either: asked at 0.75, then at 0.5, then "not found"; with the fallback off, once
    mem = Mem(0.3)
    res = Navigator(mem).go_to_object(Sim(), "fridge", max_steps=50)
    assert res.status == "not found" and mem.asked == [0.75, 0.5]
    mem = Mem(0.6)
    res = Navigator(mem, closest_match_min_score=None).go_to_object(Sim(), "fridge", max_steps=50)
    assert res.status == "not found" and mem.asked == [0.75]
    with pytest.raises(ValueError, match="closest_match_min_score"):
        Navigator(mem, closest_match_min_score=0.9)


def test_of_the_objects_named_after_the_goal_the_robot_goes_to_the_surer_ones():
    """Three "book"s: the navigator's targets are the two named about as surely as the surest,
    not the one whose name is a toss-up (however near it is: the viewpoint choice sees only targets)."""
    from engram.planners.navigation import Navigator

    class Hit:
        def __init__(self, oid, share, score=1.0, label="book"):
            self.id, self.label, self.score = oid, label, score
            self.evidence = {"box_min": [oid, 1.0, 0.0], "box_max": [oid + 0.3, 1.3, 0.1], "label_share": share}

    class Mem:
        octree = FakeOctree()
        trajectory: list = []

        def query(self, text, kinds, k, min_score):
            return [Hit(1, 0.9), Hit(2, 0.8), Hit(3, 0.4), Hit(4, 0.95, score=0.7, label="magazine")]

    assert [t.object_id for t in Navigator(Mem())._targets("book")] == [1, 2]
    assert [t.object_id for t in Navigator(Mem(), confidence_margin=1.0)._targets("book")] == [1, 2, 3]
    with pytest.raises(ValueError, match="confidence_margin"):
        Navigator(Mem(), confidence_margin=1.5)
