"""The live ROS 2 node over DDS: a robot's camera topics in, a SceneMemory built, map and answers out.

``python -m engram.ros_node run --ros2 --domain-id N`` joins the robot's ROS 2
graph with the ``cyclonedds`` wheel (no ROS 2 install), reads frames with
`engram.sims.ros.dds.Ros2Source` (the same `FrameAssembler` as bag replay),
integrates them into a `SceneMemory`, and publishes what ROS 2 tools show:

- ``/engram/occupied`` (``sensor_msgs/PointCloud2``, x y z float32): occupied voxel centres,
- ``/engram/objects`` (``visualization_msgs/MarkerArray``): one box and one label per object,
- ``/engram/answer`` (``std_msgs/String``, JSON): the answer to each query on
  ``/engram/query`` (``std_msgs/String``: plain text or JSON, as the ROS 1 node).

The map topics are reliable and transient local (a late rviz2 gets the last
map); queries are reliable, keep last 10, and at most ``max_queries_per_spin``
are answered per step: a flood is cut and logged, never queued without bound.
``python -m engram.ros_node play --ros2 BAG`` replays any bag onto ROS 2, and
``query --ros2 TEXT`` asks a running node.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from engram.ros_common import (
    ANSWER_TOPIC,
    CLOUD_TOPIC,
    MARKERS_TOPIC,
    QUERY_TOPIC,
    hits_to_json,
    label_colour,
    parse_query,
    write_dump,
)
from engram.sims.ros.dds import QosProfile, Ros2Graph, Ros2Source, ros2_message
from engram.types import Frame

__all__ = ["Ros2Node", "ask_ros2"]

MAP_QOS = QosProfile(reliable=True, transient_local=True, depth=1)
QUERY_QOS = QosProfile(reliable=True, transient_local=False, depth=10)


def _stamp(t_s: float) -> Any:
    t_ns = max(0, int(t_s * 1e9))
    return ros2_message("builtin_interfaces/msg/Time", sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)


def _header(t_s: float, frame_id: str) -> Any:
    return ros2_message("std_msgs/msg/Header", stamp=_stamp(t_s), frame_id=frame_id)


class Ros2Node:
    """A ROS 2 node (over DDS) that builds a memory from camera topics.

    Frames are received by the source's thread and integrated by `spin_once`
    in the caller's thread, so the memory is only touched from one thread.

    Args:
        memory: the memory to fill (a `SceneMemory` or anything with
            ``integrate``, ``octree.occupied_centers()``, ``objects.objects``, ``query``).
        domain_id: the robot's ROS_DOMAIN_ID.
        config: Cyclone DDS configuration: None (defaults or ``CYCLONEDDS_URI``), "loopback", or XML.
        reliable: ask reliable delivery of the camera and pose topics.
        publish_period_s: how often the cloud and markers are published.
        max_queries_per_spin: queries answered per step; more are dropped and logged.
        max_backlog: frames kept waiting for integration when the memory is
            slower than the camera; older ones are dropped (counted and logged),
            so the node stays current and its memory use bounded.
        **source_kwargs: topics and pose options for `Ros2Source`.
    """

    def __init__(
        self,
        memory: Any,
        *,
        domain_id: int = 0,
        config: str | None = None,
        reliable: bool = False,
        publish_period_s: float = 1.0,
        max_queries_per_spin: int = 5,
        max_backlog: int = 30,
        cloud_topic: str = CLOUD_TOPIC,
        markers_topic: str = MARKERS_TOPIC,
        query_topic: str = QUERY_TOPIC,
        answer_topic: str = ANSWER_TOPIC,
        **source_kwargs: Any,
    ) -> None:
        if publish_period_s <= 0:
            raise ValueError(f"publish_period_s must be positive, got {publish_period_s}")
        self.memory = memory
        self.graph = Ros2Graph(domain_id, config=config)
        self.source = Ros2Source(domain_id, reliable=reliable, graph=self.graph, timeout_s=None, **source_kwargs)
        self.source.log = self._log
        self.publish_period_s = float(publish_period_s)
        self.max_queries_per_spin = int(max_queries_per_spin)
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, got {max_backlog}")
        self.backlog: deque[Frame] = deque()
        self.max_backlog = int(max_backlog)
        self.frames_dropped = 0
        self.query_topic = query_topic
        self.frames_integrated = 0
        self.queries_dropped = 0
        self._last_publish = -math.inf
        self._last_stamp_s = 0.0
        self.query_reader = self.graph.reader(query_topic, "std_msgs/msg/String", QUERY_QOS)
        self.answer_writer = self.graph.writer(answer_topic, "std_msgs/msg/String", QUERY_QOS)
        self.cloud_writer = self.graph.writer(cloud_topic, "sensor_msgs/msg/PointCloud2", MAP_QOS)
        self.markers_writer = self.graph.writer(markers_topic, "visualization_msgs/msg/MarkerArray", MAP_QOS)
        self.source.start()

    @property
    def errors(self) -> list[str]:
        return self.source.errors

    @staticmethod
    def _log(line: str) -> None:
        print(f"[engram ros2] {line}", flush=True)

    # work -------------------------------------------------------------------
    def spin_once(self, final: bool = False, publish: bool = True) -> int:
        """Take completed frames, integrate the oldest waiting one (all with ``final``), answer queries, publish when due.

        Returns the number of frames integrated.
        """
        self.backlog.extend(self.source.poll(final=final))
        if len(self.backlog) > self.max_backlog:
            dropped = len(self.backlog) - self.max_backlog
            for _ in range(dropped):
                frame = self.backlog.popleft()
            self.frames_dropped += dropped
            self.source.error(
                f"{frame.meta.get('rgb_topic', 'camera')}: the memory is slower than the camera: dropped {dropped} "
                f"frames (total {self.frames_dropped}), keeping the newest {self.max_backlog}"
            )
        n = 0
        while self.backlog and (final or n == 0):
            self.integrate(self.backlog.popleft())
            n += 1
        self._answer_queries()
        now = time.monotonic()
        if publish and n and (final or now - self._last_publish >= self.publish_period_s):
            self.publish()
            self._last_publish = now
        return n

    def integrate(self, frame: Frame) -> None:
        try:
            self.memory.integrate(frame)
        except ValueError as exc:  # a frame the memory rejects: logged, the memory stays as it was
            self.source.error(f"{frame.meta.get('rgb_topic', 'frame')}: frame {frame.index} not integrated: {exc}")
            return
        self.frames_integrated += 1
        self._last_stamp_s = frame.timestamp_s

    def _answer_queries(self) -> None:
        raw = self.graph.take_raw(self.query_reader, max_samples=256)
        if len(raw) > self.max_queries_per_spin:
            dropped = len(raw) - self.max_queries_per_spin
            self.queries_dropped += dropped
            self.source.error(
                f"{self.query_topic}: {len(raw)} queries at once; answered {self.max_queries_per_spin}, "
                f"dropped {dropped} (total dropped {self.queries_dropped})"
            )
            raw = raw[-self.max_queries_per_spin :]
        for data in raw:
            try:
                text = self.graph.decode(self.query_reader, data).data
            except Exception as exc:  # noqa: BLE001 (a malformed query is logged, never fatal)
                self.source.error(str(exc))
                continue
            self.answer(text)

    def world_frame(self) -> str:
        return self.source.assembler.world_frame or "map"

    def answer(self, text: str) -> dict[str, Any]:
        """Answer one query and publish the JSON on the answer topic."""
        reply: dict[str, Any] = {"query": text, "frames_integrated": self.frames_integrated}
        try:
            q = parse_query(text)
            reply["id"] = q.pop("id", None)
            q.setdefault("k", 5)
            reply["hits"] = hits_to_json(self.memory.query(**q))
            reply["occupied_voxels"] = len(self.memory.octree.occupied_centers())
            reply["objects"] = len(self.memory.objects.objects)
        except (ValueError, TypeError) as exc:
            reply["error"] = str(exc)
        self.graph.write(self.answer_writer, ros2_message("std_msgs/msg/String", data=json.dumps(reply)))
        return reply

    def occupied_cloud(self) -> Any:
        """The occupied voxel centres as a ROS 2 ``sensor_msgs/PointCloud2`` (x, y, z float32)."""
        pts = np.ascontiguousarray(self.memory.octree.occupied_centers(), dtype="<f4").reshape(-1, 3)
        fields = [
            ros2_message("sensor_msgs/msg/PointField", name=n, offset=4 * i, datatype=7, count=1)  # 7: FLOAT32
            for i, n in enumerate("xyz")
        ]
        return ros2_message(
            "sensor_msgs/msg/PointCloud2",
            header=_header(self._last_stamp_s, self.world_frame()),
            height=1,
            width=len(pts),
            fields=fields,
            is_bigendian=False,
            point_step=12,
            row_step=12 * len(pts),
            data=pts.reshape(-1).view(np.uint8),
            is_dense=True,
        )

    def object_markers(self) -> Any:
        """A DELETEALL, then one CUBE (the box) and one TEXT_VIEW_FACING (the label) per object."""
        header = _header(self._last_stamp_s, self.world_frame())
        markers = [ros2_message("visualization_msgs/msg/Marker", header=header, action=3)]  # DELETEALL
        for oid, obj in sorted(self.memory.objects.objects.items()):
            lo, hi = np.asarray(obj.box_min, float), np.asarray(obj.box_max, float)
            centre, size = (lo + hi) / 2.0, np.maximum(hi - lo, 0.01)
            r, g, b = label_colour(str(obj.label))
            for kind in (1, 9):  # CUBE, TEXT_VIEW_FACING
                z = float(centre[2]) if kind == 1 else float(hi[2]) + 0.1
                pose = ros2_message(
                    "geometry_msgs/msg/Pose",
                    position=ros2_message("geometry_msgs/msg/Point", x=float(centre[0]), y=float(centre[1]), z=z),
                    orientation=ros2_message("geometry_msgs/msg/Quaternion", w=1.0),
                )
                scale = size if kind == 1 else np.array([0.0, 0.0, 0.15])
                colour = (r, g, b, 0.5) if kind == 1 else (1.0, 1.0, 1.0, 1.0)
                markers.append(
                    ros2_message(
                        "visualization_msgs/msg/Marker",
                        header=header,
                        ns="engram_objects" if kind == 1 else "engram_labels",
                        id=int(oid),
                        type=kind,
                        action=0,
                        pose=pose,
                        scale=ros2_message(
                            "geometry_msgs/msg/Vector3", x=float(scale[0]), y=float(scale[1]), z=float(scale[2])
                        ),
                        color=ros2_message(
                            "std_msgs/msg/ColorRGBA", r=colour[0], g=colour[1], b=colour[2], a=colour[3]
                        ),
                        text=f"{obj.label} #{oid}" if kind == 9 else "",
                    )
                )
        return ros2_message("visualization_msgs/msg/MarkerArray", markers=markers)

    def publish(self) -> None:
        self.graph.write(self.cloud_writer, self.occupied_cloud())
        self.graph.write(self.markers_writer, self.object_markers())

    def spin(self, stop: Any = None, rate_hz: float = 100.0, idle_flush_s: float = 0.5) -> None:
        """Run until ``stop`` (a threading.Event) is set; frames left waiting are flushed after ``idle_flush_s`` of silence."""
        sleep_s = 1.0 / rate_hz
        last_work, flushed = time.monotonic(), True
        while stop is None or not stop.is_set():
            n = self.spin_once()
            now = time.monotonic()
            if n:
                last_work, flushed = now, False
            elif not flushed and now - last_work > idle_flush_s and self.source.has_pending():
                self.spin_once(final=True)
                flushed = True
            if not self.backlog:
                time.sleep(sleep_s)
        self.spin_once(final=True, publish=False)

    def dump(self, out_dir: str | Path) -> None:
        """Write occupied.npy, objects.json and summary.json (for tools and tests)."""
        write_dump(
            out_dir,
            self.memory,
            frames_integrated=self.frames_integrated,
            world_frame=self.world_frame(),
            skipped=dict(self.source.assembler.stats.skipped),
            received=dict(self.source.received),
            errors=self.errors[-20:],
            queries_dropped=self.queries_dropped,
            frames_dropped=self.frames_dropped,
        )

    def close(self) -> None:
        self.source.close()
        self.graph.close()


def ask_ros2(
    text: str,
    *,
    domain_id: int = 0,
    config: str | None = None,
    timeout_s: float = 10.0,
    query_topic: str = QUERY_TOPIC,
    answer_topic: str = ANSWER_TOPIC,
) -> dict[str, Any]:
    """Send one query to a running ROS 2 node and return its JSON answer."""
    graph = Ros2Graph(domain_id, config=config)
    try:
        qid = f"{os.getpid()}-{time.monotonic_ns()}"
        q = parse_query(text)
        q["id"] = qid
        answers = graph.reader(answer_topic, "std_msgs/msg/String", QUERY_QOS)
        queries = graph.writer(query_topic, "std_msgs/msg/String", QUERY_QOS)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (graph.matched(queries) and graph.matched(answers)):
            time.sleep(0.05)
        sent_at = -math.inf
        while time.monotonic() < deadline:
            if time.monotonic() - sent_at > 2.0:  # resend: the first may race the matching
                graph.write(queries, ros2_message("std_msgs/msg/String", data=json.dumps(q)))
                sent_at = time.monotonic()
            for data in graph.take_raw(answers):
                reply = json.loads(graph.decode(answers, data).data)
                if reply.get("id") == qid:
                    return reply
            time.sleep(0.02)
        raise TimeoutError(
            f"no answer on {answer_topic} within {timeout_s} s (is the node running on domain {domain_id}?)"
        )
    finally:
        graph.close()
