"""What the plug-in detectors share: local weights, box masks, region embeddings, output.

Plug-ins (``yolo_world``, ``grounding_dino``, ``owlv2``) load weights the user
already has from a local path: nothing is fetched at run time, and a missing
file is one `FileNotFoundError` naming the config key. Box detectors get masks
here (the box interior, refined by depth when the frame has it), and any
detector can embed its masks' crops with an image encoder of
`engram.perception.encoders` (``embedder=``, e.g. an open_clip CLIP / SigLIP
checkpoint), so that memory objects carry region embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engram.perception.segmentation import InstanceMasks
from engram.types import Frame

__all__ = [
    "RegionEmbedder",
    "box_masks",
    "build_embedder",
    "check_vocabulary",
    "instance_masks",
    "load_transformers_detector",
    "local_path",
    "nms_xyxy",
    "open_vocabulary_output",
]


def local_path(value: Any, key: str, backend: str, *, folder: bool = False) -> Path:
    """``value`` as an existing local file (or folder); the error names the config key.

    Raises:
        FileNotFoundError: ``value`` is empty or does not exist (nothing is downloaded).
    """
    what = "folder" if folder else "file"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FileNotFoundError(
            f"detector {backend!r} needs {key}: a local {what} with the weights (nothing is downloaded)"
        )
    path = Path(str(value)).expanduser()
    ok = path.is_dir() if folder else path.is_file()
    if not ok:
        raise FileNotFoundError(
            f"detector {backend!r}: {key}={str(value)!r} is not an existing local {what} (nothing is downloaded)"
        )
    return path


def check_vocabulary(classes: Any, backend: str, key: str = "classes") -> list[str]:
    """The class vocabulary as a list of non-empty, distinct strings."""
    if isinstance(classes, str) or classes is None:
        raise ValueError(f"detector {backend!r}: {key} must be a list of class names, got {classes!r}")
    out = [c.strip() if isinstance(c, str) else c for c in classes]
    bad = [c for c in out if not isinstance(c, str) or not c]
    if bad or not out:
        raise ValueError(f"detector {backend!r}: {key} must be non-empty strings, got {list(classes)!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"detector {backend!r}: {key} has repeated names: {out!r}")
    return out


def box_masks(
    boxes_xyxy: np.ndarray,
    height: int,
    width: int,
    depth_m: np.ndarray | None = None,
    *,
    depth_band: float = 0.25,
    min_depth_pixels: int = 20,
) -> np.ndarray:
    """ "K H W" masks from "K 4" pixel boxes (x0, y0, x1, y1; float, exclusive max).

    Without depth a mask is the box interior. With depth it keeps the pixels
    of the box within ``depth_band`` (relative) of the nearest large surface
    in it (the 25th depth percentile), so the wall behind a chair stays out.
    A box with fewer than ``min_depth_pixels`` valid depths keeps its interior.
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    masks = np.zeros((len(b), height, width), bool)
    if not len(b):
        return masks
    x0 = np.clip(np.floor(b[:, 0]), 0, width).astype(int)
    y0 = np.clip(np.floor(b[:, 1]), 0, height).astype(int)
    x1 = np.clip(np.ceil(b[:, 2]), 0, width).astype(int)
    y1 = np.clip(np.ceil(b[:, 3]), 0, height).astype(int)
    for i in range(len(b)):  # one step per box, vectorised inside
        if x1[i] <= x0[i] or y1[i] <= y0[i]:
            continue
        masks[i, y0[i] : y1[i], x0[i] : x1[i]] = True
        if depth_m is None:
            continue
        d = depth_m[y0[i] : y1[i], x0[i] : x1[i]]
        valid = np.isfinite(d) & (d > 0)
        if valid.sum() < min_depth_pixels:
            continue
        ref = np.percentile(d[valid], 25)
        masks[i, y0[i] : y1[i], x0[i] : x1[i]] = valid & (np.abs(d - ref) <= depth_band * ref)
    return masks


