"""Object tracks in the video memory, structured answers in sentences, the qa command's config and backends."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.memory.episodic_objects import ObjectTracker, box_iou
from engram.perception.detectors import register_detector
from engram.perception.segmentation import InstanceMasks
from engram.qa.answerers import (
    AnswererError,
    Evidence,
    OpenAIChatAnswerer,
    _pick_keyframes,
)
from engram.qa.video import VideoQA
from engram.types import Frame

COLOURS = {"chair": (40, 60, 220), "cup": (220, 40, 40), "potted plant": (230, 220, 30)}


@register_detector("test_colour_squares")
class ColourSquares:
    """Finds flat squares of the test colours: the label is the colour's, the embedding the mean colour."""

    name = "test_colour_squares"

    def detect(self, frame: Frame) -> InstanceMasks:
        masks, labels, embs = [], [], []
        for label, rgb in COLOURS.items():
            near = np.abs(frame.rgb.astype(np.int32) - np.array(rgb)).sum(axis=2) < 60
            n, comp = cv2.connectedComponents(near.astype(np.uint8))
            for c in range(1, n):
                m = comp == c
                if m.sum() >= 20:
                    masks.append(m)
                    labels.append(label)
                    embs.append(np.array(rgb, np.float32) / 255.0)
        if not masks:
            return InstanceMasks.empty(frame.height, frame.width)
        return InstanceMasks(np.stack(masks), labels, np.full(len(labels), 0.9), np.stack(embs))


def scene(t: int) -> np.ndarray:
    """12 s: a chair and a cup (0-5 s), three cups at 3-5 s, a plant on a green floor at 6-8 s, the chair again at 9 s."""
    img = np.full((120, 160, 3), 128 if t < 6 else 0, np.uint8)
    if t >= 6:
        img[:, :, 1] = 150
    if t <= 5 or t == 9:
        img[40:90, 10 + t : 50 + t] = COLOURS["chair"]
    if t <= 5:
        img[20:35, 90:105] = COLOURS["cup"]
        if t >= 3:
            img[50:65, 90:105] = COLOURS["cup"]
            img[80:95, 120:135] = COLOURS["cup"]
    if 6 <= t <= 8:
        img[30:80, 70:110] = COLOURS["potted plant"]
    return img


def frames() -> list[Frame]:
    return [Frame(index=t, timestamp_s=float(t), rgb=scene(t)) for t in range(12)]


@pytest.fixture
def video_dir(tmp_path: Path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for t in range(12):
        cv2.imwrite(str(d / f"{t:04d}.png"), scene(t)[:, :, ::-1])
    return d


def build(tmp_path: Path, **kw) -> VideoQA:
    return VideoQA.build_from_frames(
        frames(), tmp_path / "mem", source_id="squares", image_encoder=None, text_encoder="hash",
        detector="test_colour_squares", progress=False, **kw,
    )  # fmt: skip


def test_box_iou_invariants():
    a = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    iou = box_iou(a, a)
    assert np.allclose(np.diag(iou), 1.0) and iou[0, 1] == 0.0
    assert box_iou(a[:1], np.array([[0.0, 0.0, 0.5, 0.25]]))[0, 0] == pytest.approx(0.5)


def test_tracker_links_by_overlap_not_ids_and_ends_after_a_gap():
    trk = ObjectTracker(max_gap_s=2.0)
    box = np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.8, 0.8]])
    emb = np.eye(2, 4, dtype=np.float32)
    a = trk.update(0.0, ["cup", "cup"], box, np.array([0.9, 0.9]), emb)
    # listed the other way round and shifted a little: each keeps its own track
    b = trk.update(1.0, ["cup", "cup"], box[::-1] + 0.02, np.array([0.9, 0.9]), emb[::-1])
    assert b == a[::-1]
    c = trk.update(5.0, ["cup"], box[:1], np.array([0.9]))  # after a gap longer than max_gap_s: a new track
    assert c[0] not in a and len(trk) == 3
    assert trk.most_at_once(["cup"]) == (2, 0.0)
    with pytest.raises(ValueError):
        trk.update(6.0, ["cup"], np.array([[0.0, 0.0, np.nan, 1.0]]), np.array([0.5]))
    assert len(trk.frame_counts) == 3  # the bad call changed nothing


