"""The live ROS 2 node over DDS, end to end on loopback: a publisher process replays a recorded
embedded-world bag on ROS 2 topics, the node (another process) builds a memory that must equal
the memory built by reading the bag directly, and a query process gets its answer.

No ROS 2 install: both sides are engram over the cyclonedds wheel, on 127.0.0.1 only, on a
domain id of their own. A query flood is tested in process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("cyclonedds")

from engram.sims import ros
from engram.sims.ros import dds

REPO = Path(__file__).resolve().parents[1]
_MEMORY = """
from engram.memory.scene import SceneMemory


def make(voxel_size_m):
    return SceneMemory(voxel_size_m=voxel_size_m, text_encoder="hash", detector="oracle")
"""


def _domain() -> int:
    return 10 + (os.getpid() * 13) % 80


def _memory_or_skip():
    pytest.importorskip("pybullet")
    try:
        from engram.memory.scene import SceneMemory
        from engram.sims.embedded import EmbeddedSim  # noqa: F401

        return SceneMemory
    except ImportError as exc:
        pytest.skip(f"SceneMemory or the embedded world not available: {exc}")


class _Procs:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            PYTHONUNBUFFERED="1",
            CYCLONEDDS_URI=dds.loopback_config(),
        )

    def spawn(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.tmp / log, "w")  # noqa: SIM115 (the child process owns it)
        p = subprocess.Popen(
            [sys.executable, "-m", "engram.ros_node", *args],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text()[-3000:] if path.exists() else ""

    def tool(self, args: list[str], timeout_s: float) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "engram.ros_node", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGINT)
                    p.wait(15)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(5)


@pytest.mark.timeout(900)  # a cold numba cache compiles the memory kernels in two processes; a loaded machine
def test_ros2_node_builds_the_same_memory_as_the_bag_and_answers(tmp_path: Path) -> None:
    SceneMemory = _memory_or_skip()
    bag = ros.record_sim(tmp_path / "walk.mcap", seed=3, steps=10, width=96, height=72)
    factory = tmp_path / "memory_factory.py"
    factory.write_text(_MEMORY)
    dump = tmp_path / "dump"
    dom = str(_domain())
    common = ["--ros2", "--domain-id", dom, "--loopback"]
    procs = _Procs(tmp_path)
    try:
        node = procs.spawn(
            [
                "run",
                *common,
                "--reliable",
                "--sim-truth",
                "--dump",
                str(dump),
                "--publish-period-s",
                "0.2",
                "--voxel-size-m",
                "0.1",
                "--memory",
                f"{factory}:make",
            ],
            "node.log",
        )
        direct = SceneMemory(
            voxel_size_m=0.1, text_encoder="hash", detector="oracle"
        )  # the reference, built while the node starts
        n_frames = 0
        for frame in ros.RosBagSource(bag):
            direct.integrate(frame)
            n_frames += 1
        played = procs.tool(["play", *common, str(bag), "--rate", "2.0", "--wait-s", "300"], timeout_s=420)
        assert played["published"] > 5 * n_frames
        deadline = time.monotonic() + 300
        summary: dict = {}
        while summary.get("frames_integrated", 0) < n_frames:
            assert node.poll() is None, procs.log("node.log")
            assert time.monotonic() < deadline, f"node integrated {summary}: " + procs.log("node.log")
            time.sleep(0.2)
            if (dump / "summary.json").exists():
                summary = json.loads((dump / "summary.json").read_text())
        label = min(o.label for o in direct.objects.objects.values())
        answer = procs.tool(
            ["query", *common, json.dumps({"text": label, "k": 3}), "--timeout-s", "120"], timeout_s=240
        )
        assert answer["frames_integrated"] == n_frames
        assert answer["occupied_voxels"] == len(direct.octree.occupied_centers())
        assert answer["hits"] and any(h["label"] == label for h in answer["hits"]), answer
        os.killpg(node.pid, signal.SIGINT)
        node.wait(30)
    finally:
        procs.close()
    summary = json.loads((dump / "summary.json").read_text())
    assert summary["errors"] == [] and summary["world_frame"] == "map", summary
    got = np.load(dump / "occupied.npy")
    want = np.asarray(direct.octree.occupied_centers())
    assert len(want) > 100
    np.testing.assert_array_equal(got[np.lexsort(got.T)], want[np.lexsort(want.T)])
    objects = json.loads((dump / "objects.json").read_text())
    assert sorted((o["id"], o["label"]) for o in objects) == sorted(
        (i, o.label) for i, o in direct.objects.objects.items()
    )


class _StubMemory:
    """Just enough memory for the node's query path (no perception)."""

    def __init__(self) -> None:
        self.octree = type("O", (), {"occupied_centers": staticmethod(lambda: np.zeros((0, 3)))})()
        self.objects = type("M", (), {"objects": {}})()
        self.queries = 0

    def integrate(self, frame) -> None:
        pass

    def query(self, text: str, k: int = 5, **_):
        self.queries += 1
        return []


