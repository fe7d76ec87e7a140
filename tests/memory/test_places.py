"""The place graph on synthetic octrees: edges never cross walls, routes go through doors."""

from __future__ import annotations

import types

import numpy as np
import pytest

from engram.memory.places import PlaceGraph
from engram.types import Pose

octree_mod = pytest.importorskip("engram.memory.octree")
OccupancyOctree = octree_mod.OccupancyOctree

VOXEL = 0.05
DOOR = (1.0, 2.0)  # y range of the door in the wall at x = 3


def box_centres(lo, hi, voxel=VOXEL):
    axes = [np.arange(np.floor(a / voxel) + 0.5, np.ceil(b / voxel), 1.0) * voxel for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def two_rooms():
    """Free floor x 0..6, y 0..3 (band 0.1..1.5 m) split by a wall at x 3.0..3.1 with a door."""
    tree = OccupancyOctree(VOXEL)
    tree.update_points(box_centres((0.0, 0.0, 0.1), (6.0, 3.0, 1.5)), -2.0)
    for lo, hi in (((3.0, 0.0, 0.0), (3.1, DOOR[0], 2.0)), ((3.0, DOOR[1], 0.0), (3.1, 3.0, 2.0))):
        tree.remove_points(box_centres(lo, hi))
        tree.update_points(box_centres(lo, hi), 3.0)
    return tree


def crossings_outside_door(graph: PlaceGraph) -> list:
    """Edges whose segment crosses the wall slab x in [3.0, 3.1] outside the door (pure geometry)."""
    bad = []
    for a, b in graph.graph.edges:
        pa, pb = graph.position(a)[:2], graph.position(b)[:2]
        if (pa[0] - 3.05) * (pb[0] - 3.05) >= 0 and not (3.0 <= pa[0] <= 3.1 or 3.0 <= pb[0] <= 3.1):
            continue
        # y where the segment is inside the slab
        ts = np.linspace(0, 1, 400)
        pts = pa + (pb - pa) * ts[:, None]
        in_slab = (pts[:, 0] >= 3.0) & (pts[:, 0] <= 3.1)
        if np.any(in_slab & ((pts[:, 1] < DOOR[0]) | (pts[:, 1] > DOOR[1]))):
            bad.append((a, b))
    return bad


def test_free_space_places_and_edges_never_cross_the_wall():
    tree = two_rooms()
    g = PlaceGraph(spacing_m=1.0, clearance_m=0.2)
    # a walk that jumps across the wall (1.2 m apart): a path edge the octree must later reject
    g.add_pose((2.6, 0.5, 1.2), 0.0, 0)
    g.add_pose((3.6, 0.3, 1.2), 1.0, 1)
    assert g.graph.number_of_edges() == 1
    new = g.add_free_space(tree)
    assert new and crossings_outside_door(g) == []
    assert not g.graph.has_edge(0, 1)
    # the octree's own ray casting (DDA, independent of the edge sampling) finds nothing along any edge
    a = np.stack([g.position(u) for u, _ in g.graph.edges])
    b = np.stack([g.position(v) for _, v in g.graph.edges])
    for z in (0.3, 0.8, 1.3):
        dz = np.array([0.0, 0.0, z])
        hit, _ = tree.cast_ray(a + dz, b - a, np.linalg.norm(b - a, axis=1))
        assert not hit.any()
    # places are about 1 m apart and cover the free floor
    xy = np.stack([g.position(p)[:2] for p in g.graph.nodes])
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) + np.eye(len(xy)) * 99
    assert d.min() >= 0.75 - 1e-9
    probe = np.random.default_rng(0).random((300, 2)) * [6.0, 3.0]
    nearest = np.sqrt(((probe[:, None] - xy[None]) ** 2).sum(-1)).min(axis=1)
    assert nearest.max() < 1.3
    # no free-space place sits in the wall or within the clearance of it
    free_xy = np.stack([g.position(p)[:2] for p in new])
    assert not np.any(
        (free_xy[:, 0] > 3.0 - 0.2)
        & (free_xy[:, 0] < 3.1 + 0.2)
        & ((free_xy[:, 1] < DOOR[0]) | (free_xy[:, 1] > DOOR[1]))
    )
    # a route from one room to the other exists and goes through the door
    route = g.shortest_path((0.5, 0.5, 0.0), (5.5, 2.5, 0.0))
    assert len(route) >= 2
    r = np.stack(route)
    assert r[0, 0] < 1.5 and r[-1, 0] > 4.5 and np.all(r[:, 2] == 0.0)
    side = r[:, 0] > 3.05
    k = int(np.argmax(side))
    assert DOOR[0] - 0.5 < (r[k - 1, 1] + r[k, 1]) / 2 < DOOR[1] + 0.5


def test_a_walk_edge_that_clips_the_wall_detours_through_the_doorway():
    tree = two_rooms()
    g = PlaceGraph(spacing_m=1.0)
    a = g.add_pose((2.5, 0.3, 1.2), 0.0, 0)
    assert g.add_pose((2.5, 1.25, 1.2), 1.0, 1) == a  # still within 1 m of the first place
    b = g.add_pose((3.5, 1.6, 1.2), 2.0, 2)  # stepped through the door
    assert b != a and g.graph.has_edge(a, b)
    assert crossings_outside_door(g) != []  # the straight edge between the place centres clips the wall
    assert g.check_edges(tree) == 1
    assert not g.graph.has_edge(a, b) and crossings_outside_door(g) == []
    route = np.stack(g.shortest_path((2.5, 0.3, 0), (3.5, 1.6, 0)))
    assert len(route) == 3
    np.testing.assert_allclose(route[1, :2], [3.0, 1.425], atol=1e-9)  # where the walk crossed
    again = PlaceGraph.from_records(g.to_records())
    assert again.digest() == g.digest() and again.check_edges(tree) == 0


