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
    rc = main(["map", str(shared_data / "icl_livingroom1"), "--out", str(out), "max_frames=6", "stride=10", "progress=false"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["frames_mapped"] == 6
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


def test_map_rejects_what_it_cannot_map(tmp_path):
    with pytest.raises(FileNotFoundError):
        from engram.jobs.mapping import open_source

        open_source(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["map", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")]) == 2
