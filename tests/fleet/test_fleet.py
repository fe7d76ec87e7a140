"""engram.fleet: sources, one-process and Ray indexing, resumption, killed workers, the catalogue and its search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram.fleet.catalogue import (
    Catalogue,
    CatalogueError,
    ask_catalogue,
    is_catalogue,
)
from engram.fleet.index import build_index
from engram.fleet.sources import expand_sources

pytest.importorskip("pyarrow")

# small and fast: no model downloads, thumbnail embeddings for video, hashed text
OVERRIDES = [
    "text_encoder=hash",
    "video.image_encoder=null",
    "video.text_encoder=hash",
    "memory.frontier_every=5",
]


def _write_video(
    path: Path,
    colours: list[tuple[int, int, int]],
    seconds_each: int = 6,
    fps: float = 2.0,
) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (80, 60))
    assert writer.isOpened()
    for c in colours:
        for i in range(int(seconds_each * fps)):
            img = np.full((60, 80, 3), c, np.uint8)
            cv2.putText(img, str(i), (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
            writer.write(img[:, :, ::-1].copy())
    writer.release()
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """Two short videos, one embedded-world bag, and a corrupt 'video'."""
    pytest.importorskip("pybullet")
    pytest.importorskip("rosbags")
    from engram.sims.ros import record_sim

    root = tmp_path_factory.mktemp("fleet_sources")
    _write_video(root / "red_green.avi", [(220, 30, 30), (30, 200, 40)])
    _write_video(root / "blue.avi", [(30, 40, 220), (230, 220, 30), (30, 40, 220)])
    record_sim(root / "walk.mcap", seed=2, steps=10, width=64, height=48)
    (root / "broken.mp4").write_bytes(b"this is not a video")
    return root


@pytest.fixture(scope="module")
def catalogue(sources, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("fleet_cat") / "cat"
    report = build_index([sources], out, overrides=OVERRIDES, use_ray=False, progress=False)
    return out, report


def _records(cat: Path, source_id: str):
    import pyarrow.parquet as pq

    return pq.read_table(cat / "sources" / source_id / "records.parquet")


def _sid(report, name: str) -> str:
    return next(s for s in report.results if s.startswith(name))


# -- sources ------------------------------------------------------------------------------


def test_expand_sources_folders_globs_lists_duplicates_and_missing(sources, tmp_path):
    lst = tmp_path / "runs.txt"
    lst.write_text(f"# today's runs\n{sources / 'walk.mcap'}\n{sources / 'blue.avi'}\n\n")
    specs, dups = expand_sources(
        [
            str(sources / "*.avi"),
            str(lst),
            str(sources / "blue.avi"),
            str(tmp_path / "nope.mp4"),
        ]
    )
    names = [Path(s.path).name for s in specs]
    assert names == ["blue.avi", "red_green.avi", "walk.mcap", "nope.mp4"]
    assert [s.kind for s in specs] == ["video", "video", "bag", ""]
    assert dups == [str(sources / "blue.avi"), str(sources / "blue.avi")]
    assert "no such file" in specs[-1].error
    assert len({s.source_id for s in specs}) == 4
    # the same path gives the same id in another call (a rerun finds its memory)
    again, _ = expand_sources([str(sources / "blue.avi")])
    assert again[0].source_id == specs[0].source_id
    with pytest.raises(ValueError, match="matches no file"):
        expand_sources([str(tmp_path / "*.mkv")])
    with pytest.raises(ValueError, match="no sources"):
        expand_sources([])
    (tmp_path / "notes.md").write_text("x")
    specs, _ = expand_sources([str(tmp_path / "notes.md")])
    assert "cannot tell what" in specs[0].error


# -- one process ------------------------------------------------------------------------------


def test_local_index_builds_each_source_records_the_failure_and_one_table(catalogue, sources):
    out, report = catalogue
    assert report.engine == "local"
    assert sorted(Path(report.results[s]["path"]).name for s in report.done) == [
        "blue.avi",
        "red_green.avi",
        "walk.mcap",
    ]
    assert [Path(f["path"]).name for f in report.failed] == ["broken.mp4"]
    assert "could not be opened" in report.failed[0]["error"]
    cat = Catalogue.open(out)
    fails = cat.failures()
    assert len(fails) == 1 and fails[0]["source"]["path"].endswith("broken.mp4") and fails[0]["error"]
    # the table is exactly the union of the committed sources' rows
    committed = {i["source"]["source_id"]: i["rows"] for i in cat.sources()}
    assert set(committed) == set(report.done)
    assert len(cat) == sum(committed.values()) == report.rows > 0
    assert not any((out / ".tmp").iterdir())
    assert is_catalogue(out) and not is_catalogue(sources)


def test_catalogue_rows_match_the_memories_built_alone(catalogue, sources, tmp_path):
    """A source in the catalogue is the memory one gets by building it by itself through the public APIs."""
    from engram.config import compose, to_plain
    from engram.memory.scene import SceneMemory
    from engram.qa.video import VideoQA
    from engram.sims.ros import RosBagSource

    out, report = catalogue
    cfg = to_plain(compose("fleet", OVERRIDES))
    mem_cfg = {k: v for k, v in cfg["memory"].items() if k != "_target_"}
    alone = SceneMemory(**mem_cfg)
    for f in RosBagSource(sources / "walk.mcap"):
        alone.integrate(f)
    alone.finalize()
    sid = _sid(report, "walk-")
    in_cat = SceneMemory.load(str(out / "sources" / sid / "memory"))
    assert in_cat.digest() == alone.digest()
    objs = _records(out, sid).to_pydict()
    obj_rows = [i for i, k in enumerate(objs["kind"]) if k == "object"]
    assert len(obj_rows) == len(alone.objects.objects) > 0
    for i in obj_rows:
        o = alone.objects.objects[objs["record_id"][i]]
        assert objs["label"][i] == o.label
        np.testing.assert_allclose([objs["x"][i], objs["y"][i], objs["z"][i]], o.centroid, atol=1e-9)

    v = cfg["video"]
    qa = VideoQA.build(sources / "blue.avi", tmp_path / "alone", sample_fps=v["sample_fps"], image_encoder=None,
                       text_encoder="hash", memory_options=v["memory_options"], progress=False)  # fmt: skip
    vid = _sid(report, "blue-")
    cat_qa = VideoQA.load(out / "sources" / vid / "memory")
    for level in range(qa.memory.num_levels):
        a = [(n.start_s, n.end_s, n.frame_count, n.description) for n in qa.memory.nodes(level)]
        b = [(n.start_s, n.end_s, n.frame_count, n.description) for n in cat_qa.memory.nodes(level)]
        assert a == b
    rows = _records(out, vid).to_pydict()
    assert sorted(zip(rows["level"], rows["record_id"])) == sorted(
        (lvl, n.node_id) for lvl in range(qa.memory.num_levels) for n in qa.memory.nodes(lvl)
    )
    # the blue/yellow/blue video: three level-0 events at the colour changes
    assert [(n.start_s, n.end_s) for n in qa.memory.nodes(0)] == [
        (0.0, 6.0),
        (6.0, 12.0),
        (12.0, 18.0),
    ]


def test_search_finds_objects_across_sources_with_filters(catalogue):
    out, report = catalogue
    cat = Catalogue.open(out)
    sid = _sid(report, "walk-")
    rows = _records(out, sid).to_pydict()
    i = rows["kind"].index("object")
    label, pos = rows["label"][i], np.array([rows["x"][i], rows["y"][i], rows["z"][i]])
    hits = cat.search(label, k=5, kinds=["object"])
    assert hits and hits[0].label == label and hits[0].source_id == sid
    top = [h for h in hits if h.record_id == rows["record_id"][i]]
    assert top and np.allclose(top[0].position, pos)
    assert all(Path(h.snapshot).is_file() for h in hits if h.snapshot)
    # near ranks by distance; radius drops the far ones; video rows (no position) drop out
    near = cat.search(label, k=20, near=pos[:2], radius_m=0.01)
    assert near and all(h.position is not None and h.meta["distance_m"] <= 0.01 for h in near)
    # time and source filters
    late = cat.search(label, k=20, since=1e6)
    assert late == []
    assert all("blue" in h.source_path for h in cat.search(label, k=20, sources=["blue.avi"], min_score=-1.0))
    with pytest.raises(CatalogueError, match="no source"):
        cat.search(label, sources=["no-such-run"])
    with pytest.raises(CatalogueError, match="near"):
        cat.search(label, near=(1.0,))
    with pytest.raises(CatalogueError, match="non-empty"):
        cat.search("  ")


def test_rerun_skips_complete_sources_and_rebuilds_a_changed_one(catalogue, sources, tmp_path):
    out, first = catalogue
    before = {s: (out / "sources" / s / "source.json").read_text() for s in first.done}
    again = build_index([sources], out, overrides=OVERRIDES, use_ray=False, progress=False)
    assert sorted(again.skipped) == sorted(first.done) and again.done == [] and again.frames == 0
    assert [Path(f["path"]).name for f in again.failed] == ["broken.mp4"]  # tried again, fails again
    assert {s: (out / "sources" / s / "source.json").read_text() for s in first.done} == before
    assert again.rows == first.rows
    # other settings: a clear error, nothing touched
    with pytest.raises(CatalogueError, match="other settings"):
        build_index(
            [sources],
            out,
            overrides=[*OVERRIDES, "video.sample_fps=2.0"],
            use_ray=False,
            progress=False,
        )
    # a changed file is rebuilt
    import shutil

    src = tmp_path / "copy"
    shutil.copytree(sources, src)
    out2 = tmp_path / "cat2"
    r1 = build_index([src / "blue.avi"], out2, overrides=OVERRIDES, use_ray=False, progress=False)
    _write_video(src / "blue.avi", [(30, 40, 220), (230, 220, 30)])
    r2 = build_index([src / "blue.avi"], out2, overrides=OVERRIDES, use_ray=False, progress=False)
    assert r1.done == r2.done and r2.rows != r1.rows


def test_object_store_uris_are_read_through_pyarrow(sources, tmp_path):
    uri = (sources / "blue.avi").resolve().as_uri()
    specs, _ = expand_sources([uri])
    assert specs[0].kind == "video" and specs[0].path == uri
    out = tmp_path / "cat"
    report = build_index([uri], out, overrides=OVERRIDES, use_ray=False, progress=False)
    assert len(report.done) == 1 and not report.failed
    assert Catalogue.open(out).sources()[0]["source"]["path"] == uri
    again = build_index([uri], out, overrides=OVERRIDES, use_ray=False, progress=False)
    assert again.skipped == report.done


def test_a_killed_build_leaves_nothing_half_written(sources, tmp_path):
    """A process killed mid-source leaves a temp folder only; the next run cleans it and builds the source once."""
    out = tmp_path / "cat"
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
import engram.memory.scene as scene
from engram.fleet.index import build_index
orig = scene.SceneMemory.integrate
def integrate(self, frame):
    if frame.index == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(self, frame)
scene.SceneMemory.integrate = integrate
build_index([{str(sources / "walk.mcap")!r}], {str(out)!r}, overrides={OVERRIDES!r}, use_ray=False, progress=False)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert any((out / ".tmp").iterdir())  # the half build
    assert not any((out / "sources").iterdir()) and not (out / "current.json").exists()
    with pytest.raises(CatalogueError, match="no table yet"):
        Catalogue.open(out).search("chair")
    report = build_index([sources / "walk.mcap"], out, overrides=OVERRIDES, use_ray=False, progress=False)
    assert len(report.done) == 1 and not any((out / ".tmp").iterdir())
    assert len(list((out / "sources").iterdir())) == 1


def test_bad_catalogue_folders_and_addresses(sources, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CatalogueError, match="other contents"):
        build_index(
            [sources / "blue.avi"],
            other,
            overrides=OVERRIDES,
            use_ray=False,
            progress=False,
        )
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "catalogue.json").write_text(
        json.dumps({"format": "engram.fleet.catalogue", "version": 99, "engram_version": "9.0"})
    )
    with pytest.raises(CatalogueError, match="version 99"):
        build_index(
            [sources / "blue.avi"],
            old,
            overrides=OVERRIDES,
            use_ray=False,
            progress=False,
        )
    with pytest.raises(CatalogueError, match="version 99"):
        Catalogue.open(old)
    assert sorted(p.name for p in old.iterdir()) == ["catalogue.json"]
    with pytest.raises(CatalogueError, match="not an engram catalogue"):
        Catalogue.open(other)
    pytest.importorskip("ray")
    missing = tmp_path / "never"
    with pytest.raises(ConnectionError, match="no Ray cluster answers"):
        build_index(
            [sources / "blue.avi"],
            missing,
            overrides=OVERRIDES,
            address="127.0.0.1:9",
            progress=False,
        )
    assert not missing.exists()


def test_cli_search_and_qa_ask_dispatch_to_the_catalogue(catalogue, capsys):
    from engram.cli import main

    out, report = catalogue
    rows = _records(out, _sid(report, "walk-")).to_pydict()
    label = rows["label"][rows["kind"].index("object")]
    assert main(["search", str(out), label, "-k", "3", "--kind", "object"]) == 0
    text = capsys.readouterr().out
    assert label in text and "walk.mcap" in text
    assert main(["qa", "ask", str(out), f"where did I last see the {label}?"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("answer:") and "walk.mcap" in text
    ans, evidence, hits = ask_catalogue(out, f"where is the {label}?")
    assert ans.text
    assert evidence and hits[0].label == label and evidence[0].time_span_s == (hits[0].start_s, hits[0].end_s)
    assert main(["search", str(out / "sources"), "x"]) == 2  # not a catalogue: a clear error


def test_import_engram_fleet_is_light():
    code = "import sys, engram.fleet; print(','.join(m for m in ('ray', 'pyarrow', 'faiss', 'torch', 'hydra') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    ).stdout
    assert out.strip() == ""


# -- Ray ------------------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_ray_two_workers_with_one_killed_index_every_source_once_and_identically(catalogue, sources, tmp_path):
    pytest.importorskip("ray")
    out_local, local = catalogue
    out = tmp_path / "ray_cat"
    report = build_index(
        [sources], out, overrides=OVERRIDES, workers=2, progress=False, ray_init={"num_cpus": 2},
        _kill_worker_after_frames=5,
    )  # fmt: skip
    assert report.engine == "ray" and report.workers == 2
    assert sorted(report.done) == sorted(local.done)
    assert [Path(f["path"]).name for f in report.failed] == ["broken.mp4"]
    assert any(n > 1 for n in report.attempts.values()), report.attempts  # one source ran again after the kill
    assert sorted(p.name for p in (out / "sources").iterdir()) == sorted(local.done)  # exactly once each
    assert not any((out / ".tmp").iterdir())
    for sid in local.done:  # identical to the one-process build
        a, b = _records(out_local, sid), _records(out, sid)
        assert a.schema == b.schema and a.num_rows == b.num_rows > 0, sid
        for name in a.column_names:  # NaN positions compare equal here
            np.testing.assert_array_equal(
                np.stack(a[name].to_numpy(zero_copy_only=False)),
                np.stack(b[name].to_numpy(zero_copy_only=False)),
                err_msg=f"{sid} {name}",
            )
    assert len(Catalogue.open(out)) == local.rows


def test_shared_sample_data_is_recognised_and_an_rgbd_folder_indexes(shared_data, tmp_path):
    specs, _ = expand_sources([str(shared_data)])
    kinds = {Path(s.path).name: s.kind for s in specs}
    assert kinds["icl_livingroom1"] == "rgbd" and kinds["sevenscenes_redkitchen"] == "rgbd"
    assert all(k == "video" for n, k in kinds.items() if n.endswith(".mp4"))
    out = tmp_path / "cat"
    report = build_index(
        [shared_data / "icl_livingroom1"], out, overrides=[*OVERRIDES, "scene.stride=20", "scene.max_frames=6"],
        use_ray=False, progress=False,
    )  # fmt: skip
    assert len(report.done) == 1 and report.frames == 6 and not report.failed
    rows = _records(out, report.done[0]).to_pydict()
    assert rows["kind"] and set(rows["source_kind"]) == {"rgbd"}
    # events of a posed RGB-D run carry the camera position
    ev = [i for i, k in enumerate(rows["kind"]) if k == "event"]
    assert ev and all(np.isfinite([rows["x"][i], rows["y"][i], rows["z"][i]]).all() for i in ev)
    # its memory stands on the floor found in the depth images, as `engram map` finds it (the
    # hand-made boxes put ICL's floor at -0.43; the world's origin is the first camera)
    from engram.memory.scene import SceneMemory

    assert SceneMemory.load(str(out / "sources" / report.done[0] / "memory")).floor_z_m == pytest.approx(
        -0.43, abs=0.05
    )


def test_progress_files_count_frames_and_attempts(tmp_path: Path):
    """The driver's view of the workers' progress files: the furthest attempt per source, attempts per source."""
    from engram.fleet.index import _ProgressFiles

    folder = tmp_path / ".tmp" / "progress"
    folder.mkdir(parents=True)
    (folder / "old-run.1.aaaaaa").write_text("99")  # left by a run killed earlier: not this run's
    files = _ProgressFiles(folder)
    assert files.read() == (0, {})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "walk_a-0123456789ab.100.abc123").write_text("40")  # killed after 40 frames
    (folder / "walk_a-0123456789ab.101.def456").write_text("16")  # its retry
    (folder / "walk_b-ba9876543210.100.0a0b0c").write_text("")  # being written this instant
    (folder / "walk_c-ffffffffffff.102.123abc").write_text("8")
    frames, starts = files.read()
    assert frames == 40 + 0 + 8
    assert starts == {"walk_a-0123456789ab": 2, "walk_b-ba9876543210": 1, "walk_c-ffffffffffff": 1}
