"""Long-video QA benchmark: build speed, temporal grounding, query time and disk use.

A long video is recorded once from the embedded world (an agent walking
through every room again and again, looking around in each, while scripted
dynamics move small objects and a person walks), then cached under
``runs/bench_video_qa/`` (git-ignored): an MPEG-4 video at 320x240 plus the
simulator's depth, instance masks and poses at the sampled times, and the
ground truth (room per frame, visible objects per frame, relocation times).

Questions come from that ground truth, four kinds:
  moved  "when was the X moved?"         span: last sighting before the move .. first sighting after
  room   "which room was I in at mm:ss?" span: the stay in the room around that time
  after  "what did I see right after the X?"  span: 15 s after the first sighting of X ends
  last   "where did I last see the X?"   span: the last sighting of X
Only objects whose label is unique in the apartment are asked about. A sighting
is a run of frames where the object covers >= 0.2 % of the image, lasting >= 1 s
(gaps up to 3 s bridged).

Measured:
  build_x_realtime  video seconds per CPU second (time.process_time) of `VideoQA.build_from_frames`
                    (decode + offline encoders + detector + memory + checkpoints), 1 fps sampling
  temporal_recall5  share of questions whose ground-truth span overlaps one of
                    the top-5 retrieved spans
  query_ms          median time of `VideoQA.retrieve_hits` (text encoding included,
                    answerer excluded) on a 10-hour memory made by replaying the
                    recording's frames with shifted times
  mb_per_hour       disk size of that 10-hour memory per hour of video

The peer is the usual long-video baseline: uniform 10 s chunks (no event
cutting, no move detection, one level) searched flat with the question text
(or by time when the question names one), on the same frames and embeddings.

Run:  python benchmarks/video_qa.py [--minutes 31] [--hours 10] [--image-encoder efficientnet_lite0] [--name-precision]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram._util import dir_size_mb, fmt_time  # noqa: E402
from engram.memory.episodic import EpisodicMemory  # noqa: E402
from engram.qa.evaluation import VideoQuestion, plural, recall_at_k  # noqa: E402
from engram.qa.video import VideoQA, _save  # noqa: E402
from engram.types import CameraIntrinsics, Frame, Pose  # noqa: E402

CACHE = ROOT / "runs" / "bench_video_qa"
SIDE_W, SIDE_H = 160, 120  # resolution of the cached depth / instance masks
MIN_AREA = 0.002  # an object is "seen" when its mask covers this share of the image
AFTER_S = 15.0  # "right after X": what was seen within this long after the first sighting of X ended


# ---------------------------------------------------------------------------
# recording


def record(out: Path, *, seed: int, duration_s: float, video_fps: float, n_moves: int) -> Path:
    """Render the long walk once; returns the folder (reused when already complete)."""
    import cv2

    from engram.sims.embedded import EmbeddedSim
    from engram.sims.embedded.scenes import WORLD_VERSION
    from engram.sims.embedded.sim import coverage_actions

    tag = f"seed{seed}_{int(duration_s)}s_{video_fps:g}fps_{n_moves}uniquemoves_v2_world{WORLD_VERSION}"
    folder = out / tag
    if (folder / "done.json").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    dt = 1.0 / video_fps
    sim = EmbeddedSim(seed=seed, width=320, height=240, time_step_s=dt, dynamics=_moves(seed, duration_s, n_moves))
    writer = cv2.VideoWriter(str(folder / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), video_fps, (320, 240))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    n_total = int(round(duration_s * video_fps))
    side_every = max(1, int(round(video_fps)))  # side data at whole seconds (the 1 fps samples)
    n_side = (n_total + side_every - 1) // side_every
    depth = np.lib.format.open_memmap(folder / "depth.npy", "w+", np.float16, (n_side, SIDE_H, SIDE_W))
    inst = np.lib.format.open_memmap(folder / "instances.npy", "w+", np.int16, (n_side, SIDE_H, SIDE_W))
    poses = np.zeros((n_side, 4, 4))
    times, rooms, visible, xy = [], [], [], []

    def actions():
        while True:  # coverage rounds, one after the other
            n = 0
            for a in coverage_actions(sim, look_around=True, max_actions=100000):
                n += 1
                yield a
            if n == 0:
                yield "turn_left"

    plan = actions()
    t0 = time.perf_counter()
    for i in range(n_total):
        frame = sim.reset() if i == 0 else sim.step(next(plan))
        writer.write(np.ascontiguousarray(frame.rgb[:, :, ::-1]))
        counts = np.bincount(frame.instances.ravel())
        vis = [int(j) for j in np.nonzero(counts >= MIN_AREA * frame.instances.size)[0] if j != 0]
        times.append(frame.timestamp_s)
        rooms.append(frame.meta.get("room"))
        visible.append(vis)
        xy.append(list(frame.meta["agent_xy_yaw"]))
        if i % side_every == 0:
            r = i // side_every
            depth[r] = cv2.resize(frame.depth_m, (SIDE_W, SIDE_H), interpolation=cv2.INTER_NEAREST)
            inst[r] = cv2.resize(frame.instances, (SIDE_W, SIDE_H), interpolation=cv2.INTER_NEAREST)
            poses[r] = frame.world_from_camera.matrix
        if (i + 1) % 500 == 0:
            print(f"  recorded {i + 1}/{n_total} frames ({time.perf_counter() - t0:.0f} s)", flush=True)
    writer.release()
    depth.flush()
    inst.flush()
    np.save(folder / "poses.npy", poses)
    spec = sim.apartment
    labels = {int(k): v for k, v in spec.labels().items()}
    if sim.person_instance_id is not None:
        labels[int(sim.person_instance_id)] = "person"
    meta = {
        "seed": seed,
        "duration_s": duration_s,
        "video_fps": video_fps,
        "side_every": side_every,
        "intrinsics": [sim.intrinsics.fx, sim.intrinsics.fy, sim.intrinsics.cx, sim.intrinsics.cy, 320, 240],
        "labels": labels,
        "furniture_or_object": {int(o.instance_id): o.kind for o in spec.all_objects()},
        "object_rooms": {int(o.instance_id): o.room for o in spec.all_objects()},
        "times": times,
        "rooms": rooms,
        "visible": visible,
        "agent_xy_yaw": xy,
        "relocations": [[r.time_s, r.instance_id] for r in sim.dynamics.relocations],
        "render_s": time.perf_counter() - t0,
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "done.json").write_text("{}")
    sim.close()
    return folder


def _moves(seed: int, duration_s: float, n_moves: int):
    """Relocations of small objects with a unique label (so questions name one object), plus a walking person."""
    import math as _m

    from engram.sims.embedded import generate_apartment
    from engram.sims.embedded.dynamics import Relocation, ScriptedDynamics

    spec = generate_apartment(seed)
    rng = np.random.default_rng(seed)
    counts = Counter(o.label for o in spec.all_objects())
    movable = [
        o for o in spec.objects if counts[o.label] == 1 and o.half_extents_m[0] < 0.2 and o.half_extents_m[1] < 0.2
    ]
    tops = [f for f in spec.furniture if f.label in ("table", "desk", "counter", "cabinet", "sink")]
    period = duration_s / (n_moves + 1)
    events = []
    for k in range(n_moves if movable and tops else 0):
        obj = movable[k % len(movable)]
        top = tops[int(rng.integers(len(tops)))]
        r = _m.hypot(obj.half_extents_m[0], obj.half_extents_m[1])
        fx, fy = max(top.half_extents_m[0] - r - 0.03, 0.0), max(top.half_extents_m[1] - r - 0.03, 0.0)
        lx, ly = rng.uniform(-fx, fx), rng.uniform(-fy, fy)
        c, s_ = _m.cos(top.yaw_rad), _m.sin(top.yaw_rad)
        pos = (
            round(top.position_m[0] + c * lx - s_ * ly, 4),
            round(top.position_m[1] + s_ * lx + c * ly, 4),
            round(top.top_z_m + obj.half_extents_m[2] + 0.001, 4),
        )
        events.append(Relocation(round((k + 1) * period, 3), obj.instance_id, pos, float(rng.uniform(-_m.pi, _m.pi))))
    person = ScriptedDynamics.random(spec, seed=seed, n_relocations=0, person=True).person
    return ScriptedDynamics(relocations=tuple(events), person=person)


class RecordedFrames:
    """Frames of a recording: RGB decoded from the video, depth / masks / pose from the cache."""

    def __init__(self, folder: Path, sample_fps: float = 1.0, time_offset_s: float = 0.0, rgb_only: bool = False):
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        self.sample_fps = sample_fps
        self.time_offset_s = time_offset_s
        self.rgb_only = rgb_only
        fx, fy, cx, cy, w, h = self.meta["intrinsics"]
        self.intrinsics = CameraIntrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=int(w), height=int(h))
        self.labels = {int(k): v for k, v in self.meta["labels"].items()}
        self.depth = np.load(folder / "depth.npy", mmap_mode="r")
        self.inst = np.load(folder / "instances.npy", mmap_mode="r")
        self.poses = np.load(folder / "poses.npy")

    def __iter__(self):
        import cv2

        from engram.sims.video import VideoSource

        every = self.meta["side_every"]
        for f in VideoSource(self.folder / "video.mp4", target_fps=self.sample_fps):
            src = int(f.meta["source_index"])
            t = src / self.meta["video_fps"] + self.time_offset_s
            if self.rgb_only or src % every:
                yield Frame(index=f.index, timestamp_s=t, rgb=f.rgb)
                continue
            r = src // every
            depth = cv2.resize(np.asarray(self.depth[r], np.float32), (320, 240), interpolation=cv2.INTER_NEAREST)
            inst = cv2.resize(np.asarray(self.inst[r], np.int16), (320, 240), interpolation=cv2.INTER_NEAREST)
            inst = inst.astype(np.int32)
            present = np.unique(inst)
            yield Frame(
                index=f.index,
                timestamp_s=t,
                rgb=f.rgb,
                depth_m=depth,
                intrinsics=self.intrinsics,
                world_from_camera=Pose(self.poses[r]),
                instances=inst,
                labels={int(i): self.labels[int(i)] for i in present if i != 0 and int(i) in self.labels},
            )


# ---------------------------------------------------------------------------
# questions from ground truth


def _intervals(
    times: list[float], present: list[bool], *, frame_s: float, max_gap_s: float = 3.0, min_len_s: float = 1.0
) -> list[tuple[float, float]]:
    """Sightings: runs of frames showing the object, gaps up to ``max_gap_s`` bridged.

    A sighting must last ``min_len_s`` (two frames at 2 fps): a single-frame
    glimpse at the edge of the view does not count as having seen something.
    """
    out: list[list[float]] = []
    for t, p in zip(times, present):
        if not p:
            continue
        if out and t - out[-1][1] <= max_gap_s:
            out[-1][1] = t
        else:
            out.append([t, t])
    return [(a, b + frame_s) for a, b in out if b + frame_s - a >= min_len_s]


def make_questions(meta: dict, *, n_per_kind: int = 15, seed: int = 0) -> list[VideoQuestion]:
    rng = np.random.default_rng(seed)
    labels = {int(k): v for k, v in meta["labels"].items()}
    counts = Counter(v for v in labels.values())
    unique = {i: v for i, v in labels.items() if counts[v] == 1 and v != "person"}
    times = meta["times"]
    vis = [set(v) for v in meta["visible"]]
    frame_s = 1.0 / meta["video_fps"]
    seen = {i: _intervals(times, [i in v for v in vis], frame_s=frame_s) for i in unique}
    end = times[-1] + 1.0 / meta["video_fps"]
    qs: list[VideoQuestion] = []

    # moved: every observed move of the object is an acceptable answer
    move_spans: dict[int, list[tuple[float, float]]] = {}
    for t_move, iid in meta["relocations"]:
        if iid not in unique:
            continue
        before = [b for a, b in seen[iid] if b <= t_move]
        after = [a for a, b in seen[iid] if a >= t_move]
        if before and after:
            move_spans.setdefault(iid, []).append((max(before), min(after) + 1.0))  # + one 1 fps sample
    for iid, spans in move_spans.items():
        qs.append(
            VideoQuestion(
                qid=f"moved{len(qs)}",
                video="embedded",
                question=f"when was the {unique[iid]} moved?",
                spans_s=spans,
                qtype="moved",
            )
        )
    qs = qs[:n_per_kind]

    # room at a time
    rooms = meta["rooms"]
    room_spans = []
    start = 0
    for j in range(1, len(rooms) + 1):
        if j == len(rooms) or rooms[j] != rooms[start]:
            room_spans.append((times[start], times[j - 1] + 1.0 / meta["video_fps"], rooms[start]))
            start = j
    for k in range(n_per_kind):
        t = float(rng.uniform(0, end))
        a, b, name = next(s for s in room_spans if s[0] <= t < s[1] or s is room_spans[-1])
        qs.append(
            VideoQuestion(
                qid=f"room{k}",
                video="embedded",
                question=f"which room was I in at {fmt_time(t)}?",
                answer=str(name),
                spans_s=[(a, b)],
                qtype="room",
            )
        )

    # right after X / last seen X
    ids = [i for i in unique if seen[i]]
    rng.shuffle(ids)
    n_after = n_last = 0
    for i in ids:
        _, first_b = seen[i][0]
        if n_after < n_per_kind and first_b + AFTER_S <= end:
            qs.append(
                VideoQuestion(
                    qid=f"after{n_after}",
                    video="embedded",
                    question=f"what did I see right after the {unique[i]}?",
                    spans_s=[(first_b, first_b + AFTER_S)],
                    qtype="after",
                )
            )
            n_after += 1
        if n_last < n_per_kind:
            a, b = seen[i][-1]
            qs.append(
                VideoQuestion(
                    qid=f"last{n_last}",
                    video="embedded",
                    question=f"where did I last see the {unique[i]}?",
                    spans_s=[(a, b)],
                    qtype="last",
                )
            )
            n_last += 1
    return qs


def make_answer_questions(meta: dict, vocabulary: set[str], *, n_per_kind: int = 15, seed: int = 0) -> list[dict]:
    """Questions scored by their answers: how many X (instances seen), which room is X in, when did I last see X.

    Only objects whose label the default detector's vocabulary has are asked about
    (a detector cannot name what it has no word for); answers come from the
    simulator's ground truth, which never enters the memory.
    """
    rng = np.random.default_rng(seed + 1)
    labels = {int(k): v for k, v in meta["labels"].items()}
    rooms = {int(k): v for k, v in meta.get("object_rooms", {}).items()}
    times = meta["times"]
    vis = [set(v) for v in meta["visible"]]
    frame_s = 1.0 / meta["video_fps"]
    seen = {i: _intervals(times, [i in v for v in vis], frame_s=frame_s) for i in labels}
    seen = {i: s for i, s in seen.items() if s}
    by_label: dict[str, list[int]] = {}
    for i in seen:
        if labels[i] in vocabulary and labels[i] != "person":
            by_label.setdefault(labels[i], []).append(i)
    names = sorted(by_label)
    rng.shuffle(names)
    out: list[dict] = []
    for name in names[:n_per_kind]:
        out.append({"kind": "count", "question": f"how many {plural(name)} are there?", "answer": len(by_label[name])})
    unique = [n for n in names if len(by_label[n]) == 1]
    for name in unique[:n_per_kind]:
        i = by_label[name][0]
        if rooms.get(i):
            out.append({"kind": "where", "question": f"which room is the {name} in?", "answer": rooms[i]})
    for name in unique[:n_per_kind]:
        i = by_label[name][0]
        out.append({"kind": "when", "question": f"when did I last see the {name}?", "answer": seen[i][-1][1] - frame_s,
                    "tolerance_s": 10.0})  # fmt: skip
    return out


def name_precision(folder: Path, detector: str, options: dict) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """How often the detector's names are right on the recording (scoring only): of its named
    detections (not "object") on the frames whose simulator masks are cached, how many cover an
    instance of that label with most of their pixels. Returns (right, named, per label)."""
    from engram.perception.detectors import build_detector
    from engram.perception.detectors.vocabulary import UNKNOWN_LABEL

    det = build_detector(detector, **options)
    right = named = 0
    per: dict[str, list[int]] = {}
    for f in RecordedFrames(folder):
        if f.instances is None:
            continue
        masks = det.detect(Frame(index=f.index, timestamp_s=f.timestamp_s, rgb=f.rgb))
        for m, label in zip(masks.masks, masks.labels):
            if label == UNKNOWN_LABEL:
                continue
            ids = np.bincount(f.instances[m].ravel())
            ids[0] = 0  # background
            truth = f.labels.get(int(ids.argmax())) if ids.max() * 2 >= m.sum() else None
            ok = truth == label
            right += ok
            named += 1
            counts = per.setdefault(label, [0, 0])
            counts[0] += ok
            counts[1] += 1
    return right, named, {k: (v[0], v[1]) for k, v in per.items()}


def score_answers(ask, questions: list[dict]) -> tuple[float, dict[str, float]]:
    """Share of right answers (`engram.qa.evaluation.score_answer`), overall and per kind."""
    from engram.qa.evaluation import score_answer

    right = [
        score_answer(q["kind"], q["answer"], ask(q["question"]), tolerance_s=q.get("tolerance_s", 10.0))
        for q in questions
    ]
    per = {}
    for kind in sorted({q["kind"] for q in questions}):
        r = [ok for ok, q in zip(right, questions) if q["kind"] == kind]
        per[kind] = sum(r) / len(r)
    return (sum(right) / len(right) if right else 0.0), per


def evaluate(retrieve, questions: list[VideoQuestion], k: int = 5) -> tuple[float, dict[str, float]]:
    spans = [[h.node.span_s for h in retrieve(q.question)[:k]] for q in questions]
    gt = [q.spans_s for q in questions]
    overall = recall_at_k(spans, gt, k=k)
    per = {}
    for kind in sorted({q.qtype for q in questions}):
        idx = [j for j, q in enumerate(questions) if q.qtype == kind]
        per[kind] = recall_at_k([spans[j] for j in idx], [gt[j] for j in idx], k=k)
    return overall, per


# ---------------------------------------------------------------------------
# encoders


class CachingImageEncoder:
    """Wraps an image encoder and keeps every embedding / tag list it returns (to replay them)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.embeddings: list[np.ndarray] = []
        self.tag_lists: list[list] = []

    def encode(self, images):
        e = np.asarray(self.inner.encode(images), np.float32)
        self.embeddings.extend(e)
        return e

    def tags(self, images, k=5):
        t = self.inner.tags(images, k=k)
        self.tag_lists.extend(t)
        return t

    def encode_with_tags(self, images, k=5):
        """One forward pass for both, as the build uses it (without this the build ran the encoder twice)."""
        if not hasattr(self.inner, "encode_with_tags"):
            return self.encode(images), self.tags(images, k=k)
        e, t = self.inner.encode_with_tags(images, k=k)
        e = np.asarray(e, np.float32)
        self.embeddings.extend(e)
        self.tag_lists.extend(t)
        return e, t


