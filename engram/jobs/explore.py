"""The main job: explore a seeded apartment, build the memory, navigate to named objects, report.

Everything the agent decides about the world (where to go, what is where) comes
from its memory, built from RGB-D frames by the chosen detector (``rgbd`` by
default); its own pose comes from the simulator, as Habitat's GPS+compass sensor
gives it (no localisation is estimated here). The simulator's ground truth is
read only to score the run (coverage, object-goal success, SPL's reference path).
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
_WALL_MAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # ground truth -> its wall raster

__all__ = ["check_interactive", "coverage", "object_in_view", "run_explore", "shortest_to_goal", "wall_sight"]


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


def names_match(goal: str, true_label: str) -> bool:
    """Does a goal word name a true category? The same word, or one is a synonym of the other
    ("television" and "tv"; the memory's vocabulary need not use the simulator's words)."""
    from engram.perception.detectors.vocabulary import expand_query

    g, t = goal.strip().lower(), true_label.strip().lower()
    return g == t or t in expand_query(g) or g in expand_query(t)


def goal_distance(gt, label: str, xy, t_s: float | None = None) -> float:
    """Distance from ``xy`` to the nearest footprint of any ``label`` instance (ground truth, for scoring)."""
    spec = {o.instance_id: o for o in gt.spec.all_objects()}
    poses = gt.object_poses() if t_s is None else gt.objects_at(t_s)
    return min(
        (
            footprint_distance(xy, p.position_m, spec[i].half_extents_m, p.yaw_rad)
            for i, p in poses.items()
            if names_match(label, p.label) and i in spec
        ),
        default=float("inf"),
    )


def _footprint_point(xy: np.ndarray, position_m, half_extents_m, yaw_rad: float) -> np.ndarray:
    """The point of an object's yawed footprint nearest to each floor point ("N 2")."""
    import math

    rel = xy - np.asarray(position_m, float)[:2]
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], 1)
    local = np.clip(local, -np.asarray(half_extents_m, float)[:2], np.asarray(half_extents_m, float)[:2])
    return np.asarray(position_m, float)[:2] + np.stack(
        [c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]], 1
    )


def wall_sight(gt, from_xy: np.ndarray, to_xy: np.ndarray, step_m: float = 0.025, end_m: float = 0.1) -> np.ndarray:
    """For each pair of floor points, whether the straight line between them crosses no wall.

    Walls are the ground truth's wall boxes that reach below 1.8 m (door openings are gaps; furniture
    does not count, the camera sees over most of it). The last ``end_m`` before ``to_xy`` is not
    checked: an object against a wall touches the wall's cells.
    """
    from engram.sims.embedded.groundtruth import rasterize_obstacles

    walls = _WALL_MAPS.get(gt)
    if walls is None:
        walls = _WALL_MAPS[gt] = rasterize_obstacles(gt.spec.bounds, gt.spec.walls, (), gt.reachable_map().resolution_m)
    a = np.asarray(from_xy, float).reshape(-1, 2)
    b = np.asarray(to_xy, float).reshape(-1, 2)
    if not len(a):
        return np.zeros(0, bool)
    d = b - a
    length = np.linalg.norm(d, axis=1)
    n = int(np.ceil(length.max() / step_m)) + 1
    t = np.linspace(0.0, 1.0, n)
    pts = a[:, None, :] + t[None, :, None] * d[:, None, :]
    checked = (t[None, :] * length[:, None]) <= (length[:, None] - end_m)
    rc = walls.world_to_cell(pts.reshape(-1, 2))
    inside = walls.in_bounds(rc)
    blocked = np.ones(len(rc), bool)
    blocked[inside] = ~walls.free[rc[inside, 0], rc[inside, 1]]
    return ~(blocked.reshape(len(a), n) & checked).any(axis=1)


def shortest_to_goal(gt, label: str, start_xy, success_m: float = 1.0) -> float:
    """Ground-truth geodesic distance from ``start_xy`` to the nearest reachable cell within
    ``success_m`` of a ``label`` footprint with no wall between the cell and the object (the
    reference path for SPL: success needs the object in view, which a wall next to it prevents)."""
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
        near = _footprint_point(xy, p.position_m, o.half_extents_m, p.yaw_rad)
        ok = np.linalg.norm(near - xy, axis=1) <= success_m
        if not ok.any():
            continue
        idx = np.flatnonzero(ok)
        idx = idx[wall_sight(gt, xy[idx], near[idx])]
        if len(idx):
            best = min(best, float(dist[cells[idx, 0], cells[idx, 1]].min()))
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
    from engram.perception.detectors.vocabulary import UNKNOWN_LABEL

    # things the memory could not name ("object") are no goal a user would give
    labels = sorted({o.label for o in memory.objects.objects.values()} - set(exclude) - {UNKNOWN_LABEL})
    rng = np.random.default_rng(seed)
    rng.shuffle(labels)
    return labels[:n]


