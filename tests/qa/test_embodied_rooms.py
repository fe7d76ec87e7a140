"""Embodied QA over a two-room map: answers name the room, and fusion fragments are not extra instances."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from engram.qa.embodied import EmbodiedQA, merge_fragments

VS = 0.05


def _slab(x0, x1, y0, y1, z0, z1) -> np.ndarray:
    g = np.meshgrid(
        np.arange(x0 + VS / 2, x1, VS), np.arange(y0 + VS / 2, y1, VS), np.arange(z0 + VS / 2, z1, VS), indexing="ij"
    )
    return np.stack(g, -1).reshape(-1, 3)


class TwoRoomOctree:
    """8 x 4 m, walls 2.5 m high, an inner wall at x = 4 with a 0.9 m door at y in [1.5, 2.4]."""

    voxel_size_m = VS

    def __init__(self):
        self._occ = np.concatenate(
            [
                _slab(-0.1, 8.1, -0.1, 4.1, -0.05, 0.0),
                _slab(-0.1, 0.0, -0.1, 4.1, 0.0, 2.5),
                _slab(8.0, 8.1, -0.1, 4.1, 0.0, 2.5),
                _slab(0.0, 8.0, -0.1, 0.0, 0.0, 2.5),
                _slab(0.0, 8.0, 4.0, 4.1, 0.0, 2.5),
                _slab(4.0, 4.1, 0.0, 1.5, 0.0, 2.5),
                _slab(4.0, 4.1, 2.4, 4.0, 0.0, 2.5),
            ]
        )

    def occupied_centers(self):
        return self._occ

    def free_centers(self):
        return np.empty((0, 3))


@dataclass
class Obj:
    id: int
    label: str
    box_min: np.ndarray
    box_max: np.ndarray
    n_points: int
    last_seen_s: float = 1.0
    points: np.ndarray = field(init=False)
    centroid: np.ndarray = field(init=False)

    def __post_init__(self):
        self.box_min, self.box_max = np.asarray(self.box_min, float), np.asarray(self.box_max, float)
        self.centroid = (self.box_min + self.box_max) / 2
        rng = np.random.default_rng(self.id)
        self.points = rng.uniform(self.box_min, self.box_max, (self.n_points, 3))


class StandInMemory:
    """What EmbodiedQA reads from a SceneMemory, over fixed objects; labels match exactly."""

    def __init__(self, objs):
        self.objects = SimpleNamespace(objects={o.id: o for o in objs})
        self.snapshots = SimpleNamespace(snapshot_of=lambda i: None, snapshots=[])
        self.octree = TwoRoomOctree()
        self.floor_z_m = 0.0
        self.frames_mapped = 1
        self.text_encoder = None

    def label_scores(self, text, labels):
        return np.array([1.0 if lab == text.strip() else 0.0 for lab in labels])

    def rooms(self):
        from engram.memory.rooms import segment_rooms

        return segment_rooms(self.octree, self.objects.objects.values(), floor_z_m=self.floor_z_m)


def scene():
    return [
        Obj(1, "sofa", (0.1, 0.5, 0.0), (0.9, 2.5, 0.85), 1500, last_seen_s=10.0),
        Obj(2, "sofa", (0.5, 2.52, 0.0), (0.8, 2.6, 0.45), 30, last_seen_s=12.0),  # a piece fusion left apart
        Obj(3, "chair", (5.0, 3.0, 0.0), (5.46, 3.46, 0.9), 400),
        Obj(4, "chair", (5.6, 3.0, 0.0), (6.06, 3.46, 0.9), 380),  # a second chair, 0.14 m away
        Obj(5, "fridge", (7.2, 0.2, 0.0), (7.9, 0.9, 1.8), 900),
        Obj(6, "mug", (2.0, 3.0, 0.7), (2.08, 3.08, 0.8), 20),
    ]


def test_where_and_which_room_name_the_room_the_object_stands_in():
    qa = EmbodiedQA(StandInMemory(scene()))
    a = qa.ask("Where is the sofa?")
    assert a.value["room"] == "living room" and a.candidates == []  # one sofa, not two
    assert np.linalg.norm(np.asarray(a.value["position"][:2]) - [0.5, 1.5]) < 0.01
    assert qa.ask("Which room is the fridge in?").value == "kitchen"
    assert qa.ask("Which room is the mug in?").value == "living room"
    assert qa.ask("Is there a mug in the kitchen?").value is False
    assert qa.ask("How many chairs are there in the kitchen?").value == 2


def test_fragments_count_once_but_twins_count_twice():
    qa = EmbodiedQA(StandInMemory(scene()))
    assert qa.ask("How many sofas are there?").value == 1
    assert qa.ask("How many chairs are there?").value == 2
    # the fragment was seen last: that sighting still counts for "when did I last see"
    assert qa.ask("When did I last see the sofa?").value == pytest.approx(12.0)


def test_merge_fragments_rules():
    big = Obj(1, "sofa", (0, 0, 0), (2, 1, 1), 1000)
    near_small = Obj(2, "sofa", (2.2, 0, 0), (2.4, 0.2, 0.3), 50)
    far_small = Obj(3, "sofa", (3.0, 0, 0), (3.2, 0.2, 0.3), 50)  # 1 m away: another object
    near_big = Obj(4, "sofa", (2.1, 0, 0), (3.5, 1, 1), 600)  # as large: a second sofa
    other_label = Obj(5, "cushion", (2.2, 0, 0), (2.4, 0.2, 0.3), 50)

    def ids(objs):
        return sorted(o.id for o in objs)

    assert ids(merge_fragments([big, near_small])) == [1]
    assert ids(merge_fragments([big, far_small])) == [1, 3]
    assert ids(merge_fragments([big, near_big])) == [1, 4]
    assert ids(merge_fragments([big, other_label])) == [1, 5]
    assert ids(merge_fragments([near_small], 0.3, 0.2)) == [2]
    with pytest.raises(ValueError, match="fragment_share"):
        EmbodiedQA(StandInMemory(scene()), fragment_share=1.5)
