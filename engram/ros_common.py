"""What the ROS 1 node (`engram.ros_node`) and the ROS 2 node (`engram.ros2_node`) share.

Both nodes speak one protocol whatever the middleware: the same topics, the same
query messages (plain text or a small JSON object, `parse_query`), the same JSON
answers (`hits_to_json`), the same object colours (`label_colour`) and the same
dump of their state for tools and tests (`write_dump`). It lives here, below
both, so neither node imports the other for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CLOUD_TOPIC",
    "MARKERS_TOPIC",
    "QUERY_TOPIC",
    "ANSWER_TOPIC",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_K",
    "MAX_QUEUED_QUERIES",
    "hits_to_json",
    "label_colour",
    "parse_query",
    "write_dump",
]

CLOUD_TOPIC = "/engram/occupied"
MARKERS_TOPIC = "/engram/objects"
QUERY_TOPIC = "/engram/query"
ANSWER_TOPIC = "/engram/answer"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def hits_to_json(hits: Sequence[Any]) -> list[dict[str, Any]]:
    """Memory query hits as plain JSON-able dicts."""
    out = []
    for h in hits:
        out.append(
            {
                "kind": getattr(h, "kind", ""),
                "id": _jsonable(getattr(h, "id", None)),
                "score": _jsonable(float(getattr(h, "score", 0.0))),
                "label": getattr(h, "label", ""),
                "position": _jsonable(getattr(h, "position", None)),
                "time_span_s": _jsonable(getattr(h, "time_span_s", None)),
                "frame_indices": _jsonable(list(getattr(h, "frame_indices", []))[:20]),
            }
        )
    return out


# A query is a short text or a small JSON object: anything bigger is refused with an error reply.
MAX_QUERY_CHARS = 4096
MAX_QUERY_K = 100
MAX_QUEUED_QUERIES = 32


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_query(text: Any) -> dict[str, Any]:
    """A query message as `SceneMemory.query` keyword arguments; ValueError names what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a query must be text, got {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(text)} characters; at most {MAX_QUERY_CHARS}")
    text = text.strip()
    if text.startswith("{"):
        try:
            q = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"query is not valid JSON: {exc}") from None
        if not isinstance(q, dict):
            raise ValueError("a JSON query must be an object")
        allowed = {"text", "k", "near", "radius_m", "since_s", "until_s", "at_s"}
        unknown = set(q) - allowed - {"id"}
        if unknown:
            raise ValueError(f"unknown query fields {sorted(unknown)} (allowed: {sorted(allowed)})")
        if "text" in q and not (isinstance(q["text"], str) and q["text"].strip()):
            raise ValueError("query field 'text' must be non-empty text")
        if "k" in q and not (isinstance(q["k"], int) and not isinstance(q["k"], bool) and 1 <= q["k"] <= MAX_QUERY_K):
            raise ValueError(f"query field 'k' must be an integer in 1..{MAX_QUERY_K}")
        if "near" in q and not (
            isinstance(q["near"], list) and len(q["near"]) in (2, 3) and all(map(_finite, q["near"]))
        ):
            raise ValueError("query field 'near' must be [x, y] or [x, y, z] in metres")
        for key in ("radius_m", "since_s", "until_s", "at_s"):
            if key in q and not _finite(q[key]):
                raise ValueError(f"query field {key!r} must be a finite number")
        if "id" in q and not (q["id"] is None or isinstance(q["id"], (str, int)) and len(str(q["id"])) <= 200):
            raise ValueError("query field 'id' must be a short string or integer")
        return q
    if not text:
        raise ValueError("empty query")
    return {"text": text}


def label_colour(label: str) -> tuple[float, float, float]:
    h = (sum(ord(c) * 31**i for i, c in enumerate(label)) % 360) / 360.0
    import colorsys

    return colorsys.hsv_to_rgb(h, 0.7, 0.95)


def write_dump(out_dir: str | Path, memory: Any, **summary: Any) -> None:
    """A live node's state for tools and tests: occupied.npy, objects.json and summary.json.

    ``summary`` is the node's own part of summary.json; the voxel and object counts are added.
    Each file is written beside its final name and renamed, so a reader never sees half of one.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    centers = np.asarray(memory.octree.occupied_centers())
    tmp = out / ".occupied.npy"
    np.save(tmp, centers)
    tmp.replace(out / "occupied.npy")
    objects = [
        {
            "id": int(i),
            "label": str(o.label),
            "centroid": _jsonable(np.asarray(o.centroid)),
            "box_min": _jsonable(np.asarray(o.box_min)),
            "box_max": _jsonable(np.asarray(o.box_max)),
        }
        for i, o in sorted(memory.objects.objects.items())
    ]
    (out / "objects.json").write_text(json.dumps(objects))
    summary = {
        "frames_integrated": summary.pop("frames_integrated"),
        "occupied_voxels": int(len(centers)),
        "objects": len(objects),
        **summary,
    }
    tmp = out / ".summary.json"
    tmp.write_text(json.dumps(summary))
    tmp.replace(out / "summary.json")
