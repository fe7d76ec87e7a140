"""SceneMemory.integrate at camera rate: CPU time per frame, one thread.

Rows:
    ICL-NUIM living room (../shared/data/icl_livingroom1), every 5th frame,
    640x480, every depth pixel (depth_stride 1), no image encoder, no
    detector: the full `SceneMemory.integrate` (octree, static/dynamic
    split, snapshots, places, frontiers) at 5 cm and at 2 cm. The memory is
    fresh; kernels are compiled beforehand on another memory.

    Octree update alone on the same frames and voxel size, from the depth
    image to the updated map: engram (discretize: one ray per endpoint
    voxel), engram with one ray per pixel (OctoMap's default), Open3D's
    VoxelBlockGrid TSDF integration (the peer for speed) and OctoMap
    (pyoctomap ``insertPointCloud``) with and without ``discretize``. The
    agreement column compares each engram map with OctoMap's map built with
    the same option from the same float64 points: of the voxels known to
    both, the fraction with the same state. The fast path keys pixels in its
    own pass (rounding may differ from the float64 points in the last bit),
    so its agreement is printed against OctoMap-discretize as well.

    Embedded world (apartment 0, coverage walk, 320x240): the full
    `integrate`, object fusion of the frame's detections included, the
    detector excluded, in two rows: ``oracle`` (the simulator's instance
    masks are the detections; the memory reads nothing else of the ground
    truth) and ``rgbd``, the default detector, run inside `integrate` on the
    frames without ground truth, its own CPU time (``detect``) measured
    around each call and taken off that frame's time. The frames are
    rendered once and both memories get the same ones.

Times are process CPU time (time.process_time) per frame, with numba and
OpenMP set to one thread: the machine is shared, so wall time is not a
measure of the code. The CPU model, its vector features and the load
average are printed with the table.

Usage:
    python benchmarks/integrate.py [--frames-every 5] [--no-sim] [--no-peers] [--no-icl]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # Open3D's CPU kernels: one thread, like the others
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram.memory.octree import OccupancyOctree
from engram.memory.scan import scan_frame
from engram.memory.scene import SceneMemory

MAX_RANGE_M = 5.0  # SceneMemory's default


def cpu_info() -> str:
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni")
    return f"{model}; {' '.join(f for f in wanted if f in flags)}; {os.cpu_count()} CPUs"


def load_icl(path: Path, every: int):
    from engram.sims.rgbd import RgbdDataset

    return list(RgbdDataset(path, format="icl", stride=every, fps=30.0 / every))


def world_points(frame) -> np.ndarray:
    from engram.perception.geometry import frame_points_world

    return frame_points_world(frame)


def full_integrate(frames, voxel_size_m: float) -> dict:
    """CPU ms per frame of `SceneMemory.integrate` on a fresh memory (kernels warmed on another)."""
    kw = {"depth_stride": 1, "image_encoder": None, "detector": None}  # no detector: no objects
    warm = SceneMemory(voxel_size_m, **kw)
    for f in frames[:12]:
        warm.integrate(f)
    warm.finalize()
    mem = SceneMemory(voxel_size_m, **kw)
    cpu = []
    for f in frames:
        c0 = time.process_time()
        mem.integrate(f)
        cpu.append(time.process_time() - c0)
    return {"cpu": np.array(cpu) * 1e3, "mem": mem}


def octree_from_depth(frames, res: float) -> dict:
    """engram's discretized update from the depth image: key pixels, one ray per voxel, apply."""
    tree = OccupancyOctree(res)
    cpu = []
    for f in frames:
        c0 = time.process_time()
        scan = scan_frame(tree, f.depth_m, f.intrinsics, f.world_from_camera)
        hits = tree.unique_codes(scan.codes)
        free, occ = tree.voxel_scan(hits, f.world_from_camera.translation, MAX_RANGE_M)
        tree.apply_codes(free, occ)
        cpu.append(time.process_time() - c0)
    return {"tree": tree, "cpu": np.array(cpu) * 1e3}


def octree_from_points(points, origins, res: float, discretize: bool) -> dict:
    tree = OccupancyOctree(res)
    cpu = []
    for p, o in zip(points, origins):
        c0 = time.process_time()
        tree.insert_scan(p, o, max_range_m=MAX_RANGE_M, discretize=discretize)
        cpu.append(time.process_time() - c0)
    return {"tree": tree, "cpu": np.array(cpu) * 1e3}


def octomap(points, origins, res: float, discretize: bool) -> dict | None:
    try:
        import pyoctomap
    except ImportError:
        return None
    tree = pyoctomap.OcTree(res)
    tree.setClampingThresMin(0.12)  # engram's defaults (OctoMap's own: 0.1192 / 0.971)
    tree.setClampingThresMax(0.97)
    cpu = []
    for p, o in zip(points, origins):
        c0 = time.process_time()
        tree.insertPointCloud(p, o, max_range=MAX_RANGE_M, discretize=discretize)
        cpu.append(time.process_time() - c0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "octomap.bt")
        assert tree.writeBinary(path)
        theirs = OccupancyOctree.from_bt(path)
    return {"tree": theirs, "cpu": np.array(cpu) * 1e3}


