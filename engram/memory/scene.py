"""`SceneMemory`: the one object most users touch.

It owns every layer of the spatial memory and keeps them consistent:

* static: `OccupancyOctree` (log-odds occupancy), `ObjectMap` (fused 3D
  object instances), `PlaceGraph` (topological places), `SnapshotMemory`
  (3D-Mem keyframes) and frontiers;
* dynamic: `TransientLayer` (moving geometry that decays) and
  `ObjectTracker` (missing / moved objects, change events);
* episodic: the multi-scale `EpisodicMemory` timeline, when configured.

`integrate(frame)` runs perception on one frame and updates every layer.
`query(...)` is one retrieval API over text, image, position and time across
objects, snapshots, places and events. Frames without depth or pose are
accepted for what they give (time and image memory). A rejected frame leaves
the memory unchanged. Reads may come from other threads while frames are
integrated: a reader/writer lock keeps results whole.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import logging
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram._util import non_negative
from engram.memory.budget import MemoryBudget
from engram.memory.dynamic import ChangeEvent, ObjectTracker, TransientLayer
from engram.memory.frontiers import BandGrid
from engram.memory.octree import OccupancyOctree
from engram.memory.persist import load_scene, save_scene
from engram.memory.scan import scan_frame
from engram.perception.geometry import project_points
from engram.perception.motion import (
    DYNAMIC_CATEGORIES,
    MotionTracker,
    blob_labels,
    blob_widths_m,
    grow_over_depth,
    split_dynamic,
)
from engram.types import MAX_TIMESTAMP_S, Frame, Pose

log = logging.getLogger(__name__)

__all__ = ["SceneMemory", "Hit", "IntegrationReport", "RWLock"]

# Depth ending where the static map is at most this confidently free contradicts it (about three misses).
_FREE_LOG_ODDS = -1.0
# a mover's blob grows over depth-continuous points whose voxel is at most this sure to be occupied
# (unknown, free, or hit once or twice: by the mover itself a moment ago)
_GROW_BELOW_LOG_ODDS = 2.0
_GROW_REACH_M = 1.2
# ... when its seed (the pixels that contradict the map) is at least this share of that surface:
# on the embedded world's walker it was 0.2-1.0 in all but one frame (0.02), on the rims of
# furniture 0.002-0.1 (and 0.0005-0.04 on the real 7-Scenes kitchen)
_GROW_SEED_SHARE = 0.15

# Structure that is not an object.
STRUCTURE_LABELS = ("wall", "floor", "ceiling", "door", "window", "background")


class RWLock:
    """Many readers or one writer, with writer preference; re-entrant for the thread holding it.

    New readers wait while a writer holds the lock or waits for it, so a stream
    of readers cannot starve `integrate`. A thread that already holds the lock
    (to read or to write) may take it again to read without waiting: public
    read methods call each other (`save` -> `stats`, `where_is` -> `query`),
    and a nested read that queued behind a waiting writer would deadlock every
    thread. Taking the write lock while holding only the read lock cannot be
    granted (the writer would wait for itself) and raises `RuntimeError`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # thread id of the writer
        self._waiting_writers = 0
        self._local = threading.local()

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @contextmanager
    def read(self):
        if self._depth():  # this thread holds the lock already (read or write): nest without waiting
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._cond:
            while self._writer is not None or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self):
        me = threading.get_ident()
        if self._depth():
            if self._writer != me:
                raise RuntimeError("RWLock: cannot take the write lock while holding the read lock")
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = me
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            with self._cond:
                self._writer = None
                self._cond.notify_all()


@dataclass
class Hit:
    """One retrieval result.

    Attributes:
        kind: "object", "snapshot", "place" or "event".
        id: the record's id in its layer.
        score: higher is better; comparable within one query.
        label: category (objects), or a short description.
        position: world position (metres), at the time asked when a time was given.
        time_span_s: (first, last) time the record covers.
        frame_indices: frames that show it (evidence).
        evidence: layer-specific details (box, snapshot id, change events, ...).
    """

    kind: str
    id: int
    score: float
    label: str = ""
    position: np.ndarray | None = None
    time_span_s: tuple[float, float] | None = None
    frame_indices: list[int] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntegrationReport:
    """What `integrate` did with one frame."""

    index: int
    timestamp_s: float
    mapped: bool
    reason: str = ""
    n_points: int = 0
    n_dynamic_px: int = 0
    detected_object_ids: list[int] = field(default_factory=list)
    new_object_ids: list[int] = field(default_factory=list)
    ms: float = 0.0


def _without_fragments(hits: list[Hit]) -> list[Hit]:
    """Drop object hits whose centroid lies inside the box of a better object hit.

    A learned detector often maps one thing as a main object plus fragments (a
    cabinet's door, a chair's back seen alone); a query's answer should list
    things, not pieces of the thing it already named. Hits come sorted best first.
    """
    kept: list[Hit] = []
    boxes: list[tuple[np.ndarray, np.ndarray]] = []
    for h in hits:
        if h.kind == "object" and h.position is not None:
            p = np.asarray(h.position, np.float64)
            if any(np.all(p >= lo - 0.05) and np.all(p <= hi + 0.05) for lo, hi in boxes):
                continue
            if "box_min" in h.evidence:
                boxes.append(
                    (np.asarray(h.evidence["box_min"], np.float64), np.asarray(h.evidence["box_max"], np.float64))
                )
        kept.append(h)
    return kept


def _encoder_name(spec: Any) -> str | None:
    """What the saved config records of an encoder given by name, config node or instance.

    Raises:
        ValueError: a config node without a registry name.
    """
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"an encoder config needs a registry name (name: ...), got keys {sorted(spec)}")
        return str(spec["name"])
    return getattr(spec, "name", "custom")


