"""Instance masks to 3D detections, checked against analytically rendered boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram.perception.geometry import frame_points_world
from engram.perception.segmentation import (
    Detection,
    Detector,
    InstanceMasks,
    detections_from_instances,
    detections_from_masks,
    instances_from_masks,
    largest_clusters_mask,
    voxel_cluster_labels,
)
from engram.types import CameraIntrinsics, Frame, Pose


def look_at(eye, target) -> Pose:
    """OpenCV camera at ``eye`` looking at ``target`` in a z-up world."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return Pose.from_rt(np.stack([x, y, z], axis=1), eye)


def render(boxes, world_from_camera: Pose, k: CameraIntrinsics):
    """Exact depth and instance ids of axis-aligned boxes [(lo, hi, id)] by slab ray casting."""
    us, vs = np.meshgrid(np.arange(k.width), np.arange(k.height))
    cam = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us, float)], axis=-1).reshape(-1, 3)
    d = cam @ world_from_camera.rotation.T  # t along d is depth along the optical axis
    o = world_from_camera.translation
    depth = np.full(len(d), np.inf)
    ids = np.zeros(len(d), np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo, hi, iid in boxes:
            t1 = (np.asarray(lo) - o) / d
            t2 = (np.asarray(hi) - o) / d
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tmax >= np.maximum(tmin, 0)) & (tmin > 0) & (tmin < depth)
            depth[hit] = tmin[hit]
            ids[hit] = iid
    depth[~np.isfinite(depth)] = 0.0
    return depth.reshape(k.height, k.width).astype(np.float32), ids.reshape(k.height, k.width)


K = CameraIntrinsics.from_fov(160, 120, 60.0)
BOX = ((0.0, 0.0, 0.0), (0.6, 0.4, 0.8), 7)
FLOOR = ((-5.0, -5.0, -0.1), (5.0, 5.0, 0.0), 1)


def make_frame(boxes, labels, eye=(2.0, -1.5, 1.5), target=(0.3, 0.2, 0.4), index=0):
    pose = look_at(eye, target)
    depth, ids = render(boxes, pose, K)
    rgb = np.zeros((K.height, K.width, 3), np.uint8)
    rgb[..., 0] = (ids * 37) % 256
    return Frame(
        index=index,
        timestamp_s=float(index),
        rgb=rgb,
        depth_m=depth,
        intrinsics=K,
        world_from_camera=pose,
        instances=ids,
        labels=labels,
    )


def on_box_surface(points, lo, hi, tol=1e-3):
    lo, hi = np.asarray(lo), np.asarray(hi)
    inside = np.all((points >= lo - tol) & (points <= hi + tol), axis=1)
    on_face = np.any((np.abs(points - lo) < tol) | (np.abs(points - hi) < tol), axis=1)
    return inside & on_face


def test_points_lie_on_the_rendered_box_and_counts_match_the_mask():
    frame = make_frame([FLOOR, BOX], {1: "floor", 7: "cabinet"})
    dets = detections_from_instances(frame, stride=1, min_pixels=10, erode_edges=False, denoise_voxel_m=None)
    assert [d.label for d in dets] == ["cabinet"]  # the floor is structure, ignored
    det = dets[0]
    mask = frame.instances == 7
    assert det.pixel_count == int(mask.sum())
    rows, cols = np.nonzero(mask)
    assert det.bbox_xyxy == (cols.min(), rows.min(), cols.max(), rows.max())
    assert len(det.points_world) == int(mask.sum())
    assert on_box_surface(det.points_world.astype(float), BOX[0], BOX[1]).all()
    # the same pixels through the general backprojection
    pts, px = frame_points_world(frame, return_pixels=True)
    ref = pts[mask[px[:, 1], px[:, 0]]]
    np.testing.assert_allclose(np.sort(det.points_world, axis=0), np.sort(ref, axis=0), atol=1e-4)
    assert det.points_world.dtype == np.float32 and det.colors.dtype == np.uint8
    assert np.all(det.colors[:, 0] == (7 * 37) % 256)