def test_tracks_in_the_timeline_survive_save_and_resume(tmp_path):
    qa = build(tmp_path)
    objs = qa.memory.objects
    assert set(objs.labels()) == {"chair", "cup", "potted plant"}
    assert objs.most_at_once(["cup"])[0] == 3
    chair_last = max(t.last_s for t in objs.of_labels(["chair"]))
    assert chair_last == 9.0
    loaded = VideoQA.load(tmp_path / "mem")
    assert len(loaded.memory.objects) == len(objs)
    assert [t.to_json() for t in loaded.memory.objects.tracks.values()] == [t.to_json() for t in objs.tracks.values()]
    for (
        tid,
        t,
    ) in objs.tracks.items():  # appearance kept to within 1 % cosine (stored as int8)
        assert float(loaded.memory.objects.tracks[tid].embedding @ t.embedding) > 0.99
    # an event's description names the detected objects, so text retrieval finds them too
    assert any("potted plant" in n.description for n in loaded.memory.nodes(0))


@pytest.mark.parametrize(
    ("question", "expect"),
    [
        ("How many cups are there?", "3 — I saw at most 3 cups at once"),
        ("When did I last see the chair?", "I last saw the chair at 00:09"),
        ("When did I first see the plant?", "I first saw the plant at 00:06"),
        ("Which came first, the plant or the chair?", "The chair came first"),
        ("Did I see a dog?", "No, I did not see any dog"),
        ("Did I see a cup?", "Yes, I saw the cup from 00:00 to 00:05"),
    ],
)
def test_offline_answers_are_sentences_from_tracks(tmp_path, question, expect):
    qa = build(tmp_path)
    ans = qa.ask(question)
    assert ans.text.startswith(expect), ans.text
    assert "Evidence:" in ans.text and "scene:" not in ans.text.split("Evidence:")[0]


def test_structured_answers_pick_the_option(tmp_path):
    qa = build(tmp_path)
    ans = qa.ask("How many cups are there?", options=["one", "two", "three", "five"])
    assert ans.choice_index == 2
    ans = qa.ask("When did I last see the chair?", options=["00:02", "00:05", "00:09"])
    assert ans.choice_index == 2


def test_unrecognised_question_says_it_cannot_tell(tmp_path):
    qa = build(tmp_path)
    ans = qa.ask("why is the floor green")
    assert ans.text.startswith("I can't tell from what I saw") and not ans.enough_evidence


def test_keyframes_prefiltered_to_the_fewest_that_cover_the_evidence():
    img = np.zeros((8, 8, 3), np.uint8)
    ev = [
        Evidence("a", (0.0, 10.0), images=[img, img], meta={"keyframe_times_s": [2.0, 8.0]}),
        Evidence("b", (1.0, 3.0), images=[img], meta={"keyframe_times_s": [1.5]}),
        Evidence("c", (20.0, 25.0), images=[img], meta={"keyframe_times_s": [22.0]}),
    ]
    picked = _pick_keyframes(ev, max_images=4)
    assert [j for j, _ in picked] == [0, 2]  # a's frame at 2 s shows b's span too


def test_cli_build_uses_the_shipped_config_with_overrides(tmp_path, video_dir):
    from engram.cli import main

    out = tmp_path / "cli_mem"
    rc = main(["qa", "build", str(video_dir), "--out", str(out), "qa.image_encoder=null", "qa.text_encoder=hash",
               "qa.detector=test_colour_squares", "qa.progress=false", "qa.sample_fps=2"])  # fmt: skip
    assert rc == 0
    info = VideoQA.load(out).info
    assert info["memory_options"]["boundary_threshold"] == 0.35  # from engram/configs/qa/video.yaml
    assert info["memory_options"]["sample_fps"] == 2.0  # the override
    assert info["detector"] == "test_colour_squares"


def test_cli_answerer_flags(tmp_path, capsys):
    from engram.cli import main

    build(tmp_path)
    assert main(["qa", "ask", str(tmp_path / "mem"), "how many cups?"]) == 0
    out = capsys.readouterr().out
    assert "answer: 3 — I saw at most 3 cups" in out
    # the evidence the answer quotes is listed once, under "evidence:", not again on the answer's line
    answer_line = next(line for line in out.splitlines() if line.startswith("answer: "))
    assert "Evidence:" not in answer_line and "\nevidence:\n  object tracks: 3" in out
    # transformers without a model folder: a clear error, not a TypeError
    assert (
        main(
            [
                "qa",
                "ask",
                str(tmp_path / "mem"),
                "how many cups?",
                "--answerer",
                "transformers",
            ]
        )
        == 2
    )
    assert "--model PATH" in capsys.readouterr().err


