"""Structured answers from a video memory's object tracks: counts, places, times, yes/no, order.

`answer_from_tracks` recognises the questions a timeline of object tracks
answers exactly (the same parser as embodied QA's, `parse_structured`, plus
first sightings, yes/no and which-came-first), finds the tracks whose labels
mean the object the question names (exact words first, then the text
encoder), and states the answer in a sentence with the times it rests on:

- how many X: the most X detected in one sampled frame (tracks fragment,
  simultaneous detections do not double count), and when;
- when did I (last / first) see X: the end (start) of the latest (earliest) stretch X was in view;
- where is / which room holds X: the place the events showing X were judged
  to be (room cues from the objects and tags seen with it), and when;
- did I see X: yes with the time, or no;
- which came first, X or Y / did I see X before Y: by first sightings.

A question it does not recognise, or whose object it cannot find, returns
None and goes to the answerer with the retrieved evidence instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram._util import fmt_time
from engram.qa.embodied import _singular, parse_structured

__all__ = [
    "CANT_TELL",
    "ROOM_CUES",
    "TrackFact",
    "answer_from_tracks",
    "guess_room",
    "parse_video_question",
]

CANT_TELL = "I can't tell from what I saw"

# objects that tell a room apart (ImageNet / COCO style names); one vote each, furniture weighs more
ROOM_CUES: dict[str, tuple[str, ...]] = {
    "kitchen": (
        "refrigerator",
        "fridge",
        "oven",
        "stove",
        "microwave",
        "sink",
        "dishwasher",
        "toaster",
        "kettle",
        "frying pan",
        "wok",
        "pot",
        "cabinet",
        "kitchen",
    ),
    "bedroom": (
        "bed",
        "four-poster",
        "quilt",
        "pillow",
        "wardrobe",
        "dresser",
        "nightstand",
        "crib",
        "bedroom",
    ),
    "bathroom": (
        "toilet",
        "bathtub",
        "tub",
        "shower",
        "washbasin",
        "towel",
        "bathroom",
        "medicine chest",
    ),
    "living room": (
        "sofa",
        "couch",
        "studio couch",
        "television",
        "tv",
        "entertainment center",
        "fireplace",
        "armchair",
        "coffee table",
        "living room",
        "home theater",
    ),
    "dining room": ("dining table", "dining room", "chair", "tableware"),
    "outdoors": (
        "tree",
        "grass",
        "lawn",
        "park",
        "garden",
        "patio",
        "street",
        "sidewalk",
        "lakeside",
        "valley",
        "fence",
        "soccer ball",
        "car",
        "bicycle",
        "outdoors",
    ),
    "office": (
        "desk",
        "desktop computer",
        "monitor",
        "keyboard",
        "laptop",
        "bookcase",
        "office",
        "printer",
    ),
}

# ImageNet names a kind of thing by its breed or model; these words say which kind
TAG_KINDS: dict[str, tuple[str, ...]] = {
    "dog": (
        "spaniel",
        "hound",
        "terrier",
        "retriever",
        "setter",
        "pointer",
        "collie",
        "shepherd",
        "poodle",
        "corgi",
        "cardigan",
        "pembroke",
        "husky",
        "malamute",
        "pug",
        "chihuahua",
        "beagle",
        "dachshund",
        "schnauzer",
        "sheepdog",
        "mastiff",
        "bulldog",
        "dalmatian",
        "labrador",
        "greyhound",
        "whippet",
        "pinscher",
        "boxer",
        "great dane",
        "saint bernard",
        "samoyed",
        "pomeranian",
        "chow",
        "keeshond",
        "basenji",
        "papillon",
        "maltese",
        "shih-tzu",
        "bernese",
        "newfoundland",
        "leonberg",
        "vizsla",
        "weimaraner",
        "briard",
        "kelpie",
    ),
    "cat": ("tabby", "tiger cat", "persian cat", "siamese cat", "egyptian cat"),
    "cup": ("coffee mug", "cup"),
    "ball": (
        "soccer ball",
        "tennis ball",
        "golf ball",
        "basketball",
        "volleyball",
        "croquet ball",
        "rugby ball",
    ),
}

_ART = r"(?:the |a |an |any |my |some )?"
_EXTRA = [
    (
        "first_seen",
        re.compile(rf"^when (?:did|have) (?:i|you|we) first (?:see|seen|notice) {_ART}(?P<x>.+?)\??$"),
    ),
    (
        "first_seen",
        re.compile(rf"^when (?:did|does) {_ART}(?P<x>.+?) first (?:appear|show up|come into view)\??$"),
    ),
    ("last_seen", re.compile(rf"^when was {_ART}(?P<x>.+?) last (?:seen|visible)\??$")),
    (
        "order",
        re.compile(
            rf"^(?:which|what) (?:came|did (?:i|you|we) see|appeared|was seen) first,? {_ART}(?P<x>.+?) or {_ART}(?P<y>.+?)\??$"
        ),
    ),
    (
        "before",
        re.compile(rf"^did (?:i|you|we) see {_ART}(?P<x>.+?) before {_ART}(?P<y>.+?)\??$"),
    ),
    (
        "saw",
        re.compile(r"^(?:did|do|have) (?:i|you|we) (?:see|seen|notice) (?:a |an |any |the |some )?(?P<x>.+?)\??$"),
    ),
    ("saw", re.compile(rf"^(?:is|are|was|were) there {_ART}(?P<x>.+?)\??$")),
]


@dataclass
class TrackFact:
    """A structured answer.

    Attributes:
        kind: "how_many", "last_seen", "first_seen", "where", "which_room", "saw", "order", "before".
        answer: the answer in one sentence.
        value: the exact value (an int, a time in s, a room name, a bool, a label).
        time_span_s: the span of the frames it rests on (None when nothing was seen).
        labels: the track labels taken to mean the question's object.
        found: False when the object was not seen at all.
    """

    kind: str
    answer: str
    value: Any = None
    time_span_s: tuple[float, float] | None = None
    labels: list[str] = field(default_factory=list)
    found: bool = True


def parse_video_question(question: str) -> tuple[str, dict[str, Any]] | None:
    """(kind, slots) for questions object tracks answer, else None."""
    q = re.sub(r"\s+", " ", question.strip().lower())
    for kind, pat in _EXTRA[:3]:
        m = pat.match(q)
        if m:
            return kind, {k: v for k, v in m.groupdict().items() if v}
    parsed = parse_structured(question)
    if parsed is not None and parsed[0] in (
        "how_many",
        "last_seen",
        "where",
        "which_room",
    ):
        return parsed
    for kind, pat in _EXTRA[3:]:
        m = pat.match(q)
        if m:
            return kind, {k: v for k, v in m.groupdict().items() if v}
    return None


def _words(text: str) -> list[str]:
    return [_singular(w) for w in re.findall(r"[a-z]+", text.lower()) if w not in ("the", "a", "an", "of", "my")]


def match_labels(name: str, labels: list[str], text_encoder: Any = None, min_similarity: float = 0.6) -> list[str]:
    """Track labels that mean ``name``: the same words (singular) first, else close in the text encoder's space."""
    want = _words(name)
    if not want or not labels:
        return []
    exact = [lab for lab in labels if _words(lab) == want]
    if exact:
        return exact
    head = want[-1]
    partial = [lab for lab in labels if head in _words(lab)]
    if partial:
        return partial
    if text_encoder is None:
        return []
    emb = np.asarray(text_encoder.encode([" ".join(want)] + list(labels)), np.float64)
    sim = emb[1:] @ emb[0]
    best = float(sim.max())
    if best < min_similarity:
        return []
    return [lab for lab, s in zip(labels, sim.tolist()) if s >= best - 0.03]


