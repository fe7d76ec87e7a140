"""Build an `ApartmentSpec` in a PyBullet client and render it.

One `PyBulletWorld` owns one DIRECT-mode client; every call passes
``physicsClientId`` so several worlds coexist in one process. Bodies are
static (mass 0): the apartment does not simulate physics, objects move only
when the scripted dynamics place them. Rendering uses ER_TINY_RENDERER (CPU);
the seg mask maps PyBullet body ids to the spec's instance ids through a
lookup table, so structure (floor, walls, ceiling) reads 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engram._optional import require
from engram.sims.embedded.scenes import RGBA, ApartmentSpec, Box2D, ObjectSpec, Part
from engram.types import CameraIntrinsics, Pose

__all__ = ["PyBulletWorld", "RenderResult", "linearize_depth", "opengl_projection_matrix", "opengl_view_matrix"]

# OpenCV camera axes (x right, y down, z forward) to OpenGL (x right, y up, z back).
_GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_view_matrix(world_from_camera: Pose) -> list[float]:
    """PyBullet's column-major view matrix for an OpenCV-convention camera pose."""
    view = _GL_FROM_CV @ world_from_camera.inverse().matrix
    return view.T.reshape(-1).tolist()


def opengl_projection_matrix(intrinsics: CameraIntrinsics, near_m: float, far_m: float) -> list[float]:
    """Column-major OpenGL projection that makes TinyRenderer's pixels match pinhole intrinsics exactly.

    `CameraIntrinsics` puts pixel centres at integer (u, v), top-left (0, 0).
    TinyRenderer does not sample pixel centres: it samples column ``i`` at
    viewport x = i (the pixel's left edge) and, before flipping the image
    upside down, row ``j`` at viewport y = j. So the NDC that column ``u`` and
    (top-down) row ``v`` sample are ``2 u / W - 1`` and ``1 - 2 (v + 1) / H``;
    the matrix below maps the ray through (u, v) exactly there (a plain
    OpenGL matrix would render the image shifted by half a pixel in x and y).
    """
    k = intrinsics
    w, h = k.width, k.height
    proj = np.zeros((4, 4))
    proj[0, 0] = 2.0 * k.fx / w
    proj[1, 1] = 2.0 * k.fy / h
    # OpenGL camera: x_gl = x, y_gl = -y, z_gl = -z (OpenCV x right, y down, z forward); w_clip = z.
    proj[0, 2] = 1.0 - 2.0 * k.cx / w
    proj[1, 2] = 2.0 * (k.cy + 1.0) / h - 1.0
    proj[2, 2] = -(far_m + near_m) / (far_m - near_m)
    proj[2, 3] = -2.0 * far_m * near_m / (far_m - near_m)
    proj[3, 2] = -1.0
    return proj.T.reshape(-1).tolist()


def linearize_depth(depth_buffer: np.ndarray, near_m: float, far_m: float) -> np.ndarray:
    """OpenGL depth buffer values in [0, 1] to metric depth along the optical axis (float32).

    Values at the far plane (no geometry) become 0, meaning "no return".
    """
    zb = np.asarray(depth_buffer, dtype=np.float32)
    depth = (far_m * near_m) / (far_m - (far_m - near_m) * zb)
    depth[zb >= 1.0 - 1e-7] = 0.0
    return depth.astype(np.float32, copy=False)


@dataclass
class RenderResult:
    """Raw render of one camera: rgb "H W 3" uint8, depth_m "H W" float32, instances "H W" int32."""

    rgb: np.ndarray
    depth_m: np.ndarray
    instances: np.ndarray


@dataclass(frozen=True)
class _RoomGrid:
    ids: np.ndarray  # int16: room index + 1, 0 = passable but no room (door openings), -1 = wall or outside
    origin_xy_m: tuple[float, float]
    resolution_m: float


