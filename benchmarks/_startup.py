"""Start-up cost of a fresh Python process running a snippet (shared by the encoder benchmarks)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def child_runs(child: str, starts: int) -> list[dict]:
    """Run ``child`` in ``starts`` fresh processes (``-P``: engram from ``PYTHONPATH``).

    Returns one dict per run: ``process_wall`` and ``process_cpu`` (seconds, the whole process)
    and the JSON object the child printed on its last line.
    """
    rows = []
    for _ in range(starts):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-P", "-c", child], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows.append({"process_wall": wall, "process_cpu": cpu, **json.loads(res.stdout.strip().splitlines()[-1])})
    return rows
