"""The object map: 3D object instances fused across frames.

Each frame's detections (`engram.perception.segmentation.Detection`) are
associated with the objects already in the map, as ConceptGraphs and 3D-Mem
do: by 3D overlap (the share of the detection's voxels that touch an object's
voxels) plus label and, when both carry one, embedding similarity. A matched
detection is fused into its object (points voxel-downsampled, label votes,
running mean embedding, times, frames); an unmatched one starts a new object.
Stray points are dropped by voxel-connectivity clustering, and
`merge_duplicates` joins objects that turned out to be one.

Association never uses the simulator's instance ids (a real detector has
none); they are only counted in ``MapObject.meta["source_ids"]`` for scoring.
Overlap is computed for all objects at once against one sorted index of
packed voxel keys, so a frame costs a few searchsorted calls per detection.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numba import njit

from engram.perception.detectors.priors import measure_object, object_label_weights, principal_coordinates
from engram.perception.detectors.vocabulary import UNKNOWN_LABEL as UNKNOWN
from engram.perception.detectors.vocabulary import related_words
from engram.perception.segmentation import (
    _KEY_BITS,
    _KEY_MASK,
    _KEY_OFFSET,
    Detection,
    largest_clusters_mask,
    neighbour_offsets,
    packed_voxel_keys,
)

__all__ = ["MapObject", "ObjectMap"]

_MAX_HISTORY = 256
_WEIGH_GRID_M = 0.05  # an object's label weights are worked out again when its box or the floor moves this much
_UNKNOWN_WEIGHT = 0.5  # with label weights, the weight of the votes for naming nothing
# a vote the shape rules out passes only to related words whose shape fits about as well as the best
# (a permissive prior, such as a towel's or a box's, fits much of what a ruled-out word does not)
_SHIFT_MIN_FIT = 0.8


@dataclass
class MapObject:
    """One object of the map.

    Attributes:
        id: stable id in its `ObjectMap`.
        points: "N 3" float32 world points, one per ``voxel_size_m`` voxel.
        colors: "N 3" uint8 RGB of those points.
        label_votes: label -> summed detection scores.
        n_detections: detections fused into this object.
        first_seen_s, last_seen_s: time of the first and last detection.
        frames: indices of the frames it was detected in (ascending).
        position_history: (timestamp_s, centroid) each time the centroid
            moved by more than a voxel, oldest first (bounded).
        embedding_sum: sum of the detections' embeddings (None if none had one).
        embedding_count: how many embeddings were summed.
        n_missed: frames that had it in view and did not detect it.
        last_update: the map's frame count (`ObjectMap.frames_given`) when it was last detected.
        meta: scoring details, e.g. ``source_ids`` {source instance id: count}.
        label_weights: how well the object's fused points fit each word of the geometric prior
            (`engram.perception.detectors.priors`: size, height above the floor, level top,
            solid front or legs, measured over every view at once), relative to the best
            fitting word; the label is the votes weighed by them. None when its detections
            carried no label distribution (simulator masks): the votes alone name it.
        room_weights: how typical each word is of the room the object stands in, judged from the
            other objects there (`engram.memory.rooms.room_context`, set by `SceneMemory.finalize`):
            the label multiplies them in, so a bed the classifier took for a table in a room the
            rest of the furniture calls a bedroom is named "bed". None: no room context.
    """

    id: int
    points: np.ndarray
    colors: np.ndarray
    label_votes: dict[str, float] = field(default_factory=dict)
    n_detections: int = 0
    first_seen_s: float = 0.0
    last_seen_s: float = 0.0
    frames: list[int] = field(default_factory=list)
    position_history: list[tuple[float, np.ndarray]] = field(default_factory=list)
    embedding_sum: np.ndarray | None = None
    embedding_count: int = 0
    n_missed: int = 0
    last_update: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    label_weights: dict[str, float] | None = None
    room_weights: dict[str, float] | None = None
    # derived, refreshed by ObjectMap after every change
    box_min: np.ndarray = field(default_factory=lambda: np.zeros(3))
    box_max: np.ndarray = field(default_factory=lambda: np.zeros(3))
    centroid: np.ndarray = field(default_factory=lambda: np.zeros(3))
    match_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    # the normalised embedding of (embedding_sum, embedding_count), computed when asked for
    _embedding: tuple[Any, int, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """Best label: highest summed score, weighed by ``label_weights`` when there are any
        (ties broken alphabetically)."""
        post = self.label_posterior
        if not post:
            return ""
        return min(post.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    @property
    def vote_label(self) -> str:
        """The label the votes alone give (highest summed score, ties alphabetically): what
        association and merging compare, so that the geometric weights name an object without
        deciding what joins it."""
        if not self.label_votes:
            return ""
        return min(self.label_votes.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    @property
    def label_confidence(self) -> float:
        """Share of the (weighed) votes that the best label holds."""
        post = self.label_posterior
        total = sum(post.values())
        return max(post.values()) / total if total > 0 else 0.0

    @property
    def label_posterior(self) -> dict[str, float]:
        """The votes weighed by how well the fused object fits each word (``label_weights``;
        a word the prior does not know keeps its votes, and the unknown "object", a view's
        weak vote for naming nothing, counts half against words the object fits at best)
        and by how typical each word is of its room (``room_weights``, a word the room says
        nothing about keeps its weight): label -> weight, not normalised."""
        post = self.own_posterior
        r = self.room_weights
        if not r:
            return post
        return {lab: v * r.get(lab, 1.0) for lab, v in post.items()}

    @property
    def own_posterior(self) -> dict[str, float]:
        """`label_posterior` without the room's context: what the object's own views and
        geometry say (what rooms are named from, so that a room's name never rests on what
        the room made of its objects). The share of a vote that the geometry rules out goes
        to the words it is confused with that the geometry fits well (`_shift_ruled_out`)."""
        w = self.label_weights
        if not w:
            return self.label_votes
        votes = _shift_ruled_out(self.label_votes, w)
        return {lab: v * (_UNKNOWN_WEIGHT if lab == UNKNOWN else w.get(lab, 1.0)) for lab, v in votes.items()}

    @property
    def embedding(self) -> np.ndarray | None:
        """Mean embedding, L2-normalised (None if no detection had one)."""
        s, c = self.embedding_sum, self.embedding_count
        if s is None or c == 0:
            return None
        got = self._embedding
        if got is not None and got[0] is s and got[1] == c:  # the sum is replaced, never changed in place
            return got[2]
        e = s / c
        n = float(np.linalg.norm(e))
        out = (e / n).astype(np.float32) if n > 0 else e.astype(np.float32)
        out.flags.writeable = False
        self._embedding = (s, c, out)
        return out

    @property
    def extent(self) -> np.ndarray:
        """Box size along x, y, z in metres."""
        return self.box_max - self.box_min

    def _refresh(
        self, match_voxel_m: float, added_keys: np.ndarray | None = None, grown_from: int | None = None
    ) -> None:
        """Recompute box, centroid and match keys; with ``added_keys`` the
        points only grew, so the keys are a union (no pass over all points),
        and with ``grown_from`` too (the first new point), so is the box."""
        p = self.points
        if added_keys is not None and grown_from is not None and 0 < grown_from:
            new = p[grown_from:]
            if len(new):
                self.box_min = np.minimum(self.box_min, new.min(axis=0).astype(np.float64))
                self.box_max = np.maximum(self.box_max, new.max(axis=0).astype(np.float64))
                self.centroid = (self.centroid * grown_from + new.sum(axis=0, dtype=np.float64)) / len(p)
        else:
            self.box_min = p.min(axis=0).astype(np.float64)
            self.box_max = p.max(axis=0).astype(np.float64)
            self.centroid = p.mean(axis=0, dtype=np.float64)
        if added_keys is not None:
            # a union of two sorted unique arrays
            self.match_keys = _sorted_union(
                np.ascontiguousarray(self.match_keys, np.int64), np.ascontiguousarray(added_keys, np.int64)
            )
        else:
            self.match_keys = _match_keys(p, match_voxel_m)


def _labels_agree(label_a: str, dist_a: dict[str, float] | None, label_b: str, dist_b: dict[str, float] | None) -> bool:
    """Do two label opinions name the same kind of thing?

    The same top label agrees; so does an unknown ("object") with anything, since a
    learned detector often cannot name what it segments; and two distributions that
    share at least a fifth of their mass (a chair seen as "chair" 0.4 / "table" 0.3
    and as "table" 0.5 / "chair" 0.3 is one thing seen twice).
    """
    a, b = label_a.lower(), label_b.lower()
    if a == b or a == UNKNOWN or b == UNKNOWN:
        return True
    if not dist_a or not dist_b:
        return False
    ta = sum(v for k, v in dist_a.items() if k != UNKNOWN) or 1.0
    tb = sum(v for k, v in dist_b.items() if k != UNKNOWN) or 1.0
    shared = sum(min(v / ta, dist_b.get(k, 0.0) / tb) for k, v in dist_a.items() if k != UNKNOWN)
    return shared >= 0.2


def _vote(votes: dict[str, float], det: Detection) -> dict[str, float]:
    """Add one detection's label evidence: its label distribution when it has one, else its label."""
    if det.label_scores:
        for lab, p in det.label_scores.items():
            if p > 0:
                votes[lab] = votes.get(lab, 0.0) + det.score * float(p)
    else:
        votes[det.label] = votes.get(det.label, 0.0) + det.score
    return votes


