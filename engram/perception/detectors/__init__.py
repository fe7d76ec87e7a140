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

from collections.abc import Callable, Sequence
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
    "run_detector_batch",
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
    return run_detector_batch(detector, [frame], batch=False)[0]


def run_detector_batch(detector: Detector, frames: Sequence[Frame], *, batch: bool = True) -> list[InstanceMasks]:
    """Every frame's `run_detector` output; one ``detector.detect_batch(frames)`` call where the backend has one.

    A backend's ``detect_batch`` (the ``rgbd`` / ``rgb`` detectors: one crop-classifier
    call for all the frames' segments) must give what ``detect`` gives frame by frame.

    Raises:
        DetectorError: as `run_detector`, naming the frame.
    """
    name = getattr(detector, "name", type(detector).__name__)
    frames = list(frames)
    detect_batch = getattr(detector, "detect_batch", None) if batch else None
    try:
        if callable(detect_batch):
            outs = list(detect_batch(frames))
            if len(outs) != len(frames):
                raise DetectorError(f"detector {name!r} returned {len(outs)} results for {len(frames)} frames")
        else:
            outs = [detector.detect(f) for f in frames]
    except DetectorError:
        raise
    except ValueError as exc:  # InstanceMasks validation inside the backend
        at = f"frame {frames[0].index}" if len(frames) == 1 else f"frames {frames[0].index}-{frames[-1].index}"
        raise DetectorError(f"detector {name!r} returned malformed output on {at}: {exc}") from exc
    for frame, out in zip(frames, outs):
        _check_output(name, frame, out)
    return outs


def _check_output(name: str, frame: Frame, out: Any) -> None:
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
