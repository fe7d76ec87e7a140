"""`engram map SOURCE --out DIR`: a recorded RGB-D source through memory, then 3D exports.

An occupancy map needs metric depth, so the source must carry it: an Open3D /
ICL-NUIM folder (color/, depth/, trajectory.log), a TUM folder (rgb.txt,
depth.txt), a 7-Scenes folder (frame-NNNNNN.color/.depth/.pose files), or a
ROS bag with a depth topic (.bag, .mcap, or a ROS 2 folder
with metadata.yaml). The same sources can be named by their config instead of
a path (``engram map --out DIR sim=tum sim.path=...``; groups in
engram/configs/sim). A plain video has colour only: no depth estimate is made
from it here (that would need a model the user brings and gives no metric
scale), so a video is refused with a pointer to ``engram qa build``, which
builds the memory a video can give (the episodic timeline). Frames without
poses are tracked with RGB-D odometry first. The memory is saved, and the
folder gets the static map and TSDF surface as .ply, objects as separate clouds
with their labels, the trajectory, and a top-down picture, ready for MeshLab,
CloudCompare or Open3D's viewer.

A source that stops early (a bag cut short) still gives a map of the frames
before the cut; the summary says ``complete: false`` and why, and the command
exits with status 3. Frames without poses are an error unless
``estimate_poses`` tracks them.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engram.types import Frame

__all__ = ["ACCEPTED", "VIDEO_HINT", "open_source", "resolve_floor", "run_map"]

log = logging.getLogger(__name__)

_VIDEO = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
ACCEPTED = "an Open3D/ICL-NUIM, TUM RGB-D or 7-Scenes folder, or a ROS bag with depth (.bag, .mcap, ROS 2 folder)"
VIDEO_HINT = "a video has colour only, no depth to map: `engram qa build VIDEO --out DIR` builds its (episodic) memory"


def open_source(path: str | Path, fmt: str = "auto", stride: int = 1, max_frames: int | None = None):
    """A frame source for ``path`` (see the module doc for what is recognised)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such file or folder: {p}")
    if fmt == "auto":
        if p.is_dir() and ((p / "trajectory.log").exists() or (p / "color").is_dir()):
            fmt = "icl"
        elif p.is_dir() and (p / "rgb.txt").exists():
            fmt = "tum"
        elif p.is_dir() and next(p.glob("frame-*.depth.png"), None) is not None:
            fmt = "7scenes"
        elif p.suffix in (".bag", ".mcap") or (p.is_dir() and (p / "metadata.yaml").exists()):
            fmt = "bag"
        elif p.suffix.lower() in _VIDEO:
            fmt = "video"
        else:
            raise ValueError(f"cannot tell what {p} is: expected {ACCEPTED} (or pass format=icl|tum|7scenes|bag)")
    if fmt in ("icl", "tum", "7scenes"):
        from engram.sims.rgbd import RgbdDataset

        return RgbdDataset(p, format=fmt, stride=stride, max_frames=max_frames, missing_poses="keep")
    if fmt == "bag":
        from engram.sims.ros import RosBagSource

        src = RosBagSource(p)
        return itertools.islice(src, 0, max_frames, stride) if (stride > 1 or max_frames) else src
    if fmt == "video":
        raise ValueError(f"{p}: {VIDEO_HINT}")
    raise ValueError(f"unknown format {fmt!r}: use auto, icl, tum, 7scenes or bag")


def _configured_source(cfg: Any, stride: int, max_frames: int | None):
    """The recorded source a ``sim=`` config group names (icl, tum, rosbag); refuses the others."""
    from engram.config import instantiate

    target = str(cfg.get("_target_", ""))
    if target.endswith("VideoSource"):
        raise ValueError(f"sim=video: {VIDEO_HINT}")
    if target.endswith(("EmbeddedSim", "HabitatSource")):
        raise ValueError(f"{target} is a world an agent moves in, not a recording: `engram explore` maps it")
    src = instantiate(cfg)
    if not hasattr(src, "__iter__"):
        raise ValueError(f"{target} does not yield frames; engram map reads {ACCEPTED}")
    return itertools.islice(src, 0, max_frames, stride) if (stride > 1 or max_frames) else src


def resolve_floor(setting: Any, source: Any) -> tuple[float, str]:
    """The floor height the memory gets, and where it comes from.

    ``auto``: a recorded RGB-D sequence's floor, estimated from its depth (a hand-held camera's
    world has its origin at the camera, not on the floor); a bag's or a sequence's without a
    clear floor is z = 0, a robot's odometry convention. A number is taken as it is.
    """
    if setting is None or str(setting).strip().lower() == "auto":
        estimate = getattr(source, "estimate_floor_z_m", None)
        z = estimate() if callable(estimate) else None
        if z is not None:
            return float(z), "estimated from the depth images"
        return 0.0, "z = 0: no clear floor in the depth images" if callable(estimate) else "z = 0, the source's own"
    try:
        z = float(setting)
    except (TypeError, ValueError):
        raise ValueError(f"floor_z_m must be 'auto' or a number of metres, got {setting!r}") from None
    if not math.isfinite(z):
        raise ValueError(f"floor_z_m must be finite, got {setting!r}")
    return z, "given"


