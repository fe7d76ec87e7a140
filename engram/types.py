"""The shared vocabulary of engram: camera intrinsics, rigid poses and frames.

Every source yields `Frame`s, every layer consumes them. Validation happens
here, once, when a value is built: a wrong shape, dtype or a non-rigid pose
raises `ValueError` naming the field, so no layer further down has to guess.
This module imports nothing of engram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MAX_TIMESTAMP_S", "CameraIntrinsics", "Pose", "Frame"]

_RIGID_TOL = 1e-4

# Beyond this a time in seconds is a unit mistake (1.7e18 is nanoseconds since 1970), not a clock.
MAX_TIMESTAMP_S = 1e11


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera intrinsics in pixels.

    Pixel centres sit at integer coordinates: the top-left pixel's centre is
    (0, 0), so a 640-wide image centred exactly has ``cx = 319.5``.

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels.
        width, height: image size in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.floating, np.integer))
                or not math.isfinite(value)
            ):
                raise ValueError(f"CameraIntrinsics.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"CameraIntrinsics.fx/fy must be positive, got fx={self.fx}, fy={self.fy}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.floating, np.integer))
                or not math.isfinite(value)
                or int(value) != value
                or value <= 0
            ):
                raise ValueError(f"CameraIntrinsics.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))

    @classmethod
    def from_fov(cls, width: int, height: int, vertical_fov_deg: float) -> CameraIntrinsics:
        """Square-pixel intrinsics from the vertical field of view (OpenGL-style renderers)."""
        if not 0.0 < vertical_fov_deg < 180.0:
            raise ValueError(f"vertical_fov_deg must be in (0, 180), got {vertical_fov_deg}")
        f = 0.5 * height / math.tan(math.radians(vertical_fov_deg) / 2.0)
        return cls(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 calibration matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, factor: float) -> CameraIntrinsics:
        """Intrinsics of the same camera with the image resized by ``factor``."""
        w = max(1, int(round(self.width * factor)))
        h = max(1, int(round(self.height * factor)))
        sx, sy = w / self.width, h / self.height
        return CameraIntrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=w,
            height=h,
        )


class Pose:
    """A rigid transform ``a_from_b`` as a 4x4 float64 matrix.

    Name poses by what they map: ``world_from_camera`` takes points in the
    camera frame to the world frame, so chains read right to left:
    ``world_from_camera = world_from_base @ base_from_camera``.

    ``pose @ pose`` composes; ``pose @ points`` (N x 3) transforms points.
    """

    __slots__ = ("_m", "_inv")

    def __init__(self, matrix: Any = None) -> None:
        if matrix is None:
            m = np.eye(4)
        else:
            try:
                m = np.array(matrix, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Pose matrix must be numeric 4x4, got {type(matrix).__name__}") from exc
        if m.shape != (4, 4):
            raise ValueError(f"Pose matrix must have shape (4, 4), got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("Pose matrix contains NaN or inf")
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
            raise ValueError(f"Pose matrix last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        r = m[:3, :3]
        err = np.abs(r.T @ r - np.eye(3)).max()
        if err > _RIGID_TOL:
            raise ValueError(f"Pose rotation is not orthonormal (max |R^T R - I| = {err:.2e}): not a rigid transform")
        det = np.linalg.det(r)
        if det < 0:
            raise ValueError(f"Pose rotation has determinant {det:.3f}: a reflection, not a rigid transform")
        m.setflags(write=False)
        self._m = m
        self._inv: Pose | None = None

    # construction -------------------------------------------------------
    @classmethod
    def identity(cls) -> Pose:
        return cls()

    @classmethod
    def from_rt(cls, rotation: Any, translation: Any) -> Pose:
        """From a 3x3 rotation and a 3-vector translation."""
        r = np.asarray(rotation, dtype=np.float64)
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        if r.shape != (3, 3) or t.shape != (3,):
            raise ValueError(
                f"Pose.from_rt needs a (3, 3) rotation and a (3,) translation, got {r.shape} and {t.shape}"
            )
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = t
        return cls(m)

    @classmethod
    def from_quaternion(cls, qxyzw: Any, translation: Any) -> Pose:
        """From a unit quaternion in (x, y, z, w) order and a translation."""
        q = np.asarray(qxyzw, dtype=np.float64).reshape(-1)
        if q.shape != (4,) or not np.all(np.isfinite(q)):
            raise ValueError(f"quaternion must be 4 finite numbers (x, y, z, w), got {q}")
        n = np.linalg.norm(q)
        if abs(n - 1.0) > 1e-3:
            raise ValueError(f"quaternion must have unit norm, got norm {n:.4f}")
        x, y, z, w = q / n
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        return cls.from_rt(r, translation)

    @classmethod
    def from_xyz_yaw(cls, x: float, y: float, z: float, yaw_rad: float) -> Pose:
        """A pose rotated by ``yaw_rad`` about +z and translated to (x, y, z)."""
        c, s = math.cos(yaw_rad), math.sin(yaw_rad)
        return cls.from_rt([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], [x, y, z])

    # access -------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray:
        """The read-only 4x4 matrix."""
        return self._m

    @property
    def rotation(self) -> np.ndarray:
        return self._m[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self._m[:3, 3]

    def as_quaternion(self) -> np.ndarray:
        """The rotation as a unit quaternion (x, y, z, w), w >= 0."""
        r = self.rotation
        tr = np.trace(r)
        if tr > 0:
            s = math.sqrt(tr + 1.0) * 2
            w, x, y, z = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
            w, x, y, z = (r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
        elif r[1, 1] > r[2, 2]:
            s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
            w, x, y, z = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s
        else:
            s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
            w, x, y, z = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s
        q = np.array([x, y, z, w])
        q /= np.linalg.norm(q)
        return -q if q[3] < 0 else q

    # algebra ------------------------------------------------------------
    def inverse(self) -> Pose:
        """The inverse transform (computed once: the matrix is read-only)."""
        if self._inv is None:
            r = self.rotation
            m = np.eye(4)
            m[:3, :3] = r.T
            m[:3, 3] = -r.T @ self.translation
            # the inverse of a checked rigid transform: not checked again
            inv = Pose.__new__(Pose)
            m.setflags(write=False)
            inv._m, inv._inv = m, None
            self._inv = inv
        return self._inv

    def transform_points(self, points: Any) -> np.ndarray:
        """Apply to an (N, 3) array of points; returns float64 (N, 3)."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {p.shape}")
        return p @ self.rotation.T + self.translation

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, Pose):
            return Pose(self._m @ other._m)
        return self.transform_points(other)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pose) and np.array_equal(self._m, other._m)

    def __hash__(self) -> int:
        return hash(self._m.tobytes())

    def allclose(self, other: Pose, atol: float = 1e-9) -> bool:
        return np.allclose(self._m, other._m, atol=atol)

    def __repr__(self) -> str:
        t = np.array2string(self.translation, precision=3, suppress_small=True)
        return f"Pose(t={t}, q_xyzw={np.array2string(self.as_quaternion(), precision=3)})"

    def __reduce__(self):  # pickling keeps the matrix only
        return (Pose, (np.array(self._m),))


