"""Reading ROS bags: ROS 1 ``.bag``, ROS 2 bag directories (sqlite3, mcap) and bare ``.mcap`` files.

`RosBagSource` reads a bag with ``rosbags`` and ``mcap`` (no ROS installation
needed), finds the camera, depth, calibration and pose topics when they are
unambiguous, and feeds the messages in log-time order to a `FrameAssembler`.
A ROS 1 bag whose index was lost (a recording cut short) is read record by
record up to the cut. `_BagReader` also hands out raw messages, which the
live players republish on ROS 1 and ROS 2.
"""

from __future__ import annotations

import contextlib
import math
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engram._optional import require
from engram.sims.ros.assembly import FrameAssembler, _Stats
from engram.sims.ros.messages import (
    COMPRESSED_TYPES,
    IMAGE_TYPES,
    INFO_TYPES,
    ODOM_TYPES,
    POSE_TYPES,
    STRING_TYPES,
    TF_TYPES,
    TOPICS,
    RosBagError,
    RosBagWarning,
    TfError,
    UnsupportedEncodingError,
    norm_type,
    ros1_typestore,
    ros2_typestore,
)
from engram.types import Frame, Pose

__all__ = ["RosBagSource", "bag_topics"]


# ----------------------------------------------------------------------------
# reading bags
# ----------------------------------------------------------------------------


class _Truncated(Exception):
    """Where a sequential read of a damaged bag had to stop."""


class _Ros1Scanner:
    """Sequential reader for ROS 1 bags whose index is missing or damaged (recording cut short).

    Walks the records from the start (bag format 2.0): chunks (none, bz2, lz4)
    hold connection and message records. An uncompressed chunk cut short is
    read up to the cut; a compressed one is lost whole.
    """

    MAGIC = b"#ROSBAG V2.0\n"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections: dict[int, tuple[str, str, str]] = {}  # id -> (topic, msgtype, msgdef)
        self.error: str | None = None

    @staticmethod
    def _fields(header: bytes) -> dict[bytes, bytes]:
        out, i = {}, 0
        while i + 4 <= len(header):
            (n,) = struct.unpack_from("<i", header, i)
            if n < 0 or i + 4 + n > len(header):
                raise ValueError("record header field overruns the header")
            key, _, value = header[i + 4 : i + 4 + n].partition(b"=")
            out[key] = value
            i += 4 + n
        return out

    def _records(self, buf: Any, start: int, end: int) -> Iterator[tuple[dict[bytes, bytes], memoryview, int]]:
        """(header fields, data, next position) of the complete records in ``buf[start:end]``."""
        pos = start
        while pos + 4 <= end:
            (hlen,) = struct.unpack_from("<i", buf, pos)
            if hlen < 0 or pos + 4 + hlen + 4 > end:
                return
            header = self._fields(bytes(buf[pos + 4 : pos + 4 + hlen]))
            (dlen,) = struct.unpack_from("<i", buf, pos + 4 + hlen)
            data_start = pos + 8 + hlen
            if dlen < 0 or data_start + dlen > end:
                return
            yield header, buf[data_start : data_start + dlen], data_start + dlen
            pos = data_start + dlen

    def _add_connection(self, header: dict[bytes, bytes], data: memoryview) -> None:
        conn = struct.unpack("<I", header[b"conn"])[0]
        fields = self._fields(bytes(data))
        topic = header.get(b"topic", fields.get(b"topic", b"")).decode()
        msgtype = norm_type(fields.get(b"type", b"").decode())
        self.connections[conn] = (topic, msgtype, fields.get(b"message_definition", b"").decode())

    def scan(self) -> Iterator[tuple[int, int, bytes]]:
        """(connection id, time_ns, raw ROS 1 bytes) in file order; sets ``error`` where reading stopped."""
        import bz2

        data = self.path.read_bytes()
        if not data.startswith(self.MAGIC):
            raise RosBagError(f"{self.path} is not a ROS 1 bag (format 2.0)")
        end, pos = len(data), len(self.MAGIC)
        while pos < end:
            if pos + 4 > end:
                self.error = f"record at byte {pos} is cut short"
                return
            (hlen,) = struct.unpack_from("<i", data, pos)
            if hlen < 0 or pos + 8 + hlen > end:
                self.error = f"record header at byte {pos} is cut short"
                return
            header = self._fields(data[pos + 4 : pos + 4 + hlen])
            (dlen,) = struct.unpack_from("<i", data, pos + 4 + hlen)
            data_start = pos + 8 + hlen
            complete = dlen >= 0 and data_start + dlen <= end
            payload = memoryview(data)[data_start : min(end, data_start + max(dlen, 0))]
            op = header.get(b"op", b"\x00")[0]
            if op == 0x05:  # chunk of connection and message records
                compression = header.get(b"compression", b"none").decode()
                if compression == "none":
                    yield from self._chunk(payload)  # a cut-short chunk is read up to the cut
                elif not complete:
                    pass
                else:
                    try:
                        if compression == "bz2":
                            inner = bz2.decompress(bytes(payload))
                        elif compression == "lz4":
                            inner = require("lz4.frame", "reading lz4 ROS 1 bags").decompress(bytes(payload))
                        else:
                            raise RosBagError(f"{self.path}: unknown chunk compression {compression!r}")
                    except RosBagError:
                        raise
                    except Exception as exc:  # noqa: BLE001 (any decompressor error means a damaged chunk)
                        self.error = f"chunk at byte {pos} cannot be decompressed ({exc})"
                        return
                    yield from self._chunk(memoryview(inner))
            elif complete and op == 0x07:
                self._add_connection(header, payload)
            elif complete and op == 0x02:
                conn = struct.unpack("<I", header[b"conn"])[0]
                sec, nsec = struct.unpack("<II", header[b"time"])
                yield conn, sec * 1_000_000_000 + nsec, bytes(payload)
            if not complete:
                self.error = f"record at byte {pos} ({dlen} bytes) is cut short at byte {end}"
                return
            pos = data_start + dlen

    def _chunk(self, buf: memoryview) -> Iterator[tuple[int, int, bytes]]:
        for header, payload, _ in self._records(buf, 0, len(buf)):
            op = header.get(b"op", b"\x00")[0]
            if op == 0x07:
                self._add_connection(header, payload)
            elif op == 0x02:
                conn = struct.unpack("<I", header[b"conn"])[0]
                sec, nsec = struct.unpack("<II", header[b"time"])
                yield conn, sec * 1_000_000_000 + nsec, bytes(payload)


