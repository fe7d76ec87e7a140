"""The catalogue folder: per-source memories, one columnar table, one vector index, search and QA.

Layout::

    CATALOGUE/
      catalogue.json            format name and version, build settings (written once)
      sources/<source_id>/      one committed memory per source: memory/ (an engram store),
                                snapshots/*.jpg, records.parquet, source.json
      failures/<source_id>.json sources that could not be indexed, with the error
      tables/g<N>/              records.parquet (every row of every source) + index.faiss
      current.json              which table generation is current (replaced atomically)
      .tmp/                     builds in progress (removed by the next run)

The table is rebuilt from the committed sources at the end of every run and
switched in with one atomic replace of ``current.json``, so a reader sees
either the old or the new table, each consistent with the memories it names.

Search ranks rows by the cosine similarity of their text embedding to the
query's (a faiss inner-product index; exact, so catalogue search finds what a
per-source search finds), plus a lexical bonus for rows whose text holds every
word of the query, then filters by time, position, source and kind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CATALOGUE_FORMAT",
    "CATALOGUE_VERSION",
    "Catalogue",
    "CatalogueError",
    "CatalogueHit",
    "ask_catalogue",
    "ask_command",
    "is_catalogue",
    "parse_since",
]

CATALOGUE_FORMAT = "engram.fleet.catalogue"
CATALOGUE_VERSION = 1
_LEXICAL_WEIGHT = 0.3
_NEAR_WEIGHT = 0.25


class CatalogueError(ValueError):
    """A catalogue cannot be created, opened or searched as asked; the message says why."""


def is_catalogue(path: str | Path) -> bool:
    """True when ``path`` is a catalogue folder (of any version)."""
    try:
        return json.loads((Path(path) / "catalogue.json").read_text()).get("format") == CATALOGUE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_since(value: str | float | None) -> tuple[float | None, float | None]:
    """``--since``: stream seconds ("90", "1:30", "2 min") or a UTC date/time ("2026-12-06", "2026-12-06T10:00").

    Returns:
        (stream seconds, Unix seconds): one of them set, or both None.
    """
    if value is None:
        return None, None
    if isinstance(value, (int, float)):
        return float(value), None
    s = str(value).strip()
    try:
        return float(s), None
    except ValueError:
        pass
    import datetime as dt

    try:
        d = dt.datetime.fromisoformat(s)
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.timezone.utc)  # noqa: UP017 - datetime.UTC is Python 3.11+
        return None, d.timestamp()
    except ValueError:
        pass
    from engram.qa.video import parse_time_s

    t = parse_time_s(s)
    if t is None:
        raise CatalogueError(
            f"cannot read the time {value!r}: give seconds (90), mm:ss (1:30) or a UTC date (2026-12-06)"
        )
    return t, None


@dataclass
class CatalogueHit:
    """One search result across the catalogue.

    Attributes:
        source_id, source_path, source_kind: the source it comes from ("video", "rgbd", "bag").
        kind: "event", "keyframe" or "object".
        record_id: the record's id in its source's memory (event node, snapshot frame, object id).
        score: higher is better; comparable within one search.
        start_s, end_s: the time span in the source's stream seconds.
        position: world position in the source's frame (metres), None where unknown (video).
        label, text: category or tags, and the record's description.
        snapshot: absolute path of a JPEG showing it ("" when none).
        abs_start_s: Unix time of ``start_s`` where the source is time-stamped (bags), else None.
        level: timeline level (0 for events of a few seconds, objects and keyframes).
    """

    source_id: str
    source_path: str
    source_kind: str
    kind: str
    record_id: int
    score: float
    start_s: float
    end_s: float
    position: np.ndarray | None
    label: str
    text: str
    snapshot: str = ""
    abs_start_s: float | None = None
    level: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        from engram._util import fmt_time

        where = "" if self.position is None else " at ({:.2f}, {:.2f}, {:.2f})".format(*self.position)
        name = Path(self.source_path.rstrip("/")).name
        snap = f"  {self.snapshot}" if self.snapshot else ""
        return (
            f"{self.score:.3f}  {name}  {self.kind} {fmt_time(self.start_s)}-{fmt_time(self.end_s)}{where}  "
            f"{self.text}{snap}"
        )


class Catalogue:
    """A catalogue folder (see the module doc). Use `create` to index into one, `open` to read one."""

    def __init__(self, path: str | Path, info: dict[str, Any]) -> None:
        self.path = Path(path)
        self.info = info
        self.settings: dict[str, Any] = info.get("settings", {})
        self._text_encoder: Any = None
        self._table: dict[str, Any] | None = None
        self._table_gen: str | None = None

    # -- opening ----------------------------------------------------------------
    @staticmethod
    def _read_info(path: Path) -> dict[str, Any]:
        try:
            info = json.loads((path / "catalogue.json").read_text())
        except ValueError as exc:
            raise CatalogueError(f"{path}/catalogue.json is damaged ({exc}); index into a new folder") from exc
        if info.get("format") != CATALOGUE_FORMAT:
            raise CatalogueError(
                f"{path} is not an engram catalogue (catalogue.json names format {info.get('format')!r})"
            )
        version = info.get("version")
        if version != CATALOGUE_VERSION:
            raise CatalogueError(
                f"{path} is a catalogue of format version {version} (written by engram {info.get('engram_version', '?')}); "
                f"this engram reads version {CATALOGUE_VERSION}: index into a new folder, or use that engram version"
            )
        return info

    @classmethod
    def open(cls, path: str | Path) -> Catalogue:
        """Open a catalogue for reading.

        Raises:
            FileNotFoundError: no such folder.
            CatalogueError: not a catalogue, another format version, or damaged.
        """
        p = Path(path).expanduser().resolve()
        if not p.exists():
            raise FileNotFoundError(f"no catalogue at {p}")
        if not (p / "catalogue.json").is_file():
            raise CatalogueError(
                f"{p} is not an engram catalogue (no catalogue.json); build one with `engram index ... --out {p}`"
            )
        return cls(p, cls._read_info(p))

    @classmethod
    def create(cls, path: str | Path, settings: dict[str, Any]) -> Catalogue:
        """Open ``path`` for indexing with ``settings``, creating it when it does not exist.

        Raises:
            CatalogueError: ``path`` is a file, a non-empty folder that is not a catalogue,
                a catalogue of another version, or one built with other settings.
        """
        from engram.fleet.worker import settings_key

        p = Path(path).expanduser().resolve()
        key = settings_key(settings)
        if p.exists() and not p.is_dir():
            raise CatalogueError(f"{p} is a file, not a catalogue folder")
        if p.is_dir() and (p / "catalogue.json").exists():
            info = cls._read_info(p)
            if info.get("settings_key") != key:
                raise CatalogueError(
                    f"{p} was indexed with other settings ({info.get('settings_key')} != {key}); "
                    "index into a new folder or use the same settings"
                )
            return cls(p, info)
        if p.is_dir() and any(p.iterdir()):
            raise CatalogueError(f"{p} is a folder with other contents, not a catalogue: choose a new or empty folder")
        from engram import __version__

        p.mkdir(parents=True, exist_ok=True)
        for sub in ("sources", "failures", "tables", ".tmp"):
            (p / sub).mkdir(exist_ok=True)
        info = {
            "format": CATALOGUE_FORMAT,
            "version": CATALOGUE_VERSION,
            "engram_version": __version__,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings_key": key,
            "settings": settings,
        }
        _atomic_json(p / "catalogue.json", info)
        return cls(p, info)

    # -- indexing bookkeeping --------------------------------------------------------
    @contextlib.contextmanager
    def writer_lock(self):
        """Held by one indexing run at a time; removes builds that killed runs left in .tmp."""
        import fcntl

        with open(self.path / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise CatalogueError(
                    f"another `engram index` run is writing {self.path}; wait for it to finish"
                ) from None
            self.clean_tmp()
            yield self

    def clean_tmp(self) -> None:
        """Remove builds of killed workers (call only while holding `writer_lock` with no worker running)."""
        tmp = self.path / ".tmp"
        if tmp.is_dir():
            for entry in tmp.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        tmp.mkdir(exist_ok=True)

    def record_failure(self, source: dict[str, Any], error: str, attempts: int = 1) -> None:
        (self.path / "failures").mkdir(exist_ok=True)
        _atomic_json(
            self.path / "failures" / f"{source['source_id']}.json",
            {
                "source": source,
                "error": error,
                "attempts": attempts,
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )

    def clear_failure(self, source_id: str) -> None:
        (self.path / "failures" / f"{source_id}.json").unlink(missing_ok=True)

    def failures(self) -> list[dict[str, Any]]:
        out = []
        for f in sorted((self.path / "failures").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(f.read_text()))
        return out

    def sources(self) -> list[dict[str, Any]]:
        """``source.json`` of every committed source, in id order."""
        from engram.fleet.worker import read_source_json

        out = []
        for d in sorted((self.path / "sources").iterdir()) if (self.path / "sources").is_dir() else []:
            info = read_source_json(d)
            if info and info.get("status") == "complete" and (d / "records.parquet").is_file():
                out.append(info)
        return out

    def refresh_table(self, index_kind: str | None = None) -> dict[str, Any]:
        """Merge every committed source's rows into a new table generation and switch to it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from engram.fleet.worker import records_table

        infos = self.sources()
        tables = [pq.read_table(self.path / "sources" / i["source"]["source_id"] / "records.parquet") for i in infos]
        if tables:
            table = pa.concat_tables(tables)
        else:  # the text encoder (a model load) only for the width of an empty table
            dim = int(self.text_encoder.dim) if hasattr(self.text_encoder, "dim") else None
            table = records_table({c: [] for c in _columns()[:-1]}, np.zeros((0, dim or 1), np.float32))
        gens = sorted((self.path / "tables").glob("g*"))
        n = int(gens[-1].name[1:]) + 1 if gens else 1
        gen = f"g{n:06d}"
        tmp = self.path / ".tmp" / f"table-{gen}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        pq.write_table(table, tmp / "records.parquet")
        emb = _embeddings(table)
        kind = index_kind or self.settings.get("index", "flat")
        _write_index(tmp / "index.faiss", emb, kind)
        meta = {
            "generation": gen,
            "rows": table.num_rows,
            "dim": int(emb.shape[1]),
            "index": kind,
            "sources": [i["source"]["source_id"] for i in infos],
        }
        (tmp / "table.json").write_text(json.dumps(meta, indent=1))
        from engram.fleet.worker import _fsync_tree

        _fsync_tree(tmp)
        os.rename(tmp, self.path / "tables" / gen)
        _atomic_json(self.path / "current.json", {"generation": gen})
        for old in gens[:-1]:  # keep the previous generation for readers that opened it just now
            shutil.rmtree(old, ignore_errors=True)
        self._table = None
        return meta

    # -- reading ------------------------------------------------------------------------------
    @property
    def text_encoder(self) -> Any:
        if self._text_encoder is None:
            from engram.perception.encoders import build_text_encoder

            self._text_encoder = build_text_encoder(self.settings.get("text_encoder", "hash"))
        return self._text_encoder

    def _load(self) -> dict[str, Any]:
        try:
            gen = json.loads((self.path / "current.json").read_text())["generation"]
        except (OSError, ValueError, KeyError):
            raise CatalogueError(
                f"{self.path} has no table yet: run `engram index ... --out {self.path}` to finish it"
            ) from None
        if self._table is not None and self._table_gen == gen:
            return self._table
        import pyarrow.parquet as pq

        folder = self.path / "tables" / gen
        table = pq.read_table(folder / "records.parquet")
        meta = json.loads((folder / "table.json").read_text())
        emb = _embeddings(table)
        cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in _columns()[:-1]}
        cols["kind"] = cols["kind"].astype(str)  # compared on every filtered search
        src_ids, first, src_code = np.unique(cols["source_id"].astype(str), return_index=True, return_inverse=True)
        self._table = {
            "meta": meta,
            "cols": cols,
            "emb": emb,
            "index": _read_index(folder / "index.faiss", emb, meta.get("index", "flat")),
            "source_ids": src_ids,
            "source_code": src_code,
            "source_paths": cols["source_path"][first].astype(str),
        }
        self._table_gen = gen
        return self._table

    def __len__(self) -> int:
        return int(self._load()["meta"]["rows"])

    def search(
        self,
        text: str,
        k: int = 5,
        *,
        since: str | float | None = None,
        until: str | float | None = None,
        near: Sequence[float] | None = None,
        radius_m: float | None = None,
        sources: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        levels: Sequence[int] | None = (0,),
        min_score: float = 0.1,
    ) -> list[CatalogueHit]:
        """The best rows for ``text`` across every source, best first.

        Args:
            text: what to look for ("red toolbox").
            k: at most this many hits.
            since, until: keep rows seen in this window: stream seconds, or UTC dates
                (rows of sources without Unix time stamps then drop out).
            near: (x, y) or (x, y, z): rank by closeness too; rows without a position drop out.
            radius_m: with ``near``, drop rows farther than this.
            sources: keep rows whose source id or path contains one of these strings.
            kinds: keep these record kinds ("event", "keyframe", "object").
            levels: timeline levels to search (0: events of a few seconds; None: all).
            min_score: drop hits scoring below this (before the ``near`` weighting).

        Raises:
            CatalogueError: empty text, bad filters, or no table yet.
        """
        if not isinstance(text, str) or not text.strip():
            raise CatalogueError(f"search text must be a non-empty string, got {text!r}")
        if k < 1:
            raise CatalogueError(f"k must be >= 1, got {k}")
        t = self._load()
        cols, n = t["cols"], len(t["emb"])
        if n == 0:
            return []
        mask = self._filter(t, since, until, near, radius_m, sources, kinds, levels)
        q = np.asarray(self.text_encoder.encode([text])[0], np.float32)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        # candidates: the vector index over everything, or an exact scan of a narrow filter
        want = min(n, max(8 * k, 64))
        if mask is None:
            rows, sims = _index_search(t["index"], t["emb"], q, want)
        else:
            kept = int(mask.sum())
            if kept == 0:
                return []
            if kept <= max(n // 10, 4096):  # a narrow filter: an exact scan of what it keeps
                sel = np.flatnonzero(mask)
                s = t["emb"][sel] @ q
                top = np.argsort(-s, kind="stable")[: min(len(sel), want)]
                rows, sims = sel[top], s[top]
            else:  # a wide one: the index, asked for more until enough rows pass the filter
                ask = want * 4
                while True:
                    rows, sims = _index_search(t["index"], t["emb"], q, min(n, ask))
                    keep = mask[rows]
                    if int(keep.sum()) >= want or ask >= n:
                        break
                    ask *= 4
                rows, sims = rows[keep][:want], sims[keep][:want]
        scores = sims.astype(np.float64) + _LEXICAL_WEIGHT * self._lexical(t, rows, text)
        good = scores >= min_score
        rows, scores = rows[good], scores[good]
        pos = np.stack([cols["x"][rows], cols["y"][rows], cols["z"][rows]], 1)
        if near is not None:
            nv = np.asarray(near, float).reshape(-1)
            d = np.linalg.norm(pos[:, : len(nv)] - nv, axis=1)
            scores = scores / (1.0 + _NEAR_WEIGHT * d)
        order = np.argsort(-scores, kind="stable")[:k]
        out = []
        for i in order:
            r = int(rows[i])
            p = pos[i]
            snap = str(cols["snapshot"][r])
            abs_t = float(cols["abs_start_s"][r])
            out.append(
                CatalogueHit(
                    source_id=str(cols["source_id"][r]),
                    source_path=str(cols["source_path"][r]),
                    source_kind=str(cols["source_kind"][r]),
                    kind=str(cols["kind"][r]),
                    record_id=int(cols["record_id"][r]),
                    score=float(scores[i]),
                    start_s=float(cols["start_s"][r]),
                    end_s=float(cols["end_s"][r]),
                    position=None if np.isnan(p).any() else p.copy(),
                    label=str(cols["label"][r]),
                    text=str(cols["text"][r]),
                    snapshot=str(self.path / snap) if snap else "",
                    abs_start_s=None if np.isnan(abs_t) else abs_t,
                    level=int(cols["level"][r]),
                    meta={"distance_m": float(d[i])} if near is not None else {},
                )
            )
        return out

    def _filter(self, t, since, until, near, radius_m, sources, kinds, levels) -> np.ndarray | None:
        cols = t["cols"]
        n = len(t["emb"])
        mask = np.ones(n, bool)
        used = False
        since_s, since_abs = parse_since(since)
        until_s, until_abs = parse_since(until)
        if since_s is not None:
            mask &= cols["end_s"] >= since_s
            used = True
        if until_s is not None:
            mask &= cols["start_s"] <= until_s
            used = True
        if since_abs is not None or until_abs is not None:
            abs_start = cols["abs_start_s"]
            abs_end = abs_start + (cols["end_s"] - cols["start_s"])
            with np.errstate(invalid="ignore"):
                if since_abs is not None:
                    mask &= abs_end >= since_abs
                if until_abs is not None:
                    mask &= abs_start <= until_abs
            used = True
        if near is not None:
            nv = np.asarray(near, float).reshape(-1)
            if nv.shape not in ((2,), (3,)) or not np.isfinite(nv).all():
                raise CatalogueError(f"near must be (x, y) or (x, y, z) in metres, got {near!r}")
            xyz = np.stack([cols["x"], cols["y"], cols["z"]], 1)[:, : len(nv)]
            has = ~np.isnan(xyz).any(axis=1)
            mask &= has
            if radius_m is not None:
                with np.errstate(invalid="ignore"):
                    mask &= np.linalg.norm(xyz - nv, axis=1) <= float(radius_m)
            used = True
        elif radius_m is not None:
            raise CatalogueError("radius_m needs near")
        if sources:
            ids, paths = t["source_ids"], t["source_paths"]
            ok = np.array(
                [any(s in i or s in p for s in sources) for i, p in zip(ids, paths)],
                bool,
            )
            if not ok.any():
                raise CatalogueError(f"no source of {self.path} matches {list(sources)}")
            mask &= ok[t["source_code"]]
            used = True
        if kinds:
            bad = set(kinds) - {"event", "keyframe", "object"}
            if bad:
                raise CatalogueError(f"unknown record kinds {sorted(bad)}: use event, keyframe, object")
            mask &= np.isin(cols["kind"], list(kinds))
            used = True
        if levels is not None:
            mask &= np.isin(cols["level"], list(levels))
            used = bool(used or not mask.all())
        return mask if used else None

    def _lexical(self, t: dict[str, Any], rows: np.ndarray, text: str) -> np.ndarray:
        """Share of the query's content words found in each row's text (plural-insensitive)."""
        from engram.memory.episodic import _content_tokens

        words = set(_content_tokens(text))
        if not words or not len(rows):
            return np.zeros(len(rows))
        texts = t["cols"]["text"]
        return np.array(
            [len(words & set(_content_tokens(str(texts[r])))) / len(words) for r in rows],
            float,
        )

    def snapshot_image(self, hit: CatalogueHit) -> np.ndarray | None:
        """The hit's snapshot as "H W 3" uint8 RGB (None when it has none)."""
        if not hit.snapshot:
            return None
        import cv2

        img = cv2.imread(hit.snapshot, cv2.IMREAD_COLOR)
        return None if img is None else img[:, :, ::-1].copy()


def _columns() -> tuple[str, ...]:
    from engram.fleet.worker import RECORD_COLUMNS

    return RECORD_COLUMNS


def _embeddings(table: Any) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    dim = col.type.list_size
    return np.asarray(col.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)


def _write_index(path: Path, emb: np.ndarray, kind: str) -> None:
    """The vector index over the rows (inner product of unit vectors = cosine).

    "flat" (exact) is rebuilt from the table's embeddings when the catalogue is opened, a
    copy of the same numbers, so nothing is written for it; "hnsw" (approximate, for tables
    too large to scan) is written to ``path``.
    """
    if kind == "flat":
        return
    if kind != "hnsw":
        raise CatalogueError(f"unknown vector index {kind!r}: use flat or hnsw")
    from engram._optional import require

    faiss = require("faiss", "an HNSW catalogue index")
    index = faiss.IndexHNSWFlat(emb.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    if len(emb):
        index.add(np.ascontiguousarray(emb, np.float32))
    faiss.write_index(index, str(path))


def _read_index(path: Path, emb: np.ndarray, kind: str = "flat") -> Any:
    """The index of a table generation: HNSW from ``path``, else faiss flat over ``emb`` (None without faiss)."""
    try:
        import faiss
    except ImportError:
        return None  # searched by an exact numpy scan instead
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(emb.shape[1])
        if len(emb):
            index.add(np.ascontiguousarray(emb, np.float32))
        return index
    if not path.is_file():
        raise CatalogueError(
            f"{path} is missing: the catalogue is damaged; run engram index again to rebuild its table"
        )
    index = faiss.read_index(str(path))
    if index.ntotal != len(emb):
        raise CatalogueError(
            f"{path} indexes {index.ntotal} rows but the table has {len(emb)}: the catalogue is damaged"
        )
    index.hnsw.efSearch = 128
    return index


def _index_search(index: Any, emb: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if index is None:
        s = emb @ q
        top = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        top = top[np.argsort(-s[top], kind="stable")]
        return top, s[top]
    sims, rows = index.search(q.reshape(1, -1), k)
    keep = rows[0] >= 0
    return rows[0][keep].astype(np.int64), sims[0][keep]


# -- questions over the catalogue ----------------------------------------------------------


def ask_catalogue(
    catalogue: str | Path | Catalogue,
    question: str,
    options: Sequence[str] | None = None,
    answerer: Any = "offline",
    *,
    k: int = 5,
) -> tuple[Any, list[Any], list[CatalogueHit]]:
    """Answer a question from every source of a catalogue through the usual answerers.

    The question is parsed as for a video memory (`engram.qa.video.parse_question`):
    its content words are searched across the catalogue, and "last" / "first"
    order the matching hits by time (Unix time where sources have it).

    Returns:
        (the answerer's `Answer`, the `Evidence` it was given, the hits behind it).
    """
    from engram._util import fmt_time
    from engram.qa.answerers import Evidence, build_answerer
    from engram.qa.video import parse_question

    cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue.open(catalogue)
    if options is not None:
        options = [str(o) for o in options]
        if len(options) < 2:
            raise ValueError(f"a multiple-choice question needs at least two options, got {options}")
    plan = parse_question(question)
    hits = cat.search(
        plan.text or question,
        k=max(k, 20) if plan.order else k,
        kinds=("event", "object"),
    )
    if plan.order and hits:
        best = hits[0].score
        close = [h for h in hits if h.score >= best - 0.1]

        def when(h: CatalogueHit) -> float:
            return h.abs_start_s + (h.end_s - h.start_s) if h.abs_start_s is not None else h.end_s

        close.sort(key=when, reverse=plan.order == "last")
        hits = close[:k]
    evidence = []
    for h in hits:
        where = "" if h.position is None else " at ({:.1f}, {:.1f})".format(*h.position[:2])
        name = Path(h.source_path.rstrip("/")).name
        img = cat.snapshot_image(h)
        evidence.append(
            Evidence(
                text=f"[{name} {fmt_time(h.start_s)}-{fmt_time(h.end_s)}{where}] {h.text}",
                time_span_s=(h.start_s, h.end_s),
                images=[] if img is None else [img],
                score=h.score,
                source_id=f"{h.source_id}:{h.kind}:{h.record_id}",
                meta={
                    "source": h.source_path,
                    "kind": h.kind,
                    "position": None if h.position is None else h.position.tolist(),
                },
            )
        )
    if isinstance(answerer, str):
        backend = (
            build_answerer(answerer, text_encoder=cat.text_encoder)
            if answerer == "offline"
            else build_answerer(answerer)
        )
    elif hasattr(answerer, "answer"):
        backend = answerer
    else:
        raise ValueError(f"answerer must be a name or have an answer() method, got {type(answerer).__name__}")
    return backend.answer(question, evidence, options=options), evidence, hits


def ask_command(
    path: str,
    question: str,
    options: Sequence[str] | None = None,
    answerer: Any = "offline",
) -> str:
    """``engram qa ask CATALOGUE "question"``: the answer and the hits behind it, as text."""
    ans, _evidence, hits = ask_catalogue(path, question, options=options, answerer=answerer)
    lines = [f"answer: {ans.text}"]
    if options is not None and getattr(ans, "choice_index", None) is not None:
        lines.append(f"choice: {ans.choice_index} ({options[ans.choice_index]})")
    conf = getattr(ans, "confidence", None)
    if conf is not None:
        lines.append(f"confidence: {conf:.2f}")
    if hits:
        lines.append("evidence:")
        lines += [f"  {h.line()}" for h in hits]
    return "\n".join(lines)
