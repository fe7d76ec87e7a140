"""Writing ROS bags: frames as the topics a robot with a RealSense camera publishes.

`record_bag` writes ROS 1 ``.bag``, ROS 2 bag directories (sqlite3, mcap) or
a bare ``.mcap`` with rosbags' writers; `_MsgFactory` builds ROS 1 or ROS 2
messages from one set of field names (also used to publish on ROS 2 over
DDS); `record_sim` records the embedded world along a seeded walk.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engram._optional import require
from engram.sims.ros.messages import (
    FRAMES,
    OPTICAL_IN_BODY,
    TOPICS,
    RosBagError,
    ros1_typestore,
    ros2_typestore,
)
from engram.types import CameraIntrinsics, Frame, Pose

__all__ = ["embedded_walk", "encode_compressed_depth", "record_bag", "record_sim"]


# ----------------------------------------------------------------------------
# writing bags
# ----------------------------------------------------------------------------


class _MsgFactory:
    """Builds ROS 1 or ROS 2 messages from one set of field names (case-insensitive: K/k, D/d)."""

    def __init__(self, ros1: bool) -> None:
        self.ros1 = ros1
        self.ts = ros1_typestore() if ros1 else ros2_typestore()
        self._fields: dict[str, dict[str, str]] = {}

    def make(self, typename: str, **values: Any) -> Any:
        cls = self.ts.types[typename]
        names = self._fields.get(typename)
        if names is None:
            names = {f.lower(): f for f in cls.__dataclass_fields__ if f != "__msgtype__"}
            self._fields[typename] = names
        kwargs = {names[k.lower()]: v for k, v in values.items() if k.lower() in names}
        missing = set(names.values()) - set(kwargs)
        for name in missing:  # ROS 1 Header.seq and similar
            if name == "seq":
                kwargs[name] = 0
            else:
                raise KeyError(f"{typename}: no value for field {name}")
        return cls(**kwargs)

    def time(self, t_ns: int) -> Any:
        return self.make("builtin_interfaces/msg/Time", sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)

    def header(self, t_ns: int, frame_id: str, seq: int = 0) -> Any:
        return self.make("std_msgs/msg/Header", seq=seq, stamp=self.time(t_ns), frame_id=frame_id)

    def image(self, header: Any, arr: np.ndarray, encoding: str) -> Any:
        arr = np.ascontiguousarray(arr)
        h, w = arr.shape[:2]
        return self.make(
            "sensor_msgs/msg/Image",
            header=header,
            height=h,
            width=w,
            encoding=encoding,
            is_bigendian=0,
            step=arr.strides[0],
            data=arr.reshape(-1).view(np.uint8),
        )

    def compressed(self, header: Any, data: bytes, fmt: str) -> Any:
        return self.make(
            "sensor_msgs/msg/CompressedImage", header=header, format=fmt, data=np.frombuffer(data, np.uint8)
        )

    def camera_info(self, header: Any, k: CameraIntrinsics) -> Any:
        roi = self.make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        kmat = np.array([k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1], dtype=np.float64)
        pmat = np.array([k.fx, 0, k.cx, 0, 0, k.fy, k.cy, 0, 0, 0, 1, 0], dtype=np.float64)
        return self.make(
            "sensor_msgs/msg/CameraInfo",
            header=header,
            height=k.height,
            width=k.width,
            distortion_model="plumb_bob",
            d=np.zeros(5, dtype=np.float64),
            k=kmat,
            r=np.eye(3).reshape(-1),
            p=pmat,
            binning_x=0,
            binning_y=0,
            roi=roi,
        )

    def _vec(self, v: np.ndarray) -> Any:
        return self.make("geometry_msgs/msg/Vector3", x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def _quat(self, q: np.ndarray) -> Any:
        return self.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    def _pose(self, pose: Pose) -> Any:
        t = pose.translation
        point = self.make("geometry_msgs/msg/Point", x=float(t[0]), y=float(t[1]), z=float(t[2]))
        return self.make("geometry_msgs/msg/Pose", position=point, orientation=self._quat(pose.as_quaternion()))

    def transform(self, t_ns: int, parent: str, child: str, parent_from_child: Pose) -> Any:
        tf = self.make(
            "geometry_msgs/msg/Transform",
            translation=self._vec(parent_from_child.translation),
            rotation=self._quat(parent_from_child.as_quaternion()),
        )
        return self.make(
            "geometry_msgs/msg/TransformStamped", header=self.header(t_ns, parent), child_frame_id=child, transform=tf
        )

    def tf_message(self, transforms: list[Any]) -> Any:
        return self.make("tf2_msgs/msg/TFMessage", transforms=transforms)

    def odometry(self, t_ns: int, parent: str, child: str, parent_from_child: Pose) -> Any:
        cov = np.zeros(36, dtype=np.float64)
        pose = self.make("geometry_msgs/msg/PoseWithCovariance", pose=self._pose(parent_from_child), covariance=cov)
        zero = self._vec(np.zeros(3))
        twist = self.make(
            "geometry_msgs/msg/TwistWithCovariance",
            twist=self.make("geometry_msgs/msg/Twist", linear=zero, angular=zero),
            covariance=cov,
        )
        return self.make(
            "nav_msgs/msg/Odometry", header=self.header(t_ns, parent), child_frame_id=child, pose=pose, twist=twist
        )

    def pose_stamped(self, t_ns: int, parent: str, parent_from_child: Pose) -> Any:
        return self.make(
            "geometry_msgs/msg/PoseStamped", header=self.header(t_ns, parent), pose=self._pose(parent_from_child)
        )

    def string(self, text: str) -> Any:
        return self.make("std_msgs/msg/String", data=text)

    def serialize(self, msg: Any, typename: str) -> bytes:
        if self.ros1:
            return self.ts.serialize_ros1(msg, typename)
        return self.ts.serialize_cdr(msg, typename)


def encode_compressed_depth(depth_m: np.ndarray, encoding: Literal["16UC1", "32FC1"] = "16UC1") -> tuple[bytes, str]:
    """Depth in metres to a ``compressedDepth`` payload and format string (image_transport_plugins' codec).

    16UC1 stores millimetres (lossless at 1 mm); 32FC1 stores quantised
    inverse depth with the codec's defaults (depth_max 10 m, quantisation 100).
    """
    import cv2

    d = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    if encoding == "16UC1":
        mm = np.zeros(d.shape, np.uint16)
        mm[valid] = np.clip(np.rint(d[valid] * 1000.0), 0, 65535).astype(np.uint16)
        header = struct.pack("<iff", 0, 0.0, 0.0)
        payload = mm
    elif encoding == "32FC1":
        depth_max, quant = 10.0, 100.0
        quant_a = quant * (quant + 1.0)
        quant_b = 1.0 - quant_a / depth_max
        inv = np.zeros(d.shape, np.uint16)
        keep = valid & (d < depth_max)
        inv[keep] = (quant_a / d[keep] + quant_b).astype(np.uint16)
        header = struct.pack("<iff", 0, quant_a, quant_b)
        payload = inv
    else:
        raise ValueError(f"compressedDepth encoding must be '16UC1' or '32FC1', got {encoding!r}")
    ok, png = cv2.imencode(".png", payload)
    if not ok:
        raise RosBagError("PNG encoding of depth failed")
    return header + png.tobytes(), f"{encoding}; compressedDepth png"


class _Writer:
    """One writer interface over rosbags' ROS 1 and ROS 2 writers."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        self.final_path = path
        self._tmpdir: Path | None = None
        self.connections: dict[str, Any] = {}
        if fmt == "ros1":
            rosbag1 = require("rosbags.rosbag1", "writing ROS 1 bags")
            self.msgs = _MsgFactory(ros1=True)
            self.writer = rosbag1.Writer(path)
        else:
            rosbag2 = require("rosbags.rosbag2", "writing ROS 2 bags")
            self.msgs = _MsgFactory(ros1=False)
            plugin = rosbag2.StoragePlugin.MCAP if fmt == "mcap" else rosbag2.StoragePlugin.SQLITE3
            target = path
            if fmt == "mcap" and path.suffix == ".mcap":
                # A bare .mcap file: write the bag directory beside it, then keep only the .mcap.
                self._tmpdir = Path(tempfile.mkdtemp(prefix=".engram-bag-", dir=path.parent))
                target = self._tmpdir / path.stem
            self.writer = rosbag2.Writer(target, version=9, storage_plugin=plugin)
        self.writer.open()

    def write(self, topic: str, typename: str, t_ns: int, msg: Any) -> None:
        conn = self.connections.get(topic)
        if conn is None:
            wire_type = typename
            if self.fmt == "ros1":
                conn = self.writer.add_connection(
                    topic, wire_type, typestore=self.msgs.ts, latching=int(topic.endswith("tf_static"))
                )
            else:
                conn = self.writer.add_connection(topic, wire_type, typestore=self.msgs.ts)
            self.connections[topic] = conn
        self.writer.write(conn, t_ns, self.msgs.serialize(msg, typename))

    def close(self) -> None:
        self.writer.close()
        if self._tmpdir is not None:
            files = list(self._tmpdir.rglob("*.mcap"))
            shutil.move(str(files[0]), self.final_path)
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001, S110 (already failing: the first error is the one to raise)
            pass
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _infer_fmt(path: Path) -> str:
    if path.suffix == ".bag":
        return "ros1"
    if path.suffix == ".mcap":
        return "mcap"
    if path.suffix in ("", ".db3"):
        return "sqlite3"
    raise ValueError(f"cannot tell the bag format from {path.name!r}: pass fmt='ros1', 'mcap' or 'sqlite3'")


def record_bag(
    frames: Iterable[Frame],
    path: str | Path,
    *,
    fmt: Literal["mcap", "ros1", "sqlite3"] | None = None,
    compressed: bool = False,
    tf: bool = True,
    depth_encoding: Literal["32FC1", "16UC1"] = "32FC1",
    jpeg_quality: int = 95,
    base_from_camera: Pose | None = None,
    odom: bool = True,
    instances: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write frames as a ROS bag with the topics a robot with a RealSense camera publishes.

    Topics: ``/camera/color/image_raw`` (rgb8; ``.../compressed`` jpeg when
    ``compressed``), ``/camera/aligned_depth_to_color/image_raw`` (32FC1 m or
    16UC1 mm; ``.../compressedDepth`` 16UC1 png when ``compressed``),
    ``/camera/color/camera_info``, ``/tf`` (odom -> base_link) and
    ``/tf_static`` (map -> odom, base_link -> camera_link ->
    camera_color_optical_frame), ``/odom`` (nav_msgs/Odometry) and ``/pose``
    (geometry_msgs/PoseStamped of base_link in map), and engram's own
    ``/engram/instances`` (32SC1) + ``/engram/labels`` (JSON) when frames
    carry instances. Header stamps are the frames' ``timestamp_s``.

    Args:
        frames: frames with intrinsics (depth and pose optional).
        path: ``x.bag`` (ROS 1), ``x.mcap`` (a bare ROS 2 mcap file) or a
            directory (a ROS 2 bag; sqlite3 unless ``fmt='mcap'``).
        fmt: "ros1", "mcap" or "sqlite3"; None infers it from ``path``.
        compressed: write jpeg colour and compressedDepth instead of raw images.
        tf: write /tf and /tf_static.
        depth_encoding: raw depth encoding, "32FC1" (exact) or "16UC1" (mm).
        jpeg_quality: JPEG quality for compressed colour.
        base_from_camera: extrinsic of the optical frame in base_link
            (default: camera_link at base_link, optical axes per REP-103).
        odom: also write /odom and /pose.
        instances: write /engram/instances and /engram/labels when present.
        overwrite: replace an existing bag at ``path``.

    Returns:
        The path written.
    """
    path = Path(path)
    fmt = fmt or _infer_fmt(path)
    if fmt not in ("ros1", "mcap", "sqlite3"):
        raise ValueError(f"fmt must be 'ros1', 'mcap' or 'sqlite3', got {fmt!r}")
    if depth_encoding not in ("32FC1", "16UC1"):
        raise ValueError(f"depth_encoding must be '32FC1' or '16UC1', got {depth_encoding!r}")
    if path.exists():
        if not overwrite:
            raise ValueError(f"{path} exists; pass overwrite=True to replace it")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    import cv2

    base_from_optical = base_from_camera or Pose.from_rt(OPTICAL_IN_BODY, np.zeros(3))
    link_from_optical = Pose.from_rt(OPTICAL_IN_BODY, np.zeros(3))
    base_from_link = base_from_optical @ link_from_optical.inverse()
    writer = _Writer(path, fmt)
    m = writer.msgs
    fr = FRAMES
    try:
        wrote_static = False
        labels_seen: dict[int, str] = {}
        for seq, frame in enumerate(frames):
            if frame.intrinsics is None:
                raise ValueError(f"frame {frame.index} has no intrinsics: a bag needs camera_info")
            t_ns = round(frame.timestamp_s * 1e9)
            if t_ns < 0:
                raise ValueError(f"frame {frame.index} has a negative timestamp_s {frame.timestamp_s}")
            if tf and not wrote_static:
                static = [
                    m.transform(t_ns, fr["map"], fr["odom"], Pose()),
                    m.transform(t_ns, fr["base"], fr["camera_link"], base_from_link),
                    m.transform(t_ns, fr["camera_link"], fr["optical"], link_from_optical),
                ]
                writer.write(TOPICS["tf_static"], "tf2_msgs/msg/TFMessage", t_ns, m.tf_message(static))
                wrote_static = True
            if frame.world_from_camera is not None:
                world_from_base = frame.world_from_camera @ base_from_optical.inverse()
                if tf:
                    msg = m.tf_message([m.transform(t_ns, fr["odom"], fr["base"], world_from_base)])
                    writer.write(TOPICS["tf"], "tf2_msgs/msg/TFMessage", t_ns, msg)
                if odom:
                    writer.write(
                        TOPICS["odom"],
                        "nav_msgs/msg/Odometry",
                        t_ns,
                        m.odometry(t_ns, fr["odom"], fr["base"], world_from_base),
                    )
                    writer.write(
                        TOPICS["pose"],
                        "geometry_msgs/msg/PoseStamped",
                        t_ns,
                        m.pose_stamped(t_ns, fr["map"], world_from_base),
                    )
            header = m.header(t_ns, fr["optical"], seq)
            writer.write(TOPICS["info"], "sensor_msgs/msg/CameraInfo", t_ns, m.camera_info(header, frame.intrinsics))
            if compressed:
                ok, jpg = cv2.imencode(".jpg", frame.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
                if not ok:
                    raise RosBagError(f"JPEG encoding of frame {frame.index} failed")
                msg = m.compressed(header, jpg.tobytes(), "rgb8; jpeg compressed bgr8")
                writer.write(TOPICS["rgb_compressed"], "sensor_msgs/msg/CompressedImage", t_ns, msg)
            else:
                writer.write(TOPICS["rgb"], "sensor_msgs/msg/Image", t_ns, m.image(header, frame.rgb, "rgb8"))
            if frame.depth_m is not None:
                if compressed:
                    data, fmt_str = encode_compressed_depth(frame.depth_m, "16UC1")
                    writer.write(
                        TOPICS["depth_compressed"],
                        "sensor_msgs/msg/CompressedImage",
                        t_ns,
                        m.compressed(header, data, fmt_str),
                    )
                else:
                    if depth_encoding == "16UC1":
                        d = frame.depth_m
                        mm = np.zeros(d.shape, np.uint16)
                        ok_px = np.isfinite(d) & (d > 0)
                        mm[ok_px] = np.clip(np.rint(d[ok_px] * 1000.0), 0, 65535).astype(np.uint16)
                        img = m.image(header, mm, "16UC1")
                    else:
                        img = m.image(header, frame.depth_m.astype(np.float32), "32FC1")
                    writer.write(TOPICS["depth"], "sensor_msgs/msg/Image", t_ns, img)
                writer.write(
                    TOPICS["depth_info"], "sensor_msgs/msg/CameraInfo", t_ns, m.camera_info(header, frame.intrinsics)
                )
            if instances and frame.instances is not None:
                if frame.labels != labels_seen:
                    labels_seen = dict(frame.labels)
                    text = json.dumps({str(k): v for k, v in sorted(labels_seen.items())})
                    writer.write(TOPICS["labels"], "std_msgs/msg/String", t_ns, m.string(text))
                writer.write(
                    TOPICS["instances"], "sensor_msgs/msg/Image", t_ns, m.image(header, frame.instances, "32SC1")
                )
    except BaseException:
        writer.abort()
        if path.exists():
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        raise
    writer.close()
    return path


def embedded_walk(seed: int = 0, steps: int = 100, **sim_kwargs: Any) -> Iterator[Frame]:
    """The embedded world's frames along a seeded random walk (what `record_sim` records).

    Args:
        seed: apartment and walk seed.
        steps: actions after the reset (frames = steps + 1).
        **sim_kwargs: passed to ``EmbeddedSim`` (width, height, ...).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    from engram.sims.embedded import EmbeddedSim

    sim = EmbeddedSim(seed=seed, **sim_kwargs)
    rng = np.random.default_rng(seed)
    try:
        yield sim.reset(seed=seed)
        for _ in range(steps):
            yield sim.step(str(rng.choice(["move_forward", "move_forward", "turn_left", "turn_right"])))
    finally:
        sim.close()


def record_sim(
    out_path: str | Path,
    seed: int = 0,
    steps: int = 100,
    *,
    fmt: Literal["mcap", "ros1", "sqlite3"] | None = None,
    compressed: bool = False,
    overwrite: bool = False,
    **sim_kwargs: Any,
) -> Path:
    """Record the embedded world along a seeded random walk as a bag (``engram sim record --bag``).

    Args:
        out_path: bag path (``.bag``, ``.mcap`` or a directory), see `record_bag`.
        seed: world and walk seed.
        steps: actions taken after the reset (frames = steps + 1).
        fmt, compressed, overwrite: passed to `record_bag`.
        **sim_kwargs: passed to ``EmbeddedSim``.

    Returns:
        The bag path.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return record_bag(
        embedded_walk(seed, steps, **sim_kwargs), out_path, fmt=fmt, compressed=compressed, overwrite=overwrite
    )
