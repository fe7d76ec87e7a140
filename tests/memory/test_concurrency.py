"""SceneMemory under threads: one integrating, others reading and saving, against a deadline.

The reader/writer lock must never deadlock: public read methods call one
another (`save` -> `stats`, `where_is` -> `query`), and a nested read that
queued behind a waiting writer used to hang every thread.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from engram.memory.scene import RWLock, SceneMemory
from engram.types import CameraIntrinsics, Frame, Pose

K = CameraIntrinsics(fx=60.0, fy=60.0, cx=39.5, cy=29.5, width=80, height=60)
R0 = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
BOXES = [
    (1, (2.0, -0.8, 0.0), (2.3, -0.5, 0.3)),
    (2, (2.5, 0.6, 0.0), (2.9, 1.0, 0.25)),
    (9, (4.0, -3.0, 0.0), (4.2, 3.0, 2.5)),
]
LABELS = {1: "mug", 2: "book", 9: "wall"}


def _views(render, n=8):
    out = []
    for i in range(n):
        yaw = math.radians(-40 + 80 * i / (n - 1))
        body = Pose.from_xyz_yaw(0.0, 0.0, 0.0, yaw)
        pose = Pose.from_rt(body.rotation @ R0, [0.0, 0.0, 1.2])
        d, ins = render(BOXES, pose, K)
        out.append((d, ins, pose))
    return out


def _frame(views, i):
    d, ins, pose = views[i % len(views)]
    return Frame(
        index=i,
        timestamp_s=0.1 * i,
        rgb=np.full((K.height, K.width, 3), 90, np.uint8),
        depth_m=d,
        intrinsics=K,
        world_from_camera=pose,
        instances=ins,
        labels={k: v for k, v in LABELS.items() if (ins == k).any()},
    )


def test_nested_read_does_not_queue_behind_a_waiting_writer():
    lock = RWLock()
    entered = threading.Event()
    writer_done = threading.Event()
    nested_ok = threading.Event()

    def reader():
        with lock.read():
            entered.set()
            deadline = time.monotonic() + 5
            while not lock._waiting_writers and time.monotonic() < deadline:
                time.sleep(0.001)
            with lock.read():  # a writer waits now: the nested read must still be granted
                nested_ok.set()

    def writer():
        entered.wait(5)
        with lock.write():
            writer_done.set()

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert nested_ok.is_set() and writer_done.is_set(), "nested read deadlocked behind a waiting writer"


def test_writer_preference_and_reentrant_write():
    lock = RWLock()
    with lock.write(), lock.read(), lock.write():  # the writer may read (and write) again
        pass
    with lock.read(), pytest.raises(RuntimeError, match="read lock"), lock.write():
        pass
    # a waiting writer blocks new readers from other threads
    order = []
    r1_in = threading.Event()
    release = threading.Event()

    def r1():
        with lock.read():
            r1_in.set()
            release.wait(5)
            order.append("r1")

    def w():
        with lock.write():
            order.append("w")

    def r2():
        with lock.read():
            order.append("r2")

    t1 = threading.Thread(target=r1)
    t1.start()
    r1_in.wait(5)
    tw = threading.Thread(target=w)
    tw.start()
    deadline = time.monotonic() + 5
    while not lock._waiting_writers and time.monotonic() < deadline:
        time.sleep(0.001)
    t2 = threading.Thread(target=r2)
    t2.start()
    time.sleep(0.05)
    release.set()
    for t in (t1, tw, t2):
        t.join(10)
    assert order == ["r1", "w", "r2"]


def test_integrating_thread_with_every_reader_meets_a_deadline(box_renderer, tmp_path):
    views = _views(box_renderer)
    mem = SceneMemory(detector="oracle", voxel_size_m=0.1, frontier_every=3)
    mem.integrate(_frame(views, 0))
    stop = threading.Event()
    errors: list[BaseException] = []
    counts: dict[str, int] = {}

    def run(name, fn):
        try:
            while not stop.is_set():
                fn()
                counts[name] = counts.get(name, 0) + 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    frame_no = [1]

    def integrate():
        mem.integrate(_frame(views, frame_no[0]))
        frame_no[0] += 1

    readers = {
        "integrate": integrate,
        "query": lambda: mem.query(text="mug", near=(2.0, 0.0), k=3),
        "where_is": lambda: mem.where_is("mug"),
        "last_seen": lambda: mem.last_seen("book"),
        "changes": lambda: mem.changes(0.0),
        "stats": mem.stats,
        "digest": mem.digest,
        "save": lambda: mem.save(str(tmp_path / "mem")),
        "export": lambda: mem.export(str(tmp_path / "export")),
    }
    threads = [threading.Thread(target=run, args=(n, f), daemon=True, name=n) for n, f in readers.items()]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still blocked after the deadline: {hung}"
    assert not errors, errors
    assert all(counts.get(n, 0) >= 1 for n in readers), counts
    back = SceneMemory.load(str(tmp_path / "mem"))
    assert back.frames_seen >= 1


def test_readers_refreshing_label_weights_take_turns(monkeypatch):
    # queries and saves refresh the object map's label weights under the scene's read lock, which
    # many threads hold at once: the refresh itself must not run in two of them together
    from engram.memory.objects import ObjectMap

    objects = ObjectMap(voxel_size_m=0.05)
    guard = threading.Lock()
    inside = [0, 0]  # now, most at once

    def slow_weigh(ids):
        with guard:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
        time.sleep(0.05)
        with guard:
            inside[0] -= 1

    monkeypatch.setattr(objects, "_weigh_labels", slow_weigh)
    objects._changed.add(1)  # an object whose label weights are stale, as after `update`
    threads = [threading.Thread(target=objects.refresh_labels) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert inside == [0, 1]
