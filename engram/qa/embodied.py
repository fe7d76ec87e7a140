"""Embodied question answering over a SceneMemory (after 3D-Mem and OpenEQA).

Questions the structured memory answers exactly are answered directly, with
no language model: where is X (room and position), how many X, is there X in
room R, what is next to X, when did I last see X, what changed since t, which
room is X in. Everything else goes to a pluggable answerer with evidence
chosen 3D-Mem style: object classes are ranked against the question
(prefiltering), and the memory snapshots that show the best classes are handed
over with their images, object ids, positions and times.

Active mode: when the evidence is not enough (nothing matching in memory, or
the answerer says so), the agent explores toward a frontier with the planner
and asks again, within a step budget.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EQAAnswer", "EmbodiedQA", "llm_match_to_100", "llm_spl", "merge_fragments", "parse_structured"]

NOT_OBSERVED = "not observed yet"

_ART = r"(?:the |a |an |any |my |some )?"
_PATTERNS: list[tuple[str, re.Pattern]] = [
    (
        "how_many",
        re.compile(
            rf"^how many {_ART}(?P<x>.+?)(?: are there| do you see| did you see| can you see)?(?: in {_ART}(?P<r>.+?))?\??$"
        ),
    ),
    ("is_there", re.compile(rf"^(?:is|are) there {_ART}(?P<x>.+?) in {_ART}(?P<r>.+?)\??$")),
    ("which_room", re.compile(rf"^(?:which|what) room (?:is|are|was|were) {_ART}(?P<x>.+?)(?: in)?\??$")),
    ("which_room", re.compile(rf"^in (?:which|what) room (?:is|are|was|were) {_ART}(?P<x>.+?)\??$")),
    ("near", re.compile(rf"^what(?:'s| is| are)? (?:next to|near|beside|close to|by) {_ART}(?P<x>.+?)\??$")),
    (
        "last_seen",
        re.compile(rf"^when (?:did|have) (?:i|you|we) (?:last )?(?:see|seen) {_ART}(?P<x>.+?)(?: last)?\??$"),
    ),
    ("changed", re.compile(r"^what (?:has )?(?:changed|moved)(?: since (?P<t>[\d.:]+)\s*(?:s|sec|seconds)?)?\??$")),
    ("where", re.compile(rf"^where (?:is|are|was|were|did i (?:see|leave)) {_ART}(?P<x>.+?)(?: now)?\??$")),
]


def _parse_time(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    t = 0.0
    for p in parts:
        t = t * 60 + p
    return t


def parse_structured(question: str) -> tuple[str, dict[str, Any]] | None:
    """(category, slots) for questions the structured memory answers, else None."""
    q = re.sub(r"\s+", " ", question.strip().lower())
    for kind, pat in _PATTERNS:
        m = pat.match(q)
        if m:
            slots = {k: v for k, v in m.groupdict().items() if v is not None}
            if "t" in slots:
                slots["t"] = _parse_time(slots["t"])
            return kind, slots
    return None


# plurals the suffix rules below get wrong
_IRREGULAR_PLURALS = {
    "shelves": "shelf",
    "knives": "knife",
    "leaves": "leaf",
    "loaves": "loaf",
    "people": "person",
    "mice": "mouse",
    "children": "child",
    "men": "man",
    "women": "woman",
    "feet": "foot",
    "teeth": "tooth",
    "tvs": "tv",  # too short for the suffix rule (which keeps "bus" and "gas")
    "pcs": "pc",
}


def _singular(word: str) -> str:
    w = word.strip()
    if w.lower() in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[w.lower()]
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "sses", "xes")):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss") and len(w) > 3:
        return w[:-1]
    return w


def _box_gap_m(a, b) -> float:
    """Distance between two objects' axis-aligned boxes (0 when they touch or overlap)."""
    gap = np.maximum(
        np.maximum(
            np.asarray(a.box_min, float) - np.asarray(b.box_max, float),
            np.asarray(b.box_min, float) - np.asarray(a.box_max, float),
        ),
        0.0,
    )
    return float(np.linalg.norm(gap))


def _size(o) -> int:
    pts = getattr(o, "points", None)
    return len(pts) if pts is not None else int(getattr(o, "n_detections", 1))


