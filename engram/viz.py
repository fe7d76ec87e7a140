"""Live 3D view of a run with rerun (the ``[viz]`` extra): what the memory holds as it grows.

`RerunLogger` is called once per frame (the explorer's ``on_frame``) and logs, on the
``step`` timeline (frame index) and ``sim_time`` (seconds):

* ``world/camera`` — the camera pose and pinhole, its colour image (every ``image_every`` frames);
* ``world/map/occupied`` — the occupied voxels as points coloured by height, re-logged every
  ``map_every`` frames, so scrubbing the timeline shows the map growing;
* ``world/objects`` — one labelled box per remembered object;
* ``world/trajectory`` — the camera's path so far (a line strip, at floor height + 5 cm);
* ``world/frontiers`` — the memory's frontier cells (where known floor meets unknown space);
* ``world/plan`` — the path the planner is following now (``plan_fn``), when there is one.

`finish` logs the final state once more and flushes. The recording goes to a viewer the
logger spawns (``spawn=True``) and/or to an ``.rrd`` file (``save_path``); with neither it is
an error, since the data would go nowhere. The code uses rerun-sdk's 0.2x+ API
(``RecordingStream``, ``set_time(..., sequence=/duration=)``), pinned in setup.cfg.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ENTITIES", "RerunLogger"]

ENTITIES = (
    "world/camera",
    "world/camera/image",
    "world/map/occupied",
    "world/objects",
    "world/trajectory",
    "world/frontiers",
    "world/plan",
)


def _height_colors(z: np.ndarray) -> np.ndarray:
    """ "N 3" uint8 colours from blue (low) to yellow (high) over 0-2.5 m."""
    t = np.clip(np.asarray(z, np.float64) / 2.5, 0.0, 1.0)[:, None]
    lo, hi = np.array([40, 60, 200], np.float64), np.array([250, 220, 40], np.float64)
    return (lo + t * (hi - lo)).astype(np.uint8)


class RerunLogger:
    """Log a `SceneMemory` (and the planner's path) to rerun as it grows.

    Args:
        memory: the memory being built (read only).
        spawn: start a rerun viewer and stream to it.
        save_path: also (or only) write the recording to this ``.rrd`` file.
        image_every: log the camera image every this many frames (the pose every frame).
        map_every: re-log the occupied voxels, objects and frontiers every this many frames.
        plan_fn: returns the "N 2" path the agent follows now, or None.
        floor_z_m: height the trajectory, frontiers and plan are drawn at (plus 5 cm).
        application_id: rerun's application id.
    """

    def __init__(
        self,
        memory,
        *,
        spawn: bool = False,
        save_path: str | Path | None = None,
        image_every: int = 5,
        map_every: int = 10,
        plan_fn: Callable[[], np.ndarray | None] | None = None,
        floor_z_m: float = 0.0,
        application_id: str = "engram",
    ) -> None:
        from engram._optional import require

        if not spawn and save_path is None:
            raise ValueError(
                "rerun logging needs a viewer (spawn=True) or a file (save_path=...rrd): the data would go nowhere"
            )
        if image_every < 1 or map_every < 1:
            raise ValueError(f"image_every and map_every must be >= 1, got {image_every}, {map_every}")
        rr = require("rerun", "live 3D logging")
        self.rr = rr
        self.memory = memory
        self.image_every = int(image_every)
        self.map_every = int(map_every)
        self.plan_fn = plan_fn
        self.z_m = float(floor_z_m) + 0.05
        self.frames = 0
        self.save_path = None if save_path is None else Path(save_path)
        # a recording of its own (not rerun's global one), so two runs in one process never mix
        self.rec = rr.RecordingStream(application_id, recording_id=uuid.uuid4())
        sinks = []
        if spawn:
            self.rec.spawn(connect=False)  # starts the viewer (the `rerun` executable of rerun-sdk)
            sinks.append(rr.GrpcSink())
        if self.save_path is not None:
            self.save_path.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(self.save_path)))
        self.rec.set_sinks(*sinks)
        self.rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)

    # -- per frame ------------------------------------------------------------------------
    def __call__(self, frame) -> None:
        rr, rec = self.rr, self.rec
        self.frames += 1
        rec.set_time("step", sequence=int(frame.index))
        rec.set_time("sim_time", duration=float(frame.timestamp_s))
        pose = frame.world_from_camera
        if pose is not None:
            rec.log("world/camera", rr.Transform3D(translation=pose.translation, mat3x3=pose.rotation))
            k = frame.intrinsics
            if k is not None:
                rec.log(
                    "world/camera",
                    rr.Pinhole(
                        focal_length=[k.fx, k.fy],
                        principal_point=[k.cx, k.cy],
                        resolution=[k.width, k.height],
                        image_plane_distance=0.3,
                    ),
                )
        if frame.index % self.image_every == 0:
            rec.log("world/camera/image", rr.Image(frame.rgb))
        if self.frames == 1 or frame.index % self.map_every == 0:
            self.log_memory()
        self.log_plan()

    # -- layers ---------------------------------------------------------------------------
    def log_memory(self) -> None:
        """The occupied voxels, objects, trajectory and frontiers as the memory holds them now."""
        rr, rec, mem = self.rr, self.rec, self.memory
        occ = np.asarray(mem.octree.occupied_centers(), np.float32).reshape(-1, 3)
        rec.log(
            "world/map/occupied",
            rr.Points3D(occ, colors=_height_colors(occ[:, 2]), radii=0.5 * float(mem.octree.voxel_size_m)),
        )
        objs = list(mem.objects.objects.values())
        if objs:
            lo = np.array([np.asarray(o.box_min, float) for o in objs])
            hi = np.array([np.asarray(o.box_max, float) for o in objs])
            rec.log(
                "world/objects",
                rr.Boxes3D(
                    centers=(lo + hi) / 2,
                    half_sizes=np.maximum((hi - lo) / 2, 1e-3),
                    labels=[o.label for o in objs],
                    class_ids=[int(o.id) for o in objs],
                ),
            )
        traj = np.array([m[:3, 3] for _, _, m in mem.trajectory], np.float64).reshape(-1, 3)
        if len(traj) > 1:
            traj[:, 2] = self.z_m
            rec.log("world/trajectory", rr.LineStrips3D([traj], colors=[(30, 90, 220)], radii=0.02))
        fr = list(getattr(mem, "frontiers", None) or [])
        cells = [np.asarray(f.cells, float).reshape(-1, 2) for f in fr]
        pts = np.concatenate(cells) if cells else np.zeros((0, 2))
        rec.log(
            "world/frontiers", rr.Points3D(np.c_[pts, np.full(len(pts), self.z_m)], colors=[(255, 140, 0)], radii=0.03)
        )

    def log_plan(self) -> None:
        if self.plan_fn is None:
            return
        path = self.plan_fn()
        if path is None or len(path) < 2:
            self.rec.log("world/plan", self.rr.Clear(recursive=False))
            return
        p = np.asarray(path, float)[:, :2]
        self.rec.log(
            "world/plan",
            self.rr.LineStrips3D([np.c_[p, np.full(len(p), self.z_m + 0.02)]], colors=[(220, 30, 30)], radii=0.025),
        )

    def finish(self) -> Path | None:
        """Log the final memory and flush; returns the .rrd path when saving."""
        self.log_memory()
        self.rec.flush()
        if self.save_path is not None:
            self.rec.disconnect()
        return self.save_path

    @staticmethod
    def read_entities(path: str | Path) -> dict[str, dict[str, Any]]:
        """What an .rrd file holds: entity path -> {"rows": n, "components": [...]} (for checks and tests)."""
        from engram._optional import require

        require("rerun", "reading rerun recordings")
        from rerun.chunk import RrdReader

        out: dict[str, dict[str, Any]] = {}
        for chunk in RrdReader(str(path)).stream():
            rb = chunk.to_record_batch()
            e = out.setdefault(str(chunk.entity_path).lstrip("/"), {"rows": 0, "components": set(), "batches": []})
            e["rows"] += chunk.num_rows
            e["components"].update(f.name for f in rb.schema if ":" in f.name)
            e["batches"].append(rb)
        for e in out.values():
            e["components"] = sorted(e["components"])
        return out
