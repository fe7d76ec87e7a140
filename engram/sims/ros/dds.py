"""Live ROS 2 without a ROS 2 install: ROS 2 topics over DDS with Eclipse Cyclone DDS.

ROS 2 is DDS underneath: topic ``/camera/color/image_raw`` is the DDS topic
``rt/camera/color/image_raw``, message ``sensor_msgs/msg/Image`` is the DDS
type ``sensor_msgs::msg::dds_::Image_``, and samples are classic CDR (XCDR1,
little endian), the same bytes a ROS 2 bag stores. This module joins that
graph with the ``cyclonedds`` wheel:

- `dds_type` declares a ROS 2 message type to DDS, built from rosbags' ROS 2
  message definitions (the field lists the bag code uses), never hand-copied;
- samples are (de)serialised with rosbags' CDR codec (`ros2_typestore`), so
  a live message and a bag message are the same object and the same bytes;
- `Ros2Graph` holds a participant and makes readers and writers with the
  QoS ROS 2 uses (`SENSOR_QOS`, `LATCHED_QOS`, ...), and reports QoS
  mismatches naming the topic;
- `Ros2Source` subscribes to a robot's camera and pose topics and yields
  `Frame`s through the same `FrameAssembler` as bag replay;
- `play_bag_ros2` publishes any bag engram reads on ROS 2 with the bag's
  stamps and timing.

Network: without a configuration Cyclone DDS uses its defaults (or
``CYCLONEDDS_URI``); `loopback_config` keeps all traffic on 127.0.0.1 with
unicast discovery (tests and local replay).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engram._optional import require
from engram.sims.ros.assembly import FrameAssembler, live_routes
from engram.sims.ros.messages import TOPICS, RosBagError, norm_type, ros2_typestore
from engram.types import Frame, Pose

__all__ = [
    "LATCHED_QOS",
    "RELIABLE_QOS",
    "SENSOR_QOS",
    "QosProfile",
    "Ros2Graph",
    "Ros2Source",
    "dds_topic_name",
    "dds_type",
    "dds_type_name",
    "loopback_config",
    "play_bag_ros2",
    "ros2_message",
]


@dataclass(frozen=True)
class QosProfile:
    """The QoS of a ROS 2 endpoint (rclpy's ``QoSProfile`` fields that decide matching and delivery).

    Args:
        reliable: reliable (True) or best effort (False).
        transient_local: late joiners get the last ``depth`` samples (latched topics such as /tf_static).
        depth: history depth (keep last).
    """

    reliable: bool
    transient_local: bool = False
    depth: int = 10

    def describe(self) -> str:
        return (
            f"{'reliable' if self.reliable else 'best effort'}, "
            f"{'transient local' if self.transient_local else 'volatile'}, keep last {self.depth}"
        )


# rclpy's qos_profile_sensor_data: what camera drivers publish with (and what a subscriber should ask for:
# a best-effort reader matches both best-effort and reliable writers).
SENSOR_QOS = QosProfile(reliable=False, transient_local=False, depth=5)
# rclpy's default profile (reliable, volatile, depth 10): /tf, odometry, most topics.
RELIABLE_QOS = QosProfile(reliable=True, transient_local=False, depth=10)
# tf2_ros' StaticTransformBroadcaster and latched maps: reliable, transient local.
LATCHED_QOS = QosProfile(reliable=True, transient_local=True, depth=1)


def dds_topic_name(topic: str) -> str:
    """``/camera/image_raw`` -> ``rt/camera/image_raw`` (ROS 2 topic names on DDS)."""
    if not topic.startswith("/"):
        topic = "/" + topic
    return "rt" + topic


def dds_type_name(msgtype: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_``."""
    pkg, kind, name = norm_type(msgtype).split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


@functools.cache
def dds_type(msgtype: str) -> type:
    """The Cyclone DDS type (an ``IdlStruct``) of a ROS 2 message, from rosbags' ROS 2 definitions.

    Nested messages become nested structs with their own ROS 2 DDS names.
    The class declares the topic type to DDS (name and XTypes layout);
    samples travel as rosbags' CDR bytes (Cyclone's own serialiser, a Python
    loop per element, would be far too slow for images).

    Raises:
        RosBagError: the message type is unknown to the ROS 2 type store.
    """
    idl = require("cyclonedds.idl", "live ROS 2 over DDS")
    types = require("cyclonedds.idl.types", "live ROS 2 over DDS")
    msgtype = norm_type(msgtype)
    store = ros2_typestore()
    if msgtype not in store.fielddefs:
        raise RosBagError(f"ROS 2 message type {msgtype} is not known to rosbags' ROS 2 type store")
    base = {
        "bool": bool,
        "byte": types.byte,
        "char": types.uint8,
        "int8": types.int8,
        "uint8": types.uint8,
        "int16": types.int16,
        "uint16": types.uint16,
        "int32": types.int32,
        "uint32": types.uint32,
        "int64": types.int64,
        "uint64": types.uint64,
        "float32": types.float32,
        "float64": types.float64,
    }

    def field_type(node: tuple) -> Any:
        kind, detail = node
        kind = int(kind)
        if kind == 1:  # base type: (name, string bound)
            name, bound = detail
            if name == "string":
                return types.bounded_str[bound] if bound else str
            if name not in base:
                raise RosBagError(f"{msgtype}: field type {name} is not supported on DDS")
            return base[name]
        if kind == 2:  # nested message
            return dds_type(detail)
        sub, size = detail
        if kind == 3:  # fixed-size array
            return types.array[field_type(sub), size]
        return types.sequence[field_type(sub), size] if size else types.sequence[field_type(sub)]

    _, fields = store.fielddefs[msgtype]
    annotations = {name: field_type(node) for name, node in fields}
    if not annotations:  # an empty ROS 2 message carries one placeholder byte
        annotations = {"structure_needs_at_least_one_member": types.uint8}
    class_name = msgtype.replace("/", "_")
    return idl.make_idl_struct(class_name, dds_type_name(msgtype), annotations)


def loopback_config(domain_id: int | None = None) -> str:
    """A Cyclone DDS configuration that keeps all traffic on 127.0.0.1 (no multicast, unicast discovery)."""
    domain = "any" if domain_id is None else str(int(domain_id))
    return (
        f'<CycloneDDS><Domain id="{domain}"><General>'
        '<Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>'
        "<AllowMulticast>false</AllowMulticast>"
        # large datagrams: a 640x480 image is ~15 fragments instead of ~700 (loopback MTU is 64 kB)
        "<MaxMessageSize>65000B</MaxMessageSize><FragmentSize>64000B</FragmentSize></General>"
        "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>30</MaxAutoParticipantIndex>"
        '<Peers><Peer address="127.0.0.1"/></Peers></Discovery>'
        '<Internal><SocketReceiveBufferSize min="default" max="4MB"/></Internal>'
        "</Domain></CycloneDDS>"
    )


_NUMPY = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}


