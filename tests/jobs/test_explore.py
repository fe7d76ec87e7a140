"""`engram explore` end to end on a short budget, its report, the rerun log, and the commands around it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engram.cli import main
from engram.config import compose

STATUSES = {"reached", "no view", "not found", "unreachable", "blocked", "budget"}


@pytest.fixture(scope="module")
def explore_run(tmp_path_factory):
    """One short main job (seed 0): 60 exploration steps, one object goal, a saved rerun log."""
    pytest.importorskip("rerun")
    from engram.jobs.explore import run_explore

    out = tmp_path_factory.mktemp("explore")
    cfg = compose(
        "explore",
        [
            f"out={out}",
            "seed=0",
            "progress=false",
            "planner.explore_steps=60",
            "planner.n_goals=2",
            "planner.nav_steps=40",
            f"rerun_save={out / 'run.rrd'}",
        ],
    )
    result = run_explore(cfg)
    return out, result


def test_explore_writes_the_report_files(explore_run):
    out, result = explore_run
    assert result["out_dir"] == str(out)
    for name in ("report.html", "topdown.png", "metrics.json", "episodes.json", "memory", "snapshots", "run.rrd"):
        assert (out / name).exists(), name
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(result["metrics"]))
    assert json.loads((out / "episodes.json").read_text()) == result["episodes"]
    import cv2

    top = cv2.imread(str(out / "topdown.png"))
    assert top is not None and top.shape[0] > 50 and top.shape[1] > 50
    assert len(list((out / "snapshots").glob("*.jpg"))) >= 1


def test_explore_metrics_hold_up(explore_run):
    out, result = explore_run
    m = result["metrics"]
    assert m["explore_steps"] == 60 and m["explore_stop_reason"] == "budget"
    assert m["frames"] >= 61  # the first view and one frame per step, navigation included
    assert m["coverage"] > 0.25  # 60 steps in seed 0 see a good part of the first rooms
    assert m["objects"] >= 5 and m["occupied_voxels"] > 1000
    eps = result["episodes"]
    assert len(eps) == m["objectnav_episodes"] == 2
    for ep in eps:
        assert ep["status"] in STATUSES, ep
        assert isinstance(ep["success"], bool) and ep["steps"] <= 40
        assert ep["distance_to_nearest_m"] >= 0
        # success is scored from ground truth: within 1 m and in view
        assert not ep["success"] or ep["distance_to_nearest_m"] <= 1.0
    assert m["objectnav_success"] == pytest.approx(np.mean([e["success"] for e in eps]), abs=1e-3)


def test_saved_memory_reads_back_and_engram_info_prints_it(explore_run, capsys):
    from engram.memory.scene import SceneMemory

    out, result = explore_run
    mem = SceneMemory.load(str(out / "memory"))
    stats = mem.stats()
    assert stats["objects"] == result["metrics"]["objects"]
    assert stats["occupied_voxels"] == result["metrics"]["occupied_voxels"]
    capsys.readouterr()
    assert main(["info", str(out / "memory")]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    rooms = printed.pop("rooms")
    assert printed == {k: str(v) for k, v in stats.items()}
    # then the rooms, each named (or "room N") with its floor area and how many objects stand in it
    # (60 steps and two short goals map two or three rooms of seed 0, depending on the goals' paths)
    assert rooms.count(" m², ") == len(mem.rooms().rooms) >= 2
    assert all(f"{r.name} ({r.area_m2:.1f} m², {len(r.object_ids)} objects)" in rooms for r in mem.rooms().rooms)
    assert main(["info", str(out / "missing")]) == 2


def test_rerun_log_holds_the_map_objects_trajectory_frontiers_and_plan(explore_run):
    from engram.viz import RerunLogger

    out, result = explore_run
    ents = RerunLogger.read_entities(out / "run.rrd")
    for path, component in [
        ("world/map/occupied", "Points3D:positions"),
        ("world/objects", "Boxes3D:labels"),
        ("world/trajectory", "LineStrips3D:strips"),
        ("world/frontiers", "Points3D:positions"),
        ("world/plan", "LineStrips3D:strips"),
        ("world/camera", "Transform3D:translation"),
        ("world/camera/image", "Image:buffer"),
    ]:
        assert path in ents, (path, sorted(ents))
        assert component in ents[path]["components"], (path, ents[path]["components"])
    # the map is re-logged as it grows (not once): several rows, the last one the final map
    assert ents["world/map/occupied"]["rows"] >= 5
    last = ents["world/map/occupied"]["batches"][-1].column("Points3D:positions")[-1]
    assert len(last) == result["metrics"]["occupied_voxels"]
    labels = ents["world/objects"]["batches"][-1].column("Boxes3D:labels")[-1].as_py()
    assert len(labels) == result["metrics"]["objects"]


def test_rerun_logging_needs_a_destination():
    pytest.importorskip("rerun")
    from engram.memory.scene import SceneMemory
    from engram.viz import RerunLogger

    with pytest.raises(ValueError, match="nowhere"):
        RerunLogger(SceneMemory(timeline=False), spawn=False, save_path=None)


@pytest.mark.parametrize(
    ("sim", "command"),
    [
        ("icl", "engram map"),
        ("tum", "engram map"),
        ("rosbag", "engram map"),
        ("video", "engram qa build"),
    ],
)
def test_explore_refuses_a_recording_and_names_the_command(sim, command, tmp_path, capsys):
    assert main(["explore", f"sim={sim}", f"out={tmp_path}", "progress=false"]) == 2
    err = capsys.readouterr().err
    assert command in err and "explore" in err
    assert not (tmp_path / "report.html").exists()


def test_write_report_escapes_and_lists_everything(tmp_path, wall_frame):
    from engram.memory.scene import SceneMemory
    from engram.report import write_report

    mem = SceneMemory(voxel_size_m=0.1, timeline=False)
    mem.integrate(wall_frame)
    mem.finalize()
    episodes = [{"goal": "<mug>", "status": "reached", "success": True, "steps": 3, "message": "a & b"}]
    metrics = {"coverage": 0.123456, "nested": {"skip": 1}, "name": "<b>x</b>"}
    page = write_report(
        tmp_path / "r",
        mem,
        metrics=metrics,
        trajectory_xy=[(0, 0), (0.5, 0.0), (0.5, 0.5)],
        goals_xy=[(1.0, 0.0)],
        episodes=episodes,
        title="t <1>",
    )
    html = page.read_text()
    assert page == tmp_path / "r" / "report.html"
    assert "&lt;mug&gt;" in html and "a &amp; b" in html and "&lt;b&gt;x&lt;/b&gt;" in html and "t &lt;1&gt;" in html
    assert "<mug>" not in html and "0.1235" in html and "skip" not in html
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == metrics
    assert (tmp_path / "r" / "topdown.png").stat().st_size > 0


def test_sim_record_writes_a_bag_that_maps(tmp_path, capsys):
    pytest.importorskip("mcap")
    from engram.sims.ros import RosBagSource

    bag = tmp_path / "walk.mcap"
    assert main(["sim", "record", "--bag", str(bag), "--steps", "6", "--seed", "1"]) == 0
    assert str(bag) in capsys.readouterr().out
    frames = list(RosBagSource(bag))
    assert len(frames) == 7  # the reset view and one frame per step
    assert all(f.depth_m is not None and f.world_from_camera is not None for f in frames)
    # the bag config drives `engram map`
    out = tmp_path / "mapped"
    assert main(["map", "--out", str(out), "sim=rosbag", f"sim.path={bag}", "tsdf=false", "progress=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == summary["frames_mapped"] == 7 and summary["occupied_voxels"] > 100


def test_every_sim_config_names_the_command_that_reads_it():
    """A new source config needs a command (and a test that drives it through that command)."""
    from pathlib import Path

    import engram

    driven_by = {
        "embedded": "engram explore",  # explore_run above
        "habitat": "engram explore",  # tests/sims/test_habitat.py (needs habitat-sim)
        "icl": "engram map",  # tests/jobs/test_mapping.py
        "tum": "engram map",  # tests/jobs/test_mapping.py
        "rosbag": "engram map",  # test_sim_record_writes_a_bag_that_maps
        "video": "engram qa build",  # map and explore refuse it, naming this
    }
    folder = Path(engram.__file__).parent / "configs" / "sim"
    assert {p.stem for p in folder.glob("*.yaml")} == set(driven_by)
    for name, command in driven_by.items():
        assert command in (folder / f"{name}.yaml").read_text(), name
