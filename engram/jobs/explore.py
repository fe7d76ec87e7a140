"""The main job: explore a seeded apartment, build the memory, navigate to named objects, report.

Everything the agent decides comes from its memory, built from RGB-D frames by
the chosen detector (``rgbd`` by default); its pose comes from the simulator,
like Habitat's GPS+compass sensor. The simulator's ground truth is read only to
score the run (coverage, object-goal success).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["run_explore", "coverage", "object_in_view"]


def coverage(memory, gt, robot_radius_m: float = 0.2) -> float:
    """Share of the reachable free floor (ground truth) that the memory knows as free floor."""
    from engram.planners.navigation import FREE, TraversabilityGrid

    reach = gt.reachable_map()
    cells = np.argwhere(reach.free)
    if not len(cells):
        return 0.0
    xy = reach.cell_to_world(cells)
    grid = TraversabilityGrid.from_octree(memory.octree, floor_z_m=memory.floor_z_m, robot_radius_m=robot_radius_m)
    rc = grid.world_to_cell(xy)
    ok = grid.in_bounds(rc)
    seen = np.zeros(len(xy), bool)
    seen[ok] = grid.state[rc[ok, 0], rc[ok, 1]] == FREE
    return float(seen.mean())


def footprint_distance(xy, position_m, half_extents_m, yaw_rad: float) -> float:
    """Distance from a floor point to an object's footprint (its yawed box seen from above; 0 inside)."""
    import math

    d = np.asarray(xy, float)[:2] - np.asarray(position_m, float)[:2]
    c, s = math.cos(-yaw_rad), math.sin(-yaw_rad)
    local = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
    out = np.maximum(np.abs(local) - np.asarray(half_extents_m, float)[:2], 0.0)
    return float(np.linalg.norm(out))


def goal_distance(gt, label: str, xy, t_s: float | None = None) -> float:
    """Distance from ``xy`` to the nearest footprint of any ``label`` instance (ground truth, for scoring)."""
    spec = {o.instance_id: o for o in gt.spec.all_objects()}
    poses = gt.object_poses() if t_s is None else gt.objects_at(t_s)
    return min(
        (footprint_distance(xy, p.position_m, spec[i].half_extents_m, p.yaw_rad) for i, p in poses.items()
         if p.label == label and i in spec),
        default=float("inf"),
    )


def shortest_to_goal(gt, label: str, start_xy, success_m: float = 1.0) -> float:
    """Ground-truth geodesic distance from ``start_xy`` to the nearest reachable cell within
    ``success_m`` of a ``label`` footprint (the reference path for SPL)."""
    from engram.planners.navigation import distance_map

    reach = gt.reachable_map()
    cell = reach.world_to_cell(start_xy)
    if not (reach.in_bounds(cell) and reach.free[cell[0], cell[1]]):
        # the agent may rest right at the clearance limit: start from the nearest reachable cell
        cells_all = np.argwhere(reach.free)
        if not len(cells_all):
            return float("inf")
        d0 = np.linalg.norm(reach.cell_to_world(cells_all) - np.asarray(start_xy, float)[:2], axis=1)
        if d0.min() > 0.3:
            return float("inf")
        cell = cells_all[int(np.argmin(d0))]
    dist = distance_map(np.where(reach.free, 1.0, np.inf), int(cell[0]), int(cell[1])) * reach.resolution_m
    cells = np.argwhere(np.isfinite(dist))
    xy = reach.cell_to_world(cells)
    spec = {o.instance_id: o for o in gt.spec.all_objects()}
    best = float("inf")
    for i, p in gt.object_poses().items():
        if p.label != label or i not in spec:
            continue
        o = spec[i]
        # vectorised footprint distance for all reachable cells
        import math

        rel = xy - np.asarray(p.position_m[:2])
        c, s = math.cos(-p.yaw_rad), math.sin(-p.yaw_rad)
        local = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], 1)
        fd = np.linalg.norm(np.maximum(np.abs(local) - np.asarray(o.half_extents_m[:2]), 0.0), axis=1)
        ok = fd <= success_m
        if ok.any():
            best = min(best, float(dist[cells[ok, 0], cells[ok, 1]].min()))
    return best


def object_in_view(sim, instance_ids, min_pixels: int = 20) -> bool:
    """True when any of the ground-truth instances covers at least ``min_pixels`` of the current view.

    Reads the simulator's truth for the last rendered view (scoring only: the frames
    the memory sees may carry no instances).
    """
    sim.observe()
    truth = sim.last_ground_truth()[0] if hasattr(sim, "last_ground_truth") else sim.observe().instances
    if truth is None:
        return False
    return bool(np.isin(truth, np.asarray(list(instance_ids), np.int32)).sum() >= min_pixels)


def pick_goal_labels(memory, n: int, seed: int, exclude: tuple[str, ...] = ()) -> list[str]:
    """A few distinct categories the memory knows (from memory only), reproducibly."""
    labels = sorted({o.label for o in memory.objects.objects.values()} - set(exclude))
    rng = np.random.default_rng(seed)
    rng.shuffle(labels)
    return labels[:n]


