"""Static/dynamic split: moving categories and contradictions with the static map."""

from __future__ import annotations

import numpy as np

from engram.perception.motion import contradiction_mask, semantic_dynamic_mask, split_dynamic


def test_semantic_mask_marks_people_only():
    ins = np.zeros((10, 10), np.int32)
    ins[2:5, 2:5] = 3
    ins[6:9, 6:9] = 4
    m = semantic_dynamic_mask(ins, {3: "person", 4: "mug"})
    assert m.sum() == 9 and m[3, 3] and not m[7, 7]


def test_contradiction_keeps_blobs_drops_speckle():
    h, w = 40, 40
    vs, us = np.mgrid[0:h, 0:w]
    uv = np.stack([us.ravel(), vs.ravel()], 1)
    lo = np.full(h * w, 2.0, np.float32)  # endpoints in occupied space: consistent
    blob = (vs.ravel() >= 10) & (vs.ravel() < 20) & (us.ravel() >= 10) & (us.ravel() < 20)
    lo[blob] = -1.5  # a 10x10 body standing in confidently free space
    lo[5 * w + 35] = -1.5  # one noisy pixel
    lo[30 * w + 5] = np.nan  # unknown space is not a contradiction
    m = contradiction_mask(uv, lo, (h, w), min_blob_px=12)
    assert m[15, 15] and not m[5, 35] and not m[30, 5]
    assert abs(int(m.sum()) - 100) <= 20


def test_split_dilates_union():
    ins = np.zeros((20, 20), np.int32)
    ins[8:12, 8:12] = 1
    s = split_dynamic((20, 20), instances=ins, labels={1: "person"}, dilate_px=1)
    assert s.n_semantic == 16 and s.dynamic_pixels.sum() == 36