def test_stride_erosion_and_thresholds():
    frame = make_frame([FLOOR, BOX, ((1.5, 1.5, 0.0), (1.55, 1.55, 0.05), 9)], {1: "floor", 7: "cabinet", 9: "pen"})
    full = detections_from_instances(
        frame, stride=1, min_pixels=1, min_points=1, erode_edges=False, denoise_voxel_m=None
    )
    strided = detections_from_instances(
        frame, stride=2, min_pixels=1, min_points=1, erode_edges=False, denoise_voxel_m=None
    )
    eroded = detections_from_instances(frame, stride=1, min_pixels=1, min_points=1, denoise_voxel_m=None)
    by = lambda ds: {d.label: d for d in ds}  # noqa: E731
    n_full = len(by(full)["cabinet"].points_world)
    assert abs(len(by(strided)["cabinet"].points_world) - n_full / 4) < 0.1 * n_full
    assert len(by(eroded)["cabinet"].points_world) < n_full
    # pixel_count is a full-resolution fact whatever the stride
    assert by(strided)["cabinet"].pixel_count == by(full)["cabinet"].pixel_count
    pen_px = int((frame.instances == 9).sum())
    assert 0 < pen_px < 40
    assert "pen" not in by(detections_from_instances(frame, min_pixels=pen_px + 1))
    assert "floor" in by(detections_from_instances(frame, min_pixels=1, ignore_labels=()))


def test_flying_pixels_are_dropped_by_denoising():
    frame = make_frame([FLOOR, BOX], {1: "floor", 7: "cabinet"})
    depth = frame.depth_m.copy()
    rows, cols = np.nonzero(frame.instances == 7)
    stray = np.arange(0, len(rows), 97)[:6]
    depth[rows[stray], cols[stray]] += 1.5  # mixed-depth pixels far behind the object
    noisy = Frame(
        index=0,
        timestamp_s=0.0,
        rgb=frame.rgb,
        depth_m=depth,
        intrinsics=K,
        world_from_camera=frame.world_from_camera,
        instances=frame.instances,
        labels=frame.labels,
    )
    raw = detections_from_instances(noisy, stride=1, erode_edges=False, denoise_voxel_m=None)[0]
    clean = detections_from_instances(noisy, stride=1, erode_edges=False, denoise_voxel_m=0.05)[0]
    assert (~on_box_surface(raw.points_world.astype(float), BOX[0], BOX[1])).sum() == len(stray)
    assert on_box_surface(clean.points_world.astype(float), BOX[0], BOX[1]).all()
    assert len(clean.points_world) == len(raw.points_world) - len(stray)


def test_voxel_clusters_match_scipy_on_random_grids():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    for _ in range(5):
        grid = rng.random((12, 10, 8)) < 0.12
        keys = np.argwhere(grid)
        keys = keys[rng.permutation(len(keys))] - [4, 6, 3]  # negative keys too
        pts = (keys + 0.05 + rng.random(keys.shape) * 0.9) * 0.1  # one point inside each voxel
        ours = voxel_cluster_labels(pts, 0.1)
        ref_img, n = ndimage.label(grid, structure=np.ones((3, 3, 3)))
        ref = ref_img[tuple((keys + [4, 6, 3]).T)]
        assert ours.max() + 1 == n
        # same partition: a bijection between labels
        pairs = set(zip(ours.tolist(), ref.tolist()))
        assert len(pairs) == n
        sizes = np.bincount(ours)
        assert np.all(np.diff(sizes) <= 0)  # ordered by size


def test_largest_clusters_keep_both_halves_of_an_occluded_object():
    rng = np.random.default_rng(0)
    a = rng.random((500, 3)) * [0.4, 0.4, 0.02]
    b = a + [0.6, 0.0, 0.0]  # the other half beyond an occluder
    noise = rng.random((5, 3)) * 0.02 + [3.0, 3.0, 3.0]
    keep = largest_clusters_mask(np.concatenate([a, b, noise]), 0.05)
    assert keep[:1000].all() and not keep[1000:].any()


