"""Tests for engram.sims.ros: bag round trips, decoding, tf, synchronisation, bad input, rosbridge messages.

Frames come from a small ray-cast room (known geometry). Independent checks
use the Debian ROS 1 ``rosbag`` / ``tf2`` Python packages where installed,
the ``mcap`` reader and OpenCV.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("mcap")

from engram.sims import ros  # noqa: E402
from engram.types import CameraIntrinsics, Frame, Pose  # noqa: E402

ROS1_DIST = "/usr/lib/python3/dist-packages"


def _ros1_python(package: str) -> None:
    """Make the Debian ROS 1 Python packages importable, or skip (CI installs them)."""
    from engram import ros_node

    try:
        ros_node.import_rospy()
    except ImportError as exc:
        pytest.skip(str(exc))
    if not Path(ROS1_DIST, package).exists():
        pytest.skip(f"ROS 1 Python package {package} not installed")


ROOM_MAX = np.array([4.0, 3.0, 2.5])
BOX_MIN, BOX_MAX = np.array([1.5, 1.2, 0.0]), np.array([2.0, 1.7, 0.6])


def render_room(world_from_camera: Pose, k: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast a 4 x 3 x 2.5 m room with one box: rgb, depth_m (0 beyond 4 m), instances (box = 1)."""
    us, vs = np.meshgrid(np.arange(k.width), np.arange(k.height))
    rays_cam = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us, dtype=float)], axis=-1)
    d = rays_cam.reshape(-1, 3) @ world_from_camera.rotation.T
    o = world_from_camera.translation
    with np.errstate(divide="ignore", invalid="ignore"):
        t_room = np.where(d > 0, (ROOM_MAX - o) / d, (0.0 - o) / d)
        t_room = np.where(np.isfinite(t_room), t_room, np.inf)
        wall_axis = np.argmin(t_room, axis=1)
        t_wall = t_room.min(axis=1)
        t1, t2 = (BOX_MIN - o) / d, (BOX_MAX - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
    hit_box = (t_far >= t_near) & (t_near > 0) & (t_near < t_wall)
    depth = np.where(hit_box, t_near, t_wall).astype(np.float32)
    depth[depth > 4.0] = 0.0  # beyond the sensor range: no return
    pts = o + d * np.where(hit_box, t_near, t_wall)[:, None]
    checker = ((np.floor(pts[:, 0] * 4) + np.floor(pts[:, 1] * 4) + np.floor(pts[:, 2] * 4)) % 2).astype(np.uint8)
    palette = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]], np.uint8)
    rgb = palette[wall_axis] - checker[:, None] * 40
    rgb[hit_box] = [230, 200, 40]
    instances = hit_box.astype(np.int32)
    shape = (k.height, k.width)
    return rgb.reshape(*shape, 3).astype(np.uint8), depth.reshape(shape), instances.reshape(shape)


def room_frames(n: int = 6, period_s: float = 0.1, t0_s: float = 100.0) -> list[Frame]:
    k = CameraIntrinsics(fx=60.0, fy=60.0, cx=39.5, cy=29.5, width=80, height=60)
    frames = []
    down = 0.4  # camera pitched down (rotation about the body's +y, left)
    pitch = Pose.from_rt(
        [[math.cos(down), 0, math.sin(down)], [0, 1, 0], [-math.sin(down), 0, math.cos(down)]], [0, 0, 0]
    )
    for i in range(n):
        x, y = 0.6 + 0.05 * i, 0.5 + 0.03 * i
        yaw = math.atan2(1.45 - y, 1.75 - x) + 0.3 * math.sin(i)  # sweep around the box
        body = Pose.from_xyz_yaw(x, y, 1.2, yaw)
        world_from_camera = body @ pitch @ Pose.from_rt(ros.OPTICAL_IN_BODY, np.zeros(3))
        rgb, depth, instances = render_room(world_from_camera, k)
        frames.append(
            Frame(
                index=i,
                timestamp_s=t0_s + i * period_s,
                rgb=rgb,
                depth_m=depth,
                intrinsics=k,
                world_from_camera=world_from_camera,
                instances=instances,
                labels={1: "crate"},
            )
        )
    return frames


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return room_frames()


def assert_same_frames(got: list[Frame], want: list[Frame], *, rgb_atol: float = 0, depth_atol: float = 0) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.timestamp_s == pytest.approx(w.timestamp_s, abs=1e-9)
        assert g.intrinsics == w.intrinsics
        if rgb_atol == 0:
            np.testing.assert_array_equal(g.rgb, w.rgb)
        else:
            assert np.abs(g.rgb.astype(int) - w.rgb.astype(int)).mean() <= rgb_atol
        np.testing.assert_allclose(g.depth_m, w.depth_m, atol=depth_atol, rtol=0, equal_nan=True)
        assert g.world_from_camera.allclose(w.world_from_camera, atol=1e-6), (g.world_from_camera, w.world_from_camera)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "name,fmt", [("run.bag", "ros1"), ("run.mcap", "mcap"), ("run_mcap", "mcap"), ("run_db", "sqlite3")]
)
def test_round_trip_gives_the_same_frames(tmp_path: Path, frames: list[Frame], name: str, fmt: str) -> None:
    path = ros.record_bag(frames, tmp_path / name, fmt=fmt)
    source = ros.RosBagSource(path)
    assert source.rgb_topic == ros.TOPICS["rgb"]
    assert source.depth_topic == ros.TOPICS["depth"]
    assert source.info_topic == ros.TOPICS["info"]
    got = list(source)
    assert_same_frames(got, frames)
    for g, w in zip(got, frames):
        assert w.instances.sum() > 50  # the box is in view
        np.testing.assert_array_equal(g.instances, w.instances)
        assert g.labels == {1: "crate"}
    assert [f.index for f in got] == list(range(len(frames)))
    assert list(source)[0].timestamp_s == got[0].timestamp_s  # iterating again re-reads the bag