def merge_fragments(objs: list, gap_m: float = 0.3, share: float = 0.2) -> list:
    """Drop fragments: objects lying within ``gap_m`` of a same-category object with
    more than 1 / ``share`` times their points (part of it that fusion left apart).

    Two real instances side by side (two chairs, two mugs) are of similar size and stay apart.
    """
    if len(objs) < 2:
        return list(objs)
    order = sorted(objs, key=lambda o: -_size(o))
    kept: list = []
    for o in order:
        if any(k.label == o.label and _size(o) < share * _size(k) and _box_gap_m(o, k) <= gap_m for k in kept):
            continue
        kept.append(o)
    keep_ids = {id(k) for k in kept}
    return [o for o in objs if id(o) in keep_ids]


def llm_match_to_100(score_1_to_5: float) -> float:
    """OpenEQA's LLM-match: a 1-5 judge score mapped to 0-100."""
    return (float(score_1_to_5) - 1.0) / 4.0 * 100.0


def llm_spl(score_0_to_1: float, shortest_path_m: float, path_taken_m: float) -> float:
    """A-EQA's efficiency-weighted score: score x shortest / max(shortest, taken)."""
    denom = max(shortest_path_m, path_taken_m)
    return float(score_0_to_1) * (shortest_path_m / denom if denom > 0 else 1.0)


@dataclass
class EQAAnswer:
    """An answer with its evidence.

    Attributes:
        text: the answer in words.
        category: the structured category, or "open" for answerer questions.
        value: the exact value for structured questions (a count, a bool, a room, a time, ids).
        enough_evidence: False when memory could not support an answer.
        object_ids: memory objects used as evidence.
        positions: their positions.
        snapshot_frames: frames of the memory snapshots shown as evidence.
        times_s: times of the evidence.
        candidates: for ambiguous names, the objects that could be meant; for a name nothing
            carries, the closest match (`EmbodiedQA`'s ``hint_min_score``).
        steps: actions taken in active mode.
        path_length_m: distance travelled in active mode.
    """

    text: str
    category: str
    value: Any = None
    enough_evidence: bool = True
    object_ids: list[int] = field(default_factory=list)
    positions: list[tuple[float, float, float]] = field(default_factory=list)
    snapshot_frames: list[int] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    path_length_m: float = 0.0