def check_interactive(sim_cfg: Any) -> None:
    """Refuse a recorded source (a dataset, bag or video): exploring needs a world the agent moves in."""
    target = str(sim_cfg.get("_target_", "")) if sim_cfg is not None else ""
    name = target.rsplit(".", 1)[-1]
    if name in ("RgbdDataset", "RosBagSource"):
        raise ValueError(
            f"{name} is a recording (frames in a fixed order), not a world an agent can move in: "
            "map it with `engram map --out DIR sim=<icl|tum|rosbag> sim.path=...` "
            "(explore needs sim=embedded or sim=habitat)"
        )
    if name == "VideoSource":
        raise ValueError(
            "a video is a recording with colour only, not a world an agent can move in: "
            "`engram qa build VIDEO --out DIR` builds its memory (explore needs sim=embedded or sim=habitat)"
        )
    if target and name not in ("EmbeddedSim", "HabitatSource"):
        import importlib

        module, _, cls = target.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            return  # hydra names what it cannot build
        if not (callable(getattr(obj, "step", None)) and callable(getattr(obj, "reset", None))):
            raise ValueError(
                f"{target} has no reset()/step(action): explore needs an interactive world; "
                "`engram map` reads recordings"
            )


def run_explore(cfg: Any) -> dict[str, Any]:
    """Run the explore job described by a composed config (see engram/configs/explore.yaml)."""
    from engram.config import instantiate, to_plain
    from engram.memory.scene import SceneMemory
    from engram.planners.frontier import FrontierExplorer
    from engram.planners.navigation import Navigator
    from engram.report import write_report

    check_interactive(cfg.sim)
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
        sim.reset(seed=int(c["seed"]))
        gt = getattr(sim, "ground_truth", None)
        explorer = FrontierExplorer(
            memory,
            robot_radius_m=pl["robot_radius_m"],
            replan_every=pl["replan_every"],
            min_frontier_m=pl["min_frontier_m"],
        )
        nav = Navigator(
            memory,
            robot_radius_m=pl["robot_radius_m"],
            view_distance_m=pl["view_distance_m"],
            stop_distance_m=pl.get("stop_distance_m", 0.9),
        )
        rerun_log: Any = None
        if c.get("rerun") or c.get("rerun_save"):
            from engram.viz import RerunLogger

            following = [explorer.follower]  # whose path the view shows: the explorer's, then the navigator's
            rerun_log = RerunLogger(
                memory,
                spawn=bool(c.get("rerun")),
                save_path=c.get("rerun_save"),
                plan_fn=lambda: following[0].path,
                floor_z_m=memory.floor_z_m,
            )
        t0 = time.perf_counter()
        result = explorer.explore(
            sim, max_steps=pl["explore_steps"], progress=c.get("progress", True), on_frame=rerun_log
        )
        t_explore = time.perf_counter() - t0
        memory.finalize()
        cov = coverage(memory, gt, pl["robot_radius_m"]) if gt is not None else None
        log.info("explored %d steps (%s), coverage %s", result.steps, result.reason, cov)

        # object-goal navigation to a few categories the memory knows
        if rerun_log is not None:
            following[0] = nav.follower
            nav.on_frame = rerun_log
        episodes = []
        trajectory = list(result.trajectory_xy)
        goals = list(result.goals_xy)
        furniture = tuple(pl.get("skip_goal_labels", ()))
        for label in pick_goal_labels(memory, int(pl["n_goals"]), int(c["seed"]), exclude=furniture):
            before = len(memory.trajectory)
            res = nav.go_to_object(sim, label, max_steps=pl["nav_steps"], explorer=explorer)
            for _, _, m in memory.trajectory[before:]:
                trajectory.append((float(m[0, 3]), float(m[1, 3])))
            ep = {
                "goal": label,
                "status": res.status,
                "success_planner": res.success,
                "steps": res.steps,
                "message": res.message,
            }
            if gt is not None:
                ids = [i for i, lab in gt.labels().items() if names_match(label, lab)]
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
        if rerun_log is not None:
            rrd = rerun_log.finish()
            if rrd is not None:
                metrics["rerun_recording"] = str(rrd)
        write_report(
            out,
            memory,
            metrics=metrics,
            trajectory_xy=trajectory,
            goals_xy=goals,
            episodes=episodes,
            title=f"engram explore · seed {c['seed']}",
        )
        (out / "episodes.json").write_text(json.dumps(episodes, indent=2))
        return {"out_dir": str(out), "metrics": metrics, "episodes": episodes}
    finally:
        sim.close()