def agreement(a: OccupancyOctree, b: OccupancyOctree) -> tuple[float, float]:
    """(same state among voxels known to both, |both| / |either|)."""
    a_codes, a_vals = a._sorted()
    b_codes, b_vals = b._sorted()
    common, ia, ib = np.intersect1d(a_codes, b_codes, assume_unique=True, return_indices=True)
    same = (a_vals[ia] >= a._thr) == (b_vals[ib] >= b._thr)
    union = len(a_codes) + len(b_codes) - len(common)
    return float(same.mean()) if len(common) else float("nan"), len(common) / max(union, 1)


def open3d_tsdf(frames, res: float) -> dict | None:
    try:
        import open3d as o3d
        import open3d.core as o3c
    except ImportError:
        return None
    vbg = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"), attr_dtypes=(o3c.float32, o3c.float32), attr_channels=((1), (1)),
        voxel_size=res, block_resolution=8, block_count=50000, device=o3c.Device("CPU:0"),
    )  # fmt: skip
    k = frames[0].intrinsics
    intrinsic = o3c.Tensor([[k.fx, 0, k.cx], [0, k.fy, k.cy], [0, 0, 1]], o3c.float64)
    cpu = []
    for f in frames:
        depth = np.ascontiguousarray(f.depth_m, np.float32)
        c0 = time.process_time()
        d = o3d.t.geometry.Image(o3c.Tensor(depth))
        extrinsic = o3c.Tensor(np.linalg.inv(f.world_from_camera.matrix))
        blocks = vbg.compute_unique_block_coordinates(d, intrinsic, extrinsic, 1.0, MAX_RANGE_M)
        vbg.integrate(blocks, d, intrinsic, extrinsic, 1.0, MAX_RANGE_M)
        cpu.append(time.process_time() - c0)
    return {"cpu": np.array(cpu) * 1e3}


class _TimedDetector:
    """A detector whose ``detect`` calls are timed (process CPU), so that a row can leave them out."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cpu_s = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def detect(self, frame):
        c0 = time.process_time()
        try:
            return self.inner.detect(frame)
        finally:
            self.cpu_s += time.process_time() - c0


def sim_frames(seed: int, width: int, height: int) -> list:
    from engram.sims.embedded import EmbeddedSim, coverage_walk

    sim = EmbeddedSim(seed=seed, width=width, height=height)
    try:
        sim.reset()
        return list(coverage_walk(sim))
    finally:
        if hasattr(sim, "close"):
            sim.close()


def sim_integrate(frames: list, detector: str) -> dict:
    """CPU ms per frame of the full `integrate` with ``detector``'s detections, its ``detect`` time taken off."""
    from engram.perception.detectors import build_detector

    warm = SceneMemory(timeline=False, detector=detector)
    for f in frames[:40]:
        warm.integrate(f)
    warm.finalize()
    timed = _TimedDetector(build_detector(detector))
    mem = SceneMemory(detector=timed)
    cpu, det_cpu = [], []
    for f in frames:
        d0 = timed.cpu_s
        c0 = time.process_time()
        mem.integrate(f)
        c1 = time.process_time()
        det_cpu.append(timed.cpu_s - d0)
        cpu.append(c1 - c0 - det_cpu[-1])
    return {
        "cpu": np.array(cpu) * 1e3,
        "detector_cpu": np.array(det_cpu) * 1e3,
        "objects": len(mem.objects.objects),
    }


