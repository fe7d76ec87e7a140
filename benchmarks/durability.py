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

There is no peer: each part checks a property of engram's own store and
memory, pass or fail.

Usage:
    python benchmarks/durability.py [--kills 240] [--soak-frames 100000] [--fuzz 10000]

Last line:
    kill_during_save_intact: K/N soak_rss_growth_mb: G soak_fps_drop: D fuzz_cases: F
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=240)
    ap.add_argument("--soak-frames", type=int, default=100_000)
    ap.add_argument("--fuzz", type=int, default=10_000)
    ap.add_argument("--json", type=str, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    kills = bench_kills(args.kills)
    print(f"kills: {kills['intact']}/{kills['n']} intact in {kills['s']:.0f} s", file=sys.stderr, flush=True)
    fuzz = bench_fuzz(args.fuzz)
    print(f"fuzz: {fuzz['ok']}/{fuzz['n']} in {fuzz['s']:.0f} s", file=sys.stderr, flush=True)
    soak = bench_soak(args.soak_frames)
    if args.json:
        Path(args.json).write_text(json.dumps({"kills": kills, "fuzz": fuzz, "soak": soak}, indent=1, default=str))

    rows = [
        (
            "kill during save (SIGKILL)",
            f"{kills['intact']}/{kills['n']} previous-or-committed save loads intact",
            f"{kills['steps_per_save']} checkpoints per save, every 5th kill timed; save {kills['save_s'] * 1e3:.0f} ms",
        ),
        ("kill points hit", ", ".join(f"{k} {v}" for k, v in sorted(kills["killed_at"].items())), ""),
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
        ("fuzz bad inputs", f"{fuzz['ok']}/{fuzz['n']} no crash, memory unchanged when rejected", f"{fuzz['counts']}"),
        ("fuzz kinds", ", ".join(f"{k} {v}" for k, v in sorted(fuzz["kinds"].items())), ""),
    ]
    w0 = max(len(r[0]) for r in rows)
    print(f"{'check'.ljust(w0)} | result | notes")
    print(f"{'-' * w0}-|--------|------")
    for a, b, c in rows:
        print(f"{a.ljust(w0)} | {b} | {c}")
    for f in kills["failures"] + fuzz["crashes"] + fuzz["changed"]:
        print(f"  problem: {f}")
    print("(no peer: the checks are pass/fail properties of engram's own store and memory)")
    print(
        f"kill_during_save_intact: {kills['intact']}/{kills['n']} "
        f"soak_rss_growth_mb: {soak['growth_mb']:.1f} soak_fps_drop: {soak['cpu_drop_pct']:.1f}% "
        f"fuzz_cases: {fuzz['ok']}"
    )


if __name__ == "__main__":
    main()
