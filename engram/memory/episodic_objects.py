"""Object tracks for the episodic timeline: what was seen, where in the picture, and when.

A detector turns each sampled frame into instance masks (labels, scores,
boxes, embeddings). `ObjectTracker` links them across frames into tracks by
box overlap and appearance only (never by ids a source supplies): a detection
joins the active track with the best combined overlap-and-appearance affinity,
greedily, best pair first; a track that was not seen for ``max_gap_s`` ends.
Each track keeps its label (the label with the most accumulated score over its
detections), its last box (normalised to the image), the mean appearance
embedding, the spans it was visible in, and its first and last time. Per frame
the tracker also keeps how many detections of each label were in view, so a
"how many" question is answered by the most seen at once (tracks fragment;
simultaneous counts do not double-count). The timeline (`EpisodicMemory`)
owns one tracker and saves it with itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ObjectTrack", "ObjectTracker", "box_iou"]


@dataclass
class ObjectTrack:
    """One object followed across frames.

    Attributes:
        track_id: unique within its memory.
        label_votes: label -> summed detection score; ``label`` is the best one.
        first_s, last_s: first and last time it was in view.
        box: "4" last box (x0, y0, x1, y1) as fractions of the image width/height.
        embedding: "D" float32 unit mean appearance (None when the detector gives none).
        frames: sampled frames it was detected in.
        spans: [start_s, end_s] of each stretch it stayed in view (gaps up to the tracker's ``max_gap_s``).
    """

    track_id: int
    label_votes: dict[str, float]
    first_s: float
    last_s: float
    box: np.ndarray
    embedding: np.ndarray | None = None
    frames: int = 0
    spans: list[list[float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return max(self.label_votes.items(), key=lambda kv: (kv[1], kv[0]))[0] if self.label_votes else "object"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.track_id,
            "votes": {k: round(v, 4) for k, v in self.label_votes.items()},
            "first_s": self.first_s,
            "last_s": self.last_s,
            "box": [round(float(v), 4) for v in self.box],
            "frames": self.frames,
            "spans": self.spans,
        }


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ "N M" intersection over union of "N 4" and "M 4" xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _count_objects(labels: list[str], boxes: np.ndarray) -> dict[str, int]:
    """Objects per label in one frame: same-label boxes that overlap count once (a detector splits
    one person into torso and legs; separate cups on a table do not overlap)."""
    counts: dict[str, int] = {}
    for lab in set(labels):
        idx = [i for i, x in enumerate(labels) if x == lab]
        b = boxes[idx]
        touch = box_iou(b, b) > 0.0
        # connected components of the overlap graph (a handful of boxes: a few matrix squarings)
        reach = touch.copy()
        for _ in range(max(1, int(np.ceil(np.log2(max(len(idx), 2)))))):
            reach = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
        counts[lab] = len({tuple(row) for row in reach.tolist()})
    return counts


class ObjectTracker:
    """Links per-frame detections into `ObjectTrack`s by box overlap and appearance.

    Args:
        max_gap_s: a track not seen for longer than this ends (a later look-alike starts a new one).
        min_iou: overlap that links a detection to a track of the same label on its own.
        min_appearance: embedding cosine that links a detection to a track whose box
            moved (the camera turned) when the labels agree and the boxes still touch
            or the gap is one sample.
        min_score: detections scored below this are ignored.
    """

    def __init__(
        self,
        max_gap_s: float = 2.5,
        min_iou: float = 0.3,
        min_appearance: float = 0.85,
        min_score: float = 0.0,
    ) -> None:
        if not (math.isfinite(max_gap_s) and max_gap_s > 0):
            raise ValueError(f"max_gap_s must be a positive number, got {max_gap_s!r}")
        self.max_gap_s = float(max_gap_s)
        self.min_iou = float(min_iou)
        self.min_appearance = float(min_appearance)
        self.min_score = float(min_score)
        self.tracks: dict[int, ObjectTrack] = {}
        self._active: list[int] = []
        self._next_id = 0
        # per sampled frame with detections: (time_s, {label: detections in view})
        self.frame_counts: list[tuple[float, dict[str, int]]] = []

    def __len__(self) -> int:
        return len(self.tracks)

    def config(self) -> dict[str, float]:
        return {
            "max_gap_s": self.max_gap_s,
            "min_iou": self.min_iou,
            "min_appearance": self.min_appearance,
            "min_score": self.min_score,
        }

    @staticmethod
    def check(
        labels: Sequence[str],
        boxes: np.ndarray,
        scores: np.ndarray,
        embeddings: np.ndarray | None,
    ) -> None:
        """Raise ValueError on malformed detections (before anything is changed)."""
        k = len(labels)
        if boxes.shape != (k, 4) or scores.shape != (k,):
            raise ValueError(
                f"detections: {k} labels need boxes (K, 4) and scores (K,), got {boxes.shape}, {scores.shape}"
            )
        if not (np.all(np.isfinite(boxes)) and np.all(np.isfinite(scores))):
            raise ValueError("detections: boxes and scores must be finite")
        if embeddings is not None and (
            embeddings.ndim != 2 or embeddings.shape[0] != k or not np.all(np.isfinite(embeddings))
        ):
            raise ValueError(f"detections: embeddings must be finite with shape ({k}, D), got {embeddings.shape}")

    def update(
        self,
        time_s: float,
        labels: Sequence[str],
        boxes: np.ndarray,
        scores: np.ndarray,
        embeddings: np.ndarray | None = None,
    ) -> list[int]:
        """Add one frame's detections; returns the track id of each (-1 for ignored ones).

        Args:
            time_s: the frame's time (not earlier than the last call's).
            labels: K labels.
            boxes: "K 4" xyxy boxes as fractions of the image size.
            scores: "K" detection scores.
            embeddings: optional "K D" appearance embeddings.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        emb = None if embeddings is None else np.asarray(embeddings, np.float64)
        self.check(labels, boxes, scores, emb)
        if emb is not None:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self._active = [i for i in self._active if time_s - self.tracks[i].last_s <= self.max_gap_s]
        keep = np.flatnonzero(scores >= self.min_score)
        out = [-1] * len(labels)
        counts = _count_objects([labels[j] for j in keep.tolist()], boxes[keep])
        if counts:
            self.frame_counts.append((float(time_s), counts))
        active = [self.tracks[i] for i in self._active]
        pairs: list[tuple[float, int, int]] = []
        if active and keep.size:
            iou = box_iou(boxes[keep], np.stack([t.box for t in active]))
            cos = np.zeros_like(iou)
            if emb is not None:
                has = [a for a, t in enumerate(active) if t.embedding is not None and t.embedding.size == emb.shape[1]]
                if has:
                    tm = np.stack([np.asarray(active[a].embedding) for a in has]).astype(np.float64)
                    cos[:, has] = emb[keep] @ tm.T
            for r, j in enumerate(keep.tolist()):
                for c, t in enumerate(active):
                    same = t.label == labels[j] or labels[j] in t.label_votes
                    one_step = time_s - t.last_s <= self.max_gap_s
                    ok = (same and iou[r, c] >= self.min_iou) or (
                        same and cos[r, c] >= self.min_appearance and (iou[r, c] > 0 or one_step)
                    )
                    if ok:
                        pairs.append((float(iou[r, c] + cos[r, c]), j, c))
        pairs.sort(key=lambda p: -p[0])
        used_det: set[int] = set()
        used_trk: set[int] = set()
        for _, j, c in pairs:
            if j in used_det or c in used_trk:
                continue
            used_det.add(j)
            used_trk.add(c)
            out[j] = self._extend(
                active[c],
                time_s,
                labels[j],
                boxes[j],
                scores[j],
                None if emb is None else emb[j],
            )
        for j in keep.tolist():
            if j not in used_det:
                out[j] = self._start(
                    time_s,
                    labels[j],
                    boxes[j],
                    scores[j],
                    None if emb is None else emb[j],
                )
        return out

    def _start(
        self,
        t: float,
        label: str,
        box: np.ndarray,
        score: float,
        emb: np.ndarray | None,
    ) -> int:
        tid = self._next_id
        self._next_id += 1
        self.tracks[tid] = ObjectTrack(
            track_id=tid,
            label_votes={label: max(float(score), 1e-3)},
            first_s=float(t),
            last_s=float(t),
            box=np.asarray(box, np.float64).copy(),
            embedding=None if emb is None else emb.astype(np.float32),
            frames=1,
            spans=[[float(t), float(t)]],
        )
        self._active.append(tid)
        return tid

    def _extend(
        self,
        trk: ObjectTrack,
        t: float,
        label: str,
        box: np.ndarray,
        score: float,
        emb: np.ndarray | None,
    ) -> int:
        trk.label_votes[label] = trk.label_votes.get(label, 0.0) + max(float(score), 1e-3)
        if emb is not None and trk.embedding is not None and trk.embedding.size == emb.size:
            m = trk.embedding.astype(np.float64) * trk.frames + emb
            trk.embedding = (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)
        trk.box = np.asarray(box, np.float64).copy()
        if t - trk.spans[-1][1] <= self.max_gap_s:
            trk.spans[-1][1] = float(t)
        else:
            trk.spans.append([float(t), float(t)])
        trk.last_s = float(t)
        trk.frames += 1
        return trk.track_id

    # ------------------------------------------------------------------
    # reading

    def labels(self) -> list[str]:
        """Every track label, most frequent first."""
        n: dict[str, int] = {}
        for t in self.tracks.values():
            n[t.label] = n.get(t.label, 0) + t.frames
        return sorted(n, key=lambda k: (-n[k], k))

    def of_labels(self, labels: Iterable[str]) -> list[ObjectTrack]:
        want = set(labels)
        return sorted(
            (t for t in self.tracks.values() if t.label in want),
            key=lambda t: t.first_s,
        )

    def in_span(self, start_s: float, end_s: float) -> list[ObjectTrack]:
        """Tracks in view at some time inside [start_s, end_s]."""
        return [t for t in self.tracks.values() if any(a <= end_s and b >= start_s for a, b in t.spans)]

    def most_at_once(self, labels: Iterable[str], span: tuple[float, float] | None = None) -> tuple[int, float | None]:
        """The most detections of ``labels`` in one frame (within ``span``), and that frame's time."""
        want = set(labels)
        best, when = 0, None
        for t, counts in self.frame_counts:
            if span is not None and not span[0] <= t <= span[1]:
                continue
            n = sum(v for k, v in counts.items() if k in want)
            if n > best:
                best, when = n, t
        return best, when

    def frames_with(self, labels: Iterable[str], min_count: int = 1) -> list[float]:
        """Times of the sampled frames in which ``labels`` were detected."""
        want = set(labels)
        return [t for t, c in self.frame_counts if sum(v for k, v in c.items() if k in want) >= min_count]

    # ------------------------------------------------------------------
    # persistence

    def to_files(self) -> dict[str, Any]:
        ids = sorted(self.tracks)
        dims = {e.size for i in ids if (e := self.tracks[i].embedding) is not None}
        dim = dims.pop() if len(dims) == 1 else 0
        # unit vectors as int8 (x127): a fifth of float32 on disk, cosine error below 1 %
        emb = np.zeros((len(ids), dim), np.int8)
        for row, i in enumerate(ids):
            e = self.tracks[i].embedding
            if dim and e is not None:
                emb[row] = np.clip(np.round(e.astype(np.float64) * 127.0), -127, 127)
        return {
            "tracks.json": {
                "config": self.config(),
                "next_id": self._next_id,
                "active": self._active,
                "tracks": [self.tracks[i].to_json() for i in ids],
                "has_embedding": [self.tracks[i].embedding is not None and bool(dim) for i in ids],
                "frame_counts": [[t, c] for t, c in self.frame_counts],
            },
            "track_embeddings.npy": emb,
        }

    @classmethod
    def from_files(cls, files: Any, where: str = "memory") -> ObjectTracker:
        try:
            doc = files["tracks.json"]
            raw = np.asarray(files["track_embeddings.npy"])
            emb = raw.astype(np.float32) / 127.0 if raw.dtype == np.int8 else raw.astype(np.float32)
            if emb.size:
                emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            trk = cls(**doc["config"])
            trk._next_id = int(doc["next_id"])
            trk._active = [int(i) for i in doc["active"]]
            for row, (r, has) in enumerate(zip(doc["tracks"], doc["has_embedding"])):
                t = ObjectTrack(
                    track_id=int(r["id"]),
                    label_votes={str(k): float(v) for k, v in r["votes"].items()},
                    first_s=float(r["first_s"]),
                    last_s=float(r["last_s"]),
                    box=np.asarray(r["box"], np.float64),
                    embedding=emb[row].copy() if has else None,
                    frames=int(r["frames"]),
                    spans=[[float(a), float(b)] for a, b in r["spans"]],
                )
                trk.tracks[t.track_id] = t
            trk.frame_counts = [(float(t), {str(k): int(v) for k, v in c.items()}) for t, c in doc["frame_counts"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{where}: the object tracks are damaged ({type(exc).__name__}: {exc})") from exc
        return trk
