"""The live ROS 1 node: camera topics in, a SceneMemory built, the map and answers published.

``python -m engram.ros_node run`` subscribes to colour, depth, camera info and
/tf (or odometry), assembles frames with `engram.sims.ros.FrameAssembler` (the
same decoding, synchronisation and conventions as bag replay), integrates them
into a `SceneMemory`, and publishes

- ``/engram/occupied`` (``sensor_msgs/PointCloud2``): occupied voxel centres in the world frame,
- ``/engram/objects`` (``visualization_msgs/MarkerArray``): one box and one label per object,
- ``/engram/answer`` (``std_msgs/String``, JSON): the answer to each query
  received on ``/engram/query`` (``std_msgs/String``: plain text, or JSON
  ``{"text": ..., "k": ..., "near": [x, y, z], "radius_m": ...}``).

With ``--ros2`` (``run``, ``play``, ``query``) the same commands speak ROS 2
over DDS instead, with no ROS installed (`engram.ros2_node`).

Two helpers make a bag-only setup testable and usable without ``rosbag``:
``python -m engram.ros_node play BAG`` republishes any bag engram reads (ROS 1
or ROS 2) on ROS 1, and ``python -m engram.ros_node query TEXT`` asks a running
node and prints the JSON answer.

rospy comes from the Debian packages (``apt-get install ros-core
python3-rospy python3-sensor-msgs python3-tf2-msgs python3-nav-msgs
python3-visualization-msgs``), built for the system's Python 3.11. When
rospy is not importable, `import_rospy` appends ``/usr/lib/python3/dist-packages``
(or ``$ENGRAM_ROS_DIST_PACKAGES``) at the end of ``sys.path``, so a Python of
the same minor version (e.g. a pyenv or venv 3.11) uses rospy while its own
numpy and packages keep precedence.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from engram.ros_common import (
    ANSWER_TOPIC,
    CLOUD_TOPIC,
    MARKERS_TOPIC,
    MAX_QUERY_CHARS,
    MAX_QUEUED_QUERIES,
    QUERY_TOPIC,
    hits_to_json,
    label_colour,
    parse_query,
    write_dump,
)
from engram.sims.ros import TOPICS, FrameAssembler, RosBagError, live_routes
from engram.sims.ros.bags import _BagReader
from engram.types import Frame

__all__ = ["import_rospy", "EngramNode", "play_bag", "ask", "hits_to_json", "main"]

DEFAULT_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def import_rospy() -> ModuleType:
    """Import rospy, appending the Debian ROS dist-packages to ``sys.path`` if needed.

    Raises:
        ImportError: rospy is not installed (the message says which apt packages install it).
    """
    dist = os.environ.get("ENGRAM_ROS_DIST_PACKAGES", DEFAULT_DIST_PACKAGES)
    try:
        rospy = importlib.import_module("rospy")
    except ImportError:
        pass
    else:
        # rospy finds message packages (visualization_msgs, ...) through sys.path
        if rospy.__file__ is not None and str(Path(rospy.__file__).parents[1]) == dist and dist not in sys.path:
            sys.path.append(dist)
        return rospy
    if Path(dist, "rospy").is_dir() and dist not in sys.path:
        sys.path.append(dist)  # appended: this interpreter's own packages (numpy, yaml) win
    try:
        return importlib.import_module("rospy")
    except ImportError as exc:
        raise ImportError(
            f"rospy is needed for the live ROS 1 node but cannot be imported (looked in {dist}, "
            f"Python {sys.version_info.major}.{sys.version_info.minor}): apt-get install ros-core python3-rospy "
            "python3-sensor-msgs python3-tf2-msgs python3-nav-msgs python3-geometry-msgs "
            "python3-visualization-msgs python3-std-msgs (Debian 12 ships them for Python 3.11)"
        ) from exc


def _message_class(msgtype: str) -> type:
    import_rospy()
    import roslib.message

    name = msgtype.replace("/msg/", "/")
    cls = roslib.message.get_message_class(name)
    if cls is None:
        raise RosBagError(f"ROS 1 message type {name} is not installed (apt-get install python3-<package>)")
    return cls


def _load_factory(spec: str) -> Callable[..., Any]:
    """'package.module:Name' or '/path/file.py:Name' to the named callable."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"memory factory must look like 'module:Name' or 'file.py:Name', got {spec!r}")
    if module_name.endswith(".py"):
        loaded = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        if loaded is None or loaded.loader is None:
            raise ValueError(f"cannot load {module_name}")
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, attr)