def repeat_memory(mem: EpisodicMemory, reps: int, period_s: float) -> EpisodicMemory:
    """A finished memory repeated ``reps`` times, each copy shifted by ``period_s`` (keyframes copied, not shared)."""
    files, meta = mem.to_files()
    records, state = files["nodes.json"], files["state.json"]
    if state["open_nodes"]:
        raise ValueError("repeat_memory needs a finished memory")
    step = int(state["next_id"])
    blob = files["keyframes.bin"]
    index = files["keyframes_index.npy"]
    out_records, blobs, idx = [], [], []
    for r in range(reps):
        shift_id, shift_t, shift_kf = r * step, r * period_s, r * len(index)
        for rec in records:
            rec = dict(rec)
            rec["id"] += shift_id
            rec["start_s"] += shift_t
            rec["end_s"] += shift_t
            rec["children"] = [c + shift_id for c in rec["children"]]
            rec["parent"] = None if rec["parent"] is None else rec["parent"] + shift_id
            rec["keyframes"] = [k + shift_kf for k in rec["keyframes"]]
            rec["keyframe_times_s"] = [t + shift_t for t in rec["keyframe_times_s"]]
            out_records.append(rec)
        blobs.append(blob)
        idx.append(index + np.array([r * len(blob), 0]))
    # order rows level by level, in time, as a memory keeps them
    order = sorted(range(len(out_records)), key=lambda j: (out_records[j]["level"], out_records[j]["start_s"]))
    img = np.concatenate([files["image_embeddings.npy"]] * reps)[order]
    txt = np.concatenate([files["text_embeddings.npy"]] * reps)[order]
    out = dict(files)
    out["nodes.json"] = [out_records[j] for j in order]
    out["image_embeddings.npy"] = img
    out["text_embeddings.npy"] = txt
    out["keyframes.bin"] = b"".join(blobs)
    out["keyframes_index.npy"] = np.concatenate(idx)
    out["state.json"] = dict(state, next_id=reps * step, last_t=(state["last_t"] or 0.0) + (reps - 1) * period_s)
    if "tracks.json" in files:  # object tracks repeat with the events
        doc = files["tracks.json"]
        tstep = int(doc["next_id"])
        tracks, counts = [], []
        for r in range(reps):
            dt = r * period_s
            for tr in doc["tracks"]:
                tracks.append({**tr, "id": tr["id"] + r * tstep, "first_s": tr["first_s"] + dt, "last_s": tr["last_s"] + dt,
                               "spans": [[a + dt, b + dt] for a, b in tr["spans"]]})  # fmt: skip
            counts += [[t + dt, c] for t, c in doc["frame_counts"]]
        out["tracks.json"] = {**doc, "next_id": reps * tstep, "active": [], "tracks": tracks,
                              "has_embedding": doc["has_embedding"] * reps, "frame_counts": counts}  # fmt: skip
        out["track_embeddings.npy"] = np.concatenate([files["track_embeddings.npy"]] * reps)
    return EpisodicMemory.from_files(out, meta, text_encoder=mem.text_encoder, image_encoder=mem.image_encoder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=31.0, help="simulated minutes recorded")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--video-fps", type=float, default=2.0)
    ap.add_argument("--moves", type=int, default=14, help="objects relocated during the recording")
    ap.add_argument(
        "--hours", type=float, default=10.0, help="length of the replayed memory for query_ms / mb_per_hour"
    )
    ap.add_argument("--image-encoder", default="efficientnet_lite0", help="registry name, or 'none' for the built-in")
    ap.add_argument("--text-encoder", default="minilm")
    ap.add_argument(
        "--input-px", type=int, default=None, help="short side of the image encoder input (default: the shipped config)"
    )
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--queries", type=int, default=50, help="timed queries on the long memory")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the encoders (1 suits a shared machine)")
    ap.add_argument("--detector", default="rgb", help="detector for the object tracks ('none': scene embeddings only)")
    ap.add_argument("--no-real", action="store_true", help="skip the real-clip questions (benchmarks/video_qa_real.py)")
    ap.add_argument(
        "--name-precision",
        action="store_true",
        help="also score the detector's names against the simulator's masks on the cached frames (scoring only)",
    )
    args = ap.parse_args()

    from engram.perception.encoders import build_image_encoder, build_text_encoder

    print(f"recording {args.minutes:g} min of the embedded world (cached in {args.cache}) ...", flush=True)
    folder = record(
        args.cache, seed=args.seed, duration_s=args.minutes * 60.0, video_fps=args.video_fps, n_moves=args.moves
    )
    meta = json.loads((folder / "meta.json").read_text())
    questions = make_questions(meta, seed=args.seed)
    kinds = Counter(q.qtype for q in questions)
    print(f"{len(questions)} questions: {dict(kinds)}; render took {meta['render_s']:.0f} s", flush=True)

    from engram.config import compose, to_plain

    shipped = to_plain(compose("qa_build").qa)  # the settings `engram qa build` uses
    memory_options = dict(shipped["memory_options"])
    img_opts = dict(shipped.get("image_encoder_options") or {}) if args.image_encoder == "efficientnet_lite0" else {}
    if args.input_px is not None and img_opts:
        img_opts["input_size_px"] = args.input_px
    if args.image_encoder == "none":  # the built-in embedding has its own scale
        memory_options["boundary_threshold"] = 0.2
    if args.threads is not None:
        img_opts["num_threads"] = args.threads
    img = None if args.image_encoder == "none" else build_image_encoder(args.image_encoder, **img_opts)
    txt_opts = {"num_threads": args.threads} if args.threads is not None and args.text_encoder == "minilm" else {}
    txt = None if args.text_encoder == "none" else build_text_encoder(args.text_encoder, **txt_opts)
    # warm the encoders up (model loading is not part of the per-video build speed)
    if img is not None:
        img.encode([np.zeros((240, 320, 3), np.uint8)])
        img.tags([np.zeros((240, 320, 3), np.uint8)], k=5)
    if txt is not None:
        txt.encode(["warm up"])
    cache_img = CachingImageEncoder(img) if img is not None else None

    from engram.perception.detectors.vocabulary import DEFAULT_VOCABULARY

    answer_qs = make_answer_questions(meta, set(DEFAULT_VOCABULARY), seed=args.seed)
    print(f"{len(answer_qs)} answer questions: {dict(Counter(q['kind'] for q in answer_qs))}", flush=True)
    runs = args.cache / "memories"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    # --- engram build from pixels (no simulator labels, masks, depth or poses), timed ----
    t0 = time.perf_counter()
    c0 = time.process_time()
    qa = VideoQA.build_from_frames(
        RecordedFrames(folder, rgb_only=True),
        runs / "engram",
        source_id=folder.name,
        image_encoder=cache_img,
        text_encoder=txt,
        resume=False,
        progress=False,
        total_s=meta["duration_s"],
        memory_options=memory_options,
        batch_size=shipped["batch_size"],
        checkpoint_every_s=shipped["checkpoint_every_s"],
        detector=args.detector if args.detector != "none" else None,
        detector_options={**shipped["detector_options"], "num_threads": args.threads} if args.detector == "rgb" else {},
        detect_width_px=shipped["detect_width_px"],
    )
    build_wall = time.perf_counter() - t0
    build_cpu = time.process_time() - c0
    video_s = meta["duration_s"]
    build_x = video_s / build_cpu  # CPU time: the machine is shared
    recall, per_kind = evaluate(lambda q: qa.retrieve_hits(q, k=5), questions)
    acc, acc_per = score_answers(lambda q: qa.ask(q).text, answer_qs)
    mb_30 = dir_size_mb(runs / "engram")

    # --- peer: uniform 10 s chunks, the same question parser and answerer, same embeddings ----
    base = EpisodicMemory(
        sample_fps=1.0,
        level_spans_s=(10.0,),
        boundary_threshold=2.0,
        move_threshold_m=0.0,
        text_encoder=txt,
    )
    t0 = time.perf_counter()
    for j, f in enumerate(RecordedFrames(folder, rgb_only=True)):
        e = cache_img.embeddings[j] if cache_img else None
        tg = cache_img.tag_lists[j] if cache_img else []
        base.add_frame(f, image_embedding=e, tags=tg)
    base.finalize()
    base_wall = time.perf_counter() - t0
    base_qa = VideoQA(base)
    base_recall, base_per = evaluate(lambda q: base_qa.retrieve_hits(q, k=5), questions)
    base_acc, base_acc_per = score_answers(lambda q: base_qa.ask(q).text, answer_qs)

    # --- reference only: the same memory fed the simulator's instance labels (not a result) ----
    lab_mem = EpisodicMemory(**qa.info["memory_options"], text_encoder=txt)
    for j, f in enumerate(RecordedFrames(folder)):
        e = cache_img.embeddings[j] if cache_img else None
        tg = cache_img.tag_lists[j] if cache_img else []
        lab_mem.add_frame(f, image_embedding=e, tags=tg)
    lab_mem.finalize()
    lab_qa = VideoQA(lab_mem)
    lab_recall, lab_per = evaluate(lambda q: lab_qa.retrieve_hits(q, k=5), questions)

    names = None
    if args.name_precision and args.detector != "none":
        options = {**shipped["detector_options"], "num_threads": args.threads} if args.detector == "rgb" else {}
        names = name_precision(folder, args.detector, options)
        worst = sorted(names[2].items(), key=lambda kv: -kv[1][1])[:8]
        print("detector names (right / named), most named first:", ", ".join(f"{k} {a}/{b}" for k, (a, b) in worst))

    real_acc = None
    if not args.no_real:
        import video_qa_real as real

        rq = json.loads(real.QUESTIONS.read_text())["questions"]
        mems, _, _ = real.build_all(rq, [], rebuild=False)
        real_acc = real.score(rq, real.ask_all(mems, rq, "offline"), real.token_overlap_judge, "token overlap")[
            "accuracy"
        ]

    # --- a long memory made by repeating the recording's memory in time -----
    reps = max(1, int(math.ceil(args.hours * 3600.0 / video_s)))
    t0 = time.perf_counter()
    long_mem = repeat_memory(qa.memory, reps, video_s)
    long_build_wall = time.perf_counter() - t0
    hours = reps * video_s / 3600.0
    info = dict(qa.info)
    info["source"] = {"kind": "frames", "id": f"{folder.name} x{reps}"}
    _save(runs / "long", long_mem, info)
    mb_per_hour = dir_size_mb(runs / "long") / hours
    long_qa = VideoQA.load(runs / "long", image_encoder=img, text_encoder=txt)
    qtexts = [q.question for q in questions]
    for q in qtexts[:3]:
        long_qa.retrieve_hits(q, k=5)  # warm caches (level matrices are built once per load)
    times_ms, cpu_ms, enc_ms = [], [], []
    for j in range(args.queries):
        q = qtexts[j % len(qtexts)]
        t0, c0 = time.perf_counter(), time.process_time()
        long_qa.retrieve_hits(q, k=5)
        times_ms.append((time.perf_counter() - t0) * 1000.0)
        cpu_ms.append((time.process_time() - c0) * 1000.0)
        if txt is not None:
            t0 = time.perf_counter()
            txt.encode([q])
            enc_ms.append((time.perf_counter() - t0) * 1000.0)
    query_ms = statistics.median(times_ms)
    p95 = sorted(times_ms)[int(0.95 * (len(times_ms) - 1))]
    n_long = {lvl: len(long_mem.nodes(lvl)) for lvl in range(long_mem.num_levels)}
    n_long = dict(n_long)

    enc_name = f"{getattr(img, 'name', 'builtin-thumbnail')} + {getattr(txt, 'name', 'lexical only')}"
    print()
    print(
        f"video: {video_s / 60:.1f} min at 320x240, {meta['video_fps']:g} fps, sampled at 1 fps; encoders: {enc_name}"
    )
    print(
        f"image encoder options: {img_opts}; load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"engram memory: {', '.join(f'L{lvl} {len(qa.memory.nodes(lvl))}' for lvl in range(qa.memory.num_levels))} nodes"
    )
    print(
        f"long memory: {hours:.1f} h (the recording's memory repeated x{reps} in time), nodes {n_long}, made in {long_build_wall:.1f} s"
    )
    print()
    w = 28
    print(f"{'metric':<{w}} {'uniform 10 s chunks (peer)':>28} {'engram':>12} {'engram/peer':>12}")
    rows = [
        ("temporal_recall5", base_recall, recall),
        *[(f"  recall5 [{k}] (n={kinds[k]})", base_per[k], per_kind[k]) for k in sorted(per_kind)],
        (f"memory nodes ({args.minutes:g} min)", len(base.nodes(0)), len(qa.memory)),
    ]
    for name, b, e in rows:
        ratio = e / b if b else float("inf")
        print(f"{name:<{w}} {b:>28.3f} {e:>12.3f} {ratio:>12.2f}")
    print(f"{'answer_accuracy':<{w}} {base_acc:>28.3f} {acc:>12.3f}")
    for k in sorted(acc_per):
        n = sum(q["kind"] == k for q in answer_qs)
        print(f"{f'  answers [{k}] (n={n})':<{w}} {base_acc_per[k]:>28.3f} {acc_per[k]:>12.3f}")
    print(f"{'object tracks':<{w}} {'-':>28} {len(qa.memory.objects):>12d}")
    if names is not None:
        right, named, _ = names
        print(
            f"{'  detector names right':<{w}} {'-':>28} {right / max(named, 1):>12.3f}  ({right} of {named} named, sim masks)"
        )
    print(f"{'with simulator labels (ref.)':<{w}} {'-':>28} {lab_recall:>12.3f}")
    for k in sorted(lab_per):
        print(f"{f'  sim labels [{k}]':<{w}} {'-':>28} {lab_per[k]:>12.3f}")
    label = f"build wall s ({args.minutes:g} min)"
    print(f"{label:<{w}} {'(reuses engram embeddings)':>28} {build_wall:>12.1f}")
    print(f"{'  build CPU s (all threads)':<{w}} {'':>28} {build_cpu:>12.1f}")
    print(f"{'  video s per CPU s':<{w}} {'':>28} {video_s / build_cpu:>12.1f}  (build_x_realtime)")
    print(f"{'  peer memory-only wall s':<{w}} {base_wall:>28.1f}")
    label = f"disk MB ({args.minutes:g} min)"
    print(f"{label:<{w}} {'-':>28} {mb_30:>12.2f}")
    print(f"{'query ms median / p95 (10 h)':<{w}} {'-':>28} {query_ms:>6.1f}/{p95:<5.1f}")
    print(f"{'  query CPU ms median':<{w}} {'':>28} {statistics.median(cpu_ms):>12.1f}")
    if enc_ms:
        print(f"{'  of which text encoding ms':<{w}} {'':>28} {statistics.median(enc_ms):>12.1f}")
    print()
    real = "-" if real_acc is None else f"{real_acc:.3f}"
    print(
        f"answer_accuracy: {acc:.3f} temporal_recall5: {recall:.3f} real_clip_accuracy: {real} "
        f"build_x_realtime: {build_x:.1f} query_ms: {query_ms:.1f} mb_per_hour: {mb_per_hour:.2f}"
    )


if __name__ == "__main__":
    main()
