"""Procedural apartments as pure data: rooms, walls, doors, furniture and objects.

`generate_apartment(seed)` returns an `ApartmentSpec`, a tree of frozen
dataclasses that any renderer can build: `world.py` builds it in PyBullet, an
exporter can write it to a mesh file for habitat-sim. Nothing here imports a
simulator; the same seed always gives the same spec.

Conventions: z-up world in metres, the floor top at z = 0. Every object is a
rigid body with a yaw about +z; its ``position_m`` is the centre of its
bounding box and ``half_extents_m`` are that box's half sizes in the object
frame (before yaw). Geometry is a list of primitive `Part`s in the object frame,
or a URDF from ``pybullet_data`` whose base origin sits at
``urdf_base_offset_m`` from the centre (object frame). Parts are composed so that
each thing looks like what it is to a camera (doors, handles and a plinth on a cabinet,
drawers on a desk, a hollow bathtub, a toilet's cistern, bowl and seat, pillows on a bed, an open
laptop, a bush in a pot, a vase's outline): perception that learnt from photos is scored on
shapes it can recognise, not on coloured blocks. Every part lies inside its object's box.

Layout: the apartment rectangle is split recursively (binary space partition)
into 3 to 6 rooms; each split line becomes an interior wall with one door, so
every room is reachable. Furniture stands against walls (or in the middle for
tables), never in front of a door; small objects sit on furniture tops or on
the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engram.sims.embedded.groundtruth import reachable_check
from engram.sims.embedded.spec import RGBA, ApartmentSpec, Box2D, Door, ObjectSpec, Part, Room, Vec3, Wall

__all__ = [
    "FURNITURE_LABELS",
    "OBJECT_CATEGORIES",
    "WORLD_VERSION",
    "ApartmentSpec",
    "Box2D",
    "Door",
    "ObjectSpec",
    "Part",
    "Room",
    "Wall",
    "generate_apartment",
]

# Bumped whenever the same seed gives a different look or layout, so that recordings and
# results cached from the embedded world (benchmarks) are made again. 2: objects composed of
# parts that make them look like what they are (doors on cabinets, an open laptop, ...).
WORLD_VERSION = 2

# ---------------------------------------------------------------------------
# catalogues

ROOM_NAMES = ("living room", "kitchen", "bedroom", "bathroom", "office", "dining room")

WOOD: RGBA = (0.55, 0.38, 0.22, 1.0)
DARK_WOOD: RGBA = (0.36, 0.24, 0.14, 1.0)
WHITE: RGBA = (0.93, 0.93, 0.92, 1.0)
GREY: RGBA = (0.5, 0.5, 0.52, 1.0)


def _box(hx: float, hy: float, hz: float, ox: float, oy: float, oz: float, color: RGBA) -> Part:
    return Part("box", (hx, hy, hz), (ox, oy, oz), color)


def _table_parts(w: float, d: float, h: float, color: RGBA, leg_m: float = 0.04) -> tuple[Part, ...]:
    top_t = 0.04
    hx, hy, hz = w / 2, d / 2, h / 2
    parts = [_box(hx, hy, top_t / 2, 0.0, 0.0, hz - top_t / 2, color)]
    leg_h = (h - top_t) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_box(leg_m / 2, leg_m / 2, leg_h, sx * (hx - leg_m), sy * (hy - leg_m), -hz + leg_h, color))
    return tuple(parts)


def _chair_parts(color: RGBA) -> tuple[Part, ...]:
    w, d, h, seat = 0.46, 0.46, 0.9, 0.46
    hx, hy, hz = w / 2, d / 2, h / 2
    parts = [_box(hx, hy, 0.025, 0.0, 0.0, -hz + seat - 0.025, color)]
    leg_h = (seat - 0.05) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_box(0.02, 0.02, leg_h, sx * (hx - 0.02), sy * (hy - 0.02), -hz + leg_h, color))
    parts.append(_box(hx, 0.02, (h - seat) / 2, 0.0, -hy + 0.02, hz - (h - seat) / 2, color))
    return tuple(parts)


def _sofa_parts(w: float, color: RGBA) -> tuple[Part, ...]:
    d, h = 0.9, 0.85
    hx, hy, hz = w / 2, d / 2, h / 2
    return (
        _box(hx, hy, 0.21, 0.0, 0.0, -hz + 0.21, color),  # seat block, top at 0.42
        _box(hx, 0.1, hz, 0.0, -hy + 0.1, 0.0, color),  # back
        _box(0.1, hy, 0.15, -hx + 0.1, 0.0, -hz + 0.42 + 0.15, color),
        _box(0.1, hy, 0.15, hx - 0.1, 0.0, -hz + 0.42 + 0.15, color),
    )


def _bed_parts(w: float, color: RGBA) -> tuple[Part, ...]:
    """Frame and mattress, blanket, headboard, and pillows against the headboard."""
    d, h = 2.0, 0.9
    hx, hy, hz = w / 2, d / 2, h / 2
    n = 2 if w >= 1.2 else 1
    pw = (w - 0.2) / n
    pillows = tuple(
        _box(pw / 2 - 0.03, 0.17, 0.06, -hx + 0.1 + pw / 2 + i * pw, -hy + 0.3, -hz + 0.58 + 0.06, WHITE)
        for i in range(n)
    )
    return (
        _box(hx, hy, 0.25, 0.0, 0.0, -hz + 0.25, DARK_WOOD),  # frame + mattress top at 0.5
        _box(hx - 0.03, hy - 0.03, 0.04, 0.0, 0.0, -hz + 0.54, color),  # blanket
        _box(hx, 0.04, hz, 0.0, -hy + 0.04, 0.0, DARK_WOOD),  # headboard
    ) + pillows


def _shelf_parts(w: float, d: float, h: float, color: RGBA) -> tuple[Part, ...]:
    hx, hy, hz = w / 2, d / 2, h / 2
    t = 0.02
    parts = [
        _box(t / 2, hy, hz, -hx + t / 2, 0.0, 0.0, color),
        _box(t / 2, hy, hz, hx - t / 2, 0.0, 0.0, color),
        _box(hx, t / 2, hz, 0.0, -hy + t / 2, 0.0, color),
    ]
    for z_top in SHELF_BOARDS_M + (h,):  # board tops
        parts.append(_box(hx - t, hy, t / 2, 0.0, 0.0, -hz + z_top - t / 2, color))
    return tuple(parts)


def _block_parts(w: float, d: float, h: float, color: RGBA) -> tuple[Part, ...]:
    return (_box(w / 2, d / 2, h / 2, 0.0, 0.0, 0.0, color),)


def _shade(color: RGBA, k: float) -> RGBA:
    return (min(color[0] * k, 1.0), min(color[1] * k, 1.0), min(color[2] * k, 1.0), color[3])


def _front_panel(half_w: float, cx: float, z0: float, z1: float, hy: float, color: RGBA) -> Part:
    """A door or drawer front, 14 mm thick, its face 4 mm behind the object's +y face (``hy``,
    the half depth), where handles stand."""
    return _box(half_w, 0.007, (z1 - z0) / 2, cx, hy - 0.011, (z0 + z1) / 2, color)


def _fronts(w: float, d: float, h: float, color: RGBA, z0: float, z1: float, n: int) -> list[Part]:
    """``n`` door fronts side by side on the +y face between heights ``z0`` and ``z1`` (object
    frame), each with a metal handle near its inner edge; a dark seam shows between them."""
    hx, hy = w / 2, d / 2
    gap = 0.012
    dw = (w - gap * (n + 1)) / n
    parts = []
    for i in range(n):
        cx = -hx + gap + dw / 2 + i * (dw + gap)
        parts.append(_front_panel(dw / 2, cx, z0, z1, hy, color))
        side = 1.0 if i < n / 2 else -1.0  # handles towards the middle
        hzh = min(0.05, (z1 - z0) / 5)
        parts.append(_box(0.008, 0.004, hzh, cx + side * (dw / 2 - 0.04), hy - 0.004, z1 - 0.06 - hzh, GREY))
    return parts


def _cabinet_parts(w: float, d: float, h: float, color: RGBA) -> tuple[Part, ...]:
    """A carcass (darker, it shows in the seams and the plinth), a top board and door fronts."""
    hx, hy, hz = w / 2, d / 2, h / 2
    parts = [
        _box(hx, hy - 0.009, hz - 0.01, 0.0, -0.009, -0.01, _shade(color, 0.55)),
        _box(hx, hy, 0.01, 0.0, 0.0, hz - 0.01, _shade(color, 0.8)),
    ]
    return tuple(parts + _fronts(w, d, h, color, -hz + 0.07, hz - 0.035, max(2, round(w / 0.45))))


def _desk_parts(w: float, d: float, h: float, color: RGBA) -> tuple[Part, ...]:
    """A table top on legs with a pedestal of drawers under its right end."""
    hx, hy, hz = w / 2, d / 2, h / 2
    top_t, leg = 0.04, 0.04
    pw = min(0.42, w / 3)
    parts = [_box(hx, hy, top_t / 2, 0.0, 0.0, hz - top_t / 2, color)]
    leg_h = (h - top_t) / 2
    for sy in (-1, 1):
        parts.append(_box(leg / 2, leg / 2, leg_h, -(hx - leg), sy * (hy - leg), -hz + leg_h, color))
    px = hx - pw / 2
    parts.append(_box(pw / 2, hy - 0.01, leg_h, px, -0.01, -hz + leg_h, _shade(color, 0.6)))
    z_top = hz - top_t - 0.01
    drawer_h = (h - top_t - 0.07) / 3
    for i in range(3):  # drawer fronts, each with a handle
        z1 = z_top - i * drawer_h
        z0 = z1 - drawer_h + 0.012
        parts.append(_front_panel(pw / 2 - 0.012, px, z0, z1, hy, color))
        parts.append(_box(0.05, 0.004, 0.008, px, hy - 0.004, z1 - 0.04, GREY))
    return tuple(parts)


def _toilet_parts(color: RGBA) -> tuple[Part, ...]:
    """Cistern at the back on a base that runs forward to the pedestal, and the round bowl
    with its seat in front."""
    w, d, h, seat = 0.4, 0.65, 0.75, 0.42
    hx, hy, hz = w / 2, d / 2, h / 2
    r = 0.19
    by = hy - r  # the bowl's centre, its front at the object's front
    return (
        _box(hx, 0.09, (h - 0.36) / 2, 0.0, -hy + 0.09, hz - (h - 0.36) / 2, color),  # cistern
        _box(0.12, (by + hy - 0.18) / 2, 0.18, 0.0, (by - hy + 0.18) / 2, -hz + 0.18, color),  # base, cistern to bowl
        Part("cylinder", (0.12, 0.12, 0.17), (0.0, by - 0.04, -hz + 0.17), color),  # pedestal
        Part("cylinder", (r, r, 0.05), (0.0, by, -hz + seat - 0.06), color),  # bowl
        Part("cylinder", (r, r, 0.01), (0.0, by, -hz + seat - 0.01), _shade(color, 0.97)),  # seat
    )


def _bathtub_parts(w: float, d: float, h: float, color: RGBA) -> tuple[Part, ...]:
    """A hollow tub: a base slab and four rims around the basin."""
    hx, hy, hz = w / 2, d / 2, h / 2
    t, base = 0.07, 0.12
    wall_h = (h - base) / 2
    zc = -hz + base + wall_h
    return (
        _box(hx, hy, base / 2, 0.0, 0.0, -hz + base / 2, color),
        _box(hx, t / 2, wall_h, 0.0, -hy + t / 2, zc, color),
        _box(hx, t / 2, wall_h, 0.0, hy - t / 2, zc, color),
        _box(t / 2, hy - t, wall_h, -hx + t / 2, 0.0, zc, color),
        _box(t / 2, hy - t, wall_h, hx - t / 2, 0.0, zc, color),
    )


SHELF_BOARDS_M = (0.05, 0.45, 0.85, 1.25)


@dataclass(frozen=True)
class _FurnitureTemplate:
    label: str
    size_m: Vec3  # width (local x), depth (local y), height
    placement: str  # "wall" (back, local -y, against a wall) or "center"
    surfaces_z_m: tuple[float, ...]  # heights above the floor where small objects may stand


def _furniture_parts(t: _FurnitureTemplate, rng: np.random.Generator) -> tuple[tuple[Part, ...], RGBA]:
    w, d, h = t.size_m
    if t.label in ("table", "desk"):
        color = WOOD if rng.random() < 0.6 else DARK_WOOD
        return (_desk_parts if t.label == "desk" else _table_parts)(w, d, h, color), color
    if t.label == "chair":
        return _chair_parts(DARK_WOOD), DARK_WOOD
    if t.label == "sofa":
        color = tuple(float(c) for c in rng.choice([[0.3, 0.35, 0.55], [0.55, 0.25, 0.2], [0.35, 0.45, 0.3]])) + (1.0,)
        return _sofa_parts(w, color), color
    if t.label == "bed":
        color = tuple(float(c) for c in rng.choice([[0.8, 0.8, 0.9], [0.6, 0.7, 0.85], [0.85, 0.75, 0.6]])) + (1.0,)
        return _bed_parts(w, color), color
    if t.label == "shelf":
        return _shelf_parts(w, d, h, WOOD), WOOD
    colors = {
        "fridge": WHITE,
        "counter": (0.75, 0.75, 0.72, 1.0),
        "cabinet": (0.6, 0.45, 0.3, 1.0),
        "wardrobe": DARK_WOOD,
        "bathtub": WHITE,
        "toilet": WHITE,
        "sink": (0.85, 0.87, 0.9, 1.0),
        "tv": (0.08, 0.08, 0.1, 1.0),
    }
    color = colors.get(t.label, GREY)
    if t.label == "cabinet":
        return _cabinet_parts(w, d, h, color), color
    if t.label == "toilet":
        return _toilet_parts(color), color
    if t.label == "bathtub":
        return _bathtub_parts(w, d, h, color), color
    return _block_parts(w, d, h, color), color


FURNITURE_BY_ROOM: dict[str, tuple[_FurnitureTemplate, ...]] = {
    "living room": (
        _FurnitureTemplate("sofa", (2.0, 0.9, 0.85), "wall", (0.42,)),
        _FurnitureTemplate("table", (1.0, 0.6, 0.45), "center", (0.45,)),
        _FurnitureTemplate("shelf", (1.0, 0.35, 1.6), "wall", SHELF_BOARDS_M[1:3]),
        _FurnitureTemplate("cabinet", (1.4, 0.45, 0.55), "wall", (0.55,)),
    ),
    "kitchen": (
        _FurnitureTemplate("counter", (2.0, 0.6, 0.9), "wall", (0.9,)),
        _FurnitureTemplate("fridge", (0.7, 0.7, 1.8), "wall", ()),
        _FurnitureTemplate("table", (1.2, 0.8, 0.75), "center", (0.75,)),
        _FurnitureTemplate("chair", (0.46, 0.46, 0.9), "wall", ()),
    ),
    "bedroom": (
        _FurnitureTemplate("bed", (1.5, 2.0, 0.9), "wall", ()),
        _FurnitureTemplate("cabinet", (0.45, 0.4, 0.55), "wall", (0.55,)),
        _FurnitureTemplate("wardrobe", (1.2, 0.6, 2.0), "wall", ()),
        _FurnitureTemplate("shelf", (0.8, 0.3, 1.6), "wall", SHELF_BOARDS_M[1:3]),
    ),
    "bathroom": (
        _FurnitureTemplate("bathtub", (1.6, 0.75, 0.55), "wall", ()),
        _FurnitureTemplate("toilet", (0.4, 0.65, 0.75), "wall", ()),
        _FurnitureTemplate("sink", (0.8, 0.45, 0.85), "wall", (0.85,)),
    ),
    "office": (
        _FurnitureTemplate("desk", (1.4, 0.7, 0.75), "wall", (0.75,)),
        _FurnitureTemplate("chair", (0.46, 0.46, 0.9), "center", ()),
        _FurnitureTemplate("shelf", (1.0, 0.35, 1.6), "wall", SHELF_BOARDS_M[1:3]),
        _FurnitureTemplate("cabinet", (0.6, 0.45, 0.7), "wall", (0.7,)),
    ),
    "dining room": (
        _FurnitureTemplate("table", (1.6, 0.9, 0.75), "center", (0.75,)),
        _FurnitureTemplate("chair", (0.46, 0.46, 0.9), "wall", ()),
        _FurnitureTemplate("chair", (0.46, 0.46, 0.9), "wall", ()),
        _FurnitureTemplate("cabinet", (1.2, 0.45, 0.9), "wall", (0.9,)),
    ),
}

FURNITURE_LABELS = tuple(sorted({t.label for ts in FURNITURE_BY_ROOM.values() for t in ts}))


@dataclass(frozen=True)
class _ObjectTemplate:
    label: str
    where: str  # "surface", "floor" or "any"
    make: Any  # rng -> (half_extents, parts, color, urdf fields)


def _rand_color(rng: np.random.Generator, palette: list[tuple[float, float, float]]) -> RGBA:
    c = palette[int(rng.integers(len(palette)))]
    return (float(c[0]), float(c[1]), float(c[2]), 1.0)


BRIGHT = [
    (0.85, 0.15, 0.15),
    (0.15, 0.45, 0.85),
    (0.15, 0.7, 0.3),
    (0.95, 0.75, 0.1),
    (0.6, 0.2, 0.7),
    (0.95, 0.5, 0.1),
]


def _disc(r: float, half_h: float, z: float, color: RGBA, x: float = 0.0) -> Part:
    """An upright cylinder of radius ``r`` centred at (``x``, 0, ``z``) in the object frame."""
    return Part("cylinder", (r, r, half_h), (x, 0.0, z), color)


def _composed(half: Vec3, color: RGBA, parts: tuple[Part, ...]) -> dict[str, Any]:
    """An object template's fields: its box's half sizes, its colour and its parts."""
    return {"half_extents_m": half, "color_rgba": color, "parts": parts}


def _prim(shape: str, half: Vec3, color: RGBA) -> dict[str, Any]:
    return _composed(half, color, (Part(shape, half, (0.0, 0.0, 0.0), color),))


def _make_mug(rng: np.random.Generator) -> dict[str, Any]:
    # pybullet_data objects/mug.urdf: centre of its box sits at (0, 0.0198, 0.05) from the base origin.
    return {
        "half_extents_m": (0.044, 0.0638, 0.053),
        "color_rgba": (1.0, 0.2, 0.2, 1.0),
        "urdf": "objects/mug.urdf",
        "urdf_scale": 1.0,
        "urdf_rpy_rad": (0.0, 0.0, 0.0),
        "urdf_base_offset_m": (0.0, -0.0198, -0.05),
    }


def _make_duck(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "half_extents_m": (0.0454, 0.033, 0.0427),
        "color_rgba": (1.0, 1.0, 0.4, 1.0),
        "urdf": "duck_vhacd.urdf",
        "urdf_scale": 1.0,
        "urdf_rpy_rad": (math.pi / 2, 0.0, 0.0),
        "urdf_base_offset_m": (0.007, 0.0018, -0.0434),
    }


def _make_ball(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "half_extents_m": (0.1, 0.1, 0.1),
        "color_rgba": (0.95, 0.95, 0.95, 1.0),
        "urdf": "soccerball.urdf",
        "urdf_scale": 0.2,
        "urdf_rpy_rad": (0.0, 0.0, 0.0),
        "urdf_base_offset_m": (0.0, 0.0, 0.0),
    }


def _make_plant(rng: np.random.Generator) -> dict[str, Any]:
    pot = (0.75, 0.4, 0.25, 1.0)
    leaves = (0.15, 0.55, 0.2, 1.0)
    dark = (0.1, 0.4, 0.14, 1.0)
    r = 0.16
    hz = (0.22 + 2 * r) / 2
    z_pot = -hz + 0.22
    # a bush: a tuft of leaf clusters of two greens on a stem, over a rimmed pot with soil
    tufts = [
        (0.0, 0.0, hz - 0.07, 0.07, leaves),
        (0.085, 0.02, z_pot + 0.12, 0.075, dark),
        (-0.09, 0.05, z_pot + 0.14, 0.07, leaves),
        (0.0, -0.09, z_pot + 0.11, 0.07, leaves),
        (-0.03, -0.02, z_pot + 0.22, 0.065, dark),
        (0.05, 0.1, z_pot + 0.2, 0.06, leaves),
    ]
    pot_parts = (
        _disc(0.085, 0.1, -hz + 0.1, pot),
        _disc(0.1, 0.012, z_pot - 0.012, _shade(pot, 0.9)),  # rim
        _disc(0.085, 0.002, z_pot, (0.25, 0.17, 0.1, 1.0)),  # soil
        _disc(0.012, 0.09, z_pot + 0.09, (0.3, 0.25, 0.12, 1.0)),  # stem
    )
    return _composed(
        (r, r, hz), leaves, pot_parts + tuple(Part("sphere", (q, q, q), (x, y, z), c) for x, y, z, q, c in tufts)
    )


def _make_lamp(rng: np.random.Generator) -> dict[str, Any]:
    shade = _rand_color(rng, [(0.95, 0.9, 0.7), (0.9, 0.9, 0.9), (0.9, 0.6, 0.3)])
    hz = 0.2
    return _composed(
        (0.1, 0.1, hz),
        shade,
        (
            _disc(0.07, 0.015, -hz + 0.015, GREY),
            _disc(0.012, 0.11, -hz + 0.03 + 0.11, GREY),
            _disc(0.1, 0.07, hz - 0.07, shade),
        ),
    )


def _make_bowl(rng: np.random.Generator) -> dict[str, Any]:
    color = _rand_color(rng, BRIGHT)
    hz = 0.035
    return _composed(
        (0.08, 0.08, hz),
        color,
        (
            _disc(0.04, 0.008, -hz + 0.008, color),  # foot
            _disc(0.065, 0.012, -hz + 0.028, color),
            _disc(0.08, 0.014, hz - 0.016, color),  # rim
            _disc(0.068, 0.001, hz - 0.001, _shade(color, 0.6)),  # inside
        ),
    )


def _make_cup(rng: np.random.Generator) -> dict[str, Any]:
    color = _rand_color(rng, BRIGHT)
    hz = 0.045
    return _composed(
        (0.035, 0.035, hz),
        color,
        (
            _disc(0.035, 0.003, -hz + 0.003, WHITE),  # saucer
            _disc(0.027, hz - 0.004, 0.002, color, x=-0.008),
            _disc(0.022, 0.001, hz - 0.001, _shade(color, 0.5), x=-0.008),  # inside
            _box(0.004, 0.004, 0.022, 0.031, 0.0, 0.0, color),  # handle
            _box(0.006, 0.004, 0.004, 0.025, 0.0, 0.02, color),
            _box(0.006, 0.004, 0.004, 0.025, 0.0, -0.02, color),
        ),
    )


def _make_bottle(rng: np.random.Generator) -> dict[str, Any]:
    glass = _rand_color(rng, [(0.1, 0.5, 0.2), (0.2, 0.4, 0.8), (0.55, 0.3, 0.1)])
    hz = 0.12
    return _composed(
        (0.035, 0.035, hz),
        glass,
        (
            _disc(0.033, 0.075, -hz + 0.075, glass),  # body
            _disc(0.035, 0.03, -hz + 0.06, (0.9, 0.88, 0.8, 1.0)),  # label
            _disc(0.024, 0.015, -hz + 0.165, glass),  # shoulder
            _disc(0.012, 0.03, -hz + 0.21, glass),  # neck
            _disc(0.014, 0.006, hz - 0.006, GREY),  # cap
        ),
    )


def _make_vase(rng: np.random.Generator) -> dict[str, Any]:
    color = _rand_color(rng, BRIGHT)
    hz = 0.15
    # foot, belly, waist, neck and lip, stacked: the outline of a vase
    rings = ((0.04, 0.02), (0.055, 0.05), (0.06, 0.09), (0.05, 0.13), (0.038, 0.17), (0.03, 0.23), (0.042, 0.28))
    parts = [
        _disc(r, (top - prev) / 2, -hz + (prev + top) / 2, color)
        for (r, top), (_, prev) in zip(rings, ((0, 0.0),) + rings[:-1])
    ]
    parts.append(_disc(0.042, 0.009, hz - 0.011, color))  # lip
    parts.append(_disc(0.03, 0.001, hz - 0.001, _shade(color, 0.4)))  # mouth
    return _composed((0.06, 0.06, hz), color, tuple(parts))


def _make_laptop(rng: np.random.Generator) -> dict[str, Any]:
    """An open laptop: base with keys and touchpad, the lid upright with its lit screen."""
    body = (0.15, 0.15, 0.17, 1.0)
    hx, hy, hz = 0.17, 0.12, 0.1175
    base_t = 0.015
    return _composed(
        (hx, hy, hz),
        body,
        (
            _box(hx, hy, base_t / 2, 0.0, 0.0, -hz + base_t / 2, body),
            _box(0.15, 0.055, 0.001, 0.0, -0.01, -hz + base_t, (0.05, 0.05, 0.06, 1.0)),  # keys
            _box(0.045, 0.03, 0.001, 0.0, 0.08, -hz + base_t, (0.25, 0.25, 0.28, 1.0)),  # touchpad
            _box(hx, 0.005, (2 * hz - base_t) / 2, 0.0, -hy + 0.005, base_t / 2, body),  # lid
            _box(0.155, 0.001, 0.095, 0.0, -hy + 0.011, base_t / 2 + 0.005, (0.25, 0.45, 0.75, 1.0)),  # screen
        ),
    )


def _make_remote(rng: np.random.Generator) -> dict[str, Any]:
    black = (0.05, 0.05, 0.05, 1.0)
    hz = 0.012
    buttons = tuple(
        _box(0.006, 0.006, 0.001, x, y, hz - 0.001, (0.55, 0.55, 0.58, 1.0))
        for y in (-0.04, -0.02, 0.0)
        for x in (-0.01, 0.01)
    )
    body = _box(0.025, 0.085, hz - 0.001, 0.0, 0.0, -0.001, black)  # its top at hz - 0.002, under the buttons
    power = Part("cylinder", (0.006, 0.006, 0.001), (0.0, 0.06, hz - 0.001), (0.8, 0.1, 0.1, 1.0))
    return _composed((0.025, 0.085, hz), black, (body, power) + buttons)


OBJECT_TEMPLATES: tuple[_ObjectTemplate, ...] = (
    _ObjectTemplate("mug", "surface", _make_mug),
    _ObjectTemplate("duck", "any", _make_duck),
    _ObjectTemplate("ball", "floor", _make_ball),
    _ObjectTemplate("plant", "floor", _make_plant),
    _ObjectTemplate("lamp", "surface", _make_lamp),
    _ObjectTemplate("bowl", "surface", _make_bowl),
    _ObjectTemplate("cup", "surface", _make_cup),
    _ObjectTemplate("bottle", "surface", _make_bottle),
    _ObjectTemplate("vase", "any", _make_vase),
    _ObjectTemplate("book", "surface", lambda rng: _prim("box", (0.08, 0.115, 0.02), _rand_color(rng, BRIGHT))),
    _ObjectTemplate("laptop", "surface", _make_laptop),
    _ObjectTemplate("box", "floor", lambda rng: _prim("box", (0.15, 0.12, 0.11), (0.7, 0.55, 0.35, 1.0))),
    _ObjectTemplate(
        "apple",
        "surface",
        lambda rng: _prim("sphere", (0.04, 0.04, 0.04), _rand_color(rng, [(0.85, 0.1, 0.1), (0.4, 0.75, 0.2)])),
    ),
    _ObjectTemplate("remote", "surface", _make_remote),
    _ObjectTemplate("basket", "floor", lambda rng: _prim("cylinder", (0.17, 0.17, 0.13), (0.75, 0.6, 0.35, 1.0))),
)

OBJECT_CATEGORIES = tuple(t.label for t in OBJECT_TEMPLATES)


# ---------------------------------------------------------------------------
# layout


@dataclass
class _Segment:
    axis: str  # "x": runs along x at y = const; "y": runs along y at x = const
    const: float
    lo: float
    hi: float


def _split_rooms(
    rng: np.random.Generator, bounds: Box2D, n_rooms: int, min_side_m: float
) -> tuple[list[Box2D], list[_Segment]]:
    leaves = [bounds]
    splits: list[_Segment] = []
    while len(leaves) < n_rooms:
        order = sorted(range(len(leaves)), key=lambda i: -leaves[i].area)
        for i in order:
            b = leaves[i]
            w, h = b.size
            axis_split = "x" if w >= h else "y"  # split across the longer side
            length = w if axis_split == "x" else h
            if length < 2 * min_side_m:
                continue
            frac = rng.uniform(max(0.38, min_side_m / length), min(0.62, 1 - min_side_m / length))
            if axis_split == "x":
                cut = round(b.x_min + frac * w, 2)
                a, c = Box2D(b.x_min, b.y_min, cut, b.y_max), Box2D(cut, b.y_min, b.x_max, b.y_max)
                splits.append(_Segment("y", cut, b.y_min, b.y_max))
            else:
                cut = round(b.y_min + frac * h, 2)
                a, c = Box2D(b.x_min, b.y_min, b.x_max, cut), Box2D(b.x_min, cut, b.x_max, b.y_max)
                splits.append(_Segment("x", cut, b.x_min, b.x_max))
            leaves[i : i + 1] = [a, c]
            break
        else:
            break
    return leaves, splits


def _door_position(
    rng: np.random.Generator, seg: _Segment, others: list[_Segment], door_w: float, clear_m: float
) -> float | None:
    # Walls that end on this segment (T-junctions) must not fall inside the opening.
    cuts = [seg.lo, seg.hi]
    for o in others:
        if o is seg or o.axis == seg.axis:
            continue
        if seg.lo < o.const < seg.hi and (
            abs(o.lo - seg.const) < 1e-6 or abs(o.hi - seg.const) < 1e-6 or o.lo < seg.const < o.hi
        ):
            cuts.append(o.const)
    cuts.sort()
    need = door_w + 2 * clear_m
    spans = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b - a >= need]
    if not spans:
        return None
    a, b = spans[int(rng.integers(len(spans)))]
    return round(float(rng.uniform(a + need / 2, b - need / 2)), 2)


def _wall_boxes(seg: _Segment, t: float, height: float, gaps: list[tuple[float, float]], door_h: float) -> list[Wall]:
    """Boxes of one wall line, with door gaps (and lintels above them)."""
    pieces = []
    start = seg.lo - t / 2
    for g0, g1 in sorted(gaps):
        pieces.append((start, g0))
        start = g1
    pieces.append((start, seg.hi + t / 2))
    walls = []
    for a, b in pieces:
        if b - a < 1e-3:
            continue
        walls.append(_wall_box(seg, a, b, 0.0, height, t))
    for g0, g1 in gaps:
        walls.append(_wall_box(seg, g0, g1, door_h, height, t))
    return walls


def _wall_box(seg: _Segment, a: float, b: float, z0: float, z1: float, t: float) -> Wall:
    mid, half = 0.5 * (a + b), 0.5 * (b - a)
    zc, hz = 0.5 * (z0 + z1), 0.5 * (z1 - z0)
    if seg.axis == "x":
        return Wall((mid, seg.const, zc), (half, t / 2, hz))
    return Wall((seg.const, mid, zc), (t / 2, half, hz))


def generate_apartment(
    seed: int,
    n_rooms: int | None = None,
    n_objects: int | None = None,
    *,
    wall_height_m: float = 2.6,
    wall_thickness_m: float = 0.1,
    door_width_m: float = 0.9,
) -> ApartmentSpec:
    """Generate an apartment from a seed.

    Args:
        seed: random seed; the same seed gives the same apartment.
        n_rooms: number of rooms (3 to 6); drawn from the seed when None.
        n_objects: number of small objects (>= 15); drawn (16 to 24) when None.
        wall_height_m: height of the walls.
        wall_thickness_m: thickness of every wall.
        door_width_m: clear width of door openings (>= 0.7 so an agent fits).

    Returns:
        The apartment spec.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_rooms is not None and not 3 <= n_rooms <= 6:
        raise ValueError(f"n_rooms must be between 3 and 6, got {n_rooms}")
    if n_objects is not None and not 15 <= n_objects <= 60:
        raise ValueError(f"n_objects must be between 15 and 60, got {n_objects}")
    if not 0.7 <= door_width_m <= 2.0:
        raise ValueError(f"door_width_m must be in [0.7, 2.0], got {door_width_m}")
    if not 2.0 <= wall_height_m <= 5.0:
        raise ValueError(f"wall_height_m must be in [2.0, 5.0], got {wall_height_m}")
    if not 0.02 <= wall_thickness_m <= 0.5:
        raise ValueError(f"wall_thickness_m must be in [0.02, 0.5], got {wall_thickness_m}")

    rng = np.random.default_rng(int(seed))
    n_rooms = int(rng.integers(3, 7)) if n_rooms is None else int(n_rooms)
    n_objects = int(rng.integers(16, 25)) if n_objects is None else int(n_objects)
    door_h = min(2.1, wall_height_m - 0.2)
    t = wall_thickness_m

    for _attempt in range(50):
        spec = _try_generate(rng, int(seed), n_rooms, n_objects, wall_height_m, t, door_width_m, door_h)
        if spec is not None:
            return spec
    raise RuntimeError(f"could not generate a connected apartment for seed {seed}")  # pragma: no cover


