"""Dynamic memory in the embedded world: moved objects, ghosts of a walking person, static map.

For each seeded apartment the agent follows the scripted coverage walk through
every room ``--laps`` times (default 2: the apartment is mapped, things move
while the agent is elsewhere, and it comes round again) while a
`ScriptedDynamics` script relocates small objects onto furniture tops, at
least 0.5 m away and never into another object (``--relocations`` events,
one every ``--period`` seconds from ``--period`` on), and a person walks back
and forth between two rooms. The same frames go
into two memories: the default one (static/dynamic split on) and one with
``SceneMemory(dynamic=False)``. A reference run replays the agent's exact poses
and times in the same apartment with the same relocations but no person.
Ground truth is read only for scoring:

* moved_found: a relocated object counts once the agent has seen it at its new
  place (>= 100 pixels within 5 m in >= 2 frames after the move). Its
  remembered position is `where_is(id)` for the memory object that stood for
  it when it moved (or `where_is(label)` when the memory had not mapped it
  yet); found when some returned position is within 0.3 m of the object's
  true box and none is within 0.3 m of its old box but farther from the new
  one (unless another object of the label stands at the old place);
* ghost_rate: voxels of the volume the person swept (a 0.3 m cylinder from
  5 cm to 1.75 m over every logged pose) that the static map holds occupied
  but the reference does not, as a share of the swept voxels the map observed;
* static_iou: IoU of the occupied voxels of the static map against the
  reference run's.

Each perception (``--perception``) gets its own pair of memories fed the same
frames, one table row each: ``oracle`` reads the simulator's instance masks and
labels (the person included: an upper bound), every other detector (``rgbd``,
the default, and plug-ins) gets the frames with the ground truth taken out, so
the person is known only if the detector names it. The summary line comes from
the ``rgbd`` split-on row. The reference run is a scoring device (depth only
matters there) and keeps the simulator's masks. Per-apartment results are kept
in a JSON cache (``--cache``), so that a long run can be resumed.

    python benchmarks/dynamic.py --apartments 5 --perception oracle,rgbd
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram.memory.scene import SceneMemory  # noqa: E402
from engram.sims.embedded.scenes import WORLD_VERSION  # noqa: E402

MATCH_M = 0.3
DEFAULT_DETECTOR = "rgbd"
PERSON_RADIUS_M = 0.3
PERSON_Z_M = (0.05, 1.75)


def box_distance_m(point: np.ndarray, centre: np.ndarray, half: np.ndarray, yaw_rad: float) -> float:
    """Distance from ``point`` to an oriented box (yaw about z), 0 inside."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    d = np.asarray(point, np.float64) - centre
    local = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2]])
    return float(np.linalg.norm(np.maximum(np.abs(local) - half, 0.0)))


def voxel_set(centres: np.ndarray, voxel_size_m: float) -> set[tuple[int, int, int]]:
    keys = np.floor(np.asarray(centres, np.float64) / voxel_size_m).astype(np.int64)
    return set(map(tuple, keys))


def swept_voxels(positions_xy: np.ndarray, voxel_size_m: float) -> np.ndarray:
    """Voxel keys inside a person-sized cylinder at every position."""
    r = PERSON_RADIUS_M
    g = np.arange(-r, r + 1e-9, voxel_size_m / 2)
    dx, dy = np.meshgrid(g, g, indexing="ij")
    disc = np.stack([dx.ravel(), dy.ravel()], 1)
    disc = disc[np.hypot(disc[:, 0], disc[:, 1]) <= r]
    zs = np.arange(PERSON_Z_M[0], PERSON_Z_M[1], voxel_size_m / 2)
    xy = (positions_xy[:, None, :] + disc[None]).reshape(-1, 2)
    xy = np.unique(np.floor(xy / voxel_size_m).astype(np.int64), axis=0)
    zk = np.unique(np.floor(zs / voxel_size_m).astype(np.int64))
    return np.concatenate([np.column_stack([xy, np.full(len(xy), z)]) for z in zk])


def walk(sim, laps: int):
    """Frames of ``laps`` coverage walks through every room, one after the other."""
    from engram.sims.embedded import coverage_actions, coverage_walk

    yield from coverage_walk(sim)
    for _ in range(laps - 1):
        for action in coverage_actions(sim):
            yield sim.step(action)