def test_compressed_bag_with_tf_gives_the_raw_frames(tmp_path: Path, frames: list[Frame]) -> None:
    raw = list(ros.RosBagSource(ros.record_bag(frames, tmp_path / "raw.bag", depth_encoding="16UC1")))
    comp_path = ros.record_bag(frames, tmp_path / "comp.mcap", compressed=True)
    topics = ros.bag_topics(comp_path)
    assert topics[ros.TOPICS["rgb_compressed"]] == "sensor_msgs/msg/CompressedImage"
    assert ros.TOPICS["rgb"] not in topics and ros.TOPICS["depth"] not in topics
    comp = list(ros.RosBagSource(comp_path))
    assert_same_frames(comp, raw, rgb_atol=8.0)  # JPEG error in colour; 16UC1 png depth is lossless
    import cv2

    for c, f in zip(comp, frames):  # the colour error is exactly OpenCV's JPEG round trip at quality 95
        ok, jpg = cv2.imencode(".jpg", f.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        np.testing.assert_array_equal(c.rgb, cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1])
    # and the raw bag's 16UC1 depth is the original to 1 mm
    assert_same_frames(raw, frames, depth_atol=0.0005 + 1e-6)


def test_odometry_and_pose_sources_agree_with_tf(tmp_path: Path, frames: list[Frame]) -> None:
    path = ros.record_bag(frames, tmp_path / "run.mcap")
    by_odom = list(ros.RosBagSource(path, pose_source="odom"))  # extrinsic from /tf_static
    assert_same_frames(by_odom, frames)
    base_from_camera = Pose.from_rt(ros.OPTICAL_IN_BODY, np.zeros(3))
    by_pose = list(ros.RosBagSource(path, pose_source="pose", base_from_camera=base_from_camera))
    assert_same_frames(by_pose, frames)
    wrong = Pose.from_rt(np.eye(3), [0.0, 0.0, 0.5])
    off = list(ros.RosBagSource(path, pose_source="odom", base_from_camera=wrong @ base_from_camera))
    assert not off[0].world_from_camera.allclose(frames[0].world_from_camera, atol=1e-3)


def test_custom_extrinsic_is_recorded_in_tf(tmp_path: Path, frames: list[Frame]) -> None:
    base_from_camera = Pose.from_xyz_yaw(0.2, -0.05, 0.9, 0.1) @ Pose.from_rt(ros.OPTICAL_IN_BODY, np.zeros(3))
    path = ros.record_bag(frames, tmp_path / "run.bag", base_from_camera=base_from_camera)
    assert_same_frames(list(ros.RosBagSource(path)), frames)
    assert_same_frames(list(ros.RosBagSource(path, pose_source="odom")), frames)


def test_ros1_bag_reads_in_the_ros1_rosbag_library(tmp_path: Path, frames: list[Frame]) -> None:
    """The Debian ROS 1 rosbag package (an independent reader) sees our topics, stamps and pixels."""
    _ros1_python("rosbag")
    import rosbag

    path = ros.record_bag(frames, tmp_path / "run.bag")
    with rosbag.Bag(str(path)) as bag:
        images = [m for _, m, _ in bag.read_messages(topics=[ros.TOPICS["rgb"]])]
        depths = [m for _, m, _ in bag.read_messages(topics=[ros.TOPICS["depth"]])]
        infos = [m for _, m, _ in bag.read_messages(topics=[ros.TOPICS["info"]])]
        statics = [m for _, m, _ in bag.read_messages(topics=["/tf_static"])]
    assert len(images) == len(frames)
    for img, depth, info, f in zip(images, depths, infos, frames):
        assert img.encoding == "rgb8" and img.header.stamp.to_sec() == pytest.approx(f.timestamp_s, abs=1e-6)
        np.testing.assert_array_equal(np.frombuffer(img.data, np.uint8).reshape(f.rgb.shape), f.rgb)
        np.testing.assert_array_equal(np.frombuffer(depth.data, np.float32).reshape(f.depth_m.shape), f.depth_m)
        assert info.K[0] == f.intrinsics.fx and info.K[2] == f.intrinsics.cx
    names = {(t.header.frame_id, t.child_frame_id) for t in statics[0].transforms}
    assert ("camera_link", "camera_color_optical_frame") in names


def test_bare_mcap_is_a_ros2_mcap_file(tmp_path: Path, frames: list[Frame]) -> None:
    from mcap.reader import make_reader

    path = ros.record_bag(frames, tmp_path / "run.mcap")
    assert path.is_file()
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    topics = {ch.topic: summary.schemas[ch.schema_id] for ch in summary.channels.values()}
    assert topics[ros.TOPICS["rgb"]].name == "sensor_msgs/msg/Image"
    assert topics[ros.TOPICS["rgb"]].encoding == "ros2msg"
    assert summary.statistics.message_count > 4 * len(frames)


@pytest.mark.parametrize("compression", ["ZSTD", "LZ4"])
def test_mcap_written_by_the_mcap_library_with_compressed_chunks(
    tmp_path: Path, frames: list[Frame], compression: str
) -> None:
    """An .mcap from another writer (the mcap library, as ros2 bag's mcap plugin: compressed 64 kB chunks)."""
    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer

    ours = ros.record_bag(frames, tmp_path / "ours.mcap")
    theirs = tmp_path / "theirs.mcap"
    with open(ours, "rb") as src, open(theirs, "wb") as dst:
        writer = Writer(dst, chunk_size=64 * 1024, compression=getattr(CompressionType, compression))
        writer.start(profile="ros2", library="test")
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}
        for schema, channel, message in make_reader(src).iter_messages(log_time_order=True):
            if schema.id not in schema_ids:
                schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding, schema.data)
            if channel.id not in channel_ids:
                channel_ids[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding, schema_ids[schema.id], channel.metadata
                )
            writer.add_message(channel_ids[channel.id], message.log_time, message.data, message.publish_time)
        writer.finish()
    assert theirs.stat().st_size < ours.stat().st_size  # really compressed
    got = list(ros.RosBagSource(theirs))
    assert_same_frames(got, frames)