def _try_generate(
    rng: np.random.Generator,
    seed: int,
    n_rooms: int,
    n_objects: int,
    wall_height_m: float,
    t: float,
    door_w: float,
    door_h: float,
) -> ApartmentSpec | None:
    area = n_rooms * rng.uniform(11.0, 16.0)
    aspect = rng.uniform(1.0, 1.6)
    width = round(math.sqrt(area * aspect), 2)
    depth = round(area / width, 2)
    bounds = Box2D(0.0, 0.0, width, depth)
    leaves, splits = _split_rooms(rng, bounds, n_rooms, min_side_m=2.6)
    if len(leaves) != n_rooms:
        return None

    # Names: the largest room is the living room, the smallest the bathroom.
    by_area = sorted(range(n_rooms), key=lambda i: -leaves[i].area)
    names = [""] * n_rooms
    pool = [n for n in ROOM_NAMES if n not in ("living room", "bathroom")]
    names[by_area[0]] = "living room"
    names[by_area[-1]] = "bathroom"
    extra = list(rng.permutation(pool))
    for i in by_area[1:-1]:
        names[i] = str(extra.pop(0))
    rooms = tuple(Room(names[i], leaves[i].shrink(t / 2)) for i in range(n_rooms))

    outer = [
        _Segment("x", bounds.y_min, bounds.x_min, bounds.x_max),
        _Segment("x", bounds.y_max, bounds.x_min, bounds.x_max),
        _Segment("y", bounds.x_min, bounds.y_min, bounds.y_max),
        _Segment("y", bounds.x_max, bounds.y_min, bounds.y_max),
    ]
    walls: list[Wall] = []
    doors: list[Door] = []
    for seg in outer:
        walls += _wall_boxes(seg, t, wall_height_m, [], door_h)
    for seg in splits:
        pos = _door_position(rng, seg, splits, door_w, clear_m=0.25)
        if pos is None:
            return None
        if seg.axis == "x":
            a_xy, b_xy, center = (pos, seg.const - 0.2), (pos, seg.const + 0.2), (pos, seg.const)
        else:
            a_xy, b_xy, center = (seg.const - 0.2, pos), (seg.const + 0.2, pos), (seg.const, pos)
        ra = next((r.name for r in rooms if r.box.contains(*a_xy)), None)
        rb = next((r.name for r in rooms if r.box.contains(*b_xy)), None)
        if ra is None or rb is None:
            return None
        doors.append(Door(center, door_w, seg.axis, (ra, rb)))
        walls += _wall_boxes(seg, t, wall_height_m, [(pos - door_w / 2, pos + door_w / 2)], door_h)
    # Shade walls slightly differently so they are told apart in images.
    walls = [
        Wall(w.center_m, w.half_extents_m, (0.9 - 0.04 * (i % 3), 0.88 - 0.03 * (i % 2), 0.82, 1.0))
        for i, w in enumerate(walls)
    ]

    next_id = 1
    furniture: list[ObjectSpec] = []
    surfaces: list[tuple[ObjectSpec, float]] = []
    for room in rooms:
        for tmpl in FURNITURE_BY_ROOM[room.name]:
            placed = _place_furniture(rng, tmpl, room, doors, furniture, next_id)
            if placed is None:
                continue
            furniture.append(placed)
            next_id += 1
            for z in tmpl.surfaces_z_m:
                surfaces.append((placed, z))

    walls_t = tuple(walls)
    reach = reachable_check(bounds, rooms, walls_t, tuple(furniture), doors, agent_radius_m=0.25)
    if reach is None:
        return None
    start_xy = reach
    start_yaw = round(float(rng.uniform(-math.pi, math.pi)), 3)

    objects = _place_objects(rng, n_objects, rooms, surfaces, furniture, doors, next_id, start_xy)
    if objects is None:
        return None
    spec = ApartmentSpec(
        seed=seed,
        bounds=bounds,
        rooms=rooms,
        walls=walls_t,
        doors=tuple(doors),
        furniture=tuple(furniture),
        objects=tuple(objects),
        wall_height_m=wall_height_m,
        wall_thickness_m=t,
        door_height_m=door_h,
        agent_start=(start_xy[0], start_xy[1], start_yaw),
    )
    if reachable_check(bounds, rooms, walls_t, spec.all_objects(), doors, agent_radius_m=0.25) is None:
        return None
    return spec


