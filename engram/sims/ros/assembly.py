"""Frame assembly: ROS messages of several topics paired by stamp into `Frame`s.

`FrameAssembler` owns approximate time synchronisation (colour, depth and
engram's instance images), calibration by time, and the camera pose (the tf
chain to the optical frame, or odometry / PoseStamped with an extrinsic).
Every ROS source feeds it: bag replay, rosbridge, the live ROS 1 node and
live ROS 2 over DDS. `live_routes` is the one table that says which live
topic goes to which ``add_*`` method, so the live sources differ only in how
messages arrive.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from engram.sims.ros.messages import (
    _WARN_LIMIT,
    OPTICAL_IN_BODY,
    RosBagError,
    RosBagWarning,
    TfBuffer,
    TfError,
    UnsupportedEncodingError,
    _get,
    _raw_array,
    _Track,
    camera_info_to_intrinsics,
    compressed_to_depth_m,
    compressed_to_rgb,
    image_to_depth_m,
    image_to_rgb,
    stamp_to_s,
    transform_to_pose,
)
from engram.types import Frame, Pose

__all__ = ["FrameAssembler", "LiveRoute", "live_routes"]

LIVE_LABEL_WAIT_S = 1.0  # stream time an image waits for the names of its instance ids (live topics)


# ----------------------------------------------------------------------------
# approximate time synchronisation and frame assembly
# ----------------------------------------------------------------------------


class _ApproxSync:
    """Pairs each primary message with the nearest message of every other stream within a tolerance.

    A primary message is resolved once every other stream has moved past
    ``t + tolerance`` (or at the end), so the nearest match is known.
    """

    def __init__(
        self,
        primary: str,
        others: Sequence[str],
        tolerance_s: float,
        max_pending: int = 64,
        optional: Sequence[str] = (),
    ) -> None:
        self.primary = primary
        self.others = list(others)
        self.optional = set(optional)  # waited for only once the stream has delivered a message
        self.tolerance_s = tolerance_s
        self.max_pending = max_pending
        self.queues: dict[str, deque] = {n: deque() for n in [primary, *others]}
        self.latest: dict[str, float] = dict.fromkeys([primary, *others], -math.inf)

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
                self.latest[n] <= t + tol for n in self.others if n not in self.optional or self.latest[n] > -math.inf
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
        self.base_from_camera = (
            None
            if base_from_camera is None
            else Pose(base_from_camera.matrix if isinstance(base_from_camera, Pose) else base_from_camera)
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
        # label messages come from a live topic (no stamps): images wait for their ids' names
        self.live_labels = False
        others = ["depth"] + (["instances"] if use_instances else [])
        optional = ["instances"] if use_instances and instances_optional else []
        self._sync = _ApproxSync("rgb", others, self.tolerance_s, optional=optional)
        self._pending: deque = deque()  # synchronised images waiting for pose data (live)
        self._next_index = int(first_index)
        self.stats = _Stats()
        # live sources log skipped frames themselves (message starts with the topic) instead of warning
        self.on_skip: Callable[[str, str], None] | None = None

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
        message has no stamp) adds its names to those received so far: an id
        names one thing for the whole run, and a live message may arrive before
        or after the images of its time (see `pop_frames`).
        """
        try:
            labels = {int(k): str(v) for k, v in json.loads(msg.data).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            when = "live" if t_s is None else f"t={t_s:.3f} s"
            raise RosBagError(f"labels message ({when}) is not JSON {{id: name}}: {exc}") from exc
        if t_s is None:
            if self._label_times and self._label_times[-1][0] == -math.inf:
                self._label_times[-1] = (-math.inf, {**self._label_times[-1][1], **labels})
            else:
                self._label_times.append((-math.inf, labels))
        else:
            self._label_times.append((t_s, labels))

    def add_camera_info(self, msg: Any) -> None:
        """Camera calibration; a repeat of the current one (the usual 30 Hz stream) is not stored again."""
        key = (
            tuple(np.asarray(_get(msg, "k", "K"), dtype=float).tolist()),
            int(_get(msg, "width", default=0)),
            int(_get(msg, "height", default=0)),
        )
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
        if self.on_skip is not None:
            self.on_skip(kind, message)
            return
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

    def has_pending(self) -> bool:
        """True while images wait for a partner, a pose or calibration (a live source flushes them when idle)."""
        return bool(self._pending) or any(self._sync.queues.values())

    @property
    def has_camera_info(self) -> bool:
        return bool(self._infos)

    def pop_frames(self, final: bool = False, on_error: Callable[[RosBagError], None] | None = None) -> list[Frame]:
        """Frames completed so far; ``final=True`` flushes everything (end of a bag or shutdown).

        Args:
            final: flush images still waiting for a partner or a pose.
            on_error: live sources: an image that cannot become a frame for a
                structural reason (unknown encoding, broken tf chain) is
                passed here and dropped, and assembly goes on; None raises.
        """
        for t, rgb_item, matches in self._sync.pop_ready(final):
            self._pending.append((t, rgb_item, matches))
        frames: list[Frame] = []
        while self._pending:
            t, (topic, rgb_msg, compressed), matches = self._pending[0]
            camera = self.camera_frame or TfBuffer._name(rgb_msg.header.frame_id)
            give_up = self.max_wait_s is not None and self._sync.latest["rgb"] - t > self.max_wait_s
            ready = bool(self._infos) and self.pose_ready(t, camera) and self._labels_ready(t, matches)
            if not (final or give_up or ready):
                break
            self._pending.popleft()
            try:
                frame = self._build(t, topic, rgb_msg, compressed, matches, camera)
            except RosBagError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            if frame is not None:
                frames.append(frame)
        return frames

    def _labels_ready(self, t: float, matches: dict) -> bool:
        """Whether the names of a live instance image's ids have arrived (``live_labels``).

        A live label message has no stamp and may come after the images of its time: an
        image holding an id no message has named yet waits for one, for at most
        ``LIVE_LABEL_WAIT_S`` of stream time (an id never named does not hold the stream up).
        """
        ins = matches.get("instances")
        if ins is None or not self.live_labels or self._sync.latest["rgb"] - t > LIVE_LABEL_WAIT_S:
            return True
        try:
            _, arr = _raw_array(ins[1][1])
        except RosBagError:
            return True  # `_build` reports it
        known = self._label_times[-1][1] if self._label_times else {}
        ids = np.unique(arr[..., 0] if arr.ndim == 3 else arr)
        return all(int(i) in known for i in ids.tolist() if i > 0)

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
# live topics: which topic feeds which input
# ----------------------------------------------------------------------------


def _is_compressed(topic: str) -> bool:
    return topic.endswith(("/compressed", "/compressedDepth"))


@dataclass(frozen=True)
class LiveRoute:
    """One live subscription: a topic, its ROS 2 type name, its role, and the assembler input it feeds.

    ``role`` is one of rgb, depth, info, tf, tf_static, odom, pose,
    instances, labels; a transport picks its queue and QoS from it (camera
    streams, /tf and odometry are sensor data; /tf_static is latched).
    """

    topic: str
    msgtype: str
    role: str
    handle: Callable[[Any], None]


def live_routes(
    assembler: FrameAssembler,
    *,
    rgb_topic: str,
    depth_topic: str,
    info_topic: str,
    pose_topic: str | None = None,
    instances_topic: str | None = None,
    labels_topic: str | None = None,
    tf_topic: str = "/tf",
    tf_static_topic: str = "/tf_static",
) -> list[LiveRoute]:
    """The subscriptions a live source makes to feed ``assembler``, with the handler of each.

    A colour or depth topic ending in ``/compressed`` or ``/compressedDepth``
    is a ``sensor_msgs/CompressedImage``. /tf_static is always subscribed (it
    carries the camera extrinsic); /tf only for ``pose_source="tf"``, else
    the odometry / PoseStamped topic.
    """
    asm = assembler
    routes = []
    for role, topic in (("rgb", rgb_topic), ("depth", depth_topic)):
        compressed = _is_compressed(topic)
        add = asm.add_rgb if role == "rgb" else asm.add_depth
        routes.append(
            LiveRoute(
                topic,
                "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image",
                role,
                lambda m, add=add, topic=topic, compressed=compressed: add(m, topic, compressed),
            )
        )
    routes.append(LiveRoute(info_topic, "sensor_msgs/msg/CameraInfo", "info", asm.add_camera_info))
    routes.append(LiveRoute(tf_static_topic, "tf2_msgs/msg/TFMessage", "tf_static", lambda m: asm.add_tf(m, True)))
    if asm.pose_source == "tf":
        routes.append(LiveRoute(tf_topic, "tf2_msgs/msg/TFMessage", "tf", lambda m: asm.add_tf(m, False)))
    elif asm.pose_source in ("odom", "pose"):
        odom = asm.pose_source == "odom"
        topic = pose_topic or ("/odom" if odom else "/pose")
        typ = "nav_msgs/msg/Odometry" if odom else "geometry_msgs/msg/PoseStamped"
        routes.append(LiveRoute(topic, typ, asm.pose_source, asm.add_odometry))
    if instances_topic is not None:
        routes.append(
            LiveRoute(
                instances_topic, "sensor_msgs/msg/Image", "instances", lambda m: asm.add_instances(m, instances_topic)
            )
        )
    if labels_topic is not None:
        asm.live_labels = True
        routes.append(LiveRoute(labels_topic, "std_msgs/msg/String", "labels", lambda m: asm.add_labels(m, None)))
    return routes
