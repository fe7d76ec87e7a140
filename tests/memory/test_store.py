"""engram.memory.store: round trips, checksums naming the bad file, versions, and kill-during-save safety."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engram.memory import store as store_mod
from engram.memory.store import (
    MANIFEST_NAME,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    manifest_checksum,
    read_store,
    register_migration,
    store_generations,
    write_store,
)

KIND = "scene_memory"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="crash tests fork a writer process (POSIX only)")


def _files(i: int) -> dict:
    """The content of save number ``i``: every value derives from ``i``, so a load can be checked exactly."""
    rng = np.random.default_rng(i)
    return {
        "octree/keys.npy": rng.integers(-1000, 1000, size=(2000 + i, 3), dtype=np.int64),
        "octree/log_odds.npy": rng.normal(size=2000 + i).astype(np.float32),
        "objects.json": {"objects": [{"id": k, "label": f"thing{k}", "i": i} for k in range(5)]},
        "snapshots/000.jpg": bytes(rng.integers(0, 256, size=5000, dtype=np.uint8)),
    }


def _assert_is_save(contents: store_mod.StoreContents, i: int) -> None:
    expected = _files(i)
    assert contents.meta["i"] == i
    assert sorted(contents.names()) == sorted(expected)
    np.testing.assert_array_equal(contents.array("octree/keys.npy"), expected["octree/keys.npy"])
    np.testing.assert_array_equal(contents.array("octree/log_odds.npy"), expected["octree/log_odds.npy"])
    assert contents.json("objects.json") == expected["objects.json"]
    assert contents.read_bytes("snapshots/000.jpg") == expected["snapshots/000.jpg"]


def _save(path: Path, i: int) -> Path:
    return write_store(path, _files(i), kind=KIND, version=1, meta={"i": i})


def _load(path: Path) -> store_mod.StoreContents:
    return read_store(path, kind=KIND, supported_versions=[1], verify=True)


def _leftovers(path: Path) -> list[str]:
    return sorted(e.name for e in path.parent.iterdir() if ".engram-tmp-" in e.name or ".engram-link-" in e.name)


# ---------------------------------------------------------------------------
# round trips


def test_round_trip_all_value_types(tmp_path: Path) -> None:
    arrays = {
        "a/f32.npy": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        "a/i64.npy": np.array([[-(2**62), 2**62]], dtype=np.int64),
        "a/bool.npy": np.array([True, False, True]),
        "a/empty.npy": np.zeros((0, 3), dtype=np.float64),
        "a/fortran.npy": np.asfortranarray(np.arange(6, dtype=np.uint16).reshape(2, 3)),
    }
    table = {"nodes": [{"id": 1, "xyz": [0.5, 1.0, -2.0]}], "name": "kitchen ünïcode"}
    raw = bytes(range(256)) * 3
    out = write_store(
        tmp_path / "m",
        {**arrays, "graph.json": table, "list.json": [1, 2, 3], "snap/1.png": raw},
        kind=KIND,
        version=2,
        meta={"voxel_size_m": 0.05},
    )
    assert out.is_dir()
    c = read_store(tmp_path / "m", kind=KIND, supported_versions=[1, 2], verify=True)
    for name, arr in arrays.items():
        got = c[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
    assert c["graph.json"] == table and c["list.json"] == [1, 2, 3] and c["snap/1.png"] == raw
    assert c.meta == {"voxel_size_m": 0.05}
    assert c.kind == KIND and c.version == 2 and c.generation == 1
    assert c.created["engram_version"] and c.created["host"] and c.created["time_utc"]
    # The manifest records what an independent hash of each file gives.
    import hashlib

    manifest = json.loads((c.path / MANIFEST_NAME).read_text())
    for name, entry in manifest["files"].items():
        data = (c.path / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    # .npy files are plain numpy files any tool can read.
    np.testing.assert_array_equal(np.load(c.path / "a/f32.npy"), arrays["a/f32.npy"])


def test_numpy_values_inside_json_become_plain_numbers(tmp_path: Path) -> None:
    write_store(
        tmp_path / "m",
        {"stats.json": {"n": np.int64(3), "mean": np.float32(0.5), "xyz": np.arange(3)}},
        kind=KIND,
        version=1,
        meta={"frames": np.uint16(7)},
    )
    c = read_store(tmp_path / "m", kind=KIND, supported_versions=[1])
    assert c["stats.json"] == {"n": 3, "mean": 0.5, "xyz": [0, 1, 2]} and c.meta == {"frames": 7}
    with pytest.raises(StoreError, match="not valid JSON"):
        write_store(tmp_path / "m", {"s.json": {"x": np.float64("nan")}}, kind=KIND, version=1)


def test_each_save_is_a_new_generation_and_old_ones_are_pruned(tmp_path: Path) -> None:
    p = tmp_path / "m"
    for i in range(1, 5):
        _save(p, i)
        _assert_is_save(_load(p), i)
    gens = store_generations(p)
    assert sorted(gens) == [3, 4]  # the current one and the previous one
    assert p.is_symlink() and os.readlink(p) == gens[4].name
    write_store(p, {"x.json": {}}, kind=KIND, version=1, keep_previous=False)
    assert sorted(store_generations(p)) == [5]


def test_a_reader_outlives_one_newer_save_and_is_told_after_two(tmp_path: Path) -> None:
    p = tmp_path / "m"
    _save(p, 1)
    reader = read_store(p, kind=KIND, supported_versions=[1])
    _save(p, 2)  # the previous generation is kept: the reader still works
    _assert_is_save(reader, 1)
    _save(p, 3)
    with pytest.raises(StoreError, match="removed by newer saves"):
        reader.array("octree/keys.npy")
    _assert_is_save(_load(p), 3)


def test_lazy_access_and_checksum_names_the_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "m"
    _save(p, 1)
    c = _load(p)
    target = c.path / "octree/log_odds.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # flip one payload bit, size unchanged
    target.write_bytes(bytes(data))
    c = read_store(p, kind=KIND, supported_versions=[1])  # lazy: opening does not read files
    np.testing.assert_array_equal(c.array("octree/keys.npy"), _files(1)["octree/keys.npy"])
    with pytest.raises(StoreCorruptError, match=r"octree/log_odds\.npy.*sha256"):
        c.array("octree/log_odds.npy")
    with pytest.raises(StoreCorruptError, match=r"octree/log_odds\.npy"):
        read_store(p, kind=KIND, supported_versions=[1], verify=True)
    # truncated and missing files are named too
    (c.path / "objects.json").write_bytes(b"{")
    with pytest.raises(StoreCorruptError, match=r"objects\.json.*bytes"):
        c.json("objects.json")
    (c.path / "snapshots/000.jpg").unlink()
    with pytest.raises(StoreCorruptError, match=r"snapshots/000\.jpg.*missing"):
        c.read_bytes("snapshots/000.jpg")
    with pytest.raises(KeyError, match="nope"):
        c.read_bytes("nope.npy")


def test_damaged_manifest_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "m"
    _save(p, 1)
    gen = store_generations(p)[1]
    (gen / MANIFEST_NAME).write_text("{ not json")
    with pytest.raises(StoreCorruptError, match="manifest.json"):
        _load(p)
    (gen / MANIFEST_NAME).write_text(json.dumps({"format": "engram.store", "kind": KIND}))
    with pytest.raises(StoreCorruptError, match="format_version"):
        _load(p)


def test_missing_store_and_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no engram store"):
        read_store(tmp_path / "none", kind=KIND, supported_versions=[1])
    _save(tmp_path / "m", 1)
    with pytest.raises(StoreError, match="holds a 'scene_memory', not a 'video_memory'"):
        read_store(tmp_path / "m", kind="video_memory", supported_versions=[1])
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not an engram store"):
        read_store(tmp_path / "plain", kind=KIND, supported_versions=[1])


# ---------------------------------------------------------------------------
# versions and migrations


def _rewrite_manifest(p: Path, **changes) -> None:
    gen = Path(os.path.realpath(p))
    manifest = json.loads((gen / MANIFEST_NAME).read_text())
    for key, value in changes.items():
        if key == "engram_version":
            manifest["created"]["engram_version"] = value
        else:
            manifest[key] = value
    manifest["manifest_sha256"] = manifest_checksum(manifest)  # as a newer or older engram would have written it
    (gen / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_newer_version_names_the_engram_version_needed(tmp_path: Path) -> None:
    p = tmp_path / "m"
    write_store(p, {"a.npy": np.zeros(3)}, kind=KIND, version=5)
    _rewrite_manifest(p, engram_version="0.7.2")
    want = r"version 5.*engram 0\.7\.2.*versions 1\.\.3.*upgrade to engram >= 0\.7\.2"
    with pytest.raises(StoreVersionError, match=want):
        read_store(p, kind=KIND, supported_versions=range(1, 4))
    _rewrite_manifest(p, format_version=99)
    with pytest.raises(StoreVersionError, match="container format 99"):
        read_store(p, kind=KIND, supported_versions=range(1, 6))


def test_older_version_goes_through_registered_migrations(tmp_path: Path) -> None:
    kind = f"test_kind_{os.getpid()}_{random.randrange(1 << 30)}"

    @register_migration(kind, 1)
    def _v1(old):
        return old.replaced({"scaled.npy": old.array("raw.npy") * 2.0}, removed=["raw.npy"])

    @register_migration(kind, 2)
    def _v2(old):
        return old.replaced({"info.json": {"n": int(old.array("scaled.npy").size)}})

    p = tmp_path / "m"
    write_store(p, {"raw.npy": np.arange(4.0), "keep.json": {"k": 1}}, kind=kind, version=1)
    c = read_store(p, kind=kind, supported_versions=[3], verify=True)
    assert c.version == 3 and c.stored_version == 1
    assert c.names() == ["info.json", "keep.json", "scaled.npy"]
    np.testing.assert_array_equal(c["scaled.npy"], np.arange(4.0) * 2.0)
    assert c["info.json"] == {"n": 4} and c["keep.json"] == {"k": 1}
    assert "raw.npy" not in c
    # a version with a gap in the chain says which engram to use
    write_store(p, {"raw.npy": np.arange(4.0)}, kind=kind, version=1)
    _rewrite_manifest(p, engram_version="0.0.9")
    with pytest.raises(StoreVersionError, match=r"no migration from version 3.*engram 0\.0\.9"):
        read_store(p, kind=kind, supported_versions=[4])
    with pytest.raises(ValueError, match="already registered"):
        register_migration(kind, 1)(lambda c: c)


# ---------------------------------------------------------------------------
# bad input changes nothing


@pytest.mark.parametrize(
    "files, message",
    [
        ({"../escape.npy": np.zeros(2)}, "invalid"),
        ({"/abs.json": {}}, "invalid"),
        ({"manifest.json": {}}, "reserved"),
        ({"a.npy": np.array([object()], dtype=object)}, "object arrays"),
        ({"a.json": np.zeros(2)}, r"\.npy name"),
        ({"a.npy": {"x": 1}}, r"\.json name"),
        ({"a.json": {"x": float("nan")}}, "not valid JSON"),
        ({"a.json": {"x": {1, 2}}}, "not valid JSON"),
        ({"a.txt": "text"}, "unsupported value type str"),
        ({"a": b"1", "a/b": b"2"}, "which is a file"),
    ],
)
def test_bad_input_raises_and_leaves_the_previous_save(tmp_path: Path, files: dict, message: str) -> None:
    p = tmp_path / "m"
    _save(p, 1)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(StoreError, match=message):
        write_store(p, files, kind=KIND, version=1)
    assert sorted(os.listdir(tmp_path)) == before
    _assert_is_save(_load(p), 1)


def test_write_error_midway_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "m"
    _save(p, 1)
    before = sorted(os.listdir(tmp_path))
    real = store_mod._write_payload
    calls = []

    def failing(path, payload):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, payload)

    monkeypatch.setattr(store_mod, "_write_payload", failing)
    with pytest.raises(OSError, match="No space"):
        _save(p, 2)
    assert sorted(os.listdir(tmp_path)) == before
    _assert_is_save(_load(p), 1)


def test_arrays_stream_and_load_writable(tmp_path: Path) -> None:
    base = np.arange(60, dtype=np.float64).reshape(6, 10)
    structured = np.array([(1, 2.5), (3, -1.0)], dtype=[("id", "<i4"), ("score", "<f8")])
    files = {"strided.npy": base[::2, ::3], "big_endian.npy": base.astype(">i2"), "rec.npy": structured}
    write_store(tmp_path / "m", files, kind=KIND, version=1)
    c = read_store(tmp_path / "m", kind=KIND, supported_versions=[1], verify=True)
    for name, arr in files.items():
        got = c.array(name)
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
        assert got.flags.writeable
    got = c.array("strided.npy")
    got[0, 0] = -5.0  # a private copy: the file is unchanged
    assert c.array("strided.npy")[0, 0] == 0.0


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="version"):
        write_store(tmp_path / "m", {}, kind=KIND, version=0)
    with pytest.raises(StoreError, match="kind"):
        write_store(tmp_path / "m", {}, kind="", version=1)
    with pytest.raises(StoreError, match="meta"):
        write_store(tmp_path / "m", {}, kind=KIND, version=1, meta={"x": object()})
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "precious.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not an engram store"):
        write_store(tmp_path / "user", {}, kind=KIND, version=1)
    assert (tmp_path / "user" / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------
# concurrency


def test_concurrent_writers_are_serialised(tmp_path: Path) -> None:
    p = tmp_path / "m"
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            for i in range(start, start + 4):
                _save(p, i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (10, 20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    c = _load(p)
    _assert_is_save(c, c.meta["i"])
    assert c.generation == 12 and not _leftovers(p)


# ---------------------------------------------------------------------------
# crash safety: SIGKILL a real writer process at every step of a save


def _steps_of_one_save(tmp_path: Path, no_symlinks: bool) -> list[str]:
    p = tmp_path / "probe"
    _save(p, 1)
    steps: list[str] = []
    store_mod.set_fault_hook(steps.append)
    old_env = os.environ.get("ENGRAM_STORE_NO_SYMLINKS")
    try:
        if no_symlinks:
            os.environ["ENGRAM_STORE_NO_SYMLINKS"] = "1"
        _save(p, 2)
    finally:
        store_mod.set_fault_hook(None)
        if old_env is None:
            os.environ.pop("ENGRAM_STORE_NO_SYMLINKS", None)
        else:
            os.environ["ENGRAM_STORE_NO_SYMLINKS"] = old_env
    return steps


_BEFORE_COMMIT = ("mkdir_tmp", "write:", "remove_stale", "fsync_tmp", "rename_tmp")
_AFTER_COMMIT = ("committed", "retire_old", "remove_old", "done")


def _save_in_child_killed_at(p: Path, i: int, kill_at: int, no_symlinks: bool) -> str | None:
    """Fork a writer that SIGKILLs itself at its ``kill_at``-th checkpoint.

    Returns the name of the step it was killed at, or None when the save finished.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            if no_symlinks:
                os.environ["ENGRAM_STORE_NO_SYMLINKS"] = "1"
            counter = [0]

            def hook(step: str) -> None:
                if counter[0] == kill_at:
                    os.write(w, step.encode())
                    os.kill(os.getpid(), signal.SIGKILL)
                counter[0] += 1

            store_mod.set_fault_hook(hook)
            _save(p, i)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as fh:
        step = fh.read().decode()
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return step
    assert os.WEXITSTATUS(status) == 0, "the writer failed instead of being killed"
    return None


