"""Detectors on real RGB-D data against hand-made 3D boxes (tests/data/*_boxes.json).

For each sequence (the 7-Scenes red kitchen, the ICL-NUIM living room) and each
detector, a SceneMemory is built over every Nth frame (on the floor that
`engram map` estimates from the depth images), then every annotated
object is scored with `engram.qa.evaluation.score_objects`: found (a memory
object's centroid inside its box, or 3D IoU >= 0.25) and retrieved (a text
query for its name returns one of those objects in the top 3). Times are CPU
seconds (time.process_time), since the machine may be shared.

    python benchmarks/real_objects.py                      # rgbd and rgb, both sequences
    python benchmarks/real_objects.py --detectors rgbd --details
    python benchmarks/real_objects.py --precision float32  # the same labels on any CPU
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _perception import add_precision_argument, describe_precision, labeller_kwargs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SEQUENCES = {
    "sevenscenes_redkitchen": ("sevenscenes_redkitchen_boxes.json", 20),
    "icl_livingroom1": ("icl_livingroom1_boxes.json", 10),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", default="rgbd,rgb", help="comma-separated registry names")
    ap.add_argument("--stride", type=int, default=None, help="frame stride for every sequence (default: 20 / 10)")
    ap.add_argument("--details", action="store_true", help="print the per-object table of each run")
    add_precision_argument(ap)
    args = ap.parse_args()

    from engram.jobs.mapping import resolve_floor
    from engram.memory.scene import SceneMemory
    from engram.qa.evaluation import load_annotated_boxes, score_objects
    from engram.sims.rgbd import RgbdDataset

    rows = []
    for seq, (box_file, stride) in SEQUENCES.items():
        if not (DATA / seq).is_dir():
            print(f"# {seq}: not found under {DATA}, skipped")
            continue
        boxes = load_annotated_boxes(ROOT / "tests" / "data" / box_file)
        stride = args.stride or stride
        data = RgbdDataset(DATA / seq, stride=stride)
        floor_z_m, _ = resolve_floor("auto", data)  # the floor `engram map` gives the memory
        for name in args.detectors.split(","):
            memory = SceneMemory(
                detector=name, detector_kwargs=labeller_kwargs(name, args.precision), floor_z_m=floor_z_m
            )
            t0 = time.process_time()
            n = 0
            for frame in data:
                memory.integrate(frame)
                n += 1
            memory.finalize()
            cpu = time.process_time() - t0
            score = score_objects(memory, boxes, k=3)
            if args.details:
                print(f"\n## {seq}, detector {name}\n{score.table()}")
            found = sum(r.found for r in score.rows)
            both = sum(r.found and r.retrieved for r in score.rows)
            rows.append((seq, name, n, len(boxes), found, both, score.n_memory_objects, cpu / max(n, 1)))
    print(f"\n# {describe_precision(args.precision)}")
    print("| sequence | detector | frames | objects | found | found + top-3 | memory objects | CPU s/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for seq, name, n, m, found, both, objs, spf in rows:
        print(
            f"| {seq} | {name} | {n} | {m} | {found} ({found / m:.2f}) | {both} ({both / m:.2f}) | {objs} | {spf:.2f} |"
        )
    total = sum(r[3] for r in rows if r[1] == "rgbd")
    if total:
        print(f"rgbd found: {sum(r[4] for r in rows if r[1] == 'rgbd') / total:.3f} "
              f"retrieved: {sum(r[5] for r in rows if r[1] == 'rgbd') / total:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