def row(name: str, cpu: np.ndarray | None, ratio: str = "-", agree: str = "-") -> str:
    if cpu is None:
        return f"| {name} | - | - | - | {ratio} | {agree} |"
    return f"| {name} | {len(cpu)} | {np.median(cpu):.1f} | {cpu.max():.1f} | {ratio} | {agree} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--icl", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "icl_livingroom1"
    )
    ap.add_argument("--frames-every", type=int, default=5)
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-icl", action="store_true", help="only the embedded world rows")
    args = ap.parse_args()

    import numba

    numba.set_num_threads(1)
    try:
        import torch

        torch.set_num_threads(1)  # the rgbd detector's label encoder (its time is left out, but not its threads)
    except ImportError:
        pass
    load0 = os.getloadavg()[0]
    print(f"# {cpu_info()}")
    print("| run | frames | median CPU ms | max CPU ms | vs Open3D TSDF | agreement vs OctoMap (same option) |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {}
    if not args.no_icl:
        icl_rows(args, summary)
    if not args.no_sim:
        sim = sim_frames(0, 320, 240)
        for det in ("oracle", "rgbd"):
            r = sim_integrate(sim, det)
            name = f"embedded world, apartment 0, 320x240, {det} detections ({r['objects']} objects)"
            print(row(f"{name}: SceneMemory.integrate (full, detector excluded)", r["cpu"]))
            summary[f"sim_{det}"] = r
    print(f"# load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    from engram.memory.octree import ray_walker

    print(f"# octree ray walker on this CPU: {ray_walker()} (the faster of the two, timed on the first scans)")
    for det in ("oracle", "rgbd"):
        r = summary.pop(f"sim_{det}", None)
        if r is not None:
            print(
                f"# embedded world, {det}: mean {r['cpu'].mean():.1f} ms, max {r['cpu'].max():.1f} ms; "
                f"detector (left out) median {np.median(r['detector_cpu']):.1f} ms"
            )
            summary[f"sim_{det}_ms"] = float(np.median(r["cpu"]))
    if "discretize_vs_rays" in summary:
        a, o = summary.pop("discretize_vs_rays")
        print(
            f"# 5 cm, engram discretize vs one ray per point (same engram, same frames): same state {a:.4f}, overlap {o:.4f}"
        )
    if "icl_2cm_ms_per_frame" in summary:
        print(f"# 2 cm full integrate median {summary.pop('icl_2cm_ms_per_frame'):.1f} ms")
    # sim_ms_per_frame: the default detector's detections (rgbd); the oracle's beside it
    if "sim_rgbd_ms" in summary:
        summary["sim_ms_per_frame"] = summary.pop("sim_rgbd_ms")
    if "sim_oracle_ms" in summary:
        summary["sim_oracle_ms_per_frame"] = summary.pop("sim_oracle_ms")
    print(" ".join(f"{k}: {v:.4f}" if k == "agreement" else f"{k}: {v:.2f}" for k, v in summary.items()))


def icl_rows(args, summary: dict) -> None:
    frames = load_icl(args.icl, args.frames_every)
    k = frames[0].intrinsics
    print(f"# ICL-NUIM living room: {len(frames)} frames (every {args.frames_every}th), {k.width}x{k.height}, "
          f"every pixel, max range {MAX_RANGE_M} m; numba and OpenMP threads 1; CPU ms per frame (process time)")  # fmt: skip
    for res in (0.05, 0.02):
        cm = f"{res * 100:.0f} cm"
        full = full_integrate(frames, res)
        print(row(f"{cm}: engram SceneMemory.integrate (full)", full["cpu"]))
        if res == 0.05:
            summary["icl_ms_per_frame"] = float(np.median(full["cpu"]))
            summary["icl_max_ms"] = float(full["cpu"].max())
        else:
            summary["icl_2cm_ms_per_frame"] = float(np.median(full["cpu"]))
        fast = octree_from_depth(frames, res)
        if args.no_peers:
            print(row(f"{cm}: engram octree update, discretize, from depth", fast["cpu"]))
            continue
        points = [world_points(f) for f in frames]
        origins = [np.array(f.world_from_camera.translation) for f in frames]
        o3d_run = open3d_tsdf(frames, res)
        od = octomap(points, origins, res, True)
        of = octomap(points, origins, res, False)
        ed = octree_from_points(points, origins, res, True)
        ef = octree_from_points(points, origins, res, False)
        base = np.median(o3d_run["cpu"]) if o3d_run else None

        def vs(cpu, base=base):
            return f"{np.median(cpu) / base:.2f}x" if base else "-"

        a_fast = agreement(fast["tree"], od["tree"]) if od else None
        a_disc = agreement(ed["tree"], od["tree"]) if od else None
        a_full = agreement(ef["tree"], of["tree"]) if of else None

        def fmt(a):
            return "-" if a is None else f"{a[0]:.4f} (overlap {a[1]:.4f})"

        print(row(f"{cm}: engram octree update, discretize, from depth", fast["cpu"], vs(fast["cpu"]), fmt(a_fast)))
        print(row(f"{cm}: engram insert_scan(discretize=True), float64 points", ed["cpu"], vs(ed["cpu"]), fmt(a_disc)))
        print(row(f"{cm}: engram insert_scan, one ray per point", ef["cpu"], vs(ef["cpu"]), fmt(a_full)))
        print(row(f"{cm}: Open3D VoxelBlockGrid TSDF integrate (peer)", o3d_run["cpu"] if o3d_run else None, "1.00x"))
        print(
            row(f"{cm}: OctoMap insertPointCloud, discretize", od["cpu"] if od else None, vs(od["cpu"]) if od else "-")
        )
        print(
            row(
                f"{cm}: OctoMap insertPointCloud, one ray per point",
                of["cpu"] if of else None,
                vs(of["cpu"]) if of else "-",
            )
        )
        if res == 0.05:
            summary["vs_open3d_tsdf"] = float(np.median(fast["cpu"]) / base) if base else float("nan")
            summary["agreement"] = a_fast[0] if a_fast else float("nan")
            # what discretizing changes against one ray per pixel (not an agreement target)
            summary["discretize_vs_rays"] = agreement(fast["tree"], ef["tree"])


if __name__ == "__main__":
    main()
