"""VideoQA: build from a real video file, resume, load, retrieve by text / time / image, ask."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.memory.episodic import EpisodicMemory
from engram.qa.ask import ask_path
from engram.qa.video import VideoQA, build_command, parse_question, parse_time_s
from engram.types import Frame

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
# colour changes at known times (seconds); the video is 90 s long
SCRIPT = [(0, "red"), (23, "green"), (41, "blue"), (64, "yellow")]
DURATION_S = 90


def colour_at(t: float) -> str:
    return [c for start, c in SCRIPT if start <= t][-1]


class RecordingAnswerer:
    name = "recording"

    def __init__(self):
        self.calls = []

    def answer(self, question, evidence, options=None):
        self.calls.append((question, evidence, options))
        return {"text": evidence[0].text if evidence else "", "evidence": evidence}


class SilentServer:
    name = "silent-server"

    def answer(self, question, evidence, options=None):
        raise TimeoutError("no reply within 2.0 s from http://127.0.0.1:9/v1/chat/completions")


def frame_rgb(t: float) -> np.ndarray:
    img = np.full((120, 160, 3), COLOURS[colour_at(t)], np.uint8)
    cv2.putText(img, f"{t:.0f}", (5, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)  # a little texture
    return img


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 90 s, 4 fps MJPG video whose colour changes at the SCRIPT times."""
    path = tmp_path_factory.mktemp("video") / "colours.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (160, 120))
    assert writer.isOpened()
    for i in range(DURATION_S * 4):
        writer.write(frame_rgb(i / 4.0)[:, :, ::-1].copy())
    writer.release()
    return path


@pytest.fixture
def encoders(colour_encoder, word_encoder):
    """The toy encoders as keyword arguments; ``encoders(fail_at_call=7)`` stops a build."""

    def make(**kw):
        return dict(image_encoder=colour_encoder(noun="balloon", tag_prob=0.8, **kw), text_encoder=word_encoder())

    return make


OPTS = dict(memory_options={"level_spans_s": [10.0, 30.0, 60.0]}, progress=False, batch_size=8)


def tree_digest(path: Path) -> dict[str, str]:
    root = path.resolve()
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def spans(qa: VideoQA, level: int = 0):
    return [(n.start_s, n.end_s, n.frame_count) for n in qa.memory.nodes(level)]


def test_build_from_video_then_load_and_retrieve(video, tmp_path, encoders):
    qa = VideoQA.build(video, tmp_path / "mem", sample_fps=1.0, **encoders(), **OPTS)
    assert qa.report.complete and qa.report.frames_sampled == DURATION_S
    starts = [n.start_s for n in qa.memory.nodes(0)]
    assert all(t in starts for t, _ in SCRIPT)

    loaded = VideoQA.load(tmp_path / "mem", **encoders())
    assert spans(loaded) == spans(qa)
    # by time: "around 00:50" lies in the blue segment
    hits = loaded.retrieve_hits("what happened around 00:50?", k=3)
    assert hits[0].node.contains(50.0)
    # by text: the tags name the colours
    hits = loaded.retrieve_hits("when did I see the yellow balloon?", k=3)
    assert all(colour_at(h.node.start_s) == "yellow" for h in hits)
    # first / last: the first green event starts at the colour change
    assert loaded.retrieve_hits("where did I first see the green balloon?", k=1)[0].node.start_s == 23.0
    last = loaded.retrieve_hits("where did I last see the green balloon?", k=1)[0].node
    assert last.end_s == 41.0
    # right after the blue balloon comes yellow
    after = loaded.retrieve_hits("what did I see right after the blue balloon?", k=1)[0].node
    assert after.start_s == 64.0
    # by image
    hits = loaded.retrieve_hits(image=frame_rgb(30.0), k=2)
    assert all(colour_at(h.node.start_s) == "green" for h in hits)


def test_resume_after_interruption_gives_the_same_memory(video, tmp_path, encoders):
    full = VideoQA.build(video, tmp_path / "full", **encoders(), **OPTS)
    with pytest.raises(KeyboardInterrupt):
        VideoQA.build(video, tmp_path / "part", checkpoint_every_s=20.0, **encoders(fail_at_call=7), **OPTS)
    stopped = VideoQA.load(tmp_path / "part")
    assert not stopped.info["finished"] and 40 <= stopped.memory.last_time_s < DURATION_S - 1
    enc = encoders()
    resumed = VideoQA.build(video, tmp_path / "part", **enc, **OPTS)
    assert resumed.report.resumed_from_s == stopped.memory.last_time_s
    assert enc["image_encoder"].calls < full.report.frames_sampled / 8  # only the rest was encoded
    for level in range(3):
        assert spans(resumed, level) == spans(full, level)
    # a finished memory is returned as it is
    again = VideoQA.build(video, tmp_path / "part", **encoders(fail_at_call=1), **OPTS)
    assert spans(again) == spans(full)
    with pytest.raises(ValueError, match="other settings"):
        VideoQA.build(video, tmp_path / "part", sample_fps=2.0, **encoders(), **OPTS)


def test_truncated_video_builds_what_it_can_and_says_where(video, tmp_path, encoders):
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="STOPPED EARLY"):
        qa = VideoQA.build(cut, tmp_path / "mem", **encoders(), **OPTS)
    r = qa.report
    assert not r.complete and r.stopped_at_s is not None and 20 <= r.stopped_at_s <= 60
    assert qa.memory.nodes(0)[-1].end_s <= r.stopped_at_s + 1.0
    assert "STOPPED EARLY" in r.summary()
    assert VideoQA.load(tmp_path / "mem").report.stopped_at_s == r.stopped_at_s
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="could not be opened"):
        VideoQA.build(junk, tmp_path / "junk", **encoders(), **OPTS)


