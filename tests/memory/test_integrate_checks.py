"""integrate() checks a frame again and checks its time before writing any layer.

A Frame is a mutable dataclass validated when built: a field changed later
must be refused by `SceneMemory.integrate` with the memory left as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from engram.memory.scene import SceneMemory
from engram.types import CameraIntrinsics, Frame, Pose

K = CameraIntrinsics(fx=40.0, fy=40.0, cx=19.5, cy=14.5, width=40, height=30)
POSE = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 1.0])


def _frame(i: int, t: float, depth: float = 2.0) -> Frame:
    ins = np.zeros((30, 40), np.int32)
    ins[10:20, 15:25] = 1
    return Frame(
        i,
        t,
        np.full((30, 40, 3), 80, np.uint8),
        np.full((30, 40), depth, np.float32),
        K,
        POSE,
        instances=ins,
        labels={1: "box"},
    )


def _mutations():
    yield "nan time", lambda f: setattr(f, "timestamp_s", float("nan"))
    yield "str time", lambda f: setattr(f, "timestamp_s", "soon")
    yield "float rgb", lambda f: setattr(f, "rgb", f.rgb.astype(np.float32))
    yield "rgb shape", lambda f: setattr(f, "rgb", f.rgb[:, :, :2])
    yield "raw pose", lambda f: setattr(f, "world_from_camera", np.eye(4))
    yield "depth dtype", lambda f: setattr(f, "depth_m", f.depth_m.astype(np.float64))
    yield "depth shape", lambda f: setattr(f, "depth_m", f.depth_m[:10])
    yield "depth list", lambda f: setattr(f, "depth_m", f.depth_m.tolist())
    yield "intrinsics", lambda f: setattr(f, "intrinsics", {"fx": 1})
    yield "instances dtype", lambda f: setattr(f, "instances", f.instances.astype(np.int64))
    yield "labels", lambda f: setattr(f, "labels", {"1": 3})
    yield "index", lambda f: setattr(f, "index", -1)
    yield "ns time", lambda f: setattr(f, "timestamp_s", 1.7e18)


@pytest.mark.parametrize("name,mutate", list(_mutations()), ids=[n for n, _ in _mutations()])
def test_a_frame_changed_after_it_was_built_is_refused_whole(name, mutate):
    mem = SceneMemory(voxel_size_m=0.2)
    mem.integrate(_frame(0, 0.0))
    before = mem.digest()
    f = _frame(1, 0.5)
    mutate(f)
    with pytest.raises(ValueError, match=r"Frame\.|timestamp"):
        mem.integrate(f)
    assert mem.digest() == before
    assert mem.integrate(_frame(2, 1.0)).mapped  # and the memory goes on


def test_a_time_jump_is_an_error_not_the_new_clock():
    mem = SceneMemory(voxel_size_m=0.2, max_time_gap_s=60.0)
    mem.integrate(_frame(0, 10.0))
    with pytest.raises(ValueError, match="time jumped"):
        mem.integrate(_frame(1, 10.0 + 3600.0))
    assert mem.last_timestamp_s == 10.0
    mem.integrate(_frame(2, 12.0))  # later frames are not locked out
    assert mem.frames_seen == 2
    with pytest.raises(ValueError, match="nanoseconds"):
        SceneMemory(voxel_size_m=0.2).integrate(_frame(0, 1.7e18))
    SceneMemory(voxel_size_m=0.2, max_time_gap_s=None).integrate(_frame(0, 1.7e9))  # epoch seconds are fine


def test_depth_under_min_range_is_no_return():
    mem = SceneMemory(voxel_size_m=0.2)
    rep = mem.integrate(_frame(0, 0.0, depth=1e-40))
    assert rep.n_points == 0 and not mem.objects.objects and mem.stats()["occupied_voxels"] == 0
    rep = mem.integrate(_frame(1, 0.1, depth=2.0))
    assert rep.n_points > 0 and mem.stats()["occupied_voxels"] > 0
