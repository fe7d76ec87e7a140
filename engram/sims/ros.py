"""ROS as a frame source: bag replay, bag recording, rosbridge, and ROS conventions.

This module owns the edge between ROS messages and engram's `Frame`. It reads
ROS 1 ``.bag`` files and ROS 2 bags (sqlite3 or mcap, as a bag directory or a
bare ``.mcap`` file) with ``rosbags`` (no ROS installation needed), decodes
``sensor_msgs/Image``, ``sensor_msgs/CompressedImage`` (jpeg, png,
compressedDepth) and ``sensor_msgs/CameraInfo``, takes the camera pose from
``/tf`` + ``/tf_static`` or from ``nav_msgs/Odometry`` /
``geometry_msgs/PoseStamped`` with a fixed extrinsic, and pairs colour, depth
and pose by approximate time. It also writes frames back as a bag with the
topics a RealSense-equipped robot publishes, and reads the same topics live
over rosbridge (roslibpy).

Conventions. ROS world frames (``map``, ``odom``; REP-103/105) are metric and
z-up, as engram's world is; ROS optical frames (``*_optical_frame``) are
OpenCV's camera frame (x right, y down, z forward), as engram's camera is. So
``world_from_camera`` is the tf chain ``world_frame <- optical frame`` as is;
a camera frame in ROS body convention (x forward, y left, z up) is turned to
optical by `OPTICAL_IN_BODY`. ``sensor_msgs/CameraInfo.K`` puts pixel centres
at integer coordinates, as `CameraIntrinsics` does. ROS depth: ``16UC1`` is
millimetres with 0 = no return, ``32FC1`` is metres with NaN/inf = no return
(REP-117); both become float32 metres with NaN (32FC1) or 0 (16UC1) for no
return.

The live ROS 1 node that feeds a memory is `engram.ros_node`; it reuses
`FrameAssembler` from here, so bags and live topics go through one code path.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import functools
import json
import math
import shutil
import struct
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from engram._optional import require
from engram.types import CameraIntrinsics, Frame, Pose

__all__ = [
    "RosBagError",
    "RosBagWarning",
    "UnsupportedEncodingError",
    "TfError",
    "OPTICAL_IN_BODY",
    "TOPICS",
    "RosBagSource",
    "FrameAssembler",
    "TfBuffer",
    "RosbridgeSource",
    "record_bag",
    "record_sim",
    "embedded_walk",
    "bag_topics",
    "image_to_rgb",
    "image_to_depth_m",
    "compressed_to_rgb",
    "compressed_to_depth_m",
    "camera_info_to_intrinsics",
    "transform_to_pose",
    "stamp_to_s",
    "message_from_dict",
]

# body_from_optical rotation: the optical frame's x, y, z axes (right, down,
# forward) written in a REP-103 body frame (x forward, y left, z up).
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

# The topics `record_bag` writes: the names realsense2_camera and a mobile base publish.
TOPICS = {
    "rgb": "/camera/color/image_raw",
    "rgb_compressed": "/camera/color/image_raw/compressed",
    "depth": "/camera/aligned_depth_to_color/image_raw",
    "depth_compressed": "/camera/aligned_depth_to_color/image_raw/compressedDepth",
    "info": "/camera/color/camera_info",
    "depth_info": "/camera/aligned_depth_to_color/camera_info",
    "tf": "/tf",
    "tf_static": "/tf_static",
    "odom": "/odom",
    "pose": "/pose",
    "instances": "/engram/instances",
    "labels": "/engram/labels",
}

FRAMES = {
    "map": "map",
    "odom": "odom",
    "base": "base_link",
    "camera_link": "camera_link",
    "optical": "camera_color_optical_frame",
}

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/Image")
COMPRESSED_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage")
INFO_TYPES = ("sensor_msgs/msg/CameraInfo", "sensor_msgs/CameraInfo")
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf2_msgs/TFMessage", "tf/msg/tfMessage", "tf/tfMessage")
ODOM_TYPES = ("nav_msgs/msg/Odometry", "nav_msgs/Odometry")
POSE_TYPES = ("geometry_msgs/msg/PoseStamped", "geometry_msgs/PoseStamped")
STRING_TYPES = ("std_msgs/msg/String", "std_msgs/String")

_TFMESSAGE_MSGDEF = "geometry_msgs/TransformStamped[] transforms\n"
_WARN_LIMIT = 3


class RosBagError(ValueError):
    """A bag or a ROS message stream cannot be turned into frames; the message names topic and time."""


class UnsupportedEncodingError(RosBagError):
    """An image encoding or compression format engram does not decode."""


class TfError(RosBagError):
    """No transform between two frames: the tf tree is broken, or the time is outside its data."""


class RosBagWarning(UserWarning):
    """A frame was skipped (no depth or pose within tolerance, a corrupt message) or a bag ended early."""


# ----------------------------------------------------------------------------
# message access: rosbags dataclasses, rospy messages and rosbridge dicts alike
# ----------------------------------------------------------------------------


def _get(msg: Any, *names: str, default: Any = ...) -> Any:
    for name in names:
        if hasattr(msg, name):
            return getattr(msg, name)
    if default is not ...:
        return default
    raise RosBagError(f"message {type(msg).__name__} has none of the fields {names}")


def stamp_to_s(stamp: Any) -> float:
    """A ROS time (ROS 2 ``sec``/``nanosec``, ROS 1 ``secs``/``nsecs``) in seconds."""
    sec = _get(stamp, "sec", "secs")
    nsec = _get(stamp, "nanosec", "nsecs")
    return int(sec) + int(nsec) * 1e-9


def _stamp_ns(stamp: Any) -> int:
    return int(_get(stamp, "sec", "secs")) * 1_000_000_000 + int(_get(stamp, "nanosec", "nsecs"))


def _u8(data: Any) -> np.ndarray:
    """Message ``data`` (numpy, bytes, rosbridge base64 text, list of ints) as a uint8 array."""
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, str):
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def message_from_dict(value: Any) -> Any:
    """A rosbridge JSON message (nested dicts) as attribute-access objects.

    The decoders here read fields by attribute, so rosbridge messages go
    through the same code as bag and rospy messages.
    """
    if isinstance(value, dict):
        return SimpleNamespace(**{k: message_from_dict(v) for k, v in value.items()})
    if isinstance(value, list):
        return [message_from_dict(v) for v in value]
    return value


# ----------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------

_RAW_ENCODINGS = {
    # encoding: (channels, dtype)
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8),
    "8uc1": (1, np.uint8),
    "8uc3": (3, np.uint8),
    "mono16": (1, np.uint16),
    "16uc1": (1, np.uint16),
    "32fc1": (1, np.float32),
    "32sc1": (1, np.int32),
}


def _raw_array(msg: Any) -> tuple[str, np.ndarray]:
    """The pixel array of a ``sensor_msgs/Image``, honouring ``step`` padding and endianness."""
    encoding = str(msg.encoding).lower()
    if encoding not in _RAW_ENCODINGS:
        raise UnsupportedEncodingError(
            f"unsupported image encoding {msg.encoding!r} (supported: {', '.join(sorted(_RAW_ENCODINGS))})"
        )
    channels, dtype = _RAW_ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    item = np.dtype(dtype).itemsize
    row_bytes = w * channels * item
    if h <= 0 or w <= 0:
        raise RosBagError(f"image has size {w}x{h}")
    if step < row_bytes:
        raise RosBagError(f"image step {step} is shorter than a row of {w} {encoding} pixels ({row_bytes} bytes)")
    buf = _u8(msg.data)
    if buf.size < h * step:
        raise RosBagError(f"image data has {buf.size} bytes, expected {h * step} ({h} rows x step {step})")
    rows = buf[: h * step].reshape(h, step)[:, :row_bytes]
    big = bool(_get(msg, "is_bigendian", default=0)) and item > 1
    dt = np.dtype(dtype).newbyteorder(">" if big else "<")
    arr = np.ascontiguousarray(rows).view(dt).reshape(h, w, channels)
    if big:
        arr = arr.astype(dtype)
    return encoding, arr


def image_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) to "H W 3" uint8 RGB."""
    encoding, arr = _raw_array(msg)
    if arr.dtype != np.uint8:
        raise UnsupportedEncodingError(f"colour image encoding {msg.encoding!r} is not 8-bit")
    if encoding in ("rgb8", "8uc3"):
        return arr
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    return np.repeat(arr, 3, axis=2)  # mono8


