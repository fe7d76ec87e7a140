"""Embodied QA answers structured questions exactly from a memory of a known scene."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram.memory.scene import SceneMemory
from engram.qa.embodied import NOT_OBSERVED, EmbodiedQA
from engram.types import CameraIntrinsics, Frame, Pose

K = CameraIntrinsics(fx=120.0, fy=120.0, cx=79.5, cy=59.5, width=160, height=120)
R0 = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)

BOXES = {  # id: (label, lo, hi)
    1: ("mug", (2.0, -0.3, 0.0), (2.2, -0.1, 0.2)),
    2: ("chair", (2.0, 0.1, 0.0), (2.4, 0.5, 0.8)),
    3: ("chair", (2.6, 1.4, 0.0), (3.0, 1.8, 0.8)),
    4: ("plant", (1.5, -1.9, 0.0), (1.8, -1.6, 0.9)),
}


def camera(yaw_deg, pitch_deg=25.0) -> Pose:
    p = math.radians(pitch_deg)
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    body = Pose.from_xyz_yaw(0.0, 0.0, 0.0, math.radians(yaw_deg))
    return Pose.from_rt(body.rotation @ ry @ R0, [0.0, 0.0, 1.2])


def build(render_boxes, yaws):
    mem = SceneMemory(detector="oracle", voxel_size_m=0.05)
    labels = {i: lab for i, (lab, _, _) in BOXES.items()}
    seen_at = {}
    for k, yaw in enumerate(yaws):
        d, ins = render_boxes([(i, lo, hi) for i, (_, lo, hi) in BOXES.items()], camera(yaw), K)
        present = {int(i) for i in np.unique(ins) if i in labels}
        f = Frame(
            index=k,
            timestamp_s=0.5 * k,
            rgb=np.full((K.height, K.width, 3), 90, np.uint8),
            depth_m=d,
            intrinsics=K,
            world_from_camera=camera(yaw),
            instances=ins,
            labels={i: labels[i] for i in present},
        )
        mem.integrate(f)
        for i in present:
            if (ins == i).sum() >= 40:
                seen_at[labels[i]] = 0.5 * k
    mem.finalize()
    return mem, seen_at


def test_structured_answers(box_renderer):
    mem, seen_at = build(box_renderer, [-60, -40, -20, 0, 20, 40])
    qa = EmbodiedQA(mem)
    a = qa.ask("Where is the mug?")
    assert a.category == "where" and a.enough_evidence
    assert np.linalg.norm(np.asarray(a.value["position"][:2]) - [2.1, -0.2]) < 0.15
    assert a.object_ids and a.snapshot_frames  # evidence comes with it
    assert qa.ask("How many chairs are there?").value == 2
    assert qa.ask("how many plants").value == 1
    near = qa.ask("What is next to the mug?")
    assert "chair" in near.value and "plant" not in near.value
    last = qa.ask("When did I last see the plant?")
    assert last.value == pytest.approx(seen_at["plant"], abs=0.51)
    amb = qa.ask("Where is the chair?")
    assert len(amb.candidates) == 2  # ambiguous: both chairs are listed
    assert qa.ask("What changed?").value == []


def test_unseen_and_empty(box_renderer):
    empty = EmbodiedQA(SceneMemory(detector="oracle", voxel_size_m=0.05))
    a = empty.ask("Where is the mug?")
    assert NOT_OBSERVED in a.text and not a.enough_evidence
    mem, _ = build(box_renderer, [-60, -40])
    qa = EmbodiedQA(mem)
    assert not qa.ask("Where is the giraffe?").enough_evidence
    assert qa.ask("How many giraffes are there?").value == 0
    with pytest.raises(ValueError):
        qa.ask("   ")


def test_ambiguous_questions_name_every_instance(box_renderer):
    # two chairs: where / which room / near / last seen must name both, each with its own facts
    mem, seen_at = build(box_renderer, [-60, -40, -20, 0, 20, 40, 60])
    qa = EmbodiedQA(mem)
    chairs = qa.match_objects("chair")
    assert len(chairs) == 2
    ids = {int(o.id) for o in chairs}
    for q in (
        "Where is the chair?",
        "Which room is the chair in?",
        "What is next to the chair?",
        "When did I last see the chair?",
    ):
        a = qa.ask(q)
        assert {c["id"] for c in a.candidates} == ids, q
        for i in ids:
            assert f"chair {i} " in a.text, (q, a.text)
    near = qa.ask("What is next to the chair?")
    by_id = {c["id"]: c["near"] for c in near.candidates}
    # the chair beside the mug has the mug next to it; the far chair does not (1.5 m away)
    beside = min(chairs, key=lambda o: abs(float(o.centroid[1]) - 0.3))
    far = max(chairs, key=lambda o: float(o.centroid[1]))
    assert "mug" in by_id[int(beside.id)] and "mug" not in by_id[int(far.id)]
    assert set(near.value) == set(by_id[int(beside.id)]) | set(by_id[int(far.id)])
    last = qa.ask("When did I last see the chair?")
    assert last.value == pytest.approx(max(c["last_seen_s"] for c in last.candidates), abs=0.05)
    assert last.value == pytest.approx(seen_at["chair"], abs=0.51)
    # one instance: the answer is about that one object, no candidate list
    single = qa.ask("What is next to the mug?")
    assert single.candidates == [] and "chair" in single.value


def test_a_name_nothing_carries_is_not_observed_but_names_the_closest_match(box_renderer):
    mem, _ = build(box_renderer, [-60, -40, -20, 0, 20, 40])
    qa = EmbodiedQA(mem)
    chairs = {o.id for o in mem.objects.objects.values() if o.label == "chair"}
    # a bench is no chair (the answer's value stays empty), but a chair is the related thing a user may mean
    for q in ("Where is the bench?", "Which room is the bench in?", "What is next to the bench?"):
        a = qa.ask(q)
        assert NOT_OBSERVED in a.text and a.value is None and not a.enough_evidence, (q, a)
        assert "closest match is the chair" in a.text and len(a.candidates) == 1, (q, a)
        assert a.candidates[0]["id"] in chairs and not a.object_ids
    count = qa.ask("How many benches are there?")
    assert count.value == 0 and count.text.startswith("0 by that name") and count.candidates[0]["id"] in chairs
    # nothing near in meaning: no hint
    far = qa.ask("Where is the giraffe?")
    assert far.text == f"giraffe: {NOT_OBSERVED}" and not far.candidates
    assert qa.ask("How many giraffes are there?").text == "0"
    # hints off
    off = EmbodiedQA(mem, hint_min_score=None).ask("Where is the bench?")
    assert off.text == f"bench: {NOT_OBSERVED}" and not off.candidates
    with pytest.raises(ValueError, match="hint_min_score"):
        EmbodiedQA(mem, hint_min_score=1.5)