class _Handler(http.server.BaseHTTPRequestHandler):
    reply = b"{}"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _store_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_malformed_server_reply_names_url_and_model_and_leaves_memory(tmp_path, server):
    qa = build(tmp_path)
    before = _store_bytes(tmp_path / "mem")
    _Handler.reply = b"{not json"
    url = f"http://127.0.0.1:{server.server_port}/v1"
    backend = OpenAIChatAnswerer(base_url=url, model="tiny-vlm", timeout_s=5.0)
    with pytest.raises(AnswererError, match=r"127\.0\.0\.1.*'tiny-vlm'.*not JSON"):
        VideoQA.load(tmp_path / "mem").ask("why is the floor green", answerer=backend)
    assert _store_bytes(tmp_path / "mem") == before
    del qa


def test_captioner_failure_mid_build_resumes(tmp_path, server):
    from engram.qa.captioners import OpenAICaptioner

    url = f"http://127.0.0.1:{server.server_port}/v1"
    calls = {"n": 0}

    class Flaky:
        def caption_batch(self, keyframes):
            calls["n"] += 1
            if calls["n"] >= 2:
                raise AnswererError("server went away")
            return [f"caption {i}" for i in range(len(keyframes))]

    with pytest.raises(AnswererError, match="run the build again"):
        VideoQA.build_from_frames(
            frames(), tmp_path / "mem", source_id="squares", image_encoder=None, text_encoder="hash",
            captioner=Flaky(), progress=False, memory_options={"level_spans_s": [1.0, 60.0]},
        )  # fmt: skip
    part = VideoQA.load(tmp_path / "mem").memory
    captioned = [n for n in part.nodes(0) if n.caption]
    assert 0 < len(captioned) < len(part.nodes(0))
    # a real OpenAI-compatible reply through the HTTP captioner finishes the rest on the next build
    _Handler.reply = json.dumps({"choices": [{"message": {"content": "A kitchen with a red cup."}}]}).encode()
    cap = OpenAICaptioner(base_url=url, model="tiny-vlm", workers=2)
    qa = VideoQA.build_from_frames(
        frames(), tmp_path / "mem", source_id="squares", image_encoder=None, text_encoder="hash",
        captioner=cap, progress=False, memory_options={"level_spans_s": [1.0, 60.0]},
    )  # fmt: skip
    nodes = qa.memory.nodes(0)
    assert all(n.caption for n in nodes if n.keyframes)
    assert [n.caption for n in nodes[: len(captioned)]] == [n.caption for n in captioned]  # earlier ones kept
    assert "red cup" in VideoQA.load(tmp_path / "mem").memory.nodes(0)[-1].description


def test_cli_build_with_each_shipped_captioner(tmp_path, video_dir, server, capsys):
    """engram/configs/qa/captioner/*.yaml through `engram qa build --captioner NAME`."""
    from engram.cli import main

    _Handler.reply = json.dumps({"choices": [{"message": {"content": "A kitchen with a red cup."}}]}).encode()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    fast = ["qa.image_encoder=null", "qa.text_encoder=hash", "qa.detector=null", "qa.progress=false"]
    out = tmp_path / "captioned"
    rc = main(["qa", "build", str(video_dir), "--out", str(out), "--captioner", "openai", "--base-url", url,
               "--model", "tiny-vlm", *fast])  # fmt: skip
    assert rc == 0
    nodes = [n for n in VideoQA.load(out).memory.nodes(0) if n.keyframes]
    assert nodes and all("red cup" in n.description for n in nodes)
    capsys.readouterr()
    # transformers without a model folder: a clear error naming the flag, and nothing built
    rc = main(["qa", "build", str(video_dir), "--out", str(tmp_path / "none"), "--captioner", "transformers", *fast])
    assert rc == 2 and "--model PATH" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_ask_over_a_scene_memory(tmp_path, box_renderer):
    import importlib.util

    from engram.qa.ask import ask_path

    spec = importlib.util.spec_from_file_location("embodied_cases", Path(__file__).with_name("test_embodied.py"))
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    mem, _ = cases.build(box_renderer, [-60, -40, -20, 0, 20, 40])
    mem.save(str(tmp_path / "scene"))
    out = ask_path(tmp_path / "scene", "How many chairs are there?")
    assert out.startswith("answer:") and "2" in out.splitlines()[0]
    out = ask_path(tmp_path / "scene", "what did I see at 0:02?")
    assert out.startswith("answer: At 00:0")


