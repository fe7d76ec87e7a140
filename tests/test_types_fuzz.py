"""Property-based tests of engram.types: every bad Frame field raises ValueError naming it, good ones construct."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engram.types import CameraIntrinsics, Frame, Pose

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def rigid_poses(draw) -> np.ndarray:
    q = np.array(draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4)))
    assume(np.linalg.norm(q) > 1e-3)
    x, y, z, w = q / np.linalg.norm(q)
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = draw(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3))
    return m


@st.composite
def good_frames(draw) -> dict:
    h, w = draw(sizes)
    depth = draw(
        hnp.arrays(
            np.float32,
            (h, w),
            elements=st.one_of(
                st.floats(0, float(np.finfo(np.float32).max), width=32),  # huge but finite depths are legal
                st.just(float("nan")),  # no return
            ),
        )
    )
    n_ids = draw(st.integers(0, 4))
    ids = draw(hnp.arrays(np.int32, (h, w), elements=st.integers(0, max(n_ids, 0))))
    return dict(
        index=draw(st.integers(0, 2**40)),
        timestamp_s=draw(st.floats(-1e9, 1e9)),
        rgb=draw(hnp.arrays(np.uint8, (h, w, 3))),
        depth_m=depth,
        intrinsics=CameraIntrinsics(
            fx=draw(st.floats(1e-3, 1e5)), fy=draw(st.floats(1e-3, 1e5)), cx=w / 2, cy=h / 2, width=w, height=h
        ),
        world_from_camera=draw(rigid_poses()),
        instances=ids,
        labels={i: f"thing{i}" for i in range(1, n_ids + 1)},
    )


def _assert_rejected(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError) as info:
        Frame(**kwargs)
    assert field in str(info.value), f"error does not name {field}: {info.value}"


# ---------------------------------------------------------------------------
# good values


@FUZZ
@given(good_frames())
def test_good_frames_construct_and_keep_their_values(kw: dict) -> None:
    f = Frame(**kw)
    assert f.has_geometry and (f.height, f.width) == kw["rgb"].shape[:2]
    assert isinstance(f.world_from_camera, Pose)
    np.testing.assert_array_equal(f.world_from_camera.matrix, kw["world_from_camera"])
    np.testing.assert_array_equal(f.depth_m, kw["depth_m"])  # NaN == NaN for this helper
    # the rigid pose survives an inverse round trip
    tol = 1e-6 * (1 + np.abs(kw["world_from_camera"]).max())
    assert (f.world_from_camera @ f.world_from_camera.inverse()).allclose(Pose(), atol=tol)


@FUZZ
@given(sizes)
def test_video_frame_needs_rgb_and_time_only(hw) -> None:
    f = Frame(index=0, timestamp_s=0.0, rgb=np.zeros((*hw, 3), np.uint8))
    assert not f.has_geometry and f.depth_m is None and f.labels == {}


# ---------------------------------------------------------------------------
# bad values, one field at a time


@FUZZ
@given(good_frames(), st.data())
def test_bad_rgb(kw: dict, data) -> None:
    h, w = kw["rgb"].shape[:2]
    bad = data.draw(
        st.one_of(
            hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16, np.uint16, np.int32, np.bool_]), (h, w, 3)),
            hnp.arrays(np.uint8, st.sampled_from([(h, w), (h, w, 4), (h, w, 1), (h, w, 3, 1), (h,)])),
            hnp.arrays(np.uint8, st.sampled_from([(0, w, 3), (h, 0, 3), (0, 0, 3)])),
            st.just(np.zeros((h, w, 3), np.uint8).tolist()),
            st.none(),
            st.text(max_size=3),
        )
    )
    _assert_rejected({**kw, "rgb": bad, "depth_m": None, "intrinsics": None, "instances": None}, "rgb")


@FUZZ
@given(good_frames(), st.data())
def test_bad_depth(kw: dict, data) -> None:
    h, w = kw["rgb"].shape[:2]
    d = kw["depth_m"].copy()
    choice = data.draw(st.sampled_from(["inf", "negative", "dtype", "shape", "type"]))
    if choice in ("inf", "negative"):
        i, j = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
        d[i, j] = (
            data.draw(st.sampled_from([np.inf, -np.inf]))
            if choice == "inf"
            else -data.draw(st.floats(float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max), width=32))
        )
        bad = d
    elif choice == "dtype":
        with np.errstate(invalid="ignore", over="ignore"):
            bad = d.astype(data.draw(st.sampled_from([np.float64, np.float16, np.int32, np.uint16])))
    elif choice == "shape":
        bad = np.zeros(data.draw(st.sampled_from([(h + 1, w), (h, w + 1), (h, w, 1), (w * h,)])), np.float32)
    else:
        bad = d.tolist()
    _assert_rejected({**kw, "depth_m": bad}, "depth_m")


@FUZZ
@given(good_frames(), st.data())
def test_non_rigid_poses(kw: dict, data) -> None:
    m = kw["world_from_camera"].copy()
    choice = data.draw(st.sampled_from(["scale", "shear", "reflect", "nan", "inf", "last_row", "shape", "junk"]))
    if choice == "scale":
        s = data.draw(st.floats(0.0, 10.0).filter(lambda v: abs(v - 1.0) > 1e-2))
        m[:3, :3] *= s
        bad = m
    elif choice == "shear":
        m[0, 1] += data.draw(st.floats(0.01, 5.0))
        bad = m
    elif choice == "reflect":
        m[:3, 0] *= -1
        bad = m
    elif choice in ("nan", "inf"):
        i, j = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
        m[i, j] = np.nan if choice == "nan" else np.inf
        bad = m
    elif choice == "last_row":
        m[3, data.draw(st.integers(0, 3))] += data.draw(st.floats(0.01, 10.0))
        bad = m
    elif choice == "shape":
        bad = m[: data.draw(st.integers(0, 3))]
    else:
        bad = data.draw(st.sampled_from(["pose", [[1, 2], [3]], {"R": 1}, object()]))
    _assert_rejected({**kw, "world_from_camera": bad}, "world_from_camera")


@FUZZ
@given(good_frames(), st.data())
def test_bad_index_and_time(kw: dict, data) -> None:
    bad_index = data.draw(
        st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(), st.text(max_size=3), st.none())
    )
    _assert_rejected({**kw, "index": bad_index}, "index")
    bad_time = data.draw(
        st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf]),
            st.none(),
            st.text(max_size=4),
            st.booleans(),
            st.binary(max_size=3),
            st.just([1.0]),
        )
    )
    _assert_rejected({**kw, "timestamp_s": bad_time}, "timestamp_s")


@FUZZ
@given(good_frames(), st.data())
def test_bad_intrinsics_instances_labels(kw: dict, data) -> None:
    h, w = kw["rgb"].shape[:2]
    k = kw["intrinsics"]
    other = CameraIntrinsics(k.fx, k.fy, k.cx, k.cy, w + data.draw(st.integers(1, 5)), h)
    bad_k = data.draw(st.sampled_from([other, (k.fx, k.fy, k.cx, k.cy), "K"]))
    _assert_rejected({**kw, "intrinsics": bad_k}, "intrinsics")
    bad_ids = data.draw(
        st.one_of(
            hnp.arrays(st.sampled_from([np.int64, np.uint32, np.float32, np.int16]), (h, w)),
            hnp.arrays(np.int32, st.sampled_from([(h + 1, w), (h, w, 1), (h * w,)])),
            st.just([[0] * w] * h),
        )
    )
    _assert_rejected({**kw, "instances": bad_ids}, "instances")
    bad_labels = data.draw(
        st.one_of(
            st.just([(1, "chair")]),
            st.dictionaries(st.text(min_size=1, max_size=3), st.text(max_size=3), min_size=1, max_size=3),
            st.dictionaries(st.integers(0, 9), st.integers(), min_size=1, max_size=3),
            st.dictionaries(st.floats(allow_nan=False), st.text(max_size=3), min_size=1, max_size=3),
        )
    )
    _assert_rejected({**kw, "labels": bad_labels}, "labels")


def _valid_intrinsic(field: str, value) -> bool:
    """The rule, written out: finite numbers; fx, fy > 0; width, height positive whole numbers; no bools."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if field in ("fx", "fy"):
        return value > 0
    if field in ("width", "height"):
        return value > 0 and float(value).is_integer()
    return True


