"""Start-up cost and throughput of the MiniLM text encoder on this machine's CPU.

Start-up: a fresh Python process imports ``engram.perception.encoders``,
builds ``MiniLMTextEncoder`` and encodes one string; the parent measures the
child's wall time and CPU time (user + system, all threads) and the child
reports the same for the import + build + first encode alone (without the
interpreter's own start). The child imports engram from ``PYTHONPATH`` (``-P``: not from the
current directory). Median of ``--starts`` processes, run one after the
other.

Throughput: 1000 short event descriptions (generated, fixed) encoded at 1
torch thread in float32 and in bfloat16; best of ``--repeats``, items per wall
second and per CPU second of this process.

    python benchmarks/text_encoder.py [--starts 3] [--repeats 3] [--precision float32]

Run it with ``PYTHONPATH`` set to another checkout to measure that checkout's
encoder with the same script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _startup import child_runs

CHILD = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from engram.perception.encoders import MiniLMTextEncoder
enc = MiniLMTextEncoder(num_threads=1, precision="float32")
enc.encode(["a person picks up the red mug"])
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                  "transformers": "transformers" in sys.modules}))
"""

SUBJECTS = ["a person", "the robot", "a child", "the cat", "a man in a blue shirt", "two people", "the dog"]
VERBS = ["picks up", "puts down", "walks past", "opens", "closes", "moves", "looks at", "carries"]
OBJECTS = ["the red mug", "a laptop", "the fridge door", "a cardboard box", "the office chair", "a book", "the kettle"]
PLACES = ["in the kitchen", "near the window", "on the desk", "by the sofa", "in the hallway", "at the table"]


def event_texts(n: int) -> list[str]:
    out = []
    for i in range(n):
        s = SUBJECTS[i % len(SUBJECTS)]
        v = VERBS[(i // 3) % len(VERBS)]
        o = OBJECTS[(i // 5) % len(OBJECTS)]
        p = PLACES[(i // 7) % len(PLACES)]
        out.append(f"{s} {v} {o} {p} at {i * 1.5:.1f} s")
    return out


def start_up(starts: int) -> dict[str, float]:
    rows = child_runs(CHILD, starts)
    return {
        "process_wall_s": statistics.median(r["process_wall"] for r in rows),
        "process_cpu_s": statistics.median(r["process_cpu"] for r in rows),
        "import_load_wall_s": statistics.median(r["wall"] for r in rows),
        "import_load_cpu_s": statistics.median(r["cpu"] for r in rows),
        "imports_transformers": any(r["transformers"] for r in rows),
    }


def throughput(texts: list[str], precision: str, repeats: int) -> tuple[float, float]:
    from engram.perception.encoders import MiniLMTextEncoder

    enc = MiniLMTextEncoder(num_threads=1, precision=precision)
    enc.encode(texts[:64])
    best_wall, best_cpu = 0.0, 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        enc.encode(texts)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best_wall, best_cpu = max(best_wall, len(texts) / wall), max(best_cpu, len(texts) / max(cpu, 1e-9))
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3, help="fresh processes for the start-up figure (median)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the texts (best)")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--precision", choices=["float32", "bfloat16"], action="append", help="default: both")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    s = start_up(args.starts)
    texts = event_texts(args.texts)
    rates = {p: throughput(texts, p, args.repeats) for p in args.precision or ("float32", "bfloat16")}
    load1 = os.getloadavg()[0]
    import engram

    print(
        f"# engram from {os.path.dirname(engram.__file__)}; {os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}"
    )
    print(f"# start-up, median of {args.starts} fresh processes (import + build + one encode)")
    print(f"process: wall {s['process_wall_s']:.2f} s, CPU {s['process_cpu_s']:.2f} s")
    print(f"import + load: wall {s['import_load_wall_s']:.2f} s, CPU {s['import_load_cpu_s']:.2f} s")
    print(f"imports transformers: {s['imports_transformers']}")
    print(f"# {len(texts)} event descriptions, 1 torch thread, best of {args.repeats}")
    print("| precision | texts per wall s | texts per CPU s |")
    print("|---|---:|---:|")
    for p, (w, c) in rates.items():
        print(f"| {p} | {w:.1f} | {c:.1f} |")


if __name__ == "__main__":
    main()