def test_other_encoders_are_refused(video, tmp_path, encoders, word_encoder):
    VideoQA.build(video, tmp_path / "mem", **encoders(), **OPTS)

    class OtherWords(word_encoder):
        name = "other-words"
        dim = 32

    with pytest.raises(ValueError, match="built with text encoder 'test-words'.*'other-words'"):
        VideoQA.load(tmp_path / "mem", text_encoder=OtherWords())


def test_ask_hands_evidence_to_the_answerer_and_a_silent_server_times_out(video, tmp_path, encoders):
    pytest.importorskip("engram.qa.answerers")
    qa = VideoQA.build(video, tmp_path / "mem", **encoders(), **OPTS)
    rec = RecordingAnswerer()
    out = qa.ask("what happened around 1:10?", options=["red", "green", "blue", "yellow"], answerer=rec)
    (question, evidence, options) = rec.calls[0]
    assert question == "what happened around 1:10?"
    assert options == ["red", "green", "blue", "yellow"]
    assert evidence[0].time_span_s[0] <= 70.0 < evidence[0].time_span_s[1]
    assert "yellow balloon" in evidence[0].text and evidence[0].images
    assert out["evidence"] is evidence
    before = tree_digest(tmp_path / "mem")
    with pytest.raises(TimeoutError, match="did not answer in time.*unchanged"):
        qa.ask("what happened around 1:10?", answerer=SilentServer())
    assert tree_digest(tmp_path / "mem") == before


def test_offline_answerer_and_a_real_silent_http_server(video, tmp_path, encoders):
    answerers = pytest.importorskip("engram.qa.answerers")
    qa = VideoQA.build(video, tmp_path / "mem", **encoders(), **OPTS)
    offline = answerers.build_answerer("offline", text_encoder=qa.memory.text_encoder)
    ans = qa.ask("what happened around 1:10?", options=["red", "green", "blue", "yellow"], answerer=offline)
    assert ans.choice_index == 3  # the yellow segment runs from 64 s to the end

    # a server that accepts the connection and never replies
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def hold():
        conn, _ = listener.accept()
        stop.wait(10)
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    silent = answerers.build_answerer("openai", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=0.5, api_key_env=None)
    before = tree_digest(tmp_path / "mem")
    try:
        with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}.*unchanged"):
            qa.ask("what happened around 1:10?", answerer=silent)
    finally:
        stop.set()
        listener.close()
    assert tree_digest(tmp_path / "mem") == before


def test_cli_bodies(video, tmp_path):
    pytest.importorskip("engram.qa.answerers")
    from engram.perception.encoders import available_image_encoders, available_text_encoders

    if "color_histogram" not in available_image_encoders() or "hash" not in available_text_encoders():
        pytest.skip("the dependency-free registry encoders are not available")
    names = dict(image_encoder="color_histogram", text_encoder="hash")
    text = build_command(str(video), str(tmp_path / "mem"), **names, **OPTS)
    assert "complete" in text and "level 0:" in text and "MB" in text
    # the command reloads the memory with the encoders it was built with
    out = ask_path(str(tmp_path / "mem"), "what happened around 1:10?", options=["early", "late"])
    assert out.startswith("answer:") and "choice:" in out and "evidence:" in out and "01:" in out


def test_question_parsing():
    assert parse_time_s("what happened around 12:30?") == 750.0
    assert parse_time_s("at 1:02:03 exactly") == 3723.0
    assert parse_time_s("after 2 min 5 s") == 125.0
    assert parse_time_s("1.5 hours in") == 5400.0
    assert parse_time_s("where is the mug") is None
    p = parse_question("what happened around 12:30?")
    assert (p.text, p.time_s) == (None, 750.0)
    p = parse_question("Where did I last see the mug?")
    assert p.order == "last" and "mug" in p.text and p.time_s is None
    p = parse_question("What did I see right after the red chair?")
    assert p.relation == "after" and "chair" in p.text
    with pytest.raises(ValueError, match="non-empty"):
        parse_question("  ")


def test_build_from_frames_stream(tmp_path, encoders):
    frames = (Frame(index=i, timestamp_s=float(i), rgb=frame_rgb(float(i))) for i in range(DURATION_S))
    qa = VideoQA.build_from_frames(frames, tmp_path / "mem", source_id="synthetic-colours", **encoders(), **OPTS)
    assert qa.report.complete and [n.start_s for n in qa.memory.nodes(0)][:3] == [0.0, 10.0, 20.0]


def test_shipped_config_builds_a_memory(video, tmp_path, colour_encoder, word_encoder):
    from engram.config import compose, instantiate, to_plain

    cfg = compose("qa/video").qa
    plain = to_plain(cfg)
    EpisodicMemory(**plain["memory_options"])  # every memory option is a real setting
    cfg.image_encoder = None
    cfg.text_encoder = None
    qa = instantiate(
        cfg,
        video_path=str(video),
        out_dir=str(tmp_path / "mem"),
        image_encoder=colour_encoder(),
        text_encoder=word_encoder(),
        progress=False,
    )
    assert qa.report.complete and len(qa.memory.nodes(3)) == 1
