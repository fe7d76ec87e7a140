"""Scoring question answering: choices, temporal grounding, LLM-judged open answers, question files.

Video QA parts: multiple-choice accuracy; temporal grounding of retrieved
spans against ground-truth spans (IoU, recall@k); OpenEQA's LLM-Match score
with a pluggable judge (any callable prompt -> reply text, e.g. an
OpenAI-compatible chat backend); and reading / writing question files in the
EgoSchema (JSON) and NExT-QA (CSV) layouts, plus a JSON-lines layout that
keeps everything engram knows about a question (spans, type). Embodied-QA
scoring builds on the same pieces in its own section. Object maps are scored
by matching their 3D boxes one to one to ground truth (`match_object_boxes`):
localisation, labels, precision and duplicates read off one matching. A
memory built on real data is scored against hand-made boxes
(`load_annotated_boxes`, `score_objects`): is each object found, and does a
text query for its name bring it back.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LLM_MATCH_PROMPT",
    "AnnotatedObject",
    "answer_head",
    "answerer_judge",
    "score_answer",
    "Box3D",
    "LLMMatchResult",
    "ObjectFound",
    "ObjectMapScore",
    "ObjectMatch",
    "RealObjectScore",
    "Span",
    "VideoQuestion",
    "box_iou_3d",
    "llm_match_prompt",
    "llm_match_score",
    "load_annotated_boxes",
    "match_object_boxes",
    "mean_best_iou",
    "multiple_choice_accuracy",
    "parse_judge_score",
    "read_questions",
    "recall_at_k",
    "score_objects",
    "spans_overlap",
    "temporal_iou",
    "token_f1",
    "token_overlap_judge",
    "write_questions",
]

Span = tuple[float, float]


# ---------------------------------------------------------------------------
# multiple choice


def multiple_choice_accuracy(predicted: Sequence[int | None], correct: Sequence[int]) -> float:
    """Share of questions whose predicted option index is the correct one (None counts as wrong).

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(predicted) != len(correct):
        raise ValueError(f"{len(predicted)} predictions for {len(correct)} questions")
    if not correct:
        raise ValueError("no questions to score")
    hits = sum(1 for p, c in zip(predicted, correct) if p is not None and int(p) == int(c))
    return hits / len(correct)


# ---------------------------------------------------------------------------
# temporal grounding


