"""Start-up cost and batch time of the EfficientNet-Lite0 image encoder on this machine's CPU.

Start-up: a fresh Python process imports ``engram.perception.encoders``,
builds ``build_image_encoder("efficientnet_lite0")`` and encodes one image;
the parent measures the child's wall time and CPU time (user + system, all
threads) and the child reports the same for the import + build alone and for
the first encode, and which of timm / torchvision it imported. The child
imports engram from ``PYTHONPATH`` (``-P``: not from the current directory).
Median of ``--starts`` processes, run one after the other.

Batch time: one batch of 16 random 224x224 images (``encode``, 1 torch
thread) in float32 and in bfloat16; median of ``--repeats`` timed passes
after one warm-up, CPU milliseconds per batch of this process. With
``--baseline CHECKOUT`` the encoder module of that checkout is loaded beside
this one and the two encode the same batch in turns, in one process, so that
the load of a shared machine falls on both alike; the table then has a row per
checkout and the largest difference between their features.

    python benchmarks/image_encoder.py [--starts 3] [--repeats 20] [--precision float32] [--baseline ../main]

Run it with ``PYTHONPATH`` set to another checkout to measure that checkout's
encoder with the same script.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import numpy as np
from _startup import child_runs

CHILD = """
import json, sys, time
import numpy as np
t0, c0 = time.perf_counter(), time.process_time()
from engram.perception.encoders import build_image_encoder
enc = build_image_encoder("efficientnet_lite0", num_threads=1, precision="float32")
t1, c1 = time.perf_counter(), time.process_time()
enc.encode([np.zeros((224, 224, 3), np.uint8)])
print(json.dumps({"wall": t1 - t0, "cpu": c1 - c0, "encode_wall": time.perf_counter() - t1,
                  "encode_cpu": time.process_time() - c1,
                  "timm": "timm" in sys.modules, "torchvision": "torchvision" in sys.modules}))
"""


def start_up(starts: int) -> dict[str, float]:
    rows = child_runs(CHILD, starts)
    out: dict[str, float] = {
        k: statistics.median(r[k] for r in rows) for k in rows[0] if k not in ("timm", "torchvision")
    }
    out["timm"] = any(r["timm"] for r in rows)
    out["torchvision"] = any(r["torchvision"] for r in rows)
    return out


def _encoder_modules(baseline: str | None) -> dict[str, object]:
    from engram.perception import encoders

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(encoders.__file__))))
    mods: dict[str, object] = {here: encoders}
    if baseline is not None:
        path = os.path.join(baseline, "engram", "perception", "encoders.py")
        spec = importlib.util.spec_from_file_location("baseline_encoders", path)
        assert spec is not None and spec.loader is not None, path
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods = {f"{os.path.abspath(baseline)} (baseline)": mod, **mods}
    return mods


def batch_ms(precision: str, repeats: int, baseline: str | None) -> dict[str, tuple[float, float, float]]:
    """Per checkout: (wall ms, CPU ms, max |feature difference| to the first) per batch, medians."""
    imgs = list(np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8))
    encs = {
        k: m.EfficientNetLite0Encoder(num_threads=1, precision=precision, batch_size=16)  # type: ignore[attr-defined]
        for k, m in _encoder_modules(baseline).items()
    }
    feats = {k: e.encode(imgs) for k, e in encs.items()}
    first = next(iter(feats.values()))
    walls: dict[str, list[float]] = {k: [] for k in encs}
    cpus: dict[str, list[float]] = {k: [] for k in encs}
    for i in range(repeats):
        for k in list(encs)[:: 1 if i % 2 else -1]:  # alternate the order
            t0, c0 = time.perf_counter(), time.process_time()
            encs[k].encode(imgs)
            walls[k].append(time.perf_counter() - t0)
            cpus[k].append(time.process_time() - c0)
    return {
        k: (1e3 * statistics.median(walls[k]), 1e3 * statistics.median(cpus[k]), float(np.abs(feats[k] - first).max()))
        for k in encs
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3, help="fresh processes for the start-up figure (median); 0: none")
    ap.add_argument("--repeats", type=int, default=20, help="timed batches (median); 0: start-up only")
    ap.add_argument("--precision", choices=["float32", "bfloat16"], action="append", help="default: both")
    ap.add_argument("--baseline", help="another checkout whose encoder runs the same batches in turn with this one")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    s = start_up(args.starts) if args.starts > 0 else None
    precisions = args.precision or ("float32", "bfloat16")
    times = {p: batch_ms(p, args.repeats, args.baseline) for p in precisions} if args.repeats > 0 else {}
    load1 = os.getloadavg()[0]
    import engram

    print(
        f"# engram from {os.path.dirname(engram.__file__)}; {os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}"
    )
    if s is not None:
        print(f"# start-up, median of {args.starts} fresh processes")
        print(f"process: wall {s['process_wall']:.2f} s, CPU {s['process_cpu']:.2f} s")
        print(f"import + build: wall {s['wall']:.2f} s, CPU {s['cpu']:.2f} s")
        print(f"first encode (1 image): wall {s['encode_wall']:.2f} s, CPU {s['encode_cpu']:.2f} s")
        print(f"imports timm: {s['timm']}, torchvision: {s['torchvision']}")
    if not times:
        return
    print(f"# batch of 16 random 224x224 images, 1 torch thread, median of {args.repeats}")
    print("| precision | encoder | wall ms / batch | CPU ms / batch | max feature difference |")
    print("|---|---|---:|---:|---:|")
    for p, rows in times.items():
        for k, (w, c, d) in rows.items():
            print(f"| {p} | {k} | {w:.1f} | {c:.1f} | {d:.1e} |")


if __name__ == "__main__":
    main()