@pytest.mark.timeout(240)
def test_a_query_flood_is_cut_and_logged_and_the_node_keeps_answering() -> None:
    from engram.ros2_node import QUERY_QOS, Ros2Node

    dom = 100 + (os.getpid() * 11) % 120
    memory = _StubMemory()
    node = Ros2Node(memory, domain_id=dom, config="loopback", max_queries_per_spin=5)
    node._log = lambda line: None
    client = dds.Ros2Graph(dom, config="loopback")
    try:
        queries = client.writer("/engram/query", "std_msgs/msg/String", dds.QosProfile(reliable=True, depth=100))
        answers = client.reader("/engram/answer", "std_msgs/msg/String", QUERY_QOS, keep_all=True)
        deadline = time.monotonic() + 30
        while not (client.matched(queries) and client.matched(answers)):
            assert time.monotonic() < deadline, "query endpoints did not match"
            time.sleep(0.05)
        for i in range(60):
            client.write(queries, dds.ros2_message("std_msgs/msg/String", data=f"flood {i}"))
        queries.entity.wait_for_acks(5_000_000_000)
        node.spin_once()
        assert memory.queries == 5 and node.queries_dropped > 0
        assert any(e.startswith("/engram/query: ") and "dropped" in e for e in node.errors), node.errors
        client.write(queries, dds.ros2_message("std_msgs/msg/String", data='{"text": "mug", "id": "after"}'))
        got = []
        while time.monotonic() < deadline and not any(json.loads(a).get("id") == "after" for a in got):
            node.spin_once()
            got += [client.decode(answers, d).data for d in client.take_raw(answers)]
            time.sleep(0.02)
        assert any(json.loads(a).get("id") == "after" for a in got)
    finally:
        node.close()
        client.close()


def test_a_slow_memory_drops_the_oldest_frames_and_stays_current() -> None:
    """Frames arriving faster than the memory integrates them: the backlog is bounded, the newest are kept."""
    from engram.ros2_node import Ros2Node
    from engram.types import CameraIntrinsics, Frame

    memory = _StubMemory()
    integrated = []
    memory.integrate = lambda frame: integrated.append(frame.index)
    node = Ros2Node(memory, domain_id=100 + (os.getpid() * 17) % 120, config="loopback", max_backlog=4)
    node._log = lambda line: None
    k = CameraIntrinsics(10.0, 10.0, 2.0, 2.0, 4, 4)
    burst = [
        Frame(
            index=i,
            timestamp_s=float(i),
            rgb=np.zeros((4, 4, 3), np.uint8),
            intrinsics=k,
            meta={"rgb_topic": "/camera/color/image_raw"},
        )
        for i in range(10)
    ]
    try:
        node.source.poll = lambda final=False: burst if not integrated else []
        assert node.spin_once() == 1
        while node.spin_once():
            pass
    finally:
        node.close()
    assert integrated == [6, 7, 8, 9] and node.frames_dropped == 6
    assert any(e.startswith("/camera/color/image_raw: the memory is slower") for e in node.errors), node.errors


def test_map_topics_reach_a_late_subscriber_as_ros2_messages() -> None:
    """/engram/occupied and /engram/objects are latched: a subscriber joining after the publish gets both, decodable."""
    from engram.ros2_node import MAP_QOS, Ros2Node

    centers = np.array([[0.05, 0.15, 0.25], [1.05, -0.35, 0.75]])
    obj = type(
        "Obj", (), {"label": "mug", "box_min": np.array([1.0, 2.0, 0.0]), "box_max": np.array([1.2, 2.2, 0.3])}
    )()
    memory = _StubMemory()
    memory.octree.occupied_centers = lambda: centers
    memory.objects.objects = {4: obj}
    dom = 100 + (os.getpid() * 19) % 120
    node = Ros2Node(memory, domain_id=dom, config="loopback")
    node._log = lambda line: None
    client = dds.Ros2Graph(dom, config="loopback")
    try:
        node.publish()
        cloud_r = client.reader("/engram/occupied", "sensor_msgs/msg/PointCloud2", MAP_QOS)
        markers_r = client.reader("/engram/objects", "visualization_msgs/msg/MarkerArray", MAP_QOS)
        got: dict = {}
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            for name, r in (("cloud", cloud_r), ("markers", markers_r)):
                for data in client.take_raw(r):
                    got[name] = client.decode(r, data)
            time.sleep(0.05)
    finally:
        node.close()
        client.close()
    cloud, markers = got["cloud"], got["markers"]
    assert cloud.header.frame_id == "map" and cloud.width == 2 and cloud.point_step == 12
    assert [f.name for f in cloud.fields] == ["x", "y", "z"] and {f.datatype for f in cloud.fields} == {7}
    np.testing.assert_allclose(np.frombuffer(cloud.data.tobytes(), "<f4").reshape(-1, 3), centers, rtol=1e-6)
    kinds = [(m.type, m.action, m.id, m.text) for m in markers.markers]
    assert kinds == [(0, 3, 0, ""), (1, 0, 4, ""), (9, 0, 4, "mug #4")]
    cube = markers.markers[1]
    np.testing.assert_allclose([cube.pose.position.x, cube.pose.position.y, cube.scale.z], [1.1, 2.1, 0.3])
