"""Dynamic layer: transient voxels decay, objects go missing and move, change memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from engram.memory.dynamic import ChangeEvent, ChangeMemory, ObjectTracker, TransientLayer, pack_keys, unpack_keys
from engram.types import CameraIntrinsics, Pose


def test_pack_round_trip():
    rng = np.random.default_rng(0)
    keys = rng.integers(-100_000, 100_000, size=(1000, 3))
    np.testing.assert_array_equal(unpack_keys(pack_keys(keys)), keys)


def test_transient_weight_halves_per_half_life():
    layer = TransientLayer(voxel_size_m=0.1, half_life_s=2.0, min_weight=0.1)
    p = np.array([[0.05, 0.05, 0.05]])
    layer.add(p, t_s=0.0)
    assert layer.weight_at(p, 0.0)[0] == pytest.approx(1.0)
    assert layer.weight_at(p, 2.0)[0] == pytest.approx(0.5, rel=1e-5)
    assert layer.weight_at(p, 4.0)[0] == pytest.approx(0.25, rel=1e-5)
    # seen again at t=2: decayed 0.5 + 1
    layer.add(p, t_s=2.0)
    assert layer.weight_at(p, 2.0)[0] == pytest.approx(1.5, rel=1e-5)
    assert len(layer.centers(2.0, min_weight=1.0)) == 1
    # a long time later it is pruned
    assert layer.prune(100.0) == 1 and len(layer) == 0


def test_transient_duplicate_points_count_once_per_call():
    layer = TransientLayer(voxel_size_m=0.1, half_life_s=10.0)
    layer.add(np.zeros((50, 3)) + 0.01, t_s=0.0)
    assert len(layer) == 1 and layer.weight_at(np.array([[0.01, 0.01, 0.01]]), 0.0)[0] == pytest.approx(1.0)


def test_change_memory_capacity_and_relevance():
    mem = ChangeMemory(capacity=3, half_life_s=10.0, relevance_weight=2.0)
    for i in range(3):
        mem.add(ChangeEvent("moved", i, "mug", t_s=float(i)))
    mem.recall(label="mug")  # every entry asked about once
    mem.recall(since_s=0.0)
    for _ in range(5):  # entry 0 is asked about a lot: it is relevant
        mem.entries[0], mem.hits[0] = mem.entries[0], mem.hits[0] + 1
    mem.add(ChangeEvent("moved", 3, "cup", t_s=3.0))
    assert len(mem) == 3
    kept = {e.object_id for e in mem.entries}
    assert 0 in kept and 3 in kept and 1 not in kept  # the stalest, least-asked entry went


@dataclass
class Obj:
    id: int
    label: str
    centroid: np.ndarray
    box_min: np.ndarray = field(default=None)
    box_max: np.ndarray = field(default=None)
    first_seen_s: float = 0.0
    last_seen_s: float = 0.0
    half_m: float = 0.05
    points: np.ndarray | None = None
    colors: np.ndarray | None = None

    def __post_init__(self):
        self.box_min = self.centroid - self.half_m
        self.box_max = self.centroid + self.half_m


K = CameraIntrinsics(fx=100, fy=100, cx=49.5, cy=39.5, width=100, height=80)
# camera at the origin looking along world +x
CAM = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0, 0, 0])


def test_expected_visible_respects_frustum_and_occlusion():
    tr = ObjectTracker(min_extent_px=5)
    objs = {1: Obj(1, "mug", np.array([2.0, 0.0, 0.0])), 2: Obj(2, "mug", np.array([-2.0, 0.0, 0.0]))}
    depth = np.full((80, 100), 3.0, np.float32)
    assert tr.expected_visible(objs, CAM, K, depth) == [1]  # 2 is behind the camera
    depth[:] = 1.0  # a wall at 1 m hides the mug at 2 m
    assert tr.expected_visible(objs, CAM, K, depth) == []


def test_missing_then_seen_elsewhere_is_a_move():
    tr = ObjectTracker(miss_frames=2, min_move_m=0.5)
    mug = Obj(1, "mug", np.array([2.0, 0.0, 0.0]), first_seen_s=0.0, last_seen_s=1.0)
    objs = {1: mug}
    tr.observe(1.0, objs, {1}, {1}, [1])
    assert tr.status[1].state == "present"
    tr.observe(10.0, objs, set(), set(), [1])
    tr.observe(11.0, objs, set(), set(), [1])
    assert tr.status[1].state == "missing"
    assert [e.kind for e in tr.changes()] == ["disappeared"]
    # the same category shows up 3 m away
    objs[7] = Obj(7, "mug", np.array([2.0, 3.0, 0.0]), first_seen_s=20.0, last_seen_s=20.0)
    merges = tr.observe(20.0, objs, {7}, {7}, [])
    assert merges == [(1, 7)]
    moved = tr.changes(since_s=15.0)
    assert [e.kind for e in moved] == ["moved"] and moved[0].to_xyz == (2.0, 3.0, 0.0)
    assert tr.resolve(7) == 1
    np.testing.assert_allclose(tr.where_is(1), [2.0, 3.0, 0.0])
    np.testing.assert_allclose(tr.where_is(1, at_s=5.0), [2.0, 0.0, 0.0])
    assert tr.where_is(1, at_s=0.5) is None


def test_seen_elsewhere_first_then_missing_is_a_move():
    tr = ObjectTracker(miss_frames=1)
    objs = {1: Obj(1, "book", np.array([1.0, 0, 0]), first_seen_s=0.0, last_seen_s=1.0)}
    tr.observe(1.0, objs, {1}, {1}, [])
    objs[2] = Obj(2, "book", np.array([5.0, 0, 0]), first_seen_s=5.0, last_seen_s=5.0)
    assert tr.observe(5.0, objs, {2}, {2}, []) == []  # book 1 is not known to be missing yet
    merges = tr.observe(9.0, objs, set(), set(), [1])
    assert merges == [(1, 2)]
    assert tr.changes()[-1].kind == "moved"


def test_different_category_is_not_a_move():
    tr = ObjectTracker(miss_frames=1)
    objs = {1: Obj(1, "mug", np.array([1.0, 0, 0]), first_seen_s=0.0, last_seen_s=1.0)}
    tr.observe(1.0, objs, {1}, {1}, [])
    tr.observe(2.0, objs, set(), set(), [1])
    objs[2] = Obj(2, "bowl", np.array([4.0, 0, 0]), first_seen_s=3.0, last_seen_s=3.0)
    assert tr.observe(3.0, objs, {2}, {2}, [], new_in_known_space={2}) == []
    assert [e.kind for e in tr.changes()] == ["disappeared", "appeared"]


@pytest.mark.parametrize("half_m, moved", [(0.4, True), (0.15, True), (0.04, False)])
def test_a_move_keeps_the_size_of_what_moved(half_m, moved):
    """A chair 0.8 m across went missing; a fragment 8 cm across of the same name somewhere else
    (a segmenter's piece of something) is not the chair moved, a part of it seen first is."""
    tr = ObjectTracker(miss_frames=1)
    objs = {1: Obj(1, "chair", np.array([1.0, 0, 0]), first_seen_s=0.0, last_seen_s=1.0, half_m=0.4)}
    tr.observe(1.0, objs, {1}, {1}, [])
    tr.observe(2.0, objs, set(), set(), [1])
    assert tr.status[1].state == "missing"
    objs[2] = Obj(2, "chair", np.array([4.0, 0, 0]), first_seen_s=3.0, last_seen_s=3.0, half_m=half_m)
    assert tr.observe(3.0, objs, {2}, {2}, []) == ([(1, 2)] if moved else [])


def test_two_objects_missing_in_one_frame_do_not_share_a_newcomer():
    """Two books go missing in the same frame and one book turns up elsewhere: one of them moved
    there; the other stays missing (it was taken for moved onto the same newcomer)."""
    tr = ObjectTracker(miss_frames=1)
    objs = {
        1: Obj(1, "book", np.array([1.0, 0, 0]), first_seen_s=0.0, last_seen_s=1.0),
        2: Obj(2, "book", np.array([1.0, 1.0, 0]), first_seen_s=0.0, last_seen_s=1.0),
    }
    tr.observe(1.0, objs, {1, 2}, {1, 2}, [])
    objs[3] = Obj(3, "book", np.array([5.0, 0, 0]), first_seen_s=5.0, last_seen_s=5.0)
    tr.observe(5.0, objs, {3}, {3}, [])
    merges = tr.observe(9.0, objs, set(), set(), [1, 2])
    assert len(merges) == 1 and merges[0][1] == 3
    other = 2 if merges[0][0] == 1 else 1
    assert tr.status[other].state == "missing"
    assert [e.kind for e in tr.changes()].count("moved") == 1


def test_records_round_trip():
    tr = ObjectTracker(miss_frames=1)
    objs = {1: Obj(1, "mug", np.array([1.0, 0, 0]), first_seen_s=0.0, last_seen_s=1.0)}
    tr.observe(1.0, objs, {1}, {1}, [])
    tr.observe(2.0, objs, set(), set(), [1])
    again = ObjectTracker()
    again.load_records(tr.to_records())
    assert again.to_records() == tr.to_records()


def _surface(centre, half=0.05, n=5):
    """Points on the camera-facing (-x) face of a cube."""
    g = np.linspace(-half, half, n)
    yy, zz = np.meshgrid(g, g)
    return np.column_stack([np.full(yy.size, centre[0] - half), centre[1] + yy.ravel(), centre[2] + zz.ravel()])


def test_seen_through_needs_depth_behind_the_remembered_surface():
    tr = ObjectTracker()
    c = np.array([2.0, 0.0, 0.0])
    objs = {1: Obj(1, "mug", c, points=_surface(c))}
    depth = np.full((80, 100), 3.0, np.float32)
    assert tr.seen_through(objs, [1], CAM, K, depth) == {1}  # the wall behind shows through
    depth[:] = 1.95  # the mug's own face is there: undetected, not gone
    assert tr.seen_through(objs, [1], CAM, K, depth) == set()
    depth[:] = 1.0  # something nearer hides it: no evidence either way
    assert tr.seen_through(objs, [1], CAM, K, depth) == set()
    depth[:] = 0.0  # no depth
    assert tr.seen_through(objs, [1], CAM, K, depth) == set()


def test_overlapping_new_object_is_not_a_move():
    """A second fragment of a big object is not the object having moved."""
    tr = ObjectTracker(miss_frames=1, min_move_m=0.5)
    objs = {1: Obj(1, "desk", np.array([2.0, 0.0, 0.4]), half_m=0.6, first_seen_s=0.0, last_seen_s=1.0)}
    tr.observe(1.0, objs, {1}, {1}, [])
    tr.observe(2.0, objs, set(), set(), [1])
    assert tr.status[1].state == "missing"
    objs[2] = Obj(2, "desk", np.array([2.0, 0.9, 0.4]), half_m=0.4, first_seen_s=3.0, last_seen_s=3.0)
    assert tr.observe(3.0, objs, {2}, {2}, []) == []
    assert [e.kind for e in tr.changes()] == ["disappeared"]


def test_appearing_object_with_one_candidate_is_an_inferred_move():
    tr = ObjectTracker()
    objs = {1: Obj(1, "apple", np.array([1.0, 0.0, 0.7]), first_seen_s=0.0, last_seen_s=2.0)}
    tr.observe(2.0, objs, {1}, {1}, [])
    objs[2] = Obj(2, "apple", np.array([4.0, 3.0, 0.8]), first_seen_s=30.0, last_seen_s=30.0)
    assert tr.observe(30.0, objs, {2}, {2}, [], new_in_known_space={2}) == [(1, 2)]
    ev = tr.changes()[-1]
    assert ev.kind == "moved" and ev.inferred and ev.from_xyz == (1.0, 0.0, 0.7)
    # first seen somewhere never mapped before: no evidence it moved, so no move
    tr2 = ObjectTracker()
    tr2.observe(2.0, {1: objs[1]}, {1}, {1}, [])
    assert tr2.observe(30.0, objs, {2}, {2}, []) == []


def test_no_move_is_inferred_among_several_candidates():
    red = np.tile([[200, 20, 20]], (10, 1))
    green = np.tile([[60, 180, 40]], (10, 1))
    tr = ObjectTracker()
    objs = {
        1: Obj(1, "apple", np.array([1.0, 0.0, 0.7]), last_seen_s=2.0, colors=red),
        2: Obj(2, "apple", np.array([1.0, 4.0, 0.7]), last_seen_s=2.0, colors=green),
    }
    tr.observe(2.0, objs, {1, 2}, {1, 2}, [])
    objs[9] = Obj(9, "apple", np.array([5.0, 2.0, 0.8]), first_seen_s=9.0, last_seen_s=9.0, colors=red)
    assert tr.observe(9.0, objs, {9}, {9}, [], new_in_known_space={9}) == []
    assert [e.kind for e in tr.changes()] == ["appeared"]


def test_colour_decides_between_missing_candidates():
    red, green = np.tile([[200, 20, 20]], (10, 1)), np.tile([[60, 180, 40]], (10, 1))
    tr = ObjectTracker(miss_frames=1)
    objs = {
        1: Obj(1, "apple", np.array([1.0, 0.0, 0.7]), last_seen_s=2.0, colors=red),
        2: Obj(2, "apple", np.array([1.0, 4.0, 0.7]), last_seen_s=2.0, colors=green),
    }
    tr.observe(2.0, objs, {1, 2}, {1, 2}, [])
    tr.observe(5.0, objs, set(), set(), [1])
    tr.observe(6.0, objs, set(), set(), [2])  # the green one went missing last
    # a red apple, a little darker under other shading, turns up elsewhere
    objs[9] = Obj(
        9, "apple", np.array([5.0, 2.0, 0.8]), first_seen_s=9.0, last_seen_s=9.0, colors=(red * 0.7).astype(np.uint8)
    )
    assert tr.observe(9.0, objs, {9}, {9}, []) == [(1, 9)]


def test_furniture_is_never_inferred_to_move():
    tr = ObjectTracker(max_inferred_extent_m=0.8)
    objs = {1: Obj(1, "sofa", np.array([1.0, 0.0, 0.4]), half_m=0.9, last_seen_s=2.0)}
    tr.observe(2.0, objs, {1}, {1}, [])
    objs[2] = Obj(2, "sofa", np.array([6.0, 3.0, 0.4]), half_m=0.9, first_seen_s=9.0, last_seen_s=9.0)
    assert tr.observe(9.0, objs, {2}, {2}, [], new_in_known_space={2}) == []
    assert [e.kind for e in tr.changes()] == ["appeared"]


def test_place_taken_by_another_object_counts_as_absent():
    tr = ObjectTracker()
    c = np.array([2.0, 0.0, 0.0])
    objs = {1: Obj(1, "book", c, points=_surface(c))}
    depth = np.full((80, 100), 1.85, np.float32)  # something just in front of where the book was
    inst = np.full((80, 100), 5, np.int32)
    for label, absent in (("plant", {1}), ("book", set()), ("person", set()), ("wall", set())):
        assert tr.seen_through(objs, [1], CAM, K, depth, inst, {5: label}) == absent, label
    depth[:] = 1.0  # a plant a metre in front only hides the place
    assert tr.seen_through(objs, [1], CAM, K, depth, inst, {5: "plant"}) == set()
