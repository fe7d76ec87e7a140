"""The episodic timeline's plain parts: nodes, hits, the open-node accumulator, format constants.

`engram.memory.episodic` (the timeline) and `engram.memory.episodic_store` (its persistence) both
build on these, so neither has to import the other at module level.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "EPISODIC_KIND",
    "EPISODIC_VERSION",
    "THUMBNAIL_DIM",
    "THUMBNAIL_NAME",
    "EpisodicHit",
    "EpisodicNode",
    "check_encoders",
]

EPISODIC_KIND = "episodic_memory"
EPISODIC_VERSION = 1

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or is are was were be been am i me my we you your it its
    this that these those what which who whom when where why how did do does done have has had see saw seen
    there here any some right just after before last first then next around about into onto up down out
    over under near time happen happened happening""".split()
)


_MOVE_WORDS = frozenset({"moved", "move", "moving", "relocated", "displaced", "shifted"})
_MOVED_PREFIX = "moved:"


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens, with a plural 's' folded so 'mugs' matches 'mug'."""
    out = []
    for tok in _TOKEN_RE.findall(text.lower()):
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def _content_tokens(text: str) -> list[str]:
    return [t for t in _tokens(text) if t not in _STOPWORDS]


@dataclass
class EpisodicNode:
    """One node of the timeline: an event (level 0) or a span of events (level >= 1).

    Attributes:
        node_id: unique id within its memory.
        level: 0 for events; higher levels span longer times.
        start_s, end_s: the span [start_s, end_s) in stream seconds.
        frame_count: sampled frames inside the span.
        image_embedding: "D" float32, the L2-normalised mean frame embedding.
        text_embedding: "d" float32 embedding of ``description`` (None without a text encoder).
        tags: (label, mean probability) from the image encoder, best first.
        labels: (object label, share of frames it is visible in), best first.
        moved: labels of objects seen at a new place during the span.
        caption: a captioner's text for the keyframes ("" without a captioner).
        description: the text that is embedded and shown as evidence.
        keyframes: a few small JPEG images (bytes), in time order.
        keyframe_times_s: the time of each keyframe.
        children: ids of the nodes one level down, in time order.
        parent: id of the node one level up (None at the top level).
        closed: False while the node still receives frames.
    """

    node_id: int
    level: int
    start_s: float
    end_s: float
    frame_count: int = 0
    image_embedding: np.ndarray | None = None
    text_embedding: np.ndarray | None = None
    tags: list[tuple[str, float]] = field(default_factory=list)
    labels: list[tuple[str, float]] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    caption: str = ""
    description: str = ""
    keyframes: list[bytes] = field(default_factory=list)
    keyframe_times_s: list[float] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    parent: int | None = None
    closed: bool = False

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def span_s(self) -> tuple[float, float]:
        return (self.start_s, self.end_s)

    # the names other layers use for any timed record
    @property
    def id(self) -> int:
        return self.node_id

    @property
    def text(self) -> str:
        return self.description

    @property
    def time_span_s(self) -> tuple[float, float]:
        return (self.start_s, self.end_s)

    def contains(self, time_s: float) -> bool:
        return self.start_s <= time_s < self.end_s or (self.start_s == self.end_s == time_s)

    def __repr__(self) -> str:
        what = ", ".join(t for t, _ in self.tags[:2]) or "-"
        objs = ", ".join(t for t, _ in self.labels[:3]) or "-"
        return (
            f"EpisodicNode(id={self.node_id}, level={self.level}, {self.start_s:.1f}-{self.end_s:.1f} s, "
            f"frames={self.frame_count}, tags=[{what}], objects=[{objs}], closed={self.closed})"
        )


class EpisodicHit(NamedTuple):
    """A search result: a node and its score (higher is better); unpacks as ``node, score``."""

    node: EpisodicNode
    score: float


class _Acc:
    """Running sums of an open node (the only per-node working state kept while streaming)."""

    __slots__ = ("emb_sum", "tag_sum", "label_sum", "moved", "cands", "last_t")

    def __init__(self, dim: int) -> None:
        self.emb_sum = np.zeros(dim, dtype=np.float64)
        self.tag_sum: dict[str, float] = {}
        self.label_sum: dict[str, float] = {}
        self.moved: dict[str, int] = {}
        # keyframe candidates: (time_s, jpeg bytes, unit embedding)
        self.cands: list[tuple[float, bytes, np.ndarray]] = []
        self.last_t = -math.inf


THUMBNAIL_NAME = "builtin-thumbnail"
THUMBNAIL_DIM = 64 + 48


def check_encoders(recorded: Mapping[str, Any], image_encoder: Any, text_encoder: Any, where: str = "memory") -> None:
    """Raise ValueError when the given encoders differ from the ones a memory was built with."""
    for kind, enc in (("image", image_encoder), ("text", text_encoder)):
        if enc is None:
            continue
        want_name, want_dim = recorded.get(f"{kind}_encoder"), recorded.get(f"{kind}_dim")
        name, dim = getattr(enc, "name", None), getattr(enc, "dim", None)
        if want_name is not None and name != want_name or want_dim is not None and dim is not None and dim != want_dim:
            raise ValueError(
                f"{where} was built with {kind} encoder {want_name!r} ({want_dim}-d) but {kind} encoder "
                f"{name!r} ({dim}-d) was given: rebuild the memory, or query it with {want_name!r}"
            )