def _span(s: Any, what: str = "span") -> Span:
    try:
        a, b = float(s[0]), float(s[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{what} must be (start_s, end_s), got {s!r}") from exc
    if not (math.isfinite(a) and math.isfinite(b)) or b < a:
        raise ValueError(f"{what} must be finite with end >= start, got {s!r}")
    return a, b


def temporal_iou(a: Span, b: Span) -> float:
    """Intersection over union of two time spans (1 for two identical instants)."""
    a0, a1 = _span(a)
    b0, b1 = _span(b)
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    if union <= 0:
        return 1.0 if a0 == b0 else 0.0
    return inter / union


def spans_overlap(a: Span, b: Span) -> bool:
    """True when the spans share a stretch of time; an instant counts when it lies in [start, end)."""
    a0, a1 = _span(a)
    b0, b1 = _span(b)
    if a0 == a1 and b0 == b1:
        return a0 == b0
    if a0 == a1:
        return b0 <= a0 < b1
    if b0 == b1:
        return a0 <= b0 < a1
    return min(a1, b1) > max(a0, b0)


def _gt_list(g: Any) -> list[Span]:
    if len(g) == 2 and all(isinstance(x, (int, float)) for x in g):
        return [_span(g, "ground-truth span")]
    return [_span(x, "ground-truth span") for x in g]


def recall_at_k(
    retrieved: Sequence[Sequence[Span]], ground_truth: Sequence[Any], k: int = 5, iou_threshold: float = 0.0
) -> float:
    """Share of questions with a ground-truth span matched by one of the top ``k`` retrieved spans.

    Args:
        retrieved: per question, retrieved spans best first.
        ground_truth: per question, one span or a list of acceptable spans.
        k: how many retrieved spans count.
        iou_threshold: 0 counts any overlap; above 0 needs IoU >= the threshold.
    """
    if len(retrieved) != len(ground_truth):
        raise ValueError(f"{len(retrieved)} retrieval lists for {len(ground_truth)} questions")
    if not retrieved:
        raise ValueError("no questions to score")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    hits = 0
    for spans, gt in zip(retrieved, ground_truth):
        gts = _gt_list(gt)
        top = [_span(s, "retrieved span") for s in list(spans)[:k]]
        if iou_threshold <= 0:
            ok = any(spans_overlap(s, g) for s in top for g in gts)
        else:
            ok = any(temporal_iou(s, g) >= iou_threshold for s in top for g in gts)
        hits += ok
    return hits / len(retrieved)


def mean_best_iou(retrieved: Sequence[Sequence[Span]], ground_truth: Sequence[Any], k: int = 1) -> float:
    """Mean over questions of the best IoU between a top-``k`` span and a ground-truth span."""
    if len(retrieved) != len(ground_truth) or not retrieved:
        raise ValueError(f"{len(retrieved)} retrieval lists for {len(ground_truth)} questions")
    total = 0.0
    for spans, gt in zip(retrieved, ground_truth):
        gts = _gt_list(gt)
        total += max((temporal_iou(s, g) for s in list(spans)[:k] for g in gts), default=0.0)
    return total / len(retrieved)


# ---------------------------------------------------------------------------
# LLM-Match (OpenEQA)

LLM_MATCH_PROMPT = """You are an AI assistant who will help me to evaluate the response given the question and the correct answer.
To mark a response, you should output a single integer between 1 and 5 (including 1, 5).
5 means that the response perfectly matches the answer.
1 means that the response is completely different from the answer.

Example 1:
Question: Is it overcast?
Answer: no
Response: yes
Your mark: 1

Example 2:
Question: Who is standing at the table?
Answer: woman
Response: Jessica
Your mark: 3

Example 3:
Question: Are there drapes to the right of the bed?
Answer: yes
Response: yes
Your mark: 5

Your Turn:
Question: {question}
Answer: {answer}
Response: {prediction}
Your mark:"""

_EXTRA_ANSWERS = "Answer: {answer}\nOther acceptable answers: {extra}"


def llm_match_prompt(question: str, answer: str, prediction: str, extra_answers: Sequence[str] | None = None) -> str:
    """The judge prompt for one question (OpenEQA's 1-5 rating scheme)."""
    prompt = LLM_MATCH_PROMPT.format(question=question.strip(), answer=answer.strip(), prediction=prediction.strip())
    if extra_answers:
        prompt = prompt.replace(
            f"Answer: {answer.strip()}\nResponse:",
            _EXTRA_ANSWERS.format(answer=answer.strip(), extra="; ".join(a.strip() for a in extra_answers))
            + "\nResponse:",
        )
    return prompt


_MARK = re.compile(r"(?:mark|score|rating)\s*[:=]?\s*([1-5])\b|^\s*([1-5])\b", re.IGNORECASE | re.MULTILINE)


def parse_judge_score(reply: str) -> int:
    """The 1-5 mark in a judge's reply ("4", "Your mark: 4", "Mark: 4/5").

    Raises:
        ValueError: the reply holds no mark between 1 and 5.
    """
    if not isinstance(reply, str):
        raise ValueError(f"judge reply must be text, got {type(reply).__name__}")
    m = _MARK.search(reply)
    if m is None:
        m2 = re.search(r"\b([1-5])\b", reply)
        if m2 is None:
            raise ValueError(f"judge reply holds no mark between 1 and 5: {reply[:200]!r}")
        return int(m2.group(1))
    return int(m.group(1) or m.group(2))


@dataclass
class LLMMatchResult:
    """LLM-Match over a set of questions.

    Attributes:
        score: mean of (mark - 1) / 4, in percent (0-100), over the questions judged.
        marks: the 1-5 mark per question (None where the judge's reply had no mark).
        failures: how many replies could not be read.
    """

    score: float
    marks: list[int | None] = field(default_factory=list)
    failures: int = 0


def llm_match_score(
    questions: Sequence[str],
    answers: Sequence[str],
    predictions: Sequence[str],
    judge: Callable[[str], str],
    extra_answers: Sequence[Sequence[str] | None] | None = None,
) -> LLMMatchResult:
    """OpenEQA's LLM-Match: a judge rates each prediction 1-5 against the reference answer.

    Args:
        questions, answers, predictions: one per question.
        judge: prompt -> reply text (an LLM, or `token_overlap_judge` offline).
        extra_answers: optional other acceptable answers per question.

    Unreadable replies count as mark 1 (and in ``failures``), so a broken judge
    cannot raise the score.
    """
    n = len(questions)
    if not (len(answers) == len(predictions) == n) or n == 0:
        raise ValueError(
            f"need as many answers and predictions as questions, got {n}, {len(answers)}, {len(predictions)}"
        )
    if extra_answers is not None and len(extra_answers) != n:
        raise ValueError(f"extra_answers has {len(extra_answers)} entries for {n} questions")
    marks: list[int | None] = []
    failures = 0
    total = 0.0
    for i in range(n):
        prompt = llm_match_prompt(questions[i], answers[i], predictions[i], extra_answers[i] if extra_answers else None)
        try:
            mark: int | None = parse_judge_score(judge(prompt))
        except ValueError:
            mark = None
            failures += 1
        marks.append(mark)
        total += ((mark or 1) - 1) / 4.0
    return LLMMatchResult(score=100.0 * total / n, marks=marks, failures=failures)


def _norm_tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def token_f1(reference: str, prediction: str) -> float:
    """SQuAD-style token F1 between two answers."""
    ref, pred = _norm_tokens(reference), _norm_tokens(prediction)
    if not ref or not pred:
        return float(ref == pred)
    overlap = 0
    counts: dict[str, int] = {}
    for t in ref:
        counts[t] = counts.get(t, 0) + 1
    for t in pred:
        if counts.get(t, 0) > 0:
            overlap += 1
            counts[t] -= 1
    if overlap == 0:
        return 0.0
    p, r = overlap / len(pred), overlap / len(ref)
    return 2 * p * r / (p + r)


def token_overlap_judge(prompt: str) -> str:
    """An offline stand-in judge: token F1 of response vs answer mapped to a 1-5 mark.

    It reads the answer and response back out of an `llm_match_prompt`. It is a
    rough lexical proxy (no paraphrase understanding), for tests and runs
    without a language model; report LLM-Match with a real judge.
    """
    tail = prompt.rsplit("Your Turn:", 1)[-1]
    ans = re.search(r"^Answer: (.*)$", tail, re.MULTILINE)
    extra = re.search(r"^Other acceptable answers: (.*)$", tail, re.MULTILINE)
    resp = re.search(r"^Response: (.*)$", tail, re.MULTILINE)
    if ans is None or resp is None:
        raise ValueError("token_overlap_judge needs a prompt made by llm_match_prompt")
    refs = [ans.group(1)] + (extra.group(1).split("; ") if extra else [])
    f1 = max(token_f1(r, resp.group(1)) for r in refs)
    return str(1 + int(round(4 * f1)))


def answerer_judge(answerer: Any) -> Callable[[str], str]:
    """Any answerer back end (``answer(question, evidence, options)``) as an LLM-Match judge: prompt -> reply."""

    def judge(prompt: str) -> str:
        return answerer.answer(prompt, [], None).text

    judge.__name__ = f"judge:{getattr(answerer, 'label', getattr(answerer, 'name', type(answerer).__name__))}"
    return judge


_NUM_WORDS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    )
}
_CLOCK_RE = re.compile(r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})(?:\.\d+)?\b")
_SEC_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)\b", re.IGNORECASE)