class SceneMemory:
    """The dual static/dynamic spatial memory of one scene.

    Args:
        voxel_size_m: octree resolution.
        max_range_m: depth beyond this only clears free space.
        depth_stride: backproject every n-th pixel for the octree.
        object_stride: sample every n-th pixel of instance masks for objects.
        dynamic: split moving things off into the transient layer.
        dynamic_categories: categories that always count as moving.
        transient_half_life_s: decay half-life of the transient layer.
        settle_weight: depth that contradicts the static map but shows no moving category
            (an object put down where the map had free space) goes to the transient layer
            first; once its voxels hold this much decayed weight there (seen in about two
            earlier frames within a half-life), it counts as a change of the static scene
            and joins the static map. 0 turns this off (such depth always stays transient).
        place_spacing_m: distance between places of the place graph.
        frontier_every: recompute frontiers and merge duplicate objects every n mapped frames.
        split_glued: also cut parts out of objects they were glued into (`ObjectMap.split_glued`)
            every ``frontier_every`` frames. Off by default: on the embedded apartments and the
            red kitchen it cost one found object (benchmarks/README.md, scene_memory).
        floor_z_m: height of the floor (world z) for frontiers and the place graph.
        image_encoder: name, config node ({name: ..., **settings}) or instance of an image encoder for
            image queries and the timeline (None = off).
        text_encoder: name, config node or instance of a text encoder for text queries ("hash" needs
            nothing installed).
        timeline: keep an episodic timeline of the run.
        snapshot_image_width: width of stored snapshot images (pixels).
        budget: a `MemoryBudget` (or its keyword arguments) enforced every
            ``budget.every_frames`` frames; None keeps everything.
        detector: where objects come from: a registry name of
            `engram.perception.detectors` ("rgbd" by default, "rgb", "oracle", a
            plug-in), a detector instance, or None (no objects). Only "oracle" reads a
            simulator's ``Frame.instances``; every other detector ignores them. Built on
            the first frame that needs it.
        detector_kwargs: keyword arguments for `build_detector` when ``detector`` is a name.
        min_range_m: depth closer than this is no return (a sensor's blind zone; a depth of
            1e-40 m is noise, not an object at the lens).
        max_time_gap_s: a frame more than this later than the previous one is refused
            (a clock in nanoseconds, a corrupt stamp) instead of becoming the new clock;
            None allows any forward jump.
        discretize: integrate depth as OctoMap's ``discretize`` mode does: one
            ray per endpoint voxel, to its centre (far fewer ray steps at
            camera resolution). False casts one ray per depth sample.
        room_context: how strongly the room an object stands in weighs the words of a
            detector's label distribution (`engram.memory.rooms.room_context`: rooms are
            segmented and named from the other objects at each `finalize`; 2.0 makes a bed in a
            bedroom 7 times as likely). 0 turns it off. Labels from simulator masks are left as
            they are.
    """

    def __init__(
        self,
        voxel_size_m: float = 0.05,
        *,
        max_range_m: float = 5.0,
        depth_stride: int = 2,
        object_stride: int = 2,
        dynamic: bool = True,
        dynamic_categories: Sequence[str] = tuple(DYNAMIC_CATEGORIES),
        transient_half_life_s: float = 5.0,
        settle_weight: float = 1.5,
        place_spacing_m: float = 1.0,
        frontier_every: int = 10,
        split_glued: bool = False,
        floor_z_m: float = 0.0,
        image_encoder: Any = None,
        text_encoder: Any = "hash",
        timeline: bool = True,
        snapshot_image_width: int = 160,
        octree_kwargs: dict[str, Any] | None = None,
        budget: MemoryBudget | dict[str, Any] | None = None,
        detector: Any = "rgbd",
        detector_kwargs: dict[str, Any] | None = None,
        min_range_m: float = 0.01,
        max_time_gap_s: float | None = 7 * 86400.0,
        discretize: bool = True,
        room_context: float = 2.0,
    ) -> None:
        from engram.memory.objects import ObjectMap
        from engram.memory.places import PlaceGraph
        from engram.memory.snapshots import SnapshotMemory

        if not voxel_size_m > 0:
            raise ValueError(f"voxel_size_m must be positive, got {voxel_size_m}")
        if depth_stride < 1 or object_stride < 1:
            raise ValueError("depth_stride and object_stride must be >= 1")
        self.voxel_size_m = float(voxel_size_m)
        self.max_range_m = float(max_range_m)
        self.depth_stride = int(depth_stride)
        self.object_stride = int(object_stride)
        self.dynamic_enabled = bool(dynamic)
        self.discretize = bool(discretize)
        self.dynamic_categories = tuple(dynamic_categories)
        if not settle_weight >= 0:
            raise ValueError(f"settle_weight must be >= 0, got {settle_weight}")
        self.settle_weight = float(settle_weight)
        self.frontier_every = int(frontier_every)
        self.split_glued = bool(split_glued)
        self.floor_z_m = float(floor_z_m)
        self.snapshot_image_width = int(snapshot_image_width)
        self.room_context = non_negative("room_context", room_context)
        self.config: dict[str, Any] = {
            "voxel_size_m": self.voxel_size_m,
            "max_range_m": self.max_range_m,
            "depth_stride": self.depth_stride,
            "object_stride": self.object_stride,
            "dynamic": self.dynamic_enabled,
            "dynamic_categories": list(self.dynamic_categories),
            "transient_half_life_s": float(transient_half_life_s),
            "settle_weight": float(settle_weight),
            "place_spacing_m": float(place_spacing_m),
            "frontier_every": self.frontier_every,
            "split_glued": self.split_glued,
            "floor_z_m": self.floor_z_m,
            "image_encoder": _encoder_name(image_encoder),
            "text_encoder": _encoder_name(text_encoder),
            "timeline": bool(timeline),
            "snapshot_image_width": self.snapshot_image_width,
            "octree_kwargs": dict(octree_kwargs or {}),
            "detector": detector
            if isinstance(detector, str) or detector is None
            else getattr(detector, "name", "custom"),
            "detector_kwargs": dict(detector_kwargs or {}),
            "min_range_m": float(min_range_m),
            "max_time_gap_s": None if max_time_gap_s is None else float(max_time_gap_s),
            "discretize": self.discretize,
            "room_context": self.room_context,
        }
        if not 0.0 <= self.config["min_range_m"] < self.max_range_m:
            raise ValueError(f"min_range_m must be in [0, max_range_m), got {min_range_m}")
        if max_time_gap_s is not None and not max_time_gap_s > 0:
            raise ValueError(f"max_time_gap_s must be positive or None, got {max_time_gap_s}")
        self.min_range_m = self.config["min_range_m"]
        self.max_time_gap_s = self.config["max_time_gap_s"]
        self._detector_spec = detector
        self._detector_kwargs = dict(detector_kwargs or {})
        self._detector: Any = None if isinstance(detector, str) or detector is None else detector

        self.octree = OccupancyOctree(self.voxel_size_m, **(octree_kwargs or {}))
        self.objects = ObjectMap(voxel_size_m=self.voxel_size_m)
        self._rooms: tuple[tuple, Any] | None = None  # (stamp, RoomMap) of rooms()
        self.snapshots = SnapshotMemory()
        self.places = PlaceGraph(spacing_m=place_spacing_m, floor_z_m=self.floor_z_m)
        self.transient = TransientLayer(self.voxel_size_m, half_life_s=transient_half_life_s)
        self.tracker = ObjectTracker(max_range_m=min(self.max_range_m, 4.0))
        self.motion = MotionTracker()  # blobs of the dynamic split followed in time (not saved)
        self.frontiers: list[Any] = []
        self._band = BandGrid(self.voxel_size_m, floor_z_m=self.floor_z_m)  # frontiers' floor grid, kept per scan
        self.trajectory: list[tuple[int, float, np.ndarray]] = []  # (frame index, t, 4x4)
        self.frames_seen = 0
        self.frames_mapped = 0
        self.last_timestamp_s: float | None = None
        self.first_timestamp_s: float | None = None
        self._lock = RWLock()
        self._warned: set[str] = set()
        self._label_vec: dict[str, np.ndarray] = {}
        self._budget = MemoryBudget(**budget) if isinstance(budget, dict) else budget
        self.last_eviction: dict[str, int] = {}

        self._image_encoder = self._build_encoder(image_encoder, "image")
        self._text_encoder = self._build_encoder(text_encoder, "text")
        self.timeline = None
        if timeline:
            from engram.memory.episodic import EpisodicMemory

            self.timeline = EpisodicMemory(text_encoder=self._text_encoder)

    # construction ------------------------------------------------------------
    @staticmethod
    def _build_encoder(spec: Any, kind: str) -> Any:
        if isinstance(spec, dict):
            # a perception config node: {_target_: ..., name: efficientnet_lite0, **kwargs}
            kwargs = {k: v for k, v in spec.items() if not k.startswith("_")}
            name = kwargs.pop("name")
        elif isinstance(spec, str):
            name, kwargs = spec, {}
        else:
            return spec
        from engram.perception import encoders

        build = encoders.build_image_encoder if kind == "image" else encoders.build_text_encoder
        return build(name, **kwargs)

    @property
    def detector(self) -> Any:
        """The detector objects come from (built on first use); None when objects are off."""
        if self._detector is None and isinstance(self._detector_spec, str):
            from engram.perception.detectors import build_detector

            self._detector = build_detector(self._detector_spec, **self._detector_kwargs)
        return self._detector

    @property
    def _labels_are_evidence(self) -> bool:
        """Whether the detector's names are evidence for the dynamic layer (see `Detector`)."""
        return bool(getattr(self.detector, "labels_are_evidence", True))

    @property
    def detector_name(self) -> str | None:
        return self.config["detector"]

    def _perceive(
        self, frame: Frame
    ) -> tuple[np.ndarray | None, dict[int, str], dict[int, float] | None, dict | None, dict | None]:
        """Instances for this frame from the chosen detector, as an instance image.

        Returns:
            ("H W" int32 ids or None, {id: label}, {id: score} or None,
            {id: embedding} or None, {id: label distribution} or None).
        """
        det = self.detector
        if det is None:
            return None, {}, None, None, None
        if getattr(det, "name", "") == "oracle":
            # the simulator's masks, as they come (the baseline every table labels "oracle")
            return frame.instances, dict(frame.labels or {}), None, None, None
        if not frame.has_geometry and getattr(det, "needs_depth", False):
            return None, {}, None, None, None
        from engram.perception.detectors import run_detector
        from engram.perception.segmentation import instances_from_masks

        masks = run_detector(det, frame)
        if len(masks) == 0:
            return None, {}, None, None, None
        ids, labels, scores = instances_from_masks(masks)
        emb = None if masks.embeddings is None else {i + 1: masks.embeddings[i] for i in range(len(masks))}
        dist = None if masks.label_scores is None else {i + 1: masks.label_scores[i] for i in range(len(masks))}
        return ids, labels, scores, emb, dist

    @classmethod
    def from_config(cls, cfg: Any) -> SceneMemory:
        """From a mapping or an OmegaConf node (``_target_`` is ignored)."""
        if hasattr(cfg, "items") and not isinstance(cfg, dict):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True)
        kwargs = {k: v for k, v in dict(cfg).items() if not k.startswith("_")}
        det = kwargs.get("detector")
        if isinstance(det, dict):
            # a perception/detector config node: {_target_: ..., name: rgbd, **kwargs}
            det = {k: v for k, v in det.items() if not k.startswith("_")}
            kwargs["detector"] = det.pop("name")
            kwargs["detector_kwargs"] = {**det, **dict(kwargs.get("detector_kwargs") or {})}
        return cls(**kwargs)

    # helpers -------------------------------------------------------------------
    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)

    @property
    def image_encoder(self) -> Any:
        return self._image_encoder

    @property
    def text_encoder(self) -> Any:
        return self._text_encoder

    # writing ---------------------------------------------------------------------
    def integrate(self, frame: Frame) -> IntegrationReport:
        """Run perception on one frame and update every layer.

        Every check runs before the first layer is written: the frame is checked
        again (`Frame.check`: it may have changed since it was built) and its time
        must be finite, plausible and not before the previous frame's nor more than
        ``max_time_gap_s`` after it.

        Raises:
            ValueError: the frame is not a `Frame`, a field is wrong, or its time is.
                The memory is unchanged.
        """
        if not isinstance(frame, Frame):
            raise ValueError(f"integrate expects an engram Frame, got {type(frame).__name__}")
        frame.check()
        if abs(frame.timestamp_s) > MAX_TIMESTAMP_S:
            raise ValueError(
                f"frame {frame.index}: timestamp_s={frame.timestamp_s} is not a plausible time in seconds "
                f"(|t| > {MAX_TIMESTAMP_S:g}; nanoseconds given as seconds?)"
            )
        d = frame.depth_m
        if d is not None and self.min_range_m > 0 and np.count_nonzero((d > 0) & (d < self.min_range_m)):
            frame = dataclasses.replace(frame, depth_m=np.where(d < self.min_range_m, np.float32(0), d))
        if frame.instances is not None and self.config["detector"] != "oracle":
            # a simulator's ground truth never feeds the memory unless the oracle is asked for;
            # a shallow copy without it (replace() would validate every depth pixel again)
            frame = copy.copy(frame)
            frame.instances, frame.labels = None, {}
        with self._lock.write():
            if self.last_timestamp_s is not None and frame.timestamp_s < self.last_timestamp_s:
                raise ValueError(
                    f"time went backwards: frame {frame.index} has timestamp_s={frame.timestamp_s} "
                    f"but the previous frame had timestamp_s={self.last_timestamp_s}"
                )
            gap = self.max_time_gap_s
            if (
                self.last_timestamp_s is not None
                and gap is not None
                and frame.timestamp_s - self.last_timestamp_s > gap
            ):
                raise ValueError(
                    f"time jumped: frame {frame.index} has timestamp_s={frame.timestamp_s}, "
                    f"{frame.timestamp_s - self.last_timestamp_s:g} s after the previous frame "
                    f"(max_time_gap_s={gap:g}; raise it for a longer pause)"
                )
            # the image encoder may fail: run it before any layer is written
            timeline_image = self._timeline_image(frame) if self.timeline is not None else (None, None)
            t0 = time.perf_counter()
            # Work that can fail runs before anything is written, so a failure leaves the memory as it was.
            if frame.has_geometry:
                report = self._integrate_geometry(frame)
            else:
                missing = [n for n in ("depth_m", "intrinsics", "world_from_camera") if getattr(frame, n) is None]
                reason = f"no {', '.join(missing)}: kept for time and image memory only"
                self._warn_once(f"nogeo-{','.join(missing)}", f"frame {frame.index}: {reason}")
                report = IntegrationReport(frame.index, frame.timestamp_s, mapped=False, reason=reason)
                if frame.world_from_camera is not None:
                    report.detected_object_ids = self._integrate_pose_only(frame)
            if self.timeline is not None:
                self._add_to_timeline(frame, report, *timeline_image)
            self.frames_seen += 1
            self.last_timestamp_s = frame.timestamp_s
            if self.first_timestamp_s is None:
                self.first_timestamp_s = frame.timestamp_s
            if self._budget is not None and self.frames_seen % self._budget.every_frames == 0:
                self.last_eviction = self._budget.enforce(self)
            report.ms = (time.perf_counter() - t0) * 1e3
            return report

    def integrate_all(self, frames: Iterable[Frame], progress: bool = False) -> list[IntegrationReport]:
        it = frames
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(frames, desc="integrate", unit="frame")
        return [self.integrate(f) for f in it]

    def _integrate_pose_only(self, frame: Frame) -> list[int]:
        """A posed frame without depth: the trajectory, and sightings of objects already mapped.

        Without depth nothing can be placed or cleared, and an object not seen
        is no evidence that it left. An object counts as seen again where its
        centroid projects onto an instance of its own category.
        """
        pose = frame.world_from_camera
        assert pose is not None  # integrate calls this only for a posed frame
        pos = pose.translation
        inst, labels, *_ = self._perceive(frame)
        seen = self._sightings(frame, inst, labels)
        t = frame.timestamp_s
        for oid in seen:
            o = self.objects.objects[oid]
            o.last_seen_s = max(float(o.last_seen_s), t)
            if not o.frames or o.frames[-1] < frame.index:
                o.frames.append(frame.index)
            st = self.tracker.status.get(oid)
            if st is not None:
                st.misses = 0
                if st.state == "missing":
                    st.state, st.missing_since_s = "present", None
        self.trajectory.append((frame.index, t, np.array(pose.matrix)))
        self.places.add_pose(np.array(pos), t, frame.index, seen)
        return seen

    def _sightings(self, frame: Frame, instances: np.ndarray | None, labels: dict[int, str]) -> list[int]:
        k, pose = frame.intrinsics, frame.world_from_camera
        if k is None or pose is None or instances is None or not labels or not self.objects.objects:
            return []
        ids = self.tracker.expected_visible(self.objects.objects, pose, k, None)
        if not ids:
            return []
        cents = np.stack([np.asarray(self.objects.objects[i].centroid, np.float64) for i in ids])
        uv, _, _ = project_points(pose.inverse().transform_points(cents), k)
        u = np.clip(np.round(uv[:, 0]).astype(np.int64), 0, k.width - 1)
        v = np.clip(np.round(uv[:, 1]).astype(np.int64), 0, k.height - 1)
        inst = instances[v, u]
        return sorted(i for i, iid in zip(ids, inst) if labels.get(int(iid), "") == self.objects.objects[i].label)

    def _integrate_geometry(self, frame: Frame) -> IntegrationReport:
        from engram.perception.segmentation import detections_from_instances

        depth, k, world_from_camera = frame.depth_m, frame.intrinsics, frame.world_from_camera
        assert depth is not None and k is not None and world_from_camera is not None  # frame.has_geometry
        origin = world_from_camera.translation
        t = frame.timestamp_s
        # 0. instances: the detector's (or, for the oracle, the simulator's); nothing written yet
        inst, inst_labels, inst_scores, inst_emb, inst_dist = self._perceive(frame)

        # 1. one pass from depth pixels to endpoint voxels (and the map's values there)
        scan = scan_frame(
            self.octree, depth, k, world_from_camera, stride=self.depth_stride,
            beyond_m=1.5 * self.voxel_size_m if self.dynamic_enabled else None, beyond_below=_FREE_LOG_ODDS,
        )  # fmt: skip

        # 2. static / dynamic split
        n_dyn = 0
        mover_px: np.ndarray | None = None  # pixels of tracked movers (people, robots) in this frame
        mover_objects: list[int] = []
        if self.dynamic_enabled and len(scan):
            # a contradiction needs free space at the endpoint and one voxel beyond it: a surface
            # at the edge of mapped structure (its voxel grazed free by passing rays) is not one;
            # only endpoints in confidently free space can contradict the map
            log_odds = scan.log_odds
            assert log_odds is not None  # read because dynamic is on
            cand = np.flatnonzero(log_odds <= _FREE_LOG_ODDS)
            split = split_dynamic(
                (frame.height, frame.width),
                instances=inst,
                labels=inst_labels,
                pixels_uv=scan.uv(cand),
                endpoint_log_odds=log_odds[cand],
                stride=self.depth_stride,
                # moving categories by name only from a detector whose names are evidence
                categories=self.dynamic_categories if self._labels_are_evidence else (),
                free_log_odds=_FREE_LOG_ODDS,
            )
            is_dyn, mover_px = self._track_motion(frame, scan, split, t)
            if self.motion.started_moving:
                # objects made of a mover's geometry, detected before it was seen to move
                since = min(tr.first_t_s for tr in self.motion.started_moving)
                born = [o for o in self.objects.objects.values() if o.first_seen_s >= since]
                mover_objects = [
                    o.id for o in born if len(o.points) and np.mean(self.transient.weight_at(o.points, t) >= 0.5) >= 0.5
                ]
            n_dyn = int(is_dyn.sum()) * self.depth_stride**2
        else:
            is_dyn = np.zeros(len(scan), bool)
        dyn_pts = scan.points_world(np.flatnonzero(is_dyn)) if is_dyn.any() else np.zeros((0, 3))

        # Rays toward moving bodies still show free space in front of them: they join the scan
        # shortened by two voxels, in one pass (OctoMap's per-scan rule: each cell once, occupied
        # wins), and their endpoint cells count as free unless a static ray ends there.
        short = np.zeros((0, 3))
        if len(dyn_pts):
            d = dyn_pts - origin
            dist = np.linalg.norm(d, axis=1, keepdims=True)
            short = origin + d * np.clip((dist - 2 * self.voxel_size_m) / np.maximum(dist, 1e-9), 0.0, 1.0)
        marks = None
        if self.discretize:
            hit_codes = self.octree.unique_codes(scan.codes, ~is_dyn)
            short_codes = self.octree.unique_codes(self.octree.point_codes(short))
            marks = self.octree.voxel_scan_marks(hit_codes, origin, self.max_range_m, free_end_codes=short_codes)
        else:
            static_pts = scan.points_world(np.flatnonzero(~is_dyn))
            free_codes, occ_codes = self.octree.scan_codes(
                np.concatenate([static_pts, short]), origin, self.max_range_m, n_free_ends=len(short)
            )

        # 3. object detections (sim masks or a detector); moving categories are not map objects
        ignore = tuple(STRUCTURE_LABELS) + tuple(self.dynamic_categories)
        dets = []
        if inst is not None and mover_px is not None:
            # what a tracked mover mostly covers is not an object (a walking person the detector names a chair)
            ids_all, n_all = np.unique(inst, return_counts=True)
            ids_mv, n_mv = np.unique(inst[mover_px], return_counts=True)
            drop = ids_mv[(ids_mv != 0) & (n_mv >= 0.5 * n_all[np.searchsorted(ids_all, ids_mv)])]
            if len(drop):
                inst = np.where(np.isin(inst, drop), 0, inst).astype(inst.dtype, copy=False)
        if inst is not None:
            dets = detections_from_instances(
                frame,
                stride=self.object_stride,
                max_depth_m=self.max_range_m,
                ignore_labels=ignore,
                instances=inst,
                labels=inst_labels,
                scores=inst_scores,
                embeddings=inst_emb,
                label_scores=inst_dist,
            )
        # ---- from here on the memory is written ----
        # (the static map last: the new objects' places are read in it as they were before this frame)
        if len(dyn_pts):
            self.transient.add(dyn_pts, t)
        if self.frames_mapped % 20 == 0:
            self.transient.prune(t)

        if mover_objects:
            for oid in mover_objects:
                self.objects.remove(oid)
                self.places.remove_object(oid)
                self.tracker.forget(oid)
            self.snapshots.remove_objects(mover_objects)
        before_ids = set(self.objects.objects)
        # objects in view, in range and big enough to detect; a miss needs their place seen
        # empty (occlusion is judged per surface point there), not merely an undetected object
        in_view = self.tracker.expected_visible(self.objects.objects, world_from_camera, k, None)
        absent = self.tracker.seen_through(
            self.objects.objects,
            in_view,
            world_from_camera,
            k,
            depth,
            inst if self._labels_are_evidence else None,  # "taken by another thing" only from trusted names
            inst_labels,
            ignore_labels=tuple(STRUCTURE_LABELS) + tuple(self.dynamic_categories),
        )
        expected = [i for i in in_view if i in absent]
        floor_z = getattr(self.detector, "floor_z_m", None)
        if floor_z is not None:  # the floor the detector found, for the prior on objects' labels
            self.objects.floor_z_m = float(floor_z)
        matched = self.objects.update(dets, frame.index, t)
        detected = set(matched)
        # objects in plain view (not hidden behind what the depth shows) that went undetected
        # (an undetected object is as it was when ``in_view`` was judged: only the depth test is new)
        undetected = {i: self.objects.objects[i] for i in in_view if i not in detected}
        self.objects.note_missed(self.tracker.expected_visible(undetected, world_from_camera, k, frame.depth_m))
        new_ids = detected - before_ids
        new_known = self._appeared(dets, matched, new_ids)
        if marks is not None:
            self._band.apply_marks(self.octree, marks)
        else:
            self._band.apply_scan(self.octree, free_codes, occ_codes)
        merges = self.tracker.observe(t, self.objects.objects, detected, new_ids, expected, new_known)
        for old, new in merges:
            self._merge_moved(old, new)
            detected.discard(new)
            detected.add(old)

        visible = sorted(detected)
        self.snapshots.add_frame(
            frame.index, t, world_from_camera, visible, rgb=self._small_rgb(frame.rgb), score=float(len(visible))
        )
        self.places.add_pose(np.array(origin), t, frame.index, visible)
        self.trajectory.append((frame.index, t, np.array(world_from_camera.matrix)))
        self.frames_mapped += 1
        # the two halves of the periodic work run half a period apart: no frame pays for both
        if self.frames_mapped % self.frontier_every == 0:
            self._periodic_objects()
        if self.frames_mapped % self.frontier_every == self.frontier_every // 2:
            self._periodic_space()
        return IntegrationReport(
            frame.index,
            t,
            mapped=True,
            n_points=len(scan),
            n_dynamic_px=n_dyn,
            detected_object_ids=visible,
            new_object_ids=sorted(new_ids - {n for _, n in merges}),
        )

    def _appeared(self, dets: list[Any], matched: list[int], new_ids: set[int]) -> set[int]:
        """The new objects whose place the static map saw empty before this frame (read before the
        frame's scan is applied): they appeared, rather than being seen for the first time."""
        from engram.memory.octree import FREE

        rows = [i for i, oid in enumerate(matched) if oid in new_ids]
        if not rows:
            return set()
        det_pts = np.concatenate([np.asarray(dets[i].points_world, np.float64) for i in rows])
        owner = np.repeat(np.arange(len(rows)), [len(dets[i].points_world) for i in rows])
        free_share = np.bincount(owner, weights=self.octree.state(det_pts) == FREE, minlength=len(rows)) / np.maximum(
            np.bincount(owner, minlength=len(rows)), 1
        )
        return {matched[i] for i, seen_free in zip(rows, free_share >= 0.5) if seen_free}

    def _track_motion(self, frame: Frame, scan: Any, split: Any, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Which scan points are dynamic, and the pixels of tracked movers (None without any).

        The blobs of the split are tracked in 3D (`MotionTracker`): one that travels is a
        mover, with no label needed; one that stays put long enough (and is not a moving
        category) is a changed static scene and settles into the static map once its voxels
        are seen often enough. A blob not settled yet contradicts the map only where the map
        knew the space free; the rest of the body (space not mapped yet, or mapped from it a
        moment ago) is the same depth-continuous surface, and joins it above the floor.
        """
        is_dyn = split.dynamic_pixels.reshape(-1)[scan.pixels]
        if not is_dyn.any():
            self.motion.observe(np.zeros(0, np.int64), np.zeros((0, 3)), t)  # no blob this frame: none started moving
            return is_dyn, None
        _, blobs = blob_labels(split.dynamic_pixels)
        flat_blobs = blobs.reshape(-1)
        dyn_idx = np.flatnonzero(is_dyn)
        dyn_xyz = scan.points_world(dyn_idx)  # metric points only where they are read
        k = frame.intrinsics
        assert k is not None  # integrate has checked the frame's geometry
        widths = blob_widths_m(blobs, int(blobs.max()), scan.depth_m, k.fx)
        ids, moving, settled_blob = self.motion.observe(flat_blobs[scan.pixels[dyn_idx]], dyn_xyz, t, widths)
        mover_px = np.isin(blobs, ids[moving]) if moving.any() else None
        open_ids = ids[~settled_blob]
        if split.geometric_pixels is not None and len(open_ids):
            seed = np.isin(blobs, open_ids) & split.geometric_pixels
            if seed.any():
                z = scan.heights_world()
                ok = (z >= self.floor_z_m + self.voxel_size_m) & ~(scan.log_odds >= _GROW_BELOW_LOG_ODDS)
                allowed_flat = np.zeros(frame.height * frame.width, bool)
                allowed_flat[scan.pixels[ok]] = True
                allowed = allowed_flat.reshape(frame.height, frame.width)
                # only over a surface the blob contradicts the map over a fair share of: not a
                # table whose rim a few pixels of mixed depth put in free space (a track of such
                # specks hopping between rims can even look like a mover at a low frame rate)
                grow = functools.partial(
                    grow_over_depth, allowed=allowed, stride=self.depth_stride, min_seed_share=_GROW_SEED_SHARE
                )
                grown = grow(seed, scan.depth_m)
                new = np.flatnonzero(grown.reshape(-1)[scan.pixels] & ~is_dyn)
                if len(new):
                    # no farther than a body's reach from the blob it grew from (a surface not mapped
                    # yet may go on for metres)
                    own = flat_blobs[scan.pixels[dyn_idx]]
                    cent = np.stack([dyn_xyz[own == i].mean(axis=0) for i in open_ids if (own == i).any()])
                    far = np.linalg.norm(scan.points_world(new)[:, None, :] - cent[None], axis=2).min(axis=1)
                    is_dyn[new[far <= _GROW_REACH_M]] = True
                if mover_px is not None:
                    mover_px |= grow(mover_px & split.geometric_pixels, scan.depth_m)
        if self.settle_weight > 0 and settled_blob.any():
            sel = np.flatnonzero(is_dyn)
            sel = sel[np.isin(flat_blobs[scan.pixels[sel]], ids[settled_blob])]
            sel = sel[~split.semantic_pixels.reshape(-1)[scan.pixels[sel]]]
            if len(sel):
                settled = self.transient.weight_at(scan.points_world(sel), t) >= self.settle_weight
                is_dyn[sel[settled]] = False
        return is_dyn, mover_px

    def mark_obstacle(self, points_world: np.ndarray, log_odds: float = 2.0) -> None:
        """Record obstacles felt rather than seen (a bumper, a failed move): the voxels
        containing ``points_world`` become occupied in the static map."""
        pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        if not np.isfinite(pts).all():
            raise ValueError("mark_obstacle: points must be finite")
        with self._lock.write():
            self.octree.update_points(pts, float(log_odds))

    def _merge_moved(self, old: int, new: int) -> None:
        """The object ``old`` was found again as ``new`` somewhere else: keep one identity, new place."""
        if old not in self.objects.objects or new not in self.objects.objects:
            return
        self.objects.relocate(old, new)
        self.snapshots.remap_objects({new: old})
        self.places.rename_object(new, old)

    def _periodic(self) -> None:
        self._periodic_objects()
        self._periodic_space()

    def _periodic_objects(self) -> None:
        """Merge duplicate objects, split glued ones; snapshots follow the objects."""
        # two things glued into one segment, told apart since (first: the rule that joins objects of
        # comparable size whatever their labels would fold the part back); every id stays, points move
        if self.split_glued:
            self.objects.split_glued()
        merged = self.objects.merge_duplicates()
        if merged:
            self.snapshots.remap_objects({gone: keep for keep, gone in merged})
            for keep, gone in merged:
                self.places.rename_object(gone, keep)
                self.tracker.aliases[gone] = keep
                self.tracker.forget(gone)
        # segmenter flicker: seen once or twice, then in view again and again without being
        # detected, or not detected again for a while (ObjectMap.confirm_frames)
        flicker = self.objects.prune_unconfirmed()
        if flicker:
            self.snapshots.remove_objects(flicker)
            for oid in flicker:
                self.places.remove_object(oid)
                self.tracker.forget(oid)
        self.snapshots.update({i: o.centroid for i, o in self.objects.objects.items()})

    def _periodic_space(self) -> None:
        """Frontiers and free-space places from the floor grid kept up to date per scan."""
        from engram.memory.frontiers import detect_frontiers

        grid = self._band.grid(self.octree)
        self.frontiers = detect_frontiers(self.octree, grid=grid)
        self.snapshots.update_frontiers(self.frontiers)
        p = self.places
        same = (p.floor_z_m, p.band_m, p.level) == (self._band.floor_z_m, self._band.band_m, self._band.level)
        self.places.add_free_space(self.octree, grid=grid if same else None)
        self.places.attach_snapshots(self.snapshots.snapshots)

    def _small_rgb(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if w <= self.snapshot_image_width:
            return rgb
        import cv2

        s = self.snapshot_image_width / w
        return cv2.resize(rgb, (self.snapshot_image_width, max(1, int(round(h * s)))), interpolation=cv2.INTER_AREA)

    def _timeline_image(self, frame: Frame) -> tuple[Any, Any]:
        """The timeline's image embedding and tags of a frame (None, None without an image encoder)."""
        if self._image_encoder is None:
            return None, None
        small = self._small_rgb(frame.rgb)
        return self._image_encoder.encode([small])[0], self._image_encoder.tags([small], k=3)[0]

    def _add_to_timeline(self, frame: Frame, report: IntegrationReport, emb: Any = None, tags: Any = None) -> None:
        labels = sorted(
            {self.objects.objects[i].label for i in report.detected_object_ids if i in self.objects.objects}
        )
        if not labels and frame.labels:
            labels = sorted(set(frame.labels.values()) - set(STRUCTURE_LABELS))
        assert self.timeline is not None  # integrate calls this only with a timeline
        self.timeline.add_frame(frame, image_embedding=emb, tags=tags, labels=labels)

    def finalize(self) -> None:
        """Bring periodic layers up to date (frontiers, duplicate merging, snapshots).

        The memory stays open: more frames can be integrated afterwards (the
        timeline's open events stay searchable as they are).
        """
        with self._lock.write():
            if self.frames_mapped:
                self._periodic()
                self._update_room_context()

    def _update_room_context(self) -> None:
        """Rooms from the map and its objects, and each detector-named object's room context."""
        named = [o for o in self.objects.objects.values() if o.label_weights is not None]
        if not named:
            return
        for o in named:
            o.room_weights = None
        if self.room_context == 0:
            return
        from engram.memory.rooms import room_context

        objs = list(self.objects.objects.values())
        context = room_context(self.rooms(), objs, floor_z_m=self.floor_z_m, strength=self.room_context)
        for o in named:
            o.room_weights = context.get(o.id)

    def rooms(self) -> Any:
        """The mapped floor segmented into rooms, named by the objects in them
        (`engram.memory.rooms.segment_rooms`), worked out again when frames or objects were
        added since the last call."""
        from engram.memory.rooms import segment_rooms

        with self._lock.read():
            self.objects.refresh_labels()
            stamp = (self.frames_mapped, len(self.objects.objects), self.floor_z_m)
            if self._rooms is None or self._rooms[0] != stamp:
                rm = segment_rooms(self.octree, self.objects.objects.values(), floor_z_m=self.floor_z_m)
                self._rooms = (stamp, rm)
            return self._rooms[1]

    # reading -------------------------------------------------------------------
    def label_scores(self, text: str, labels: Sequence[str]) -> np.ndarray:
        """Similarity of a text query to category labels: exact words first (the query's own,
        then the vocabulary words it names: "television" names "tv", "sideboard" names
        "cabinet"), then the text encoder."""
        from engram.perception.detectors.vocabulary import expand_query, related_words

        queries = expand_query(text)
        out = np.zeros(len(labels), np.float64)
        named = set()
        for rank, q in enumerate(queries):
            weight = 1.0 if rank == 0 else 0.95  # the user's own word first
            words = set(q.replace(",", " ").split())
            for i, lab in enumerate(labels):
                ll = lab.lower()
                if ll == q or ll in words or ll.replace("_", " ") in q:
                    out[i] = max(out[i], weight)
                    named.add(ll)
                elif q in ll:
                    out[i] = max(out[i], 0.9 * weight)
            named |= {w for w in expand_query(q) if w != q}
        # a related word (a "desk" for a "table") ranks below every exact match
        near = set().union(*(related_words(w) for w in named | set(queries))) if queries else set()
        for i, lab in enumerate(labels):
            if out[i] == 0.0 and lab.lower() in near:
                out[i] = 0.7
        rest = [i for i in range(len(labels)) if out[i] == 0.0]
        if rest and self._text_encoder is not None:
            missing = [labels[i] for i in rest if labels[i] not in self._label_vec]
            if missing:
                vecs = self._text_encoder.encode(missing)
                self._label_vec.update(zip(missing, vecs))
            qv = self._text_encoder.encode([text])[0]
            sims = np.array([float(self._label_vec[labels[i]] @ qv) for i in rest])
            # a hashing encoder matches spelling, not meaning: below any related word
            scale = 0.5 if getattr(self._text_encoder, "name", "") == "hash" else 0.8
            out[rest] = scale * np.clip(sims, 0.0, 1.0)
        return out

    def query(
        self,
        text: str | None = None,
        image: np.ndarray | None = None,
        near: Sequence[float] | None = None,
        radius_m: float | None = None,
        since_s: float | None = None,
        until_s: float | None = None,
        at_s: float | None = None,
        k: int = 5,
        kinds: Sequence[str] = ("object", "snapshot", "place", "event"),
        min_score: float = 0.2,
    ) -> list[Hit]:
        """One retrieval over text, image, position and time across all layers.

        Args:
            text: what to look for ("red mug", "kitchen table").
            image: an RGB image to match against snapshots and timeline events (needs an image encoder).
            near: a world position; hits are ranked by closeness too.
            radius_m: with ``near``, drop hits farther than this.
            since_s, until_s: keep records seen within this time window.
            at_s: report positions as they were at this time (moved objects).
            k: at most this many hits.
            kinds: which layers to search.
            min_score: drop text/image matches below this.

        Returns:
            Hits sorted by score, best first; empty when nothing matches.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        near_v = None if near is None else np.asarray(near, dtype=np.float64).reshape(-1)
        if near_v is not None and near_v.shape not in ((2,), (3,)):
            raise ValueError(f"near must be (x, y) or (x, y, z), got shape {near_v.shape}")
        with self._lock.read():
            self.objects.refresh_labels()  # weights of objects that grew since the last periodic pass
            hits: list[Hit] = []
            img_vec = None
            if image is not None:
                if self._image_encoder is None:
                    raise ValueError("image queries need an image encoder: SceneMemory(image_encoder=...)")
                img_vec = self._image_encoder.encode([np.asarray(image)])[0]
            if "object" in kinds:
                hits += self._query_objects(text, img_vec, at_s)
            if "snapshot" in kinds:
                hits += self._query_snapshots(text, img_vec)
            if "place" in kinds and text is None and img_vec is None:
                hits += self._query_places()
            if "event" in kinds and self.timeline is not None and (text is not None or img_vec is not None):
                hits += self._query_events(text, img_vec, k)
            hits = [h for h in hits if self._in_window(h, since_s, until_s)]
            if text is not None or img_vec is not None:
                hits = [h for h in hits if h.score >= min_score]
            if near_v is not None:
                kept = []
                for h in hits:
                    if h.position is None:
                        continue
                    d = float(np.linalg.norm(h.position[: len(near_v)] - near_v))
                    if radius_m is not None and d > radius_m:
                        continue
                    h.evidence["distance_m"] = d
                    h.score = h.score / (1.0 + 0.25 * d) if (text or img_vec is not None) else 1.0 / (1.0 + d)
                    kept.append(h)
                hits = kept
            hits.sort(key=lambda h: -h.score)
            if text is not None or img_vec is not None:
                hits = _without_fragments(hits)
            return hits[:k]

    @staticmethod
    def _in_window(h: Hit, since_s: float | None, until_s: float | None) -> bool:
        if since_s is None and until_s is None:
            return True
        if h.time_span_s is None:
            return False
        first, last = h.time_span_s
        return (since_s is None or last >= since_s) and (until_s is None or first <= until_s)

    def _query_objects(self, text: str | None, img_vec: np.ndarray | None, at_s: float | None) -> list[Hit]:
        objs = list(self.objects.objects.values())
        if not objs:
            return []
        scores = np.ones(len(objs))
        shares = np.ones(len(objs))  # the share of its label distribution that the matched word holds
        if text is not None:
            # every label an object was given counts, weighted by its share of the votes (weighed by
            # the geometric prior on the object, when it has one) relative to the winning label (a
            # detector's second guess still answers a query)
            votes = [
                dict(getattr(o, "label_posterior", None) or getattr(o, "label_votes", None) or {o.label: 1.0})
                for o in objs
            ]
            uniq = sorted({lab for v in votes for lab in v} | {o.label for o in objs})
            s = dict(zip(uniq, self.label_scores(text, uniq)))
            scores = np.zeros(len(objs))
            for j, (o, v) in enumerate(zip(objs, votes)):  # one step per object
                top = max(v.values()) if v else 1.0
                best, best_label = s[o.label], o.label
                for lab, w in v.items():
                    if w > 0 and lab != "object" and lab != o.label:
                        score = s[lab] * np.sqrt(w / top)
                        if score > best:
                            best, best_label = score, lab
                # among objects matched by the same word, the surer ones first: the word's share of
                # the object's label distribution breaks the tie. It adds at most 0.005, below the
                # gaps between exact words, synonyms and related words, and takes nothing away: a
                # score that reaches a threshold (a caller's min_score) still does
                total = sum(w for w in v.values() if w > 0)
                shares[j] = v.get(best_label, 0.0) / total if total > 0 else 1.0
                scores[j] = best + 0.005 * shares[j] if best > 0 else best
            # more detections, more confidence: a smaller tie-breaker
            scores = scores + 1e-4 * np.log1p([getattr(o, "n_detections", 1) for o in objs])
        if img_vec is not None:
            emb = [getattr(o, "embedding", None) for o in objs]
            sims = np.array([float(e @ img_vec) if e is not None and len(e) == len(img_vec) else 0.0 for e in emb])
            scores = scores * np.clip(sims, 0.0, 1.0) if text is not None else sims
        out = []
        for o, sc, share in zip(objs, scores, shares):
            pos = np.asarray(o.centroid, np.float64)
            st = self.tracker.status.get(o.id)
            if at_s is not None:
                p = self.tracker.where_is(o.id, at_s)
                if p is None and o.first_seen_s > at_s:
                    continue  # not seen yet at that time
                if p is not None:
                    pos = p
            out.append(
                Hit(
                    kind="object",
                    id=int(o.id),
                    score=float(sc),
                    label=o.label,
                    position=pos,
                    time_span_s=(float(o.first_seen_s), float(o.last_seen_s)),
                    frame_indices=list(getattr(o, "frames", []))[-10:],
                    evidence={
                        "box_min": np.asarray(o.box_min).tolist(),
                        "box_max": np.asarray(o.box_max).tolist(),
                        "state": st.state if st else "present",
                        "n_detections": int(getattr(o, "n_detections", 1)),
                        "label_share": float(share),
                        "snapshot": getattr(self.snapshots.snapshot_of(o.id), "frame_index", None),
                    },
                )
            )
        return out

    def _query_snapshots(self, text: str | None, img_vec: np.ndarray | None) -> list[Hit]:
        out = []
        objs = self.objects.objects
        for snap in self.snapshots.snapshots:
            ids = [i for i in snap.object_ids if i in objs]
            labels = [objs[i].label for i in ids]
            if text is not None:
                if not labels:
                    continue
                sc = float(np.max(self.label_scores(text, labels)))
            elif img_vec is not None:
                continue  # snapshots carry no embedding unless encoded below
            else:
                sc = 0.5
            pose = snap.world_from_camera if isinstance(snap.world_from_camera, Pose) else Pose(snap.world_from_camera)
            out.append(
                Hit(
                    kind="snapshot",
                    id=int(snap.frame_index),
                    score=sc * 0.95,
                    label=", ".join(sorted(set(labels))),
                    position=np.array(pose.translation),
                    time_span_s=(float(snap.timestamp_s), float(snap.timestamp_s)),
                    frame_indices=[int(snap.frame_index)],
                    evidence={"object_ids": ids},
                )
            )
        return out

    def _query_places(self) -> list[Hit]:
        out = []
        for pid, data in self.places.graph.nodes(data=True):
            times = data.get("times") or [data.get("timestamp_s", 0.0)]
            out.append(
                Hit(
                    kind="place",
                    id=int(pid),
                    score=0.1,
                    label="place",
                    position=np.asarray(data["position"], np.float64),
                    time_span_s=(float(min(times)), float(max(times))),
                    frame_indices=list(data.get("frames", []))[-10:],
                    evidence={"object_ids": sorted(data.get("objects", []))},
                )
            )
        return out

    def _query_events(self, text: str | None, img_vec: np.ndarray | None, k: int) -> list[Hit]:
        assert self.timeline is not None  # query asks for events only with a timeline
        res = self.timeline.search(text=text, image=img_vec, k=k)
        out = []
        for r in res:
            node, sc = r.node, r.score
            span = (float(node.start_s), float(node.end_s))
            out.append(
                Hit(
                    kind="event",
                    id=int(node.node_id),
                    score=float(sc) * 0.9,
                    label=node.description,
                    position=None,
                    time_span_s=span,
                    frame_indices=[],
                    evidence={
                        "level": node.level,
                        "tags": [t for t, _ in node.tags],
                        "objects": [t for t, _ in node.labels],
                    },
                )
            )
        return out

    # dynamic queries ---------------------------------------------------------------
    def _resolve_object(self, obj: int | str) -> list[int]:
        if isinstance(obj, (int, np.integer)):
            oid = self.tracker.resolve(int(obj))
            return [oid] if oid in self.objects.objects else []
        hits = self.query(text=str(obj), kinds=("object",), k=50, min_score=0.75)
        if not hits:
            return []
        best = hits[0].score
        return [h.id for h in hits if h.score >= best - 1e-2]

    def where_is(self, obj: int | str, at_s: float | None = None) -> list[Hit]:
        """Where an object (id or text) is now, or was at ``at_s``."""
        with self._lock.read():  # the whole answer under one lock: a frame integrated half-way is never read
            out = []
            for oid in self._resolve_object(obj):
                o = self.objects.objects[oid]
                pos = self.tracker.where_is(oid, at_s)
                if pos is None:
                    if at_s is not None and o.first_seen_s > at_s:
                        continue
                    pos = np.asarray(o.centroid, np.float64)
                st = self.tracker.status.get(oid)
                out.append(
                    Hit(
                        kind="object",
                        id=oid,
                        score=1.0,
                        label=o.label,
                        position=pos,
                        time_span_s=(float(o.first_seen_s), float(o.last_seen_s)),
                        frame_indices=list(getattr(o, "frames", []))[-5:],
                        evidence={"state": st.state if st else "present"},
                    )
                )
            return out

    def last_seen(self, obj: int | str) -> list[tuple[int, float, np.ndarray]]:
        """(object id, time, position) of the last sighting of each matching object."""
        with self._lock.read():
            ids = self._resolve_object(obj)
            return [
                (oid, float(self.objects.objects[oid].last_seen_s), np.asarray(self.objects.objects[oid].centroid))
                for oid in ids
            ]

    def changes(self, since_s: float | None = None) -> list[ChangeEvent]:
        """Moved / appeared / disappeared events since ``since_s``."""
        with self._lock.read():
            return self.tracker.changes(since_s)

    def transient_points(self, t_s: float | None = None, min_weight: float = 0.5) -> np.ndarray:
        """Centres of transient (moving) voxels still remembered at ``t_s`` (default: now)."""
        with self._lock.read():
            t = self.last_timestamp_s if t_s is None else t_s
            return self.transient.centers(t if t is not None else 0.0, min_weight)

    # inspection ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock.read():
            return {
                "frames_seen": self.frames_seen,
                "frames_mapped": self.frames_mapped,
                "voxels": len(self.octree),
                "occupied_voxels": int(len(self.octree.occupied_centers())),
                "objects": len(self.objects.objects),
                "snapshots": len(self.snapshots.snapshots),
                "places": self.places.graph.number_of_nodes(),
                "frontiers": len(self.frontiers),
                "transient_voxels": len(self.transient),
                "changes": len(self.tracker.events),
                "timeline_nodes": 0 if self.timeline is None else len(self.timeline),
            }

    def digest(self) -> str:
        """A content hash over every layer: equal digests mean equal memories."""
        with self._lock.read():
            h = hashlib.sha256()
            h.update(self.octree.digest().encode())
            h.update(self.objects.digest().encode())
            h.update(
                repr(sorted((s.frame_index, tuple(sorted(s.object_ids))) for s in self.snapshots.snapshots)).encode()
            )
            h.update(repr(sorted(self.places.graph.nodes)).encode())
            h.update(self.transient.to_arrays()["keys"].tobytes())
            h.update(repr([e.to_dict() for e in self.tracker.events]).encode())
            h.update(repr((self.frames_seen, self.frames_mapped, self.last_timestamp_s)).encode())
            h.update(repr([(i, t) for i, t, _ in self.trajectory]).encode())
            return h.hexdigest()

    # persistence ---------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Save every layer atomically (see `engram.memory.store`)."""
        with self._lock.read():
            save_scene(self, path)

    def export(self, out_dir: str) -> dict[str, Any]:
        """Write the static map, objects and trajectory as files 3D viewers open (`export_folder`).

        Files: ``map.ply`` (occupied voxel centres coloured by height), ``objects/``
        (one cloud per object and ``labels.json``), ``trajectory.ply`` /
        ``trajectory.txt`` (TUM) and ``top_down.png``. Returns what was written.
        """
        from engram.memory.export import ObjectCloud, export_folder, height_colors

        with self._lock.read():
            occ = self.octree.occupied_centers()
            objects = [
                ObjectCloud(
                    int(o.id),
                    o.label,
                    np.array(o.points),
                    np.array(o.colors),
                    {"first_seen_s": float(o.first_seen_s), "last_seen_s": float(o.last_seen_s)},
                )
                for o in self.objects.objects.values()
            ]
            traj = np.array([m for _, _, m in self.trajectory], np.float64).reshape(-1, 4, 4)
            times = np.array([t for _, t, _ in self.trajectory], np.float64)
        return export_folder(
            out_dir,
            points=occ,
            colors=height_colors(occ[:, 2]),
            objects=objects,
            trajectory=traj if len(traj) else None,
            timestamps_s=times if len(times) else None,
        )

    @classmethod
    def load(cls, path: str) -> SceneMemory:
        return load_scene(path, cls)
