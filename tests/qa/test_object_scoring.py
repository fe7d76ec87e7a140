"""Object-map scoring: 3D box IoU and the one-to-one matching, on hand-made boxes."""

from __future__ import annotations

import math

import pytest

from engram.qa.evaluation import Box3D, box_iou_3d, match_object_boxes


def unit(x=0.0, y=0.0, z=0.5, label="", yaw=0.0, half=(0.5, 0.5, 0.5)):
    return Box3D((x, y, z), half, yaw, label)


def test_iou_identical_disjoint_and_half_shifted():
    a = unit()
    assert box_iou_3d(a, a) == pytest.approx(1.0)
    assert box_iou_3d(a, unit(x=2.0)) == 0.0
    assert box_iou_3d(a, unit(z=2.0)) == 0.0
    # shifted by half its width: intersection 0.5, union 1.5
    assert box_iou_3d(a, unit(x=0.5)) == pytest.approx(1 / 3)
    # symmetric
    assert box_iou_3d(unit(x=0.5), a) == pytest.approx(1 / 3)


def test_iou_of_nested_boxes_is_volume_ratio():
    big = unit(half=(1.0, 1.0, 1.0), z=1.0)
    small = unit(half=(0.5, 0.5, 0.5), z=1.0)
    assert box_iou_3d(big, small) == pytest.approx(1 / 8)


def test_iou_rotated_square_against_its_axis_aligned_twin():
    # a unit square turned 45 degrees over the same square: the overlap is a regular octagon
    a = unit()
    b = unit(yaw=math.pi / 4)
    octagon = 2 * (math.sqrt(2) - 1)  # area of the octagon inside a unit square turned by 45 degrees
    assert box_iou_3d(a, b) == pytest.approx(octagon / (2 - octagon), rel=1e-9)
    # a quarter turn maps a square onto itself
    assert box_iou_3d(a, unit(yaw=math.pi / 2)) == pytest.approx(1.0)


def test_from_min_max_and_contains():
    b = Box3D.from_min_max((0, 0, 0), (2, 1, 1), "table")
    assert b.centre == (1.0, 0.5, 0.5) and b.half_extents == (1.0, 0.5, 0.5)
    assert b.contains((1.9, 0.9, 0.1)) and not b.contains((2.1, 0.5, 0.5))
    assert b.contains((2.1, 0.5, 0.5), margin_m=0.2)
    long = Box3D((0, 0, 0.5), (1.0, 0.1, 0.5), math.pi / 2)  # 2 m long along y after the turn
    assert long.contains((0.0, 0.9, 0.5)) and not long.contains((0.9, 0.0, 0.5))
    with pytest.raises(ValueError, match="box_min"):
        Box3D.from_min_max((0, 0, 1), (1, 1, 0))
    with pytest.raises(ValueError, match="finite"):
        Box3D((0, 0, float("nan")), (1, 1, 1))


def test_matching_counts_localisation_labels_false_objects_and_duplicates():
    gt = [unit(0, 0, label="mug"), unit(3, 0, label="chair"), unit(6, 0, label="sofa")]
    pred = [
        unit(0.1, 0, label="mug"),  # right place, right name
        unit(3.2, 0, label="table"),  # right place, wrong name: a localisation hit and a label miss
        unit(3.3, 0.1, label="chair", half=(0.2, 0.2, 0.2)),  # second object in the chair's box: a duplicate
        unit(10, 0, label="lamp"),  # nothing there: a false object
    ]
    s = match_object_boxes(gt, pred)
    assert {(m.gt, m.pred) for m in s.matches} == {(0, 0), (1, 1)}
    assert s.missed == [2]
    assert sorted(s.false) == [2, 3] and s.duplicates == [2]
    assert s.recall == pytest.approx(2 / 3)
    assert s.precision == pytest.approx(2 / 4)
    assert s.duplicate_rate == pytest.approx(1 / 4)
    assert s.label_accuracy() == pytest.approx(1 / 2)
    # restricted to categories a vocabulary covers
    assert s.label_hits(["mug"]) == (1, 1)
    assert math.isnan(s.label_accuracy(["sofa"]))


def test_matching_is_one_to_one_and_prefers_the_better_overlap():
    gt = [unit(0, 0, label="a"), unit(0.8, 0, label="b")]
    pred = [unit(0.75, 0, label="b"), unit(0.05, 0, label="a")]
    s = match_object_boxes(gt, pred)
    assert {(m.gt, m.pred) for m in s.matches} == {(0, 1), (1, 0)}
    assert s.false == [] and s.precision == 1.0 and s.recall == 1.0


def test_centroid_inside_matches_without_enough_overlap():
    sofa = unit(0, 0, half=(1.0, 0.5, 0.4), z=0.4, label="sofa")
    # a partial view: a small box at one end of the sofa (IoU well below 0.25) whose centroid is inside
    part = Box3D.from_min_max((0.6, -0.2, 0.2), (0.9, 0.2, 0.6), "sofa")
    assert box_iou_3d(sofa, part) < 0.25
    s = match_object_boxes([sofa], [part])
    assert len(s.matches) == 1 and s.matches[0].centroid_inside
    # the point centroid can differ from the box centre: outside the box, no overlap, no match
    s = match_object_boxes([sofa], [part], pred_centroids=[(2.0, 2.0, 0.4)], min_iou=0.25)
    assert s.matches == [] and s.false == [0]


def test_uncounted_ground_truth_is_neither_a_hit_nor_a_false_object():
    gt = [unit(0, 0, label="mug"), unit(3, 0, label="book")]
    pred = [unit(0, 0, label="mug"), unit(3, 0, label="book")]
    s = match_object_boxes(gt, pred, counted=[True, False])
    assert s.n_counted == 1 and s.found == 1 and s.recall == 1.0
    assert s.false == [] and s.precision == 1.0
    assert s.label_hits() == (1, 1)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="centroids"):
        match_object_boxes([unit()], [unit()], pred_centroids=[])
    with pytest.raises(ValueError, match="counted"):
        match_object_boxes([unit()], [unit()], counted=[True, False])
    with pytest.raises(ValueError, match="min_iou"):
        match_object_boxes([unit()], [unit()], min_iou=0.0)
    empty = match_object_boxes([], [])
    assert math.isnan(empty.recall) and math.isnan(empty.precision) and empty.duplicate_rate == 0.0
