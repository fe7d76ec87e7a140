"""ROS as a frame source: bag replay and recording, rosbridge, live ROS 2 over DDS, ROS conventions.

One module per part; everything public is importable from here
(``from engram.sims.ros import RosBagSource, record_bag, RosbridgeSource``):

- `engram.sims.ros.messages`: decoding images, calibration and transforms,
  ROS conventions, the tf tree, the ROS message definitions;
- `engram.sims.ros.assembly`: `FrameAssembler`, pairing colour, depth and
  pose by stamp into `Frame`s (every source below feeds it);
- `engram.sims.ros.bags`: `RosBagSource`, reading ROS 1 and ROS 2 bags;
- `engram.sims.ros.record`: `record_bag`, writing frames as a bag;
- `engram.sims.ros.rosbridge`: `RosbridgeSource`, live topics over rosbridge.
- `engram.sims.ros.dds`: `Ros2Source`, live ROS 2 topics over DDS (Cyclone
  DDS wheel, no ROS 2 install), and `play_bag_ros2`; imported on use.

The live nodes that feed a memory are `engram.ros_node` (ROS 1) and
`engram.ros2_node` (``python -m engram.ros_node run --ros2``); they reuse
`FrameAssembler`, so bags and live topics go through one code path.
"""

from __future__ import annotations

from engram.sims.ros.assembly import FrameAssembler, LiveRoute, live_routes
from engram.sims.ros.bags import RosBagSource, bag_topics
from engram.sims.ros.messages import (
    COMPRESSED_TYPES,
    FRAMES,
    IMAGE_TYPES,
    INFO_TYPES,
    ODOM_TYPES,
    OPTICAL_IN_BODY,
    POSE_TYPES,
    STRING_TYPES,
    TF_TYPES,
    TOPICS,
    RosBagError,
    RosBagWarning,
    TfBuffer,
    TfError,
    UnsupportedEncodingError,
    camera_info_to_intrinsics,
    compressed_to_depth_m,
    compressed_to_rgb,
    image_to_depth_m,
    image_to_rgb,
    message_from_dict,
    norm_type,
    ros1_typestore,
    ros2_typestore,
    stamp_to_s,
    transform_to_pose,
)
from engram.sims.ros.record import (
    embedded_walk,
    encode_compressed_depth,
    record_bag,
    record_sim,
)
from engram.sims.ros.rosbridge import RosbridgeSource

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
    "FrameAssembler",
    "LiveRoute",
    "RosBagError",
    "RosBagSource",
    "RosBagWarning",
    "RosbridgeSource",
    "TfBuffer",
    "TfError",
    "UnsupportedEncodingError",
    "bag_topics",
    "camera_info_to_intrinsics",
    "compressed_to_depth_m",
    "compressed_to_rgb",
    "embedded_walk",
    "encode_compressed_depth",
    "image_to_depth_m",
    "image_to_rgb",
    "live_routes",
    "message_from_dict",
    "norm_type",
    "record_bag",
    "record_sim",
    "ros1_typestore",
    "ros2_typestore",
    "stamp_to_s",
    "transform_to_pose",
]