def _depth_from_array(arr: np.ndarray, encoding: str) -> np.ndarray:
    if arr.dtype == np.uint16:  # millimetres, 0 = no return
        return arr.astype(np.float32) * np.float32(0.001)
    if arr.dtype == np.float32:  # metres; NaN, inf and negative values = no return (REP-117)
        depth = arr.astype(np.float32, copy=True)
        with np.errstate(invalid="ignore"):
            bad = ~((depth >= 0) & (depth < np.inf))  # one pass: NaN compares false
        if bad.any():
            depth[bad] = np.nan
        return depth
    raise UnsupportedEncodingError(f"depth encoding {encoding!r} is not 16UC1 (mm) or 32FC1 (m)")


def image_to_depth_m(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` depth (16UC1 / mono16 in mm, 32FC1 in m) to "H W" float32 metres."""
    encoding, arr = _raw_array(msg)
    return _depth_from_array(arr[..., 0], encoding)


def _imdecode(data: np.ndarray, what: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RosBagError(f"{what}: the compressed image data cannot be decoded")
    return img


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg or png, as image_transport writes it) to RGB uint8."""
    fmt = str(msg.format).lower()
    if "compresseddepth" in fmt or not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise UnsupportedEncodingError(f"unsupported compressed colour format {msg.format!r} (jpeg or png)")
    img = _imdecode(_u8(msg.data), f"compressed image ({msg.format})")
    if img.dtype != np.uint8:
        raise UnsupportedEncodingError(f"compressed colour image {msg.format!r} is not 8-bit")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    # OpenCV decodes to BGR whatever the source encoding was; image_transport encodes from BGR order.
    return np.ascontiguousarray(img[..., ::-1])


def compressed_to_depth_m(msg: Any) -> np.ndarray:
    """``compressedDepth`` (image_transport_plugins) to float32 metres.

    The payload is a 12-byte header (int32 format, float32 depthQuantA,
    depthQuantB) then a 16-bit PNG: depth in mm for 16UC1, quantised inverse
    depth ``q = A / d + B`` for 32FC1 (0 = no return).
    """
    fmt = str(msg.format)
    parts = [p.strip() for p in fmt.split(";")]
    encoding = parts[0].lower() if parts else ""
    tail = fmt.lower()
    if "compresseddepth" not in tail:
        # Some drivers publish plain 16-bit PNG depth on a /compressed topic.
        if "png" in tail and encoding in ("16uc1", "mono16"):
            return _depth_from_array(_imdecode(_u8(msg.data), f"png depth ({fmt})").astype(np.uint16), encoding)
        raise UnsupportedEncodingError(f"unsupported compressed depth format {fmt!r}")
    if "rvl" in tail:
        raise UnsupportedEncodingError(f"compressedDepth codec RVL is not supported ({fmt!r}); use png")
    data = _u8(msg.data)
    if data.size <= 12:
        raise RosBagError(f"compressedDepth message has only {data.size} bytes")
    _, quant_a, quant_b = struct.unpack("<iff", data[:12].tobytes())
    img = _imdecode(data[12:], f"compressedDepth ({fmt})")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise RosBagError(f"compressedDepth payload is {img.dtype} with shape {img.shape}, expected 16-bit mono")
    if encoding in ("16uc1", "mono16"):
        return _depth_from_array(img, encoding)
    if encoding == "32fc1":
        q = img.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.float32(quant_a) / (q - np.float32(quant_b))
        depth[img == 0] = np.nan
        return depth.astype(np.float32)
    raise UnsupportedEncodingError(f"unsupported compressedDepth encoding {parts[0]!r} (16UC1 or 32FC1)")


def camera_info_to_intrinsics(msg: Any, width: int | None = None, height: int | None = None) -> CameraIntrinsics:
    """``sensor_msgs/CameraInfo`` to `CameraIntrinsics` (the K matrix; distortion is not applied)."""
    k = np.asarray(_get(msg, "k", "K"), dtype=np.float64).reshape(-1)
    if k.size != 9 or k[0] <= 0 or k[4] <= 0:
        raise RosBagError(f"CameraInfo K must hold 9 numbers with positive fx, fy, got {k.tolist()}")
    w = int(_get(msg, "width", default=0)) or width
    h = int(_get(msg, "height", default=0)) or height
    if not w or not h:
        raise RosBagError("CameraInfo has no image size and none was given")
    return CameraIntrinsics(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=w, height=h)


def _quat_xyzw(q: Any) -> np.ndarray:
    v = np.array([float(q.x), float(q.y), float(q.z), float(q.w)])
    n = np.linalg.norm(v)
    if not np.isfinite(n) or abs(n - 1.0) > 1e-2:
        raise RosBagError(f"quaternion {v.tolist()} is not a unit quaternion (norm {n:.4f})")
    return v / n


def transform_to_pose(transform: Any) -> Pose:
    """``geometry_msgs/Transform`` or ``Pose`` (translation/position + rotation/orientation) to `Pose`."""
    t = _get(transform, "translation", "position")
    q = _get(transform, "rotation", "orientation")
    return Pose.from_quaternion(_quat_xyzw(q), [float(t.x), float(t.y), float(t.z)])


# ----------------------------------------------------------------------------
# tf
# ----------------------------------------------------------------------------


def _slerp(q0: np.ndarray, q1: np.ndarray, alpha: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + alpha * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(1.0, dot))
    s = math.sin(theta)
    return (math.sin((1 - alpha) * theta) * q0 + math.sin(alpha * theta) * q1) / s


@dataclass
class _Track:
    """Time-stamped rigid transforms of one tf edge (or one odometry stream)."""

    times_s: list[float] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quats: list[np.ndarray] = field(default_factory=list)
    _sorted: bool = True

    def add(self, t_s: float, translation: np.ndarray, quat: np.ndarray) -> None:
        if self.times_s and t_s < self.times_s[-1]:
            self._sorted = False
        self.times_s.append(t_s)
        self.translations.append(translation)
        self.quats.append(quat)

    def prune(self, history_s: float) -> None:
        """Forget samples older than ``history_s`` before the newest (bounded memory on live streams)."""
        if len(self.times_s) < 64:
            return
        if not self._sorted:
            self._sort()
        cut = bisect.bisect_left(self.times_s, self.times_s[-1] - history_s)
        if cut > 1:
            cut -= 1  # keep one sample before the window so times inside it can interpolate
            del self.times_s[:cut], self.translations[:cut], self.quats[:cut]

    def _sort(self) -> None:
        order = np.argsort(self.times_s, kind="stable")
        self.times_s = [self.times_s[i] for i in order]
        self.translations = [self.translations[i] for i in order]
        self.quats = [self.quats[i] for i in order]
        self._sorted = True

    @property
    def latest_s(self) -> float:
        return max(self.times_s) if self.times_s else -math.inf

    def at(self, t_s: float, tolerance_s: float) -> Pose | None:
        """The interpolated transform at ``t_s``; None when t is beyond the data by more than the tolerance."""
        if not self.times_s:
            return None
        if not self._sorted:
            self._sort()
        times = self.times_s
        if t_s < times[0] - tolerance_s or t_s > times[-1] + tolerance_s:
            return None
        return Pose(self.matrix_at(t_s))

    def matrix_at(self, t_s: float) -> np.ndarray:
        """The 4x4 transform at ``t_s`` (clamped to the data); the caller checked the range."""
        if not self._sorted:
            self._sort()
        times = self.times_s
        i = bisect.bisect_right(times, t_s)
        if i == 0:
            return _rt_matrix(self.quats[0], self.translations[0])
        if i == len(times):
            return _rt_matrix(self.quats[-1], self.translations[-1])
        t0, t1 = times[i - 1], times[i]
        alpha = 0.0 if t1 <= t0 else (t_s - t0) / (t1 - t0)
        trans = (1 - alpha) * self.translations[i - 1] + alpha * self.translations[i]
        return _rt_matrix(_slerp(self.quats[i - 1], self.quats[i], alpha), trans)

    def covers(self, t_s: float, tolerance_s: float) -> bool:
        return bool(self.times_s) and min(self.times_s) - tolerance_s <= t_s <= max(self.times_s) + tolerance_s


def _rt_matrix(q_xyzw: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 matrix of a unit quaternion (x, y, z, w) and a translation (no validation: hot path)."""
    x, y, z, w = q_xyzw / np.linalg.norm(q_xyzw)
    m = np.eye(4)
    m[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    m[:3, 3] = translation
    return m


class TfBuffer:
    """A tf tree: static and time-stamped edges, chain lookup with interpolation.

    Frame names are normalised (a leading ``/`` of ROS 1 names is dropped).

    Args:
        history_s: keep this much of each time-stamped edge (tf2 keeps 10 s);
            None keeps everything (bag replay, where all data is known).
    """

    def __init__(self, history_s: float | None = None) -> None:
        self.history_s = history_s
        self._parent: dict[str, str] = {}
        self._static: dict[str, Pose] = {}
        self._dynamic: dict[str, _Track] = {}

    @staticmethod
    def _name(frame: str) -> str:
        return str(frame).lstrip("/")

    @property
    def frames(self) -> set[str]:
        return set(self._parent) | set(self._parent.values())

    def add_transform(self, parent: str, child: str, stamp_s: float, parent_from_child: Pose, static: bool) -> None:
        parent, child = self._name(parent), self._name(child)
        if parent == child:
            raise TfError(f"tf transform from {parent!r} to itself")
        self._parent[child] = parent
        if static:
            self._static[child] = parent_from_child
            self._dynamic.pop(child, None)
        else:
            self._static.pop(child, None)
            track = self._dynamic.setdefault(child, _Track())
            track.add(stamp_s, parent_from_child.translation.copy(), parent_from_child.as_quaternion())
            if self.history_s is not None:
                track.prune(self.history_s)

    def add_message(self, msg: Any, static: bool) -> None:
        """Add every transform of a ``tf2_msgs/TFMessage``."""
        for ts in _get(msg, "transforms"):
            self.add_transform(
                ts.header.frame_id, ts.child_frame_id, stamp_to_s(ts.header.stamp), transform_to_pose(ts.transform), static
            )

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            nxt = self._parent[chain[-1]]
            if nxt in chain:
                raise TfError(f"tf tree has a loop through {nxt!r}")
            chain.append(nxt)
        return chain

    def _edge(self, child: str, t_s: float, tolerance_s: float) -> np.ndarray:
        """``parent_from_child`` of one edge at ``t_s`` as a 4x4 matrix."""
        if child in self._static:
            return self._static[child].matrix
        track = self._dynamic[child]
        if not track.covers(t_s, tolerance_s):
            lo, hi = min(track.times_s), max(track.times_s)
            raise TfError(
                f"tf {self._parent[child]!r} -> {child!r} has no data at t={t_s:.3f} s "
                f"(data from {lo:.3f} to {hi:.3f} s, tolerance {tolerance_s} s)"
            )
        return track.matrix_at(t_s)

    def can_transform(self, target: str, source: str) -> bool:
        target, source = self._name(target), self._name(source)
        return bool(set(self._chain(target)) & set(self._chain(source)))

    def latest_common_s(self, target: str, source: str) -> float:
        """The latest time at which every dynamic edge on the chain has data (inf if all static)."""
        target, source = self._name(target), self._name(source)
        up_t, up_s = self._chain(target), self._chain(source)
        common = next(f for f in up_s if f in up_t)
        edges = up_t[: up_t.index(common)] + up_s[: up_s.index(common)]
        times = [self._dynamic[e].latest_s for e in edges if e in self._dynamic]
        return min(times) if times else math.inf

    def lookup(self, target: str, source: str, t_s: float, tolerance_s: float = 0.0) -> Pose:
        """``target_from_source`` at time ``t_s``.

        Raises:
            TfError: the frames are not connected, or an edge has no data near ``t_s``.
        """
        target, source = self._name(target), self._name(source)
        up_t, up_s = self._chain(target), self._chain(source)
        common = next((f for f in up_s if f in up_t), None)
        if common is None:
            raise TfError(
                f"tf chain broken: no path from {target!r} to {source!r} at t={t_s:.3f} s "
                f"({target!r} reaches {up_t[-1]!r}, {source!r} reaches {up_s[-1]!r}; "
                f"known frames: {', '.join(sorted(self.frames)) or 'none'})"
            )
        common_from_source = np.eye(4)
        for child in up_s[: up_s.index(common)]:
            common_from_source = self._edge(child, t_s, tolerance_s) @ common_from_source
        common_from_target = np.eye(4)
        for child in up_t[: up_t.index(common)]:
            common_from_target = self._edge(child, t_s, tolerance_s) @ common_from_target
        r, t = common_from_target[:3, :3], common_from_target[:3, 3]
        target_from_common = np.eye(4)
        target_from_common[:3, :3] = r.T
        target_from_common[:3, 3] = -r.T @ t
        return Pose(target_from_common @ common_from_source)  # validated once, here


# ----------------------------------------------------------------------------
# approximate time synchronisation and frame assembly
# ----------------------------------------------------------------------------


class _ApproxSync:
    """Pairs each primary message with the nearest message of every other stream within a tolerance.

    A primary message is resolved once every other stream has moved past
    ``t + tolerance`` (or at the end), so the nearest match is known.
    """

    def __init__(
        self, primary: str, others: Sequence[str], tolerance_s: float, max_pending: int = 64, optional: Sequence[str] = ()
    ) -> None:
        self.primary = primary
        self.others = list(others)
        self.optional = set(optional)  # waited for only once the stream has delivered a message
        self.tolerance_s = tolerance_s
        self.max_pending = max_pending
        self.queues: dict[str, deque] = {n: deque() for n in [primary, *others]}
        self.latest: dict[str, float] = {n: -math.inf for n in [primary, *others]}

    def push(self, stream: str, t_s: float, item: Any) -> None:
        self.queues[stream].append((t_s, item))
        self.latest[stream] = max(self.latest[stream], t_s)

    def pop_ready(self, final: bool = False) -> list[tuple[float, Any, dict[str, tuple[float, Any] | None]]]:
        out = []
        prim = self.queues[self.primary]
        tol = self.tolerance_s
        while prim:
            t, item = prim[0]
            waiting = any(
                self.latest[n] <= t + tol
                for n in self.others
                if n not in self.optional or self.latest[n] > -math.inf
            )
            if waiting and not final and len(prim) <= self.max_pending:
                break
            prim.popleft()
            matches: dict[str, tuple[float, Any] | None] = {}
            for name in self.others:
                q = self.queues[name]
                while q and q[0][0] < t - tol:
                    q.popleft()
                best, best_dt = -1, math.inf
                for i, (s, _) in enumerate(q):
                    if s > t + tol:
                        break
                    if abs(s - t) < best_dt:
                        best, best_dt = i, abs(s - t)
                if best < 0:
                    matches[name] = None
                    continue
                for _ in range(best):
                    q.popleft()
                matches[name] = q.popleft()
            out.append((t, item, matches))
        return out


@dataclass
class _Stats:
    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warned: dict[str, int] = field(default_factory=dict)


class FrameAssembler:
    """Turns ROS messages (colour, depth, camera info, tf / odometry) into `Frame`s.

    Used by the bag reader, the rosbridge client and the live ROS 1 node, so
    all three share decoding, synchronisation and conventions. Feed messages
    with the ``add_*`` methods (any order within the tolerance) and collect
    frames with `pop_frames`. Frames that cannot be completed (no depth or
    pose within the tolerance, an undecodable message) are skipped with a
    `RosBagWarning`; structural problems (unknown encoding, a broken tf chain)
    raise `RosBagError`.

    Args:
        pose_source: "tf" (chain world_frame -> camera frame), "odom"
            (nav_msgs/Odometry) or "pose" (geometry_msgs/PoseStamped), each
            composed with ``base_from_camera``.
        world_frame: the fixed frame poses are expressed in; None picks
            "map", else "odom", else "world" from the tf tree.
        camera_frame: the camera's tf frame; None uses the colour image's
            ``header.frame_id``.
        camera_convention: "optical" (OpenCV axes, ROS ``*_optical_frame``)
            or "body" (REP-103 x forward, z up: turned to optical here).
        base_from_camera: fixed extrinsic of the optical camera frame in the
            odometry / pose body frame; None looks it up in /tf_static.
        base_frame: body frame of PoseStamped poses (odometry uses its
            ``child_frame_id``), used to find the extrinsic in tf.
        sync_tolerance_s: largest colour-depth and colour-pose time gap.
        require_depth: skip colour images without depth (True) or emit
            colour-only frames (False).
        use_instances: pair engram's instance images (``/engram/instances``) too.
        instances_optional: do not wait for instance images until one has
            arrived (live topics that may never carry them).
        first_index: index of the first frame.
        history_s: how much tf / odometry history to keep (live streams);
            None keeps everything.
        max_wait_s: how long (stamp time behind the newest colour image) an
            image waits for its pose and calibration before it is given up
            (skipped with a warning, or an error for a broken tf chain);
            None waits until ``pop_frames(final=True)``.
    """

    def __init__(
        self,
        *,
        pose_source: Literal["tf", "odom", "pose", "none"] = "tf",
        world_frame: str | None = None,
        camera_frame: str | None = None,
        camera_convention: Literal["optical", "body"] = "optical",
        base_from_camera: Pose | np.ndarray | None = None,
        base_frame: str | None = None,
        sync_tolerance_s: float = 0.02,
        require_depth: bool = True,
        use_instances: bool = False,
        instances_optional: bool = False,
        first_index: int = 0,
        history_s: float | None = None,
        max_wait_s: float | None = None,
        source_name: str = "ros",
    ) -> None:
        if pose_source not in ("tf", "odom", "pose", "none"):
            raise ValueError(f"pose_source must be 'tf', 'odom', 'pose' or 'none', got {pose_source!r}")
        if camera_convention not in ("optical", "body"):
            raise ValueError(f"camera_convention must be 'optical' or 'body', got {camera_convention!r}")
        if not (sync_tolerance_s >= 0 and math.isfinite(sync_tolerance_s)):
            raise ValueError(f"sync_tolerance_s must be a finite number >= 0, got {sync_tolerance_s}")
        self.pose_source = pose_source
        self.world_frame = world_frame
        self.camera_frame = camera_frame
        self.camera_convention = camera_convention
        self.base_from_camera = None if base_from_camera is None else Pose(
            base_from_camera.matrix if isinstance(base_from_camera, Pose) else base_from_camera
        )
        self.base_frame = base_frame
        self.tolerance_s = float(sync_tolerance_s)
        self.require_depth = require_depth
        self.source_name = source_name
        self.history_s = history_s
        self.max_wait_s = max_wait_s
        self.tf = TfBuffer(history_s)
        self.body_track = _Track()
        self.body_frame_id: str | None = None
        self.pose_frame_id: str | None = None
        self._infos: list[tuple[float, Any, tuple]] = []  # (stamp, message, calibration key)
        self._label_times: list[tuple[float, dict[int, str]]] = []
        others = ["depth"] + (["instances"] if use_instances else [])
        optional = ["instances"] if use_instances and instances_optional else []
        self._sync = _ApproxSync("rgb", others, self.tolerance_s, optional=optional)
        self._pending: deque = deque()  # synchronised images waiting for pose data (live)
        self._next_index = int(first_index)
        self.stats = _Stats()

    # inputs -------------------------------------------------------------
    def add_rgb(self, msg: Any, topic: str = "rgb", compressed: bool = False) -> None:
        self._sync.push("rgb", stamp_to_s(msg.header.stamp), (topic, msg, compressed))

    def add_depth(self, msg: Any, topic: str = "depth", compressed: bool = False) -> None:
        self._sync.push("depth", stamp_to_s(msg.header.stamp), (topic, msg, compressed))

    def add_instances(self, msg: Any, topic: str = "instances") -> None:
        if "instances" in self._sync.queues:
            self._sync.push("instances", stamp_to_s(msg.header.stamp), (topic, msg, False))

    def add_labels(self, msg: Any, t_s: float | None) -> None:
        """A std_msgs/String with JSON ``{id: name}`` (engram's own label topic).

        ``t_s`` is the bag time of the message; None (live topics, where the
        message has no stamp) makes it apply from now on.
        """
        try:
            labels = {int(k): str(v) for k, v in json.loads(msg.data).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            when = "live" if t_s is None else f"t={t_s:.3f} s"
            raise RosBagError(f"labels message ({when}) is not JSON {{id: name}}: {exc}") from exc
        self._label_times.append((-math.inf if t_s is None else t_s, labels))

    def add_camera_info(self, msg: Any) -> None:
        """Camera calibration; a repeat of the current one (the usual 30 Hz stream) is not stored again."""
        key = (tuple(np.asarray(_get(msg, "k", "K"), dtype=float).tolist()), int(_get(msg, "width", default=0)),
               int(_get(msg, "height", default=0)))
        if self._infos and self._infos[-1][2] == key:
            return
        self._infos.append((stamp_to_s(msg.header.stamp), msg, key))

    def add_tf(self, msg: Any, static: bool = False) -> None:
        self.tf.add_message(msg, static)

    def add_odometry(self, msg: Any) -> None:
        """``nav_msgs/Odometry`` (header.frame_id <- child_frame_id) or ``geometry_msgs/PoseStamped``."""
        pose_msg = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
        pose = transform_to_pose(pose_msg)
        self.pose_frame_id = TfBuffer._name(msg.header.frame_id)
        child = getattr(msg, "child_frame_id", "")
        if child:
            self.body_frame_id = TfBuffer._name(child)
        self.body_track.add(stamp_to_s(msg.header.stamp), pose.translation.copy(), pose.as_quaternion())
        if self.history_s is not None:
            self.body_track.prune(self.history_s)

    # pose ---------------------------------------------------------------
    def _resolve_world_frame(self, t_s: float) -> str:
        if self.world_frame:
            return self.world_frame
        frames = self.tf.frames
        for name in ("map", "odom", "world"):
            if name in frames:
                self.world_frame = name
                return name
        raise TfError(
            f"no world frame at t={t_s:.3f} s: none of map, odom, world is in the tf tree "
            f"(frames: {', '.join(sorted(frames)) or 'none'}); pass world_frame"
        )

    def _optical(self, pose: Pose) -> Pose:
        if self.camera_convention == "body":
            return pose @ Pose.from_rt(OPTICAL_IN_BODY, np.zeros(3))
        return pose

    def _extrinsic(self, camera_frame: str, t_s: float) -> Pose:
        if self.base_from_camera is not None:
            return self.base_from_camera
        base = self.base_frame or self.body_frame_id or "base_link"
        try:
            return self._optical(self.tf.lookup(base, camera_frame, t_s, self.tolerance_s))
        except TfError as exc:
            raise TfError(
                f"no camera extrinsic for pose_source={self.pose_source!r}: pass base_from_camera, "
                f"or record /tf_static from {base!r} to {camera_frame!r} ({exc})"
            ) from exc

    def pose_ready(self, t_s: float, camera_frame: str) -> bool:
        """True when the pose at ``t_s`` can be answered now (live use: tf may still arrive)."""
        if self.pose_source == "none":
            return True
        if self.pose_source == "tf":
            try:
                world = self._resolve_world_frame(t_s)
                if not self.tf.can_transform(world, camera_frame):
                    return False
                return self.tf.latest_common_s(world, camera_frame) >= t_s
            except TfError:
                return False
        return self.body_track.latest_s >= t_s

    def world_from_camera(self, t_s: float, camera_frame: str) -> Pose | None:
        """The camera pose at ``t_s``; None when the pose data does not cover ``t_s``."""
        if self.pose_source == "none":
            return None
        if self.pose_source == "tf":
            world = self._resolve_world_frame(t_s)
            if not self.tf.can_transform(world, camera_frame):
                self.tf.lookup(world, camera_frame, t_s)  # raises the broken-chain error
            return self._optical(self.tf.lookup(world, camera_frame, t_s, self.tolerance_s))
        base_pose = self.body_track.at(t_s, self.tolerance_s)
        if base_pose is None:
            if not self.body_track.times_s:
                raise TfError(f"pose_source={self.pose_source!r} but no pose message was received")
            raise TfError(
                f"no {self.pose_source} message near t={t_s:.3f} s (data from {min(self.body_track.times_s):.3f} "
                f"to {self.body_track.latest_s:.3f} s, tolerance {self.tolerance_s} s)"
            )
        world_from_base = base_pose
        if self.world_frame and self.pose_frame_id and self.world_frame != self.pose_frame_id:
            world_from_base = self.tf.lookup(self.world_frame, self.pose_frame_id, t_s, self.tolerance_s) @ base_pose
        return world_from_base @ self._extrinsic(camera_frame, t_s)

    # output -------------------------------------------------------------
    def _skip(self, kind: str, message: str) -> None:
        self.stats.skipped[kind] = self.stats.skipped.get(kind, 0) + 1
        n = self.stats.warned.get(kind, 0)
        if n < _WARN_LIMIT:
            self.stats.warned[kind] = n + 1
            more = " (further such warnings are counted in stats)" if n + 1 == _WARN_LIMIT else ""
            warnings.warn(RosBagWarning(f"{self.source_name}: skipped frame: {message}{more}"), stacklevel=3)

    def _info_at(self, t_s: float) -> Any | None:
        if not self._infos:
            return None
        best = self._infos[0][1]
        for stamp, msg, _ in self._infos:
            if stamp <= t_s + self.tolerance_s:
                best = msg
            else:
                break
        return best

    def _labels_at(self, t_s: float) -> dict[int, str]:
        """The labels of the last label message at or before ``t_s`` (the first one if all are later)."""
        if not self._label_times:
            return {}
        best = self._label_times[0][1]
        for stamp, labels in self._label_times:
            if stamp <= t_s + self.tolerance_s:
                best = labels
        return dict(best)

    def pop_frames(self, final: bool = False) -> list[Frame]:
        """Frames completed so far; ``final=True`` flushes everything (end of a bag or shutdown)."""
        for t, rgb_item, matches in self._sync.pop_ready(final):
            self._pending.append((t, rgb_item, matches))
        frames: list[Frame] = []
        while self._pending:
            t, (topic, rgb_msg, compressed), matches = self._pending[0]
            camera = self.camera_frame or TfBuffer._name(rgb_msg.header.frame_id)
            give_up = self.max_wait_s is not None and self._sync.latest["rgb"] - t > self.max_wait_s
            ready = bool(self._infos) and self.pose_ready(t, camera)
            if not (final or give_up or ready):
                break
            self._pending.popleft()
            frame = self._build(t, topic, rgb_msg, compressed, matches, camera)
            if frame is not None:
                frames.append(frame)
        return frames

    def _build(self, t: float, topic: str, rgb_msg: Any, compressed: bool, matches: dict, camera: str) -> Frame | None:
        where = f"{topic} at t={t:.3f} s"
        try:
            rgb = compressed_to_rgb(rgb_msg) if compressed else image_to_rgb(rgb_msg)
        except UnsupportedEncodingError as exc:
            raise UnsupportedEncodingError(f"{self.source_name}: {where}: {exc}") from exc
        except (RosBagError, ValueError) as exc:
            self._skip("corrupt", f"{where}: {exc}")
            return None
        h, w = rgb.shape[:2]
        depth = None
        depth_match = matches.get("depth")
        if depth_match is None:
            if self.require_depth:
                self._skip("no_depth", f"{where}: no depth image within {self.tolerance_s} s")
                return None
        else:
            dt, (dtopic, dmsg, dcompressed) = depth_match
            dwhere = f"{dtopic} at t={dt:.3f} s"
            try:
                depth = compressed_to_depth_m(dmsg) if dcompressed else image_to_depth_m(dmsg)
            except UnsupportedEncodingError as exc:
                raise UnsupportedEncodingError(f"{self.source_name}: {dwhere}: {exc}") from exc
            except (RosBagError, ValueError) as exc:
                self._skip("corrupt", f"{dwhere}: {exc}")
                return None
            if depth.shape != (h, w):
                raise RosBagError(
                    f"{self.source_name}: {dwhere}: depth is {depth.shape[1]}x{depth.shape[0]} but colour "
                    f"({topic}) is {w}x{h}: use the depth topic aligned to colour"
                )
        info = self._info_at(t)
        intrinsics = None
        if info is not None:
            try:
                intrinsics = camera_info_to_intrinsics(info, w, h)
            except (RosBagError, ValueError) as exc:
                raise RosBagError(f"{self.source_name}: camera info at t={t:.3f} s: {exc}") from exc
            if (intrinsics.width, intrinsics.height) != (w, h):
                raise RosBagError(
                    f"{self.source_name}: camera info is {intrinsics.width}x{intrinsics.height} but {topic} "
                    f"at t={t:.3f} s is {w}x{h}"
                )
        elif self.require_depth:
            self._skip("no_camera_info", f"{where}: no CameraInfo received yet")
            return None
        try:
            pose = self.world_from_camera(t, camera)
        except TfError as exc:
            if "chain broken" in str(exc) or "no camera extrinsic" in str(exc) or "no world frame" in str(exc):
                raise TfError(f"{self.source_name}: {where}: {exc}") from exc
            self._skip("no_pose", f"{where}: {exc}")
            return None
        instances, labels = None, {}
        ins_match = matches.get("instances")
        if ins_match is not None:
            try:
                _, arr = _raw_array(ins_match[1][1])
                if arr.shape[:2] == (h, w) and arr.dtype == np.int32:
                    instances = np.ascontiguousarray(arr[..., 0])
                    labels = self._labels_at(t)
            except RosBagError as exc:
                self._skip("corrupt_instances", f"instances at t={t:.3f} s: {exc}")
        frame = Frame(
            index=self._next_index,
            timestamp_s=t,
            rgb=rgb,
            depth_m=depth,
            intrinsics=intrinsics,
            world_from_camera=pose,
            instances=instances,
            labels=labels,
            meta={"source": self.source_name, "rgb_topic": topic, "camera_frame": camera},
        )
        self._next_index += 1
        self.stats.frames += 1
        return frame


# ----------------------------------------------------------------------------
# reading bags
# ----------------------------------------------------------------------------


@functools.cache
def _ros1_typestore():
    # Built once per process (building one costs ~20 ms); types found in bags are added to it.
    typesys = require("rosbags.typesys", "reading and writing ROS bags")
    ts = typesys.get_typestore(typesys.Stores.ROS1_NOETIC)
    if "tf2_msgs/msg/TFMessage" not in ts.types:
        ts.register(typesys.get_types_from_msg(_TFMESSAGE_MSGDEF, "tf2_msgs/msg/TFMessage"))
    return ts


@functools.cache
def _ros2_typestore():
    typesys = require("rosbags.typesys", "reading and writing ROS bags")
    return typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)


def _norm_type(msgtype: str) -> str:
    """'sensor_msgs/Image' and 'sensor_msgs/msg/Image' both become 'sensor_msgs/msg/Image'."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return msgtype



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
        msgtype = _norm_type(fields.get(b"type", b"").decode())
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
                    except Exception as exc:
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
        reader = highlevel.AnyReader([self.anypath], default_typestore=_ros2_typestore())
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
                return {c.topic: _norm_type(c.msgtype) for c in reader.connections}
            finally:
                reader.close()
        mcap_reader = require("mcap.reader", "reading .mcap files")
        with open(self.path, "rb") as f:
            try:
                reader = mcap_reader.make_reader(f)
                summary = reader.get_summary()
            except Exception as exc:
                summary = None
                first_error = exc
            if summary is not None:
                return {ch.topic: _norm_type(summary.schemas[ch.schema_id].name) for ch in summary.channels.values()}
            # No summary (the file was cut short): scan what is there.
            f.seek(0)
            topics: dict[str, str] = {}
            try:
                for schema, channel, _ in mcap_reader.NonSeekingReader(f).iter_messages(log_time_order=False):
                    topics.setdefault(channel.topic, _norm_type(schema.name))
            except Exception:
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
                        yield conn.topic, _norm_type(conn.msgtype), t_ns, msg
            elif self.kind == "ros1scan":
                store = _ros1_typestore()
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
        ros2 = _ros2_typestore()
        if self.kind == "ros1scan":
            yield from self._scan(wanted)
            return
        if self.kind == "any":
            with self._any_reader() as reader:
                conns = [c for c in reader.connections if c.topic in wanted]
                for conn, t_ns, raw in reader.messages(connections=conns):
                    msgtype = _norm_type(conn.msgtype)
                    data = bytes(raw) if not reader.is2 else bytes(ros2.cdr_to_ros1(raw, msgtype))
                    yield conn.topic, msgtype, t_ns, data
            return
        mcap_reader = require("mcap.reader", "reading .mcap files")
        with open(self.path, "rb") as f:
            for schema, channel, message in mcap_reader.make_reader(f).iter_messages(topics=sorted(wanted), log_time_order=True):
                msgtype = _norm_type(schema.name)
                data = message.data if channel.message_encoding == "ros1" else ros2.cdr_to_ros1(message.data, msgtype)
                yield channel.topic, msgtype, message.log_time, bytes(data)

    def _mcap_messages(self, wanted: set[str]) -> Iterator[tuple[str, str, int, Any]]:
        mcap_reader = require("mcap.reader", "reading .mcap files")
        ros2, ros1 = _ros2_typestore(), None
        typesys = require("rosbags.typesys", "reading ROS bags")
        with open(self.path, "rb") as f:
            try:
                reader = mcap_reader.make_reader(f)
                reader.get_summary()
                it = reader.iter_messages(topics=sorted(wanted), log_time_order=True)
            except Exception:
                f.seek(0)
                it = mcap_reader.NonSeekingReader(f).iter_messages(topics=sorted(wanted), log_time_order=False)
            for schema, channel, message in it:
                msgtype = _norm_type(schema.name)
                if channel.message_encoding == "ros1":
                    ros1 = ros1 or _ros1_typestore()
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
            ns = self.rgb_topic.rsplit("/", 2)[0] if self.rgb_topic.endswith("/compressed") else self.rgb_topic.rsplit("/", 1)[0]
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
                pose_topic = _pick([t for t, ty in topics.items() if ty in types], types[0], ("odom", "pose"), self.path)
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
            if asm._infos:
                yield from asm.pop_frames(final=True)
            self._fail(exc)
            return
        if not asm._infos:
            raise RosBagError(f"bag {self.path}: no message on the camera info topic {self.info_topic!r}")
        yield from asm.pop_frames(final=True)
        if asm.stats.skipped:
            warnings.warn(
                RosBagWarning(f"{self.path.name}: {asm.stats.frames} frames, skipped {asm.stats.skipped}"),
                stacklevel=2,
            )


# ----------------------------------------------------------------------------
# writing bags
# ----------------------------------------------------------------------------


class _MsgFactory:
    """Builds ROS 1 or ROS 2 messages from one set of field names (case-insensitive: K/k, D/d)."""

    def __init__(self, ros1: bool) -> None:
        self.ros1 = ros1
        self.ts = _ros1_typestore() if ros1 else _ros2_typestore()
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
        roi = self.make(
            "sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
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
        return self.make("geometry_msgs/msg/PoseStamped", header=self.header(t_ns, parent), pose=self._pose(parent_from_child))

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
                conn = self.writer.add_connection(topic, wire_type, typestore=self.msgs.ts, latching=int(topic.endswith("tf_static")))
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
        except Exception:
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
            t_ns = int(round(frame.timestamp_s * 1e9))
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
                    writer.write(TOPICS["odom"], "nav_msgs/msg/Odometry", t_ns, m.odometry(t_ns, fr["odom"], fr["base"], world_from_base))
                    writer.write(TOPICS["pose"], "geometry_msgs/msg/PoseStamped", t_ns, m.pose_stamped(t_ns, fr["map"], world_from_base))
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
                    writer.write(TOPICS["depth_compressed"], "sensor_msgs/msg/CompressedImage", t_ns, m.compressed(header, data, fmt_str))
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
                writer.write(TOPICS["depth_info"], "sensor_msgs/msg/CameraInfo", t_ns, m.camera_info(header, frame.intrinsics))
            if instances and frame.instances is not None:
                if frame.labels != labels_seen:
                    labels_seen = dict(frame.labels)
                    text = json.dumps({str(k): v for k, v in sorted(labels_seen.items())})
                    writer.write(TOPICS["labels"], "std_msgs/msg/String", t_ns, m.string(text))
                writer.write(TOPICS["instances"], "sensor_msgs/msg/Image", t_ns, m.image(header, frame.instances, "32SC1"))
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
    return record_bag(embedded_walk(seed, steps, **sim_kwargs), out_path, fmt=fmt, compressed=compressed, overwrite=overwrite)


# ----------------------------------------------------------------------------
# rosbridge (ROS 2 or ROS 1 over the websocket protocol)
# ----------------------------------------------------------------------------


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
        asm = self.assembler

        def image_cb(kind: str, topic: str, compressed: bool):
            def cb(d: dict) -> None:
                msg = message_from_dict(d)
                if kind == "rgb":
                    asm.add_rgb(msg, topic, compressed)
                else:
                    asm.add_depth(msg, topic, compressed)

            return cb

        subs = []
        for kind, topic in (("rgb", self.rgb_topic), ("depth", self.depth_topic)):
            compressed = topic.endswith("/compressed") or topic.endswith("/compressedDepth")
            typ = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
            subs.append((topic, self._type(typ), image_cb(kind, topic, compressed)))
        subs.append((self.info_topic, self._type("sensor_msgs/msg/CameraInfo"), lambda d: asm.add_camera_info(message_from_dict(d))))
        if asm.pose_source == "tf":
            subs.append(("/tf", self._type("tf2_msgs/msg/TFMessage"), lambda d: asm.add_tf(message_from_dict(d), False)))
            subs.append(("/tf_static", self._type("tf2_msgs/msg/TFMessage"), lambda d: asm.add_tf(message_from_dict(d), True)))
        else:
            typ = "nav_msgs/msg/Odometry" if asm.pose_source == "odom" else "geometry_msgs/msg/PoseStamped"
            subs.append((self.pose_topic, self._type(typ), lambda d: asm.add_odometry(message_from_dict(d))))
            subs.append(("/tf_static", self._type("tf2_msgs/msg/TFMessage"), lambda d: asm.add_tf(message_from_dict(d), True)))
        return subs

    def __iter__(self) -> Iterator[Frame]:
        import threading
        import time

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
            except Exception:
                pass
        self._topics.clear()
        if self._ros is not None:
            try:
                self._ros.close()
            except Exception:
                pass
            self._ros = None
