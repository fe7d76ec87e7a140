"""OccupancyOctree vs OctoMap (pyoctomap) vs Open3D TSDF on ICL-NUIM frames.

Same frames, same resolution, same thread count, all libraries in one run:
640x480 ICL-NUIM living-room frames (../shared/data), max range 4 m, at 5 cm
and 2 cm. OctoMap is single-threaded (pyoctomap is built without OpenMP);
Open3D's VoxelBlockGrid TSDF integration runs with OMP_NUM_THREADS=1.

Columns:
    ms/frame      median wall-clock time per frame
    cpu ms/frame  median process CPU time per frame (robust when other jobs share the machine)
    ns/step       time per DDA cell step (CPU time; wall time for the 2-thread row); the same
                  rays give the same cell steps to both libraries, so engram's count is used
    B/voxel       storage bytes / known voxels (OctoMap: memoryUsage() over its known leaf voxels)
    agreement     of the voxels known to both, the fraction with the same state vs OctoMap
    overlap       |known to both| / |known to either|

The speedup in the last line is OctoMap's CPU time over engram's at 5 cm,
one thread each, with the two libraries interleaved frame by frame.

Usage:
    python benchmarks/octree.py [--frames 24] [--data ../shared/data]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # Open3D's CPU kernels: one thread, like the others

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram.memory.octree import OccupancyOctree

FX = FY = 525.0
CX, CY = 319.5, 239.5
MAX_RANGE_M = 4.0


def load_frames(root: Path, n_frames: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(depth_m, world_from_camera, points_world, origin) for n frames spread over the sequence."""
    import cv2

    icl = root / "icl_livingroom1"
    values = np.array((icl / "trajectory.log").read_text().split(), dtype=np.float64)
    poses = values.reshape(-1, 19)[:, 3:].reshape(-1, 4, 4)
    picks = np.linspace(0, len(poses) - 1, n_frames).round().astype(int)
    u, v = np.meshgrid(np.arange(640), np.arange(480))
    frames = []
    for i in picks:
        depth = cv2.imread(str(icl / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
        valid = depth > 0
        z = depth[valid].astype(np.float64)
        cam = np.stack([(u[valid] - CX) / FX * z, (v[valid] - CY) / FY * z, z], axis=1)
        pose = poses[i]
        frames.append((depth, pose, cam @ pose[:3, :3].T + pose[:3, 3], pose[:3, 3].copy()))
    return frames


def octomap_tree(res: float):
    import pyoctomap

    tree = pyoctomap.OcTree(res)
    tree.setClampingThresMin(0.12)  # engram's defaults (OctoMap's own: 0.1192 / 0.971)
    tree.setClampingThresMax(0.97)
    return tree


def compare(tree: OccupancyOctree, ot) -> tuple[float, float, int]:
    """(agreement, overlap, OctoMap's known voxels) via OctoMap's own .bt of its map."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "octomap.bt")
        assert ot.writeBinary(path)
        theirs = OccupancyOctree.from_bt(path)
    a_codes, a_vals = tree._sorted()
    b_codes, b_vals = theirs._sorted()
    common, ia, ib = np.intersect1d(a_codes, b_codes, assume_unique=True, return_indices=True)
    same = (a_vals[ia] >= tree._thr) == (b_vals[ib] >= theirs._thr)
    union = len(a_codes) + len(b_codes) - len(common)
    return float(same.mean()), len(common) / union, len(b_codes)


def run_engram(frames, res: float, threads: int) -> dict:
    import numba

    numba.set_num_threads(threads)
    tree = OccupancyOctree(res)
    wall, cpu, steps = [], [], 0
    for _, _, points, origin in frames:
        t0, c0 = time.perf_counter(), time.process_time()
        stats = tree.insert_scan(points, origin, max_range_m=MAX_RANGE_M)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        steps += stats.n_steps
    return {"tree": tree, "wall": wall, "cpu": cpu, "steps": steps}


def run_interleaved(frames, res: float) -> tuple[dict, dict]:
    """engram (1 thread) and OctoMap on the same frames, alternating, so both see the same machine load."""
    import numba

    numba.set_num_threads(1)
    tree = OccupancyOctree(res)
    ot = octomap_tree(res)
    e = {"tree": tree, "wall": [], "cpu": [], "steps": 0}
    o = {"tree": ot, "wall": [], "cpu": []}
    for k, (_, _, points, origin) in enumerate(frames):
        order = (0, 1) if k % 2 == 0 else (1, 0)
        for who in order:
            t0, c0 = time.perf_counter(), time.process_time()
            if who == 0:
                stats = tree.insert_scan(points, origin, max_range_m=MAX_RANGE_M)
            else:
                ot.insertPointCloud(points, origin, MAX_RANGE_M)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            d = e if who == 0 else o
            d["wall"].append(dt)
            d["cpu"].append(dc)
            if who == 0:
                e["steps"] += stats.n_steps
    return e, o


def run_open3d(frames, res: float) -> dict | None:
    try:
        import open3d as o3d
        import open3d.core as o3c
    except ImportError:
        return None
    device = o3c.Device("CPU:0")
    vbg = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"),
        attr_dtypes=(o3c.float32, o3c.float32),
        attr_channels=((1), (1)),
        voxel_size=res,
        block_resolution=8,
        block_count=50000,
        device=device,
    )
    intrinsic = o3c.Tensor([[FX, 0, CX], [0, FY, CY], [0, 0, 1]], o3c.float64)
    wall, cpu = [], []
    for depth, pose, _, _ in frames:
        t0, c0 = time.perf_counter(), time.process_time()
        d = o3d.t.geometry.Image(o3c.Tensor(depth))
        extrinsic = o3c.Tensor(np.linalg.inv(pose))
        blocks = vbg.compute_unique_block_coordinates(d, intrinsic, extrinsic, 1.0, MAX_RANGE_M)
        vbg.integrate(blocks, d, intrinsic, extrinsic, 1.0, MAX_RANGE_M)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    n_blocks = vbg.hashmap().size()
    voxels = n_blocks * 8**3
    bytes_ = voxels * 8  # tsdf + weight float32 per voxel; hash map overhead not counted
    return {"wall": wall, "cpu": cpu, "bytes_per_voxel": bytes_ / max(voxels, 1)}


def lookup_benchmark(tree: OccupancyOctree, ot, n: int = 1_000_000) -> tuple[float, float]:
    """ns per point for batched state lookups (engram, 1 thread) and OctoMap's getLabels (100k points)."""
    import numba

    numba.set_num_threads(1)
    lo, hi = tree.bounds()
    rng = np.random.default_rng(0)
    points = rng.uniform(lo, hi, size=(n, 3))
    tree.state(points[:1000])
    best = min(_timed(lambda: tree.state(points)) for _ in range(5))
    small = points[:100_000]
    octo = _timed(lambda: ot.getLabels(small))
    return best / n * 1e9, octo / len(small) * 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()

    import numba

    frames = load_frames(args.data, args.frames)
    n_points = np.mean([len(f[2]) for f in frames])
    print(f"{len(frames)} ICL-NUIM frames, {n_points:.0f} points each, max range {MAX_RANGE_M} m, "
          f"{numba.config.NUMBA_NUM_THREADS} cores available")  # fmt: skip
    # compile (cached on disk after the first run) outside the timings
    warm = OccupancyOctree(0.05)
    warm.insert_scan(frames[0][2], frames[0][3], max_range_m=MAX_RANGE_M)
    warm.state(frames[0][2][:10])

    header = f"| {'res':>5} | {'library':<34} | {'ms/frame':>8} | {'cpu ms/frame':>12} | {'ns/step':>7} | {'B/voxel':>7} | {'agreement':>9} | {'overlap':>7} |"
    rule = "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"
    rows = [header, rule]
    speedup = agreement_5cm = None
    lookup = None
    notes: list[str] = []
    max_threads = min(2, numba.config.NUMBA_NUM_THREADS)
    for res in (0.05, 0.02):
        e1, om = run_interleaved(frames, res)
        e2 = run_engram(frames, res, max_threads)
        o3 = run_open3d(frames, res)
        agreement, overlap, octo_voxels = compare(e1["tree"], om["tree"])
        assert e2["tree"].digest() == e1["tree"].digest(), "thread count changed the map"
        steps = e1["steps"]
        octo_bytes = om["tree"].memoryUsage() / octo_voxels

        def row(name, d, ns_step, bpv, agr, ovl, res=res):
            ms = 1e3 * np.median(d["wall"])
            cpu = 1e3 * np.median(d["cpu"])
            ns = f"{ns_step:.2f}" if ns_step is not None else "-"
            b = f"{bpv:.1f}" if bpv is not None else "-"
            a = f"{agr:.4f}" if agr is not None else "-"
            v = f"{ovl:.4f}" if ovl is not None else "-"
            return (
                f"| {res * 100:>3.0f}cm | {name:<34} | {ms:>8.1f} | {cpu:>12.1f} | {ns:>7} | {b:>7} | {a:>9} | {v:>7} |"
            )

        e_bpv = e1["tree"].nbytes / len(e1["tree"])
        rows.append(row("engram (1 thread)", e1, 1e9 * sum(e1["cpu"]) / steps, e_bpv, agreement, overlap))
        rows.append(
            row(f"engram ({max_threads} threads)", e2, 1e9 * sum(e2["wall"]) / steps, e_bpv, agreement, overlap)
        )
        rows.append(row("OctoMap (pyoctomap insertPointCloud)", om, 1e9 * sum(om["cpu"]) / steps, octo_bytes, 1.0, 1.0))
        if o3 is not None:
            rows.append(row("Open3D VoxelBlockGrid TSDF", o3, None, o3["bytes_per_voxel"], None, None))
        ratio = np.median(om["cpu"]) / np.median(e1["cpu"])
        rows.append(
            f"| {res * 100:>3.0f}cm | {'speedup vs OctoMap (cpu, 1 thread)':<34} | {np.median(om['wall']) / np.median(e1['wall']):>8.1f} | {ratio:>12.1f} | {'':>7} | {'':>7} | {'':>9} | {'':>7} |"
        )
        notes.append(
            f"{res * 100:.0f} cm: engram {len(e1['tree'])} voxels in {e1['tree'].nbytes / 1e6:.2f} MB; OctoMap "
            f"{octo_voxels} voxels in {om['tree'].size()} nodes, {om['tree'].memoryUsage() / 1e6:.2f} MB "
            f"= {om['tree'].memoryUsage() / om['tree'].size():.1f} B per node"
        )
        if res == 0.05:
            speedup, agreement_5cm = ratio, agreement
            lookup = lookup_benchmark(e1["tree"], om["tree"])
    print("\n".join(rows))
    print()
    print("\n".join(notes))
    print(f"batched state lookup, 1M points, 1 thread: engram {lookup[0]:.1f} ns/point; "
          f"OctoMap getLabels (100k points) {lookup[1]:.1f} ns/point")  # fmt: skip
    print(f"speedup_vs_octomap: {speedup:.1f} agreement: {agreement_5cm:.4f}")


if __name__ == "__main__":
    main()
