"""`build_index`: every source to its own memory, in parallel on Ray (or in this process), then one table.

With Ray installed, sources are built by a pool of Ray actors, one source at
a time each; an actor loads the encoders once in its constructor and keeps
them for every source it builds. By default a local Ray runtime sized to
the machine is started (and stopped at the end); ``address`` (or
``RAY_ADDRESS``) joins a running cluster instead, whose workers must see the
source paths and the catalogue folder (shared storage) or read the sources
from object-store URIs. A worker process that dies mid-source is restarted
by Ray and its source retried (`max_task_retries`); the driver resubmits a
source whose retries ran out, up to ``max_attempts`` times, then records it
as failed. Without Ray the same `SourceIndexer` runs here, one source after
another.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram._util import dir_size_bytes
from engram.fleet.sources import SourceSpec, expand_sources

__all__ = ["IndexReport", "build_index", "default_settings"]

# per-source build keys of the qa/video config that are not memory settings
_VIDEO_RUN_KEYS = ("_target_", "_convert_", "resume", "progress")


@dataclass
class IndexReport:
    """What a `build_index` run did.

    Attributes:
        catalogue: the catalogue folder.
        engine: "ray" or "local".
        workers: parallel workers used (1 for local).
        done, skipped: source ids built now / already complete from an earlier run.
        failed: ``{"source_id", "path", "error"}`` of sources that could not be indexed.
        duplicates: paths given more than once (indexed once).
        frames: frames read by this run.
        rows: rows in the catalogue table after the run.
        wall_s: wall-clock seconds of the run.
        build_wall_s: wall-clock seconds from the first source handed to a worker to the last
            result (without starting Ray, loading models and writing the table).
        worker_cpu_s: CPU seconds the workers spent on the sources (summed over workers).
        attempts: source id -> times it was started (more than 1: retried after a worker died).
    """

    catalogue: str
    engine: str = "local"
    workers: int = 1
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    frames: int = 0
    rows: int = 0
    wall_s: float = 0.0
    build_wall_s: float = 0.0
    worker_cpu_s: float = 0.0
    attempts: dict[str, int] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        head = (
            f"catalogue {self.catalogue}: {len(self.done)} built, {len(self.skipped)} already complete, "
            f"{len(self.failed)} failed; {self.frames} frames, {self.rows} rows; "
            f"{self.wall_s:.1f} s wall, {self.worker_cpu_s:.1f} s worker CPU ({self.engine}, {self.workers} worker"
            f"{'s' if self.workers != 1 else ''})"
        )
        lines = [head]
        if self.duplicates:
            lines.append(f"given more than once (indexed once): {', '.join(self.duplicates)}")
        retried = sorted(s for s, n in self.attempts.items() if n > 1)
        if retried:
            lines.append(f"retried after a worker died: {', '.join(retried)}")
        lines += [f"FAILED {f['path']}: {f['error']}" for f in self.failed]
        return "\n".join(lines)


def default_settings(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """engram/configs/fleet.yaml with overrides, as plain dicts (what `build_index` records in the catalogue)."""
    from engram.config import compose, to_plain

    s = to_plain(compose("fleet", list(overrides)))
    s["video"] = {k: v for k, v in s["video"].items() if k not in _VIDEO_RUN_KEYS}
    s["memory"] = {k: v for k, v in s["memory"].items() if k != "_target_"}
    return s


def _check_address(address: str) -> None:
    """Fail fast, before anything is written, when no cluster answers at ``address``."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"cluster address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` or fix --address"
        ) from None


def build_index(
    sources: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    settings: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    address: str | None = None,
    workers: int | None = None,
    use_ray: bool | None = None,
    progress: bool = True,
    max_attempts: int = 3,
    ray_init: dict[str, Any] | None = None,
    _kill_worker_after_frames: int | None = None,
) -> IndexReport:
    """Index many sources into the catalogue at ``out`` (see the package doc).

    Args:
        sources: videos, RGB-D folders, bags, folders of them, globs, list files or URIs.
        out: the catalogue folder (created; an existing catalogue is extended, complete
            sources skipped).
        settings: plain fleet settings; default `default_settings(overrides)`.
        overrides: hydra-style overrides of engram/configs/fleet.yaml.
        address: a Ray cluster to join ("host:port", "ray://host:port", "auto");
            default ``RAY_ADDRESS`` or a local runtime.
        workers: parallel workers (default: the CPUs of the local runtime or cluster,
            at most one per source).
        use_ray: False runs in this process; None uses Ray when it is installed.
        progress: show a progress bar of sources and frames.
        max_attempts: times a source is started before it counts as failed when its
            worker keeps dying (a source that raises fails at once).
        ray_init: more keyword arguments for ``ray.init`` of the local runtime.
        _kill_worker_after_frames: fault injection for tests and the benchmark: the first Ray
            worker whose source reaches this many frames SIGKILLs its own process (once a run).

    Raises:
        ValueError: no sources, a glob matching nothing, bad settings, or a catalogue
            of another version / other settings (`CatalogueError`).
        ConnectionError: no cluster answers at ``address``.
        MissingExtraError: ``address`` or ``use_ray=True`` without Ray installed.
    """
    from engram.fleet.catalogue import Catalogue
    from engram.fleet.worker import is_complete, settings_key

    t0 = time.perf_counter()
    specs, duplicates = expand_sources(sources)
    settings = default_settings(overrides) if settings is None else settings
    address = address or os.environ.get("RAY_ADDRESS") or None
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    if use_ray is None:
        from engram._optional import available

        use_ray = available("ray") or address is not None
    if use_ray:
        from engram._optional import require

        require("ray", "parallel indexing (engram index)")
        if address is not None:
            _check_address(address)
    cat = Catalogue.create(out, settings)
    report = IndexReport(catalogue=str(cat.path), duplicates=duplicates)
    key = settings_key(settings)
    with cat.writer_lock():
        todo: list[SourceSpec] = []
        for spec in specs:
            if not spec.error and is_complete(cat.path / "sources" / spec.source_id, spec, key):
                report.skipped.append(spec.source_id)
                cat.clear_failure(spec.source_id)
            else:
                todo.append(spec)
        # largest first, so that the sources still running at the end are small ones (workers finish together)
        todo.sort(key=lambda spec: -_size_bytes(spec.path))
        stopped: Callable[[], None] = _nothing
        if todo and use_ray:
            results, stopped = _run_ray(todo, cat.path, settings, address, workers, progress, max_attempts,
                                        ray_init or {}, report, _kill_worker_after_frames)  # fmt: skip
        elif todo:
            results = _run_local(todo, cat.path, settings, progress, report)
        else:
            results = {}
        try:
            meta = _finish(cat, todo, results, report)
        finally:
            stopped()  # the local Ray runtime stops while the table is merged; gone before returning
    report.rows = int(meta["rows"])
    report.wall_s = time.perf_counter() - t0
    return report


def _nothing() -> None:
    return None


def _finish(cat: Any, todo: list[SourceSpec], results: dict[str, dict[str, Any]], report: IndexReport) -> dict:
    """Record every result in the catalogue and merge the committed sources into a new table."""
    by_id = {s.source_id: s for s in todo}
    for sid, res in results.items():
        report.results[sid] = res
        report.worker_cpu_s += float(res.get("cpu_s", 0.0))
        if res["status"] == "failed":
            spec = by_id[sid]
            report.failed.append({"source_id": sid, "path": spec.path, "error": res["error"]})
            cat.record_failure(spec.to_json(), res["error"], report.attempts.get(sid, 1))
            continue
        cat.clear_failure(sid)
        report.frames += int(res.get("frames", 0))
        (report.done if res["status"] == "done" else report.skipped).append(sid)
    cat.clean_tmp()  # every worker is done: what is left in .tmp is from attempts that died
    return cat.refresh_table()


def _size_bytes(path: str) -> int:
    try:
        return dir_size_bytes(path)
    except OSError:
        return 0


def _run_local(
    todo: list[SourceSpec],
    root: Path,
    settings: dict[str, Any],
    progress: bool,
    report: IndexReport,
) -> dict:
    from engram.fleet.worker import SourceIndexer

    bar = _bar(len(todo), progress)
    frames = [0]

    def tick(n: int) -> None:
        frames[0] += n
        if bar is not None:
            bar.set_postfix(frames=frames[0], refresh=False)
            bar.refresh()

    indexer = SourceIndexer(settings, root)
    results = {}
    t0 = time.perf_counter()
    try:
        for spec in todo:
            report.attempts[spec.source_id] = 1
            results[spec.source_id] = indexer.index(spec, progress=tick)
            if bar is not None:
                bar.update(1)
    finally:
        report.build_wall_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return results


def _bar(total: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="index", unit="source")


def _run_ray(
    todo: list[SourceSpec],
    root: Path,
    settings: dict[str, Any],
    address: str | None,
    workers: int | None,
    progress: bool,
    max_attempts: int,
    ray_init: dict[str, Any],
    report: IndexReport,
    kill_after_frames: int | None,
) -> tuple[dict[str, dict[str, Any]], Callable[[], None]]:
    """Build ``todo`` on Ray; returns the results and a call that waits until a runtime started here has stopped."""
    import ray

    threads = "1"
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads,
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"log_to_driver": False}
        if address is not None:
            try:  # a cluster's workers get the settings through the job's runtime environment
                ray.init(address=address, runtime_env={"env_vars": env}, **kw)
            except Exception as exc:
                raise ConnectionError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        else:
            # a local runtime's workers inherit the environment its daemons start with: no runtime
            # environment to set up (which costs seconds per worker process and at start-up)
            kw.update(num_cpus=os.cpu_count() or 1, include_dashboard=False)
            kw.update(ray_init)
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                ray.init(**kw)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(workers or cpus, len(todo)))
        report.engine, report.workers = "ray", n
        results = _schedule(ray, todo, root, settings, n, progress, max_attempts, report, kill_after_frames)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    if not started:
        return results, _nothing
    # the local runtime takes a second or more to stop (its processes exit): the caller merges the
    # catalogue's table meanwhile and joins this thread before it returns
    stopper = threading.Thread(target=ray.shutdown, name="engram-ray-shutdown", daemon=True)
    stopper.start()
    return results, stopper.join


_PROGRESS_DIR = Path(".tmp") / "progress"


class _ProgressFiles:
    """Frames done per source, from the files the workers write under the catalogue's ``.tmp``.

    Each attempt at a source writes ``<source_id>.<pid>.<token>`` holding its frame count, so the
    files also count the attempts. The folder is shared storage on a cluster, like the builds.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)  # a run killed earlier: its counts are not this run's

    def read(self) -> tuple[int, dict[str, int]]:
        """(frames done, summed over sources: the furthest attempt of each; attempts started per source)."""
        frames: dict[str, int] = {}
        starts: dict[str, int] = {}
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return 0, {}
        for entry in entries:
            sid = entry.name.rsplit(".", 2)[0]
            starts[sid] = starts.get(sid, 0) + 1
            try:
                k = int(Path(entry.path).read_text() or 0)
            except (OSError, ValueError):  # being written this instant
                k = 0
            frames[sid] = max(frames.get(sid, 0), k)
        return sum(frames.values()), starts


def _schedule(ray, todo, root, settings, n, progress, max_attempts, report, kill_after_frames) -> dict:
    from engram.fleet.worker import SourceIndexer

    class FleetWorker:
        def __init__(
            self,
            settings_json: str,
            root: str,
            kill_after_frames: int | None = None,
        ) -> None:
            import json

            try:
                import torch

                torch.set_num_threads(1)
            except ImportError:
                pass
            import cv2

            cv2.setNumThreads(1)  # OpenCV's own thread pool (resize, filters, components), like the other libraries
            self.indexer = SourceIndexer(json.loads(settings_json), root)  # encoders load here, once per actor
            self.progress_dir = Path(root) / _PROGRESS_DIR
            self.kill_after_frames = kill_after_frames
            self.kill_marker = Path(root) / ".tmp" / ".fault-injected"

        def pid(self) -> int:
            return os.getpid()

        def index(self, spec: dict[str, str]) -> dict[str, Any]:
            sid = spec["source_id"]
            # one file per attempt, holding its frame count: the driver reads them for the progress bar
            # and the attempts (no progress actor, so no process of its own)
            mark = self.progress_dir / f"{sid}.{os.getpid()}.{secrets.token_hex(3)}"
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.write_text("0")
            done = [0]

            def progress(k: int) -> None:
                done[0] += k
                mark.write_text(str(done[0]))
                if self.kill_after_frames is not None and done[0] >= self.kill_after_frames:
                    # fault injection (tests, benchmark): the first worker to get this far is SIGKILLed mid-source
                    try:
                        os.close(os.open(self.kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    except FileExistsError:
                        return
                    os.kill(os.getpid(), signal.SIGKILL)

            return self.indexer.index(SourceSpec(**spec), progress=progress)

    actor: Any = ray.remote(num_cpus=1, max_restarts=max_attempts, max_task_retries=max_attempts - 1)(FleetWorker)

    import json

    tracker = _ProgressFiles(Path(root) / _PROGRESS_DIR)
    settings_json = json.dumps(settings)  # small arguments travel inline, so a restarted actor gets them again
    pool = [actor.remote(settings_json, str(root), kill_after_frames) for _ in range(n)]
    pids = dict(enumerate(ray.get([a.pid.remote() for a in pool])))  # waits for the encoders to load
    queue = list(todo)
    attempts: dict[str, int] = {}
    running: dict[Any, tuple[int, SourceSpec]] = {}
    idle = list(range(n))
    results: dict[str, dict[str, Any]] = {}
    bar = _bar(len(todo), progress)
    frames_seen = 0
    t0 = time.perf_counter()
    try:
        while queue or running:
            while queue and idle:
                w = idle.pop(0)
                spec = queue.pop(0)
                attempts[spec.source_id] = attempts.get(spec.source_id, 0) + 1
                running[pool[w].index.remote(spec.to_json())] = (w, spec)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if bar is not None:
                frames_seen, _ = tracker.read()
                bar.set_postfix(frames=frames_seen, refresh=False)
                bar.refresh()
            for fut in ready:
                w, spec = running.pop(fut)
                try:
                    res = ray.get(fut)
                except Exception as exc:  # noqa: BLE001 - the worker died more often than Ray retries
                    if attempts[spec.source_id] < max_attempts:
                        queue.append(spec)
                    else:
                        res = {
                            "source_id": spec.source_id,
                            "status": "failed",
                            "error": f"worker died: {type(exc).__name__}",
                        }
                        results[spec.source_id] = res
                        if bar is not None:
                            bar.update(1)
                    pool[w] = actor.remote(settings_json, str(root), kill_after_frames)
                    try:
                        pids[w] = ray.get(pool[w].pid.remote())
                    except Exception:  # noqa: BLE001 - killed again (memory pressure): its next task retries
                        pids[w] = None
                    idle.append(w)
                    continue
                if res.get("pid") not in (
                    None,
                    pids[w],
                ):  # Ray restarted the actor and retried the source
                    attempts[spec.source_id] += 1
                    pids[w] = res["pid"]
                results[spec.source_id] = res
                idle.append(w)
                if bar is not None:
                    bar.update(1)
        report.build_wall_s = time.perf_counter() - t0
        _, starts = tracker.read()
        for sid, s in starts.items():
            report.attempts[sid] = max(report.attempts.get(sid, 0), s, attempts.get(sid, 0))
    finally:
        if bar is not None:
            bar.close()
        for a in pool:
            ray.kill(a)
    return results
