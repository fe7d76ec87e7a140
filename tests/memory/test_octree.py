"""OccupancyOctree: agreement with OctoMap itself, geometric invariants, persistence, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram.memory.octree import FREE, OCCUPIED, UNKNOWN, OccupancyOctree, logodds

RES = 0.05
ICL_FX = 525.0
ICL_C = (319.5, 239.5)


# helpers ---------------------------------------------------------------------------
def _octomap():
    return pytest.importorskip("pyoctomap")


def _octomap_tree(res: float = RES):
    """A pyoctomap tree with our default sensor model (OctoMap's own clamping defaults are 0.1192 / 0.971)."""
    ot = _octomap().OcTree(res)
    ot.setClampingThresMin(0.12)
    ot.setClampingThresMax(0.97)
    return ot


def _icl_poses(root) -> np.ndarray:
    """world_from_camera 4x4 per frame from Open3D's .log format (``i j n`` then 4 rows)."""
    values = np.array((root / "icl_livingroom1" / "trajectory.log").read_text().split(), dtype=np.float64)
    return values.reshape(-1, 19)[:, 3:].reshape(-1, 4, 4)


def _icl_scan(root, index: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World points and camera origin of ICL-NUIM frame ``index`` (depth png in mm)."""
    import cv2

    depth = cv2.imread(str(root / "icl_livingroom1" / "depth" / f"{index:05d}.png"), cv2.IMREAD_UNCHANGED)
    assert depth is not None and depth.dtype == np.uint16
    depth_m = depth[::stride, ::stride].astype(np.float64) / 1000.0
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u]
    cam = np.stack([(u * stride - ICL_C[0]) / ICL_FX * z, (v * stride - ICL_C[1]) / ICL_FX * z, z], axis=1)
    pose = _icl_poses(root)[index]
    return cam @ pose[:3, :3].T + pose[:3, 3], pose[:3, 3].copy()


def _octomap_known_voxels(ot, res: float) -> tuple[np.ndarray, np.ndarray]:
    """(occupied, free) leaf-voxel centres of a pyoctomap tree, pruned leaves expanded."""
    occ, free = [], []
    for it in ot.begin_leafs():
        n = round(it.getSize() / res)
        centre = np.asarray(it.getCoordinate(), dtype=np.float64)
        g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
        cells = centre + (g - (n - 1) / 2.0) * res
        (occ if ot.isNodeOccupied(it) else free).append(cells)
    empty = np.zeros((0, 3))
    return (np.concatenate(occ) if occ else empty), (np.concatenate(free) if free else empty)


def _agreement(tree: OccupancyOctree, ot, res: float) -> tuple[float, float]:
    """(state agreement over voxels known to both, known-set overlap |A and B| / |A or B|).

    OctoMap's map is read through its own binary export (``writeBinary``), which our
    reader turns into voxels; `test_from_bt_reads_octomap_written_files` checks that
    reader against pyoctomap's leaf iterator.
    """
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "octomap.bt"
        assert ot.writeBinary(str(path))
        theirs = OccupancyOctree.from_bt(path, clamp_min=tree.clamp_min, clamp_max=tree.clamp_max)
    assert theirs.voxel_size_m == pytest.approx(res)
    a, b = tree.keys(), theirs.keys()
    span = 1 << 16
    ka = ((a[:, 0] + 32768) * span + a[:, 1] + 32768) * span + a[:, 2] + 32768
    kb = ((b[:, 0] + 32768) * span + b[:, 1] + 32768) * span + b[:, 2] + 32768
    common, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
    ours = tree.state((a[ia] + 0.5) * res)
    their_state = theirs.state((b[ib] + 0.5) * res)
    agreement = float(np.mean(ours == their_state)) if len(common) else 0.0
    overlap = len(common) / float(len(ka) + len(kb) - len(common))
    return agreement, overlap


def _box_scene_scan(origin: np.ndarray, yaw: float, pitch: float, width: int = 96, height: int = 72):
    """Render a room of known geometry analytically; returns world points of the depth pixels.

    Room: floor z=0, ceiling z=2.5, walls x=+-3, y=+-2.5; a sphere of radius 0.5 at (1.5, 0.5, 0.8)
    and a box [-1.2, -0.4] x [-1.5, -0.7] x [0, 1.1].
    """
    f = 0.8 * width
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    cam = np.stack([(u - (width - 1) / 2) / f, (v - (height - 1) / 2) / f, np.ones_like(u, float)], -1).reshape(-1, 3)
    # camera looking along +x (world) rotated by yaw about z and pitch about the camera's x axis
    base = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # world_from_camera columns: x_c, y_c, z_c
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rot = rz @ base @ rx
    d = cam @ rot.T
    t = np.full(len(d), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, lo, hi in ((0, -3.0, 3.0), (1, -2.5, 2.5), (2, 0.0, 2.5)):
            for plane in (lo, hi):
                tp = (plane - origin[axis]) / d[:, axis]
                t = np.where((tp > 0) & (tp < t), tp, t)
        # sphere
        c, r = np.array([1.5, 0.5, 0.8]), 0.5
        oc = origin - c
        b = d @ oc
        a = np.einsum("ij,ij->i", d, d)
        disc = b * b - a * (oc @ oc - r * r)
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / a
        t = np.where((disc > 0) & (ts > 0) & (ts < t), ts, t)
        # axis-aligned box (slab test)
        bmin, bmax = np.array([-1.2, -1.5, 0.0]), np.array([-0.4, -0.7, 1.1])
        t1 = (bmin - origin) / d
        t2 = (bmax - origin) / d
        tnear = np.max(np.minimum(t1, t2), axis=1)
        tfar = np.min(np.maximum(t1, t2), axis=1)
        hitbox = (tnear <= tfar) & (tnear > 0)
        t = np.where(hitbox & (tnear < t), tnear, t)
    return origin + d * t[:, None]


def _fill_random(tree: OccupancyOctree, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(3):
        origin = rng.uniform(-0.3, 0.3, 3)
        pts = origin + rng.normal(size=(400, 3)) * rng.uniform(0.3, 1.5, size=(400, 1))
        tree.insert_scan(pts, origin, max_range_m=1.2)


# agreement with OctoMap ----------------------------------------------------------------
def test_sensor_model_matches_octomap_defaults():
    ot = _octomap_tree()
    tree = OccupancyOctree(RES)
    assert logodds(tree.prob_hit) == pytest.approx(ot.getProbHitLog(), abs=1e-6)
    assert logodds(tree.prob_miss) == pytest.approx(ot.getProbMissLog(), abs=1e-6)
    assert logodds(tree.clamp_min) == pytest.approx(ot.getClampingThresMinLog(), abs=1e-4)
    assert logodds(tree.clamp_max) == pytest.approx(ot.getClampingThresMaxLog(), abs=1e-4)
    assert logodds(tree.occupancy_threshold) == pytest.approx(ot.getOccupancyThresLog(), abs=1e-6)


def test_icl_frames_agree_with_octomap(shared_data):
    tree = OccupancyOctree(RES)
    ot = _octomap_tree()
    for index in (0, 30, 60, 90):
        points, origin = _icl_scan(shared_data, index, stride=2)
        stats = tree.insert_scan(points, origin, max_range_m=4.0)
        ot.insertPointCloud(points, origin, 4.0)
        assert stats.n_points == len(points) and stats.n_dropped == 0
        assert stats.n_occupied > 100 and stats.n_free > stats.n_occupied
    agreement, overlap = _agreement(tree, ot, RES)
    assert agreement >= 0.995, agreement
    assert overlap >= 0.99, overlap
    # pointwise: OctoMap's own per-point labels on a sample of our voxels
    centres = (tree.keys()[::37] + 0.5) * RES
    labels = ot.getLabels(centres)
    theirs = np.select([labels == 1, labels == 0], [OCCUPIED, FREE], UNKNOWN)
    assert np.mean(tree.state(centres) == theirs) >= 0.995


def test_synthetic_room_agrees_with_octomap_and_geometry():
    tree = OccupancyOctree(RES)
    ot = _octomap_tree()
    origins = [np.array([0.1, 0.2, 1.3]), np.array([-1.7, 1.1, 1.0]), np.array([2.2, -1.6, 1.6])]
    for i, origin in enumerate(origins):
        for yaw in (0.0, 2.1, 4.2):
            points = _box_scene_scan(origin, yaw + 0.3 * i, pitch=-0.25)
            tree.insert_scan(points, origin, max_range_m=5.0)
            ot.insertPointCloud(points, origin, 5.0)
    agreement, overlap = _agreement(tree, ot, RES)
    assert agreement >= 0.995, agreement
    assert overlap >= 0.99, overlap
    # known geometry: occupied voxels touch a surface, free voxels are not inside the solids
    occ = tree.occupied_centers()
    assert len(occ) > 500
    half_diag = RES * math.sqrt(3) / 2 + 1e-9
    wall_dist = np.min(np.abs(np.c_[occ[:, 0] - 3, occ[:, 0] + 3, occ[:, 1] - 2.5, occ[:, 1] + 2.5,
                                    occ[:, 2], occ[:, 2] - 2.5]), axis=1)  # fmt: skip
    sphere_dist = np.abs(np.linalg.norm(occ - [1.5, 0.5, 0.8], axis=1) - 0.5)
    q = np.clip(occ, [-1.2, -1.5, 0.0], [-0.4, -0.7, 1.1])
    inside_box = np.all((occ > [-1.2, -1.5, 0.0]) & (occ < [-0.4, -0.7, 1.1]), axis=1)
    box_dist = np.where(inside_box, 0.0, np.linalg.norm(occ - q, axis=1))
    assert np.all(np.minimum(np.minimum(wall_dist, sphere_dist), box_dist) <= half_diag)
    free = tree.free_centers()
    deep_in_sphere = np.linalg.norm(free - [1.5, 0.5, 0.8], axis=1) < 0.5 - half_diag
    deep_in_box = np.all(
        (free > np.add([-1.2, -1.5, 0.0], half_diag)) & (free < np.add([-0.4, -0.7, 1.1], -half_diag)), axis=1
    )
    assert not deep_in_sphere.any() and not deep_in_box.any()


def test_cast_ray_matches_octomap(shared_data):
    tree = OccupancyOctree(RES)
    ot = _octomap_tree()
    points, origin = _icl_scan(shared_data, 0, stride=4)
    tree.insert_scan(points, origin, max_range_m=4.0)
    ot.insertPointCloud(points, origin, 4.0)
    rng = np.random.default_rng(3)
    directions = points[rng.choice(len(points), 200, replace=False)] - origin
    directions += rng.normal(scale=0.05, size=directions.shape)
    for ignore_unknown in (True, False):
        hit, where = tree.cast_ray(origin, directions, 3.0, ignore_unknown=ignore_unknown)
        expected_hit = []
        expected_where = []
        for d in directions:
            end = np.zeros(3)
            h = ot.castRay(origin, np.ascontiguousarray(d), end, ignore_unknown, 3.0)
            expected_hit.append(h)
            expected_where.append(end if h else np.full(3, np.nan))
        expected_hit = np.array(expected_hit)
        assert np.mean(hit == expected_hit) >= 0.97
        both = hit & expected_hit
        assert both.sum() > 50
        assert np.mean(np.all(np.abs(where[both] - np.array(expected_where)[both]) < 1e-4, axis=1)) >= 0.97
    assert np.all(np.isnan(where[~hit]))


# invariants --------------------------------------------------------------------------
def _cells_by_sampling(start: np.ndarray, end: np.ndarray, res: float) -> set[tuple[int, int, int]]:
    """Cells a segment crosses, independent of any DDA: sort every plane crossing, sample between them."""
    ts = [0.0, 1.0]
    for a in range(3):
        if end[a] == start[a]:
            continue
        lo, hi = sorted((start[a], end[a]))
        planes = np.arange(math.ceil(lo / res), math.floor(hi / res) + 1) * res
        ts.extend(((planes - start[a]) / (end[a] - start[a])).tolist())
    t = np.unique(np.clip(ts, 0.0, 1.0))
    mids = ((t[:-1] + t[1:]) / 2.0)[:, None]
    return set(map(tuple, np.floor((start + mids * (end - start)) / res).astype(np.int64).tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ray_frees_exactly_the_cells_it_crosses(seed):
    rng = np.random.default_rng(seed)
    for res in (RES, 0.02, 0.1):
        for _ in range(10):
            o = rng.uniform(-0.2, 0.2, 3)
            e = o + rng.normal(size=3) * rng.uniform(0.1, 3.0)
            free, occ = OccupancyOctree(res).scan_keys(e[None], o)
            crossed = _cells_by_sampling(o, e, res)
            end_cell = tuple(np.floor(e / res).astype(np.int64).tolist())
            assert set(map(tuple, occ.tolist())) == {end_cell}
            assert set(map(tuple, free.tolist())) == crossed - {end_cell}
    origin = rng.uniform(-0.2, 0.2, 3)
    end = origin + rng.normal(size=3) * 1.3
    tree = OccupancyOctree(RES)
    free, occ = tree.scan_keys(end[None], origin)
    crossed = _cells_by_sampling(origin, end, RES)
    tree.insert_scan(end[None], origin)
    centres = (free + 0.5) * RES
    np.testing.assert_array_equal(tree.state(centres), FREE)
    assert len(tree) == len(crossed)
    # a point between cells (slightly off each centre) in the first crossed cell is free too
    assert tree.state(origin[None])[0] == FREE


def test_max_range_clears_only_up_to_max_range():
    tree = OccupancyOctree(RES)
    origin = np.array([0.01, 0.02, 0.03])
    far = np.array([[5.0, 1.0, 0.5], [np.nan, 0.0, 0.0], [0.0, np.inf, 0.0]])
    stats = tree.insert_scan(far, origin, max_range_m=2.0)
    assert stats.n_dropped == 2 and stats.n_occupied == 0 and stats.n_free > 0
    free = tree.free_centers()
    assert len(tree.occupied_centers()) == 0
    assert np.linalg.norm(free - origin, axis=1).max() <= 2.0 + RES * math.sqrt(3)
    cut = origin + (far[0] - origin) / np.linalg.norm(far[0] - origin) * 2.0
    expected = _cells_by_sampling(origin, cut, RES) - {tuple(np.floor(cut / RES).astype(int).tolist())}
    assert set(map(tuple, tree.keys().tolist())) == expected


def test_occupied_wins_within_a_scan():
    tree = OccupancyOctree(RES)
    origin = np.zeros(3) + 0.001
    # the second ray passes through the first ray's endpoint voxel
    pts = np.array([[0.52, 0.011, 0.012], [1.02, 0.012, 0.013]])
    free, occ = tree.scan_keys(pts, origin)
    assert len(occ) == 2
    assert not set(map(tuple, free.tolist())) & set(map(tuple, occ.tolist()))
    tree.insert_scan(pts, origin)
    assert tree.log_odds(pts[:1])[0] == np.float32(logodds(0.7))


def test_repeated_updates_converge_to_clamping_bounds():
    tree = OccupancyOctree(RES)
    origin = np.array([0.01, 0.01, 0.01])
    p = np.array([[1.01, 0.02, 0.03]])
    for _ in range(20):
        tree.insert_scan(p, origin)
    assert tree.log_odds(p)[0] == np.float32(logodds(0.97))
    mid = (origin + p) / 2
    assert tree.log_odds(mid)[0] == np.float32(logodds(0.12))
    # the sequence of values follows float32 additions with clamping
    tree2 = OccupancyOctree(RES)
    v = np.float32(0.0)
    for _ in range(6):
        tree2.insert_scan(p, origin)
        v = min(np.float32(v + np.float32(logodds(0.7))), np.float32(logodds(0.97)))
        assert tree2.log_odds(p)[0] == v
    assert 1.0 / (1.0 + math.exp(-float(tree.log_odds(p)[0]))) == pytest.approx(0.97, abs=1e-6)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_coarse_level_is_max_over_children(level):
    tree = OccupancyOctree(RES)
    _fill_random(tree)
    rng = np.random.default_rng(level)
    n_probe = 150 if level < 4 else 40
    probe = np.concatenate(
        [(tree.keys()[rng.choice(len(tree), n_probe)] + 0.5) * RES, rng.uniform(-2, 2, (n_probe // 3, 3))]
    )
    coarse = tree.log_odds(probe, level=level)
    n = 1 << level
    node = np.floor(probe / (RES * n)).astype(np.int64)
    offsets = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    children = (node[:, None, :] * n + offsets[None] + 0.5) * RES  # (N, 8**level, 3)
    child_values = tree.log_odds(children.reshape(-1, 3)).reshape(len(probe), -1)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmax(child_values, axis=1)
    np.testing.assert_array_equal(coarse, expected.astype(np.float32))
    assert np.isnan(coarse).sum() > 0 and (~np.isnan(coarse)).sum() > n_probe // 2
    # states: a node is occupied iff any child is
    child_occ = (tree.state(children.reshape(-1, 3)) == OCCUPIED).reshape(len(probe), -1).any(axis=1)
    np.testing.assert_array_equal(tree.state(probe, level=level) == OCCUPIED, child_occ)
    # coarse centres are the centres of the nodes holding the fine occupied voxels
    fine = tree.occupied_centers()
    coarse_centres = tree.occupied_centers(level=level)
    expected_nodes = np.unique(np.floor(fine / (RES * n)).astype(np.int64), axis=0)
    got_nodes = np.floor(coarse_centres / (RES * n)).astype(np.int64)
    np.testing.assert_array_equal(np.unique(got_nodes, axis=0), expected_nodes)
    np.testing.assert_allclose(coarse_centres, (got_nodes + 0.5) * RES * n, atol=1e-9)


def test_lookups_state_and_centres_are_consistent():
    tree = OccupancyOctree(RES)
    _fill_random(tree, seed=5)
    keys, values = tree.keys(), tree.values()
    assert len(keys) == len(values) == len(tree) > 1000
    centres = (keys + 0.5) * RES
    np.testing.assert_array_equal(tree.log_odds(centres), values)
    occ = tree.occupied_centers()
    free = tree.free_centers()
    assert len(occ) + len(free) == len(tree)
    np.testing.assert_array_equal(tree.state(occ), OCCUPIED)
    np.testing.assert_array_equal(tree.state(free), FREE)
    lo, hi = tree.bounds()
    assert np.all(centres > lo) and np.all(centres < hi)
    box_min, box_max = np.array([-0.5, -0.3, -0.2]), np.array([0.4, 0.6, 0.5])
    in_box = tree.occupied_centers(box_min=box_min, box_max=box_max)
    expected = occ[np.all((occ >= box_min) & (occ <= box_max), axis=1)]
    np.testing.assert_array_equal(np.sort(in_box, axis=0), np.sort(expected, axis=0))
    assert tree.state(np.array([[50.0, 50.0, 50.0]]))[0] == UNKNOWN
    assert np.isnan(tree.log_odds(np.array([[np.nan, 0.0, 0.0]])))[0]


def test_scan_keys_then_apply_keys_equals_insert_scan():
    rng = np.random.default_rng(7)
    a, b = OccupancyOctree(RES), OccupancyOctree(RES)
    for _ in range(3):
        origin = rng.uniform(-0.2, 0.2, 3)
        pts = origin + rng.normal(size=(300, 3))
        a.insert_scan(pts, origin, max_range_m=1.5)
        free, occ = b.scan_keys(pts, origin, max_range_m=1.5)
        b.apply_keys(free, occ)
    assert a.digest() == b.digest()


def test_sparse_fallback_matches_the_dense_scan_grid(monkeypatch):
    import engram.memory.octree as octree_module

    rng = np.random.default_rng(4)
    origin = rng.uniform(-0.2, 0.2, 3)
    pts = origin + rng.normal(size=(2000, 3)) * 2.0
    pts[::50] = np.nan
    dense_free, dense_occ = OccupancyOctree(RES).scan_keys(pts, origin, max_range_m=3.0)
    monkeypatch.setattr(octree_module, "_MAX_SCAN_GRID_CELLS", 0)  # a scan box too large for a dense grid
    tree = OccupancyOctree(RES)
    free, occ = tree.scan_keys(pts, origin, max_range_m=3.0)
    np.testing.assert_array_equal(np.unique(free, axis=0), np.unique(dense_free, axis=0))
    np.testing.assert_array_equal(np.unique(occ, axis=0), np.unique(dense_occ, axis=0))
    stats = tree.insert_scan(pts, origin, max_range_m=3.0)
    assert stats.n_dropped == 40 and stats.n_free == len(dense_free)


def test_thread_count_does_not_change_the_map(shared_data):
    numba = pytest.importorskip("numba")
    points, origin = _icl_scan(shared_data, 10, stride=3)
    digests = []
    before = numba.get_num_threads()
    try:
        for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            tree = OccupancyOctree(RES)
            tree.insert_scan(points, origin, max_range_m=4.0)
            digests.append(tree.digest())
    finally:
        numba.set_num_threads(before)
    assert len(set(digests)) == 1


def test_update_and_remove_points():
    tree = OccupancyOctree(RES)
    p = np.array([[0.12, 0.31, -0.42], [0.13, 0.32, -0.43], [1.01, 1.01, 1.01]])  # first two share a voxel
    tree.update_points(p, 0.5)
    np.testing.assert_array_equal(tree.log_odds(p), np.float32([1.0, 1.0, 0.5]))
    assert len(tree) == 2
    tree.update_points(p[2:], np.array([-10.0]))
    assert tree.log_odds(p[2:])[0] == np.float32(logodds(0.12))
    tree.remove_points(p[:1])
    assert len(tree) == 1 and np.isnan(tree.log_odds(p[:2])).all()
    tree.remove_points(np.array([[9.0, 9.0, 9.0]]))  # unknown already: no-op
    assert len(tree) == 1


def test_insertion_order_does_not_matter_and_copy_is_independent():
    rng = np.random.default_rng(11)
    pts = rng.normal(size=(500, 3))
    a, b = OccupancyOctree(RES), OccupancyOctree(RES)
    a.update_points(pts, 0.4)
    b.update_points(pts[::-1].copy(), 0.4)
    assert a.digest() == b.digest()
    c = a.copy()
    c.update_points(pts[:1], 1.0)
    assert c.digest() != a.digest() and a.digest() == b.digest()


# persistence ----------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    tree = OccupancyOctree(0.1, prob_hit=0.8, prob_miss=0.3, clamp_min=0.2, clamp_max=0.9, occupancy_threshold=0.6)
    _fill_random(tree, seed=2)
    path = tmp_path / "map.octree"
    tree.save(path)
    back = OccupancyOctree.load(path)
    assert back.digest() == tree.digest()
    assert (back.prob_hit, back.prob_miss, back.clamp_min, back.clamp_max, back.occupancy_threshold) == (
        0.8,
        0.3,
        0.2,
        0.9,
        0.6,
    )
    probe = np.random.default_rng(0).uniform(-2, 2, (2000, 3))
    np.testing.assert_array_equal(back.log_odds(probe), tree.log_odds(probe))
    np.testing.assert_array_equal(back.state(probe, level=2), tree.state(probe, level=2))
    arrays = tree.to_arrays()
    assert OccupancyOctree.from_arrays(arrays).digest() == tree.digest()
    newer = dict(arrays, format_version=np.array(99))
    with pytest.raises(ValueError, match="newer"):
        OccupancyOctree.from_arrays(newer)
    with pytest.raises(ValueError, match="format"):
        OccupancyOctree.from_arrays(dict(arrays, format=np.array("something else")))
    with pytest.raises(ValueError, match="log_odds"):
        OccupancyOctree.from_arrays({k: v for k, v in arrays.items() if k != "log_odds"})


def test_export_bt_loads_in_octomap_with_the_same_voxels(tmp_path, shared_data):
    po = _octomap()
    tree = OccupancyOctree(RES)
    points, origin = _icl_scan(shared_data, 20, stride=2)
    tree.insert_scan(points, origin, max_range_m=4.0)
    path = tmp_path / "map.bt"
    tree.export_bt(path)
    ot = po.OcTree(0.1)
    assert ot.readBinary(str(path))
    assert ot.getResolution() == pytest.approx(RES)
    occ_o, free_o = _octomap_known_voxels(ot, RES)

    def to_set(c):
        return set(map(tuple, np.floor(c / RES).astype(np.int64).tolist()))

    assert to_set(occ_o) == to_set(tree.occupied_centers())
    assert to_set(free_o) == to_set(tree.free_centers())
    assert ot.getNumLeafNodes() < len(tree)  # pruned, as OctoMap writes it
    # and back: our reader gives the maximum-likelihood map
    back = OccupancyOctree.from_bt(path)
    np.testing.assert_array_equal(back.keys(), tree.keys())
    np.testing.assert_array_equal(back.state((back.keys() + 0.5) * RES), tree.state((tree.keys() + 0.5) * RES))


def test_from_bt_reads_octomap_written_files(tmp_path, shared_data):
    ot = _octomap_tree()
    points, origin = _icl_scan(shared_data, 40, stride=3)
    ot.insertPointCloud(points, origin, 4.0)
    path = tmp_path / "octomap.bt"
    assert ot.writeBinary(str(path))
    tree = OccupancyOctree.from_bt(path)
    occ_o, free_o = _octomap_known_voxels(ot, RES)
    assert len(tree) == len(occ_o) + len(free_o)
    np.testing.assert_array_equal(tree.state(occ_o), OCCUPIED)
    np.testing.assert_array_equal(tree.state(free_o), FREE)


def test_empty_map():
    tree = OccupancyOctree(RES)
    assert len(tree) == 0 and tree.bounds() is None
    assert tree.keys().shape == (0, 3) and tree.values().shape == (0,)
    assert tree.occupied_centers().shape == (0, 3)
    assert tree.state(np.zeros((3, 3)), level=4).tolist() == [UNKNOWN] * 3
    hit, where = tree.cast_ray(np.zeros(3), np.array([1.0, 0, 0]), None)
    assert not hit[0] and np.isnan(where).all()
    stats = tree.insert_scan(np.zeros((0, 3)), np.zeros(3))
    assert stats.n_points == 0 and len(tree) == 0


def test_cast_ray_simple_wall():
    tree = OccupancyOctree(RES)
    ys, zs = np.meshgrid(np.linspace(-0.5, 0.5, 21), np.linspace(-0.5, 0.5, 21))
    wall = np.stack([np.full(ys.size, 2.01), ys.ravel(), zs.ravel()], 1)
    origin = np.array([0.01, 0.02, 0.03])
    tree.insert_scan(wall, origin)
    hit, where = tree.cast_ray(np.array([[0.01, 0.02, 0.03], [0.01, 0.02, 0.03]]),
                               np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]), 5.0)  # fmt: skip
    assert hit.tolist() == [True, False]
    np.testing.assert_allclose(where[0], [2.025, 0.025, 0.025], atol=1e-9)
    short, _ = tree.cast_ray(origin, np.array([1.0, 0.0, 0.0]), 1.0)
    assert not short[0]
    blocked, _ = tree.cast_ray(origin, np.array([0.0, 1.0, 0.0]), 5.0, ignore_unknown=False)
    assert not blocked[0]


# bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.insert_scan(np.zeros((5, 2)), np.zeros(3)),
        lambda t: t.insert_scan(np.zeros(3), np.zeros(3)),
        lambda t: t.insert_scan(np.array([["a", "b", "c"]]), np.zeros(3)),
        lambda t: t.insert_scan(np.ones((4, 3), dtype=complex), np.zeros(3)),
        lambda t: t.insert_scan(np.ones((4, 3), dtype=bool), np.zeros(3)),
        lambda t: t.insert_scan(np.ones((4, 3)), np.array([np.nan, 0.0, 0.0])),
        lambda t: t.insert_scan(np.ones((4, 3)), np.zeros(2)),
        lambda t: t.insert_scan(np.ones((4, 3)), np.zeros(3), max_range_m=-1.0),
        lambda t: t.insert_scan(np.ones((4, 3)), np.array([1e6, 0.0, 0.0])),
        lambda t: t.apply_keys(np.zeros((2, 3)), np.zeros((1, 3), np.int64)),
        lambda t: t.apply_keys(np.zeros((2, 3), np.int64), np.full((1, 3), 40000)),
        lambda t: t.update_points(np.ones((2, 3)), np.ones(3)),
        lambda t: t.update_points(np.array([[np.nan, 0, 0]]), 1.0),
        lambda t: t.remove_points(np.ones((2, 4))),
        lambda t: t.log_odds(np.ones((2, 3)), level=17),
        lambda t: t.cast_ray(np.zeros(3), np.zeros(3), 1.0),
        lambda t: t.cast_ray(np.zeros((2, 3)), np.ones((3, 3)), 1.0),
        lambda t: t.occupied_centers(box_min=[0.0, 0.0]),
    ],
)
def test_bad_input_raises_and_leaves_the_map_unchanged(call):
    tree = OccupancyOctree(RES)
    _fill_random(tree, seed=9)
    before = tree.digest()
    with pytest.raises(ValueError):
        call(tree)
    assert tree.digest() == before


@pytest.mark.parametrize("kwargs", [{"voxel_size_m": -0.05}, {"voxel_size_m": 0.0}, {"voxel_size_m": float("nan")},
                                    {"prob_hit": 0.4}, {"prob_miss": 0.6}, {"clamp_min": 0.9, "clamp_max": 0.5},
                                    {"occupancy_threshold": 1.0}])  # fmt: skip
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        OccupancyOctree(**kwargs)


def test_nonfinite_points_are_dropped_and_counted():
    tree = OccupancyOctree(RES)
    pts = np.array([[1.0, 0.0, 0.0], [np.nan, 1.0, 0.0], [0.0, np.inf, 0.0], [0.0, 1.0, 0.0]], np.float32)
    stats = tree.insert_scan(pts, np.zeros(3) + 0.01)
    assert (stats.n_points, stats.n_dropped, stats.n_occupied) == (4, 2, 2)


# discretize (OctoMap's option: one ray per endpoint voxel) ----------------------------
@pytest.mark.parametrize("max_range", [4.0, None])
def test_discretize_matches_octomap_with_the_same_option(shared_data, max_range):
    tree = OccupancyOctree(RES)
    ot = _octomap_tree()
    for index in (0, 45, 90):
        points, origin = _icl_scan(shared_data, index, stride=2)
        stats = tree.insert_scan(points, origin, max_range_m=max_range, discretize=True)
        ot.insertPointCloud(points, origin, max_range=-1.0 if max_range is None else max_range, discretize=True)
        assert stats.n_points == len(points) and stats.n_dropped == 0
        # far fewer rays than points: one per endpoint voxel
        assert stats.n_occupied < len(points) / 5
    agreement, overlap = _agreement(tree, ot, RES)
    # OctoMap computes in float32 (centres, the max-range test, truncated ray ends); engram in float64
    assert agreement >= 0.999 and overlap >= 0.998, (agreement, overlap)


def test_discretize_is_one_ray_to_each_endpoint_voxel_centre():
    rng = np.random.default_rng(3)
    points = rng.uniform(-2, 2, size=(3000, 3))
    origin = np.array([0.02, -0.03, 0.01])
    a, b = OccupancyOctree(0.1), OccupancyOctree(0.1)
    a.insert_scan(points, origin, max_range_m=2.5, discretize=True)
    centres = (np.unique(a.voxel_indices(points), axis=0) + 0.5) * 0.1  # independent: voxel centres, plain rays
    b.insert_scan(centres, origin, max_range_m=2.5)
    assert a.digest() == b.digest()


def test_voxel_scan_from_codes_equals_insert_scan_discretize():
    rng = np.random.default_rng(4)
    points = rng.normal(size=(2000, 3)) * 1.5
    origin = np.array([0.3, 0.1, -0.2])
    a, b = OccupancyOctree(RES), OccupancyOctree(RES)
    a.insert_scan(points, origin, max_range_m=3.0, discretize=True)
    hits = b.unique_codes(b.point_codes(points))
    assert len(hits) == len(np.unique(b.voxel_indices(points), axis=0))
    free, occ = b.voxel_scan(hits, origin, 3.0)
    assert len(np.intersect1d(free, occ)) == 0
    b.apply_codes(free, occ)
    assert a.digest() == b.digest()
    with pytest.raises(ValueError):
        b.voxel_scan(np.array([-5]), origin, 3.0)


def test_free_end_rays_free_their_end_voxel_unless_a_hit_is_there():
    tree = OccupancyOctree(0.1)
    origin = np.zeros(3)
    wall = np.array([[1.05, 0.05, 0.05]])
    body = np.array([[0.55, 0.05, 0.05], [1.05, 0.05, 0.05]])  # one in free space, one on the wall's voxel
    free, occ = tree.scan_codes(np.concatenate([wall, body]), origin, 5.0, n_free_ends=2)
    codes = tree.point_codes(np.concatenate([wall, body]))
    assert codes[0] in occ and codes[1] in free and codes[1] not in occ
    free_v, occ_v = tree.voxel_scan(tree.point_codes(wall), origin, 5.0, free_end_codes=tree.point_codes(body))
    assert set(free_v) == set(free) and set(occ_v) == set(occ)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_coarse_lookup_from_the_hash_equals_the_sorted_table(level):
    """A few coarse queries on a changed map read children from the hash; the answer is the table's."""
    tree = OccupancyOctree(RES)
    _fill_random(tree)
    rng = np.random.default_rng(10 + level)
    n = min(80, len(tree) >> (3 * level))  # few enough queries for the hash path
    probe = np.concatenate(
        [(tree.keys()[rng.choice(len(tree), n - n // 4)] + 0.5) * RES, rng.uniform(-2, 2, (n // 4, 3))]
    )
    probe[-1] = [1e9, 0.0, 0.0]  # outside the key space: unknown either way
    from_hash = tree.log_odds(probe, level=level)
    assert ("level", level) not in tree._cache  # the small query did not sort the map
    tree._level_table(level)
    from_table = tree.log_odds(probe, level=level)
    np.testing.assert_array_equal(from_hash, from_table)
    assert np.isnan(from_hash[-1]) and (~np.isnan(from_hash)).sum() >= n - n // 4


@pytest.mark.parametrize("walker", ["mark_scan", "mark_scan_serial"])
def test_both_ray_walkers_mark_what_the_sparse_walk_marks(monkeypatch, walker):
    import engram.memory.octree as octree_module

    rng = np.random.default_rng(7)
    origin = rng.uniform(-0.2, 0.2, 3)
    pts = origin + rng.normal(size=(3000, 3)) * 1.5
    monkeypatch.setattr(octree_module, "_walker_choice", walker)
    tree = OccupancyOctree(RES)
    free, occ = tree.scan_keys(pts, origin, max_range_m=3.0)
    hits = tree.unique_codes(tree.point_codes(pts[:2000]))
    ends = tree.unique_codes(tree.point_codes(pts[2000:]))  # rays that free their end voxel
    d_free, d_occ = tree.voxel_scan(hits, origin, 3.0, free_end_codes=ends)
    monkeypatch.setattr(octree_module, "_MAX_SCAN_GRID_CELLS", 0)  # the per-ray walk, sorted
    s_free, s_occ = tree.scan_keys(pts, origin, max_range_m=3.0)
    s_dfree, s_docc = tree.voxel_scan(hits, origin, 3.0, free_end_codes=ends)
    np.testing.assert_array_equal(np.unique(free, axis=0), np.unique(s_free, axis=0))
    np.testing.assert_array_equal(np.unique(occ, axis=0), np.unique(s_occ, axis=0))
    np.testing.assert_array_equal(np.sort(d_free), np.sort(s_dfree))
    np.testing.assert_array_equal(np.sort(d_occ), np.sort(s_docc))
    assert len(d_free) > 1000 and len(d_occ) > 100


def test_ray_walker_is_timed_then_fixed(monkeypatch):
    import engram.memory.octree as octree_module

    monkeypatch.delenv("ENGRAM_RAY_WALKER", raising=False)
    monkeypatch.setattr(octree_module, "_walker_choice", None)
    monkeypatch.setattr(octree_module, "_walker_ns", {"mark_scan": [], "mark_scan_serial": []})
    seen = []
    for _ in range(2 * octree_module._WALKER_TRIALS):
        name = octree_module.ray_walker()
        seen.append(name)
        octree_module._time_walker(name, 2.0 if name == "mark_scan" else 1.0, 10_000)  # serial twice as fast
    assert sorted(set(seen)) == ["mark_scan", "mark_scan_serial"]
    assert seen.count("mark_scan") == seen.count("mark_scan_serial")
    assert octree_module.ray_walker() == "mark_scan_serial"
    octree_module._time_walker("mark_scan", 0.1, 10_000)  # once chosen, timings change nothing
    assert octree_module.ray_walker() == "mark_scan_serial"
    monkeypatch.setattr(octree_module, "_walker_choice", None)
    monkeypatch.setenv("ENGRAM_RAY_WALKER", "mark_scan")
    assert octree_module.ray_walker() == "mark_scan"
    monkeypatch.setattr(octree_module, "_walker_choice", None)
    monkeypatch.setenv("ENGRAM_RAY_WALKER", "fastest")
    with pytest.raises(ValueError, match="ENGRAM_RAY_WALKER"):
        octree_module.ray_walker()


def test_parallel_kernels_run_on_openmp_without_a_tbb_warning_beside_open3d():
    # open3d loads an older libtbb; numba, trying TBB first, warned on every `engram map` before
    # falling back to OpenMP. The kernels ask for OpenMP first.
    pytest.importorskip("open3d")
    import os
    import subprocess
    import sys

    code = (
        "import open3d\n"
        "import numpy as np, numba\n"
        "from engram.memory import _octree_kernels as k\n"
        "k.encode_keys(np.zeros((4, 3), np.int64))\n"
        "print(numba.threading_layer())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    res = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] in ("omp", "workqueue"), res.stdout
    assert "TBB" not in res.stderr, res.stderr
