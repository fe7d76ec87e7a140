"""Durability benchmark: crash safety of saves, a long soak under the default budget, bad input.

Three parts, each on a real `SceneMemory`:

1. kill during save: a writer subprocess saves a memory and is SIGKILLed at
   a chosen checkpoint of `write_store` (``store.set_fault_hook``) or after a
   timed delay; the parent then loads the store and checks that it is the
   previous save, digest for digest, or the new one when the kill came after
   the commit.
2. soak: at least 100,000 low-resolution frames of a camera moving through a
   box world (ray cast with numpy, precomputed for one loop and replayed with
   increasing timestamps) stream into a memory with the default
   `MemoryBudget`; resident memory is read at frame 10,000 and at the end,
   frames/s is compared between the first and the last 10% of the run.
3. fuzz: seeded random bad inputs (wrong shapes and dtypes, NaN / inf / huge
   depths, non-rigid poses, empty images, time going backwards) go to `Frame`
   construction and `SceneMemory.integrate`; only ValueError (or a warning and
   a skip) is allowed and the memory's digest must not change.

4. concurrency: one thread integrates frames while one thread each calls
   every public read method (query, where_is, last_seen, changes, stats,
   digest, transient_points, save, export) for ``--concurrency-s`` seconds;
   then all are told to stop, and a thread still blocked two minutes later is
   a deadlock. Runs in a child process with a thread-safe numba layer (see
   `main`).
5. hostile stores: crafted and damaged copies of a saved memory (manifest
   names that climb out or are absolute, links to files, folders and devices
   outside, FIFOs, 1 GiB sparse files, wrong manifest types and keys, cut and
   garbage manifests, undecodable contents with valid checksums, then single
   bit flips of the manifest) must each make `SceneMemory.load` raise a
   `StoreError` within 1 s with nothing opened outside the folder (an audit
   hook records every open), and `engram info` print one line and exit 2.
6. partial writes: frames changed after construction (NaN / nanosecond /
   jumping times, float images, raw arrays as poses, wrong dtypes, shapes and
   labels, ...) go to `integrate`; a refusal that changed the digest is a
   partial write.

There is no peer: each part checks a property of engram's own store and
memory, pass or fail.

Usage:
    python benchmarks/durability.py [--kills 240] [--soak-frames 100000] [--fuzz 10000]
        [--concurrency-runs 10] [--concurrency-s 60] [--hostile 256] [--partial 1000] [--parts kills,fuzz,...]

Last line (parts not run print ``not-run``):
    kill_during_save_intact: K/N soak_rss_growth_mb: G soak_fps_drop: D fuzz_cases: F
    concurrent_deadlocks: D hostile_stores_refused: H/N partial_writes: P
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Frames of 64x48 give the octree kernels a few hundred rays each: one thread is faster than
# waking a pool per call, and on a shared machine a pool per call is much slower.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
# the kill test forks writers: GNU OpenMP aborts a forked child, numba's own pool does not
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

from engram.memory import store as store_mod
from engram.memory.budget import MemoryBudget
from engram.memory.scene import SceneMemory
from engram.types import CameraIntrinsics, Frame, Pose

# ---------------------------------------------------------------------------
# a box world, ray cast with numpy

ROOM_MIN = np.array([-3.0, -3.0, 0.0])
ROOM_MAX = np.array([3.0, 3.0, 2.5])
BOXES = [  # (instance id, label, min, max)
    (1, "table", (1.0, -0.5, 0.0), (2.0, 0.5, 0.75)),
    (2, "cabinet", (-2.6, 1.6, 0.0), (-1.8, 2.6, 1.6)),
    (3, "box", (-1.2, -2.4, 0.0), (-0.6, -1.8, 0.5)),
    (4, "chair", (0.2, 1.8, 0.0), (0.7, 2.3, 0.9)),
]
LABELS = {iid: lab for iid, lab, _, _ in BOXES}
LABELS[9] = "wall"


def render(world_from_camera: Pose, k: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (z, metres), instances and RGB of the room and its boxes seen from one camera."""
    us, vs = np.meshgrid(np.arange(k.width), np.arange(k.height))
    d_cam = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us, float)], -1).reshape(-1, 3)
    d_w = d_cam @ world_from_camera.rotation.T
    o = world_from_camera.translation
    best = np.full(len(d_w), np.inf)
    ids = np.zeros(len(d_w), np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        # inside of the room: the exit distance of the room box
        t1, t2 = (ROOM_MIN - o) / d_w, (ROOM_MAX - o) / d_w
        t_exit = np.nanmin(np.maximum(t1, t2), axis=1)
        best, ids[:] = t_exit, 9
        for iid, _, lo, hi in BOXES:
            t1, t2 = (np.asarray(lo) - o) / d_w, (np.asarray(hi) - o) / d_w
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tmax >= tmin) & (tmin > 0) & (tmin < best)
            best = np.where(hit, tmin, best)
            ids[hit] = iid
    depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32).reshape(k.height, k.width)
    ids = ids.reshape(k.height, k.width)
    palette = np.array(
        [[90, 90, 90], [200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]] + [[150, 150, 150]] * 5, np.uint8
    )
    rgb = palette[ids]
    return depth, ids, rgb


def camera_loop(n: int) -> list[Pose]:
    """A camera walking a loop around the room centre, turning to look around (OpenCV camera, z-up world)."""
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        pos = np.array([1.2 * np.cos(a), 1.2 * np.sin(a), 1.2])
        yaw = 3.0 * a  # looks around faster than it walks
        fwd = np.array([np.cos(yaw), np.sin(yaw), -0.15])
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        poses.append(Pose.from_rt(np.stack([right, down, fwd], axis=1), pos))
    return poses


def make_frames(n_loop: int, k: CameraIntrinsics) -> list[tuple[Pose, np.ndarray, np.ndarray, np.ndarray]]:
    return [(p, *render(p, k)) for p in camera_loop(n_loop)]


