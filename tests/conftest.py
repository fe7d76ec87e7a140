"""Shared fixtures: the real sample data beside the repository, small synthetic frames, toy encoders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from engram.types import CameraIntrinsics, Frame, Pose

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (ICL-NUIM living room, one TUM frame); skips when absent."""
    if not (SHARED_DATA / "icl_livingroom1" / "trajectory.log").exists():
        pytest.skip(f"sample data not found at {SHARED_DATA} (see the README's data section)")
    return SHARED_DATA


@pytest.fixture
def small_intrinsics() -> CameraIntrinsics:
    return CameraIntrinsics(fx=80.0, fy=80.0, cx=39.5, cy=29.5, width=80, height=60)


@pytest.fixture
def wall_frame(small_intrinsics: CameraIntrinsics) -> Frame:
    """A camera at the origin looking along +x (world z up) at a flat wall 2 m away."""
    k = small_intrinsics
    depth = np.full((k.height, k.width), 2.0, dtype=np.float32)
    # OpenCV camera (z forward, x right, y down) looking along world +x with world z up.
    world_from_camera = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 1.0])
    return Frame(
        index=0,
        timestamp_s=0.0,
        rgb=np.full((k.height, k.width, 3), 128, np.uint8),
        depth_m=depth,
        intrinsics=k,
        world_from_camera=world_from_camera,
    )


def render_boxes(boxes, world_from_camera: Pose, k: CameraIntrinsics, floor_z: float | None = 0.0):
    """Ray-cast axis-aligned boxes (and a floor plane) analytically.

    Args:
        boxes: list of (instance_id, box_min xyz, box_max xyz).
        world_from_camera: OpenCV camera pose in the z-up world.
        k: intrinsics.
        floor_z: height of an infinite floor (instance 0), or None.

    Returns:
        depth_m "H W" float32 (0 = no hit) and instances "H W" int32.
    """
    us, vs = np.meshgrid(np.arange(k.width), np.arange(k.height))
    d_cam = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us, float)], -1).reshape(-1, 3)
    r = world_from_camera.rotation
    d_w = d_cam @ r.T  # ray direction with unit camera-z component
    o = world_from_camera.translation
    best = np.full(len(d_w), np.inf)
    ids = np.zeros(len(d_w), np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for iid, lo, hi in boxes:
            lo, hi = np.asarray(lo, float), np.asarray(hi, float)
            t1 = (lo - o) / d_w
            t2 = (hi - o) / d_w
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tmax >= tmin) & (tmin > 0) & (tmin < best)
            best[hit] = tmin[hit]
            ids[hit] = iid
        if floor_z is not None:
            t = (floor_z - o[2]) / d_w[:, 2]
            hit = (t > 0) & (t < best)
            best[hit] = t[hit]
            ids[hit] = 0
    depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32)  # t is z-depth since d_cam.z == 1
    return depth.reshape(k.height, k.width), ids.reshape(k.height, k.width)


@pytest.fixture
def box_renderer():
    return render_boxes


# ---------------------------------------------------------------------------
# tiny deterministic encoders for the episodic memory and video QA tests

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "grey": (128, 128, 128),
}


class ColourEncoder:
    """A tiny image encoder: the normalised 2x2x2-bin colour histogram plus a constant (9-d).

    Tags name the nearest colour of `COLOURS` with ``noun`` ("red wall"). ``fail_at_call``
    raises KeyboardInterrupt from that call of `encode` on, as a user stopping a long build.
    """

    name = "test-colour"
    dim = 9

    def __init__(self, noun: str = "wall", tag_prob: float = 0.9, fail_at_call: int | None = None):
        self.noun = noun
        self.tag_prob = tag_prob
        self.calls = 0
        self.fail_at_call = fail_at_call

    def encode(self, images):
        self.calls += 1
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            raise KeyboardInterrupt
        out = []
        for img in images:
            q = (np.asarray(img).reshape(-1, 3) >= 128).astype(int)
            h = np.bincount(q[:, 0] * 4 + q[:, 1] * 2 + q[:, 2], minlength=8).astype(np.float32)
            v = np.append(h / h.sum(), 0.05)
            out.append(v / np.linalg.norm(v))
        return np.stack(out).astype(np.float32)

    def tags(self, images, k=5):
        out = []
        for img in images:
            mean = np.asarray(img).reshape(-1, 3).mean(axis=0)
            name = min(COLOURS, key=lambda c: np.linalg.norm(mean - np.array(COLOURS[c])))
            out.append([(f"{name} {self.noun}", self.tag_prob)])
        return out


class WordEncoder:
    """A tiny text encoder: a hashed bag of words (64-d), punctuation ignored."""

    name = "test-words"
    dim = 64

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(",", " ").replace(";", " ").replace(":", " ").replace("?", " ").split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class CropClassifier:
    """A stand-in crop classifier: ImageNet-sized logits and unit features from each crop's mean colour.

    ``calls`` logs the number of crops of every `logits_and_features` call.
    """

    name = "test-crops"

    def __init__(self, seed: int = 0, dim: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.w_logits = rng.normal(size=(3, 1000)).astype(np.float32) * 4.0
        self.w_feats = rng.normal(size=(3, dim)).astype(np.float32)
        self.calls: list[int] = []

    def logits_and_features(self, images):
        images = list(images)
        self.calls.append(len(images))
        x = np.array([im.reshape(-1, 3).mean(axis=0) / 255.0 for im in images], np.float32).reshape(-1, 3)
        f = x @ self.w_feats + 0.1
        return x @ self.w_logits, f / np.linalg.norm(f, axis=1, keepdims=True)


@pytest.fixture
def crop_classifier() -> type[CropClassifier]:
    """The `CropClassifier` class (call it for an instance with its own call log)."""
    return CropClassifier


@pytest.fixture
def colour_encoder() -> type[ColourEncoder]:
    """The `ColourEncoder` class (call it for an instance; subclass it for a variant)."""
    return ColourEncoder


@pytest.fixture
def word_encoder() -> type[WordEncoder]:
    """The `WordEncoder` class."""
    return WordEncoder