class EngramNode:
    """A ROS 1 node that builds a memory from camera topics.

    Messages are queued by the rospy callbacks and consumed by `spin_once`
    in the caller's thread, so the memory is only touched from one thread.

    Args:
        memory: the memory to fill (a `SceneMemory` or anything with
            ``integrate(frame)``, ``octree.occupied_centers()``,
            ``objects.objects`` and ``query(text=..., k=...)``).
        rgb_topic, depth_topic, info_topic: camera topics; a name ending in
            ``/compressed`` or ``/compressedDepth`` is read as CompressedImage.
        pose_source: "tf", "odom" or "pose" (see `FrameAssembler`).
        pose_topic: odometry / PoseStamped topic for those sources.
        world_frame: frame of the published map (None: map, odom or world from tf).
        camera_frame, base_from_camera, sync_tolerance_s: see `FrameAssembler`.
        publish_period_s: how often the cloud and markers are published.
        queue_size: rospy subscriber queue length per topic.
        instances_topic, labels_topic: engram's simulator-truth instance
            images and labels (as `engram.sims.ros.record_bag` writes them).
            Off (None) by default: on a robot's network any publisher could
            inject labelled objects there. Frames do not wait for them until one arrives.
    """

    def __init__(
        self,
        memory: Any,
        *,
        rgb_topic: str = TOPICS["rgb"],
        depth_topic: str = TOPICS["depth"],
        info_topic: str = TOPICS["info"],
        pose_source: Literal["tf", "odom", "pose"] = "tf",
        pose_topic: str | None = None,
        world_frame: str | None = None,
        camera_frame: str | None = None,
        base_from_camera: Any = None,
        sync_tolerance_s: float = 0.02,
        publish_period_s: float = 1.0,
        queue_size: int = 30,
        instances_topic: str | None = None,
        labels_topic: str | None = None,
        cloud_topic: str = CLOUD_TOPIC,
        markers_topic: str = MARKERS_TOPIC,
        query_topic: str = QUERY_TOPIC,
        answer_topic: str = ANSWER_TOPIC,
    ) -> None:
        if publish_period_s <= 0:
            raise ValueError(f"publish_period_s must be positive, got {publish_period_s}")
        self.rospy = import_rospy()
        self.memory = memory
        self.assembler = FrameAssembler(
            pose_source=pose_source,
            world_frame=world_frame,
            camera_frame=camera_frame,
            base_from_camera=base_from_camera,
            sync_tolerance_s=sync_tolerance_s,
            use_instances=instances_topic is not None,
            instances_optional=True,
            history_s=30.0,
            max_wait_s=2.0,
            source_name="ros1-live",
        )
        self.publish_period_s = float(publish_period_s)
        self.frames_integrated = 0
        self.errors: list[str] = []
        self.received: dict[str, int] = {}
        self._lock = threading.Lock()
        self._queries: deque[str] = deque(maxlen=MAX_QUEUED_QUERIES)  # a flood drops the oldest
        self.queries_dropped = 0
        self._last_publish = -math.inf

        rospy = self.rospy
        self._subs = []

        def locked(fn: Callable[[Any], None], topic: str) -> Callable[[Any], None]:
            def cb(msg: Any) -> None:
                with self._lock:
                    self.received[topic] = self.received.get(topic, 0) + 1
                    try:
                        fn(msg)
                    except (RosBagError, ValueError) as exc:
                        self.errors.append(f"{topic}: {exc}")
                        rospy.logwarn_throttle(5.0, f"engram: {topic}: {exc}")

            return cb

        queue = {"tf": 1000, "odom": 1000, "pose": 1000, "tf_static": 100, "labels": 10}
        for route in live_routes(
            self.assembler,
            rgb_topic=rgb_topic,
            depth_topic=depth_topic,
            info_topic=info_topic,
            pose_topic=pose_topic,
            instances_topic=instances_topic,
            labels_topic=labels_topic,
        ):
            kwargs = {"buff_size": 2**24} if route.role in ("rgb", "depth", "instances") else {}
            self._subs.append(
                rospy.Subscriber(
                    route.topic,
                    _message_class(route.msgtype),
                    locked(route.handle, route.topic),
                    queue_size=queue.get(route.role, queue_size),
                    **kwargs,
                )
            )
        self._subs.append(
            rospy.Subscriber(query_topic, _message_class("std_msgs/String"), self._on_query, queue_size=10)
        )
        self.cloud_pub = rospy.Publisher(
            cloud_topic, _message_class("sensor_msgs/PointCloud2"), queue_size=1, latch=True
        )
        self.markers_pub = rospy.Publisher(
            markers_topic, _message_class("visualization_msgs/MarkerArray"), queue_size=1, latch=True
        )
        self.answer_pub = rospy.Publisher(answer_topic, _message_class("std_msgs/String"), queue_size=10)

    # callbacks --------------------------------------------------------------
    def _on_query(self, msg: Any) -> None:
        with self._lock:
            if len(self._queries) == self._queries.maxlen:
                self.queries_dropped += 1
            self._queries.append(msg.data)

    # work -------------------------------------------------------------------
    def spin_once(self, final: bool = False, publish: bool = True) -> int:
        """Integrate completed frames, answer queued queries, publish when due; returns frames integrated."""
        with self._lock:
            try:
                frames = self.assembler.pop_frames(final=final)
            except RosBagError as exc:
                # a structural problem (broken tf chain, unknown encoding): report it, keep running
                self.errors.append(str(exc))
                self.rospy.logerr_throttle(5.0, f"engram: {exc}")
                frames = []
            queries = list(self._queries)
            self._queries.clear()
        for frame in frames:
            self.integrate(frame)
        for text in queries:
            self.answer(text)
        now = time.monotonic()
        if publish and frames and (final or now - self._last_publish >= self.publish_period_s):
            self.publish()
            self._last_publish = now
        return len(frames)

    def integrate(self, frame: Frame) -> None:
        self.memory.integrate(frame)
        self.frames_integrated += 1

    def world_frame(self) -> str:
        return self.assembler.world_frame or "map"

    def answer(self, text: str) -> dict[str, Any]:
        """Answer one query and publish the JSON on the answer topic."""
        reply: dict[str, Any] = {"query": text, "frames_integrated": self.frames_integrated}
        try:
            q = parse_query(text)
            reply["id"] = q.pop("id", None)
            q.setdefault("k", 5)
            hits = self.memory.query(**q)
            reply["hits"] = hits_to_json(hits)
            reply["occupied_voxels"] = int(len(self.memory.octree.occupied_centers()))
            reply["objects"] = int(len(self.memory.objects.objects))
        except (ValueError, TypeError) as exc:
            reply["error"] = str(exc)
        if isinstance(text, str) and len(text) > MAX_QUERY_CHARS:
            reply["query"] = text[:200] + "..."  # an oversize query is not echoed whole
        self.answer_pub.publish(self.answer_pub.data_class(data=json.dumps(reply)))
        return reply

    def occupied_cloud(self) -> Any:
        """The occupied voxel centres as a ``sensor_msgs/PointCloud2`` (x, y, z float32)."""
        from sensor_msgs.msg import PointCloud2, PointField
        from std_msgs.msg import Header

        pts = np.ascontiguousarray(self.memory.octree.occupied_centers(), dtype=np.float32).reshape(-1, 3)
        msg = PointCloud2()
        msg.header = Header(stamp=self.rospy.Time.now(), frame_id=self.world_frame())
        msg.height, msg.width = 1, len(pts)
        msg.fields = [
            PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")
        ]
        msg.is_bigendian = False
        msg.point_step, msg.row_step = 12, 12 * len(pts)
        msg.is_dense = True
        msg.data = pts.tobytes()
        return msg

    def object_markers(self) -> Any:
        """One CUBE (the object's box) and one TEXT_VIEW_FACING (its label) per object."""
        from visualization_msgs.msg import Marker, MarkerArray

        out = MarkerArray()
        clear = Marker()
        clear.action = Marker.DELETEALL
        out.markers.append(clear)
        stamp = self.rospy.Time.now()
        for oid, obj in sorted(self.memory.objects.objects.items()):
            lo, hi = np.asarray(obj.box_min, float), np.asarray(obj.box_max, float)
            centre, size = (lo + hi) / 2.0, np.maximum(hi - lo, 0.01)
            r, g, b = label_colour(str(obj.label))
            for kind, ns in ((Marker.CUBE, "engram_objects"), (Marker.TEXT_VIEW_FACING, "engram_labels")):
                m = Marker()
                m.header.frame_id, m.header.stamp = self.world_frame(), stamp
                m.ns, m.id, m.type, m.action = ns, int(oid), kind, Marker.ADD
                m.pose.position.x, m.pose.position.y, m.pose.position.z = centre.tolist()
                m.pose.orientation.w = 1.0
                if kind == Marker.CUBE:
                    m.scale.x, m.scale.y, m.scale.z = size.tolist()
                    m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, 0.5
                else:
                    m.pose.position.z = float(hi[2]) + 0.1
                    m.scale.z = 0.15
                    m.color.r = m.color.g = m.color.b = m.color.a = 1.0
                    m.text = f"{obj.label} #{oid}"
                out.markers.append(m)
        return out

    def publish(self) -> None:
        self.cloud_pub.publish(self.occupied_cloud())
        self.markers_pub.publish(self.object_markers())

    def spin(self, rate_hz: float = 50.0, idle_flush_s: float = 0.5) -> None:
        """Run until ROS shuts down; frames left waiting for a partner are flushed after ``idle_flush_s`` of silence."""
        sleep_s = 1.0 / rate_hz
        last_work = time.monotonic()
        flushed = True
        while not self.rospy.is_shutdown():
            n = self.spin_once()
            now = time.monotonic()
            if n or self._has_pending():
                if n:
                    last_work, flushed = now, False
                if now - last_work > idle_flush_s and not flushed:
                    self.spin_once(final=True)
                    flushed = True
            time.sleep(sleep_s)
        self.spin_once(final=True, publish=False)  # ROS is down: integrate what is left, publish nothing

    def _has_pending(self) -> bool:
        with self._lock:
            return self.assembler.has_pending()

    def dump(self, out_dir: str | Path) -> None:
        """Write occupied.npy, objects.json and summary.json (for tools and tests)."""
        write_dump(
            out_dir,
            self.memory,
            frames_integrated=self.frames_integrated,
            world_frame=self.world_frame(),
            skipped=dict(self.assembler.stats.skipped),
            received=dict(self.received),
            errors=self.errors[-10:],
        )