# --------------------------------------------------------------------------- decoding


def _image(arr: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False):
    arr = np.ascontiguousarray(arr)
    if bigendian:
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1).view(np.uint8)
    data = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    return ros.message_from_dict(
        {
            "height": h,
            "width": w,
            "encoding": encoding,
            "is_bigendian": int(bigendian),
            "step": data.shape[1],
            "data": data.reshape(-1),
            "header": {"stamp": {"sec": 1, "nanosec": 5}, "frame_id": "cam"},
        }
    )


def test_colour_encodings_decode_to_the_same_rgb() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ros.image_to_rgb(_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(ros.image_to_rgb(_image(rgb[..., ::-1], "bgr8", pad=3)), rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(ros.image_to_rgb(_image(rgba[..., [2, 1, 0, 3]], "bgra8")), rgb)
    gray = rgb[..., 0]
    out = ros.image_to_rgb(_image(gray, "mono8", pad=1))
    assert out.shape == (5, 7, 3) and np.all(out == gray[..., None])


def test_depth_encodings() -> None:
    mm = np.array([[0, 1000, 2500], [65535, 1, 400]], np.uint16)
    want = np.array([[0, 1.0, 2.5], [65.535, 0.001, 0.4]], np.float32)
    np.testing.assert_allclose(ros.image_to_depth_m(_image(mm, "16UC1", pad=2)), want, rtol=1e-6)
    np.testing.assert_allclose(ros.image_to_depth_m(_image(mm, "16UC1", bigendian=True)), want, rtol=1e-6)
    m = np.array([[1.5, np.nan, np.inf], [-np.inf, 0.0, -1.0]], np.float32)
    got = ros.image_to_depth_m(_image(m, "32FC1"))
    assert got[0, 0] == 1.5 and got[1, 1] == 0.0
    assert np.isnan(got[0, 1]) and np.isnan(got[0, 2]) and np.isnan(got[1, 0]) and np.isnan(got[1, 2])
    Frame(index=0, timestamp_s=0.0, rgb=np.zeros((2, 3, 3), np.uint8), depth_m=got)  # a valid frame


def test_unknown_and_short_images_are_rejected() -> None:
    with pytest.raises(ros.UnsupportedEncodingError, match="yuv422"):
        ros.image_to_rgb(_image(np.zeros((2, 2, 2), np.uint8), "yuv422"))
    msg = _image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    msg.data = msg.data[:-5]
    with pytest.raises(ros.RosBagError, match="bytes"):
        ros.image_to_rgb(msg)


def test_compressed_colour_matches_opencv_and_rosbridge_base64() -> None:
    import cv2

    rgb = room_frames(1)[0].rgb
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    msg = ros.message_from_dict(
        {"format": "rgb8; png compressed bgr8", "data": base64.b64encode(png.tobytes()).decode()}
    )
    np.testing.assert_array_equal(ros.compressed_to_rgb(msg), rgb)
    with pytest.raises(ros.UnsupportedEncodingError, match="webp"):
        ros.compressed_to_rgb(ros.message_from_dict({"format": "webp", "data": png.tobytes()}))


def test_compressed_depth_codecs() -> None:
    depth = room_frames(1)[0].depth_m.copy()
    depth[0, :5] = np.nan
    data, fmt = ros.encode_compressed_depth(depth, "16UC1")
    got = ros.compressed_to_depth_m(ros.message_from_dict({"format": fmt, "data": data}))
    want = np.where(np.isfinite(depth), np.rint(np.nan_to_num(depth) * 1000) / 1000, 0)
    np.testing.assert_allclose(got, want, atol=1e-6)
    data, fmt = ros.encode_compressed_depth(depth, "32FC1")
    got = ros.compressed_to_depth_m(ros.message_from_dict({"format": fmt, "data": data}))
    valid = np.isfinite(depth) & (depth > 0)
    # inverse-depth quantisation: step in depth is about d^2 / A with A = 100 * 101
    err = np.abs(got[valid] - depth[valid])
    assert np.all(err <= depth[valid] ** 2 / 10100.0 + 1e-4)
    assert np.all(np.isnan(got[~valid]))
    # the header is three little-endian 32-bit numbers: format, A, B
    fmt_id, a, b = struct.unpack("<iff", data[:12])
    assert fmt_id == 0 and a == pytest.approx(10100.0) and b == pytest.approx(1 - 1010.0)
    with pytest.raises(ros.UnsupportedEncodingError, match="RVL"):
        ros.compressed_to_depth_m(ros.message_from_dict({"format": "16UC1; compressedDepth rvl", "data": data}))


def test_camera_info_ros1_and_ros2_field_names() -> None:
    k = [525.0, 0, 319.5, 0, 520.0, 239.5, 0, 0, 1]
    for field in ("K", "k"):
        info = ros.message_from_dict({"width": 640, "height": 480, field: k})
        assert ros.camera_info_to_intrinsics(info) == CameraIntrinsics(525.0, 520.0, 319.5, 239.5, 640, 480)
    with pytest.raises(ros.RosBagError, match="fx"):
        ros.camera_info_to_intrinsics(ros.message_from_dict({"width": 640, "height": 480, "k": [0.0] * 9}))


# --------------------------------------------------------------------------- tf


def _ts(parent: str, child: str, t_s: float, xyz, q_xyzw) -> dict:
    sec = int(math.floor(t_s))
    return {
        "header": {"stamp": {"secs": sec, "nsecs": int(round((t_s - sec) * 1e9))}, "frame_id": parent},
        "child_frame_id": child,
        "transform": {
            "translation": dict(zip("xyz", map(float, xyz))),
            "rotation": dict(zip("xyzw", map(float, q_xyzw))),
        },
    }


def test_tf_chain_interpolates_translation_and_rotation() -> None:
    buf = ros.TfBuffer()
    s = math.sqrt(0.5)
    buf.add_message(
        ros.message_from_dict({"transforms": [_ts("/map", "odom", 0, (1, 0, 0), (0, 0, 0, 1))]}), static=True
    )
    buf.add_message(ros.message_from_dict({"transforms": [_ts("odom", "base", 10.0, (0, 0, 0), (0, 0, 0, 1))]}), False)
    buf.add_message(ros.message_from_dict({"transforms": [_ts("odom", "base", 12.0, (2, 4, 0), (0, 0, s, s))]}), False)
    buf.add_message(ros.message_from_dict({"transforms": [_ts("base", "cam", 0, (0, 0, 1), (0, 0, 0, 1))]}), True)
    pose = buf.lookup("map", "cam", 11.0)
    # halfway: translation (1, 2, 0) + map offset (1, 0, 0), yaw 45 degrees, camera 1 m above base
    np.testing.assert_allclose(pose.translation, [2.0, 2.0, 1.0], atol=1e-12)
    yaw = math.atan2(pose.rotation[1, 0], pose.rotation[0, 0])
    assert yaw == pytest.approx(math.pi / 4)
    # inverse direction of the same chain
    assert buf.lookup("cam", "map", 11.0).allclose(pose.inverse(), atol=1e-12)
    with pytest.raises(ros.TfError, match=r"no data at t=13\.000"):
        buf.lookup("map", "cam", 13.0, tolerance_s=0.5)
    buf.lookup("map", "cam", 12.4, tolerance_s=0.5)  # within tolerance: clamped to the last sample
    buf.add_message(ros.message_from_dict({"transforms": [_ts("world", "other", 0, (0, 0, 0), (0, 0, 0, 1))]}), True)
    with pytest.raises(ros.TfError, match="chain broken.*'map'.*'other'"):
        buf.lookup("map", "other", 11.0)


def test_tf_loop_is_refused_and_the_tree_is_kept() -> None:
    buf = ros.TfBuffer()
    for parent, child in (("map", "odom"), ("odom", "base"), ("base", "cam")):
        buf.add_message(ros.message_from_dict({"transforms": [_ts(parent, child, 0, (1, 0, 0), (0, 0, 0, 1))]}), True)
    want = buf.lookup("map", "cam", 0.0)
    for parent, child in (("cam", "odom"), ("base", "map")):  # each would make a frame its own ancestor
        with pytest.raises(ros.TfError, match=f"'{parent}' -> '{child}' closes a loop"):
            buf.add_message(
                ros.message_from_dict({"transforms": [_ts(parent, child, 0, (0, 0, 0), (0, 0, 0, 1))]}), True
            )
    assert buf.lookup("map", "cam", 0.0).allclose(want, atol=0)
    # re-parenting without a loop is a tf update, not an error
    buf.add_message(ros.message_from_dict({"transforms": [_ts("map", "base", 0, (0, 0, 0), (0, 0, 0, 1))]}), True)
    assert buf.lookup("map", "cam", 0.0).translation[0] == pytest.approx(1.0)


def test_tf_matches_the_ros_tf2_library() -> None:
    """Compare chain lookups with tf2 (the ROS implementation) at times between samples."""
    _ros1_python("tf2_py")
    import rospy
    import tf2_py
    from geometry_msgs.msg import TransformStamped

    rng = np.random.default_rng(3)
    ours = ros.TfBuffer()
    core = tf2_py.BufferCore(rospy.Duration(100.0))
    chain = [("map", "odom", True), ("odom", "base", False), ("base", "cam", True)]
    for parent, child, static in chain:
        for t in [1.0] if static else [1.0, 1.4, 2.0, 2.9]:
            q = rng.normal(size=4)
            q /= np.linalg.norm(q)
            xyz = rng.normal(size=3)
            d = _ts(parent, child, t, xyz, q)
            ours.add_message(ros.message_from_dict({"transforms": [d]}), static)
            m = TransformStamped()
            m.header.frame_id, m.child_frame_id = parent, child
            m.header.stamp = rospy.Time.from_sec(t)
            m.transform.translation.x, m.transform.translation.y, m.transform.translation.z = xyz
            m.transform.rotation.x, m.transform.rotation.y, m.transform.rotation.z, m.transform.rotation.w = q
            (core.set_transform_static if static else core.set_transform)(m, "test")
    for t in (1.1, 1.7, 2.5):
        theirs = core.lookup_transform_core("map", "cam", rospy.Time.from_sec(t))
        want = ros.transform_to_pose(theirs.transform)
        assert ours.lookup("map", "cam", t).allclose(want, atol=1e-9)


# --------------------------------------------------------------------------- synchronisation


def _write(path: Path, fmt: str, messages: list[tuple[str, str, int, object]]) -> None:
    w = ros.record._Writer(path, fmt)
    for topic, typ, t_ns, msg in messages:
        w.write(topic, typ, t_ns, msg)
    w.close()


def _bag_messages(
    m,
    frames: list[Frame],
    *,
    depth_offset_s: float = 0.0,
    rgb_encoding: str = "rgb8",
    tf_pairs=(("map", "odom"), ("odom", "camera_color_optical_frame")),
) -> list:
    out = []
    for f in frames:
        t_ns = int(round(f.timestamp_s * 1e9))
        h = m.header(t_ns, "camera_color_optical_frame")
        out.append(("/cam/info", "sensor_msgs/msg/CameraInfo", t_ns, m.camera_info(h, f.intrinsics)))
        img = m.image(h, f.rgb, "rgb8")
        img = type(img)(**{**img.__dict__, "encoding": rgb_encoding}) if rgb_encoding != "rgb8" else img
        out.append(("/cam/rgb", "sensor_msgs/msg/Image", t_ns, img))
        d_ns = t_ns + int(round(depth_offset_s * 1e9))
        out.append(
            (
                "/cam/depth",
                "sensor_msgs/msg/Image",
                d_ns,
                m.image(m.header(d_ns, "camera_color_optical_frame"), f.depth_m, "32FC1"),
            )
        )
        tfs = [m.transform(t_ns, tf_pairs[0][0], tf_pairs[0][1], Pose())]
        tfs.append(m.transform(t_ns, tf_pairs[1][0], tf_pairs[1][1], f.world_from_camera))
        out.append(("/tf", "tf2_msgs/msg/TFMessage", t_ns, m.tf_message(tfs)))
    out.sort(key=lambda x: x[2])
    return out


def test_depth_within_tolerance_pairs_and_beyond_is_skipped(tmp_path: Path, frames: list[Frame]) -> None:
    m = ros.record._MsgFactory(ros1=True)
    _write(tmp_path / "near.bag", "ros1", _bag_messages(m, frames, depth_offset_s=0.008))
    got = list(ros.RosBagSource(tmp_path / "near.bag", sync_tolerance_s=0.01))
    assert_same_frames(got, frames)
    _write(tmp_path / "far.bag", "ros1", _bag_messages(m, frames, depth_offset_s=0.03))
    src = ros.RosBagSource(tmp_path / "far.bag", sync_tolerance_s=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(src) == []
    texts = [str(w.message) for w in caught if issubclass(w.category, ros.RosBagWarning)]
    assert "far.bag: skipped frame: /cam/rgb at t=100.000 s: no depth image within 0.01 s" in texts[0]
    assert len(texts) == 4  # three per kind, then one summary
    assert src.stats.skipped == {"no_depth": len(frames)}
    # a wider tolerance pairs them again (with the depth image 30 ms later)
    assert len(list(ros.RosBagSource(tmp_path / "far.bag", sync_tolerance_s=0.05))) == len(frames)


def test_ambiguous_topics_need_naming(tmp_path: Path, frames: list[Frame]) -> None:
    m = ros.record._MsgFactory(ros1=False)
    msgs = _bag_messages(m, frames[:2])
    msgs += [("/cam2/rgb", t, ns, x) for topic, t, ns, x in msgs if topic == "/cam/rgb"]
    _write(tmp_path / "two.mcap", "mcap", msgs)
    with pytest.raises(ros.RosBagError, match=r"several colour image topics \['/cam/rgb', '/cam2/rgb'\]"):
        ros.RosBagSource(tmp_path / "two.mcap")
    got = list(ros.RosBagSource(tmp_path / "two.mcap", rgb_topic="/cam2/rgb", world_frame="map"))
    assert_same_frames(got, frames[:2])


# --------------------------------------------------------------------------- bad input


def test_missing_depth_or_camera_info_topic(tmp_path: Path, frames: list[Frame]) -> None:
    m = ros.record._MsgFactory(ros1=True)
    msgs = _bag_messages(m, frames[:2])
    _write(tmp_path / "nodepth.bag", "ros1", [x for x in msgs if x[0] != "/cam/depth"])
    with pytest.raises(ros.RosBagError, match="no depth image topic"):
        ros.RosBagSource(tmp_path / "nodepth.bag")
    _write(tmp_path / "noinfo.bag", "ros1", [x for x in msgs if x[0] != "/cam/info"])
    with pytest.raises(ros.RosBagError, match="CameraInfo"):
        ros.RosBagSource(tmp_path / "noinfo.bag")
    with pytest.raises(ros.RosBagError, match="no topic '/nope'"):
        ros.RosBagSource(tmp_path / "noinfo.bag", info_topic="/nope")
    with pytest.raises(ros.RosBagError, match="does not exist"):
        ros.RosBagSource(tmp_path / "missing.bag")


def test_unknown_encoding_names_topic_and_time(tmp_path: Path, frames: list[Frame]) -> None:
    m = ros.record._MsgFactory(ros1=False)
    _write(tmp_path / "yuv", "sqlite3", _bag_messages(m, frames[:2], rgb_encoding="yuv422"))
    with pytest.raises(ros.UnsupportedEncodingError, match=r"/cam/rgb at t=100\.000 s: .*'yuv422'"):
        list(ros.RosBagSource(tmp_path / "yuv"))


def test_broken_tf_chain_names_frames_and_time(tmp_path: Path, frames: list[Frame]) -> None:
    m = ros.record._MsgFactory(ros1=True)
    # map -> odom and base -> camera, but nothing links odom to base
    _write(
        tmp_path / "broken.bag",
        "ros1",
        _bag_messages(m, frames[:2], tf_pairs=(("map", "odom"), ("base_link", "camera_color_optical_frame"))),
    )
    with pytest.raises(ros.TfError, match=r"t=100\.000 s.*chain broken.*'map'.*'camera_color_optical_frame'"):
        list(ros.RosBagSource(tmp_path / "broken.bag"))


def test_truncated_mcap_keeps_frames_before_the_cut(tmp_path: Path) -> None:
    frames = room_frames(40)  # about 2 MB: two 1 MiB mcap chunks
    path = ros.record_bag(frames, tmp_path / "run.mcap")
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.75)])
    got: list[Frame] = []
    with pytest.raises(ros.RosBagError, match=r"truncated or corrupt: reading stopped after /\S+ at t=10\d\.\d{3} s"):
        for frame in ros.RosBagSource(cut):
            got.append(frame)
    assert 1 <= len(got) < len(frames)
    assert_same_frames(got, frames[: len(got)])
    # not strict: a warning, same frames
    with pytest.warns(ros.RosBagWarning, match="truncated"):
        again = list(ros.RosBagSource(cut, strict=False))
    assert len(again) == len(got)