def _shift_ruled_out(votes: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """The votes, with the share of each that the object's shape rules out (1 - its weight) passed
    on to the words it is confused with (`vocabulary.RELATED`) that the shape fits well (weights of
    at least `_SHIFT_MIN_FIT`, relative to the best fit), in proportion to their weights: a
    classifier that calls open shelving a "cabinet" has seen a piece of furniture, and the shape
    says which."""
    out: dict[str, float] | None = None  # a copy only when some vote moves
    for lab, v in votes.items():
        w = weights.get(lab)
        if w is None or w >= 1.0:
            continue
        fits = [(b, x) for b in related_words(lab) if (x := weights.get(b, 0.0)) > w and x >= _SHIFT_MIN_FIT]
        if not fits:
            continue
        if out is None:
            out = dict(votes)
        total = sum(x for _, x in fits)
        moved = v * (1.0 - w)
        out[lab] -= moved
        for b, x in fits:
            out[b] = out.get(b, 0.0) + moved * x / total
    return votes if out is None else out


def _record_weights(oid: int, weights: Any, key: str = "label_weights") -> dict[str, float] | None:
    """A saved object's label or room weights: None, or label -> finite non-negative number."""
    if weights is None:
        return None
    try:
        out = {str(k): float(v) for k, v in dict(weights).items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"object record {oid}: bad {key}: {exc}") from exc
    if not all(np.isfinite(v) and v >= 0 for v in out.values()):
        raise ValueError(f"object record {oid}: {key} must be finite and >= 0")
    return out


def _mean_lab(objs: Sequence[MapObject]) -> np.ndarray:
    """ "K 3" mean colour of each object's points in CIELAB (L, a, b on OpenCV's 8-bit scale)."""
    return _lab_of([o.colors for o in objs])


def _lab_of(colour_sets: Sequence[np.ndarray]) -> np.ndarray:
    """ "K 3" mean colour of each "N 3" RGB array in CIELAB (L, a, b on OpenCV's 8-bit scale)."""
    import cv2

    rgb = np.stack([c.reshape(-1, 3).mean(axis=0) if len(c) else np.zeros(3) for c in colour_sets])
    return cv2.cvtColor(rgb.astype(np.uint8)[:, None, :], cv2.COLOR_RGB2LAB)[:, 0, :].astype(np.float64)


def _colour_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """CIELAB distance with lightness counted half (one material under different light); inf if unknown."""
    if a is None or b is None:
        return float("inf")
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d[0] *= 0.5
    return float(np.linalg.norm(d))


def _near_mask(keys: np.ndarray, other_sorted: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Which of ``keys`` (packed voxel keys) have one of ``other_sorted`` (sorted, unique) at one of ``offsets``."""
    if len(keys) == 0 or len(other_sorted) == 0:
        return np.zeros(len(keys), dtype=bool)
    nbr = keys[:, None] + offsets[None, :]
    pos = np.minimum(np.searchsorted(other_sorted, nbr), len(other_sorted) - 1)
    return (other_sorted[pos] == nbr).any(axis=1)


def _box_gap(lo_a: np.ndarray, hi_a: np.ndarray, lo_b: np.ndarray, hi_b: np.ndarray) -> float:
    """Distance between two axis-aligned boxes (0 when they overlap or touch)."""
    return float(np.linalg.norm(np.maximum(np.maximum(lo_b - hi_a, lo_a - hi_b), 0.0)))


_MIN_TOP_WIDTH_M = 0.3  # narrower things (a pot, a lamp) have no top that others stand on
_MIN_RAISED_POINTS = 10  # a segment wider than a thing on a top stands on it with at least these points above it


def _principal_footprint(xy: np.ndarray, max_points: int = 20000) -> tuple[float, float]:
    """(longest, shortest) extent of "N 2" points along their principal axes (a strided
    subset of at most ``max_points``)."""
    xy = np.asarray(xy, np.float64)[:: max(1, -(-len(xy) // max_points))]
    if len(xy) < 2:
        return 0.0, 0.0
    a, b = (float(np.ptp(v)) for v in principal_coordinates(xy))
    return max(a, b), min(a, b)


def _downsample(points: np.ndarray, colors: np.ndarray, voxel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """One point per voxel, the earliest one: points already in the map stay put."""
    pts, col, _, _ = _downsample_keys(points, colors, voxel_size_m)
    return pts, col


def _downsample_keys(points: np.ndarray, colors: np.ndarray, voxel_size_m: float) -> tuple[np.ndarray, ...]:
    """`_downsample`, and the voxel key of each kept point and those keys sorted."""
    keys = packed_voxel_keys(points, voxel_size_m)
    first, uniq = _fresh_points(np.zeros(0, np.int64), keys)  # each voxel's first point, in point order
    return points[first], colors[first], keys[first], uniq


def _match_keys(points: np.ndarray, match_voxel_m: float) -> np.ndarray:
    """Sorted distinct voxel keys of ``points`` on the match grid (their float64 values, floored)."""
    p = np.asarray(points)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    if p.dtype not in (np.float32, np.float64) or p.ndim != 2 or p.shape[1] != 3:
        return np.unique(packed_voxel_keys(np.asarray(points, np.float64), match_voxel_m))
    ok, keys = _unique_match_keys(np.ascontiguousarray(p), float(match_voxel_m))
    if not ok:
        raise ValueError("voxel keys exceed the packable range of +-2**20 voxels per axis")
    return keys


class ObjectMap:
    """3D objects fused from per-frame detections.

    Args:
        voxel_size_m: grid that object points are downsampled to.
        match_voxel_m: grid of the overlap test; a detection voxel counts as
            overlapping an object when an object voxel is within
            ``match_radius_voxels`` of it.
        match_radius_voxels: neighbourhood of the overlap test (tolerates
            pose and depth noise of about ``radius * match_voxel_m``).
        min_overlap: least share of a detection's voxels that must touch an
            object for the two to be associated.
        relabel_overlap: least overlap to associate a detection whose label
            differs from the object's majority label.
        relabel_object_share: ... and least share of the object's voxels that
            the detection must touch (approximate).
        min_embedding_similarity: when both carry embeddings and the labels
            differ, least cosine similarity to associate.
        merge_overlap: `merge_duplicates` joins two objects of the same label
            when this share of the smaller one's voxels touches the larger.
        merge_overlap_any_label: ... and of any labels above this share.
        denoise_voxel_m: grid of the stray-point clustering (None disables).
        denoise_every: re-cluster an object's points every this many fusions.
        min_detections: an object detected fewer times is unconfirmed: `prune_unconfirmed`
            removes it once it was in view ``max_missed`` times without being detected
            (a one-frame flicker of the segmenter), or, detected once, when ``confirm_frames``
            frames passed without detecting it again.
        max_missed, confirm_frames: see ``min_detections``.
        part_colour_distance: `merge_duplicates` folds an object whose box lies inside a
            larger object's box into it when their mean colours are this close (CIELAB,
            lightness counted half: one material under different light) or their labels are
            the same: the boards, panels and legs of one piece of furniture.
        adjacent_overlap, adjacent_size_share, adjacent_colour_distance: `merge_duplicates`
            also joins two objects whatever their labels when this share of the smaller one's
            voxels touches the larger, the smaller has at least this share of the larger's
            voxels (not a cup on a table) and their mean colours are this close.
        thin_part_m, thin_part_colour_distance: a part that is a vertical strip or board (its
            box at most ``thin_part_m`` across along x or y: a leg, a side panel seen edge on or
            face on) folds into the larger object whose box holds it when it touches that object
            along most of its voxels and their colours are this close: a leg in the shade of its
            table top differs more than two faces of one board do. Things lying on a surface
            (a book, a remote) are flat the other way and keep the stricter colour test.
        face_part_overlap: such a vertical panel also folds, whatever its colour, when it lies
            on a side face of the host's box (a headboard, the side of a bed or a cabinet: a
            thing standing on or in furniture lies inside its box, not on its faces) and this
            share of its voxels touches the host.
        near_gap_m, near_colour_distance: `merge_duplicates` joins two objects with the same
            (known) label whose boxes come this close and whose mean colours are this close,
            touching or not: a chair's seat and back, or two boards of a shelf, cut apart by the
            segmenter across a gap (two things of one kind side by side rarely share a colour so
            closely, and stand farther apart).
        split_min_frames: `split_glued` separates a part from the object it was fused into
            (two things glued into one segment) once the part was detected as an object of
            its own in this many frames that also detected the rest of the object.
        split_containment: ... when this share of the part's voxels lies on the object's own
            voxels (the object holds the part's surface: a thing resting on it does not) ...
        split_colour_distance: ... and their mean colours are farther apart than this and
            their labels disagree (otherwise `merge_duplicates` would join them again).
        split_min_share: ... and what remains of the object keeps at least this share of its points.
        max_object_size_m: (longest, shortest) horizontal side of the largest object the map
            keeps: association and `merge_duplicates` never join two things into one whose
            footprint, measured along its own principal axes, exceeds it. Household objects
            stay well inside the default (a three-seat sofa is up to 3 m long, a king bed about
            2.1 m wide; `engram.perception.detectors.priors`); what grows past it is a run of
            counters, shelves and the things on them glued together, not one object. None: no
            limit.
        rest_size_share, rest_tolerance_m, rest_rise_m: a thing at most ``rest_size_share`` of an
            object's width whose bottom lies at most ``rest_tolerance_m`` below the object's level
            top is on it, not a part of it: one rising ``rest_rise_m`` above the top (a mug on a
            table) is neither fused nor folded into it, and one lying flat (a magazine) only in the
            object's own colour, whatever their names and by every merging rule (`_on_top`).
        floor_z_m: the floor's height (world z) for the geometric prior on objects' labels
            (`MapObject.label_weights`); None: unknown, heights say nothing. A detector that
            finds the floor sets it as it goes.
    """

    def __init__(
        self,
        voxel_size_m: float = 0.025,
        *,
        match_voxel_m: float = 0.05,
        match_radius_voxels: int = 1,
        min_overlap: float = 0.15,
        relabel_overlap: float = 0.6,
        relabel_object_share: float = 0.25,
        min_embedding_similarity: float = 0.5,
        merge_overlap: float = 0.4,
        merge_overlap_any_label: float = 0.8,
        denoise_voxel_m: float | None = 0.05,
        denoise_every: int = 5,
        min_detections: int = 3,
        max_missed: int = 3,
        confirm_frames: int = 20,
        part_colour_distance: float = 12.0,
        adjacent_overlap: float = 0.1,
        adjacent_size_share: float = 0.1,
        adjacent_colour_distance: float = 10.0,
        thin_part_m: float = 0.04,
        thin_part_colour_distance: float = 20.0,
        near_gap_m: float = 0.2,
        near_colour_distance: float = 15.0,
        face_part_overlap: float = 0.2,
        split_min_frames: int = 3,
        split_containment: float = 0.7,
        split_colour_distance: float = 15.0,
        split_min_share: float = 0.1,
        max_object_size_m: tuple[float, float] | None = (3.3, 2.3),
        rest_size_share: float = 0.5,
        rest_tolerance_m: float = 0.03,
        rest_rise_m: float = 0.04,
        floor_z_m: float | None = None,
    ) -> None:
        for name, value in (("voxel_size_m", voxel_size_m), ("match_voxel_m", match_voxel_m)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if match_radius_voxels < 0:
            raise ValueError(f"match_radius_voxels must be >= 0, got {match_radius_voxels}")
        for name, value in (
            ("min_overlap", min_overlap),
            ("relabel_overlap", relabel_overlap),
            ("relabel_object_share", relabel_object_share),
            ("merge_overlap", merge_overlap),
            ("merge_overlap_any_label", merge_overlap_any_label),
            ("face_part_overlap", face_part_overlap),
            ("split_containment", split_containment),
            ("split_min_share", split_min_share),
            ("rest_size_share", rest_size_share),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if split_min_frames < 1:
            raise ValueError(f"split_min_frames must be >= 1, got {split_min_frames}")
        size_lim = None if max_object_size_m is None else tuple(float(v) for v in max_object_size_m)
        if size_lim is not None and (len(size_lim) != 2 or not 0 < size_lim[1] <= size_lim[0]):
            raise ValueError(
                f"max_object_size_m must be (longest, shortest), 0 < shortest <= longest; got {max_object_size_m!r}"
            )
        if denoise_every < 1:
            raise ValueError(f"denoise_every must be >= 1, got {denoise_every}")
        if min_detections < 1 or max_missed < 0:
            raise ValueError(f"min_detections must be >= 1 and max_missed >= 0, got {min_detections}, {max_missed}")
        for name, value in (
            ("part_colour_distance", part_colour_distance),
            ("thin_part_m", thin_part_m),
            ("thin_part_colour_distance", thin_part_colour_distance),
            ("near_gap_m", near_gap_m),
            ("near_colour_distance", near_colour_distance),
            ("split_colour_distance", split_colour_distance),
            ("rest_tolerance_m", rest_tolerance_m),
            ("rest_rise_m", rest_rise_m),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.voxel_size_m = float(voxel_size_m)
        self.match_voxel_m = float(match_voxel_m)
        self.match_radius_voxels = int(match_radius_voxels)
        self.min_overlap = float(min_overlap)
        self.relabel_overlap = float(relabel_overlap)
        self.relabel_object_share = float(relabel_object_share)
        self.min_embedding_similarity = float(min_embedding_similarity)
        self.merge_overlap = float(merge_overlap)
        self.merge_overlap_any_label = float(merge_overlap_any_label)
        self.denoise_voxel_m = denoise_voxel_m
        self.denoise_every = int(denoise_every)
        self.min_detections = int(min_detections)
        self.max_missed = int(max_missed)
        self.confirm_frames = int(confirm_frames)
        self.frames_given = 0  # calls of update (frames), for the age of unconfirmed objects
        self.part_colour_distance = float(part_colour_distance)
        self.adjacent_overlap = float(adjacent_overlap)
        self.adjacent_size_share = float(adjacent_size_share)
        self.adjacent_colour_distance = float(adjacent_colour_distance)
        self.thin_part_m = float(thin_part_m)
        self.thin_part_colour_distance = float(thin_part_colour_distance)
        self.near_gap_m = float(near_gap_m)
        self.near_colour_distance = float(near_colour_distance)
        self.face_part_overlap = float(face_part_overlap)
        self.split_min_frames = int(split_min_frames)
        self.split_containment = float(split_containment)
        self.split_colour_distance = float(split_colour_distance)
        self.split_min_share = float(split_min_share)
        self.max_object_size_m = None if size_lim is None else (size_lim[0], size_lim[1])
        self.rest_size_share = float(rest_size_share)
        self.rest_tolerance_m = float(rest_tolerance_m)
        self.rest_rise_m = float(rest_rise_m)
        self._surfaces: dict[int, tuple[tuple, float]] = {}  # host id -> (its points and box, its top's height)
        self.n_splits = 0  # parts separated by `split_glued` so far
        self.floor_z_m = None if floor_z_m is None else float(floor_z_m)
        self._objects: dict[int, MapObject] = {}
        self._next_id = 1
        # object id -> its box corners and the floor height when its label weights were last worked out
        self._weighed: dict[int, np.ndarray] = {}
        # objects whose label weights may be out of date: worked out by `refresh_labels`, which the
        # periodic merge, saving and queries call (the geometric prior costs about a millisecond per
        # object, too much to pay on every frame an object grows)
        self._weigh_pending: set[int] = set()
        # queries and saves refresh the weights under the scene's read lock, so several threads may
        # at once: they take turns
        self._weigh_lock = threading.Lock()
        self._offsets = neighbour_offsets(self.match_radius_voxels)
        self._index_keys = np.zeros(0, np.int64)
        self._index_ids = np.zeros(0, np.int64)
        self._index_dirty = False  # rebuild the whole index
        self._changed: set[int] = set()  # objects whose index entries are stale
        # objects changed since the last `merge_duplicates` (None: all of them, e.g. a new or loaded map)
        self._merge_pending: set[int] | None = None
        # object id -> (its points array, their dtype, each point's voxel key, those keys sorted): `_add_points`
        self._voxel_keys: dict[int, tuple[np.ndarray, Any, np.ndarray, np.ndarray]] = {}

    # access ------------------------------------------------------------
    @property
    def objects(self) -> dict[int, MapObject]:
        """Object id -> object (do not modify the objects in place)."""
        return self._objects

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, object_id: int) -> bool:
        return object_id in self._objects

    def get(self, object_id: int) -> MapObject:
        """The object with this id; ValueError naming the id if there is none."""
        try:
            return self._objects[object_id]
        except KeyError:
            raise ValueError(f"no object with id {object_id!r}") from None

    def by_label(self, label: str) -> list[MapObject]:
        """Objects whose majority label is ``label`` (case-insensitive), most-seen first."""
        want = label.strip().lower()
        found = [o for o in self._objects.values() if o.label.lower() == want]
        return sorted(found, key=lambda o: (-o.n_detections, o.id))

    def labels(self) -> list[str]:
        """Distinct majority labels in the map, sorted."""
        return sorted({o.label for o in self._objects.values()})

    def near(self, point: Sequence[float], radius_m: float) -> list[MapObject]:
        """Objects whose box comes within ``radius_m`` of ``point``, nearest box first."""
        p = np.asarray(point, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"point must be 3 finite numbers, got {point!r}")
        if not radius_m >= 0:
            raise ValueError(f"radius_m must be >= 0, got {radius_m}")
        if not self._objects:
            return []
        objs = list(self._objects.values())
        lo = np.stack([o.box_min for o in objs])
        hi = np.stack([o.box_max for o in objs])
        d = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=1)
        order = np.lexsort((np.linalg.norm(np.stack([o.centroid for o in objs]) - p, axis=1), d))
        return [objs[i] for i in order if d[i] <= radius_m]

    # update ------------------------------------------------------------
    def update(self, detections: Sequence[Detection], frame_index: int, timestamp_s: float) -> list[int]:
        """Fuse one frame's detections into the map.

        Each object takes at most one detection per frame; candidate pairs
        are taken greedily by score (overlap, then label and embedding
        agreement).

        Args:
            detections: detections of one frame.
            frame_index: index of that frame.
            timestamp_s: its time.

        Returns:
            The object id each detection was fused into or created as, in
            the order of ``detections`` (-1 for a detection without points).
        """
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
            raise ValueError(f"frame_index must be a non-negative integer, got {frame_index!r}")
        ts = float(timestamp_s)
        if not np.isfinite(ts):
            raise ValueError(f"timestamp_s must be finite, got {timestamp_s!r}")
        for i, det in enumerate(detections):
            if not isinstance(det, Detection):
                raise ValueError(f"detections[{i}] is a {type(det).__name__}, not a Detection")
        self.frames_given += 1
        if not detections:
            return []
        self._ensure_index()

        det_keys = [self._keys_of(d.points_world) for d in detections]
        candidates: list[tuple[float, int, int]] = []  # (-score, det index, object id)
        dets_i, obj_ids, counts = self._touching(det_keys)
        bounds: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # detection -> its points' box
        for i, oid, cnt in zip(dets_i.tolist(), obj_ids.tolist(), counts.tolist()):
            obj = self._objects[oid]
            det = detections[i]
            score = self._pair_score(det, obj, cnt / len(det_keys[i]), cnt / max(len(obj.match_keys), 1))
            if score is None:
                continue
            if self.max_object_size_m is not None:
                if i not in bounds:
                    bounds[i] = (det.points_world.min(axis=0), det.points_world.max(axis=0))
                if not self._joined_fits(obj.box_min, obj.box_max, *bounds[i], (obj.points, det.points_world)):
                    continue
            candidates.append((-score, i, oid))
        candidates.sort()
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        for _, i, oid in candidates:
            if i in assigned or oid in taken:
                continue
            assigned[i] = oid
            taken.add(oid)

        out: list[int] = []
        for i, det in enumerate(detections):
            if len(det.points_world) == 0:
                out.append(-1)
            elif i in assigned:
                self._fuse(self._objects[assigned[i]], det, int(frame_index), ts, det_keys[i])
                out.append(assigned[i])
            else:
                out.append(self._create(det, int(frame_index), ts))
        self._changed.update(o for o in out if o >= 0)
        self._weigh_pending.update(o for o in out if o >= 0)
        return out

    def refresh_labels(self) -> None:
        """Work out the label weights of the objects changed since the last call (see `_weigh_labels`).

        Safe to call from several reading threads at once (they take turns); not beside a writer.
        """
        with self._weigh_lock:
            pending = self._weigh_pending | self._changed
            if self._index_dirty:
                pending |= set(self._objects)
            self._weigh_pending = set()
            if pending:
                self._weigh_labels(pending)

    def _weigh_labels(self, object_ids: Iterable[int]) -> None:
        """Work out again the label weights of these objects (those named by label distributions)
        whose box or the floor moved by 5 cm or more since the last time: the geometric
        prior on the whole object, from its fused points (`priors.object_label_weights`)."""
        for oid in set(object_ids):  # one step per changed object
            obj = self._objects.get(oid)
            if obj is None:
                self._weighed.pop(oid, None)
                continue
            if obj.label_weights is None:
                continue
            key = self._weigh_key(obj)
            last = self._weighed.get(oid)
            if last is not None and obj.label_weights and np.all(np.abs(key - last) < _WEIGH_GRID_M):
                continue
            self._weighed[oid] = key
            obj.label_weights = object_label_weights(obj.points, self.floor_z_m)

    def _weigh_key(self, obj: MapObject) -> np.ndarray:
        """Box corners and floor height (a floor not known yet counts as far away)."""
        floor = -1e6 if self.floor_z_m is None else self.floor_z_m
        return np.concatenate([obj.box_min, obj.box_max, [floor]])

    def _pair_score(self, det: Detection, obj: MapObject, overlap: float, object_share: float) -> float | None:
        if overlap < self.min_overlap:
            return None
        vote_label = obj.vote_label
        exact = det.label.lower() == vote_label.lower() and det.label != UNKNOWN
        cos = None
        emb = obj.embedding
        if det.embedding is not None and emb is not None and det.embedding.shape == emb.shape:
            n = float(np.linalg.norm(det.embedding))
            cos = float(det.embedding @ emb) / n if n > 0 else 0.0
        agree = exact or _labels_agree(det.label, det.label_scores, vote_label, obj.label_votes)
        if exact and object_share < self.relabel_object_share:
            # named the same, a small thing on the object's level top is still no view of it when it
            # stands there, or lies there in a colour of its own (a magazine and a table both "box")
            if self._rests_on(
                det.points_world, obj, lambda: _colour_distance(_lab_of([det.colors])[0], _mean_lab([obj])[0])
            ):
                return None
        if not exact:
            # a small object on a large one (a cup on a table) touches it almost everywhere;
            # a view of the same object covers a fair share of it, or lies on it and looks like it
            looks_alike = cos is not None and cos >= self.min_embedding_similarity + 0.1
            if not (object_share >= self.relabel_object_share or (overlap >= 0.8 and looks_alike)):
                return None
            if not agree and overlap < self.relabel_overlap:
                return None
            if cos is not None and cos < self.min_embedding_similarity:
                return None
        return overlap + 0.5 * agree + (0.5 * max(cos, 0.0) if cos is not None else 0.0)

    def _joined_fits(
        self, lo_a: np.ndarray, hi_a: np.ndarray, lo_b: np.ndarray, hi_b: np.ndarray, points: tuple[np.ndarray, ...]
    ) -> bool:
        """Whether two things joined into one keep an object's footprint (``max_object_size_m``).

        The boxes decide when they fit; otherwise ``points`` (both things' points) are
        measured along their principal axes, since the axis-aligned box of a turned object
        is larger than the object.
        """
        lim = self.max_object_size_m
        if lim is None:
            return True
        short, long = np.sort(np.maximum(hi_a[:2], hi_b[:2]) - np.minimum(lo_a[:2], lo_b[:2]))
        if long <= lim[0] and short <= lim[1]:
            return True
        long, short = _principal_footprint(np.concatenate([p[:, :2] for p in points]))
        return long <= lim[0] and short <= lim[1]

    def _on_top(self, part: np.ndarray, host: MapObject) -> int:
        """Whether the thing with the "N 3" points ``part`` is on ``host``'s level top rather than a piece of it: 0 no,
        1 lying flat on it (a magazine, or a fragment of the top itself), 2 standing on it (a
        mug: it rises ``rest_rise_m`` above the top, which no leg, panel or board does).

        On top means small beside the host (at most ``rest_size_share`` of its width, the host
        at least 0.3 m wide: a sofa's arm or a chair's back spans the seat, a mug or a magazine
        does not), with its bottom on the host's top surface (the layer where most of the host's
        footprint ends, `priors.measure_object`; from ``rest_tolerance_m`` below it to twice that
        above), and not a vertical board or strip (``thin_part_m`` across). A part wider than
        that is a piece of the top, or a segment that glued a patch of the top to a thing standing
        there: it stands on the host (2) when what rises ``rest_rise_m`` above the top is small
        beside the host and a fifth of its points or more.
        """
        span = np.ptp(part[:, :2], axis=0)
        width = float(np.min(host.extent[:2]))
        if width < _MIN_TOP_WIDTH_M or float(span.min()) <= self.thin_part_m:
            return 0  # a vertical strip or board (a panel seen edge on, a shelf's side): no mug is that thin
        wide = float(span.max()) > self.rest_size_share * width
        stamp = (len(host.points), *host.box_min.tolist(), *host.box_max.tolist())
        got = self._surfaces.get(host.id)
        if got is not None and got[0] == stamp:
            top = got[1]
        else:
            # the floor at z = 0, so that the surface comes out as a world height
            top = float(measure_object(host.points, 0.0).surface[0])
            self._surfaces[host.id] = (stamp, top)
        if not np.isfinite(top):
            return 0
        bottom, high = np.percentile(part[:, 2], [5, 95])
        if not top - self.rest_tolerance_m <= bottom <= top + 2 * self.rest_tolerance_m:
            return 0  # below the top, or above it with a gap (the top of a sofa's arm over its seat)
        if not wide:
            return 2 if high >= top + self.rest_rise_m else 1
        # wider than a thing on the top: a piece of the top itself, or a segment that glued a patch
        # of the top to what stands there (a box and a game pad with the table around them), which
        # is judged by what rises above the top
        raised = part[part[:, 2] >= top + self.rest_rise_m, :2]
        if len(raised) < max(_MIN_RAISED_POINTS, 0.2 * len(part)):
            return 0
        return 2 if float(np.ptp(raised, axis=0).max()) <= self.rest_size_share * width else 0

    def _rests_on(self, part: np.ndarray, host: MapObject, colour_distance: Callable[[], float]) -> bool:
        """Whether the thing with the "N 3" points ``part`` is a thing of its own on ``host``'s level
        top (`_on_top`): it stands there, or lies there in a colour of its own, farther than
        ``part_colour_distance`` from the host's (a magazine and a table both "box"). The colours'
        distance is asked for only for a thing lying there."""
        on_top = self._on_top(part, host)
        return on_top == 2 or (on_top == 1 and colour_distance() > self.part_colour_distance)

    def _create(self, det: Detection, frame_index: int, timestamp_s: float) -> int:
        pts, col, per_point, keys = _downsample_keys(det.points_world, det.colors, self.voxel_size_m)
        oid = self._next_id
        self._next_id += 1
        obj = MapObject(
            id=oid,
            points=pts,
            colors=col,
            label_votes=_vote({}, det),
            n_detections=1,
            first_seen_s=timestamp_s,
            last_seen_s=timestamp_s,
            frames=[frame_index],
            embedding_sum=None if det.embedding is None else det.embedding.astype(np.float64),
            embedding_count=0 if det.embedding is None else 1,
            meta={"source_ids": {det.instance_id: 1}},
            last_update=self.frames_given,
            label_weights=None if det.label_scores is None else {},
        )
        obj._refresh(self.match_voxel_m)
        obj.position_history.append((timestamp_s, obj.centroid.copy()))
        self._objects[oid] = obj
        self._voxel_keys[oid] = (pts, pts.dtype, per_point, keys)
        return oid

    def _fuse(self, obj: MapObject, det: Detection, frame_index: int, timestamp_s: float, det_keys: np.ndarray) -> None:
        n_before = len(obj.points)
        grown_from = n_before if self._add_points(obj, det.points_world, det.colors) else None
        obj.n_detections += 1
        obj.last_update = self.frames_given
        added_keys: np.ndarray | None = det_keys
        if self.denoise_voxel_m is not None and obj.n_detections % self.denoise_every == 0:
            keep = largest_clusters_mask(obj.points, self.denoise_voxel_m)
            if not keep.all():
                self._keep_points(obj, keep)
                added_keys, grown_from = None, None
        _vote(obj.label_votes, det)
        obj.first_seen_s = min(obj.first_seen_s, timestamp_s)
        obj.last_seen_s = max(obj.last_seen_s, timestamp_s)
        if not obj.frames or obj.frames[-1] != frame_index:
            if obj.frames and frame_index < obj.frames[-1]:
                obj.frames = sorted(set(obj.frames) | {frame_index})
            else:
                obj.frames.append(frame_index)
        if det.embedding is not None:
            e = det.embedding.astype(np.float64)
            if obj.embedding_sum is None:
                obj.embedding_sum, obj.embedding_count = e, 1
            elif obj.embedding_sum.shape == e.shape:
                obj.embedding_sum = obj.embedding_sum + e
                obj.embedding_count += 1
        src = obj.meta.setdefault("source_ids", {})
        src[det.instance_id] = src.get(det.instance_id, 0) + 1
        obj._refresh(self.match_voxel_m, added_keys, grown_from)
        self._record_position(obj, timestamp_s)

    def _add_points(self, obj: MapObject, points: np.ndarray, colors: np.ndarray) -> bool:
        """``_downsample`` of the object's points followed by ``points``, reading the object's voxel
        keys from the last call instead of recomputing them: its points already hold one voxel
        each, so only the new points' voxels are looked up among them.

        Returns:
            True when the object's points were kept and the new ones appended after them.
        """
        dt = np.result_type(obj.points, points)
        cached = self._voxel_keys.get(obj.id)
        if cached is None or cached[0] is not obj.points or cached[1] != dt:
            per_point = packed_voxel_keys(obj.points.astype(dt), self.voxel_size_m)
            keys = np.unique(per_point)
            if len(keys) != len(obj.points):  # not one point per voxel (edited from outside): the general way
                pts = np.concatenate([obj.points, points])
                obj.points, obj.colors = _downsample(pts, np.concatenate([obj.colors, colors]), self.voxel_size_m)
                self._voxel_keys.pop(obj.id, None)
                return False
        else:
            per_point, keys = cached[2], cached[3]
        new_keys = packed_voxel_keys(points.astype(dt, copy=False), self.voxel_size_m)
        take, merged = _fresh_points(np.ascontiguousarray(keys, np.int64), new_keys)
        obj.points = np.concatenate([obj.points.astype(dt, copy=False), points.astype(dt, copy=False)[take]])
        obj.colors = np.concatenate([obj.colors, colors[take]])
        self._voxel_keys[obj.id] = (obj.points, dt, np.concatenate([per_point, new_keys[take]]), merged)
        return True

    def _keep_points(self, obj: MapObject, keep: np.ndarray) -> None:
        """Keep the points of ``obj`` under the mask ``keep`` (their voxel keys follow)."""
        cached = self._voxel_keys.pop(obj.id, None)
        valid = cached is not None and cached[0] is obj.points
        obj.points, obj.colors = obj.points[keep], obj.colors[keep]
        if cached is not None and valid:
            per_point = cached[2][keep]
            self._voxel_keys[obj.id] = (obj.points, cached[1], per_point, np.sort(per_point))

    def _record_position(self, obj: MapObject, timestamp_s: float) -> None:
        last = obj.position_history[-1][1] if obj.position_history else None
        if last is None or np.linalg.norm(obj.centroid - last) > self.match_voxel_m:
            obj.position_history.append((timestamp_s, obj.centroid.copy()))
            if len(obj.position_history) > _MAX_HISTORY:
                del obj.position_history[0]

    # the overlap index ---------------------------------------------------
    def _keys_of(self, points: np.ndarray) -> np.ndarray:
        return _match_keys(points, self.match_voxel_m)

    @staticmethod
    def _entries(objs: Iterable[MapObject]) -> tuple[np.ndarray, np.ndarray]:
        objs = list(objs)
        if not objs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys = np.concatenate([o.match_keys for o in objs])
        ids = np.concatenate([np.full(len(o.match_keys), o.id, np.int64) for o in objs])
        order = np.argsort(keys, kind="stable")
        return keys[order], ids[order]

    def _ensure_index(self) -> None:
        """Bring the sorted (key, object) index up to date.

        Per frame only the objects that changed are re-entered: their old
        entries are masked out and their new ones merged in by position, so
        the cost follows the changed objects, not the whole map.
        """
        self._weigh_pending.update(self._objects if self._index_dirty else self._changed)
        if self._index_dirty:
            self._index_keys, self._index_ids = self._entries(self._objects.values())
            self._index_dirty = False
            self._changed.clear()
            self._merge_pending = None  # what changed is not known: the next merge looks at everything
            return
        if not self._changed:
            return
        if self._merge_pending is not None:
            self._merge_pending |= self._changed
        for i in self._changed:
            if i not in self._objects:
                self._voxel_keys.pop(i, None)
        changed = np.fromiter(self._changed, dtype=np.int64, count=len(self._changed))
        new_keys, new_ids = self._entries(self._objects[i] for i in self._changed if i in self._objects)
        if len(self._index_ids) and min(int(self._index_ids.min()), int(changed.min())) >= 0:
            stale = np.zeros(max(int(self._index_ids.max()), int(changed.max())) + 1, dtype=bool)
            stale[changed] = True
            # one pass: the old entries of unchanged objects and the new entries, in key order
            # (a new entry goes before old entries of the same key)
            self._index_keys, self._index_ids = _merge_index(
                self._index_keys, self._index_ids, stale, new_keys.astype(np.int64), new_ids.astype(np.int64)
            )
        else:
            keep = ~np.isin(self._index_ids, changed)
            keys, ids = self._index_keys[keep], self._index_ids[keep]
            if len(new_keys):
                pos = np.searchsorted(keys, new_keys)
                keys = np.insert(keys, pos, new_keys)
                ids = np.insert(ids, pos, new_ids)
            self._index_keys, self._index_ids = keys, ids
        self._changed.clear()

    def _touching(
        self, key_sets: Sequence[np.ndarray], *, probe_all: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which objects each key set touches, and how many of its keys touch each.

        A key touches an object when one of the object's voxels is within the
        match radius. All sets are searched in one batch. Unless
        ``probe_all``, a key that falls exactly into some object's voxel is
        credited to the objects of that voxel only and its neighbourhood is
        not searched: re-observed surfaces (most keys) cost one lookup.

        Returns:
            (set index, object id, touching key count), one row per touching pair.
        """
        empty = np.zeros(0, np.int64)
        sizes = np.fromiter((len(k) for k in key_sets), dtype=np.int64, count=len(key_sets))
        if len(self._index_keys) == 0 or sizes.sum() == 0:
            return empty, empty, empty
        keys = np.concatenate(key_sets).astype(np.int64, copy=False)
        set_of_key = np.repeat(np.arange(len(key_sets), dtype=np.int64), sizes)
        m = int(self._index_ids.max()) + 1
        exact_first = not probe_all or len(self._offsets) == 1
        codes = _touch_codes(self._index_keys, self._index_ids, keys, set_of_key, self._offsets, exact_first, m)
        if len(codes) == 0:
            return empty, empty, empty
        set_obj, counts = _count_codes(codes, len(key_sets) * m)
        return set_obj // m, set_obj % m, counts

    @staticmethod
    def _boxes(objs: Iterable[MapObject]) -> tuple[np.ndarray, np.ndarray]:
        objs = list(objs)
        if not objs:
            return np.zeros((0, 3)), np.zeros((0, 3))
        return np.array([o.box_min for o in objs], np.float64), np.array([o.box_max for o in objs], np.float64)

    def _boxes_near(self, obj: MapObject, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Rows of the boxes ``lo``/``hi`` that come close enough to ``obj``'s box for a key of one to
        touch a key of the other (a point's key voxel lies within a voxel of the point; two more
        voxels of slack cover keys kept from points that downsampling dropped), or within
        ``near_gap_m`` of it."""
        gap = max((self.match_radius_voxels + 2) * self.match_voxel_m, self.near_gap_m)
        near = np.all((lo - gap <= obj.box_max) & (obj.box_min <= hi + gap), axis=1)
        return np.flatnonzero(near)

    def _n_touching(self, keys: np.ndarray, other_keys: np.ndarray) -> int:
        """How many of ``keys`` have one of ``other_keys`` (sorted, unique) within the match radius."""
        if len(keys) == 0 or len(other_keys) == 0:
            return 0
        nbr = keys[:, None] + self._offsets[None, :]
        pos = np.minimum(np.searchsorted(other_keys, nbr), len(other_keys) - 1)
        return int(np.count_nonzero((other_keys[pos] == nbr).any(axis=1)))

    def _merge_candidates(self, changed: set[int] | None, ids: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[int]:
        """Objects that may have a duplicate: ``changed`` (None: all) and the objects near them,
        smallest first (the order `merge_duplicates` visits them in)."""
        if changed is None:
            cand = set(self._objects)
        else:
            cand = {i for i in changed if i in self._objects}
            for i in list(cand):
                cand.update(ids[self._boxes_near(self._objects[i], lo, hi)].tolist())
        return sorted(cand, key=lambda i: (len(self._objects[i].match_keys), i))

    # maintenance ---------------------------------------------------------
    def remove(self, object_id: int) -> MapObject:
        """Remove and return an object; ValueError if there is none."""
        obj = self.get(object_id)
        del self._objects[object_id]
        self._changed.add(object_id)
        return obj

    def relocate(self, keep_id: int, source_id: int) -> MapObject:
        """``keep_id`` was found again as ``source_id`` somewhere else (it moved).

        The kept object takes the new geometry (points, colours, box) and adds
        the source's votes, detections, frames and history; the source is removed.
        The old place is no longer part of the object.
        """
        if keep_id == source_id:
            raise ValueError(f"cannot relocate object {keep_id} onto itself")
        keep, src = self.get(keep_id), self.get(source_id)
        keep.points, keep.colors = src.points, src.colors
        for k, v in src.label_votes.items():
            keep.label_votes[k] = keep.label_votes.get(k, 0.0) + v
        if keep.label_weights is not None or src.label_weights is not None:
            keep.label_weights = {}  # the box changed: weighed again with the index
        keep.n_detections += src.n_detections
        keep.last_update = max(keep.last_update, src.last_update)
        keep.last_seen_s = max(keep.last_seen_s, src.last_seen_s)
        keep.frames = sorted(set(keep.frames) | set(src.frames))
        keep.position_history = sorted(keep.position_history + src.position_history, key=lambda h: h[0])[-_MAX_HISTORY:]
        if src.embedding_sum is not None:
            if keep.embedding_sum is None or keep.embedding_sum.shape != src.embedding_sum.shape:
                keep.embedding_sum, keep.embedding_count = src.embedding_sum.copy(), src.embedding_count
            else:
                keep.embedding_sum = keep.embedding_sum + src.embedding_sum
                keep.embedding_count += src.embedding_count
        ids = keep.meta.setdefault("source_ids", {})
        for k, v in src.meta.get("source_ids", {}).items():
            ids[k] = ids.get(k, 0) + v
        keep._refresh(self.match_voxel_m)
        del self._objects[source_id]
        self._changed.update((keep_id, source_id))
        return keep

    def refresh(self, object_id: int) -> None:
        """Recompute an object's box, centroid and overlap keys after its points were edited in place."""
        obj = self.get(object_id)
        if len(obj.points) == 0:
            raise ValueError(f"object {object_id} has no points; remove it instead")
        obj._refresh(self.match_voxel_m)
        self._changed.add(object_id)

    def prune(self, *, min_detections: int = 2, seen_before_s: float | None = None) -> list[int]:
        """Remove objects detected fewer than ``min_detections`` times.

        Args:
            min_detections: keep objects with at least this many detections.
            seen_before_s: only prune objects last seen before this time
                (give the newest objects a chance to be seen again).

        Returns:
            The removed ids.
        """
        gone = [
            o.id
            for o in self._objects.values()
            if o.n_detections < min_detections and (seen_before_s is None or o.last_seen_s < seen_before_s)
        ]
        for oid in gone:
            del self._objects[oid]
        self._changed.update(gone)
        return gone

    def note_missed(self, object_ids: Iterable[int]) -> None:
        """These objects were in view in a frame that did not detect them."""
        for oid in object_ids:
            obj = self._objects.get(oid)
            if obj is not None:
                obj.n_missed += 1

    def is_confirmed(self, object_id: int) -> bool:
        """Detected at least ``min_detections`` times."""
        return self.get(object_id).n_detections >= self.min_detections

    def prune_unconfirmed(self, *, final: bool = False) -> list[int]:
        """Remove unconfirmed objects (fewer than ``min_detections`` detections): those in view
        at least ``max_missed`` times without being detected since, those detected once and not
        again in the ``confirm_frames`` frames given to `update` since (a glimpse never seen
        again), and with ``final`` all of them. What a segmenter shows once or twice and never again is its flicker more
        often than an object. Returns the removed ids.
        """
        gone = [
            o.id
            for o in self._objects.values()
            if o.n_detections < self.min_detections
            and (
                final
                or o.n_missed >= self.max_missed
                or (o.n_detections <= 1 and self.frames_given - o.last_update > self.confirm_frames)
            )
        ]
        for oid in gone:
            del self._objects[oid]
        self._changed.update(gone)
        return gone

    def merge_duplicates(self) -> list[tuple[int, int]]:
        """Join objects that are one: enough overlap (more with different labels).

        The object detected more often absorbs the other (points, votes,
        embeddings, frames, history); chains of merges resolve to the
        survivor.

        Only pairs with an object that changed since the last call are
        looked at (whether two objects merge depends on nothing else, and
        the last call left no pair to merge): the objects changed since, and
        those that touch them. A new or loaded map looks at every object.

        Returns:
            (kept id, removed id) pairs, the kept id being the final survivor.
        """
        merged: dict[int, int] = {}
        self._ensure_index()
        self.refresh_labels()
        todo = self._merge_pending
        self._merge_pending = set()
        colour: dict[int, np.ndarray] = {}  # mean CIELAB colour, worked out when a pair needs it

        def colour_of(i: int) -> np.ndarray:
            if i not in colour:
                colour[i] = _mean_lab([self._objects[i]])[0]
            return colour[i]

        def fits(a: MapObject, b: MapObject) -> bool:
            return self._joined_fits(a.box_min, a.box_max, b.box_min, b.box_max, (a.points, b.points))

        def rests_on(i: int, j: int) -> bool:
            return self._rests_on(
                self._objects[i].points, self._objects[j], lambda: _colour_distance(colour_of(i), colour_of(j))
            )

        while True:  # one pass per round of merges; rounds are few
            # keys and boxes as the round starts: an object that absorbs another in this round is
            # probed with its new keys against the others' keys as they were (a static index)
            ids = np.fromiter(self._objects, dtype=np.int64, count=len(self._objects))
            start_keys = [o.match_keys for o in self._objects.values()]
            lo, hi = self._boxes(self._objects.values())
            grown: set[int] = set()
            for oid in self._merge_candidates(todo, ids, lo, hi):
                if oid in merged or oid not in self._objects:
                    continue
                obj = self._objects[oid]
                best = None
                for n in self._boxes_near(obj, lo, hi):  # ascending id, like the index's answers
                    other_id = int(ids[n])
                    if other_id == oid or other_id not in self._objects:
                        continue
                    other = self._objects[other_id]
                    if len(other.match_keys) < len(obj.match_keys):
                        continue  # the smaller side decides; it will be visited from there
                    if (
                        best is None
                        and obj.vote_label != UNKNOWN
                        and obj.vote_label.lower() == other.vote_label.lower()
                        and _box_gap(obj.box_min, obj.box_max, lo[n], hi[n]) <= self.near_gap_m
                        and _colour_distance(colour_of(oid), colour_of(other_id)) <= self.near_colour_distance
                        and not rests_on(oid, other_id)
                        and fits(obj, other)
                    ):
                        # pieces of one thing apart or barely touching: the same name and the same colour
                        best = (0.0, other_id)
                    cnt = self._n_touching(obj.match_keys, start_keys[n])
                    if cnt == 0:
                        continue
                    ratio = cnt / max(len(obj.match_keys), 1)
                    if (
                        ratio >= self.adjacent_overlap
                        and len(obj.match_keys) >= self.adjacent_size_share * len(other.match_keys)
                        and _colour_distance(colour_of(oid), colour_of(other_id)) <= self.adjacent_colour_distance
                    ):
                        # two pieces of one material joined along a seam (a shelf cut at a board,
                        # a bed at its frame): not a small thing resting on a large one
                        if (best is None or ratio > best[0]) and not rests_on(oid, other_id) and fits(obj, other):
                            best = (ratio, other_id)
                        continue
                    exact = obj.vote_label.lower() == other.vote_label.lower() and obj.vote_label != UNKNOWN
                    same = exact or _labels_agree(obj.vote_label, obj.label_votes, other.vote_label, other.label_votes)
                    need = self.merge_overlap if same else self.merge_overlap_any_label
                    if ratio < need:
                        continue
                    # a small object resting on a large one touches it almost everywhere:
                    # unless both are named the same, they merge only when of comparable size
                    if not exact and cnt < self.relabel_object_share * len(other.match_keys):
                        continue
                    # ... and named the same, it still stays when it stands on the other's level top,
                    # or lies on it in a colour of its own (a magazine and a table both "box")
                    if exact and cnt < self.relabel_object_share * len(other.match_keys) and rests_on(oid, other_id):
                        continue
                    ea, eb = obj.embedding, other.embedding
                    if not exact and ea is not None and eb is not None and ea.shape == eb.shape:
                        if float(ea @ eb) < self.min_embedding_similarity:
                            continue
                    if (best is None or ratio > best[0]) and fits(obj, other):
                        best = (ratio, other_id)
                if best is None:
                    continue
                keep_id, drop_id = best[1], oid
                if self._objects[drop_id].n_detections > self._objects[keep_id].n_detections:
                    keep_id, drop_id = drop_id, keep_id
                self._absorb(self._objects[keep_id], self._objects.pop(drop_id))
                colour.pop(keep_id, None)
                merged[drop_id] = keep_id
                grown.add(keep_id)
                self._changed.update((keep_id, drop_id))
            if not grown:
                break
            todo = grown
        self._ensure_index()
        # this call's own merges leave no pair to merge behind them
        if self._merge_pending is not None:
            self._merge_pending.clear()
        # parts folded into their furniture (they join _changed: the next call looks at them)
        merged.update(self._merge_parts())
        # resolve chains a -> b -> c
        pairs = []
        for k in sorted(merged):
            v = merged[k]
            while v in merged:
                v = merged[v]
            pairs.append((v, k))
        self.refresh_labels()  # the objects that took others in
        return pairs

    def split_glued(self) -> list[tuple[int, int]]:
        """Separate parts that a segment glued onto an object once later views tell them apart.

        A segmenter that saw two things as one segment (a vase standing on a shelf board, a cup
        touching a laptop) left one object holding both surfaces. When later frames detect one
        of them on its own, it becomes an object of its own lying on the glued object's voxels
        (the other detection of the frame takes the glued object). The part is cut out of the
        glued object when

        - it was detected in at least ``split_min_frames`` frames that also detected the glued
          object: two separate detections, frame after frame, not one detection seen once;
        - at least ``split_containment`` of its voxels lie within a voxel of the glued object's
          points (the glued object holds the part's surface; a thing resting on an object,
          never fused into it, only touches it along its base);
        - the rest keeps at least ``split_min_share`` of the points, its colour differs from the
          part's by more than ``split_colour_distance`` and their labels disagree: two pieces of
          one material or one name (fragments of an object half hidden) are
          `merge_duplicates`' to join, and would be joined again.

        The glued object keeps its id, the points off the part, its detections and embedding (a
        mean over views of both) and the share of its label votes that its remaining points
        hold; the part keeps its own id, points, votes and embedding (from the views that
        separated it). No id disappears, so places, snapshots and trackers stay valid.

        Returns:
            (glued id, part id) for each part cut out.
        """
        if len(self._objects) < 2:
            return []
        objs = list(self._objects.values())
        n_det = np.array([o.n_detections for o in objs])
        size = np.array([len(o.points) for o in objs])
        lo, hi = self._boxes(objs)
        pad = self.match_voxel_m  # the part's points lie on the glued object's, to noise
        held = np.all((lo[:, None] >= lo[None] - pad) & (hi[:, None] <= hi[None] + pad), axis=2)  # [part, glued]
        held &= (size[None] > size[:, None]) & (n_det[:, None] >= self.split_min_frames)
        np.fill_diagonal(held, False)
        if not held.any():
            return []
        offsets = neighbour_offsets(1)
        done: set[int] = set()
        out: list[tuple[int, int]] = []
        for p, g in zip(*np.nonzero(held)):
            part, glued = objs[p], objs[g]
            if part.id in done or glued.id in done:
                continue
            together = len(np.intersect1d(np.asarray(part.frames), np.asarray(glued.frames), assume_unique=True))
            if together < self.split_min_frames:
                continue
            part_sorted = self._fine_keys(part)[1]
            glued_keys, glued_sorted = self._fine_keys(glued)
            if _near_mask(part_sorted, glued_sorted, offsets).mean() < self.split_containment:
                continue
            cut = _near_mask(glued_keys, part_sorted, offsets)
            rest = ~cut
            n_rest = int(rest.sum())
            if n_rest < max(self.split_min_share * len(glued.points), 1) or n_rest == len(glued.points):
                continue
            rest_lab, part_lab = _lab_of([glued.colors[rest], part.colors])
            if _colour_distance(rest_lab, part_lab) <= self.split_colour_distance:
                continue
            if _labels_agree(part.vote_label, part.label_votes, glued.vote_label, glued.label_votes):
                continue
            share = n_rest / len(glued.points)
            self._keep_points(glued, rest)
            glued.label_votes = {k: v * share for k, v in glued.label_votes.items()}
            glued._refresh(self.match_voxel_m)
            self._record_position(glued, glued.last_seen_s)
            self._changed.update((glued.id, part.id))
            done.update((glued.id, part.id))
            out.append((glued.id, part.id))
        self.n_splits += len(out)
        self._ensure_index()
        return out

    def _fine_keys(self, obj: MapObject) -> tuple[np.ndarray, np.ndarray]:
        """The packed ``voxel_size_m`` key of each of ``obj``'s points, and those keys sorted and unique
        (from `_add_points`' cache when it holds them)."""
        cached = self._voxel_keys.get(obj.id)
        if cached is not None and cached[0] is obj.points:
            return cached[2], cached[3]
        per_point = packed_voxel_keys(obj.points.astype(np.float64), self.voxel_size_m)
        return per_point, np.unique(per_point)

    def _merge_parts(self) -> dict[int, int]:
        """Fold parts into the objects they belong to: an object whose box lies inside a larger
        object's box (most of it, and its centroid) and that has the larger one's colour (a shelf
        board, a side panel, a table leg: one material) or its name (not unknown). A book on a
        table or a cup in a shelf stays: it has a colour of its own, or it rises above the box.

        Boxes are compared all against all at once; each round folds every part into its
        largest container, and rounds repeat while something folded (a handful).
        """
        merged: dict[int, int] = {}
        while len(self._objects) > 1:
            objs = list(self._objects.values())
            lo = np.stack([o.box_min for o in objs])
            hi = np.stack([o.box_max for o in objs])
            size = np.array([len(o.match_keys) for o in objs])
            pad = 0.5 * self.voxel_size_m  # a box of one point still has a voxel's size
            a_lo, a_hi = lo[:, None] - pad, hi[:, None] + pad  # the part
            inter = np.clip(np.minimum(a_hi, hi[None] + pad) - np.maximum(a_lo, lo[None] - pad), 0.0, None)
            inside = np.prod(inter / (a_hi - a_lo), axis=2)  # share of the part's box inside the other's
            cents = np.stack([o.centroid for o in objs])
            cent_in = np.all((cents[:, None] >= lo[None]) & (cents[:, None] <= hi[None]), axis=2)
            lab = _mean_lab(objs)
            dl = lab[:, None] - lab[None]
            dl[..., 0] *= 0.5
            colour_dist = np.linalg.norm(dl, axis=2)  # `_colour_distance`, all pairs
            alike = colour_dist <= self.part_colour_distance
            labels = [o.vote_label.lower() for o in objs]
            codes: dict[str, int] = {}
            code = np.array([codes.setdefault(x, len(codes)) for x in labels])
            known = np.array([x != UNKNOWN for x in labels])
            same = (code[:, None] == code[None]) & known[:, None] & known[None]
            held = (inside >= 0.7) & cent_in & (size[None] >= 2 * size[:, None])
            np.fill_diagonal(held, False)
            ok = held & (alike | same)
            # vertical strips and boards (legs, panels) of a colour near the host's, along which they run
            ext = hi - lo
            thin = np.minimum(ext[:, 0], ext[:, 1]) <= self.thin_part_m
            near_colour = colour_dist <= self.thin_part_colour_distance
            # ... and whatever their colour, panels that make a face of the host's box (a headboard,
            # the side of a bed or a cabinet): a thing lying or standing on furniture is inside it
            on_face = np.zeros_like(held)
            for ax in (0, 1):
                on_face |= (ext[:, ax] <= self.thin_part_m)[:, None] & (
                    (np.abs(lo[:, None, ax] - lo[None, :, ax]) <= self.voxel_size_m)
                    | (np.abs(hi[:, None, ax] - hi[None, :, ax]) <= self.voxel_size_m)
                )
            strip = thin[:, None] & near_colour
            for i, j in zip(*np.nonzero(held & ~ok & (strip | on_face))):
                touch = self._n_touching(objs[i].match_keys, objs[j].match_keys) / max(len(objs[i].match_keys), 1)
                ok[i, j] = (strip[i, j] and touch >= 0.5) or (on_face[i, j] and touch >= self.face_part_overlap)
            # things standing on the host's level top (a mug on a table) are not its parts, whatever
            # their colour or name, and things lying on it fold only by colour (a magazine and a table
            # both "box"): once the host took one, its box would hold the next one too
            for i, j in zip(*np.nonzero(ok)):
                if self._rests_on(objs[i].points, objs[j], partial(float, colour_dist[i, j])):
                    ok[i, j] = False
            if not ok.any():
                break
            parts = np.flatnonzero(ok.any(axis=1))
            host = np.where(ok, size[None], -1).argmax(axis=1)
            # a part that is itself a host this round waits for the next one
            hosts = set(host[parts].tolist())
            done = False
            for i in parts.tolist():  # one step per folded part
                if i in hosts or objs[host[i]].id in merged:
                    continue
                keep, drop = objs[host[i]], objs[i]
                if drop.id not in self._objects or keep.id not in self._objects:
                    continue
                self._absorb(keep, self._objects.pop(drop.id))
                merged[drop.id] = keep.id
                self._changed.update((keep.id, drop.id))
                done = True
            if not done:
                break
        self._ensure_index()
        return merged

    def _absorb(self, keep: MapObject, drop: MapObject) -> None:
        pts = np.concatenate([keep.points, drop.points])
        col = np.concatenate([keep.colors, drop.colors])
        keep.points, keep.colors = _downsample(pts, col, self.voxel_size_m)
        for k, v in drop.label_votes.items():
            keep.label_votes[k] = keep.label_votes.get(k, 0.0) + v
        if keep.label_weights is not None or drop.label_weights is not None:
            keep.label_weights = {}  # the box changed: weighed again with the index
        keep.n_detections += drop.n_detections
        keep.last_update = max(keep.last_update, drop.last_update)
        keep.first_seen_s = min(keep.first_seen_s, drop.first_seen_s)
        keep.last_seen_s = max(keep.last_seen_s, drop.last_seen_s)
        keep.frames = sorted(set(keep.frames) | set(drop.frames))
        if drop.embedding_sum is not None:
            if keep.embedding_sum is None:
                keep.embedding_sum, keep.embedding_count = drop.embedding_sum.copy(), drop.embedding_count
            elif keep.embedding_sum.shape == drop.embedding_sum.shape:
                keep.embedding_sum = keep.embedding_sum + drop.embedding_sum
                keep.embedding_count += drop.embedding_count
        src = keep.meta.setdefault("source_ids", {})
        for k, v in drop.meta.get("source_ids", {}).items():
            src[k] = src.get(k, 0) + v
        keep.position_history = sorted(keep.position_history + drop.position_history, key=lambda tp: tp[0])[
            -_MAX_HISTORY:
        ]
        keep._refresh(self.match_voxel_m)

    # persistence -----------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """Plain records (numbers, strings, lists, numpy arrays), one per object, for saving."""
        self.refresh_labels()
        records = []
        for o in sorted(self._objects.values(), key=lambda o: o.id):
            records.append(
                {
                    "id": o.id,
                    "points": o.points.copy(),
                    "colors": o.colors.copy(),
                    "label_votes": dict(o.label_votes),
                    "n_detections": o.n_detections,
                    "first_seen_s": o.first_seen_s,
                    "last_seen_s": o.last_seen_s,
                    "frames": np.asarray(o.frames, dtype=np.int64),
                    "history_t_s": np.asarray([t for t, _ in o.position_history], dtype=np.float64),
                    "history_xyz": np.asarray([c for _, c in o.position_history], dtype=np.float64).reshape(-1, 3),
                    "embedding_sum": None if o.embedding_sum is None else o.embedding_sum.copy(),
                    "embedding_count": o.embedding_count,
                    "n_missed": o.n_missed,
                    "source_ids": {int(k): int(v) for k, v in o.meta.get("source_ids", {}).items()},
                    "label_weights": None if o.label_weights is None else dict(o.label_weights),
                    "room_weights": None if o.room_weights is None else dict(o.room_weights),
                }
            )
        return records

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], **kwargs: Any) -> ObjectMap:
        """Rebuild a map from `to_records` output (``kwargs`` go to the constructor)."""
        omap = cls(**kwargs)
        for r in records:
            try:
                oid = int(r["id"])
                pts = np.asarray(r["points"], dtype=np.float32).reshape(-1, 3)
                col = np.asarray(r["colors"], dtype=np.uint8).reshape(-1, 3)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"bad object record: {exc}") from exc
            if len(pts) == 0 or len(col) != len(pts):
                raise ValueError(f"object record {oid} has {len(pts)} points and {len(col)} colours")
            if oid in omap._objects:
                raise ValueError(f"duplicate object id {oid} in records")
            hist_t = np.asarray(r.get("history_t_s", []), dtype=np.float64).reshape(-1)
            hist_xyz = np.asarray(r.get("history_xyz", []), dtype=np.float64).reshape(-1, 3)
            emb = r.get("embedding_sum")
            weights = _record_weights(oid, r.get("label_weights"))
            room_weights = _record_weights(oid, r.get("room_weights"), "room_weights")
            obj = MapObject(
                id=oid,
                points=pts,
                colors=col,
                label_votes={str(k): float(v) for k, v in dict(r["label_votes"]).items()},
                n_detections=int(r["n_detections"]),
                first_seen_s=float(r["first_seen_s"]),
                last_seen_s=float(r["last_seen_s"]),
                frames=[int(f) for f in np.asarray(r["frames"]).reshape(-1)],
                position_history=[(float(t), c.copy()) for t, c in zip(hist_t, hist_xyz)],
                embedding_sum=None if emb is None else np.asarray(emb, dtype=np.float64),
                embedding_count=int(r.get("embedding_count", 0)),
                n_missed=int(r.get("n_missed", 0)),
                meta={"source_ids": {int(k): int(v) for k, v in dict(r.get("source_ids", {})).items()}},
                label_weights=weights,
                room_weights=room_weights,
            )
            obj._refresh(omap.match_voxel_m)
            omap._objects[oid] = obj
            omap._next_id = max(omap._next_id, oid + 1)
            if obj.label_weights:
                omap._weighed[oid] = omap._weigh_key(obj)  # as saved, until its box or the floor moves
        omap._index_dirty = True
        omap._merge_pending = None
        return omap

    def digest(self) -> str:
        """Content hash over ids, labels, counts, times and points (order-independent)."""
        h = hashlib.sha256()
        for o in sorted(self._objects.values(), key=lambda o: o.id):
            h.update(
                f"{o.id}|{sorted(o.label_votes.items())}|{o.n_detections}|{o.first_seen_s!r}|{o.last_seen_s!r}".encode()
            )
            order = np.lexsort(o.points.T[::-1])
            h.update(np.ascontiguousarray(o.points[order]).tobytes())
            h.update(np.asarray(o.frames, np.int64).tobytes())
        return h.hexdigest()


