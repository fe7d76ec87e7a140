"""Video files and folders of frames as a stream of `Frame`s.

`VideoSource` owns reading colour-only footage: a container file decoded by
OpenCV one frame at a time (never the whole video in memory), or a folder of
numbered images. Timestamps come from the container (``CAP_PROP_POS_MSEC``);
frames can be thinned by a fixed stride or to a target rate. A file that ends
early (truncated or corrupt) yields the frames it has and warns once where it
stopped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2

from engram.types import Frame

__all__ = ["VideoSource", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _open_capture(path: Path) -> cv2.VideoCapture:
    """Open with FFmpeg first (robust to damaged files), then any backend."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"video {path} could not be opened: not a video OpenCV can decode, or truncated/corrupt")
    return cap


class VideoSource:
    """Frames (rgb + timestamp) from a video file or a folder of images.

    Args:
        path: a video file (anything OpenCV/FFmpeg decodes) or a folder of
            images, read in name order.
        stride: keep every ``stride``-th decoded frame (after ``start_s``).
        target_fps: keep frames so that the output rate is at most this;
            overrides ``stride`` when given.
        max_frames: stop after this many output frames.
        start_s: skip frames with a timestamp before this.
        folder_fps: frame rate assumed for a folder of images (their
            timestamps are ``i / folder_fps``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad arguments, an unreadable video, or an image folder
            without images.

    Frames carry ``index`` (position in the output stream), ``timestamp_s``
    and ``meta`` with ``source_index`` (the decoded frame number) and ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        stride: int = 1,
        target_fps: float | None = None,
        max_frames: int | None = None,
        start_s: float = 0.0,
        folder_fps: float = 30.0,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"video source {self.path} does not exist")
        if isinstance(stride, bool) or int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if target_fps is not None and not (math.isfinite(target_fps) and target_fps > 0):
            raise ValueError(f"target_fps must be a positive number, got {target_fps!r}")
        if max_frames is not None and (int(max_frames) != max_frames or max_frames < 0):
            raise ValueError(f"max_frames must be a non-negative integer, got {max_frames!r}")
        if not (math.isfinite(start_s) and start_s >= 0):
            raise ValueError(f"start_s must be a non-negative number, got {start_s!r}")
        if not (math.isfinite(folder_fps) and folder_fps > 0):
            raise ValueError(f"folder_fps must be a positive number, got {folder_fps!r}")
        self.stride = int(stride)
        self.target_fps = None if target_fps is None else float(target_fps)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.start_s = float(start_s)

        self._files: list[Path] | None = None
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise ValueError(f"folder {self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            self._files = files
            self._fps: float | None = float(folder_fps)
            self._n_source: int | None = len(files)
        else:
            cap = _open_capture(self.path)
            try:
                fps = cap.get(cv2.CAP_PROP_FPS)
                count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            finally:
                cap.release()
            self._fps = float(fps) if math.isfinite(fps) and fps > 0 else None
            self._n_source = int(count) if math.isfinite(count) and count > 0 else None

    # what is known up front --------------------------------------------
    @property
    def fps(self) -> float | None:
        """The source frame rate (container header, or ``folder_fps``); None if unknown."""
        return self._fps

    @property
    def num_source_frames(self) -> int | None:
        """Frames the container announces (images in a folder); None if unknown."""
        return self._n_source

    @property
    def duration_s(self) -> float | None:
        """Length of the source in seconds, None when the container does not say."""
        if self._fps is None or self._n_source is None:
            return None
        return self._n_source / self._fps

    def __len__(self) -> int:
        """Frames this source will yield, computed from the header (an upper bound for damaged files).

        Raises:
            TypeError: the container does not announce its frame count or rate.
        """
        if self._n_source is None or self._fps is None:
            raise TypeError(f"the length of {self.path} is unknown (its container gives no frame count or rate)")
        first = min(self._n_source, math.ceil(self.start_s * self._fps - 1e-9))
        keep = self._keeper()
        n = sum(1 for i in range(first, self._n_source) if keep(i / self._fps))
        return n if self.max_frames is None else min(n, self.max_frames)

    # streaming ------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        if self._files is not None:
            yield from self._iter_folder()
        else:
            yield from self._iter_video()

    def _keeper(self):
        """Stateful stride / target-rate filter applied frame by frame while decoding."""
        state = {"seen": 0, "next_t": -math.inf}
        period = None if self.target_fps is None else 1.0 / self.target_fps

        def keep(t: float) -> bool:
            i = state["seen"]
            state["seen"] += 1
            if period is None:
                return i % self.stride == 0
            if t >= state["next_t"] - 1e-6:
                nt = state["next_t"]
                state["next_t"] = max((t if nt == -math.inf else nt) + period, t + 1e-9)
                return True
            return False

        return keep

    def _iter_folder(self) -> Iterator[Frame]:
        assert self._files is not None and self._fps is not None
        keep = self._keeper()
        out = 0
        for i, file in enumerate(self._files):
            if self.max_frames is not None and out >= self.max_frames:
                return
            t = i / self._fps
            if t < self.start_s - 1e-9 or not keep(t):
                continue
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                warnings.warn(f"skipping unreadable image {file}", RuntimeWarning, stacklevel=3)
                continue
            yield Frame(
                index=out,
                timestamp_s=t,
                rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                meta={"source_index": i, "path": str(file)},
            )
            out += 1

    def _iter_video(self) -> Iterator[Frame]:
        cap = _open_capture(self.path)
        keep = self._keeper()
        out = 0
        decoded = 0
        last_t: float | None = None
        fps = self._fps
        if self.start_s > 0 and fps is not None:
            cap, decoded = self._seek(cap, fps)
            if decoded:
                last_t = (decoded - 1) / fps
        try:
            while self.max_frames is None or out < self.max_frames:
                if not cap.grab():
                    break
                pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                t = self._timestamp(pos_ms, decoded, last_t, fps)
                decoded += 1
                last_t = t
                if t < self.start_s - 1e-9 or not keep(t):
                    continue
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    warnings.warn(
                        f"video {self.path}: frame {decoded - 1} (t={t:.3f} s) could not be decoded; stopping there",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    return
                if bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                yield Frame(
                    index=out,
                    timestamp_s=t,
                    rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                    meta={"source_index": decoded - 1, "path": str(self.path)},
                )
                out += 1
            else:
                return  # max_frames reached: not an early end
            if self._n_source is not None and decoded < self._n_source:
                where = f"t={last_t:.3f} s" if last_t is not None else "the start"
                warnings.warn(
                    f"video {self.path} ended after {decoded} of the {self._n_source} frames its header announces "
                    f"(stopped at frame index {decoded}, after {where}); the file is truncated or corrupt",
                    RuntimeWarning,
                    stacklevel=3,
                )
        finally:
            cap.release()

    def _seek(self, cap: cv2.VideoCapture, fps: float) -> tuple[cv2.VideoCapture, int]:
        """Jump close to ``start_s`` without decoding everything before it.

        Lands on the frame just before ``start_s`` (one frame of margin);
        the frames from there are decoded and filtered as usual. Falls back
        to reading from the start when the container cannot seek exactly.
        """
        target = max(int(math.floor(self.start_s * fps + 1e-6)) - 1, 0)
        if target == 0:
            return cap, 0
        if cap.set(cv2.CAP_PROP_POS_FRAMES, target) and round(cap.get(cv2.CAP_PROP_POS_FRAMES)) == target:
            return cap, target
        cap.release()
        return _open_capture(self.path), 0

    @staticmethod
    def _timestamp(pos_ms: float, decoded: int, last_t: float | None, fps: float | None) -> float:
        """Container time of the frame just grabbed, falling back to index / fps."""
        t = pos_ms / 1000.0 if math.isfinite(pos_ms) and pos_ms >= 0 else None
        # Some backends report 0 for every frame, or repeat a value: fall back to the frame rate then.
        if t is None or (last_t is not None and t <= last_t):
            if fps is not None:
                t = decoded / fps
            elif last_t is not None:
                t = last_t + 1e-3
            else:
                t = 0.0
        return float(t)

    def __repr__(self) -> str:
        return f"VideoSource({str(self.path)!r}, fps={self.fps}, frames={self._n_source})"
