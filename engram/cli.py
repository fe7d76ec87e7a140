"""The `engram` command.

Subcommands take hydra-style ``key=value`` overrides after their own options:

    engram explore                          # the main job on the embedded world
    engram explore seed=3 out=runs/apt3 memory.voxel_size_m=0.1
    engram map ../shared/data/icl_livingroom1 --out runs/icl
    engram qa build video.mp4 --out runs/video_mem
    engram qa ask runs/video_mem "where did I leave the mug?" --options kitchen bedroom
    engram sim record --bag runs/walk.mcap
    engram info runs/apt3/memory
    engram index videos/ runs/*.mcap --out runs/catalogue    # many sources, in parallel on Ray
    engram search runs/catalogue "red toolbox" --near 1.0 2.0

Exit status: 0 done, 2 an error (one line on stderr; ``--debug`` for the
traceback), 3 partial results written (the input was cut short).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Exit status when a command wrote what it could but the input stopped early (a cut bag or video);
# errors are 2 (one line on stderr; --debug shows the traceback).
PARTIAL = 3


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
    from pathlib import Path

    from omegaconf import open_dict

    from engram.config import compose
    from engram.jobs.mapping import run_map

    overrides = list(args.overrides)
    source = args.source
    if source is not None and "=" in source and not Path(source).exists():
        overrides.insert(0, source)  # `engram map --out DIR sim=tum ...`: no SOURCE, only overrides
        source = None
    # paths are set on the composed config, never parsed by hydra's override grammar
    # (a path with ',', '=', quotes or brackets would break it)
    cfg = compose("map", overrides)
    with open_dict(cfg):
        cfg.out = str(args.out)
        if source is not None:
            cfg.source = str(source)
    result = run_map(cfg)
    print(f"wrote {result['out_dir']}")
    if not result.get("complete", True):
        print(f"engram map: STOPPED EARLY: {result['stopped_early']} (mapped what came before)", file=sys.stderr)
        return PARTIAL
    return 0


def _backend_overrides(group: str, key: str, args: argparse.Namespace, name: str | None) -> list[str]:
    """--answerer/--captioner NAME, --base-url, --model, --api-key-env as hydra overrides of ``qa/<group>``."""
    out = [] if name is None else [f"qa/{group}@{key}={name}"]
    if args.base_url is not None:
        out.append(f"{key}.base_url={args.base_url}")
    if args.model is not None:
        out.append(f"{key}.{'model_path' if name == 'transformers' else 'model'}={args.model}")
    if args.api_key_env is not None:
        out.append(f"{key}.api_key_env={args.api_key_env}")
    return out


def _build_backend(cfg: object) -> object:
    """Instantiate an answerer or captioner config; its own ValueError comes through as it is."""
    from engram.config import instantiate

    try:
        return instantiate(cfg)
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ValueError):
            raise cause from None
        raise


def _qa(args: argparse.Namespace) -> int:
    from engram.qa.answerers import AnswererError

    try:
        return _qa_run(args)
    except AnswererError as exc:  # a server that failed, timed out or sent garbage: the memory is unchanged
        print(f"engram qa: error: {exc}", file=sys.stderr)
        return 3


def _qa_run(args: argparse.Namespace) -> int:
    from engram.config import compose, to_plain

    if args.qa_command == "build":
        from hydra.utils import get_method

        from engram.qa.video import build_summary

        over = _backend_overrides("captioner", "captioner", args, args.captioner)
        if args.fps is not None:
            over.append(f"qa.sample_fps={args.fps}")
        if args.no_resume:
            over.append("qa.resume=false")
        cfg = compose("qa_build", over + list(args.overrides))
        captioner = _build_backend(cfg.captioner) if cfg.get("captioner") is not None else None
        opts = to_plain(cfg.qa)
        build = get_method(opts.pop("_target_"))
        opts.pop("_convert_", None)
        qa = build(video_path=args.video, out_dir=args.out, captioner=captioner, **opts)
        print(build_summary(qa, args.out))
        print(f"memory written to {args.out}")
        if not getattr(
            getattr(qa, "report", None), "complete", True
        ):  # the video ended early: what came before is kept
            return PARTIAL
    else:
        from engram.fleet.catalogue import is_catalogue
        from engram.qa.ask import ask_path

        over = _backend_overrides("answerer", "answerer", args, args.answerer)
        answerer: object = "offline"
        if over != ["qa/answerer@answerer=offline"] or args.overrides:
            answerer = _build_backend(compose("qa_ask", over + list(args.overrides)).answerer)
        if is_catalogue(args.memory):  # a catalogue of many sources (engram index)
            from engram.fleet.catalogue import ask_command as ask_catalogue_command

            print(ask_catalogue_command(args.memory, args.question, options=args.options, answerer=answerer))
            return 0
        print(ask_path(args.memory, args.question, options=args.options, answerer=answerer))
    return 0


def _sim(args: argparse.Namespace) -> int:
    from engram.sims.ros import record_sim

    path = record_sim(args.bag, seed=args.seed, steps=args.steps)
    print(f"wrote {path}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from engram._optional import available
    from engram.fleet.index import build_index

    use_ray = False if args.no_ray else None
    if use_ray is None and not available("ray") and not (args.address or os.environ.get("RAY_ADDRESS")):
        print("engram index: Ray is not installed, indexing in this process; "
              "for parallel workers: pip install 'engram[fleet]'", file=sys.stderr)  # fmt: skip
    report = build_index(
        args.sources, args.out, overrides=args.overrides, address=args.address, workers=args.workers,
        use_ray=use_ray, progress=not args.quiet,
    )  # fmt: skip
    print(report.summary())
    return 1 if report.failed else 0


def _search(args: argparse.Namespace) -> int:
    from engram.fleet.catalogue import Catalogue

    cat = Catalogue.open(args.catalogue)
    if "torch" in sys.modules or cat.settings.get("text_encoder") not in (None, "hash"):
        try:  # one short query gains nothing from threads, and on a busy machine they spin
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
    hits = cat.search(
        args.text, k=args.k, since=args.since, until=args.until, near=args.near, radius_m=args.radius,
        sources=args.source, kinds=args.kind,
    )  # fmt: skip
    if not hits:
        print("no match")
    for h in hits:
        print(h.line())
    return 0


def _info(args: argparse.Namespace) -> int:
    from engram.memory.scene import SceneMemory

    mem = SceneMemory.load(args.path)
    for key, value in mem.stats().items():
        print(f"{key}: {value}")
    rooms = [f"{r.name} ({r.area_m2:.1f} m², {len(r.object_ids)} objects)" for r in mem.rooms().rooms]
    print(f"rooms: {', '.join(rooms) or 'none'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram", description="A spatial and episodic memory for robots and video.")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser(
        "explore",
        help="explore a seeded apartment, build the memory, navigate, write a report",
        description="Explore an interactive world (sim=embedded, the default, or sim=habitat). Recorded "
        "sources (sim=icl, tum, rosbag) cannot be driven: map them with `engram map`.",
    )
    e.add_argument("overrides", nargs="*", help="hydra overrides, e.g. seed=3 out=runs/x sim.width=640")
    e.set_defaults(func=_explore)

    m = sub.add_parser(
        "map",
        help="run a recorded RGB-D source through memory and write 3D exports",
        description="Map a recording that has depth: an Open3D/ICL-NUIM, TUM RGB-D or 7-Scenes folder, or a ROS bag "
        "with a depth topic, given as SOURCE or as sim=icl|tum|rosbag with sim.path=... . A video has no depth: "
        "`engram qa build VIDEO --out DIR` builds a video's memory.",
    )
    m.add_argument(
        "source",
        nargs="?",
        default=None,
        help="an ICL-NUIM/Open3D, TUM RGB-D or 7-Scenes folder, or a ROS bag with depth (.bag, .mcap, ROS 2 folder)",
    )
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("overrides", nargs="*", help="hydra overrides")
    m.set_defaults(func=_map)

    q = sub.add_parser("qa", help="long-video question answering")
    qs = q.add_subparsers(dest="qa_command", required=True)
    qb = qs.add_parser("build", help="build the episodic memory of a video (config: qa/video.yaml)")
    qb.add_argument("video")
    qb.add_argument("--out", required=True)
    qb.add_argument("--fps", type=float, default=None, help="frames sampled per second of video (qa.sample_fps)")
    qb.add_argument("--no-resume", action="store_true", help="start over instead of resuming")
    qb.add_argument("--captioner", default=None, help="caption events with: openai | transformers")
    qa = qs.add_parser("ask", help="ask a question of a memory (video, scene) or a catalogue (engram index)")
    qa.add_argument("memory")
    qa.add_argument("question")
    qa.add_argument("--options", nargs="+", default=None, help="multiple-choice options")
    qa.add_argument("--answerer", default=None, help="offline (default) | openai | transformers")
    for sp in (qb, qa):
        sp.add_argument("--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1")
        sp.add_argument(
            "--model", default=None, help="model name on the server, or a local model folder (transformers)"
        )
        sp.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
        sp.add_argument("overrides", nargs="*", help="hydra overrides, e.g. qa.sample_fps=2 answerer.timeout_s=60")
    q.set_defaults(func=_qa)

    s = sub.add_parser("sim", help="embedded-world utilities")
    ss = s.add_subparsers(dest="sim_command", required=True)
    sr = ss.add_parser("record", help="record an embedded-world walk as a ROS bag (.mcap, .bag or a ROS 2 folder)")
    sr.add_argument("--bag", required=True)
    sr.add_argument("--seed", type=int, default=0)
    sr.add_argument("--steps", type=int, default=120)
    s.set_defaults(func=_sim)

    x = sub.add_parser(
        "index", help="index many videos, RGB-D folders and bags into one catalogue (in parallel on Ray)"
    )
    x.add_argument("sources", nargs="+", help="files, folders, globs, URIs or a .txt list of paths")
    x.add_argument("--out", required=True, help="the catalogue folder (created or extended)")
    x.add_argument("--address", default=None, help="a Ray cluster to join (default: RAY_ADDRESS or a local runtime)")
    x.add_argument("--workers", type=int, default=None, help="parallel workers (default: the CPUs available)")
    x.add_argument("--no-ray", action="store_true", help="index in this process even when Ray is installed")
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    x.add_argument("overrides", nargs="*", help="overrides of engram/configs/fleet.yaml, e.g. video.sample_fps=0.5")
    x.set_defaults(func=_index)

    f = sub.add_parser("search", help="search every source of a catalogue")
    f.add_argument("catalogue")
    f.add_argument("text")
    f.add_argument("-k", type=int, default=5, help="hits to show")
    f.add_argument("--since", default=None, help="stream seconds (90, 1:30) or a UTC date (2026-12-06)")
    f.add_argument("--until", default=None, help="as --since")
    f.add_argument("--near", type=float, nargs="+", default=None, metavar="X", help="x y [z] in metres")
    f.add_argument("--radius", type=float, default=None, help="with --near: drop hits farther than this (m)")
    f.add_argument("--source", action="append", default=None, help="keep sources whose path or id contains this")
    f.add_argument("--kind", action="append", default=None, choices=["event", "keyframe", "object"])
    f.set_defaults(func=_search)

    i = sub.add_parser("info", help="print what a saved memory holds")
    i.add_argument("path")
    i.set_defaults(func=_info)
    return p


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Errors are one line on stderr and exit status 2 (``--debug``: the traceback)."""
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
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
    except KeyboardInterrupt:
        print(f"engram {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # bad input of any kind: one line, no traceback (unless --debug)
        if debug:
            raise
        print(f"engram {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
