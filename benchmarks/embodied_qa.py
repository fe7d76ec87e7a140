"""Embodied question answering over explored apartments, scored against ground truth.

Passive questions are asked of the memories that `benchmarks/navigation.py`
saved after exploring each seeded apartment (run it first; its cache holds
the memories and a log of which instances were visible when). Questions are
generated from the apartment's ground truth about objects the agent actually
saw (>= 20 pixels in some frame):

* where is X -> the room the memory names must be X's room (and the position within 1 m);
* how many X -> the number of X instances seen;
* which room is X in -> X's room;
* what is near X -> the first answered category must stand within 1 m of X;
* when did I last see X -> within 1 s of the last frame that showed X;
* what moved -> a small scripted scene (an object is moved in view) must name it.

Where / which room / near / last seen are asked only for categories with one
instance in the apartment; categories with two or more seen instances get
ambiguous questions ("where is the mug?" with two mugs: the answer must name
every seen instance, each within 1 m of it, or the room of each).

Active questions ask about categories not seen yet after a short walk; the
agent explores until memory can answer, within a step budget, and is scored
A-EQA style (LLM-SPL). The OpenEQA file format is run end to end with the
offline answerer, scored by the offline token-overlap judge (token F1 mapped to
LLM-Match's 1-5 marks: a lexical proxy, not a language model) and, when a
judge server is configured (``--judge-url``, any OpenAI-compatible server), by
that model with OpenEQA's LLM-Match prompt.

Every figure is measured once per perception (``--perception``): ``oracle``
memories were built from the simulator's instance masks (an upper bound);
every other detector's from frames without ground truth (the navigation
benchmark saves them in ``memories_<detector>`` beside ``memories``). The
summary line comes from the ``rgbd`` column.

    python benchmarks/embodied_qa.py --apartments 20 --perception oracle,rgbd
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram.memory.scene import SceneMemory  # noqa: E402
from engram.qa.embodied import EmbodiedQA, answer_openeqa, read_openeqa, write_openeqa  # noqa: E402
from engram.qa.evaluation import plural  # noqa: E402
from engram.sims.embedded.groundtruth import GroundTruth  # noqa: E402
from engram.sims.embedded.scenes import generate_apartment  # noqa: E402

MEMORIES = ROOT / "benchmarks" / ".cache" / "memories"
STRUCTURE = {"person"}
DEFAULT_DETECTOR = "rgbd"


def memories_for(base: Path, perception: str) -> Path:
    """Where the navigation benchmark saved the memories of a perception."""
    return base if perception == "oracle" else base.with_name(f"{base.name}_{perception}")


def box_gap(a, b) -> float:
    lo1, hi1 = a
    lo2, hi2 = b
    gap = np.maximum(np.maximum(np.asarray(lo1) - hi2, np.asarray(lo2) - hi1), 0.0)
    return float(np.linalg.norm(gap[:2]))


def spec_box(o):
    """World axis-aligned box of an object (its yawed footprint's bounds), like the memory's boxes."""
    c = np.asarray(o.position_m)
    h = np.asarray(o.half_extents_m)
    b = o.aabb2d()
    return (np.array([b.x_min, b.y_min, c[2] - h[2]]), np.array([b.x_max, b.y_max, c[2] + h[2]]))


def passive(seed: int, n_per_cat: int, rng, memories: Path = MEMORIES) -> list[dict]:
    mem = SceneMemory.load(str(memories / f"seed{seed}"))
    visible = json.loads((memories / f"seed{seed}_visible.json").read_text())
    spec = generate_apartment(seed)
    gt = GroundTruth(spec)
    objs = {o.instance_id: o for o in spec.all_objects()}
    last_seen: dict[int, float] = {}
    for t, ids in visible:
        for i in ids:
            last_seen[i] = t
    seen = {i for i in last_seen if i in objs}
    by_cat = defaultdict(list)
    for i in seen:
        by_cat[objs[i].label].append(i)
    eqa = EmbodiedQA(mem)
    out = []

    def add(cat, q, ok, ans):
        out.append({"seed": seed, "category": cat, "question": q, "correct": bool(ok), "answer": ans})

    unique = [c for c, ids in by_cat.items() if len([i for i in objs if objs[i].label == c]) == 1]
    for c in list(rng.permutation(unique))[:n_per_cat]:
        o = objs[by_cat[c][0]]
        room = gt.room_of(o.position_m[:2])
        a = eqa.ask(f"Where is the {c}?")
        ok = (
            isinstance(a.value, dict)
            and a.value.get("room") == room
            and np.linalg.norm(np.asarray(a.value["position"][:2]) - o.position_m[:2]) <= 1.0
        )
        add("where", f"Where is the {c}?", ok, a.text)
        a = eqa.ask(f"Which room is the {c} in?")
        add("which_room", f"Which room is the {c} in?", a.value == room, a.text)
        near = {objs[j].label for j in seen if j != o.instance_id and box_gap(spec_box(o), spec_box(objs[j])) <= 1.0}
        a = eqa.ask(f"What is next to the {c}?")
        got = a.value or []
        ok = (not near and not got) or (bool(got) and bool(set(got) & near))
        add("near", f"What is next to the {c}?", ok, a.text)
        a = eqa.ask(f"When did I last see the {c}?")
        ok = a.value is not None and abs(float(a.value) - last_seen[o.instance_id]) <= 1.0
        add("last_seen", f"When did I last see the {c}?", ok, a.text)
    # categories with several seen instances: the answer must name each of them
    several = sorted(c for c, ids in by_cat.items() if len(ids) >= 2)
    for c in list(rng.permutation(several))[:n_per_cat]:
        inst = [objs[i] for i in by_cat[c]]
        a = eqa.ask(f"Where is the {c}?")
        named = [np.asarray(d["position"][:2]) for d in a.value] if isinstance(a.value, list) else []
        ok = bool(named) and all(any(np.linalg.norm(p - o.position_m[:2]) <= 1.0 for p in named) for o in inst)
        add("where (2+ instances)", f"Where is the {c}?", ok, a.text)
        a = eqa.ask(f"Which room is the {c} in?")
        rooms = {gt.room_of(o.position_m[:2]) for o in inst}
        got = set(a.value) if isinstance(a.value, list) else {a.value}
        ok = got == rooms and len(a.candidates) >= len(inst)
        add("which_room (2+ instances)", f"Which room is the {c} in?", ok, a.text)
    for c in list(rng.permutation(sorted(by_cat)))[:n_per_cat]:
        a = eqa.ask(f"How many {plural(c)} are there?")
        add("how_many", f"How many {plural(c)} are there?", a.value == len(by_cat[c]), a.text)
    return out


def line_of_sight(free_map, a_xy, b_xy, step_m: float = 0.05) -> bool:
    """True when every ground-truth grid cell on the segment a -> b is free floor (nothing stands between)."""
    n = max(2, int(np.ceil(np.linalg.norm(np.asarray(b_xy) - a_xy) / step_m)) + 1)
    pts = np.linspace(a_xy, b_xy, n)
    cells = free_map.world_to_cell(pts)
    inside = free_map.in_bounds(cells)
    return bool(inside.all() and free_map.free[cells[:, 0], cells[:, 1]].all())


def what_moved(seed: int, perception: str = "oracle") -> list[dict]:
    """Spin in place, move an object that was in view to another free spot in view, spin again, ask."""
    from engram.sims.embedded import EmbeddedSim
    from engram.sims.embedded.dynamics import Relocation, ScriptedDynamics

    spec = generate_apartment(seed)
    sim0 = EmbeddedSim(seed=seed)
    sim0.reset()
    seen_ids = set()
    truths = [sim0.last_ground_truth()[0]]
    for _ in range(12):
        sim0.step("turn_left")
        truths.append(sim0.last_ground_truth()[0])
    for truth in truths:
        ids, cnt = np.unique(truth, return_counts=True)
        seen_ids |= {int(i) for i, c in zip(ids, cnt) if i and c >= 60}
    agent = np.asarray(sim0.agent_pose.translation[:2])
    sim0.close()
    objs = {o.instance_id: o for o in spec.objects}  # small objects only
    cands = sorted(i for i in seen_ids if i in objs)
    if not cands:
        return []
    target = objs[cands[0]]
    gt = GroundTruth(spec)
    free = gt.reachable_map()
    cells = np.argwhere(free.free)
    xy = free.cell_to_world(cells)
    d = np.linalg.norm(xy - agent, axis=1)
    far = np.linalg.norm(xy - np.asarray(target.position_m[:2]), axis=1)
    ok = (d > 1.2) & (d < 2.5) & (far > 1.0)
    # the new place must be in view from where the agent turns: free floor all along the line of sight
    ok[ok] = [line_of_sight(free, agent, p) for p in xy[ok]]
    if not ok.any():
        return []
    # the nearest such place: small objects farther away fall under what a detector can see
    cand = np.flatnonzero(ok)
    dest = xy[cand[np.argmin(d[cand])]]
    dyn = ScriptedDynamics(
        relocations=(
            Relocation(3.5, target.instance_id, (float(dest[0]), float(dest[1]), float(target.half_extents_m[2]))),
        )
    )
    sim = EmbeddedSim(seed=seed, dynamics=dyn, instance_masks=perception == "oracle")
    mem = SceneMemory(timeline=False, detector=perception)
    mem.integrate(sim.reset())
    for _ in range(3):
        for _ in range(12):
            mem.integrate(sim.step("turn_left"))
    sim.close()
    a = EmbodiedQA(mem).ask("What moved?")
    labels = {e["label"] for e in (a.value or []) if e["kind"] == "moved"}
    return [
        {
            "seed": seed,
            "category": "what_moved",
            "question": "What moved?",
            "correct": target.label in labels and len(labels) == 1,
            "answer": a.text,
        }
    ]


def active(seed: int, warmup_steps: int, budget: int, perception: str = "oracle") -> list[dict]:
    from engram.planners.frontier import FrontierExplorer
    from engram.sims.embedded import EmbeddedSim

    spec = generate_apartment(seed)
    objs = {o.instance_id: o for o in spec.all_objects()}
    sim = EmbeddedSim(seed=seed, instance_masks=perception == "oracle")
    try:
        sim.reset()
        gt = sim.ground_truth
        mem = SceneMemory(timeline=False, detector=perception)
        ex = FrontierExplorer(mem)
        seen = set()

        def log(frame):
            ids, cnt = np.unique(sim.last_ground_truth()[0], return_counts=True)
            seen.update(int(i) for i, c in zip(ids, cnt) if i and c >= 20)

        ex.explore(sim, max_steps=warmup_steps, on_frame=log)
        counts = defaultdict(int)
        for o in objs.values():
            counts[o.label] += 1
        unseen = sorted(o.label for i, o in objs.items() if i not in seen and counts[o.label] == 1)
        if not unseen:
            return []
        cat = unseen[seed % len(unseen)]
        o = next(o for o in objs.values() if o.label == cat)
        start = sim.agent_pose.translation[:2].copy()
        from engram.jobs.explore import shortest_to_goal

        shortest = shortest_to_goal(gt, cat, start)
        eqa = EmbodiedQA(mem)
        a = eqa.ask_active(f"Where is the {cat}?", sim, ex, max_steps=budget)
        room = gt.room_of(o.position_m[:2])
        ok = isinstance(a.value, dict) and a.value.get("room") == room
        if not np.isfinite(shortest):
            spl = float("nan")
        else:
            spl = float(ok) * (shortest / max(shortest, a.path_length_m) if max(shortest, a.path_length_m) > 0 else 1.0)
        if ok:
            outcome = "correct"
        elif not a.enough_evidence:
            outcome = "not found within the budget"
        elif not isinstance(a.value, dict):
            outcome = "ambiguous (several candidates)"
        else:
            outcome = f"wrong room ({a.value.get('room')} for {room})"
        return [
            {
                "seed": seed,
                "category": "active_where",
                "question": f"Where is the {cat}?",
                "correct": ok,
                "answer": a.text,
                "steps": a.steps,
                "path_m": a.path_length_m,
                "shortest_m": shortest,
                "llm_spl": spl,
                "outcome": outcome,
            }
        ]
    finally:
        sim.close()


def chat_judge(base_url: str, model: str, timeout_s: float = 60.0):
    """LLM-Match judge: the prompt goes to an OpenAI-compatible chat server as one user message; the reply comes back."""
    import urllib.request

    root = base_url.rstrip("/")
    url = root + ("/chat/completions" if root.endswith("/v1") else "/v1/chat/completions")

    def judge(prompt: str) -> str:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "temperature": 0.0}
        req = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - a URL the user configured
            return json.loads(resp.read())["choices"][0]["message"]["content"]

    return judge


def openeqa_round_trip(
    seeds: list[int], memories: Path = MEMORIES, judges: dict | None = None
) -> dict[str, tuple[int, float]]:
    """Write OpenEQA-format questions from ground truth, read them back, answer offline, score with each judge.

    Returns:
        {judge name: (questions, LLM-Match score 0-100)}.
    """
    from engram.qa.evaluation import token_overlap_judge

    judges = judges or {"token-overlap": token_overlap_judge}
    qs = []
    for seed in seeds:
        spec = generate_apartment(seed)
        gt = GroundTruth(spec)
        for o in spec.objects[:3]:
            qs.append(
                {
                    "question_id": f"s{seed}-{o.instance_id}",
                    "category": "object localization",
                    "question": f"Which room is the {o.label} in?",
                    "answer": gt.room_of(o.position_m[:2]) or "",
                    "episode_history": f"engram-embedded/seed{seed}",
                }
            )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "open-eqa-engram.json"
        write_openeqa(path, qs)
        loaded = read_openeqa(path)
        scores: dict[str, list[tuple[int, float]]] = {name: [] for name in judges}
        for seed in seeds:
            sub = [q for q in loaded if q["episode_history"].endswith(f"seed{seed}")]
            mem = SceneMemory.load(str(memories / f"seed{seed}"))
            eqa = EmbodiedQA(mem)
            for name, judge in judges.items():
                _, res = answer_openeqa(eqa, sub, judge=judge)
                scores[name].append((len(sub), res.score))
    out = {}
    for name, sc in scores.items():
        n = sum(k for k, _ in sc)
        out[name] = (n, sum(k * s for k, s in sc) / max(n, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apartments", type=int, default=20)
    ap.add_argument("--per-category", type=int, default=4)
    ap.add_argument("--active", type=int, default=None, help="apartments for active questions (default: all)")
    ap.add_argument("--warmup-steps", type=int, default=40)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument(
        "--memories",
        default=str(MEMORIES),
        help="folder of oracle memories saved by benchmarks/navigation.py (other detectors: <folder>_<detector>)",
    )
    ap.add_argument(
        "--perception",
        default=f"oracle,{DEFAULT_DETECTOR}",
        help="comma-separated detectors, one column each (oracle = memories from the simulator's masks)",
    )
    ap.add_argument(
        "--judge-url",
        default=os.environ.get("ENGRAM_JUDGE_URL"),
        help="OpenAI-compatible server for an LLM-Match judge row (default: $ENGRAM_JUDGE_URL; none = no such row)",
    )
    ap.add_argument("--judge-model", default=os.environ.get("ENGRAM_JUDGE_MODEL", "default"))
    args = ap.parse_args()
    perceptions = [p.strip() for p in args.perception.split(",") if p.strip()]
    base = Path(args.memories)
    t0 = time.perf_counter()
    judges = {"token-overlap": None}
    if args.judge_url:
        judges = {
            "token-overlap": None,
            f"LLM ({args.judge_model} at {args.judge_url})": chat_judge(args.judge_url, args.judge_model),
        }
    from engram.qa.evaluation import token_overlap_judge

    judges["token-overlap"] = token_overlap_judge

    cols = {}
    for perception in perceptions:
        memories = memories_for(base, perception)
        seeds = [
            s for s in range(args.first_seed, args.first_seed + args.apartments) if (memories / f"seed{s}").exists()
        ]
        if not seeds:
            sys.exit(
                f"no explored memories in {memories}: run benchmarks/navigation.py --perception {perception} first"
            )
        rng = np.random.default_rng(0)
        rows = []
        for s in seeds:
            rows += passive(s, args.per_category, rng, memories)
            rows += what_moved(s, perception)
        act = []
        for s in seeds[: args.active if args.active is not None else len(seeds)]:
            act += active(s, args.warmup_steps, args.budget, perception)
            if act and act[-1]["seed"] == s:
                r = act[-1]
                print(
                    f"[{perception}] active seed {s}: {r['outcome']}, {r['steps']} steps, {r['path_m']:.1f} m "
                    f"(shortest {r['shortest_m']:.1f} m)",
                    flush=True,
                )
            else:
                print(f"[{perception}] active seed {s}: no category left unseen after the walk", flush=True)
        oe = openeqa_round_trip(seeds[:5], memories, judges)
        cols[perception] = (seeds, rows, act, oe)

    print(
        f"\napartments: {', '.join(f'{p}: {len(c[0])} ({c[0][0]}-{c[0][-1]})' for p, c in cols.items())}; "
        f"{time.perf_counter() - t0:.0f} s\n"
    )
    print(
        "where / which room / near / last seen: categories with one instance in the apartment; "
        "'(2+ instances)': categories with several seen instances, every one must be named"
    )
    names = [f"{p} (upper bound)" if p == "oracle" else p for p in perceptions]
    print("| category | " + " | ".join(f"questions, accuracy [{n}]" for n in names) + " |")
    print("|---|" + "---|" * len(perceptions))
    cats = sorted({r["category"] for c in cols.values() for r in c[1]})
    summary = {}
    for cat in cats:
        cells = []
        for p in perceptions:
            got = [r["correct"] for r in cols[p][1] if r["category"] == cat]
            cells.append(f"{len(got)}, {np.mean(got):.3f}" if got else "0, -")
        print(f"| {cat} | " + " | ".join(cells) + " |")
    cells, acells = [], []
    for p in perceptions:
        _, rows, act, oe = cols[p]
        acc = float(np.mean([r["correct"] for r in rows])) if rows else 0.0
        act_succ = float(np.mean([r["correct"] for r in act])) if act else 0.0
        spls = np.array([r["llm_spl"] for r in act], float)
        spl = (
            float(np.nanmean(spls)) if np.isfinite(spls).any() else 0.0
        )  # episodes without a reference path are left out
        summary[p] = (acc, act_succ, spl)
        cells.append(f"{len(rows)}, {acc:.3f}")
        acells.append(f"{len(act)}, {act_succ:.3f} (LLM-SPL {spl:.3f})")
    print("| **all structured** | " + " | ".join(cells) + " |")
    print("| active (unseen at question time) | " + " | ".join(acells) + " |")
    for judge in judges:
        title = (
            "OpenEQA file, offline answerer, token-overlap F1 judge (lexical proxy, no language model), 0-100"
            if judge == "token-overlap"
            else f"OpenEQA file, offline answerer, LLM-Match judge {judge}, 0-100"
        )
        print(
            f"| {title} | "
            + " | ".join(f"{cols[p][3][judge][0]}, {cols[p][3][judge][1]:.1f}" for p in perceptions)
            + " |"
        )
    if not args.judge_url:
        print(
            "| OpenEQA file, LLM-Match with a language-model judge | "
            + " | ".join("not run" for _ in perceptions)
            + " |"
        )
        print("(no judge server configured: --judge-url or ENGRAM_JUDGE_URL)")
    for p in perceptions:
        rows = cols[p][1]
        missed = [r for r in rows if not r["correct"]]
        unrecorded = [
            r
            for r in missed
            if "not observed yet" in r["answer"] or (r["category"] == "how_many" and r["answer"].startswith("0"))
        ]
        print(
            f"\n[{p}] structured misses: {len(missed)}, of which {len(unrecorded)} about objects seen (>= 20 px) that never "
            "entered the memory's object map"
        )
        if missed:
            print(f"[{p}] some misses:")
            for r in missed[:8]:
                print(f"  seed {r['seed']} {r['question']} -> {r['answer'][:100]}")
    head = DEFAULT_DETECTOR if DEFAULT_DETECTOR in summary else perceptions[0]
    if head != DEFAULT_DETECTOR:
        print(f"(no {DEFAULT_DETECTOR} column: the summary line below is the {head} column)")
    acc, act_succ, spl = summary[head]
    print(f"structured_accuracy: {acc:.3f} active_success: {act_succ:.3f} llm_spl: {spl:.3f}")


if __name__ == "__main__":
    main()