def _door_zones(doors: list[Door], depth_m: float = 1.0, side_m: float = 0.3) -> list[Box2D]:
    zones = []
    for d in doors:
        x, y = d.center_m
        half = d.width_m / 2 + side_m
        if d.wall_axis == "x":
            zones.append(Box2D(x - half, y - depth_m, x + half, y + depth_m))
        else:
            zones.append(Box2D(x - depth_m, y - half, x + depth_m, y + half))
    return zones


def _place_furniture(
    rng: np.random.Generator,
    tmpl: _FurnitureTemplate,
    room: Room,
    doors: list[Door],
    placed: list[ObjectSpec],
    instance_id: int,
) -> ObjectSpec | None:
    w, d, h = tmpl.size_m
    zones = _door_zones(doors)
    box = room.box
    for _ in range(40):
        if tmpl.placement == "center":
            yaw = float(rng.choice([0.0, math.pi / 2]))
            ex, ey = (w / 2, d / 2) if yaw == 0.0 else (d / 2, w / 2)
            cx0, cx1 = box.center[0] - 0.25 * box.size[0], box.center[0] + 0.25 * box.size[0]
            cy0, cy1 = box.center[1] - 0.25 * box.size[1], box.center[1] + 0.25 * box.size[1]
            x, y = rng.uniform(cx0, cx1), rng.uniform(cy0, cy1)
        else:
            side = int(rng.integers(4))  # 0 south, 1 north, 2 west, 3 east
            yaw = (0.0, math.pi, -math.pi / 2, math.pi / 2)[side]
            ex, ey = (w / 2, d / 2) if side < 2 else (d / 2, w / 2)
            gap = 0.02
            if side == 0:
                x, y = rng.uniform(box.x_min + ex, box.x_max - ex), box.y_min + ey + gap
            elif side == 1:
                x, y = rng.uniform(box.x_min + ex, box.x_max - ex), box.y_max - ey - gap
            elif side == 2:
                x, y = box.x_min + ex + gap, rng.uniform(box.y_min + ey, box.y_max - ey)
            else:
                x, y = box.x_max - ex - gap, rng.uniform(box.y_min + ey, box.y_max - ey)
        x, y = round(float(x), 3), round(float(y), 3)
        if not box.contains(x - ex, y - ey) or not box.contains(x + ex, y + ey):
            continue
        fb = Box2D(x - ex, y - ey, x + ex, y + ey)
        if any(fb.intersects(z) for z in zones):
            continue
        if any(fb.intersects(o.aabb2d().shrink(-0.5)) for o in placed):
            continue
        parts, color = _furniture_parts(tmpl, rng)
        return ObjectSpec(
            instance_id=instance_id,
            label=tmpl.label,
            kind="furniture",
            position_m=(x, y, h / 2),
            yaw_rad=yaw,
            half_extents_m=(w / 2, d / 2, h / 2),
            color_rgba=color,
            parts=parts,
            room=room.name,
        )
    return None