@pytest.mark.parametrize("fraction", [0.7, 0.3])
def test_truncated_ros1_bag_is_read_up_to_the_cut(tmp_path: Path, fraction: float) -> None:
    """A .bag cut short has no index; it is read sequentially, the frames before the cut are kept."""
    frames = room_frames(40)
    path = ros.record_bag(frames, tmp_path / "run.bag")
    cut = tmp_path / "cut.bag"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    with pytest.warns(ros.RosBagWarning, match="cut.bag has no usable index.*reading it sequentially"):
        source = ros.RosBagSource(cut)
    got: list[Frame] = []
    with pytest.raises(ros.RosBagError, match=r"cut.bag is truncated.*after /\S+ at t=10\d\.\d{3} s.*cut short"):
        for frame in source:
            got.append(frame)
    assert len(frames) * fraction * 0.8 <= len(got) <= len(frames) * fraction + 1
    assert_same_frames(got, frames[: len(got)])
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ros.RosBagError, match="cut.bag"):
        ros.RosBagSource(cut)


def test_record_rejects_bad_arguments(tmp_path: Path, frames: list[Frame]) -> None:
    with pytest.raises(ValueError, match="fmt"):
        ros.record_bag(frames, tmp_path / "x.txt")
    ros.record_bag(frames[:1], tmp_path / "a.bag")
    with pytest.raises(ValueError, match="exists"):
        ros.record_bag(frames[:1], tmp_path / "a.bag")
    bare = Frame(index=0, timestamp_s=0.0, rgb=frames[0].rgb)
    with pytest.raises(ValueError, match="intrinsics"):
        ros.record_bag([bare], tmp_path / "b.bag")
    assert not (tmp_path / "b.bag").exists()  # nothing half-written is left behind
    with pytest.raises(ValueError, match="pose_source"):
        ros.RosBagSource(tmp_path / "a.bag", pose_source="gps")


