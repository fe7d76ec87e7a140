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

from engram.perception.detectors import register_detector
from engram.perception.detectors._plugin import (
    build_embedder,
    load_transformers_detector,
    nms_xyxy,
    open_vocabulary_output,
)
from engram.perception.segmentation import InstanceMasks
from engram.types import Frame

__all__ = ["DEFAULT_CLASSES", "Owlv2Detector", "nms_xyxy"]

DEFAULT_CLASSES = (
    "chair", "table", "sofa", "bed", "cabinet", "shelf", "mug", "cup", "bottle", "bowl", "plant", "lamp",
    "monitor", "tv", "keyboard", "laptop", "book", "magazine", "box", "fridge", "sink", "toilet",
)  # fmt: skip


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
        self.classes, self._torch, self.processor, self.model = load_transformers_detector(
            model_path, classes, self.name, "Owlv2ForObjectDetection", num_threads
        )
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
        feats = out.class_embeds[0].float().numpy() if getattr(out, "class_embeds", None) is not None else None
        return open_vocabulary_output(
            frame, cxcywh, (side, side), probs, feats, self.classes,
            threshold=self.score_threshold, nms_iou=self.nms_iou, max_detections=self.max_detections,
            use_depth=self.use_depth, embedder=self.embedder,
        )  # fmt: skip