def _room_grid(spec: ApartmentSpec, resolution_m: float = 0.05) -> _RoomGrid:
    from engram.sims.embedded.groundtruth import rasterize_obstacles

    fsm = rasterize_obstacles(spec.bounds, spec.walls, (), resolution_m)
    ids = np.where(fsm.free, 0, -1).astype(np.int16)
    h, w = ids.shape
    ys = fsm.origin_xy_m[1] + (np.arange(h) + 0.5) * resolution_m
    xs = fsm.origin_xy_m[0] + (np.arange(w) + 0.5) * resolution_m
    for k, room in enumerate(spec.rooms):
        b = room.box
        mask = ((ys >= b.y_min) & (ys <= b.y_max))[:, None] & ((xs >= b.x_min) & (xs <= b.x_max))[None, :]
        ids[mask & fsm.free] = k + 1
    return _RoomGrid(ids, fsm.origin_xy_m, resolution_m)


# Tile size of floor, ceiling and wall meshes. TinyRenderer tests every pixel of a
# triangle's clamped screen box; 1 m tiles keep a floor seen at a grazing angle from
# costing a full-screen box per triangle, and measured as fast as 0.25-3 m tiles.
TILE_M = 1.0


def _quad_tiles(
    origin: np.ndarray, u: np.ndarray, v: np.ndarray, flip: bool = False, tile_m: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A parallelogram origin + s u + t v split into tiles of at most ``tile_m`` (default `TILE_M`).

    Returns vertices "N 3", triangles "M 3" and per-vertex normals "N 3";
    faces point along u x v (v x u when flipped): the side TinyRenderer draws.
    """
    tile = TILE_M if tile_m is None else tile_m
    nu = max(1, int(math.ceil(np.linalg.norm(u) / tile)))
    nv = max(1, int(math.ceil(np.linalg.norm(v) / tile)))
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1))
    verts = origin + s.reshape(-1, 1) * u + t.reshape(-1, 1) * v
    i, j = np.meshgrid(np.arange(nv), np.arange(nu), indexing="ij")
    a = (i * (nu + 1) + j).ravel()
    b, c, d = a + 1, a + nu + 1, a + nu + 2
    tris = np.stack([a, b, d, a, d, c], axis=1).reshape(-1, 3)
    normal = np.cross(u, v)
    if flip:
        tris = tris[:, ::-1]
        normal = -normal
    normal = normal / np.linalg.norm(normal)
    return verts, tris, np.tile(normal, (len(verts), 1))


def _quat_yaw(yaw_rad: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw_rad / 2.0), math.cos(yaw_rad / 2.0))


class PyBulletWorld:
    """A PyBullet DIRECT client holding one apartment.

    Args:
        spec: the apartment to build.
        person_instance_id: instance id of the walking person's body, or None
            for no person.

    Attributes:
        client: the PyBullet physics client id.
        body_of_instance: instance id -> PyBullet body id.
    """

    def __init__(self, spec: ApartmentSpec, person_instance_id: int | None = None) -> None:
        self.p = require("pybullet", "the embedded simulator")
        self.client = self.p.connect(self.p.DIRECT)
        self.spec = spec
        self._spec_by_id = spec.by_id()
        self._visual_cache: dict[tuple, int] = {}
        self._collision_cache: dict[tuple, int] = {}
        self.body_of_instance: dict[int, int] = {}
        self.structure_bodies: list[int] = []
        self._rooms_of_body: dict[int, set[int]] = {}
        try:
            self._build(person_instance_id)
        except Exception:
            self.close()
            raise

    # -- building -------------------------------------------------------------
    def _shape_args(self, part_shape: str, half: Sequence[float]) -> dict:
        p = self.p
        if part_shape == "box":
            return {"shapeType": p.GEOM_BOX, "halfExtents": list(half)}
        if part_shape == "cylinder":
            return {"shapeType": p.GEOM_CYLINDER, "radius": half[0], "length": 2.0 * half[2]}
        if part_shape == "sphere":
            return {"shapeType": p.GEOM_SPHERE, "radius": half[0]}
        raise ValueError(f"unknown part shape {part_shape!r}; expected box, cylinder or sphere")

    def _visual(self, part: Part) -> int:
        key = (part.shape, tuple(part.half_extents_m), tuple(part.color_rgba))
        if key not in self._visual_cache:
            args = self._shape_args(part.shape, part.half_extents_m)
            self._visual_cache[key] = self.p.createVisualShape(
                rgbaColor=list(part.color_rgba), physicsClientId=self.client, **args
            )
        return self._visual_cache[key]

    def _collision(self, part: Part) -> int:
        key = (part.shape, tuple(part.half_extents_m))
        if key not in self._collision_cache:
            args = self._shape_args(part.shape, part.half_extents_m)
            if "length" in args:
                args["height"] = args.pop("length")
            self._collision_cache[key] = self.p.createCollisionShape(physicsClientId=self.client, **args)
        return self._collision_cache[key]

    def _parts_body(self, parts: Sequence[Part], position: Sequence[float], yaw_rad: float) -> int:
        """One static multibody: the first part is the base, the rest fixed links (each with its colour)."""
        p = self.p
        base, links = parts[0], parts[1:]
        n = len(links)
        return p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=self._collision(base),
            baseVisualShapeIndex=self._visual(base),
            basePosition=list(position),
            baseOrientation=_quat_yaw(yaw_rad),
            baseInertialFramePosition=[0.0, 0.0, 0.0],
            linkMasses=[0.0] * n,
            linkCollisionShapeIndices=[self._collision(q) for q in links],
            linkVisualShapeIndices=[self._visual(q) for q in links],
            linkPositions=[[q.offset_m[i] - base.offset_m[i] for i in range(3)] for q in links],
            linkOrientations=[[0.0, 0.0, 0.0, 1.0]] * n,
            linkInertialFramePositions=[[0.0, 0.0, 0.0]] * n,
            linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]] * n,
            linkParentIndices=[0] * n,
            linkJointTypes=[p.JOINT_FIXED] * n,
            linkJointAxis=[[0.0, 0.0, 1.0]] * n,
            physicsClientId=self.client,
        )

    def _object_body(self, obj: ObjectSpec) -> int:
        if obj.urdf is not None:
            pybullet_data = require("pybullet_data", "the embedded simulator's object models")
            import os

            path = os.path.join(pybullet_data.getDataPath(), obj.urdf)
            pos, orn = self.urdf_base_pose(obj, obj.position_m, obj.yaw_rad)
            return self.p.loadURDF(
                path,
                basePosition=pos,
                baseOrientation=orn,
                globalScaling=obj.urdf_scale,
                useFixedBase=True,
                physicsClientId=self.client,
            )
        if not obj.parts:
            raise ValueError(f"object {obj.instance_id} ({obj.label}) has neither parts nor a urdf")
        return self._parts_body(obj.parts, self.parts_base_position(obj, obj.position_m, obj.yaw_rad), obj.yaw_rad)

    def urdf_base_pose(
        self, obj: ObjectSpec, position_m: Sequence[float], yaw_rad: float
    ) -> tuple[list[float], tuple[float, ...]]:
        """World pose of a URDF object's base for a bounding-box centre and yaw."""
        c, s = math.cos(yaw_rad), math.sin(yaw_rad)
        ox, oy, oz = obj.urdf_base_offset_m
        pos = [position_m[0] + c * ox - s * oy, position_m[1] + s * ox + c * oy, position_m[2] + oz]
        orn_rpy = self.p.getQuaternionFromEuler(list(obj.urdf_rpy_rad))
        _, orn = self.p.multiplyTransforms([0, 0, 0], _quat_yaw(yaw_rad), [0, 0, 0], orn_rpy)
        return pos, orn

    @staticmethod
    def parts_base_position(obj: ObjectSpec, position_m: Sequence[float], yaw_rad: float) -> list[float]:
        """World position of a primitive object's base (its first part) for a box centre and yaw."""
        c, s = math.cos(yaw_rad), math.sin(yaw_rad)
        ox, oy, oz = obj.parts[0].offset_m
        return [position_m[0] + c * ox - s * oy, position_m[1] + s * ox + c * oy, position_m[2] + oz]

    def _tile_mesh(self, box: Box2D, z_m: float, color: RGBA, facing_up: bool) -> int:
        """A flat, visual-only floor or ceiling mesh of small tiles."""
        origin = np.array([box.x_min, box.y_min, z_m])
        u = np.array([box.x_max - box.x_min, 0.0, 0.0])
        v = np.array([0.0, box.y_max - box.y_min, 0.0])
        verts, tris, normals = _quad_tiles(origin, u, v, flip=not facing_up)
        vis = self._mesh_visual(verts, tris, normals, color)
        return self.p.createMultiBody(0.0, -1, vis, [0.0, 0.0, 0.0], physicsClientId=self.client)

    def _mesh_visual(self, verts: np.ndarray, tris: np.ndarray, normals: np.ndarray, color: RGBA) -> int:
        return self.p.createVisualShape(
            self.p.GEOM_MESH,
            vertices=verts.tolist(),
            indices=tris.ravel().tolist(),
            normals=normals.tolist(),
            rgbaColor=list(color),
            physicsClientId=self.client,
        )

    def _wall_body(self, center: Sequence[float], half: Sequence[float], color: RGBA) -> int:
        """A wall: box collision, tiled visual faces (sides, and the underside of lintels)."""
        c, h = np.asarray(center, float), np.asarray(half, float)
        lo = c - h
        ex, ey, ez = 2 * h
        # Faces reach 5 cm past the floor and ceiling planes: a shared edge leaves a crack of
        # unfilled pixels in TinyRenderer, an overlap hidden by the floor does not.
        ez += 0.05
        if lo[2] <= 1e-6:
            lo = lo - [0.0, 0.0, 0.05]
            ez += 0.05
        faces = [
            (lo, np.array([0, 0, ez]), np.array([0, ey, 0.0])),  # -x side, facing -x
            (lo + [ex, 0, 0], np.array([0, ey, 0.0]), np.array([0, 0, ez])),  # +x side
            (lo, np.array([ex, 0, 0.0]), np.array([0, 0, ez])),  # -y side
            (lo + [0, ey, 0], np.array([0, 0, ez]), np.array([ex, 0, 0.0])),  # +y side
        ]
        if lo[2] > 0.0:  # a lintel: its underside shows through the door
            faces.append((lo, np.array([0, ey, 0.0]), np.array([ex, 0, 0.0])))
        verts, tris, normals, n = [], [], [], 0
        for origin, u, v in faces:
            vt, tr, nm = _quad_tiles(origin - c, u, v)
            verts.append(vt)
            tris.append(tr + n)
            normals.append(nm)
            n += len(vt)
        vis = self._mesh_visual(np.concatenate(verts), np.concatenate(tris), np.concatenate(normals), color)
        col = self.p.createCollisionShape(self.p.GEOM_BOX, halfExtents=list(h), physicsClientId=self.client)
        return self.p.createMultiBody(0.0, col, vis, list(c), physicsClientId=self.client)

    def _build(self, person_instance_id: int | None) -> None:
        p, spec = self.p, self.spec
        cid = self.client
        p.setGravity(0, 0, 0, physicsClientId=cid)
        half_t = spec.wall_thickness_m / 2
        room_index = {r.name: k for k, r in enumerate(spec.rooms)}
        # Creation order is drawing order, and TinyRenderer tests depth before shading: small
        # near things first, then furniture, walls, and the big floor and ceiling last, so most
        # hidden pixels are rejected before the (costly) shading.
        objects = sorted(spec.all_objects(), key=lambda o: (o.kind != "object", o.instance_id))
        if person_instance_id is not None:
            body = self._parts_body(PERSON_PARTS, [-100.0, -100.0, PERSON_PARTS[0].offset_m[2]], 0.0)
            self.body_of_instance[person_instance_id] = body  # never culled: it walks between rooms
        for obj in objects:
            body = self._object_body(obj)
            self.body_of_instance[obj.instance_id] = body
            self._rooms_of_body[body] = {room_index[obj.room]} if obj.room in room_index else set(room_index.values())
        for w in spec.walls:
            body = self._wall_body(w.center_m, w.half_extents_m, w.color_rgba)
            wb = w.box2d()
            near = {k for k, r in enumerate(spec.rooms) if r.box.shrink(-spec.wall_thickness_m).intersects(wb)}
            self._add_structure(body, near)
        # Floor and ceiling per room, out to the wall centre lines, plus the floor of door openings.
        for d in spec.doors:
            x, y = d.center_m
            hw = d.width_m / 2
            box = (
                Box2D(x - hw, y - half_t, x + hw, y + half_t)
                if d.wall_axis == "x"
                else Box2D(x - half_t, y - hw, x + half_t, y + hw)
            )
            body = self._tile_mesh(box, 0.0, spec.floor_color_rgba, facing_up=True)
            self._add_structure(body, {room_index[d.rooms[0]], room_index[d.rooms[1]]})
        for k, room in enumerate(spec.rooms):
            box = room.box.shrink(-half_t)
            body = self._tile_mesh(box, 0.0, spec.floor_color_rgba, facing_up=True)
            self._add_structure(body, {k})
            if spec.ceiling:
                body = self._tile_mesh(box, spec.wall_height_m, (0.97, 0.97, 0.96, 1.0), facing_up=False)
                self._add_structure(body, {k})
        self._rebuild_lut()
        self._colors = {
            body: [(int(v[1]), tuple(v[7])) for v in p.getVisualShapeData(body, physicsClientId=cid)]
            for body in self._rooms_of_body
        }
        self._hidden: set[int] = set()
        self._room_grid = _room_grid(spec)

    def _rebuild_lut(self) -> None:
        n = self.p.getNumBodies(physicsClientId=self.client)
        lut = np.zeros(n + 2, np.int32)  # index = body id + 1 (seg mask -1 = nothing)
        for iid, body in self.body_of_instance.items():
            lut[body + 1] = iid
        self._lut = lut

    def _add_structure(self, body: int, rooms: set[int]) -> None:
        self.structure_bodies.append(body)
        self._rooms_of_body[body] = rooms

    # -- visibility culling -----------------------------------------------------
    def visible_rooms(
        self, world_from_camera: Pose, intrinsics: CameraIntrinsics, max_range_m: float = 30.0
    ) -> set[int]:
        """Indices of rooms a camera can see, by 2D ray casting through door openings.

        Walls are full height (lintels close the space above doors), so a room
        is visible only if a ray in the floor plane reaches it; treating door
        openings as full height makes the set a superset of the truth.
        """
        grid = self._room_grid
        cam_xy = world_from_camera.translation[:2]
        # Directions of the image border's pixel rays, projected onto the floor plane.
        w, h = intrinsics.width, intrinsics.height
        us = np.concatenate([np.linspace(-0.5, w - 0.5, 9), np.full(9, -0.5), np.full(9, w - 0.5)])
        vs = np.concatenate([np.full(9, h / 2), np.linspace(-0.5, h - 0.5, 9), np.linspace(-0.5, h - 0.5, 9)])
        rays_cam = np.stack(
            [(us - intrinsics.cx) / intrinsics.fx, (vs - intrinsics.cy) / intrinsics.fy, np.ones_like(us)], 1
        )
        dirs = rays_cam @ world_from_camera.rotation.T
        horiz = np.linalg.norm(dirs[:, :2], axis=1)
        if (horiz < 0.05 * np.linalg.norm(dirs, axis=1)).any():
            lo, hi = -math.pi, math.pi  # looking (almost) straight up or down: cast all around
        else:
            ang = np.arctan2(dirs[:, 1], dirs[:, 0])
            ref = ang[0]
            rel = (ang - ref + math.pi) % (2 * math.pi) - math.pi
            lo, hi = ref + rel.min() - 0.05, ref + rel.max() + 0.05
            if hi - lo > 2 * math.pi:
                lo, hi = -math.pi, math.pi
        from engram.sims.embedded._grid import rays_visible_ids

        angles = np.linspace(lo, hi, max(64, 2 * w))
        seen = rays_visible_ids(
            grid.ids,
            grid.origin_xy_m[0],
            grid.origin_xy_m[1],
            grid.resolution_m,
            float(cam_xy[0]),
            float(cam_xy[1]),
            angles,
            max_range_m,
            len(self.spec.rooms),
        )
        rooms = {int(v) - 1 for v in np.nonzero(seen)[0]}
        # The camera's own cell (a camera inside a wall or door still sees its neighbours).
        cx, cy = (
            int((cam_xy[0] - grid.origin_xy_m[0]) / grid.resolution_m),
            int((cam_xy[1] - grid.origin_xy_m[1]) / grid.resolution_m),
        )
        r = 3
        patch = grid.ids[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1]
        rooms |= {int(v) - 1 for v in np.unique(patch) if v > 0}
        return rooms

    def cull(self, visible_rooms: set[int] | None) -> None:
        """Hide (alpha 0, skipped by the renderer) every room-bound body not in ``visible_rooms``; None shows all."""
        p = self.p
        if visible_rooms is None:
            hide: set[int] = set()
        else:
            hide = {b for b, rooms in self._rooms_of_body.items() if not (rooms & visible_rooms)}
        for body in hide - self._hidden:
            for link, rgba in self._colors[body]:
                p.changeVisualShape(body, link, rgbaColor=[rgba[0], rgba[1], rgba[2], 0.0], physicsClientId=self.client)
        for body in self._hidden - hide:
            for link, rgba in self._colors[body]:
                p.changeVisualShape(body, link, rgbaColor=list(rgba), physicsClientId=self.client)
        self._hidden = hide

    # -- moving ---------------------------------------------------------------
    def set_object_pose(self, instance_id: int, position_m: Sequence[float], yaw_rad: float) -> None:
        """Place an object (bounding-box centre and yaw), or the person (feet position, yaw)."""
        if instance_id not in self.body_of_instance:
            raise ValueError(f"no object with instance id {instance_id}")
        body = self.body_of_instance[instance_id]
        obj = self._spec_by_id.get(instance_id)
        if obj is None:  # the person: position is the feet
            pos = [position_m[0], position_m[1], position_m[2] + PERSON_PARTS[0].offset_m[2]]
            self.p.resetBasePositionAndOrientation(body, pos, _quat_yaw(yaw_rad), physicsClientId=self.client)
            return
        if obj.urdf is not None:
            pos, orn = self.urdf_base_pose(obj, position_m, yaw_rad)
        else:
            pos, orn = self.parts_base_position(obj, position_m, yaw_rad), _quat_yaw(yaw_rad)
        self.p.resetBasePositionAndOrientation(body, pos, orn, physicsClientId=self.client)
        # A moved object is culled with the room it is in now.
        g = self._room_grid
        ix = int((position_m[0] - g.origin_xy_m[0]) // g.resolution_m)
        iy = int((position_m[1] - g.origin_xy_m[1]) // g.resolution_m)
        inside = 0 <= iy < g.ids.shape[0] and 0 <= ix < g.ids.shape[1]
        room = int(g.ids[iy, ix]) - 1 if inside else -1
        self._rooms_of_body[body] = {room} if room >= 0 else set(range(len(self.spec.rooms)))

    # -- collision ------------------------------------------------------------
    def make_agent_shape(self, radius_m: float, height_m: float) -> int:
        """A collision cylinder for the agent (no body, so it never renders)."""
        return self.p.createCollisionShape(
            self.p.GEOM_CYLINDER, radius=radius_m, height=height_m, physicsClientId=self.client
        )

    def collides(self, shape: int, position_m: Sequence[float], radius_m: float, half_height_m: float) -> bool:
        """True when the collision shape at ``position_m`` touches any wall, furniture, object or the person."""
        p = self.p
        lo = [position_m[0] - radius_m, position_m[1] - radius_m, position_m[2] - half_height_m]
        hi = [position_m[0] + radius_m, position_m[1] + radius_m, position_m[2] + half_height_m]
        hits = p.getOverlappingObjects(lo, hi, physicsClientId=self.client) or ()
        for body, link in hits:
            pts = p.getClosestPoints(
                bodyA=-1,
                bodyB=body,
                distance=0.0,
                linkIndexB=link,
                collisionShapeA=shape,
                collisionShapePositionA=list(position_m),
                physicsClientId=self.client,
            )
            if pts:
                return True
        return False

    # -- rendering ------------------------------------------------------------
    def render(
        self,
        view_matrix: list[float],
        projection_matrix: list[float],
        width: int,
        height: int,
        near_m: float,
        far_m: float,
    ) -> RenderResult:
        """Render RGB, metric depth and instance ids with the CPU renderer."""
        p = self.p
        _, _, rgba, depth_buf, seg = p.getCameraImage(
            width,
            height,
            viewMatrix=view_matrix,
            projectionMatrix=projection_matrix,
            renderer=p.ER_TINY_RENDERER,
            shadow=0,
            lightDirection=[0.4, 0.3, 1.0],
            physicsClientId=self.client,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
        depth = linearize_depth(np.asarray(depth_buf, dtype=np.float32).reshape(height, width), near_m, far_m)
        seg = np.asarray(seg, dtype=np.int32).reshape(height, width)
        # Without the link-index flag the mask holds body ids, -1 where nothing was drawn.
        instances = self._lut[np.clip(seg + 1, 0, len(self._lut) - 1)]
        return RenderResult(rgb=np.ascontiguousarray(rgba[..., :3]), depth_m=depth, instances=instances)

    def close(self) -> None:
        if getattr(self, "client", None) is not None and self.client >= 0:
            try:
                self.p.disconnect(physicsClientId=self.client)
            except Exception:  # already disconnected  # noqa: BLE001
                pass
            self.client = -1


# A walking person: legs, torso, arms, head; feet at z = 0 of the body frame when placed by set_object_pose.
_SKIN = (0.87, 0.7, 0.58, 1.0)
_SHIRT = (0.2, 0.35, 0.75, 1.0)
_TROUSERS = (0.2, 0.2, 0.25, 1.0)
PERSON_PARTS: tuple[Part, ...] = (
    Part("box", (0.11, 0.17, 0.3), (0.0, 0.0, 1.15), _SHIRT),  # torso, base part
    Part("box", (0.07, 0.08, 0.42), (0.0, 0.09, 0.42), _TROUSERS),  # legs
    Part("box", (0.07, 0.08, 0.42), (0.0, -0.09, 0.42), _TROUSERS),
    Part("box", (0.05, 0.05, 0.3), (0.0, 0.22, 1.13), _SHIRT),  # arms
    Part("box", (0.05, 0.05, 0.3), (0.0, -0.22, 1.13), _SHIRT),
    Part("sphere", (0.11, 0.11, 0.11), (0.0, 0.0, 1.6), _SKIN),  # head
)
PERSON_HEIGHT_M = 1.71