# --------------------------------------------------------------------------- rosbridge


def _rosbridge_dicts(frame: Frame) -> dict[str, dict]:
    """The JSON rosbridge sends for one frame (ROS 2 field names, uint8[] as base64)."""
    sec, nsec = int(frame.timestamp_s), int(round((frame.timestamp_s % 1) * 1e9))
    header = {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": "camera_color_optical_frame"}
    k = frame.intrinsics
    h, w = frame.height, frame.width
    return {
        "rgb": {
            "header": header,
            "height": h,
            "width": w,
            "encoding": "bgr8",
            "is_bigendian": 0,
            "step": w * 3,
            "data": base64.b64encode(frame.rgb[..., ::-1].tobytes()).decode(),
        },
        "depth": {
            "header": header,
            "height": h,
            "width": w,
            "encoding": "32FC1",
            "is_bigendian": 0,
            "step": w * 4,
            "data": base64.b64encode(frame.depth_m.tobytes()).decode(),
        },
        "info": {"header": header, "height": h, "width": w, "k": [k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1]},
        "tf": {
            "transforms": [
                _ts(
                    "odom",
                    "camera_color_optical_frame",
                    frame.timestamp_s,
                    frame.world_from_camera.translation,
                    frame.world_from_camera.as_quaternion(),
                )
            ]
        },
    }


def test_rosbridge_messages_become_frames(frames: list[Frame]) -> None:
    source = ros.RosbridgeSource(sync_tolerance_s=0.01)
    subs = {topic: cb for topic, _, cb in source.subscriptions()}
    types = {topic: typ for topic, typ, _ in source.subscriptions()}
    assert types[ros.TOPICS["rgb"]] == "sensor_msgs/msg/Image" and "/tf_static" in subs
    got = []
    for f in frames:
        d = json.loads(json.dumps(_rosbridge_dicts(f)))  # exactly what crosses the websocket
        subs["/tf"](d["tf"])
        subs[ros.TOPICS["info"]](d["info"])
        subs[ros.TOPICS["rgb"]](d["rgb"])
        subs[ros.TOPICS["depth"]](d["depth"])
        got += source.assembler.pop_frames()
    got += source.assembler.pop_frames(final=True)
    assert_same_frames(got, frames)
    ros1 = ros.RosbridgeSource(ros2=False)
    assert {typ for _, typ, _ in ros1.subscriptions()} >= {"sensor_msgs/Image", "tf2_msgs/TFMessage"}


def test_live_assembler_waits_for_tf_after_the_image(frames: list[Frame]) -> None:
    asm = ros.FrameAssembler(sync_tolerance_s=0.01)
    d = [_rosbridge_dicts(f) for f in frames[:2]]
    asm.add_camera_info(ros.message_from_dict(d[0]["info"]))
    asm.add_rgb(ros.message_from_dict(d[0]["rgb"]))
    asm.add_depth(ros.message_from_dict(d[0]["depth"]))
    asm.add_rgb(ros.message_from_dict(d[1]["rgb"]))
    asm.add_depth(ros.message_from_dict(d[1]["depth"]))
    assert asm.pop_frames() == []  # the pose at the image time is not known yet
    asm.add_tf(ros.message_from_dict(d[0]["tf"]))
    first = asm.pop_frames()
    assert len(first) == 1 and first[0].world_from_camera.allclose(frames[0].world_from_camera, atol=1e-9)
    asm.add_tf(ros.message_from_dict(d[1]["tf"]))
    assert len(asm.pop_frames(final=True)) == 1


def test_recorded_bag_is_found_by_the_configured_source(tmp_path: Path, frames: list[Frame]) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(ros.__file__).parents[2] / "configs" / "sim" / "rosbag.yaml")
    assert cfg._target_ == "engram.sims.ros.RosBagSource"
    path = ros.record_bag(frames[:2], tmp_path / "run.mcap")
    from hydra.utils import instantiate

    source = instantiate(cfg, path=str(path))
    assert len(list(source)) == 2


