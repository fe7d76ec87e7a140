"""The live ROS 1 node against a real roscore: a recorded bag is replayed on ROS topics and the
memory the node builds must equal the memory built from the same frames directly.

Needs a ROS 1 installation (Debian: ros-core python3-rospy python3-sensor-msgs
python3-tf2-msgs python3-nav-msgs python3-visualization-msgs); CI installs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from engram import ros_common, ros_node  # noqa: E402
from engram.sims import ros  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _room_frames(n: int):
    spec = importlib.util.spec_from_file_location("_ros_room", REPO / "tests" / "sims" / "test_ros.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.room_frames(n)


def _memory(voxel_size_m: float = 0.05):
    from engram.memory.scene import SceneMemory

    return SceneMemory(detector="oracle", voxel_size_m=voxel_size_m)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ros_ready() -> str | None:
    if shutil.which("roscore") is None:
        return "roscore not found (apt-get install ros-core)"
    try:
        ros_node.import_rospy()
        ros_node._message_class("visualization_msgs/MarkerArray")
        ros_node._message_class("nav_msgs/Odometry")
    except (ImportError, ros.RosBagError) as exc:
        return str(exc)
    try:
        _memory()
    except ImportError as exc:
        return f"SceneMemory is not available: {exc}"
    return None


def test_query_parsing_and_hit_json() -> None:
    assert ros_common.parse_query(" red mug ") == {"text": "red mug"}
    assert ros_common.parse_query('{"text": "mug", "k": 2}') == {"text": "mug", "k": 2}
    with pytest.raises(ValueError, match="unknown query fields"):
        ros_common.parse_query('{"txt": "mug"}')
    with pytest.raises(ValueError, match="empty"):
        ros_common.parse_query("  ")

    # oversize or malformed queries are refused with a message (the node replies with it)
    bad = [
        ("x" * (ros_common.MAX_QUERY_CHARS + 1), "characters"),
        ('{"text": 5}', "'text'"),
        ('{"text": "mug", "k": 10000}', "'k'"),
        ('{"text": "mug", "k": true}', "'k'"),
        ('{"near": [1, "a"]}', "'near'"),
        ('{"near": [1, 2, 3, 4]}', "'near'"),
        ('{"text": "mug", "since_s": "yesterday"}', "since_s"),
        ('{"text": "mug", "at_s": NaN}', "at_s"),
        ("{" + '"a":' * 500, "JSON"),
        (b"mug", "text"),
    ]
    for text, match in bad:
        with pytest.raises(ValueError, match=match):
            ros_common.parse_query(text)

    class Hit:
        kind, id, score, label = "object", np.int64(3), np.float32(0.5), "mug"
        position, time_span_s, frame_indices = np.array([1.0, 2.0, 0.5]), (1.0, 2.0), [4, 5]

    out = ros_common.hits_to_json([Hit()])
    assert json.loads(json.dumps(out)) == [
        {
            "kind": "object",
            "id": 3,
            "score": 0.5,
            "label": "mug",
            "position": [1.0, 2.0, 0.5],
            "time_span_s": [1.0, 2.0],
            "frame_indices": [4, 5],
        }
    ]


def test_import_rospy_names_the_apt_packages(tmp_path: Path) -> None:
    """Without ROS, the error says which Debian packages to install (a fresh interpreter, no rospy)."""
    env = dict(os.environ, ENGRAM_ROS_DIST_PACKAGES=str(tmp_path), PYTHONPATH=str(REPO))
    code = (
        "import importlib.util, sys\n"
        "if importlib.util.find_spec('rospy'): print('rospy importable'); sys.exit(0)\n"
        "from engram.ros_node import import_rospy\n"
        "try:\n    import_rospy()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if out.stdout.startswith("rospy importable"):
        pytest.skip("rospy is importable without the Debian path")
    assert "apt-get install ros-core python3-rospy" in out.stdout, out.stdout + out.stderr


class _Ros:
    """A roscore on a free port, the node, and helpers to run ROS tools, all torn down after the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.env = dict(os.environ)
        self.env.update(
            ROS_MASTER_URI=f"http://127.0.0.1:{self.port}",
            ROS_HOSTNAME="127.0.0.1",
            ROS_HOME=str(tmp_path / "ros_home"),
            ROS_LOG_DIR=str(tmp_path / "ros_log"),
            PYTHONPATH=os.pathsep.join([str(REPO), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            PYTHONUNBUFFERED="1",
        )
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen] = []
        self.core = self._spawn(["roscore", "-p", str(self.port)], "roscore.log")
        master = xmlrpc.client.ServerProxy(self.env["ROS_MASTER_URI"])
        deadline = time.monotonic() + 30
        while True:
            try:
                master.getSystemState("/test")
                break
            except (OSError, xmlrpc.client.Error):
                if time.monotonic() > deadline or self.core.poll() is not None:
                    raise RuntimeError(f"roscore did not start: {self.log('roscore.log')}") from None
                time.sleep(0.2)
        self.master = master

    def _spawn(self, cmd: list[str], log: str) -> subprocess.Popen:
        out = open(self.tmp / log, "w")
        p = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text()[-3000:] if path.exists() else ""

    def node(self, *args: str) -> subprocess.Popen:
        return self._spawn([sys.executable, "-m", "engram.ros_node", "run", *args], "node.log")

    def tool(self, *args: str, timeout_s: float = 60) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "engram.ros_node", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def subscribed(self, topic: str) -> bool:
        _, _, (_, subscribers, _) = self.master.getSystemState("/test")
        return any(t == topic for t, _ in subscribers)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGINT)
                    p.wait(10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(5)


@pytest.mark.ros
@pytest.mark.timeout(600)  # a cold numba cache compiles the memory kernels in both processes
@pytest.mark.parametrize("bag_name", ["run.mcap"])  # a ROS 2 bag republished on ROS 1: the conversion path
def test_live_node_builds_the_same_memory_as_direct_integration(tmp_path: Path, bag_name: str) -> None:
    reason = _ros_ready()
    if reason:
        pytest.skip(reason)
    frames = _room_frames(8)
    bag = ros.record_bag(frames, tmp_path / bag_name)
    dump = tmp_path / "dump"
    rosenv = _Ros(tmp_path)
    try:
        node = rosenv.node("--sim-truth", "--dump", str(dump), "--publish-period-s", "0.2", "--voxel-size-m", "0.05")
        direct = _memory(0.05)  # the reference, built while the node starts
        for frame in frames:
            direct.integrate(frame)
        deadline = time.monotonic() + 60
        while not rosenv.subscribed(ros.TOPICS["depth"]):
            assert node.poll() is None, rosenv.log("node.log")
            assert time.monotonic() < deadline, "the node did not subscribe: " + rosenv.log("node.log")
            time.sleep(0.2)
        played = rosenv.tool("play", str(bag), "--rate", "2.0")
        assert played["published"] > 5 * len(frames)
        deadline = time.monotonic() + 60
        summary: dict = {}
        while summary.get("frames_integrated", 0) < len(frames):
            assert node.poll() is None, rosenv.log("node.log")
            assert time.monotonic() < deadline, f"node integrated {summary}: " + rosenv.log("node.log")
            time.sleep(0.2)
            if (dump / "summary.json").exists():
                summary = json.loads((dump / "summary.json").read_text())
        answer = rosenv.tool("query", '{"text": "crate", "k": 3}')
        assert answer["frames_integrated"] == len(frames)
        assert answer["occupied_voxels"] > 0
        assert any(h["label"] == "crate" and h["kind"] == "object" for h in answer["hits"]), answer
        os.killpg(node.pid, signal.SIGINT)
        node.wait(30)
    finally:
        rosenv.close()
    assert summary["errors"] == [] and summary["world_frame"] == "map"

    got = np.load(dump / "occupied.npy")
    want = np.asarray(direct.octree.occupied_centers())
    assert len(want) > 100
    key = lambda a: np.round(a / 0.025).astype(np.int64)  # noqa: E731  (centres sit on a 0.05 m grid)
    assert sorted(map(tuple, key(got))) == sorted(map(tuple, key(want)))
    objects = json.loads((dump / "objects.json").read_text())
    want_objects = sorted(direct.objects.objects.items())
    assert [o["label"] for o in objects] == [o.label for _, o in want_objects]
    for got_o, (_, want_o) in zip(objects, want_objects):
        np.testing.assert_allclose(got_o["centroid"], want_o.centroid, atol=1e-9)
        np.testing.assert_allclose(got_o["box_min"], want_o.box_min, atol=1e-9)


def test_the_node_reads_simulator_truth_only_with_the_oracle():
    import argparse

    from engram.ros_node import _detector_of

    def args(**kw):
        return argparse.Namespace(**{"detector": None, "sim_truth": False, **kw})

    assert _detector_of(args()) == "rgbd"
    assert _detector_of(args(sim_truth=True)) == "oracle"
    assert _detector_of(args(sim_truth=True, detector="rgbd")) == "rgbd"
    with pytest.raises(SystemExit, match="--sim-truth"):
        _detector_of(args(detector="oracle"))
