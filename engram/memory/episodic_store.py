"""Persistence of the episodic timeline: `EpisodicMemory` to store files and back.

The one place that knows the on-disk layout of an episodic memory: node
records (JSON), image and text embeddings (float16 arrays), keyframes (one
blob of JPEG bytes with an offset index), and the working state of the open
nodes so that an interrupted build resumes exactly. Writing goes through the
shared atomic store (`engram.memory.store`). `EpisodicMemory.to_files`,
`from_files`, `save` and `load` call into here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.memory.episodic_nodes import (
    EPISODIC_KIND,
    EPISODIC_VERSION,
    THUMBNAIL_NAME,
    EpisodicNode,
    _Acc,
    check_encoders,
)
from engram.memory.episodic_objects import ObjectTracker

if TYPE_CHECKING:
    from engram.memory.episodic import EpisodicMemory

__all__ = [
    "episodic_from_files",
    "episodic_to_files",
    "read_episodic",
    "write_episodic",
]


def episodic_to_files(mem: EpisodicMemory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The memory as store files and manifest metadata (`EpisodicMemory.to_files`)."""
    mem._embed_pending_text()
    kf_index: dict[int, int] = {}
    blobs: list[bytes] = []

    def ref(b: bytes) -> int:
        key = id(b)
        if key not in kf_index:
            kf_index[key] = len(blobs)
            blobs.append(b)
        return kf_index[key]

    order = [nid for ids in mem._levels for nid in ids]
    records = []
    img = np.zeros((len(order), mem._dim or 0), dtype=np.float16)
    txt = np.zeros((len(order), mem._text_dim or 0), dtype=np.float16)
    for row, nid in enumerate(order):
        n = mem._nodes[nid]
        if not n.closed:
            mem._fill(n, mem._acc[nid])
        if n.image_embedding is not None and mem._dim:
            img[row] = n.image_embedding
        if n.text_embedding is not None and mem._text_dim:
            txt[row] = n.text_embedding
        records.append(
            {
                "id": n.node_id,
                "level": n.level,
                "start_s": n.start_s,
                "end_s": n.end_s,
                "frames": n.frame_count,
                "tags": [[k, v] for k, v in n.tags],
                "labels": [[k, v] for k, v in n.labels],
                "moved": n.moved,
                "caption": n.caption,
                "description": n.description,
                "keyframes": [ref(b) for b in n.keyframes],
                "keyframe_times_s": n.keyframe_times_s,
                "children": n.children,
                "parent": n.parent,
                "closed": n.closed,
                "has_text": n.text_embedding is not None,
            }
        )
    # working state of the open nodes, so a build can resume exactly
    open_state = []
    sums = []
    cand_embs: list[np.ndarray] = []
    for nid, acc in mem._acc.items():
        open_state.append(
            {
                "id": nid,
                "tag_sum": acc.tag_sum,
                "label_sum": acc.label_sum,
                "moved": acc.moved,
                "cands": [[t, ref(b)] for t, b, _ in acc.cands],
                "last_t": acc.last_t if math.isfinite(acc.last_t) else None,
            }
        )
        sums.append(acc.emb_sum)
        cand_embs.extend(e for _, _, e in acc.cands)
    offsets = np.zeros((len(blobs), 2), dtype=np.int64)
    pos = 0
    for i, b in enumerate(blobs):
        offsets[i] = (pos, len(b))
        pos += len(b)
    state = {
        "next_id": mem._next_id,
        "open": mem._open,
        "last_t": mem._last_t,
        "last_slot": mem._last_slot,
        "frames_seen": mem._frames_seen,
        "frames_sampled": mem._frames_sampled,
        "finalized": mem._finalized,
        "open_nodes": open_state,
        "positions": mem._moves.state(),
    }
    dim = mem._dim or 0
    files: dict[str, Any] = {
        "nodes.json": records,
        "state.json": state,
        "image_embeddings.npy": img,
        "text_embeddings.npy": txt,
        "keyframes.bin": b"".join(blobs),
        "keyframes_index.npy": offsets,
        "open_sums.npy": np.array(sums, dtype=np.float64).reshape(len(sums), dim),
        "open_cand_embeddings.npy": np.array(cand_embs, dtype=np.float32).reshape(len(cand_embs), dim),
    }
    files.update(mem.objects.to_files())
    meta = {
        "config": mem.config(),
        "encoders": mem.encoder_info(),
        "nodes": len(mem._nodes),
    }
    return files, meta