# ----------------------------------------------------------------------------
# tools: replay a bag on ROS 1, ask a running node
# ----------------------------------------------------------------------------


def play_bag(
    path: str | Path,
    *,
    rate: float = 1.0,
    topics: Sequence[str] | None = None,
    wait_for_subscribers_s: float = 10.0,
    start_delay_s: float = 0.5,
) -> int:
    """Publish a bag's messages on ROS 1 with their original spacing (``rosbag play`` for any bag engram reads).

    Must run inside an initialised rospy node. /tf_static is latched. Waits
    (up to ``wait_for_subscribers_s``) until every image topic has a
    subscriber, so a node started alongside misses nothing.

    Returns:
        The number of messages published.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    rospy = import_rospy()
    reader = _BagReader(path)
    wanted = list(topics) if topics is not None else list(reader.topics)
    pubs: dict[str, Any] = {}
    for topic in wanted:
        if topic not in reader.topics:
            raise RosBagError(f"bag {path} has no topic {topic!r}")
        cls = _message_class(reader.topics[topic])
        pubs[topic] = (rospy.Publisher(topic, cls, queue_size=1000, latch=topic.endswith("tf_static")), cls)
    deadline = time.monotonic() + wait_for_subscribers_s
    images = [t for t in wanted if "image" in reader.topics[t].lower()]
    while time.monotonic() < deadline and not rospy.is_shutdown():
        if all(pubs[t][0].get_num_connections() > 0 for t in images):
            break
        time.sleep(0.05)
    time.sleep(start_delay_s)  # let the other subscriptions finish connecting
    count, t0_bag, t0_wall = 0, None, time.monotonic()
    for topic, _, t_ns, data in reader.ros1_messages(wanted):
        if rospy.is_shutdown():
            break
        if t0_bag is None:
            t0_bag = t_ns
        delay = (t_ns - t0_bag) * 1e-9 / rate - (time.monotonic() - t0_wall)
        if delay > 0:
            time.sleep(delay)
        pub, cls = pubs[topic]
        pub.publish(cls().deserialize(data))
        count += 1
    return count


def ask(
    text: str, *, timeout_s: float = 10.0, query_topic: str = QUERY_TOPIC, answer_topic: str = ANSWER_TOPIC
) -> dict[str, Any]:
    """Send one query to a running node and return its JSON answer (inside an initialised rospy node)."""
    rospy = import_rospy()
    string = _message_class("std_msgs/String")
    qid = f"{os.getpid()}-{time.monotonic_ns()}"
    q = parse_query(text)
    q["id"] = qid
    got: list[dict[str, Any]] = []

    def on_answer(msg: Any) -> None:
        reply = json.loads(msg.data)
        if reply.get("id") == qid:
            got.append(reply)

    sub = rospy.Subscriber(answer_topic, string, on_answer, queue_size=10)
    pub = rospy.Publisher(query_topic, string, queue_size=10)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (pub.get_num_connections() == 0 or sub.get_num_connections() == 0):
        time.sleep(0.05)
    sent_at = -math.inf
    while not got and time.monotonic() < deadline:
        if time.monotonic() - sent_at > 1.0:  # resend: the first may race the connection
            pub.publish(string(data=json.dumps(q)))
            sent_at = time.monotonic()
        time.sleep(0.02)
    sub.unregister()
    pub.unregister()
    if not got:
        raise TimeoutError(f"no answer on {answer_topic} within {timeout_s} s (is the node running?)")
    return got[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engram.ros_node", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the node")
    run.add_argument("--rgb-topic", default=TOPICS["rgb"])
    run.add_argument("--depth-topic", default=TOPICS["depth"])
    run.add_argument("--info-topic", default=TOPICS["info"])
    run.add_argument("--pose-source", choices=("tf", "odom", "pose"), default="tf")
    run.add_argument("--pose-topic", default=None)
    run.add_argument("--world-frame", default=None)
    run.add_argument("--camera-frame", default=None)
    run.add_argument("--sync-tolerance-s", type=float, default=0.02)
    run.add_argument("--voxel-size-m", type=float, default=0.05)
    run.add_argument(
        "--memory", default="engram.memory.scene:SceneMemory", help="factory 'module:Name' or 'file.py:Name'"
    )
    run.add_argument("--publish-period-s", type=float, default=1.0)
    run.add_argument(
        "--dump", default=None, help="write occupied.npy, objects.json, summary.json here on publish and exit"
    )
    run.add_argument("--save", default=None, help="save the memory here on exit")
    run.add_argument("--name", default="engram")
    play = sub.add_parser("play", help="publish a bag (ROS 1 or ROS 2) on ROS 1 (or ROS 2 with --ros2)")
    play.add_argument("bag")
    play.add_argument("--rate", type=float, default=1.0)
    play.add_argument("--topics", nargs="*", default=None)
    play.add_argument("--wait-s", type=float, default=10.0)
    query = sub.add_parser("query", help="ask a running node")
    query.add_argument("text")
    query.add_argument("--timeout-s", type=float, default=10.0)
    for p in (run, play, query):
        p.add_argument("--ros2", action="store_true", help="ROS 2 over DDS (Cyclone DDS wheel) instead of ROS 1")
        p.add_argument("--domain-id", type=int, default=None, help="ROS 2 domain (default: $ROS_DOMAIN_ID or 0)")
        p.add_argument("--loopback", action="store_true", help="ROS 2: keep DDS traffic on 127.0.0.1")
    run.add_argument("--reliable", action="store_true", help="ROS 2: ask reliable delivery of camera and pose topics")
    run.add_argument(
        "--sim-truth",
        action="store_true",
        help="also read the simulator-truth topics /engram/instances and /engram/labels (off: any publisher could inject objects there); objects then come from them (the oracle detector) unless --detector says otherwise",
    )
    run.add_argument(
        "--detector",
        default=None,
        help="where objects come from: rgbd (default), rgb, oracle (needs --sim-truth) or a plug-in name",
    )
    run.add_argument(
        "--max-backlog", type=int, default=30, help="ROS 2: frames waiting for the memory before the oldest are dropped"
    )
    args = parser.parse_args(argv)

    if args.ros2:
        return _main_ros2(args)
    rospy = import_rospy()
    if args.command == "run":
        memory = _make_memory(args)
        rospy.init_node(args.name, anonymous=False)
        node = EngramNode(memory, publish_period_s=args.publish_period_s, **_input_kwargs(args))
        if args.dump:
            _dump_on_publish(node, args.dump)
        rospy.loginfo(f"engram: listening on {args.rgb_topic}, {args.depth_topic}, {args.info_topic}")
        node.spin()
        if args.dump:
            node.dump(args.dump)
        if args.save:
            memory.save(args.save)
        return 0
    if args.command == "play":
        rospy.init_node("engram_play", anonymous=True)
        n = play_bag(args.bag, rate=args.rate, topics=args.topics, wait_for_subscribers_s=args.wait_s)
        print(json.dumps({"published": n}))
        return 0
    rospy.init_node("engram_query", anonymous=True)
    print(json.dumps(ask(args.text, timeout_s=args.timeout_s)))
    return 0


def _input_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What a live node (ROS 1 or ROS 2) reads, from ``run``'s arguments."""
    truth = {"instances_topic": TOPICS["instances"], "labels_topic": TOPICS["labels"]} if args.sim_truth else {}
    return {
        "rgb_topic": args.rgb_topic,
        "depth_topic": args.depth_topic,
        "info_topic": args.info_topic,
        "pose_source": args.pose_source,
        "pose_topic": args.pose_topic,
        "world_frame": args.world_frame,
        "camera_frame": args.camera_frame,
        "sync_tolerance_s": args.sync_tolerance_s,
        **truth,
    }


