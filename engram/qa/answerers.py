"""Pluggable answerers: turn a question and retrieved evidence into an answer.

Memory retrieval (episodic timeline, scene memory) hands an answerer a list
of `Evidence` items (text, time span, keyframes, retrieval score); the
answerer returns an `Answer`. Three back ends, built by name with
`build_answerer`:

- ``offline``: no language model. Multiple choice by evidence-option
  similarity in a text encoder's space (times in options are matched against
  evidence time spans); open questions are answered with the best evidence
  spans, their times and tags.
- ``openai``: any OpenAI-compatible ``/v1/chat/completions`` server (vLLM,
  llama.cpp's server, Ollama, hosted APIs), over the standard library's HTTP
  client; evidence goes as text, keyframes as base64 JPEG ``image_url`` parts.
- ``transformers``: a local causal language model loaded from a folder.

Nothing here downloads anything. A server that does not answer in time raises
`AnswererTimeout` (an `AnswererError` and a `TimeoutError`) naming the URL and
the time limit.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engram._util import Registry, fmt_time

__all__ = [
    "Answer",
    "Answerer",
    "AnswererError",
    "AnswererTimeout",
    "Evidence",
    "OfflineAnswerer",
    "OpenAIChatAnswerer",
    "TransformersAnswerer",
    "available_answerers",
    "build_answerer",
    "build_prompt",
    "option_letter",
    "parse_reply",
    "register_answerer",
]

NOT_ENOUGH = "NOT ENOUGH EVIDENCE"
CANT_TELL = "I can't tell from what I saw"


class AnswererError(RuntimeError):
    """An answerer back end failed (server unreachable, bad reply, model error)."""


class AnswererTimeout(AnswererError, TimeoutError):
    """A server did not answer within the time limit."""


# ---------------------------------------------------------------------------
# data


@dataclass
class Evidence:
    """One piece of retrieved memory handed to an answerer.

    Attributes:
        text: what the memory says (description, tags, object labels).
        time_span_s: (start, end) in seconds of the stream, or None when untimed.
        images: keyframes, each "H W 3" uint8 RGB.
        score: retrieval score, higher is more relevant (cosine-like, about [0, 1]).
        source_id: where it came from, e.g. ``"episodic:42"`` or ``"snapshot:17"``.
        meta: free-form details (tags, labels, level, ...).
    """

    text: str
    time_span_s: tuple[float, float] | None = None
    images: list[np.ndarray] = field(default_factory=list)
    score: float = 0.0
    source_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"Evidence.text must be a str, got {type(self.text).__name__}")
        if self.time_span_s is not None:
            try:
                start, end = (float(v) for v in self.time_span_s)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Evidence.time_span_s must be (start_s, end_s), got {self.time_span_s!r}") from exc
            if not (math.isfinite(start) and math.isfinite(end)) or end < start:
                raise ValueError(f"Evidence.time_span_s must be finite with start <= end, got {self.time_span_s!r}")
            self.time_span_s = (start, end)
        if self.images is None:
            self.images = []
        if not isinstance(self.images, (list, tuple)):
            raise ValueError(
                f"Evidence.images must be a list of H x W x 3 uint8 arrays, got {type(self.images).__name__}"
            )
        for i, img in enumerate(self.images):
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                what = f"shape {img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
                raise ValueError(f"Evidence.images[{i}] must be an H x W x 3 uint8 RGB array, got {what}")
        self.images = list(self.images)
        try:
            self.score = float(self.score)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Evidence.score must be a number, got {self.score!r}") from exc
        if not math.isfinite(self.score):
            raise ValueError(f"Evidence.score must be finite, got {self.score}")
        if not isinstance(self.source_id, str):
            raise ValueError(f"Evidence.source_id must be a str, got {type(self.source_id).__name__}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"Evidence.meta must be a dict, got {type(self.meta).__name__}")


@dataclass
class Answer:
    """An answerer's reply.

    Attributes:
        text: the answer in words.
        choice_index: index into the options for a multiple-choice question
            (None for open questions, or when no option could be read from the reply).
        confidence: in [0, 1]. The offline answerer's is the softmax weight of its
            choice; chat back ends report 1.0 when the reply named one valid
            option and 0.0 otherwise (they give no calibrated probability).
        evidence_used: indices into the evidence list the answer rests on.
        enough_evidence: False when the evidence was judged too weak to answer.
        raw: the model's raw reply (None for the offline answerer).
    """

    text: str
    choice_index: int | None = None
    confidence: float = 0.0
    evidence_used: list[int] = field(default_factory=list)
    enough_evidence: bool = True
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "choice_index": self.choice_index,
            "confidence": float(self.confidence),
            "evidence_used": [int(i) for i in self.evidence_used],
            "enough_evidence": bool(self.enough_evidence),
            "raw": self.raw,
        }


@runtime_checkable
class Answerer(Protocol):
    """Question + evidence (+ options) -> `Answer`."""

    name: str

    def answer(self, question: str, evidence: list[Evidence], options: list[str] | None = None) -> Answer: ...


def _check_inputs(
    question: str, evidence: Sequence[Evidence], options: Sequence[str] | None
) -> tuple[str, list[Evidence], list[str] | None]:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")
    if evidence is None:
        evidence = []
    if isinstance(evidence, Evidence) or not isinstance(evidence, (list, tuple)):
        raise ValueError(f"evidence must be a list of Evidence, got {type(evidence).__name__}")
    for i, ev in enumerate(evidence):
        if not isinstance(ev, Evidence):
            raise ValueError(f"evidence[{i}] must be an Evidence, got {type(ev).__name__}")
    if options is not None:
        if isinstance(options, str) or not isinstance(options, (list, tuple)):
            raise ValueError(f"options must be a list of strings, got {type(options).__name__}")
        options = list(options)
        if not 2 <= len(options) <= 26:
            raise ValueError(f"a multiple-choice question needs 2 to 26 options, got {len(options)}")
        for i, o in enumerate(options):
            if not isinstance(o, str) or not o.strip():
                raise ValueError(f"options[{i}] must be a non-empty string, got {o!r}")
    return question.strip(), list(evidence), options


def option_letter(index: int) -> str:
    """0 -> "A", 1 -> "B", ..."""
    return chr(ord("A") + index)


def _fmt_span(span: tuple[float, float] | None) -> str:
    if span is None:
        return ""
    a, b = span
    return f"{fmt_time(a)}" if abs(b - a) < 0.5 else f"{fmt_time(a)}-{fmt_time(b)}"


def _evidence_line(ev: Evidence) -> str:
    """The evidence text, with its time span in front unless the text already starts with one."""
    text = ev.text.strip()
    span = _fmt_span(ev.time_span_s)
    if span and not text.startswith("["):
        text = f"[{span}] {text}"
    tags = ev.meta.get("tags") if isinstance(ev.meta, dict) else None
    names = []
    for t in tags or []:
        name = t[0] if isinstance(t, (list, tuple)) and t else t
        if isinstance(name, str) and name.lower() not in text.lower():
            names.append(name)
    if names:
        text += f" (tags: {', '.join(names)})"
    return text


# ---------------------------------------------------------------------------
# times in option texts

_CLOCK = re.compile(r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})(?:\.(\d+))?\b")
_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)\b", re.IGNORECASE)
_MINUTES = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:min|mins|minute|minutes)\b", re.IGNORECASE)


def _times_in(text: str) -> list[float]:
    """Times mentioned in a text, in seconds: "12:30", "1:02:03", "45 s", "3 min"."""
    out: list[float] = []
    for m in _CLOCK.finditer(text):
        h = int(m.group(1) or 0)
        out.append(h * 3600 + int(m.group(2)) * 60 + int(m.group(3)) + float("0." + (m.group(4) or "0")))
    if not out:
        out += [float(m.group(1)) for m in _SECONDS.finditer(text)]
        out += [60.0 * float(m.group(1)) for m in _MINUTES.finditer(text)]
    return out


def _span_distance_s(t_s: float, span: tuple[float, float]) -> float:
    return max(span[0] - t_s, 0.0, t_s - span[1])


_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    )
}


def _numbers_in(text: str) -> list[int]:
    out = [int(m) for m in re.findall(r"\b\d+\b", text)]
    return out + [_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS]


def _option_for_fact(meta: dict[str, Any], options: Sequence[str]) -> int | None:
    """The option that states a structured answer's value (None when no option does, or there is none)."""
    if "answer" not in meta or not meta.get("found", True):
        return None
    value, kind = meta.get("value"), meta.get("kind")
    hits: list[int] = []
    if isinstance(value, bool):
        word = "yes" if value else "no"
        hits = [i for i, o in enumerate(options) if re.match(rf"^\s*{word}\b", o, re.IGNORECASE)]
    elif isinstance(value, int):
        hits = [i for i, o in enumerate(options) if value in _numbers_in(o)]
    elif isinstance(value, float) and kind in ("last_seen", "first_seen"):
        times = [_times_in(o) for o in options]
        if all(times):
            d = [min(abs(t - value) for t in ts) for ts in times]
            return int(np.argmin(d))
    elif isinstance(value, str):
        hits = [i for i, o in enumerate(options) if value.lower() in o.lower()]
    return hits[0] if len(hits) == 1 else None


