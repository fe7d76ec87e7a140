"""Long-video question answering over an episodic memory kept on disk.

`VideoQA.build` streams a video (or any iterable of frames) once through the
image encoder in batches, fills an `EpisodicMemory` and writes it to a store
directory, checkpointing every few minutes of video so an interrupted build
resumes where it stopped. `VideoQA.load` opens the directory again; `ask`
plans the retrieval from the question (a time such as "around 12:30", "right
after X", "where did I last see X", or plain text), gathers evidence coarse
to fine, and hands it to a pluggable answerer. `build_command` is
``engram qa build`` from Python; ``engram qa ask`` is `engram.qa.ask.ask_path`
(any memory kind, a video's among them), which reads this module, never the
other way round.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engram._util import dir_size_mb, fmt_time
from engram.memory.episodic import (
    THUMBNAIL_DIM,
    THUMBNAIL_NAME,
    EpisodicHit,
    EpisodicMemory,
    EpisodicNode,
    _content_tokens,
    check_encoders,
)
from engram.types import Frame

__all__ = [
    "VideoQA",
    "BuildReport",
    "QueryPlan",
    "parse_question",
    "parse_time_s",
    "build_command",
    "VIDEO_MEMORY_KIND",
]

VIDEO_MEMORY_KIND = "video_memory"
VIDEO_MEMORY_VERSION = 1


# ---------------------------------------------------------------------------
# question parsing

_HMS = re.compile(r"(?<![\d:])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\.\d+)?(?![\d:])")
_UNITS = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s*(h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)\b", re.IGNORECASE
)
_AFTER = re.compile(r"\b(right after|just after|immediately after|after|following|then)\b", re.IGNORECASE)
_BEFORE = re.compile(r"\b(right before|just before|immediately before|before|prior to)\b", re.IGNORECASE)
_LAST = re.compile(r"\b(last|latest|most recently|most recent|final)\b", re.IGNORECASE)
_FIRST = re.compile(r"\b(first|earliest)\b", re.IGNORECASE)


@dataclass(frozen=True)
class QueryPlan:
    """How a question is looked up in the memory.

    Attributes:
        text: the content words to search by text (None when the question is only a time).
        time_s: a time named in the question ("12:30" -> 750.0).
        relation: "after" / "before": the answer lies next to what ``text`` finds.
        order: "last" / "first": of the matching spans, the latest / earliest.
    """

    text: str | None
    time_s: float | None = None
    relation: str | None = None
    order: str | None = None


def parse_time_s(text: str) -> float | None:
    """The first time named in ``text`` in seconds: "1:02:03", "12:30" (mm:ss), "90 s", "2 min 5 s", "1.5 h".

    Returns None when the text names no time.
    """
    m = _HMS.search(text)
    if m:
        a, b, c = m.group(1), m.group(2), m.group(3)
        if c is not None:
            return int(a) * 3600.0 + int(b) * 60.0 + int(c)
        return int(a) * 60.0 + int(b)
    total = 0.0
    found = False
    for m in _UNITS.finditer(text):
        value, unit = float(m.group(1)), m.group(2).lower()
        scale = 3600.0 if unit.startswith("h") else 60.0 if unit.startswith("m") else 1.0
        total += value * scale
        found = True
    return total if found else None


def parse_question(question: str) -> QueryPlan:
    """Split a question into a text query, a time and an ordering (see `QueryPlan`)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")
    t = parse_time_s(question)
    rest = _UNITS.sub(" ", _HMS.sub(" ", question))
    relation = None
    if _AFTER.search(rest):
        relation = "after"
    elif _BEFORE.search(rest):
        relation = "before"
    order = "last" if _LAST.search(rest) else "first" if _FIRST.search(rest) else None
    content = _content_tokens(rest)
    text = rest.strip() if content else None
    if t is not None:
        relation = None if text is None else relation
    return QueryPlan(text=text, time_s=t, relation=relation, order=order)


# ---------------------------------------------------------------------------
# building


