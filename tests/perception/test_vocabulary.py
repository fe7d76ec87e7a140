"""The household vocabulary over ImageNet's classes, and what queries it expands to."""

from __future__ import annotations

import numpy as np
import pytest

from engram.perception.detectors.vocabulary import (
    CURATED,
    DEFAULT_VOCABULARY,
    LabelMap,
    expand_query,
    related_words,
)
from engram.perception.encoders import imagenet_class_names


def test_curated_names_are_real_imagenet_classes_and_vocabulary_words():
    names = set(imagenet_class_names())
    assert set(CURATED) <= names, sorted(set(CURATED) - names)
    assert set(CURATED.values()) <= set(DEFAULT_VOCABULARY)


@pytest.mark.parametrize(
    ("imagenet", "word"),
    [
        ("coffee mug", "mug"),
        ("cup", "mug"),
        ("four-poster", "bed"),
        ("studio couch", "sofa"),
        ("refrigerator", "fridge"),
        ("computer keyboard", "keyboard"),
        ("dining table", "table"),
    ],
)
def test_household_words_for_imagenet_classes(imagenet, word):
    m = LabelMap(similarity_threshold=None)
    p = np.zeros((1, len(m.class_names)))
    p[0, m.class_names.index(imagenet)] = 0.9
    p[0, m.class_names.index("tench")] = 0.1  # a fish: no household word
    dist = m.distribution(p)[0]
    assert m.vocabulary[int(dist.argmax())] == word
    assert dist.sum() == pytest.approx(0.9)  # the fish's mass is nobody's


def test_classes_with_no_household_word_carry_no_mass():
    m = LabelMap(similarity_threshold=None)
    for animal in ("brown bear", "tench", "goldfish", "mousetrap", "garbage truck"):
        assert m.target[m.class_names.index(animal)] == -1


def test_a_user_vocabulary_keeps_its_own_words():
    m = LabelMap(["mug", "chair"], similarity_threshold=None)
    assert m.vocabulary == ("mug", "chair")
    assert m.covered == ["chair", "mug"]
    p = np.zeros((1, len(m.class_names)))
    p[0, m.class_names.index("studio couch")] = 1.0
    assert m.distribution(p).sum() == 0.0  # "sofa" is not in this vocabulary
    with pytest.raises(ValueError, match="vocabulary"):
        LabelMap([""])


def test_query_expansion_reaches_vocabulary_words():
    assert "tv" in expand_query("television")
    assert "cabinet" in expand_query("sideboard")
    assert "sofa" in expand_query("couch")
    assert "fridge" in expand_query("small fridge")
    assert "remote" in expand_query("game controller")
    assert expand_query("chair") == ["chair"]
    assert "table" in related_words("desk") and "desk" in related_words("table")