def guess_room(names: list[tuple[str, float]]) -> tuple[str | None, list[str]]:
    """The room that labels and tags (name, weight) point to, and the cues that decided it."""
    votes: dict[str, float] = {}
    cues: dict[str, list[str]] = {}
    for name, w in names:
        low = name.lower().replace("_", " ")
        for room, words in ROOM_CUES.items():
            if any(re.search(rf"\b{re.escape(c)}s?\b", low) for c in words):
                votes[room] = votes.get(room, 0.0) + float(w)
                cues.setdefault(room, []).append(name)
    if not votes:
        return None, []
    room = max(votes, key=lambda r: (votes[r], r))
    return room, sorted(set(cues[room]))


def _tag_means(tag: str, name: str) -> bool:
    words = _words(name)
    low = tag.lower().replace("_", " ")
    if words and all(re.search(rf"\b{re.escape(w)}(?:s|es)?\b", low) for w in words):
        return True
    kinds = TAG_KINDS.get(" ".join(words), ())
    return any(re.search(rf"\b{re.escape(k)}\b", low) for k in kinds)


def _from_tags(kind: str, x: str, memory: Any, text_encoder: Any) -> TrackFact | None:
    """No track has the object: the events whose scene tags name it (or a breed of it) answer yes/when/where."""
    if kind not in (
        "saw",
        "last_seen",
        "first_seen",
        "where",
        "which_room",
        "how_many",
    ):
        return None
    nodes = [n for n in memory.nodes(0) if any(_tag_means(t, x) for t, p in n.tags if p >= 0.05)]
    if not nodes:
        return None
    tag = next(t for t, _ in nodes[0].tags if _tag_means(t, x))
    what = f"what looks like a {_singular(x)} ({tag})"
    first, last = nodes[0], nodes[-1]
    span = (first.start_s, last.end_s)
    if kind == "saw":
        return TrackFact(
            kind,
            f"Yes, I saw {what} from {fmt_time(span[0])} to {fmt_time(span[1])}.",
            True,
            span,
        )
    if kind == "how_many":  # scene tags say that, not how many
        return TrackFact(
            kind,
            f"At least 1: I saw {what} from {fmt_time(span[0])} to {fmt_time(span[1])}; no detection counted them.",
            1,
            span,
        )
    if kind == "last_seen":
        return TrackFact(
            kind,
            f"I last saw {what} at {fmt_time(last.end_s)}.",
            last.end_s,
            (last.start_s, last.end_s),
        )
    if kind == "first_seen":
        return TrackFact(
            kind,
            f"I first saw {what} at {fmt_time(first.start_s)}.",
            first.start_s,
            (first.start_s, first.end_s),
        )
    names = [(n, w) for node in nodes for n, w in node.labels] + [(t, 0.5 * w) for node in nodes for t, w in node.tags]
    room, cues = guess_room(names)
    if room is None:
        return TrackFact(
            kind,
            f"{CANT_TELL} which room: I saw {what} at {fmt_time(last.end_s)}.",
            None,
            span,
        )
    return TrackFact(
        kind,
        f"In the {room}: I saw {what} there at {fmt_time(last.end_s)} (with {', '.join(cues[:3])}).",
        room,
        span,
    )


