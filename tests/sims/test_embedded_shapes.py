"""The embedded world's composed objects: parts inside their boxes, rendered where they are."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram.perception.geometry import backproject_depth
from engram.sims.embedded import EmbeddedSim, generate_apartment


def _part_extent(shape: str, half: tuple[float, float, float]) -> np.ndarray:
    if shape == "box":
        return np.asarray(half)
    if shape == "cylinder":
        return np.array([half[0], half[0], half[2]])
    return np.full(3, half[0])  # sphere


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_part_lies_inside_its_objects_box(seed: int) -> None:
    spec = generate_apartment(seed)
    multi = 0
    for obj in spec.all_objects():
        half = np.asarray(obj.half_extents_m)
        for part in obj.parts:
            reach = np.abs(np.asarray(part.offset_m)) + _part_extent(part.shape, part.half_extents_m)
            assert np.all(reach <= half + 1e-9), (obj.label, part, obj.half_extents_m)
        if obj.parts:
            # each box is tight: the parts reach every face of it
            lo = np.min([np.asarray(p.offset_m) - _part_extent(p.shape, p.half_extents_m) for p in obj.parts], axis=0)
            hi = np.max([np.asarray(p.offset_m) + _part_extent(p.shape, p.half_extents_m) for p in obj.parts], axis=0)
            np.testing.assert_allclose(lo, -half, atol=1e-6, err_msg=obj.label)
            np.testing.assert_allclose(hi, half, atol=1e-6, err_msg=obj.label)
        multi += len(obj.parts) > 1
    assert multi >= 5


def test_composed_furniture_renders_inside_its_box_and_the_bathtub_is_hollow() -> None:
    """Cabinets, desks, toilets, bathtubs and beds are built of several parts: what the camera
    sees of each, back-projected, lies in its box; looking down into a bathtub, the camera sees
    its bottom below the rim (the depth shows the basin, not a lid)."""
    seen: set[str] = set()
    hollow = False
    for seed in range(6):
        spec = generate_apartment(seed)
        targets = [f for f in spec.furniture if len(f.parts) > 1 and f.label != "shelf"]
        if not targets:
            continue
        sim = EmbeddedSim(seed=seed, width=160, height=120)
        try:
            for obj in targets:
                c, s = math.cos(obj.yaw_rad), math.sin(obj.yaw_rad)
                front = np.array([-s, c])  # local +y: the side facing the room
                for dist in (1.0, 1.4, 1.8):
                    xy = np.asarray(obj.position_m[:2]) + front * (obj.half_extents_m[1] + dist)
                    if not sim.is_free(*xy):
                        continue
                    frame = sim.set_agent_pose(float(xy[0]), float(xy[1]), math.atan2(-front[1], -front[0]))
                    mask = frame.instances == obj.instance_id
                    if mask.sum() < 100:
                        continue
                    depth = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
                    pts = frame.world_from_camera.transform_points(backproject_depth(depth, frame.intrinsics))
                    local = (pts - np.asarray(obj.position_m)) @ np.array([[c, -s, 0.0], [s, c, 0.0], [0, 0, 1.0]])
                    outside = np.abs(local) - np.asarray(obj.half_extents_m)
                    assert outside.max() < 0.01, (obj.label, outside.max())
                    seen.add(obj.label)
                    if obj.label == "bathtub":
                        rim_z = obj.position_m[2] + obj.half_extents_m[2]
                        hollow |= bool(np.any(pts[:, 2] < rim_z - 0.2))
                    break
        finally:
            sim.close()
    assert {"cabinet", "bed", "bathtub"} <= seen, seen
    assert hollow