def test_no_warnings_on_a_clean_bag(tmp_path: Path, frames: list[Frame]) -> None:
    path = ros.record_bag(frames, tmp_path / "run.bag")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(ros.RosBagSource(path))) == len(frames)


# --------------------------------------------------------------------------- embedded world -> bag -> memory


@pytest.fixture(scope="module")
def sim_bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("pybullet")
    try:
        from engram.sims.embedded import EmbeddedSim  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"embedded world not available: {exc}")
    out = tmp_path_factory.mktemp("sim_bags")
    kw = dict(seed=3, steps=10, width=96, height=72)
    return {
        "ros1": ros.record_sim(out / "run.bag", **kw),
        "mcap": ros.record_sim(out / "run.mcap", **kw),
        "compressed": ros.record_sim(out / "comp.mcap", compressed=True, **kw),
    }


def _sim_frames() -> list[Frame]:
    return list(ros.embedded_walk(seed=3, steps=10, width=96, height=72))


def test_embedded_world_bags_replay_to_the_same_frames(sim_bags: dict[str, Path]) -> None:
    frames = _sim_frames()
    assert sum(len(f.labels) for f in frames) > 0
    for fmt in ("ros1", "mcap"):
        got = list(ros.RosBagSource(sim_bags[fmt]))
        assert_same_frames(got, frames)
        for g, w in zip(got, frames):
            np.testing.assert_array_equal(g.instances, w.instances)
            assert {i: g.labels[i] for i in np.unique(w.instances) if i in w.labels} == {
                i: w.labels[i] for i in np.unique(w.instances) if i in w.labels
            }
    comp = list(ros.RosBagSource(sim_bags["compressed"]))
    assert_same_frames(comp, frames, rgb_atol=8.0, depth_atol=0.0005 + 1e-6)