def _not_seen(kind: str, x: str) -> TrackFact:
    return TrackFact(kind, f"{CANT_TELL}: I did not see any {x}.", value=None, found=False)


def answer_from_tracks(question: str, memory: Any, text_encoder: Any = None) -> TrackFact | None:
    """The structured answer to ``question`` from ``memory.objects`` (an `ObjectTracker`), or None.

    Args:
        question: the question.
        memory: an `EpisodicMemory` with object tracks.
        text_encoder: matches the question's object to track labels when the words differ.
    """
    parsed = parse_video_question(question)
    tracker = getattr(memory, "objects", None)
    if parsed is None or tracker is None or len(tracker) == 0:
        return None
    kind, slots = parsed
    labels = tracker.labels()
    x = slots.get("x", "").strip()
    xs = match_labels(x, labels, text_encoder)
    if kind in ("order", "before"):
        y = slots.get("y", "").strip()
        ys = match_labels(y, labels, text_encoder)
        if not xs or not ys:
            return _not_seen(kind, x if not xs else y)
        tx = min(t.first_s for t in tracker.of_labels(xs))
        ty = min(t.first_s for t in tracker.of_labels(ys))
        first = x if tx <= ty else y
        span = (min(tx, ty), max(tx, ty))
        if kind == "order":
            return TrackFact(
                kind,
                f"The {first} came first: {x} at {fmt_time(tx)}, {y} at {fmt_time(ty)}.",
                first,
                span,
                xs + ys,
            )
        yes = tx < ty
        word = "Yes" if yes else "No"
        return TrackFact(
            kind,
            f"{word}: I first saw the {x} at {fmt_time(tx)} and the {y} at {fmt_time(ty)}.",
            yes,
            span,
            xs + ys,
        )
    if not xs:
        tagged = _from_tags(kind, x, memory, text_encoder)
        if tagged is not None:
            return tagged
        if kind == "saw":
            return TrackFact(kind, f"No, I did not see any {x}.", False, None, [], found=False)
        return _not_seen(kind, x)
    tracks = tracker.of_labels(xs)
    first_s = min(t.first_s for t in tracks)
    last_s = max(t.last_s for t in tracks)
    if kind == "how_many":
        n, when = tracker.most_at_once(xs)
        n = max(n, 1)
        noun = x if n != 1 else xs[0]
        return TrackFact(
            kind,
            f"{n} — I saw at most {n} {noun} at once (at {fmt_time(when or first_s)}).",
            n,
            (when or first_s, when or first_s),
            xs,
        )
    if kind == "last_seen":
        span = max((s for t in tracks for s in t.spans), key=lambda s: s[1])
        return TrackFact(
            kind,
            f"I last saw the {x} at {fmt_time(span[1])} (in view {fmt_time(span[0])}-{fmt_time(span[1])}).",
            span[1],
            (span[0], span[1]),
            xs,
        )
    if kind == "first_seen":
        span = min((s for t in tracks for s in t.spans), key=lambda s: s[0])
        return TrackFact(
            kind,
            f"I first saw the {x} at {fmt_time(span[0])}.",
            span[0],
            (span[0], span[1]),
            xs,
        )
    if kind == "saw":
        return TrackFact(
            kind,
            f"Yes, I saw the {x} from {fmt_time(first_s)} to {fmt_time(last_s)}.",
            True,
            (first_s, last_s),
            xs,
        )
    # where / which_room: the place the events showing it look like
    times = tracker.frames_with(xs)
    names: list[tuple[str, float]] = []
    seen_nodes = set()
    for t in times:
        node = memory.at_time(t, level=0)
        if node is None or node.node_id in seen_nodes:
            continue
        seen_nodes.add(node.node_id)
        names += [(n, w) for n, w in node.labels if n not in xs] + [(n, 0.5 * w) for n, w in node.tags]
        if node.caption:
            names.append((node.caption, 1.0))
    others = {tr.label for tr in tracker.in_span(first_s, last_s) if tr.label not in xs and tr.label != "object"}
    # the object itself tells the room when it belongs to one (a bed is in a bedroom)
    room, cues = guess_room([(lab, 3.0 * len(times)) for lab in xs] + names)
    span = (first_s, last_s)
    if room is None:
        near = ", ".join(sorted(others)[:4])
        where = f"; it was with {near}" if near else ""
        return TrackFact(
            kind,
            f"{CANT_TELL} which room: I saw the {x} at {fmt_time(last_s)}{where}.",
            None,
            span,
            xs,
        )
    return TrackFact(
        kind,
        f"In the {room}: I saw the {x} there at {fmt_time(last_s)} (with {', '.join(cues[:3])}).",
        room,
        span,
        xs,
    )