@dataclass
class BuildReport:
    """What a build did.

    Attributes:
        source: the video path or source name.
        frames_sampled: frames that went into the memory.
        video_s: seconds of video covered.
        wall_s: wall-clock seconds spent in this call.
        complete: the whole source was read.
        stopped_at_s: where reading stopped early (None when complete).
        reason: why it stopped early ("" when complete).
        resumed_from_s: where this call picked up a previous, interrupted build (None for a fresh build).
    """

    source: str
    frames_sampled: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    complete: bool = False
    stopped_at_s: float | None = None
    reason: str = ""
    resumed_from_s: float | None = None

    @property
    def x_realtime(self) -> float:
        return self.video_s / self.wall_s if self.wall_s > 0 else float("inf")

    def summary(self) -> str:
        head = f"{self.source}: {self.frames_sampled} frames, {fmt_time(self.video_s)} of video in {self.wall_s:.1f} s"
        if self.resumed_from_s is not None:
            head += f" (resumed at {fmt_time(self.resumed_from_s)})"
        if self.complete:
            return head + ", complete"
        where = "?" if self.stopped_at_s is None else fmt_time(self.stopped_at_s)
        return head + f", STOPPED EARLY at {where}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "frames_sampled": self.frames_sampled,
            "video_s": self.video_s,
            "wall_s": self.wall_s,
            "complete": self.complete,
            "stopped_at_s": self.stopped_at_s,
            "reason": self.reason,
            "resumed_from_s": self.resumed_from_s,
        }


def _resolve_encoder(enc: Any, kind: str, options: dict[str, Any] | None = None) -> Any:
    if enc is None or not isinstance(enc, str):
        return enc
    from engram.perception import encoders

    build = encoders.build_image_encoder if kind == "image" else encoders.build_text_encoder
    return build(enc, **(options or {}))


def _plain_options(options: Any) -> dict[str, Any] | None:
    """Options as a plain dict: an OmegaConf node (from a config) is converted, anything else kept."""
    if type(options).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        plain = OmegaConf.to_container(options, resolve=True)
        if not isinstance(plain, dict):
            raise ValueError(f"options must be a mapping, got {plain!r}")
        return {str(k): v for k, v in plain.items()}
    return options