class EmbodiedQA:
    """Answer questions from a SceneMemory.

    Args:
        memory: the SceneMemory to read.
        answerer: an `Answerer` for open questions (default: the offline answerer).
        near_radius_m: "next to" means within this distance between boxes.
        max_snapshots: evidence snapshots handed to the answerer.
        fragment_gap_m, fragment_share: an object of the same category within
            ``fragment_gap_m`` of another (box to box) and with less than
            ``fragment_share`` of its points is a fragment of it, not another instance.
        hint_min_score: when nothing is named after what a question asks about, the
            answer still says "not observed" (its value stays empty), and names the
            object the memory's own text query ranks first if it scores at least this
            (a related word, a detector's second guess: a "monitor" for "television").
            None: no hint.
    """

    def __init__(
        self,
        memory,
        answerer: Any = None,
        *,
        near_radius_m: float = 1.0,
        max_snapshots: int = 4,
        fragment_gap_m: float = 0.3,
        fragment_share: float = 0.2,
        hint_min_score: float | None = 0.5,
    ) -> None:
        if hint_min_score is not None and not 0 < hint_min_score <= 1:
            raise ValueError(f"hint_min_score must be in (0, 1] or None, got {hint_min_score}")
        if not near_radius_m > 0 or max_snapshots < 1 or fragment_gap_m < 0 or not 0 <= fragment_share < 1:
            raise ValueError(
                f"need near_radius_m > 0, max_snapshots >= 1, fragment_gap_m >= 0 and 0 <= fragment_share < 1, got "
                f"{near_radius_m}, {max_snapshots}, {fragment_gap_m}, {fragment_share}"
            )
        self.memory = memory
        self._answerer = answerer
        self.near_radius_m = near_radius_m
        self.max_snapshots = max_snapshots
        self.fragment_gap_m = fragment_gap_m
        self.fragment_share = fragment_share
        self.hint_min_score = hint_min_score

    @property
    def answerer(self):
        if self._answerer is None:
            from engram.qa.answerers import build_answerer

            self._answerer = build_answerer("offline", text_encoder=self.memory.text_encoder)
        return self._answerer

    def rooms(self):
        """The memory's rooms (`SceneMemory.rooms`: the same rooms its labels were weighed by)."""
        return self.memory.rooms()

    # ------------------------------------------------------------------ matching
    def _labels(self) -> list[str]:
        return sorted({o.label for o in self.memory.objects.objects.values()})

    def match_objects(self, name: str, min_score: float = 0.75, *, merge: bool = True) -> list:
        """Objects whose category matches ``name`` best (all of the best category).

        With ``merge``, a small piece of the same category lying against
        a much larger object (fusion left part of it apart) is counted with it,
        not as another instance (see `merge_fragments`).
        """
        labels = self._labels()
        if not labels:
            return []
        name = name.strip()
        cands = {name, _singular(name)}
        best = np.zeros(len(labels))
        for c in cands:
            best = np.maximum(best, self.memory.label_scores(c, labels))
        top = float(best.max())
        if top < min_score:
            return []
        chosen = {labels[i] for i in np.flatnonzero(best >= top - 1e-6)}
        objs = [o for o in self.memory.objects.objects.values() if o.label in chosen]
        return merge_fragments(objs, self.fragment_gap_m, self.fragment_share) if merge else objs

    def _room_name(self, xyz) -> str | None:
        room = self.rooms().room_at(np.asarray(xyz)[:2])
        return None if room is None else room.name

    def _describe(self, o) -> dict[str, Any]:
        c = np.asarray(o.centroid, float)
        return {
            "id": int(o.id),
            "label": o.label,
            "room": self._room_name(c),
            "position": tuple(round(float(v), 2) for v in c),
        }

    # ------------------------------------------------------------------ answering
    def ask(self, question: str, options: list[str] | None = None) -> EQAAnswer:
        """Answer one question from memory (no exploration)."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        parsed = parse_structured(question)
        if parsed is not None and options is None:
            kind, slots = parsed
            ans = getattr(self, f"_q_{kind}")(**slots)
            if ans is not None:
                return ans
        return self._open(question, options)

    def _closest(self, what: str) -> Any:
        """The object the memory's text query ranks first for ``what`` (None below ``hint_min_score``)."""
        if self.hint_min_score is None or not self.memory.objects.objects:
            return None
        hits = [
            h
            for w in dict.fromkeys((what, _singular(what)))  # "benches" and "bench"
            for h in self.memory.query(text=w, kinds=("object",), k=1, min_score=self.hint_min_score)
        ]
        return self.memory.objects.objects.get(max(hits, key=lambda h: h.score).id) if hits else None

    def _hint(self, what: str) -> tuple[str, list[dict[str, Any]]]:
        """Words naming the closest match to ``what`` (empty without one), and it as the candidate meant."""
        o = self._closest(what)
        if o is None:
            return "", []
        d = self._describe(o)
        room = f"in the {d['room']}" if d["room"] else "in an unsegmented area"
        return (
            f" by that name; the closest match is the {d['label']} (object {d['id']}) {room} at {d['position']}",
            [d],
        )

    def _not_observed(self, category: str, what: str) -> EQAAnswer:
        hint, cands = self._hint(what)
        return EQAAnswer(f"{what}: {NOT_OBSERVED}{hint}", category, value=None, enough_evidence=False, candidates=cands)

    def _q_where(self, x: str) -> EQAAnswer:
        objs = self.match_objects(x)
        if not objs:
            return self._not_observed("where", x)
        descs = [self._describe(o) for o in objs]
        ev = self._evidence_fields(objs)
        if len(objs) > 1:
            listing = "; ".join(
                f"{d['label']} {d['id']} in the {d['room'] or 'unknown room'} at {d['position']}" for d in descs
            )
            return EQAAnswer(
                f"{len(objs)} candidates for '{x}': {listing}", "where", value=descs, candidates=descs, **ev
            )
        d = descs[0]
        room = f"in the {d['room']}" if d["room"] else "in an unsegmented area"
        return EQAAnswer(f"the {d['label']} is {room} at {d['position']}", "where", value=d, **ev)

    def _q_which_room(self, x: str) -> EQAAnswer:
        objs = self.match_objects(x)
        if not objs:
            return self._not_observed("which_room", x)
        rooms = sorted({self._room_name(o.centroid) or "unknown room" for o in objs})
        descs = [self._describe(o) for o in objs]
        text = ", ".join(rooms)
        if len(objs) > 1:  # several instances: name each one, even when they share a room
            text = f"{len(objs)} candidates for '{x}': " + "; ".join(
                f"{d['label']} {d['id']} in the {d['room'] or 'unknown room'}" for d in descs
            )
        return EQAAnswer(
            text,
            "which_room",
            value=rooms if len(rooms) > 1 else rooms[0],
            candidates=descs if len(objs) > 1 else [],
            **self._evidence_fields(objs),
        )

    def _q_how_many(self, x: str, r: str | None = None) -> EQAAnswer:
        objs = self.match_objects(x)
        if r is not None:
            objs = [o for o in objs if (self._room_name(o.centroid) or "") == r.strip()]
        n = len(objs)
        where = f" in the {r}" if r else ""
        if n == 0 and r is None:  # nothing of that name: a related one the user may mean
            hint, cands = self._hint(x)
            return EQAAnswer(f"0{hint}", "how_many", value=0, candidates=cands)
        return EQAAnswer(f"{n}{where}", "how_many", value=n, **self._evidence_fields(objs))

    def _q_is_there(self, x: str, r: str) -> EQAAnswer:
        objs = [o for o in self.match_objects(x) if (self._room_name(o.centroid) or "") == r.strip()]
        known_room = bool(self.rooms().by_name(r))
        if not objs and not known_room:
            return EQAAnswer(f"no (the {r} is {NOT_OBSERVED})", "is_there", value=False, enough_evidence=False)
        return EQAAnswer("yes" if objs else "no", "is_there", value=bool(objs), **self._evidence_fields(objs))

    def _near_of(self, ref) -> list[tuple[float, Any]]:
        """Objects whose boxes lie within ``near_radius_m`` of ``ref``'s (in the floor plane), nearest first."""
        lo, hi = np.asarray(ref.box_min, float), np.asarray(ref.box_max, float)
        near = []
        for o in self.memory.objects.objects.values():
            if o.id == ref.id:
                continue
            olo, ohi = np.asarray(o.box_min, float), np.asarray(o.box_max, float)
            gap = np.maximum(np.maximum(lo - ohi, olo - hi), 0.0)
            d = float(np.linalg.norm(gap[:2]))
            if d <= self.near_radius_m:
                near.append((d, o))
        near.sort(key=lambda t: t[0])
        return near

    def _q_near(self, x: str) -> EQAAnswer:
        objs = self.match_objects(x)
        if not objs:
            return self._not_observed("near", x)
        per = [(o, self._near_of(o)) for o in objs]
        nothing = f"nothing remembered within {self.near_radius_m:g} m"
        if len(objs) == 1:
            labels = [o.label for _, o in per[0][1]]
            text = ", ".join(dict.fromkeys(labels)) if labels else nothing
            return EQAAnswer(
                text, "near", value=sorted(set(labels)), **self._evidence_fields([objs[0]] + [o for _, o in per[0][1]])
            )
        # several instances: what is next to each one, each named (the value is the union)
        descs, parts = [], []
        evidence: list[Any] = []  # the memory's objects, each once
        for o, near in per:
            labels = [n.label for _, n in near]
            d = self._describe(o)
            d["near"] = sorted(set(labels))
            descs.append(d)
            parts.append(
                f"{d['label']} {d['id']} in the {d['room'] or 'unknown room'}: "
                + (", ".join(dict.fromkeys(labels)) if labels else nothing)
            )
            for e in [o] + [n for _, n in near]:
                if all(e is not k for k in evidence):
                    evidence.append(e)
        union = sorted({lab for d in descs for lab in d["near"]})
        return EQAAnswer(
            f"{len(objs)} candidates for '{x}': " + "; ".join(parts),
            "near",
            value=union,
            candidates=descs,
            **self._evidence_fields(evidence),
        )

    def _q_last_seen(self, x: str) -> EQAAnswer:
        objs = self.match_objects(x, merge=False)  # a fragment's sighting is a sighting too
        if not objs:
            return self._not_observed("last_seen", x)
        o = max(objs, key=lambda o: o.last_seen_s)
        t = float(o.last_seen_s)
        text = f"at t={t:.1f} s, in the {self._room_name(o.centroid) or 'unknown room'}"
        whole = merge_fragments(objs, self.fragment_gap_m, self.fragment_share)
        if len(whole) > 1:  # several instances: when each was last seen (the value is the latest)
            descs = [self._describe(w) | {"last_seen_s": round(float(w.last_seen_s), 1)} for w in whole]
            descs.sort(key=lambda d: -d["last_seen_s"])
            text = f"{len(whole)} candidates for '{x}': " + "; ".join(
                f"{d['label']} {d['id']} at t={d['last_seen_s']:.1f} s, in the {d['room'] or 'unknown room'}"
                for d in descs
            )
            return EQAAnswer(text, "last_seen", value=t, candidates=descs, **self._evidence_fields(whole))
        return EQAAnswer(text, "last_seen", value=t, **self._evidence_fields([o]))

    def _q_changed(self, t: float | None = None) -> EQAAnswer:
        events = self.memory.changes(since_s=t)
        if not events:
            return EQAAnswer("nothing changed" + (f" since t={t:.1f} s" if t is not None else ""), "changed", value=[])
        parts = []
        for e in events:
            if e.kind == "moved":
                parts.append(
                    f"the {e.label} moved from the {self._room_name(e.from_xyz) or '?'} to the {self._room_name(e.to_xyz) or '?'} (t={e.t_s:.1f} s)"
                )
            else:
                parts.append(f"the {e.label} {e.kind} (t={e.t_s:.1f} s)")
        return EQAAnswer(
            "; ".join(parts),
            "changed",
            value=[e.to_dict() for e in events],
            object_ids=[e.object_id for e in events],
            times_s=[e.t_s for e in events],
        )

    def _evidence_fields(self, objs) -> dict[str, Any]:
        snaps = []
        for o in objs:
            s = self.memory.snapshots.snapshot_of(o.id)
            if s is not None:
                sid = s if isinstance(s, (int, np.integer)) else getattr(s, "frame_index", None)
                if sid is not None and int(sid) not in snaps:
                    snaps.append(int(sid))
        return {
            "object_ids": [int(o.id) for o in objs],
            "positions": [tuple(float(v) for v in np.asarray(o.centroid)) for o in objs],
            "snapshot_frames": snaps,
            "times_s": [float(o.last_seen_s) for o in objs],
        }

    # ------------------------------------------------------------------ open questions
    def prefilter(self, question: str, top_classes: int = 3) -> tuple[list[str], list]:
        """3D-Mem prefiltering: rank object classes against the question, keep snapshots showing the best."""
        labels = self._labels()
        if not labels:
            return [], []
        words = re.findall(r"[a-z]+", question.lower())
        scores = np.zeros(len(labels))
        for w in set(words) | {question}:
            scores = np.maximum(scores, self.memory.label_scores(_singular(w), labels))
        order = [i for i in np.argsort(-scores) if scores[i] > 0.3][:top_classes]
        classes = [labels[i] for i in order]
        objs = self.memory.objects.objects
        snaps = []
        for s in self.memory.snapshots.snapshots:
            shown = {objs[i].label for i in s.object_ids if i in objs}
            overlap = len(shown & set(classes))
            if overlap:
                snaps.append((overlap, len(shown), s))
        snaps.sort(key=lambda t: (-t[0], -t[1]))
        return classes, [s for _, _, s in snaps[: self.max_snapshots]]

    def _open(self, question: str, options: list[str] | None) -> EQAAnswer:
        from engram.qa.answerers import Evidence

        classes, snaps = self.prefilter(question)
        objs = self.memory.objects.objects
        evidence = []
        for s in snaps:
            shown = [objs[i] for i in s.object_ids if i in objs]
            text = "snapshot at t={:.1f} s showing: {}".format(
                float(s.timestamp_s),
                "; ".join(
                    f"{o.label} in the {self._room_name(o.centroid) or 'unknown room'} at {tuple(round(float(v), 2) for v in np.asarray(o.centroid))}"
                    for o in shown
                ),
            )
            images = []
            data = getattr(s, "image_jpeg", None)
            if data:
                import cv2

                img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if img is not None:
                    images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            evidence.append(
                Evidence(
                    text=text,
                    time_span_s=(float(s.timestamp_s), float(s.timestamp_s)),
                    images=images,
                    score=1.0,
                    source_id=f"snapshot:{int(s.frame_index)}",
                    meta={"object_ids": list(s.object_ids)},
                )
            )
        if not evidence:
            return EQAAnswer(NOT_OBSERVED, "open", enough_evidence=False)
        ans = self.answerer.answer(question, evidence, options=options)
        used = [snaps[i] for i in (ans.evidence_used or range(len(snaps))) if i < len(snaps)]
        ids = sorted({i for s in used for i in s.object_ids})
        return EQAAnswer(
            ans.text,
            "open",
            value=ans.choice_index if options else ans.text,
            enough_evidence=bool(ans.enough_evidence),
            object_ids=ids,
            snapshot_frames=[int(s.frame_index) for s in used],
            times_s=[float(s.timestamp_s) for s in used],
        )

    # ------------------------------------------------------------------ active mode
    def ask_active(
        self,
        question: str,
        sim,
        explorer,
        *,
        max_steps: int = 300,
        chunk_steps: int = 40,
        options: list[str] | None = None,
    ) -> EQAAnswer:
        """Ask; while the evidence is not enough, explore toward frontiers and ask again."""
        steps = 0
        travelled = 0.0
        last = np.asarray(sim.agent_pose.translation[:2], float).copy()
        ans = self.ask(question, options)
        # turn a full circle only where nothing is mapped yet: a resumed search has looked around already
        takes_look_around = "look_around" in inspect.signature(explorer.explore).parameters
        while not ans.enough_evidence and steps < max_steps:
            kw = {"look_around": steps == 0 and self.memory.frames_mapped == 0} if takes_look_around else {}
            res = explorer.explore(sim, max_steps=min(chunk_steps, max_steps - steps), **kw)
            steps += res.steps
            for xy in res.trajectory_xy:
                travelled += float(np.linalg.norm(np.asarray(xy) - last))
                last = np.asarray(xy, float)
            self.memory.finalize()
            ans = self.ask(question, options)
            if res.reason == "no reachable frontier" or res.steps == 0:
                break
        ans.steps = steps
        ans.path_length_m = travelled
        return ans