@FUZZ
@given(
    st.sampled_from(["fx", "fy", "cx", "cy", "width", "height"]),
    st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, None, "3", b"3", [1.0], -1, 0, 2.5, 3.0, True, False]),
        st.floats(),
        st.integers(-10, 10),
    ),
)
def test_camera_intrinsics_fields(field: str, value) -> None:
    kw = dict(fx=100.0, fy=100.0, cx=10.0, cy=10.0, width=20, height=20)
    kw[field] = value
    if _valid_intrinsic(field, value):
        k = CameraIntrinsics(**kw)
        assert getattr(k, field) == value
        return
    with pytest.raises(ValueError, match=f"CameraIntrinsics\\.{field[:-1] if field in ('fx', 'fy') else field}"):
        CameraIntrinsics(**kw)


# ---------------------------------------------------------------------------
# odd but legal frames through SceneMemory.integrate: applied, or rejected with
# ValueError and the memory unchanged (compared by digest)

_MEMORY: list = []


def _memory():
    if not _MEMORY:
        scene = pytest.importorskip("engram.memory.scene")
        _MEMORY.append(scene.SceneMemory(detector="oracle"))
    return _MEMORY[0]


@st.composite
def odd_frames(draw) -> Frame:
    h, w = draw(sizes)
    depth = draw(
        hnp.arrays(
            np.float32,
            (h, w),
            elements=st.one_of(
                st.just(0.0),
                st.just(float("nan")),
                st.floats(0.0, 20.0, width=32),
                st.floats(1e3, float(np.finfo(np.float32).max), width=32),
            ),
        )
    )
    pose = draw(rigid_poses())
    if draw(st.booleans()):
        pose[:3, 3] = draw(st.lists(st.floats(-1e7, 1e7), min_size=3, max_size=3))  # possibly outside the map
    n_ids = draw(st.integers(0, 3))
    return Frame(
        index=draw(st.integers(0, 2**31)),
        timestamp_s=draw(st.floats(-1e6, 1e6)),
        rgb=draw(hnp.arrays(np.uint8, (h, w, 3))),
        depth_m=depth if draw(st.booleans()) else None,
        intrinsics=CameraIntrinsics(
            fx=draw(st.floats(0.5, 1e4)), fy=draw(st.floats(0.5, 1e4)), cx=w / 2, cy=h / 2, width=w, height=h
        ),
        world_from_camera=pose if draw(st.booleans()) else None,
        instances=draw(hnp.arrays(np.int32, (h, w), elements=st.integers(0, n_ids))) if n_ids else None,
        labels={i: f"thing{i}" for i in range(1, n_ids + 1)},
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(odd_frames(), min_size=1, max_size=3))
def test_integrate_applies_or_rejects_without_change(frames: list[Frame]) -> None:
    import warnings

    memory = _memory()
    for frame in frames:
        before, seen = memory.digest(), memory.frames_seen
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                memory.integrate(frame)
            except ValueError:
                assert memory.digest() == before, "a rejected frame changed the memory"
                continue
        assert memory.frames_seen == seen + 1


def test_integrate_rejects_what_is_not_a_frame() -> None:
    memory = _memory()
    before = memory.digest()
    for bad in (None, {"rgb": np.zeros((2, 2, 3), np.uint8)}, np.zeros((2, 2, 3), np.uint8), "frame"):
        with pytest.raises(ValueError, match="Frame"):
            memory.integrate(bad)
    assert memory.digest() == before