def test_embedded_world_bag_builds_the_same_memory(sim_bags: dict[str, Path]) -> None:
    try:
        from engram.memory.scene import SceneMemory

        SceneMemory(detector="oracle", voxel_size_m=0.1)
    except ImportError as exc:
        pytest.skip(f"SceneMemory not available: {exc}")

    def build(source) -> SceneMemory:
        mem = SceneMemory(detector="oracle", voxel_size_m=0.1, text_encoder="hash")
        for frame in source:
            mem.integrate(frame)
        return mem

    direct = build(_sim_frames())
    want = np.asarray(direct.octree.occupied_centers())
    assert len(want) > 100 and len(direct.objects.objects) > 0
    for fmt in ("ros1", "mcap"):
        replayed = build(ros.RosBagSource(sim_bags[fmt]))
        got = np.asarray(replayed.octree.occupied_centers())
        assert got.shape == want.shape
        np.testing.assert_array_equal(got[np.lexsort(got.T)], want[np.lexsort(want.T)])
        assert replayed.octree.digest() == direct.octree.digest()
        assert sorted((i, o.label) for i, o in replayed.objects.objects.items()) == sorted(
            (i, o.label) for i, o in direct.objects.objects.items()
        )
        for i, o in direct.objects.objects.items():
            np.testing.assert_allclose(replayed.objects.objects[i].centroid, o.centroid, atol=1e-9)


def test_live_assembler_memory_stays_bounded(frames: list[Frame]) -> None:
    """Hours of tf at 100 Hz keep only the history window; an image whose tf never comes is given up."""
    asm = ros.FrameAssembler(sync_tolerance_s=0.01, history_s=5.0, max_wait_s=2.0)
    for i in range(3000):  # 30 s of odom -> camera at 100 Hz
        t = 100.0 + i * 0.01
        asm.add_tf(
            ros.message_from_dict(
                {"transforms": [_ts("odom", "camera_color_optical_frame", t, (t, 0, 0), (0, 0, 0, 1))]}
            )
        )
        asm.add_camera_info(ros.message_from_dict(_rosbridge_dicts(frames[0])["info"]))
    track = asm.tf._dynamic["camera_color_optical_frame"]
    assert len(track.times_s) < 600 and max(track.times_s) == pytest.approx(129.99)
    assert len(asm._infos) == 1  # an unchanged calibration is stored once
    np.testing.assert_allclose(
        asm.tf.lookup("odom", "camera_color_optical_frame", 127.005).translation, [127.005, 0, 0]
    )
    # images at t = 200 s and later: no tf will ever cover them
    for i in range(4):
        d = _rosbridge_dicts(frames[i])
        for key in ("rgb", "depth"):
            d[key]["header"]["stamp"] = {"sec": 200 + i, "nanosec": 0}
        asm.add_rgb(ros.message_from_dict(d["rgb"]))
        asm.add_depth(ros.message_from_dict(d["depth"]))
    with pytest.warns(ros.RosBagWarning, match=r"t=200\.000 s: tf 'odom' -> 'camera_color_optical_frame' has no data"):
        assert asm.pop_frames() == []
    assert len(asm._pending) <= 2  # the old ones were given up, the newest still wait


_FAKE_ROSBRIDGE = r"""
import asyncio, importlib.util, json, socket, sys
spec = importlib.util.spec_from_file_location("t", sys.argv[1]); t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)
from autobahn.asyncio.websocket import WebSocketServerFactory, WebSocketServerProtocol
from engram.sims import ros

frames = t.room_frames(5)
topics = {"/tf": "tf", ros.TOPICS["info"]: "info", ros.TOPICS["rgb"]: "rgb", ros.TOPICS["depth"]: "depth"}
subscribed = set()

class Bridge(WebSocketServerProtocol):  # the part of the rosbridge protocol a subscriber uses
    def onMessage(self, payload, is_binary):
        request = json.loads(payload)
        if request.get("op") == "subscribe":
            subscribed.add(request["topic"])
            print(json.dumps({"subscribed": sorted(subscribed)}), flush=True)
            if subscribed >= set(topics):
                asyncio.ensure_future(self.publish_all())

    async def publish_all(self):
        await asyncio.sleep(0.5)  # the client registers its handler after sending "subscribe"
        for frame in frames:
            d = t._rosbridge_dicts(frame)
            for topic, key in topics.items():
                self.sendMessage(json.dumps({"op": "publish", "topic": topic, "msg": d[key]}).encode())
            await asyncio.sleep(0.02)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
factory = WebSocketServerFactory(f"ws://127.0.0.1:{port}")
factory.protocol = Bridge
loop.run_until_complete(loop.create_server(factory, "127.0.0.1", port))
print(json.dumps({"port": port}), flush=True)
loop.run_forever()
"""

_ROSBRIDGE_CLIENT = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("t", sys.argv[1]); t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)
from engram.sims import ros

