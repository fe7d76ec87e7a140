"""The episodic timeline: what was seen when, at several time scales.

`EpisodicMemory` streams frames in constant memory (only the open node of each
level is kept in working form), samples them at a configurable rate, cuts the
stream into events where the image embedding changes sharply (or an event
reaches its maximum length), and groups events into coarser nodes: by default
events of at most 10 s, then about 1 min, 10 min and 1 h. Every node keeps its
time span, a few keyframes (small JPEG bytes), the mean image embedding, tags
(ImageNet labels from the encoder), object labels (where frames carry
``labels``), objects seen to move (where frames carry depth, pose and stable
instance ids), a text description and its text embedding. Frames that come with
a detector's masks (``add_frame(..., detections=...)``) also feed the object
tracks beside the timeline (`objects`, an `ObjectTracker` in
`engram.memory.episodic_objects`): label, box, appearance and the spans each
object was in view, for counts and last sightings. Search works by text,
by image, by time, flat at one level or coarse to fine (`retrieve`); adjacent
redundant nodes are merged under a node budget (`consolidate`). Long videos
(`engram.qa.video`) and robot runs (the SceneMemory facade) fill the same
timeline. Nothing here imports the qa layer.
"""

from __future__ import annotations

import heapq
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from engram.memory.episodic_moves import MoveTracker
from engram.memory.episodic_nodes import (  # noqa: F401 - re-exported
    _MOVE_WORDS,
    _MOVED_PREFIX,
    _STOPWORDS,
    _TOKEN_RE,
    EPISODIC_KIND,
    EPISODIC_VERSION,
    THUMBNAIL_DIM,
    THUMBNAIL_NAME,
    EpisodicHit,
    EpisodicNode,
    _Acc,
    _content_tokens,
    _tokens,
    check_encoders,
)
from engram.memory.episodic_objects import ObjectTracker
from engram.types import Frame

__all__ = [
    "EpisodicNode",
    "EpisodicHit",
    "EpisodicMemory",
    "EPISODIC_KIND",
    "EPISODIC_VERSION",
    "check_encoders",
    "thumbnail_embedding",
]


