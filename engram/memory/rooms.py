"""Rooms from memory: segment the mapped floor into rooms and name them by what they hold.

Segmentation works on a top-down grid of what the octree has seen, with walls
told apart from furniture: a wall is occupied space in the height band of
``wall_band_m`` that no remembered object explains (furniture, being in the
object map, is cut out by its box). The floor is then split where the wall map
narrows to a doorway: the distance to the nearest wall, thresholded at half a
door width, leaves one seed per room (a room seen only through its door gets
one from its walls, with unseen floor counted open); every seen cell joins the
seed it reaches first (geodesic growth), seen floor cut off by unseen floor
joins the nearest room, and regions that share a border wider than a door are
one room split by a stray wall fragment, so they are merged again. Furniture
never splits a room, and the floor under it belongs to the room around it, so
every object lands in a room.

Names come from furniture and objects remembered in each room, scored against
room signatures (a bed means bedroom, a fridge kitchen, a low table in front
of a sofa the living room). An object's evidence is weighed by the share of its
label distribution behind each word, so a detector's unsure name counts for
less than a sure one. Each name is given at most once, strongest evidence
first; a room whose evidence stays below ``min_name_score`` is "room N" (a
guess is worse than no name: "which room" answers and room goals read it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from engram._util import non_negative

__all__ = ["ROOM_SIGNATURES", "Room", "RoomMap", "room_context", "segment_rooms"]

# category -> weight, per room type; storage furniture (shelf, cabinet) is weak evidence for
# the rooms that usually hold it, enough to name a room that holds nothing else
ROOM_SIGNATURES: dict[str, dict[str, float]] = {
    "kitchen": {
        "fridge": 3.0,
        "counter": 3.0,
        "stove": 3.0,
        "oven": 3.0,
        "microwave": 2.0,
        "sink": 0.5,
        "pan": 1.0,
        "kettle": 1.0,
        "table": 0.3,
        "chair": 0.2,
    },
    "bedroom": {"bed": 3.0, "wardrobe": 2.5, "pillow": 1.0, "nightstand": 1.5, "shelf": 0.1, "cabinet": 0.1},
    "bathroom": {"toilet": 3.0, "bathtub": 3.0, "shower": 3.0, "sink": 2.0, "towel": 1.0},
    "living room": {
        "sofa": 3.0,
        "couch": 3.0,
        "tv": 2.0,
        "television": 2.0,
        "armchair": 1.5,
        "coffee table": 1.5,
        "shelf": 0.1,
        "cabinet": 0.1,
    },
    "office": {"desk": 3.0, "monitor": 1.5, "keyboard": 1.0, "chair": 0.2, "shelf": 0.1, "cabinet": 0.1},
    "dining room": {"table": 1.0, "chair": 0.5, "cabinet": 0.1},
}
# Furniture that alone tells a room's type (a bed, a fridge, a toilet) weighs at least this much,
# and a room type this sure from one region's furniture splits a region holding two of them.
ANCHOR_WEIGHT = 2.0
STRONG_EVIDENCE = 3.0
# A table whose top is this low (m above the floor) is a coffee table, scored as "coffee table".
COFFEE_TABLE_TOP_M = 0.6
# Objects larger than this (m, box side) are not furniture but a fusion error; they never hide walls.
MAX_FURNITURE_SIDE_M = 3.5


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
    """A room label per floor cell, and the rooms.

    Attributes:
        labels: "H W" int32 room index per cell (rows are y, columns x), -1 = not a room.
        origin_xy: world (x, y) of cell (0, 0)'s lower-left corner.
        resolution_m: cell size.
        rooms: the rooms, indexed by their id.
        walls: "H W" bool wall map the segmentation used (for inspection), or None.
    """

    labels: np.ndarray
    origin_xy: np.ndarray
    resolution_m: float
    rooms: list[Room]
    walls: np.ndarray | None = None

    def room_at(self, xy, max_snap_m: float = 0.6) -> Room | None:
        """The room at world ``xy``; off the labelled floor, the nearest room within ``max_snap_m``."""
        p = np.asarray(xy, float)[:2]
        if not np.all(np.isfinite(p)):
            raise ValueError(f"room_at needs a finite position, got {p}")
        c = np.floor((p - self.origin_xy) / self.resolution_m).astype(int)
        h, w = self.labels.shape
        r = None
        if 0 <= c[1] < h and 0 <= c[0] < w:
            r = int(self.labels[c[1], c[0]])
        if r is None or r < 0:
            # objects stand at walls or half outside the seen floor: take the nearest labelled cell
            rad = int(np.ceil(max_snap_m / self.resolution_m))
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
            if d[i] > rad * rad:
                return None
            r = int(sub[rr[i], cc[i]])
        return self.rooms[r] if 0 <= r < len(self.rooms) else None

    def by_name(self, name: str) -> list[Room]:
        """Rooms called ``name`` (case-insensitive)."""
        n = name.strip().lower()
        return [r for r in self.rooms if r.name == n]


def _object_boxes(objects: list) -> np.ndarray:
    """ "N 2 3" boxes (min, max) of the objects that have a plausible furniture-sized box."""
    boxes = []
    for o in objects:
        lo, hi = getattr(o, "box_min", None), getattr(o, "box_max", None)
        if lo is None or hi is None:
            continue
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            continue
        if np.any(hi[:2] - lo[:2] > MAX_FURNITURE_SIDE_M):
            continue
        boxes.append((lo, hi))
    return np.asarray(boxes, float).reshape(-1, 2, 3)


def _grids(
    octree, objects: list, floor_z_m: float, resolution_m: float, wall_band_m: tuple[float, float], box_margin_m: float
):
    """Top-down grids: cells seen at all, and wall cells (occupied in the band, not inside an object box)."""
    occ = np.asarray(octree.occupied_centers(), float).reshape(-1, 3)
    free = np.asarray(octree.free_centers(), float).reshape(-1, 3)
    vs = float(octree.voxel_size_m)
    boxes = _object_boxes(objects)
    pts = [p[:, :2] for p in (occ, free, boxes[:, 0], boxes[:, 1]) if len(p)]
    if not pts:
        return None
    allp = np.concatenate(pts)
    # align the grid with the voxel grid so voxel centres never straddle a cell border
    lo = np.floor((allp.min(axis=0) - 0.5) / vs) * vs
    hi = allp.max(axis=0) + 0.5
    w, h = np.maximum(np.ceil((hi - lo) / resolution_m).astype(int), 1)
    seen = np.zeros((h, w), bool)
    wall = np.zeros((h, w), bool)

    def mark(grid: np.ndarray, p: np.ndarray) -> None:
        ij = np.floor((p[:, :2] - lo) / resolution_m + 1e-6).astype(int)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        grid[ij[ok, 1], ij[ok, 0]] = True

    if len(free):
        z = free[:, 2]
        mark(seen, free[(z >= floor_z_m - vs) & (z < floor_z_m + 0.5)])
    if len(occ):
        z = occ[:, 2]
        mark(seen, occ[(z >= floor_z_m - 1.5 * vs) & (z <= floor_z_m + wall_band_m[1])])
        band = occ[(z >= floor_z_m + wall_band_m[0]) & (z <= floor_z_m + wall_band_m[1])]
        if len(band) and len(boxes):
            explained = np.zeros(len(band), bool)
            for b_lo, b_hi in boxes:  # one vectorised pass per object (tens of objects)
                explained |= np.all((band >= b_lo - box_margin_m) & (band <= b_hi + box_margin_m), axis=1)
            band = band[~explained]
        mark(wall, band)
    # an object's footprint was seen, even where its points lie beyond the mapping range
    for b_lo, b_hi in boxes:
        i0, j0 = np.floor((b_lo[:2] - lo) / resolution_m).astype(int)
        i1, j1 = np.floor((b_hi[:2] - lo) / resolution_m).astype(int) + 1
        seen[max(j0, 0) : max(j1, 0), max(i0, 0) : max(i1, 0)] = True
    return seen, wall, lo


def segment_rooms(
    octree,
    objects: Iterable = (),
    *,
    floor_z_m: float = 0.0,
    resolution_m: float = 0.05,
    door_width_m: float = 1.0,
    min_room_m2: float = 0.5,
    wall_band_m: tuple[float, float] = (0.15, 2.3),
    merge_border_m: float = 2.5,
    min_name_score: float = 0.5,
) -> RoomMap:
    """Segment the mapped floor into rooms and name them from ``objects``.

    Args:
        octree: an `OccupancyOctree` (anything with ``occupied_centers()``,
            ``free_centers()`` and ``voxel_size_m``).
        objects: memory objects (``id``, ``label``, ``centroid``; ``box_min`` /
            ``box_max`` when known, so furniture is not taken for walls).
        floor_z_m: world height of the floor.
        resolution_m: grid cell size.
        door_width_m: the widest opening that still separates two rooms.
        min_room_m2: smaller regions join their neighbour instead of being rooms.
        wall_band_m: heights above the floor where occupied space may be wall.
        merge_border_m: neighbouring regions sharing a border longer than
            this are one room.
        min_name_score: the least evidence (summed signature weights, each weighed by
            the object's share of its label distribution) that names a room; below it
            the room is "room N" (a sure table gives the dining room 1.0, a sure bed the
            bedroom 3.0).

    Returns:
        The `RoomMap`; empty (no rooms) when the octree holds nothing.

    Raises:
        ValueError: on non-positive sizes or an empty height band.
    """
    import cv2

    if not resolution_m > 0 or not door_width_m > 0 or min_room_m2 < 0 or not merge_border_m > 0:
        raise ValueError(
            f"resolution_m, door_width_m and merge_border_m must be > 0 and min_room_m2 >= 0, got "
            f"{resolution_m}, {door_width_m}, {merge_border_m}, {min_room_m2}"
        )
    if not wall_band_m[1] > wall_band_m[0]:
        raise ValueError(f"wall_band_m must be (low, high) with high > low, got {wall_band_m}")
    min_name_score = non_negative("min_name_score", min_name_score)
    objects = list(objects)
    g = _grids(octree, objects, floor_z_m, resolution_m, wall_band_m, box_margin_m=max(resolution_m, 0.05))
    if g is None:
        return RoomMap(np.full((1, 1), -1, np.int32), np.zeros(2), resolution_m, [])
    seen, wall, origin = g
    res = resolution_m
    # the floor plan: seen cells, with small holes (unseen floor under furniture) filled
    k = max(1, round(0.3 / res))
    plan = cv2.morphologyEx(
        (seen | wall).astype(np.uint8),
        cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)),
    )
    plan = _fill_holes(plan.astype(bool))
    space = plan & ~wall
    dist = cv2.distanceTransform(space.astype(np.uint8), cv2.DIST_L2, 5) * res

    seeds = (dist > door_width_m / 2).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(seeds, connectivity=4)
    min_seed_cells = max(1, int(0.05 / res**2))  # 0.05 m²: a seed, not speckle
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_seed_cells]
    if not keep:
        # no place wider than a door: the largest connected free area is the one room
        n2, lab2, st2, _ = cv2.connectedComponentsWithStats(space.astype(np.uint8), connectivity=4)
        if n2 <= 1:
            return RoomMap(np.full(space.shape, -1, np.int32), origin, res, [], wall)
        lab, keep = lab2, [1 + int(np.argmax(st2[1:, cv2.CC_STAT_AREA]))]
    markers = np.zeros(space.shape, np.int32)
    for j, i in enumerate(keep, start=1):
        markers[lab == i] = j
    markers = _glimpsed_room_seeds(markers, space, wall, door_width_m / 2, min_seed_cells, res)
    grown = _grow(markers, space)
    if ((grown == 0) & space).any():
        # seen floor cut off from every room by unseen floor (a room glimpsed through its door):
        # it joins the nearest room through space not known to be wall, up to 2 m away
        reach = _grow(grown, ~wall, max_rings=int(np.ceil(2.0 / res)))
        grown = np.where(space & (grown == 0), reach, grown)
    labels = grown - 1  # 0-based, -1 = none

    labels = _merge_regions(labels, res, merge_border_m, min_room_m2)
    labels = _split_mixed_rooms(labels, objects, floor_z_m, origin, res)
    rooms = []
    for r in range(int(labels.max()) + 1):
        cells = np.argwhere(labels == r)
        centre = origin + (cells[:, ::-1].mean(axis=0) + 0.5) * res
        rooms.append(Room(id=r, name="", center_xy=centre, area_m2=float(len(cells) * res**2)))
    rm = RoomMap(labels, origin, res, rooms, wall)
    _name_rooms(rm, objects, floor_z_m, min_name_score)
    return rm


def _glimpsed_room_seeds(
    markers: np.ndarray, space: np.ndarray, wall: np.ndarray, half_door_m: float, min_seed_cells: int, res: float
) -> np.ndarray:
    """Add seeds for rooms seen only through their door.

    A room glimpsed from next door shows a strip of floor too thin for a seed, and would join
    the room it was seen from. Counting unseen floor as open, its walls still enclose a place
    wider than a door; that place becomes a seed when its seen part is large enough and it
    holds no seed yet. Where the wall between the two rooms is unseen, the open place spans
    both and already holds a seed, so nothing changes.
    """
    import cv2

    open_ = np.pad(~wall, 1)  # beyond the grid counts as wall
    dist = cv2.distanceTransform(open_.astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1] * res
    n, lab = cv2.connectedComponents((dist > half_door_m).astype(np.uint8), connectivity=4)
    if n <= 1:
        return markers
    has_seed = np.bincount(lab[markers > 0], minlength=n) > 0
    seen = np.bincount(lab[space], minlength=n)
    out = markers.copy()
    nxt = int(markers.max()) + 1
    for i in range(1, n):  # one step per open place (a handful), not per cell
        if has_seed[i] or seen[i] < min_seed_cells:
            continue
        out[(lab == i) & space] = nxt
        nxt += 1
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every region not connected to the grid border filled."""
    import cv2

    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    ff = pad.copy()
    cv2.floodFill(ff, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 2)
    return ff[1:-1, 1:-1] != 2


def _grow(markers: np.ndarray, space: np.ndarray, max_rings: int | None = None) -> np.ndarray:
    """Every ``space`` cell joins the marker it reaches first over ``space`` (geodesic growth, ring by ring).

    Seeds lie half a door width away from every wall, so two seeds meet in
    the middle of the doorway between them.
    """
    import cv2

    out: np.ndarray = markers.astype(np.uint16 if markers.max() < 65535 else np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    free = space & (out == 0)
    rings = 0
    while free.any() and (max_rings is None or rings < max_rings):
        rings += 1
        grown = cv2.dilate(out, kernel)
        new = free & (grown > 0)
        if not new.any():
            break
        out[new] = grown[new]
        free &= ~new
    return out.astype(np.int32)


def _borders(labels: np.ndarray) -> dict[tuple[int, int], int]:
    """Cell edges shared by each pair of regions (4-neighbourhood)."""
    pairs: dict[tuple[int, int], int] = {}
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        m = (a >= 0) & (b >= 0) & (a != b)
        if not m.any():
            continue
        lo, hi = np.minimum(a[m], b[m]), np.maximum(a[m], b[m])
        keys, counts = np.unique(lo.astype(np.int64) * 1_000_003 + hi, return_counts=True)
        for key, c in zip(keys, counts):
            p = (int(key // 1_000_003), int(key % 1_000_003))
            pairs[p] = pairs.get(p, 0) + int(c)
    return pairs


def _merge_regions(labels: np.ndarray, res: float, merge_border_m: float, min_room_m2: float) -> np.ndarray:
    """Merge regions sharing a border longer than a door, and regions too small to be rooms."""
    n = int(labels.max()) + 1
    if n <= 1:
        return labels
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    borders = _borders(labels)
    for (a, b), cells in borders.items():
        if cells * res > merge_border_m:
            parent[find(a)] = find(b)
    root = np.array([find(i) for i in range(n)])
    area = np.bincount(root[labels[labels >= 0]], minlength=n) * res**2
    # a region too small to be a room joins the neighbour it shares most border with
    for r in np.argsort(area):
        r = int(r)
        if find(r) != r or area[r] >= min_room_m2:
            continue
        best, best_len = -1, 0
        for (a, b), cells in borders.items():
            ra, rb = find(a), find(b)
            if r in (ra, rb) and ra != rb and cells > best_len:
                best, best_len = (rb if ra == r else ra), cells
        if best >= 0:
            parent[r] = best
            area[best] += area[r]
    root = np.array([find(i) for i in range(n)])
    _, dense = np.unique(root, return_inverse=True)
    return np.where(labels >= 0, dense[np.maximum(labels, 0)], -1).astype(np.int32)


def _split_mixed_rooms(
    labels: np.ndarray, objects: list, floor_z_m: float, origin: np.ndarray, res: float
) -> np.ndarray:
    """Split regions that hold strong evidence for two room types (a fridge and a toilet).

    They are two rooms whose dividing wall was not seen yet. Each type's telling
    furniture (weight >= ``ANCHOR_WEIGHT``) seeds a geodesic growth over the region, so
    the split falls between the furniture groups.
    """
    n = int(labels.max()) + 1
    if n <= 0 or not objects:
        return labels
    probe = RoomMap(labels, origin, res, [Room(i, "", np.zeros(2), 0.0) for i in range(n)])
    anchors: dict[int, dict[str, list]] = {}
    weight: dict[tuple[int, str], float] = {}
    for room, o, evidence in _room_evidence(probe, objects, floor_z_m):
        for rtype, w in evidence:
            if w >= ANCHOR_WEIGHT:
                anchors.setdefault(room.id, {}).setdefault(rtype, []).append(o)
                weight[room.id, rtype] = weight.get((room.id, rtype), 0.0) + w
    out = labels.copy()
    nxt = n
    h, w_ = labels.shape
    for rid, by_type in anchors.items():  # one step per room, a handful
        strong = sorted(t for t in by_type if weight[rid, t] >= STRONG_EVIDENCE)
        if len(strong) < 2:
            continue
        region = labels == rid
        markers = np.zeros(labels.shape, np.int32)
        for j, t in enumerate(strong, start=1):
            for o in by_type[t]:
                lo = np.asarray(getattr(o, "box_min", o.centroid), float)[:2]
                hi = np.asarray(getattr(o, "box_max", o.centroid), float)[:2]
                c0, r0 = np.clip(np.floor((lo - origin) / res).astype(int), 0, [w_ - 1, h - 1])
                c1, r1 = np.clip(np.floor((hi - origin) / res).astype(int), 0, [w_ - 1, h - 1])
                markers[r0 : r1 + 1, c0 : c1 + 1] = np.where(
                    region[r0 : r1 + 1, c0 : c1 + 1], j, markers[r0 : r1 + 1, c0 : c1 + 1]
                )
        if len(np.unique(markers[markers > 0])) < 2:
            continue
        grown = _grow(markers, region)
        for j in range(2, len(strong) + 1):
            part = region & (grown == j)
            if part.any():
                out[part] = nxt
                nxt += 1
    return out


def _own_distribution(o) -> dict[str, float]:
    """An object's label distribution without room context: ``own_posterior``, or
    ``label_posterior``, when the object has one, else its label alone."""
    return getattr(o, "own_posterior", None) or getattr(o, "label_posterior", None) or {str(o.label): 1.0}


def _object_cues(o, floor_z_m: float) -> list[tuple[str, float]]:
    """The signature keys an object gives evidence for, each with the share of its label
    distribution behind it (`_own_distribution`): a detector's uncertain "toilet" counts for
    what it is worth, and a right second guess counts too. A table whose top is low counts as
    a coffee table. The room context an object got from an earlier naming (`room_context`)
    is left out."""
    words = [(str(k), float(v)) for k, v in _own_distribution(o).items() if np.isfinite(v) and v > 0]
    total = sum(v for _, v in words)
    if total <= 0:
        return []
    keys = _cue_keys(o, floor_z_m, [w for w, _ in words])
    return [(key, v / total) for key, (_, v) in zip(keys, words)]


def _cue_keys(o, floor_z_m: float, words: list[str]) -> list[str]:
    """The signature key of each word of an object: the word in lower case, or "coffee table"
    for a table whose top is low."""
    hi = getattr(o, "box_max", None)
    top_z = float(np.asarray(hi, float)[2]) if hi is not None else float("nan")
    low = np.isfinite(top_z) and top_z - floor_z_m < COFFEE_TABLE_TOP_M
    return ["coffee table" if w.lower() == "table" and low else w.lower() for w in words]


def _room_evidence(rm: RoomMap, objects: list, floor_z_m: float):
    """(room, object, [(room type, weight), ...]) for every object with a finite centroid inside a room."""
    for o in objects:
        c = np.asarray(o.centroid, float)
        if c.shape[0] < 2 or not np.all(np.isfinite(c[:2])):
            continue
        room = rm.room_at(c[:2])
        if room is None:
            continue
        evidence = [
            (rtype, share * sig[cue])
            for cue, share in _object_cues(o, floor_z_m)
            for rtype, sig in ROOM_SIGNATURES.items()
            if sig.get(cue, 0.0)
        ]
        yield room, o, evidence


def _name_rooms(rm: RoomMap, objects: list, floor_z_m: float, min_score: float) -> None:
    for room, o, evidence in _room_evidence(rm, objects, floor_z_m):
        room.object_ids.append(int(o.id))
        for rtype, wgt in evidence:
            room.scores[rtype] = room.scores.get(rtype, 0.0) + wgt
    # greedy unique assignment: strongest evidence first
    pairs = sorted(((s, r.id, t) for r in rm.rooms for t, s in r.scores.items()), key=lambda p: (-p[0], p[1], p[2]))
    used_types: set[str] = set()
    for score, rid, t in pairs:
        room = rm.rooms[rid]
        if room.name or t in used_types or score < min_score:
            continue
        room.name = t
        used_types.add(t)
    for r in rm.rooms:
        if not r.name:
            r.name = f"room {r.id + 1}"


def room_context(
    rm: RoomMap,
    objects: Iterable,
    *,
    floor_z_m: float = 0.0,
    strength: float = 2.0,
    min_score: float = 0.5,
    min_share: float = 0.5,
) -> dict[int, dict[str, float]]:
    """Room context for object labels: per object id, a weight for each word its room's type
    makes likely (``1 + strength * ROOM_SIGNATURES[room][word]``: a bed in a bedroom weighs 7
    times more at the default strength, a table in a dining room 3 times).

    How telling an object is of a room type and how likely the object is in a room of that
    type are the same association read both ways, so the signatures that name rooms weigh
    words here. The room's name must stand without the object, and clearly: what the other
    objects in the room give its name must reach ``min_score`` and ``min_share`` of all the
    evidence they give any room type. So a bed alone names its bedroom and then gets no context
    from it, a "table" in a room that its own "desk" second guess made an office stays a
    table, and a room whose objects point several ways (a real kitchen whose labels say
    office, dining room and living room) weighs nothing. Objects in rooms without a name get
    nothing.

    Args:
        rm: rooms named by `segment_rooms` from these objects.
        objects: the objects (``id``, ``centroid``, a label distribution as for naming).
        floor_z_m: world height of the floor (a low table is a coffee table).
        strength: how much a signature weight multiplies a word (0: no context).
        min_score: evidence for the room's name from the other objects that it needs.
        min_share: share of the other objects' evidence (for any room type) that the name needs.

    Returns:
        object id -> {word: weight > 1}, for objects with context only.

    Raises:
        ValueError: a negative or non-finite ``strength``, ``min_score`` or ``min_share``.
    """
    strength = non_negative("strength", strength)
    min_score = non_negative("min_score", min_score)
    min_share = non_negative("min_share", min_share)
    out: dict[int, dict[str, float]] = {}
    if strength == 0:
        return out
    for room, o, evidence in _room_evidence(rm, list(objects), floor_z_m):
        sig = ROOM_SIGNATURES.get(room.name)
        if sig is None:
            continue
        rest = dict(room.scores)
        for rtype, w in evidence:
            rest[rtype] = rest.get(rtype, 0.0) - w
        others = sum(max(v, 0.0) for v in rest.values())
        name_rest = rest.get(room.name, 0.0)
        if name_rest < min_score or name_rest < min_share * others:
            continue
        words = [str(k) for k in _own_distribution(o)]
        weights = {
            word: 1.0 + strength * sig[key] for word, key in zip(words, _cue_keys(o, floor_z_m, words)) if sig.get(key)
        }
        if weights:
            out[int(o.id)] = weights
    return out