def _fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last MiB: cheap, and changes when the file does."""
    st = path.stat()
    h = hashlib.sha256(str(st.st_size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:32]


def _batched(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for f in frames:
        batch.append(f)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class VideoQA:
    """Question answering over the episodic memory of one long video.

    Args:
        memory: the episodic memory (built, or loaded from a store).
        path: the store directory it lives in (None for an in-memory one).
        info: build information kept with the store (source, encoders, report).
    """

    def __init__(self, memory: EpisodicMemory, path: str | Path | None = None, info: dict[str, Any] | None = None):
        self.memory = memory
        self.path = None if path is None else Path(path)
        self.info = dict(info or {})
        self._encoder_names = dict(self.info.get("encoders", memory.encoder_info()))
        self.report = BuildReport(**self.info["report"]) if "report" in self.info else BuildReport(source=str(path))
        self.last_evidence: list[Any] = []

    # -- building -----------------------------------------------------------
    @classmethod
    def build(
        cls,
        video_path: str | Path,
        out_dir: str | Path,
        sample_fps: float = 1.0,
        image_encoder: Any = "efficientnet_lite0",
        text_encoder: Any = "minilm",
        resume: bool = True,
        *,
        checkpoint_every_s: float = 300.0,
        batch_size: int = 16,
        max_frames: int | None = None,
        progress: bool = True,
        captioner: Any = None,
        memory_options: dict[str, Any] | None = None,
        image_encoder_options: dict[str, Any] | None = None,
        detector: Any = None,
        detector_options: dict[str, Any] | None = None,
        detect_width_px: int = 320,
    ) -> VideoQA:
        """Build (or resume building) the memory of a video file or image folder and write it to ``out_dir``.

        Args:
            video_path: a video file OpenCV can decode, or a folder of frames.
            out_dir: the store directory (created; replaced when ``resume`` is False).
            sample_fps: frames per second kept from the video.
            image_encoder, text_encoder: registry names or encoder objects; with no
                image encoder (None) frames are embedded by the memory's built-in
                colour/thumbnail embedding and get no tags.
            resume: continue an interrupted build of the same video with the same
                settings (or return a finished one as it is).
            checkpoint_every_s: save the memory every this many seconds of video.
            batch_size: frames per encoder call.
            max_frames: stop after this many sampled frames (for trials).
            progress: show a progress bar.
            captioner: a captioner (registry name such as ``"openai"``, or an object with
                ``caption_batch(list of keyframe lists) -> captions``; a plain
                keyframes -> caption callable works too). Events are captioned after
                the frames are read, in batches, saving after each batch, so a
                failure part-way keeps the captions made and the next build
                resumes with the rest.
            memory_options: more `EpisodicMemory` settings (level spans, thresholds, ...).
            image_encoder_options: keyword arguments for building the image encoder by
                name, e.g. ``{"input_size_px": 160}`` (kept with the memory, used again
                for image queries).

        Returns:
            The `VideoQA`; ``report`` says how far it got. A truncated or damaged
            video builds what it can: the report (and the store) say where it stopped.

        Raises:
            FileNotFoundError: the video does not exist.
            ValueError: the video cannot be opened at all, or ``out_dir`` holds a
                memory of another video or other settings and ``resume`` is True.
        """
        from engram.sims.video import VideoSource

        video = Path(video_path)
        source = VideoSource(video, target_fps=sample_fps)
        total_s = source.duration_s
        ident = {
            "kind": "file",
            "path": str(video.resolve()),
            "fingerprint": _fingerprint(video) if video.is_file() else None,
        }

        def frames(start_s: float) -> Iterator[Frame]:
            src = VideoSource(video, target_fps=sample_fps, start_s=start_s, max_frames=max_frames)
            yield from src

        return cls._build(
            frames,
            out_dir,
            ident=ident,
            total_s=total_s,
            sample_fps=sample_fps,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            resume=resume,
            checkpoint_every_s=checkpoint_every_s,
            batch_size=batch_size,
            progress=progress,
            captioner=captioner,
            memory_options=memory_options,
            image_encoder_options=image_encoder_options,
            detector=detector,
            detector_options=detector_options,
            detect_width_px=detect_width_px,
            source_name=str(video),
        )

    @classmethod
    def build_from_frames(
        cls,
        frames: Iterable[Frame],
        out_dir: str | Path,
        *,
        source_id: str,
        sample_fps: float = 1.0,
        image_encoder: Any = "efficientnet_lite0",
        text_encoder: Any = "minilm",
        resume: bool = True,
        checkpoint_every_s: float = 300.0,
        batch_size: int = 16,
        total_s: float | None = None,
        progress: bool = True,
        captioner: Any = None,
        memory_options: dict[str, Any] | None = None,
        image_encoder_options: dict[str, Any] | None = None,
        detector: Any = None,
        detector_options: dict[str, Any] | None = None,
        detect_width_px: int = 320,
    ) -> VideoQA:
        """Like `build`, from any iterable of frames (a simulator run, a bag, a recording).

        ``source_id`` names the stream so that a resumed build can check it is the
        same one; on resume, frames up to the last saved time are skipped.
        """
        if not isinstance(source_id, str) or not source_id:
            raise ValueError("source_id must be a non-empty string naming the frame stream")

        def gen(start_s: float) -> Iterator[Frame]:
            for f in frames:
                if f.timestamp_s >= start_s:
                    yield f

        return cls._build(
            gen,
            out_dir,
            ident={"kind": "frames", "id": source_id},
            total_s=total_s,
            sample_fps=sample_fps,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            resume=resume,
            checkpoint_every_s=checkpoint_every_s,
            batch_size=batch_size,
            progress=progress,
            captioner=captioner,
            memory_options=memory_options,
            image_encoder_options=image_encoder_options,
            detector=detector,
            detector_options=detector_options,
            detect_width_px=detect_width_px,
            source_name=source_id,
        )

    @classmethod
    def _build(
        cls,
        frames_from,
        out_dir: str | Path,
        *,
        ident: dict[str, Any],
        total_s: float | None,
        sample_fps: float,
        image_encoder: Any,
        text_encoder: Any,
        resume: bool,
        checkpoint_every_s: float,
        batch_size: int,
        progress: bool,
        captioner: Any,
        memory_options: dict[str, Any] | None,
        image_encoder_options: dict[str, Any] | None,
        source_name: str,
        detector: Any = None,
        detector_options: dict[str, Any] | None = None,
        detect_width_px: int = 320,
    ) -> VideoQA:
        if not (math.isfinite(sample_fps) and sample_fps > 0):
            raise ValueError(f"sample_fps must be a positive number, got {sample_fps!r}")
        if batch_size < 1 or not checkpoint_every_s > 0:
            raise ValueError(
                f"batch_size and checkpoint_every_s must be positive, got {batch_size}, {checkpoint_every_s}"
            )
        memory_options = _plain_options(memory_options)
        image_encoder_options = _plain_options(image_encoder_options)
        detector_options = _plain_options(detector_options)
        det = None
        if detector is not None:
            from engram.perception.detectors import build_detector

            det = build_detector(detector, **(detector_options or {}) if isinstance(detector, str) else {})
        cap = None if captioner is None else _resolve_captioner(captioner)
        # kept with the memory for image queries; with an encoder object they say how it was built
        img_opts = dict(image_encoder_options or {})
        img_enc = _resolve_encoder(image_encoder, "image", img_opts)
        txt_enc = _resolve_encoder(text_encoder, "text")
        opts = dict(memory_options or {})
        opts["sample_fps"] = float(sample_fps)
        out = Path(out_dir)
        settings = {
            "source": ident,
            "encoders": {
                "image_encoder": getattr(img_enc, "name", None) if img_enc is not None else THUMBNAIL_NAME,
                "image_dim": getattr(img_enc, "dim", None) if img_enc is not None else THUMBNAIL_DIM,
                "text_encoder": getattr(txt_enc, "name", None),
                "text_dim": getattr(txt_enc, "dim", None),
            },
            "memory_options": opts,
            "image_encoder_options": img_opts,
            "detector": None if det is None else getattr(det, "name", type(det).__name__),
        }
        report = BuildReport(source=source_name)
        memory = None
        if resume and _store_exists(out):
            qa = cls.load(out, image_encoder=img_enc, text_encoder=txt_enc)
            old = {k: qa.info.get(k) for k in ("source", "memory_options", "detector")}
            if old != {"source": ident, "memory_options": opts, "detector": settings["detector"]}:
                raise ValueError(
                    f"{out} holds the memory of another source or other settings "
                    f"({old['source']}, {old['memory_options']}); pass resume=False to rebuild it"
                )
            if qa.info.get("finished"):
                if cap is not None:
                    qa._caption_pending(cap, progress=progress)
                return qa
            memory = qa.memory
            report.resumed_from_s = memory.last_time_s
        if memory is None:
            memory = EpisodicMemory(**opts, image_encoder=img_enc, text_encoder=txt_enc)
        if memory.last_time_s is None:
            start_s = 0.0
        else:  # the next sampling slot, so a resumed build samples the same frames as one pass
            start_s = (math.floor(memory.last_time_s * sample_fps + 1e-6) + 1) / sample_fps - 1e-6
        t0 = time.perf_counter()
        last_ckpt = memory.last_time_s if memory.last_time_s is not None else 0.0
        first_t = None
        interrupted: BaseException | None = None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=None if total_s is None else round(total_s), unit="video s", desc="building memory")
            if memory.last_time_s:
                bar.update(round(memory.last_time_s))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            try:
                stream = frames_from(max(start_s, 0.0))
                for batch in _batched(stream, batch_size):
                    batch = [f for f in batch if memory.last_time_s is None or f.timestamp_s > memory.last_time_s]
                    if not batch:
                        continue
                    rgbs = [f.rgb for f in batch]
                    embs: np.ndarray | list[None]
                    tags: list[list[tuple[str, float]]]
                    if img_enc is None:  # the memory's built-in thumbnail embedding, no tags
                        embs, tags = [None] * len(batch), [[] for _ in batch]
                    else:
                        embs, tags = _encode_batch(img_enc, rgbs, memory.tags_per_node)
                    dets = [None] * len(batch) if det is None else _detect_batch(det, batch, detect_width_px)
                    before = memory.last_time_s or 0.0
                    for f, e, tg, d in zip(batch, embs, tags, dets):
                        memory.add_frame(f, image_embedding=e, tags=tg, detections=d)
                    if first_t is None:
                        first_t = batch[0].timestamp_s
                    now = memory.last_time_s
                    assert now is not None  # the batch's frames were just added
                    if bar is not None:
                        bar.update(max(0, round(now) - round(before)))
                    if now - last_ckpt >= checkpoint_every_s:
                        _save(out, memory, {**settings, "finished": False, "report": report.to_json()})
                        last_ckpt = now
            except KeyboardInterrupt as exc:
                interrupted = exc
            except Exception as exc:  # a decoder failing mid-stream: keep what was read
                report.reason = f"reading stopped with {type(exc).__name__}: {exc}"
            finally:
                if bar is not None:
                    bar.close()
        problems = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        for w in caught:
            if not issubclass(w.category, RuntimeWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        report.wall_s = time.perf_counter() - t0
        report.frames_sampled = memory.frames_sampled
        end_t = memory.last_time_s
        if end_t is not None:
            report.video_s = end_t - (first_t if first_t is not None else end_t) + 1.0 / sample_fps
        if interrupted is not None:
            report.stopped_at_s = end_t
            report.reason = "interrupted"
            _save(out, memory, {**settings, "finished": False, "report": report.to_json()})
            raise interrupted
        if problems and not report.reason:
            report.reason = "; ".join(problems)
        if end_t is None:
            raise ValueError(f"{source_name}: no frame could be read ({report.reason or 'empty source'})")
        if total_s is not None and not report.reason and end_t < total_s - 2.0 / sample_fps - 1.0:
            report.reason = f"the source announces {total_s:.1f} s but frames ended at {end_t:.1f} s"
        report.complete = not report.reason
        report.stopped_at_s = None if report.complete else end_t
        memory.finalize()
        qa = cls(memory, out, {**settings, "finished": True, "report": report.to_json()})
        _save(out, memory, qa.info)
        qa.report = report
        if cap is not None:
            qa._caption_pending(cap, progress=progress)
        if not report.complete:
            warnings.warn(f"{report.summary()}; the memory covers what was read", RuntimeWarning, stacklevel=3)
        return qa

    def _caption_pending(self, captioner: Any, *, progress: bool = True, batch_size: int = 8) -> int:
        """Caption the events that have keyframes and no caption yet, saving after each batch.

        Returns how many were captioned. A captioner error stops the pass with the
        captions made so far saved; the next build resumes with the rest.
        """
        from engram.qa.captioners import caption_batch

        mem = self.memory
        todo = [n for n in mem.nodes(0) if n.keyframes and not n.caption]
        if not todo:
            return 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="event", desc="captioning")
        done = 0
        try:
            for i in range(0, len(todo), batch_size):
                chunk = todo[i : i + batch_size]
                captions = caption_batch(captioner, [mem.keyframe_images(n) for n in chunk])
                for n, c in zip(chunk, captions):
                    mem.set_caption(n.node_id, c)
                done += len(chunk)
                if self.path is not None:
                    self.info["captioner"] = str(getattr(captioner, "label", getattr(captioner, "name", "custom")))
                    _save(self.path, mem, self.info)
                if bar is not None:
                    bar.update(len(chunk))
        except Exception as exc:
            from engram.qa.answerers import AnswererError

            where = f"the memory at {self.path}" if self.path else "the memory"
            raise AnswererError(
                f"captioning stopped after {done} of {len(todo)} events ({exc}); {where} keeps the captions made: "
                "run the build again to resume"
            ) from exc
        finally:
            if bar is not None:
                bar.close()
        return done

    # -- loading ----------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, image_encoder: Any = None, text_encoder: Any = None) -> VideoQA:
        """Open a memory written by `build`.

        Encoders are built from the names recorded at build time when first
        needed; encoders given here must be the same ones.

        Raises:
            FileNotFoundError: no memory at ``path``.
            ValueError: a damaged store, or other encoders than the memory was built with.
        """
        from engram.memory.store import decoding, read_store

        contents = read_store(path, kind=VIDEO_MEMORY_KIND, supported_versions=[VIDEO_MEMORY_VERSION])
        with decoding(path, "a video memory"):
            info = contents.json("video.json")
            recorded = info.get("encoders", {})
            img = _resolve_encoder(image_encoder, "image")
            txt = _resolve_encoder(text_encoder, "text")
            check_encoders(recorded, img, txt, where=f"the memory at {path}")
            files = {name: contents[name] for name in contents.names() if name != "video.json"}
            memory = EpisodicMemory.from_files(
                files, contents.meta, image_encoder=img, text_encoder=txt, where=str(path)
            )
            return cls(memory, path, info)

    def _ensure_text_encoder(self) -> None:
        if self.memory.text_encoder is None and self._encoder_names.get("text_encoder"):
            enc = _resolve_encoder(self._encoder_names["text_encoder"], "text")
            check_encoders(self._encoder_names, None, enc, where=f"the memory at {self.path}")
            self.memory.text_encoder = enc

    def _ensure_image_encoder(self) -> None:
        name = self._encoder_names.get("image_encoder")
        if self.memory.image_encoder is None and name and name != THUMBNAIL_NAME:
            enc = _resolve_encoder(name, "image", self.info.get("image_encoder_options"))
            check_encoders(self._encoder_names, enc, None, where=f"the memory at {self.path}")
            self.memory.image_encoder = enc

    # -- retrieval ------------------------------------------------------------------
    def retrieve_hits(
        self,
        question: str | None = None,
        *,
        image: np.ndarray | None = None,
        time_s: float | None = None,
        k: int = 5,
        beam: int = 6,
    ) -> list[EpisodicHit]:
        """The memory nodes that best answer a question, best first (see `parse_question`)."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        plan = parse_question(question) if question is not None else QueryPlan(text=None)
        t = time_s if time_s is not None else plan.time_s
        if plan.text is None and image is None and t is None:
            raise ValueError(f"the question names nothing to look for: {question!r}")
        if image is not None and np.asarray(image).ndim == 3:
            self._ensure_image_encoder()
        if plan.text is not None:
            self._ensure_text_encoder()
        mem = self.memory
        if plan.text is None:  # a time (and maybe an image)
            return mem.search(image=image, time_s=t, k=k, level=0)
        if t is not None:
            # the time decides where to look, the words rank what is there
            near = mem.search(image=image, time_s=t, k=max(k, 8), level=0)
            words = mem.score([h.node for h in near], text=plan.text)
            order = np.argsort(-(np.array([h.score for h in near]) + 0.5 * words), kind="stable")
            return [near[i] for i in order[:k]]
        if image is not None:
            return mem.search(text=plan.text, image=image, k=k, level=0)
        if plan.relation is not None:
            return self._relative(plan, k)
        if plan.order is not None:
            return self._ordered(plan, k)
        return mem.retrieve(text=plan.text, k=k, beam=beam)

    def _matching(self, text: str, k: int) -> list[EpisodicHit]:
        """Events that match ``text`` as well as the best one does, in time order."""
        return self.memory.matching(text, level=0)

    def _ordered(self, plan: QueryPlan, k: int) -> list[EpisodicHit]:
        hits = self._matching(plan.text or "", k)
        hits.sort(key=lambda h: h.node.start_s, reverse=plan.order == "last")
        return hits[:k]

    def _relative(self, plan: QueryPlan, k: int) -> list[EpisodicHit]:
        """Events right after (before) the ones matching the text, skipping those that still match it."""
        anchors = self._matching(plan.text or "", k)
        matching = {h.node.node_id for h in anchors}
        anchors.sort(key=lambda h: h.node.start_s, reverse=plan.order == "last")
        step = 1 if plan.relation == "after" else -1
        out: list[EpisodicHit] = []
        seen: set[int] = set()
        for h in anchors:
            node: EpisodicNode | None = h.node
            while node is not None and node.node_id in matching:
                node = self.memory.neighbours(node, step)
            if node is not None and node.node_id not in seen:
                seen.add(node.node_id)
                out.append(EpisodicHit(node, h.score))
            if len(out) >= k:
                break
        return out

    def retrieve(
        self, question: str | None = None, *, image: np.ndarray | None = None, time_s: float | None = None, k: int = 5
    ) -> list[Any]:
        """Evidence for a question: the best memory nodes as `engram.qa.answerers.Evidence`."""
        return [self._evidence(h) for h in self.retrieve_hits(question, image=image, time_s=time_s, k=k)]

    def _evidence(self, hit: EpisodicHit) -> Any:
        from engram.qa.answerers import Evidence

        n = hit.node
        text = f"[{fmt_time(n.start_s)}-{fmt_time(n.end_s)}] {n.description}"
        return Evidence(
            text=text,
            time_span_s=(n.start_s, n.end_s),
            images=self.memory.keyframe_images(n),
            score=hit.score,
            source_id=f"episodic:{n.node_id}",
            meta={
                "level": n.level,
                "tags": n.tags,
                "labels": n.labels,
                "moved": n.moved,
                "keyframe_times_s": list(n.keyframe_times_s),
            },
        )

    def structured(self, question: str) -> Any:
        """The `engram.qa.facts.TrackFact` answering ``question`` from the object tracks, or None."""
        from engram.qa.facts import answer_from_tracks

        if len(self.memory.objects) == 0:
            return None
        self._ensure_text_encoder()
        return answer_from_tracks(question, self.memory, self.memory.text_encoder)

    def _fact_evidence(self, fact: Any) -> Any:
        from engram.qa.answerers import Evidence

        images, times = [], []
        if fact.time_span_s is not None:
            node = self.memory.at_time(fact.time_span_s[1], level=0) or self.memory.at_time(
                fact.time_span_s[0], level=0
            )
            if node is not None:
                images, times = self.memory.keyframe_images(node), list(node.keyframe_times_s)
        return Evidence(
            text=f"object tracks: {fact.answer}",
            time_span_s=fact.time_span_s,
            images=images,
            score=1.0 if fact.found else 0.0,
            source_id="tracks",
            meta={
                "answer": fact.answer,
                "kind": fact.kind,
                "value": fact.value,
                "found": fact.found,
                "labels": fact.labels,
                "keyframe_times_s": times,
            },
        )

    def ask(
        self,
        question: str,
        options: Sequence[str] | None = None,
        answerer: Any = "offline",
        *,
        image: np.ndarray | None = None,
        k: int = 5,
    ) -> Any:
        """Answer a question from the memory.

        Args:
            question: free text; times ("around 12:30") and orderings ("last",
                "right after") steer the retrieval.
            options: answer choices for a multiple-choice question.
            answerer: an answerer object (``answer(question, evidence, options)``)
                or a registry name from `engram.qa.answerers`.
            image: an optional query image.
            k: evidence items handed to the answerer.

        Returns:
            The answerer's `Answer`, with the evidence it was given.

        Raises:
            TimeoutError: the answerer (a server) did not answer in time; the memory is untouched.
        """
        if options is not None:
            options = [str(o) for o in options]
            if len(options) < 2:
                raise ValueError(f"a multiple-choice question needs at least two options, got {options}")
        fact = self.structured(question) if image is None else None
        try:
            evidence = self.retrieve(question, image=image, k=k)
        except ValueError:
            if fact is None:
                raise
            evidence = []
        if fact is not None:
            evidence = [self._fact_evidence(fact), *evidence[: max(k - 1, 1)]]
        if isinstance(answerer, str):
            self._ensure_text_encoder()
        backend = _resolve_answerer(answerer, self.memory.text_encoder)
        self.last_evidence = evidence
        try:
            return backend.answer(question, evidence, options=options)
        except TimeoutError as exc:
            where = f"the memory at {self.path}" if self.path else "the memory"
            raise TimeoutError(
                f"answerer {getattr(backend, 'name', type(backend).__name__)!r} did not answer in time ({exc}); "
                f"{where} is unchanged"
            ) from exc


