"""The `engram` command.

Subcommands take hydra-style ``key=value`` overrides after their own options:

    engram explore                          # the main job on the embedded world
    engram explore seed=3 out=runs/apt3 memory.voxel_size_m=0.1
    engram map ../shared/data/icl_livingroom1 --out runs/icl
    engram qa build video.mp4 --out runs/video_mem
    engram qa ask runs/video_mem "where did I leave the mug?" --options kitchen bedroom
    engram sim record --bag runs/walk.mcap
    engram info runs/apt3/memory
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _explore(args: argparse.Namespace) -> int:
    from engram.config import compose
    from engram.jobs.explore import run_explore

    cfg = compose("explore", args.overrides)
    result = run_explore(cfg)
    print(f"run folder: {result['out_dir']}")
    for key in ("frames", "coverage", "objects", "objectnav_success", "seconds"):
        if key in result.get("metrics", {}):
            print(f"{key}: {result['metrics'][key]}")
    return 0


def _map(args: argparse.Namespace) -> int:
    from engram.config import compose
    from engram.jobs.mapping import run_map

    cfg = compose("map", [f"source={args.source}", f"out={args.out}", *args.overrides])
    result = run_map(cfg)
    print(f"wrote {result['out_dir']}")
    return 0


def _qa(args: argparse.Namespace) -> int:
    from engram.qa.video import ask_command, build_command

    if args.qa_command == "build":
        summary = build_command(args.video, args.out, sample_fps=args.fps, resume=not args.no_resume)
        if summary:
            print(summary)
        print(f"memory written to {args.out}")
    else:
        print(ask_command(args.memory, args.question, options=args.options, answerer=args.answerer))
    return 0


def _sim(args: argparse.Namespace) -> int:
    from engram.sims.ros import record_sim

    path = record_sim(args.bag, seed=args.seed, steps=args.steps)
    print(f"wrote {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from engram.memory.scene import SceneMemory

    mem = SceneMemory.load(args.path)
    for key, value in mem.stats().items():
        print(f"{key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram", description="A spatial and episodic memory for robots and video.")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("explore", help="explore a seeded apartment, build the memory, navigate, write a report")
    e.add_argument("overrides", nargs="*", help="hydra overrides, e.g. seed=3 out=runs/x sim.width=640")
    e.set_defaults(func=_explore)

    m = sub.add_parser("map", help="run a frame source through memory and write 3D exports")
    m.add_argument("source", help="a dataset folder (TUM / ICL-NUIM), a video, or a bag")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("overrides", nargs="*", help="hydra overrides")
    m.set_defaults(func=_map)

    q = sub.add_parser("qa", help="long-video question answering")
    qs = q.add_subparsers(dest="qa_command", required=True)
    qb = qs.add_parser("build", help="build the episodic memory of a video")
    qb.add_argument("video")
    qb.add_argument("--out", required=True)
    qb.add_argument("--fps", type=float, default=1.0, help="frames sampled per second of video")
    qb.add_argument("--no-resume", action="store_true", help="start over instead of resuming")
    qa = qs.add_parser("ask", help="ask a question of a built memory")
    qa.add_argument("memory")
    qa.add_argument("question")
    qa.add_argument("--options", nargs="+", default=None, help="multiple-choice options")
    qa.add_argument("--answerer", default="offline", help="offline | openai | transformers")
    q.set_defaults(func=_qa)

    s = sub.add_parser("sim", help="embedded-world utilities")
    ss = s.add_subparsers(dest="sim_command", required=True)
    sr = ss.add_parser("record", help="record an embedded-world walk as a ROS bag (.mcap, .bag or a ROS 2 folder)")
    sr.add_argument("--bag", required=True)
    sr.add_argument("--seed", type=int, default=0)
    sr.add_argument("--steps", type=int, default=120)
    s.set_defaults(func=_sim)

    i = sub.add_parser("info", help="print what a saved memory holds")
    i.add_argument("path")
    i.set_defaults(func=_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # hydra overrides may come after options (engram map SRC --out DIR key=value)
    bad = [e for e in extra if "=" not in e or e.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        if not hasattr(args, "overrides"):
            parser.error(f"{args.command} takes no overrides: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"engram {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
