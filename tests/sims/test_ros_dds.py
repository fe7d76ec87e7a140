"""Tests for engram.sims.ros.dds: ROS 2 types on DDS, QoS, and live frames over Cyclone DDS on loopback.

The DDS types are checked against rosbags' CDR codec (an independent
serialiser of the ROS 2 wire format): Cyclone's own serialiser must give the
same bytes. Live tests run publisher and subscriber participants on
127.0.0.1 only (unicast discovery, no multicast), each on its own domain id.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
pytest.importorskip("cyclonedds")

from engram.sims import ros
from engram.sims.ros import dds
from engram.sims.ros.record import _MsgFactory

_ids = itertools.count()
# reliable with a history deeper than any test sends: a receiver starved on a loaded machine loses nothing
KEEP_ALL_SENT = dds.QosProfile(reliable=True, depth=1000)


def domain_id() -> int:
    """A domain id for one test: spread by process so parallel runs on this machine do not meet."""
    return 100 + (os.getpid() * 7 + next(_ids)) % 120


def _room_frames(n: int):
    spec = importlib.util.spec_from_file_location("_ros_room", Path(__file__).with_name("test_ros.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.room_frames(n)


def test_names_follow_ros2_on_dds() -> None:
    assert dds.dds_topic_name("/camera/color/image_raw") == "rt/camera/color/image_raw"
    assert dds.dds_topic_name("tf") == "rt/tf"
    assert dds.dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert dds.dds_type_name("tf2_msgs/TFMessage") == "tf2_msgs::msg::dds_::TFMessage_"
    assert dds.dds_type("sensor_msgs/msg/Image").__idl_typename__ == "sensor_msgs::msg::dds_::Image_"
    with pytest.raises(ros.RosBagError, match="not known"):
        dds.dds_type("nope_msgs/msg/Nothing")


@pytest.mark.parametrize(
    "msgtype",
    [
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CameraInfo",
        "sensor_msgs/msg/CompressedImage",
        "tf2_msgs/msg/TFMessage",
        "nav_msgs/msg/Odometry",
        "geometry_msgs/msg/PoseStamped",
        "sensor_msgs/msg/PointCloud2",
        "visualization_msgs/msg/MarkerArray",
        "std_msgs/msg/String",
    ],
)
def test_dds_types_have_the_ros2_wire_layout(msgtype: str) -> None:
    """A message serialised by rosbags (ROS 2 CDR) reads back in Cyclone's type and re-serialises to the same bytes."""
    m = _MsgFactory(ros1=False)
    header = m.header(1_234_567_891, "camera_color_optical_frame")
    from engram.types import CameraIntrinsics, Pose

    pose = Pose.from_xyz_yaw(1.0, 2.0, 0.5, 0.3)
    samples = {
        "sensor_msgs/msg/Image": lambda: m.image(
            header, (np.arange(7 * 5 * 3) % 251).astype(np.uint8).reshape(7, 5, 3), "rgb8"
        ),
        "sensor_msgs/msg/CameraInfo": lambda: m.camera_info(header, CameraIntrinsics(50.0, 51.0, 2.0, 3.0, 5, 7)),
        "sensor_msgs/msg/CompressedImage": lambda: m.compressed(header, b"\x01\x02\x03", "jpeg"),
        "tf2_msgs/msg/TFMessage": lambda: m.tf_message(
            [m.transform(5, "odom", "base_link", pose), m.transform(6, "map", "odom", pose)]
        ),
        "nav_msgs/msg/Odometry": lambda: m.odometry(7, "odom", "base_link", pose),
        "geometry_msgs/msg/PoseStamped": lambda: m.pose_stamped(8, "map", pose),
        "sensor_msgs/msg/PointCloud2": lambda: dds.ros2_message(
            "sensor_msgs/msg/PointCloud2",
            header=header,
            height=1,
            width=2,
            point_step=12,
            row_step=24,
            fields=[dds.ros2_message("sensor_msgs/msg/PointField", name="x", offset=0, datatype=7, count=1)],
            data=np.arange(24, dtype=np.uint8),
            is_dense=True,
        ),
        "visualization_msgs/msg/MarkerArray": lambda: dds.ros2_message(
            "visualization_msgs/msg/MarkerArray",
            markers=[dds.ros2_message("visualization_msgs/msg/Marker", header=header, id=3, type=9, text="mug #3")],
        ),
        "std_msgs/msg/String": lambda: m.string("red mug"),
    }
    raw = bytes(ros.ros2_typestore().serialize_cdr(samples[msgtype](), msgtype))
    cls = dds.dds_type(msgtype)
    sample = cls.deserialize(raw)
    assert sample.serialize(use_version_2=False) == raw


