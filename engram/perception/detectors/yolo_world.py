"""The ``yolo_world`` detector: YOLO-World boxes (ultralytics) from a local checkpoint.

Boxes come from a YOLO-World ``.pt`` the user already has (e.g.
``yolov8s-worldv2.pt``). Its vocabulary is the checkpoint's own classes, or
``classes`` from the config with their text embeddings computed by
``text_encoder`` (a local CLIP text encoder of `engram.perception.encoders`
whose embeddings have the checkpoint's width, 512 for the released models):
ultralytics would otherwise fetch a CLIP model at run time, which engram never
does. Masks come from a segmenter prompted with the boxes (``sam``,
``mobile_sam`` or ``fast_sam`` weights from a local path, through ultralytics,
or any object with ``segment(rgb, boxes_xyxy) -> K H W``), or else are the box
interiors refined by depth. ``embedder`` adds region embeddings.

ultralytics is installed without its dependencies (it would pull
opencv-python beside opencv-python-headless): see the README's install section.
"""

from __future__ import annotations

import os
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

__all__ = ["BoxPromptSegmenter", "YoloWorldDetector"]

_SEGMENTERS = ("sam", "mobile_sam", "fast_sam")


def _ultralytics() -> Any:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no update checks or downloads
    return require("ultralytics", "the yolo_world detector")


