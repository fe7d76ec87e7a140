"""score_objects and load_annotated_boxes: hand-made cases, an oracle memory, and the committed box files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engram.memory.scene import SceneMemory
from engram.qa.evaluation import (
    AnnotatedObject,
    Box3D,
    load_annotated_boxes,
    score_objects,
)
from engram.types import CameraIntrinsics, Frame, Pose

DATA = Path(__file__).resolve().parents[1] / "data"
K = CameraIntrinsics(fx=120.0, fy=120.0, cx=79.5, cy=59.5, width=160, height=120)
R0 = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
BOXES = {  # id: (label, lo, hi)
    1: ("mug", (2.0, -0.3, 0.0), (2.2, -0.1, 0.2)),
    2: ("chair", (2.0, 0.1, 0.0), (2.4, 0.5, 0.8)),
    3: ("plant", (1.5, -1.9, 0.0), (1.8, -1.6, 0.9)),
}


class StubMemory:
    """Objects with boxes and a query that ranks them by a given order per text."""

    def __init__(self, objects, rankings):
        self.objects = SimpleNamespace(objects={o.id: o for o in objects})
        self.rankings = rankings
        self.asked = []

    def query(self, text, kinds, k):
        self.asked.append((text, tuple(kinds), k))
        return [SimpleNamespace(id=i) for i in self.rankings.get(text, [])][:k]


def obj(i, lo, hi, centroid=None, label="object"):
    lo, hi = np.array(lo, float), np.array(hi, float)
    return SimpleNamespace(
        id=i,
        box_min=lo,
        box_max=hi,
        centroid=(lo + hi) / 2 if centroid is None else np.array(centroid),
        label=label,
    )


def annotated(name, lo, hi):
    return AnnotatedObject(name, Box3D.from_min_max(lo, hi, label=name))


def test_found_by_centroid_or_iou_and_retrieved_by_rank() -> None:
    truth = [
        annotated("mug", (0, 0, 0), (0.1, 0.1, 0.1)),
        annotated("table", (1, 0, 0), (2, 1, 0.8)),
        annotated("lamp", (5, 5, 0), (5.2, 5.2, 1.5)),
        annotated("chair", (3, 0, 0), (3.5, 0.5, 1.0)),
    ]
    objects = [
        obj(7, (-0.05, -0.05, 0), (0.3, 0.3, 0.3), centroid=(0.05, 0.05, 0.05)),  # big box, centroid inside: found
        obj(8, (1.05, 0.0, 0.0), (2.1, 1.0, 0.8), centroid=(2.5, 2.5, 2.5)),  # centroid outside, IoU ~0.9: found
        obj(9, (5.15, 5.15, 0), (5.6, 5.6, 1.5)),  # overlaps the lamp a little, centroid outside: not found
        obj(10, (3.0, 0.0, 0.0), (3.5, 0.5, 1.0)),  # the chair, exactly
    ]
    memory = StubMemory(objects, {"mug": [8, 7], "table": [7, 9, 10, 8], "chair": [10]})
    score = score_objects(memory, truth, k=3)
    rows = {r.name: r for r in score.rows}
    assert rows["mug"].object_ids == [7] and rows["mug"].rank == 2
    assert rows["table"].object_ids == [8] and rows["table"].best_iou > 0.85
    assert rows["table"].rank is None  # 4th: outside the top 3
    assert not rows["lamp"].found and 0 < rows["lamp"].best_iou < 0.25 and rows["lamp"].rank is None
    assert rows["chair"].rank == 1 and rows["chair"].best_iou == pytest.approx(1.0)
    assert score.found_rate == 0.75 and score.retrieved_rate == 0.5
    # an object that was not found is never queried; the others are, for objects, k deep
    assert [a[0] for a in memory.asked] == ["mug", "table", "chair"]
    assert all(a[1:] == (("object",), 3) for a in memory.asked)
    assert "lamp | not found" in score.table()
    with pytest.raises(ValueError, match="k must"):
        score_objects(memory, truth, k=0)
    with pytest.raises(ValueError, match="min_iou"):
        score_objects(memory, truth, min_iou=0.0)


def _camera(yaw_deg: float) -> Pose:
    p = math.radians(25.0)
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    body = Pose.from_xyz_yaw(0.0, 0.0, 0.0, math.radians(yaw_deg))
    return Pose.from_rt(body.rotation @ ry @ R0, [0.0, 0.0, 1.2])


def _write_boxes(path: Path, shift: float = 0.0) -> Path:
    entries = [
        {
            "name": lab,
            "min": [v + (shift if a == 0 else 0) for a, v in enumerate(lo)],
            "max": [v + (shift if a == 0 else 0) for a, v in enumerate(hi)],
            "note": "rendered box",
        }
        for lab, lo, hi in BOXES.values()
    ]
    path.write_text(json.dumps({"objects": entries}))
    return path


def test_oracle_memory_finds_and_retrieves_every_rendered_object(box_renderer, tmp_path: Path) -> None:
    memory = SceneMemory(voxel_size_m=0.05, detector="oracle")
    labels = {i: lab for i, (lab, _, _) in BOXES.items()}
    for k, yaw in enumerate([-60, -40, -20, 0, 20]):
        depth, ins = box_renderer([(i, lo, hi) for i, (_, lo, hi) in BOXES.items()], _camera(yaw), K)
        present = {int(i) for i in np.unique(ins) if i in labels}
        memory.integrate(
            Frame(
                index=k,
                timestamp_s=0.5 * k,
                rgb=np.full((K.height, K.width, 3), 90, np.uint8),
                depth_m=depth,
                intrinsics=K,
                world_from_camera=_camera(yaw),
                instances=ins,
                labels={i: labels[i] for i in present},
            )
        )
    memory.finalize()
    score = score_objects(memory, _write_boxes(tmp_path / "boxes.json"))
    assert score.found_rate == 1.0 and score.retrieved_rate == 1.0, score.table()
    assert all(r.rank == 1 and r.best_iou > 0.25 for r in score.rows), score.table()
    # the same boxes 1 m away hold nothing of the memory
    moved = score_objects(memory, _write_boxes(tmp_path / "moved.json", shift=1.0))
    assert moved.found_rate == 0.0 and moved.retrieved_rate == 0.0, moved.table()


def test_box_files_load_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    for name in ("sevenscenes_redkitchen_boxes.json", "icl_livingroom1_boxes.json"):
        objects = load_annotated_boxes(DATA / name)
        keys = [(o.name, o.instance) for o in objects]
        assert len(set(keys)) == len(keys) and all(o.note for o in objects)
        assert all(1e-4 < o.box.volume < 8.0 for o in objects)  # a mug to a counter
    with pytest.raises(FileNotFoundError):
        load_annotated_boxes(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="'objects' list"):
        load_annotated_boxes(bad)
    bad.write_text(json.dumps({"objects": [{"min": [0, 0, 0], "max": [1, 1, 1]}]}))
    with pytest.raises(ValueError, match="object 0 has no name"):
        load_annotated_boxes(bad)
    bad.write_text(json.dumps({"objects": [{"name": "mug", "min": [0, 0, 1], "max": [1, 1, 0]}]}))
    with pytest.raises(ValueError, match=r"object 0 \(mug\)"):
        load_annotated_boxes(bad)
