"""ROS bag replay speed: frames/s from a bag to engram Frames, and from a bag into a SceneMemory.

The frames are real RGB-D data: the ICL-NUIM living-room sample (640x480,
211 frames; ``../shared/data/icl_livingroom1``), or the embedded world's run
with ``--source sim``. They are written once per format with
`engram.sims.ros.record_bag` (the topics a RealSense robot publishes, poses in
/tf + /tf_static), then read back.

Columns:
  peer_fps    the reading library alone: rosbags' AnyReader reading and
              deserialising every message of the colour, depth, camera-info
              and tf topics (mcap file: the mcap reader + rosbags' CDR
              deserialiser), no decoding into arrays, no sync, no tf
  engram_fps  `RosBagSource`: the same messages plus image decoding (JPEG /
              PNG for compressed bags), colour-depth sync, tf chain
              interpolation and Frame validation
  ratio       engram_fps / peer_fps (the cost of turning messages into frames)

Each time is the best of ``--repeats`` runs. Then live ROS 2: the ROS 2
.mcap bag is replayed onto ROS 2 topics over DDS by a publisher process
(``python -m engram.ros_node play --ros2``, the bag's stamps, 30 Hz for ICL)
and received by `engram.sims.ros.dds.Ros2Source` (reliable QoS, Cyclone DDS
on 127.0.0.1 only) in this process: frames received out of those sent,
received frames equal to the bag's frames, and the receiver's CPU time per
frame (taking samples, CDR decoding, pairing, tf, image decoding; CPU time of
this process, as the machine is shared). Then, when `SceneMemory` is
available, the replay of a ROS 2 mcap bag into a memory against integrating
the same frames from RAM (after a warm-up that compiles the memory's kernels;
best of two interleaved runs), and a check that both memories have the same
occupied voxels and objects.

Run:  python benchmarks/ros_replay.py [--frames 120] [--source icl|sim] [--memory-frames 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram._util import dir_size_mb  # noqa: E402
from engram.sims import ros  # noqa: E402
from engram.types import Frame  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "icl_livingroom1"


def load_frames(source: str, n: int) -> list[Frame]:
    if source == "icl":
        from engram.sims.rgbd import RgbdDataset

        if not SHARED.exists():
            raise SystemExit(f"sample data not found at {SHARED}; use --source sim")
        return list(RgbdDataset(SHARED, format="icl", max_frames=n))
    return list(ros.embedded_walk(seed=0, steps=n - 1))


def peer_read(path: Path, topics: list[str]) -> int:
    """Read and deserialise every message of ``topics`` with the reading library alone."""
    if path.suffix == ".mcap":
        from mcap.reader import make_reader

        store = ros.ros2_typestore()
        n = 0
        with open(path, "rb") as f:
            for schema, _, message in make_reader(f).iter_messages(topics=topics, log_time_order=True):
                store.deserialize_cdr(message.data, schema.name)
                n += 1
        return n
    from rosbags.highlevel import AnyReader

    with AnyReader([path], default_typestore=ros.ros2_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        n = 0
        for conn, _, raw in reader.messages(connections=conns):
            reader.deserialize(raw, conn.msgtype)
            n += 1
    return n


def live_ros2(bag: Path, n_frames: int) -> tuple[list[Frame], float, float]:
    """Replay ``bag`` on ROS 2 from a publisher process; return (frames received, receiver CPU s, wall s)."""
    from engram.sims.ros import dds

    domain = 150 + os.getpid() % 70
    env = dict(os.environ, PYTHONPATH=str(ROOT), CYCLONEDDS_URI=dds.loopback_config())
    topics = [ros.TOPICS[k] for k in ("rgb", "depth", "info", "tf", "tf_static")]
    source = dds.Ros2Source(domain, config="loopback", reliable=True, timeout_s=None).start()
    player = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engram.ros_node",
            "play",
            "--ros2",
            "--loopback",
            "--domain-id",
            str(domain),
            str(bag),
            "--wait-s",
            "60",
            "--topics",
            *topics,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    frames: list[Frame] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while player.poll() is None:
        frames += source.poll()
        time.sleep(0.005)
    deadline = time.perf_counter() + 10
    while len(frames) < n_frames and time.perf_counter() < deadline:
        frames += source.poll()
        time.sleep(0.005)
    frames += source.poll(final=True)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    source.close()
    if player.returncode != 0:
        raise SystemExit(f"ROS 2 player failed: {player.stderr.read()[-2000:]}")
    if source.errors:
        print("receiver errors:", source.errors[:5])
    return frames, cpu, wall


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--source", choices=("icl", "sim"), default="icl")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-frames", type=int, default=40, help="frames for the into-memory timing")
    parser.add_argument(
        "--live-only", action="store_true", help="only the .mcap row, the live ROS 2 row and the memories"
    )
    args = parser.parse_args()

    frames = load_frames(args.source, args.frames)
    h, w = frames[0].rgb.shape[:2]
    print(f"{len(frames)} frames {w}x{h} from {args.source}")
    tmp = Path(tempfile.mkdtemp(prefix="engram-ros-bench-"))
    try:
        cases = [
            ("ROS 1 .bag", tmp / "run.bag", {}),
            ("ROS 2 mcap dir", tmp / "run_mcap", {"fmt": "mcap"}),
            ("ROS 2 sqlite3 dir", tmp / "run_db", {"fmt": "sqlite3"}),
            ("ROS 2 .mcap file", tmp / "run.mcap", {}),
            ("ROS 2 .mcap jpeg+compressedDepth", tmp / "comp.mcap", {"compressed": True}),
        ]
        if args.live_only:
            cases = [c for c in cases if c[0] == "ROS 2 .mcap file"]
        rows = []
        for name, path, kw in cases:
            t0 = time.perf_counter()
            ros.record_bag(frames, path, **kw)
            write_s = time.perf_counter() - t0
            src = ros.RosBagSource(path)
            topics = [src.rgb_topic, src.depth_topic, src.info_topic, *src.tf_topics]
            peer_s, n_msgs = best_of(lambda p=path, t=topics: peer_read(p, t), args.repeats)
            eng_s, got = best_of(lambda p=path: list(ros.RosBagSource(p)), args.repeats)
            assert len(got) == len(frames), (name, len(got))
            size_mb = dir_size_mb(path)
            rows.append((name, size_mb, len(frames) / write_s, len(frames) / peer_s, len(frames) / eng_s, n_msgs))

        print()
        print(f"{'bag':34s} {'MB':>7s} {'write fps':>10s} {'peer_fps':>9s} {'engram_fps':>11s} {'ratio':>6s}")
        for name, size_mb, wfps, pfps, efps, _ in rows:
            print(f"{name:34s} {size_mb:7.1f} {wfps:10.1f} {pfps:9.1f} {efps:11.1f} {efps / pfps:6.2f}")
        print("peer: rosbags AnyReader (mcap file: mcap reader + rosbags CDR) reading + deserialising the same topics")

        decode_fps = next(r[4] for r in rows if r[0] == "ROS 2 .mcap file")

        live_bag = tmp / "run.mcap"
        live, live_cpu_s, live_wall_s = live_ros2(live_bag, len(frames))
        bag_frames = list(ros.RosBagSource(live_bag))
        same_frames = len(live) == len(bag_frames) and all(
            a.timestamp_s == b.timestamp_s
            and np.array_equal(a.rgb, b.rgb)
            and np.array_equal(a.depth_m, b.depth_m)
            and np.array_equal(a.world_from_camera.matrix, b.world_from_camera.matrix)
            for a, b in zip(live, bag_frames)
        )
        live_fps = len(live) / live_cpu_s
        print()
        print(
            f"{'live ROS 2 (DDS, reliable, loopback)':34s} {'sent':>6s} {'received':>9s} {'cpu s':>7s} {'fps/cpu':>8s} {'wall s':>7s}"
        )
        print(
            f"{'ROS 2 .mcap replayed at 1x':34s} {len(frames):6d} {len(live):9d} {live_cpu_s:7.2f} {live_fps:8.1f} {live_wall_s:7.1f}"
        )
        print(f"received frames identical to the bag's frames: {same_frames}")
        ros2_line = f"ros2_live_fps: {live_fps:.1f} ros2_frames_received: {len(live)}/{len(frames)}"
        try:
            from engram.memory.scene import SceneMemory

            SceneMemory(voxel_size_m=0.05)
        except ImportError as exc:
            print(f"\nSceneMemory not available ({exc}): decoding only")
            print(
                f"ros_replay: {decode_fps:.1f} frames/s decoding a ROS 2 mcap bag into frames (no memory) {ros2_line}"
            )
            return

        mem_frames = frames[: args.memory_frames]
        mem_bag = ros.record_bag(mem_frames, tmp / "memory.mcap")

        def into_memory(source) -> SceneMemory:
            mem = SceneMemory(voxel_size_m=0.05)
            for frame in source:
                mem.integrate(frame)
            return mem

        into_memory(mem_frames[:12])  # warm-up: compile the memory's numba kernels (all periodic paths)
        direct_s = replay_s = float("inf")
        for _ in range(2):  # interleaved, best of two: the machine is shared
            t0 = time.perf_counter()
            direct = into_memory(mem_frames)
            direct_s = min(direct_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            replayed = into_memory(ros.RosBagSource(mem_bag))
            replay_s = min(replay_s, time.perf_counter() - t0)
        from_live = into_memory(live[: len(mem_frames)])

        def voxels(mem: SceneMemory) -> np.ndarray:
            v = np.round(np.asarray(mem.octree.occupied_centers()) / 0.025).astype(np.int64)
            return v[np.lexsort(v.T)]

        a, b, c = voxels(direct), voxels(replayed), voxels(from_live)
        same = a.shape == b.shape and np.array_equal(a, b)
        same_live = b.shape == c.shape and np.array_equal(b, c)
        print()
        print(f"{f'into SceneMemory(voxel 0.05 m), {len(mem_frames)} frames':34s} {'fps':>9s}")
        print(f"{'frames from RAM':34s} {len(mem_frames) / direct_s:9.1f}")
        print(f"{'frames from the .mcap bag':34s} {len(mem_frames) / replay_s:9.1f}")
        print(
            f"identical occupied voxels: {same} ({len(a)} voxels); objects {len(direct.objects.objects)} vs {len(replayed.objects.objects)}"
        )
        print(
            f"live ROS 2 frames into SceneMemory: occupied voxels identical to the bag replay: {same_live} "
            f"({len(c)} voxels); objects {len(from_live.objects.objects)} vs {len(replayed.objects.objects)}"
        )
        print(
            f"ros_replay: {len(mem_frames) / replay_s:.1f} frames/s replaying a ROS 2 mcap bag into SceneMemory "
            f"({decode_fps:.1f} frames/s decoding only) {ros2_line}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
