"""`engram map`: a real RGB-D sample through memory into files other tools open."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engram.cli import main


def _read_ply_vertex_count(path):
    with open(path, "rb") as f:
        for line in f:
            line = line.decode("ascii", "replace").strip()
            if line.startswith("element vertex"):
                return int(line.split()[-1])
            if line == "end_header":
                break
    raise AssertionError(f"{path} has no vertex element")


def test_map_icl_sample_writes_exports(shared_data, tmp_path):
    out = tmp_path / "icl"
    rc = main(
        ["map", str(shared_data / "icl_livingroom1"), "--out", str(out), "max_frames=6", "stride=10", "progress=false"]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["frames_mapped"] == 6
    # the rooms the memory segmented, each named or "room N", on the floor the map covers
    assert summary["rooms"] and all(r["name"] and 0 < r["area_m2"] < 60 for r in summary["rooms"])
    n_occ = _read_ply_vertex_count(out / "occupancy.ply")
    assert n_occ == summary["occupied_voxels"] > 1000
    assert _read_ply_vertex_count(out / "map.ply") > 1000
    assert (out / "mesh.ply").exists() and (out / "top_down.png").exists()
    traj = np.loadtxt(out / "trajectory.txt")
    assert traj.shape == (6, 8)  # TUM lines: t x y z qx qy qz qw
    # the saved memory loads and knows the same map
    from engram.memory.scene import SceneMemory

    mem = SceneMemory.load(str(out / "memory"))
    assert len(mem.octree.occupied_centers()) == summary["occupied_voxels"]
    # the floor comes from the depth images (the sequence's world has its origin at the first
    # camera, 0.9 m above it; the hand-made boxes put it at -0.43), and the places lie on it
    assert summary["floor_from"] == "estimated from the depth images"
    assert summary["floor_z_m"] == pytest.approx(-0.43, abs=0.05)
    assert mem.floor_z_m == pytest.approx(summary["floor_z_m"], abs=1e-3)
    assert all(mem.places.position(n)[2] == pytest.approx(mem.floor_z_m) for n in mem.places.graph.nodes)


def test_map_floor_given_or_refused(shared_data, tmp_path, capsys):
    args = ["map", str(shared_data / "icl_livingroom1"), "max_frames=3", "stride=20", "progress=false", "tsdf=false"]
    assert main([*args, "--out", str(tmp_path / "a"), "floor_z_m=-0.5"]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["floor_z_m"] == -0.5 and summary["floor_from"] == "given"
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "b"), "floor_z_m=low"]) == 2  # bad input: one line, exit 2
    assert "floor_z_m must be 'auto' or a number of metres, got 'low'" in capsys.readouterr().err


def test_map_rejects_what_it_cannot_map(tmp_path):
    with pytest.raises(FileNotFoundError):
        from engram.jobs.mapping import open_source

        open_source(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["map", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")]) == 2


FAST = ["progress=false", "tsdf=false", "memory.voxel_size_m=0.1", "memory.depth_stride=8", "memory.object_stride=8"]


def _icl_subset(src, dst, n_frames: int, n_poses: int):
    """The first frames of the ICL sample (linked), with a trajectory of ``n_poses`` poses."""
    import os

    for sub in ("color", "depth"):
        (dst / sub).mkdir(parents=True)
        for name in sorted(os.listdir(src / sub))[:n_frames]:
            os.symlink(src / sub / name, dst / sub / name)
    lines = (src / "trajectory.log").read_text().splitlines()
    (dst / "trajectory.log").write_text("\n".join(lines[: 5 * n_poses]) + "\n")
    return dst


def test_map_refuses_frames_without_poses_unless_tracked(shared_data, tmp_path):
    src = _icl_subset(shared_data / "icl_livingroom1", tmp_path / "icl", 4, 2)
    args = ["map", str(src), "--out", str(tmp_path / "o"), *FAST]
    assert main(args) == 2  # 2 poses for 4 frames: an error, not a map of 2 frames
    assert not (tmp_path / "o" / "summary.json").exists()
    assert main([*args, "estimate_poses=true"]) == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["frames"] == 4


def test_map_paths_with_hydra_syntax(shared_data, tmp_path):
    src = _icl_subset(shared_data / "icl_livingroom1", tmp_path / "we,ird='x=[1]", 3, 3)
    out = tmp_path / "out,a=b 'c'"
    assert main(["map", str(src), "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == str(src) and summary["frames_mapped"] == 3 and summary["complete"]


def test_map_of_a_cut_bag_keeps_the_frames_before_the_cut(tmp_path, capsys, box_renderer):
    pytest.importorskip("rosbags")
    import math

    from engram.sims.ros import record_bag
    from engram.types import CameraIntrinsics, Frame, Pose

    k = CameraIntrinsics(fx=120.0, fy=120.0, cx=79.5, cy=59.5, width=160, height=120)
    r0 = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(40):
        body = Pose.from_xyz_yaw(0.0, 0.0, 0.0, math.radians(-40 + 2 * i))
        pose = Pose.from_rt(body.rotation @ r0, [0.0, 0.0, 1.2])
        d, _ = box_renderer([(1, (2.0, -1.0, 0.0), (2.5, 1.0, 0.8))], pose, k)
        rgb = rng.integers(0, 255, (k.height, k.width, 3), dtype=np.uint8)  # noise: chunks stay big
        frames.append(Frame(i, 100.0 + 0.1 * i, rgb, d, k, pose))
    data = record_bag(frames, tmp_path / "run.mcap").read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    out = tmp_path / "o"
    rc = main(["map", str(cut), "--out", str(out), "progress=false", "tsdf=false"])
    assert rc == 3, capsys.readouterr().err
    assert "STOPPED EARLY" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and "truncated" in summary["stopped_early"]
    assert 1 <= summary["frames"] < 40 and summary["frames_mapped"] == summary["frames"]
    assert summary["floor_z_m"] == 0.0 and summary["floor_from"] == "z = 0, the source's own"  # a robot's odometry
    from engram.memory.scene import SceneMemory

    assert SceneMemory.load(str(out / "memory")).frames_seen == summary["frames"]


def test_map_refuses_a_video_and_names_qa_build(tmp_path, capsys):
    import cv2

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (32, 24))
    for _ in range(3):
        w.write(np.zeros((24, 32, 3), np.uint8))
    w.release()
    assert main(["map", str(video), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no depth" in err and "engram qa build" in err
    # the sim=video config is refused the same way
    assert main(["map", "--out", str(tmp_path / "o"), "sim=video", f"sim.path={video}"]) == 2
    assert "engram qa build" in capsys.readouterr().err
    # and the help says what is accepted
    from engram.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["map"].format_help()
    assert "video" in text and "qa build" in text and "TUM" in text and "bag" in text


def test_map_needs_a_source_and_refuses_an_interactive_world(tmp_path, capsys):
    assert main(["map", "--out", str(tmp_path / "o")]) == 2
    assert "nothing to map" in capsys.readouterr().err
    assert main(["map", "--out", str(tmp_path / "o"), "sim=embedded"]) == 2
    assert "engram explore" in capsys.readouterr().err


def test_map_with_the_icl_config(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAM_DATA", str(shared_data))
    out = tmp_path / "icl"
    assert (
        main(["map", "--out", str(out), "sim=icl", "sim.max_frames=4", "sim.stride=20", "tsdf=false", "progress=false"])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == summary["frames_mapped"] == 4 and summary["occupied_voxels"] > 500
    assert "icl_livingroom1" in summary["source"]


def test_map_with_the_tum_config(shared_data, tmp_path):
    """A TUM folder written from the ICL frames (depth x 5000, poses as TUM lines) maps through sim=tum."""
    import cv2

    from engram.sims.rgbd import RgbdDataset, write_tum_trajectory

    root = tmp_path / "tum"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_lines, depth_lines, times, poses = [], [], [], []
    for i, f in enumerate(RgbdDataset(shared_data / "icl_livingroom1", stride=20, max_frames=3)):
        t = 1.0 + i / 30.0
        cv2.imwrite(str(root / "rgb" / f"{t:.6f}.png"), f.rgb[:, :, ::-1])
        cv2.imwrite(str(root / "depth" / f"{t:.6f}.png"), np.round(f.depth_m * 5000).astype(np.uint16))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t:.6f} depth/{t:.6f}.png")
        times.append(t)
        poses.append(f.world_from_camera.matrix)
    k = f.intrinsics
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    write_tum_trajectory(root / "groundtruth.txt", np.array(times), np.stack(poses))
    out = tmp_path / "out"
    assert (
        main(
            [
                "map",
                "--out",
                str(out),
                "sim=tum",
                f"sim.path={root}",
                f"sim.intrinsics=[{k.fx},{k.fy},{k.cx},{k.cy}]",
                "tsdf=false",
                "progress=false",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == summary["frames_mapped"] == 3 and summary["occupied_voxels"] > 500


def test_every_perception_encoder_config_reaches_the_memory_through_engram_map(shared_data, tmp_path, capsys):
    """configs/perception/*.yaml choose the memory's encoders: `engram map ... perception@memory=NAME`."""
    from pathlib import Path

    import engram
    from engram.memory.scene import SceneMemory

    folder = Path(engram.__file__).parent / "configs" / "perception"
    assert {p.stem for p in folder.glob("*.yaml")} == {"default", "numpy_only", "open_clip"}
    args = ["map", str(shared_data / "icl_livingroom1"), "max_frames=2", "stride=20", "tsdf=false", "progress=false"]
    expect = {"numpy_only": ("color_histogram", "hash"), "default": ("efficientnet_lite0", "minilm")}
    for name, (image, text) in expect.items():
        out = tmp_path / name
        assert main([*args, "--out", str(out), f"perception@memory={name}"]) == 0, name
        mem = SceneMemory.load(str(out / "memory"))
        assert (mem.config["image_encoder"], mem.config["text_encoder"]) == (image, text)
        # the config's settings reach the encoder, not only its name
        assert mem.image_encoder is not None and mem.image_encoder.name == image
        if name == "numpy_only":
            assert mem.text_encoder.encode(["mug"]).shape == (1, 512)  # dim: 512 from the config
        else:
            assert mem.image_encoder.input_size_px == 224
    # the joint model needs the user's checkpoint: one clear error naming the key, nothing written
    capsys.readouterr()
    out = tmp_path / "clip"
    assert main([*args, "--out", str(out), "perception@memory=open_clip"]) == 2
    assert "checkpoint_path" in capsys.readouterr().err
    assert not (out / "memory").exists()