def _resolve_answerer(answerer: Any, text_encoder: Any = None) -> Any:
    if not isinstance(answerer, str):
        if not hasattr(answerer, "answer"):
            raise ValueError(f"answerer must be a name or have an answer() method, got {type(answerer).__name__}")
        return answerer
    from engram.qa import answerers

    if answerer == "offline" and text_encoder is not None:
        # the offline answerer compares evidence and options in the memory's text space
        return answerers.build_answerer(answerer, text_encoder=text_encoder)
    return answerers.build_answerer(answerer)


def _encode_batch(encoder: Any, rgbs: list[np.ndarray], k: int) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
    """Embeddings and tags of a batch, in one forward pass when the encoder offers it."""
    both = getattr(encoder, "encode_with_tags", None)
    if both is not None:
        embs, tags = both(rgbs, k=k)
    else:
        embs = encoder.encode(rgbs)
        tags = encoder.tags(rgbs, k=k) if hasattr(encoder, "tags") else [[] for _ in rgbs]
    embs = np.asarray(embs, dtype=np.float32)
    if embs.ndim != 2 or embs.shape[0] != len(rgbs):
        raise ValueError(f"image encoder returned shape {embs.shape} for {len(rgbs)} images")
    return embs, list(tags)


def _detect_batch(detector: Any, frames: Sequence[Frame], width_px: int) -> list[Any]:
    """The detector's masks for each frame shrunk to ``width_px`` (boxes are kept as image fractions).

    One `run_detector_batch` call: the ``rgb`` / ``rgbd`` detectors label every
    frame's segments with one crop-classifier call (the network's cost per call
    is mostly fixed, so a frame's few crops alone cost nearly as much as a batch).
    """
    import cv2

    from engram.perception.detectors import run_detector_batch

    small = []
    for frame in frames:
        if frame.width > width_px:
            h = max(1, round(frame.height * width_px / frame.width))
            rgb = cv2.resize(frame.rgb, (width_px, h), interpolation=cv2.INTER_AREA)
            frame = Frame(index=frame.index, timestamp_s=frame.timestamp_s, rgb=rgb)
        small.append(frame)
    return run_detector_batch(detector, small)