def ros2_message(msgtype: str, **fields: Any) -> Any:
    """A ROS 2 message (rosbags dataclass) with the given fields and ROS defaults for the rest.

    Defaults follow the ROS 2 definitions: zero, empty string, empty
    sequence, zero-filled fixed arrays, nested messages built the same way.
    """
    msgtype = norm_type(msgtype)
    store = ros2_typestore()
    if msgtype not in store.fielddefs:
        raise RosBagError(f"ROS 2 message type {msgtype} is not known to rosbags' ROS 2 type store")
    _, defs = store.fielddefs[msgtype]
    names = {name for name, _ in defs}
    unknown = set(fields) - names
    if unknown:
        raise TypeError(f"{msgtype} has no fields {sorted(unknown)} (fields: {sorted(names)})")

    def default(node: tuple) -> Any:
        kind, detail = int(node[0]), node[1]
        if kind == 1:
            name = detail[0]
            return "" if name == "string" else (False if name == "bool" else _NUMPY[name](0).item())
        if kind == 2:
            return ros2_message(detail)
        sub, size = detail
        if int(sub[0]) == 1 and sub[1][0] in _NUMPY:
            return np.zeros(size if kind == 3 else 0, dtype=_NUMPY[sub[1][0]])
        return [default(sub) for _ in range(size)] if kind == 3 else []

    values = {name: fields[name] if name in fields else default(node) for name, node in defs}
    return store.types[msgtype](**values)