def _what(ev: Evidence) -> str:
    """What an evidence item shows, in words (its caption or description without the time prefix)."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", ev.text.strip())
    return text or "nothing recognised"


# ---------------------------------------------------------------------------
# registry

_ANSWERERS: Registry[Answerer] = Registry("answerer")
register_answerer = _ANSWERERS.register
available_answerers = _ANSWERERS.available


def build_answerer(name: str, **kwargs: Any) -> Answerer:
    """Build an answerer by registry name ("offline", "openai", "transformers")."""
    return _ANSWERERS.build(name, **kwargs)


# ---------------------------------------------------------------------------
# offline


@register_answerer("offline")
class OfflineAnswerer:
    """Answers without a language model, from evidence-text similarity.

    Multiple choice: each option is embedded with the text encoder and scored
    by its best match among the evidence texts, each match weighted by the
    evidence's relevance (its retrieval score relative to the best one). When
    every option names a time ("12:30", "45 s"), options are scored by how
    close their time lies to the relevant evidence spans instead. With no
    evidence the option closest to the question is taken, flagged as not
    enough evidence.

    Open questions: the answer lists the most relevant evidence spans with
    their times and tags (relevance mixes retrieval score and
    question-evidence similarity).

    Args:
        text_encoder: a `TextEncoder` or a registry name (``"minilm"``, ``"hash"``).
        min_evidence_score: below this best retrieval score, ``enough_evidence`` is False.
        max_evidence: evidence items quoted in an open answer.
        temperature: softmax temperature turning option scores into a confidence.
        time_scale_s: how fast a time option's score falls off outside an evidence span.
    """

    name = "offline"

    def __init__(
        self,
        text_encoder: Any = "minilm",
        min_evidence_score: float = 0.25,
        max_evidence: int = 3,
        temperature: float = 0.05,
        time_scale_s: float = 30.0,
    ) -> None:
        if isinstance(text_encoder, str):
            from engram.perception.encoders import build_text_encoder

            text_encoder = build_text_encoder(text_encoder)
        if text_encoder is None or not hasattr(text_encoder, "encode"):
            raise ValueError("OfflineAnswerer needs a text encoder (an object with encode(texts)) or its registry name")
        if not math.isfinite(float(min_evidence_score)):
            raise ValueError(f"min_evidence_score must be finite, got {min_evidence_score!r}")
        if isinstance(max_evidence, bool) or not isinstance(max_evidence, int) or max_evidence < 1:
            raise ValueError(f"max_evidence must be a positive integer, got {max_evidence!r}")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if not float(time_scale_s) > 0:
            raise ValueError(f"time_scale_s must be positive, got {time_scale_s!r}")
        self.text_encoder = text_encoder
        self.min_evidence_score = float(min_evidence_score)
        self.max_evidence = max_evidence
        self.temperature = float(temperature)
        self.time_scale_s = float(time_scale_s)

    def _relevance(self, evidence: list[Evidence]) -> np.ndarray:
        """Evidence weights in [0, 1]: retrieval score relative to the best (all 1 when no score is positive)."""
        s = np.array([max(ev.score, 0.0) for ev in evidence], np.float64)
        top = s.max() if len(s) else 0.0
        return s / top if top > 0 else np.ones_like(s)

    def answer(self, question: str, evidence: list[Evidence], options: list[str] | None = None) -> Answer:
        question, evidence, options = _check_inputs(question, evidence, options)
        best_score = max((ev.score for ev in evidence), default=-math.inf)
        enough = bool(evidence) and best_score >= self.min_evidence_score
        if options is None:
            return self._open(question, evidence, enough)
        return self._choice(question, evidence, options, enough)

    def _open(self, question: str, evidence: list[Evidence], enough: bool) -> Answer:
        """A sentence: the structured answer when there is one, a time, or "I can't tell", then the evidence."""
        if not evidence:
            return Answer(text=f"{CANT_TELL}: nothing in memory matches the question.", enough_evidence=False)
        fact = evidence[0].meta.get("answer") if isinstance(evidence[0].meta, dict) else None
        if fact:
            rest = list(range(1, len(evidence)))[: self.max_evidence - 1]
            lines = [_evidence_line(evidence[0])] + [_evidence_line(evidence[j]) for j in rest]
            found = bool(evidence[0].meta.get("found", True))
            return Answer(
                text=f"{fact} Evidence: " + "; ".join(lines),
                confidence=1.0 if found else 0.0,
                evidence_used=[0, *rest],
                enough_evidence=found,
            )
        enc = self.text_encoder.encode([question] + [_evidence_line(ev) for ev in evidence])
        sim = enc[1:] @ enc[0]
        rel = 0.5 * self._relevance(evidence) + 0.5 * np.clip(sim, 0.0, 1.0)
        order = [int(i) for i in np.argsort(-rel, kind="stable")[: self.max_evidence]]
        lines = [_evidence_line(evidence[i]) for i in order]
        best = evidence[order[0]]
        if _times_in(question) and best.time_span_s is not None:
            head = f"At {_fmt_span(best.time_span_s)} I saw {_what(best)}."
        elif re.match(r"^\s*when\b", question, re.IGNORECASE) and best.time_span_s is not None and enough:
            head = f"Most likely at {_fmt_span(best.time_span_s)} ({_what(best)})."
        else:
            head = f"{CANT_TELL}."
            enough = False
        return Answer(
            text=f"{head} Closest memories: " + "; ".join(lines),
            choice_index=None,
            confidence=float(np.clip(rel[order[0]], 0.0, 1.0)),
            evidence_used=order,
            enough_evidence=enough,
        )

    def _choice(self, question: str, evidence: list[Evidence], options: list[str], enough: bool) -> Answer:
        n = len(options)
        used: list[int] = []
        picked = (
            _option_for_fact(evidence[0].meta, options) if evidence and isinstance(evidence[0].meta, dict) else None
        )
        if picked is not None:
            return Answer(
                text=f"{option_letter(picked)}. {options[picked]} (evidence: {_evidence_line(evidence[0])})",
                choice_index=picked,
                confidence=1.0,
                evidence_used=[0],
                enough_evidence=True,
            )
        option_times = [_times_in(o) for o in options]
        spans = [ev.time_span_s for ev in evidence]
        known_spans = [s for s in spans if s is not None]
        if not evidence:
            emb = self.text_encoder.encode([question, *options])
            scores = emb[1:] @ emb[0]
        elif all(option_times) and len(known_spans) == len(spans):
            # "when" questions: an option is as good as its time is close to relevant evidence
            w = self._relevance(evidence)
            score_ij = np.zeros((n, len(evidence)))
            for i, times in enumerate(option_times):
                for j, span in enumerate(known_spans):
                    d = min(_span_distance_s(t, span) for t in times)
                    score_ij[i, j] = w[j] * math.exp(-d / self.time_scale_s)
            scores = score_ij.max(axis=1)
            best_i = int(np.argmax(scores))
            used = [int(j) for j in np.argsort(-score_ij[best_i])[:1]]
        else:
            emb = self.text_encoder.encode([*options, *[_evidence_line(ev) for ev in evidence]])
            sim = emb[:n] @ emb[n:].T  # option x evidence cosine
            w = self._relevance(evidence)
            score_ij = sim * (0.5 + 0.5 * w)[None, :]
            scores = score_ij.max(axis=1)
            best_i = int(np.argmax(scores))
            used = [int(j) for j in np.argsort(-score_ij[best_i])[: min(self.max_evidence, len(evidence))]]
            used = [j for j in used if score_ij[best_i, j] > 0] or used[:1]
        scores = np.asarray(scores, np.float64)
        best_i = int(np.argmax(scores))
        z = (scores - scores.max()) / self.temperature
        prob = np.exp(z) / np.exp(z).sum()
        letter = option_letter(best_i)
        why = "; ".join(_evidence_line(evidence[j]) for j in used)
        text = f"{letter}. {options[best_i]}" + (f" (evidence: {why})" if why else f" ({NOT_ENOUGH})")
        return Answer(
            text=text,
            choice_index=best_i,
            confidence=float(prob[best_i]),
            evidence_used=used,
            enough_evidence=enough,
        )


# ---------------------------------------------------------------------------
# prompts and replies (shared by the language-model back ends)

SYSTEM_PROMPT = (
    "You answer questions about what a camera saw, using only the numbered evidence from its memory "
    "(time spans, descriptions, keyframes). Cite evidence as [E1], [E2]. "
    f"If the evidence does not support an answer, say {NOT_ENOUGH}."
)


def build_prompt(question: str, evidence: Sequence[Evidence], options: Sequence[str] | None = None) -> str:
    """The user prompt: numbered evidence, the question, lettered options and the reply format."""
    lines = ["Evidence:"]
    if not evidence:
        lines.append("(none)")
    for i, ev in enumerate(evidence, start=1):
        lines.append(f"[E{i}] {_evidence_line(ev)}")
    lines += ["", f"Question: {question}"]
    if options:
        lines.append("Options:")
        lines += [f"{option_letter(i)}. {o}" for i, o in enumerate(options)]
        lines += ["", "Reply with the letter of the best option first, then one short sentence of reasoning."]
    else:
        lines += ["", "Reply with a short answer."]
    return "\n".join(lines)


# "B", "B.", "(B)", "**B**", "B) ...", "B - ...": an upper-case letter alone at the start (not the article "A ...")
_LEAD_LETTER = re.compile(r"^[\s*_#>\"'(\[]*([A-Z])[\s*_\]\"']*(?:[.,:;)]|-\s|\n|$)")
# "the answer is B", "Option: (C)", "choice D"
_NAMED_LETTER = re.compile(r"(?i:\b(?:answer|option|choice))\s*(?:is|:|=)?\s*[*(\[\"']*([A-Z])\b(?!['\w])")
_CITED = re.compile(r"\[E(\d+)\]")


def parse_reply(reply: str, options: Sequence[str] | None, n_evidence: int) -> Answer:
    """Read a language model's reply: the option letter (or option text), cited evidence, and the refusal phrase.

    Args:
        reply: the model's text.
        options: the options that were offered (None for an open question).
        n_evidence: how many evidence items were in the prompt.
    """
    text = reply.strip()
    choice: int | None = None
    if options:
        letters = {option_letter(i): i for i in range(len(options))}
        for pattern in (_LEAD_LETTER, _NAMED_LETTER):
            m = pattern.search(text)
            if m and m.group(1) in letters:
                choice = letters[m.group(1)]
                break
        if choice is None:
            # the option's own words, earliest mention wins
            low = text.lower()
            found = [(low.find(o.strip().lower()), i) for i, o in enumerate(options) if o.strip().lower() in low]
            if found:
                choice = min(found)[1]
    cited = sorted({int(m) - 1 for m in _CITED.findall(text) if 0 < int(m) <= n_evidence})
    enough = NOT_ENOUGH.lower() not in text.lower()
    return Answer(
        text=text,
        choice_index=choice,
        confidence=1.0 if choice is not None else 0.0,
        evidence_used=cited or list(range(n_evidence)),
        enough_evidence=enough,
        raw=reply,
    )


def _jpeg_data_url(img: np.ndarray, max_side_px: int, quality: int) -> str:
    import cv2

    h, w = img.shape[:2]
    scale = max_side_px / max(h, w)
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise AnswererError("JPEG encoding of a keyframe failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _pick_keyframes(evidence: Sequence[Evidence], max_images: int) -> list[tuple[int, np.ndarray]]:
    """The fewest keyframes that cover the evidence (3D-Mem's prefiltering), at most ``max_images``.

    A keyframe at time t covers every evidence item whose time span holds t (an
    item without keyframe times is covered by its own keyframes only); keyframes
    are taken greedily, most newly covered items first, higher-ranked evidence
    breaking ties. Returns (evidence index, image) pairs in evidence order.
    """
    cands: list[tuple[int, int, np.ndarray, set[int]]] = []
    for j, ev in enumerate(evidence):
        times = ev.meta.get("keyframe_times_s") if isinstance(ev.meta, dict) else None
        for k, img in enumerate(ev.images):
            covers = {j}
            if times and k < len(times):
                t = float(times[k])
                covers |= {
                    i
                    for i, other in enumerate(evidence)
                    if other.time_span_s is not None and other.time_span_s[0] - 0.5 <= t <= other.time_span_s[1] + 0.5
                }
            cands.append((j, k, img, covers))
    out: list[tuple[int, np.ndarray]] = []
    covered: set[int] = set()
    while cands and len(out) < max_images:
        best = max(cands, key=lambda c: (len(c[3] - covered), -c[0], -c[1]))
        if not best[3] - covered:
            break
        out.append((best[0], best[2]))
        covered |= best[3]
        cands.remove(best)
    return sorted(out, key=lambda p: p[0])


# ---------------------------------------------------------------------------
# OpenAI-compatible HTTP


def chat_url(base_url: str) -> str:
    """``.../v1/chat/completions`` from a server root given with or without ``/v1``."""
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    root = base_url.rstrip("/")
    if root.endswith("/chat/completions"):
        return root
    return root + ("/chat/completions" if root.endswith("/v1") else "/v1/chat/completions")


def post_chat(url: str, body: dict, *, model: str, api_key_env: str | None, timeout_s: float) -> dict:
    """POST a chat-completions body; every failure is an `AnswererError` naming the URL and the model."""
    who = f"{url} (model {model!r})"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = os.environ.get(api_key_env) if api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        raise AnswererError(f"{who} answered HTTP {exc.code}: {detail}") from exc
    except TimeoutError as exc:
        raise AnswererTimeout(f"no answer from {who} within {timeout_s:g} s (timeout_s)") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise AnswererTimeout(f"no answer from {who} within {timeout_s:g} s (timeout_s)") from exc
        raise AnswererError(f"cannot reach {who}: {exc.reason}") from exc
    except (ConnectionError, OSError) as exc:
        raise AnswererError(f"connection to {who} failed: {exc}") from exc
    try:
        reply = json.loads(payload)
    except ValueError as exc:
        raise AnswererError(f"{who} sent a reply that is not JSON: {payload[:200]!r}") from exc
    if not isinstance(reply, dict):
        raise AnswererError(f"{who} sent JSON that is not an object: {str(reply)[:200]}")
    return reply


def reply_text(reply: dict, url: str, model: str) -> str:
    """The text of ``choices[0].message.content`` (content parts joined)."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise AnswererError(f"{url} (model {model!r}) sent no choices[0].message.content: {str(reply)[:300]}") from exc
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise AnswererError(f"{url} (model {model!r}) sent a non-text message content: {content!r}")
    return content


@register_answerer("openai")
class OpenAIChatAnswerer:
    """An OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, hosted APIs).

    Sends one request per question: a system prompt, then the numbered
    evidence, question and lettered options as text, and (with
    ``send_images``) keyframes as base64 JPEG ``image_url`` parts. Uses only
    the standard library.

    Args:
        base_url: server root, with or without ``/v1`` (``http://127.0.0.1:8000/v1``).
        model: model name the server knows.
        api_key_env: environment variable holding the API key; unset means no
            ``Authorization`` header (local servers need none).
        timeout_s: per-request socket timeout; a server that does not answer
            raises `AnswererTimeout`.
        send_images: send keyframes (needs a vision-language model on the server).
        max_images: most keyframes per request.
        image_max_side_px: keyframes are shrunk to this longest side.
        jpeg_quality: JPEG quality of the keyframes.
        max_tokens: reply length limit.
        temperature: sampling temperature (0 = greedy).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "default",
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        send_images: bool = True,
        max_images: int = 4,
        image_max_side_px: int = 512,
        jpeg_quality: int = 85,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        for name, value, lo in (
            ("max_images", max_images, 0),
            ("image_max_side_px", image_max_side_px, 16),
            ("max_tokens", max_tokens, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality!r}")
        self.url = chat_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.send_images = bool(send_images)
        self.max_images = max_images
        self.image_max_side_px = image_max_side_px
        self.jpeg_quality = int(jpeg_quality)
        self.max_tokens = max_tokens
        self.temperature = float(temperature)

    def build_request(self, question: str, evidence: list[Evidence], options: list[str] | None = None) -> dict:
        """The JSON body sent for a question (exposed for inspection and tests)."""
        question, evidence, options = _check_inputs(question, evidence, options)
        prompt = build_prompt(question, evidence, options)
        frames = _pick_keyframes(evidence, self.max_images) if self.send_images else []
        if frames:
            content: Any = [{"type": "text", "text": prompt}]
            for j, img in frames:
                when = _fmt_span(evidence[j].time_span_s)
                content.append({"type": "text", "text": f"Keyframe from [E{j + 1}]" + (f" at {when}" if when else "")})
                content.append(
                    {
                        "type": "image_url",
                        "image_url": {"url": _jpeg_data_url(img, self.image_max_side_px, self.jpeg_quality)},
                    }
                )
        else:
            content = prompt  # plain string: text-only servers accept it everywhere
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }

    def _post(self, body: dict) -> dict:
        return post_chat(self.url, body, model=self.model, api_key_env=self.api_key_env, timeout_s=self.timeout_s)

    def answer(self, question: str, evidence: list[Evidence], options: list[str] | None = None) -> Answer:
        body = self.build_request(question, evidence, options)
        reply = self._post(body)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise AnswererError(
                f"{self.url} (model {self.model!r}) sent no choices[0].message.content: {str(reply)[:300]}"
            ) from exc
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise AnswererError(f"{self.url} (model {self.model!r}) sent a non-text message content: {content!r}")
        return parse_reply(content, options, len(evidence))


# ---------------------------------------------------------------------------
# local transformers model


@register_answerer("transformers")
class TransformersAnswerer:
    """A local Hugging Face causal language model, loaded from a folder (never downloaded).

    The prompt is the same as the HTTP back end's; models with a chat
    template get it through the template. Images are not sent (text-only).

    Args:
        model_path: folder with ``config.json``, weights and tokenizer files.
        max_new_tokens: reply length limit.
        num_threads: torch intra-op threads (None: torch's setting).

    Raises:
        ValueError: the folder is missing or is not a model folder.
    """

    name = "transformers"

    def __init__(
        self, model_path: str | os.PathLike | None = None, max_new_tokens: int = 64, num_threads: int | None = None
    ) -> None:
        if model_path is None:
            raise ValueError(
                "the transformers answerer needs model_path: a local model folder (nothing is downloaded); "
                "on the command line: --answerer transformers --model PATH"
            )
        path = Path(model_path).expanduser()
        if not path.is_dir():
            raise ValueError(
                f"transformers model folder not found: {path} (give a local folder; nothing is downloaded)"
            )
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a transformers model folder: it has no config.json")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        from engram._optional import require

        self._torch = require("torch", "the transformers answerer")
        transformers = require("transformers", "the transformers answerer")
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self._model = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load a causal language model from {path}: {exc}") from exc
        self.model_path = path
        self.max_new_tokens = max_new_tokens
        self.num_threads = num_threads

    def _prompt_ids(self, prompt: str) -> Any:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            return ids if not isinstance(ids, dict) and not hasattr(ids, "input_ids") else ids["input_ids"]
        return tok(f"{SYSTEM_PROMPT}\n\n{prompt}\nAnswer:", return_tensors="pt")["input_ids"]

    def answer(self, question: str, evidence: list[Evidence], options: list[str] | None = None) -> Answer:
        question, evidence, options = _check_inputs(question, evidence, options)
        torch = self._torch
        ids = self._prompt_ids(build_prompt(question, evidence, options))
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id
        before = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.inference_mode():
                out = self._model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad,
                )
        except RuntimeError as exc:
            raise AnswererError(f"generation with the model at {self.model_path} failed: {exc}") from exc
        finally:
            torch.set_num_threads(before)
        reply = self._tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return parse_reply(reply, options, len(evidence))