def plural(name: str) -> str:
    """The English plural of an object name ("box" -> "boxes", "shelf" -> "shelves"), for writing questions."""
    if name.endswith("fe"):
        return name[:-2] + "ves"
    if name.endswith("f"):
        return name[:-1] + "ves"
    if name.endswith(("s", "x", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def answer_head(text: str) -> str:
    """The answer itself: the text before the evidence an answerer quotes after it."""
    return re.split(r"\bEvidence:|\bClosest memories:|\(evidence:", text, maxsplit=1)[0]


def score_answer(kind: str, truth: Any, text: str, *, tolerance_s: float = 1.5, accept: Sequence[str] = ()) -> bool:
    """Is an answer right? Exact for counts, within ``tolerance_s`` for times, by place name for places.

    Args:
        kind: "count", "when", "where", "yesno" or "order".
        truth: the integer, time in seconds, place name, bool or object name.
        text: the answer as given (only the part before its quoted evidence is read).
        tolerance_s: for "when".
        accept: other words that count as the right place or object.

    "I can't tell" and answers naming no value are wrong.
    """
    head = answer_head(text).lower()
    if "can't tell" in head or "cannot tell" in head:
        return False
    if kind == "count":
        # the first number the answer states (digits outside clock times, or a number word)
        words = [(m.start(), _NUM_WORDS[m.group(0)]) for m in re.finditer(r"[a-z]+", head) if m.group(0) in _NUM_WORDS]
        digits = [(m.start(), int(m.group(0))) for m in re.finditer(r"(?<![:\d])\b\d+\b(?!:\d)", head)]
        first = sorted(digits + words)
        return bool(first) and first[0][1] == int(truth)
    if kind == "yesno":
        m = re.search(r"\b(yes|no)\b", head)
        return m is not None and (m.group(1) == "yes") == bool(truth)
    if kind == "when":
        times: list[float] = [
            int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + int(m.group(3)) for m in _CLOCK_RE.finditer(head)
        ]
        times += [float(m.group(1)) for m in _SEC_RE.finditer(head)]
        return bool(times) and abs(times[0] - float(truth)) <= tolerance_s
    if kind in ("where", "order"):
        names = [str(truth).lower(), *[a.lower() for a in accept]]
        if kind == "order":  # the answer must open with the right object
            return any(re.match(rf"^\W*(?:the )?{re.escape(n)}", head.strip()) for n in names)
        return any(re.search(rf"\b{re.escape(n)}", head) for n in names)
    raise ValueError(f"unknown answer kind {kind!r}; expected count, when, where, yesno or order")


# ---------------------------------------------------------------------------
# question files


@dataclass
class VideoQuestion:
    """One question about a video.

    Attributes:
        qid: question id.
        video: video id or path.
        question: the question text.
        options: answer choices (empty for open questions).
        answer_index: index of the correct option (None when unknown or open).
        answer: the reference answer text (the correct option's text for multiple choice).
        spans_s: ground-truth time spans that hold the answer (engram extension).
        qtype: question type (NExT-QA's type code, or a benchmark's category).
        meta: anything else the file carried.
    """

    qid: str
    video: str
    question: str
    options: list[str] = field(default_factory=list)
    answer_index: int | None = None
    answer: str | None = None
    spans_s: list[Span] = field(default_factory=list)
    qtype: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not str(self.qid) or not isinstance(self.question, str) or not self.question.strip():
            raise ValueError(f"question {self.qid!r} needs an id and a non-empty question text")
        self.qid = str(self.qid)
        self.video = str(self.video)
        self.options = [str(o) for o in self.options]
        if self.answer_index is not None:
            self.answer_index = int(self.answer_index)
            if not 0 <= self.answer_index < len(self.options):
                raise ValueError(
                    f"question {self.qid}: answer_index {self.answer_index} is outside its {len(self.options)} options"
                )
            if self.answer is None:
                self.answer = self.options[self.answer_index]
        self.spans_s = [_span(s, f"question {self.qid} span") for s in self.spans_s]


_NEXTQA_BASE = ["video", "frame_count", "width", "height", "question", "answer", "qid", "type"]


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "nextqa"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "egoschema"
    raise ValueError(f"cannot tell the question format of {path}: use .json (EgoSchema), .csv (NExT-QA) or .jsonl")


def read_questions(
    path: str | Path, *, answers_path: str | Path | None = None, format: str | None = None
) -> list[VideoQuestion]:
    """Read a question file.

    Formats: ``egoschema`` (a JSON list of objects with ``q_uid``, ``question``,
    ``option 0`` .. ``option 4``, optionally ``answer``; answers may come from a
    separate ``{q_uid: index}`` JSON, EgoSchema's ``subset_answers.json``),
    ``nextqa`` (CSV with video, frame_count, width, height, question, answer,
    qid, type and, for multiple choice, a0..a4; ``answer`` is then the option
    index; its qid is unique per video only), and ``jsonl`` (one `VideoQuestion` per line, as `write_questions`
    writes). Detected from the suffix when ``format`` is None. An optional
    ``spans_s`` field ("12.0-15.5;40-42" in CSV) carries ground-truth spans.

    Raises:
        ValueError: an unknown format, or a malformed row (the message names it).
    """
    p = Path(path)
    fmt = format or _detect_format(p)
    answers: dict[str, int] = {}
    if answers_path is not None:
        raw = json.loads(Path(answers_path).read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{answers_path}: answers must be a JSON object {{q_uid: index}}")
        answers = {str(k): int(v) for k, v in raw.items()}
    if fmt == "egoschema":
        return _read_egoschema(p, answers)
    if fmt == "nextqa":
        return _read_nextqa(p)
    if fmt == "jsonl":
        return _read_jsonl(p)
    raise ValueError(f"unknown question format {fmt!r}: use egoschema, nextqa or jsonl")


def _parse_spans(value: Any, where: str) -> list[Span]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        out = []
        for part in value.split(";"):
            part = part.strip()
            if part:
                m = re.fullmatch(r"(-?[\d.]+)\s*-\s*(-?[\d.]+)", part)
                if m is None:
                    raise ValueError(f"{where}: span {part!r} is not 'start-end'")
                out.append((float(m.group(1)), float(m.group(2))))
        return out
    return [_span(s, f"{where} span") for s in value]


def _read_egoschema(path: Path, answers: dict[str, int]) -> list[VideoQuestion]:
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data = data.get("questions", list(data.values()))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of questions")
    out = []
    for i, row in enumerate(data):
        where = f"{path} item {i}"
        if not isinstance(row, dict) or "q_uid" not in row or "question" not in row:
            raise ValueError(f"{where}: needs 'q_uid' and 'question'")
        opts = []
        j = 0
        while f"option {j}" in row:
            opts.append(str(row[f"option {j}"]))
            j += 1
        qid = str(row["q_uid"])
        idx = answers.get(qid, row.get("answer"))
        known = {"q_uid", "question", "answer", "spans_s", "type", "google_drive_id", "video"} | {
            f"option {k}" for k in range(j)
        }
        out.append(
            VideoQuestion(
                qid=qid,
                video=str(row.get("video", row.get("google_drive_id", qid))),
                question=str(row["question"]),
                options=opts,
                answer_index=None if idx is None else int(idx),
                spans_s=_parse_spans(row.get("spans_s"), where),
                qtype=str(row.get("type", "")),
                meta={k: v for k, v in row.items() if k not in known},
            )
        )
    return out


def _read_nextqa(path: Path) -> list[VideoQuestion]:
    out = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in ("video", "question", "answer", "qid") if c not in cols]
        if missing:
            raise ValueError(f"{path}: NExT-QA CSV misses columns {missing}")
        opt_cols = sorted((c for c in cols if re.fullmatch(r"a\d+", c)), key=lambda c: int(c[1:]))
        for line, row in enumerate(reader, start=2):
            where = f"{path} line {line}"
            opts = [row[c] for c in opt_cols]
            idx = None
            answer = row["answer"]
            if opts:
                try:
                    idx = int(answer)
                except ValueError as exc:
                    raise ValueError(
                        f"{where}: multiple-choice answer must be an option index, got {answer!r}"
                    ) from exc
                answer = None
            meta = {k: v for k, v in row.items() if k not in {*_NEXTQA_BASE, *opt_cols, "spans_s"}}
            for k in ("frame_count", "width", "height"):
                if row.get(k) not in (None, ""):
                    meta[k] = int(float(row[k]))
            out.append(
                VideoQuestion(
                    qid=row["qid"] or str(line),
                    video=row["video"],
                    question=row["question"],
                    options=opts,
                    answer_index=idx,
                    answer=answer,
                    spans_s=_parse_spans(row.get("spans_s"), where),
                    qtype=row.get("type", "") or "",
                    meta=meta,
                )
            )
    return out


def _read_jsonl(path: Path) -> list[VideoQuestion]:
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {line_no}: not JSON ({exc})") from exc
        try:
            out.append(VideoQuestion(**row))
        except TypeError as exc:
            raise ValueError(f"{path} line {line_no}: {exc}") from exc
    return out


def write_questions(
    path: str | Path,
    questions: Sequence[VideoQuestion],
    *,
    format: str | None = None,
    answers_path: str | Path | None = None,
) -> None:
    """Write questions in one of the layouts `read_questions` reads.

    For ``egoschema``, answers go inline (``answer``) unless ``answers_path`` is
    given, where they are written as EgoSchema's ``{q_uid: index}`` file instead.
    NExT-QA numbers questions per video: there (video, qid) is the key.
    """
    p = Path(path)
    fmt = format or _detect_format(p)
    if fmt == "egoschema":
        rows, answers = [], {}
        for q in questions:
            row: dict[str, Any] = {"q_uid": q.qid, "question": q.question, "video": q.video}
            for i, o in enumerate(q.options):
                row[f"option {i}"] = o
            if q.answer_index is not None:
                if answers_path is None:
                    row["answer"] = q.answer_index
                else:
                    answers[q.qid] = q.answer_index
            if q.spans_s:
                row["spans_s"] = [list(s) for s in q.spans_s]
            if q.qtype:
                row["type"] = q.qtype
            row.update({k: v for k, v in q.meta.items() if k not in row})
            rows.append(row)
        p.write_text(json.dumps(rows, indent=1))
        if answers_path is not None:
            Path(answers_path).write_text(json.dumps(answers, indent=1))
    elif fmt == "nextqa":
        n_opts = max((len(q.options) for q in questions), default=0)
        cols = _NEXTQA_BASE + [f"a{i}" for i in range(n_opts)] + ["spans_s"]
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            for q in questions:
                row = {
                    "video": q.video,
                    "frame_count": q.meta.get("frame_count", ""),
                    "width": q.meta.get("width", ""),
                    "height": q.meta.get("height", ""),
                    "question": q.question,
                    "answer": q.answer_index if q.options else (q.answer or ""),
                    "qid": q.qid,
                    "type": q.qtype,
                    "spans_s": ";".join(f"{a:g}-{b:g}" for a, b in q.spans_s),
                }
                for i, o in enumerate(q.options):
                    row[f"a{i}"] = o
                w.writerow(row)
    elif fmt == "jsonl":
        with open(p, "w") as fh:
            for q in questions:
                fh.write(
                    json.dumps(
                        {
                            "qid": q.qid,
                            "video": q.video,
                            "question": q.question,
                            "options": q.options,
                            "answer_index": q.answer_index,
                            "answer": q.answer,
                            "spans_s": [list(s) for s in q.spans_s],
                            "qtype": q.qtype,
                            "meta": q.meta,
                        }
                    )
                    + "\n"
                )
    else:
        raise ValueError(f"unknown question format {fmt!r}: use egoschema, nextqa or jsonl")


# ---------------------------------------------------------------------------
# 3D object maps: localisation, labels, precision


@dataclass(frozen=True)
class Box3D:
    """An object box: centre, half extents along its own axes, a yaw about world z, a label.

    Memory boxes are axis-aligned (``yaw_rad`` 0); simulator and annotated boxes may be yawed.
    """

    centre: tuple[float, float, float]
    half_extents: tuple[float, float, float]
    yaw_rad: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        c = tuple(float(v) for v in self.centre)
        h = tuple(float(v) for v in self.half_extents)
        if len(c) != 3 or len(h) != 3 or not all(math.isfinite(v) for v in c + h + (float(self.yaw_rad),)):
            raise ValueError(
                f"a box needs a finite 3D centre, half extents and yaw, got {self.centre!r}, {self.half_extents!r}"
            )
        if min(h) < 0:
            raise ValueError(f"box half extents must be >= 0, got {h}")
        object.__setattr__(self, "centre", c)
        object.__setattr__(self, "half_extents", h)
        object.__setattr__(self, "yaw_rad", float(self.yaw_rad))

    @classmethod
    def from_min_max(cls, box_min: Sequence[float], box_max: Sequence[float], label: str = "") -> Box3D:
        """An axis-aligned box from its corners (a memory object's ``box_min`` / ``box_max``)."""
        lo = [float(v) for v in box_min]
        hi = [float(v) for v in box_max]
        if len(lo) != 3 or len(hi) != 3 or any(b < a for a, b in zip(lo, hi)):
            raise ValueError(f"box_min must be <= box_max in 3D, got {box_min!r}, {box_max!r}")
        c = [(a + b) / 2 for a, b in zip(lo, hi)]
        h = [(b - a) / 2 for a, b in zip(lo, hi)]
        return cls((c[0], c[1], c[2]), (h[0], h[1], h[2]), 0.0, label)

    @property
    def volume(self) -> float:
        hx, hy, hz = self.half_extents
        return 8.0 * hx * hy * hz

    def footprint(self) -> list[tuple[float, float]]:
        """The four xy corners, counter-clockwise."""
        cx, cy, _ = self.centre
        hx, hy, _ = self.half_extents
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy))]

    def contains(self, point: Sequence[float], margin_m: float = 0.0) -> bool:
        """True when ``point`` lies inside the box grown by ``margin_m`` on every side."""
        d = [float(p) - c for p, c in zip(point, self.centre)]
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        local = (c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2])
        return all(abs(v) <= h + margin_m + 1e-9 for v, h in zip(local, self.half_extents))