class RegionEmbedder:
    """Embeds each mask's crop with an image encoder (background outside the mask greyed).

    Args:
        encoder: an image encoder instance (``encode(list of H W 3 uint8) -> N D``).
        context: the crop grows by this share of the mask box on each side.
        min_crop_px: crops are at least this many pixels wide.
    """

    def __init__(self, encoder: Any, context: float = 0.1, min_crop_px: int = 16) -> None:
        if not hasattr(encoder, "encode"):
            raise ValueError(f"an embedder needs an encode(images) method, got {type(encoder).__name__}")
        self.encoder = encoder
        self.context = float(context)
        self.min_crop_px = int(min_crop_px)
        self.space = str(getattr(encoder, "space", None) or getattr(encoder, "name", type(encoder).__name__))

    def crops(self, rgb: np.ndarray, masks: np.ndarray) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        out = []
        for m in masks:  # one step per mask
            ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            if not len(ys):
                out.append(np.full((self.min_crop_px, self.min_crop_px, 3), 127, np.uint8))
                continue
            pad_y = max(
                int(self.context * (ys[-1] - ys[0] + 1)),
                (self.min_crop_px - (ys[-1] - ys[0] + 1)) // 2,
                0,
            )
            pad_x = max(
                int(self.context * (xs[-1] - xs[0] + 1)),
                (self.min_crop_px - (xs[-1] - xs[0] + 1)) // 2,
                0,
            )
            ya, yb = max(ys[0] - pad_y, 0), min(ys[-1] + 1 + pad_y, h)
            xa, xb = max(xs[0] - pad_x, 0), min(xs[-1] + 1 + pad_x, w)
            crop = rgb[ya:yb, xa:xb].copy()
            crop[~m[ya:yb, xa:xb]] = 127
            out.append(crop)
        return out

    def __call__(self, rgb: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """ "K D" float32 embeddings of the masks' crops."""
        if not len(masks):
            return np.zeros((0, int(getattr(self.encoder, "dim", 0) or 0)), np.float32)
        emb = np.asarray(self.encoder.encode(self.crops(rgb, masks)), np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(masks):
            raise ValueError(f"embedder {self.space!r} returned shape {emb.shape} for {len(masks)} crops")
        return emb


def build_embedder(spec: Any) -> RegionEmbedder | None:
    """A `RegionEmbedder` from None, an encoder instance, a registry name, or ``{"name": ..., **kwargs}``.

    E.g. ``{"name": "open_clip", "model_name": "ViT-B-32", "checkpoint_path": "/models/clip.bin"}``.
    """
    if spec is None or isinstance(spec, RegionEmbedder):
        return spec
    from engram.perception.encoders import build_image_encoder

    if isinstance(spec, str):
        return RegionEmbedder(build_image_encoder(spec))
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if not isinstance(name, str):
            raise TypeError(f"embedder config needs a 'name' (an image encoder), got {spec!r}")
        context = kwargs.pop("context", 0.1)
        return RegionEmbedder(build_image_encoder(name, **kwargs), context=context)
    return RegionEmbedder(spec)


def instance_masks(
    frame: Frame,
    masks: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    *,
    class_scores: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    embedder: RegionEmbedder | None = None,
    boxes_xyxy: np.ndarray | None = None,
    min_pixels: int = 1,
) -> InstanceMasks:
    """Assemble a plug-in's output: drop empty masks, label, embed.

    Args:
        masks: "K H W" bool at the frame's resolution.
        class_ids: "K" indices into ``classes``.
        scores: "K" confidences (returned as given: `run_detector` checks them).
        class_scores: optional "K C" per-class scores, kept as ``label_scores``.
        embeddings: the model's own "K D" region features; replaced by the
            embedder's when one is given.
        boxes_xyxy: the "K 4" boxes, kept in ``extra["boxes_xyxy"]``.
    """
    masks = np.asarray(masks, bool)
    n_ids, n_scores = (
        len(np.asarray(class_ids).reshape(-1)),
        len(np.asarray(scores).reshape(-1)),
    )
    if masks.ndim != 3 or not len(masks) == n_ids == n_scores:
        raise ValueError(f"{n_ids} boxes and {n_scores} scores but masks of shape {masks.shape}")
    keep = masks.reshape(len(masks), -1).sum(axis=1) >= min_pixels if len(masks) else np.zeros(0, bool)
    masks = masks[keep]
    ids = np.asarray(class_ids, np.int64).reshape(-1)[keep]
    if len(ids) and (ids.min() < 0 or ids.max() >= len(classes)):
        raise ValueError(f"class ids {sorted(set(ids.tolist()))[:5]} outside the {len(classes)}-class vocabulary")
    sc = np.asarray(scores, np.float64).reshape(-1)[keep]
    labels = [classes[int(i)] for i in ids]
    label_scores = None
    if class_scores is not None:
        cs = np.asarray(class_scores, np.float64)[keep]
        label_scores = [
            {c: float(v) for c, v in zip(classes, row) if v > 0.01} or {lab: float(s)}
            for row, lab, s in zip(cs, labels, sc)
        ]
    if embedder is not None:
        embeddings = embedder(frame.rgb, masks)
    elif embeddings is not None:
        embeddings = np.asarray(embeddings, np.float32)[keep]
    extra = {} if boxes_xyxy is None else {"boxes_xyxy": np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)[keep]}
    return InstanceMasks(masks, labels, sc, embeddings=embeddings, label_scores=label_scores, extra=extra)


def load_transformers_detector(
    model_path: Any, classes: Any, backend: str, model_class: str, num_threads: int | None
) -> tuple[list[str], Any, Any, Any]:
    """A transformers detector from a local folder: (classes, torch, processor, model in eval mode).

    Raises:
        FileNotFoundError: ``model_path`` is not a folder (names the config key).
        MissingExtraError: transformers or torch is missing (names the extra).
    """
    from engram._optional import require

    folder = local_path(model_path, "model_path", backend, folder=True)
    checked = check_vocabulary(classes, backend)
    transformers = require("transformers", f"the {backend} detector")
    torch = require("torch", f"the {backend} detector")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = getattr(transformers, model_class).from_pretrained(folder, local_files_only=True).eval()
    return checked, torch, processor, model


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


def open_vocabulary_output(
    frame: Frame,
    cxcywh: np.ndarray,
    scale_xy: tuple[float, float],
    probs: np.ndarray,
    features: np.ndarray | None,
    classes: Sequence[str],
    *,
    threshold: float,
    nms_iou: float,
    max_detections: int,
    use_depth: bool,
    embedder: RegionEmbedder | None,
) -> InstanceMasks:
    """A text-queried box detector's raw output as `InstanceMasks`.

    Args:
        cxcywh: "Q 4" relative centre-size boxes; ``scale_xy`` turns them into pixels.
        probs: "Q C" per-class scores; each query takes its best class.
        features: the model's "Q D" region features (or None).
        threshold, nms_iou, max_detections: queries below ``threshold`` go, then greedy
            non-maximum suppression, then the best ``max_detections``.
        use_depth: refine box masks with the frame's depth when it has some.
    """
    h, w = frame.height, frame.width
    sx, sy = scale_xy
    half_w, half_h = cxcywh[:, 2] / 2, cxcywh[:, 3] / 2
    boxes = np.stack(
        [
            (cxcywh[:, 0] - half_w) * sx,
            (cxcywh[:, 1] - half_h) * sy,
            (cxcywh[:, 0] + half_w) * sx,
            (cxcywh[:, 1] + half_h) * sy,
        ],
        axis=1,
    )
    boxes = np.clip(boxes, 0, [w, h, w, h])
    cls = probs.argmax(axis=1)
    score = probs.max(axis=1)
    keep = np.flatnonzero((score >= threshold) & (score > 0))
    keep = keep[nms_xyxy(boxes[keep], score[keep], nms_iou)][:max_detections]
    masks = box_masks(boxes[keep], h, w, frame.depth_m if use_depth else None)
    return instance_masks(
        frame, masks, cls[keep], score[keep], classes,
        class_scores=probs[keep], embeddings=None if features is None else features[keep], embedder=embedder,
        boxes_xyxy=boxes[keep],
    )  # fmt: skip
