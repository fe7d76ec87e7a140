"""Live ROS topics over rosbridge (``rosbridge_server``'s websocket protocol) with roslibpy.

Works with ROS 1 and ROS 2 servers; messages arrive as JSON dicts, go
through `message_from_dict` and then the same `FrameAssembler` as bags.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from engram._optional import require
from engram.sims.ros.assembly import FrameAssembler, live_routes
from engram.sims.ros.messages import TOPICS, message_from_dict
from engram.types import Frame, Pose

__all__ = ["RosbridgeSource"]


class RosbridgeSource:
    """Frames from live topics over rosbridge (``rosbridge_server``), with roslibpy.

    Subscribes to colour, depth, camera info and /tf + /tf_static (or an
    odometry / pose topic) and yields frames as they complete. Messages go
    through `message_from_dict` and `FrameAssembler`, the same path as bags.

    Args:
        host, port: the rosbridge websocket server.
        rgb_topic, depth_topic, info_topic: topics (RealSense names by default);
            a topic ending in ``/compressed`` or ``/compressedDepth`` is read
            as ``sensor_msgs/CompressedImage``.
        pose_source, world_frame, camera_frame, sync_tolerance_s,
            base_from_camera, pose_topic: as for `RosBagSource`.
        max_frames: stop after this many frames (None: until `close`).
        timeout_s: stop when no frame completes for this long (None: wait).
        ros2: the server runs ROS 2 (type names ``pkg/msg/Type``).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 9090,
        *,
        rgb_topic: str = TOPICS["rgb"],
        depth_topic: str = TOPICS["depth"],
        info_topic: str = TOPICS["info"],
        pose_source: Literal["tf", "odom", "pose"] = "tf",
        pose_topic: str | None = None,
        world_frame: str | None = None,
        camera_frame: str | None = None,
        sync_tolerance_s: float = 0.02,
        base_from_camera: Pose | np.ndarray | None = None,
        max_frames: int | None = None,
        timeout_s: float | None = 10.0,
        ros2: bool = True,
    ) -> None:
        self.host, self.port = host, int(port)
        self.rgb_topic, self.depth_topic, self.info_topic = rgb_topic, depth_topic, info_topic
        self.pose_topic = pose_topic or (TOPICS["odom"] if pose_source == "odom" else TOPICS["pose"])
        self.max_frames = max_frames
        self.timeout_s = timeout_s
        self.ros2 = ros2
        self.assembler = FrameAssembler(
            pose_source=pose_source,
            world_frame=world_frame,
            camera_frame=camera_frame,
            base_from_camera=base_from_camera,
            sync_tolerance_s=sync_tolerance_s,
            history_s=30.0,
            max_wait_s=2.0,
            source_name=f"rosbridge://{host}:{port}",
        )
        self._ros: Any = None
        self._topics: list[Any] = []

    def _type(self, name: str) -> str:
        return name if self.ros2 else name.replace("/msg/", "/")

    def subscriptions(self) -> list[tuple[str, str, Any]]:
        """(topic, message type, callback taking the rosbridge dict) for every subscription."""
        routes = live_routes(
            self.assembler,
            rgb_topic=self.rgb_topic,
            depth_topic=self.depth_topic,
            info_topic=self.info_topic,
            pose_topic=self.pose_topic,
        )
        return [(r.topic, self._type(r.msgtype), lambda d, h=r.handle: h(message_from_dict(d))) for r in routes]

    def __iter__(self) -> Iterator[Frame]:
        roslibpy = require("roslibpy", "reading ROS topics over rosbridge")
        lock = threading.Lock()
        self._ros = roslibpy.Ros(host=self.host, port=self.port)
        self._ros.run()
        for topic, typ, cb in self.subscriptions():

            def locked(d: dict, cb: Any = cb) -> None:
                with lock:
                    cb(d)

            t = roslibpy.Topic(self._ros, topic, typ, queue_length=5)
            t.subscribe(locked)
            self._topics.append(t)
        count, last = 0, time.monotonic()
        try:
            while self.max_frames is None or count < self.max_frames:
                with lock:
                    frames = self.assembler.pop_frames()
                for frame in frames:
                    yield frame
                    count += 1
                    last = time.monotonic()
                    if self.max_frames is not None and count >= self.max_frames:
                        return
                if self.timeout_s is not None and time.monotonic() - last > self.timeout_s:
                    return
                if not self._ros.is_connected and time.monotonic() - last > 1.0:
                    return
                time.sleep(0.005)
        finally:
            self.close()

    def close(self) -> None:
        for t in self._topics:
            try:
                t.unsubscribe()
            except Exception:  # noqa: BLE001, S110 (closing a dead connection)
                pass
        self._topics.clear()
        if self._ros is not None:
            try:
                self._ros.close()
            except Exception:  # noqa: BLE001, S110 (closing a dead connection)
                pass
            self._ros = None