def frame_at(i: int, loop: list, k: CameraIntrinsics, fps: float = 30.0) -> Frame:
    pose, depth, ids, rgb = loop[i % len(loop)]
    return Frame(
        index=i,
        timestamp_s=i / fps,
        rgb=rgb,
        depth_m=depth,
        intrinsics=k,
        world_from_camera=pose,
        instances=ids,
        labels=LABELS,
    )


SOAK_K = CameraIntrinsics(fx=40.0, fy=40.0, cx=31.5, cy=23.5, width=64, height=48)


def soak_memory() -> SceneMemory:
    return SceneMemory(voxel_size_m=0.1, depth_stride=4, object_stride=4, budget=MemoryBudget())


# ---------------------------------------------------------------------------
# 1. kill during save


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# steps of `write_store` before which the new save must not be visible, and after which it must be
BEFORE_COMMIT = ("mkdir_tmp", "write:", "remove_stale", "fsync_tmp", "rename_tmp")
AFTER_COMMIT = ("committed", "retire_old", "remove_old", "done")


def _save_steps(mem: SceneMemory, path: Path) -> list[str]:
    steps: list[str] = []
    store_mod.set_fault_hook(steps.append)
    try:
        mem.save(str(path))
    finally:
        store_mod.set_fault_hook(None)
    return steps


