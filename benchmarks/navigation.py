"""Exploration coverage, object-goal navigation and pick-and-place, from memory alone.

For each seeded apartment the agent explores with frontiers (memory only),
then navigates to three object categories drawn from the apartment's ground
truth. Ground truth is read only for scoring:

* coverage: share of the reachable free floor (5 cm ground-truth grid) that
  the memory knows as free floor after the exploration budget;
* objectnav success: the agent stops within 1 m of the footprint of an
  instance of the goal category with it in view (at least 20 pixels of its
  ground-truth mask);
* SPL: success x shortest / max(shortest, taken), where shortest is the
  ground-truth geodesic distance to the nearest reachable point within 1 m
  of such a footprint;
* pick-and-place (Panda scene): the object ends inside the container, with
  grasp and place targets from the memory's boxes.

Every figure is measured once per perception (``--perception``, one table row
each, same apartments): ``oracle`` builds the object map from the simulator's
instance masks (an upper bound), every other detector (``rgbd``, the default,
and plug-ins) sees frames rendered without ground truth
(``EmbeddedSim(instance_masks=False)``); success is scored from
`EmbeddedSim.last_ground_truth`. The summary line comes from the ``rgbd`` row.

Per-seed results are cached in a JSON file so a long run can be resumed.

    python benchmarks/navigation.py --apartments 20 --episodes 10 --perception oracle,rgbd
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram.jobs.explore import coverage, goal_distance, shortest_to_goal  # noqa: E402
from engram.memory.scene import SceneMemory  # noqa: E402
from engram.planners.frontier import FrontierExplorer  # noqa: E402
from engram.planners.navigation import Navigator  # noqa: E402
from engram.sims.embedded.scenes import WORLD_VERSION  # noqa: E402

SMALL_SKIP = {"person"}
DEFAULT_DETECTOR = "rgbd"


def gt_in_view(sim, instance_ids, min_pixels: int = 20) -> bool:
    """True when the current view shows at least ``min_pixels`` of any of these ground-truth instances (scoring only)."""
    sim.observe()
    inst, _ = sim.last_ground_truth()
    return bool(np.isin(inst, np.asarray(list(instance_ids), np.int32)).sum() >= min_pixels)


def run_apartment(
    seed: int,
    steps: int,
    nav_steps: int,
    n_goals: int,
    width: int,
    height: int,
    save_dir: Path | None = None,
    perception: str = "oracle",
) -> dict:
    from engram.sims.embedded import EmbeddedSim

    t0 = time.perf_counter()
    c0 = time.process_time()
    # only the oracle's frames carry the simulator's masks; ground truth is read for scoring alone
    sim = EmbeddedSim(seed=seed, width=width, height=height, instance_masks=perception == "oracle")
    try:
        sim.reset()
        gt = sim.ground_truth
        mem = SceneMemory(timeline=False, detector=perception)
        ex = FrontierExplorer(mem)
        seen: list[tuple[float, list[int]]] = []  # ground truth for later QA scoring: who was visible when

        def log_visible(frame) -> None:
            ids, counts = np.unique(sim.last_ground_truth()[0], return_counts=True)
            seen.append((frame.timestamp_s, [int(i) for i, c in zip(ids, counts) if i and c >= 20]))

        res = ex.explore(sim, max_steps=steps, on_frame=log_visible)
        mem.finalize()
        cov = coverage(mem, gt)
        if save_dir is not None:
            mem.save(str(save_dir / f"seed{seed}"))
            (save_dir / f"seed{seed}_visible.json").write_text(json.dumps(seen))
        labels = gt.labels()
        poses = gt.object_poses()
        cats = sorted({lab for lab in labels.values() if lab not in SMALL_SKIP})
        rng = np.random.default_rng(seed)
        goals = list(rng.choice(cats, size=min(n_goals, len(cats)), replace=False))
        nav = Navigator(mem)
        episodes = []
        for cat in goals:
            start = sim.agent_pose.translation[:2].copy()
            ids = [i for i, lab in labels.items() if lab == cat and i in poses]
            shortest = shortest_to_goal(gt, str(cat), start)
            before = len(mem.trajectory)
            r = nav.go_to_object(sim, str(cat), max_steps=nav_steps, explorer=ex)
            dist = goal_distance(gt, str(cat), sim.agent_pose.translation[:2])
            ok = bool(dist <= 1.0 and gt_in_view(sim, ids))
            # distance actually driven in the episode (exploring included), from the recorded poses
            trail = np.array([start] + [m[:2, 3] for _, _, m in mem.trajectory[before:]])
            taken = float(np.linalg.norm(np.diff(trail, axis=0), axis=1).sum())
            if not np.isfinite(shortest):
                spl = float("nan")  # no ground-truth reference path (reported, left out of the mean)
            else:
                spl = float(ok) * (shortest / max(shortest, taken) if max(shortest, taken) > 0 else 1.0)
            episodes.append(
                {
                    "goal": str(cat),
                    "status": r.status,
                    "success": ok,
                    "spl": spl,
                    "dist_m": dist,
                    "shortest_m": shortest,
                    "taken_m": taken,
                    "steps": r.steps,
                    "message": r.message,
                }
            )
        return {
            "seed": seed,
            "coverage": cov,
            "steps": res.steps,
            "stop": res.reason,
            "objects": len(mem.objects.objects),
            "episodes": episodes,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "perception": perception,
        }
    finally:
        sim.close()


def run_pick_place(seed: int, perception: str = "oracle") -> dict:
    from engram.planners.manipulation import ManipulationPlanner
    from engram.sims.embedded import ManipulationScene

    t0 = time.perf_counter()
    sc = ManipulationScene(seed=seed)
    try:
        # any detector but the oracle gets the frames without the scene's masks (SceneMemory strips them)
        mem = SceneMemory(
            voxel_size_m=0.01,
            depth_stride=1,
            object_stride=1,
            max_range_m=3.0,
            timeline=False,
            dynamic=False,
            detector=perception,
        )
        mem.integrate(sc.reset())
        pl = ManipulationPlanner(mem)
        pl.survey(sc, [(0.45, -0.15, 1.05), (0.45, 0.2, 1.05), (0.6, 0.0, 1.05)])
        obj = ManipulationScene.OBJECT_LABELS[seed % 3]
        cont = ManipulationScene.CONTAINER_LABELS[(seed // 3) % 2]
        picked, plan = pl.pick(sc, obj)
        if picked:
            pl.place_in(sc, obj, cont)
        inside = sc.is_inside(sc.instance_id(obj), sc.instance_id(cont))
        return {
            "seed": seed,
            "object": obj,
            "container": cont,
            "picked": picked,
            "success": bool(inside),
            "reason": plan.reason,
            "seconds": time.perf_counter() - t0,
        }
    finally:
        sc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apartments", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=500, help="exploration step budget per apartment")
    ap.add_argument("--nav-steps", type=int, default=250)
    ap.add_argument("--goals", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=10, help="pick-and-place episodes")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument(
        "--perception",
        default=f"oracle,{DEFAULT_DETECTOR}",
        help="comma-separated detectors, one row each (oracle = the simulator's masks, an upper bound)",
    )
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / ".cache" / "navigation.json"))
    ap.add_argument("--verbose", action="store_true", help="print every object-goal episode")
    args = ap.parse_args()
    perceptions = [p.strip() for p in args.perception.split(",") if p.strip()]

    cache_path = Path(args.cache)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def save():
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(cache_path)

    seeds = [str(s) for s in range(args.first_seed, args.first_seed + args.apartments)]
    rows = {}
    for perception in perceptions:
        # the oracle keeps the cache keys and memory folder it always had
        tag = "" if perception == "oracle" else f"-{perception}"
        world = f"-w{WORLD_VERSION}"  # results of an older embedded world are not this world's
        key = f"s{args.steps}-n{args.nav_steps}-g{args.goals}-{args.width}x{args.height}{tag}{world}"
        runs = cache.setdefault(key, {})
        pp = cache.setdefault(f"pick_place{tag}{world}", {})
        for seed in range(args.first_seed, args.first_seed + args.apartments):
            if str(seed) not in runs:
                mem_dir = cache_path.parent / f"memories{tag.replace('-', '_')}"
                mem_dir.mkdir(exist_ok=True)
                runs[str(seed)] = run_apartment(
                    seed, args.steps, args.nav_steps, args.goals, args.width, args.height, mem_dir, perception
                )
                save()
            r = runs[str(seed)]
            print(
                f"[{perception}] apartment {seed}: coverage {r['coverage']:.3f} ({r['steps']} steps, {r['stop']}), "
                f"objectnav {sum(e['success'] for e in r['episodes'])}/{len(r['episodes'])}, {r['objects']} objects, "
                f"{r['seconds']:.0f} s",
                flush=True,
            )
            if args.verbose:
                for e in r["episodes"]:
                    print(
                        f"    {e['goal']}: {e['status']}, success {e['success']}, spl {e['spl']:.2f}, {e['dist_m']:.2f} m from it, "
                        f"shortest {e['shortest_m']:.2f} m, taken {e['taken_m']:.2f} m, {e.get('steps', '?')} steps: {e.get('message', '')}"
                    )
        for seed in range(args.episodes):
            if str(seed) not in pp:
                pp[str(seed)] = run_pick_place(seed, perception)
                save()
            e = pp[str(seed)]
            print(
                f"[{perception}] pick/place {seed}: {e['object']} -> {e['container']}: {'ok' if e['success'] else 'failed'} {e['reason']}",
                flush=True,
            )

        covs = np.array([runs[s]["coverage"] for s in seeds])
        eps = [e for s in seeds for e in runs[s]["episodes"]]
        succ = float(np.mean([e["success"] for e in eps])) if eps else 0.0
        spls = np.array([e["spl"] for e in eps], float)
        spl = float(np.nanmean(spls)) if np.isfinite(spls).any() else 0.0
        if np.isnan(spls).any():
            print(
                f"[{perception}] ({int(np.isnan(spls).sum())} episodes without a ground-truth reference path are left out of SPL)"
            )
        pps = [pp[str(s)]["success"] for s in range(args.episodes)]
        rows[perception] = (len(seeds), covs, eps, succ, spl, pps)

    print()
    print(
        "| perception | apartments | steps | coverage mean | coverage >= 0.90 | objectnav episodes | success | SPL | pick/place |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for perception, (n, covs, eps, succ, spl, pps) in rows.items():
        name = f"{perception} (simulator masks: upper bound)" if perception == "oracle" else perception
        print(
            f"| {name} | {n} | {args.steps} | {covs.mean():.3f} | {np.mean(covs >= 0.9):.2f} | {len(eps)} | {succ:.3f} | {spl:.3f} | "
            f"{sum(pps)}/{len(pps)} |"
        )
    head = DEFAULT_DETECTOR if DEFAULT_DETECTOR in rows else perceptions[0]
    if head != DEFAULT_DETECTOR:
        print(f"(no {DEFAULT_DETECTOR} row: the summary line below is the {head} row)")
    _, covs, _, succ, spl, pps = rows[head]
    print(
        f"coverage: {covs.mean():.3f} objectnav_success: {succ:.3f} spl: {spl:.3f} pick_place_success: {np.mean(pps) if pps else 0.0:.3f}"
    )


if __name__ == "__main__":
    main()
