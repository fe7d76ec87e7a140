"""Export an embedded-world apartment as glTF binary plus habitat-sim's dataset files.

`export_apartment(spec, out_dir)` writes the same seeded apartment the
PyBullet world builds, so it can be loaded in habitat-sim (or any glTF viewer):

- ``<name>.glb``: the whole apartment in one file, one node per wall, floor,
  ceiling, piece of furniture and object (``obj_0012_chair``), with colours.
- a habitat scene dataset: ``stages/<name>_stage.glb`` (floor, walls, ceiling)
  with its ``.stage_config.json``; one ``objects/obj_<id>.glb`` per object with an
  ``.object_config.json`` carrying ``semantic_id`` = the engram instance id;
  ``scenes/<name>.scene_instance.json`` placing them; a semantic lexicon
  (``semantics/<name>.lexicon.json``, id -> label) and
  ``<name>.scene_dataset_config.json`` tying it together.
- ``<name>.engram.json``: labels and the agent's start pose, which
  `engram.sims.habitat.HabitatSource` reads when it loads the scene.

glTF and habitat are y-up; the apartment spec is z-up. Vertices are converted
with ``habitat (x, y, z) = engram (x, z, -y)``, the inverse of the conversion
in `engram.sims.habitat`, so an object at engram (x, y) appears in habitat at
(x, -y) on the floor plane and a HabitatSource frame lands in the same engram
coordinates as the embedded world's. Needs trimesh (the ``[3d]`` extra).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engram._optional import require
from engram.sims.embedded.scenes import ApartmentSpec, ObjectSpec, Part

__all__ = ["HabitatExport", "apartment_meshes", "export_apartment", "object_node_name"]

# habitat (y-up) <- engram (z-up): (x, y, z)_h = (x, z, -y)_e
_HABITAT_FROM_ENGRAM = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_FLOOR_THICKNESS_M = 0.05
_CYLINDER_SECTIONS = 24


@dataclass(frozen=True)
class HabitatExport:
    """Where an export wrote its files.

    Attributes:
        directory: the output folder.
        glb: the whole apartment in one glTF binary.
        scene_dataset_config: ``<name>.scene_dataset_config.json`` (pass to habitat's
            ``SimulatorConfiguration.scene_dataset_config_file``).
        scene_instance: ``scenes/<name>.scene_instance.json`` (the ``scene_id``).
        stage_glb: walls, floor and ceiling.
        stage_config: the stage's ``.stage_config.json``.
        object_configs: instance id -> ``.object_config.json``.
        lexicon: semantic id -> label file.
        sidecar: ``<name>.engram.json`` (labels, agent start, seed).
    """

    directory: Path
    glb: Path
    scene_dataset_config: Path
    scene_instance: Path
    stage_glb: Path
    stage_config: Path
    object_configs: dict[int, Path] = field(default_factory=dict)
    lexicon: Path | None = None
    sidecar: Path | None = None


def object_node_name(obj: ObjectSpec) -> str:
    """The glTF node name of an object: ``obj_<4-digit id>_<label>``."""
    label = "".join(c if c.isalnum() else "_" for c in obj.label)
    return f"obj_{obj.instance_id:04d}_{label}"


# ---------------------------------------------------------------------------
# meshes (engram z-up coordinates)


def _rgba_u8(rgba: Any) -> np.ndarray:
    return np.clip(np.round(np.asarray(rgba, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def _colored(mesh: Any, rgba: Any) -> Any:
    mesh.visual.face_colors = np.tile(_rgba_u8(rgba), (len(mesh.faces), 1))
    return mesh


def _box(trimesh: Any, center: Any, half: Any, rgba: Any) -> Any:
    m = trimesh.creation.box(extents=2.0 * np.asarray(half, dtype=np.float64))
    m.apply_translation(np.asarray(center, dtype=np.float64))
    return _colored(m, rgba)


def _part_mesh(trimesh: Any, part: Part) -> Any:
    hx, hy, hz = (float(v) for v in part.half_extents_m)
    if part.shape == "box":
        m = trimesh.creation.box(extents=(2 * hx, 2 * hy, 2 * hz))
    elif part.shape == "cylinder":
        m = trimesh.creation.cylinder(radius=hx, height=2 * hz, sections=_CYLINDER_SECTIONS)
    elif part.shape == "sphere":
        m = trimesh.creation.icosphere(subdivisions=2, radius=hx)
    else:
        raise ValueError(f"Part.shape must be box, cylinder or sphere, got {part.shape!r}")
    m.apply_translation(np.asarray(part.offset_m, dtype=np.float64))
    return _colored(m, part.color_rgba)


def _rpy_matrix(rpy: Any) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes x, y, z): R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _urdf_visual_mesh(trimesh: Any, obj: ObjectSpec) -> Any | None:
    """The URDF's visual meshes in the object frame (centre of the bounding box), or None if unavailable."""
    try:
        import pybullet_data
    except ImportError:
        return None
    urdf_path = Path(pybullet_data.getDataPath()) / str(obj.urdf)
    if not urdf_path.is_file():
        return None
    root = ET.parse(urdf_path).getroot()
    link = root.find("link")
    if link is None:
        return None
    base_from_urdf = _rpy_matrix(obj.urdf_rpy_rad)
    meshes = []
    for visual in link.findall("visual"):
        mesh_el = visual.find("geometry/mesh")
        if mesh_el is None:
            continue
        mesh_file = urdf_path.parent / mesh_el.get("filename", "")
        if not mesh_file.is_file():
            continue
        loaded = trimesh.load(mesh_file, force="mesh", process=False)
        if loaded.is_empty:
            continue
        scale = np.array([float(v) for v in mesh_el.get("scale", "1 1 1").split()])
        origin = visual.find("origin")
        xyz = np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()])
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        v_link = (loaded.vertices * scale) @ _rpy_matrix(rpy).T + xyz
        # pybullet's globalScaling scales the whole link, visual origins included.
        v_obj = (obj.urdf_scale * v_link) @ base_from_urdf.T + np.asarray(obj.urdf_base_offset_m)
        color = obj.color_rgba
        mat = visual.find("material/color")
        if mat is not None and mat.get("rgba"):
            color = tuple(float(v) for v in mat.get("rgba").split())
        m = trimesh.Trimesh(vertices=v_obj, faces=np.asarray(loaded.faces), process=False)
        meshes.append(_colored(m, color))
    if not meshes:
        return None
    return trimesh.util.concatenate(meshes)


