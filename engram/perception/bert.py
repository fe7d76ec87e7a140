"""A small BERT encoder in plain torch, for sentence-embedding checkpoints such as all-MiniLM-L6-v2.

It reads a Hugging Face BERT folder (``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, ``tokenizer.json``) with torch, safetensors and the
Rust ``tokenizers`` package only: importing transformers costs seconds of CPU
in every process that needs a text encoder, and the forward pass of a BERT
encoder is a few dozen lines. The layer structure and weight names are
transformers' ``BertModel`` (post-LayerNorm, absolute positions), so the
hidden states match it to float32 rounding.

This module imports torch at the top; `engram.perception.encoders` imports it
only when a MiniLM encoder is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertConfig", "BertEncoder", "load_bert", "load_bert_tokenizer"]

# hidden_act -> torch GELU approximation
_GELU = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


class BertConfig:
    """The fields of a BERT ``config.json`` that the encoder uses, checked.

    Raises:
        ValueError: the config is not a BERT encoder this module can run
            (another model type, relative positions, a decoder, sizes that do not fit).
    """

    def __init__(self, cfg: dict[str, Any], source: str = "config.json") -> None:
        def need(key: str) -> Any:
            if key not in cfg:
                raise ValueError(f"{source}: no {key!r}; not a BERT config")
            return cfg[key]

        model_type = cfg.get("model_type")
        if model_type != "bert":
            raise ValueError(f"{source}: model_type is {model_type!r}, expected 'bert' (a BERT encoder such as MiniLM)")
        pos = cfg.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(f"{source}: position_embedding_type {pos!r} is not supported (only 'absolute')")
        if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
            raise ValueError(f"{source}: a BERT decoder is not supported (only the encoder)")
        act = cfg.get("hidden_act", "gelu")
        if act not in _GELU:
            raise ValueError(f"{source}: hidden_act {act!r} is not supported (one of {sorted(_GELU)})")
        ints = {}
        for key in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        ):
            value = need(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{source}: {key} must be a positive integer, got {value!r}")
            ints[key] = value
        self.vocab_size: int = ints["vocab_size"]
        self.hidden_size: int = ints["hidden_size"]
        self.num_hidden_layers: int = ints["num_hidden_layers"]
        self.num_attention_heads: int = ints["num_attention_heads"]
        self.intermediate_size: int = ints["intermediate_size"]
        self.max_position_embeddings: int = ints["max_position_embeddings"]
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{source}: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        self.type_vocab_size: int = int(cfg.get("type_vocab_size", 2))
        self.layer_norm_eps: float = float(cfg.get("layer_norm_eps", 1e-12))
        self.gelu_approximate: str = _GELU[act]

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the model config {path}: {exc}") from exc
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: not a JSON object; not a BERT config")
        return cls(cfg, source=str(path))


class _Layer(nn.Module):
    """One post-LayerNorm transformer layer: self-attention, then the GELU feed-forward."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        # query, key and value in one matrix product (BERT keeps three; joined at load time)
        self.qkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(h, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, h)
        self.ffn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.approximate = cfg.gelu_approximate

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        b, n, h = x.shape
        # "b n (3 heads d)" -> 3 x "b heads n d"
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = self.attn_norm(x + self.attn_out(ctx.transpose(1, 2).reshape(b, n, h)))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x), approximate=self.approximate)))


class BertEncoder(nn.Module):
    """BERT's embeddings and encoder stack (no pooler): token ids -> "B N hidden" hidden states."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        h = cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, h)
        self.position = nn.Embedding(cfg.max_position_embeddings, h)
        self.token_type = nn.Embedding(cfg.type_vocab_size, h)
        self.embed_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ "B N" int64 ids (and "B N" 1/0 mask, 0 = padding) -> "B N hidden" float hidden states."""
        n = input_ids.shape[1]
        if n > self.config.max_position_embeddings:
            raise ValueError(f"{n} tokens exceed the model's {self.config.max_position_embeddings} positions")
        # single-segment input: every token has type 0
        x = self.word(input_ids) + self.position.weight[:n] + self.token_type.weight[0]
        x = self.embed_norm(x)
        attend = None
        if attention_mask is not None and not bool(attention_mask.all()):
            # "B 1 1 N" boolean: True where a key may be attended (padding keys are not)
            attend = attention_mask[:, None, None, :].bool()
        for layer in self.layers:
            x = layer(x, attend)
        return x