def test_unknown_gap_is_not_bridged():
    tree = OccupancyOctree(VOXEL)
    tree.update_points(box_centres((0.0, 0.0, 0.1), (2.0, 2.0, 1.5)), -2.0)
    tree.update_points(box_centres((2.4, 0.0, 0.1), (4.4, 2.0, 1.5)), -2.0)  # 0.4 m of unknown between
    g = PlaceGraph(spacing_m=1.0, clearance_m=0.0, edge_max_m=3.0)
    g.add_free_space(tree)
    left = [p for p in g.graph.nodes if g.position(p)[0] < 2.2]
    right = [p for p in g.graph.nodes if g.position(p)[0] > 2.2]
    assert left and right
    assert not any(g.graph.has_edge(a, b) for a in left for b in right)
    assert g.shortest_path((0.5, 0.5, 0), (4.0, 1.5, 0)) == []
    # once the gap is seen free, the two sides join
    tree.update_points(box_centres((2.0, 0.0, 0.1), (2.4, 2.0, 1.5)), -2.0)
    g.add_free_space(tree)
    assert len(g.shortest_path((0.5, 0.5, 0), (4.0, 1.5, 0))) >= 2


def test_segments_free_matches_the_geometry():
    tree = two_rooms()
    g = PlaceGraph(level=0)
    starts = np.array([[1.0, 0.5], [1.0, 1.5], [1.0, 2.5], [0.5, 0.5], [5.0, 1.0]])
    ends = np.array([[5.0, 0.5], [5.0, 1.5], [5.0, 2.5], [2.5, 2.5], [7.0, 1.0]])
    # through wall, through door, through wall, within a room, into unknown space
    assert g.segments_free(tree, starts, ends).tolist() == [False, True, False, True, False]


def test_path_places_objects_snapshots_and_records():
    g = PlaceGraph(spacing_m=1.0)
    ids = [g.add_pose((0.1 * i, 0.0, 1.3), float(i), i, [i % 3]) for i in range(25)]
    # 2.4 m walked with 1 m spacing: places at x = 0, 1.1, 2.2 joined in a chain
    assert len(g) == 3 and ids[0] == 0 and ids[-1] == 2
    xs = sorted(g.position(p)[0] for p in g.graph.nodes)
    np.testing.assert_allclose(xs, [0.0, 1.1, 2.2], atol=1e-9)
    assert sorted(g.graph.edges) == [(0, 1), (1, 2)]
    assert g.graph.nodes[0]["times"] == [0.0, 10.0]
    assert g.graph.nodes[0]["objects"] == {0, 1, 2}
    assert g.place_of_frame(24) == 2 and g.nearest((2.0, 0.3, 5.0)) == 2
    assert g.places_of_object(2) == [0, 1, 2]
    g.rename_object(2, 7)
    assert g.places_of_object(7) == [0, 1, 2] and g.places_of_object(2) == []
    snaps = [
        types.SimpleNamespace(frame_index=3, world_from_camera=Pose()),
        types.SimpleNamespace(frame_index=99, world_from_camera=Pose.from_xyz_yaw(2.1, 0, 1, 0)),
    ]
    g.attach_snapshots(snaps)
    assert g.graph.nodes[0]["snapshots"] == {3} and g.graph.nodes[2]["snapshots"] == {99}
    again = PlaceGraph.from_records(g.to_records())
    assert again.digest() == g.digest()
    np.testing.assert_allclose(
        np.stack(again.shortest_path((0, 0, 0), (2.2, 0, 0))), np.stack(g.shortest_path((0, 0, 0), (2.2, 0, 0)))
    )
    # the walk continues where it left off
    assert again.add_pose((3.3, 0.0, 1.3), 30.0, 30) == 3 and again.graph.has_edge(2, 3)
    # empty graph
    assert PlaceGraph().shortest_path((0, 0, 0), (1, 1, 0)) == [] and PlaceGraph().nearest((0, 0, 0)) is None


def test_bad_input():
    g = PlaceGraph()
    g.add_pose((0, 0, 0), 0.0, 0)
    before = g.digest()
    with pytest.raises(ValueError, match="position_xyz"):
        g.add_pose((0, float("nan"), 0), 1.0, 1)
    with pytest.raises(ValueError, match="timestamp_s"):
        g.add_pose((0, 0, 0), float("inf"), 1)
    with pytest.raises(ValueError, match="frame_index"):
        g.add_pose((0, 0, 0), 1.0, -3)
    with pytest.raises(ValueError, match="visible_object_ids"):
        g.add_pose((0, 0, 0), 1.0, 1, ["x"])
    with pytest.raises(ValueError, match="spacing_m"):
        PlaceGraph(spacing_m=0)
    with pytest.raises(ValueError, match="no place"):
        g.position(42)
    with pytest.raises(ValueError, match="missing place"):
        PlaceGraph.from_records({**g.to_records(), "edges": [{"a": 0, "b": 5, "length_m": 1.0, "kind": "free"}]})
    assert g.digest() == before
