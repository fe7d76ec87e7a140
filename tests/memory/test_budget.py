"""MemoryBudget: a memory fed many frames stays within every cap; eviction spares what is near the agent."""

from __future__ import annotations

import numpy as np
import pytest

from engram.memory.budget import MemoryBudget
from engram.memory.octree import FREE, OCCUPIED
from engram.memory.scene import SceneMemory
from engram.types import CameraIntrinsics, Frame, Pose

K = CameraIntrinsics(fx=40.0, fy=40.0, cx=31.5, cy=23.5, width=64, height=48)
LABELS = {1: "table", 2: "cabinet", 3: "box", 7: "person"}
STATIC_BOXES = [
    (1, (1.0, -0.5, 0.0), (2.0, 0.5, 0.75)),
    (2, (-2.6, 1.6, 0.0), (-1.8, 2.6, 1.6)),
    (3, (4.0, -2.4, 0.0), (4.6, -1.8, 0.5)),
]


def _pose(position, yaw: float) -> Pose:
    fwd = np.array([np.cos(yaw), np.sin(yaw), -0.1])
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return Pose.from_rt(np.stack([right, np.cross(fwd, right), fwd], axis=1), position)


def _frames(render, n: int, t0: int = 0) -> list[Frame]:
    """A camera walking along x and turning, with a person walking through the view."""
    out = []
    for i in range(t0, t0 + n):
        pos = [-1.0 + 0.12 * i, 0.3 * np.sin(0.2 * i), 1.2]
        person_x = 0.5 + 0.15 * i
        boxes = STATIC_BOXES + [(7, (person_x, 1.0, 0.0), (person_x + 0.4, 1.4, 1.7))]
        pose = _pose(pos, 0.7 * i)
        depth, ids = render(boxes, pose, K)
        rgb = np.stack([(ids * 40) % 256] * 3, axis=-1).astype(np.uint8)
        out.append(
            Frame(
                index=i,
                timestamp_s=0.5 * i,
                rgb=rgb,
                depth_m=depth,
                intrinsics=K,
                world_from_camera=pose,
                instances=ids,
                labels=LABELS,
            )
        )
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_numba_thread():
    """Frames of 64x48 are a few hundred rays: one thread is faster than a pool woken per call."""
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture
def frames(box_renderer):
    return _frames(box_renderer, 40)


def _memory(**kw) -> SceneMemory:
    return SceneMemory(detector="oracle", voxel_size_m=0.1, depth_stride=2, object_stride=2, **kw)


TIGHT = {
    "max_voxels": 4000,
    "max_objects": 2,
    "max_snapshots": 2,
    "max_snapshot_candidates": 6,
    "max_timeline_nodes": 6,
    "max_transient_voxels": 40,
    "max_places": 3,
    "max_trajectory_poses": 12,
    "max_frames_per_record": 4,
    "max_change_events": 2,
    "keep_radius_m": 1.5,
    "every_frames": 4,
}


def test_memory_fed_many_frames_stays_within_every_budget(frames) -> None:
    budget = MemoryBudget(**TIGHT)
    mem = _memory(budget=budget)
    free_run = _memory()
    evicted_total: dict[str, int] = {}
    for f in frames:
        mem.integrate(f)
        free_run.integrate(f)
        if mem.frames_seen % budget.every_frames:
            continue
        for name, v in mem.last_eviction.items():
            evicted_total[name] = evicted_total.get(name, 0) + v
        s = mem.stats()
        assert s["voxels"] <= budget.max_voxels
        assert s["objects"] <= budget.max_objects
        assert s["snapshots"] <= max(budget.max_snapshots, s["objects"])
        assert mem.snapshots.n_candidates <= budget.max_snapshot_candidates + s["objects"]
        assert s["timeline_nodes"] <= budget.max_timeline_nodes
        assert s["transient_voxels"] <= budget.max_transient_voxels
        assert s["places"] <= budget.max_places
        assert len(mem.trajectory) <= budget.max_trajectory_poses
        assert len(mem.tracker.events) <= budget.max_change_events
        assert all(len(o.frames) <= budget.max_frames_per_record for o in mem.objects.objects.values())
        assert all(len(d["frames"]) <= budget.max_frames_per_record for _, d in mem.places.graph.nodes(data=True))
    # the caps did bite: the unbudgeted run of the same frames holds more of every growing layer
    s, u = mem.stats(), free_run.stats()
    assert u["voxels"] > budget.max_voxels and s["voxels"] < u["voxels"]
    assert len(free_run.trajectory) == len(frames) > len(mem.trajectory)
    assert u["places"] > s["places"]
    for name in ("voxels", "places", "trajectory_poses", "frame_refs"):
        assert evicted_total[name] > 0, name
    # the trajectory stays in time order and ends at the newest pose
    idx = [i for i, _, _ in mem.trajectory]
    assert idx == sorted(idx) and idx[-1] == frames[-1].index
    np.testing.assert_allclose(mem.trajectory[-1][2], frames[-1].world_from_camera.matrix)


