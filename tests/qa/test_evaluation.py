"""Video QA scoring: accuracy, temporal IoU / recall@k, LLM-Match, question files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engram.qa.evaluation import (
    VideoQuestion,
    llm_match_prompt,
    llm_match_score,
    mean_best_iou,
    multiple_choice_accuracy,
    parse_judge_score,
    read_questions,
    recall_at_k,
    spans_overlap,
    temporal_iou,
    token_f1,
    token_overlap_judge,
    write_questions,
)


def test_multiple_choice_accuracy():
    assert multiple_choice_accuracy([0, 2, None, 1], [0, 1, 3, 1]) == 0.5
    with pytest.raises(ValueError, match="3 questions"):
        multiple_choice_accuracy([0], [0, 1, 2])


def test_temporal_iou_known_values():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((0, 10), (0, 10)) == 1.0
    assert temporal_iou((0, 10), (10, 20)) == 0.0
    assert temporal_iou((2, 4), (0, 10)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="end >= start"):
        temporal_iou((5, 1), (0, 1))


@given(st.floats(0, 100), st.floats(1e-3, 50), st.floats(0, 100), st.floats(1e-3, 50), st.floats(-20, 20))
def test_temporal_iou_is_symmetric_bounded_and_shift_invariant(a0, la, b0, lb, shift):
    a, b = (a0, a0 + la), (b0, b0 + lb)
    iou = temporal_iou(a, b)
    assert 0.0 <= iou <= 1.0
    assert iou == pytest.approx(temporal_iou(b, a))
    assert iou == pytest.approx(temporal_iou((a[0] + shift, a[1] + shift), (b[0] + shift, b[1] + shift)), abs=1e-6)
    assert (iou > 0) == spans_overlap(a, b)


def test_recall_at_k_and_best_iou():
    retrieved = [
        [(100, 110), (0, 10), (20, 30)],  # hit at rank 2
        [(50, 60)],  # miss
        [(5, 5)],  # an instant inside the span
    ]
    gt = [(8, 12), (0, 40), [(1, 2), (4, 6)]]
    assert recall_at_k(retrieved, gt, k=1) == pytest.approx(1 / 3)
    assert recall_at_k(retrieved, gt, k=2) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, gt, k=2, iou_threshold=0.5) == 0.0
    assert mean_best_iou([[(0, 10)], [(0, 5)]], [(0, 10), (5, 10)]) == pytest.approx(0.5)
    assert not spans_overlap((0, 10), (10, 20))
    assert spans_overlap((3, 3), (0, 10)) and not spans_overlap((10, 10), (0, 10))


def test_judge_score_parsing():
    assert parse_judge_score("5") == 5
    assert parse_judge_score("Your mark: 3") == 3
    assert parse_judge_score("I would give it a mark of 4/5 because") == 4
    with pytest.raises(ValueError, match="no mark"):
        parse_judge_score("excellent answer")


def test_llm_match_with_pluggable_judges():
    prompts = []

    def always(mark):
        def judge(prompt):
            prompts.append(prompt)
            return f"Your mark: {mark}"

        return judge

    qs, answers, preds = ["what colour is the mug?"] * 2, ["red", "blue"], ["red", "green"]
    assert llm_match_score(qs, answers, preds, always(5)).score == 100.0
    assert llm_match_score(qs, answers, preds, always(1)).score == 0.0
    assert llm_match_score(qs, answers, preds, always(3)).score == pytest.approx(50.0)
    assert "Question: what colour is the mug?" in prompts[0] and "Response: red" in prompts[0]
    broken = llm_match_score(qs, answers, preds, lambda p: "no idea")
    assert broken.failures == 2 and broken.score == 0.0 and broken.marks == [None, None]
    offline = llm_match_score(qs, answers, preds, token_overlap_judge)
    assert offline.marks == [5, 1] and offline.score == pytest.approx(50.0)
    p = llm_match_prompt("where?", "kitchen", "in the kitchen", extra_answers=["cooking area"])
    assert "Other acceptable answers: cooking area" in p
    assert token_overlap_judge(p) == str(1 + round(4 * token_f1("kitchen", "in the kitchen")))
    assert token_f1("the red mug", "red mug") == pytest.approx(0.8)


def _questions():
    return [
        VideoQuestion(
            qid="q1",
            video="v1",
            question="What did the person do first?",
            options=["cook", "clean", "read", "sleep", "walk"],
            answer_index=1,
            spans_s=[(10.0, 20.0)],
            qtype="TN",
        ),
        VideoQuestion(qid="q2", video="v2", question="Where is the mug?", options=list("abcde"), answer_index=4),
    ]


@pytest.mark.parametrize("suffix", [".json", ".csv", ".jsonl"])
def test_question_files_round_trip(tmp_path, suffix):
    qs = _questions()
    path = tmp_path / f"questions{suffix}"
    write_questions(path, qs)
    back = read_questions(path)
    assert [(q.qid, q.video, q.question, q.options, q.answer_index, q.answer, q.spans_s, q.qtype) for q in back] == [
        (q.qid, q.video, q.question, q.options, q.answer_index, q.answer, q.spans_s, q.qtype) for q in qs
    ]
    assert back[0].answer == "clean"


def test_reads_the_public_layouts(tmp_path):
    # EgoSchema: questions.json without answers plus subset_answers.json
    ego = [{"q_uid": "abc", "google_drive_id": "x1", "question": "Q?", **{f"option {i}": f"o{i}" for i in range(5)}}]
    (tmp_path / "questions.json").write_text(json.dumps(ego))
    (tmp_path / "subset_answers.json").write_text(json.dumps({"abc": 3}))
    q = read_questions(tmp_path / "questions.json", answers_path=tmp_path / "subset_answers.json")[0]
    assert (q.qid, q.video, q.answer_index, q.answer) == ("abc", "x1", 3, "o3")
    # NExT-QA multiple choice CSV
    (tmp_path / "val.csv").write_text(
        "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
        "4010069381,1612,640,480,how do the two man play the instrument,2,6,CH,"
        "roll the handle,tap their feet,strum the string,hit with sticks,pat with hand\n"
    )
    q = read_questions(tmp_path / "val.csv")[0]
    assert (q.video, q.answer_index, q.answer, q.qtype, q.meta["frame_count"]) == (
        "4010069381",
        2,
        "strum the string",
        "CH",
        1612,
    )
    (tmp_path / "bad.csv").write_text("video,question,answer,qid,a0,a1\nv,q?,x,1,a,b\n")
    with pytest.raises(ValueError, match="line 2"):
        read_questions(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="outside its 2 options"):
        VideoQuestion(qid="x", video="v", question="q?", options=["a", "b"], answer_index=2)


def test_question_plurals_read_back_as_the_vocabulary_word():
    from engram.perception.detectors.vocabulary import DEFAULT_VOCABULARY
    from engram.qa.embodied import _singular
    from engram.qa.evaluation import plural

    assert [plural(w) for w in ("box", "shelf", "knife", "bench", "battery", "tv", "cup")] == [
        "boxes", "shelves", "knives", "benches", "batteries", "tvs", "cups",
    ]  # fmt: skip
    # every word the default detector names, asked about in the plural, is understood as itself
    for word in DEFAULT_VOCABULARY:
        assert " ".join(_singular(w) for w in plural(word).split()) == " ".join(_singular(w) for w in word.split()), (
            word
        )