def _as_pose(value: Any, name: str) -> Pose | None:
    if value is None or isinstance(value, Pose):
        return value
    try:
        return Pose(value)
    except ValueError as exc:
        raise ValueError(f"Frame.{name}: {exc}") from exc


@dataclass
class Frame:
    """One observation from any source.

    A video frame carries ``rgb`` and time only; a robot or simulator frame
    carries depth, intrinsics and pose as well.

    Attributes:
        index: position of the frame in its stream (>= 0).
        timestamp_s: time of capture in seconds (stream or wall time).
        rgb: "H W 3" uint8 colour image.
        depth_m: "H W" float32 metric depth along the optical axis; 0 or NaN
            means no return. Negative or infinite values are rejected.
        intrinsics: pinhole intrinsics matching the image size.
        world_from_camera: camera pose, OpenCV camera (x right, y down,
            z forward) in a z-up metric world.
        instances: "H W" int32 instance ids (0 = background).
        labels: instance id -> category name.
        meta: free-form source details (sensor name, file path, ...).
    """

    index: int
    timestamp_s: float
    rgb: np.ndarray
    depth_m: np.ndarray | None = None
    intrinsics: CameraIntrinsics | None = None
    world_from_camera: Pose | None = None
    instances: np.ndarray | None = None
    labels: dict[int, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)) or self.index < 0:
            raise ValueError(f"Frame.index must be a non-negative integer, got {self.index!r}")
        self.index = int(self.index)
        try:
            if isinstance(self.timestamp_s, (bool, str, bytes)):
                raise TypeError(type(self.timestamp_s).__name__)
            ts = float(self.timestamp_s)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Frame.timestamp_s must be a number, got {self.timestamp_s!r}") from exc
        if not math.isfinite(ts):
            raise ValueError(f"Frame.timestamp_s must be finite, got {ts}")
        self.timestamp_s = ts
        self.world_from_camera = _as_pose(self.world_from_camera, "world_from_camera")
        self._check_fields()
        d = self.depth_m
        if d is not None:
            with np.errstate(invalid="ignore"):
                bad = np.isinf(d) | (d < 0)
            if bad.any():
                raise ValueError(
                    f"Frame.depth_m has {int(bad.sum())} negative or infinite values; use 0 or NaN for no return"
                )

    def check(self) -> None:
        """Check again a frame that may have been changed since it was built.

        `SceneMemory.integrate` calls this before it writes anything: a Frame is
        a plain (mutable) dataclass, so a field set after construction (a NaN
        time, a float image, a raw array as pose) is caught here. Cheap: types,
        shapes and dtypes only, no pass over the pixels (readers of depth treat
        negative, infinite and NaN values as no return).

        Raises:
            ValueError: naming the field.
        """
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)) or self.index < 0:
            raise ValueError(f"Frame.index must be a non-negative integer, got {self.index!r}")
        ts = self.timestamp_s
        if isinstance(ts, bool) or not isinstance(ts, (int, float, np.integer, np.floating)) or not math.isfinite(ts):
            raise ValueError(f"Frame.timestamp_s must be a finite number, got {ts!r}")
        if self.world_from_camera is not None and not isinstance(self.world_from_camera, Pose):
            raise ValueError(f"Frame.world_from_camera must be a Pose, got {type(self.world_from_camera).__name__}")
        self._check_fields()

    def _check_fields(self) -> None:
        """Types, shapes and dtypes of the images, intrinsics and labels."""
        rgb = self.rgb
        if not isinstance(rgb, np.ndarray):
            raise ValueError(f"Frame.rgb must be a numpy array, got {type(rgb).__name__}")
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"Frame.rgb must have shape (H, W, 3), got {rgb.shape}")
        if rgb.dtype != np.uint8:
            raise ValueError(f"Frame.rgb must be uint8, got {rgb.dtype}")
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"Frame.rgb is empty: shape {rgb.shape}")

        if self.depth_m is not None:
            d = self.depth_m
            if not isinstance(d, np.ndarray):
                raise ValueError(f"Frame.depth_m must be a numpy array, got {type(d).__name__}")
            if d.shape != (h, w):
                raise ValueError(f"Frame.depth_m must have shape {(h, w)} to match rgb, got {d.shape}")
            if d.dtype != np.float32:
                raise ValueError(f"Frame.depth_m must be float32 metres, got {d.dtype}")

        if self.intrinsics is not None:
            k = self.intrinsics
            if not isinstance(k, CameraIntrinsics):
                raise ValueError(f"Frame.intrinsics must be CameraIntrinsics, got {type(k).__name__}")
            if (k.width, k.height) != (w, h):
                raise ValueError(f"Frame.intrinsics size {k.width}x{k.height} does not match the image size {w}x{h}")

        if self.instances is not None:
            ins = self.instances
            if not isinstance(ins, np.ndarray):
                raise ValueError(f"Frame.instances must be a numpy array, got {type(ins).__name__}")
            if ins.shape != (h, w):
                raise ValueError(f"Frame.instances must have shape {(h, w)} to match rgb, got {ins.shape}")
            if ins.dtype != np.int32:
                raise ValueError(f"Frame.instances must be int32, got {ins.dtype}")
        if not isinstance(self.labels, dict):
            raise ValueError(f"Frame.labels must be a dict {{id: name}}, got {type(self.labels).__name__}")
        for key, name in self.labels.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not isinstance(name, str):
                raise ValueError(f"Frame.labels must map int ids to str names, got {key!r}: {name!r}")

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def has_geometry(self) -> bool:
        """True when depth, intrinsics and pose are all present (the frame can be mapped)."""
        return self.depth_m is not None and self.intrinsics is not None and self.world_from_camera is not None
