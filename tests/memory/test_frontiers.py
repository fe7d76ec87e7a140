"""Frontiers on synthetic octrees: exactly at the free/unknown boundary, never beside walls."""

from __future__ import annotations

import numpy as np
import pytest

from engram.memory.frontiers import FREE, OCCUPIED, UNKNOWN, detect_frontiers, floor_band_grid

octree_mod = pytest.importorskip("engram.memory.octree")
OccupancyOctree = octree_mod.OccupancyOctree

VOXEL = 0.05


def box_centres(lo, hi, voxel=VOXEL):
    """Centres of the voxels whose centres lie in [lo, hi)."""
    axes = [np.arange(np.floor(a / voxel) + 0.5, np.ceil(b / voxel), 1.0) * voxel for a, b in zip(lo, hi)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def room(openings=("east",)):
    """A 3 m x 2 m free room (z 0.1..1.5) with 1-voxel walls, open on the given sides."""
    tree = OccupancyOctree(VOXEL)
    tree.update_points(box_centres((0.0, 0.0, 0.1), (3.0, 2.0, 1.5)), -2.0)
    walls = {
        "west": ((-0.05, -0.05, 0.0), (0.0, 2.05, 1.5)),
        "east": ((3.0, -0.05, 0.0), (3.05, 2.05, 1.5)),
        "south": ((-0.05, -0.05, 0.0), (3.05, 0.0, 1.5)),
        "north": ((-0.05, 2.0, 0.0), (3.05, 2.05, 1.5)),
    }
    for side, (lo, hi) in walls.items():
        if side not in openings:
            tree.update_points(box_centres(lo, hi), 3.0)
    tree.update_points(box_centres((-0.05, -0.05, -0.05), (3.05, 2.05, 0.0)), 3.0)  # the floor, below the band
    return tree


@pytest.mark.parametrize("level", [0, 1])
def test_one_opening_gives_one_frontier_on_that_side_facing_out(level):
    tree = room(openings=("east",))
    cell = VOXEL * 2**level
    grid = floor_band_grid(tree, level=level)
    assert grid.cell_size_m == pytest.approx(cell)
    inside = grid.state_at(np.array([[1.5, 1.0], [0.05 + cell / 2, 1.0]]))
    assert inside.tolist() == [FREE, FREE]
    assert grid.state_at(np.array([[-0.02, 1.0], [1.5, 2.02], [3.3, 1.0]])).tolist() == [OCCUPIED, OCCUPIED, UNKNOWN]
    [f] = detect_frontiers(tree, level=level, min_cluster_cells=2)
    # every frontier cell is in the last column of free cells before x = 3 m, away from the corner walls
    np.testing.assert_allclose(f.cells[:, 0], 3.0 - cell / 2)
    assert f.cells[:, 1].min() == pytest.approx(1.5 * cell) and f.cells[:, 1].max() == pytest.approx(2.0 - 1.5 * cell)
    assert f.size == round(2.0 / cell) - 2  # the column minus the cell touching each wall
    np.testing.assert_allclose(f.direction, [1.0, 0.0, 0.0], atol=1e-9)
    assert f.center[0] == pytest.approx(3.0 - cell / 2)
    assert f.center[1] == pytest.approx(1.0, abs=cell)
    assert f.center[2] == 0.0 and f.id == 0


def test_a_door_and_an_open_side_give_two_frontiers_largest_first():
    tree = room(openings=("east",))
    tree.remove_points(box_centres((0.5, 2.0, 0.0), (1.5, 2.05, 1.5)))  # a 1 m door in the north wall
    fronts = detect_frontiers(tree, level=0)
    assert [f.id for f in fronts] == [0, 1]
    east, door = fronts
    assert (east.size, door.size) == (38, 18)
    np.testing.assert_allclose(east.direction, [1.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(door.direction, [0.0, 1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(door.cells[:, 1], 2.0 - VOXEL / 2)
    assert door.cells[:, 0].min() == pytest.approx(0.575) and door.cells[:, 0].max() == pytest.approx(1.425)
    assert door.center[0] == pytest.approx(1.0, abs=VOXEL)


def test_a_closed_room_has_no_frontier_and_min_cluster_size_filters_noise():
    tree = room(openings=())
    assert detect_frontiers(tree, level=0) == []
    # one stray free voxel outside the room makes a one-cell region
    tree.update_points(np.array([[5.025, 5.025, 0.5]]), -2.0)
    assert len(detect_frontiers(tree, level=0, min_cluster_cells=1)) == 1
    assert detect_frontiers(tree, level=0, min_cluster_cells=2) == []


def test_heights_outside_the_band_do_not_count():
    tree = room(openings=("east",))
    # free space above the band beyond the opening (e.g. rays over furniture) is not floor
    tree.update_points(box_centres((3.05, 0.0, 1.6), (4.0, 2.0, 2.0)), -2.0)
    [f] = detect_frontiers(tree, level=0)
    np.testing.assert_allclose(f.cells[:, 0], 3.0 - VOXEL / 2)
    # a low band that the room's free space does not reach leaves nothing known
    empty = floor_band_grid(tree, band_m=(2.5, 3.0))
    assert empty.states.shape == (1, 1) and empty.states[0, 0] == UNKNOWN
    assert detect_frontiers(tree, band_m=(2.5, 3.0)) == []


def test_bad_arguments():
    tree = room()
    with pytest.raises(ValueError, match="band_m"):
        detect_frontiers(tree, band_m=(1.0, 0.5))
    with pytest.raises(ValueError, match="min_cluster_cells"):
        detect_frontiers(tree, min_cluster_cells=0)
    with pytest.raises(ValueError, match="floor_z_m"):
        floor_band_grid(tree, floor_z_m=float("nan"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_grid_kept_per_scan_equals_a_full_recompute(seed):
    from engram.memory.frontiers import BandGrid
    from engram.memory.octree import OccupancyOctree

    rng = np.random.default_rng(seed)
    tree = OccupancyOctree(0.1)
    band = BandGrid(0.1, floor_z_m=0.0)
    for step in range(8):
        pts = rng.uniform([-3, -3, -0.5], [3, 3, 2.5], size=(600, 3))
        origin = rng.uniform([-1, -1, 0.3], [1, 1, 1.2])
        free, occ = tree.voxel_scan(tree.unique_codes(tree.point_codes(pts)), origin, 4.0)
        band.apply_scan(tree, free, occ)
        if step == 4:
            tree.update_points(pts[:80], -4.0)  # a change made elsewhere: noticed, recounted
        if step == 6:
            tree.remove_points(pts[80:160])
        ours, full = band.grid(tree), floor_band_grid(tree)
        assert ours.states.shape == full.states.shape
        assert np.array_equal(ours.states, full.states)
        assert np.allclose(ours.origin_xy, full.origin_xy)
        a, b = detect_frontiers(tree, grid=ours), detect_frontiers(tree)
        assert [f.size for f in a] == [f.size for f in b]
        assert all(np.allclose(x.cells, y.cells) for x, y in zip(a, b))
    assert band.n_rebuilds == 3  # first use, then after each outside change only


@pytest.mark.parametrize("sparse", [False, True])
def test_band_grid_apply_marks_equals_apply_scan(monkeypatch, sparse):
    """Marks applied brick by brick (growing the storage on the way) give the codes' map and counts."""
    import engram.memory.octree as octree_module
    from engram.memory.frontiers import BandGrid
    from engram.memory.octree import OccupancyOctree

    if sparse:  # no grid: the marks hold codes
        monkeypatch.setattr(octree_module, "_MAX_SCAN_GRID_CELLS", 0)
    rng = np.random.default_rng(5)
    a, b = OccupancyOctree(0.1), OccupancyOctree(0.1)
    band_a, band_b = BandGrid(0.1, floor_z_m=0.0), BandGrid(0.1, floor_z_m=0.0)
    for _ in range(6):
        pts = rng.uniform([-3, -3, -0.5], [3, 3, 2.5], size=(800, 3))
        origin = rng.uniform([-1, -1, 0.3], [1, 1, 1.2])
        hits = a.unique_codes(a.point_codes(pts[:700]))
        ends = a.unique_codes(a.point_codes(pts[700:]))
        free, occ = a.voxel_scan(hits, origin, 4.0, free_end_codes=ends)
        band_a.apply_scan(a, free, occ)
        marks = b.voxel_scan_marks(hits, origin, 4.0, free_end_codes=ends)
        f2, o2 = marks.codes()
        assert np.array_equal(np.sort(f2), np.sort(free)) and np.array_equal(np.sort(o2), np.sort(occ))
        band_b.apply_marks(b, marks)
        assert a.digest() == b.digest() and len(a) == len(b)
        assert np.array_equal(band_a.grid(a).states, band_b.grid(b).states)
        assert np.array_equal(band_a.grid(a).origin_xy, band_b.grid(b).origin_xy)
    assert band_b.n_rebuilds == 1
    c = OccupancyOctree(0.1)
    c.apply_marks(c.voxel_scan_marks(hits, origin, 4.0, free_end_codes=ends))
    d = OccupancyOctree(0.1)
    d.apply_codes(*d.voxel_scan(hits, origin, 4.0, free_end_codes=ends))
    assert c.digest() == d.digest()