def test_answers_are_scored_as_answers():
    from engram.qa.evaluation import score_answer

    assert score_answer("count", 3, "3 — I saw at most 3 cups at once (at 00:05). Evidence: 1 of 2")
    assert score_answer("count", 1, "At least 1: I saw what looks like a dog from 00:00 to 00:10")
    assert score_answer("count", 2, "Two people.") and not score_answer("count", 3, "I saw 2 cups at 00:03")
    assert score_answer("when", 9.6, "I last saw the dog at 00:09 (in view 00:00-00:09).")
    assert not score_answer("when", 30.0, "I last saw the dog at 00:09.")
    assert not score_answer("when", 0.0, "I can't tell from what I saw: 00:00")
    assert score_answer("yesno", False, "No, I did not see any cat.")
    assert score_answer("where", "bedroom", "In the bedroom: I saw the bed there")
    assert not score_answer("where", "bedroom", "I can't tell. Evidence: bedroom")  # evidence is not the answer
    assert score_answer("order", "kettle", "The kettle came first") and not score_answer(
        "order", "kettle", "The coffee"
    )


def test_real_clip_questions_are_well_formed(shared_data):
    doc = json.loads((Path(__file__).parents[1] / "data" / "real_clips_qa.json").read_text())
    qs = doc["questions"]
    assert len(qs) >= 30
    for q in qs:
        assert (shared_data / "videos" / q["clip"]).is_file(), q["clip"]
        assert q["kind"] in {"count", "when", "where", "yesno", "order"} and q["how"]
    assert {q["kind"] for q in qs} == {"count", "when", "where", "yesno", "order"}


def test_real_clip_answers_with_the_shipped_config(shared_data, tmp_path, capsys):
    """engram qa build / ask on a real bedroom clip: a sentence with the place, from the rgb detector's tracks."""
    from engram.cli import main

    clip = shared_data / "videos" / "bedroom.mp4"
    if not clip.is_file():
        pytest.skip("bedroom.mp4 not in the sample data")
    assert (
        main(
            [
                "qa",
                "build",
                str(clip),
                "--out",
                str(tmp_path / "bed"),
                "qa.progress=false",
            ]
        )
        == 0
    )
    assert "object tracks:" in capsys.readouterr().out
    assert main(["qa", "ask", str(tmp_path / "bed"), "Where is the bed?"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("answer: In the bedroom"), first


def test_cli_reports_a_refusing_server_by_url_and_model(tmp_path, capsys):
    import socket

    from engram.cli import main

    build(tmp_path)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = main(["qa", "ask", str(tmp_path / "mem"), "why is the floor green", "--answerer", "openai",
               "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "tiny-vlm"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 3 and f"127.0.0.1:{port}" in err and "'tiny-vlm'" in err


def test_a_batch_of_frames_costs_one_crop_classifier_call_and_detects_the_same(monkeypatch, crop_classifier):
    from engram.perception.detectors import run_detector
    from engram.perception.detectors.rgbd import RgbDetector
    from engram.qa.video import _detect_batch

    clf = crop_classifier()
    det = RgbDetector(encoder=clf, work_width_px=160)
    batch = [Frame(index=t, timestamp_s=float(t), rgb=cv2.resize(scene(t), (320, 240))) for t in range(12)]
    alone = [run_detector(det, f) for f in batch]
    per_frame_calls = [n for n in clf.calls if n]
    assert len(per_frame_calls) == sum(len(d) > 0 for d in alone) > 1
    clf.calls.clear()
    segmented: list[float] = []
    segments = RgbDetector.segments
    monkeypatch.setattr(RgbDetector, "segments", lambda self, f: segmented.append(f.timestamp_s) or segments(self, f))
    together = _detect_batch(det, batch, 320)
    assert [n for n in clf.calls if n] == [sum(per_frame_calls)]  # one call on every crop
    assert segmented == [f.timestamp_s for f in batch]  # each frame segmented once
    for a, b in zip(alone, together):
        assert a.labels == b.labels and a.label_scores == b.label_scores
        np.testing.assert_array_equal(a.masks, b.masks)
        if len(a):
            np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-6)