def _dump_on_publish(node: Any, out_dir: str) -> None:
    """Make ``node.publish`` also write the node's dump (``--dump``)."""
    publish = node.publish

    def publish_and_dump() -> None:
        publish()
        node.dump(out_dir)

    node.publish = publish_and_dump


def _make_memory(args: argparse.Namespace) -> Any:
    """The memory the node fills, from ``--memory`` (its factory gets the detector when it takes one)."""
    import inspect

    factory = _load_factory(args.memory)
    kwargs: dict[str, Any] = {"voxel_size_m": args.voxel_size_m}
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "detector" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs["detector"] = _detector_of(args)
    return factory(**kwargs)


def _detector_of(args: argparse.Namespace) -> str:
    """The detector a run uses: as asked, else the simulator's masks when they are read, else rgbd."""
    if args.detector:
        if args.detector == "oracle" and not args.sim_truth:
            raise SystemExit("--detector oracle reads the simulator-truth topics: add --sim-truth")
        return args.detector
    return "oracle" if args.sim_truth else "rgbd"


def _main_ros2(args: argparse.Namespace) -> int:
    import signal

    from engram.ros2_node import Ros2Node, ask_ros2
    from engram.sims.ros.dds import play_bag_ros2

    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
    config = "loopback" if args.loopback else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.command == "play":
        n = play_bag_ros2(
            args.bag,
            domain_id=domain,
            rate=args.rate,
            topics=args.topics,
            config=config,
            wait_for_subscribers_s=args.wait_s,
            stop=stop,
        )
        print(json.dumps({"published": n}))
        return 0
    if args.command == "query":
        print(json.dumps(ask_ros2(args.text, domain_id=domain, config=config, timeout_s=args.timeout_s)))
        return 0
    memory = _make_memory(args)
    node = Ros2Node(
        memory,
        domain_id=domain,
        config=config,
        reliable=args.reliable,
        publish_period_s=args.publish_period_s,
        max_backlog=args.max_backlog,
        **_input_kwargs(args),
    )
    if args.dump:
        _dump_on_publish(node, args.dump)
    node._log(f"domain {domain}: listening on {args.rgb_topic}, {args.depth_topic}, {args.info_topic}")
    try:
        node.spin(stop)
    finally:
        if args.dump:
            node.dump(args.dump)
        if args.save:
            memory.save(args.save)
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
