"""The ``oracle`` detector: a simulator's ground-truth instance masks.

It reads ``Frame.instances`` and ``Frame.labels``, which only simulators fill
in. It is the upper bound that the learned backends are scored against, and is
only ever used when asked for by name: every table that shows it labels it
"oracle". A frame without instances gives no detections (and a warning once).
"""

from __future__ import annotations

import warnings

import numpy as np

from engram.perception.detectors import register_detector
from engram.perception.segmentation import InstanceMasks
from engram.types import Frame

__all__ = ["OracleDetector"]


@register_detector("oracle")
class OracleDetector:
    """Ground-truth masks from ``Frame.instances`` (simulators only).

    Args:
        ignore_labels: categories that are structure, not objects.
    """

    name = "oracle"

    def __init__(self, ignore_labels: tuple[str, ...] = ("wall", "floor", "ceiling")) -> None:
        self.ignore_labels = {s.lower() for s in ignore_labels}
        self._warned = False

    def detect(self, frame: Frame) -> InstanceMasks:
        if frame.instances is None or not frame.labels:
            if not self._warned:
                warnings.warn(
                    f"oracle detector: frame {frame.index} has no ground-truth instances; "
                    "only simulators provide them (use detector='rgbd' for real data)",
                    stacklevel=2,
                )
                self._warned = True
            return InstanceMasks.empty(frame.height, frame.width)
        ids = [i for i, lab in sorted(frame.labels.items()) if i != 0 and lab.lower() not in self.ignore_labels]
        present = np.unique(frame.instances)
        ids = [i for i in ids if i in set(present.tolist())]
        if not ids:
            return InstanceMasks.empty(frame.height, frame.width)
        masks = frame.instances[None, :, :] == np.asarray(ids, np.int32)[:, None, None]
        labels = [frame.labels[i] for i in ids]
        return InstanceMasks(masks, labels, np.ones(len(ids)), label_scores=[{lab: 1.0} for lab in labels])
