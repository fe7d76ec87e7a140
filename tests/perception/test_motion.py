"""Static/dynamic split: moving categories and contradictions with the static map."""

from __future__ import annotations

import warnings

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


def test_tracker_tells_a_walker_from_a_thing_put_down():
    from engram.perception.motion import MotionTracker

    tr = MotionTracker(settle_after_s=1.0)
    rng = np.random.default_rng(0)
    for k in range(8):
        t = 0.25 * k
        walker = np.array([1.0 + 0.2 * k, 0.0, 0.9])  # 0.8 m/s across the room
        cup = np.array([3.0, 2.0, 0.8]) + rng.normal(0, 0.03, 3)  # still; its centroid jitters with the view
        pts = np.concatenate([walker + rng.normal(0, 0.1, (50, 3)), cup + rng.normal(0, 0.02, (20, 3))])
        blob = np.r_[np.full(50, 3), np.full(20, 7)]  # blob ids as a labelling gives them: any, per frame
        ids, moving, settled = tr.observe(blob, pts, t)
        assert ids.tolist() == [3, 7]
        if k >= 3:  # 0.6 m from where it was first seen
            assert moving.tolist() == [True, False]
        assert not settled[0]
        assert settled[1] == (t >= 1.0)
    assert len(tr.tracks) == 2  # one track each, kept from frame to frame


def test_tracker_forgets_a_lost_track_and_needs_a_match_within_the_gate():
    from engram.perception.motion import MotionTracker

    tr = MotionTracker(gate_m=0.5, max_speed_mps=1.0, lost_after_s=1.0)
    first = tr.update(np.array([[0.0, 0.0, 1.0]]), 0.0)[0]
    assert tr.update(np.array([[0.3, 0.0, 1.0]]), 0.25)[0] is first
    far = tr.update(np.array([[3.0, 0.0, 1.0]]), 0.5)[0]  # 2.7 m in 0.25 s: someone else
    assert far is not first
    again = tr.update(np.array([[0.3, 0.0, 1.0]]), 2.0)[0]  # the first one, unseen for 1.75 s: forgotten
    assert again is not first and again is not far and len(tr.tracks) == 1


def test_grow_over_depth_follows_the_surface_and_stops_at_jumps():
    from engram.perception.motion import grow_over_depth

    depth = np.full((60, 80), 4.0, np.float32)  # a wall
    depth[10:50, 30:42] = 2.0  # a body in front of it
    depth[40:50, 30:42] = 2.0 + np.linspace(0, 0.3, 10)[:, None]  # its legs lean back, continuously
    depth[:, 70:] = 0.0  # no return
    seed = np.zeros(depth.shape, bool)
    seed[20:24, 33:36] = True  # the part that contradicted the map
    grown = grow_over_depth(seed, depth, np.ones(depth.shape, bool), stride=2)
    body = np.zeros(depth.shape, bool)
    body[10:50, 30:42] = True
    assert grown[body].mean() > 0.9  # the whole body (on the stride grid, upsampled)
    assert not grown[:, :28].any() and not grown[:, 44:].any() and not grown[:8].any()  # not the wall
    # pixels it may not take (the floor, mapped structure) stay out, and cut it
    allowed = np.ones(depth.shape, bool)
    allowed[30:32] = False
    part = grow_over_depth(seed, depth, allowed, stride=1)
    assert part[10:30, 30:42].all() and not part[30:, 30:42].any()
    assert grow_over_depth(np.zeros_like(seed), depth, allowed).sum() == 0


def test_grow_over_depth_needs_a_fair_share_of_the_surface_with_min_seed_share():
    from engram.perception.motion import grow_over_depth

    depth = np.full((60, 80), 4.0, np.float32)  # a wall
    depth[20:60, 10:70] = np.linspace(1.5, 2.5, 40)[:, None]  # a table top rising away from the camera
    depth[5:15, 35:45] = 2.0  # a body in front of the wall
    allowed = np.ones(depth.shape, bool)
    rim = np.zeros(depth.shape, bool)
    rim[20:22, 40:42] = True  # a speck of mixed depth on the table's edge: 4 of 2400 pixels
    body = np.zeros(depth.shape, bool)
    body[7:12, 37:42] = True  # a quarter of the body contradicts the map
    seed = rim | body
    table = np.zeros(depth.shape, bool)
    table[20:60, 10:70] = True
    plain = grow_over_depth(seed, depth, allowed)
    assert plain[table].all()  # without a share the speck takes in the whole table
    shared = grow_over_depth(seed, depth, allowed, min_seed_share=0.15)
    assert shared[5:15, 35:45].all()  # the body still grows over all of itself
    assert shared[table].sum() == rim.sum()  # the table stays out; the speck itself is kept as it was
    assert not shared[:5].any() and not shared[:, :30].any()  # and the wall


def test_tracker_needs_a_wide_blob_to_call_a_track_moving_and_reports_each_start_once():
    from engram.perception.motion import MotionTracker, blob_widths_m

    # widths: a 40 x 40 px square at 2 m with f = 400 px holds a disc 0.2 m across; a 3 px line 0.015 m
    blobs = np.zeros((60, 120), np.int32)
    blobs[10:50, 10:50] = 1
    blobs[20:23, 70:110] = 2
    w = blob_widths_m(blobs, 2, np.full(blobs.shape, 2.0), fx=400.0)
    assert w[0] == 0 and 0.18 <= w[1] <= 0.21 and w[2] <= 0.03
    # a blob that fills the frame (something right in front of the camera) is as wide as the frame
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        full = blob_widths_m(np.ones((60, 120), np.int32), 1, np.full((60, 120), 2.0), fx=400.0)
    assert abs(full[1] - 60 * 2.0 / 400.0) < 1e-9

    rng = np.random.default_rng(1)
    for wide, want in ((False, False), (True, True)):
        tr = MotionTracker(min_width_m=0.15, min_wide_frames=2)
        widths = np.array([0.0, 0.2 if wide else 0.02])
        started = []
        for k in range(6):  # a blob hopping 0.2 m per frame, as specks along a table's rim do
            pts = np.array([1.0 + 0.2 * k, 0.0, 0.8]) + rng.normal(0, 0.01, (30, 3))
            _, moving, _ = tr.observe(np.ones(30, np.int64), pts, 0.1 * k, widths)
            started.append(len(tr.started_moving))
        assert bool(moving[0]) == want
        assert sum(started) == int(want)  # reported in the frame it started, not again
    # a frame with no blob right after a track started moving reports no start
    tr = MotionTracker()
    for k in range(2):
        tr.observe(np.ones(5, np.int64), np.full((5, 3), 0.4 * k), 0.1 * k)
    assert len(tr.started_moving) == 1
    tr.observe(np.zeros(0, np.int64), np.zeros((0, 3)), 0.2)
    assert tr.started_moving == []