_POLICIES = {
    1: "USER_DATA",
    2: "DURABILITY",
    3: "PRESENTATION",
    4: "DEADLINE",
    5: "LATENCY_BUDGET",
    6: "OWNERSHIP",
    8: "LIVELINESS",
    9: "TIME_BASED_FILTER",
    10: "PARTITION",
    11: "RELIABILITY",
    12: "DESTINATION_ORDER",
    13: "HISTORY",
    14: "RESOURCE_LIMITS",
    21: "LIFESPAN",
    23: "DATA_REPRESENTATION",
    24: "TYPE_CONSISTENCY",
}


class _Endpoint:
    """A reader or writer on one ROS 2 topic, with what is needed to name it in errors."""

    def __init__(self, entity: Any, topic: str, msgtype: str, qos: QosProfile, reader: bool) -> None:
        self.entity, self.topic, self.msgtype, self.qos, self.is_reader = entity, topic, msgtype, qos, reader
        self.incompatible_seen = 0

    def qos_error(self) -> str | None:
        """A new incompatible-QoS report for this endpoint (None when nothing changed)."""
        if self.is_reader:
            status = self.entity.get_requested_incompatible_qos_status()
        else:
            status = self.entity.get_offered_incompatible_qos_status()
        if status.total_count <= self.incompatible_seen:
            return None
        self.incompatible_seen = status.total_count
        policy = _POLICIES.get(int(status.last_policy_id), f"policy {status.last_policy_id}")
        if self.is_reader:
            return (
                f"{self.topic}: a publisher does not match this subscriber's QoS ({policy}): engram asks for "
                f"{self.qos.describe()} and the publisher offers less"
                + (" (a latched topic needs a reliable, transient local publisher)" if self.qos.transient_local else "")
            )
        return f"{self.topic}: a subscriber asks for more than engram offers ({policy}; engram offers {self.qos.describe()})"


# Domains configured in this process (Cyclone allows one configuration per domain id and process).
_DOMAINS: dict[int, tuple[Any, str]] = {}