def _object_local_mesh(trimesh: Any, obj: ObjectSpec) -> Any:
    """An object's geometry in its own frame (centre of its box, before yaw), engram axes."""
    mesh = _urdf_visual_mesh(trimesh, obj) if obj.urdf else None
    if mesh is None and obj.parts:
        mesh = trimesh.util.concatenate([_part_mesh(trimesh, p) for p in obj.parts])
    if mesh is None:  # a URDF whose meshes cannot be found: its bounding box stands in
        mesh = _box(trimesh, (0.0, 0.0, 0.0), obj.half_extents_m, obj.color_rgba)
    return mesh


def _yaw_matrix(yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def apartment_meshes(spec: ApartmentSpec) -> dict[str, Any]:
    """Every piece of the apartment as a coloured trimesh in engram world coordinates (z-up).

    Returns:
        node name -> mesh: ``floor``, ``ceiling`` (when the spec has one),
        ``wall_000``..., and `object_node_name` for each object.
    """
    if not isinstance(spec, ApartmentSpec):
        raise ValueError(f"spec must be an ApartmentSpec, got {type(spec).__name__}")
    trimesh = require("trimesh", "exporting scenes to .glb")
    b, t = spec.bounds, spec.wall_thickness_m
    sx, sy = b.x_max - b.x_min + t, b.y_max - b.y_min + t
    cx, cy = b.center
    out: dict[str, Any] = {
        "floor": _box(
            trimesh,
            (cx, cy, -_FLOOR_THICKNESS_M / 2),
            (sx / 2, sy / 2, _FLOOR_THICKNESS_M / 2),
            spec.floor_color_rgba,
        )
    }
    if spec.ceiling:
        out["ceiling"] = _box(
            trimesh,
            (cx, cy, spec.wall_height_m + _FLOOR_THICKNESS_M / 2),
            (sx / 2, sy / 2, _FLOOR_THICKNESS_M / 2),
            (0.95, 0.95, 0.95, 1.0),
        )
    for i, wall in enumerate(spec.walls):
        out[f"wall_{i:03d}"] = _box(trimesh, wall.center_m, wall.half_extents_m, wall.color_rgba)
    for obj in spec.all_objects():
        mesh = _object_local_mesh(trimesh, obj)
        mesh.apply_transform(_homogeneous(_yaw_matrix(obj.yaw_rad), obj.position_m))
        out[object_node_name(obj)] = mesh
    return out


def _homogeneous(r: np.ndarray, t: Any) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = np.asarray(t, dtype=np.float64)
    return m


def _to_habitat(mesh: Any) -> Any:
    m = mesh.copy()
    m.apply_transform(_homogeneous(_HABITAT_FROM_ENGRAM, (0.0, 0.0, 0.0)))
    return m


def _scene_glb(trimesh: Any, meshes: dict[str, Any]) -> bytes:
    scene = trimesh.Scene()
    for name, mesh in meshes.items():
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    return scene.export(file_type="glb")


# ---------------------------------------------------------------------------
# the export


def export_apartment(spec: ApartmentSpec, out_dir: str | Path, *, name: str | None = None) -> HabitatExport:
    """Write ``spec`` as a .glb and a habitat-sim scene dataset into ``out_dir``.

    Args:
        spec: the apartment (`engram.sims.embedded.scenes.generate_apartment`).
        out_dir: output folder (created).
        name: base name of the files; ``apartment_<seed>`` by default.

    Returns:
        The paths written.
    """
    trimesh = require("trimesh", "exporting scenes to .glb")
    meshes_e = apartment_meshes(spec)
    name = name or f"apartment_{spec.seed:04d}"
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file name, got {name!r}")
    out = Path(out_dir)
    for sub in ("stages", "objects", "scenes", "semantics"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    # 1. the whole apartment, one node per piece, y-up
    glb = out / f"{name}.glb"
    glb.write_bytes(_scene_glb(trimesh, {k: _to_habitat(m) for k, m in meshes_e.items()}))

    # 2. the stage: structure only
    structure = {k: _to_habitat(m) for k, m in meshes_e.items() if not k.startswith("obj_")}
    stage_glb = out / "stages" / f"{name}_stage.glb"
    stage_glb.write_bytes(_scene_glb(trimesh, structure))
    stage_config = out / "stages" / f"{name}_stage.stage_config.json"
    _write_json(
        stage_config,
        {
            "render_asset": stage_glb.name,
            "collision_asset": stage_glb.name,
            "up": [0.0, 1.0, 0.0],
            "front": [0.0, 0.0, -1.0],
            "origin": [0.0, 0.0, 0.0],
            "gravity": [0.0, -9.8, 0.0],
            "units_to_meters": 1.0,
            "requires_lighting": True,
        },
    )

    # 3. objects: local geometry (centre at the origin, habitat axes), placed by the scene instance
    object_configs: dict[int, Path] = {}
    instances = []
    for obj in spec.all_objects():
        local = _to_habitat(_object_local_mesh(trimesh, obj))
        asset = out / "objects" / f"obj_{obj.instance_id:04d}.glb"
        asset.write_bytes(_scene_glb(trimesh, {object_node_name(obj): local}))
        cfg = out / "objects" / f"obj_{obj.instance_id:04d}.object_config.json"
        _write_json(
            cfg,
            {
                "render_asset": asset.name,
                "collision_asset": asset.name,
                "up": [0.0, 1.0, 0.0],
                "front": [0.0, 0.0, -1.0],
                "semantic_id": int(obj.instance_id),
                "units_to_meters": 1.0,
                "requires_lighting": True,
            },
        )
        object_configs[obj.instance_id] = cfg
        half = 0.5 * float(obj.yaw_rad)  # engram yaw about +z is the same turn about habitat +y
        instances.append(
            {
                "template_name": f"obj_{obj.instance_id:04d}",
                "translation": (_HABITAT_FROM_ENGRAM @ np.asarray(obj.position_m, dtype=np.float64)).tolist(),
                "rotation": [math.cos(half), 0.0, math.sin(half), 0.0],  # [w, x, y, z]
                "motion_type": "STATIC",
                "translation_origin": "asset_local",
            }
        )

    # 4. semantics, scene instance, dataset config, engram sidecar
    labels = spec.labels()
    lexicon = out / "semantics" / f"{name}.lexicon.json"
    _write_json(lexicon, {"classes": [{"name": labels[i], "id": int(i)} for i in sorted(labels)]})
    scene_instance = out / "scenes" / f"{name}.scene_instance.json"
    _write_json(
        scene_instance,
        {
            "stage_instance": {"template_name": f"{name}_stage", "translation_origin": "asset_local"},
            "default_lighting": "",
            "object_instances": instances,
            "semantic_scene_instance": f"{name}_semantics",
            "user_defined": {"engram_seed": int(spec.seed)},
        },
    )
    dataset = out / f"{name}.scene_dataset_config.json"
    _write_json(
        dataset,
        {
            "stages": {"paths": {".json": ["stages"]}},
            "objects": {"paths": {".json": ["objects"]}},
            "scene_instances": {"default_attributes": {"default_lighting": ""}, "paths": {".json": ["scenes"]}},
            "semantic_scene_descriptor_instances": {f"{name}_semantics": f"semantics/{lexicon.name}"},
        },
    )
    sidecar = out / f"{name}.engram.json"
    _write_json(
        sidecar,
        {
            "seed": int(spec.seed),
            "bounds": [spec.bounds.x_min, spec.bounds.y_min, spec.bounds.x_max, spec.bounds.y_max],
            "labels": {str(i): labels[i] for i in sorted(labels)},
            "agent_start": [float(v) for v in spec.agent_start],
            "world": "engram z-up; habitat (x, y, z) = engram (x, z, -y)",
        },
    )
    # HabitatSource looks for the sidecar beside the scene instance too.
    _write_json(scene_instance.with_name(f"{name}.engram.json"), json.loads(sidecar.read_text()))
    return HabitatExport(
        directory=out,
        glb=glb,
        scene_dataset_config=dataset,
        scene_instance=scene_instance,
        stage_glb=stage_glb,
        stage_config=stage_config,
        object_configs=object_configs,
        lexicon=lexicon,
        sidecar=sidecar,
    )


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))


def main(argv: list[str] | None = None) -> int:
    """``python -m engram.sims.embedded.export_glb --seed 3 --out scenes/``: export seeded apartments."""
    import argparse

    parser = argparse.ArgumentParser(description="Export embedded-world apartments for habitat-sim (.glb + dataset).")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="apartment seeds")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    from engram.sims.embedded.scenes import generate_apartment

    for seed in args.seed:
        ex = export_apartment(generate_apartment(seed), args.out)
        print(f"seed {seed}: {ex.scene_instance} (dataset {ex.scene_dataset_config})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
