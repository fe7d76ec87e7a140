"""Room segmentation splits the mapped floor at doorways and names rooms by what they hold."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from engram.memory.rooms import room_context, segment_rooms

VS = 0.05


def _slab(x0, x1, y0, y1, z0, z1) -> np.ndarray:
    """Voxel centres filling a box (a solid block of occupied voxels)."""
    xs = np.arange(x0 + VS / 2, x1, VS)
    ys = np.arange(y0 + VS / 2, y1, VS)
    zs = np.arange(z0 + VS / 2, z1, VS)
    g = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), -1).reshape(-1, 3)
    return g


class Apartment:
    """An 8 x 4 m floor seen everywhere, outer walls 2.5 m high, an inner wall at x = 4 with a door.

    ``door_m`` is the (y0, y1) span of the door opening; ``blocks`` are solid furniture boxes
    (x0, x1, y0, y1, z1) standing on the floor.
    """

    voxel_size_m = VS

    def __init__(self, door_m=(1.5, 2.4), blocks=(), seen_free=True, glimpse=None):
        # glimpse (x1, y0, y1): of the right room only the floor band x < x1, y0 < y < y1 and
        # the wall with the door were seen, as from the left room through the door
        x1, y0, y1 = glimpse or (8.1, -0.1, 4.1)
        parts = [_slab(-0.1, 4.1, -0.1, 4.1, -0.05, 0.0), _slab(4.1, x1, y0, y1, -0.05, 0.0)]
        parts += [
            _slab(-0.1, 0.0, -0.1, 4.1, 0.0, 2.5),
            _slab(0.0, 4.0, -0.1, 0.0, 0.0, 2.5),
            _slab(0.0, 4.0, 4.0, 4.1, 0.0, 2.5),
        ]
        if glimpse is None:
            parts += [
                _slab(8.0, 8.1, -0.1, 4.1, 0.0, 2.5),
                _slab(4.0, 8.0, -0.1, 0.0, 0.0, 2.5),
                _slab(4.0, 8.0, 4.0, 4.1, 0.0, 2.5),
            ]
        parts += [_slab(4.0, 4.1, 0.0, door_m[0], 0.0, 2.5), _slab(4.0, 4.1, door_m[1], 4.0, 0.0, 2.5)]
        parts += [_slab(x0, x1, y0, y1, 0.0, z1) for x0, x1, y0, y1, z1 in blocks]
        self._occ = np.concatenate(parts)
        free = _slab(0.0, 8.0, 0.0, 4.0, 0.0, 0.3) if seen_free else np.empty((0, 3))
        if len(free):
            taken = np.zeros(len(free), bool)
            for x0, x1, y0, y1, _ in blocks:
                taken |= (free[:, 0] > x0) & (free[:, 0] < x1) & (free[:, 1] > y0) & (free[:, 1] < y1)
            taken |= (free[:, 0] > 4.0) & (free[:, 0] < 4.1) & ((free[:, 1] < door_m[0]) | (free[:, 1] > door_m[1]))
            taken |= (free[:, 0] > 4.1) & ((free[:, 0] > x1) | (free[:, 1] < y0) | (free[:, 1] > y1))
            free = free[~taken]
        self._free = free

    def occupied_centers(self):
        return self._occ

    def free_centers(self):
        return self._free


@dataclass
class Obj:
    id: int
    label: str
    centroid: np.ndarray
    box_min: np.ndarray | None = field(default=None)
    box_max: np.ndarray | None = field(default=None)


@dataclass
class Detected(Obj):
    """An object named by a detector: its label distribution (word -> weighed votes) beside its label."""

    label_posterior: dict[str, float] = field(default_factory=dict)


def _block_obj(i, label, x0, x1, y0, y1, z1):
    return Obj(
        i, label, np.array([(x0 + x1) / 2, (y0 + y1) / 2, z1 / 2]), np.array([x0, y0, 0.0]), np.array([x1, y1, z1])
    )


def test_two_rooms_split_at_the_door_and_named():
    objs = [
        Obj(1, "bed", np.array([1.5, 1.0, 0.4])),
        Obj(2, "fridge", np.array([6.5, 3.0, 0.9])),
        Obj(3, "counter", np.array([7.0, 1.0, 0.45])),
    ]
    rm = segment_rooms(Apartment(), objs)
    assert len(rm.rooms) == 2
    left, right = rm.room_at((1.0, 2.0)), rm.room_at((7.0, 2.0))
    assert left is not None and right is not None and left.id != right.id
    assert left.name == "bedroom" and right.name == "kitchen"
    assert sorted(right.object_ids) == [2, 3]
    # each room is its side of the wall: the labelled cells of one room all lie on one side
    ys, xs = np.nonzero(rm.labels >= 0)
    x = rm.origin_xy[0] + (xs + 0.5) * rm.resolution_m
    lab = rm.labels[ys, xs]
    # cells in the door opening may go either way; everywhere else the wall decides
    off_door = np.abs(x - 4.05) > 0.5
    assert np.all(x[off_door & (lab == left.id)] < 4.05) and np.all(x[off_door & (lab == right.id)] > 4.05)
    # areas add up to the floor (32 m²), less the inner wall
    assert 30.0 < sum(r.area_m2 for r in rm.rooms) <= 32.0
    for r in rm.rooms:
        assert 15.0 < r.area_m2 < 17.0
    # a room with no evidence gets a plain name
    bare = segment_rooms(Apartment(), [])
    assert sorted(r.name for r in bare.rooms) == ["room 1", "room 2"]


def test_furniture_neither_splits_a_room_nor_leaves_objects_outside():
    # a wardrobe row and a bed leave only a 0.6 m passage across the left room, narrower than a door
    blocks = [(0.0, 1.7, 1.7, 2.3, 2.0), (2.3, 4.0, 1.0, 3.0, 0.9)]
    objs = [
        _block_obj(1, "wardrobe", *blocks[0]),
        _block_obj(2, "bed", *blocks[1]),
        Obj(3, "mug", np.array([7.0, 2.0, 0.8])),
    ]
    rm = segment_rooms(Apartment(blocks=blocks), objs)
    assert len(rm.rooms) == 2
    left = rm.room_at((1.0, 0.5))
    assert left is rm.room_at((1.0, 3.5)), "furniture split the bedroom"
    assert left.name == "bedroom"
    # the big pieces' own footprints lie in the room, so every object has a room
    assert rm.room_at(objs[1].centroid) is left and rm.room_at(objs[0].centroid) is left
    assert sorted(left.object_ids) == [1, 2]
    # the same blocks with no object map are walls of unknown use: they do split the room
    rm_unknown = segment_rooms(Apartment(blocks=blocks), [])
    assert rm_unknown.room_at((1.0, 0.5)) is not rm_unknown.room_at((1.0, 3.5))


def test_a_room_glimpsed_through_its_door_is_a_room_of_its_own():
    # of the right room only a 0.7 m band of floor, 2.5 m deep, was seen through the door: too thin
    # for a seed, yet it is no part of the left room
    apt = Apartment(glimpse=(6.6, 1.6, 2.3))
    objs = [Obj(1, "bed", np.array([6.0, 2.0, 0.4]))]
    rm = segment_rooms(apt, objs)
    left, right = rm.room_at((1.0, 2.0)), rm.room_at((6.0, 2.0))
    assert left is not None and right is not None and left is not right
    assert right.name == "bedroom" and right.area_m2 < 3.0  # the seen band only
    # nothing seen beyond the band: those cells are no room's
    assert rm.room_at((6.0, 0.5), max_snap_m=0.1) is None


@pytest.mark.parametrize("gap_m, rooms", [(0.9, 2), (3.0, 1)])
def test_only_door_wide_openings_split(gap_m, rooms):
    rm = segment_rooms(Apartment(door_m=(0.5, 0.5 + gap_m)), [])
    assert len(rm.rooms) == rooms


def test_low_table_names_the_living_room_high_table_the_dining_room():
    low = [_block_obj(1, "table", 1.0, 2.0, 1.0, 1.6, 0.45)]
    high = [_block_obj(2, "table", 5.5, 7.1, 1.5, 2.4, 0.75)]
    rm = segment_rooms(Apartment(blocks=[(1.0, 2.0, 1.0, 1.6, 0.45), (5.5, 7.1, 1.5, 2.4, 0.75)]), low + high)
    assert rm.room_at((0.5, 0.5)).name == "living room"
    assert rm.room_at((7.5, 3.5)).name == "dining room"


def test_names_weigh_each_word_by_its_share_of_the_objects_votes():
    left, right = np.array([1.5, 1.0, 0.4]), np.array([6.5, 3.0, 0.4])
    # a sure toilet names its room; one the detector gave a sixth of its votes (0.5 of evidence
    # at most) is no reason to call a room a bathroom, so that room keeps a plain name
    sure = Detected(1, "toilet", left, label_posterior={"toilet": 4.0})
    unsure = Detected(2, "toilet", right, label_posterior={"toilet": 0.6, "box": 0.3, "object": 2.7})
    rm = segment_rooms(Apartment(), [sure, unsure])
    assert rm.room_at((1.0, 2.0)).name == "bathroom"
    named_right = rm.room_at((7.0, 2.0))
    assert named_right.name == "room 2" and named_right.object_ids == [2]
    assert named_right.scores["bathroom"] == pytest.approx(3.0 * 0.6 / 3.6)
    # the threshold is what withholds the name: without it the unsure toilet names its room
    loose = segment_rooms(Apartment(), [unsure], min_name_score=0.0)
    assert loose.room_at((7.0, 2.0)).name == "bathroom"
    # a right second guess counts: a bed the detector called "box" more often still names the bedroom
    bed = Detected(3, "box", right, label_posterior={"box": 3.0, "bed": 2.0})
    assert segment_rooms(Apartment(), [bed]).room_at((7.0, 2.0)).name == "bedroom"
    # objects without a distribution (simulator labels, plain records) count their label in full
    assert segment_rooms(Apartment(), [Obj(4, "bed", right)]).room_at((7.0, 2.0)).name == "bedroom"


def test_room_context_comes_from_the_other_objects_of_a_clearly_named_room():
    left, right = np.array([1.5, 1.0, 0.4]), np.array([6.5, 3.0, 0.4])
    # left: a sure bed names the bedroom, and a thing the detector called a table more than a bed
    # stands beside it; right: a "table" whose own second guess "desk" alone names an office
    bed = Obj(1, "bed", left)
    unsure = Detected(2, "table", left + 0.5, label_posterior={"table": 3.0, "bed": 2.0})
    lonely = Detected(3, "table", right, label_posterior={"table": 3.0, "desk": 2.0})
    objs = [bed, unsure, lonely]
    rm = segment_rooms(Apartment(), objs)
    assert rm.room_at((1.0, 2.0)).name == "bedroom" and rm.room_at((7.0, 2.0)).name == "office"
    ctx = room_context(rm, objs)
    # the bed beside it makes "bed" 1 + 2 * 3 = 7 times as likely; the bedroom says nothing of tables
    assert ctx[2] == {"bed": pytest.approx(7.0)}
    assert 3 not in ctx  # the office rests on the object itself
    assert room_context(rm, objs, strength=0.0) == {}
    with pytest.raises(ValueError, match="min_share"):
        room_context(rm, objs, min_share=-1.0)
    with pytest.raises(ValueError, match="strength"):
        room_context(rm, objs, strength="high")
    # a room whose other objects point several ways gives no context: beside a tv (living room 2.0),
    # a microwave (kitchen 2.0) and a monitor (office 1.5), the kitchen that the box's own second
    # guess tips the name to holds less than half of what the others say
    mixed = [
        Obj(4, "tv", right),
        Obj(5, "microwave", right + [0.3, 0.0, 0.0]),
        Obj(6, "monitor", right + [0.6, 0.0, 0.0]),
        Detected(7, "box", right + [0.0, 0.4, 0.0], label_posterior={"box": 3.0, "fridge": 1.0}),
    ]
    rm = segment_rooms(Apartment(), mixed)
    assert rm.room_at((7.0, 2.0)).name == "kitchen"
    assert 7 not in room_context(rm, mixed)
    assert room_context(rm, mixed, min_share=0.0)[7] == {"fridge": pytest.approx(7.0)}


def _record(oid, label_votes, label_weights, lo, hi):
    pts = _slab(*[v for pair in zip(lo, hi) for v in pair]).astype(np.float32)
    return {
        "id": oid, "points": pts, "colors": np.full((len(pts), 3), 128, np.uint8), "label_votes": label_votes,
        "n_detections": 3, "first_seen_s": 0.0, "last_seen_s": 2.0, "frames": [0, 1, 2], "label_weights": label_weights,
    }  # fmt: skip


@pytest.mark.parametrize("strength", [2.0, 0.0])
def test_scene_memory_gives_detector_named_objects_their_room_context(strength):
    from engram.memory.objects import ObjectMap
    from engram.memory.scene import SceneMemory

    mem = SceneMemory(timeline=False, detector=None, room_context=strength)
    mem.octree = Apartment(blocks=[(1.0, 2.6, 0.5, 2.5, 0.5), (2.8, 3.6, 0.5, 1.2, 0.7)])  # what rooms are cut from
    mem.objects = ObjectMap.from_records(
        [
            # a bed from simulator masks (no label distribution), and beside it a thing a detector
            # named from its crops "table" more than "bed" (weights as the geometric prior left them)
            _record(1, {"bed": 9.0}, None, (1.0, 0.5, 0.0), (2.6, 2.5, 0.5)),
            _record(2, {"table": 3.0, "bed": 2.0}, {"table": 1.0, "bed": 1.0}, (2.8, 0.5, 0.0), (3.6, 1.2, 0.7)),
        ],
        voxel_size_m=mem.voxel_size_m,
    )
    assert mem.objects.objects[2].label == "table"
    mem._update_room_context()  # what finalize runs after its periodic work (the fake octree has no grid for it)
    rooms = mem.rooms()
    assert rooms is mem.rooms() and [r.name for r in rooms.rooms] == ["bedroom", "room 2"]  # kept until a change
    bed, thing = mem.objects.objects[1], mem.objects.objects[2]
    assert bed.room_weights is None and bed.label == "bed"  # simulator labels are left as they are
    if strength:
        assert thing.room_weights == {"bed": pytest.approx(7.0)} and thing.label == "bed"
    else:
        assert thing.room_weights is None and thing.label == "table"
    mem.objects.remove(1)
    assert mem.rooms() is not rooms  # the objects changed: segmented again
    for bad in (float("nan"), -1.0, "strong", None):
        with pytest.raises(ValueError, match="room_context"):
            SceneMemory(timeline=False, detector=None, room_context=bad)


def test_empty_and_bad_input():
    class Empty:
        voxel_size_m = VS

        def occupied_centers(self):
            return np.empty((0, 3))

        def free_centers(self):
            return np.empty((0, 3))

    rm = segment_rooms(Empty(), [])
    assert rm.rooms == [] and rm.room_at((0.0, 0.0)) is None
    with pytest.raises(ValueError, match="resolution_m"):
        segment_rooms(Apartment(), [], resolution_m=0.0)
    with pytest.raises(ValueError, match="min_name_score"):
        segment_rooms(Apartment(), [], min_name_score=float("nan"))
    with pytest.raises(ValueError, match="wall_band_m"):
        segment_rooms(Apartment(), [], wall_band_m=(1.0, 0.5))
    with pytest.raises(ValueError, match="finite"):
        segment_rooms(Apartment(), []).room_at((np.nan, 1.0))


def test_two_rooms_behind_an_unseen_wall_split_between_their_furniture():
    # no wall seen between the halves: one open region, yet a fridge and a toilet say two rooms
    apt = Apartment(door_m=(0.0, 4.0))
    objs = [
        _block_obj(1, "fridge", 0.2, 0.9, 0.2, 0.9, 1.8),
        _block_obj(2, "counter", 0.2, 2.2, 3.3, 3.9, 0.9),
        _block_obj(3, "toilet", 7.3, 7.9, 0.2, 0.8, 0.75),
        _block_obj(4, "bathtub", 6.3, 7.9, 3.1, 3.9, 0.55),
        Obj(5, "mug", np.array([1.5, 2.0, 0.8])),
    ]
    assert len(segment_rooms(apt, objs[4:]).rooms) == 1
    rm = segment_rooms(apt, objs)
    assert len(rm.rooms) == 2
    kitchen, bathroom = rm.by_name("kitchen"), rm.by_name("bathroom")
    assert len(kitchen) == 1 and len(bathroom) == 1
    assert sorted(kitchen[0].object_ids) == [1, 2, 5] and sorted(bathroom[0].object_ids) == [3, 4]
    # the split falls between the furniture groups
    assert rm.room_at((3.5, 2.0)) is kitchen[0] and rm.room_at((5.0, 2.0)) is bathroom[0]
