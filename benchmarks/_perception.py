"""The classifier precision flag shared by the benchmarks that build object maps."""

from __future__ import annotations

import argparse

OFFLINE_DETECTORS = ("rgbd", "rgb")  # the detectors labelled by the shipped EfficientNet-Lite0


def add_precision_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="the offline detectors' classifier arithmetic (auto: bfloat16 where the CPU runs it natively, "
        "float32 elsewhere; labels differ a little between the two, float32 gives the same on any CPU)",
    )


def labeller_kwargs(detector: str, precision: str) -> dict[str, str]:
    """``detector_kwargs`` that set the classifier's precision of an offline detector (none for the others)."""
    return {"precision": precision} if detector in OFFLINE_DETECTORS and precision != "auto" else {}


def cache_suffix(detector: str, precision: str) -> str:
    """What a run's cache key adds for a precision other than the default ("" for auto)."""
    return "".join(f"-{v}" for v in labeller_kwargs(detector, precision).values())


def describe_precision(precision: str) -> str:
    """What the classifier runs in on this CPU, for a table's header."""
    import warnings

    import torch

    from engram.perception.encoders import _resolve_precision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 asked for on a CPU without it: the header says float32
        run = _resolve_precision(torch, precision, convolutions=True)
    return f"classifier precision {precision} ({run} on this CPU)"
