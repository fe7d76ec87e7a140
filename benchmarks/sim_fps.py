"""Frames per second of the embedded world: RGB + metric depth + instance segmentation at 320x240.

Both rows replay the same camera trajectory (a coverage walk through every
room of a few seeded apartments) in the same PyBullet scene on the CPU
TinyRenderer:

- peer: one plain ``pybullet.getCameraImage`` per pose with every body drawn,
  buffers converted to numpy (what a minimal PyBullet loop costs);
- engram: ``EmbeddedSim.step`` — collision-checked motion, room culling,
  depth in metres, instance ids + labels, a validated `Frame`.

Wall-clock fps depends on what else runs on the machine, so the table also
gives CPU-time fps (this process's CPU seconds), which does not.

    python benchmarks/sim_fps.py [--seeds 0 1 2] [--width 320 --height 240]

The last line is ``fps: N``, engram's wall-clock frames per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram.sims.embedded import EmbeddedSim
from engram.sims.embedded.sim import coverage_actions
from engram.sims.embedded.world import opengl_view_matrix


def _actions(sim: EmbeddedSim, limit: int) -> list[str]:
    out = []
    for a in coverage_actions(sim, max_actions=limit):
        sim.step(a)
        out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--max-actions", type=int, default=250, help="actions per apartment")
    args = ap.parse_args()

    totals = {"peer": [0, 0.0, 0.0], "engram": [0, 0.0, 0.0]}
    load_before = os.getloadavg()[0]
    for seed in args.seeds:
        sim = EmbeddedSim(seed=seed, width=args.width, height=args.height)
        actions = _actions(sim, args.max_actions)
        sim.reset()
        sim.observe()  # warm-up (numba kernels, buffers)

        # engram: the full step.
        poses = []
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        for a in actions:
            frame = sim.step(a)
            poses.append(frame.world_from_camera)
        totals["engram"][0] += len(actions)
        totals["engram"][1] += time.perf_counter() - t_wall
        totals["engram"][2] += time.process_time() - t_cpu

        # peer: the same poses, plain getCameraImage with every body drawn.
        world = sim._world
        world.cull(None)
        p, cid, proj = world.p, world.client, sim._projection
        w, h = args.width, args.height
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        for pose in poses:
            _, _, rgba, depth, seg = p.getCameraImage(
                w,
                h,
                viewMatrix=opengl_view_matrix(pose),
                projectionMatrix=proj,
                renderer=p.ER_TINY_RENDERER,
                physicsClientId=cid,
            )
            np.asarray(rgba, np.uint8).reshape(h, w, 4)
            np.asarray(depth, np.float32).reshape(h, w)
            np.asarray(seg, np.int32).reshape(h, w)
        totals["peer"][0] += len(poses)
        totals["peer"][1] += time.perf_counter() - t_wall
        totals["peer"][2] += time.process_time() - t_cpu
        sim.close()
    load_after = os.getloadavg()[0]

    n_cpu = os.cpu_count()
    print(
        f"# {args.width}x{args.height} RGB + depth + segmentation, seeds {args.seeds}, "
        f"{n_cpu} CPUs, load average {load_before:.1f} -> {load_after:.1f}"
    )
    print(f"| {'renderer':<58} | {'frames':>6} | {'wall fps':>8} | {'CPU fps':>7} | {'ratio (CPU)':>11} |")
    print(f"|{'-' * 60}|{'-' * 8}|{'-' * 10}|{'-' * 9}|{'-' * 13}|")
    peer_cpu_fps = totals["peer"][0] / totals["peer"][2]
    names = {
        "peer": "pybullet getCameraImage, all bodies (peer)",
        "engram": "engram EmbeddedSim.step (culling, metres, ids, labels)",
    }
    for key in ("peer", "engram"):
        n, wall, cpu = totals[key]
        print(f"| {names[key]:<58} | {n:>6} | {n / wall:>8.1f} | {n / cpu:>7.1f} | {n / cpu / peer_cpu_fps:>11.2f} |")
    n, wall, cpu = totals["engram"]
    print(f"fps: {n / wall:.1f}")


if __name__ == "__main__":
    main()