def _writer(mem: SceneMemory, path: Path, kill_at: int | None) -> tuple[int, int]:
    """Fork a writer that saves ``mem``; it SIGKILLs itself at checkpoint ``kill_at`` (None: no hook).

    Returns (pid, read end of a pipe): the child writes the step it dies at, or "done\\n" after the save.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        code = 0
        try:
            os.close(r)
            if kill_at is not None:
                count = [0]

                def hook(step: str) -> None:
                    if count[0] == kill_at:
                        os.write(w, f"step {step}\n".encode())
                        os.kill(os.getpid(), signal.SIGKILL)
                    count[0] += 1

                store_mod.set_fault_hook(hook)
            mem.save(str(path))
            os.write(w, b"done\n")
        except BaseException:  # noqa: BLE001 - the writer reports any failure by its exit code
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def bench_kills(n_kills: int, seed: int = 0) -> dict:
    """SIGKILL real writer processes during saves of a real SceneMemory; check what loads."""
    k = SOAK_K
    loop = make_frames(48, k)
    mem = SceneMemory(voxel_size_m=0.1, depth_stride=4, object_stride=4)
    for i in range(6):
        mem.integrate(frame_at(i, loop, k))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="engram-dur-") as tmp:
        path = Path(tmp) / "scene"
        steps = _save_steps(mem, Path(tmp) / "probe")
        t0 = time.perf_counter()
        mem.save(str(path))
        save_s = time.perf_counter() - t0
        saved_digest = mem.digest()
        next_frame = 6
        intact = 0
        killed_at: dict[str, int] = {}
        failures: list[str] = []
        t_start = time.perf_counter()
        for j in range(n_kills):
            mem.integrate(frame_at(next_frame, loop, k))  # every save differs from the last
            next_frame += 1
            new_digest = mem.digest()
            timed = j % 5 == 4
            kill_at = None if timed else (j // 5 * 4 + j % 5) % len(steps)
            pid, r = _writer(mem, path, kill_at)
            if timed:
                time.sleep(rng.uniform(0.0, 1.2 * save_s))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _, status = os.waitpid(pid, 0)
            with os.fdopen(r) as fh:
                said = fh.read().strip()
            if timed:
                point = "timed"
            elif said.startswith("step "):
                point = said.removeprefix("step ").split(":")[0]
            else:
                point = said or "writer failed"
            killed_at[point] = killed_at.get(point, 0) + 1
            try:
                got = SceneMemory.load(str(path)).digest()
            except Exception as exc:  # noqa: BLE001 - a torn store: the failure this benchmark looks for
                failures.append(f"kill {j} ({said or 'timed'}): load failed: {exc}")
                continue
            step = said.removeprefix("step ")
            ok = got in (saved_digest, new_digest)
            if said == "done" and got != new_digest:
                ok = False
            if step.startswith(BEFORE_COMMIT) and got != saved_digest:
                ok = False
            if step.startswith(AFTER_COMMIT) and got != new_digest:
                ok = False
            if not timed and not said.startswith("step ") and said != "done":
                ok = False  # the writer died of something else than the kill
            if not os.WIFSIGNALED(status) and said != "done":
                ok = False
            if ok:
                intact += 1
                saved_digest = got
            else:
                failures.append(f"kill {j} ({said or 'timed'}): loaded digest is neither the previous nor the new save")
        elapsed = time.perf_counter() - t_start
    return {
        "n": n_kills,
        "intact": intact,
        "steps_per_save": len(steps),
        "save_s": save_s,
        "killed_at": killed_at,
        "failures": failures[:5],
        "s": elapsed,
    }


# ---------------------------------------------------------------------------
# 3. fuzz


def _bad_case(rng: np.random.Generator, base: Frame, t_last: float, i: int) -> tuple[str, object]:
    """One bad input: (kind, a callable that builds the Frame or returns a non-Frame)."""
    h, w = base.height, base.width
    kw = dict(
        index=base.index,
        timestamp_s=base.timestamp_s,
        rgb=base.rgb,
        depth_m=base.depth_m,
        intrinsics=base.intrinsics,
        world_from_camera=base.world_from_camera,
        instances=base.instances,
        labels=base.labels,
    )
    kind = int(rng.integers(0, 12))
    if kind == 0:  # rgb: wrong shape / channels / empty
        shapes = [(h, w), (h, w, 4), (h + 1, w, 3), (0, 0, 3), (h, 0, 3), (3, h, w), (h * w * 3,)]
        kw["rgb"] = np.zeros(shapes[rng.integers(len(shapes))], np.uint8)
        name = "rgb_shape"
    elif kind == 1:  # rgb: wrong dtype
        dt = [np.float32, np.float64, np.int16, np.bool_, np.int64, object][rng.integers(6)]
        kw["rgb"] = base.rgb.astype(dt)
        name = "rgb_dtype"
    elif kind == 2:  # depth: wrong shape
        shapes = [(h, w, 1), (h - 1, w), (w, h), (0, 0), (h * w,), (h, w, 3)]
        kw["depth_m"] = np.ones(shapes[rng.integers(len(shapes))], np.float32)
        name = "depth_shape"
    elif kind == 3:  # depth: wrong dtype
        dt = [np.uint8, np.int32, np.complex64, object, np.bool_][rng.integers(5)]
        kw["depth_m"] = base.depth_m.astype(dt)
        name = "depth_dtype"
    elif kind == 4:  # depth: NaN / inf / negative / huge values
        d = base.depth_m.copy()
        m = rng.random(d.shape) < rng.uniform(0.01, 1.0)
        d[m] = [np.nan, np.inf, -np.inf, -1.0, 1e30, 1e38, -0.0][rng.integers(7)]
        kw["depth_m"] = d
        name = "depth_values"
    elif kind == 5:  # pose: not rigid
        m = base.world_from_camera.matrix.copy()
        v = rng.integers(6)
        if v == 0:
            m[:3, :3] *= rng.uniform(1.5, 3.0)
        elif v == 1:
            m[0, 1] += rng.uniform(0.2, 1.0)
        elif v == 2:
            m[rng.integers(4), rng.integers(4)] = [np.nan, np.inf][rng.integers(2)]
        elif v == 3:
            m[3] = [0.0, 0.0, 1.0, 1.0]
        elif v == 4:
            m[:3, :3] = -m[:3, :3]  # a reflection, det -1
        else:
            m[:3, 3] = 1e300
        kw["world_from_camera"] = _raw_pose(m)
        name = "pose_rigid"
    elif kind == 6:  # intrinsics: inconsistent with the image or invalid numbers
        kd = base.intrinsics
        v = rng.integers(4)
        if v == 0:
            kw["intrinsics"] = _raw_intrinsics(kd.fx, kd.fy, kd.cx, kd.cy, kd.width + 1, kd.height)
        elif v == 1:
            kw["intrinsics"] = _raw_intrinsics(-kd.fx, kd.fy, kd.cx, kd.cy, kd.width, kd.height)
        elif v == 2:
            kw["intrinsics"] = _raw_intrinsics(np.nan, kd.fy, kd.cx, kd.cy, kd.width, kd.height)
        else:
            kw["intrinsics"] = _raw_intrinsics(0.0, 0.0, kd.cx, kd.cy, kd.width, kd.height)
        name = "intrinsics"
    elif kind == 7:  # time: backwards, NaN, inf
        kw["timestamp_s"] = [t_last - rng.uniform(1e-3, 100.0), np.nan, np.inf, -np.inf, "soon"][rng.integers(5)]
        name = "time"
    elif kind == 8:  # index: negative, float, bool, None
        kw["index"] = [-1 - int(rng.integers(100)), 1.5, True, None, "7"][rng.integers(5)]
        name = "index"
    elif kind == 9:  # instances / labels
        v = rng.integers(4)
        if v == 0:
            kw["instances"] = np.zeros((h + 2, w), np.int32)
        elif v == 1:
            kw["instances"] = base.instances.astype(np.float32) + 0.5
        elif v == 2:
            kw["labels"] = ["table", "chair"]
        else:
            kw["labels"] = {"1": 5}
        name = "instances"
    elif kind == 10:  # not a Frame at all
        return "not_a_frame", lambda: [None, {"rgb": base.rgb}, base.rgb, 42, "frame.png"][rng.integers(5)]
    else:  # everything missing but the type is right: empty image and nothing else
        kw = dict(index=base.index, timestamp_s=base.timestamp_s, rgb=np.zeros((0, 0, 3), np.uint8))
        name = "empty"
    return name, lambda: Frame(**kw)


def _raw_pose(m: np.ndarray) -> Pose | np.ndarray:
    """A Pose of ``m``, or ``m`` itself when Pose refuses it (a source that skipped the check)."""
    try:
        return Pose(m)
    except ValueError:
        return m


def _raw_intrinsics(fx, fy, cx, cy, width, height) -> CameraIntrinsics | dict:
    """CameraIntrinsics, or the plain numbers when it refuses them."""
    try:
        return CameraIntrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
    except ValueError:
        return dict(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)


def bench_fuzz(n_cases: int, seed: int = 0) -> dict:
    """Feed seeded bad inputs to Frame construction and SceneMemory.integrate."""
    k = SOAK_K
    loop = make_frames(24, k)
    mem = SceneMemory(voxel_size_m=0.1, depth_stride=4, object_stride=4)
    for i in range(4):
        mem.integrate(frame_at(i, loop, k))
    rng = np.random.default_rng(seed)
    digest = mem.digest()
    counts = {"rejected_frame": 0, "rejected_integrate": 0, "skipped_warning": 0, "applied": 0}
    crashes: list[str] = []
    changed: list[str] = []
    kinds: dict[str, int] = {}
    next_i = 4
    t0 = time.perf_counter()
    for case in range(n_cases):
        base = frame_at(next_i, loop, k)
        name, build = _bad_case(rng, base, mem.last_timestamp_s or 0.0, case)
        kinds[name] = kinds.get(name, 0) + 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    frame = build()
                except ValueError:
                    counts["rejected_frame"] += 1
                    continue
                try:
                    report = mem.integrate(frame)
                except ValueError:
                    counts["rejected_integrate"] += 1
                    new = mem.digest()
                    if new != digest:
                        changed.append(f"case {case} ({name}): rejected but the memory changed")
                        digest = new
                    continue
            if caught or not report.mapped:
                counts["skipped_warning"] += 1
            else:
                counts["applied"] += 1
            next_i += 1
            digest = mem.digest()
        except Exception as exc:  # noqa: BLE001 - anything but ValueError is a crash
            crashes.append(f"case {case} ({name}): {type(exc).__name__}: {exc}")
            digest = mem.digest()
    return {
        "n": n_cases,
        "ok": n_cases - len(crashes) - len(changed),
        "counts": counts,
        "kinds": kinds,
        "crashes": crashes[:8],
        "n_crashes": len(crashes),
        "changed": changed[:5],
        "n_changed": len(changed),
        "s": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------
# 2. soak


def bench_soak(n_frames: int, n_loop: int = 600, fps: float = 30.0, progress: bool = True) -> dict:
    """Stream ``n_frames`` frames into a memory with the default budget; RSS and frames/s over the run."""
    k = SOAK_K
    loop = make_frames(n_loop, k)
    warm = soak_memory()  # compile the numba kernels before anything is timed
    for i in range(60):
        warm.integrate(frame_at(i, loop, k, fps))
    del warm
    mem = soak_memory()
    tenth = max(1, n_frames // 10)
    mark_rss = min(10_000, n_frames // 2)
    rss: dict[int, float] = {}
    t_first = t_last = 0.0
    cpu_first = cpu_last = 0.0
    evicted: dict[str, int] = {}
    warnings.simplefilter("ignore")
    t_run = time.perf_counter()
    cpu_run = time.process_time()
    t_block = time.perf_counter()
    for i in range(n_frames):
        mem.integrate(frame_at(i, loop, k, fps))
        if mem.frames_seen % mem._budget.every_frames == 0:
            for name, v in mem.last_eviction.items():
                evicted[name] = evicted.get(name, 0) + v
        done = i + 1
        if done == tenth:
            t_first = time.perf_counter() - t_run
            cpu_first = time.process_time() - cpu_run
        if done == n_frames - tenth:
            t_last_start = time.perf_counter()
            cpu_last_start = time.process_time()
        if done == mark_rss:
            gc.collect()
            rss[mark_rss] = _rss_mb()
        if progress and done % 5000 == 0:
            now = time.perf_counter()
            print(
                f"  soak {done}/{n_frames}: {5000 / (now - t_block):.0f} frames/s, rss {_rss_mb():.1f} MB",
                file=sys.stderr,
                flush=True,
            )
            t_block = now
    t_last = time.perf_counter() - t_last_start
    cpu_last = time.process_time() - cpu_last_start
    gc.collect()
    rss[n_frames] = _rss_mb()
    stats = mem.stats()
    fps_first = tenth / t_first
    fps_last = tenth / t_last
    # queries still answer after a long run under the budget
    hits = mem.query(text="table", k=3)
    return {
        "n": n_frames,
        "rss_mb": rss,
        "growth_mb": rss[n_frames] - rss[mark_rss],
        "fps_first": fps_first,
        "fps_last": fps_last,
        "drop_pct": max(0.0, 100.0 * (1.0 - fps_last / fps_first)),
        # frames per second of this process's own CPU time: what the memory costs, without the
        # other programs that share the machine (their load changes over a run of several minutes)
        "cpu_fps_first": tenth / cpu_first,
        "cpu_fps_last": tenth / cpu_last,
        "cpu_drop_pct": max(0.0, 100.0 * (1.0 - cpu_first / cpu_last)),
        "stats": stats,
        "evicted": evicted,
        "table_found": bool(hits and hits[0].label == "table"),
        "s": time.perf_counter() - t_run,
    }


# ---------------------------------------------------------------------------
# 4. concurrency: one integrating thread, readers of every public read method, saves and exports


READERS = ("query", "where_is", "last_seen", "changes", "stats", "digest", "transient_points", "save", "export")


def bench_concurrency(n_runs: int, run_s: float, grace_s: float = 120.0) -> dict:
    """Each run: a fresh memory, one thread integrating frames and one thread per read method,
    for ``run_s`` seconds; then every thread is told to stop and must end within ``grace_s``.
    A thread still blocked after that is a deadlock (the run's threads are daemons, so a hung run
    cannot stop the benchmark)."""
    import threading

    loop = make_frames(60, SOAK_K)
    deadlocks = 0
    errors: list[str] = []
    ops: dict[str, int] = {}
    t0, c0 = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="engram-concurrency-") as tmp:
        for run in range(n_runs):
            mem = soak_memory()
            mem.integrate(frame_at(0, loop, SOAK_K))
            stop = threading.Event()
            counts = dict.fromkeys(("integrate", *READERS), 0)
            frame_no = [1]

            def integrate(mem=mem, frame_no=frame_no) -> None:
                mem.integrate(frame_at(frame_no[0], loop, SOAK_K))
                frame_no[0] += 1

            calls = {
                "integrate": integrate,
                "query": lambda mem=mem: mem.query(text="table", near=(1.5, 0.0), k=3),
                "where_is": lambda mem=mem: mem.where_is("chair"),
                "last_seen": lambda mem=mem: mem.last_seen("cabinet"),
                "changes": lambda mem=mem: mem.changes(0.0),
                "stats": lambda mem=mem: mem.stats(),
                "digest": lambda mem=mem: mem.digest(),
                "transient_points": lambda mem=mem: mem.transient_points(),
                "save": lambda mem=mem, run=run: mem.save(f"{tmp}/run{run}"),
                "export": lambda mem=mem, run=run: mem.export(f"{tmp}/export{run}"),
            }

            def worker(name: str, fn, stop=stop, counts=counts, run=run) -> None:
                try:
                    while not stop.is_set():
                        fn()
                        counts[name] += 1
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"run {run} {name}: {type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=worker, args=(n, f), daemon=True, name=n) for n, f in calls.items()]
            for t in threads:
                t.start()
            time.sleep(run_s)
            stop.set()
            deadline = time.monotonic() + grace_s
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            hung = [t.name for t in threads if t.is_alive()]
            if hung:
                deadlocks += 1
                errors.append(f"run {run}: threads still blocked {grace_s:.0f} s after stop: {hung}")
            for k, v in counts.items():
                ops[k] = ops.get(k, 0) + v
            print(f"concurrency run {run + 1}/{n_runs}: {counts} hung={hung}", file=sys.stderr, flush=True)
    return {
        "runs": n_runs,
        "run_s": run_s,
        "deadlocks": deadlocks,
        "errors": errors,
        "ops": ops,
        "s": time.monotonic() - t0,
        "cpu_s": time.process_time() - c0,
    }


# ---------------------------------------------------------------------------
# 5. hostile stores: crafted and damaged memory folders


_OPENED: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if (
        _OPENED
        and event in ("open", "os.listdir", "os.scandir")
        and args
        and isinstance(args[0], (str, bytes, os.PathLike))
    ):
        _OPENED[-1].append(os.fsdecode(args[0]))


def _rewrite(store: Path, change, checksum: bool = True) -> None:
    """Edit the manifest with ``change`` and (``checksum``) give it a matching checksum: a crafted
    store, not a damaged one."""
    m = json.loads((store / store_mod.MANIFEST_NAME).read_text())
    change(m)
    if checksum:
        m["manifest_sha256"] = store_mod.manifest_checksum(m)
    (store / store_mod.MANIFEST_NAME).write_text(json.dumps(m))


def _entry_of(data: bytes, typ: str = "npy") -> dict:
    import hashlib

    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "type": typ}


def _hostile_cases(outside: Path) -> list[tuple[str, object]]:
    """(kind, function(store folder)) for every crafted case; bit flips are added by the caller."""
    secret = (outside / "secret.npy").read_bytes()
    cases: list[tuple[str, object]] = []

    def name_case(name: str):
        def f(s: Path) -> None:
            def change(m):
                m["files"].pop("octree/log_odds.npy")
                m["files"][name] = _entry_of(secret)

            _rewrite(s, change)

        return f

    names = [
        "octree/../../outside/secret.npy",
        "../outside/secret.npy",
        "../../outside/secret.npy",
        "octree/../../../etc/hostname",
        str(outside / "secret.npy"),
        "/etc/hostname",
        "//etc/hostname",
        "octree/./log_odds.npy",
        "./scene.json",
        "..",
        ".",
        "",
        "a\\..\\..\\b",
        "scene.json\n",
        "scene.json\x00x",
        "x" * 300,
        "octree//log_odds.npy",
        "octree/",
        ".hidden",
        "~/secret.npy",
        "C:\\secret.npy",
        "octree/\u2025/secret.npy",
        "scene.json/x",
        MANIFEST_NAME,
    ]
    for n in names:
        cases.append(("name", name_case(n)))

    def link_file(target_abs: bool, member: str):
        def f(s: Path) -> None:
            (s / member).unlink()
            tgt = outside / "secret.npy"
            os.symlink(tgt if target_abs else os.path.relpath(tgt, (s / member).parent), s / member)
            _rewrite(s, lambda m: m["files"].__setitem__(member, _entry_of(secret, m["files"][member]["type"])))

        return f

    for member in ("scene.json", "octree/log_odds.npy", "objects.npz", "timeline/nodes.json"):
        cases += [("link", link_file(True, member)), ("link", link_file(False, member))]

    def link_dir(s: Path) -> None:
        shutil.copytree(s / "octree", outside / f"octree-{secrets_hex()}")
        shutil.rmtree(s / "octree")
        os.symlink(max(outside.glob("octree-*")), s / "octree")

    def link_manifest(s: Path) -> None:
        dst = outside / f"manifest-{secrets_hex()}.json"
        shutil.copy(s / MANIFEST_NAME, dst)
        (s / MANIFEST_NAME).unlink()
        os.symlink(dst, s / MANIFEST_NAME)

    def link_dev(s: Path) -> None:
        (s / "scene.json").unlink()
        os.symlink("/dev/zero", s / "scene.json")

    def link_loop(s: Path) -> None:
        (s / "scene.json").unlink()
        os.symlink("scene.json", s / "scene.json")

    cases += [("link", link_dir), ("link", link_manifest), ("link", link_dev), ("link", link_loop)]

    def fifo(member: str):
        def f(s: Path) -> None:
            (s / member).unlink()
            os.mkfifo(s / member)

        return f

    for member in ("scene.json", MANIFEST_NAME, "octree/log_odds.npy", "timeline/nodes.json"):
        cases.append(("fifo", fifo(member)))

    def giant(member: str, manifest_agrees: bool = False):
        def f(s: Path) -> None:
            with open(s / member, "r+b") as fh:
                fh.truncate(1 << 30)  # sparse: 1 GiB that costs no disk
            if manifest_agrees:
                _rewrite(s, lambda m: m["files"][member].update(size=1 << 30))

        return f

    for member in ("scene.json", MANIFEST_NAME, "octree/log_odds.npy", "snapshots.npz"):
        cases.append(("giant", giant(member)))

    def folder_instead(member: str):
        def f(s: Path) -> None:
            (s / member).unlink()
            (s / member).mkdir()

        return f

    cases += [("non-regular", folder_instead("scene.json")), ("non-regular", folder_instead(MANIFEST_NAME))]

    schema = [
        lambda m: m.update(files=list(m["files"])),
        lambda m: m.update(files=None),
        lambda m: m["files"]["scene.json"].update(size="12"),
        lambda m: m["files"]["scene.json"].update(size=-1),
        lambda m: m["files"]["scene.json"].update(size=1.5),
        lambda m: m["files"]["scene.json"].pop("sha256"),
        lambda m: m["files"]["scene.json"].update(sha256="00"),
        lambda m: m["files"]["scene.json"].update(type="pickle"),
        lambda m: m["files"]["scene.json"].update(extra=1),
        lambda m: m["files"].update({"scene.json": []}),
        lambda m: m.update(generation="1"),
        lambda m: m.update(generation=-1),
        lambda m: m.update(version=True),
        lambda m: m.update(version=0),
        lambda m: m.update(kind=""),
        lambda m: m.update(kind=7),
        lambda m: m.update(format_version="1"),
        lambda m: m.update(format_version=0),
        lambda m: m.update(format="engram.stor"),
        lambda m: m.update(meta=[]),
        lambda m: m.update(created={"host": 5}),
        lambda m: m.update(created="today"),
        lambda m: m.update(surprise={}),
        lambda m: m["files"].pop("scene.json"),
        lambda m: m["files"].update({"scene.json/inner": m["files"]["scene.json"]}),
    ]

    def schema_case(change):
        return lambda s: _rewrite(s, change)

    cases += [("schema", schema_case(ch)) for ch in schema]

    def bad_checksum(value):
        return lambda s: _rewrite(s, lambda m: m.update(manifest_sha256=value), checksum=False)

    cases += [("schema", bad_checksum(v)) for v in (5, "ab" * 32, None, "AB" * 32)]  # wrong type or value

    def raw_manifest(data: bytes):
        def f(s: Path) -> None:
            (s / MANIFEST_NAME).write_bytes(data)

        return f

    for data in (b"", b"{", b"null", b"[]", b"\xff\xfe", b"[" * 200_000, b'{"format": "engram.store"}', b"\x00" * 64):
        cases.append(("manifest bytes", raw_manifest(data)))

    def truncated_manifest(frac: float):
        def f(s: Path) -> None:
            raw = (s / MANIFEST_NAME).read_bytes()
            (s / MANIFEST_NAME).write_bytes(raw[: int(len(raw) * frac)])

        return f

    cases += [("manifest cut", truncated_manifest(fr)) for fr in (0.1, 0.5, 0.9, 0.999)]

    def scene_json(value):
        def f(s: Path) -> None:
            data = json.dumps(value).encode()
            (s / "scene.json").write_bytes(data)
            _rewrite(s, lambda m: m["files"].__setitem__("scene.json", _entry_of(data, "json")))

        return f

    base_scene = {
        "config": {"voxel_size_m": 0.1},
        "frames_seen": 1,
        "frames_mapped": 1,
        "last_timestamp_s": 0.0,
        "first_timestamp_s": 0.0,
    }
    for v in (
        [],
        {},
        {"config": []},
        {**base_scene, "config": {"voxel_size_m": -1}},
        {**base_scene, "config": {"surprise": 1}},
        {**base_scene, "frames_seen": []},
        {**base_scene, "last_timestamp_s": 1.7e18},
        {**base_scene, "last_timestamp_s": "now"},
        {**base_scene, "config": {"voxel_size_m": "big"}},
    ):
        cases.append(("contents", scene_json(v)))
    return cases


def secrets_hex() -> str:
    import secrets

    return secrets.token_hex(4)


MANIFEST_NAME = store_mod.MANIFEST_NAME


def bench_hostile(n_cases: int, seed: int = 0, limit_s: float = 1.0) -> dict:
    """Crafted and damaged stores: each must be refused with a StoreError subclass within ``limit_s``,
    without opening anything outside the store's folder; `engram info` must print one line and exit 2."""
    import contextlib
    import io
    import threading

    from engram.cli import main as cli_main

    sys.addaudithook(_audit)
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    results = {"n": 0, "refused": 0, "kinds": {}, "failures": [], "max_s": 0.0, "max_cpu_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="engram-hostile-") as tmp_s:
        tmp = Path(tmp_s)
        mem = soak_memory()
        loop = make_frames(30, SOAK_K)
        for i in range(30):
            mem.integrate(frame_at(i, loop, SOAK_K))
        mem.save(str(tmp / "base"))
        base = Path(os.path.realpath(tmp / "base"))
        outside = tmp / "outside"
        outside.mkdir()
        (outside / "secret.npy").write_bytes(b"secret outside the store\n")
        crafted = _hostile_cases(outside)
        raw = (base / MANIFEST_NAME).read_bytes()
        n_flips = max(0, n_cases - len(crafted))
        cases = list(crafted)
        for pos in rng.choice(len(raw) * 8, size=min(n_flips, len(raw) * 8), replace=False):

            def flip(s: Path, pos=int(pos)) -> None:
                data = bytearray((s / MANIFEST_NAME).read_bytes())
                data[pos // 8] ^= 1 << (pos % 8)
                (s / MANIFEST_NAME).write_bytes(bytes(data))

            cases.append(("bit flip", flip))
        for i, (kind, make) in enumerate(cases):
            store = tmp / f"case{i}"
            shutil.copytree(base, store)
            make(store)
            box: dict = {}

            def load(store=store, box=box) -> None:
                _OPENED.append([])
                c0 = time.process_time()
                try:
                    SceneMemory.load(str(store))
                except BaseException as caught:  # noqa: BLE001 - judged below
                    box["exc"] = caught
                box["cpu"] = time.process_time() - c0
                box["opened"] = _OPENED.pop()

            w0 = time.monotonic()
            th = threading.Thread(target=load, daemon=True)
            th.start()
            th.join(30.0)
            wall = time.monotonic() - w0
            exc = box.get("exc")
            outside_read = [p for p in box.get("opened", []) if os.path.realpath(p).startswith(str(outside))]
            err = io.StringIO()
            if not th.is_alive():
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    rc = cli_main(["info", str(store)])
            else:
                rc = None
            ok = (
                not th.is_alive()
                and isinstance(exc, store_mod.StoreError)
                and wall <= limit_s
                and not outside_read
                and rc == 2
                and err.getvalue().count("\n") == 1
                and "Traceback" not in err.getvalue()
            )
            results["n"] += 1
            results["refused"] += int(ok)
            results["max_s"] = max(results["max_s"], wall)
            results["max_cpu_s"] = max(results["max_cpu_s"], box.get("cpu", 0.0))
            k = results["kinds"].setdefault(kind, [0, 0])
            k[0] += int(ok)
            k[1] += 1
            if not ok:
                results["failures"].append(
                    f"hostile case {i} ({kind}): {'HUNG' if th.is_alive() else type(exc).__name__ if exc else 'loaded'}: "
                    f"{str(exc)[:160] if exc else ''} wall {wall:.2f} s outside {outside_read[:2]} cli rc {rc}"
                )
            if not th.is_alive():
                shutil.rmtree(store, ignore_errors=True)
    results["s"] = time.monotonic() - t0
    return results


# ---------------------------------------------------------------------------
# 6. frames changed after construction: integrate must refuse them whole or apply them whole


def _mutate(rng: np.random.Generator, f: Frame) -> str:
    """Change one field of a built frame in place; returns the kind of change."""
    h, w = f.rgb.shape[:2]

    def pick(options: list):
        return options[int(rng.integers(len(options)))]

    kinds = [
        ("time_nan", lambda: setattr(f, "timestamp_s", float("nan"))),
        ("time_inf", lambda: setattr(f, "timestamp_s", float("inf"))),
        ("time_str", lambda: setattr(f, "timestamp_s", "later")),
        ("time_none", lambda: setattr(f, "timestamp_s", None)),
        ("time_ns", lambda: setattr(f, "timestamp_s", 1.7e18)),
        ("time_jump", lambda: setattr(f, "timestamp_s", f.timestamp_s + 1e7)),
        ("time_back", lambda: setattr(f, "timestamp_s", -5.0)),
        ("index", lambda: setattr(f, "index", pick([-1, "3", 2.5, None, True]))),
        ("rgb_float", lambda: setattr(f, "rgb", f.rgb.astype(np.float32))),
        ("rgb_shape", lambda: setattr(f, "rgb", f.rgb[:, :, :2])),
        ("rgb_list", lambda: setattr(f, "rgb", f.rgb.tolist())),
        ("rgb_none", lambda: setattr(f, "rgb", None)),
        ("depth_dtype", lambda: setattr(f, "depth_m", f.depth_m.astype(np.float64))),
        ("depth_shape", lambda: setattr(f, "depth_m", f.depth_m[: h // 2])),
        ("depth_str", lambda: setattr(f, "depth_m", "deep")),
        ("depth_values", lambda: f.depth_m.__setitem__(slice(None), pick([-1.0, np.inf, np.nan, 1e-40, 1e30]))),
        ("pose_array", lambda: setattr(f, "world_from_camera", np.eye(4))),
        ("pose_str", lambda: setattr(f, "world_from_camera", "map")),
        ("intrinsics", lambda: setattr(f, "intrinsics", pick([None, "k", CameraIntrinsics(10, 10, 5, 5, w + 1, h)]))),
        ("instances_dtype", lambda: setattr(f, "instances", f.instances.astype(np.int64))),
        ("instances_shape", lambda: setattr(f, "instances", f.instances[:, : w // 2])),
        ("labels", lambda: setattr(f, "labels", pick([None, [1, 2], {"1": "table"}, {1: 5}, {True: "x"}]))),
        ("meta", lambda: setattr(f, "meta", None)),
    ]
    name, fn = kinds[int(rng.integers(len(kinds)))]
    fn()
    return name


def bench_partial(n_cases: int, seed: int = 0) -> dict:
    """``n_cases`` frames changed after they were built go to `SceneMemory.integrate`: a refusal
    must leave the digest unchanged (else a partial write); anything but ValueError is a crash."""
    rng = np.random.default_rng(seed)
    loop = make_frames(60, SOAK_K)
    mem = soak_memory()
    i = 0
    for i in range(10):
        mem.integrate(frame_at(i, loop, SOAK_K))
    counts = {"rejected": 0, "applied": 0, "partial": 0, "crash": 0}
    kinds: dict[str, int] = {}
    problems: list[str] = []
    t0 = time.monotonic()
    for _ in range(n_cases):
        i += 1
        f = frame_at(i, loop, SOAK_K)
        f.depth_m = f.depth_m.copy()  # frames share the loop's arrays; a mutation stays in this one
        kind = _mutate(rng, f)
        kinds[kind] = kinds.get(kind, 0) + 1
        before = mem.digest()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mem.integrate(f)
            counts["applied"] += 1
        except ValueError as exc:
            if mem.digest() == before:
                counts["rejected"] += 1
            else:
                counts["partial"] += 1
                problems.append(f"partial write ({kind}): {exc}")
        except Exception as exc:  # noqa: BLE001 - a crash, counted
            counts["partial" if mem.digest() != before else "crash"] += 1
            problems.append(f"{type(exc).__name__} ({kind}): {exc}")
    return {"n": n_cases, "counts": counts, "kinds": kinds, "problems": problems[:20], "s": time.monotonic() - t0}


# ---------------------------------------------------------------------------


PARTS = ("kills", "fuzz", "soak", "concurrency", "hostile", "partial")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=240)
    ap.add_argument("--soak-frames", type=int, default=100_000)
    ap.add_argument("--fuzz", type=int, default=10_000)
    ap.add_argument("--concurrency-runs", type=int, default=10)
    ap.add_argument("--concurrency-s", type=float, default=60.0, help="seconds of each concurrency run")
    ap.add_argument(
        "--hostile", type=int, default=256, help="crafted and damaged stores (crafted kinds, then manifest bit flips)"
    )
    ap.add_argument("--partial", type=int, default=1000, help="frames changed after construction")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--json", type=str, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        ap.error(f"unknown parts {sorted(parts - set(PARTS))}; choose from {PARTS}")

    res: dict = {}
    if "kills" in parts:
        res["kills"] = kills = bench_kills(args.kills)
        print(f"kills: {kills['intact']}/{kills['n']} intact in {kills['s']:.0f} s", file=sys.stderr, flush=True)
    if "fuzz" in parts:
        res["fuzz"] = fuzz = bench_fuzz(args.fuzz)
        print(f"fuzz: {fuzz['ok']}/{fuzz['n']} in {fuzz['s']:.0f} s", file=sys.stderr, flush=True)
    if "concurrency" in parts:
        if os.environ.get("NUMBA_THREADING_LAYER") == "threadsafe":
            res["concurrency"] = conc = bench_concurrency(args.concurrency_runs, args.concurrency_s)
        else:
            # Readers run numba's parallel kernels from several threads at once, which the
            # workqueue layer (set above for the forking kill test) does not allow: it aborts
            # the process. Run this part in a child with a thread-safe layer (tbb or omp).
            import subprocess

            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "concurrency.json"
                cmd = [
                    sys.executable,
                    __file__,
                    "--parts",
                    "concurrency",
                    "--json",
                    str(out),
                    "--concurrency-runs",
                    str(args.concurrency_runs),
                    "--concurrency-s",
                    str(args.concurrency_s),
                ]
                env = {**os.environ, "NUMBA_THREADING_LAYER": "threadsafe"}
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                res["concurrency"] = conc = json.loads(out.read_text())["concurrency"]
    if "hostile" in parts:
        res["hostile"] = hostile = bench_hostile(args.hostile)
        print(f"hostile: {hostile['refused']}/{hostile['n']} in {hostile['s']:.0f} s", file=sys.stderr, flush=True)
    if "partial" in parts:
        res["partial"] = partial = bench_partial(args.partial)
        print(f"partial: {partial['counts']} in {partial['s']:.0f} s", file=sys.stderr, flush=True)
    if "soak" in parts:
        res["soak"] = soak = bench_soak(args.soak_frames)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))

    rows = []
    if "kills" in parts:
        rows += [
            (
                "kill during save (SIGKILL)",
                f"{kills['intact']}/{kills['n']} previous-or-committed save loads intact",
                f"{kills['steps_per_save']} checkpoints per save, every 5th kill timed; save {kills['save_s'] * 1e3:.0f} ms",
            ),
            ("kill points hit", ", ".join(f"{k} {v}" for k, v in sorted(kills["killed_at"].items())), ""),
        ]
    if "soak" in parts:
        rows += [
            ("soak frames", f"{soak['n']} frames 64x48 in {soak['s']:.0f} s", f"final: {soak['stats']}"),
            (
                "soak RSS (MB)",
                " -> ".join(f"{v:.1f} @ {k}" for k, v in soak["rss_mb"].items()),
                f"growth {soak['growth_mb']:.1f} MB (target <= 50)",
            ),
            (
                "soak frames/s",
                f"first 10% {soak['fps_first']:.1f}, last 10% {soak['fps_last']:.1f}",
                f"wall clock, machine shared: drop {soak['drop_pct']:.1f}%",
            ),
            (
                "soak frames/CPU-s",
                f"first 10% {soak['cpu_fps_first']:.1f}, last 10% {soak['cpu_fps_last']:.1f}",
                f"this process's CPU time: drop {soak['cpu_drop_pct']:.1f}% (target <= 20; the last line's D)",
            ),
            (
                "soak evictions",
                ", ".join(f"{k} {v}" for k, v in soak["evicted"].items() if v),
                f"query 'table' after the run: {'found' if soak['table_found'] else 'NOT found'}",
            ),
        ]
    if "fuzz" in parts:
        rows += [
            (
                "fuzz bad inputs",
                f"{fuzz['ok']}/{fuzz['n']} no crash, memory unchanged when rejected",
                f"{fuzz['counts']}",
            ),
            ("fuzz kinds", ", ".join(f"{k} {v}" for k, v in sorted(fuzz["kinds"].items())), ""),
        ]
    if "concurrency" in parts:
        rows += [
            (
                "concurrent readers + integrate",
                f"{conc['deadlocks']} deadlocks in {conc['runs']} runs of {conc['run_s']:.0f} s, {len(conc['errors'])} errors",
                f"1 integrating thread + 1 thread each for {', '.join(READERS)}; {conc['cpu_s']:.0f} CPU-s",
            ),
            ("concurrent calls made", ", ".join(f"{k} {v}" for k, v in conc["ops"].items()), ""),
        ]
    if "hostile" in parts:
        rows += [
            (
                "hostile stores",
                f"{hostile['refused']}/{hostile['n']} refused: StoreError within 1 s, nothing opened outside, `engram info` one line, exit 2",
                f"slowest {hostile['max_s'] * 1e3:.0f} ms wall, {hostile['max_cpu_s'] * 1e3:.0f} ms CPU",
            ),
            ("hostile kinds", ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in hostile["kinds"].items()), ""),
        ]
    if "partial" in parts:
        rows += [
            (
                "frames changed after build",
                f"{partial['counts']['partial']} partial writes in {partial['n']}",
                f"{partial['counts']}",
            ),
            ("changes made", ", ".join(f"{k} {v}" for k, v in sorted(partial["kinds"].items())), ""),
        ]
    w0 = max(len(r[0]) for r in rows)
    print(f"{'check'.ljust(w0)} | result | notes")
    print(f"{'-' * w0}-|--------|------")
    for a, b, c in rows:
        print(f"{a.ljust(w0)} | {b} | {c}")
    problems = []
    if "kills" in parts:
        problems += kills["failures"]
    if "fuzz" in parts:
        problems += fuzz["crashes"] + fuzz["changed"]
    if "concurrency" in parts:
        problems += conc["errors"]
    if "hostile" in parts:
        problems += hostile["failures"]
    if "partial" in parts:
        problems += partial["problems"]
    for f in problems:
        print(f"  problem: {f}")
    print("(no peer: the checks are pass/fail properties of engram's own store and memory)")
    na = "not-run"
    line = {
        "kill_during_save_intact": f"{kills['intact']}/{kills['n']}" if "kills" in parts else na,
        "soak_rss_growth_mb": f"{soak['growth_mb']:.1f}" if "soak" in parts else na,
        "soak_fps_drop": f"{soak['cpu_drop_pct']:.1f}%" if "soak" in parts else na,
        "fuzz_cases": fuzz["ok"] if "fuzz" in parts else na,
        "concurrent_deadlocks": conc["deadlocks"] if "concurrency" in parts else na,
        "hostile_stores_refused": f"{hostile['refused']}/{hostile['n']}" if "hostile" in parts else na,
        "partial_writes": partial["counts"]["partial"] if "partial" in parts else na,
    }
    print(" ".join(f"{k}: {v}" for k, v in line.items()))


if __name__ == "__main__":
    main()