# ---------------------------------------------------------------------- OpenEQA files
def read_openeqa(path) -> list[dict[str, Any]]:
    """Questions in OpenEQA's JSON format: a list of {question_id, category, question, answer, episode_history, ...}."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable OpenEQA JSON file ({exc})") from exc
    if not isinstance(data, list):
        raise ValueError(f"{p}: OpenEQA files hold a JSON list of questions, got {type(data).__name__}")
    out = []
    for i, q in enumerate(data):
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or "answer" not in q:
            raise ValueError(f"{p}: entry {i} needs a 'question' string and an 'answer'")
        out.append({"question_id": str(q.get("question_id", i)), "category": q.get("category", ""), **q})
    return out


def write_openeqa(path, questions: list[dict[str, Any]]) -> None:
    """Write questions in OpenEQA's JSON format (atomically)."""
    import json
    import os
    from pathlib import Path

    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(questions, indent=1))
    os.replace(tmp, p)


def answer_openeqa(eqa: EmbodiedQA, questions: list[dict[str, Any]], judge=None) -> tuple[list[str], Any]:
    """Answer every question from memory and score with OpenEQA's LLM-Match (pluggable judge).

    Returns:
        The predictions and the `LLMMatchResult` (score 0-100).
    """
    from engram.qa.evaluation import llm_match_score, token_overlap_judge

    preds = [eqa.ask(q["question"]).text for q in questions]
    result = llm_match_score(
        [q["question"] for q in questions],
        [str(q["answer"]) for q in questions],
        preds,
        judge or token_overlap_judge,
        extra_answers=[q.get("extra_answers") for q in questions],
    )
    return preds, result