def _convert_state_dict(sd: dict[str, torch.Tensor], cfg: BertConfig, source: str) -> dict[str, torch.Tensor]:
    """transformers' BertModel weight names -> `BertEncoder`'s (query/key/value joined)."""
    sd = {(k[len("bert.") :] if k.startswith("bert.") else k): v for k, v in sd.items()}

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise ValueError(f"{source}: weight {key!r} is missing; not a BERT checkpoint for this config")
        return sd[key].float()

    out = {
        "word.weight": take("embeddings.word_embeddings.weight"),
        "position.weight": take("embeddings.position_embeddings.weight"),
        "token_type.weight": take("embeddings.token_type_embeddings.weight"),
        "embed_norm.weight": take("embeddings.LayerNorm.weight"),
        "embed_norm.bias": take("embeddings.LayerNorm.bias"),
    }
    for i in range(cfg.num_hidden_layers):
        p, q = f"encoder.layer.{i}.", f"layers.{i}."
        for part in ("weight", "bias"):
            out[q + "qkv." + part] = torch.cat(
                [take(f"{p}attention.self.{name}.{part}") for name in ("query", "key", "value")]
            )
            out[q + "attn_out." + part] = take(f"{p}attention.output.dense.{part}")
            out[q + "attn_norm." + part] = take(f"{p}attention.output.LayerNorm.{part}")
            out[q + "ffn_in." + part] = take(f"{p}intermediate.dense.{part}")
            out[q + "ffn_out." + part] = take(f"{p}output.dense.{part}")
            out[q + "ffn_norm." + part] = take(f"{p}output.LayerNorm.{part}")
    extra = f"encoder.layer.{cfg.num_hidden_layers}.attention.self.query.weight"
    if extra in sd:
        raise ValueError(f"{source}: the checkpoint has more layers than config.json's {cfg.num_hidden_layers}")
    return out


def load_bert(folder: str | Path) -> BertEncoder:
    """Build a `BertEncoder` from a Hugging Face BERT folder, in eval mode, float32.

    Weights come from ``model.safetensors`` if present, else ``pytorch_model.bin``
    (loaded with ``weights_only=True``).

    Raises:
        ValueError: no config / weights, a config that is not a BERT encoder, or
            weights that do not fit the config (names the file).
    """
    path = Path(folder)
    cfg = BertConfig.from_file(path / "config.json")
    st, pt = path / "model.safetensors", path / "pytorch_model.bin"
    if st.is_file():
        from safetensors.torch import load_file

        try:
            sd = load_file(str(st))
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            raise ValueError(f"cannot read the weights {st}: {exc}") from exc
        source = str(st)
    elif pt.is_file():
        try:
            sd = torch.load(str(pt), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle and zip errors of a damaged file
            raise ValueError(f"cannot read the weights {pt}: {exc}") from exc
        source = str(pt)
    else:
        raise ValueError(f"no weights in {path}: expected model.safetensors or pytorch_model.bin")
    if not isinstance(sd, dict):
        raise ValueError(f"{source}: not a state dict")
    model = BertEncoder(cfg)
    try:
        model.load_state_dict(_convert_state_dict(sd, cfg, source), strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{source}: weights do not fit config.json: {exc}") from exc
    return model.eval()


def load_bert_tokenizer(folder: str | Path, max_length: int) -> Any:
    """The folder's ``tokenizer.json`` as a `tokenizers.Tokenizer`: truncates to ``max_length``
    tokens (special tokens included) and pads a batch to its longest sequence, on the right.

    The file's own truncation and padding settings (all-MiniLM-L6-v2 ships a fixed
    128-token padding) are replaced, so ids and masks equal what transformers'
    tokenizer gives with ``padding=True, truncation=True, max_length=max_length``.

    Raises:
        ValueError: no ``tokenizer.json``, or one that cannot be read.
    """
    from tokenizers import Tokenizer

    file = Path(folder) / "tokenizer.json"
    if not file.is_file():
        raise ValueError(f"no tokenizer.json in {folder} (a fast-tokenizer file is needed)")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise ValueError(f"cannot read the tokenizer {file}: {exc}") from exc
    pad = tok.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    pad_id = tok.token_to_id(pad_token)
    if pad_id is None:
        raise ValueError(f"{file}: the padding token {pad_token!r} is not in the vocabulary")
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(direction="right", pad_id=pad_id, pad_type_id=0, pad_token=pad_token)
    return tok