class _BagReader:
    """Topic listing and time-ordered, deserialised messages for every supported bag layout."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RosBagError(f"bag {self.path} does not exist")
        self.kind: str
        self.anypath: Path | None = None
        if self.path.is_dir():
            if not (self.path / "metadata.yaml").exists():
                raise RosBagError(f"{self.path} is a directory without metadata.yaml: not a ROS 2 bag")
            self.kind, self.anypath = "any", self.path
        elif self.path.suffix == ".bag":
            self.kind, self.anypath = "any", self.path
        elif self.path.suffix in (".mcap", ".db3") and (self.path.parent / "metadata.yaml").exists():
            self.kind, self.anypath = "any", self.path.parent
        elif self.path.suffix == ".mcap":
            self.kind = "mcap"
        elif self.path.name == "metadata.yaml":
            self.kind, self.anypath = "any", self.path.parent
        else:
            raise RosBagError(
                f"{self.path}: not a ROS bag (expected a .bag file, a .mcap file or a ROS 2 bag directory)"
            )
        self.topics = self._list_topics()

    @contextlib.contextmanager
    def session(self) -> Iterator[_BagReader]:
        """Keep the bag open across several `messages` calls (one index read instead of one per call)."""
        if self.kind != "any" or getattr(self, "_session", None) is not None:
            yield self
            return
        self._session = self._open_any()
        try:
            yield self
        finally:
            self._session.close()
            self._session = None

    @contextlib.contextmanager
    def _any_reader(self) -> Iterator[Any]:
        if getattr(self, "_session", None) is not None:
            yield self._session
            return
        reader = self._open_any()
        try:
            yield reader
        finally:
            reader.close()

    def _open_any(self):
        highlevel = require("rosbags.highlevel", "reading ROS bags")
        reader = highlevel.AnyReader([self.anypath], default_typestore=ros2_typestore())
        try:
            reader.open()
        except Exception as exc:  # rosbags raises several types (ReaderError, AnyReaderError, ...)
            hint = ""
            if "index" in str(exc).lower() or self.path.suffix == ".bag":
                hint = " (a ROS 1 bag cut short loses its index: run `rosbag reindex` on a copy)"
            raise RosBagError(f"cannot open bag {self.path}: {exc}{hint}") from exc
        return reader

    def _list_topics(self) -> dict[str, str]:
        if self.kind == "any":
            try:
                reader = self._open_any()
            except RosBagError as exc:
                if self.path.suffix != ".bag" or not self.path.is_file():
                    raise
                # No usable index (a recording cut short): read the records in file order.
                self.kind = "ros1scan"
                scanner = _Ros1Scanner(self.path)
                for _ in scanner.scan():
                    pass
                if not scanner.connections:
                    raise RosBagError(f"{exc}; no complete connection record either") from exc
                warnings.warn(
                    RosBagWarning(
                        f"bag {self.path} has no usable index ({exc.__cause__ or exc}); reading it sequentially"
                        + (f": {scanner.error}, messages after that are lost" if scanner.error else "")
                    ),
                    stacklevel=4,
                )
                return {topic: msgtype for topic, msgtype, _ in scanner.connections.values()}
            try:
                return {c.topic: norm_type(c.msgtype) for c in reader.connections}
            finally:
                reader.close()
        mcap_reader = require("mcap.reader", "reading .mcap files")
        with open(self.path, "rb") as f:
            try:
                reader = mcap_reader.make_reader(f)
                summary = reader.get_summary()
            except Exception as exc:  # noqa: BLE001 (no summary: scanned below)
                summary = None
                first_error = exc
            if summary is not None:
                return {ch.topic: norm_type(summary.schemas[ch.schema_id].name) for ch in summary.channels.values()}
            # No summary (the file was cut short): scan what is there.
            f.seek(0)
            topics: dict[str, str] = {}
            try:
                for schema, channel, _ in mcap_reader.NonSeekingReader(f).iter_messages(log_time_order=False):
                    topics.setdefault(channel.topic, norm_type(schema.name))
            except Exception:  # noqa: BLE001, S110
                pass  # a cut-short file: the topics seen before the cut are what there is
            if not topics:
                raise RosBagError(f"cannot read {self.path}: {first_error!r}") from first_error
            return topics

    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, str, int, Any]]:
        """(topic, msgtype, log_time_ns, message) in log-time order.

        Raises:
            RosBagError: the bag is truncated or corrupt; messages before the
                damage have been yielded. The error names the last topic and time read.
        """
        wanted = set(topics)
        self._last: tuple[str, int | None] = ("(start of bag)", None)
        try:
            if self.kind == "any":
                with self._any_reader() as reader:
                    conns = [c for c in reader.connections if c.topic in wanted]
                    for conn, t_ns, raw in reader.messages(connections=conns):
                        msg = reader.deserialize(raw, conn.msgtype)
                        self._last = (conn.topic, t_ns)
                        yield conn.topic, norm_type(conn.msgtype), t_ns, msg
            elif self.kind == "ros1scan":
                store = ros1_typestore()
                typesys = require("rosbags.typesys", "reading ROS bags")
                for topic, msgtype, t_ns, raw in self._scan(wanted):
                    if msgtype not in store.types:
                        msgdef = next(d for tp, ty, d in self._scanner.connections.values() if ty == msgtype)
                        store.register(typesys.get_types_from_msg(msgdef, msgtype))
                    msg = store.deserialize_ros1(raw, msgtype)
                    self._last = (topic, t_ns)
                    yield topic, msgtype, t_ns, msg
            else:
                yield from self._mcap_messages(wanted)
        except RosBagError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            topic, t_ns = self._last
            when = "before the first message" if t_ns is None else f"after {topic} at t={t_ns * 1e-9:.3f} s"
            detail = str(exc) if isinstance(exc, _Truncated) else repr(exc)
            raise RosBagError(f"bag {self.path} is truncated or corrupt: reading stopped {when}: {detail}") from exc

    def _scan(self, wanted: set[str]) -> Iterator[tuple[str, str, int, bytes]]:
        self._scanner = _Ros1Scanner(self.path)
        for conn, t_ns, raw in self._scanner.scan():
            topic, msgtype, _ = self._scanner.connections.get(conn, ("", "", ""))
            if topic in wanted:
                yield topic, msgtype, t_ns, raw
        if self._scanner.error:
            raise _Truncated(self._scanner.error)

    def ros1_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log_time_ns, ROS 1 wire bytes) in log-time order, for republishing on ROS 1.

        ROS 2 (CDR) messages are converted to the ROS 1 wire format.
        """
        wanted = set(self.topics if topics is None else topics)
        ros2 = ros2_typestore()
        if self.kind == "ros1scan":
            yield from self._scan(wanted)
            return
        if self.kind == "any":
            with self._any_reader() as reader:
                conns = [c for c in reader.connections if c.topic in wanted]
                for conn, t_ns, raw in reader.messages(connections=conns):
                    msgtype = norm_type(conn.msgtype)
                    data = bytes(raw) if not reader.is2 else bytes(ros2.cdr_to_ros1(raw, msgtype))
                    yield conn.topic, msgtype, t_ns, data
            return
        mcap_reader = require("mcap.reader", "reading .mcap files")
        with open(self.path, "rb") as f:
            for schema, channel, message in mcap_reader.make_reader(f).iter_messages(
                topics=sorted(wanted), log_time_order=True
            ):
                msgtype = norm_type(schema.name)
                data = message.data if channel.message_encoding == "ros1" else ros2.cdr_to_ros1(message.data, msgtype)
                yield channel.topic, msgtype, message.log_time, bytes(data)

    def cdr_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log_time_ns, ROS 2 CDR bytes) in log-time order, for publishing on ROS 2.

        ROS 2 messages are passed on as recorded; ROS 1 messages are converted.
        """
        wanted = set(self.topics if topics is None else topics)
        ros2 = ros2_typestore()
        if self.kind == "mcap":
            mcap_reader = require("mcap.reader", "reading .mcap files")
            with open(self.path, "rb") as f:
                for schema, channel, message in mcap_reader.make_reader(f).iter_messages(
                    topics=sorted(wanted), log_time_order=True
                ):
                    msgtype = norm_type(schema.name)
                    data = (
                        message.data if channel.message_encoding == "cdr" else ros2.ros1_to_cdr(message.data, msgtype)
                    )
                    yield channel.topic, msgtype, message.log_time, bytes(data)
            return
        if self.kind == "any":
            with self._any_reader() as reader:
                if reader.is2:
                    conns = [c for c in reader.connections if c.topic in wanted]
                    for conn, t_ns, raw in reader.messages(connections=conns):
                        yield conn.topic, norm_type(conn.msgtype), t_ns, bytes(raw)
                    return
        for topic, msgtype, t_ns, raw in self.ros1_messages(wanted):
            ros2_type = "tf2_msgs/msg/TFMessage" if msgtype == "tf/msg/tfMessage" else msgtype
            yield topic, ros2_type, t_ns, bytes(ros2.ros1_to_cdr(raw, ros2_type))

    def _mcap_messages(self, wanted: set[str]) -> Iterator[tuple[str, str, int, Any]]:
        mcap_reader = require("mcap.reader", "reading .mcap files")
        ros2, ros1 = ros2_typestore(), None
        typesys = require("rosbags.typesys", "reading ROS bags")
        with open(self.path, "rb") as f:
            try:
                reader = mcap_reader.make_reader(f)
                reader.get_summary()
                it = reader.iter_messages(topics=sorted(wanted), log_time_order=True)
            except Exception:  # noqa: BLE001 (no summary: read without the index)
                f.seek(0)
                it = mcap_reader.NonSeekingReader(f).iter_messages(topics=sorted(wanted), log_time_order=False)
            for schema, channel, message in it:
                msgtype = norm_type(schema.name)
                if channel.message_encoding == "ros1":
                    ros1 = ros1 or ros1_typestore()
                    store, deser = ros1, "ros1"
                else:
                    store, deser = ros2, "cdr"
                if msgtype not in store.types and schema.data:
                    store.register(typesys.get_types_from_msg(schema.data.decode().split("=" * 80)[0], msgtype))
                if deser == "ros1":
                    msg = store.deserialize_ros1(message.data, msgtype)
                else:
                    msg = store.deserialize_cdr(message.data, msgtype)
                self._last = (channel.topic, message.log_time)
                yield channel.topic, msgtype, message.log_time, msg


def bag_topics(path: str | Path) -> dict[str, str]:
    """Topic -> message type (``pkg/msg/Type``) of a bag."""
    return dict(_BagReader(path).topics)


def _pick(candidates: list[str], what: str, prefer: Sequence[str], path: Path) -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RosBagError(f"bag {path} has no {what} topic; pass it explicitly")
    for word in prefer:
        hits = [c for c in candidates if word in c]
        if len(hits) == 1:
            return hits[0]
        if hits:
            candidates = hits
    raise RosBagError(f"bag {path} has several {what} topics {sorted(candidates)}: pass one explicitly")


class RosBagSource:
    """Frames from a ROS 1 or ROS 2 bag: colour + aligned depth + camera info + pose.

    Iterating yields `Frame`s in time order (index from 0, ``timestamp_s`` =
    the colour image's header stamp). Topics are found automatically when
    unambiguous and can always be given. Each iteration re-reads the bag.

    Args:
        path: a ROS 1 ``.bag``, a ROS 2 bag directory (sqlite3 or mcap), or a bare ``.mcap`` file.
        rgb_topic: colour ``sensor_msgs/Image`` or ``CompressedImage`` topic.
        depth_topic: depth (aligned to colour) ``Image`` or ``compressedDepth`` topic.
        info_topic: the colour camera's ``sensor_msgs/CameraInfo`` topic.
        pose_source: "tf" (/tf + /tf_static chain world -> camera), "odom"
            (nav_msgs/Odometry) or "pose" (geometry_msgs/PoseStamped).
        world_frame: fixed frame of the poses; None picks map, odom, world.
        camera_frame: tf frame of the camera; None uses the image header's.
        sync_tolerance_s: largest colour-depth and colour-pose time gap.
        base_from_camera: fixed optical-camera extrinsic for odom / pose
            sources (None: looked up in /tf_static).
        pose_topic: the Odometry / PoseStamped topic (found when unambiguous).
        camera_convention: "optical" or "body" axes of ``camera_frame``.
        strict: raise `RosBagError` on a truncated bag (after yielding the
            frames before the damage); False warns and stops instead.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        rgb_topic: str | None = None,
        depth_topic: str | None = None,
        info_topic: str | None = None,
        pose_source: Literal["tf", "odom", "pose"] = "tf",
        world_frame: str | None = None,
        camera_frame: str | None = None,
        sync_tolerance_s: float = 0.02,
        base_from_camera: Pose | np.ndarray | None = None,
        pose_topic: str | None = None,
        base_frame: str | None = None,
        camera_convention: Literal["optical", "body"] = "optical",
        strict: bool = True,
    ) -> None:
        if pose_source not in ("tf", "odom", "pose"):
            raise ValueError(f"pose_source must be 'tf', 'odom' or 'pose', got {pose_source!r}")
        if not (sync_tolerance_s >= 0 and math.isfinite(sync_tolerance_s)):
            raise ValueError(f"sync_tolerance_s must be a finite number >= 0, got {sync_tolerance_s}")
        self.path = Path(path)
        self._reader = _BagReader(self.path)
        topics = self._reader.topics
        self.pose_source = pose_source
        self.world_frame = world_frame
        self.camera_frame = camera_frame
        self.sync_tolerance_s = float(sync_tolerance_s)
        self.base_from_camera = base_from_camera
        self.base_frame = base_frame
        self.camera_convention = camera_convention
        self.strict = strict
        self.stats = _Stats()

        def check(topic: str, types: Sequence[str], what: str) -> str:
            if topic not in topics:
                raise RosBagError(f"bag {self.path} has no topic {topic!r} ({what}); topics: {sorted(topics)}")
            if topics[topic] not in types:
                raise RosBagError(f"topic {topic!r} is {topics[topic]}, expected {what} ({types[0]})")
            return topic

        image_like = IMAGE_TYPES + COMPRESSED_TYPES
        images = [t for t, ty in topics.items() if ty in image_like]
        if rgb_topic is None:
            colour = [t for t in images if "depth" not in t.lower() and not t.startswith("/engram/")]
            colour = [t for t in colour if "infra" not in t.lower() and "/ir" not in t.lower()] or colour
            raw = [t for t in colour if topics[t] in IMAGE_TYPES]
            rgb_topic = _pick(raw or colour, "colour image", ("color", "rgb", "image_raw"), self.path)
        self.rgb_topic = check(rgb_topic, image_like, "colour image")
        if depth_topic is None:
            depth = [t for t in images if "depth" in t.lower()]
            raw = [t for t in depth if topics[t] in IMAGE_TYPES]
            depth_topic = _pick(raw or depth, "depth image", ("aligned", "registered", "image_raw"), self.path)
        self.depth_topic = check(depth_topic, image_like, "depth image")
        if info_topic is None:
            infos = [t for t, ty in topics.items() if ty in INFO_TYPES]
            ns = (
                self.rgb_topic.rsplit("/", 2)[0]
                if self.rgb_topic.endswith("/compressed")
                else self.rgb_topic.rsplit("/", 1)[0]
            )
            same_ns = [t for t in infos if t == f"{ns}/camera_info"]
            if not infos:
                raise RosBagError(f"bag {self.path} has no sensor_msgs/CameraInfo topic; pass info_topic")
            info_topic = same_ns[0] if same_ns else _pick(infos, "camera info", ("color", "rgb"), self.path)
        self.info_topic = check(info_topic, INFO_TYPES, "camera info")
        self.tf_topics = [t for t, ty in topics.items() if ty in TF_TYPES]
        if pose_source == "tf":
            if not self.tf_topics:
                raise RosBagError(f"pose_source='tf' but bag {self.path} has no /tf or /tf_static topic")
            self.pose_topic = None
        else:
            types = ODOM_TYPES if pose_source == "odom" else POSE_TYPES
            if pose_topic is None:
                pose_topic = _pick(
                    [t for t, ty in topics.items() if ty in types], types[0], ("odom", "pose"), self.path
                )
            self.pose_topic = check(pose_topic, types, types[0])
        self.instances_topic = TOPICS["instances"] if topics.get(TOPICS["instances"]) in IMAGE_TYPES else None
        self.labels_topic = TOPICS["labels"] if topics.get(TOPICS["labels"]) in STRING_TYPES else None

    @property
    def topics(self) -> dict[str, str]:
        return dict(self._reader.topics)

    def _fail(self, exc: RosBagError) -> None:
        if self.strict:
            raise exc
        warnings.warn(RosBagWarning(f"{exc} (stopping; frames before it were kept)"), stacklevel=3)

    def __iter__(self) -> Iterator[Frame]:
        with self._reader.session():
            yield from self._frames()

    def _frames(self) -> Iterator[Frame]:
        asm = FrameAssembler(
            pose_source=self.pose_source,
            world_frame=self.world_frame,
            camera_frame=self.camera_frame,
            camera_convention=self.camera_convention,
            base_from_camera=self.base_from_camera,
            base_frame=self.base_frame,
            sync_tolerance_s=self.sync_tolerance_s,
            use_instances=self.instances_topic is not None,
            max_wait_s=5.0,
            source_name=str(self.path.name),
        )
        self.stats = asm.stats
        # One pass in log-time order: an image waits in the assembler until tf (or odometry) and
        # calibration cover its stamp, as a live tf2 listener would, then becomes a frame.
        images = {self.rgb_topic, self.depth_topic} | ({self.instances_topic} if self.instances_topic else set())
        topics = [*images, self.info_topic, *self.tf_topics, *([self.pose_topic] if self.pose_topic else [])]
        if self.labels_topic:
            topics.append(self.labels_topic)
        try:
            for topic, msgtype, t_ns, msg in self._reader.messages(topics):
                if topic == self.rgb_topic:
                    asm.add_rgb(msg, topic, msgtype in COMPRESSED_TYPES)
                elif topic == self.depth_topic:
                    asm.add_depth(msg, topic, msgtype in COMPRESSED_TYPES)
                elif topic == self.instances_topic:
                    asm.add_instances(msg, topic)
                elif topic == self.info_topic:
                    asm.add_camera_info(msg)
                    continue
                elif msgtype in TF_TYPES:
                    asm.add_tf(msg, static=topic.endswith("tf_static"))
                elif topic == self.labels_topic:
                    asm.add_labels(msg, t_ns * 1e-9)
                    continue
                else:
                    asm.add_odometry(msg)
                yield from asm.pop_frames()
        except RosBagError as exc:
            if isinstance(exc, (UnsupportedEncodingError, TfError)) or "truncated" not in str(exc):
                raise
            if asm.has_camera_info:
                yield from asm.pop_frames(final=True)
            self._fail(exc)
            return
        if not asm.has_camera_info:
            raise RosBagError(f"bag {self.path}: no message on the camera info topic {self.info_topic!r}")
        yield from asm.pop_frames(final=True)
        if asm.stats.skipped:
            warnings.warn(
                RosBagWarning(f"{self.path.name}: {asm.stats.frames} frames, skipped {asm.stats.skipped}"),
                stacklevel=2,
            )
