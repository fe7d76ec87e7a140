"""Captioners: a few keyframes of an event in, one sentence about what they show out.

A captioner fills the timeline's captions at build time (`VideoQA.build`
captions events in batches after reading the frames, saving after each
batch). Two back ends, built by name with `build_captioner`:

- ``openai``: any OpenAI-compatible ``/v1/chat/completions`` server with a
  vision-language model (vLLM, llama.cpp's server with a multimodal
  projector, Ollama, hosted APIs); keyframes go as base64 JPEG ``image_url``
  parts, a few requests at a time.
- ``transformers``: a local image-text-to-text model loaded from a folder
  (never downloaded).

Any object with ``caption_batch(list of keyframe lists) -> list of str`` (or a
plain keyframes -> caption callable) works as well. A server that fails,
times out or sends malformed JSON raises `AnswererError` naming the URL and
the model; the memory keeps the captions made before it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from engram._util import Registry
from engram.qa.answerers import (
    AnswererError,
    _jpeg_data_url,
    chat_url,
    post_chat,
    reply_text,
)

__all__ = [
    "CAPTION_PROMPT",
    "OpenAICaptioner",
    "TransformersCaptioner",
    "available_captioners",
    "build_captioner",
    "caption_batch",
    "register_captioner",
]

CAPTION_PROMPT = (
    "These are frames from one moment of a video, in time order. In one or two short sentences, say where "
    "this is (which room or place) and name the objects and people you see, with counts, and what happens."
)

_CAPTIONERS: Registry[Any] = Registry("captioner")
register_captioner = _CAPTIONERS.register
available_captioners = _CAPTIONERS.available


def build_captioner(name: str, **kwargs: Any) -> Any:
    """Build a captioner by registry name ("openai", "transformers")."""
    return _CAPTIONERS.build(name, **kwargs)


def caption_batch(captioner: Any, keyframes: Sequence[Sequence[np.ndarray]]) -> list[str]:
    """Captions for several events' keyframes with any kind of captioner; checks what comes back."""
    if hasattr(captioner, "caption_batch"):
        out = list(captioner.caption_batch([list(k) for k in keyframes]))
    elif callable(captioner):
        out = [captioner(list(k)) for k in keyframes]
    else:
        raise ValueError(f"a captioner needs caption_batch() or to be callable, got {type(captioner).__name__}")
    if len(out) != len(keyframes) or not all(isinstance(c, str) for c in out):
        raise AnswererError(f"captioner returned {len(out)} captions for {len(keyframes)} events, or non-text ones")
    return [" ".join(c.split()) for c in out]


@register_captioner("openai")
class OpenAICaptioner:
    """Captions from an OpenAI-compatible chat server with a vision-language model.

    Args:
        base_url: server root, with or without ``/v1``.
        model: model name the server knows.
        api_key_env: environment variable holding the API key (unset: no header).
        timeout_s: per-request timeout.
        max_images: keyframes sent per event.
        image_max_side_px: keyframes are shrunk to this longest side.
        max_tokens: caption length limit.
        workers: requests in flight at once.
        prompt: the instruction sent with the keyframes.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "default",
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_images: int = 2,
        image_max_side_px: int = 448,
        max_tokens: int = 96,
        workers: int = 4,
        prompt: str = CAPTION_PROMPT,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        if int(max_images) < 1 or int(workers) < 1 or int(max_tokens) < 1:
            raise ValueError("max_images, workers and max_tokens must be positive")
        self.url = chat_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_images = int(max_images)
        self.image_max_side_px = int(image_max_side_px)
        self.max_tokens = int(max_tokens)
        self.workers = int(workers)
        self.prompt = prompt
        self.label = f"openai:{self.model}@{self.url}"

    def request(self, images: Sequence[np.ndarray]) -> dict:
        """The JSON body sent for one event (exposed for inspection and tests)."""
        content: list[dict[str, Any]] = [{"type": "text", "text": self.prompt}]
        step = max(1, math.ceil(len(images) / self.max_images))
        for img in list(images)[::step][: self.max_images]:
            content.append(
                {
                    "type": "image_url",
                    "image_url": {"url": _jpeg_data_url(img, self.image_max_side_px, 85)},
                }
            )
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "stream": False,
        }

    def _one(self, images: Sequence[np.ndarray]) -> str:
        reply = post_chat(
            self.url,
            self.request(images),
            model=self.model,
            api_key_env=self.api_key_env,
            timeout_s=self.timeout_s,
        )
        return reply_text(reply, self.url, self.model).strip()

    def caption_batch(self, keyframes: Sequence[Sequence[np.ndarray]]) -> list[str]:
        if self.workers == 1 or len(keyframes) == 1:
            return [self._one(k) for k in keyframes]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(keyframes))) as pool:
            return list(pool.map(self._one, keyframes))

    def __call__(self, images: Sequence[np.ndarray]) -> str:
        return self._one(images)


@register_captioner("transformers")
class TransformersCaptioner:
    """A local image-text-to-text model (e.g. SmolVLM, Qwen2-VL) loaded from a folder; never downloads.

    Args:
        model_path: folder with ``config.json``, weights, tokenizer and processor files.
        max_new_tokens: caption length limit.
        prompt: the instruction given with the keyframes.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        max_new_tokens: int = 48,
        prompt: str = CAPTION_PROMPT,
    ) -> None:
        if model_path is None:
            raise ValueError(
                "the transformers captioner needs model_path: a local model folder (nothing is downloaded); "
                "on the command line: --captioner transformers --model PATH"
            )
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a transformers model folder: it has no config.json")
        from engram._optional import require

        self._torch = require("torch", "the transformers captioner")
        transformers = require("transformers", "the transformers captioner")
        try:
            self._processor = transformers.AutoProcessor.from_pretrained(str(path), local_files_only=True)
            self._model = transformers.AutoModelForImageTextToText.from_pretrained(
                str(path), local_files_only=True
            ).eval()
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load an image-text-to-text model from {path}: {exc}") from exc
        self.model_path = path
        self.max_new_tokens = int(max_new_tokens)
        self.prompt = prompt
        self.label = f"transformers:{path}"

    def __call__(self, images: Sequence[np.ndarray]) -> str:
        from PIL import Image

        pics = [Image.fromarray(np.ascontiguousarray(i)) for i in images[:2]]
        messages = [
            {
                "role": "user",
                "content": [
                    *({"type": "image"} for _ in pics),
                    {"type": "text", "text": self.prompt},
                ],
            }
        ]
        text = self._processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self._processor(text=text, images=pics, return_tensors="pt")
        try:
            with self._torch.inference_mode():
                out = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        except RuntimeError as exc:
            raise AnswererError(f"captioning with the model at {self.model_path} failed: {exc}") from exc
        new = out[0, inputs["input_ids"].shape[1] :]
        return self._processor.decode(new, skip_special_tokens=True).strip()

    def caption_batch(self, keyframes: Sequence[Sequence[np.ndarray]]) -> list[str]:
        return [self(k) for k in keyframes]