def run_explore(cfg: Any) -> dict[str, Any]:
    """Run the explore job described by a composed config (see engram/configs/explore.yaml)."""
    from engram.config import instantiate, to_plain
    from engram.memory.scene import SceneMemory
    from engram.planners.frontier import FrontierExplorer
    from engram.planners.navigation import Navigator
    from engram.report import write_report

    c = to_plain(cfg)
    out = Path(c["out"]).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    memory = SceneMemory.from_config(c["memory"])
    sim_kwargs = {}
    if memory.detector_name == "oracle" and "instance_masks" in cfg.sim:
        sim_kwargs["instance_masks"] = True  # the oracle baseline reads the simulator's masks
    sim = instantiate(cfg.sim, **sim_kwargs)
    pl = c["planner"]
    try:
        frame = sim.reset(seed=int(c["seed"]))
        gt = getattr(sim, "ground_truth", None)
        explorer = FrontierExplorer(
            memory,
            robot_radius_m=pl["robot_radius_m"],
            replan_every=pl["replan_every"],
            min_frontier_m=pl["min_frontier_m"],
        )
        rerun_log = _rerun_logger(c) if c.get("rerun") else None
        t0 = time.perf_counter()
        result = explorer.explore(sim, max_steps=pl["explore_steps"], progress=c.get("progress", True), on_frame=rerun_log)
        t_explore = time.perf_counter() - t0
        memory.finalize()
        cov = coverage(memory, gt, pl["robot_radius_m"]) if gt is not None else None
        log.info("explored %d steps (%s), coverage %s", result.steps, result.reason, cov)

        # object-goal navigation to a few categories the memory knows
        nav = Navigator(memory, robot_radius_m=pl["robot_radius_m"], view_distance_m=pl["view_distance_m"],
                        stop_distance_m=pl.get("stop_distance_m", 0.9))
        episodes = []
        trajectory = list(result.trajectory_xy)
        goals = list(result.goals_xy)
        furniture = tuple(pl.get("skip_goal_labels", ()))
        for label in pick_goal_labels(memory, int(pl["n_goals"]), int(c["seed"]), exclude=furniture):
            before = len(memory.trajectory)
            res = nav.go_to_object(sim, label, max_steps=pl["nav_steps"], explorer=explorer)
            for _, _, m in memory.trajectory[before:]:
                trajectory.append((float(m[0, 3]), float(m[1, 3])))
            ep = {"goal": label, "status": res.status, "success_planner": res.success, "steps": res.steps, "message": res.message}
            if gt is not None:
                ids = [i for i, lab in gt.labels().items() if lab == label]
                dist = goal_distance(gt, label, sim.agent_pose.translation[:2])
                ep["distance_to_nearest_m"] = round(dist, 3)
                ep["success"] = bool(dist <= 1.0 and object_in_view(sim, ids))
            else:
                ep["success"] = res.success
            if res.goal_xy is not None:
                goals.append(res.goal_xy)
            episodes.append(ep)

        mem_dir = out / "memory"
        memory.save(str(mem_dir))
        stats = memory.stats()
        metrics = {
            "seed": int(c["seed"]),
            "perception": memory.detector_name,
            "pose_source": "simulator (like Habitat's GPS+compass sensor)",
            "frames": stats["frames_seen"],
            "explore_steps": result.steps,
            "explore_stop_reason": result.reason,
            "explore_seconds": round(t_explore, 2),
            "coverage": None if cov is None else round(cov, 4),
            "objects": stats["objects"],
            "snapshots": stats["snapshots"],
            "places": stats["places"],
            "occupied_voxels": stats["occupied_voxels"],
            "frontiers_left": stats["frontiers"],
            "objectnav_episodes": len(episodes),
            "objectnav_success": round(float(np.mean([e["success"] for e in episodes])), 3) if episodes else None,
            "seconds": round(time.perf_counter() - t_start, 2),
        }
        write_report(out, memory, metrics=metrics, trajectory_xy=trajectory, goals_xy=goals, episodes=episodes,
                     title=f"engram explore · seed {c['seed']}")
        (out / "episodes.json").write_text(json.dumps(episodes, indent=2))
        return {"out_dir": str(out), "metrics": metrics, "episodes": episodes}
    finally:
        sim.close()


def _rerun_logger(c: dict[str, Any]):
    """Live 3D view with rerun (the [viz] extra), logging every 5th frame."""
    from engram._optional import require

    rr = require("rerun", "live 3D logging")
    rr.init("engram", spawn=False)
    if c.get("rerun_save"):
        rr.save(c["rerun_save"])

    def on_frame(frame) -> None:
        if frame.index % 5:
            return
        rr.set_time("sim_time", duration=frame.timestamp_s)
        rr.log("camera/rgb", rr.Image(frame.rgb))
        if frame.world_from_camera is not None:
            t = frame.world_from_camera
            rr.log("world/camera", rr.Transform3D(translation=t.translation, mat3x3=t.rotation))

    return on_frame