class SharedDetector:
    """One detector for the two memories of a perception: the second call on the same frame reuses the first's output."""

    def __init__(self, name: str) -> None:
        from engram.perception.detectors import build_detector

        self._det = build_detector(name)
        self._last = None

    def __getattr__(self, attr: str):
        return getattr(self._det, attr)

    def detect(self, frame):
        key = (frame.index, frame.timestamp_s)
        if self._last is None or self._last[0] != key:
            self._last = (key, self._det.detect(frame))
        return self._last[1]


def run_apartment(
    seed: int,
    n_relocations: int,
    period_s: float,
    min_pixels: int,
    max_frames: int | None = None,
    laps: int = 2,
    perceptions: tuple[str, ...] = ("oracle",),
) -> dict:
    from engram.sims.embedded import EmbeddedSim, ScriptedDynamics, generate_apartment

    spec = generate_apartment(seed)
    script = ScriptedDynamics.random(spec, seed=seed, n_relocations=n_relocations, period_s=period_s)
    by_id = spec.by_id()
    sim = EmbeddedSim(seed=seed, dynamics=script)
    mems: dict[tuple[str, str], SceneMemory] = {}
    for p in perceptions:
        det = "oracle" if p == "oracle" else SharedDetector(p)
        mems[(p, "on")] = SceneMemory(timeline=False, detector=det)
        mems[(p, "off")] = SceneMemory(timeline=False, dynamic=False, detector=det)
    max_range_m = next(iter(mems.values())).max_range_m
    poses = []
    # (perception, memory, event index) -> (memory id, old centre), noted just before the move
    id_at_move: dict[tuple[str, str, int], tuple[int | None, np.ndarray]] = {}
    seen_after = np.zeros(len(script.relocations), np.int64)
    pending = list(enumerate(script.relocations))
    truth_now = {o.instance_id: np.asarray(o.position_m, np.float64) for o in spec.all_objects()}
    ms_on: dict[str, list[float]] = {p: [] for p in perceptions}
    try:
        sim.reset()
        for frame in walk(sim, laps):
            if max_frames is not None and len(poses) >= max_frames:
                break
            t = frame.timestamp_s
            # note each memory's object for each relocated instance just before it moves
            while pending and pending[0][1].time_s <= t:
                k, ev = pending.pop(0)
                o = by_id[ev.instance_id]
                old = truth_now[ev.instance_id]
                for mk, mem in mems.items():
                    cands = [
                        m
                        for m in mem.objects.objects.values()
                        if m.label == o.label
                        and box_distance_m(m.centroid, old, np.asarray(o.half_extents_m), o.yaw_rad) <= MATCH_M
                    ]
                    best = min(cands, key=lambda m: float(np.linalg.norm(np.asarray(m.centroid) - old)), default=None)
                    id_at_move[(*mk, k)] = (None if best is None else int(best.id), old.copy())
                truth_now[ev.instance_id] = np.asarray(ev.position_m, np.float64)
            truth, _ = sim.last_ground_truth()  # scoring only
            near = (frame.depth_m > 0) & (frame.depth_m <= max_range_m)
            for k, ev in enumerate(script.relocations):
                if ev.time_s <= t and int(np.count_nonzero(truth[near] == ev.instance_id)) >= min_pixels:
                    seen_after[k] += 1
            # every detector but the oracle sees the frame as a camera would: no ground truth
            blind = dataclasses.replace(frame, instances=None, labels={})
            for (p, which), mem in mems.items():
                w0 = time.process_time()
                mem.integrate(frame if p == "oracle" else blind)
                if which == "on":
                    ms_on[p].append((time.process_time() - w0) * 1e3)
            poses.append((sim.agent_xy_yaw, t))
        for mem in mems.values():
            mem.finalize()
        person_log = [(tt, p) for tt, iid, _, p, _ in sim.ground_truth.pose_log() if iid == sim.person_instance_id]
        final_poses = sim.ground_truth.object_poses()
    finally:
        sim.close()

    # reference: same poses and times, same relocations, no person
    ref_script = ScriptedDynamics(relocations=script.relocations, person=None)
    ref = EmbeddedSim(seed=seed, dynamics=ref_script)
    mem_ref = SceneMemory(timeline=False, dynamic=False)
    try:
        ref.reset()
        for (x, y, yaw), t in poses:
            # teleport without rendering, then a "stop" step advances time (and applies relocations)
            ref._x, ref._y, ref._yaw = float(x), float(y), float(yaw)  # noqa: SLF001 - benchmark replay
            frame = ref.observe() if t == 0 else ref.step("stop")
            if abs(frame.timestamp_s - t) > 1e-6:
                frame = dataclasses.replace(frame, timestamp_s=t)
            mem_ref.integrate(frame)
        mem_ref.finalize()
    finally:
        ref.close()

    vs = mem_ref.voxel_size_m
    occ_ref = voxel_set(mem_ref.octree.occupied_centers(), vs)
    swept = (
        swept_voxels(np.array([p[:2] for tt, p in person_log if tt <= poses[-1][1]]), vs)
        if person_log
        else np.zeros((0, 3), np.int64)
    )
    swept_c = (swept + 0.5) * vs
    out = {
        "seed": seed,
        "frames": len(poses),
        "cpu_ms_per_frame": {p: float(np.mean(v)) for p, v in ms_on.items()},
        "swept_voxels": len(swept),
    }
    for (perception, name), mem in mems.items():
        occ = voxel_set(mem.octree.occupied_centers(), vs)
        iou = len(occ & occ_ref) / max(len(occ | occ_ref), 1)
        st = mem.octree.state(swept_c) if len(swept) else np.zeros(0)
        observed = st != 0
        occupied_state = 2  # OccupancyOctree states: 0 unknown, 1 free, 2 occupied
        ghosts = sum(1 for key, s in zip(map(tuple, swept), st) if s == occupied_state and key not in occ_ref)
        # moved objects
        rows = []
        for k, ev in enumerate(script.relocations):
            if seen_after[k] < 2:
                continue
            later = [j for j, e in enumerate(script.relocations) if e.instance_id == ev.instance_id and j > k]
            if later:
                continue  # only the last move of an object is scored against the final pose
            o = by_id[ev.instance_id]
            half = np.asarray(o.half_extents_m, np.float64)
            fp = final_poses[ev.instance_id]
            new_c = np.asarray(fp.position_m, np.float64)
            mem_id, old_c = id_at_move[(perception, name, k)]
            hits = mem.where_is(mem_id) if mem_id is not None else []
            query = f"id {mem_id}"
            if not hits:
                hits = mem.where_is(o.label)
                query = f"label {o.label}"
            pos = [np.asarray(h.position, np.float64) for h in hits]
            found = any(box_distance_m(p, new_c, half, fp.yaw_rad) <= MATCH_M for p in pos)
            other_at_old = any(
                fo.label == o.label
                and iid != ev.instance_id
                and float(np.linalg.norm(np.asarray(fo.position_m) - old_c)) <= MATCH_M
                for iid, fo in final_poses.items()
            )
            # a position near the old place only counts as stale where the new place does not explain it
            # (a short move on the same surface leaves both within MATCH_M)
            stale = (not other_at_old) and any(
                box_distance_m(p, old_c, half, o.yaw_rad) <= MATCH_M
                and box_distance_m(p, new_c, half, fp.yaw_rad) > MATCH_M
                for p in pos
            )
            rows.append({"label": o.label, "query": query, "found": bool(found), "stale": bool(stale)})
        out[f"{perception}/{name}"] = {
            "occupied": len(occ),
            "iou": iou,
            "swept_observed": int(observed.sum()),
            "ghosts": int(ghosts),
            "moved": rows,
            "events": len(mem.changes()),
        }
    out["occupied_ref"] = len(occ_ref)
    out["relocations"] = len(script.relocations)
    out["seen_after"] = seen_after.tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apartments", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--relocations", type=int, default=4)
    ap.add_argument("--period", type=float, default=10.0, help="seconds between relocations")
    ap.add_argument("--min-pixels", type=int, default=100)
    ap.add_argument("--laps", type=int, default=2, help="coverage walks through every room, one after the other")
    ap.add_argument(
        "--perception",
        default=f"oracle,{DEFAULT_DETECTOR}",
        help="comma-separated detectors, one pair of rows each (oracle = the simulator's masks and labels)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="apartments run in parallel processes")
    ap.add_argument("--max-frames", type=int, default=None, help="stop each walk after this many frames (smoke tests)")
    ap.add_argument(
        "--cache",
        default=str(ROOT / "benchmarks" / ".cache" / "dynamic.json"),
        help="per-apartment results are kept here, so that a long run can be resumed ('' = no cache)",
    )
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    perceptions = tuple(p.strip() for p in args.perception.split(",") if p.strip())
    if args.one is not None:
        print(
            json.dumps(
                run_apartment(
                    args.one, args.relocations, args.period, args.min_pixels, args.max_frames, args.laps, perceptions
                )
            )
        )
        return

    load0 = os.getloadavg()[0]
    seeds = list(range(args.first_seed, args.first_seed + args.apartments))
    cache_path = Path(args.cache) if args.cache else None
    cache = json.loads(cache_path.read_text()) if cache_path is not None and cache_path.exists() else {}
    # one entry per apartment and setting: the perceptions run together (they share the frames)
    setting = (
        f"r{args.relocations}-p{args.period:g}-m{args.min_pixels}-l{args.laps}-f{args.max_frames}-"
        f"{','.join(perceptions)}-w{WORLD_VERSION}"
    )
    done = cache.get(setting, {})
    results = [done[str(s)] for s in seeds if str(s) in done]
    todo = [s for s in seeds if str(s) not in done]
    for r in results:
        print(f"# seed {r['seed']}: from the cache", flush=True)
    for i in range(0, len(todo), args.jobs):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(s),
                    "--relocations",
                    str(args.relocations),
                    "--period",
                    str(args.period),
                    "--min-pixels",
                    str(args.min_pixels),
                    "--laps",
                    str(args.laps),
                    "--perception",
                    ",".join(perceptions),
                ]
                + ([] if args.max_frames is None else ["--max-frames", str(args.max_frames)]),
                stdout=subprocess.PIPE,
                text=True,
            )
            for s in todo[i : i + args.jobs]
        ]
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"apartment run failed with exit code {p.returncode}")
            r = json.loads(out.strip().splitlines()[-1])
            results.append(r)
            if cache_path is not None:
                cache.setdefault(setting, {})[str(r["seed"])] = r
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(cache))
                tmp.replace(cache_path)
            print(
                f"# seed {r['seed']}: {json.dumps({k: r[k] for k in ('frames', 'relocations', 'seen_after', 'swept_voxels', 'cpu_ms_per_frame')})} "
                + " ".join(f"{p}: {r[f'{p}/on']['moved']}" for p in perceptions),
                flush=True,
            )
    load1 = os.getloadavg()[0]
    results.sort(key=lambda r: r["seed"])

    print(
        f"# 320x240 coverage walk x{args.laps}, seeds {seeds[0]}..{seeds[-1]}, {args.relocations} relocations every {args.period:g} s, "
        f"a walking person; {os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}"
    )
    print("# oracle = the simulator's masks and labels (the person's label included); other rows get no ground truth")
    print(
        "| perception | memory | moved scored | moved found | old place still reported | ghost voxels / swept observed | ghost_rate | "
        "static IoU vs no person |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for perception in perceptions:
        for name, title in (("off", "SceneMemory(dynamic=False)"), ("on", "SceneMemory() (split on)")):
            key = f"{perception}/{name}"
            moved = [m for r in results for m in r[key]["moved"]]
            found = sum(m["found"] for m in moved)
            stale = sum(m["stale"] for m in moved)
            ghosts = sum(r[key]["ghosts"] for r in results)
            swept = sum(r[key]["swept_observed"] for r in results)
            inter_union = [r[key]["iou"] for r in results]
            mf = found / max(len(moved), 1)
            gr = ghosts / max(swept, 1)
            iou = float(np.mean(inter_union))
            summary[key] = (mf, gr, iou)
            label = f"{perception} (upper bound)" if perception == "oracle" else perception
            print(
                f"| {label} | {title} | {len(moved)} | {found} ({mf:.2f}) | {stale} | {ghosts} / {swept} | {gr:.4f} | "
                f"{iou:.4f} (min {min(inter_union):.4f}) |"
            )
    for perception in perceptions:
        key = f"{perception}/on"
        print(
            f"# per seed ({perception}, split on): "
            + "; ".join(
                f"{r['seed']}: found {sum(m['found'] for m in r[key]['moved'])}/{len(r[key]['moved'])}, "
                f"ghosts {r[key]['ghosts']}/{r[key]['swept_observed']}, IoU {r[key]['iou']:.3f}"
                for r in results
            )
        )
    head = DEFAULT_DETECTOR if DEFAULT_DETECTOR in perceptions else perceptions[0]
    if head != DEFAULT_DETECTOR:
        print(f"(no {DEFAULT_DETECTOR} row: the summary line below is the {head} row)")
    mf, gr, iou = summary[f"{head}/on"]
    print(f"moved_found: {mf:.3f} ghost_rate: {gr:.4f} static_iou: {iou:.4f}")


if __name__ == "__main__":
    main()