@njit(cache=True, inline="always")
def _lower_bound_from(a, x, start):  # pragma: no cover - compiled
    """``np.searchsorted(a, x)`` (sorted ``a``), galloping forward from ``start`` when ``x`` lies at or after it."""
    n = a.shape[0]
    if start <= 0 or start > n or a[start - 1] >= x:
        return np.searchsorted(a, x)
    lo = start  # a[lo - 1] < x
    step = 1
    hi = lo
    while hi < n and a[hi] < x:
        lo = hi + 1
        hi = lo + step
        step *= 2
    hi = min(hi, n)
    while lo < hi:  # first index in [lo, hi) with a[i] >= x (a[hi] >= x or hi == n)
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _touch_codes(index_keys, index_ids, keys, set_of_key, offsets, exact_first, m):  # pragma: no cover - compiled
    """``set * m + object`` once per (key, object) the key touches (see `ObjectMap._touching`).

    With ``exact_first`` a key found in the index touches the objects of its
    own voxel only; the other keys (all keys without it) search every offset.
    """
    n_index = index_keys.shape[0]
    out = np.empty(max(16, 2 * keys.shape[0]), np.int64)
    n_out = 0
    found = np.empty(64, np.int64)
    at = 0  # where the previous key went: a set's keys ascend, so the next search starts there
    for r in range(keys.shape[0]):
        k = keys[r]
        n_found = 0
        searched = False
        if exact_first:
            lo = _lower_bound_from(index_keys, k, at)
            at = lo
            hi = lo
            while hi < n_index and index_keys[hi] == k:
                hi += 1
            if hi > lo:
                searched = True
                for q in range(lo, hi):
                    if n_found == found.shape[0]:
                        found = np.concatenate((found, np.empty(found.shape[0], np.int64)))
                    found[n_found] = index_ids[q]
                    n_found += 1
            elif offsets.shape[0] == 1:
                searched = True
        if not searched:
            lo = 0
            for o in range(offsets.shape[0]):
                t = k + offsets[o]
                lo = _lower_bound_from(index_keys, t, lo)  # the offsets ascend
                q = lo
                while q < n_index and index_keys[q] == t:
                    if n_found == found.shape[0]:
                        found = np.concatenate((found, np.empty(found.shape[0], np.int64)))
                    found[n_found] = index_ids[q]
                    n_found += 1
                    q += 1
        if n_found == 0:
            continue
        f = np.sort(found[:n_found])
        base = set_of_key[r] * m
        for q in range(n_found):
            if q > 0 and f[q] == f[q - 1]:
                continue
            if n_out == out.shape[0]:
                out = np.concatenate((out, np.empty(out.shape[0], np.int64)))
            out[n_out] = base + f[q]
            n_out += 1
    return out[:n_out]


