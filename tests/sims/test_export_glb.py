"""engram.sims.embedded.export_glb: the exported apartment re-loaded with trimesh matches the spec."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")

from engram.sims.embedded.export_glb import HabitatExport, export_apartment, object_node_name  # noqa: E402
from engram.sims.embedded.scenes import ApartmentSpec, generate_apartment  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ApartmentSpec, HabitatExport]:
    spec = generate_apartment(3)
    return spec, export_apartment(spec, tmp_path_factory.mktemp("export"))


def _engram(points_h: np.ndarray) -> np.ndarray:
    """habitat / glTF y-up to engram z-up, written out independently of the module: (x, -z, y)."""
    p = np.asarray(points_h, dtype=np.float64)
    return np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=1)


def _node_vertices(scene, node: str) -> np.ndarray:
    transform, geom = scene.graph[node]
    v = scene.geometry[geom].vertices
    return v @ transform[:3, :3].T + transform[:3, 3]


def _obj_triangles(path: Path) -> int:
    """Triangles of a Wavefront .obj, counted from its 'f' lines (a polygon of n corners is n - 2)."""
    n = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("f "):
            n += len(line.split()) - 3
    return n


def _expected_triangles(obj) -> int:
    if obj.urdf:
        import xml.etree.ElementTree as ET

        import pybullet_data

        urdf = Path(pybullet_data.getDataPath()) / obj.urdf
        meshes = ET.parse(urdf).getroot().findall("link/visual/geometry/mesh")
        return sum(_obj_triangles(urdf.parent / m.get("filename")) for m in meshes)
    per_shape = {"box": 12, "cylinder": 4 * 24, "sphere": 320}  # trimesh box, 24-section cylinder, icosphere(2)
    return sum(per_shape[p.shape] for p in obj.parts)


def test_glb_has_every_piece_as_a_named_node(exported) -> None:
    spec, ex = exported
    scene = trimesh.load(ex.glb)
    names = set(scene.graph.nodes_geometry)
    want = {"floor", *(f"wall_{i:03d}" for i in range(len(spec.walls)))}
    want |= {object_node_name(o) for o in spec.all_objects()}
    if spec.ceiling:
        want.add("ceiling")
    assert names == want
    assert object_node_name(spec.all_objects()[0]).startswith(f"obj_{spec.all_objects()[0].instance_id:04d}_")


def test_glb_bounds_are_the_apartment_in_y_up(exported) -> None:
    spec, ex = exported
    scene = trimesh.load(ex.glb)
    b, t = spec.bounds, spec.wall_thickness_m
    top = spec.wall_height_m + (0.05 if spec.ceiling else 0.0)
    # glTF is y-up: x stays, up is +y, and engram +y points to glTF -z.
    want = np.array([[b.x_min - t / 2, -0.05, -(b.y_max + t / 2)], [b.x_max + t / 2, top, -(b.y_min - t / 2)]])
    np.testing.assert_allclose(scene.bounds, want, atol=1e-5)
    floor = _engram(_node_vertices(scene, "floor"))
    assert floor[:, 2].max() == pytest.approx(0.0, abs=1e-6)  # the floor top is engram z = 0


def test_glb_read_by_pygltflib_is_y_up_and_complete(exported) -> None:
    """A second glTF reader: node names, triangle count and raw POSITION bounds straight from the file."""
    pygltflib = pytest.importorskip("pygltflib")
    spec, ex = exported
    gltf = pygltflib.GLTF2().load(str(ex.glb))
    names = {n.name for n in gltf.nodes if n.mesh is not None}
    assert {object_node_name(o) for o in spec.all_objects()} <= names and "floor" in names
    triangles, lo, hi = 0, np.full(3, np.inf), np.full(3, -np.inf)
    for node in gltf.nodes:
        if node.mesh is None:
            continue
        assert node.matrix is None or np.allclose(np.array(node.matrix).reshape(4, 4), np.eye(4))
        assert not node.translation or np.allclose(node.translation, 0.0)
        for prim in gltf.meshes[node.mesh].primitives:
            assert prim.mode in (None, 4)  # triangles
            triangles += gltf.accessors[prim.indices].count // 3
            acc = gltf.accessors[prim.attributes.POSITION]
            lo, hi = np.minimum(lo, acc.min), np.maximum(hi, acc.max)
    scene = trimesh.load(ex.glb)
    assert triangles == sum(len(g.faces) for g in scene.geometry.values())
    b, t = spec.bounds, spec.wall_thickness_m
    np.testing.assert_allclose(lo[[0, 2]], [b.x_min - t / 2, -(b.y_max + t / 2)], atol=1e-5)
    np.testing.assert_allclose(hi[[0, 2]], [b.x_max + t / 2, -(b.y_min - t / 2)], atol=1e-5)
    assert hi[1] == pytest.approx(spec.wall_height_m + (0.05 if spec.ceiling else 0.0), abs=1e-5)  # +y is up


def test_triangle_counts(exported) -> None:
    spec, ex = exported
    scene = trimesh.load(ex.glb)
    for i in range(len(spec.walls)):
        assert len(scene.geometry[scene.graph[f"wall_{i:03d}"][1]].faces) == 12
    total = 12 * (len(spec.walls) + 1 + int(spec.ceiling))
    for obj in spec.all_objects():
        n = len(scene.geometry[scene.graph[object_node_name(obj)][1]].faces)
        assert n == _expected_triangles(obj), obj.label
        total += n
    assert sum(len(g.faces) for g in scene.geometry.values()) == total


def test_walls_and_objects_are_where_the_spec_puts_them(exported) -> None:
    spec, ex = exported
    scene = trimesh.load(ex.glb)
    for i, wall in enumerate(spec.walls):
        v = _engram(_node_vertices(scene, f"wall_{i:03d}"))
        c, h = np.array(wall.center_m), np.array(wall.half_extents_m)
        np.testing.assert_allclose(v.min(axis=0), c - h, atol=1e-5)
        np.testing.assert_allclose(v.max(axis=0), c + h, atol=1e-5)
    assert any(o.urdf for o in spec.all_objects()), "the seed should include a URDF object"
    for obj in spec.all_objects():
        v = _engram(_node_vertices(scene, object_node_name(obj)))
        # back into the object frame: undo the position and the yaw about +z
        c, s = math.cos(obj.yaw_rad), math.sin(obj.yaw_rad)
        d = v - np.array(obj.position_m)
        local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
        tol = 0.01 if obj.urdf else 1e-5  # URDF meshes vs. the box measured in PyBullet
        half = np.array(obj.half_extents_m)
        np.testing.assert_allclose(local.max(axis=0), half, atol=tol, err_msg=obj.label)
        np.testing.assert_allclose(local.min(axis=0), -half, atol=tol, err_msg=obj.label)


def test_habitat_dataset_files_are_consistent(exported) -> None:
    spec, ex = exported
    dataset = json.loads(ex.scene_dataset_config.read_text())
    root = ex.scene_dataset_config.parent
    for group in ("stages", "objects", "scene_instances"):
        for folder in dataset[group]["paths"][".json"]:
            assert (root / folder).is_dir()
    ((key, lexicon_rel),) = dataset["semantic_scene_descriptor_instances"].items()
    lexicon = json.loads((root / lexicon_rel).read_text())
    assert {c["id"]: c["name"] for c in lexicon["classes"]} == spec.labels()

    instance = json.loads(ex.scene_instance.read_text())
    assert instance["semantic_scene_instance"] == key
    stage_cfg = json.loads(ex.stage_config.read_text())
    assert ex.stage_config.name == f"{instance['stage_instance']['template_name']}.stage_config.json"
    assert (ex.stage_config.parent / stage_cfg["render_asset"]).is_file()
    assert stage_cfg["up"] == [0.0, 1.0, 0.0] and stage_cfg["front"] == [0.0, 0.0, -1.0]

    whole = trimesh.load(ex.glb)
    by_id = spec.by_id()
    assert len(instance["object_instances"]) == len(by_id)
    for inst in instance["object_instances"]:
        cfg_path = root / "objects" / f"{inst['template_name']}.object_config.json"
        cfg = json.loads(cfg_path.read_text())
        obj = by_id[cfg["semantic_id"]]
        assert inst["motion_type"] == "STATIC"
        # placing the object asset with the instance's [w, x, y, z] rotation and translation
        # reproduces the object's geometry in the whole-apartment file
        asset = trimesh.load(cfg_path.parent / cfg["render_asset"], force="mesh")
        w, x, y, z = inst["rotation"]
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        placed = asset.vertices @ r.T + np.array(inst["translation"])
        target = _node_vertices(whole, object_node_name(obj))
        assert len(placed) == len(target)
        np.testing.assert_allclose(np.sort(placed, axis=0), np.sort(target, axis=0), atol=1e-5)


def test_sidecar_feeds_the_habitat_source(exported) -> None:
    from engram.sims import habitat as hab

    spec, ex = exported
    side = json.loads(ex.sidecar.read_text())
    assert {int(k): v for k, v in side["labels"].items()} == spec.labels()
    assert side["agent_start"] == list(spec.agent_start)
    assert hab._sidecar(ex.scene_instance)["labels"] == side["labels"]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from engram.sims.embedded.export_glb import main

    assert main(["--seed", "5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "scenes" / "apartment_0005.scene_instance.json").is_file()
    assert (tmp_path / "apartment_0005.glb").is_file()
    assert "apartment_0005.scene_instance.json" in capsys.readouterr().out


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ApartmentSpec"):
        export_apartment("not a spec", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plain file name"):
        export_apartment(generate_apartment(0), tmp_path, name="../up")


def test_export_matches_the_embedded_world_pixel_for_pixel(exported) -> None:
    """Ray-cast the exported .glb (Open3D) from the embedded world's own camera poses:
    depth and instance ids must match what the PyBullet renderer produced."""
    o3d = pytest.importorskip("open3d")
    try:
        from engram.sims.embedded import EmbeddedSim
    except (ImportError, AttributeError) as exc:  # pragma: no cover - the embedded world is a core part
        pytest.skip(f"the embedded world is not importable: {exc}")
    spec, ex = exported
    scene = trimesh.load(ex.glb)
    rs = o3d.t.geometry.RaycastingScene()
    instance_of: dict[int, int] = {}
    for node in scene.graph.nodes_geometry:
        mesh = scene.geometry[scene.graph[node][1]]
        gid = rs.add_triangles(
            o3d.core.Tensor(_node_vertices(scene, node).astype(np.float32)),
            o3d.core.Tensor(mesh.faces.astype(np.uint32)),
        )
        instance_of[int(gid)] = int(node.split("_")[1]) if node.startswith("obj_") else 0

    sim = EmbeddedSim(seed=spec.seed, width=64, height=48)
    try:
        frames = [sim.reset(), sim.step("turn_left"), sim.step("move_forward"), sim.step("turn_right")]
    finally:
        sim.close()
    for frame in frames:
        k, pose = frame.intrinsics, frame.world_from_camera
        u, v = np.meshgrid(np.arange(k.width), np.arange(k.height))
        rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones(u.shape)], axis=-1).reshape(-1, 3)
        dirs_e = rays @ pose.rotation.T  # z-depth 1 per ray, so the hit distance t is the depth
        origin_e = np.broadcast_to(pose.translation, dirs_e.shape)
        to_h = lambda p: np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)  # noqa: E731  engram -> glTF y-up
        hit = rs.cast_rays(o3d.core.Tensor(np.concatenate([to_h(origin_e), to_h(dirs_e)], 1).astype(np.float32)))
        t_hit = hit["t_hit"].numpy().reshape(k.height, k.width)
        gids = hit["geometry_ids"].numpy().reshape(k.height, k.width)
        ids = np.array([instance_of.get(int(g), -1) for g in gids.ravel()]).reshape(gids.shape)
        valid = (frame.depth_m > 0) & np.isfinite(t_hit)
        assert valid.mean() > 0.95
        err = np.abs(t_hit - frame.depth_m)[valid]
        assert np.percentile(err, 95) < 0.01, f"depth differs: p95 {np.percentile(err, 95):.4f} m"
        assert (ids == frame.instances)[valid].mean() > 0.99