class Ros2Graph:
    """A DDS participant on a ROS 2 domain, with ROS 2 readers and writers of raw CDR samples.

    Args:
        domain_id: the ROS_DOMAIN_ID.
        config: None (Cyclone's defaults, or ``CYCLONEDDS_URI``), "loopback"
            (`loopback_config`: 127.0.0.1 only) or a Cyclone XML configuration.
    """

    def __init__(self, domain_id: int = 0, *, config: str | None = None) -> None:
        if not 0 <= int(domain_id) <= 232:
            raise ValueError(f"ROS 2 domain ids are 0..232, got {domain_id}")
        domain = require("cyclonedds.domain", "live ROS 2 over DDS")
        self.domain_id = int(domain_id)
        if config == "loopback":
            config = loopback_config(self.domain_id)
        if config:
            known = _DOMAINS.get(self.domain_id)
            if known is None:
                _DOMAINS[self.domain_id] = (domain.Domain(self.domain_id, config), config)
            elif known[1] != config:
                raise ValueError(f"DDS domain {self.domain_id} is already configured differently in this process")
        self.participant = domain.DomainParticipant(self.domain_id)
        self._topics: dict[str, tuple[Any, str]] = {}
        self.endpoints: list[_Endpoint] = []
        self._store = ros2_typestore()

    def _topic(self, topic: str, msgtype: str) -> Any:
        name = dds_topic_name(topic)
        if name in self._topics:
            dds_topic, known = self._topics[name]
            if known != msgtype:
                raise RosBagError(f"{topic} is already used with type {known}, not {msgtype}")
            return dds_topic
        topic_mod = require("cyclonedds.topic", "live ROS 2 over DDS")
        dds_topic = topic_mod.Topic(self.participant, name, dds_type(msgtype))
        self._topics[name] = (dds_topic, msgtype)
        return dds_topic

    @staticmethod
    def _qos(profile: QosProfile, keep_all: bool = False) -> Any:
        core = require("cyclonedds.core", "live ROS 2 over DDS")
        p = core.Policy
        return core.Qos(
            p.Reliability.Reliable(max_blocking_time=1_000_000_000) if profile.reliable else p.Reliability.BestEffort,
            p.Durability.TransientLocal if profile.transient_local else p.Durability.Volatile,
            p.History.KeepAll if keep_all else p.History.KeepLast(depth=int(profile.depth)),
            # ROS 2 speaks classic CDR (XCDR1); rosbags writes and reads exactly that
            p.DataRepresentation(use_cdrv0_representation=True),
        )

    def reader(self, topic: str, msgtype: str, qos: QosProfile, keep_all: bool = False) -> _Endpoint:
        sub = require("cyclonedds.sub", "live ROS 2 over DDS")
        msgtype = norm_type(msgtype)
        entity = sub.DataReader(self.participant, self._topic(topic, msgtype), self._qos(qos, keep_all))
        ep = _Endpoint(entity, topic, msgtype, qos, reader=True)
        self.endpoints.append(ep)
        return ep

    def writer(self, topic: str, msgtype: str, qos: QosProfile) -> _Endpoint:
        pub = require("cyclonedds.pub", "live ROS 2 over DDS")
        msgtype = norm_type(msgtype)
        entity = pub.DataWriter(self.participant, self._topic(topic, msgtype), self._qos(qos))
        ep = _Endpoint(entity, topic, msgtype, qos, reader=False)
        self.endpoints.append(ep)
        return ep

    def take_raw(self, reader: _Endpoint, max_samples: int = 64) -> list[bytes]:
        """Raw CDR samples (with the 4-byte encapsulation header) waiting in ``reader``."""
        from cyclonedds._clayer import (
            ddspy_take,  # the sample bytes as they arrived, no Python decoding
        )
        from cyclonedds.core import InstanceState, SampleState, ViewState

        got = ddspy_take(reader.entity._ref, SampleState.Any | ViewState.Any | InstanceState.Any, max_samples)
        if isinstance(got, int):
            raise RosBagError(f"{reader.topic}: taking samples failed (DDS return code {got})")
        return [data for data, info in got if info.valid_data]

    def decode(self, reader: _Endpoint, data: bytes) -> Any:
        """A raw sample as a rosbags message; a malformed sample raises `RosBagError` naming the topic."""
        try:
            return self._store.deserialize_cdr(data, reader.msgtype)
        except Exception as exc:
            raise RosBagError(
                f"{reader.topic}: malformed {reader.msgtype} sample ({len(data)} bytes): {exc!r}"
            ) from exc

    def write_raw(self, writer: _Endpoint, data: bytes | memoryview) -> None:
        from cyclonedds._clayer import ddspy_write

        data = bytes(data)
        if len(data) % 4:
            data += b"\0" * (4 - len(data) % 4)
        ret = ddspy_write(writer.entity._ref, data)
        if ret < 0:
            raise RosBagError(f"{writer.topic}: write failed (DDS return code {ret})")

    def write(self, writer: _Endpoint, msg: Any) -> None:
        """Publish a rosbags message (see `ros2_message`)."""
        self.write_raw(writer, self._store.serialize_cdr(msg, writer.msgtype))

    def matched(self, endpoint: _Endpoint) -> int:
        """How many remote endpoints currently match ``endpoint``."""
        if endpoint.is_reader:
            return int(endpoint.entity.get_subscription_matched_status().current_count)
        return int(endpoint.entity.get_publication_matched_status().current_count)

    def qos_errors(self) -> list[str]:
        """New incompatible-QoS reports, one line per endpoint, each naming its topic."""
        return [e for e in (ep.qos_error() for ep in self.endpoints) if e]

    def close(self) -> None:
        """Leave the graph: the participant and all its readers and writers are deleted."""
        self.endpoints.clear()
        self._topics.clear()
        if self.participant is not None:
            self.participant.__del__()  # dds_delete: the participant and every entity under it
            self.participant = None