@njit(cache=True)
def _merge_index(keys, ids, stale, new_keys, new_ids):  # pragma: no cover - compiled
    """Sorted (keys, ids) without the entries of ``stale`` ids, merged with sorted (new_keys, new_ids)."""
    n_old = 0
    for i in range(ids.shape[0]):
        if not stale[ids[i]]:
            n_old += 1
    n = n_old + new_keys.shape[0]
    out_k = np.empty(n, keys.dtype)
    out_i = np.empty(n, ids.dtype)
    i = 0
    j = 0
    w = 0
    while w < n:
        while i < keys.shape[0] and stale[ids[i]]:
            i += 1
        if j < new_keys.shape[0] and (i >= keys.shape[0] or new_keys[j] <= keys[i]):
            out_k[w] = new_keys[j]
            out_i[w] = new_ids[j]
            j += 1
        else:
            out_k[w] = keys[i]
            out_i[w] = ids[i]
            i += 1
        w += 1
    return out_k, out_i


@njit(cache=True)
def _sorted_union(a, b):  # pragma: no cover - compiled
    """The sorted union of two sorted arrays of distinct keys (what inserting the new keys of ``b`` gives)."""
    out = np.empty(a.shape[0] + b.shape[0], np.int64)
    i = 0
    j = 0
    w = 0
    while i < a.shape[0] or j < b.shape[0]:
        if j >= b.shape[0] or (i < a.shape[0] and a[i] < b[j]):
            out[w] = a[i]
            i += 1
        elif i >= a.shape[0] or b[j] < a[i]:
            out[w] = b[j]
            j += 1
        else:
            out[w] = a[i]
            i += 1
            j += 1
        w += 1
    return out[:w]