def _resolve_captioner(captioner: Any) -> Any:
    from engram.qa.captioners import build_captioner

    return build_captioner(captioner) if isinstance(captioner, str) else captioner


def _store_exists(path: Path) -> bool:
    from engram.memory.store import MANIFEST_NAME

    return (path / MANIFEST_NAME).is_file()


def _save(path: Path, memory: EpisodicMemory, info: dict[str, Any]) -> None:
    """Write memory and build information as one atomic store save."""
    from engram.memory.store import write_store

    files, meta = memory.to_files()
    files["video.json"] = info
    write_store(path, files, kind=VIDEO_MEMORY_KIND, version=VIDEO_MEMORY_VERSION, meta=meta)


# ---------------------------------------------------------------------------
# command-line bodies


def build_summary(qa: VideoQA, out_dir: str | Path) -> str:
    """One paragraph on a built memory: the report, its size on disk, nodes per level and object tracks."""
    m = qa.memory
    counts = ", ".join(f"level {lvl}: {len(m.nodes(lvl))}" for lvl in range(m.num_levels))
    size_mb = dir_size_mb(Path(out_dir))
    return f"{qa.report.summary()}\nmemory at {out_dir} ({size_mb:.1f} MB): {counts}; object tracks: {len(m.objects)}"


def build_command(video: str, out_dir: str, **opts: Any) -> str:
    """``engram qa build VIDEO --out DIR`` from Python: build (or resume) and return a one-paragraph summary."""
    return build_summary(VideoQA.build(video, out_dir, **opts), out_dir)