def episodic_from_files(
    cls: type[EpisodicMemory],
    files: Mapping[str, Any],
    meta: Mapping[str, Any],
    *,
    image_encoder: Any = None,
    text_encoder: Any = None,
    captioner: Any = None,
    where: str = "memory",
) -> EpisodicMemory:
    """Rebuild a memory from `episodic_to_files` output (`EpisodicMemory.from_files`)."""
    cfg = dict(meta.get("config", {}))
    enc = dict(meta.get("encoders", {}))
    check_encoders(enc, image_encoder, text_encoder, where=where)
    mem = cls(
        **cfg,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        captioner=captioner,
    )
    try:
        records = files["nodes.json"]
        state = files["state.json"]
        img = np.asarray(files["image_embeddings.npy"], dtype=np.float32)
        txt = np.asarray(files["text_embeddings.npy"], dtype=np.float32)
        blob = files["keyframes.bin"]
        offsets = np.asarray(files["keyframes_index.npy"])
        sums = np.asarray(files["open_sums.npy"], dtype=np.float64)
        cand_embs = np.asarray(files["open_cand_embeddings.npy"], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"{where}: the episodic memory is missing {exc}") from exc
    if len(img) != len(records) or len(txt) != len(records):
        raise ValueError(f"{where}: {len(records)} nodes but {len(img)} image / {len(txt)} text embeddings")
    if offsets.size and int(offsets[-1].sum()) != len(blob):
        raise ValueError(f"{where}: keyframes.bin has {len(blob)} bytes, the index expects {int(offsets[-1].sum())}")
    blobs = [bytes(blob[o : o + n]) for o, n in offsets.tolist()]
    mem._dim = enc.get("image_dim")
    mem._text_dim = enc.get("text_dim")
    mem._builtin_embedding = enc.get("image_encoder") == THUMBNAIL_NAME
    for row, r in enumerate(records):
        n = EpisodicNode(
            node_id=int(r["id"]),
            level=int(r["level"]),
            start_s=float(r["start_s"]),
            end_s=float(r["end_s"]),
            frame_count=int(r["frames"]),
            image_embedding=img[row] if mem._dim else None,
            text_embedding=txt[row] if (mem._text_dim and r.get("has_text")) else None,
            tags=[(str(k), float(v)) for k, v in r["tags"]],
            labels=[(str(k), float(v)) for k, v in r["labels"]],
            moved=list(r["moved"]),
            caption=r.get("caption", ""),
            description=r["description"],
            keyframes=[blobs[i] for i in r["keyframes"]],
            keyframe_times_s=[float(t) for t in r["keyframe_times_s"]],
            children=[int(c) for c in r["children"]],
            parent=None if r["parent"] is None else int(r["parent"]),
            closed=bool(r["closed"]),
        )
        if not 0 <= n.level < mem.num_levels:
            raise ValueError(f"{where}: node {n.node_id} has level {n.level} outside 0..{mem.num_levels - 1}")
        mem._nodes[n.node_id] = n
        mem._levels[n.level].append(n.node_id)
        mem._starts[n.level].append(n.start_s)
        if mem._text_dim and n.text_embedding is None:
            mem._text_pending.add(n.node_id)
    mem._next_id = int(state["next_id"])
    mem._open = [None if o is None else int(o) for o in state["open"]]
    mem._last_t = state["last_t"]
    mem._last_slot = state["last_slot"]
    mem._frames_seen = int(state["frames_seen"])
    mem._frames_sampled = int(state["frames_sampled"])
    mem._finalized = bool(state["finalized"])
    ci = 0
    for row, o in enumerate(state["open_nodes"]):
        acc = _Acc(mem._dim or 1)
        acc.emb_sum = sums[row].copy() if mem._dim else acc.emb_sum
        acc.tag_sum = {str(k): float(v) for k, v in o["tag_sum"].items()}
        acc.label_sum = {str(k): float(v) for k, v in o["label_sum"].items()}
        acc.moved = {str(k): int(v) for k, v in o["moved"].items()}
        acc.last_t = -math.inf if o["last_t"] is None else float(o["last_t"])
        for t, bi in o["cands"]:
            acc.cands.append((float(t), blobs[bi], cand_embs[ci]))
            ci += 1
        mem._acc[int(o["id"])] = acc
    mem._moves.load_state(state["positions"])
    if "tracks.json" in files:  # memories written before object tracks have none
        mem.objects = ObjectTracker.from_files(files, where=where)
    return mem


def write_episodic(path: str, files: dict[str, Any], meta: dict[str, Any]) -> None:
    """The one place that writes an episodic memory to disk (atomically, via the shared store)."""
    from engram.memory.store import write_store

    write_store(path, files, kind=EPISODIC_KIND, version=EPISODIC_VERSION, meta=meta)


def read_episodic(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Store files and metadata of an episodic memory written by `write_episodic`."""
    from engram.memory.store import read_store

    contents = read_store(path, kind=EPISODIC_KIND, supported_versions=[EPISODIC_VERSION])
    files = {name: contents[name] for name in contents.names()}
    return files, dict(contents.meta)
