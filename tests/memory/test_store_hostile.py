"""Damaged and crafted stores: every one is refused with a StoreError, quickly, reading nothing outside.

A store's manifest names its files; names that climb out of the folder,
absolute names, links, FIFOs, giant files and bit flips in the manifest must
all end in one `StoreError` (the CLI prints it as one line, exit status 2).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engram.cli import main as cli_main
from engram.memory.scene import SceneMemory
from engram.memory.store import (
    MANIFEST_NAME,
    StoreCorruptError,
    StoreError,
    manifest_checksum,
)
from engram.types import CameraIntrinsics, Frame, Pose

K = CameraIntrinsics(fx=40.0, fy=40.0, cx=19.5, cy=14.5, width=40, height=30)


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> Path:
    mem = SceneMemory(voxel_size_m=0.2)
    pose = Pose.from_rt([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], [0.0, 0.0, 1.0])
    for i in range(3):
        mem.integrate(
            Frame(i, 0.1 * i, np.full((30, 40, 3), 70, np.uint8), np.full((30, 40), 2.0, np.float32), K, pose)
        )
    p = tmp_path_factory.mktemp("base") / "mem"
    mem.save(str(p))
    return Path(os.path.realpath(p))


def _copy(base: Path, dst: Path) -> tuple[Path, dict]:
    shutil.copytree(base, dst)
    return dst, json.loads((dst / MANIFEST_NAME).read_text())


def _write_manifest(store: Path, manifest: dict) -> None:
    manifest["manifest_sha256"] = manifest_checksum(manifest)  # crafted, so the checksum matches
    (store / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.fixture
def outside(tmp_path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.npy").write_bytes(b"secret outside the store")
    return d


_RECORDING: list[list[str]] = []  # an audit hook cannot be removed: one for the module, on while recording


def _audit(event, args):
    if _RECORDING and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _RECORDING[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def _opened_during(fn) -> tuple[BaseException | None, list[str], float]:
    """What ``fn`` raised, every path it opened, and how long it took."""
    _RECORDING.append([])
    t0 = time.monotonic()
    err = None
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        err = exc
    dt = time.monotonic() - t0
    return err, _RECORDING.pop(), dt


def _assert_refused(store: Path, outside: Path) -> StoreError:
    err, opened, dt = _opened_during(lambda: SceneMemory.load(str(store)))
    assert isinstance(err, StoreError), f"{type(err).__name__}: {err}"
    assert dt < 5.0
    leaked = [p for p in opened if os.path.realpath(p).startswith(str(outside))]
    assert not leaked, leaked
    return err


def _retarget(manifest: dict, old: str, new: str, data: bytes | None = None) -> None:
    entry = manifest["files"].pop(old)
    if data is not None:
        import hashlib

        entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "type": entry["type"]}
    manifest["files"][new] = entry


@pytest.mark.parametrize(
    "name",
    [
        "octree/../../outside/secret.npy",
        "../outside/secret.npy",
        "/ABS/secret.npy",
        "octree/./keys.npy",
        "a\\..\\b.npy",
        "scene.json\n",
        "",
        "x" * 300,
        "octree//keys.npy",
        ".hidden.npy",
    ],
)
def test_names_outside_or_malformed_are_refused(base_store, tmp_path, outside, name):
    store, manifest = _copy(base_store, tmp_path / "s")
    secret = (outside / "secret.npy").read_bytes()
    _retarget(manifest, "octree/log_odds.npy", name.replace("/ABS", str(outside)), secret)
    _write_manifest(store, manifest)
    err = _assert_refused(store, outside)
    assert "manifest" in str(err)


@pytest.mark.parametrize("how", ["file_link_abs", "file_link_rel", "dir_link", "manifest_link"])
def test_links_are_not_followed(base_store, tmp_path, outside, how):
    store, manifest = _copy(base_store, tmp_path / "s")
    secret = (outside / "secret.npy").read_bytes()
    if how == "file_link_abs":
        (store / "octree/log_odds.npy").unlink()
        os.symlink(outside / "secret.npy", store / "octree/log_odds.npy")
        _retarget(manifest, "octree/log_odds.npy", "octree/log_odds.npy", secret)
        _write_manifest(store, manifest)
    elif how == "file_link_rel":
        (store / "scene.json").unlink()
        os.symlink(os.path.relpath(outside / "secret.npy", store), store / "scene.json")
    elif how == "dir_link":
        shutil.copytree(store / "octree", outside / "octree")
        shutil.rmtree(store / "octree")
        os.symlink(outside / "octree", store / "octree")
    else:
        shutil.copy(store / MANIFEST_NAME, outside / MANIFEST_NAME)
        (store / MANIFEST_NAME).unlink()
        os.symlink(outside / MANIFEST_NAME, store / MANIFEST_NAME)
    _assert_refused(store, outside)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("target", ["scene.json", MANIFEST_NAME])
def test_a_fifo_does_not_hang_the_load(base_store, tmp_path, outside, target):
    store, _ = _copy(base_store, tmp_path / "s")
    (store / target).unlink()
    os.mkfifo(store / target)
    err = _assert_refused(store, outside)
    assert isinstance(err, StoreCorruptError)


@pytest.mark.parametrize("target", ["scene.json", MANIFEST_NAME])
def test_a_giant_file_is_refused_without_reading_it(base_store, tmp_path, outside, target):
    store, _ = _copy(base_store, tmp_path / "s")
    with open(store / target, "r+b") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GiB that costs no disk
    t0 = time.process_time()
    err = _assert_refused(store, outside)
    assert time.process_time() - t0 < 0.5, "the giant file was read"
    assert "bytes" in str(err)


def test_every_bit_flip_of_the_manifest_is_refused(base_store, tmp_path, outside):
    store, _ = _copy(base_store, tmp_path / "s")
    raw = (store / MANIFEST_NAME).read_bytes()
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(raw) * 8, size=60, replace=False):
        data = bytearray(raw)
        data[pos // 8] ^= 1 << (pos % 8)
        (store / MANIFEST_NAME).write_bytes(bytes(data))
        assert isinstance(_assert_refused(store, outside), StoreCorruptError)  # damage, never "a newer store"


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(files=list(m["files"])),
        lambda m: m["files"]["scene.json"].update(size="12"),
        lambda m: m["files"]["scene.json"].update(size=-1),
        lambda m: m["files"]["scene.json"].pop("sha256"),
        lambda m: m["files"]["scene.json"].update(type="pickle"),
        lambda m: m["files"]["scene.json"].update(extra=1),
        lambda m: m.update(generation="1"),
        lambda m: m.update(version=True),
        lambda m: m.update(kind=""),
        lambda m: m.update(meta=[]),
        lambda m: m.update(created={"host": 5}),
        lambda m: m.update(surprise={}),
    ],
)
def test_manifest_schema(base_store, tmp_path, outside, change):
    store, manifest = _copy(base_store, tmp_path / "s")
    change(manifest)
    _write_manifest(store, manifest)
    assert isinstance(_assert_refused(store, outside), StoreCorruptError)


def test_crafted_contents_with_valid_checksums_are_one_store_error(base_store, tmp_path, outside):
    import hashlib

    for scene in (
        {"config": {"voxel_size_m": -1}},
        {"config": {"surprise": 1}},
        [],
        {"config": {}, "frames_seen": []},
        {**json.loads((base_store / "scene.json").read_text()), "last_timestamp_s": 1.7e18},
    ):
        shutil.rmtree(tmp_path / "s", ignore_errors=True)
        store, manifest = _copy(base_store, tmp_path / "s")
        data = json.dumps(scene).encode()
        (store / "scene.json").write_bytes(data)
        manifest["files"]["scene.json"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        _write_manifest(store, manifest)
        _assert_refused(store, outside)


def test_cli_prints_one_line_and_exits_2(base_store, tmp_path, capsys):
    store, _ = _copy(base_store, tmp_path / "s")
    data = bytearray((store / MANIFEST_NAME).read_bytes())
    data[len(data) // 2] ^= 0x04
    (store / MANIFEST_NAME).write_bytes(bytes(data))
    for argv in (["info", str(store)], ["qa", "ask", str(store), "where is it?"], ["info", str(tmp_path / "none")]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("engram")]  # (progress bars of model loading aside)
        assert len(lines) == 1 and "Traceback" not in err and lines[0].startswith(f"engram {argv[0]}: error:"), err
    with pytest.raises(StoreError):
        cli_main(["info", str(store), "--debug"])
