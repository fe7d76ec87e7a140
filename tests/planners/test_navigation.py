"""Grid navigation: A* agrees with Dijkstra, respects walls, inflation and the follower's geometry."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from engram.planners.navigation import FREE, OBSTACLE, UNKNOWN, PathFollower, TraversabilityGrid, astar


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
        mem = SceneMemory(voxel_size_m=0.1, timeline=False)
        ex = FrontierExplorer(mem, look_around=False)
        first = ex.explore(sim, max_steps=3)
        second = ex.explore(sim, max_steps=3)
        assert first.steps == 3 and second.steps == 3
        assert mem.frames_seen == 1 + 3 + 3
    finally:
        sim.close()