class BoxPromptSegmenter:
    """Masks for boxes from SAM, MobileSAM or FastSAM weights (ultralytics), loaded from a local file.

    Args:
        kind: "sam", "mobile_sam" or "fast_sam".
        path: the local weights (ultralytics picks the SAM variant from the
            file name: ``sam_b.pt``, ``mobile_sam.pt``, ``FastSAM-s.pt``).
        key: the config key the path came from (for errors).
    """

    def __init__(self, kind: str, path: str | None, key: str = "segmenter_path") -> None:
        if kind not in _SEGMENTERS:
            raise ValueError(f"detector 'yolo_world': segmenter must be one of {_SEGMENTERS} or None, got {kind!r}")
        weights = local_path(path, key, "yolo_world")
        ul = _ultralytics()
        self.kind = kind
        self.model = ul.FastSAM(str(weights)) if kind == "fast_sam" else ul.SAM(str(weights))

    def segment(self, rgb: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if not len(boxes_xyxy):
            return np.zeros((0, h, w), bool)
        res = self.model(
            np.ascontiguousarray(rgb[..., ::-1]),
            bboxes=np.asarray(boxes_xyxy, np.float32).tolist(),
            verbose=False,
        )
        masks = res[0].masks
        if masks is None:
            return np.zeros((len(boxes_xyxy), h, w), bool)
        return masks.data.cpu().numpy().astype(bool)


@register_detector("yolo_world")
class YoloWorldDetector:
    """YOLO-World boxes with masks, labels, scores and (optionally) region embeddings.

    Args:
        model_path: local YOLO-World checkpoint (``.pt``).
        classes: the class vocabulary; None keeps the checkpoint's classes.
        text_encoder: a text encoder (instance, registry name or ``{"name": ..., **kwargs}``)
            embedding ``classes`` when they differ from the checkpoint's.
        prompt: how a class becomes text for ``text_encoder``.
        score_threshold: boxes below this confidence are dropped.
        nms_iou: ultralytics' NMS overlap threshold.
        image_size_px: inference size (a multiple of 32).
        max_detections: at most this many per frame.
        segmenter: None (box masks), "sam", "mobile_sam", "fast_sam", or an
            object with ``segment(rgb, boxes_xyxy)``.
        segmenter_path: local weights of the segmenter.
        embedder: region embeddings of the masks' crops (see `build_embedder`).
        use_depth: refine box masks with the frame's depth.

    Raises:
        FileNotFoundError: a missing ``model_path`` / ``segmenter_path`` (names the key).
        ValueError: ``classes`` differ from the checkpoint's and no usable ``text_encoder``.
        MissingExtraError: ultralytics / torch are not installed.
    """

    name = "yolo_world"

    def __init__(
        self,
        model_path: str,
        classes: Sequence[str] | None = None,
        text_encoder: Any = None,
        prompt: str = "{}",
        score_threshold: float = 0.1,
        nms_iou: float = 0.5,
        image_size_px: int = 640,
        max_detections: int = 50,
        segmenter: Any = None,
        segmenter_path: str | None = None,
        embedder: Any = None,
        use_depth: bool = True,
    ) -> None:
        weights = local_path(model_path, "model_path", self.name)
        ul = _ultralytics()
        self._torch = require("torch", "the yolo_world detector")
        self.model = ul.YOLOWorld(str(weights))
        world = self.model.model
        own = [str(world.names[i]) for i in sorted(world.names)] if getattr(world, "names", None) else []
        if classes is None:
            self.classes = check_vocabulary(own, self.name, "the checkpoint's classes")
        else:
            self.classes = check_vocabulary(classes, self.name)
            if self.classes != own:
                self._set_vocabulary(world, text_encoder, prompt)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.image_size_px = int(image_size_px)
        self.max_detections = int(max_detections)
        self.use_depth = bool(use_depth)
        if isinstance(segmenter, str):
            segmenter = BoxPromptSegmenter(segmenter, segmenter_path)
        elif segmenter is not None and not hasattr(segmenter, "segment"):
            raise ValueError(f"detector 'yolo_world': segmenter needs a segment(rgb, boxes) method, got {segmenter!r}")
        self.segmenter = segmenter
        self.embedder = build_embedder(embedder)

    def _set_vocabulary(self, world: Any, text_encoder: Any, prompt: str) -> None:
        torch = self._torch
        if text_encoder is None:
            raise ValueError(
                f"detector 'yolo_world': classes {self.classes!r} differ from the checkpoint's; give text_encoder "
                "(a local CLIP text encoder, e.g. {name: open_clip, model_name: ViT-B-32, checkpoint_path: ...}) "
                "or leave classes empty to use the checkpoint's"
            )
        if isinstance(text_encoder, (str, dict)):
            from engram.perception.encoders import build_text_encoder

            kw = {"name": text_encoder} if isinstance(text_encoder, str) else dict(text_encoder)
            text_encoder = build_text_encoder(kw.pop("name"), **kw)
        emb = np.asarray(text_encoder.encode([prompt.format(c) for c in self.classes]), np.float32)
        width = int(world.txt_feats.shape[-1]) if getattr(world, "txt_feats", None) is not None else emb.shape[1]
        if emb.ndim != 2 or emb.shape != (len(self.classes), width):
            raise ValueError(
                f"detector 'yolo_world': text_encoder gives embeddings of shape {emb.shape}, "
                f"the checkpoint needs ({len(self.classes)}, {width})"
            )
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        world.txt_feats = torch.from_numpy(emb)[None]
        world.model[-1].nc = len(self.classes)
        world.names = dict(enumerate(self.classes))
        self.model.predictor = None  # a predictor built for the old classes would keep their names

    def detect(self, frame: Frame) -> InstanceMasks:
        h, w = frame.height, frame.width
        res = self.model.predict(
            np.ascontiguousarray(frame.rgb[..., ::-1]),
            imgsz=self.image_size_px,
            conf=self.score_threshold,
            iou=self.nms_iou,
            max_det=self.max_detections,
            verbose=False,
        )[0]
        boxes = res.boxes.xyxy.cpu().numpy().astype(np.float64).reshape(-1, 4)
        scores = res.boxes.conf.cpu().numpy().astype(np.float64)
        cls = res.boxes.cls.cpu().numpy().astype(np.int64)
        if self.segmenter is not None:
            masks = np.asarray(self.segmenter.segment(frame.rgb, boxes))
        else:
            masks = box_masks(boxes, h, w, frame.depth_m if self.use_depth else None)
        one_hot = np.zeros((len(cls), len(self.classes)))  # ultralytics keeps the best class only
        one_hot[np.arange(len(cls)), np.clip(cls, 0, len(self.classes) - 1)] = scores
        return instance_masks(
            frame, masks, cls, scores, self.classes, class_scores=one_hot, embedder=self.embedder, boxes_xyxy=boxes
        )
