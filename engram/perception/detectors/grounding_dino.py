"""The ``grounding_dino`` detector: Grounding DINO boxes (transformers) from a local folder.

The folder is what ``save_pretrained`` writes for
``GroundingDinoForObjectDetection`` and its processor, e.g. a copy of
``IDEA-Research/grounding-dino-tiny`` the user already has. The vocabulary
becomes one caption (``"chair. mug. table."``); a box's score for a class is
its best token probability within that class's words, masks come from the
boxes (refined by depth), and the decoder's query features are the region
embeddings unless an ``embedder`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engram.perception.detectors import register_detector
from engram.perception.detectors._plugin import build_embedder, load_transformers_detector, open_vocabulary_output
from engram.perception.detectors.owlv2 import DEFAULT_CLASSES
from engram.perception.segmentation import InstanceMasks
from engram.types import Frame

__all__ = ["GroundingDinoDetector"]


@register_detector("grounding_dino")
class GroundingDinoDetector:
    """Grounding DINO boxes for a text vocabulary, with masks, labels, scores and embeddings.

    Args:
        model_path: local folder written by ``save_pretrained`` (model and processor).
        classes: the class vocabulary (joined into one caption).
        box_threshold: boxes whose best class score is below this are dropped.
        nms_iou: boxes overlapping a better one by more than this are dropped.
        max_detections: at most this many per frame.
        embedder: region embeddings from an image encoder instead of the
            decoder's features (see `build_embedder`).
        use_depth: refine box masks with the frame's depth.
        num_threads: torch intra-op threads (None: leave torch's setting).

    Raises:
        FileNotFoundError: ``model_path`` is not a local folder (names the key).
        ValueError: the caption does not fit the model's text length.
        MissingExtraError: transformers / torch are not installed.
    """

    name = "grounding_dino"

    def __init__(
        self,
        model_path: str,
        classes: Sequence[str] = DEFAULT_CLASSES,
        box_threshold: float = 0.3,
        nms_iou: float = 0.5,
        max_detections: int = 50,
        embedder: Any = None,
        use_depth: bool = True,
        num_threads: int | None = None,
    ) -> None:
        self.classes, self._torch, self.processor, self.model = load_transformers_detector(
            model_path, classes, self.name, "GroundingDinoForObjectDetection", num_threads
        )
        self.box_threshold = float(box_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        self.use_depth = bool(use_depth)
        self.embedder = build_embedder(embedder)
        # the caption "a. b. c." tokenises class by class: [CLS] a . b . c . [SEP]
        tokenizer = self.processor.tokenizer
        self.caption = " ".join(f"{c.lower()}." for c in self.classes)
        self._spans = []
        start = 1
        for c in self.classes:
            n = len(tokenizer.tokenize(c.lower()))
            self._spans.append((start, start + n))
            start += n + 1
        max_len = int(getattr(self.model.config, "max_text_len", 256))
        if start + 1 > max_len:
            raise ValueError(
                f"detector 'grounding_dino': the caption of {len(self.classes)} classes takes {start + 1} tokens, "
                f"more than the model's max_text_len {max_len}; use fewer classes"
            )

    def detect(self, frame: Frame) -> InstanceMasks:
        torch = self._torch
        h, w = frame.height, frame.width
        inputs = self.processor(images=frame.rgb, text=self.caption, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**inputs)
        token_probs = torch.sigmoid(out.logits[0]).float().numpy()  # "Q T"
        probs = np.stack([token_probs[:, a:b].max(axis=1) for a, b in self._spans], axis=1)  # "Q C"
        cxcywh = out.pred_boxes[0].float().numpy()  # relative to the (unpadded) image
        return open_vocabulary_output(
            frame, cxcywh, (float(w), float(h)), probs, out.last_hidden_state[0].float().numpy(), self.classes,
            threshold=self.box_threshold, nms_iou=self.nms_iou, max_detections=self.max_detections,
            use_depth=self.use_depth, embedder=self.embedder,
        )  # fmt: skip
