"""One front door for questions: ``engram qa ask PATH "..."`` over whatever memory PATH holds.

The store's manifest says what it holds; `ask_path` hands the question to the
reader registered for that kind:

- ``video_memory`` (``engram qa build``): `VideoQA` (object tracks for counts,
  places and times, the episodic timeline for everything else);
- ``scene_memory`` (``engram explore`` / ``engram map`` / the ROS node):
  `EmbodiedQA` on the spatial memory, and the run's episodic timeline for
  questions that name a time ("what did I see at 0:45?").

Other kinds (a fleet catalogue, ...) plug in with `register_reader`. Every
reader returns the answer and its evidence as lines of text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ask_path", "readable_kinds", "register_reader"]

Reader = Callable[[Path, str, "Sequence[str] | None", Any], str]
_READERS: dict[str, Reader] = {}


def register_reader(kind: str) -> Callable[[Reader], Reader]:
    """``@register_reader("catalogue")``: answer questions over stores of that kind.

    The reader is called as ``reader(path, question, options, answerer)`` and
    returns the answer and its evidence as text.
    """

    def deco(fn: Reader) -> Reader:
        _READERS[kind] = fn
        return fn

    return deco


def readable_kinds() -> list[str]:
    return sorted(_READERS)


def ask_path(
    path: str | Path,
    question: str,
    options: Sequence[str] | None = None,
    answerer: Any = "offline",
) -> str:
    """Answer ``question`` over the memory stored at ``path``, whatever kind it is.

    Args:
        path: a store written by ``engram qa build``, ``engram explore`` / ``map``, or another registered kind.
        question: the question.
        options: multiple-choice options.
        answerer: an answerer object or registry name (see `engram.qa.answerers`).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the store holds a kind no reader answers over.
    """
    from engram.memory.store import StoreError, store_kind

    p = Path(path)
    try:
        kind = store_kind(p)
    except StoreError as exc:
        raise ValueError(str(exc)) from exc
    reader = _READERS.get(kind)
    if reader is None:
        raise ValueError(f"{p} holds a {kind!r}; questions can be asked of: {', '.join(readable_kinds())}")
    return reader(p, question, options, answerer)


def format_answer(ans: Any, evidence: Sequence[Any], options: Sequence[str] | None) -> str:
    """An `Answer` and the evidence it used as lines of text."""
    import numpy as np

    from engram.qa.evaluation import answer_head

    used = getattr(ans, "evidence_used", None) or []
    # the evidence an answer quotes after itself is listed below it, once
    head = answer_head(ans.text).strip() if used else ""
    lines = [f"answer: {head or ans.text}"]
    if options is not None and getattr(ans, "choice_index", None) is not None:
        lines.append(f"choice: {ans.choice_index} ({options[ans.choice_index]})")
    conf = getattr(ans, "confidence", None)
    if conf is not None:
        lines.append(f"confidence: {conf:.2f}")
    if used:
        lines.append("evidence:")
        for ev in used:
            if isinstance(ev, (int, np.integer)) and 0 <= ev < len(evidence):
                ev = evidence[int(ev)]
            lines.append(f"  {getattr(ev, 'text', ev)}")
    return "\n".join(lines)


@register_reader("video_memory")
def _ask_video(path: Path, question: str, options: Sequence[str] | None, answerer: Any) -> str:
    from engram.qa.video import VideoQA

    qa = VideoQA.load(path)
    ans = qa.ask(question, options=options, answerer=answerer)
    return format_answer(ans, qa.last_evidence, options)


_TIME_NAMED = re.compile(
    r"\d{1,2}:\d{2}|\b\d+(?:\.\d+)?\s*(?:s|sec|secs|seconds|min|mins|minutes)\b",
    re.IGNORECASE,
)


@register_reader("scene_memory")
def _ask_scene(path: Path, question: str, options: Sequence[str] | None, answerer: Any) -> str:
    from engram.memory.scene import SceneMemory
    from engram.qa.embodied import EmbodiedQA

    mem = SceneMemory.load(str(path))
    timeline = getattr(mem, "timeline", None)
    if timeline is not None and len(timeline) and _TIME_NAMED.search(question):
        from engram.qa.video import VideoQA

        qa = VideoQA(timeline, path, {"encoders": timeline.encoder_info()})
        ans = qa.ask(question, options=options, answerer=answerer)
        return format_answer(ans, qa.last_evidence, options)
    backend = None
    if not isinstance(answerer, str) or answerer != "offline":
        from engram.qa.video import _resolve_answerer

        backend = _resolve_answerer(answerer, mem.text_encoder)
    eqa = EmbodiedQA(mem, answerer=backend)
    ans = eqa.ask(question, options=list(options) if options else None)
    lines = [f"answer: {ans.text}"]
    if (
        options is not None
        and isinstance(ans.value, int)
        and not isinstance(ans.value, bool)
        and 0 <= ans.value < len(options)
    ):
        lines.append(f"choice: {ans.value} ({options[ans.value]})")
    evidence = []
    if ans.object_ids:
        evidence.append(f"  objects: {', '.join(str(i) for i in ans.object_ids[:10])}")
    for t in ans.times_s[:5]:
        evidence.append(f"  seen at t={t:.1f} s")
    if ans.snapshot_frames:
        evidence.append(f"  snapshot frames: {', '.join(str(f) for f in ans.snapshot_frames[:5])}")
    if evidence:
        lines += ["evidence:", *evidence]
    return "\n".join(lines)