def _reader_qos(role: str, reliable: bool) -> tuple[QosProfile, bool]:
    """(QoS, keep all) a subscriber asks for per role: the weakest that still gets the data.

    Best effort matches both best-effort and reliable publishers; ``reliable``
    asks reliable delivery of every sample (replays, benchmarks). /tf_static
    must be transient local to receive the transforms latched before we joined.
    """
    if role == "tf_static":
        return QosProfile(reliable=True, transient_local=True, depth=100), False
    if role == "labels":
        return QosProfile(reliable=True, transient_local=reliable, depth=10), False
    if reliable:
        return QosProfile(reliable=True, transient_local=False, depth=100), True
    return QosProfile(reliable=False, transient_local=False, depth=30 if role in ("tf", "odom", "pose") else 10), False


class Ros2Source:
    """Frames from a live ROS 2 robot over DDS: camera topics and poses into `FrameAssembler`.

    A background thread takes every sample as it arrives (so DDS queues never
    overflow while the caller is busy) and hands it to the assembler;
    iterating (or `poll`) decodes and yields the completed frames. Problems
    with one topic (a malformed sample, an unknown encoding, a tf loop, a QoS
    mismatch, no /tf_static) are logged in `errors`, each naming its topic,
    and the source keeps running.

    Args:
        domain_id: the robot's ROS_DOMAIN_ID.
        rgb_topic, depth_topic, info_topic: camera topics; a name ending in
            ``/compressed`` or ``/compressedDepth`` is a CompressedImage.
        pose_source, pose_topic, world_frame, camera_frame, sync_tolerance_s,
            base_from_camera: as for `FrameAssembler` / `RosBagSource`.
        instances_topic, labels_topic: engram's simulator-truth topics (off by default).
        reliable: ask reliable delivery of camera and pose topics (the
            publisher must be reliable); default best effort, which matches
            any publisher.
        config: Cyclone DDS configuration (None, "loopback" or XML), see `Ros2Graph`.
        max_frames: stop after this many frames (None: until `close`).
        timeout_s: stop when no frame completes for this long (None: wait).
        tf_static_timeout_s: after images have arrived this long without a
            /tf_static message, log an error naming /tf_static.
        graph: share an existing `Ros2Graph` (e.g. the node's).
    """

    def __init__(
        self,
        domain_id: int = 0,
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
        instances_topic: str | None = None,
        labels_topic: str | None = None,
        reliable: bool = False,
        config: str | None = None,
        max_frames: int | None = None,
        timeout_s: float | None = 10.0,
        tf_static_timeout_s: float = 5.0,
        graph: Ros2Graph | None = None,
    ) -> None:
        self.domain_id = int(domain_id)
        self.config = config
        self.reliable = reliable
        self.max_frames, self.timeout_s = max_frames, timeout_s
        self.tf_static_timeout_s = tf_static_timeout_s
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
            source_name=f"ros2 domain {self.domain_id}",
        )
        self.routes = live_routes(
            self.assembler,
            rgb_topic=rgb_topic,
            depth_topic=depth_topic,
            info_topic=info_topic,
            pose_topic=pose_topic,
            instances_topic=instances_topic,
            labels_topic=labels_topic,
        )
        self.graph = graph
        self._own_graph = graph is None
        self.received: dict[str, int] = {r.topic: 0 for r in self.routes}
        self.errors: list[str] = []
        self.error_counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers: list[tuple[_Endpoint, Callable[[Any], None], str]] = []
        self._first_image_at: float | None = None
        self._tf_static_reported = False
        self.log: Callable[[str], None] = lambda line: None
        self.assembler.on_skip = lambda kind, message: self.error(message.replace(" at t=", ": at t=", 1))

    # errors ---------------------------------------------------------------
    def error(self, line: str) -> None:
        """Record one problem (kept: the last 100, and a count per topic) and log it."""
        topic = line.split(":", 1)[0]
        self.error_counts[topic] = self.error_counts.get(topic, 0) + 1
        self.errors.append(line)
        del self.errors[:-100]
        if self.error_counts[topic] <= 3 or self.error_counts[topic] % 100 == 0:
            self.log(line)

    # lifecycle --------------------------------------------------------------
    def start(self) -> Ros2Source:
        if self._thread is not None:
            return self
        if self.graph is None:
            self.graph = Ros2Graph(self.domain_id, config=self.config)
        for route in self.routes:
            qos, keep_all = _reader_qos(route.role, self.reliable)
            self._readers.append(
                (self.graph.reader(route.topic, route.msgtype, qos, keep_all), route.handle, route.role)
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._receive, name="engram-ros2-receive", daemon=True)
        self._thread.start()
        return self

    def subscribed(self) -> bool:
        """True once every camera topic has a matched publisher."""
        return all(self.graph.matched(r) > 0 for r, _, role in self._readers if role in ("rgb", "depth", "info"))

    def _receive(self) -> None:
        core = require("cyclonedds.core", "live ROS 2 over DDS")
        waitset = core.WaitSet(self.graph.participant)
        for reader, _, _ in self._readers:
            waitset.attach(
                core.ReadCondition(reader.entity, core.SampleState.Any | core.ViewState.Any | core.InstanceState.Any)
            )
        while not self._stop.is_set():
            waitset.wait(100_000_000)  # 0.1 s, so stop is seen
            for reader, handle, role in self._readers:
                try:
                    samples = self.graph.take_raw(reader)
                except RosBagError as exc:
                    with self._lock:
                        self.error(str(exc))
                    continue
                for data in samples:
                    try:
                        msg = self.graph.decode(reader, data)
                    except RosBagError as exc:
                        with self._lock:
                            self.received[reader.topic] += 1
                            self.error(str(exc))
                        continue
                    with self._lock:
                        self.received[reader.topic] += 1
                        if role in ("rgb", "depth") and self._first_image_at is None:
                            self._first_image_at = time.monotonic()
                        try:
                            handle(msg)
                        except Exception as exc:  # noqa: BLE001 (one bad message never stops the receiver)
                            self.error(f"{reader.topic}: {exc}")

    def poll(self, final: bool = False) -> list[Frame]:
        """Frames completed since the last call; checks QoS and /tf_static and logs problems."""
        with self._lock:
            frames = self.assembler.pop_frames(final=final, on_error=lambda exc: self.error(self._name_topic(exc)))
            self._check()
        return frames

    def _name_topic(self, exc: Exception) -> str:
        text = str(exc)
        for route in self.routes:
            if route.topic in text:
                return f"{route.topic}: {text}"
        if "tf" in text.lower():
            tf = next((r.topic for r in self.routes if r.role in ("tf", "odom", "pose")), "/tf")
            return f"{tf}: {text}"
        return f"{self.routes[0].topic}: {text}"

    def _check(self) -> None:
        for line in self.graph.qos_errors():
            self.error(line)
        static = next((r for r in self.routes if r.role == "tf_static"), None)
        if (
            static is not None
            and not self._tf_static_reported
            and self._first_image_at is not None
            and self.received.get(static.topic, 0) == 0
            and time.monotonic() - self._first_image_at > self.tf_static_timeout_s
            and (self.assembler.pose_source == "tf" or self.assembler.base_from_camera is None)
        ):
            self._tf_static_reported = True
            self.error(
                f"{static.topic}: no message {self.tf_static_timeout_s:.0f} s after the first image: the camera's "
                "place on the robot (base_link -> optical frame) is unknown until it comes; is a static transform "
                "publisher running, publishing reliable + transient local (tf2_ros' default)?"
            )

    def has_pending(self) -> bool:
        with self._lock:
            return self.assembler.has_pending()

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        count, last = 0, time.monotonic()
        try:
            while self.max_frames is None or count < self.max_frames:
                for frame in self.poll():
                    yield frame
                    count += 1
                    last = time.monotonic()
                    if self.max_frames is not None and count >= self.max_frames:
                        return
                if self.timeout_s is not None and time.monotonic() - last > self.timeout_s:
                    for frame in self.poll(final=True):
                        yield frame
                    return
                time.sleep(0.005)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self._readers.clear()
        if self._own_graph and self.graph is not None:
            self.graph.close()
            self.graph = None


