"""Question parsing and A-EQA / OpenEQA score formulas."""

from __future__ import annotations

import pytest

from engram.qa.embodied import llm_match_to_100, llm_spl, parse_structured


@pytest.mark.parametrize(
    "q, kind, slots",
    [
        ("Where is the mug?", "where", {"x": "mug"}),
        ("where did I leave my keys", "where", {"x": "keys"}),
        ("How many chairs are there in the kitchen?", "how_many", {"x": "chairs", "r": "kitchen"}),
        ("how many books", "how_many", {"x": "books"}),
        ("Is there a bowl in the living room?", "is_there", {"x": "bowl", "r": "living room"}),
        ("Which room is the sofa in?", "which_room", {"x": "sofa"}),
        ("What is next to the bed?", "near", {"x": "bed"}),
        ("When did I last see the red apple?", "last_seen", {"x": "red apple"}),
        ("What changed since 12:30?", "changed", {"t": 750.0}),
        ("What moved?", "changed", {}),
    ],
)
def test_structured_questions_parse(q, kind, slots):
    assert parse_structured(q) == (kind, slots)


def test_open_questions_do_not_parse():
    assert parse_structured("What colour is the sofa?") is None
    assert parse_structured("Could I sit down somewhere?") is None


def test_scores():
    assert llm_match_to_100(1) == 0 and llm_match_to_100(5) == 100 and llm_match_to_100(3) == 50
    assert llm_spl(1.0, 4.0, 8.0) == 0.5
    assert llm_spl(1.0, 4.0, 2.0) == 1.0  # a shorter path than the reference counts as optimal
    assert llm_spl(0.0, 4.0, 4.0) == 0.0


@pytest.mark.parametrize(
    "plural, label",
    [("shelves", "shelf"), ("boxes", "box"), ("benches", "bench"), ("knives", "knife"), ("people", "person"),
     ("cups", "cup"), ("glasses", "glass"), ("batteries", "battery")],
)  # fmt: skip
def test_a_plural_in_a_question_finds_the_singular_label(plural, label):
    from engram.qa.facts import match_labels

    # no text encoder: only the words themselves can match
    assert match_labels(plural, [label, "chair", "bed"]) == [label]