def test_ros2_message_fills_defaults_and_rejects_unknown_fields() -> None:
    marker = dds.ros2_message("visualization_msgs/msg/Marker", text="x")
    assert marker.text == "x" and marker.id == 0 and marker.points == [] and marker.pose.orientation.w == 0.0
    info = dds.ros2_message("sensor_msgs/msg/CameraInfo")
    assert info.k.shape == (9,) and info.k.dtype == np.float64
    with pytest.raises(TypeError, match="no fields"):
        dds.ros2_message("std_msgs/msg/String", text="x")


def test_loopback_config_keeps_traffic_on_127() -> None:
    root = ET.fromstring(dds.loopback_config(7))
    assert root.find("Domain").get("id") == "7"
    assert [e.get("address") for e in root.iter("NetworkInterface")] == ["127.0.0.1"]
    assert root.find(".//AllowMulticast").text == "false"
    assert [e.get("address") for e in root.iter("Peer")] == ["127.0.0.1"]


# ----------------------------------------------------------------------------
# live, in one process (two participants on loopback)
# ----------------------------------------------------------------------------


def _bag_cdr(bag: Path):
    from engram.sims.ros.bags import _BagReader

    return list(_BagReader(bag).cdr_messages())


@pytest.fixture(scope="module")
def room_bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path]:
    frames = _room_frames(6)
    return frames, ros.record_bag(frames, tmp_path_factory.mktemp("dds") / "room.mcap", instances=False)


def _publish(pub: dds.Ros2Graph, messages, writers: dict, skip=(), period_s: float = 0.01) -> None:
    for topic, msgtype, _, data in messages:
        if topic in skip:
            continue
        if topic not in writers:
            qos = dds.LATCHED_QOS if topic == "/tf_static" else KEEP_ALL_SENT
            writers[topic] = pub.writer(topic, msgtype, qos)
        pub.write_raw(writers[topic], data)
        time.sleep(period_s)


def _wait_matched(source: dds.Ros2Source, pub: dds.Ros2Graph, writers: dict, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(pub.matched(w) for t, w in writers.items() if t in source.received):
        assert time.monotonic() < deadline, "DDS endpoints did not match on loopback"
        time.sleep(0.05)


def _collect(source: dds.Ros2Source, n: int, timeout_s: float = 60.0) -> list:
    frames, deadline = [], time.monotonic() + timeout_s
    while len(frames) < n and time.monotonic() < deadline:
        frames += source.poll()
        time.sleep(0.01)
    return frames + source.poll(final=len(frames) < n)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("pose_source", ["tf", "odom"])
def test_live_frames_equal_the_bag_frames(room_bag, pose_source: str) -> None:
    frames, bag = room_bag
    dom = domain_id()
    source = dds.Ros2Source(dom, config="loopback", reliable=True, pose_source=pose_source).start()
    pub = dds.Ros2Graph(dom, config="loopback")
    try:
        messages = _bag_cdr(bag)
        writers = {
            t: pub.writer(t, ty, dds.LATCHED_QOS if t == "/tf_static" else KEEP_ALL_SENT) for t, ty, _, _ in messages
        }
        _wait_matched(source, pub, writers)
        _publish(pub, messages, writers)
        got = _collect(source, len(frames))
    finally:
        source.close()
        pub.close()
    want = list(ros.RosBagSource(bag, pose_source=pose_source))
    assert len(got) == len(want) == len(frames), source.errors
    for a, b in zip(got, want):
        assert a.timestamp_s == b.timestamp_s
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.depth_m, b.depth_m)
        np.testing.assert_allclose(a.world_from_camera.matrix, b.world_from_camera.matrix, atol=1e-12)
    assert source.errors == []


