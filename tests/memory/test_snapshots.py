"""3D-Mem memory snapshots: co-visibility clustering invariants, preferences, frontier views."""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.memory.snapshots import SnapshotMemory
from engram.types import Pose


def pose_at(x: float, y: float, yaw: float = 0.0) -> Pose:
    """OpenCV camera at (x, y, 1.2) looking horizontally along yaw (world z up)."""
    fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    down = np.cross(fwd, right)
    return Pose.from_rt(np.stack([right, down, fwd], axis=1), [x, y, 1.2])


def check_invariants(mem: SnapshotMemory, seen: dict[int, frozenset[int]]) -> None:
    everything = set().union(*seen.values()) if seen else set()
    owner: dict[int, int] = {}
    for snap in mem.snapshots:
        assert snap.object_ids, "empty snapshot"
        assert snap.frame_index in seen
        assert set(snap.object_ids) <= seen[snap.frame_index], "snapshot frame does not see its objects"
        for o in snap.object_ids:
            assert o not in owner, f"object {o} in two snapshots"
            owner[o] = snap.frame_index
    assert set(owner) == everything, "an object has no snapshot"
    for o, f in owner.items():
        assert mem.snapshot_of(o).frame_index == f


frames_strategy = st.lists(st.frozensets(st.integers(0, 24), max_size=8), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    frames=frames_strategy, every=st.integers(1, 5), cap=st.integers(1, 30), split=st.sampled_from(["cover", "kmeans"])
)
def test_every_object_in_exactly_one_snapshot_whose_frame_sees_it(frames, every, cap, split):
    mem = SnapshotMemory(max_candidates=cap, split=split)
    seen: dict[int, frozenset[int]] = {}
    positions = {o: (o % 5, o // 5, 0.0) for o in range(25)}
    for i, objs in enumerate(frames):
        seen[i] = objs
        mem.add_frame(i, 0.1 * i, pose_at(0, 0), objs)
        if i % every == 0:
            mem.update(positions)
    mem.update(positions)
    check_invariants(mem, seen)
    full = SnapshotMemory(max_candidates=cap, split=split)
    for i, objs in enumerate(frames):
        full.add_frame(i, 0.1 * i, pose_at(0, 0), objs)
    full.update(positions, full=True)
    check_invariants(full, seen)
    assert len(full.snapshots) <= len(full.object_ids)


def test_one_frame_that_sees_everything_is_the_only_snapshot():
    mem = SnapshotMemory()
    mem.add_frame(0, 0.0, pose_at(0, 0), {1, 2})
    mem.add_frame(1, 1.0, pose_at(0, 0), {3, 4})
    mem.update()
    assert sorted(s.frame_index for s in mem.snapshots) == [0, 1]
    mem.add_frame(2, 2.0, pose_at(0, 0), {1, 2, 3, 4})
    mem.update()
    [snap] = mem.snapshots
    assert snap.frame_index == 2 and snap.object_ids == (1, 2, 3, 4)
    # frames 0 and 1 are dominated by frame 2 and left the cache
    assert mem.candidate_frames() == [2]
    # a later frame that sees a subset is not even cached
    assert mem.add_frame(3, 3.0, pose_at(0, 0), {1, 4}) is False


def test_preferences_existing_snapshot_then_more_objects_then_score():
    mem = SnapshotMemory()
    mem.add_frame(0, 0.0, pose_at(0, 0), {1, 2, 3}, score=0.5)
    mem.update()
    assert mem.snapshot_of(1).frame_index == 0
    # frame 1 also covers {1, 2, 3} plus 9, so it sees more objects: it wins for the new cluster
    mem.add_frame(1, 1.0, pose_at(0, 0), {1, 2, 3, 9}, score=0.1)
    mem.update()
    assert [s.frame_index for s in mem.snapshots] == [1]
    # an equal set with a higher score replaces a cached non-snapshot frame, but the snapshot frame stays preferred
    mem.add_frame(2, 2.0, pose_at(0, 0), {5, 6}, score=0.2)
    mem.add_frame(3, 3.0, pose_at(0, 0), {5, 6}, score=0.9)
    assert 2 not in mem.candidate_frames()
    mem.update()
    assert mem.snapshot_of(5).frame_index == 3
    mem.add_frame(4, 4.0, pose_at(0, 0), {5, 6, 7}, score=0.3)
    mem.add_frame(5, 5.0, pose_at(0, 0), {5, 6}, score=0.99)  # dominated by frame 4 (subset)
    mem.update()
    assert mem.snapshot_of(7).frame_index == 4 and mem.snapshot_of(5).frame_index == 4


def test_greedy_cover_uses_few_snapshots():
    # objects 0..11 in a ring; frames see windows of 4; the best cover has 3 frames
    mem = SnapshotMemory()
    seen = {}
    for i in range(12):
        objs = frozenset((i + k) % 12 for k in range(4))
        seen[i] = objs
        mem.add_frame(i, float(i), pose_at(0, 0), objs)
    mem.update(full=True)
    check_invariants(mem, seen)
    assert len(mem.snapshots) <= 4


def test_remap_and_remove_objects_keep_the_invariants():
    mem = SnapshotMemory()
    seen = {0: frozenset({1, 2}), 1: frozenset({2, 3}), 2: frozenset({4})}
    for f, objs in seen.items():
        mem.add_frame(f, float(f), pose_at(0, 0), objs)
    mem.update()
    check_invariants(mem, seen)
    mem.rename_object(3, 1)  # object 3 was a duplicate of 1
    mem.update()
    seen = {0: frozenset({1, 2}), 1: frozenset({2, 1}), 2: frozenset({4})}
    check_invariants(mem, seen)
    assert mem.snapshot_of(3) is None
    mem.remove_objects([4])
    mem.update()
    check_invariants(mem, {0: seen[0], 1: seen[1]})
    assert all(4 not in s.object_ids for s in mem.snapshots)


def test_images_are_small_jpegs_and_records_round_trip():
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[:, :160] = (255, 0, 0)
    mem = SnapshotMemory(jpeg_max_side=80)
    mem.add_frame(7, 0.7, pose_at(1, 2, 0.3), {1, 2}, rgb=rgb)
    mem.update()
    [snap] = mem.snapshots
    img = cv2.imdecode(np.frombuffer(snap.image_jpeg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert img.shape == (60, 80, 3)
    assert img[30, 10, 0] > 200 and img[30, 10, 2] < 60 and img[30, 70, 0] < 60  # red left half survives
    assert snap.world_from_camera.allclose(pose_at(1, 2, 0.3))
    again = SnapshotMemory.from_records(mem.to_records())
    assert again.digest() == mem.digest()
    assert again.snapshots[0].image_jpeg == snap.image_jpeg
    bad = mem.to_records()
    bad["snapshots"][0]["object_ids"] = [1, 2, 3]
    with pytest.raises(ValueError, match="does not see"):
        SnapshotMemory.from_records(bad)


def test_frontier_views_pick_the_frame_facing_the_frontier_or_propose_one():
    mem = SnapshotMemory()
    mem.add_frame(0, 0.0, pose_at(0, 0, 0.0), {1}, rgb=np.zeros((60, 80, 3), np.uint8))  # looks along +x
    mem.add_frame(1, 1.0, pose_at(0, 0, np.pi), {2})  # looks along -x
    mem.add_frame(2, 2.0, pose_at(0, 0, np.pi / 2), set())  # looks along +y, no objects
    east = types.SimpleNamespace(id=0, center=(3.0, 0.2, 0.0), direction=(1.0, 0.0, 0.0))
    north = types.SimpleNamespace(id=1, center=(0.1, 2.5, 0.0), direction=(0.0, 1.0, 0.0))
    south_far = types.SimpleNamespace(id=2, center=(0.0, -20.0, 0.0), direction=(0.0, -1.0, 0.0))
    views = {v.frontier_id: v for v in mem.update_frontiers([east, north, south_far])}
    assert views[0].frame_index == 0 and views[0].image_jpeg is not None
    assert views[1].frame_index == 2 and views[1].observed
    proposed = views[2]
    assert not proposed.observed and proposed.frame_index is None
    eye = proposed.world_from_camera.translation
    np.testing.assert_allclose(eye[:2], [0.0, -19.0], atol=1e-9)
    np.testing.assert_allclose(proposed.world_from_camera.rotation[:, 2], [0.0, -1.0, 0.0], atol=1e-9)
    assert eye[2] == pytest.approx(1.2)


def test_bad_input_is_rejected_without_changing_state():
    mem = SnapshotMemory()
    mem.add_frame(0, 0.0, pose_at(0, 0), {1})
    mem.update()
    before = (mem.digest(), mem.candidate_frames())
    with pytest.raises(ValueError, match="already added"):
        mem.add_frame(0, 0.0, pose_at(0, 0), {2})
    with pytest.raises(ValueError, match="timestamp_s"):
        mem.add_frame(1, float("inf"), pose_at(0, 0), {2})
    with pytest.raises(ValueError, match="rgb"):
        mem.add_frame(1, 1.0, pose_at(0, 0), {2}, rgb=np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="Pose"):
        mem.add_frame(1, 1.0, np.eye(3), {2})
    with pytest.raises(ValueError, match="visible_object_ids"):
        mem.add_frame(1, 1.0, pose_at(0, 0), ["a"])
    with pytest.raises(ValueError, match="split"):
        SnapshotMemory(split="random")
    assert (mem.digest(), mem.candidate_frames()) == before
    with pytest.raises(ValueError, match="no snapshot"):
        mem.get(99)
