"""Detector plug-ins (owlv2, grounding_dino, yolo_world) and region embeddings, on tiny random models.

Every model here is built from a small config with random weights and saved
to a temporary folder, then loaded back through the backend's local-path
loader: the wiring is tested end to end (image in; masks, labels, scores and
embeddings out; fused in a SceneMemory) without any download.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from engram._optional import MissingExtraError
from engram.perception.detectors import (
    DetectorError,
    InstanceMasks,
    available_detectors,
    build_detector,
    run_detector,
)
from engram.perception.detectors._plugin import (
    RegionEmbedder,
    box_masks,
    build_embedder,
)
from engram.types import CameraIntrinsics, Frame, Pose

CLASSES = ["mug", "chair", "table"]
K = CameraIntrinsics(fx=120.0, fy=120.0, cx=79.5, cy=59.5, width=160, height=120)
# a mug, a chair, and a wall behind them so that every pixel has depth (random boxes land anywhere)
BOXES = [
    (1, (1.8, -0.3, 0.0), (2.1, 0.0, 0.3)),
    (2, (2.0, 0.2, 0.0), (2.4, 0.6, 0.8)),
    (3, (3.0, -5, -1), (3.1, 5, 5)),
]
TINY_CLIP = "engram-test-tiny-clip-512"


# --------------------------------------------------------------------------- tiny models
def _clip_tokenizer(folder: Path):
    transformers = pytest.importorskip("transformers")
    vocab = {}
    for c in "abcdefghijklmnopqrstuvwxyz.,":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    # OWL masks queries whose first token is 0: as in CLIP, the special tokens come last
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=16,
    )


@pytest.fixture(scope="module")
def owlv2_folder(tmp_path_factory) -> Path:
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("owlv2")
    torch.manual_seed(0)
    layers = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    text = {**layers, "vocab_size": 100, "max_position_embeddings": 16, "bos_token_id": 56, "eos_token_id": 57,
            "pad_token_id": 57}  # fmt: skip
    vision = {**layers, "image_size": 64, "patch_size": 16}
    cfg = transformers.Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
    model = transformers.Owlv2ForObjectDetection(cfg)
    # random box regressions collapse to lines; with the last layer zeroed, boxes are OWLv2's
    # priors (a patch-sized box on every patch), so detections cover real surfaces
    last = [m for m in model.box_head.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    for layer in (
        model.class_head.logit_shift,
        model.class_head.logit_scale,
    ):  # logits = cosine, scores near 0.5
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    model.save_pretrained(d)
    image_processor = transformers.Owlv2ImageProcessor(size={"height": 64, "width": 64})
    transformers.Owlv2Processor(image_processor=image_processor, tokenizer=_clip_tokenizer(d)).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def grounding_dino_folder(tmp_path_factory) -> Path:
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("gdino")
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        ".",
        "mug",
        "chair",
        "table",
        "a",
    ]
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizer(str(d / "vocab.txt"))
    torch.manual_seed(0)
    backbone = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                         out_features=["stage2", "stage3", "stage4"], layer_type="basic")  # fmt: skip
    text = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    cfg = transformers.GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=20, num_feature_levels=3, encoder_n_points=2, decoder_n_points=2, max_text_len=32,
        use_timm_backbone=False, use_pretrained_backbone=False,
    )  # fmt: skip
    transformers.GroundingDinoForObjectDetection(cfg).save_pretrained(d)
    image_processor = transformers.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def yolo_world_checkpoint(tmp_path_factory) -> Path:
    """A YOLO-World v2 from ultralytics' yaml at 1/16 width, its text features set by hand."""
    ultralytics = pytest.importorskip("ultralytics")
    torch = pytest.importorskip("torch")
    import yaml

    d = tmp_path_factory.mktemp("yolo_world")
    cfg = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-worldv2.yaml").read_text())
    cfg["scales"] = {"t": [0.33, 0.0625, 128]}
    (d / "yolov8t-worldv2.yaml").write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    model = ultralytics.YOLOWorld(str(d / "yolov8t-worldv2.yaml"), verbose=False)
    world = model.model
    world.txt_feats = torch.nn.functional.normalize(torch.randn(1, len(CLASSES), 512), dim=-1)
    world.model[-1].nc = len(CLASSES)
    world.names = dict(enumerate(CLASSES))
    model.save(d / "tiny-world.pt")
    return d / "tiny-world.pt"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> dict:
    """A tiny random open_clip CLIP with 512-d embeddings (YOLO-World's text width), as encoder kwargs."""
    open_clip = pytest.importorskip("open_clip")
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("clip")
    cfg = {
        "embed_dim": 512,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 16,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    (d / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(TINY_CLIP, pretrained=None).state_dict(), d / "clip.pt")
    return {
        "name": "open_clip",
        "model_name": TINY_CLIP,
        "checkpoint_path": str(d / "clip.pt"),
    }


def _camera() -> Pose:
    p = math.radians(20.0)
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    r0 = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    return Pose.from_rt(ry @ r0, [0.0, 0.0, 1.0])


@pytest.fixture
def frame(box_renderer) -> Frame:
    depth, ins = box_renderer(BOXES, _camera(), K)
    rgb = np.full((K.height, K.width, 3), 60, np.uint8)
    rgb[ins == 1] = (230, 230, 230)
    rgb[ins == 2] = (150, 80, 30)
    return Frame(
        index=0,
        timestamp_s=0.0,
        rgb=rgb,
        depth_m=depth,
        intrinsics=K,
        world_from_camera=_camera(),
    )


def _build(name: str, request) -> object:
    if name == "owlv2":
        return build_detector("owlv2", model_path=str(request.getfixturevalue("owlv2_folder")), classes=CLASSES,
                              score_threshold=0.0, max_detections=5)  # fmt: skip
    if name == "grounding_dino":
        return build_detector("grounding_dino", model_path=str(request.getfixturevalue("grounding_dino_folder")),
                              classes=CLASSES, box_threshold=0.0, max_detections=5)  # fmt: skip
    return build_detector("yolo_world", model_path=str(request.getfixturevalue("yolo_world_checkpoint")),
                          score_threshold=0.0, max_detections=5, image_size_px=64)  # fmt: skip


PLUGINS = ["owlv2", "grounding_dino", "yolo_world"]


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_frame_to_masks_labels_scores_embeddings(name: str, request, frame: Frame) -> None:
    det = _build(name, request)
    assert det.name == name and name in available_detectors()
    out = run_detector(det, frame)
    k = len(out)
    assert 1 <= k <= 5
    assert out.masks.shape == (k, K.height, K.width) and out.masks.dtype == bool
    assert out.masks.reshape(k, -1).any(axis=1).all()
    assert set(out.labels) <= set(CLASSES)
    assert np.all((out.scores >= 0) & (out.scores <= 1))
    if name != "yolo_world":  # the transformers models give their own region features
        assert out.embeddings.shape[0] == k and np.all(np.isfinite(out.embeddings))
    assert all(max(d, key=d.get) == lab for d, lab in zip(out.label_scores, out.labels))
    boxes = out.extra["boxes_xyxy"]
    assert boxes.shape == (k, 4) and np.all(boxes[:, 2] >= boxes[:, 0])


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_detections_fuse_into_scene_memory(name: str, request, frame: Frame) -> None:
    from engram.memory.scene import SceneMemory

    det = _build(name, request)
    memory = SceneMemory(voxel_size_m=0.05, detector=det, object_stride=1)  # a small frame: every pixel counts
    report = memory.integrate(frame)
    assert report.mapped
    labels = {o.label for o in memory.objects.objects.values()}
    assert memory.objects.objects and labels <= set(CLASSES) | {"object"}


def test_region_embedder_embeds_each_mask_crop(tiny_clip: dict, owlv2_folder: Path, frame: Frame) -> None:
    det = build_detector("owlv2", model_path=str(owlv2_folder), classes=CLASSES, score_threshold=0.0,
                         max_detections=3, embedder=tiny_clip)  # fmt: skip
    out = run_detector(det, frame)
    assert out.embeddings.shape == (len(out), 512)
    # the same crops through the encoder directly give the same vectors
    direct = det.embedder.encoder.encode(det.embedder.crops(frame.rgb, out.masks))
    np.testing.assert_allclose(out.embeddings, direct, atol=1e-5)
    # a crop is the mask's box, with the pixels outside the mask greyed
    mask = np.zeros((K.height, K.width), bool)
    mask[10:50, 20:40] = True
    mask[10:20, 20:30] = False
    (crop,) = RegionEmbedder(det.embedder.encoder, context=0.0).crops(frame.rgb, mask[None])
    assert crop.shape == (40, 20, 3)
    assert np.all(crop[:10, :10] == 127) and np.array_equal(crop[10:], frame.rgb[20:50, 20:40])
    with pytest.raises(TypeError, match="needs a 'name'"):
        build_embedder({"model_name": TINY_CLIP})
    assert build_embedder(None) is None


def test_yolo_world_vocabulary_from_a_local_text_encoder(yolo_world_checkpoint: Path, tiny_clip: dict, frame) -> None:
    classes = ["sofa", "lamp"]
    with pytest.raises(ValueError, match="give text_encoder"):
        build_detector("yolo_world", model_path=str(yolo_world_checkpoint), classes=classes)
    det = build_detector("yolo_world", model_path=str(yolo_world_checkpoint), classes=classes, text_encoder=tiny_clip,
                         score_threshold=0.0, image_size_px=64, max_detections=4)  # fmt: skip
    out = run_detector(det, frame)
    assert len(out) and set(out.labels) <= set(classes)
    assert det.model.model.txt_feats.shape == (1, 2, 512)


def test_yolo_world_with_a_segmenter(yolo_world_checkpoint: Path, frame: Frame) -> None:
    class HalfBox:
        """Masks the left half of each box, to show the segmenter's masks are the ones kept."""

        def segment(self, rgb, boxes):
            m = np.zeros((len(boxes), *rgb.shape[:2]), bool)
            for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
                m[i, y0 : max(y1, y0 + 1), x0 : max((x0 + x1) // 2, x0 + 1)] = True
            return m

    det = build_detector("yolo_world", model_path=str(yolo_world_checkpoint), score_threshold=0.0,
                         image_size_px=64, max_detections=3, segmenter=HalfBox())  # fmt: skip
    out = run_detector(det, frame)
    boxes = np.round(out.extra["boxes_xyxy"]).astype(int)
    for m, (x0, _, x1, _) in zip(out.masks, boxes):
        assert not m[:, max((x0 + x1) // 2, x0 + 1) :].any()
    with pytest.raises(FileNotFoundError, match="segmenter_path"):
        build_detector("yolo_world", model_path=str(yolo_world_checkpoint), segmenter="mobile_sam",
                       segmenter_path="/no/such/mobile_sam.pt")  # fmt: skip


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", PLUGINS)
def test_missing_weights_name_the_config_key(name: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"detector '{name}'.*model_path"):
        build_detector(name, model_path=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="needs model_path"):
        build_detector(name, model_path="")


@pytest.mark.parametrize(("name", "module", "extra"), [("owlv2", "transformers", "vision"),
                                                       ("grounding_dino", "transformers", "vision"),
                                                       ("yolo_world", "ultralytics", "detect")])  # fmt: skip
def test_missing_package_names_the_extra(name, module, extra, tmp_path: Path, monkeypatch) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    (tmp_path / "folder").mkdir()
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    path = weights if name == "yolo_world" else tmp_path / "folder"
    with pytest.raises(MissingExtraError, match=rf"engram\[{extra}\]"):
        build_detector(name, model_path=str(path))


def _memory_state(memory) -> tuple:
    return (
        len(memory.objects.objects),
        len(memory.octree.occupied_centers()),
        len(memory.trajectory),
    )


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        ("shape", "masks of size"),
        ("nan", "finite"),
        ("label", "non-empty strings"),
        ("count", "boxes and"),
        ("class", "outside the 3-class vocabulary"),
    ],
)
def test_malformed_output_is_a_detector_error_and_memory_is_unchanged(corrupt, message, owlv2_folder, frame) -> None:
    from engram.memory.scene import SceneMemory

    det = build_detector(
        "owlv2",
        model_path=str(owlv2_folder),
        classes=CLASSES,
        score_threshold=0.0,
        max_detections=3,
    )
    memory = SceneMemory(voxel_size_m=0.05, detector=det)
    memory.integrate(frame)
    before = _memory_state(memory)
    good = det.detect

    def broken(f):
        out = good(f)
        k = len(out)
        if corrupt == "shape":
            return InstanceMasks(out.masks[:, ::2, ::2], out.labels, out.scores)
        if corrupt == "nan":
            return InstanceMasks(out.masks, out.labels, np.full(k, np.nan))
        if corrupt == "label":
            return InstanceMasks(out.masks, [3] + out.labels[1:], out.scores)
        from engram.perception.detectors._plugin import instance_masks

        if corrupt == "class":
            return instance_masks(f, out.masks, np.full(k, 7), out.scores, CLASSES)
        return instance_masks(f, out.masks, np.zeros(k + 1, int), np.ones(k + 1), CLASSES)

    det.detect = broken
    later = Frame(index=1, timestamp_s=1.0, rgb=frame.rgb, depth_m=frame.depth_m, intrinsics=K,
                  world_from_camera=frame.world_from_camera)  # fmt: skip
    with pytest.raises(DetectorError, match=rf"'owlv2'.*{message}|{message}.*"):
        memory.integrate(later)
    assert _memory_state(memory) == before


# --------------------------------------------------------------------------- pieces and configs
def test_box_masks_keep_the_near_surface_and_fall_back_to_the_box() -> None:
    depth = np.full((40, 60), 3.0, np.float32)
    depth[10:30, 20:40] = 1.0  # an object in front of a wall
    m = box_masks(np.array([[15.0, 5.0, 45.0, 35.0], [0, 0, 10, 10]]), 40, 60, depth)
    assert m[0].sum() == 20 * 20 and m[0, 10:30, 20:40].all()
    assert m[1].sum() == 100  # on the wall only: the near surface is the wall itself
    no_depth = box_masks(np.array([[15.0, 5.0, 45.0, 35.0]]), 40, 60, None)
    assert no_depth.sum() == 30 * 30
    depth[:] = 0
    assert box_masks(np.array([[15.0, 5.0, 45.0, 35.0]]), 40, 60, depth).sum() == 30 * 30


@pytest.mark.parametrize("name", PLUGINS)
def test_hydra_configs_build_each_plugin(name: str, request) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(
        Path(__file__).resolve().parents[2] / "engram" / "configs" / "perception" / "detector" / f"{name}.yaml"
    )
    with pytest.raises(Exception, match="model_path"):
        OmegaConf.to_container(cfg, throw_on_missing=True)
    fixture = {
        "owlv2": "owlv2_folder",
        "grounding_dino": "grounding_dino_folder",
        "yolo_world": "yolo_world_checkpoint",
    }
    cfg.model_path = str(request.getfixturevalue(fixture[name]))
    if name != "yolo_world":
        cfg.classes = CLASSES
    det = instantiate(cfg)
    assert det.name == name and det.classes == CLASSES