def test_eviction_never_forgets_occupied_voxels_near_the_agent(frames) -> None:
    mem = _memory()
    for f in frames[:30]:
        mem.integrate(f)
    agent = frames[29].world_from_camera.translation
    occ = mem.octree.occupied_centers()
    n_protected = int((np.linalg.norm(occ - agent, axis=1) <= 2.0).sum())
    # a cap that leaves room for little more than the protected voxels: eviction must reach the agent's surroundings
    budget = MemoryBudget(max_voxels=int((n_protected + 20) / 0.9), keep_radius_m=2.0)
    assert budget.max_voxels < len(mem.octree) // 2
    near_occ = occ[np.linalg.norm(occ - agent, axis=1) <= budget.keep_radius_m - mem.voxel_size_m]
    assert len(near_occ) > 20
    free = mem.octree.free_centers()
    far_free = free[np.linalg.norm(free - agent, axis=1) > budget.keep_radius_m + mem.voxel_size_m]
    before = len(mem.octree)

    evicted = budget.enforce(mem)

    assert evicted["voxels"] == before - len(mem.octree) > 0
    assert len(mem.octree) <= budget.max_voxels
    assert np.all(mem.octree.state(near_occ) == OCCUPIED)
    # far free space is given up before far occupied voxels
    far_occ = occ[np.linalg.norm(occ - agent, axis=1) > budget.keep_radius_m + mem.voxel_size_m]
    if np.any(mem.octree.state(far_occ) != OCCUPIED):
        assert not np.any(mem.octree.state(far_free) == FREE)
    # the compacted storage answers like the map it came from, for every voxel that stayed
    kept = (mem.octree.keys() + 0.5) * mem.voxel_size_m
    ref = _memory()
    for f in frames[:30]:
        ref.integrate(f)
    np.testing.assert_array_equal(mem.octree.log_odds(kept), ref.octree.log_odds(kept))


def test_queries_and_save_load_work_after_enforcement(frames, tmp_path) -> None:
    mem = _memory(budget=MemoryBudget(**TIGHT))
    for f in frames:
        mem.integrate(f)
    kept = {o.label for o in mem.objects.objects.values()}
    assert kept
    for label in kept:
        hits = mem.query(text=label, kinds=("object",), k=3)
        assert hits and hits[0].label == label
        assert mem.where_is(label)
    # no hit points at something that was evicted
    for h in mem.query(kinds=("object", "snapshot", "place"), k=50):
        ids = [h.id] if h.kind == "object" else h.evidence.get("object_ids", [])
        assert all(i in mem.objects.objects for i in ids), h
    assert mem.query(near=frames[-1].world_from_camera.translation, k=3)
    mem.save(str(tmp_path / "m"))
    back = SceneMemory.load(str(tmp_path / "m"))
    assert back.digest() == mem.digest()


def test_no_budget_or_a_budget_never_reached_changes_nothing(frames) -> None:
    plain = _memory()
    none = _memory(budget=None)
    roomy = _memory(budget=MemoryBudget(object_stale_s=1e9, every_frames=3))
    for f in frames[:24]:
        for m in (plain, none, roomy):
            m.integrate(f)
    assert plain.digest() == none.digest() == roomy.digest()
    assert all(v == 0 for v in roomy.last_eviction.values()) and roomy.last_eviction


def test_stale_one_off_objects_are_pruned_and_forgotten_everywhere(frames) -> None:
    mem = _memory()
    for f in frames[:20]:
        mem.integrate(f)
    obj = next(iter(mem.objects.objects.values()))
    obj.n_detections = 1
    obj.last_seen_s = -1000.0
    MemoryBudget(object_stale_s=10.0).enforce(mem)
    assert obj.id not in mem.objects.objects
    assert obj.id not in mem.snapshots.object_ids
    assert all(obj.id not in d["objects"] for _, d in mem.places.graph.nodes(data=True))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"max_voxels": 0}, "max_voxels"),
        ({"max_places": -3}, "max_places"),
        ({"max_timeline_nodes": 2.5}, "max_timeline_nodes"),
        ({"keep_radius_m": float("nan")}, "keep_radius_m"),
        ({"keep_radius_m": -1.0}, "keep_radius_m"),
        ({"every_frames": 0}, "every_frames"),
        ({"max_trajectory_poses": 1}, "max_trajectory_poses"),
        ({"object_stale_s": "soon"}, "object_stale_s"),
        ({"every_frames": None}, "every_frames"),  # counts that cannot be off
        ({"recent_poses": None}, "recent_poses"),
        ({"object_min_detections": None}, "object_min_detections"),
    ],
)
def test_bad_budget_values_are_refused(kwargs, word) -> None:
    with pytest.raises(ValueError, match=word):
        MemoryBudget(**kwargs)


def test_budget_from_keywords_and_round_trip() -> None:
    b = MemoryBudget(max_voxels=10, every_frames=7)
    assert MemoryBudget(**b.to_dict()) == b
    mem = SceneMemory(detector="oracle", voxel_size_m=0.1, budget={"max_voxels": 10, "every_frames": 7})
    assert mem._budget == b
