"""ROS messages as engram values: decoding images and calibration, ROS conventions, and tf.

This module owns the edge between a single ROS message and engram's types.
It decodes ``sensor_msgs/Image``, ``sensor_msgs/CompressedImage`` (jpeg, png,
compressedDepth) and ``sensor_msgs/CameraInfo``, turns ``geometry_msgs``
transforms into `Pose`, and keeps a tf tree (`TfBuffer`). Messages are read
by attribute, so rosbags dataclasses, rospy messages, Cyclone DDS samples
and rosbridge dicts (through `message_from_dict`) all go through one path.
It also holds the ROS message definitions engram uses (`ros1_typestore`,
`ros2_typestore`: rosbags' type stores), which the bag code and the ROS 2
DDS types are built from.

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
"""

from __future__ import annotations

import base64
import bisect
import functools
import math
import struct
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from engram._optional import require
from engram.types import CameraIntrinsics, Pose

__all__ = [
    "COMPRESSED_TYPES",
    "FRAMES",
    "IMAGE_TYPES",
    "INFO_TYPES",
    "ODOM_TYPES",
    "OPTICAL_IN_BODY",
    "POSE_TYPES",
    "STRING_TYPES",
    "TF_TYPES",
    "TOPICS",
    "RosBagError",
    "RosBagWarning",
    "TfBuffer",
    "TfError",
    "UnsupportedEncodingError",
    "camera_info_to_intrinsics",
    "compressed_to_depth_m",
    "compressed_to_rgb",
    "image_to_depth_m",
    "image_to_rgb",
    "message_from_dict",
    "norm_type",
    "ros1_typestore",
    "ros2_typestore",
    "stamp_to_s",
    "transform_to_pose",
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
        if self._parent.get(child) != parent and child in self._ancestors(parent):
            raise TfError(f"tf transform {parent!r} -> {child!r} closes a loop ({child!r} is already above {parent!r})")
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

    def _ancestors(self, frame: str) -> set[str]:
        seen = set()
        while frame in self._parent and frame not in seen:
            seen.add(frame)
            frame = self._parent[frame]
        return seen | {frame}

    def add_message(self, msg: Any, static: bool) -> None:
        """Add every transform of a ``tf2_msgs/TFMessage``."""
        for ts in _get(msg, "transforms"):
            self.add_transform(
                ts.header.frame_id,
                ts.child_frame_id,
                stamp_to_s(ts.header.stamp),
                transform_to_pose(ts.transform),
                static,
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
# message definitions (rosbags type stores)
# ----------------------------------------------------------------------------


@functools.cache
def ros1_typestore():
    """ROS 1 Noetic message definitions (plus tf2_msgs/TFMessage); types found in bags are added to it.

    Built once per process (building one costs ~20 ms).
    """
    typesys = require("rosbags.typesys", "reading and writing ROS bags")
    ts = typesys.get_typestore(typesys.Stores.ROS1_NOETIC)
    if "tf2_msgs/msg/TFMessage" not in ts.types:
        ts.register(typesys.get_types_from_msg(_TFMESSAGE_MSGDEF, "tf2_msgs/msg/TFMessage"))
    return ts


@functools.cache
def ros2_typestore():
    """ROS 2 Humble message definitions (the same on Jazzy for every type engram uses)."""
    typesys = require("rosbags.typesys", "reading and writing ROS bags")
    return typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)


def norm_type(msgtype: str) -> str:
    """'sensor_msgs/Image' and 'sensor_msgs/msg/Image' both become 'sensor_msgs/msg/Image'."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return msgtype
