"""Detectors: one frame in, instance masks with labels, scores and embeddings out.

Every backend implements the `Detector` protocol (``detect(frame) ->
InstanceMasks``) and registers itself under a name; `build_detector` builds one
by name, the way the encoders' registry does. The memory never trusts ids
across frames: a detector's masks are per-frame, and association happens in
the object map.

Backends (modules in this package, imported when first built):

- ``rgbd`` (the default): class-agnostic proposals from depth and colour
  (structure removed, the rest split at depth and normal edges), each labelled
  by the offline image encoder on its crop. CPU only, nothing to download.
- ``rgb``: the same labelling on 2D proposals from colour alone, for sources
  without depth (videos).
- ``oracle``: a simulator's ground-truth masks (``Frame.instances``). A
  baseline to score against, never chosen silently.
- plug-ins that load weights the user brings from a local path
  (``yolo_world``, ``grounding_dino``, ``owlv2``).

`run_detector` calls a backend and checks what it returned, so a malformed
output is one `DetectorError` naming the backend before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engram._util import Registry
from engram.perception.segmentation import Detector, InstanceMasks
from engram.types import Frame

__all__ = [
    "Detector",
    "DetectorError",
    "InstanceMasks",
    "available_detectors",
    "build_detector",
    "register_detector",
    "run_detector",
]

# name -> module that registers it (imported lazily so that `import engram` stays light)
_REGISTRY: Registry[Detector] = Registry(
    "detector",
    {
        "oracle": "engram.perception.detectors.oracle",
        "rgbd": "engram.perception.detectors.rgbd",
        "rgb": "engram.perception.detectors.rgbd",
        "yolo_world": "engram.perception.detectors.yolo_world",
        "grounding_dino": "engram.perception.detectors.grounding_dino",
        "owlv2": "engram.perception.detectors.owlv2",
    },
)


class DetectorError(ValueError):
    """A detector returned something malformed (or failed); the message names the backend."""


def register_detector(name: str) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Class or factory decorator: ``@register_detector("mine")`` makes ``build_detector("mine")`` work."""
    return _REGISTRY.register(name)


def available_detectors() -> list[str]:
    """Names that `build_detector` accepts (plug-ins are listed even when their package is missing)."""
    return _REGISTRY.available()


def build_detector(name: str | Detector, **kwargs: Any) -> Detector:
    """Build a detector by registry name (an instance passes through unchanged).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        MissingExtraError: the backend's package is not installed (names the extra).
    """
    if not isinstance(name, str):
        if not isinstance(name, Detector):
            raise ValueError(f"a detector needs a detect(frame) method and a name, got {type(name).__name__}")
        return name
    return _REGISTRY.build(name, **kwargs)


def run_detector(detector: Detector, frame: Frame) -> InstanceMasks:
    """``detector.detect(frame)``, with its output checked against the frame.

    Raises:
        DetectorError: the output is not `InstanceMasks`, its masks do not match
            the frame's size, or its labels, scores or embeddings are malformed.
    """
    name = getattr(detector, "name", type(detector).__name__)
    try:
        out = detector.detect(frame)
    except DetectorError:
        raise
    except ValueError as exc:  # InstanceMasks validation inside the backend
        raise DetectorError(f"detector {name!r} returned malformed output on frame {frame.index}: {exc}") from exc
    if not isinstance(out, InstanceMasks):
        raise DetectorError(f"detector {name!r} must return InstanceMasks, got {type(out).__name__}")
    k, h, w = out.masks.shape
    if (h, w) != (frame.height, frame.width):
        raise DetectorError(
            f"detector {name!r} returned masks of size {(h, w)} for a frame of size {(frame.height, frame.width)}"
        )
    bad = [lab for lab in out.labels if not isinstance(lab, str) or not lab.strip()]
    if bad:
        raise DetectorError(f"detector {name!r} returned labels that are not non-empty strings: {bad[:3]!r}")
    if out.embeddings is not None and not np.all(np.isfinite(out.embeddings)):
        raise DetectorError(f"detector {name!r} returned NaN or inf embeddings")
    return out
