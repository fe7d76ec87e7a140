"""Image and text encoders: protocols, a registry, and the offline built-ins.

Every encoder works on batches and returns L2-normalised float32 rows, so
cosine similarity is a dot product. Encoders are built by name from the
registry (`build_image_encoder`, `build_text_encoder`); an unknown name lists
the available ones. Heavy packages (torch, timm) are imported only when an
encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ImageEncoder",
    "TextEncoder",
    "register_image_encoder",
    "register_text_encoder",
    "build_image_encoder",
    "build_text_encoder",
    "available_image_encoders",
    "available_text_encoders",
]


@runtime_checkable
class ImageEncoder(Protocol):
    """Images to embeddings (and, optionally, class tags)."""

    name: str
    dim: int

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """"B" images "H W 3" uint8 RGB -> "B dim" float32, L2-normalised."""
        ...

    def tags(self, images: Sequence[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (label, probability) per image; an empty list per image if the encoder has no classes."""
        ...


@runtime_checkable
class TextEncoder(Protocol):
    """Texts to embeddings in the same space as some image encoder, or a text-only space."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """"B" strings -> "B dim" float32, L2-normalised."""
        ...


_IMAGE: dict[str, Callable[..., ImageEncoder]] = {}
_TEXT: dict[str, Callable[..., TextEncoder]] = {}


def register_image_encoder(name: str) -> Callable:
    def deco(factory: Callable[..., ImageEncoder]) -> Callable[..., ImageEncoder]:
        _IMAGE[name] = factory
        return factory

    return deco


def register_text_encoder(name: str) -> Callable:
    def deco(factory: Callable[..., TextEncoder]) -> Callable[..., TextEncoder]:
        _TEXT[name] = factory
        return factory

    return deco


def available_image_encoders() -> list[str]:
    return sorted(_IMAGE)


def available_text_encoders() -> list[str]:
    return sorted(_TEXT)


def build_image_encoder(name: str, **kwargs) -> ImageEncoder:
    if name not in _IMAGE:
        raise ValueError(f"unknown image encoder {name!r}; available: {', '.join(available_image_encoders())}")
    return _IMAGE[name](**kwargs)


def build_text_encoder(name: str, **kwargs) -> TextEncoder:
    if name not in _TEXT:
        raise ValueError(f"unknown text encoder {name!r}; available: {', '.join(available_text_encoders())}")
    return _TEXT[name](**kwargs)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)
