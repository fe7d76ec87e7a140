"""The ``owlv2`` detector: OWLv2 open-vocabulary boxes (transformers) from a local folder.

The folder is what ``save_pretrained`` writes for ``Owlv2ForObjectDetection``
and its processor (config, weights, tokenizer, image processor), e.g. a copy
of ``google/owlv2-base-patch16-ensemble`` the user already has. Each class of
the vocabulary is a text query (``prompt`` formats it); a box takes the class
it scores best, masks come from the boxes (refined by depth), and the model's
class embeddings (in its text space) are the region embeddings unless an
``embedder`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engram._optional import require
from engram.perception.detectors import register_detector
from engram.perception.detectors._plugin import (
    box_masks,
    build_embedder,
    check_vocabulary,
    instance_masks,
    local_path,
)
from engram.perception.segmentation import InstanceMasks
from engram.types import Frame

__all__ = ["DEFAULT_CLASSES", "Owlv2Detector", "nms_xyxy"]

DEFAULT_CLASSES = (
    "chair", "table", "sofa", "bed", "cabinet", "shelf", "mug", "cup", "bottle", "bowl", "plant", "lamp",
    "monitor", "tv", "keyboard", "laptop", "book", "magazine", "box", "fridge", "sink", "toilet",
)  # fmt: skip


def nms_xyxy(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first (class-agnostic)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    keep: list[int] = []
    while len(order):  # one step per kept box
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = w * h
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[overlap <= iou]
    return np.asarray(keep, np.int64)


@register_detector("owlv2")
class Owlv2Detector:
    """OWLv2 boxes for a text vocabulary, with masks, labels, scores and embeddings.

    Args:
        model_path: local folder written by ``save_pretrained`` (model and processor).
        classes: the class vocabulary (one text query each).
        prompt: how a class becomes a query (``"a photo of a {}"``).
        score_threshold: boxes below this sigmoid score are dropped.
        nms_iou: boxes overlapping a better one by more than this are dropped.
        max_detections: at most this many per frame.
        embedder: region embeddings from an image encoder instead of the
            model's class embeddings (see `build_embedder`).
        use_depth: refine box masks with the frame's depth.
        num_threads: torch intra-op threads (None: leave torch's setting).

    Raises:
        FileNotFoundError: ``model_path`` is not a local folder (names the key).
        MissingExtraError: transformers / torch are not installed.
    """

    name = "owlv2"

    def __init__(
        self,
        model_path: str,
        classes: Sequence[str] = DEFAULT_CLASSES,
        prompt: str = "a photo of a {}",
        score_threshold: float = 0.2,
        nms_iou: float = 0.5,
        max_detections: int = 50,
        embedder: Any = None,
        use_depth: bool = True,
        num_threads: int | None = None,
    ) -> None:
        folder = local_path(model_path, "model_path", self.name, folder=True)
        self.classes = check_vocabulary(classes, self.name)
        transformers = require("transformers", "the owlv2 detector")
        self._torch = require("torch", "the owlv2 detector")
        if num_threads is not None:
            self._torch.set_num_threads(int(num_threads))
        self.processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.model = transformers.Owlv2ForObjectDetection.from_pretrained(folder, local_files_only=True).eval()
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        self.use_depth = bool(use_depth)
        self.embedder = build_embedder(embedder)
        self._text = self.processor(
            text=[[prompt.format(c) for c in self.classes]],
            return_tensors="pt",
            padding="max_length",
            truncation=True,
        )

    def detect(self, frame: Frame) -> InstanceMasks:
        torch = self._torch
        h, w = frame.height, frame.width
        pixels = self.processor(images=frame.rgb, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            out = self.model(
                pixel_values=pixels,
                input_ids=self._text["input_ids"],
                attention_mask=self._text["attention_mask"],
            )
        probs = torch.sigmoid(out.logits[0]).float().numpy()  # "Q C"
        cxcywh = out.pred_boxes[0].float().numpy()  # relative to the image padded to a square
        side = float(max(h, w))
        boxes = np.stack(
            [
                (cxcywh[:, 0] - cxcywh[:, 2] / 2) * side,
                (cxcywh[:, 1] - cxcywh[:, 3] / 2) * side,
                (cxcywh[:, 0] + cxcywh[:, 2] / 2) * side,
                (cxcywh[:, 1] + cxcywh[:, 3] / 2) * side,
            ],
            axis=1,
        )
        boxes = np.clip(boxes, 0, [w, h, w, h])
        cls = probs.argmax(axis=1)
        score = probs.max(axis=1)
        keep = np.flatnonzero((score >= self.score_threshold) & (score > 0))
        keep = keep[nms_xyxy(boxes[keep], score[keep], self.nms_iou)][: self.max_detections]
        depth = frame.depth_m if self.use_depth else None
        masks = box_masks(boxes[keep], h, w, depth)
        feats = out.class_embeds[0].float().numpy()[keep] if getattr(out, "class_embeds", None) is not None else None
        return instance_masks(
            frame, masks, cls[keep], score[keep], self.classes,
            class_scores=probs[keep], embeddings=feats, embedder=self.embedder,
            boxes_xyxy=boxes[keep],
        )  # fmt: skip