def _clip(poly: list[tuple[float, float]], a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: the part of a convex polygon on the left of the directed edge a -> b."""

    def side(p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    out: list[tuple[float, float]] = []
    for i, p in enumerate(poly):
        q = poly[(i + 1) % len(poly)]
        sp, sq = side(p), side(q)
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            t = sp / (sp - sq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _area(poly: list[tuple[float, float]]) -> float:
    return 0.5 * abs(sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(poly, poly[1:] + poly[:1])))


def box_iou_3d(a: Box3D, b: Box3D) -> float:
    """Exact intersection over union of two boxes yawed about z (0 when they do not overlap)."""
    z = min(a.centre[2] + a.half_extents[2], b.centre[2] + b.half_extents[2]) - max(
        a.centre[2] - a.half_extents[2], b.centre[2] - b.half_extents[2]
    )
    if z <= 0:
        return 0.0
    poly = a.footprint()
    fb = b.footprint()
    for i in range(4):
        poly = _clip(poly, fb[i], fb[(i + 1) % 4])
        if not poly:
            return 0.0
    inter = _area(poly) * z
    union = a.volume + b.volume - inter
    return inter / union if union > 0 else 0.0


@dataclass
class ObjectMatch:
    """One ground-truth object paired with one predicted object."""

    gt: int
    pred: int
    iou: float
    centroid_inside: bool
    label_correct: bool


@dataclass
class ObjectMapScore:
    """The one-to-one matching of predicted objects to ground truth, and the figures read off it.

    Attributes:
        matches: the pairs (localisation hits, whatever their labels).
        missed: indices of counted ground-truth objects with no match.
        false: indices of predictions matched to nothing (duplicates included).
        duplicates: the false predictions that would have matched an already matched object.
        counted: per ground-truth object, whether recall counts it.
        gt_labels, pred_labels: the labels, for label figures.
    """

    matches: list[ObjectMatch]
    missed: list[int]
    false: list[int]
    duplicates: list[int]
    counted: list[bool]
    gt_labels: list[str]
    pred_labels: list[str]

    @property
    def n_counted(self) -> int:
        return sum(self.counted)

    @property
    def found(self) -> int:
        """Counted ground-truth objects that were localised."""
        return sum(1 for m in self.matches if self.counted[m.gt])

    @property
    def recall(self) -> float:
        return self.found / self.n_counted if self.n_counted else float("nan")

    @property
    def n_scored_pred(self) -> int:
        """Predictions that precision judges: matched to a counted object, or to nothing."""
        return sum(1 for m in self.matches if self.counted[m.gt]) + len(self.false)

    @property
    def precision(self) -> float:
        n = self.n_scored_pred
        return self.found / n if n else float("nan")

    @property
    def duplicate_rate(self) -> float:
        n = self.n_scored_pred
        return len(self.duplicates) / n if n else 0.0

    def label_hits(self, categories: Sequence[str] | None = None) -> tuple[int, int]:
        """(correctly labelled, localised) among counted matches whose true category is in ``categories``."""
        cats = None if categories is None else {c.lower() for c in categories}
        ms = [m for m in self.matches if self.counted[m.gt] and (cats is None or self.gt_labels[m.gt].lower() in cats)]
        return sum(m.label_correct for m in ms), len(ms)

    def label_accuracy(self, categories: Sequence[str] | None = None) -> float:
        """Share of localised objects (true category in ``categories``) whose predicted label is right."""
        ok, n = self.label_hits(categories)
        return ok / n if n else float("nan")

    def matched_pred(self, gt_index: int) -> int | None:
        """The prediction matched to a ground-truth object, or None."""
        return next((m.pred for m in self.matches if m.gt == gt_index), None)


def match_object_boxes(
    gt: Sequence[Box3D],
    pred: Sequence[Box3D],
    *,
    pred_centroids: Sequence[Sequence[float]] | None = None,
    counted: Sequence[bool] | None = None,
    min_iou: float = 0.25,
) -> ObjectMapScore:
    """Match predicted object boxes to ground-truth boxes one to one, by where they are.

    A pair can match when their 3D IoU is at least ``min_iou`` or the
    prediction's centroid lies inside the ground-truth box. Labels play no part
    in the matching: a found object with the wrong name is a localisation hit
    and a label miss. Pairs are taken greedily, highest IoU first (then nearest
    centroid), each object at most once. Unmatched predictions are false
    objects; those that could have matched an object already taken are
    duplicates.

    Args:
        gt: ground-truth boxes (with labels).
        pred: predicted boxes (with labels).
        pred_centroids: the predictions' point centroids (default: box centres).
        counted: per ground-truth object, whether recall counts it (e.g. it
            was seen well enough). A prediction matched to an object that is not
            counted is neither a hit nor a false object.
        min_iou: the IoU that makes a pair on its own.

    Raises:
        ValueError: ``pred_centroids`` or ``counted`` do not match the box lists in length, or min_iou is not in (0, 1].
    """
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    cents = (
        [tuple(float(v) for v in c) for c in pred_centroids] if pred_centroids is not None else [p.centre for p in pred]
    )
    if len(cents) != len(pred):
        raise ValueError(f"{len(cents)} centroids for {len(pred)} predicted boxes")
    cnt = [bool(c) for c in counted] if counted is not None else [True] * len(gt)
    if len(cnt) != len(gt):
        raise ValueError(f"{len(cnt)} counted flags for {len(gt)} ground-truth boxes")
    pairs = []
    for j, p in enumerate(pred):
        for i, g in enumerate(gt):
            reach = math.hypot(*g.half_extents) + math.hypot(*p.half_extents)
            if math.dist(g.centre, p.centre) > reach and not g.contains(cents[j]):
                continue
            iou = box_iou_3d(g, p)
            inside = g.contains(cents[j])
            if iou >= min_iou or inside:
                pairs.append((-iou, math.dist(g.centre, cents[j]), i, j, inside))
    pairs.sort()
    gt_taken: set[int] = set()
    pred_taken: set[int] = set()
    matches = []
    for neg_iou, _, i, j, inside in pairs:
        if i in gt_taken or j in pred_taken:
            continue
        gt_taken.add(i)
        pred_taken.add(j)
        matches.append(ObjectMatch(i, j, -neg_iou, inside, pred[j].label.lower() == gt[i].label.lower()))
    could = {j for _, _, i, j, _ in pairs}
    # a leftover prediction next to an object that recall does not count is not judged either way
    uncounted_only = {j for _, _, i, j, _ in pairs if j not in pred_taken} - {
        j for _, _, i, j, _ in pairs if j not in pred_taken and cnt[i]
    }
    judged_false = [j for j in range(len(pred)) if j not in pred_taken and j not in uncounted_only]
    dups = [j for j in judged_false if j in could]
    return ObjectMapScore(
        matches=matches,
        missed=[i for i in range(len(gt)) if cnt[i] and i not in gt_taken],
        false=judged_false,
        duplicates=dups,
        counted=cnt,
        gt_labels=[g.label for g in gt],
        pred_labels=[p.label for p in pred],
    )


# ---------------------------------------------------------------------------
# Real data: a memory against hand-made boxes


@dataclass(frozen=True)
class AnnotatedObject:
    """One hand-made ground-truth object: its name (what a query asks for) and box."""

    name: str
    box: Box3D
    instance: str | None = None
    note: str = ""


def load_annotated_boxes(path: str | Path) -> list[AnnotatedObject]:
    """Objects of a box file (``{"objects": [{"name", "min", "max", "instance"?, "note"?}]}``).

    The layout of ``tests/data/*_boxes.json`` (see tests/data/README.md).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: malformed JSON or an entry without a name or with min > max.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"box file {path} does not exist")
    try:
        entries = json.loads(path.read_text())["objects"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: expected a JSON object with an 'objects' list") from exc
    out = []
    for i, e in enumerate(entries):
        name = e.get("name") if isinstance(e, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{path}: object {i} has no name")
        try:
            box = Box3D.from_min_max(e["min"], e["max"], label=name)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: object {i} ({name}): {exc}") from exc
        out.append(AnnotatedObject(name, box, e.get("instance"), str(e.get("note", ""))))
    return out


@dataclass
class ObjectFound:
    """How one annotated object fared.

    Attributes:
        name, instance: the annotation.
        object_ids: memory objects that localise it (centroid inside its box,
            or 3D IoU at least the threshold).
        object_labels: their labels.
        best_iou: the best IoU among all memory objects.
        rank: 1-based rank of the first of ``object_ids`` among the text
            query's object hits, or None when none is in the top k.
    """

    name: str
    instance: str | None
    object_ids: list[int]
    object_labels: list[str]
    best_iou: float
    rank: int | None

    @property
    def found(self) -> bool:
        return bool(self.object_ids)

    @property
    def retrieved(self) -> bool:
        return self.rank is not None


@dataclass
class RealObjectScore:
    """Per-object results of `score_objects`, and the shares read off them."""

    rows: list[ObjectFound]
    k: int
    n_memory_objects: int

    @property
    def found_rate(self) -> float:
        return sum(r.found for r in self.rows) / len(self.rows) if self.rows else float("nan")

    @property
    def retrieved_rate(self) -> float:
        """Objects found AND returned in the top k by a query for their name."""
        return sum(r.found and r.retrieved for r in self.rows) / len(self.rows) if self.rows else float("nan")

    def table(self) -> str:
        """A markdown table, one row per annotated object."""
        lines = [f"| object | found by (id:label) | best IoU | rank in top {self.k} |", "|---|---|---|---|"]
        for r in self.rows:
            name = r.name + (f" ({r.instance})" if r.instance else "")
            ids = " ".join(f"{i}:{lab}" for i, lab in list(zip(r.object_ids, r.object_labels))[:4])
            more = f" +{len(r.object_ids) - 4}" if len(r.object_ids) > 4 else ""
            lines.append(f"| {name} | {ids or 'not found'}{more} | {r.best_iou:.2f} | {r.rank or '-'} |")
        lines.append(
            f"found {self.found_rate:.2f}, found and retrieved {self.retrieved_rate:.2f} "
            f"({len(self.rows)} objects, {self.n_memory_objects} in memory)"
        )
        return "\n".join(lines)


def score_objects(
    memory: Any,
    boxes: Sequence[AnnotatedObject] | str | Path,
    *,
    k: int = 3,
    min_iou: float = 0.25,
) -> RealObjectScore:
    """Score a memory's objects against hand-made boxes.

    An annotated object is found when some memory object's centroid lies
    inside its box or their 3D IoU is at least ``min_iou`` (several fragments
    may all find it: this is about being there, not one-to-one matching; see
    `match_object_boxes` for precision and duplicates). It is retrieved when
    ``memory.query(text=name, kinds=("object",), k=k)`` returns one of the
    objects that found it (k grows to the number of annotated objects sharing
    the name: five chairs are looked for among the first five hits).

    Args:
        memory: a `SceneMemory` (anything with ``objects.objects`` holding
            objects with ``id``, ``box_min``, ``box_max``, ``centroid``, and a
            ``query`` method).
        boxes: annotated objects, or the path of a box file.
        k: how deep the query looks.
        min_iou: the IoU that finds an object on its own.

    Raises:
        ValueError: k < 1 or min_iou not in (0, 1].
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    annotated = load_annotated_boxes(boxes) if isinstance(boxes, (str, Path)) else list(boxes)
    objs = list(memory.objects.objects.values())
    pred = [Box3D.from_min_max(o.box_min, o.box_max, getattr(o, "label", "")) for o in objs]
    rows = []
    for a in annotated:
        ids, labels, best = [], [], 0.0
        for o, p in zip(objs, pred):
            iou = box_iou_3d(a.box, p)
            best = max(best, iou)
            if iou >= min_iou or a.box.contains(o.centroid):
                ids.append(int(o.id))
                labels.append(p.label)
        rank = None
        if ids:
            # a name shared by n annotated objects (five chairs) looks n deep, at least k
            same = sum(b.name == a.name for b in annotated)
            hits = memory.query(text=a.name, kinds=("object",), k=max(k, same))
            rank = next((n for n, h in enumerate(hits, start=1) if h.id in set(ids)), None)
        rows.append(ObjectFound(a.name, a.instance, ids, labels, best, rank))
    return RealObjectScore(rows, k, len(objs))
