"""Room segmentation splits the mapped floor at doorways and names rooms by what they hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engram.memory.rooms import segment_rooms


class TwoRooms:
    """Floor 8 x 4 m seen everywhere, a wall at x = 4 with a 0.9 m door at y in [1.5, 2.4]."""

    voxel_size_m = 0.05

    def __init__(self):
        xs = np.arange(0.025, 8.0, 0.05)
        ys = np.arange(0.025, 4.0, 0.05)
        fx, fy = np.meshgrid(xs, ys)
        floor = np.stack([fx.ravel(), fy.ravel(), np.full(fx.size, 0.025)], 1)
        wall_y = ys[(ys < 1.5) | (ys > 2.4)]
        wz = np.arange(0.025, 2.5, 0.05)
        wy, wzz = np.meshgrid(wall_y, wz)
        wall = np.stack([np.full(wy.size, 4.025), wy.ravel(), wzz.ravel()], 1)
        # outer walls
        border = []
        for x in (-0.025, 8.025):
            by, bz = np.meshgrid(ys, wz)
            border.append(np.stack([np.full(by.size, x), by.ravel(), bz.ravel()], 1))
        for y in (-0.025, 4.025):
            bx, bz = np.meshgrid(xs, wz)
            border.append(np.stack([bx.ravel(), np.full(bx.size, y), bz.ravel()], 1))
        self._occ = np.concatenate([floor, wall, *border])

    def occupied_centers(self):
        return self._occ

    def free_centers(self):
        return np.empty((0, 3))


@dataclass
class Obj:
    id: int
    label: str
    centroid: np.ndarray


def test_two_rooms_split_at_the_door_and_named():
    objs = [Obj(1, "bed", np.array([1.5, 1.0, 0.4])), Obj(2, "fridge", np.array([6.5, 3.0, 0.9])),
            Obj(3, "counter", np.array([7.0, 1.0, 0.45]))]
    rm = segment_rooms(TwoRooms(), objs)
    assert len(rm.rooms) == 2
    left, right = rm.room_at((1.0, 2.0)), rm.room_at((7.0, 2.0))
    assert left is not None and right is not None and left.id != right.id
    assert left.name == "bedroom" and right.name == "kitchen"
    assert sorted(right.object_ids) == [2, 3]
    # areas add up to about the floor minus the wall band
    assert 22.0 < sum(r.area_m2 for r in rm.rooms) <= 32.0  # most of the 32 m² floor, less the wall bands
    # a room with no evidence gets a plain name
    bare = segment_rooms(TwoRooms(), [])
    assert sorted(r.name for r in bare.rooms) == ["room 1", "room 2"]