frames = t.room_frames(5)
source = ros.RosbridgeSource("127.0.0.1", int(sys.argv[2]), sync_tolerance_s=0.01, max_frames=4, timeout_s=20)
got = list(source)
by_time = {round(f.timestamp_s, 6): f for f in frames}
t.assert_same_frames(got, [by_time[round(g.timestamp_s, 6)] for g in got])
print(json.dumps({"frames": len(got)}))
"""


def test_rosbridge_source_over_a_websocket(tmp_path: Path) -> None:
    """RosbridgeSource (roslibpy) against a minimal rosbridge server (subscribe, then publish) on localhost."""
    import os
    import subprocess
    import sys

    pytest.importorskip("roslibpy")
    pytest.importorskip("autobahn")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    (tmp_path / "bridge.py").write_text(_FAKE_ROSBRIDGE)
    (tmp_path / "client.py").write_text(_ROSBRIDGE_CLIENT)
    server = subprocess.Popen(
        [sys.executable, str(tmp_path / "bridge.py"), __file__], env=env, cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        port = json.loads(server.stdout.readline())["port"]
        out = subprocess.run(
            [sys.executable, str(tmp_path / "client.py"), __file__, str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=repo,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {"frames": 4}
    finally:
        server.kill()
        server.wait(10)
    subscribed = [json.loads(line)["subscribed"] for line in server.stdout.read().splitlines() if "subscribed" in line]
    assert {"/tf_static", ros.TOPICS["rgb"], ros.TOPICS["depth"]} <= set(subscribed[-1])


def test_body_convention_camera_frame_is_turned_to_optical(tmp_path: Path, frames: list[Frame]) -> None:
    """Posing by camera_link (REP-103 body axes) with camera_convention='body' equals the optical frame's pose."""
    path = ros.record_bag(frames[:3], tmp_path / "run.bag")
    got = list(ros.RosBagSource(path, camera_frame="camera_link", camera_convention="body"))
    assert_same_frames(got, frames[:3])
    wrong = list(ros.RosBagSource(path, camera_frame="camera_link"))  # body axes taken as optical
    assert not wrong[0].world_from_camera.allclose(frames[0].world_from_camera, atol=1e-3)
    np.testing.assert_allclose(
        wrong[0].world_from_camera.translation, frames[0].world_from_camera.translation, atol=1e-9
    )


def _instances_dict(frame: Frame, ids: np.ndarray) -> dict:
    header = _rosbridge_dicts(frame)["rgb"]["header"]
    h, w = ids.shape
    data = base64.b64encode(np.ascontiguousarray(ids, np.int32).tobytes()).decode()
    return {"header": header, "height": h, "width": w, "encoding": "32SC1", "is_bigendian": 0, "step": w * 4,
            "data": data}  # fmt: skip


def test_live_instance_names_may_arrive_before_or_after_their_images(frames: list[Frame]) -> None:
    # live label messages have no stamp: frame 0 shows ids 1 and 2, frame 1 only id 2; the message
    # naming id 1 comes after frame 0's images, the one for frame 1 (id 2 alone) before frame 0 is built
    asm = ros.FrameAssembler(sync_tolerance_s=0.01, use_instances=True)
    ros.live_routes(asm, rgb_topic="/rgb", depth_topic="/depth", info_topic="/info", labels_topic="/labels")
    h, w = frames[0].height, frames[0].width
    ids0 = np.zeros((h, w), np.int32)
    ids0[: h // 2], ids0[h // 2 :] = 1, 2
    ids1 = np.full((h, w), 2, np.int32)
    labels = lambda names: ros.message_from_dict({"data": json.dumps(names)})  # noqa: E731
    asm.add_labels(labels({"2": "shelf"}), None)
    for f, ids in ((frames[0], ids0), (frames[1], ids1)):
        d = _rosbridge_dicts(f)
        asm.add_camera_info(ros.message_from_dict(d["info"]))
        asm.add_tf(ros.message_from_dict(d["tf"]))
        asm.add_rgb(ros.message_from_dict(d["rgb"]))
        asm.add_depth(ros.message_from_dict(d["depth"]))
        asm.add_instances(ros.message_from_dict(_instances_dict(f, ids)))
    assert asm.pop_frames() == []  # frame 0 holds id 1, which no message has named yet
    asm.add_labels(labels({"1": "remote", "2": "shelf"}), None)
    asm.add_labels(labels({"2": "shelf"}), None)  # the next change (frame 1) overtakes frame 0
    got = asm.pop_frames(final=True)
    assert [f.labels for f in got] == [{1: "remote", 2: "shelf"}, {1: "remote", 2: "shelf"}]
    # an id never named holds the stream up for LIVE_LABEL_WAIT_S of stream time at most
    asm2 = ros.FrameAssembler(sync_tolerance_s=0.01, use_instances=True)
    ros.live_routes(asm2, rgb_topic="/rgb", depth_topic="/depth", info_topic="/info", labels_topic="/labels")
    late = frames[0].timestamp_s + ros.assembly.LIVE_LABEL_WAIT_S + 0.5
    for f, t in ((frames[0], frames[0].timestamp_s), (frames[1], late)):
        d = _rosbridge_dicts(f)
        for key in ("rgb", "depth", "info"):
            d[key]["header"]["stamp"] = {"sec": int(t), "nanosec": int(round((t % 1) * 1e9))}
        d["tf"]["transforms"][0]["header"]["stamp"] = d["rgb"]["header"]["stamp"]
        ins = _instances_dict(f, ids0)
        ins["header"] = d["rgb"]["header"]
        asm2.add_camera_info(ros.message_from_dict(d["info"]))
        asm2.add_tf(ros.message_from_dict(d["tf"]))
        asm2.add_rgb(ros.message_from_dict(d["rgb"]))
        asm2.add_depth(ros.message_from_dict(d["depth"]))
        asm2.add_instances(ros.message_from_dict(ins))
    first = asm2.pop_frames()
    assert len(first) == 1 and first[0].timestamp_s == pytest.approx(frames[0].timestamp_s)