def test_undecodable_sample_names_the_topic() -> None:
    """Cyclone drops samples that break the CDR structure; bytes that parse as CDR but not as the type are named."""
    graph = dds.Ros2Graph.__new__(dds.Ros2Graph)
    graph._store = ros.ros2_typestore()
    reader = dds._Endpoint(None, "/camera/color/image_raw", "sensor_msgs/msg/Image", dds.SENSOR_QOS, reader=True)
    with pytest.raises(ros.RosBagError, match=r"^/camera/color/image_raw: malformed sensor_msgs/msg/Image"):
        graph.decode(reader, b"\x00\x01\x00\x00\xff\xff\xff\x7f")


@pytest.mark.timeout(240)
def test_bad_samples_are_logged_by_topic_and_good_frames_still_come(room_bag) -> None:
    """Short image data, an unknown encoding and a tf loop: each an error naming its topic; the rest becomes frames."""
    frames, bag = room_bag
    dom = domain_id()
    source = dds.Ros2Source(dom, config="loopback", reliable=True).start()
    pub = dds.Ros2Graph(dom, config="loopback")
    m = _MsgFactory(ros1=False)
    try:
        messages = _bag_cdr(bag)
        writers = {
            t: pub.writer(t, ty, dds.LATCHED_QOS if t == "/tf_static" else KEEP_ALL_SENT) for t, ty, _, _ in messages
        }
        _wait_matched(source, pub, writers)
        rgb, depth, tf = ros.TOPICS["rgb"], ros.TOPICS["depth"], ros.TOPICS["tf"]
        _publish(pub, messages[:3], writers)  # /tf_static and the first camera info
        for t_ns, (encoding, n_bytes) in ((90_000_000_000, ("rgb8", 10)), (91_000_000_000, ("yuv422", 96))):
            header = m.header(t_ns, "camera_color_optical_frame")
            short = m.image(header, np.zeros(n_bytes, np.uint8).reshape(1, -1), encoding)
            short.height, short.width, short.step = 6, 8, 24
            pub.write(writers[rgb], short)
            pub.write(writers[depth], m.image(header, np.ones((6, 8), np.float32), "32FC1"))
        from engram.types import Pose

        loop = m.tf_message(
            [m.transform(50_000_000_000, "camera_link", "base_link", Pose())]
        )  # base_link is above camera_link
        pub.write(writers[tf], loop)
        _publish(pub, messages[3:], writers)
        got = _collect(source, len(frames))
    finally:
        source.close()
        pub.close()
    errors = "\n".join(source.errors)
    assert len(got) == len(frames), errors
    assert any(e.startswith(f"{rgb}: ") and "image data has 10 bytes" in e for e in source.errors), errors
    assert any(e.startswith(f"{rgb}: ") and "yuv422" in e for e in source.errors), errors
    assert any(e.startswith(f"{tf}: ") and "loop" in e for e in source.errors), errors


@pytest.mark.timeout(240)
def test_qos_mismatch_and_missing_tf_static_name_the_topic(room_bag) -> None:
    """/tf_static published volatile (no latching) cannot match a latched subscriber: an error naming /tf_static."""
    _, bag = room_bag
    dom = domain_id()
    source = dds.Ros2Source(dom, config="loopback", reliable=True, tf_static_timeout_s=0.5).start()
    pub = dds.Ros2Graph(dom, config="loopback")
    try:
        messages = _bag_cdr(bag)
        writers = {
            t: pub.writer(t, ty, dds.SENSOR_QOS if t == "/tf_static" else KEEP_ALL_SENT) for t, ty, _, _ in messages
        }
        static = writers.pop("/tf_static")
        _wait_matched(source, pub, writers)
        writers["/tf_static"] = static
        _publish(pub, messages, writers)

        def mismatch() -> bool:
            return any(
                e.startswith("/tf_static: a publisher does not match") and ("DURABILITY" in e or "RELIABILITY" in e)
                for e in source.errors
            )

        def missing() -> bool:
            return any(e.startswith("/tf_static: no message") for e in source.errors)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (mismatch() and missing()):
            source.poll()
            time.sleep(0.05)
    finally:
        source.close()
        pub.close()
    errors = "\n".join(source.errors)
    assert mismatch(), errors
    assert missing(), errors
