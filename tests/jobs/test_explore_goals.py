"""The main job's goal choice and scoring words (no simulator needed)."""

from __future__ import annotations

from types import SimpleNamespace

from engram.jobs.explore import names_match, pick_goal_labels


def test_goal_words_match_true_categories_by_synonym_only():
    assert names_match("tv", "tv") and names_match("television", "tv") and names_match("tv", "television")
    assert names_match("couch", "sofa")
    assert not names_match("desk", "table")  # related is not the same thing
    assert not names_match("mug", "bowl")


def test_goals_are_things_the_memory_could_name():
    objs = {i: SimpleNamespace(label=lab) for i, lab in enumerate(["object", "mug", "object", "chair", "sofa"])}
    memory = SimpleNamespace(objects=SimpleNamespace(objects=objs))
    goals = pick_goal_labels(memory, 10, seed=0, exclude=("sofa",))
    assert sorted(goals) == ["chair", "mug"]