def test_masks_from_a_detector_resolve_overlaps_by_score():
    frame = make_frame([FLOOR, BOX], {1: "floor", 7: "cabinet"})
    m1 = frame.instances == 7
    m2 = np.zeros_like(m1)
    m2[:, : K.width // 2] = m1[:, : K.width // 2]  # overlaps the left half of m1
    masks = InstanceMasks(
        masks=np.stack([m1, m2]),
        labels=["cabinet", "drawer"],
        scores=[0.6, 0.9],
        embeddings=np.eye(2, 4, dtype=np.float32),
    )
    ids, labels, scores = instances_from_masks(masks)
    assert np.all(ids[m2] == 2) and np.all(ids[m1 & ~m2] == 1) and np.all(ids[~m1] == 0)
    # the higher score wins whatever the order; of equal scores, the later mask
    flipped = InstanceMasks(masks=np.stack([m2, m1]), labels=["drawer", "cabinet"], scores=[0.9, 0.6])
    ids_f, _, _ = instances_from_masks(flipped)
    assert np.all(ids_f[m2] == 1) and np.all(ids_f[m1 & ~m2] == 2)
    tied = InstanceMasks(masks=np.stack([m2, m1]), labels=["drawer", "cabinet"], scores=[0.5, 0.5])
    ids_t, _, _ = instances_from_masks(tied)
    assert np.all(ids_t[m1] == 2) and np.all(ids_t[~m1] == 0)
    dets = detections_from_masks(frame, masks, stride=1, min_pixels=1)
    by = {d.label: d for d in dets}
    assert by["drawer"].score == pytest.approx(0.9)
    assert by["drawer"].pixel_count == int(m2.sum())
    assert by["cabinet"].pixel_count == int((m1 & ~m2).sum())
    np.testing.assert_array_equal(by["drawer"].embedding, [0, 1, 0, 0])

    class Fixed:
        name = "fixed"

        def detect(self, frame):
            return masks

    assert isinstance(Fixed(), Detector)


def test_mask_crops():
    frame = make_frame([FLOOR, BOX], {1: "floor", 7: "cabinet"})
    det = detections_from_instances(frame, keep_masks=True)[0]
    x0, y0, x1, y1 = det.bbox_xyxy
    np.testing.assert_array_equal(det.mask, frame.instances[y0 : y1 + 1, x0 : x1 + 1] == 7)


def test_bad_input_is_rejected():
    frame = make_frame([FLOOR, BOX], {1: "floor", 7: "cabinet"})
    bare = Frame(index=0, timestamp_s=0.0, rgb=frame.rgb, instances=frame.instances, labels=frame.labels)
    with pytest.raises(ValueError, match="depth_m"):
        detections_from_instances(bare)
    no_ins = Frame(
        index=0,
        timestamp_s=0.0,
        rgb=frame.rgb,
        depth_m=frame.depth_m,
        intrinsics=K,
        world_from_camera=frame.world_from_camera,
    )
    with pytest.raises(ValueError, match="instance"):
        detections_from_instances(no_ins)
    with pytest.raises(ValueError, match="stride"):
        detections_from_instances(frame, stride=0)
    with pytest.raises(ValueError, match="points_world"):
        Detection(1, "x", 1.0, 1, np.full((2, 3), np.nan), np.zeros((2, 3), np.uint8), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="scores"):
        InstanceMasks(np.zeros((1, 4, 4), bool), ["a"], [1.5])
    # unknown ids in the instance image (no label) are skipped, not an error
    frame.labels.pop(7)
    assert detections_from_instances(frame) == []


def test_look_at_helper_is_rigid_and_looks_at_target():
    pose = look_at((2.0, -1.5, 1.5), (0.3, 0.2, 0.4))
    fwd = pose.rotation[:, 2]
    to_target = np.array([0.3, 0.2, 0.4]) - [2.0, -1.5, 1.5]
    assert math.isclose(float(fwd @ to_target / np.linalg.norm(to_target)), 1.0, abs_tol=1e-9)


@pytest.mark.parametrize("stride, erode", [(1, False), (2, True), (3, True)])
def test_instance_ids_are_names_only_small_or_huge_or_negative(stride, erode):
    # small ids take a table-indexed pass, huge or negative ones the sorting one: the same detections
    boxes = [FLOOR, BOX, ((1.0, 1.2, 0.0), (1.4, 1.5, 0.5), 9), ((-0.6, 0.8, 0.0), (-0.3, 1.1, 0.9), 4)]
    frame = make_frame(boxes, {1: "floor", 7: "cabinet", 9: "box", 4: "lamp"})
    frame.depth_m[::7, ::5] = np.nan  # some pixels without depth
    for shift in (0, 1 << 30, -(1 << 20)):
        ids = np.where(frame.instances > 0, frame.instances + shift, 0).astype(np.int32)
        names = {i + shift: n for i, n in frame.labels.items()}
        got = detections_from_instances(frame, stride=stride, erode_edges=erode, instances=ids, labels=names)
        if shift == 0:
            want = got
            assert sorted(d.label for d in want) == ["box", "cabinet", "lamp"]
            continue
        assert [(d.label, d.pixel_count, d.bbox_xyxy) for d in got] == [
            (d.label, d.pixel_count, d.bbox_xyxy) for d in want
        ]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.points_world, b.points_world)