def run_map(cfg: Any) -> dict[str, Any]:
    """Run the map job for a composed config (engram/configs/map.yaml)."""
    from engram.config import to_plain
    from engram.memory.export import ObjectCloud, export_folder, height_colors
    from engram.memory.scene import SceneMemory

    c = to_plain(cfg)
    out = Path(c["out"]).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stride, max_frames = int(c.get("stride", 1)), c.get("max_frames")
    if c.get("sim"):
        if c.get("source"):
            raise ValueError("give either a SOURCE path or a sim= config, not both")
        source = _configured_source(cfg.sim, stride, max_frames)
        name = f"sim={c['sim'].get('_target_', '?').rsplit('.', 1)[-1]} ({c['sim'].get('path', '')})"
    elif c.get("source"):
        source = open_source(c["source"], c.get("format", "auto"), stride, max_frames)
        name = str(c["source"])
    else:
        raise ValueError(f"nothing to map: give a SOURCE path ({ACCEPTED}) or sim=icl|tum|rosbag sim.path=...")
    frames = iter(source)
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError(f"{name} holds no frames") from None
    if first.depth_m is None or first.intrinsics is None:
        missing = " and ".join(
            k for k, v in (("depth", first.depth_m), ("camera intrinsics", first.intrinsics)) if v is None
        )
        raise ValueError(
            f"{name}: its frames have no {missing}, so there is nothing to map; engram map reads {ACCEPTED}"
        )
    stream: Iterator[Frame] = itertools.chain([first], frames)
    est = c.get("estimate_poses", "auto")
    estimate = est is True or (est == "auto" and first.world_from_camera is None)
    if not estimate and hasattr(source, "poses"):
        unposed = sum(p is None for p in source.poses())
        if unposed:  # mapping only the posed frames would leave holes nobody asked for
            raise ValueError(
                f"{c['source']}: {unposed} of {len(source)} frames have no pose; pass estimate_poses=true to "
                "track them with RGB-D odometry"
            )
    if estimate:
        from engram.perception.odometry import with_estimated_poses

        stream = with_estimated_poses(stream)
    c["memory"]["floor_z_m"], floor_from = resolve_floor(c.get("floor_z_m", "auto"), source)
    log.info("map: floor at z = %.2f m (%s)", c["memory"]["floor_z_m"], floor_from)
    memory = SceneMemory.from_config(c["memory"])
    tsdf = None
    if c.get("tsdf", True):
        from engram.memory.export import TsdfSurface

        tsdf = TsdfSurface(voxel_size_m=min(memory.voxel_size_m, 0.02))
    if c.get("progress", True):
        from tqdm.auto import tqdm

        stream = tqdm(stream, desc="map", unit="frame", total=len(source) if hasattr(source, "__len__") else None)
    n = mapped = 0
    stopped = None
    frames_in = iter(stream)
    while True:
        try:
            frame = next(frames_in)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - a source cut short (a truncated bag): keep what came before
            stopped = f"the source stopped after {n} frames: {' '.join(str(exc).split()) or type(exc).__name__}"
            log.warning("map: %s; mapping the frames before it", stopped)
            break
        if frame.world_from_camera is None and not estimate:
            raise ValueError(f"{c['source']}: frame {frame.index} has no pose; pass estimate_poses=true to track it")
        rep = memory.integrate(frame)
        n += 1
        mapped += int(rep.mapped)
        if tsdf is not None and frame.has_geometry:
            tsdf.integrate(frame)
    memory.finalize()
    memory.save(str(out / "memory"))

    occ = memory.octree.occupied_centers()
    mesh = None
    if tsdf is not None and len(tsdf):
        pts, cols = tsdf.extract_point_cloud()
        mesh = tsdf.extract_mesh()
    else:
        pts, cols = occ, height_colors(occ[:, 2])
    objects = [
        ObjectCloud(
            int(o.id),
            o.label,
            np.asarray(o.points),
            np.asarray(o.colors),
            {
                "first_seen_s": float(o.first_seen_s),
                "last_seen_s": float(o.last_seen_s),
                "detections": int(o.n_detections),
            },
        )
        for o in memory.objects.objects.values()
    ]
    traj = np.array([m for _, _, m in memory.trajectory]).reshape(-1, 4, 4)
    times = np.array([t for _, t, _ in memory.trajectory])
    written = export_folder(
        out,
        points=pts,
        colors=cols,
        mesh=mesh,
        objects=objects,
        trajectory=traj if len(traj) else None,
        timestamps_s=times if len(times) else None,
    )
    from engram.memory.export import write_point_cloud_ply

    written["occupancy"] = write_point_cloud_ply(out / "occupancy.ply", occ, height_colors(occ[:, 2]))
    summary = {
        "source": name,
        "frames": n,
        "frames_mapped": mapped,
        "occupied_voxels": int(len(occ)),
        "objects": len(objects),
        # named by what their objects say (room N: too little evidence for a name)
        "rooms": [
            {"name": r.name, "area_m2": round(float(r.area_m2), 1), "objects": len(r.object_ids)}
            for r in memory.rooms().rooms
        ],
        "floor_z_m": round(float(memory.floor_z_m), 3),
        "floor_from": floor_from,
        "seconds": round(time.perf_counter() - t0, 2),
        "complete": stopped is None,
        "stopped_early": stopped,
        "files": {k: str(v) for k, v in written.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return {"out_dir": str(out), **summary}