class EpisodicMemory:
    """A multi-scale timeline of events with embeddings, tags, text and keyframes.

    Args:
        sample_fps: frames per second kept from the stream (None keeps every frame).
        level_spans_s: the time scale of each level: the maximum event length,
            then the span each coarser node groups (a node closes when a child
            starts that far after its own start).
        boundary_threshold: an event ends when a frame's cosine distance to the
            event's mean embedding exceeds this.
        min_event_s: events shorter than this are never cut by the embedding test.
        keyframes_per_node: at most this many keyframes per node.
        keyframe_width: keyframes are resized to this width (height keeps the aspect).
        jpeg_quality: JPEG quality of keyframes (1-100).
        tags_per_node: image-encoder tags kept per node.
        labels_per_node: object labels kept per node (all of them at coarser levels).
        min_tag_prob: tags with a lower mean probability are dropped.
        min_label_area: an object label counts in a frame when its instance mask
            covers at least this share of the image (frames with ``instances``).
        move_threshold_m: an instance whose centroid moved further than this
            since it was last seen is recorded as moved (frames with geometry).
        image_encoder: an `ImageEncoder` used when `add_frame` gets no embedding.
        text_encoder: a `TextEncoder` for descriptions and text queries; without
            one, text search is lexical only.
        captioner: optional callable, keyframe RGB images -> one caption for the node.
        max_nodes: node budget; when exceeded, the most similar adjacent nodes merge.
        lexical_weight: weight of the exact word match score in text search.
    """

    def __init__(
        self,
        *,
        sample_fps: float | None = 1.0,
        level_spans_s: Sequence[float] = (10.0, 60.0, 600.0, 3600.0),
        boundary_threshold: float = 0.2,
        min_event_s: float = 0.0,
        keyframes_per_node: int = 2,
        keyframe_width: int = 128,
        jpeg_quality: int = 70,
        tags_per_node: int = 5,
        labels_per_node: int = 16,
        min_tag_prob: float = 0.02,
        min_label_area: float = 0.002,
        move_threshold_m: float = 0.75,
        image_encoder: Any = None,
        text_encoder: Any = None,
        captioner: Callable[[list[np.ndarray]], str] | None = None,
        max_nodes: int | None = None,
        lexical_weight: float = 0.5,
    ) -> None:
        if sample_fps is not None and not (math.isfinite(sample_fps) and sample_fps > 0):
            raise ValueError(f"sample_fps must be a positive number or None, got {sample_fps!r}")
        spans = [float(s) for s in level_spans_s]
        if not spans or any(not (math.isfinite(s) and s > 0) for s in spans):
            raise ValueError(f"level_spans_s must be positive numbers, got {list(level_spans_s)!r}")
        if any(b <= a for a, b in zip(spans, spans[1:])):
            raise ValueError(f"level_spans_s must increase from fine to coarse, got {spans}")
        if not 0.0 < boundary_threshold <= 2.0:
            raise ValueError(f"boundary_threshold must be in (0, 2], got {boundary_threshold}")
        if keyframes_per_node < 0 or keyframe_width < 8 or not 1 <= jpeg_quality <= 100:
            raise ValueError(
                f"need keyframes_per_node >= 0, keyframe_width >= 8 and jpeg_quality in 1..100, got "
                f"{keyframes_per_node}, {keyframe_width}, {jpeg_quality}"
            )
        if max_nodes is not None and max_nodes < len(spans):
            raise ValueError(f"max_nodes must be at least the number of levels ({len(spans)}), got {max_nodes}")
        self.sample_fps = None if sample_fps is None else float(sample_fps)
        self.level_spans_s = tuple(spans)
        self.boundary_threshold = float(boundary_threshold)
        self.min_event_s = float(min_event_s)
        self.keyframes_per_node = int(keyframes_per_node)
        self.keyframe_width = int(keyframe_width)
        self.jpeg_quality = int(jpeg_quality)
        self.tags_per_node = int(tags_per_node)
        self.labels_per_node = int(labels_per_node)
        self.min_tag_prob = float(min_tag_prob)
        self.min_label_area = float(min_label_area)
        self.move_threshold_m = float(move_threshold_m)
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.captioner = captioner
        self.max_nodes = max_nodes
        self.lexical_weight = float(lexical_weight)

        self._nodes: dict[int, EpisodicNode] = {}
        self._levels: list[list[int]] = [[] for _ in spans]  # ids in time order per level
        self._starts: list[list[float]] = [[] for _ in spans]
        self._open: list[int | None] = [None for _ in spans]  # open node id per level
        self._acc: dict[int, _Acc] = {}
        self._next_id = 0
        self._dim: int | None = None
        self._text_dim: int | None = None
        self._last_t: float | None = None
        self._last_slot: int | None = None
        self._frames_seen = 0
        self._frames_sampled = 0
        self._moves = MoveTracker(self.move_threshold_m)
        self.objects = ObjectTracker()
        self._text_pending: set[int] = set()
        self._cache: dict[int, dict[str, Any]] = {}
        self._finalized = False
        self._builtin_embedding = False

    # ------------------------------------------------------------------
    # introspection

    @property
    def num_levels(self) -> int:
        return len(self.level_spans_s)

    n_levels = num_levels

    @property
    def embedding_dim(self) -> int | None:
        """Image embedding size (None before the first frame)."""
        return self._dim

    @property
    def text_dim(self) -> int | None:
        return self._text_dim

    @property
    def frames_seen(self) -> int:
        return self._frames_seen

    @property
    def frames_sampled(self) -> int:
        return self._frames_sampled

    @property
    def last_time_s(self) -> float | None:
        """Timestamp of the last frame given to `add_frame` (None before the first)."""
        return self._last_t

    @property
    def end_s(self) -> float:
        """End of the covered time (0 when empty)."""
        ends = [self._nodes[ids[-1]].end_s for ids in self._levels if ids]
        return max(ends) if ends else 0.0

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, node_id: int) -> EpisodicNode:
        try:
            node = self._nodes[int(node_id)]
        except KeyError as exc:
            raise ValueError(f"no episodic node with id {node_id}") from exc
        if not node.closed:
            self._refresh(node)
        return node

    def nodes(self, level: int = 0) -> list[EpisodicNode]:
        """The nodes of one level in time order (open nodes included, refreshed)."""
        self._check_level(level)
        out = [self._nodes[i] for i in self._levels[level]]
        for n in out:
            if not n.closed:
                self._refresh(n)
        return out

    def children(self, node: EpisodicNode | int) -> list[EpisodicNode]:
        n = self.node(node if isinstance(node, int) else node.node_id)
        return [self.node(c) for c in n.children]

    def neighbours(self, node: EpisodicNode | int, offset: int = 1) -> EpisodicNode | None:
        """The node ``offset`` places later (negative: earlier) on the same level, or None."""
        n = self.node(node if isinstance(node, int) else node.node_id)
        ids = self._levels[n.level]
        pos = self._position(n)
        j = pos + int(offset)
        return self.node(ids[j]) if 0 <= j < len(ids) else None

    def at_time(self, time_s: float, level: int = 0) -> EpisodicNode | None:
        """The node of ``level`` whose span contains ``time_s`` (None outside the timeline)."""
        self._check_level(level)
        starts = self._starts[level]
        j = bisect_right(starts, float(time_s)) - 1
        if j < 0:
            return None
        n = self.node(self._levels[level][j])
        return n if (n.start_s <= time_s < n.end_s or not n.closed) else None

    def _check_level(self, level: int) -> None:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level < self.num_levels:
            raise ValueError(f"level must be an integer in 0..{self.num_levels - 1}, got {level!r}")

    def _position(self, node: EpisodicNode) -> int:
        starts = self._starts[node.level]
        ids = self._levels[node.level]
        j = bisect_right(starts, node.start_s) - 1
        while j >= 0 and ids[j] != node.node_id:
            j -= 1
        if j < 0:
            raise ValueError(f"episodic node {node.node_id} is not in the timeline")
        return j

    # ------------------------------------------------------------------
    # streaming

    def add_frame(
        self,
        frame: Frame,
        image_embedding: np.ndarray | None = None,
        tags: Sequence[tuple[str, float]] | Sequence[str] | None = None,
        labels: Iterable[str] | Mapping[str, float] | None = None,
        detections: Any = None,
    ) -> bool:
        """Add one frame; returns True when it was sampled (False when skipped by the sample rate).

        Args:
            frame: the observation (rgb and time at least). Object labels are taken
                from ``frame.labels`` (filtered by mask area when ``instances`` is set);
                moves are tracked when the frame also has depth, intrinsics and pose.
            image_embedding: "D" embedding of ``frame.rgb``; computed with the
                memory's image encoder when None.
            tags: (label, probability) pairs or bare labels; from the image encoder when None.
            labels: extra object labels (names, or name -> weight in [0, 1]).
            detections: a detector's `InstanceMasks` for this frame: linked into
                object tracks (`objects`) by box overlap and appearance, and their
                labels count as object labels of the event.

        Raises:
            ValueError: the frame goes back in time, the embedding has the wrong
                size or is not finite, or no embedding can be computed. The memory
                is unchanged then.
        """
        if not isinstance(frame, Frame):
            raise ValueError(f"add_frame needs a Frame, got {type(frame).__name__}")
        t = frame.timestamp_s
        if self._last_t is not None and t < self._last_t:
            raise ValueError(
                f"frame {frame.index} at t={t:.3f} s goes back in time (last frame was at {self._last_t:.3f} s)"
            )
        if self._finalized:
            raise ValueError("the memory was finalized; no more frames can be added")
        slot = None if self.sample_fps is None else int(math.floor(t * self.sample_fps + 1e-6))
        if slot is not None and self._last_slot is not None and slot <= self._last_slot:
            self._frames_seen += 1
            self._last_t = t
            return False

        emb = self._frame_embedding(frame, image_embedding)
        tag_list = self._frame_tags(frame, tags)
        label_w = self._frame_labels(frame, labels)
        dets = self._frame_detections(frame, detections)
        if dets is not None:
            for name, score in zip(dets[0], dets[2].tolist()):
                if name != "object":
                    label_w[name] = max(label_w.get(name, 0.0), float(min(max(score, 0.0), 1.0)))
        moved = self._moves.observe(frame)
        thumb = self._thumbnail(frame.rgb) if self.keyframes_per_node > 0 else b""

        # --- from here on nothing can fail on bad input: commit the frame
        self._frames_seen += 1
        self._frames_sampled += 1
        self._last_t = t
        self._last_slot = slot
        self._cache.clear()
        if dets is not None:
            self.objects.update(t, *dets)

        ev_id = self._open[0]
        if ev_id is not None:
            ev = self._nodes[ev_id]
            acc = self._acc[ev_id]
            too_long = t - ev.start_s >= self.level_spans_s[0]
            mean = acc.emb_sum / max(float(np.linalg.norm(acc.emb_sum)), 1e-12)
            changed = (1.0 - float(mean @ emb)) > self.boundary_threshold and t - ev.start_s >= self.min_event_s
            if too_long or changed:
                self._close(ev_id, end_s=t)
                ev_id = None
        if ev_id is None:
            ev_id = self._open_node(0, t)

        for level in range(self.num_levels):
            nid = self._open[level]
            if nid is None:
                break
            acc = self._acc[nid]
            acc.emb_sum += emb
            for name, p in tag_list:
                acc.tag_sum[name] = acc.tag_sum.get(name, 0.0) + p
            for name, w in label_w.items():
                acc.label_sum[name] = acc.label_sum.get(name, 0.0) + w
            for name in moved:
                acc.moved[name] = acc.moved.get(name, 0) + 1
            acc.last_t = t
            node = self._nodes[nid]
            node.frame_count += 1
            node.end_s = max(node.end_s, t + self._period())
        if thumb:
            self._add_candidate(self._acc[ev_id], (t, thumb, emb))
        if self.max_nodes is not None and len(self._nodes) > self.max_nodes:
            # merge down to 90% of the budget so that the next frames do not trigger it again at once
            self.consolidate(max(self.num_levels, int(self.max_nodes * 0.9)))
        if len(self._text_pending) >= 64:
            self._embed_pending_text()
        return True

    def finalize(self) -> None:
        """Close every open node (end of the stream). Idempotent; no frames can follow."""
        if self._finalized:
            return
        if self._open[0] is not None:
            ev = self._nodes[self._open[0]]
            self._close(ev.node_id, end_s=max(ev.end_s, ev.start_s))
        for level in range(1, self.num_levels):
            nid = self._open[level]
            if nid is not None:
                self._close(nid, end_s=None)
        self._embed_pending_text()
        if self.max_nodes is not None and len(self._nodes) > self.max_nodes:
            self.consolidate(self.max_nodes)
        self._finalized = True

    @property
    def finalized(self) -> bool:
        return self._finalized

    def _period(self) -> float:
        return 0.0 if self.sample_fps is None else 1.0 / self.sample_fps

    def _frame_embedding(self, frame: Frame, image_embedding: np.ndarray | None) -> np.ndarray:
        if image_embedding is None:
            if self.image_encoder is None:
                if self._dim is not None and self._dim != THUMBNAIL_DIM:
                    raise ValueError(
                        f"add_frame got no image_embedding and the memory has no image_encoder to make a "
                        f"{self._dim}-d one"
                    )
                self._builtin_embedding = True
                image_embedding = thumbnail_embedding(frame.rgb)
            else:
                image_embedding = np.asarray(self.image_encoder.encode([frame.rgb]))[0]
        e = np.asarray(image_embedding, dtype=np.float64).reshape(-1)
        if e.size == 0 or not np.all(np.isfinite(e)):
            raise ValueError(f"image_embedding of frame {frame.index} is empty or not finite")
        if self._dim is not None and e.size != self._dim:
            raise ValueError(
                f"image_embedding of frame {frame.index} has {e.size} values; this memory holds {self._dim}-d embeddings"
            )
        n = np.linalg.norm(e)
        if n < 1e-12:
            raise ValueError(f"image_embedding of frame {frame.index} is all zeros")
        if self._dim is None:
            self._dim = int(e.size)
        return e / n

    def _frame_tags(self, frame: Frame, tags: Any) -> list[tuple[str, float]]:
        if tags is None:
            if self.image_encoder is None or not hasattr(self.image_encoder, "tags"):
                return []
            tags = self.image_encoder.tags([frame.rgb], k=self.tags_per_node)[0]
        out = []
        for item in tags:
            if isinstance(item, str):
                name, p = item, 1.0
            else:
                try:
                    name, p = item
                    p = float(p)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"tags must be labels or (label, probability) pairs, got {item!r}") from exc
            if not isinstance(name, str) or not math.isfinite(p) or p < 0:
                raise ValueError(f"tag {item!r} must be a label with a non-negative finite probability")
            out.append((name, p))
        return out

    def _frame_labels(self, frame: Frame, labels: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        if frame.labels:
            if frame.instances is not None:
                ids = np.fromiter(frame.labels.keys(), dtype=np.int64)
                flat = frame.instances.ravel()
                valid = (flat >= 0) & (flat <= max(int(ids.max()), 0))
                counts = np.bincount(flat[valid], minlength=int(ids.max()) + 1)
                min_px = self.min_label_area * flat.size
                for i, name in frame.labels.items():
                    if 0 <= i < counts.size and counts[i] >= max(min_px, 1):
                        out[name] = 1.0
            else:
                for name in frame.labels.values():
                    out[name] = 1.0
        if labels is not None:
            items = labels.items() if isinstance(labels, Mapping) else ((n, 1.0) for n in labels)
            for name, w in items:
                if not isinstance(name, str):
                    raise ValueError(f"labels must be strings, got {name!r}")
                w = float(w)
                if not (math.isfinite(w) and 0.0 <= w <= 1.0):
                    raise ValueError(f"label weight for {name!r} must be in [0, 1], got {w}")
                out[name] = max(out.get(name, 0.0), w)
        return out

    def _frame_detections(self, frame: Frame, detections: Any) -> tuple | None:
        """(labels, boxes as image fractions, scores, embeddings) of the non-empty masks, checked."""
        if detections is None:
            return None
        masks = getattr(detections, "masks", None)
        if masks is None or not hasattr(detections, "boxes_xyxy"):
            raise ValueError(f"detections must be InstanceMasks, got {type(detections).__name__}")
        if len(detections) == 0:
            return [], np.zeros((0, 4)), np.zeros(0), None
        boxes = np.asarray(detections.boxes_xyxy, np.float64)
        keep = np.flatnonzero(boxes[:, 0] >= 0)
        scale = np.array([frame.width, frame.height, frame.width, frame.height], np.float64)
        boxes = (boxes[keep] + np.array([0.0, 0.0, 1.0, 1.0])) / scale
        labels = [detections.labels[i] for i in keep.tolist()]
        scores = np.asarray(detections.scores, np.float64)[keep]
        emb = None if detections.embeddings is None else np.asarray(detections.embeddings)[keep]
        self.objects.check(labels, boxes, scores, emb)
        return labels, boxes, scores, emb

    def _thumbnail(self, rgb: np.ndarray) -> bytes:
        import cv2

        h, w = rgb.shape[:2]
        tw = min(self.keyframe_width, w)
        th = max(1, int(round(h * tw / w)))
        small = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA) if (tw, th) != (w, h) else rgb
        ok, buf = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise ValueError("keyframe could not be JPEG-encoded")
        return buf.tobytes()

    def _add_candidate(self, acc: _Acc, cand: tuple[float, bytes, np.ndarray]) -> None:
        limit = max(4 * self.keyframes_per_node, 8)
        if len(acc.cands) >= limit:
            # Thin to every other candidate: bounded memory, still spread over the span.
            acc.cands = acc.cands[::2]
        acc.cands.append(cand)

    # ------------------------------------------------------------------
    # node life cycle

    def _open_node(self, level: int, start_s: float) -> int:
        nid = self._next_id
        self._next_id += 1
        node = EpisodicNode(node_id=nid, level=level, start_s=float(start_s), end_s=float(start_s))
        self._nodes[nid] = node
        self._levels[level].append(nid)
        self._starts[level].append(node.start_s)
        self._open[level] = nid
        self._acc[nid] = _Acc(self._dim or 1)
        if level + 1 < self.num_levels:
            pid = self._open[level + 1]
            if pid is not None and start_s - self._nodes[pid].start_s >= self.level_spans_s[level + 1]:
                self._close(pid, end_s=start_s)
                pid = None
            if pid is None:
                pid = self._open_node(level + 1, start_s)
            node.parent = pid
            self._nodes[pid].children.append(nid)
        return nid

    def _close(self, nid: int, end_s: float | None) -> None:
        """Finish a node: final fields, keyframes, its text queued for embedding."""
        node = self._nodes[nid]
        # Children first: a parent never closes before its last child.
        if node.children and not self._nodes[node.children[-1]].closed:
            self._close(node.children[-1], end_s=end_s)
        if end_s is not None:
            node.end_s = max(float(end_s), node.start_s)
        elif node.children:
            node.end_s = self._nodes[node.children[-1]].end_s
        acc = self._acc.pop(nid)
        self._fill(node, acc)
        node.keyframe_times_s, node.keyframes = self._pick_keyframes(acc, node)
        if self.captioner is not None and node.keyframes:
            node.caption = str(self.captioner(self._decode_keyframes(node.keyframes))).strip()
            node.description = self._describe(node)
        node.closed = True
        self._open[node.level] = None
        if node.parent is not None and node.keyframes:
            pacc = self._acc.get(node.parent)
            if pacc is not None:
                emb = _image_embedding(node)
                for t, jpg in zip(node.keyframe_times_s, node.keyframes):
                    self._add_candidate(pacc, (t, jpg, emb.astype(np.float64)))
        self._text_pending.add(nid)
        self._cache.clear()

    def _fill(self, node: EpisodicNode, acc: _Acc) -> None:
        n = max(node.frame_count, 1)
        norm = float(np.linalg.norm(acc.emb_sum))
        node.image_embedding = (acc.emb_sum / max(norm, 1e-12)).astype(np.float32)
        tags = sorted(((k, v / n) for k, v in acc.tag_sum.items()), key=lambda kv: (-kv[1], kv[0]))
        node.tags = [(k, round(v, 4)) for k, v in tags if v >= self.min_tag_prob][: self.tags_per_node]
        labels = sorted(((k, v / n) for k, v in acc.label_sum.items()), key=lambda kv: (-kv[1], kv[0]))
        limit = self.labels_per_node if node.level == 0 else max(self.labels_per_node, len(labels))
        node.labels = [(k, round(v, 4)) for k, v in labels][:limit]
        node.moved = sorted(acc.moved)
        node.description = self._describe(node)

    def _describe(self, node: EpisodicNode) -> str:
        parts = []
        if node.caption:
            parts.append(node.caption)
        if node.tags:
            parts.append("scene: " + ", ".join(_clean_tag(t) for t, _ in node.tags))
        if node.labels:
            parts.append("objects: " + ", ".join(t for t, _ in node.labels))
        if node.moved:
            parts.append("moved: " + ", ".join(node.moved))
        return "; ".join(parts) if parts else "nothing recognised"

    def _pick_keyframes(self, acc: _Acc, node: EpisodicNode) -> tuple[list[float], list[bytes]]:
        if not acc.cands or self.keyframes_per_node == 0:
            return [], []
        embs = np.stack([c[2] for c in acc.cands]).astype(np.float64)
        mean = _image_embedding(node).astype(np.float64)
        chosen = [int(np.argmax(embs @ mean))]
        while len(chosen) < min(self.keyframes_per_node, len(acc.cands)):
            closest = (embs @ embs[chosen].T).max(axis=1)
            j = int(np.argmin(closest))
            if closest[j] > 0.98:  # nothing new left to show
                break
            chosen.append(j)
        chosen.sort(key=lambda j: acc.cands[j][0])
        return [float(acc.cands[j][0]) for j in chosen], [acc.cands[j][1] for j in chosen]

    def _refresh(self, node: EpisodicNode) -> None:
        """Bring an open node's summary fields up to date (they are computed lazily)."""
        acc = self._acc.get(node.node_id)
        if acc is None:
            return
        self._fill(node, acc)
        self._text_pending.add(node.node_id)

    @staticmethod
    def _decode_keyframes(jpegs: Sequence[bytes]) -> list[np.ndarray]:
        import cv2

        out = []
        for b in jpegs:
            img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
            if img is not None:
                out.append(img[:, :, ::-1].copy())
        return out

    def set_caption(self, node_id: int, caption: str) -> None:
        """Give a closed node a caption (a captioner's text for its keyframes); its description follows."""
        if not isinstance(caption, str):
            raise ValueError(f"caption must be a string, got {type(caption).__name__}")
        node = self.node(node_id)
        node.caption = " ".join(caption.split())
        node.description = self._describe(node)
        node.text_embedding = None
        self._text_pending.add(node.node_id)
        self._cache.clear()

    def keyframe_images(self, node: EpisodicNode | int) -> list[np.ndarray]:
        """The keyframes of a node decoded to "H W 3" uint8 RGB."""
        n = self.node(node if isinstance(node, int) else node.node_id)
        return self._decode_keyframes(n.keyframes)

    def _embed_pending_text(self) -> None:
        if not self._text_pending:
            return
        ids = sorted(self._text_pending)
        self._text_pending.clear()
        if self.text_encoder is None:
            return
        for nid in ids:
            n = self._nodes.get(nid)
            if n is not None and not n.closed:
                self._refresh_fields_only(n)
        ids = [i for i in ids if i in self._nodes]
        texts = [self._nodes[i].description for i in ids]
        for start in range(0, len(texts), 256):
            emb = np.asarray(self.text_encoder.encode(texts[start : start + 256]), dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != len(texts[start : start + 256]):
                raise ValueError(f"text encoder returned shape {emb.shape} for {len(texts[start : start + 256])} texts")
            if self._text_dim is None:
                self._text_dim = int(emb.shape[1])
            elif emb.shape[1] != self._text_dim:
                raise ValueError(
                    f"text encoder gives {emb.shape[1]}-d embeddings; this memory holds {self._text_dim}-d ones"
                )
            for nid, row in zip(ids[start : start + 256], emb):
                self._nodes[nid].text_embedding = row
        self._cache.clear()

    def _refresh_fields_only(self, node: EpisodicNode) -> None:
        acc = self._acc.get(node.node_id)
        if acc is not None:
            self._fill(node, acc)

    # ------------------------------------------------------------------
    # consolidation

    def consolidate(self, max_nodes: int | None = None, min_similarity: float = 0.95) -> int:
        """Merge redundant adjacent closed siblings; returns how many merges were made.

        Without ``max_nodes``, every adjacent pair more similar than
        ``min_similarity`` (cosine of image embeddings, with identical object
        labels) merges. With ``max_nodes``, the most similar pairs merge first,
        finest level first, until the memory holds at most ``max_nodes`` nodes
        (or nothing mergeable is left). A merged node spans both, keeps the
        frame-weighted mean embedding and the union of tags, labels and keyframes.
        """
        if max_nodes is not None and max_nodes < 1:
            raise ValueError(f"max_nodes must be positive, got {max_nodes}")
        merges = 0
        if max_nodes is None:
            # Coarse first: merged parents make their children siblings, which may merge in turn.
            for level in reversed(range(self.num_levels)):
                merges += self._consolidate_level(level, None, min_similarity)
        else:
            while len(self._nodes) > max_nodes:
                done = 0
                for level in range(self.num_levels):
                    if len(self._nodes) <= max_nodes:
                        break
                    done += self._consolidate_level(level, max_nodes, min_similarity)
                merges += done
                if not done:
                    break
        if merges:
            self._cache.clear()
        return merges

    def _consolidate_level(self, level: int, max_nodes: int | None, min_similarity: float) -> int:
        ids = self._levels[level]
        if len(ids) < 2:
            return 0
        # Doubly linked list over the level, a max-heap of adjacent similarities.
        prev = {ids[i]: (ids[i - 1] if i > 0 else None) for i in range(len(ids))}
        nxt = {ids[i]: (ids[i + 1] if i + 1 < len(ids) else None) for i in range(len(ids))}
        version = dict.fromkeys(ids, 0)
        heap: list[tuple[float, int, int, int, int]] = []

        def mergeable(a: int, b: int) -> float | None:
            na, nb = self._nodes[a], self._nodes[b]
            if not (na.closed and nb.closed) or na.parent != nb.parent:
                return None
            sim = float(_image_embedding(na) @ _image_embedding(nb))
            if max_nodes is None and (
                sim < min_similarity or {lab for lab, _ in na.labels} != {lab for lab, _ in nb.labels}
            ):
                return None
            return sim

        def push(a: int | None) -> None:
            b = None if a is None else nxt[a]
            if a is None or b is None:
                return
            s = mergeable(a, b)
            if s is not None:
                heapq.heappush(heap, (-s, a, b, version[a], version[b]))

        for a in ids:
            push(a)
        merges = 0
        while heap:
            if max_nodes is not None and len(self._nodes) <= max_nodes:
                break
            _, a, b, va, vb = heapq.heappop(heap)
            if a not in version or b not in version or version[a] != va or version[b] != vb or nxt.get(a) != b:
                continue
            self._merge(a, b)
            merges += 1
            del version[b]
            version[a] += 1
            after = nxt[a] = nxt.pop(b)
            if after is not None:
                prev[after] = a
            prev.pop(b, None)
            push(prev[a])
            push(a)
        keep = [i for i in ids if i in self._nodes]
        self._levels[level] = keep
        self._starts[level] = [self._nodes[i].start_s for i in keep]
        return merges

    def _merge(self, a: int, b: int) -> None:
        """Fold node ``b`` (the later one) into ``a``."""
        na, nb = self._nodes[a], self._nodes[b]
        wa, wb = max(na.frame_count, 1), max(nb.frame_count, 1)
        e = _image_embedding(na).astype(np.float64) * wa + _image_embedding(nb).astype(np.float64) * wb
        na.image_embedding = (e / max(float(np.linalg.norm(e)), 1e-12)).astype(np.float32)

        def mix(x: list[tuple[str, float]], y: list[tuple[str, float]]) -> list[tuple[str, float]]:
            d: dict[str, float] = {}
            for k, v in x:
                d[k] = d.get(k, 0.0) + v * wa
            for k, v in y:
                d[k] = d.get(k, 0.0) + v * wb
            return sorted(((k, round(v / (wa + wb), 4)) for k, v in d.items()), key=lambda kv: (-kv[1], kv[0]))

        na.tags = mix(na.tags, nb.tags)[: self.tags_per_node]
        labels = mix(na.labels, nb.labels)
        na.labels = labels[: self.labels_per_node] if na.level == 0 else labels
        na.moved = sorted(set(na.moved) | set(nb.moved))
        na.end_s = max(na.end_s, nb.end_s)
        na.frame_count += nb.frame_count
        if na.caption and nb.caption and nb.caption != na.caption:
            na.caption = f"{na.caption} Then {nb.caption}"
        else:
            na.caption = na.caption or nb.caption
        kf = sorted(zip(na.keyframe_times_s + nb.keyframe_times_s, na.keyframes + nb.keyframes), key=lambda x: x[0])
        if len(kf) > self.keyframes_per_node:
            idx = np.linspace(0, len(kf) - 1, self.keyframes_per_node).round().astype(int)
            kf = [kf[i] for i in sorted(set(idx.tolist()))]
        na.keyframe_times_s = [t for t, _ in kf]
        na.keyframes = [k for _, k in kf]
        for c in nb.children:
            self._nodes[c].parent = a
        na.children.extend(nb.children)
        if nb.parent is not None:
            siblings = self._nodes[nb.parent].children
            siblings.remove(b)
        na.description = self._describe(na)
        na.text_embedding = None
        self._text_pending.discard(b)
        self._text_pending.add(a)
        del self._nodes[b]

    # ------------------------------------------------------------------
    # search

    def _level_cache(self, level: int) -> dict[str, Any]:
        c = self._cache.get(level)
        if c is not None:
            return c
        nodes = self.nodes(level)
        if self.text_encoder is not None and self._text_pending:
            self._embed_pending_text()  # open nodes were just refreshed: embed their new text too
        c = {
            "ids": np.array([n.node_id for n in nodes], dtype=np.int64),
            "pos": {n.node_id: i for i, n in enumerate(nodes)},
            "start": np.array([n.start_s for n in nodes], dtype=np.float64),
            "end": np.array([n.end_s for n in nodes], dtype=np.float64),
        }
        if nodes and self._dim is not None:
            c["img"] = np.stack([_image_embedding(n) for n in nodes]).astype(np.float32)
        txt = [n.text_embedding for n in nodes if n.text_embedding is not None]
        if nodes and self.text_encoder is not None and len(txt) == len(nodes):
            c["txt"] = np.stack(txt).astype(np.float32)
        index: dict[str, list[int]] = {}
        for i, n in enumerate(nodes):
            toks = set(_tokens(n.description))
            # "moved:<word>" binds a moved object to the move, so "when was the mug moved"
            # prefers the event where the mug moved over any event with a mug and some move
            toks.update(_MOVED_PREFIX + t for name in n.moved for t in _tokens(name))
            for tok in toks:
                index.setdefault(tok, []).append(i)
        c["lex"] = {k: np.array(v, dtype=np.int64) for k, v in index.items()}
        self._cache[level] = c
        return c

    def _prepare_query(self, text: str | None, image: np.ndarray | None, time_s: float | None) -> dict[str, Any]:
        if text is None and image is None and time_s is None:
            raise ValueError("search needs text=, image= or time_s=")
        q: dict[str, Any] = {}
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text query must be a non-empty string, got {text!r}")
            toks = set(_content_tokens(text)) or set(_tokens(text))
            if toks & _MOVE_WORDS:
                toks.update(_MOVED_PREFIX + t for t in toks - _MOVE_WORDS)
            q["tokens"] = sorted(toks)
            if self.text_encoder is not None:
                self._embed_pending_text()
                v = np.asarray(self.text_encoder.encode([text]), dtype=np.float32)[0]
                if self._text_dim is not None and v.size != self._text_dim:
                    raise ValueError(
                        f"text encoder {getattr(self.text_encoder, 'name', '?')!r} gives {v.size}-d embeddings; "
                        f"this memory holds {self._text_dim}-d text embeddings"
                    )
                q["text_vec"] = v
        if image is not None:
            img = np.asarray(image)
            if img.ndim == 3:
                if self.image_encoder is not None:
                    img = np.asarray(self.image_encoder.encode([img]))[0]
                elif self._builtin_embedding:
                    img = thumbnail_embedding(img)
                else:
                    raise ValueError("an image query needs an image_encoder (or pass its embedding)")
            v = np.asarray(img, dtype=np.float32).reshape(-1)
            if self._dim is not None and v.size != self._dim:
                raise ValueError(f"image query has {v.size} values; this memory holds {self._dim}-d image embeddings")
            if not np.all(np.isfinite(v)) or np.linalg.norm(v) < 1e-12:
                raise ValueError("image query embedding is zero or not finite")
            q["image_vec"] = v / np.linalg.norm(v)
        if time_s is not None:
            t = float(time_s)
            if not math.isfinite(t):
                raise ValueError(f"time_s must be finite, got {time_s!r}")
            q["time_s"] = t
        return q

    def _scores(self, level: int, q: dict[str, Any], rows: np.ndarray | None = None) -> np.ndarray:
        """Scores of the nodes of one level (all, or the given row positions)."""
        c = self._level_cache(level)
        n_all = len(c["ids"])
        sel = np.arange(n_all) if rows is None else rows
        total = np.zeros(len(sel), dtype=np.float64)
        cues = 0
        if "tokens" in q:
            s = np.zeros(len(sel), dtype=np.float64)
            if "text_vec" in q and "txt" in c:
                s += c["txt"][sel] @ q["text_vec"]
            if q["tokens"] and self.lexical_weight > 0:
                s += self.lexical_weight * self._lexical(level, q)[sel]
            total += s
            cues += 1
        if "image_vec" in q and "img" in c:
            total += c["img"][sel] @ q["image_vec"]
            cues += 1
        if "time_s" in q:
            t = q["time_s"]
            start, end = c["start"][sel], c["end"][sel]
            dist = np.maximum(0.0, np.maximum(start - t, t - end))
            dist[(start <= t) & (t < end)] = 0.0
            total += 1.0 / (1.0 + dist / np.maximum(end - start, 1.0))
            cues += 1
        return total / max(cues, 1)

    def _lexical(self, level: int, q: dict[str, Any]) -> np.ndarray:
        """Share of the query's words found in each node's description (all nodes of the level)."""
        c = self._level_cache(level)
        hits = np.zeros(len(c["ids"]), dtype=np.float64)
        toks = q.get("tokens") or []
        for tok in toks:
            r = c["lex"].get(tok)
            if r is not None:
                hits[r] += 1.0
        return hits / max(len(toks), 1)

    def score(
        self,
        nodes: Sequence[EpisodicNode],
        *,
        text: str | None = None,
        image: np.ndarray | None = None,
        time_s: float | None = None,
    ) -> np.ndarray:
        """The search scores of the given nodes (any levels) for a query, as in `search`."""
        q = self._prepare_query(text, image, time_s)
        out = np.zeros(len(nodes), dtype=np.float64)
        by_level: dict[int, list[int]] = {}
        for j, n in enumerate(nodes):
            by_level.setdefault(n.level, []).append(j)
        for level, js in by_level.items():
            c = self._level_cache(level)
            try:
                rows = np.array([c["pos"][nodes[j].node_id] for j in js], dtype=np.int64)
            except KeyError as exc:
                raise ValueError(f"episodic node {exc} is not in this memory") from exc
            out[js] = self._scores(level, q, rows)
        return out

    def matching(self, text: str, *, level: int = 0, rel_tol: float = 0.1) -> list[EpisodicHit]:
        """Every node that matches ``text`` as well as the best one does, in time order.

        Nodes that hold the most query words match; when no word occurs
        anywhere, nodes within ``rel_tol`` of the best embedding score do. For
        "where did I last / first see X" and "what came right after X".
        """
        self._check_level(level)
        q = self._prepare_query(text, None, None)
        c = self._level_cache(level)
        if len(c["ids"]) == 0:
            return []
        scores = self._scores(level, q)
        lex = self._lexical(level, q)
        if lex.max() > 0:
            sel = np.nonzero(lex >= lex.max() - 1e-9)[0]
        else:
            best = scores.max()
            sel = np.nonzero(scores >= best - rel_tol * max(abs(best), 1e-6))[0]
        sel = sel[np.argsort(c["start"][sel], kind="stable")]
        return [EpisodicHit(self._nodes[int(c["ids"][i])], float(scores[i])) for i in sel]

    def search(
        self,
        *,
        text: str | None = None,
        image: np.ndarray | None = None,
        time_s: float | None = None,
        k: int = 5,
        level: int | None = None,
    ) -> list[EpisodicHit]:
        """Flat search over one level (events by default), best first.

        Args:
            text: a text query, scored against node descriptions (embedding
                cosine plus an exact word match bonus).
            image: an "H W 3" RGB image (needs the image encoder) or an embedding.
            time_s: a time; nodes containing it score 1, others less with distance.
            k: how many hits.
            level: the level to search (0 = events when None).

        Several cues average their scores.
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        lvl = 0 if level is None else level
        self._check_level(lvl)
        q = self._prepare_query(text, image, time_s)
        return self._top(lvl, q, None, k)

    def _top(self, level: int, q: dict[str, Any], rows: np.ndarray | None, k: int) -> list[EpisodicHit]:
        c = self._level_cache(level)
        if len(c["ids"]) == 0:
            return []
        sel = np.arange(len(c["ids"])) if rows is None else rows
        if len(sel) == 0:
            return []
        s = self._scores(level, q, sel)
        k = min(k, len(sel))
        part = np.argpartition(-s, k - 1)[:k] if k < len(sel) else np.arange(len(sel))
        # ties broken by time so results are deterministic
        order = sorted(part.tolist(), key=lambda i: (-s[i], c["start"][sel[i]]))
        return [EpisodicHit(self._nodes[int(c["ids"][sel[i]])], float(s[i])) for i in order]

    def retrieve(
        self,
        *,
        text: str | None = None,
        image: np.ndarray | None = None,
        time_s: float | None = None,
        k: int = 5,
        beam: int = 4,
        budget_s: float | None = None,
        enough: Callable[[list[EpisodicHit]], bool] | None = None,
    ) -> list[EpisodicHit]:
        """Coarse-to-fine search: score the top level, descend into the best spans.

        At each level the ``max(beam, k)`` best nodes are kept and only their
        children are scored one level down. The descent stops early when the
        evidence budget is met: the kept ``k`` hits together last at most
        ``budget_s`` seconds, or ``enough(hits)`` says so.

        Returns:
            Up to ``k`` hits from the level where the descent stopped, best first.
        """
        if k < 1 or beam < 1:
            raise ValueError(f"k and beam must be positive, got k={k}, beam={beam}")
        q = self._prepare_query(text, image, time_s)
        top = max((lvl for lvl in range(self.num_levels) if self._levels[lvl]), default=None)
        if top is None:
            return []
        width = max(beam, k)
        hits = self._top(top, q, None, width)
        level = top
        while True:
            best = hits[:k]
            if enough is not None and enough(best):
                return best
            if budget_s is not None and sum(h.node.duration_s for h in best) <= budget_s:
                return best
            if level == 0:
                return best
            level -= 1
            c = self._level_cache(level)
            rows = sorted({c["pos"][ch] for h in hits for ch in h.node.children if ch in c["pos"]})
            if not rows:
                return best
            hits = self._top(level, q, np.array(rows, dtype=np.int64), width)

    # ------------------------------------------------------------------
    # persistence

    def config(self) -> dict[str, Any]:
        """The constructor settings (JSON), without encoders."""
        return {
            "sample_fps": self.sample_fps,
            "level_spans_s": list(self.level_spans_s),
            "boundary_threshold": self.boundary_threshold,
            "min_event_s": self.min_event_s,
            "keyframes_per_node": self.keyframes_per_node,
            "keyframe_width": self.keyframe_width,
            "jpeg_quality": self.jpeg_quality,
            "tags_per_node": self.tags_per_node,
            "labels_per_node": self.labels_per_node,
            "min_tag_prob": self.min_tag_prob,
            "min_label_area": self.min_label_area,
            "move_threshold_m": self.move_threshold_m,
            "max_nodes": self.max_nodes,
            "lexical_weight": self.lexical_weight,
        }

    def encoder_info(self) -> dict[str, Any]:
        """Names and sizes of the encoders whose embeddings this memory holds."""
        name = getattr(self.image_encoder, "name", None)
        if name is None and self._builtin_embedding:
            name = THUMBNAIL_NAME
        return {
            "image_encoder": name,
            "image_dim": self._dim,
            "text_encoder": getattr(self.text_encoder, "name", None),
            "text_dim": self._text_dim,
        }

    def to_files(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The memory as store files and manifest metadata (see `save`)."""
        from engram.memory.episodic_store import episodic_to_files

        return episodic_to_files(self)

    def save(self, path: str, extra_meta: Mapping[str, Any] | None = None) -> None:
        """Write the memory atomically as a store directory (see `engram.memory.store`)."""
        from engram.memory.episodic_store import write_episodic

        files, meta = self.to_files()
        if extra_meta:
            meta["extra"] = dict(extra_meta)
        write_episodic(path, files, meta)

    @classmethod
    def load(
        cls, path: str, *, image_encoder: Any = None, text_encoder: Any = None, captioner: Any = None
    ) -> EpisodicMemory:
        """Read a memory written by `save`.

        Encoders given here must match the names and sizes recorded at build time.

        Raises:
            FileNotFoundError: nothing at ``path``.
            ValueError: a damaged store, or encoders other than the ones the memory was built with.
        """
        from engram.memory.episodic_store import read_episodic
        from engram.memory.store import decoding

        files, meta = read_episodic(path)
        with decoding(path, "an episodic memory"):
            return cls.from_files(
                files,
                meta,
                image_encoder=image_encoder,
                text_encoder=text_encoder,
                captioner=captioner,
                where=str(path),
            )

    @classmethod
    def from_files(
        cls,
        files: Mapping[str, Any],
        meta: Mapping[str, Any],
        *,
        image_encoder: Any = None,
        text_encoder: Any = None,
        captioner: Any = None,
        where: str = "memory",
    ) -> EpisodicMemory:
        """Rebuild a memory from `to_files` output."""
        from engram.memory.episodic_store import episodic_from_files

        return episodic_from_files(
            cls, files, meta, image_encoder=image_encoder, text_encoder=text_encoder, captioner=captioner, where=where
        )


def thumbnail_embedding(rgb: np.ndarray) -> np.ndarray:
    """A dependency-free image embedding: a 4x4x4 colour histogram and an 8x6 grey thumbnail.

    Used when a frame comes without an embedding and the memory has no image
    encoder, so events can still be cut where the picture changes.
    """
    import cv2

    img = np.asarray(rgb)
    step = max(1, min(img.shape[0], img.shape[1]) // 64)
    q = (img[::step, ::step] >> 6).reshape(-1, 3).astype(np.int64)
    hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
    hist /= max(hist.sum(), 1.0)
    grey = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (8, 6), interpolation=cv2.INTER_AREA)
    g = grey.astype(np.float64).ravel() / 255.0
    g = (g - g.mean()) * 0.5
    v = np.concatenate([np.sqrt(hist), g])
    return v / max(np.linalg.norm(v), 1e-12)


def _image_embedding(node: EpisodicNode) -> np.ndarray:
    """A node's image embedding: every closed node has one, and every open node once refreshed."""
    emb = node.image_embedding
    assert emb is not None, f"episodic node {node.node_id} was never filled"
    return emb


def _clean_tag(tag: str) -> str:
    """ImageNet names such as 'n03063599 coffee mug' or 'coffee_mug' to plain words."""
    tag = re.sub(r"^n\d{8}\s+", "", tag)
    return tag.replace("_", " ").split(",")[0].strip()
