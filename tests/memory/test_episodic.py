"""EpisodicMemory: events cut where the picture changes, a consistent hierarchy, search, persistence."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engram.memory.episodic import EpisodicMemory, check_encoders
from engram.types import CameraIntrinsics, Frame, Pose

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "grey": (128, 128, 128),
}


def solid(colour: str, h: int = 24, w: int = 32) -> np.ndarray:
    return np.full((h, w, 3), COLOURS[colour], np.uint8)


# colour changes at known times (seconds)
SCRIPT = [(0, "red"), (13, "green"), (30, "blue"), (47, "yellow")]


def colour_at(t: float) -> str:
    return [c for start, c in SCRIPT if start <= t][-1]


def stream(duration_s: float, fps: float = 1.0, labels_at=None):
    for i in range(int(duration_s * fps)):
        t = i / fps
        labels = labels_at(t) if labels_at else {}
        yield Frame(index=i, timestamp_s=t, rgb=solid(colour_at(t)), labels=labels)


@pytest.fixture
def build(colour_encoder, word_encoder):
    """A memory of ``duration_s`` seconds of the colour stream, with the toy encoders."""

    def make(duration_s: float = 60.0, **kw) -> EpisodicMemory:
        kw.setdefault("level_spans_s", (10.0, 30.0, 120.0))
        mem = EpisodicMemory(image_encoder=colour_encoder(), text_encoder=word_encoder(), **kw)
        for f in stream(duration_s):
            mem.add_frame(f)
        mem.finalize()
        return mem

    return make


def test_events_start_at_every_colour_change_and_hold_one_colour(build, colour_encoder):
    mem = build(60.0)
    events = mem.nodes(0)
    starts = [e.start_s for e in events]
    for t, _ in SCRIPT:
        assert t in starts, f"no event starts at the colour change at {t} s: {starts}"
    enc = colour_encoder()
    for e in events:
        assert e.duration_s <= 10.0 + 1e-9
        # one colour per event: its mean embedding is the colour's own embedding
        want = enc.encode([solid(colour_at(e.start_s))])[0]
        assert float(e.image_embedding @ want) > 0.999
        assert e.tags[0][0] == f"{colour_at(e.start_s)} wall"
    # without max length, the events are exactly the colour segments
    mem2 = EpisodicMemory(image_encoder=colour_encoder(), level_spans_s=(1000.0,))
    for f in stream(60.0):
        mem2.add_frame(f)
    mem2.finalize()
    assert [(e.start_s, e.end_s) for e in mem2.nodes(0)] == [(0, 13), (13, 30), (30, 47), (47, 60)]


def test_hierarchy_tiles_time_and_parents_cover_children(build):
    mem = build(250.0)
    for level in range(mem.num_levels):
        nodes = mem.nodes(level)
        assert nodes[0].start_s == 0.0 and nodes[-1].end_s == pytest.approx(250.0)
        for a, b in zip(nodes, nodes[1:]):
            assert a.end_s == pytest.approx(b.start_s), f"gap or overlap at level {level}"
        assert sum(n.frame_count for n in nodes) == 250
        assert all(n.closed for n in nodes)
    for level in range(1, mem.num_levels):
        for p in mem.nodes(level):
            kids = mem.children(p)
            assert kids and all(k.parent == p.node_id and k.level == level - 1 for k in kids)
            assert kids[0].start_s == p.start_s and kids[-1].end_s == p.end_s
            assert sum(k.frame_count for k in kids) == p.frame_count
            assert p.start_s + 0 <= kids[-1].start_s < p.start_s + mem.level_spans_s[level]
    assert all(n.parent is None for n in mem.nodes(mem.num_levels - 1))


def test_sampling_rate_and_constant_working_state(colour_encoder):
    mem = EpisodicMemory(image_encoder=colour_encoder(), sample_fps=1.0, level_spans_s=(10.0, 60.0))
    sampled = 0
    for i in range(30 * 40):  # 40 s at 30 fps
        t = i / 30.0
        sampled += mem.add_frame(Frame(index=i, timestamp_s=t, rgb=solid(colour_at(t))))
    assert sampled == 40 and mem.frames_sampled == 40 and mem.frames_seen == 1200
    # only the open node of each level keeps working state, with bounded keyframe candidates
    assert len(mem._acc) <= mem.num_levels
    assert all(len(a.cands) <= max(4 * mem.keyframes_per_node, 8) for a in mem._acc.values())


def test_long_stream_keeps_bounded_working_state(colour_encoder):
    mem = EpisodicMemory(image_encoder=colour_encoder(), level_spans_s=(10.0, 60.0, 600.0, 3600.0))
    colours = list(COLOURS)
    for i in range(2 * 3600):
        c = colours[(i // 7) % len(colours)]
        mem.add_frame(Frame(index=i, timestamp_s=float(i), rgb=solid(c, 8, 8)), image_embedding=None)
        if i % 600 == 0:
            assert len(mem._acc) <= mem.num_levels
            assert sum(len(a.cands) for a in mem._acc.values()) <= mem.num_levels * 8
    mem.finalize()
    assert len(mem.nodes(3)) == 2


def test_search_by_time_image_and_text(colour_encoder, word_encoder):
    def labels_at(t):
        return {1: "mug"} if 31 <= t < 36 else {2: "chair"}

    mem = EpisodicMemory(image_encoder=colour_encoder(), text_encoder=word_encoder(), level_spans_s=(10.0, 30.0, 120.0))
    for f in stream(60.0, labels_at=labels_at):
        mem.add_frame(f)
    mem.finalize()
    hit = mem.search(time_s=44.5, k=1)[0]
    assert hit.node.start_s <= 44.5 < hit.node.end_s and hit.score == 1.0
    assert mem.at_time(44.5).node_id == hit.node.node_id
    assert mem.at_time(1e6) is None
    for colour in ("green", "yellow"):
        hits = mem.search(image=solid(colour), k=3)
        assert all(colour_at(h.node.start_s) == colour for h in hits[:1])
    top_hit = mem.search(text="where did I see the mug?", k=1)[0]
    top = top_hit.node
    parent = mem.node(top.parent)
    scores = mem.score([top, parent], text="where did I see the mug?")
    assert scores[0] == pytest.approx(top_hit.score)
    assert scores[1] == pytest.approx(mem.search(text="where did I see the mug?", k=10, level=1)[0].score)
    assert top.start_s < 36 and top.end_s > 31 and "mug" in top.description
    # coarse to fine lands on the same event and respects the budget
    fine = mem.retrieve(text="mug", k=1, beam=1)[0].node
    assert fine.level == 0 and fine.node_id == top.node_id
    coarse = mem.retrieve(text="mug", k=1, budget_s=1000.0)
    assert coarse[0].node.level == mem.num_levels - 1
    with pytest.raises(ValueError, match="needs text"):
        mem.search(k=3)
    with pytest.raises(ValueError, match="9-d"):
        mem.search(image=np.ones(5), k=1)


def test_keyframes_are_jpegs_of_the_event(build):
    mem = build(60.0)
    for e in mem.nodes(0):
        assert 1 <= len(e.keyframes) <= mem.keyframes_per_node
        assert all(e.start_s <= t < e.end_s for t in e.keyframe_times_s)
        for img in mem.keyframe_images(e):
            mean = img.reshape(-1, 3).mean(axis=0)
            assert np.abs(mean - np.array(COLOURS[colour_at(e.start_s)])).max() < 8
        for b in e.keyframes:
            assert cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) is not None
    # parents reuse their children's keyframes
    child_kf = {id(b) for e in mem.nodes(0) for b in e.keyframes}
    assert all(id(b) in child_kf for p in mem.nodes(1) for b in p.keyframes)


def test_moved_object_is_recorded_where_the_move_is_seen(colour_encoder):
    k = CameraIntrinsics(fx=80.0, fy=80.0, cx=39.5, cy=29.5, width=80, height=60)
    pose = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 1.0])
    mem = EpisodicMemory(image_encoder=colour_encoder(), level_spans_s=(10.0, 60.0), move_threshold_m=0.75)
    for i in range(40):
        t = float(i)
        ins = np.zeros((60, 80), np.int32)
        # the mug sits left of centre, then 48 px further right (1.2 m at 2 m depth) from t = 25 s
        u0 = 10 if t < 25 else 58
        ins[25:35, u0 : u0 + 10] = 7
        # a long sofa seen first by its left end, later by its right end: not a move
        ins[45:55, 0:30] = 9 if t < 12 else 0
        ins[45:55, 30:60] = 9 if t >= 12 else 0
        mem.add_frame(
            Frame(
                index=i,
                timestamp_s=t,
                rgb=solid("grey", 60, 80),
                depth_m=np.full((60, 80), 2.0, np.float32),
                intrinsics=k,
                world_from_camera=pose,
                instances=ins,
                labels={7: "mug", 9: "sofa"},
            )
        )
    mem.finalize()
    moved = [e for e in mem.nodes(0) if e.moved]
    assert len(moved) == 1 and moved[0].contains(25.0) and moved[0].moved == ["mug"]
    assert "moved: mug" in moved[0].description
    assert mem.search(text="when was the mug moved", k=1)[0].node.node_id == moved[0].node_id


def test_consolidation_merges_redundant_neighbours_under_a_budget(build):
    mem = build(200.0)  # the yellow tail is cut into many identical 10 s events
    n_before = len(mem)
    assert mem.consolidate() > 0
    events = mem.nodes(0)
    for a, b in zip(events, events[1:]):
        assert a.end_s == pytest.approx(b.start_s)
        if a.parent == b.parent:
            assert colour_at(a.start_s) != colour_at(b.start_s) or float(a.image_embedding @ b.image_embedding) < 0.95
    assert sum(e.frame_count for e in events) == 200
    budget = 8
    mem.consolidate(max_nodes=budget)
    assert len(mem) <= budget < n_before
    for level in range(mem.num_levels):
        nodes = mem.nodes(level)
        assert nodes[0].start_s == 0 and nodes[-1].end_s == pytest.approx(200.0)
        for p in nodes:
            if level:
                kids = mem.children(p)
                assert kids[0].start_s == p.start_s and kids[-1].end_s == p.end_s
    # a budget given to the constructor is kept while streaming
    mem2 = build(200.0, max_nodes=12)
    assert len(mem2) <= 12


def test_save_load_round_trip_and_exact_resume(tmp_path, build, colour_encoder, word_encoder):
    full = build(150.0)
    full.save(str(tmp_path / "full"))
    loaded = EpisodicMemory.load(str(tmp_path / "full"), image_encoder=colour_encoder(), text_encoder=word_encoder())
    for level in range(full.num_levels):
        a, b = full.nodes(level), loaded.nodes(level)
        assert [(n.node_id, n.start_s, n.end_s, n.description, n.keyframes) for n in a] == [
            (n.node_id, n.start_s, n.end_s, n.description, n.keyframes) for n in b
        ]
        np.testing.assert_allclose(
            np.stack([n.image_embedding for n in a]), np.stack([n.image_embedding for n in b]), atol=2e-3
        )
    q = dict(text="yellow wall", k=3)
    assert [h.node.node_id for h in full.search(**q)] == [h.node.node_id for h in loaded.search(**q)]

    # interrupted at 70 s, saved, loaded, continued: the same timeline as one pass
    part = EpisodicMemory(
        image_encoder=colour_encoder(), text_encoder=word_encoder(), level_spans_s=(10.0, 30.0, 120.0)
    )
    frames = list(stream(150.0))
    for f in frames[:70]:
        part.add_frame(f)
    part.save(str(tmp_path / "part"))
    resumed = EpisodicMemory.load(str(tmp_path / "part"), image_encoder=colour_encoder(), text_encoder=word_encoder())
    assert resumed.last_time_s == 69.0
    for f in frames[70:]:
        resumed.add_frame(f)
    resumed.finalize()
    for level in range(full.num_levels):
        assert [(n.start_s, n.end_s, n.frame_count, len(n.keyframes)) for n in resumed.nodes(level)] == [
            (n.start_s, n.end_s, n.frame_count, len(n.keyframes)) for n in full.nodes(level)
        ]


def test_other_encoders_are_a_clear_error(tmp_path, build, word_encoder):
    mem = build(20.0)
    mem.save(str(tmp_path / "m"))

    class Other(word_encoder):
        name = "other-words"
        dim = 32

    with pytest.raises(ValueError, match="built with text encoder 'test-words'"):
        EpisodicMemory.load(str(tmp_path / "m"), text_encoder=Other())
    with pytest.raises(ValueError, match="image encoder"):
        check_encoders(mem.encoder_info(), Other(), None)


def test_bad_input_raises_and_leaves_the_memory_unchanged(colour_encoder):
    mem = EpisodicMemory(level_spans_s=(10.0, 60.0))
    enc = colour_encoder()
    for f in stream(20.0):
        mem.add_frame(f, image_embedding=enc.encode([f.rgb])[0])
    before = (len(mem), mem.frames_seen, mem.last_time_s, [(n.start_s, n.frame_count) for n in mem.nodes(0)])
    with pytest.raises(ValueError, match="back in time"):
        mem.add_frame(Frame(index=99, timestamp_s=5.0, rgb=solid("red")))
    with pytest.raises(ValueError, match="9-d"):
        mem.add_frame(Frame(index=99, timestamp_s=30.0, rgb=solid("red")), image_embedding=np.ones(4))
    with pytest.raises(ValueError, match="not finite"):
        mem.add_frame(Frame(index=99, timestamp_s=30.0, rgb=solid("red")), image_embedding=np.full(9, np.nan))
    with pytest.raises(ValueError, match="probability"):
        mem.add_frame(Frame(index=99, timestamp_s=30.0, rgb=solid("red")), np.ones(9), tags=[("x", -1.0)])
    assert before == (len(mem), mem.frames_seen, mem.last_time_s, [(n.start_s, n.frame_count) for n in mem.nodes(0)])
    with pytest.raises(ValueError, match="no image_encoder"):
        mem.add_frame(Frame(index=99, timestamp_s=30.0, rgb=solid("red")))  # 9-d memory, no encoder given
    with pytest.raises(ValueError, match="level_spans_s"):
        EpisodicMemory(level_spans_s=(60.0, 10.0))
    mem.finalize()
    with pytest.raises(ValueError, match="finalized"):
        mem.add_frame(Frame(index=100, timestamp_s=100.0, rgb=solid("red")))


def test_frames_without_embeddings_use_the_builtin_thumbnail_embedding(tmp_path, colour_encoder):
    mem = EpisodicMemory(level_spans_s=(1000.0,))  # no encoders at all, as in a bare robot run
    for f in stream(60.0):
        mem.add_frame(f)
    mem.finalize()
    assert [e.start_s for e in mem.nodes(0)] == [t for t, _ in SCRIPT]
    assert mem.encoder_info()["image_encoder"] == "builtin-thumbnail"
    mem.save(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="built with image encoder 'builtin-thumbnail'"):
        EpisodicMemory.load(str(tmp_path / "m"), image_encoder=colour_encoder())
    hit = EpisodicMemory.load(str(tmp_path / "m")).search(image=solid("blue"), k=1)[0]
    node, score = hit  # hits unpack as (node, score)
    assert score == hit.score
    assert node.start_s == 30.0 and node.time_span_s == (30.0, 47.0) and node.id == node.node_id


def test_search_while_streaming_sees_the_open_event(colour_encoder, word_encoder):
    mem = EpisodicMemory(image_encoder=colour_encoder(), text_encoder=word_encoder(), level_spans_s=(1000.0, 5000.0))
    for f in stream(20.0, labels_at=lambda t: {3: "kettle"} if t >= 15 else {}):
        mem.add_frame(f)
    hit = mem.search(text="kettle", k=1)[0]
    assert not hit.node.closed and hit.node.start_s == 13.0 and "kettle" in hit.node.description
    assert hit.score > 0.9  # embedding and exact word both match
    assert mem.retrieve(text="kettle", k=1)[0].node.node_id == hit.node.node_id