@njit(cache=True)
def _fresh_points(keys, new_keys):  # pragma: no cover - compiled
    """The first point of each voxel of ``new_keys`` not among ``keys`` (sorted, distinct), in point order,
    and ``keys`` with those voxels added (sorted): `ObjectMap._add_points`' bookkeeping."""
    n = new_keys.shape[0]
    order = np.argsort(new_keys)
    first = np.empty(n, np.int64)
    fresh = np.empty(n, np.int64)
    n_fresh = 0
    j = 0
    i = 0
    while i < n:
        k = new_keys[order[i]]
        lo = order[i]  # the voxel's first point: the smallest index of its run
        i += 1
        while i < n and new_keys[order[i]] == k:
            lo = min(lo, order[i])
            i += 1
        while j < keys.shape[0] and keys[j] < k:
            j += 1
        if j < keys.shape[0] and keys[j] == k:
            continue
        first[n_fresh] = lo
        fresh[n_fresh] = k
        n_fresh += 1
    take = np.sort(first[:n_fresh])
    return take, _sorted_union(keys, fresh[:n_fresh])


@njit(cache=True)
def _unique_match_keys(points, voxel):  # pragma: no cover - compiled
    """``np.unique(packed_voxel_keys(points as float64, voxel))``; (False, ...) when a key is out of range."""
    n = points.shape[0]
    keys = np.empty(n, np.int64)
    for i in range(n):
        acc = np.int64(0)
        for a in range(3):
            f = np.floor(np.float64(points[i, a]) / voxel)
            if not (f >= -_KEY_OFFSET and f <= _KEY_MASK - _KEY_OFFSET):  # also NaN
                return False, keys[:0]
            acc = (acc << _KEY_BITS) | (np.int64(f) + _KEY_OFFSET)
        keys[i] = acc
    keys.sort()
    m = 0
    for i in range(n):
        if m == 0 or keys[i] != keys[m - 1]:
            keys[m] = keys[i]
            m += 1
    return True, keys[:m]


@njit(cache=True)
def _count_codes(codes, n_codes):  # pragma: no cover - compiled
    """``np.unique(codes, return_counts=True)`` for codes in [0, n_codes), by a table when it is small."""
    n = codes.shape[0]
    if n_codes <= 4 * n + 4096:
        table = np.zeros(n_codes, np.int64)
        for i in range(n):
            table[codes[i]] += 1
        m = 0
        for c in range(n_codes):
            if table[c]:
                m += 1
        uniq = np.empty(m, np.int64)
        counts = np.empty(m, np.int64)
        m = 0
        for c in range(n_codes):
            if table[c]:
                uniq[m] = c
                counts[m] = table[c]
                m += 1
        return uniq, counts
    s = np.sort(codes)
    uniq = np.empty(n, np.int64)
    counts = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if m > 0 and s[i] == uniq[m - 1]:
            counts[m - 1] += 1
        else:
            uniq[m] = s[i]
            counts[m] = 1
            m += 1
    return uniq[:m], counts[:m]
