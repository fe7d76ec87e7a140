"""The apartment as plain data: rooms, walls, doors and objects (frozen dataclasses).

`scenes.generate_apartment` makes an `ApartmentSpec`; the renderer, the exporters and the
ground truth read one. This module imports nothing of engram, so both the generator and the
ground truth (which the generator asks whether a layout is reachable) can build on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RGBA", "ApartmentSpec", "Box2D", "Door", "ObjectSpec", "Part", "Room", "Vec3", "Wall"]

RGBA = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Box2D:
    """An axis-aligned rectangle on the floor, metres."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def __post_init__(self) -> None:
        if not (self.x_max > self.x_min and self.y_max > self.y_min):
            raise ValueError(f"Box2D needs x_max > x_min and y_max > y_min, got {self}")

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x_min + self.x_max), 0.5 * (self.y_min + self.y_max))

    @property
    def size(self) -> tuple[float, float]:
        return (self.x_max - self.x_min, self.y_max - self.y_min)

    @property
    def area(self) -> float:
        return (self.x_max - self.x_min) * (self.y_max - self.y_min)

    def contains(self, x: float, y: float, margin_m: float = 0.0) -> bool:
        return (
            self.x_min + margin_m <= x <= self.x_max - margin_m and self.y_min + margin_m <= y <= self.y_max - margin_m
        )

    def shrink(self, margin_m: float) -> Box2D:
        return Box2D(self.x_min + margin_m, self.y_min + margin_m, self.x_max - margin_m, self.y_max - margin_m)

    def intersects(self, other: Box2D) -> bool:
        return not (
            other.x_min >= self.x_max
            or other.x_max <= self.x_min
            or other.y_min >= self.y_max
            or other.y_max <= self.y_min
        )


@dataclass(frozen=True)
class Part:
    """One primitive of an object, in the object frame (centre of its bounding box).

    Attributes:
        shape: "box", "cylinder" (axis along z) or "sphere".
        half_extents_m: box half sizes; for a cylinder (radius, radius, half
            height); for a sphere (radius, radius, radius).
        offset_m: centre of the part in the object frame.
        color_rgba: colour, components in [0, 1].
    """

    shape: str
    half_extents_m: Vec3
    offset_m: Vec3
    color_rgba: RGBA


@dataclass(frozen=True)
class ObjectSpec:
    """A piece of furniture or a small object.

    Attributes:
        instance_id: stable id (>= 1) used in instance segmentation.
        label: category name ("table", "mug", ...).
        kind: "furniture" or "object".
        position_m: world position of the bounding-box centre.
        yaw_rad: rotation about +z.
        half_extents_m: bounding-box half sizes in the object frame.
        color_rgba: the main colour.
        parts: primitive geometry (empty when ``urdf`` is set).
        urdf: path relative to ``pybullet_data`` or None.
        urdf_scale: global scaling of the URDF.
        urdf_rpy_rad: base orientation of the URDF in the object frame.
        urdf_base_offset_m: URDF base origin relative to the centre, object frame.
        room: name of the room the object is in.
        support_id: instance id of the furniture it stands on (0 = floor).
    """

    instance_id: int
    label: str
    kind: str
    position_m: Vec3
    yaw_rad: float
    half_extents_m: Vec3
    color_rgba: RGBA
    parts: tuple[Part, ...] = ()
    urdf: str | None = None
    urdf_scale: float = 1.0
    urdf_rpy_rad: Vec3 = (0.0, 0.0, 0.0)
    urdf_base_offset_m: Vec3 = (0.0, 0.0, 0.0)
    room: str = ""
    support_id: int = 0

    def footprint(self) -> np.ndarray:
        """The 4 floor corners (x, y) of the yawed bounding box, "4 2"."""
        hx, hy = self.half_extents_m[0], self.half_extents_m[1]
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        rot = np.array([[c, -s], [s, c]])
        return local @ rot.T + np.array(self.position_m[:2])

    def aabb2d(self) -> Box2D:
        fp = self.footprint()
        return Box2D(*fp.min(axis=0), *fp.max(axis=0))

    @property
    def top_z_m(self) -> float:
        return self.position_m[2] + self.half_extents_m[2]


@dataclass(frozen=True)
class Room:
    """A room: its name and its floor rectangle inside the walls."""

    name: str
    box: Box2D


@dataclass(frozen=True)
class Wall:
    """An axis-aligned wall box (walls, lintels over doors)."""

    center_m: Vec3
    half_extents_m: Vec3
    color_rgba: RGBA = (0.92, 0.9, 0.85, 1.0)

    def box2d(self) -> Box2D:
        return Box2D(
            self.center_m[0] - self.half_extents_m[0],
            self.center_m[1] - self.half_extents_m[1],
            self.center_m[0] + self.half_extents_m[0],
            self.center_m[1] + self.half_extents_m[1],
        )


@dataclass(frozen=True)
class Door:
    """A door opening in an interior wall.

    Attributes:
        center_m: (x, y) of the opening's centre on the wall line.
        width_m: clear width of the opening.
        wall_axis: "x" when the wall runs along x (the door is crossed along
            y), "y" when the wall runs along y.
        rooms: the names of the two rooms it connects.
    """

    center_m: tuple[float, float]
    width_m: float
    wall_axis: str
    rooms: tuple[str, str]


@dataclass(frozen=True)
class ApartmentSpec:
    """A whole apartment; frozen, plain data.

    Attributes:
        seed: the seed it was generated from.
        bounds: outer rectangle (wall centre lines).
        rooms: rooms with names ("kitchen", "bedroom", ...).
        walls: wall and lintel boxes.
        doors: door openings.
        furniture: furniture objects (kind "furniture").
        objects: small objects (kind "object").
        wall_height_m, wall_thickness_m, door_height_m: structure sizes.
        floor_color_rgba, ceiling: colour of the floor and whether a ceiling
            slab covers the apartment.
        agent_start: (x, y, yaw_rad) of a free starting pose for an agent.
    """

    seed: int
    bounds: Box2D
    rooms: tuple[Room, ...]
    walls: tuple[Wall, ...]
    doors: tuple[Door, ...]
    furniture: tuple[ObjectSpec, ...]
    objects: tuple[ObjectSpec, ...]
    wall_height_m: float = 2.6
    wall_thickness_m: float = 0.1
    door_height_m: float = 2.1
    floor_color_rgba: RGBA = (0.72, 0.62, 0.5, 1.0)
    ceiling: bool = True
    agent_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def all_objects(self) -> tuple[ObjectSpec, ...]:
        """Furniture then small objects, in instance-id order."""
        return tuple(sorted(self.furniture + self.objects, key=lambda o: o.instance_id))

    def by_id(self) -> dict[int, ObjectSpec]:
        return {o.instance_id: o for o in self.all_objects()}

    def labels(self) -> dict[int, str]:
        """Instance id -> category label, for every object and piece of furniture."""
        return {o.instance_id: o.label for o in self.all_objects()}

    def room(self, name: str) -> Room:
        for r in self.rooms:
            if r.name == name:
                return r
        raise ValueError(f"no room named {name!r}; rooms: {[r.name for r in self.rooms]}")

    def room_of(self, x: float, y: float) -> str | None:
        """Name of the room containing (x, y); door openings count for neither room (None)."""
        for r in self.rooms:
            if r.box.contains(x, y):
                return r.name
        return None
