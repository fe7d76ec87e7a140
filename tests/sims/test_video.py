"""VideoSource: frame counts, container timestamps, thinning, damaged and missing files."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.sims.video import VideoSource

FPS = 10.0
N_FRAMES = 20
W, H = 64, 48


def _frame_image(i: int) -> np.ndarray:
    """A BGR image whose mean grey level encodes the frame number, plus noise so MJPEG frames are large."""
    rng = np.random.default_rng(i)
    img = np.full((H, W, 3), 10 * i + 5, np.uint8)
    img[: H // 2] = rng.integers(0, 255, (H // 2, W, 3), dtype=np.uint8)
    return img


@pytest.fixture
def video_path(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        writer.write(_frame_image(i))
    writer.release()
    return path


def _grey_level(rgb: np.ndarray) -> float:
    return float(rgb[H // 2 :].mean())


def test_round_trip_counts_and_timestamps(video_path: Path) -> None:
    src = VideoSource(video_path)
    assert src.fps == pytest.approx(FPS)
    assert len(src) == N_FRAMES
    assert src.duration_s == pytest.approx(N_FRAMES / FPS)
    frames = list(src)
    assert len(frames) == N_FRAMES
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(N_FRAMES) / FPS, atol=1e-6)
    assert [f.index for f in frames] == list(range(N_FRAMES))
    # the pixels are the frames that were written, in order (MJPEG is lossy: a few grey levels off)
    np.testing.assert_allclose([_grey_level(f.rgb) for f in frames], 10 * np.arange(N_FRAMES) + 5, atol=3)
    for f in frames:
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        assert f.depth_m is None and f.world_from_camera is None


def test_stride_start_and_max_frames(video_path: Path) -> None:
    src = VideoSource(video_path, stride=3, start_s=0.5, max_frames=4)
    frames = list(src)
    assert len(src) == len(frames) == 4
    np.testing.assert_allclose([f.timestamp_s for f in frames], [0.5, 0.8, 1.1, 1.4], atol=1e-6)
    assert [f.meta["source_index"] for f in frames] == [5, 8, 11, 14]
    # start_s seeks: the pixels are those of the frames named, not of the first frames of the file
    np.testing.assert_allclose([_grey_level(f.rgb) for f in frames], [55, 85, 115, 145], atol=3)


def test_target_fps_thins_to_the_requested_rate(video_path: Path) -> None:
    src = VideoSource(video_path, target_fps=2.5)
    frames = list(src)
    assert len(src) == len(frames) == 5
    np.testing.assert_allclose(np.diff([f.timestamp_s for f in frames]), 0.4, atol=1e-6)


def test_truncated_video_yields_partial_stream_and_warns_once(video_path: Path, tmp_path: Path) -> None:
    data = video_path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(VideoSource(cut))
    assert 0 < len(frames) < N_FRAMES
    mine = [w for w in caught if "truncated" in str(w.message)]
    assert len(mine) == 1
    msg = str(mine[0].message)
    assert str(cut) in msg and f"frame index {len(frames)}" in msg
    # what was yielded is in order; the frame the cut runs through may be partly decoded, so it is not checked
    n = len(frames) - 1
    np.testing.assert_allclose([_grey_level(f.rgb) for f in frames[:n]], 10 * np.arange(n) + 5, atol=3)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        VideoSource(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.mp4"):
        VideoSource(junk)
    with pytest.raises(ValueError, match="stride"):
        VideoSource(junk, stride=0)


def test_folder_of_frames(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:04d}.png"), _frame_image(i))
    (folder / "0003.png").write_bytes(b"broken")
    src = VideoSource(folder, folder_fps=5.0)
    assert len(src) == 6 and src.duration_s == pytest.approx(1.2)
    with pytest.warns(RuntimeWarning, match="0003.png"):
        frames = list(src)
    assert [f.meta["source_index"] for f in frames] == [0, 1, 2, 4, 5]
    np.testing.assert_allclose([f.timestamp_s for f in frames], [0.0, 0.2, 0.4, 0.8, 1.0])
    # lossless PNG: exact pixels, converted to RGB order
    np.testing.assert_array_equal(frames[0].rgb, cv2.cvtColor(_frame_image(0), cv2.COLOR_BGR2RGB))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        VideoSource(empty)