@pytest.mark.parametrize("no_symlinks", [False, True], ids=["symlink-swap", "rename-swap"])
def test_sigkill_at_every_step_of_a_save_leaves_a_loadable_store(tmp_path: Path, no_symlinks: bool) -> None:
    steps = _steps_of_one_save(tmp_path, no_symlinks)
    assert len(steps) >= 12, steps
    p = tmp_path / "m"
    _save(p, 1)
    killed_at: list[str] = []
    previous = 1

    def kill_and_check(k: int) -> None:
        nonlocal previous
        i = previous + 1
        step = _save_in_child_killed_at(p, i, k, no_symlinks)
        c = _load(p)
        got = c.meta["i"]
        assert got in (previous, i), (k, step, got)
        if step is not None:
            killed_at.append(step)
            if step.startswith(_BEFORE_COMMIT):
                assert got == previous, f"killed at {step} but the new save is visible"
            if step.startswith(_AFTER_COMMIT):
                assert got == i, f"killed at {step}, after the commit, but the old save is visible"
        else:
            assert got == i
        _assert_is_save(c, got)
        previous = got

    for k in range(len(steps)):
        kill_and_check(k)  # from a clean directory: every step of a save
        if k % 3 == 1:  # a writer killed while clearing the debris of the last one
            kill_and_check(0)
            kill_and_check(1)
        previous += 1
        _save(p, previous)
    assert len(killed_at) >= len(steps)
    assert {"remove_stale", "rename_tmp", "committed"} <= set(killed_at)
    # the next clean save removes every stale temp directory and orphan
    _save(p, previous + 1)
    _assert_is_save(_load(p), previous + 1)
    assert not _leftovers(p)
    assert len(store_generations(p)) <= 2


def test_sigkill_at_random_moments_during_repeated_saves(tmp_path: Path) -> None:
    p = tmp_path / "m"
    _save(p, 0)
    rng = random.Random(1234)
    for trial in range(20):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: save forever, report each completed save
            os.close(r)
            try:
                i = 1000 * (trial + 1)
                while True:
                    _save(p, i)
                    os.write(w, f"{i}\n".encode())
                    i += 1
            finally:
                os._exit(1)
        os.close(w)
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(r) as fh:
            reported = [int(x) for x in fh.read().split()]
        c = _load(p)
        got = c.meta["i"]
        _assert_is_save(c, got)
        if reported:
            assert got in (reported[-1], reported[-1] + 1), (reported[-1], got)
    _save(p, 1)
    assert not _leftovers(p)