# ----------------------------------------------------------------------------
# replaying a bag onto ROS 2
# ----------------------------------------------------------------------------


def _writer_qos(topic: str, reliable: bool) -> QosProfile:
    if topic.endswith("tf_static"):
        return QosProfile(reliable=True, transient_local=True, depth=100)
    if topic.endswith("/labels"):
        return QosProfile(reliable=True, transient_local=True, depth=10)
    return QosProfile(reliable=reliable, transient_local=False, depth=100)


def play_bag_ros2(
    path: Any,
    *,
    domain_id: int = 0,
    rate: float = 1.0,
    topics: Sequence[str] | None = None,
    config: str | None = None,
    reliable: bool = True,
    wait_for_subscribers_s: float = 10.0,
    start_delay_s: float = 0.5,
    graph: Ros2Graph | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Publish a bag's messages on ROS 2 topics with the bag's stamps and timing (``ros2 bag play`` without ROS 2).

    Any bag engram reads (ROS 1 ``.bag``, ROS 2 sqlite3 / mcap) is published
    as ROS 2 CDR on ``rt/<topic>``; /tf_static is latched (reliable,
    transient local). Waits up to ``wait_for_subscribers_s`` for a subscriber
    on every camera image topic, then publishes at ``rate`` times the recorded
    speed, and waits for reliable subscribers to acknowledge before returning.

    Returns:
        The number of messages published.
    """
    from engram.sims.ros.bags import _BagReader

    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    reader = _BagReader(path)
    wanted = list(topics) if topics is not None else list(reader.topics)
    for topic in wanted:
        if topic not in reader.topics:
            raise RosBagError(f"bag {path} has no topic {topic!r}")
    own = graph is None
    graph = graph or Ros2Graph(domain_id, config=config)
    try:
        writers = {t: graph.writer(t, reader.topics[t], _writer_qos(t, reliable)) for t in wanted}
        # camera images; engram's own simulator-truth topics are read only by choice
        images = [t for t in wanted if "Image" in reader.topics[t] and not t.startswith("/engram/")]
        deadline = time.monotonic() + wait_for_subscribers_s
        while time.monotonic() < deadline and not all(graph.matched(writers[t]) for t in images):
            if stop is not None and stop.is_set():
                return 0
            time.sleep(0.05)
        time.sleep(start_delay_s)  # the other subscriptions finish matching
        count, t0_bag, t0_wall = 0, None, time.monotonic()
        for topic, _, t_ns, data in reader.cdr_messages(wanted):
            if stop is not None and stop.is_set():
                break
            if t0_bag is None:
                t0_bag = t_ns
            delay = (t_ns - t0_bag) * 1e-9 / rate - (time.monotonic() - t0_wall)
            if delay > 0:
                time.sleep(delay)
            graph.write_raw(writers[topic], data)
            count += 1
        for w in writers.values():
            if w.qos.reliable:
                w.entity.wait_for_acks(5_000_000_000)
        return count
    finally:
        if own:
            graph.close()