def _place_objects(
    rng: np.random.Generator,
    n_objects: int,
    rooms: tuple[Room, ...],
    surfaces: list[tuple[ObjectSpec, float]],
    furniture: list[ObjectSpec],
    doors: list[Door],
    next_id: int,
    start_xy: tuple[float, float],
) -> list[ObjectSpec] | None:
    # At least 12 distinct categories, then any.
    order = list(rng.permutation(len(OBJECT_TEMPLATES)))
    chosen = order[:12] + [int(rng.integers(len(OBJECT_TEMPLATES))) for _ in range(n_objects - 12)]
    zones = _door_zones(doors, depth_m=0.8, side_m=0.2)
    occupied: list[tuple[int, Box2D]] = []  # (support id, footprint)
    objects: list[ObjectSpec] = []
    for k in chosen:
        tmpl = OBJECT_TEMPLATES[int(k)]
        fields = tmpl.make(rng)
        hx, hy, hz = fields["half_extents_m"]
        placed = None
        for _ in range(60):
            yaw = round(float(rng.uniform(-math.pi, math.pi)), 3)
            r_xy = math.hypot(hx, hy)
            use_floor = tmpl.where == "floor" or (tmpl.where == "any" and rng.random() < 0.5) or not surfaces
            if use_floor:
                room = rooms[int(rng.integers(len(rooms)))]
                inner = room.box.shrink(r_xy + 0.05)
                if inner.x_max <= inner.x_min or inner.y_max <= inner.y_min:
                    continue
                # Floor objects stand near the walls so the rooms stay walkable.
                along = rng.random()
                side = int(rng.integers(4))
                if side < 2:
                    x = inner.x_min + along * (inner.x_max - inner.x_min)
                    y = inner.y_min if side == 0 else inner.y_max
                else:
                    y = inner.y_min + along * (inner.y_max - inner.y_min)
                    x = inner.x_min if side == 2 else inner.x_max
                z0, support, room_name = 0.0, 0, room.name
                fb = Box2D(x - r_xy, y - r_xy, x + r_xy, y + r_xy)
                if any(fb.intersects(z) for z in zones):
                    continue
                if any(fb.intersects(f.aabb2d().shrink(-0.05)) for f in furniture):
                    continue
                if math.hypot(x - start_xy[0], y - start_xy[1]) < 0.6:
                    continue
            else:
                furn, z_rel = surfaces[int(rng.integers(len(surfaces)))]
                fx, fy = furn.half_extents_m[0] - r_xy - 0.03, furn.half_extents_m[1] - r_xy - 0.03
                if fx <= 0 or fy <= 0:
                    continue
                lx, ly = rng.uniform(-fx, fx), rng.uniform(-fy, fy)
                c, s = math.cos(furn.yaw_rad), math.sin(furn.yaw_rad)
                x = furn.position_m[0] + c * lx - s * ly
                y = furn.position_m[1] + s * lx + c * ly
                z0 = z_rel
                support, room_name = furn.instance_id, furn.room
                # On a shelf board the object must fit under the next board.
                if furn.label == "shelf" and 2 * hz > 0.36:
                    continue
                fb = Box2D(x - r_xy, y - r_xy, x + r_xy, y + r_xy)
            if any(sid == support and fb.intersects(b) for sid, b in occupied):
                continue
            placed = ObjectSpec(
                instance_id=next_id,
                label=tmpl.label,
                kind="object",
                position_m=(round(float(x), 4), round(float(y), 4), round(float(z0 + hz + 0.001), 4)),
                yaw_rad=yaw,
                half_extents_m=(hx, hy, hz),
                color_rgba=fields["color_rgba"],
                parts=fields.get("parts", ()),
                urdf=fields.get("urdf"),
                urdf_scale=fields.get("urdf_scale", 1.0),
                urdf_rpy_rad=fields.get("urdf_rpy_rad", (0.0, 0.0, 0.0)),
                urdf_base_offset_m=fields.get("urdf_base_offset_m", (0.0, 0.0, 0.0)),
                room=room_name,
                support_id=support,
            )
            occupied.append((support, fb))
            break
        if placed is None:
            continue
        objects.append(placed)
        next_id += 1
    if len(objects) < 15 or len({o.label for o in objects}) < 10:
        return None
    return objects
