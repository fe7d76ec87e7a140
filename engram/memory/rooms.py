"""Rooms from memory: segment the mapped floor into rooms and name them by what they hold.

Segmentation works on the floor the octree has seen (a top-down grid): the
free floor is eroded until doorways close, the remaining blobs are room
seeds, and every free cell joins the seed it reaches first (a geodesic
watershed). Names come from furniture and objects remembered in each room,
scored against room signatures (a bed means bedroom, a fridge kitchen), with
each name given at most once where the evidence allows; a room with no
evidence is "room N".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Room", "RoomMap", "segment_rooms", "ROOM_SIGNATURES"]

# category -> weight, per room type
ROOM_SIGNATURES: dict[str, dict[str, float]] = {
    "kitchen": {"fridge": 3.0, "counter": 2.5, "stove": 3.0, "oven": 3.0, "microwave": 2.0, "sink": 0.5, "pan": 1.0, "kettle": 1.0},
    "bedroom": {"bed": 3.0, "wardrobe": 2.5, "pillow": 1.0, "nightstand": 1.5},
    "bathroom": {"toilet": 3.0, "bathtub": 3.0, "shower": 3.0, "sink": 1.5, "towel": 1.0},
    "living room": {"sofa": 3.0, "couch": 3.0, "tv": 2.0, "television": 2.0, "armchair": 1.5},
    "office": {"desk": 3.0, "monitor": 1.5, "laptop": 1.0, "keyboard": 1.0},
    "dining room": {"table": 0.8, "chair": 0.7},
}


@dataclass
class Room:
    """One segmented room.

    Attributes:
        id: index of the room.
        name: "kitchen", "bedroom", ... or "room N" without evidence.
        center_xy: centroid of its floor.
        area_m2: floor area seen.
        object_ids: memory objects whose centroid lies in it.
        scores: room-type scores from its objects.
    """

    id: int
    name: str
    center_xy: np.ndarray
    area_m2: float
    object_ids: list[int] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class RoomMap:
    """A room label per floor cell, and the rooms."""

    labels: np.ndarray  # "H W" int32, -1 = not a room
    origin_xy: np.ndarray
    resolution_m: float
    rooms: list[Room]

    def room_at(self, xy) -> Room | None:
        p = np.asarray(xy, float)[:2]
        c = np.floor((p - self.origin_xy) / self.resolution_m).astype(int)
        h, w = self.labels.shape
        r = None
        if 0 <= c[1] < h and 0 <= c[0] < w:
            r = int(self.labels[c[1], c[0]])
        if r is None or r < 0:
            # objects stand on furniture or at walls: take the nearest labelled cell within 0.6 m
            rad = int(np.ceil(0.6 / self.resolution_m))
            r0, r1 = max(0, c[1] - rad), min(h, c[1] + rad + 1)
            c0, c1 = max(0, c[0] - rad), min(w, c[0] + rad + 1)
            if r0 >= r1 or c0 >= c1:
                return None
            sub = self.labels[r0:r1, c0:c1]
            rr, cc = np.nonzero(sub >= 0)
            if not len(rr):
                return None
            d = (rr + r0 - c[1]) ** 2 + (cc + c0 - c[0]) ** 2
            i = int(np.argmin(d))
            r = int(sub[rr[i], cc[i]])
        return self.rooms[r] if 0 <= r < len(self.rooms) else None

    def by_name(self, name: str) -> list[Room]:
        n = name.strip().lower()
        return [r for r in self.rooms if r.name == n]


def _floor_grid(octree, floor_z_m: float, resolution_m: float, obstacle_z: tuple[float, float]):
    occ = octree.occupied_centers()
    free = octree.free_centers()
    pts = [p[:, :2] for p in (occ, free) if len(p)]
    if not pts:
        return None
    allp = np.concatenate(pts)
    lo = allp.min(axis=0) - 0.5
    hi = allp.max(axis=0) + 0.5
    w, h = np.maximum(np.ceil((hi - lo) / resolution_m).astype(int), 1)
    floor = np.zeros((h, w), bool)
    wall = np.zeros((h, w), bool)
    vs = octree.voxel_size_m

    def mark(grid, p):
        ij = np.floor((p[:, :2] - lo) / resolution_m).astype(int)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        grid[ij[ok, 1], ij[ok, 0]] = True

    if len(occ):
        z = occ[:, 2]
        mark(floor, occ[(z >= floor_z_m - 1.5 * vs) & (z < floor_z_m + 0.12)])
        # walls and furniture: the floor under them is not floor the agent can stand on
        mark(wall, occ[(z >= floor_z_m + obstacle_z[0]) & (z <= floor_z_m + obstacle_z[1])])
    if len(free):
        z = free[:, 2]
        mark(floor, free[(z >= floor_z_m - vs) & (z < floor_z_m + 0.5)])
    return floor, wall, lo


def segment_rooms(
    octree,
    objects: Iterable = (),
    *,
    floor_z_m: float = 0.0,
    resolution_m: float = 0.1,
    door_width_m: float = 0.8,
    min_room_m2: float = 0.4,
    wall_band_m: tuple[float, float] = (0.15, 2.3),
) -> RoomMap:
    """Segment the mapped floor into rooms and name them from ``objects`` (MapObjects)."""
    import cv2

    g = _floor_grid(octree, floor_z_m, resolution_m, wall_band_m)
    if g is None:
        return RoomMap(np.full((1, 1), -1, np.int32), np.zeros(2), resolution_m, [])
    floor, wall, origin = g
    # close small gaps in the seen floor (speckle under furniture legs), keep walls out
    space = cv2.morphologyEx(floor.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)
    wall = cv2.dilate(wall.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    space &= ~wall
    dist = cv2.distanceTransform(space.astype(np.uint8), cv2.DIST_L2, 5) * resolution_m
    seeds = (dist > door_width_m / 2).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(seeds, connectivity=4)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] * resolution_m**2 >= min_room_m2 * 0.25]
    markers = np.zeros(space.shape, np.int32)
    for k, i in enumerate(keep, start=1):
        markers[lab == i] = k
    if not keep:
        # one room: the largest connected free area
        n2, lab2, st2, _ = cv2.connectedComponentsWithStats(space.astype(np.uint8), connectivity=4)
        if n2 <= 1:
            return RoomMap(np.full(space.shape, -1, np.int32), origin, resolution_m, [])
        big = 1 + int(np.argmax(st2[1:, cv2.CC_STAT_AREA]))
        markers[lab2 == big] = 1
        keep = [big]
    # geodesic growth of the seeds over free space (watershed on the negated distance)
    img = cv2.cvtColor((255 - np.clip(dist / max(dist.max(), 1e-6) * 255, 0, 255)).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    mk = markers.copy()
    mk[~space] = len(keep) + 1  # background marker
    cv2.watershed(img, mk)
    labels = np.where(space & (mk >= 1) & (mk <= len(keep)), mk - 1, -1).astype(np.int32)

    rooms = []
    for r in range(len(keep)):
        cells = np.argwhere(labels == r)
        area = len(cells) * resolution_m**2
        centre = origin + (cells[:, ::-1].mean(axis=0) + 0.5) * resolution_m if len(cells) else origin
        rooms.append(Room(id=r, name="", center_xy=centre, area_m2=float(area)))
    rm = RoomMap(labels, origin, resolution_m, rooms)
    _name_rooms(rm, list(objects))
    return rm


def _name_rooms(rm: RoomMap, objects: list) -> None:
    for o in objects:
        room = rm.room_at(np.asarray(o.centroid)[:2])
        if room is not None:
            room.object_ids.append(int(o.id))
            for rtype, sig in ROOM_SIGNATURES.items():
                wgt = sig.get(o.label.lower(), 0.0)
                if wgt:
                    room.scores[rtype] = room.scores.get(rtype, 0.0) + wgt
    # greedy unique assignment: strongest evidence first
    pairs = sorted(((s, r.id, t) for r in rm.rooms for t, s in r.scores.items()), reverse=True)
    used_types: set[str] = set()
    for s, rid, t in pairs:
        room = rm.rooms[rid]
        if room.name or t in used_types:
            continue
        room.name = t
        used_types.add(t)
    for r in rm.rooms:
        if not r.name:
            # a second room of an already used type still gets that type if it has the evidence
            if r.scores:
                r.name = max(r.scores, key=r.scores.get)
            else:
                r.name = f"room {r.id + 1}"
