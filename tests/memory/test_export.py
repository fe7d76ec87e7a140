"""Exports re-load in Open3D (and trimesh) with the same content; the TSDF surface lies on known geometry."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.memory.export import (
    MeshArrays,
    ObjectCloud,
    TsdfSurface,
    export_folder,
    top_down_image,
    write_mesh_ply,
    write_object_clouds,
    write_point_cloud_ply,
    write_trajectory_ply,
    write_trajectory_tum,
)
from engram.sims.rgbd import read_tum_trajectory
from engram.types import Frame, Pose

o3d = pytest.importorskip("open3d")


def _cloud(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-3, 3, size=(n, 3)), rng.integers(0, 256, size=(n, 3), dtype=np.uint8)


def test_point_cloud_round_trip(tmp_path: Path) -> None:
    pts, cols = _cloud()
    normals = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    path = write_point_cloud_ply(tmp_path / "a" / "cloud.ply", pts, cols, normals)
    back = o3d.io.read_point_cloud(str(path))
    assert len(back.points) == len(pts)
    np.testing.assert_allclose(np.asarray(back.points), pts, atol=1e-5)  # float32 on disk
    np.testing.assert_array_equal(np.round(np.asarray(back.colors) * 255).astype(np.uint8), cols)
    np.testing.assert_allclose(np.asarray(back.normals), normals, atol=1e-6)
    # float colours in [0, 1] are accepted and scaled
    path2 = write_point_cloud_ply(tmp_path / "f.ply", pts, cols / 255.0)
    np.testing.assert_array_equal(
        np.round(np.asarray(o3d.io.read_point_cloud(str(path2)).colors) * 255).astype(np.uint8), cols
    )


def test_mesh_round_trip_in_two_readers(tmp_path: Path) -> None:
    box = o3d.geometry.TriangleMesh.create_box(1.0, 2.0, 0.5)
    verts = np.asarray(box.vertices)
    tris = np.asarray(box.triangles)
    colors = (np.arange(len(verts) * 3).reshape(-1, 3) * 10 % 256).astype(np.uint8)
    path = write_mesh_ply(tmp_path / "box.ply", MeshArrays(verts, tris, colors))
    back = o3d.io.read_triangle_mesh(str(path))
    np.testing.assert_allclose(np.asarray(back.vertices), verts, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(back.triangles), tris)
    np.testing.assert_array_equal(np.round(np.asarray(back.vertex_colors) * 255).astype(np.uint8), colors)
    trimesh = pytest.importorskip("trimesh")
    tm = trimesh.load(str(path), process=False)
    assert tm.is_watertight and tm.volume == pytest.approx(1.0)  # 1 x 2 x 0.5
    np.testing.assert_array_equal(np.asarray(tm.faces), tris)


def test_trajectory_exports(tmp_path: Path) -> None:
    poses = [Pose.from_xyz_yaw(0.1 * i, 0.05 * i, 1.2, 0.2 * i) for i in range(12)]
    ls = o3d.io.read_line_set(str(write_trajectory_ply(tmp_path / "traj.ply", poses)))
    np.testing.assert_allclose(np.asarray(ls.points), [p.translation for p in poses], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(ls.lines), np.stack([np.arange(11), np.arange(1, 12)], axis=1))
    stamps = 100.0 + 0.1 * np.arange(12)
    t, back = read_tum_trajectory(write_trajectory_tum(tmp_path / "traj.txt", poses, stamps))
    np.testing.assert_allclose(t, stamps)
    np.testing.assert_allclose(back, np.stack([p.matrix for p in poses]), atol=1e-5)


def test_object_clouds_and_labels(tmp_path: Path) -> None:
    pts, cols = _cloud(300)
    objects = [
        ObjectCloud(3, "Red Mug", pts[:100], cols[:100], extra={"score": 0.9}),
        ObjectCloud(12, "sofa/couch", pts[100:], None),
    ]
    written = write_object_clouds(tmp_path / "objects", objects)
    assert written[3].name == "object_0003_red_mug.ply"
    assert written[12].name == "object_0012_sofa_couch.ply"
    index = json.loads((tmp_path / "objects" / "labels.json").read_text())["objects"]
    assert [(e["id"], e["label"], e["n_points"]) for e in index] == [(3, "Red Mug", 100), (12, "sofa/couch", 200)]
    assert index[0]["score"] == 0.9
    np.testing.assert_allclose(index[1]["centroid_m"], pts[100:].mean(axis=0), atol=1e-4)
    mug = o3d.io.read_point_cloud(str(written[3]))
    np.testing.assert_array_equal(np.round(np.asarray(mug.colors) * 255).astype(np.uint8), cols[:100])
    sofa = np.round(np.asarray(o3d.io.read_point_cloud(str(written[12])).colors) * 255)
    assert len(sofa) == 200 and len(np.unique(sofa, axis=0)) == 1  # one colour per object when none is given
    with pytest.raises(ValueError, match="unique"):
        write_object_clouds(tmp_path / "dup", [objects[0], objects[0]])


def test_top_down_shows_the_highest_surface() -> None:
    # a 2 m x 1 m blue floor at z = 0 and a red 0.5 m square table top at z = 0.8 over x, y in [0.5, 1.0)
    xs, ys = np.meshgrid(np.arange(0, 2, 0.02) + 0.01, np.arange(0, 1, 0.02) + 0.01)
    floor = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    tx, ty = np.meshgrid(np.arange(0.5, 1.0, 0.02) + 0.01, np.arange(0.5, 1.0, 0.02) + 0.01)
    table = np.stack([tx.ravel(), ty.ravel(), np.full(tx.size, 0.8)], axis=1)
    ceiling = floor + [0.0, 0.0, 2.5]
    pts = np.concatenate([table, floor, ceiling])  # table first: the writer must sort by height itself
    cols = np.concatenate(
        [
            np.tile([255, 0, 0], (len(table), 1)),
            np.tile([0, 0, 255], (len(floor), 1)),
            np.tile([0, 255, 0], (len(ceiling), 1)),
        ]
    ).astype(np.uint8)
    img, origin = top_down_image(pts, cols, resolution_m=0.1, max_z_m=2.0)
    assert img.shape == (10, 20, 3)
    np.testing.assert_allclose(origin, [0.05, 0.95])
    red = np.all(img == [255, 0, 0], axis=2)
    blue = np.all(img == [0, 0, 255], axis=2)
    # rows count down from y = 1: the table's y in [0.5, 1.0) is rows 0..4, x in [0.5, 1.0) is columns 5..9
    expected = np.zeros((10, 20), bool)
    expected[0:5, 5:10] = True
    np.testing.assert_array_equal(red, expected)
    np.testing.assert_array_equal(blue, ~expected)
    # without the cut the ceiling hides everything
    img_all, _ = top_down_image(pts, cols, resolution_m=0.1)
    assert np.all(img_all == [0, 255, 0])


def test_export_folder(tmp_path: Path) -> None:
    pts, cols = _cloud(200)
    poses = [Pose.from_xyz_yaw(0.2 * i, 0.0, 1.0, 0.0) for i in range(5)]
    box = o3d.geometry.TriangleMesh.create_box()
    mesh = MeshArrays(np.asarray(box.vertices), np.asarray(box.triangles))
    written = export_folder(
        tmp_path / "out",
        points=pts,
        colors=cols,
        mesh=mesh,
        objects=[ObjectCloud(1, "chair", pts[:10])],
        trajectory=poses,
    )
    assert set(written) == {"map", "mesh", "objects", "trajectory_ply", "trajectory_tum", "top_down"}
    assert len(o3d.io.read_point_cloud(str(written["map"])).points) == 200
    assert cv2.imread(str(written["top_down"])) is not None
    assert (tmp_path / "out" / "objects" / "object_0001_chair.ply").exists()


def test_bad_input_is_rejected(tmp_path: Path) -> None:
    pts, cols = _cloud(10)
    bad = pts.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_point_cloud_ply(tmp_path / "x.ply", bad)
    with pytest.raises(ValueError, match="colors"):
        write_point_cloud_ply(tmp_path / "x.ply", pts, cols[:5])
    with pytest.raises(ValueError, match="outside"):
        write_mesh_ply(tmp_path / "m.ply", MeshArrays(pts, np.array([[0, 1, 10]])))
    assert not (tmp_path / "x.ply").exists() and not (tmp_path / "m.ply").exists()


def test_tsdf_surface_of_a_wall(wall_frame: Frame) -> None:
    """The wall fixture moved to 2.013 m: a camera at height 1 m looking along +x at a flat wall."""
    import dataclasses

    frame = dataclasses.replace(wall_frame, depth_m=np.full_like(wall_frame.depth_m, 2.013))
    surf = TsdfSurface(0.02)
    assert surf.integrate(frame)
    mesh = surf.extract_mesh()
    assert len(mesh.triangles) > 100
    np.testing.assert_allclose(mesh.vertices[:, 0], 2.013, atol=0.005)
    pts, colors = surf.extract_point_cloud()
    assert len(pts) > 100
    np.testing.assert_allclose(pts[:, 0], 2.013, atol=0.005)
    np.testing.assert_allclose(colors, 128, atol=1)
    # the wall spans the view: 80 px at f = 80 covers 2 m at 2 m distance, y in about [-1, 1]
    assert pts[:, 1].min() < -0.8 and pts[:, 1].max() > 0.8


def test_tsdf_rejects_frames_without_pose(wall_frame: Frame) -> None:
    import dataclasses

    surf = TsdfSurface(0.05, with_color=False)
    with pytest.raises(ValueError, match="world_from_camera"):
        surf.integrate(dataclasses.replace(wall_frame, world_from_camera=None))
    empty = dataclasses.replace(wall_frame, depth_m=np.zeros_like(wall_frame.depth_m))
    assert not surf.integrate(empty)
    assert surf.n_integrated == 0 and len(surf.extract_point_cloud()[0]) == 0
    with pytest.raises(ValueError, match="voxel_size_m"):
        TsdfSurface(0.0)


def test_tsdf_mesh_of_the_icl_room_lies_on_the_depth(shared_data: Path) -> None:
    """Fused from 5 posed ICL-NUIM frames, the mesh lies on the backprojected depth of another frame."""
    from engram.perception.geometry import frame_points_world
    from engram.sims.rgbd import RgbdDataset

    ds = RgbdDataset(shared_data / "icl_livingroom1", stride=20, max_frames=6)
    frames = list(ds)
    surf = TsdfSurface(0.02, depth_max_m=4.0)
    for f in frames[:5]:
        assert surf.integrate(f)
    mesh = surf.extract_mesh()
    assert len(mesh.triangles) > 10_000 and mesh.vertex_colors is not None
    held_out = frame_points_world(frames[5], stride=8, max_depth_m=4.0)
    # point-to-surface distance by Open3D's ray-casting scene over the exported triangles
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(mesh.vertices.astype(np.float32), mesh.triangles.astype(np.uint32))
    dist = scene.compute_distance(held_out.astype(np.float32)).numpy()
    seen = dist < 0.10  # the held-out frame also sees parts the five did not
    assert seen.mean() > 0.6
    assert np.median(dist[seen]) < 0.0075  # 4 mm measured; voxels are 2 cm
